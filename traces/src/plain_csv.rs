//! The plain invocation CSV: `time,func[,duration]`, seconds, sorted by time.
//!
//! `time` is the arrival time in seconds from the start of the run; `func` names one of the
//! scenario's functions; `duration` (optional column, optional per row) overrides the profile's
//! uncontended execution time in seconds. Rows are read one at a time, so a file of any length
//! streams in constant memory. Every malformed row is an error naming the file, line and field.

use crate::{Arrival, ArrivalSource, TraceError, secs_to_ns};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Streams arrivals from a plain `time,func[,duration]` CSV file.
pub struct PlainCsvSource {
    path: PathBuf,
    reader: csv::Reader<crate::rows::CsvFile>,
    record: csv::StringRecord,
    names: HashMap<String, u32>,
    duration_col: Option<usize>,
    last_time: f64,
}

impl PlainCsvSource {
    /// Opens `path`; `functions` are the scenario's function names, in order.
    pub fn open(path: &Path, functions: &[String]) -> Result<Self, TraceError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(crate::rows::open_lines(path)?);
        let header_err = |message: String| TraceError::Row {
            path: path.to_owned(),
            line: 1,
            field: "header".into(),
            message,
        };
        let headers = reader.headers().map_err(|e| header_err(e.to_string()))?.clone();
        let cols: Vec<&str> = headers.iter().collect();
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

impl ArrivalSource for PlainCsvSource {
    fn next_arrival(&mut self) -> Result<Option<Arrival>, TraceError> {
        let more = self.reader.read_record(&mut self.record).map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            self.row_err(line, "row", e.to_string())
        })?;
        if !more {
            return Ok(None);
        }
        let line = self.record.position().map_or(0, |p| p.line());
        let want_cols = if self.duration_col.is_some() { 3 } else { 2 };
        if self.record.len() != want_cols {
            return Err(self.row_err(
                line,
                "row",
                format!("has {} fields; the header has {want_cols}", self.record.len()),
            ));
        }
        let time = parse_secs(&self.record[0], false).map_err(|m| self.row_err(line, "time", m))?;
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
        self.last_time = time;
        let func = match self.names.get(&self.record[1]) {
            Some(&f) => f,
            None => {
                let msg = format!(
                    "unknown function `{}`; the scenario defines: {}",
                    &self.record[1],
                    self.known_functions()
                );
                return Err(self.row_err(line, "func", msg));
            }
        };
        let duration = match self.duration_col.map(|c| &self.record[c]) {
            None | Some("") => None,
            Some(text) => Some(secs_to_ns(
                parse_secs(text, true).map_err(|m| self.row_err(line, "duration", m))?,
            )),
        };
        Ok(Some(Arrival {
            time: secs_to_ns(time),
            func,
            duration,
        }))
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
        let mut src = PlainCsvSource::open(&p, &names())?;
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
    fn missing_file_is_an_io_error() {
        let e = PlainCsvSource::open(Path::new("/nonexistent/x.csv"), &names())
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("/nonexistent/x.csv: "));
    }
}
