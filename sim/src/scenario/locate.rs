//! Finds where a [`DocPath`] is in the scenario's source text, for error messages.

use super::error::{DocPath, Seg};
use std::ops::Range;
use toml_edit::{Document, Item, Table, Value};

#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Table(&'a Table),
    Value(&'a Value),
}

fn span_of(node: Node<'_>) -> Option<Range<usize>> {
    match node {
        Node::Item(i) => i.span(),
        Node::Table(t) => t.span(),
        Node::Value(v) => v.span(),
    }
}

/// The byte range `path` points at: its value (or its key, with `at_key`), or the nearest
/// enclosing element that exists (for a missing field: the table that lacks it).
pub fn locate(doc: &Document<String>, path: &DocPath, at_key: bool) -> Option<Range<usize>> {
    let mut node = Node::Item(doc.as_item());
    let mut best = None;
    let n = path.0.len();
    for (i, seg) in path.0.iter().enumerate() {
        let mut key_span = None;
        let next = match (node, seg) {
            (Node::Item(Item::Table(t)) | Node::Table(t), Seg::Key(k)) => t.get_key_value(k).map(|(key, item)| {
                key_span = key.span();
                Node::Item(item)
            }),
            (Node::Item(Item::Value(Value::InlineTable(t))) | Node::Value(Value::InlineTable(t)), Seg::Key(k)) => {
                t.get_key_value(k).map(|(key, item)| {
                    key_span = key.span();
                    Node::Item(item)
                })
            }
            (Node::Item(Item::ArrayOfTables(a)), Seg::Index(ix)) => a.get(*ix).map(Node::Table),
            (Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)), Seg::Index(ix)) => {
                a.get(*ix).map(Node::Value)
            }
            _ => None,
        };
        let Some(next) = next else { break };
        node = next;
        let span = if at_key && i + 1 == n {
            key_span.or_else(|| span_of(next))
        } else {
            span_of(next).or(key_span)
        };
        if span.is_some() {
            best = span;
        }
    }
    best
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The source line containing `span`, with a caret line under the span.
pub fn snippet(text: &str, span: &Range<usize>) -> String {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = &text[line_start..line_end];
    let (line_no, col) = line_col(text, start);
    let width = text[start..span.end.min(line_end).max(start)].chars().count().max(1);
    let gutter = line_no.to_string().len();
    format!(
        "\n{:gutter$} |\n{line_no} | {line}\n{:gutter$} | {}{}",
        "",
        "",
        " ".repeat(col - 1),
        "^".repeat(width)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_keys_and_nearest_parent() {
        let text = "[simulation]\nseed = 1\n\n[[functions]]\nname = \"a\"\n[[functions]]\nname = \"b\"\nprofile = { base = \"x\", weights_mib = -1 }\n";
        let doc: Document<String> = text.to_string().parse().unwrap();
        let at = |p: &str, key: bool| {
            let r = locate(&doc, &DocPath::parse(p).unwrap(), key).unwrap();
            line_col(text, r.start)
        };
        assert_eq!(at("simulation.seed", false), (2, 8));
        assert_eq!(at("simulation.seed", true), (2, 1));
        assert_eq!(at("functions[1].name", false), (7, 8));
        assert_eq!(at("functions[1].profile.weights_mib", false), (8, 39));
        // Missing field: the nearest existing parent, here the [[functions]] header.
        assert_eq!(at("functions[1].count", false).0, 6);
        assert_eq!(at("simulation.horizon_s", false), (1, 1));
    }

    #[test]
    fn snippet_underlines_the_span() {
        let text = "a = 1\nbad = 123\n";
        let s = snippet(text, &(12..15));
        assert!(s.ends_with("2 | bad = 123\n  |       ^^^"), "{s}");
    }
}
