//! The contract between the engine and a built-in stage kind.
//!
//! A kind is a value implementing [`Stage`]. The engine validates the YAML, resolves params
//! and inputs, computes the cache key (which includes [`Stage::version`], so bumping the version
//! invalidates every cached result of the kind), creates a private output directory, and calls
//! [`Stage::run`]. The stage reads its inputs, writes each declared output port to the path it
//! is given, and returns. The engine then checks that every output exists, digests it and
//! commits the directory to the cache atomically; a stage never touches the cache itself.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// One input or output port of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Port name, as used in `needs:` and `${inputs.NAME}` / `${outputs.NAME}`.
    pub name: &'static str,
    /// File name of the output inside the stage directory (ignored for inputs).
    pub file: &'static str,
    /// One line for `pipeline kinds` and the stage reference.
    pub doc: &'static str,
    /// An input the stage may run without (never set on outputs).
    pub optional: bool,
}

impl PortSpec {
    /// A required input port.
    pub const fn input(name: &'static str, doc: &'static str) -> PortSpec {
        PortSpec { name, file: "", doc, optional: false }
    }

    /// An input port the stage can run without; the kind says what changes when it is absent.
    pub const fn optional(name: &'static str, doc: &'static str) -> PortSpec {
        PortSpec { name, file: "", doc, optional: true }
    }

    /// An output port written to `file` inside the stage directory.
    pub const fn output(name: &'static str, file: &'static str, doc: &'static str) -> PortSpec {
        PortSpec { name, file, doc, optional: false }
    }
}

/// What a kind declares about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageInfo {
    pub kind: &'static str,
    pub doc: &'static str,
    /// Names of the params the kind accepts; any other key is a spec error.
    pub params: Vec<&'static str>,
    pub inputs: Vec<PortSpec>,
    pub outputs: Vec<PortSpec>,
}

/// Everything a stage run may use. Params arrive as JSON values with defaults not yet applied;
/// the kind applies its own defaults and rejects bad values with a [`StageError::Param`].
pub struct StageContext<'a> {
    pub params: &'a serde_json::Map<String, serde_json::Value>,
    pub seed: u64,
    /// Directory of the pipeline file that defines the stage: relative paths in params are
    /// relative to it.
    pub dir: &'a std::path::Path,
    /// Input port -> file (single input) or directory with `axis=value/` sub-directories (gather).
    pub inputs: &'a BTreeMap<String, PathBuf>,
    /// Output port -> path the stage must create.
    pub outputs: &'a BTreeMap<String, PathBuf>,
    /// The stage log; whatever is written here is kept with the result.
    pub log: &'a mut dyn Write,
}

/// Why a stage run failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A param has the wrong type or value: names the field, what was expected, and a fix.
    #[error("param `{field}`: {message}")]
    Param { field: String, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Failed(String),
}

/// A built-in stage kind.
pub trait Stage: Send + Sync {
    /// What the kind declares: name, params, ports.
    fn info(&self) -> StageInfo;
    /// Implementation version; enters the cache key. Bump it whenever results would change.
    fn version(&self) -> u32;
    /// Params whose string value names a file (relative to the pipeline file) that the stage
    /// reads: the engine hashes the file's content into the stage's key, so editing the file
    /// reruns the stage without the user also listing it in `deps`.
    fn path_params(&self) -> &'static [&'static str] {
        &[]
    }
    /// Run the stage once.
    fn run(&self, ctx: &mut StageContext<'_>) -> Result<(), StageError>;
}
