//! The plain invocation CSV: `time,func[,duration]`, seconds, sorted by time.
//!
//! `time` is the arrival time in seconds from the start of the run; `func` names one of the
//! scenario's functions; `duration` (optional column, optional per row) overrides the profile's
//! uncontended execution time in seconds. Rows are read one at a time, so a file of any length
//! streams in constant memory. Every malformed row is an error naming the file, line and field,
//! or, with `skip_bad_rows`, skipped and counted ([`ArrivalSource::skipped_rows`]).

use crate::rows::{SkippedRows, line_at};
use crate::{Arrival, ArrivalSource, TraceError, secs_to_ns};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::path::{Path, PathBuf};

/// Function names are short and not chosen by an adversary: FNV-1a instead of the std map's
/// SipHash (a few hundred instructions a lookup, per row).
type Names = HashMap<String, u32, BuildHasherDefault<crate::rng::Fnv1a>>;

/// Streams arrivals from a plain `time,func[,duration]` CSV file.
pub struct PlainCsvSource {
    path: PathBuf,
    reader: csv::Reader<crate::rows::CsvFile>,
    record: csv::StringRecord,
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
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            // Fields are trimmed where they are read: the csv crate's own trimming rebuilds every
            // record (twice, with an allocation each), most of a row's cost.
            .flexible(true)
            .from_reader(crate::rows::open_lines(path)?);
        let header_err = |message: String| TraceError::Row {
            path: path.to_owned(),
            line: 1,
            field: "header".into(),
            message,
        };
        let headers = reader.headers().map_err(|e| header_err(e.to_string()))?.clone();
        let cols: Vec<&str> = headers.iter().map(str::trim).collect();
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
        let names = functions
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        Ok(PlainCsvSource {
            path: path.to_owned(),
            reader,
            record: csv::StringRecord::new(),
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
        let mut names: Vec<&str> = self.names.keys().map(String::as_str).collect();
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

/// Parses a seconds value: finite and non-negative (or positive when `positive`).
fn parse_secs(text: &str, positive: bool) -> Result<f64, String> {
    let want = if positive {
        "a positive number of seconds"
    } else {
        "a non-negative number of seconds"
    };
    let v: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number; expected {want}"))?;
    if !v.is_finite() || v < 0.0 || (positive && v == 0.0) || v > crate::MAX_SECONDS {
        return Err(format!(
            "`{text}` is out of range; expected {want}, at most {:e}",
            crate::MAX_SECONDS
        ));
    }
    Ok(v)
}

impl PlainCsvSource {
    /// The time in seconds and the arrival of the record just read, on `line`.
    fn parse_row(&self, line: u64) -> Result<(f64, Arrival), TraceError> {
        let want_cols = if self.duration_col.is_some() { 3 } else { 2 };
        if self.record.len() != want_cols {
            return Err(self.row_err(
                line,
                "row",
                format!("has {} fields; the header has {want_cols}", self.record.len()),
            ));
        }
        let time = parse_secs(self.record[0].trim(), false).map_err(|m| self.row_err(line, "time", m))?;
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
        let Some(&func) = self.names.get(self.record[1].trim()) else {
            let msg = format!(
                "unknown function `{}`; the scenario defines: {}",
                self.record[1].trim(),
                self.known_functions()
            );
            return Err(self.row_err(line, "func", msg));
        };
        let duration = match self.duration_col.map(|c| self.record[c].trim()) {
            None | Some("") => None,
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
            let read = self.reader.read_record(&mut self.record);
            let parsed = match read {
                Ok(false) => return Ok(None),
                Ok(true) => self.parse_row(line_at(&self.reader, self.record.position())),
                Err(e) => Err(self.row_err(line_at(&self.reader, e.position()), "row", e.to_string())),
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
