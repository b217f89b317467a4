//! The pool's keep-alive and pre-warming plug-ins, chosen by `[policy] keep_alive_policy`.
//!
//! A plug-in is a [`KeepAlive`]: it hears every arrival, and when an instance becomes idle with
//! nothing queued it sees the function, the instance, when and what its setup cost, and
//! decides: keep it warm for a while ([`IdleAction::KeepFor`]) or unload it now and pre-warm a
//! new one later ([`IdleAction::UnloadThenPrewarm`]); it may add lines to the run's
//! `policy_report`. Its parameters come from `[policy] keep_alive_params = { … }`, read with
//! [`KeepAliveArgs::params`] (errors located under that key). Adding one is a type implementing
//! [`KeepAlive`] and one line in [`keep_alives`].
//!
//! Built in: `fixed` (`keep_alive_s` after the last use) and `hybrid` (the hybrid histogram of
//! "Serverless in the Wild", [`gpushare_sim::keepalive`], falling back to `keep_alive_s`).

use crate::pool::param_path;
use gpushare_sim::keepalive::{HybridConfig, HybridHistogram};
pub use gpushare_sim::policy::{FixedTtl, IdleAction, IdleInstance, KeepAlive};
use gpushare_sim::scenario::{ConfigError, DocPath, PolicySpec};
use gpushare_sim::time::{Nanos, secs_to_ns};
use serde::Deserialize;

/// What a keep-alive plug-in is built from.
pub struct KeepAliveArgs<'a> {
    /// `keep_alive_s` (`None`: forever), the fixed keep-alive and every plug-in's fallback.
    pub fixed: Option<Nanos>,
    /// The scenario's functions, numbered as [`gpushare_sim::FuncId`]s.
    pub functions: usize,
    /// `keep_alive_params`: the plug-in's own parameters.
    pub table: &'a toml::Table,
    /// Where that table is, for errors.
    pub table_key: &'static str,
}

impl KeepAliveArgs<'_> {
    /// The plug-in's parameters, with unknown or mistyped keys located under their table.
    pub fn params<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        PolicySpec {
            name: String::new(),
            params: self.table.clone(),
        }
        .params()
        .map_err(|mut e: ConfigError| {
            e.path = DocPath([param_path(self.table_key).0, e.path.0[1..].to_vec()].concat());
            e
        })
    }

    /// The path of one of the plug-in's parameters, for errors.
    pub fn path(&self, key: &str) -> DocPath {
        param_path(self.table_key).key(key)
    }
}

/// Builds a keep-alive plug-in.
pub type KeepAliveBuilder = fn(&KeepAliveArgs<'_>) -> Result<Box<dyn KeepAlive>, ConfigError>;

/// A registered keep-alive plug-in.
pub struct KeepAliveInfo {
    /// The name `keep_alive_policy` takes.
    pub name: &'static str,
    /// One line: what it keeps and when.
    pub summary: &'static str,
    pub build: KeepAliveBuilder,
}

/// Every keep-alive plug-in `keep_alive_policy` can name.
pub fn keep_alives() -> &'static [KeepAliveInfo] {
    &[
        KeepAliveInfo {
            name: "fixed",
            summary: "keep an idle instance `keep_alive_s` after its last use (OpenWhisk's and most platforms' policy)",
            build: |a| Ok(Box::new(FixedTtl(a.fixed))),
        },
        KeepAliveInfo {
            name: "hybrid",
            summary: "Serverless in the Wild's hybrid histogram: per-function idle-time histograms; unload after use and pre-warm at the head percentile, keep until the tail; `keep_alive_s` until representative (params: bin_s, bins, head, tail, margin, min_samples, min_cv)",
            build: hybrid,
        },
    ]
}

/// Builds the plug-in called `name`, or says which are valid.
pub fn keep_alive(name: &str, args: &KeepAliveArgs<'_>) -> Result<Box<dyn KeepAlive>, ConfigError> {
    match keep_alives().iter().find(|k| k.name == name) {
        Some(k) => (k.build)(args),
        None => Err(ConfigError::at(
            param_path("keep_alive_policy"),
            format!(
                "unknown keep-alive policy `{name}`; valid: {}",
                keep_alives().iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// The hybrid histogram's parameters (defaults: the paper's, [`HybridConfig::default`]).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HybridParams {
    bin_s: Option<f64>,
    bins: Option<usize>,
    head: Option<f64>,
    tail: Option<f64>,
    margin: Option<f64>,
    min_samples: Option<u32>,
    min_cv: Option<f64>,
}

fn hybrid(args: &KeepAliveArgs<'_>) -> Result<Box<dyn KeepAlive>, ConfigError> {
    let h: HybridParams = args.params()?;
    let d = HybridConfig::default();
    let fraction = |v: Option<f64>, f: &str, dv: f64| -> Result<f64, ConfigError> {
        match v {
            Some(x) if !(0.0..=1.0).contains(&x) => {
                Err(ConfigError::at(args.path(f), format!("must be in [0, 1], got {x}")))
            }
            Some(x) => Ok(x),
            None => Ok(dv),
        }
    };
    let bin = match h.bin_s {
        Some(b) if !(b.is_finite() && b > 0.0) => {
            return Err(ConfigError::at(
                args.path("bin_s"),
                format!("must be a positive number of seconds, got {b}"),
            ));
        }
        Some(b) => secs_to_ns(b),
        None => d.bin,
    };
    let cfg = HybridConfig {
        bin,
        bins: h.bins.unwrap_or(d.bins).max(1),
        head: fraction(h.head, "head", d.head)?,
        tail: fraction(h.tail, "tail", d.tail)?,
        margin: fraction(h.margin, "margin", d.margin)?,
        min_samples: h.min_samples.unwrap_or(d.min_samples),
        max_out_of_bounds: d.max_out_of_bounds,
        min_cv: h.min_cv.unwrap_or(d.min_cv),
        fallback: args.fixed,
    };
    Ok(Box::new(HybridHistogram::new(cfg, args.functions)))
}
