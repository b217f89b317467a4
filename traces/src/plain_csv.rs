//! The plain invocation CSV: `time,func[,duration]`, seconds, sorted by time.
//!
//! `time` is the arrival time in seconds from the start of the run; `func` names one of the
//! scenario's functions; `duration` (optional column, optional per row) overrides the profile's
//! uncontended execution time in seconds. Rows are read one at a time, so a file of any length
//! streams in constant memory. Every malformed row is an error naming the file, line and field,
//! or, with `skip_bad_rows`, skipped and counted ([`ArrivalSource::skipped_rows`]).

use crate::line_rows::{LineRows, Next, Row};
use crate::rows::SkippedRows;
use crate::{Arrival, ArrivalSource, TraceError, secs_to_ns};
use std::collections::HashMap;
use std::fs::File;
use std::hash::BuildHasherDefault;
use std::path::{Path, PathBuf};

/// The scenario's function names, looked up once per row: by their FNV-1a hash (names are short
/// and not chosen by an adversary; SipHash cost a few hundred instructions a lookup), then
/// compared byte by byte. Names whose hashes collide go to a second table.
struct Names {
    by_hash: HashMap<u64, u32, BuildHasherDefault<HashIsKey>>,
    names: Vec<Box<[u8]>>,
    collided: HashMap<Box<[u8]>, u32>,
}

impl Names {
    fn new(functions: &[String]) -> Self {
        let mut names = Names {
            by_hash: HashMap::default(),
            names: functions.iter().map(|n| n.as_bytes().into()).collect(),
            collided: HashMap::new(),
        };
        for (i, n) in functions.iter().enumerate() {
            if let Some(other) = names.by_hash.insert(crate::rng::fnv1a(n.as_bytes()), i as u32) {
                names
                    .collided
                    .insert(functions[other as usize].as_bytes().into(), other);
                names.collided.insert(n.as_bytes().into(), i as u32);
            }
        }
        names
    }

    fn get(&self, name: &[u8]) -> Option<u32> {
        if let Some(&i) = self.by_hash.get(&crate::rng::fnv1a(name)) {
            let known = &self.names[i as usize];
            if known.len() == name.len() && known.iter().zip(name).all(|(a, b)| a == b) {
                return Some(i);
            }
        }
        self.collided.get(name).copied()
    }

    fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.names.iter().map(|n| &n[..])
    }
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct HashIsKey(u64);

impl std::hash::Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = crate::rng::fnv1a(bytes);
    }
    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// Streams arrivals from a plain `time,func[,duration]` CSV file.
pub struct PlainCsvSource {
    path: PathBuf,
    rows: LineRows<File>,
    row: Row,
    names: Names,
    duration_col: Option<usize>,
    last_time: f64,
    skip_bad_rows: bool,
    skipped: SkippedRows,
}

impl PlainCsvSource {
    /// Opens `path`; `functions` are the scenario's function names, in order. With
    /// `skip_bad_rows`, a malformed row is skipped and counted instead of ending the read.
    pub fn open(path: &Path, functions: &[String], skip_bad_rows: bool) -> Result<Self, TraceError> {
        let io = |source| TraceError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let mut rows = LineRows::new(file);
        let header_err = |message: String| TraceError::Row {
            path: path.to_owned(),
            line: 1,
            field: "header".into(),
            message,
        };
        let mut row = Row::default();
        let cols: Vec<String> = match rows.next(&mut row).map_err(io)? {
            Next::Row => (0..row.len())
                .map(|i| rows.field(&row, i).map(|f| f.trim().to_string()))
                .collect::<Result<_, _>>()
                .map_err(|m| header_err(format!("the header {m}")))?,
            Next::Bad(_, message) => return Err(header_err(message)),
            Next::End => Vec::new(),
        };
        let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
        let duration_col = match cols.as_slice() {
            ["time", "func"] => None,
            ["time", "func", "duration"] => Some(2),
            [] | [""] => {
                return Err(header_err(
                    "the file is empty; expected a header `time,func[,duration]`".into(),
                ));
            }
            _ => {
                return Err(header_err(format!(
                    "found `{}`; expected `time,func` or `time,func,duration`",
                    cols.join(",")
                )));
            }
        };
        let names = Names::new(functions);
        Ok(PlainCsvSource {
            path: path.to_owned(),
            rows,
            row,
            names,
            duration_col,
            last_time: 0.0,
            skip_bad_rows,
            skipped: SkippedRows::default(),
        })
    }

    fn row_err(&self, line: u64, field: &str, message: String) -> TraceError {
        TraceError::Row {
            path: self.path.clone(),
            line,
            field: field.into(),
            message,
        }
    }

    fn known_functions(&self) -> String {
        let mut names: Vec<std::borrow::Cow<'_, str>> = self.names.keys().map(|n| String::from_utf8_lossy(n)).collect();
        names.sort_unstable();
        let shown = names.len().min(8);
        let more = if names.len() > shown {
            format!(", … ({} in all)", names.len())
        } else {
            String::new()
        };
        format!("{}{more}", names[..shown].join(", "))
    }
}

/// `bytes` as an `f64` when they are a plain decimal (`digits[.digits]`, at most 19 digits, at
/// most 22 after the point, a mantissa below 2^53), the common case of a trace; `None`
/// otherwise. Exact: the mantissa and the power of ten are both exact doubles, so one division
/// rounds correctly — the same double as `str::parse` gives (Clinger's fast path, which
/// `str::parse` takes itself after its slower scan).
pub fn plain_decimal(bytes: &[u8]) -> Option<f64> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ];
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let (mut mantissa, mut point) = (0u64, None);
    for (i, &b) in bytes.iter().enumerate() {
        let digit = b.wrapping_sub(b'0');
        if digit < 10 {
            // Wraps only past 19 digits, which are refused below.
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
        } else if b == b'.' && point.is_none() {
            point = Some(i);
        } else {
            return None;
        }
    }
    let digits = bytes.len() - usize::from(point.is_some());
    let frac = point.map_or(0, |p| bytes.len() - p - 1);
    if digits == 0 || digits > 19 || mantissa >= 1 << 53 || frac >= POW10.len() {
        return None;
    }
    Some(mantissa as f64 / POW10[frac])
}

/// Field `i` of `row` without the whitespace around it (what `str::trim` removes), as bytes:
/// ASCII whitespace trimmed byte by byte, Unicode only when a field ends in a non-ASCII byte.
fn trimmed<'a>(rows: &'a LineRows<File>, row: &'a Row, i: usize) -> Result<&'a [u8], String> {
    let is_space = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r');
    let bytes = rows.bytes(row, i);
    // The common case: nothing to trim, ASCII at both ends.
    if let (Some(first), Some(last)) = (bytes.first(), bytes.last()) {
        if !is_space(first) && !is_space(last) && *first < 0x80 && *last < 0x80 {
            return Ok(bytes);
        }
    }
    let start = bytes.iter().position(|c| !is_space(c)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|c| !is_space(c)).map_or(start, |e| e + 1);
    let field = &bytes[start..end];
    if field.first().is_some_and(|&c| c >= 0x80) || field.last().is_some_and(|&c| c >= 0x80) {
        return Ok(rows.field(row, i)?.trim().as_bytes());
    }
    Ok(field)
}

/// The error for a field that is not UTF-8.
fn not_utf8(bytes: &[u8]) -> String {
    format!("`{}` is not valid UTF-8", String::from_utf8_lossy(bytes))
}

/// Parses a seconds value: finite and non-negative (or positive when `positive`).
fn parse_secs(bytes: &[u8], positive: bool) -> Result<f64, String> {
    let want = if positive {
        "a positive number of seconds"
    } else {
        "a non-negative number of seconds"
    };
    let v = match plain_decimal(bytes) {
        Some(v) => v,
        None => {
            let text = std::str::from_utf8(bytes).map_err(|_| not_utf8(bytes))?;
            text.parse()
                .map_err(|_| format!("`{text}` is not a number; expected {want}"))?
        }
    };
    if !v.is_finite() || v < 0.0 || (positive && v == 0.0) || v > crate::MAX_SECONDS {
        return Err(format!(
            "`{}` is out of range; expected {want}, at most {:e}",
            String::from_utf8_lossy(bytes),
            crate::MAX_SECONDS
        ));
    }
    Ok(v)
}

impl PlainCsvSource {
    /// The time in seconds and the arrival of the record just read, on `line`.
    fn parse_row(&self) -> Result<(f64, Arrival), TraceError> {
        let (row, line) = (&self.row, self.row.line);
        let want_cols = if self.duration_col.is_some() { 3 } else { 2 };
        if row.len() != want_cols {
            return Err(self.row_err(
                line,
                "row",
                format!("has {} fields; the header has {want_cols}", row.len()),
            ));
        }
        let field = |i: usize, name: &str| trimmed(&self.rows, row, i).map_err(|m| self.row_err(line, name, m));
        let time = parse_secs(field(0, "time")?, false).map_err(|m| self.row_err(line, "time", m))?;
        if time < self.last_time {
            return Err(self.row_err(
                line,
                "time",
                format!(
                    "{time} is earlier than the previous row's {}; rows must be sorted by time",
                    self.last_time
                ),
            ));
        }
        let name = field(1, "func")?;
        let Some(func) = self.names.get(name) else {
            let name = std::str::from_utf8(name).map_err(|_| self.row_err(line, "func", not_utf8(name)))?;
            let msg = format!(
                "unknown function `{name}`; the scenario defines: {}",
                self.known_functions()
            );
            return Err(self.row_err(line, "func", msg));
        };
        let duration = match self.duration_col.map(|c| field(c, "duration")).transpose()? {
            None | Some(b"") => None,
            Some(text) => Some(secs_to_ns(
                parse_secs(text, true).map_err(|m| self.row_err(line, "duration", m))?,
            )),
        };
        let arrival = Arrival {
            time: secs_to_ns(time),
            func,
            duration,
        };
        Ok((time, arrival))
    }
}

impl ArrivalSource for PlainCsvSource {
    fn next_arrival(&mut self) -> Result<Option<Arrival>, TraceError> {
        loop {
            let read = self.rows.next(&mut self.row).map_err(|source| TraceError::Io {
                path: self.path.clone(),
                source,
            })?;
            let parsed = match read {
                Next::End => return Ok(None),
                Next::Row => self.parse_row(),
                Next::Bad(line, message) => Err(self.row_err(line, "row", message)),
            };
            match parsed {
                Ok((time, arrival)) => {
                    self.last_time = time;
                    return Ok(Some(arrival));
                }
                Err(e) => self.skipped.skip_or_fail(self.skip_bad_rows, e)?,
            }
        }
    }

    fn skipped_rows(&self) -> Option<&SkippedRows> {
        Some(&self.skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(content: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("inv.csv");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(content.as_bytes())
            .unwrap();
        (dir, path)
    }

    /// A tiny self-cleaning temporary directory (no extra crate for one test helper).
    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "gpushare-traces-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn names() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn read_all(content: &str) -> Result<Vec<Arrival>, TraceError> {
        let (_d, p) = write(content);
        let mut src = PlainCsvSource::open(&p, &names(), false)?;
        let mut out = vec![];
        while let Some(a) = src.next_arrival()? {
            out.push(a);
        }
        Ok(out)
    }

    fn err_of(content: &str) -> String {
        read_all(content).unwrap_err().to_string()
    }

    #[test]
    fn reads_rows_with_and_without_duration() {
        let got = read_all("time,func,duration\n0.5,a,\n1.25,b,0.002\n").unwrap();
        assert_eq!(
            got,
            vec![
                Arrival {
                    time: 500_000_000,
                    func: 0,
                    duration: None
                },
                Arrival {
                    time: 1_250_000_000,
                    func: 1,
                    duration: Some(2_000_000)
                },
            ]
        );
        assert_eq!(read_all("time,func\n3,a\n").unwrap().len(), 1);
    }

    #[test]
    fn errors_name_line_and_field() {
        assert!(err_of("time,func\n1,a\n0.5,b\n").contains(":3: field `time`: 0.5 is earlier"));
        assert!(
            err_of("time,func\n1,zzz\n")
                .contains(":2: field `func`: unknown function `zzz`; the scenario defines: a, b")
        );
        assert!(err_of("time,func\nabc,a\n").contains(":2: field `time`: `abc` is not a number"));
        assert!(err_of("time,func\n-1,a\n").contains(":2: field `time`: `-1` is out of range"));
        assert!(err_of("time,func\nNaN,a\n").contains("out of range"));
        assert!(err_of("time,func,duration\n1,a,0\n").contains(":2: field `duration`: `0` is out of range"));
        assert!(err_of("time,fn\n1,a\n").contains(":1: field `header`: found `time,fn`"));
        assert!(err_of("").contains(":1: field `header`: the file is empty"));
        assert!(err_of("time,func\n1,a,3\n").contains(":2: field `row`: has 3 fields"));
        assert!(err_of("time,func\n1\n").contains(":2: field `row`: has 1 fields"));
    }

    #[test]
    fn fields_and_header_are_trimmed_where_read() {
        let got = read_all(" time , func , duration \n 0.5 , a ,  \n1.25,b , 0.002\n").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].time, got[0].func, got[0].duration), (500_000_000, 0, None));
        assert_eq!((got[1].func, got[1].duration), (1, Some(2_000_000)));
        assert!(err_of("time,func\n1, zzz \n").contains("unknown function `zzz`"));
    }

    #[test]
    fn lines_after_empty_lines_are_the_lines_of_the_file() {
        assert!(err_of("time,func\n0.1,a\n\n\n0.2,zz\n").contains(":5: field `func`"));
        assert!(err_of("time,func\r\n\r\n0.1,zz\r\n").contains(":3: field `func`"));
    }

    #[test]
    fn skipping_counts_each_bad_row_and_keeps_the_rest() {
        let (_d, p) = write("time,func\n0.1,a\nx,a\n0.3,zz\n\n0.2,b\n0.05,a\n0.4,b,7\n0.5,a\n");
        let mut src = PlainCsvSource::open(&p, &names(), true).unwrap();
        let mut times = vec![];
        while let Some(a) = src.next_arrival().unwrap() {
            times.push(a.time);
        }
        assert_eq!(times, vec![100_000_000, 200_000_000, 500_000_000]);
        let skipped = src.skipped_rows().unwrap();
        assert_eq!(skipped.count, 4);
        let lines: Vec<&str> = skipped
            .examples
            .iter()
            .map(|e| e.split(": field").next().unwrap())
            .collect();
        let at = |n: u32| format!("{}:{n}", p.display());
        assert_eq!(lines, vec![at(3), at(4), at(7), at(8)]);
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let e = PlainCsvSource::open(Path::new("/nonexistent/x.csv"), &names(), false)
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("/nonexistent/x.csv: "));
    }
}
