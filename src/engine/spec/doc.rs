//! Files and `extends`: reads the main file and everything it extends into one merged
//! [`Doc`] of raw (still YAML) stage nodes, global params and the whole-pipeline sweep.
//!
//! Merge rules: bases are merged first (a stage or a param defined differently by two bases
//! is an error), then the extending file applies on top: its params override the bases', its
//! `sweep:` replaces theirs, a stage it defines with a `kind:` replaces the base stage, and a
//! stage it lists without `kind:` is a patch that may override `params` and `seed` only.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;

use super::diag::{SpecError, did_you_mean};
use super::source::{Loc, Sources, normalize};
use super::yaml::{check_keys, check_name, key_loc, load_file, node_loc, node_value, type_error};
use crate::engine::value::Value;

pub const TOP_KEYS: &[&str] = &["name", "doc", "extends", "params", "seed", "sweep", "stages"];

/// A stage as found in YAML, with the patches that extending files apply to it.
#[derive(Debug, Clone)]
pub struct RawStage {
    pub name: String,
    pub loc: Option<Loc>,
    pub node: MarkedMappingNode,
    /// Directory of the defining file.
    pub dir: PathBuf,
    pub patches: Vec<MarkedMappingNode>,
}

/// The merged content of a file and its bases.
#[derive(Debug, Default)]
pub struct Doc {
    pub name: Option<String>,
    pub params: BTreeMap<String, (Value, Option<Loc>)>,
    /// Params that an extending file added (not defined by any base): must be used by a stage.
    pub added_params: Vec<(String, Option<Loc>)>,
    pub seed: Option<Node>,
    pub sweep: Option<Node>,
    pub stages: Vec<RawStage>,
    /// Values that two bases set differently, keyed `params.NAME` or `seed`: an error unless
    /// the extending file sets them itself.
    pub conflicts: BTreeMap<String, SpecError>,
    /// Stage name -> index in `stages` (pipelines with 10^4 stages make a linear search quadratic).
    pub index: HashMap<String, usize>,
}

impl Doc {
    fn push_stage(&mut self, stage: RawStage) {
        self.index.insert(stage.name.clone(), self.stages.len());
        self.stages.push(stage);
    }
}

/// Load `path` and, recursively, what it extends.
pub fn load_doc(
    path: &Path,
    sources: &mut Sources,
    errors: &mut Vec<SpecError>,
    from: Option<Loc>,
    chain: &mut Vec<PathBuf>,
) -> Option<Doc> {
    if let Some(pos) = chain.iter().position(|p| p == path) {
        let mut cycle: Vec<String> = chain[pos..].iter().map(|p| super::source::display_path(p)).collect();
        cycle.push(super::source::display_path(path));
        errors.push(
            SpecError::new("E005", from, format!("`extends` forms a cycle: {}", cycle.join(" -> ")))
                .label("extends a file that extends this one")
                .help("remove one `extends` entry of the cycle"),
        );
        return None;
    }
    let (source, mut map) = load_file(path, sources, errors, from)?;
    let dir = sources.files[source].dir().to_path_buf();
    check_keys(&map, TOP_KEYS, "the pipeline file (top level)", errors);

    chain.push(path.to_path_buf());
    let mut doc = Doc::default();
    let mut has_base = false;
    if let Some(ext) = map.get_node("extends") {
        let entries: Vec<&Node> = match ext {
            Node::Sequence(s) => s.iter().collect(),
            other => vec![other],
        };
        for e in entries {
            let Some(s) = e.as_scalar() else {
                errors.push(type_error(e, "extends", "a file path or a list of file paths"));
                continue;
            };
            let base_path = normalize(&dir.join(s.as_str()));
            if let Some(base) = load_doc(&base_path, sources, errors, node_loc(e), chain) {
                has_base = true;
                merge_base(&mut doc, base, sources, errors);
            }
        }
    }
    chain.pop();

    if let Some(n) = map.get_node("name") {
        match n.as_scalar() {
            Some(s) if super::yaml::is_name(s.as_str()) => doc.name = Some(s.as_str().to_string()),
            _ => errors.push(type_error(n, "name", "a pipeline name (letters, digits, `_`, `-`)")),
        }
    }
    if let Some(n) = map.get_node("params") {
        match n.as_mapping() {
            Some(m) => {
                for (k, v) in m.iter() {
                    let name = k.as_str().to_string();
                    if !check_name(k, "param", errors) {
                        continue;
                    }
                    if let Some(s) = v.as_scalar()
                        && s.as_str().contains("${")
                    {
                        errors.push(
                            SpecError::new(
                                "E021",
                                node_loc(v),
                                format!("global param `{name}` contains a `${{...}}` reference"),
                            )
                            .help("global params are plain values; reference them from stage params or commands"),
                        );
                        continue;
                    }
                    if has_base && !doc.params.contains_key(&name) {
                        doc.added_params.push((name.clone(), key_loc(k)));
                    }
                    doc.conflicts.remove(&format!("params.{name}"));
                    doc.params.insert(name, (node_value(v), node_loc(v)));
                }
            }
            None => errors.push(type_error(n, "params", "a mapping of param names to values")),
        }
    }
    if let Some(n) = map.get_node("seed") {
        doc.conflicts.remove("seed");
        doc.seed = Some(n.clone());
    }
    if let Some(n) = map.get_node("sweep") {
        doc.sweep = Some(n.clone());
    }
    // Stage bodies are moved out of the tree, not cloned: a pipeline may have 10^4 stages.
    let stages_node = map.remove("stages");
    match stages_node {
        Some(Node::Mapping(mut stages)) => {
            for (k, v) in std::mem::take(&mut *stages) {
                let k = &k;
                if !check_name(k, "stage", errors) {
                    continue;
                }
                let name = k.as_str().to_string();
                let body = match v {
                    Node::Mapping(body) => body,
                    other => {
                        errors.push(type_error(
                            &other,
                            &format!("stages.{name}"),
                            "a mapping with `kind:` and the stage's fields",
                        ));
                        continue;
                    }
                };
                let existing = doc.index.get(&name).copied();
                match existing {
                    Some(i) if body.get_node("kind").is_none() => {
                        check_keys(
                            &body,
                            &["params", "seed"],
                            &format!(
                                "stage `{name}` (a patch of the stage defined in an extended file; give it a `kind:` to replace it instead)"
                            ),
                            errors,
                        );
                        doc.stages[i].patches.push(body);
                    }
                    Some(i) => {
                        doc.stages[i] =
                            RawStage { name, loc: key_loc(k), node: body, dir: dir.clone(), patches: Vec::new() };
                    }
                    None => {
                        if body.get_node("kind").is_none() {
                            let mut e = SpecError::new("E013", key_loc(k), format!("stage `{name}` has no `kind`"))
                                .label("missing `kind:`")
                                .help(
                                    "add `kind: command` (with `cmd:`) or a built-in kind; `pipeline kinds` lists them",
                                );
                            if has_base {
                                let names: Vec<&str> = doc.stages.iter().map(|s| s.name.as_str()).collect();
                                if let Some(d) = did_you_mean(&name, names) {
                                    e = e.help(format!(
                                        "{d} (a stage without `kind:` patches a stage of the extended file)"
                                    ));
                                }
                            }
                            errors.push(e);
                            continue;
                        }
                        doc.push_stage(RawStage {
                            name,
                            loc: key_loc(k),
                            node: body,
                            dir: dir.clone(),
                            patches: Vec::new(),
                        });
                    }
                }
            }
        }
        Some(other) => errors.push(type_error(&other, "stages", "a mapping of stage names to stages")),
        None if !has_base => errors.push(
            SpecError::new("E014", Loc::of_span(map.span(), 1), "the pipeline has no `stages:`")
                .help("add `stages:` with at least one stage, or `extends:` another pipeline"),
        ),
        None => {}
    }
    if chain.is_empty() {
        // The main file: conflicts between its bases that it did not settle are errors.
        errors.extend(std::mem::take(&mut doc.conflicts).into_values());
    }
    Some(doc)
}

/// The same stage of the same file (the same place in it), with the same patches.
fn same_definition(a: &RawStage, b: &RawStage, sources: &Sources) -> bool {
    let place = |s: &RawStage| s.loc.map(|l| (sources.files[l.source].path.clone(), l.line, l.column));
    let patches =
        |s: &RawStage| -> Vec<Value> { s.patches.iter().map(|p| node_value(&Node::Mapping(p.clone()))).collect() };
    place(a).is_some() && place(a) == place(b) && patches(a) == patches(b)
}

fn merge_base(doc: &mut Doc, base: Doc, sources: &Sources, errors: &mut Vec<SpecError>) {
    for (name, (value, loc)) in base.params {
        if let Some((prev, _)) = doc.params.get(&name)
            && prev != &value
        {
            let e = SpecError::new(
                "E022",
                loc,
                format!("param `{name}` has different values in two extended files ({prev} and {value})"),
            )
            .help("set it once in the extending file's `params:`");
            doc.conflicts.insert(format!("params.{name}"), e);
            continue;
        }
        doc.params.insert(name, (value, loc));
    }
    doc.added_params.extend(base.added_params);
    doc.conflicts.extend(base.conflicts);
    for stage in base.stages {
        if let Some(&i) = doc.index.get(&stage.name) {
            // Two bases that extend one common file (a diamond) bring the same definition
            // twice: that is one stage, unless they patch it differently.
            if same_definition(&doc.stages[i], &stage, sources) {
                continue;
            }
            errors.push(
                SpecError::new("E015", stage.loc, format!("stage `{}` is defined by two extended files", stage.name))
                    .help("rename one of them (a stage of a file that both extend is fine, unless they patch it differently)"),
            );
            continue;
        }
        doc.push_stage(stage);
    }
    if base.sweep.is_some() {
        if doc.sweep.is_some() {
            errors.push(
                SpecError::new(
                    "E023",
                    base.sweep.as_ref().and_then(node_loc),
                    "two extended files both define a whole-pipeline `sweep:`",
                )
                .help("define the sweep in the extending file instead"),
            );
        }
        doc.sweep = base.sweep;
    }
    if let Some(seed) = base.seed {
        let text = |n: &Node| n.as_scalar().map(|s| s.as_str().to_string());
        if let Some(prev) = doc.seed.as_ref().filter(|prev| text(prev) != text(&seed)) {
            let e = SpecError::new("E022", node_loc(&seed), "two extended files set different `seed:` values").help(
                format!(
                    "set `seed:` once in the extending file (the other file has {})",
                    text(prev).unwrap_or_else(|| "a non-scalar".into())
                ),
            );
            doc.conflicts.insert("seed".into(), e);
        }
        doc.seed = Some(seed);
    }
}
