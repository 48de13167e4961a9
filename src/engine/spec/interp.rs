//! `${...}` interpolation.
//!
//! A string is parsed once into a [`Template`] of literal text and references. References
//! name a namespace and a dotted path: `${params.n}`, `${params.model.lr}`, `${sweep.lr}`,
//! `${inputs.src}`, `${outputs.table}`, `${seed}`. `$${` writes a literal `${`.
//! A YAML value that is exactly one reference keeps the referenced value's type; a reference
//! inside a longer string is rendered into the string ([`crate::engine::value::Value::render`]).
//!
//! In a `command` stage's `cmd`, every substituted value is shell-quoted (a list becomes one
//! quoted word per element), so a value with a space, a quote, `;` or `$(...)` reaches the
//! program as one argument and never changes the command. `${raw:params.x}` (any namespace)
//! pastes the text unquoted, for those who want the shell to split or interpret it.

use std::fmt;

use super::source::Loc;

/// The namespaces a reference can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ns {
    Params,
    Sweep,
    Inputs,
    Outputs,
    Seed,
}

impl Ns {
    pub const ALL: [&'static str; 5] = ["params", "sweep", "inputs", "outputs", "seed"];

    fn parse(s: &str) -> Option<Ns> {
        Some(match s {
            "params" => Ns::Params,
            "sweep" => Ns::Sweep,
            "inputs" => Ns::Inputs,
            "outputs" => Ns::Outputs,
            "seed" => Ns::Seed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Ns::Params => "params",
            Ns::Sweep => "sweep",
            Ns::Inputs => "inputs",
            Ns::Outputs => "outputs",
            Ns::Seed => "seed",
        }
    }
}

/// One `${ns.path}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub ns: Ns,
    /// Dotted path after the namespace (empty for `${seed}`).
    pub path: Vec<String>,
    pub loc: Option<Loc>,
    /// `${raw:...}`: in a command, paste the value without shell quoting.
    pub raw: bool,
}

impl Ref {
    /// First path component (the param, axis or port name).
    pub fn head(&self) -> &str {
        self.path.first().map(String::as_str).unwrap_or("")
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = if self.raw { RAW_PREFIX } else { "" };
        if self.path.is_empty() {
            write!(f, "${{{raw}{}}}", self.ns.as_str())
        } else {
            write!(f, "${{{raw}{}.{}}}", self.ns.as_str(), self.path.join("."))
        }
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Ref(Ref),
}

/// A parsed string with references.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pub parts: Vec<Part>,
}

/// A malformed reference: what is wrong and where (character offset inside the string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpError {
    pub offset: usize,
    pub len: usize,
    pub message: String,
    pub help: Option<String>,
}

impl Template {
    /// Parse `s`. `loc` is where the string starts (for one-line scalars, offsets are exact).
    pub fn parse(s: &str, loc: Option<Loc>) -> Result<Template, InterpError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '$' && chars.get(i + 1) == Some(&'$') && chars.get(i + 2) == Some(&'{') {
                lit.push_str("${");
                i += 3;
                continue;
            }
            if chars[i] == '$' && chars.get(i + 1) == Some(&'{') {
                let Some(close) = chars[i + 2..].iter().position(|&c| c == '}') else {
                    return Err(InterpError {
                        offset: i,
                        len: chars.len() - i,
                        message: "unterminated `${` reference".into(),
                        help: Some("close it with `}`, or write `$${` for a literal `${`".into()),
                    });
                };
                let inner: String = chars[i + 2..i + 2 + close].iter().collect();
                let len = close + 3;
                let r = parse_ref(&inner, loc.map(|l| l.shifted(i, len))).map_err(|(message, help)| InterpError {
                    offset: i,
                    len,
                    message,
                    help,
                })?;
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Ref(r));
                i += len;
                continue;
            }
            lit.push(chars[i]);
            i += 1;
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// The reference if the template is exactly one reference.
    pub fn single_ref(&self) -> Option<&Ref> {
        match self.parts.as_slice() {
            [Part::Ref(r)] => Some(r),
            _ => None,
        }
    }

    pub fn refs(&self) -> impl Iterator<Item = &Ref> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Lit(_) => None,
        })
    }

    /// References of a shell command that stand inside quotes the user wrote (`'${params.x}'`,
    /// `"${sweep.y}"`), where the value's own quoting would be wrong: inside `'...'` it ends the
    /// user's quote, inside `"..."` command substitution in the value would still run. `$(...)`
    /// starts a fresh context even inside double quotes. `${raw:...}` and `${seed}` are exempt.
    pub fn refs_inside_shell_quotes(&self) -> Vec<&Ref> {
        #[derive(Clone, Copy, PartialEq)]
        enum Ctx {
            Plain,
            Single,
            Double,
        }
        let mut stack = vec![Ctx::Plain];
        let mut out = Vec::new();
        for p in &self.parts {
            match p {
                Part::Ref(r) => {
                    let top = *stack.last().unwrap_or(&Ctx::Plain);
                    if top != Ctx::Plain && !r.raw && r.ns != Ns::Seed {
                        out.push(r);
                    }
                }
                Part::Lit(text) => {
                    let chars: Vec<char> = text.chars().collect();
                    let mut i = 0;
                    while i < chars.len() {
                        let c = chars[i];
                        let top = *stack.last().unwrap_or(&Ctx::Plain);
                        match (top, c) {
                            (Ctx::Single, '\'') => {
                                stack.pop();
                            }
                            (Ctx::Single, _) => {}
                            (_, '\\') => i += 1,
                            (Ctx::Plain, '\'') => stack.push(Ctx::Single),
                            (Ctx::Plain, '"') => stack.push(Ctx::Double),
                            (Ctx::Double, '"') => {
                                stack.pop();
                            }
                            (_, '$') if chars.get(i + 1) == Some(&'(') => {
                                stack.push(Ctx::Plain);
                                i += 1;
                            }
                            (Ctx::Plain, ')') if stack.len() > 1 => {
                                stack.pop();
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                }
            }
        }
        out
    }

    pub fn has_refs(&self) -> bool {
        self.refs().next().is_some()
    }

    /// Render, asking `f` for each reference's text. `f` returns `None` to keep the
    /// reference as `${...}` text (used to leave input/output paths symbolic).
    pub fn render_with<E>(&self, mut f: impl FnMut(&Ref) -> Result<Option<String>, E>) -> Result<String, E> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(&s.replace("${", "$${")),
                Part::Ref(r) => match f(r)? {
                    // Substituted text is escaped too: a value containing `${` stays literal.
                    Some(text) => out.push_str(&text.replace("${", "$${")),
                    None => out.push_str(&r.to_string()),
                },
            }
        }
        Ok(out)
    }

    /// Render to final text: literal `$${` becomes `${`.
    pub fn render_final<E>(&self, mut f: impl FnMut(&Ref) -> Result<String, E>) -> Result<String, E> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Ref(r) => out.push_str(&f(r)?),
            }
        }
        Ok(out)
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `${raw:params.x}`: the reference, pasted into a command without quoting.
pub const RAW_PREFIX: &str = "raw:";

fn parse_ref(inner: &str, loc: Option<Loc>) -> Result<Ref, (String, Option<String>)> {
    let inner = inner.trim();
    let (raw, inner) = match inner.strip_prefix(RAW_PREFIX) {
        Some(rest) => (true, rest.trim_start()),
        None => (false, inner),
    };
    let mut it = inner.split('.');
    let ns_text = it.next().unwrap_or("");
    let Some(ns) = Ns::parse(ns_text) else {
        let help = super::diag::suggest(ns_text, &Ns::ALL, "namespaces");
        return Err((format!("unknown reference namespace `{ns_text}` in `${{{inner}}}`"), Some(help)));
    };
    let path: Vec<String> = it.map(str::to_string).collect();
    if ns == Ns::Seed {
        if !path.is_empty() {
            return Err(("`${seed}` takes no path".into(), Some("write `${seed}`".into())));
        }
    } else if path.is_empty() || !path.iter().all(|p| is_name(p)) {
        return Err((
            format!("malformed reference `${{{inner}}}`"),
            Some(format!("write `${{{}.NAME}}` with NAME made of letters, digits, `_` or `-`", ns.as_str())),
        ));
    }
    if matches!(ns, Ns::Inputs | Ns::Outputs | Ns::Sweep) && path.len() > 1 {
        return Err((
            format!("`${{{inner}}}`: {} references take a single name", ns.as_str()),
            Some(format!("write `${{{}.{}}}`", ns.as_str(), path[0])),
        ));
    }
    Ok(Ref { ns, path, loc, raw })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_inside_shell_quotes_are_found() {
        let inside = |cmd: &str| -> Vec<String> {
            Template::parse(cmd, None).unwrap().refs_inside_shell_quotes().iter().map(|r| r.to_string()).collect()
        };
        assert_eq!(inside("tool '${params.a}' \"x ${sweep.b}\" ${params.c}"), ["${params.a}", "${sweep.b}"]);
        assert!(inside("echo \"$(cat ${inputs.src}) done\" ${params.x}").is_empty(), "$(...) starts afresh");
        assert_eq!(inside("echo \"$(cat ${inputs.src}) ${params.lr}\""), ["${params.lr}"]);
        assert!(inside("echo '${raw:params.a}' \"${seed}\" it\\'s ${params.b}").is_empty());
        assert!(inside("awk '{print $1}' ${inputs.src}").is_empty());
    }

    #[test]
    fn raw_prefix_parses_and_prints_back() {
        let t = Template::parse("run ${raw:params.flags} ${params.x}", None).unwrap();
        let refs: Vec<&Ref> = t.refs().collect();
        assert!(refs[0].raw && !refs[1].raw);
        assert_eq!(refs[0].path, ["flags"]);
        assert_eq!(refs[0].to_string(), "${raw:params.flags}");
        assert_eq!(t.render_with(|_| Ok::<_, ()>(None)).unwrap(), "run ${raw:params.flags} ${params.x}");
        assert!(Template::parse("${raw:bogus.x}", None).is_err());
    }

    #[test]
    fn parses_refs_and_literals() {
        let t = Template::parse("python3 a.py --n ${params.n} ${outputs.table}", None).unwrap();
        let refs: Vec<String> = t.refs().map(|r| r.to_string()).collect();
        assert_eq!(refs, ["${params.n}", "${outputs.table}"]);
        assert!(t.single_ref().is_none());
        assert!(Template::parse("${sweep.lr}", None).unwrap().single_ref().is_some());
    }

    #[test]
    fn escape_keeps_literal() {
        let t = Template::parse("echo $${HOME} ${seed}", None).unwrap();
        let s = t.render_final(|_| Ok::<_, ()>("7".into())).unwrap();
        assert_eq!(s, "echo ${HOME} 7");
        let partial = t.render_with(|_| Ok::<_, ()>(None)).unwrap();
        assert_eq!(partial, "echo $${HOME} ${seed}");
        let again = Template::parse(&partial, None).unwrap();
        assert_eq!(again, t);
    }

    #[test]
    fn errors_point_at_the_reference() {
        let e = Template::parse("ab ${parms.n}", None).unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.help.unwrap().contains("params"));
        let e = Template::parse("x ${params.n", None).unwrap_err();
        assert!(e.message.contains("unterminated"));
    }
}
