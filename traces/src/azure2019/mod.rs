//! The Azure Functions 2019 trace (Shahrad et al., "Serverless in the Wild", ATC '20) and
//! InVitro's samples of it: reading ([`files`], [`layout`], [`parse`]), choosing functions ([`select`]), per-invocation durations
//! ([`sample`]) and the arrival stream ([`stream`]).
//!
//! ```text
//! files::discover(paths) ─► parse::read(files, window, days) ─► Selection::apply ─► Azure2019Stream
//! ```

pub mod files;
pub mod layout;
pub mod parse;
pub mod sample;
pub mod select;
pub mod stream;

pub use files::{TraceFiles, discover};
pub use parse::{Azure2019, CleaningReport, FunctionKey, ReadOptions, TraceFunction, read};
pub use sample::DurationModel;
pub use select::Selection;
pub use stream::{Azure2019Stream, Spread, StreamOptions};
