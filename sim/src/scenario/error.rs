//! Scenario errors: a path into the scenario (`policy.keep_alive_s`) and a message, rendered with
//! the file, line and column it points at and the offending line.

use std::fmt;
use std::path::PathBuf;

/// One step of a path into the scenario document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path into the scenario document, displayed as `functions[2].profile.weights_mib`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocPath(pub Vec<Seg>);

impl DocPath {
    /// Parses `a.b[2].c` (also accepts `a.b.2.c`).
    pub fn parse(text: &str) -> Option<DocPath> {
        let mut segs = Vec::new();
        for part in text.split('.') {
            let (key, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if key.is_empty() && rest.is_empty() {
                return None;
            }
            if !key.is_empty() {
                match key.parse::<usize>() {
                    Ok(n) if !segs.is_empty() => segs.push(Seg::Index(n)),
                    _ => segs.push(Seg::Key(key.to_string())),
                }
            }
            while let Some(stripped) = rest.strip_prefix('[') {
                let close = stripped.find(']')?;
                segs.push(Seg::Index(stripped[..close].parse().ok()?));
                rest = &stripped[close + 1..];
            }
            if !rest.is_empty() {
                return None;
            }
        }
        (!segs.is_empty()).then_some(DocPath(segs))
    }

    /// This path with `more` appended.
    pub fn join(&self, more: &DocPath) -> DocPath {
        DocPath(self.0.iter().chain(&more.0).cloned().collect())
    }

    /// This path with one key appended.
    pub fn key(&self, k: &str) -> DocPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    /// This path with one index appended.
    pub fn index(&self, i: usize) -> DocPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// True when `self` starts with `prefix`.
    pub fn starts_with(&self, prefix: &DocPath) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

impl fmt::Display for DocPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A scenario field is invalid: where, and what would be valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: DocPath,
    pub message: String,
    /// Point at the key (an unknown field) rather than its value.
    pub at_key: bool,
}

impl ConfigError {
    /// An error about the value at `path`.
    pub fn at(path: DocPath, message: impl Into<String>) -> Self {
        ConfigError {
            path,
            message: message.into(),
            at_key: false,
        }
    }
}

/// A scenario could not be loaded, with its location resolved.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{}: cannot read the scenario: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An error located in the file.
    #[error("{}:{line}:{column}: {what}{snippet}", file.display())]
    At {
        file: PathBuf,
        line: usize,
        column: usize,
        what: String,
        snippet: String,
    },
    /// An error in an override: `set` says where it came from (`--set KEY=VALUE`, or a sweep
    /// axis value).
    #[error("{}: in {set}: {what}", file.display())]
    Set { file: PathBuf, set: String, what: String },
    /// A trace the scenario names could not be read (the message names its file and line).
    #[error("{0}")]
    Trace(String),
    /// An error whose place in the file could not be found.
    #[error("{}: {what}", file.display())]
    File { file: PathBuf, what: String },
}
