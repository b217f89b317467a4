//! The policies' documentation, generated from the registries and the typed parameters: what
//! `gpushare policies` prints and README's policy tables (`gpushare policies --markdown`), so
//! no listing of keys or defaults is kept by hand.

use crate::keep_alive::keep_alives;
use crate::params::{ParamDoc, Params};
use crate::placement::rankings;
use crate::pool::PoolParams;
use crate::{PolicyInfo, registry};
use std::fmt::Write;

/// `key = default` (or `key` when unset by default), in backticks.
fn key_default(p: &ParamDoc) -> String {
    match &p.default {
        Some(d) => format!("`{} = {d}`", p.key),
        None => format!("`{}`", p.key),
    }
}

/// A policy's own parameters with defaults (its own defaults where they differ), one line.
fn own_params_line(info: &PolicyInfo) -> String {
    let all = info.all_params();
    let own: Vec<String> = all.iter().take((info.params)().len()).map(key_default).collect();
    let changed: Vec<String> = all
        .iter()
        .skip((info.params)().len())
        .filter(|p| info.defaults.iter().any(|(k, _)| *k == p.key))
        .map(key_default)
        .collect();
    let mut line = if own.is_empty() {
        "none".to_string()
    } else {
        own.join(", ")
    };
    if info.pool {
        line.push_str("; + the pool parameters");
        if !changed.is_empty() {
            let _ = write!(line, ", with {}", changed.join(", "));
        }
    }
    line
}

/// What `gpushare policies` prints: every policy, its parameters and their defaults, then the
/// pool's parameters, placements and keep-alive plug-ins.
pub fn policies_text() -> String {
    let mut out = String::new();
    for info in registry() {
        let _ = writeln!(out, "{}\n  {}", info.name, info.summary);
        for p in info.all_params().iter().take((info.params)().len()) {
            let _ = writeln!(out, "  {}  {}", key_default(p).replace('`', ""), p.doc);
        }
        if info.pool {
            let _ = writeln!(out, "  + the pool parameters (below){}", {
                let changed: Vec<String> = info.defaults.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                if changed.is_empty() {
                    String::new()
                } else {
                    format!(", with {}", changed.join(", "))
                }
            });
        }
        out.push('\n');
    }
    let _ = writeln!(out, "pool parameters (every policy built on the pool):");
    for p in PoolParams::docs() {
        let _ = writeln!(out, "  {}  {}", key_default(&p).replace('`', ""), p.doc);
    }
    let _ = writeln!(out, "\nplacements (`placement = \"…\"`):");
    for r in rankings() {
        let _ = writeln!(out, "  {:<13} {}", r.name, r.summary);
    }
    let _ = writeln!(out, "\nkeep-alive plug-ins (`keep_alive_policy = \"…\"`):");
    for k in keep_alives() {
        let _ = writeln!(out, "  {:<13} {}", k.name, k.summary);
        for p in (k.params)() {
            let _ = writeln!(out, "  {:<13}   {}  {}", "", key_default(&p).replace('`', ""), p.doc);
        }
    }
    out
}

/// Plug-ins as one Markdown sentence: "`name`, summary (`keep_alive_params`: …); …".
fn plug_ins<'a>(items: impl Iterator<Item = (&'a str, &'a str, Vec<ParamDoc>)>) -> String {
    let described: Vec<String> = items
        .map(|(name, summary, params)| {
            let params: Vec<String> = params.iter().map(key_default).collect();
            if params.is_empty() {
                format!("`{name}`, {summary}")
            } else {
                format!("`{name}`, {summary} (`keep_alive_params`: {})", params.join(", "))
            }
        })
        .collect();
    described.join("; ")
}

/// README's policy section tables (between its `policies` markers).
pub fn policies_markdown() -> String {
    let mut out = String::new();
    out.push_str("Pool parameters, shared by every policy built on the pool:\n\n| parameter | default | meaning |\n| --- | --- | --- |\n");
    for p in PoolParams::docs() {
        let d = p.default.as_deref().map_or("unset".to_string(), |d| format!("`{d}`"));
        let _ = writeln!(out, "| `{}` | {d} | {} |", p.key, p.doc.replace('|', "\\|"));
    }
    let rankings = rankings().iter().map(|r| (r.name, r.summary, Vec::new()));
    let _ = write!(out, "\nPlacements (`placement`): {}.\n\n", plug_ins(rankings));
    let keep_alives = keep_alives().iter().map(|k| (k.name, k.summary, (k.params)()));
    let _ = write!(
        out,
        "Keep-alive plug-ins (`keep_alive_policy`): {}.\n\n",
        plug_ins(keep_alives)
    );
    out.push_str("| name | what it models | parameters (defaults) |\n| --- | --- | --- |\n");
    for info in registry() {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            info.name,
            info.summary.replace('|', "\\|"),
            own_params_line(info).replace('|', "\\|")
        );
    }
    out
}
