//! Plain-text tables: columns padded to their widest cell (cells cut at 40 characters).

/// Columns padded to their widest cell.
pub fn render_table(header: &[String], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count().min(40));
            }
        }
    }
    let fmt = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c: String = c.chars().take(40).collect();
                format!("{:w$}", c, w = widths.get(i).copied().unwrap_or(0))
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![fmt(header)];
    out.extend(rows.iter().map(|r| fmt(r)));
    out
}
