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

use crate::params::Params;
use crate::pool::param_path;
use gpushare_sim::keepalive::{HybridConfig, HybridHistogram};
pub use gpushare_sim::policy::{FixedTtl, IdleAction, IdleInstance, KeepAlive};
use gpushare_sim::scenario::{ConfigError, DocPath, PolicySpec};
use gpushare_sim::time::{Nanos, secs_to_ns};

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
    /// Its parameters (`keep_alive_params`), from their typed declaration.
    pub params: fn() -> Vec<crate::params::ParamDoc>,
    pub build: KeepAliveBuilder,
}

/// Every keep-alive plug-in `keep_alive_policy` can name.
pub fn keep_alives() -> &'static [KeepAliveInfo] {
    &[
        KeepAliveInfo {
            name: "fixed",
            summary: "keep an idle instance `keep_alive_s` after its last use (OpenWhisk's and most platforms' policy)",
            params: crate::params::NoParams::docs,
            build: |a| {
                a.params::<crate::params::NoParams>().map_err(|mut e| {
                    e.message += " (keep_alive_policy `fixed` takes no parameters)";
                    e
                })?;
                Ok(Box::new(FixedTtl(a.fixed)))
            },
        },
        KeepAliveInfo {
            name: "hybrid",
            summary: "Serverless in the Wild's hybrid histogram: per-function idle-time histograms; unload after use and pre-warm at the head percentile, keep until the tail; `keep_alive_s` until representative",
            params: HybridParams::docs,
            build: hybrid,
        },
    ]
}

/// The table a pool's keep-alive plug-in reads and its key: `keep_alive_params`, or the older
/// `hybrid` table for the hybrid histogram. A `hybrid` table is checked whatever plug-in runs
/// (a sweep may vary `keep_alive_policy` under it), and refused next to `keep_alive_params`.
pub fn params_table<'a>(
    policy: &str,
    params: &'a toml::Table,
    hybrid: &'a toml::Table,
) -> Result<(&'a toml::Table, &'static str), ConfigError> {
    if hybrid.is_empty() {
        return Ok((params, "keep_alive_params"));
    }
    if !params.is_empty() {
        return Err(ConfigError::at(
            param_path("hybrid"),
            "both `hybrid` (the older name of the hybrid histogram's table) and `keep_alive_params` are given: keep one".to_string(),
        ));
    }
    let legacy = KeepAliveArgs {
        fixed: None,
        functions: 0,
        table: hybrid,
        table_key: "hybrid",
    };
    legacy.params::<HybridParams>()?;
    Ok(if policy == "hybrid" {
        (hybrid, "hybrid")
    } else {
        (params, "keep_alive_params")
    })
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

crate::params! {
    /// The hybrid histogram's parameters (defaults: the paper's, [`HybridConfig::default`]).
    pub struct HybridParams {
        /// Width of a histogram bin, s.
        bin_s: f64 = HybridConfig::default().bin as f64 / 1e9,
        /// Bins (idle times beyond them are out of bounds).
        bins: usize = HybridConfig::default().bins,
        /// Percentile of idle times at which to pre-warm (the head).
        head: f64 = HybridConfig::default().head,
        /// Percentile of idle times until which to keep warm (the tail).
        tail: f64 = HybridConfig::default().tail,
        /// Margin taken off the head and added to the tail, as a fraction.
        margin: f64 = HybridConfig::default().margin,
        /// Idle times seen before the histogram is trusted.
        min_samples: u32 = HybridConfig::default().min_samples,
        /// Least coefficient of variation of the bin counts for a representative histogram.
        min_cv: f64 = HybridConfig::default().min_cv,
    }
}

fn hybrid(args: &KeepAliveArgs<'_>) -> Result<Box<dyn KeepAlive>, ConfigError> {
    let h: HybridParams = args.params()?;
    let fraction = |x: f64, f: &str| -> Result<f64, ConfigError> {
        if (0.0..=1.0).contains(&x) {
            Ok(x)
        } else {
            Err(ConfigError::at(args.path(f), format!("must be in [0, 1], got {x}")))
        }
    };
    if !(h.bin_s.is_finite() && h.bin_s > 0.0) {
        return Err(ConfigError::at(
            args.path("bin_s"),
            format!("must be a positive number of seconds, got {}", h.bin_s),
        ));
    }
    let cfg = HybridConfig {
        bin: secs_to_ns(h.bin_s),
        bins: h.bins.max(1),
        head: fraction(h.head, "head")?,
        tail: fraction(h.tail, "tail")?,
        margin: fraction(h.margin, "margin")?,
        min_samples: h.min_samples,
        max_out_of_bounds: HybridConfig::default().max_out_of_bounds,
        min_cv: h.min_cv,
        fallback: args.fixed,
    };
    Ok(Box::new(HybridHistogram::new(cfg, args.functions)))
}
