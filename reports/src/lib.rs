//! Output files of a gpushare run.
//!
//! This crate owns how results reach disk and the terminal: one run's directory ([`run_files`]),
//! `summary.json` and `summary.csv`
//! ([`summary_files`]), the streaming `invocations.csv` ([`invocations`]), the human summary
//! ([`human`]), the side-by-side table of several runs ([`compare`]), per-run series for figures
//! ([`series`]: the latency CDF, GPU samples over time), the Chrome / Perfetto timeline
//! ([`timeline`]), sweeps over scenario fields with their tables, shards and merge ([`sweep`]),
//! figures ([`plot`]), regression checks against a baseline ([`check`]), prediction against a
//! replay's measurement ([`validation`]), fidelity against published measurements and the fit of
//! the model's free parameters ([`fidelity`]), and atomic writes ([`atomic`]): every file is written under a temporary name
//! and renamed when complete, so an interrupted run never leaves a half-written file that looks
//! whole.

pub use gpushare_traces::atomic;
pub mod check;
pub mod compare;
pub mod fidelity;
pub mod human;
pub mod invocations;
pub mod plot;
pub mod run_files;
pub mod series;
pub mod serving_files;
pub mod summary_files;
pub mod sweep;
pub mod timeline;
pub mod validation;

pub use invocations::InvocationCsv;
pub use summary_files::write_summary;
