//! Helpers shared by the CSV readers: opening files, located row errors, number parsing, and
//! the skip-bad-rows policy.

use crate::TraceError;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// Opens a CSV file (header row required, fields trimmed, ragged rows allowed so that their
/// length is checked with a proper message).
pub fn open_csv(path: &Path) -> Result<csv::Reader<BufReader<File>>, TraceError> {
    let file = File::open(path).map_err(|source| TraceError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 16, file)))
}

/// The error for `field` on `line` of `path`.
pub fn row_error(path: &Path, line: u64, field: &str, message: impl Into<String>) -> TraceError {
    TraceError::Row {
        path: path.to_owned(),
        line,
        field: field.to_string(),
        message: message.into(),
    }
}

/// Reads the header, failing with a located error on an empty file or unreadable header.
pub fn header(
    reader: &mut csv::Reader<BufReader<File>>,
    path: &Path,
    expected: &str,
) -> Result<Vec<String>, TraceError> {
    let h = reader
        .headers()
        .map_err(|e| row_error(path, 1, "header", e.to_string()))?;
    if h.is_empty() || (h.len() == 1 && h[0].is_empty()) {
        return Err(row_error(
            path,
            1,
            "header",
            format!("the file is empty; expected a header `{expected}`"),
        ));
    }
    Ok(h.iter().map(str::to_string).collect())
}

/// Opens a CSV file whose header must be exactly `expected`.
pub fn open_with_header(
    path: &Path,
    expected: &[&str],
) -> Result<(csv::Reader<BufReader<File>>, Vec<String>), TraceError> {
    let mut rdr = open_csv(path)?;
    let shown_expected = if expected.len() > 12 {
        format!("{},…,{}", expected[..6].join(","), expected[expected.len() - 1])
    } else {
        expected.join(",")
    };
    let got = header(&mut rdr, path, &shown_expected)?;
    if got.len() != expected.len() || got.iter().zip(expected).any(|(g, w)| g != w) {
        let shown = if got.len() > 12 {
            format!("{},… ({} columns)", got[..12].join(","), got.len())
        } else {
            got.join(",")
        };
        return Err(row_error(
            path,
            1,
            "header",
            format!("found `{shown}`; expected `{shown_expected}`"),
        ));
    }
    Ok((rdr, got))
}

/// Reads every record, handing each to `row` with its line number. A row that the CSV layer or
/// `row` rejects is skipped and counted with `skip`, and ends the read with an error otherwise.
pub fn each_row(
    reader: &mut csv::Reader<BufReader<File>>,
    path: &Path,
    skip: bool,
    skipped: &mut SkippedRows,
    mut row: impl FnMut(u64, &csv::StringRecord) -> Result<(), TraceError>,
) -> Result<(), TraceError> {
    let mut rec = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut rec) {
            Ok(true) => {
                let line = rec.position().map_or(0, |p| p.line());
                if let Err(e) = row(line, &rec) {
                    skipped.skip_or_fail(skip, e)?;
                }
            }
            Ok(false) => return Ok(()),
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                skipped.skip_or_fail(skip, row_error(path, line, "row", e.to_string()))?;
            }
        }
    }
}

/// Parses a finite, non-negative number.
pub fn non_negative(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number; expected a non-negative number"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "`{text}` is out of range; expected a finite, non-negative number"
        ));
    }
    Ok(v)
}

/// Counts and remembers skipped rows when `skip_bad_rows` is on; otherwise passes errors up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkippedRows {
    pub count: u64,
    /// The first few, as `file:line: field: message`.
    pub examples: Vec<String>,
}

impl SkippedRows {
    /// With `skip`, records `err` and returns Ok; otherwise returns it.
    pub fn skip_or_fail(&mut self, skip: bool, err: TraceError) -> Result<(), TraceError> {
        if !skip {
            return Err(err);
        }
        self.count += 1;
        if self.examples.len() < 5 {
            self.examples.push(err.to_string());
        }
        Ok(())
    }
}
