//! What a sweep varies: axes over scenario fields, from the scenario's `[sweep]` table or the
//! command line, and how many seeds each point runs with.
//!
//! ```toml
//! [sweep]
//! seeds = 5                                    # each point with 5 seeds: mean and 95 % CI
//! policy = ["kaas", { label = "exclusive-kaas", name = "exclusive", kill_largest = true }]
//! simulation.load_scale = [0.5, 1.0, 1.5]      # any field, by its --set path …
//! "functions[0].count" = [1, 4, 16]            # … quoted where it has brackets
//! ```
//!
//! Every key whose value is an array is an axis, in the order written; tables nest paths
//! (`[sweep.simulation]` with `load_scale = [...]` is `simulation.load_scale`). An axis value is
//! applied like `--set`; on the `policy` axis a string is a policy name (keeping the scenario's
//! other `[policy]` keys) and a table replaces `[policy]` (its `label` key names it in outputs).
//! A `policy` string may also be `"LABEL: { … }"`, as `gpushare compare` accepts.

use gpushare_sim::ScenarioSource;
use gpushare_sim::scenario::{ConfigError, DocPath, ScenarioError, Seg};
use std::collections::BTreeSet;

/// One value of an axis: how it is shown in outputs and what it sets.
#[derive(Clone, Debug, PartialEq)]
pub struct AxisValue {
    pub label: String,
    pub value: toml::Value,
}

/// One axis: a scenario field (a `--set` path, or `policy`) and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<AxisValue>,
}

/// Axes and seeds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepSpec {
    pub axes: Vec<Axis>,
    /// Runs per point (1 = the scenario's seed only).
    pub seeds: u32,
}

fn sweep_path(rest: &[&str]) -> DocPath {
    let mut p = DocPath(vec![Seg::Key("sweep".into())]);
    for k in rest {
        p = p.key(k);
    }
    p
}

/// A policy given as text: a name, an inline table, or `LABEL: { … }`. Returns the label (if
/// one was given) and the value.
pub fn policy_arg(text: &str) -> Result<(Option<String>, toml::Value), String> {
    let text = text.trim();
    let (label, body) = match text.split_once('{') {
        Some((head, _)) if head.trim_end().ends_with(':') => {
            let (label, body) = text.split_once(':').expect("checked");
            (Some(label.trim().to_string()), body.trim())
        }
        _ => (None, text),
    };
    if body.starts_with('{') {
        let value = toml::from_str::<toml::Table>(&format!("v = {body}"))
            .map_err(|e| format!("`{body}` is not a TOML inline table: {}", e.message().trim_end()))?
            .remove("v")
            .expect("parsed");
        Ok((label, value))
    } else {
        Ok((label, toml::Value::String(body.to_string())))
    }
}

/// How a value reads in a CSV cell or a legend.
fn label_of(key: &str, v: &toml::Value) -> Result<String, String> {
    if key == "policy" {
        return match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Table(t) => match (t.get("label"), t.get("name")) {
                (Some(toml::Value::String(l)), _) => Ok(l.clone()),
                (None, Some(toml::Value::String(n))) => Ok(n.clone()),
                _ => Err("a policy table needs a string `name` (and may have a `label`)".into()),
            },
            _ => Err("a policy is a name or a table such as { name = \"mps\" }".into()),
        };
    }
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

impl SweepSpec {
    /// The `[sweep]` table of `src`'s file, if any (errors located in the file).
    pub fn from_source(src: &ScenarioSource) -> Result<SweepSpec, ScenarioError> {
        let mut spec = SweepSpec {
            axes: Vec::new(),
            seeds: 1,
        };
        // toml_edit keeps the order axes are written in.
        let Ok(doc) = src.text.parse::<toml_edit::DocumentMut>() else {
            // The scenario's own parse reports syntax errors with their place.
            return Ok(spec);
        };
        let Some(item) = doc.get("sweep") else {
            return Ok(spec);
        };
        let locate = |path: DocPath, msg: String| src.locate(ConfigError::at(path, msg));
        let Some(table) = item.as_table_like() else {
            return Err(locate(sweep_path(&[]), "must be a table of axes".into()));
        };
        spec.collect(table, &mut Vec::new(), &locate)?;
        Ok(spec)
    }

    fn collect(
        &mut self,
        table: &dyn toml_edit::TableLike,
        prefix: &mut Vec<String>,
        locate: &dyn Fn(DocPath, String) -> ScenarioError,
    ) -> Result<(), ScenarioError> {
        for (k, item) in table.iter() {
            prefix.push(k.to_string());
            let path: Vec<&str> = prefix.iter().map(String::as_str).collect();
            let at = sweep_path(&path);
            if prefix.len() == 1 && k == "seeds" {
                match item.as_integer() {
                    Some(n) if (1..=10_000).contains(&n) => self.seeds = n as u32,
                    _ => {
                        return Err(locate(
                            at,
                            "must be a whole number of seeds per point, 1 to 10000".into(),
                        ));
                    }
                }
            } else if let Some(sub) = item.as_table_like().filter(|_| !item.is_inline_table()) {
                self.collect(sub, prefix, locate)?;
            } else if let Some(array) = item.as_array() {
                let key = prefix.join(".");
                let mut values = Vec::new();
                for (i, v) in array.iter().enumerate() {
                    // Printed without the whitespace and comments around it.
                    let mut v = v.clone();
                    v.decor_mut().clear();
                    let parsed = toml::from_str::<toml::Table>(&format!("v = {v}"))
                        .ok()
                        .and_then(|mut t| t.remove("v"))
                        .ok_or_else(|| locate(at.index(i), format!("`{v}` is not a TOML value")))?;
                    let parsed = match (key.as_str(), parsed) {
                        ("policy", toml::Value::String(s)) => {
                            let (label, value) = policy_arg(&s).map_err(|e| locate(at.index(i), e))?;
                            with_label(value, label)
                        }
                        (_, other) => other,
                    };
                    let label = label_of(&key, &parsed).map_err(|e| locate(at.index(i), e))?;
                    values.push(AxisValue { label, value: parsed });
                }
                self.add(Axis { key, values }).map_err(|e| locate(at, e))?;
            } else {
                return Err(locate(
                    at,
                    "must be an array of values (an axis), a table of axes, or `seeds = N`".into(),
                ));
            }
            prefix.pop();
        }
        Ok(())
    }

    /// Adds (or replaces) an axis after checking it.
    pub fn add(&mut self, axis: Axis) -> Result<(), String> {
        if axis.values.is_empty() {
            return Err(format!("axis `{}` has no values", axis.key));
        }
        let mut seen = BTreeSet::new();
        for v in &axis.values {
            if !seen.insert(v.label.as_str()) {
                return Err(format!(
                    "two values of axis `{}` are both shown as `{}`; give each a distinct label{}",
                    axis.key,
                    v.label,
                    if axis.key == "policy" {
                        " (a `label` key in its table, or \"LABEL: { … }\")"
                    } else {
                        ""
                    }
                ));
            }
        }
        match self.axes.iter_mut().find(|a| a.key == axis.key) {
            Some(old) => *old = axis,
            None => self.axes.push(axis),
        }
        Ok(())
    }

    /// Adds an axis from `--axis KEY=V1,V2,…` (values split at commas outside braces, brackets
    /// and quotes; each read as TOML, else as a string).
    pub fn add_arg(&mut self, arg: &str) -> Result<(), String> {
        let (key, rest) = arg
            .split_once('=')
            .ok_or_else(|| format!("--axis {arg}: expected KEY=V1,V2,… e.g. simulation.load_scale=0.5,1,2"))?;
        let key = key.trim().to_string();
        if DocPath::parse(&key).is_none() {
            return Err(format!(
                "--axis {arg}: `{key}` is not a dotted path such as simulation.load_scale"
            ));
        }
        let mut values = Vec::new();
        for raw in split_top_level(rest) {
            if raw.trim().is_empty() {
                return Err(format!(
                    "--axis {arg}: an empty value (two commas, or one at an end); write every value, e.g. {key}=1,2"
                ));
            }
            let value = if key == "policy" {
                let (label, value) = policy_arg(raw).map_err(|e| format!("--axis {arg}: {e}"))?;
                with_label(value, label)
            } else {
                toml::from_str::<toml::Table>(&format!("v = {raw}"))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or_else(|| toml::Value::String(raw.to_string()))
            };
            let label = label_of(&key, &value).map_err(|e| format!("--axis {arg}: {e}"))?;
            values.push(AxisValue { label, value });
        }
        self.add(Axis { key, values }).map_err(|e| format!("--axis {arg}: {e}"))
    }

    /// Number of points (the product of the axes' lengths).
    pub fn points(&self) -> usize {
        self.axes.iter().fold(1usize, |n, a| n.saturating_mul(a.values.len()))
    }

    /// The value index on each axis of point `p` (the first axis varies slowest).
    pub fn coordinates(&self, mut p: usize) -> Vec<usize> {
        let mut out = vec![0; self.axes.len()];
        for (i, a) in self.axes.iter().enumerate().rev() {
            out[i] = p % a.values.len();
            p /= a.values.len();
        }
        out
    }

    /// Applies point `p`'s values to `src`.
    pub fn apply(&self, src: &mut ScenarioSource, p: usize) -> Result<(), ScenarioError> {
        for (axis, k) in self.axes.iter().zip(self.coordinates(p)) {
            let v = &axis.values[k];
            let origin = format!("[sweep] axis `{}`, value {} (`{}`)", axis.key, k + 1, v.label);
            match (axis.key.as_str(), &v.value) {
                ("policy", toml::Value::String(name)) => {
                    src.set_value(&origin, "policy.name", toml::Value::String(name.clone()))?
                }
                ("policy", toml::Value::Table(t)) => {
                    let mut t = t.clone();
                    t.remove("label");
                    src.set_value(&origin, "policy", toml::Value::Table(t))?
                }
                (key, value) => src.set_value(&origin, key, value.clone())?,
            }
        }
        Ok(())
    }
}

fn with_label(value: toml::Value, label: Option<String>) -> toml::Value {
    match (value, label) {
        (toml::Value::Table(mut t), Some(l)) => {
            t.insert("label".into(), toml::Value::String(l));
            toml::Value::Table(t)
        }
        (v, _) => v,
    }
}

/// Splits at commas that are not inside `{}`, `[]` or quotes.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0);
    let mut out = Vec::new();
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out
}

/// The seed of replicate `r` of a scenario seeded `base`: the base itself for the first, then
/// SplitMix64 of base + r, halved to fit a TOML integer — the same for every point, so points compare under the same random
/// arrivals (common random numbers).
pub fn replicate_seed(base: u64, r: u32) -> u64 {
    if r == 0 {
        return base;
    }
    let mut z = base.wrapping_add(u64::from(r).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    // Below 2^63: a scenario's seed is a TOML integer.
    (z ^ (z >> 31)) >> 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn spec(text: &str) -> Result<SweepSpec, String> {
        SweepSpec::from_source(&ScenarioSource::from_text(Path::new("s.toml"), text)).map_err(|e| e.to_string())
    }

    #[test]
    fn axes_keep_their_order_and_nested_paths() {
        let s = spec(
            "[sweep]\nseeds = 3\npolicy = [\"kaas\", { label = \"x\", name = \"exclusive\" }, \"ex: { name = \\\"mps\\\" }\"]\n\
             simulation.load_scale = [0.5, 1]\n\"functions[0].count\" = [1, 4]\n",
        )
        .unwrap();
        let keys: Vec<&str> = s.axes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["policy", "simulation.load_scale", "functions[0].count"]);
        let labels: Vec<&str> = s.axes[0].values.iter().map(|v| v.label.as_str()).collect();
        assert_eq!(labels, ["kaas", "x", "ex"]);
        assert_eq!((s.seeds, s.points()), (3, 12));
        // The first axis varies slowest.
        assert_eq!(s.coordinates(0), [0, 0, 0]);
        assert_eq!(s.coordinates(5), [1, 0, 1]);
    }

    #[test]
    fn bad_axes_are_located() {
        let e = spec("[sweep]\npolicy = [\"mps\", \"mps\"]\n").unwrap_err();
        assert!(e.starts_with("s.toml:2:10: sweep.policy: two values"), "{e}");
        let e = spec("[sweep]\nseeds = 0\n").unwrap_err();
        assert!(e.contains("sweep.seeds: must be a whole number"), "{e}");
        let e = spec("[sweep]\nload = 3\n").unwrap_err();
        assert!(e.contains("sweep.load: must be an array of values"), "{e}");
    }

    #[test]
    fn command_line_axes_split_outside_braces() {
        let mut s = SweepSpec::default();
        s.add_arg("policy=kaas,excl: { name = \"exclusive\", kill_largest = true }")
            .unwrap();
        s.add_arg("simulation.load_scale=0.5, 1,2").unwrap();
        assert_eq!(s.axes[0].values[1].label, "excl");
        assert_eq!(s.axes[1].values.len(), 3);
        assert!(s.add_arg("nonsense").is_err());
    }

    #[test]
    fn replicate_seeds_start_at_the_scenario_seed() {
        assert_eq!(replicate_seed(7, 0), 7);
        assert_ne!(replicate_seed(7, 1), replicate_seed(7, 2));
        assert_eq!(replicate_seed(7, 1), replicate_seed(7, 1));
        assert!((1..1000).all(|r| replicate_seed(u64::MAX, r) <= i64::MAX as u64));
    }
}
