//! Reading and joining the three file kinds of an Azure Functions 2019 trace.
//!
//! Functions are keyed on (HashOwner, HashApp, HashFunction): a function hash alone is not unique.
//! Per-minute counts are kept sparsely (only minutes with invocations, only inside the selected
//! window), so memory grows with functions and active minutes, never with invocation counts.
//! Every kind of dirt the real dataset has is counted in [`CleaningReport`], never dropped
//! silently.

use super::files::TraceFiles;
use super::layout::{DurationColumns, InvocationColumns, MemoryColumns, NO_TRIGGER};
use crate::TraceError;
use crate::rows::{CsvFile, SkippedRows, each_row, header, non_negative, open_csv, row_error};
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;

/// Minutes in a day.
pub const MINUTES_PER_DAY: u32 = 1440;

/// The header of a durations file.
pub const DURATIONS_HEADER: [&str; 14] = [
    "HashOwner",
    "HashApp",
    "HashFunction",
    "Average",
    "Count",
    "Minimum",
    "Maximum",
    "percentile_Average_0",
    "percentile_Average_1",
    "percentile_Average_25",
    "percentile_Average_50",
    "percentile_Average_75",
    "percentile_Average_99",
    "percentile_Average_100",
];

/// The header of a memory file (per app).
pub const MEMORY_HEADER: [&str; 12] = [
    "HashOwner",
    "HashApp",
    "SampleCount",
    "AverageAllocatedMb",
    "AverageAllocatedMb_pct1",
    "AverageAllocatedMb_pct5",
    "AverageAllocatedMb_pct25",
    "AverageAllocatedMb_pct50",
    "AverageAllocatedMb_pct75",
    "AverageAllocatedMb_pct95",
    "AverageAllocatedMb_pct99",
    "AverageAllocatedMb_pct100",
];

/// The trigger values of the dataset.
pub const TRIGGERS: [&str; 7] = ["http", "timer", "event", "queue", "storage", "orchestration", "others"];

/// A function's identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionKey {
    pub owner: String,
    pub app: String,
    pub function: String,
}

/// Published duration statistics of one function (milliseconds; percentiles of 30-second
/// averages).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DurationStats {
    pub average: f64,
    pub count: f64,
    pub minimum: f64,
    pub maximum: f64,
    /// Percentiles 0, 1, 25, 50, 75, 99, 100.
    pub percentiles: [f64; 7],
}

/// The percentile levels of [`DurationStats::percentiles`].
pub const DURATION_LEVELS: [f64; 7] = [0.0, 0.01, 0.25, 0.50, 0.75, 0.99, 1.0];

/// One function of the trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceFunction {
    pub key: FunctionKey,
    /// One of [`TRIGGERS`], or [`NO_TRIGGER`] where the invocation file has none.
    pub trigger: String,
    /// (minute from the start of day 1, count), minutes with invocations only, ascending.
    pub minutes: Vec<(u32, u32)>,
    /// Invocations in the window.
    pub total: u64,
    pub durations: Option<DurationStats>,
    /// The function's average allocated memory, MB: its own where the memory file is per
    /// function (InVitro's), else its app's divided evenly among the app's invoked functions.
    pub memory_mb: Option<f64>,
}

/// What reading found and did, kind by kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CleaningReport {
    pub days_read: Vec<u32>,
    pub invocation_rows: u64,
    pub duration_rows: u64,
    pub memory_rows: u64,
    /// A (owner, app, function) or (owner, app) row seen again in the same file: the first kept.
    pub duplicate_rows: u64,
    /// Functions with no invocation in the selected window (dropped).
    pub never_invoked: u64,
    /// Duration rows with `Average == 0`.
    pub zero_average: u64,
    /// Invoked functions with no duration row on any day read.
    pub missing_durations: u64,
    /// Duration rows of functions absent from the invocation files (ignored).
    pub durations_without_invocations: u64,
    /// Apps of invoked functions with no memory row.
    pub missing_memory: u64,
    /// Memory rows of apps absent from the invocation files (ignored).
    pub memory_without_invocations: u64,
    /// Days read that have no memory file (the real dataset has memory for days 1–12 only).
    pub days_without_memory: Vec<u32>,
    /// Malformed rows skipped with `skip_bad_rows`.
    pub skipped: SkippedRows,
    /// CSV files of the folder that are not the trace's (their header names no hash).
    pub ignored_files: Vec<String>,
}

impl std::fmt::Display for CleaningReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "days read: {:?}", self.days_read)?;
        writeln!(
            f,
            "rows: {} invocation, {} duration, {} memory",
            self.invocation_rows, self.duration_rows, self.memory_rows
        )?;
        let counts = [
            ("duplicate rows (first kept)", self.duplicate_rows),
            ("functions never invoked in the window (dropped)", self.never_invoked),
            ("duration rows with Average = 0", self.zero_average),
            ("invoked functions without durations", self.missing_durations),
            (
                "duration rows without invocations (ignored)",
                self.durations_without_invocations,
            ),
            ("apps without memory", self.missing_memory),
            (
                "memory rows without invocations (ignored)",
                self.memory_without_invocations,
            ),
        ];
        for (what, n) in counts {
            writeln!(f, "{what}: {n}")?;
        }
        writeln!(f, "days without a memory file: {:?}", self.days_without_memory)?;
        if !self.ignored_files.is_empty() {
            writeln!(
                f,
                "files ignored (not the trace's: no hash in their header): {}",
                self.ignored_files.join(", ")
            )?;
        }
        write!(f, "malformed rows skipped: {}", self.skipped.count)?;
        for e in &self.skipped.examples {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// What to read.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadOptions {
    /// First and last day to read (1-based, inclusive); `None` reads every day present.
    pub days: Option<(u32, u32)>,
    /// Window in minutes from the start of the first day read: (start, length); `None` = all.
    pub window: Option<(u32, u32)>,
    /// Skip and count malformed rows instead of failing.
    pub skip_bad_rows: bool,
}

/// A read trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Azure2019 {
    /// Invoked functions, sorted by key.
    pub functions: Vec<TraceFunction>,
    /// The window actually covered, in minutes from the start of day 1: [start, end).
    pub window: (u32, u32),
    pub report: CleaningReport,
}

fn field_name(i: usize, header: &[String]) -> String {
    header.get(i).cloned().unwrap_or_else(|| format!("column {}", i + 1))
}

/// Refuses reading options that select nothing the trace has: days without an invocation
/// file, a window starting past the `days_read` days the selection covers.
fn check_selection(files: &TraceFiles, opts: &ReadOptions, days_read: u32) -> Result<(), TraceError> {
    if let Some((a, b)) = opts.days
        && !files.invocations.iter().any(|(d, _)| (a..=b).contains(d))
    {
        let have: Vec<String> = files.invocations.iter().map(|(d, _)| d.to_string()).collect();
        return Err(TraceError::Selection {
            option: "days",
            message: format!(
                "days {a}-{b} (--days {a}-{b}, or [workload] days): the trace has no invocation file of those days; it has day(s) {}",
                have.join(", ")
            ),
        });
    }
    if let Some((start, _)) = opts.window
        && start >= days_read * MINUTES_PER_DAY
    {
        return Err(TraceError::Selection {
            option: "start_minute",
            message: format!(
                "start minute {start} (--start-minute, or [workload] start_minute) is past the trace's end: it covers {} minutes, 0 to {}",
                days_read * MINUTES_PER_DAY,
                days_read * MINUTES_PER_DAY - 1
            ),
        });
    }
    Ok(())
}

/// Reads the trace files.
pub fn read(files: &TraceFiles, opts: &ReadOptions) -> Result<Azure2019, TraceError> {
    let mut report = CleaningReport {
        ignored_files: files.ignored.iter().map(|p| p.display().to_string()).collect(),
        ..CleaningReport::default()
    };
    let in_days = |d: u32| opts.days.is_none_or(|(a, b)| d >= a && d <= b);
    let days = || files.invocations.iter().map(|(d, _)| *d).filter(|&d| in_days(d));
    let first_day = days().min().unwrap_or(1);
    let last_day = days().max().unwrap_or(first_day);
    check_selection(files, opts, last_day - first_day + 1)?;
    let base = (first_day - 1) * MINUTES_PER_DAY;
    let (w_start, w_end) = match opts.window {
        Some((start, len)) => (
            base + start,
            (base + start).saturating_add(len).min(last_day * MINUTES_PER_DAY),
        ),
        None => (base, last_day * MINUTES_PER_DAY),
    };

    let mut table: BTreeMap<FunctionKey, TraceFunction> = BTreeMap::new();
    let skip = opts.skip_bad_rows;
    for (day, path) in files.invocations.iter().filter(|(d, _)| in_days(*d)) {
        let day_start = (day - 1) * MINUTES_PER_DAY;
        if day_start + MINUTES_PER_DAY <= w_start || day_start >= w_end {
            continue;
        }
        report.days_read.push(*day);
        let (mut rdr, h, cols) = open_layout(path, InvocationColumns::of)?;
        let mut seen = BTreeSet::new();
        each_row(&mut rdr, path, skip, &mut report.skipped, |line, rec| {
            report.invocation_rows += 1;
            let at = RowAt { path, line, header: &h };
            let (key, trigger, minutes) = parse_invocation_row(&at, rec, &cols, day_start, (w_start, w_end))?;
            if !seen.insert(key.clone()) {
                report.duplicate_rows += 1;
                return Ok(());
            }
            let f = table.entry(key.clone()).or_insert_with(|| TraceFunction {
                key,
                trigger,
                minutes: Vec::new(),
                total: 0,
                durations: None,
                memory_mb: None,
            });
            f.total += minutes.iter().map(|&(_, c)| u64::from(c)).sum::<u64>();
            f.minutes.extend(minutes);
            Ok(())
        })?;
    }
    let before = table.len();
    table.retain(|_, f| f.total > 0);
    report.never_invoked = (before - table.len()) as u64;

    // Durations: the first day (in the range) that has a row for the function.
    for (_, path) in files.durations.iter().filter(|(d, _)| report.days_read.contains(d)) {
        let (mut rdr, h, cols) = open_layout(path, DurationColumns::of)?;
        let mut seen = BTreeSet::new();
        each_row(&mut rdr, path, skip, &mut report.skipped, |line, rec| {
            report.duration_rows += 1;
            let (key, stats) = parse_duration_row(&RowAt { path, line, header: &h }, rec, &cols)?;
            if !seen.insert(key.clone()) {
                report.duplicate_rows += 1;
                return Ok(());
            }
            if stats.average == 0.0 {
                report.zero_average += 1;
            }
            match table.get_mut(&key) {
                Some(f) if f.durations.is_none() => f.durations = Some(stats),
                Some(_) => {}
                None => report.durations_without_invocations += 1,
            }
            Ok(())
        })?;
    }
    report.missing_durations = table.values().filter(|f| f.durations.is_none()).count() as u64;

    read_memory(files, skip, &mut table, &mut report)?;

    Ok(Azure2019 {
        functions: table.into_values().collect(),
        window: (w_start, w_end),
        report,
    })
}

/// Opens `path` and finds its columns with `layout` (an error on its header otherwise).
fn open_layout<T>(
    path: &Path,
    layout: fn(&[String]) -> Result<T, String>,
) -> Result<(csv::Reader<CsvFile>, Vec<String>, T), TraceError> {
    let mut rdr = open_csv(path)?;
    let h = header(&mut rdr, path, "an Azure 2019 header")?;
    let cols = layout(&h).map_err(|m| row_error(path, 1, "header", format!("found `{}…`; {m}", short(&h))))?;
    Ok((rdr, h, cols))
}

fn short(header: &[String]) -> String {
    header.iter().take(5).cloned().collect::<Vec<_>>().join(",")
}

/// Memory of the days read: per app (split evenly over the app's invoked functions), or per
/// function where the file has `HashFunction` (InVitro's).
fn read_memory(
    files: &TraceFiles,
    skip: bool,
    table: &mut BTreeMap<FunctionKey, TraceFunction>,
    report: &mut CleaningReport,
) -> Result<(), TraceError> {
    let mut apps: BTreeMap<(String, String), u32> = BTreeMap::new();
    for f in table.values() {
        *apps.entry((f.key.owner.clone(), f.key.app.clone())).or_default() += 1;
    }
    let mut app_memory: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut function_memory: BTreeMap<FunctionKey, f64> = BTreeMap::new();
    for day in report.days_read.clone() {
        let Some((_, path)) = files.memory.iter().find(|(d, _)| *d == day) else {
            report.days_without_memory.push(day);
            continue;
        };
        let (mut rdr, h, cols) = open_layout(path, MemoryColumns::of)?;
        let mut seen = BTreeSet::new();
        each_row(&mut rdr, path, skip, &mut report.skipped, |line, rec| {
            report.memory_rows += 1;
            if rec.len() != h.len() {
                return Err(row_error(
                    path,
                    line,
                    "row",
                    format!("has {} fields; the header has {}", rec.len(), h.len()),
                ));
            }
            let mb = non_negative(&rec[cols.average_mb]).map_err(|m| row_error(path, line, &h[cols.average_mb], m))?;
            let app = (rec[cols.owner].to_string(), rec[cols.app].to_string());
            let function = cols.function.map(|c| rec[c].to_string());
            if !seen.insert((app.clone(), function.clone())) {
                report.duplicate_rows += 1;
                return Ok(());
            }
            match function {
                Some(function) => {
                    let key = FunctionKey {
                        owner: app.0,
                        app: app.1,
                        function,
                    };
                    if table.contains_key(&key) {
                        function_memory.entry(key).or_insert(mb);
                    } else {
                        report.memory_without_invocations += 1;
                    }
                }
                None if apps.contains_key(&app) => {
                    app_memory.entry(app).or_insert(mb);
                }
                None => report.memory_without_invocations += 1,
            }
            Ok(())
        })?;
    }
    let mut missing_apps = BTreeSet::new();
    for f in table.values_mut() {
        let app = (f.key.owner.clone(), f.key.app.clone());
        f.memory_mb = function_memory
            .get(&f.key)
            .copied()
            .or_else(|| app_memory.get(&app).map(|mb| mb / f64::from(apps[&app])));
        if f.memory_mb.is_none() {
            missing_apps.insert(app);
        }
    }
    report.missing_memory = missing_apps.len() as u64;
    Ok(())
}

/// Where a row is, for its errors.
struct RowAt<'a> {
    path: &'a Path,
    line: u64,
    header: &'a [String],
}

impl RowAt<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> TraceError {
        row_error(self.path, self.line, field, message)
    }

    fn width(&self, rec: &csv::StringRecord, what: &str) -> Result<(), TraceError> {
        if rec.len() == self.header.len() {
            return Ok(());
        }
        Err(self.err(
            "row",
            format!("has {} fields; the header has {}{what}", rec.len(), self.header.len()),
        ))
    }

    fn key(&self, rec: &csv::StringRecord, k: &super::layout::KeyColumns) -> Result<FunctionKey, TraceError> {
        let key = FunctionKey {
            owner: rec[k.owner].to_string(),
            app: rec[k.app].to_string(),
            function: rec[k.function].to_string(),
        };
        for (c, v) in [(k.owner, &key.owner), (k.app, &key.app), (k.function, &key.function)] {
            if v.is_empty() {
                return Err(self.err(&self.header[c], "is empty; expected a hash"));
            }
        }
        Ok(key)
    }
}

type InvocationRow = (FunctionKey, String, Vec<(u32, u32)>);

fn parse_invocation_row(
    at: &RowAt<'_>,
    rec: &csv::StringRecord,
    cols: &InvocationColumns,
    day_start: u32,
    window: (u32, u32),
) -> Result<InvocationRow, TraceError> {
    at.width(rec, " (the hashes, a trigger if any, 1440 minutes)")?;
    let key = at.key(rec, &cols.key)?;
    let trigger = match cols.trigger {
        None => NO_TRIGGER.to_string(),
        Some(c) => {
            let trigger = rec[c].to_string();
            if !TRIGGERS.contains(&trigger.as_str()) && trigger != NO_TRIGGER {
                return Err(at.err(
                    "Trigger",
                    format!("`{trigger}` is not a trigger; expected one of {}", TRIGGERS.join(", ")),
                ));
            }
            trigger
        }
    };
    let mut minutes = Vec::new();
    for m in 0..MINUTES_PER_DAY {
        let col = cols.first_minute + m as usize;
        let text = &rec[col];
        // Counts are almost always plain integers: parse those directly, anything else as f64.
        let v = match text.parse::<u32>() {
            Ok(v) => v,
            Err(_) => {
                let v = non_negative(text).map_err(|msg| at.err(&field_name(col, at.header), msg))?;
                if v.fract() != 0.0 || v > f64::from(u32::MAX) {
                    return Err(at.err(&field_name(col, at.header), format!("`{text}` is not a whole count")));
                }
                v as u32
            }
        };
        let minute = day_start + m;
        if v > 0 && minute >= window.0 && minute < window.1 {
            minutes.push((minute, v));
        }
    }
    Ok((key, trigger, minutes))
}

fn parse_duration_row(
    at: &RowAt<'_>,
    rec: &csv::StringRecord,
    cols: &DurationColumns,
) -> Result<(FunctionKey, DurationStats), TraceError> {
    at.width(rec, "")?;
    let key = at.key(rec, &cols.key)?;
    let mut v = [0.0; 11];
    for (i, (slot, &col)) in v.iter_mut().zip(&cols.stats).enumerate() {
        // Minimum and Maximum may be missing in the real data: read as 0.
        if rec[col].is_empty() && (i == 2 || i == 3) {
            continue;
        }
        *slot = non_negative(&rec[col]).map_err(|m| at.err(&at.header[col], m))?;
    }
    let percentiles = [v[4], v[5], v[6], v[7], v[8], v[9], v[10]];
    if percentiles.windows(2).any(|w| w[1] < w[0]) {
        return Err(at.err(
            "percentile_Average_*",
            "percentiles decrease; expected 0 ≤ p0 ≤ p1 ≤ … ≤ p100",
        ));
    }
    Ok((
        key,
        DurationStats {
            average: v[0],
            count: v[1],
            minimum: v[2],
            maximum: v[3],
            percentiles,
        },
    ))
}
