//! Spec errors: collected, sorted, rendered once with miette.
//!
//! Each error has a stable code (documented in docs/errors/), a message that says what was
//! found and what was expected, an optional location, and an optional help line (usually a
//! did-you-mean or the fix). [`SpecErrors`] holds every error of a load, sorted by position.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

use super::source::{Loc, Sources};

/// One problem in a pipeline spec.
#[derive(Debug, Clone)]
pub struct SpecError {
    pub code: &'static str,
    pub message: String,
    pub loc: Option<Loc>,
    pub label: String,
    pub help: Option<String>,
}

impl SpecError {
    pub fn new(code: &'static str, loc: Option<Loc>, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), loc, label: String::new(), help: None }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }
}

/// Every error found while loading a pipeline.
#[derive(Debug)]
pub struct SpecErrors {
    pub sources: Arc<Sources>,
    pub errors: Vec<SpecError>,
}

impl SpecErrors {
    pub fn new(sources: Arc<Sources>, mut errors: Vec<SpecError>) -> Self {
        errors.sort_by(|a, b| a.loc.cmp(&b.loc).then_with(|| a.message.cmp(&b.message)));
        errors.dedup_by(|a, b| a.loc == b.loc && a.message == b.message);
        Self { sources, errors }
    }

    /// One miette diagnostic per error, each with its own source snippet.
    pub fn diagnostics(&self) -> Vec<RenderedSpecError> {
        self.errors
            .iter()
            .map(|e| {
                let (src, span, header) = match e.loc.and_then(|l| self.sources.get(l.source).map(|f| (l, f))) {
                    Some((loc, file)) => {
                        let start = file.offset(loc.line, loc.column);
                        let end = file.offset(loc.line, loc.column + loc.len.max(1)).max(start);
                        let src = NamedSource::new(file.display.clone(), file.text.clone());
                        (Some(src), Some((start, end - start)), Some(loc.render(&self.sources)))
                    }
                    None => (None, None, None),
                };
                RenderedSpecError { error: e.clone(), src, span, header }
            })
            .collect()
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(f, "the pipeline spec has {n} error{}", if n == 1 { "" } else { "s" })
    }
}

/// A spec error ready for miette: message prefixed with `file:line:column`.
#[derive(Debug)]
pub struct RenderedSpecError {
    error: SpecError,
    src: Option<NamedSource<Arc<String>>>,
    span: Option<(usize, usize)>,
    header: Option<String>,
}

impl fmt::Display for RenderedSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.header {
            Some(h) => write!(f, "{h}: {}", self.error.message),
            None => f.write_str(&self.error.message),
        }
    }
}

impl std::error::Error for RenderedSpecError {}

impl Diagnostic for RenderedSpecError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.error.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.error.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.src.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (start, len) = self.span?;
        let label = if self.error.label.is_empty() { None } else { Some(self.error.label.clone()) };
        Some(Box::new(std::iter::once(LabeledSpan::new(label, start, len))))
    }
}

/// `Some("did you mean `x`?")` when a candidate is close to `got`.
pub fn did_you_mean<'a>(got: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        // One edit (insert, delete, substitute or swap) always counts as close, so short names
        // (`scr` for `src`) get a suggestion too; otherwise a Jaro-Winkler similarity.
        let one_edit = strsim::damerau_levenshtein(got, c) <= 1;
        let score = if one_edit { 1.0 + strsim::jaro_winkler(got, c) } else { strsim::jaro_winkler(got, c) };
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// A help line listing the valid choices, with a did-you-mean first when one is close.
pub fn suggest(got: &str, candidates: &[&str], what: &str) -> String {
    let list = if candidates.is_empty() {
        format!("there are no {what}")
    } else {
        let shown: Vec<String> = candidates.iter().take(12).map(|c| format!("`{c}`")).collect();
        let more = if candidates.len() > 12 { format!(" and {} more", candidates.len() - 12) } else { String::new() };
        format!("{what}: {}{more}", shown.join(", "))
    };
    match did_you_mean(got, candidates.iter().copied()) {
        Some(d) => format!("{d} ({list})"),
        None => list,
    }
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggests_short_names_one_edit_away() {
        assert_eq!(did_you_mean("scr", ["src", "out"]).as_deref(), Some("did you mean `src`?"));
        assert_eq!(did_you_mean("cmdd", ["cmd", "kind"]).as_deref(), Some("did you mean `cmd`?"));
        assert_eq!(did_you_mean("zzz", ["src", "out"]), None);
    }
}
