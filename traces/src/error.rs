//! Errors of trace readers: always with the file, line and field, and what would be valid.

use std::path::PathBuf;

/// A trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The reading options select nothing the trace has (days, a window past its end).
    #[error("{message}")]
    Selection {
        /// The scenario key of the option (`days`, `start_minute`), for locating the error.
        option: &'static str,
        message: String,
    },
    /// A row, header or value is malformed.
    #[error("{}:{line}: field `{field}`: {message}", path.display())]
    Row {
        path: PathBuf,
        /// 1-based line number in the file.
        line: u64,
        /// The column name (or `header`).
        field: String,
        /// What is wrong and what would be valid.
        message: String,
    },
}
