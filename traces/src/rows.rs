//! Helpers shared by the CSV readers: opening files, located row errors, number parsing, and
//! the skip-bad-rows policy.

use crate::TraceError;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// A CSV file's bytes as the readers see them.
pub type CsvFile = LineFeeds<BufReader<File>>;

/// Opens `path` for a CSV reader: buffered, CRLF line ends read as LF.
pub fn open_lines(path: &Path) -> Result<CsvFile, TraceError> {
    let file = File::open(path).map_err(|source| TraceError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(LineFeeds::new(BufReader::with_capacity(1 << 16, file)))
}

/// Opens a CSV file (header row required, fields trimmed, ragged rows allowed so that their
/// length is checked with a proper message).
pub fn open_csv(path: &Path) -> Result<csv::Reader<CsvFile>, TraceError> {
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(open_lines(path)?))
}

/// Reads `inner` with every CRLF line end as a plain LF. The csv crate ends a CRLF record at
/// the CR and counts its LF in the next record, so every position it reports on a CRLF file
/// (the real Azure LLM traces are CRLF) would be one line too early.
///
/// It also notes where the empty lines are: the csv crate skips them, but reports a record that
/// follows some at the first of them, lines too early ([`line_at`] steps over them).
pub struct LineFeeds<R> {
    inner: R,
    /// A CR read at the end of the last chunk, not yet known to start a CRLF.
    held_cr: bool,
    /// Bytes written so far.
    written: u64,
    /// Whether the last byte written ended a line (true at the start).
    at_line_start: bool,
    /// The offsets (in the bytes written) of the LFs that end empty lines.
    empty_lines: Vec<u64>,
}

impl<R: std::io::BufRead> LineFeeds<R> {
    pub fn new(inner: R) -> Self {
        LineFeeds {
            inner,
            held_cr: false,
            written: 0,
            at_line_start: true,
            empty_lines: Vec::new(),
        }
    }

    /// How many empty lines follow one another from byte `offset` of what was written.
    pub fn empty_lines_from(&self, offset: u64) -> u64 {
        let first = self.empty_lines.partition_point(|&at| at < offset);
        let run = self.empty_lines[first..]
            .iter()
            .zip(offset..)
            .take_while(|(at, want)| **at == *want)
            .count();
        run as u64
    }

    /// Notes the empty lines among `out`, just written (visiting its line ends only).
    fn note_written(&mut self, out: &[u8]) {
        for i in memchr::memchr_iter(b'\n', out) {
            let starts_line = if i == 0 {
                self.at_line_start
            } else {
                out[i - 1] == b'\n'
            };
            if starts_line {
                self.empty_lines.push(self.written + i as u64);
            }
        }
        if let Some(&last) = out.last() {
            self.at_line_start = last == b'\n';
        }
        self.written += out.len() as u64;
    }
}

/// The line of the file at a position the csv crate reports on a [`LineFeeds`] reader.
pub fn line_at<R: std::io::BufRead>(reader: &csv::Reader<LineFeeds<R>>, position: Option<&csv::Position>) -> u64 {
    position.map_or(0, |p| p.line() + reader.get_ref().empty_lines_from(p.byte()))
}

impl<R: std::io::BufRead> std::io::Read for LineFeeds<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        // Until something is written or the input ends: a chunk holding only a CR writes nothing.
        loop {
            let mut n = 0;
            if self.held_cr {
                let next = self.inner.fill_buf()?.first().copied();
                self.held_cr = false;
                if next != Some(b'\n') {
                    out[0] = b'\r';
                    n = 1;
                }
            }
            let input = self.inner.fill_buf()?;
            if input.is_empty() {
                self.note_written(&out[..n]);
                return Ok(n);
            }
            let mut used = 0;
            while used < input.len() && n < out.len() {
                // Copy up to the next CR in one go; a CR is dropped before an LF, held at the
                // end of the chunk, kept otherwise.
                let room = (out.len() - n).min(input.len() - used);
                let run = memchr::memchr(b'\r', &input[used..used + room]).unwrap_or(room);
                out[n..n + run].copy_from_slice(&input[used..used + run]);
                (n, used) = (n + run, used + run);
                if run == room {
                    break;
                }
                used += 1; // the CR
                match input.get(used) {
                    Some(b'\n') => {}
                    Some(_) => {
                        out[n] = b'\r';
                        n += 1;
                    }
                    None => self.held_cr = true,
                }
            }
            self.inner.consume(used);
            if n > 0 {
                self.note_written(&out[..n]);
                return Ok(n);
            }
        }
    }
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
pub fn header(reader: &mut csv::Reader<CsvFile>, path: &Path, expected: &str) -> Result<Vec<String>, TraceError> {
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
pub fn open_with_header(path: &Path, expected: &[&str]) -> Result<(csv::Reader<CsvFile>, Vec<String>), TraceError> {
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
    reader: &mut csv::Reader<CsvFile>,
    path: &Path,
    skip: bool,
    skipped: &mut SkippedRows,
    mut row: impl FnMut(u64, &csv::StringRecord) -> Result<(), TraceError>,
) -> Result<(), TraceError> {
    let mut rec = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut rec) {
            Ok(true) => {
                let line = line_at(reader, rec.position());
                if let Err(e) = row(line, &rec) {
                    skipped.skip_or_fail(skip, e)?;
                }
            }
            Ok(false) => return Ok(()),
            Err(e) => {
                let line = line_at(reader, e.position());
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

/// A time or duration in seconds: non-negative and at most [`crate::MAX_SECONDS`].
pub fn seconds(text: &str) -> Result<f64, String> {
    let v = non_negative(text)?;
    if v > crate::MAX_SECONDS {
        return Err(format!(
            "`{text}` is out of range; expected seconds from 0 to {:e}",
            crate::MAX_SECONDS
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

impl std::fmt::Display for SkippedRows {
    /// `malformed rows skipped: N` and the first few, one per line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed rows skipped: {}", self.count)?;
        for e in &self.examples {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
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

#[cfg(test)]
mod line_feed_tests {
    use super::{LineFeeds, line_at};
    use std::io::Read;

    /// Reads `input` through LineFeeds in chunks of `chunk` bytes from a reader that hands out
    /// `buf` bytes at a time (so CRs land on every boundary).
    fn through(input: &[u8], buf: usize, chunk: usize) -> Vec<u8> {
        let mut r = LineFeeds::new(std::io::BufReader::with_capacity(buf, input));
        let mut out = Vec::new();
        let mut piece = vec![0u8; chunk];
        loop {
            let n = r.read(&mut piece).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&piece[..n]);
        }
    }

    #[test]
    fn crlf_becomes_lf_and_lone_crs_stay() {
        let input = b"time,func\r\n0.1,a\r\n0.2,b\rc\r\n\r";
        for buf in 1..8 {
            for chunk in 1..8 {
                assert_eq!(
                    through(input, buf, chunk),
                    b"time,func\n0.1,a\n0.2,b\rc\n\r",
                    "{buf} {chunk}"
                );
            }
        }
    }

    #[test]
    fn csv_positions_on_crlf_files_are_the_lines_of_the_file() {
        let text = b"time,func\r\n0.1,a\r\n0.2,zzz\r\n";
        let mut r = csv::ReaderBuilder::new().from_reader(LineFeeds::new(&text[..]));
        let lines: Vec<u64> = r.records().map(|rec| rec.unwrap().position().unwrap().line()).collect();
        assert_eq!(lines, vec![2, 3]);
    }

    #[test]
    fn positions_after_empty_lines_are_the_lines_of_the_file() {
        let text = b"\ntime,func\r\n0.1,a\n\n\r\n0.2,b\n\n0.3,c\n\n";
        for buf in 1..6 {
            let bytes = std::io::BufReader::with_capacity(buf, &text[..]);
            let mut r = csv::ReaderBuilder::new()
                .buffer_capacity(buf.max(2))
                .from_reader(LineFeeds::new(bytes));
            let mut lines = vec![];
            let mut rec = csv::StringRecord::new();
            while r.read_record(&mut rec).unwrap() {
                lines.push(line_at(&r, rec.position()));
            }
            assert_eq!(lines, vec![3, 6, 8], "buffer {buf}");
        }
    }
}
