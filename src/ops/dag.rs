//! `pipeline dag FILE --format dot|mermaid`: the instance graph (or the stage graph with
//! `--stages`) as text for Graphviz or Mermaid.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{Context, OpError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DagFormat {
    Dot,
    Mermaid,
}

pub struct DagOpts {
    pub file: PathBuf,
    pub format: DagFormat,
    pub stages: bool,
}

pub fn dag(ctx: &Context, opts: &DagOpts) -> Result<(), OpError> {
    let dag = ctx.load(&opts.file)?;
    let (nodes, edges): (Vec<String>, BTreeSet<(usize, usize)>) = if opts.stages {
        let nodes = dag.pipeline.stages.iter().map(|s| s.name.clone()).collect();
        let edges = dag
            .pipeline
            .stages
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.needs.iter().map(move |n| (n.stage, i)))
            .collect();
        (nodes, edges)
    } else {
        let nodes = dag.instances.iter().map(|i| i.name.clone()).collect();
        let edges =
            dag.instances.iter().enumerate().flat_map(|(i, inst)| inst.upstream.iter().map(move |&u| (u, i))).collect();
        (nodes, edges)
    };
    let p = &ctx.printer;
    match opts.format {
        DagFormat::Dot => {
            p.out(&format!("digraph {} {{", dot_id(&dag.pipeline.name)));
            p.out("  rankdir=LR;");
            p.out("  node [shape=box];");
            for (i, n) in nodes.iter().enumerate() {
                p.out(&format!("  n{i} [label={}];", dot_id(n)));
            }
            for (a, b) in &edges {
                p.out(&format!("  n{a} -> n{b};"));
            }
            p.out("}");
        }
        DagFormat::Mermaid => {
            p.out("flowchart LR");
            for (i, n) in nodes.iter().enumerate() {
                p.out(&format!("  n{i}[\"{}\"]", n.replace('"', "#quot;")));
            }
            for (a, b) in &edges {
                p.out(&format!("  n{a} --> n{b}"));
            }
        }
    }
    Ok(())
}

/// A DOT quoted string: `"` and `\\` escaped, nothing else touched.
fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
