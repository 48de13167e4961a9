//! Sweep points: the grid of all axes, zipped groups advancing together, excluded points
//! removed. Points come out in a fixed order (first axis slowest), so instance order and every
//! derived listing is deterministic.

use super::model::Sweep;
use crate::engine::value::Value;

impl Sweep {
    /// Every point, as values aligned with `self.axes`. Assumes a validated sweep (zip groups
    /// name existing axes, each axis in at most one group, equal lengths inside a group).
    pub fn points(&self) -> Vec<Vec<Value>> {
        // Groups of axis indices, ordered by their first axis.
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
        let lens: Vec<usize> = groups.iter().map(|g| self.axes[g[0]].1.len()).collect();
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

    fn excluded(&self, point: &[Value]) -> bool {
        self.exclude.iter().any(|ex| {
            ex.iter().all(|(axis, v)| self.axes.iter().position(|(n, _)| n == axis).is_some_and(|i| &point[i] == v))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ints(v: &[i64]) -> Vec<Value> {
        v.iter().map(|&i| Value::Int(i)).collect()
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
