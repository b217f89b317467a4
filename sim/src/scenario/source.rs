//! Loading: a scenario file's text, the `--set` overrides applied to its parsed table, and
//! deserialisation into the schema ([`file`](super::file)) with every error located — at a
//! file, line and column, or at the override that caused it. Validation is [`validate`]'s.

use super::error::{ConfigError, DocPath, ScenarioError, Seg};
use super::file::ScenarioFile;
use super::{Scenario, locate, refine, traced, validate};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Deserialises `value` into `T`, reporting errors with paths under `prefix`.
pub fn from_value<T: DeserializeOwned>(value: toml::Value, prefix: &DocPath) -> Result<T, ConfigError> {
    // Kept to find the key an error concerns: serde cannot see inside tagged enums.
    let original = value.clone();
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = prefix.clone();
        let mut inner = DocPath::default();
        for seg in e.path().iter() {
            let s = match seg {
                serde_path_to_error::Segment::Map { key } => Seg::Key(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Seg::Index(*index),
                _ => continue,
            };
            inner.0.push(s.clone());
            path.0.push(s);
        }
        // toml appends "in `table`" lines; the path already says where.
        let message = e.inner().to_string().lines().next().unwrap_or_default().to_string();
        if let Some(below) = refine::refine(&original, &inner, &message) {
            path.0.extend(below);
        }
        let at_key = message.starts_with("unknown field");
        ConfigError { path, message, at_key }
    })
}

/// A scenario file's text and the overrides given on the command line.
#[derive(Clone)]
pub struct ScenarioSource {
    pub file: PathBuf,
    pub text: String,
    /// Overrides in order: where each came from (`--set key=value`), its path and value.
    overrides: Vec<(String, DocPath, toml::Value)>,
}

impl ScenarioSource {
    /// Reads `file`.
    pub fn load(file: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(file).map_err(|source| ScenarioError::Io {
            file: file.to_owned(),
            source,
        })?;
        Ok(ScenarioSource {
            file: file.to_owned(),
            text,
            overrides: Vec::new(),
        })
    }

    /// A scenario from text (for tests and generated scenarios); `file` names it in errors.
    pub fn from_text(file: &Path, text: &str) -> Self {
        ScenarioSource {
            file: file.to_owned(),
            text: text.to_string(),
            overrides: Vec::new(),
        }
    }

    /// Adds a `key.path=value` override. The value is read as a TOML value (`3`, `1.5`, `true`,
    /// `"text"`, `[1, 2]`); anything that is not valid TOML is taken as a string.
    pub fn set(&mut self, assignment: &str) -> Result<(), ScenarioError> {
        let bad = |what: &str| ScenarioError::Set {
            file: self.file.clone(),
            set: format!("--set {assignment}"),
            what: what.to_string(),
        };
        let (key, raw) = assignment
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE, e.g. policy.keep_alive_s=60"))?;
        let path = DocPath::parse(key.trim())
            .ok_or_else(|| bad("the key must be a dotted path such as simulation.seed or functions[0].rate_per_s"))?;
        let raw = raw.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        self.overrides.push((format!("--set {assignment}"), path, value));
        Ok(())
    }

    /// Adds an override of `key` (a dotted path) with `value`; errors it causes name `origin`
    /// (e.g. "\[sweep\] axis `policy`, value 2").
    pub fn set_value(&mut self, origin: &str, key: &str, value: toml::Value) -> Result<(), ScenarioError> {
        let path = DocPath::parse(key.trim()).ok_or_else(|| ScenarioError::Set {
            file: self.file.clone(),
            set: origin.to_string(),
            what: format!("`{key}` is not a dotted path such as simulation.seed or functions[0].rate_per_s"),
        })?;
        self.overrides.push((origin.to_string(), path, value));
        Ok(())
    }

    /// A fingerprint of what this source simulates: its file's text and its overrides, and the
    /// tool's version (FNV-1a, 64 bits, the same on every platform). A sweep resumed with
    /// `--resume` reuses a run whose recorded fingerprint is this one. Trace files the scenario
    /// names are not read: a trace changed in place is not noticed.
    pub fn fingerprint(&self) -> String {
        use std::hash::Hasher;
        let mut h = gpushare_traces::rng::Fnv1a::default();
        let mut eat = |bytes: &[u8]| {
            h.write(bytes);
            h.write(&[0xff]);
        };
        eat(env!("CARGO_PKG_VERSION").as_bytes());
        eat(self.text.as_bytes());
        for (_, path, value) in &self.overrides {
            eat(path.to_string().as_bytes());
            eat(value.to_string().as_bytes());
        }
        let h = h.finish();
        format!("{h:016x}")
    }

    /// Where each override came from, in order (`--set key=value`, sweep axis values).
    pub fn override_origins(&self) -> Vec<&str> {
        self.overrides.iter().map(|(o, _, _)| o.as_str()).collect()
    }

    /// Resolves a [`ConfigError`] to the file location (or the `--set`) it concerns.
    pub fn locate(&self, err: ConfigError) -> ScenarioError {
        let what = format!("{}: {}", err.path, err.message);
        // An override's error lies under the key it sets, or is about that key itself (a key the
        // scenario has no place for: `unknown field` at one of its ancestors).
        let from_override = |p: &DocPath| err.path.starts_with(p) || (err.at_key && p.starts_with(&err.path));
        if let Some((raw, _, _)) = self.overrides.iter().rev().find(|(_, p, _)| from_override(p)) {
            return ScenarioError::Set {
                file: self.file.clone(),
                set: raw.clone(),
                what,
            };
        }
        let doc = self.text.parse::<toml_edit::Document<String>>();
        match doc.ok().and_then(|d| locate::locate(&d, &err.path, err.at_key)) {
            Some(span) => {
                let (line, column) = locate::line_col(&self.text, span.start);
                ScenarioError::At {
                    file: self.file.clone(),
                    line,
                    column,
                    what,
                    snippet: locate::snippet(&self.text, &span),
                }
            }
            None => ScenarioError::File {
                file: self.file.clone(),
                what,
            },
        }
    }

    /// The file's table with the overrides applied.
    pub fn table(&self) -> Result<toml::Table, ScenarioError> {
        let mut table: toml::Table = toml::from_str(&self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = locate::line_col(&self.text, span.start);
            ScenarioError::At {
                file: self.file.clone(),
                line,
                column,
                what: format!("invalid TOML: {}", e.message().trim_end()),
                snippet: locate::snippet(&self.text, &span),
            }
        })?;
        for (raw, path, value) in &self.overrides {
            apply_override(&mut table, path, value.clone()).map_err(|what| ScenarioError::Set {
                file: self.file.clone(),
                set: raw.clone(),
                what,
            })?;
        }
        Ok(table)
    }

    /// Parses, applies overrides and validates.
    pub fn parse(&self) -> Result<Scenario, ScenarioError> {
        let table = self.table()?;
        let spec: ScenarioFile =
            from_value(toml::Value::Table(table), &DocPath::default()).map_err(|e| self.locate(e))?;
        let base_dir = self.file.parent().unwrap_or(Path::new(".")).to_path_buf();
        let default_name = self
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        validate::build(spec, &base_dir, default_name).map_err(|e| match e {
            traced::BuildError::Config(c) => self.locate(c),
            traced::BuildError::Trace(t) => ScenarioError::Trace(t.to_string()),
        })
    }
}

/// Sets `value` at `path` in `table`, creating missing tables on the way.
fn apply_override(table: &mut toml::Table, path: &DocPath, value: toml::Value) -> Result<(), String> {
    let mut cur = table;
    let segs = &path.0;
    let mut i = 0;
    while i < segs.len() {
        let Seg::Key(key) = &segs[i] else {
            return Err(format!("`{path}`: an index must follow a key"));
        };
        let last = i + 1 == segs.len();
        if last {
            cur.insert(key.clone(), value);
            return Ok(());
        }
        let entry = cur
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let next = match (&segs[i + 1], entry) {
            (Seg::Index(n), toml::Value::Array(items)) => {
                let len = items.len();
                if i + 2 == segs.len() {
                    let slot = items
                        .get_mut(*n)
                        .ok_or_else(|| format!("`{path}`: index {n} is out of range ({len} entries)"))?;
                    *slot = value;
                    return Ok(());
                }
                i += 1;
                items
                    .get_mut(*n)
                    .ok_or_else(|| format!("`{path}`: index {n} is out of range ({len} entries)"))?
            }
            (Seg::Index(_), _) => return Err(format!("`{path}`: `{key}` is not a list")),
            (Seg::Key(_), v) => v,
        };
        cur = next
            .as_table_mut()
            .ok_or_else(|| format!("`{path}`: cannot set a field inside a non-table value"))?;
        i += 1;
    }
    Ok(())
}
