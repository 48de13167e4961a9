//! `pipeline check --update`: write the current values into the baseline file.
//!
//! Only the text of each `value:` scalar changes: the loader kept where each one starts and
//! what it says, and the new number is spliced in at that place. Comments, key order, quoting
//! and layout of everything else stay byte for byte. The file is replaced atomically.

use super::baseline::{Baseline, Number};
use super::report::write_atomic;

/// (metric, old text, new text) for each value that changes.
pub type Changes = Vec<(String, String, String)>;

/// Rewrite the values of the metrics in `current` (metric index, value); returns what changed.
pub fn update(baseline: &Baseline, current: &[(usize, Number)]) -> Result<Changes, String> {
    let file = baseline.sources.get(0).ok_or("the baseline file is not loaded")?;
    let mut text = file.text.as_str().to_string();
    let mut edits: Vec<(usize, usize, String, usize)> = Vec::new();
    for &(i, value) in current {
        let m = &baseline.metrics[i];
        if m.value == value {
            continue;
        }
        let new = value.render();
        let loc = m.value_loc.ok_or_else(|| format!("metric `{}`: no position of its `value`", m.name))?;
        let start = file.offset(loc.line, loc.column);
        if !text[start..].starts_with(&m.value_text) {
            return Err(format!(
                "metric `{}`: the text at {} is not its value `{}`; write the value on one line, unquoted",
                m.name,
                loc.render(&baseline.sources),
                m.value_text
            ));
        }
        edits.push((start, m.value_text.len(), new, i));
    }
    // From the end of the file, so that earlier offsets stay valid.
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut changes = Vec::new();
    for (start, len, new, i) in edits {
        text.replace_range(start..start + len, &new);
        changes.push((baseline.metrics[i].name.clone(), baseline.metrics[i].value_text.clone(), new));
    }
    changes.reverse();
    if !changes.is_empty() {
        write_atomic(&baseline.path, &text).map_err(|e| format!("cannot write {}: {e}", baseline.display))?;
    }
    Ok(changes)
}
