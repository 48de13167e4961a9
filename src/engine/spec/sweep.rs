//! Sweeps: parsing a `sweep:` mapping (axes, `zip`, `exclude`) and its points: the grid of all
//! axes, zipped groups advancing together, excluded points removed. Points come out in a fixed
//! order (first axis slowest), so instance order and every derived listing is deterministic.

use std::collections::BTreeMap;

use marked_yaml::Node;

use super::diag::{SpecError, suggest};
use super::model::Sweep;
use super::yaml::{is_name, key_loc, node_loc, node_value, type_error};
use crate::engine::value::Value;

impl Sweep {
    /// Every point, as values aligned with `self.axes`. Assumes a validated sweep (zip groups
    /// name existing axes, each axis in at most one group, equal lengths inside a group).
    pub fn points(&self) -> Vec<Vec<Value>> {
        let groups = self.groups();
        let lens: Vec<usize> = groups.iter().map(|g| self.axes[g[0]].1.len()).collect();
        // Validated sweeps have at most MAX_POINTS points, so this cannot overflow.
        let total: usize = lens.iter().product();
        let mut out = Vec::with_capacity(total);
        if self.axes.is_empty() {
            return out;
        }
        let mut idx = vec![0usize; groups.len()];
        for _ in 0..total {
            let mut point = vec![Value::Null; self.axes.len()];
            for (g, members) in groups.iter().enumerate() {
                for &m in members {
                    point[m] = self.axes[m].1[idx[g]].clone();
                }
            }
            if !self.excluded(&point) {
                out.push(point);
            }
            // Odometer: last group fastest.
            for g in (0..groups.len()).rev() {
                idx[g] += 1;
                if idx[g] < lens[g] {
                    break;
                }
                idx[g] = 0;
            }
        }
        out
    }

    /// The number of grid points before `exclude`, or `None` if it does not fit in a usize.
    pub fn grid_size(&self) -> Option<usize> {
        self.groups().iter().try_fold(1usize, |acc, g| acc.checked_mul(self.axes[g[0]].1.len()))
    }

    /// Groups of axis indices that advance together (a zip group, or one axis), ordered by
    /// their first axis.
    fn groups(&self) -> Vec<Vec<usize>> {
        let mut group_of: Vec<Option<usize>> = vec![None; self.axes.len()];
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, (name, _)) in self.axes.iter().enumerate() {
            if group_of[i].is_some() {
                continue;
            }
            let members: Vec<usize> = match self.zip.iter().find(|g| g.iter().any(|a| a == name)) {
                Some(g) => g.iter().filter_map(|a| self.axes.iter().position(|(n, _)| n == a)).collect(),
                None => vec![i],
            };
            for &m in &members {
                group_of[m] = Some(groups.len());
            }
            groups.push(members);
        }
        groups
    }

    fn excluded(&self, point: &[Value]) -> bool {
        self.exclude.iter().any(|ex| {
            ex.iter().all(|(axis, v)| self.axes.iter().position(|(n, _)| n == axis).is_some_and(|i| &point[i] == v))
        })
    }
}

/// A sweep mapping: axes (`name: [values]`, or `params.name` when `global`), `zip`, `exclude`.
pub fn parse_sweep(node: &Node, field: &str, global: bool, errors: &mut Vec<SpecError>) -> Option<Sweep> {
    let Some(m) = node.as_mapping() else {
        errors.push(type_error(node, field, "a mapping of axes to lists of values"));
        return None;
    };
    let mut sweep = Sweep { loc: node_loc(node), ..Default::default() };
    let axis_name = |k: &str| -> Option<String> {
        if global { k.strip_prefix("params.").map(str::to_string) } else { Some(k.to_string()) }
    };
    for (k, v) in m.iter() {
        match k.as_str() {
            "zip" | "exclude" => continue,
            key => {
                let Some(name) = axis_name(key).filter(|n| is_name(n)) else {
                    let expected = if global {
                        "`params.NAME` (a whole-pipeline sweep sweeps global params)"
                    } else {
                        "an axis name"
                    };
                    errors.push(
                        SpecError::new("E050", key_loc(k), format!("sweep axis `{key}`: expected {expected}"))
                            .label("invalid axis")
                            .help(if global {
                                "write `params.NAME: [v1, v2]`, `zip:` or `exclude:`".to_string()
                            } else {
                                "use letters, digits, `_` and `-`".to_string()
                            }),
                    );
                    continue;
                };
                let Some(seq) = v.as_sequence().filter(|s| !s.is_empty()) else {
                    errors.push(type_error(v, &format!("{field}.{key}"), "a non-empty list of values"));
                    continue;
                };
                let values: Vec<Value> = seq.iter().map(node_value).collect();
                let mut seen = std::collections::HashSet::with_capacity(values.len());
                let mut texts = std::collections::HashMap::with_capacity(values.len());
                for (i, val) in values.iter().enumerate() {
                    if !seen.insert(val) {
                        errors.push(
                            SpecError::new("E051", node_loc(&seq[i]), format!("sweep axis `{name}` lists {val} twice"))
                                .help("remove the duplicate value"),
                        );
                    } else if let Some(prev) = texts.insert(val.render(), val)
                        && prev != val
                    {
                        // Instance names, view and gather directories show the rendered text.
                        errors.push(
                            SpecError::new(
                                "E051",
                                node_loc(&seq[i]),
                                format!(
                                    "sweep axis `{name}` lists {prev} and {val}, which both read `{}`",
                                    val.render()
                                ),
                            )
                            .help("use values of one type, e.g. all numbers or all quoted strings"),
                        );
                    }
                    if matches!(val, Value::List(_) | Value::Map(_) | Value::Null) {
                        errors.push(
                            SpecError::new(
                                "E052",
                                node_loc(&seq[i]),
                                format!("sweep axis `{name}`: values must be scalars, found {}", val.type_name()),
                            )
                            .help("sweep over names or numbers and look the structure up in params"),
                        );
                    }
                }
                sweep.axes.push((name, values));
            }
        }
    }
    let known: Vec<String> = sweep.axes.iter().map(|(n, _)| n.clone()).collect();
    let resolve_axis = |n: &Node, errors: &mut Vec<SpecError>| -> Option<String> {
        let Some(s) = n.as_scalar() else {
            errors.push(type_error(n, &format!("{field}.zip"), "an axis name"));
            return None;
        };
        let name = axis_name(s.as_str()).unwrap_or_else(|| s.as_str().to_string());
        if known.contains(&name) {
            Some(name)
        } else {
            let k: Vec<&str> = known.iter().map(String::as_str).collect();
            errors.push(
                SpecError::new("E053", node_loc(n), format!("`{}` is not an axis of this sweep", s.as_str()))
                    .help(suggest(&name, &k, "axes")),
            );
            None
        }
    };
    if let Some(z) = m.get_node("zip") {
        let groups: Vec<&Node> = match z.as_sequence() {
            Some(s) if s.iter().all(|g| g.as_sequence().is_some()) => s.iter().collect(),
            Some(s) => vec![z].into_iter().filter(|_| !s.is_empty()).collect(),
            None => {
                errors.push(type_error(z, &format!("{field}.zip"), "a list of axis groups, e.g. [[a, b]]"));
                Vec::new()
            }
        };
        for g in groups {
            let names: Vec<String> =
                g.as_sequence().map(|s| s.iter().filter_map(|n| resolve_axis(n, errors)).collect()).unwrap_or_default();
            let lens: Vec<usize> =
                names.iter().filter_map(|n| sweep.axes.iter().find(|(a, _)| a == n).map(|(_, v)| v.len())).collect();
            if lens.windows(2).any(|w| w[0] != w[1]) {
                errors.push(
                    SpecError::new(
                        "E054",
                        node_loc(g),
                        format!(
                            "zipped axes {} have different lengths ({})",
                            names.join(", "),
                            lens.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                        ),
                    )
                    .help("zipped axes advance together and need the same number of values"),
                );
            }
            if names.iter().any(|n| sweep.zip.iter().any(|other| other.contains(n))) {
                errors.push(
                    SpecError::new("E055", node_loc(g), "an axis appears in two zip groups").help("merge the groups"),
                );
            }
            sweep.zip.push(names);
        }
    }
    if let Some(ex) = m.get_node("exclude") {
        match ex.as_sequence() {
            Some(items) => {
                for item in items.iter() {
                    let Some(im) = item.as_mapping() else {
                        errors.push(type_error(item, &format!("{field}.exclude"), "a mapping axis -> value"));
                        continue;
                    };
                    let mut point = BTreeMap::new();
                    for (k, v) in im.iter() {
                        let key_node = Node::Scalar(k.clone());
                        if let Some(name) = resolve_axis(&key_node, errors) {
                            let value = node_value(v);
                            let listed = sweep.axes.iter().find(|(a, _)| *a == name).map(|(_, vals)| vals);
                            if let Some(vals) = listed.filter(|vals| !vals.contains(&value)) {
                                let shown: Vec<String> = vals.iter().take(12).map(ToString::to_string).collect();
                                errors.push(
                                    SpecError::new(
                                        "E053",
                                        node_loc(v),
                                        format!(
                                            "exclude: axis `{name}` does not list {value}, so this excludes nothing"
                                        ),
                                    )
                                    .help(format!(
                                        "its values are {} (types matter: 1, 1.0 and \"1\" differ)",
                                        shown.join(", ")
                                    )),
                                );
                            }
                            point.insert(name, value);
                        }
                    }
                    sweep.exclude.push(point);
                }
            }
            None => {
                errors.push(type_error(ex, &format!("{field}.exclude"), "a list of points (mappings axis -> value)"))
            }
        }
    }
    if sweep.axes.is_empty() {
        errors.push(SpecError::new("E056", node_loc(node), "the sweep has no axes").help("add `axis: [v1, v2]`"));
        return None;
    }
    // Zip groups of unequal lengths were reported above; their size is not meaningful.
    let zip_ok = sweep.zip.iter().all(|g| {
        let lens: Vec<usize> =
            g.iter().filter_map(|n| sweep.axes.iter().find(|(a, _)| a == n)).map(|(_, v)| v.len()).collect();
        lens.windows(2).all(|w| w[0] == w[1])
    });
    if zip_ok && sweep.grid_size().is_none_or(|n| n > MAX_POINTS) {
        let sizes: Vec<String> = sweep.axes.iter().map(|(a, v)| format!("{a}: {}", v.len())).collect();
        let total = sweep.grid_size().map_or("more than 2^64".to_string(), |n| n.to_string());
        errors.push(
            SpecError::new(
                "E072",
                node_loc(node),
                format!("the sweep has {total} points ({}), more than the limit of {MAX_POINTS}", sizes.join(" x ")),
            )
            .label("too many points")
            .help("zip axes that advance together, exclude points, or split the study into several pipeline files"),
        );
        return None;
    }
    Some(sweep)
}

/// The most points one sweep (and one stage) may have: far beyond any study that runs, and
/// small enough that expanding it cannot exhaust memory.
pub const MAX_POINTS: usize = 1_000_000;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ints(v: &[i64]) -> Vec<Value> {
        v.iter().map(|&i| Value::Int(i)).collect()
    }

    #[test]
    fn an_absurd_or_overflowing_sweep_is_an_error_not_an_abort() {
        let axes: String = (0..11).map(|i| format!("a{i}: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80]\n")).collect();
        let node = marked_yaml::parse_yaml(0, &axes).unwrap();
        let mut errors = Vec::new();
        assert!(parse_sweep(&node, "sweep", false, &mut errors).is_none());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].code, "E072");
        assert!(errors[0].message.contains("more than 2^64"), "{}", errors[0].message);

        let node = marked_yaml::parse_yaml(0, "a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nb: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nc: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nd: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\ne: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nf: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\ng: [1, 2]\n").unwrap();
        let mut errors = Vec::new();
        assert!(parse_sweep(&node, "sweep", false, &mut errors).is_none());
        assert!(errors[0].message.contains("2000000 points"), "{}", errors[0].message);
        let node = marked_yaml::parse_yaml(0, "a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nb: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nc: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nd: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\ne: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nf: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n").unwrap();
        let mut errors = Vec::new();
        assert!(parse_sweep(&node, "sweep", false, &mut errors).is_some(), "exactly the limit is allowed: {errors:?}");
    }

    #[test]
    fn grid_zip_exclude() {
        let mut s = Sweep {
            axes: vec![("a".into(), ints(&[1, 2])), ("b".into(), ints(&[10, 20])), ("c".into(), ints(&[7, 8]))],
            ..Default::default()
        };
        assert_eq!(s.points().len(), 8);
        s.zip = vec![vec!["a".into(), "c".into()]];
        let p = s.points();
        assert_eq!(p.len(), 4);
        assert!(p.iter().all(|pt| (pt[0] == Value::Int(1)) == (pt[2] == Value::Int(7))));
        let mut ex = BTreeMap::new();
        ex.insert("a".to_string(), Value::Int(2));
        ex.insert("b".to_string(), Value::Int(10));
        s.exclude = vec![ex];
        let p = s.points();
        assert_eq!(p.len(), 3);
        assert!(!p.iter().any(|pt| pt[0] == Value::Int(2) && pt[1] == Value::Int(10)));
        assert_eq!(p[0], vec![Value::Int(1), Value::Int(10), Value::Int(7)]);
    }
}
