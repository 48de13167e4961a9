//! The human rendering of a [`DiffReport`]: one table per section, on stdout.

use std::path::Path;

use super::{DiffOpts, DiffReport, MetricDiff};
use crate::ui::Printer;
use crate::ui::table::render_table;

pub(super) fn render(p: &Printer, r: &DiffReport, opts: &DiffOpts, cache_root: &Path) {
    p.out(&format!("pipeline `{}`: old = {}, new = {}", r.pipeline, old_label(r, opts), r.new.label));
    let mut any = false;
    for (title, names) in [("only in old", &r.only_old), ("only in new", &r.only_new)] {
        if !names.is_empty() {
            any = true;
            p.out(&format!("{title} ({}): {}", names.len(), names.join(", ")));
        }
    }

    let changed_keys: Vec<&str> = r.instances.iter().filter(|d| d.key_changed).map(|d| d.instance.as_str()).collect();
    if !changed_keys.is_empty() {
        any = true;
        p.out(&format!("new key ({}): {}", changed_keys.len(), changed_keys.join(", ")));
    }
    if opts.all {
        let same: Vec<&str> = r.instances.iter().filter(|d| !d.key_changed).map(|d| d.instance.as_str()).collect();
        if !same.is_empty() {
            p.out(&format!("same key ({}): {}", same.len(), same.join(", ")));
        }
    }

    let json = |v: &Option<serde_json::Value>| v.as_ref().map_or("-".to_string(), |v| v.to_string());
    let params: Vec<Vec<String>> = r
        .instances
        .iter()
        .flat_map(|d| d.params.iter().map(|pd| vec![d.instance.clone(), pd.name.clone(), json(&pd.old), json(&pd.new)]))
        .collect();
    section(p, "params", &["instance", "param", "old", "new"], &params);

    let changes: Vec<Vec<String>> =
        r.instances.iter().flat_map(|d| d.changes.iter().map(|c| vec![d.instance.clone(), c.clone()])).collect();
    section(p, "other changes", &["instance", "change"], &changes);

    if !r.cache {
        p.out("");
        p.out(&format!(
            "metrics: no cache at {}, so no results to compare (params and keys need none)",
            cache_root.display()
        ));
    } else {
        let metrics: Vec<Vec<String>> =
            r.instances.iter().flat_map(|d| d.metrics.iter().map(|m| metric_row(&d.instance, m))).collect();
        section(p, "metrics", &["instance", "metric", "old", "new", "change"], &metrics);
        let outputs: Vec<Vec<String>> = r
            .instances
            .iter()
            .flat_map(|d| d.outputs.iter().map(|o| vec![d.instance.clone(), o.output.clone(), o.status.to_string()]))
            .collect();
        section(p, "report tables", &["instance", "output", "status"], &outputs);
        let not_run: Vec<&str> = r
            .instances
            .iter()
            .filter(|d| d.key_changed && (!d.old_cached || !d.new_cached))
            .map(|d| d.instance.as_str())
            .collect();
        if !not_run.is_empty() {
            p.out("");
            p.out(&format!(
                "not in the cache on one side ({}): {} (`-` above; run that version to compare its results)",
                not_run.len(),
                not_run.join(", ")
            ));
        }
    }
    let shown = any || r.instances.iter().any(|d| d.key_changed || !d.params.is_empty());
    if !shown && !opts.all {
        p.out("no differences: every instance has the same key, so the same params and results");
    }
}

fn old_label(r: &DiffReport, opts: &DiffOpts) -> String {
    if Path::new(&opts.against).exists() { r.old.label.clone() } else { format!("{} at {}", r.new.label, r.old.label) }
}

fn section(p: &Printer, title: &str, header: &[&str], rows: &[Vec<String>]) {
    if rows.is_empty() {
        return;
    }
    p.out("");
    p.out(&format!("{title}:"));
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for line in render_table(&header, rows) {
        p.out(&format!("  {line}"));
    }
}

fn metric_row(instance: &str, m: &MetricDiff) -> Vec<String> {
    let cell = |v: Option<super::Num>| v.map_or("-".to_string(), |v| v.render());
    let change = match (m.old, m.new, m.change) {
        (Some(super::Num::Int(_)), Some(super::Num::Int(_)), Some(c)) => format!("{:+}", c as i64),
        (_, _, Some(c)) => signed_float(c),
        _ => String::new(),
    };
    vec![instance.to_string(), format!("{}.{}", m.output, m.column), cell(m.old), cell(m.new), change]
}

/// A change with its sign and at most 6 significant decimals (`+0.1`, `-2.5`, `+3e-9`).
fn signed_float(c: f64) -> String {
    if c == 0.0 {
        return "0".to_string();
    }
    if c.abs() < 1e-4 || c.abs() >= 1e9 {
        return format!("{c:+.3e}");
    }
    let s = format!("{c:+.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::signed_float;

    #[test]
    fn changes_are_signed_and_short() {
        assert_eq!(signed_float(0.1 + 0.2 - 0.2), "+0.1");
        assert_eq!(signed_float(-2.5), "-2.5");
        assert_eq!(signed_float(3e-9), "+3.000e-9");
        assert_eq!(signed_float(0.0), "0");
    }
}
