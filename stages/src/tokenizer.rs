//! Byte-level tokens for the text tasks: `PAD` = 0, `BOS` = 1, `EOS` = 2, byte `b` = `b + 3`.
//!
//! A sequence is `BOS prompt '\n' step_1 '\n' ... '\n' step_n EOS`: steps are lines, as in the
//! paper, so a step ends at a newline token and a response at `EOS`. Bytes need no vocabulary
//! file and cover any UTF-8 a JSONL task brings.

pub const PAD: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;
/// The newline token: the step separator.
pub const NEWLINE: u32 = b'\n' as u32 + 3;
/// Vocabulary size.
pub const VOCAB: usize = 256 + 3;

/// `BOS prompt '\n'`: the prefix a response continues.
pub fn encode_prompt(prompt: &str) -> Vec<u32> {
    let mut out = Vec::with_capacity(prompt.len() + 2);
    out.push(BOS);
    out.extend(prompt.bytes().map(|b| b as u32 + 3));
    out.push(NEWLINE);
    out
}

/// A response's tokens: its steps joined by newlines, then `EOS`.
pub fn encode_response(steps: &[String]) -> Vec<u32> {
    let mut out: Vec<u32> = steps.join("\n").bytes().map(|b| b as u32 + 3).collect();
    out.push(EOS);
    out
}

/// Text of response tokens (special tokens dropped; invalid UTF-8 replaced).
pub fn decode(tokens: &[u32]) -> String {
    let bytes: Vec<u8> = tokens.iter().filter(|&&t| t >= 3).map(|&t| (t - 3) as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The steps of a response: its lines, without a trailing empty line.
pub fn steps(response: &str) -> Vec<String> {
    let mut lines: Vec<String> = response.split('\n').map(str::to_string).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let steps_in = vec!["17 + 5 = 22".to_string(), "answer: 22".to_string(), "é".to_string()];
        let toks = encode_response(&steps_in);
        assert_eq!(*toks.last().unwrap(), EOS);
        assert!(toks.iter().all(|&t| (t as usize) < VOCAB));
        assert_eq!(steps(&decode(&toks)), steps_in);
        assert_eq!(encode_prompt("ab"), vec![BOS, 97 + 3, 98 + 3, NEWLINE]);
    }
}
