//! Problems from a JSONL file, checked MATH-style.
//!
//! Each line is a JSON object; `problem_field` holds the question and `answer_field` the
//! reference answer (field names are params). A response's answer is the content of its last
//! `\boxed{...}` (braces balanced), else its last non-empty line; answers compare after
//! [`normalize`]. Steps are the response's lines.

use std::path::Path;

/// A problem read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonlProblem {
    /// 1-based line number in the file.
    pub line: usize,
    pub prompt: String,
    pub answer: String,
}

/// Read every problem; an error names the file, the line and what is wrong.
pub fn read(path: &Path, problem_field: &str, answer_field: &str) -> Result<Vec<JsonlProblem>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let at = |msg: String| format!("{}:{n}: {msg}", path.display());
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| at(format!("not valid JSON ({e}); each line must be one JSON object")))?;
        let field = |name: &str| -> Result<String, String> {
            match v.get(name) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(serde_json::Value::Number(x)) => Ok(x.to_string()),
                Some(other) => Err(at(format!("field `{name}` must be a string, found {other}"))),
                None => {
                    let keys: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
                    Err(at(format!(
                        "no field `{name}` (the line has: {}); set the field name in the stage's params",
                        keys.join(", ")
                    )))
                }
            }
        };
        out.push(JsonlProblem { line: n, prompt: field(problem_field)?, answer: field(answer_field)? });
    }
    if out.is_empty() {
        return Err(format!("{} has no problems", path.display()));
    }
    Ok(out)
}

/// Worked solutions by problem text: `solution_field` of every line that has it (lines
/// without it are skipped; [`read`] reports malformed lines). With `required` (the user named
/// the field), a field that no line has is an error naming it — a typo must not silently
/// train on `\boxed{answer}` alone.
pub fn read_solutions(
    path: &Path,
    problem_field: &str,
    solution_field: &str,
    required: bool,
) -> Result<std::collections::HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = std::collections::HashMap::new();
    let mut seen_fields = std::collections::BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            format!("{}:{}: not valid JSON ({e}); each line must be one JSON object", path.display(), i + 1)
        })?;
        if let Some(o) = v.as_object() {
            seen_fields.extend(o.keys().cloned());
        }
        if let (Some(serde_json::Value::String(p)), Some(serde_json::Value::String(s))) =
            (v.get(problem_field), v.get(solution_field))
        {
            out.insert(p.clone(), s.clone());
        }
    }
    if required && !seen_fields.contains(solution_field) {
        let fields: Vec<String> = seen_fields.into_iter().collect();
        return Err(format!(
            "`solution_field: {solution_field}`: no line of {} has a field `{solution_field}` (its lines have: {}); fix the name, or remove the param to train on `\\boxed{{answer}}` alone",
            path.display(),
            fields.join(", ")
        ));
    }
    Ok(out)
}

/// The answer of a response: the last `\boxed{...}`, else the last non-empty line.
pub fn extract_answer(response: &str) -> Option<String> {
    if let Some(b) = last_boxed(response) {
        return Some(b);
    }
    response.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
}

fn last_boxed(s: &str) -> Option<String> {
    let start = s.rfind("\\boxed{")? + "\\boxed{".len();
    let mut depth = 1usize;
    for (i, c) in s[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(s[start..start + i].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// Normalise an answer for comparison: no whitespace or `$`, `\dfrac`/`\tfrac` as `\frac`, no
/// trailing `.`.
pub fn normalize(s: &str) -> String {
    let mut t: String = s.chars().filter(|c| !c.is_whitespace() && *c != '$').collect();
    t = t.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac");
    while t.ends_with('.') {
        t.pop();
    }
    t
}

/// Whether a response's answer matches the reference.
pub fn correct(response: &str, reference: &str) -> bool {
    extract_answer(response).is_some_and(|a| normalize(&a) == normalize(reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_and_normalisation_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("so the answer is \\boxed{42}", "42", true),
            ("\\boxed{1} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}", true),
            ("\\boxed{\\dfrac{3}{4}}", "\\frac{3}{4}", true),
            ("\\boxed{\\frac{a}{\\sqrt{b}}}", "\\frac{a}{\\sqrt{b}}", true),
            ("step 1\nstep 2\nThe answer is 7.\n\n", "The answer is 7", true),
            ("$x = 5$", "x=5", true),
            ("\\boxed{ 12 }", "12.", true),
            ("\\boxed{12}", "13", false),
            ("\\boxed{unclosed", "\\boxed{unclosed", true),
            ("", "0", false),
        ];
        for (resp, reference, want) in cases {
            assert_eq!(correct(resp, reference), *want, "{resp:?} vs {reference:?}");
        }
    }

    #[test]
    fn bad_lines_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.jsonl");
        std::fs::write(&p, "{\"q\": \"1+1\", \"a\": \"2\"}\n\n{\"q\": \"2+2\"}\n").unwrap();
        let e = read(&p, "q", "a").unwrap_err();
        assert!(e.contains("p.jsonl:3:") && e.contains("no field `a`"), "{e}");
        std::fs::write(&p, "{\"q\": \"1+1\", \"a\": 2}\nnot json\n").unwrap();
        let e = read(&p, "q", "a").unwrap_err();
        assert!(e.contains("p.jsonl:2:") && e.contains("not valid JSON"), "{e}");
        std::fs::write(&p, "{\"q\": \"1+1\", \"a\": 2}\n").unwrap();
        let ok = read(&p, "q", "a").unwrap();
        assert_eq!(ok, [JsonlProblem { line: 1, prompt: "1+1".into(), answer: "2".into() }]);
    }
}
