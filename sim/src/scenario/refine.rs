//! Finding the key an error concerns inside an internally tagged table (`kind = "…"`).
//!
//! serde reads a tagged enum (`[workload]`, `[workload.mapping]`) from a buffer, so an error
//! inside one carries the path of the table only (`workload: unknown field `rate``). The
//! message still names what is wrong — an unknown key, a variant, a value of the wrong type —
//! and this module finds that key or value in the table, breadth first, so that the error can
//! point at its line.

use super::error::{DocPath, Seg};
use std::collections::VecDeque;

/// The path below `path` in `root` that `message` concerns, if the table there holds it.
pub fn refine(root: &toml::Value, path: &DocPath, message: &str) -> Option<Vec<Seg>> {
    let table = value_at(root, path)?;
    if !(table.is_table() || table.is_array()) {
        return None;
    }
    if let Some(key) = quoted(message, "unknown field `") {
        return find(table, |k, _| k == Some(key));
    }
    if let Some(variant) = quoted(message, "unknown variant `") {
        return find(table, |_, v| v.as_str() == Some(variant));
    }
    let (kind, shown) = offending_value(message)?;
    find(table, |_, v| shows_as(v, kind, shown))
}

fn value_at<'a>(root: &'a toml::Value, path: &DocPath) -> Option<&'a toml::Value> {
    path.0.iter().try_fold(root, |v, seg| match seg {
        Seg::Key(k) => v.get(k.as_str()),
        Seg::Index(i) => v.get(*i),
    })
}

/// The text between `prefix` and the next backtick.
fn quoted<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// From serde's `invalid type: integer `5`, expected …` (or `invalid value: …`, or
/// `string "x"`): the kind of value and how it was shown.
fn offending_value(message: &str) -> Option<(&str, &str)> {
    let rest = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))?;
    for kind in ["integer", "floating point", "boolean"] {
        if let Some(v) = rest.strip_prefix(kind).and_then(|r| r.strip_prefix(" `")) {
            return Some((kind, v.split('`').next()?));
        }
    }
    let v = rest.strip_prefix("string \"")?;
    Some(("string", v.split('"').next()?))
}

fn shows_as(v: &toml::Value, kind: &str, shown: &str) -> bool {
    match (kind, v) {
        ("integer", toml::Value::Integer(i)) => i.to_string() == shown,
        ("floating point", toml::Value::Float(f)) => f.to_string() == shown || format!("{f:?}") == shown,
        ("boolean", toml::Value::Boolean(b)) => b.to_string() == shown,
        ("string", toml::Value::String(s)) => s == shown,
        _ => false,
    }
}

/// Breadth first: the path to the first entry (key, value) that `hit` accepts.
fn find(start: &toml::Value, hit: impl Fn(Option<&str>, &toml::Value) -> bool) -> Option<Vec<Seg>> {
    let mut queue = VecDeque::from([(start, Vec::new())]);
    while let Some((value, path)) = queue.pop_front() {
        let children: Vec<(Seg, &toml::Value)> = match value {
            toml::Value::Table(t) => t.iter().map(|(k, v)| (Seg::Key(k.clone()), v)).collect(),
            toml::Value::Array(a) => a.iter().enumerate().map(|(i, v)| (Seg::Index(i), v)).collect(),
            _ => continue,
        };
        for (seg, child) in children {
            let accepted = match &seg {
                Seg::Key(k) => hit(Some(k.as_str()), child),
                Seg::Index(_) => hit(None, child),
            };
            let mut here = path.clone();
            here.push(seg);
            if accepted {
                return Some(here);
            }
            queue.push_back((child, here));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> toml::Value {
        toml::Value::Table(toml::from_str(text).unwrap())
    }

    fn at(path: &str) -> DocPath {
        DocPath::parse(path).unwrap()
    }

    #[test]
    fn finds_an_unknown_key_nested_in_the_table() {
        let root = doc("[workload]\nkind = 'azure2019'\ngenerate = { funcs = 10 }\n");
        let found = refine(
            &root,
            &at("workload"),
            "unknown field `funcs`, expected one of `functions`",
        );
        assert_eq!(found, Some(vec![Seg::Key("generate".into()), Seg::Key("funcs".into())]));
    }

    #[test]
    fn finds_a_variant_and_a_value_of_the_wrong_type() {
        let root = doc("[workload]\nkind = 'csv'\npath = 5\n[workload.mapping]\nkind = 'random'\n");
        let variant = refine(&root, &at("workload"), "unknown variant `random`, expected `single`");
        assert_eq!(variant, Some(vec![Seg::Key("mapping".into()), Seg::Key("kind".into())]));
        let typed = refine(
            &root,
            &at("workload"),
            "invalid type: integer `5`, expected path string",
        );
        assert_eq!(typed, Some(vec![Seg::Key("path".into())]));
    }

    #[test]
    fn says_nothing_for_a_leaf_or_an_unrelated_message() {
        let root = doc("[workload]\nkind = 'poisson'\nrate_per_s = 'x'\n");
        assert_eq!(
            refine(&root, &at("workload.rate_per_s"), "invalid type: string \"x\""),
            None
        );
        assert_eq!(refine(&root, &at("workload"), "missing field `path`"), None);
    }
}
