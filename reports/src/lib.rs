//! Output files of a gpushare run.
//!
//! This crate owns how results reach disk and the terminal: `summary.json` and `summary.csv`
//! ([`summary_files`]), the streaming `invocations.csv` ([`invocations`]), the human summary
//! ([`human`]), the side-by-side table of several runs ([`compare`]), and atomic writes ([`atomic`]): every file is written under a temporary name
//! and renamed when complete, so an interrupted run never leaves a half-written file that looks
//! whole.

pub mod atomic;
pub mod compare;
pub mod human;
pub mod invocations;
pub mod summary_files;

pub use invocations::InvocationCsv;
pub use summary_files::write_summary;
