//! The stage graph: edges from each upstream stage to the stages that need it. Cycles are
//! reported by naming the stages on the cycle in order; the topological order is Kahn's with
//! the lowest definition index first, so it is deterministic and close to file order.

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::engine::spec::{Pipeline, SpecError};

/// Stages in topological order, or one error per cycle.
pub fn topo_order(p: &Pipeline) -> Result<Vec<usize>, Vec<SpecError>> {
    let mut g: DiGraph<usize, ()> = DiGraph::with_capacity(p.stages.len(), p.stages.len());
    let nodes: Vec<NodeIndex> = (0..p.stages.len()).map(|i| g.add_node(i)).collect();
    for (i, s) in p.stages.iter().enumerate() {
        for n in &s.needs {
            g.update_edge(nodes[n.stage], nodes[i], ());
        }
    }
    let mut errors = Vec::new();
    for scc in tarjan_scc(&g) {
        let cyclic = scc.len() > 1 || g.contains_edge(scc[0], scc[0]);
        if !cyclic {
            continue;
        }
        let members: Vec<usize> = scc.iter().map(|n| g[*n]).collect();
        let cycle = walk_cycle(p, &members);
        let first = cycle[0];
        let loc =
            p.stages[first].needs.iter().find(|n| cycle.contains(&n.stage)).and_then(|n| n.loc).or(p.stages[first].loc);
        let mut names: Vec<&str> = cycle.iter().map(|&i| p.stages[i].name.as_str()).collect();
        names.push(names[0]);
        // Printed in data-flow order: each stage needs the one before it.
        names.reverse();
        errors.push(
            SpecError::new("E069", loc, format!("stages form a cycle: {}", names.join(" -> ")))
                .label("this need closes the cycle")
                .help("a stage cannot depend on its own output; remove one of these `needs`"),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Kahn's algorithm, lowest index first.
    let mut indeg: Vec<usize> = vec![0; p.stages.len()];
    let mut down: Vec<Vec<usize>> = vec![Vec::new(); p.stages.len()];
    for (i, s) in p.stages.iter().enumerate() {
        let mut ups: Vec<usize> = s.needs.iter().map(|n| n.stage).collect();
        ups.sort_unstable();
        ups.dedup();
        indeg[i] = ups.len();
        for u in ups {
            down[u].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..p.stages.len()).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(p.stages.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &down[i] {
            indeg[d] -= 1;
            if indeg[d] == 0 {
                ready.insert(d);
            }
        }
    }
    Ok(order)
}

/// Follow `needs` edges inside a strongly connected set until a stage repeats.
fn walk_cycle(p: &Pipeline, members: &[usize]) -> Vec<usize> {
    let start = *members.iter().min().unwrap_or(&0);
    let mut path = vec![start];
    let mut cur = start;
    loop {
        let Some(next) = p.stages[cur].needs.iter().map(|n| n.stage).filter(|s| members.contains(s)).min() else {
            return path;
        };
        if let Some(pos) = path.iter().position(|&s| s == next) {
            return path[pos..].to_vec();
        }
        path.push(next);
        cur = next;
    }
}
