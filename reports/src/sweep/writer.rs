//! A sweep's tables written as its rows arrive, in run order, in memory that does not grow with
//! the number of runs: the same bytes [`super::table`] describes, whatever the number of runs.
//!
//! - `summary.csv` is written point by point: a point's seeds are consecutive runs, so a point
//!   is complete when the first row of the next one (or the end) arrives. Only the current
//!   point's values are held (its seeds × its metrics).
//! - `runs.csv` has one column per metric seen in any run, in first-seen order, so its header
//!   is known only at the end. Its rows go to a spool file as they arrive, each with the number
//!   of metric columns known then; at the end the header is written and the rows copied after
//!   it, each padded with the empty cells of the metrics first seen after it (new metrics only
//!   ever add columns at the end).
//! - `sweep.json` last.
//!
//! Every table is written under a temporary name and renamed when complete ([`crate::atomic`]);
//! a writer dropped before [`TableWriter::finish`] (a run failed) leaves no table behind, and
//! the spool is unlinked as soon as it is opened where the system allows (else removed on drop).

use super::stats::aggregate;
use super::table::{RunRow, SweepInfo, record_bytes, write_info};
use crate::atomic::AtomicFile;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The rows of `runs.csv` before its header is known: each as (metric columns it has, length
/// of its CSV record, the record), the numbers as little-endian `u32`.
struct Spool {
    out: BufWriter<File>,
    /// The spool's path while it still has one (where it could not be unlinked while open).
    path: Option<PathBuf>,
}

impl Spool {
    fn create(dir: &Path) -> io::Result<Spool> {
        let path = dir.join(".runs.csv.spool");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        // Unlinked while open (Unix): nothing is left behind even if the process is killed.
        let path = std::fs::remove_file(&path).err().map(|_| path);
        Ok(Spool {
            out: BufWriter::with_capacity(1 << 16, file),
            path,
        })
    }

    fn push(&mut self, columns: usize, record: &[u8]) -> io::Result<()> {
        let too_big = |what: &str| io::Error::other(format!("a runs.csv row with too many {what}"));
        let columns = u32::try_from(columns).map_err(|_| too_big("metrics"))?;
        let len = u32::try_from(record.len()).map_err(|_| too_big("bytes"))?;
        self.out.write_all(&columns.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(record)
    }

    /// Copies every row into `to`, each padded with empty cells to `columns` metric columns.
    fn copy_padded(&mut self, columns: usize, to: &mut impl Write) -> io::Result<()> {
        self.out.flush()?;
        let file = self.out.get_mut();
        file.seek(SeekFrom::Start(0))?;
        let mut input = BufReader::with_capacity(1 << 16, &*file);
        let mut record = Vec::new();
        let mut word = [0u8; 4];
        loop {
            match input.read_exact(&mut word) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                other => other?,
            }
            let had = u32::from_le_bytes(word) as usize;
            input.read_exact(&mut word)?;
            record.resize(u32::from_le_bytes(word) as usize, 0);
            input.read_exact(&mut record)?;
            if had == columns {
                to.write_all(&record)?;
            } else {
                // The record ends with the writer's terminator, `\n`; the missing cells go
                // before it.
                let body = record
                    .strip_suffix(b"\n")
                    .ok_or_else(|| io::Error::other("a spooled runs.csv row without its line end"))?;
                to.write_all(body)?;
                to.write_all(&b",".repeat(columns - had))?;
                to.write_all(b"\n")?;
            }
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The runs of the point being written to `summary.csv`.
struct PointRuns {
    point: usize,
    labels: Vec<String>,
    /// Each metric's values over the point's runs, in run order, by metric number.
    values: Vec<Vec<f64>>,
}

/// Writes a sweep's tables (`runs.csv`, `summary.csv`, `sweep.json`) from rows given in run
/// order.
pub struct TableWriter {
    dir: PathBuf,
    axes: Vec<String>,
    /// Metric names in first-seen order, and each one's number.
    names: Vec<String>,
    number: HashMap<String, usize>,
    spool: Spool,
    summary: AtomicFile,
    point: Option<PointRuns>,
    last_run: Option<usize>,
}

impl TableWriter {
    /// Starts the tables of `info`'s sweep in `dir`.
    pub fn create(dir: &Path, info: &SweepInfo) -> io::Result<TableWriter> {
        let axes: Vec<String> = info.axes.iter().map(|a| a.key.clone()).collect();
        let mut summary = AtomicFile::create(&dir.join("summary.csv"))
            .map_err(|e| io::Error::new(e.kind(), format!("summary.csv: {e}")))?;
        let mut header = vec!["point".to_string()];
        header.extend(axes.iter().cloned());
        for h in ["metric", "n", "mean", "std", "ci95_low", "ci95_high", "min", "max"] {
            header.push(h.into());
        }
        summary.writer().write_all(&record_bytes(&header)?)?;
        Ok(TableWriter {
            dir: dir.to_owned(),
            axes,
            names: Vec::new(),
            number: HashMap::new(),
            spool: Spool::create(dir)?,
            summary,
            point: None,
            last_run: None,
        })
    }

    /// Adds `row`, which must come after every row added before it.
    pub fn push(&mut self, row: &RunRow) -> io::Result<()> {
        if self.last_run.is_some_and(|last| row.run <= last) {
            return Err(io::Error::other(format!(
                "run {} came after run {}: a sweep's rows are written in run order",
                row.run,
                self.last_run.unwrap_or_default()
            )));
        }
        self.last_run = Some(row.run);
        // Each metric's first value in the row, by metric number.
        let mut cells: Vec<Option<f64>> = vec![None; self.names.len()];
        for (m, v) in &row.metrics {
            let k = match self.number.get(m) {
                Some(&k) => k,
                None => {
                    self.names.push(m.clone());
                    self.number.insert(m.clone(), self.names.len() - 1);
                    cells.push(None);
                    self.names.len() - 1
                }
            };
            cells[k].get_or_insert(*v);
        }
        let mut rec = vec![
            row.run.to_string(),
            row.point.to_string(),
            row.replicate.to_string(),
            row.seed.to_string(),
        ];
        rec.extend(row.labels.iter().cloned());
        rec.extend(cells.iter().map(|c| c.map(|v| v.to_string()).unwrap_or_default()));
        self.spool.push(cells.len(), &record_bytes(&rec)?)?;
        if self.point.as_ref().is_some_and(|p| p.point != row.point) {
            self.write_point()?;
        }
        let point = self.point.get_or_insert_with(|| PointRuns {
            point: row.point,
            labels: row.labels.clone(),
            values: Vec::new(),
        });
        point.values.resize_with(cells.len(), Vec::new);
        for (k, v) in cells.iter().enumerate() {
            if let Some(v) = v {
                point.values[k].push(*v);
            }
        }
        Ok(())
    }

    /// Writes the point being collected to `summary.csv`: a line per metric it has, in
    /// first-seen order over the sweep (a metric's number is that order).
    fn write_point(&mut self) -> io::Result<()> {
        let Some(p) = self.point.take() else {
            return Ok(());
        };
        for (k, values) in p.values.iter().enumerate() {
            if values.is_empty() {
                continue;
            }
            let a = aggregate(values);
            let mut rec = vec![p.point.to_string()];
            rec.extend(p.labels.iter().cloned());
            rec.push(self.names[k].clone());
            rec.push(a.n.to_string());
            for x in [a.mean, a.std, a.ci95_low, a.ci95_high, a.min, a.max] {
                rec.push(x.to_string());
            }
            self.summary.append(&record_bytes(&rec)?)?;
        }
        Ok(())
    }

    /// Writes `runs.csv` (header, then the spooled rows), completes `summary.csv`, then writes
    /// `sweep.json`.
    pub fn finish(mut self, info: &SweepInfo) -> io::Result<()> {
        self.write_point()?;
        let named = |file: &str, e: io::Error| io::Error::new(e.kind(), format!("{file}: {e}"));
        let mut runs = AtomicFile::create(&self.dir.join("runs.csv")).map_err(|e| named("runs.csv", e))?;
        let mut header: Vec<String> = ["run", "point", "replicate", "seed"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        header.extend(self.axes.iter().cloned());
        header.extend(self.names.iter().cloned());
        let out = runs.writer();
        out.write_all(&record_bytes(&header)?)
            .and_then(|()| self.spool.copy_padded(self.names.len(), out))
            .map_err(|e| named("runs.csv", e))?;
        runs.commit().map_err(|e| named("runs.csv", e))?;
        self.summary.commit().map_err(|e| named("summary.csv", e))?;
        write_info(&self.dir, info)
    }
}

/// Writes the tables of `rows` (in run order) into `dir`.
pub fn write_tables(dir: &Path, info: &SweepInfo, rows: &[RunRow]) -> io::Result<()> {
    let mut w = TableWriter::create(dir, info)?;
    for r in rows {
        w.push(r)?;
    }
    w.finish(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::table::AxisInfo;

    /// `runs.csv` and `summary.csv` as written before the tables streamed: from every row at
    /// once, with the metric columns over all rows in first-seen order.
    fn whole_tables(info: &SweepInfo, rows: &[RunRow]) -> (Vec<u8>, Vec<u8>) {
        let mut names: Vec<String> = Vec::new();
        for r in rows {
            for (m, _) in &r.metrics {
                if !names.contains(m) {
                    names.push(m.clone());
                }
            }
        }
        let first = |r: &RunRow, n: &str| r.metrics.iter().find(|(m, _)| m == n).map(|(_, v)| *v);
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = ["run", "point", "replicate", "seed"].map(String::from).to_vec();
        header.extend(info.axes.iter().map(|a| a.key.clone()));
        header.extend(names.iter().cloned());
        w.write_record(&header).unwrap();
        for r in rows {
            let mut rec = vec![
                r.run.to_string(),
                r.point.to_string(),
                r.replicate.to_string(),
                r.seed.to_string(),
            ];
            rec.extend(r.labels.iter().cloned());
            rec.extend(
                names
                    .iter()
                    .map(|n| first(r, n).map(|v| v.to_string()).unwrap_or_default()),
            );
            w.write_record(&rec).unwrap();
        }
        let runs = w.into_inner().unwrap();
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["point".to_string()];
        header.extend(info.axes.iter().map(|a| a.key.clone()));
        header.extend(["metric", "n", "mean", "std", "ci95_low", "ci95_high", "min", "max"].map(String::from));
        w.write_record(&header).unwrap();
        let mut points: Vec<usize> = rows.iter().map(|r| r.point).collect();
        points.dedup();
        for p in points {
            let of_p: Vec<&RunRow> = rows.iter().filter(|r| r.point == p).collect();
            for n in &names {
                let values: Vec<f64> = of_p.iter().filter_map(|r| first(r, n)).collect();
                if values.is_empty() {
                    continue;
                }
                let a = aggregate(&values);
                let mut rec = vec![p.to_string()];
                rec.extend(of_p[0].labels.iter().cloned());
                rec.extend([n.clone(), a.n.to_string()]);
                rec.extend([a.mean, a.std, a.ci95_low, a.ci95_high, a.min, a.max].map(|x| x.to_string()));
                w.write_record(&rec).unwrap();
            }
        }
        (runs, w.into_inner().unwrap())
    }

    /// A sweep of `points` points × `seeds` seeds (every `skip`-th run left out, as a shard
    /// leaves runs out) whose runs have different metrics: some only in later runs (so earlier
    /// rows need empty cells added), some missing from some runs, one twice in a row (the first
    /// value counts), and labels that need quoting.
    fn rows(points: usize, seeds: usize, skip: usize) -> (SweepInfo, Vec<RunRow>) {
        let labels = ["plain", "with,comma", "with \"quote\"", "two\nlines"];
        let info = SweepInfo {
            scenario: "t".into(),
            file: "t.toml".into(),
            overrides: Vec::new(),
            axes: vec![AxisInfo {
                key: "a".into(),
                labels: labels.iter().map(|s| s.to_string()).collect(),
            }],
            seeds: (0..seeds as u64).collect(),
            points,
            runs: points * seeds,
            shard: None,
        };
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = Vec::new();
        for run in (0..points * seeds).filter(|k| skip == 0 || k % skip != 1) {
            let mut metrics = Vec::new();
            for m in 0..(3 + run / 3).min(12) {
                if next() % 4 != 0 {
                    metrics.push((format!("m{m}"), (next() % 1000) as f64 / 7.0));
                }
            }
            if run % 5 == 2 {
                metrics.push(("m0".into(), -1.0));
                metrics.insert(0, ("late".into(), 0.5));
            }
            out.push(RunRow {
                run,
                point: run / seeds,
                replicate: (run % seeds) as u32,
                seed: (run % seeds) as u64,
                labels: vec![labels[(run / seeds) % labels.len()].to_string()],
                metrics,
            });
        }
        (info, out)
    }

    #[test]
    fn streamed_tables_are_the_whole_tables() {
        for (points, seeds, skip) in [(1, 1, 0), (7, 3, 0), (12, 1, 0), (9, 4, 3), (40, 2, 0)] {
            let (info, rows) = rows(points, seeds, skip);
            let dir = gpushare_traces::tempdir::TempDir::new("sweep-writer").unwrap();
            write_tables(dir.path(), &info, &rows).unwrap();
            let (runs, summary) = whole_tables(&info, &rows);
            let read = |f: &str| std::fs::read(dir.path().join(f)).unwrap();
            assert_eq!(
                String::from_utf8(read("runs.csv")).unwrap(),
                String::from_utf8(runs).unwrap()
            );
            assert_eq!(
                String::from_utf8(read("summary.csv")).unwrap(),
                String::from_utf8(summary).unwrap()
            );
            let left: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !["runs.csv", "summary.csv", "sweep.json"].contains(&n.as_str()))
                .collect();
            assert!(left.is_empty(), "left behind: {left:?}");
        }
        // The test's rows do give the first row columns it lacks (first seen later).
        let (_, rows) = rows(7, 3, 0);
        let has = |r: &RunRow, m: &str| r.metrics.iter().any(|(n, _)| n == m);
        assert!(rows.iter().any(|r| r.metrics.iter().any(|(m, _)| !has(&rows[0], m))));
    }

    #[test]
    fn rows_out_of_order_are_refused_and_nothing_is_left() {
        let (info, rows) = rows(4, 2, 0);
        let dir = gpushare_traces::tempdir::TempDir::new("sweep-writer-order").unwrap();
        let mut w = TableWriter::create(dir.path(), &info).unwrap();
        w.push(&rows[0]).unwrap();
        w.push(&rows[2]).unwrap();
        let e = w.push(&rows[1]).unwrap_err().to_string();
        assert!(e.contains("run 1 came after run 2"), "{e}");
        drop(w);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "a table was left behind"
        );
    }
}
