//! Finding the files of an Azure Functions 2019 trace: the three kinds, by day.
//!
//! A path may be a directory holding the dataset's own names
//! (`invocations_per_function_md.anon.d01.csv`, `function_durations_percentiles.anon.d01.csv`,
//! `app_memory_percentiles.anon.d01.csv`) or a single day's three files with any names
//! (`invocations.csv`, `durations.csv`, `memory.csv`); a file's kind is recognised by its header
//! and its day by the `dNN` in its name (day 1 if it has none).

use crate::TraceError;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// The kind of a 2019 trace file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Invocations,
    Durations,
    Memory,
}

/// The trace's files, by kind, each with its day (1-based), sorted by day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceFiles {
    pub invocations: Vec<(u32, PathBuf)>,
    pub durations: Vec<(u32, PathBuf)>,
    pub memory: Vec<(u32, PathBuf)>,
    /// `.csv` files of a folder that are none of the trace's (no hash in their header): named in
    /// the cleaning report, never dropped without a word.
    pub ignored: Vec<PathBuf>,
}

/// Recognises a file's kind from its first line: the columns it names ([`super::layout`]).
pub fn kind_of(path: &Path) -> Result<Option<FileKind>, TraceError> {
    Ok(kind_of_header(&first_line(path)?))
}

/// The kind a first line (a header) names, if any.
fn kind_of_header(first: &str) -> Option<FileKind> {
    use super::layout::{DurationColumns, InvocationColumns, MemoryColumns, fields};
    let header = fields(first);
    if InvocationColumns::of(&header).is_ok() {
        Some(FileKind::Invocations)
    } else if DurationColumns::of(&header).is_ok() {
        Some(FileKind::Durations)
    } else if MemoryColumns::of(&header).is_ok() {
        Some(FileKind::Memory)
    } else {
        None
    }
}

/// The first line of `path`, without a byte-order mark or line end.
fn first_line(path: &Path) -> Result<String, TraceError> {
    let file = std::fs::File::open(path).map_err(|source| TraceError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut first = String::new();
    BufReader::new(file)
        .read_line(&mut first)
        .map_err(|source| TraceError::Io {
            path: path.to_owned(),
            source,
        })?;
    Ok(first.trim_start_matches('\u{feff}').trim_end().to_string())
}

/// Why a header is none of the 2019 files': the nearest kind's complaint where the header
/// shows which kind it meant (minute columns, `Average`, `AverageAllocatedMb`), else all three.
fn not_a_trace_file(first: &str) -> String {
    use super::layout::{DurationColumns, InvocationColumns, MemoryColumns, fields};
    if first.trim().is_empty() {
        return "not an Azure Functions 2019 file: it is empty; expected a header".into();
    }
    let header = fields(first);
    let has = |name: &str| header.iter().any(|h| h == name);
    let shown: String = first.chars().take(60).collect();
    let nearest = if has("Trigger") || has("1") || has("minute_1") {
        InvocationColumns::of(&header).err().map(|m| ("invocation", m))
    } else if has("AverageAllocatedMb") || has("SampleCount") {
        MemoryColumns::of(&header).err().map(|m| ("memory", m))
    } else if has("Average") {
        DurationColumns::of(&header).err().map(|m| ("durations", m))
    } else {
        None
    };
    match nearest {
        Some((kind, why)) => format!("found `{shown}`: not a whole {kind} file of the 2019 trace: {why}"),
        None => format!(
            "not an Azure Functions 2019 file: `{shown}` is none of its headers; expected a header like \
             `HashOwner,HashApp,HashFunction,Trigger,1,…,1440` (invocations; InVitro's \
             `HashFunction,HashApp,HashOwner,minute_1,…,minute_1440`), \
             `HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,…` (durations) or \
             `HashOwner,HashApp[,HashFunction],SampleCount,AverageAllocatedMb,…` (memory)"
        ),
    }
}

/// The day in a name such as `….anon.d07.csv`; 1 when there is none.
fn day_of(path: &Path) -> u32 {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.rsplit('.')
        .find_map(|part| part.strip_prefix('d').and_then(|d| d.parse::<u32>().ok()))
        .unwrap_or(1)
}

/// InVitro names a sample's files `N_inv.csv`, `N_run.csv` and `N_mem.csv`: given the first,
/// the other two beside it (those that exist).
fn invitro_siblings(path: &Path) -> Vec<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(sample) = name.strip_suffix("_inv.csv") else {
        return Vec::new();
    };
    ["run", "mem"]
        .iter()
        .map(|kind| path.with_file_name(format!("{sample}_{kind}.csv")))
        .filter(|p| p.is_file())
        .collect()
}

/// Refuses two invocation files of one day (a folder of several InVitro samples, say): their
/// functions would be merged into a trace that never was.
fn one_file_per_day(invocations: &[(u32, PathBuf)]) -> Result<(), TraceError> {
    for pair in invocations.windows(2) {
        if pair[0].0 == pair[1].0 {
            let same: Vec<String> = invocations
                .iter()
                .filter(|(d, _)| *d == pair[0].0)
                .map(|(_, p)| p.display().to_string())
                .collect();
            return Err(crate::rows::row_error(
                &pair[1].1,
                1,
                "header",
                format!(
                    "{} invocation files are all of day {} ({}): name one (InVitro's `N_inv.csv` brings its `N_run.csv` and `N_mem.csv`), or give days in the names (`….d01.csv`)",
                    same.len(),
                    pair[0].0,
                    same.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Collects the trace files under `paths` (files or directories).
pub fn discover(paths: &[PathBuf]) -> Result<TraceFiles, TraceError> {
    let mut files = TraceFiles::default();
    let mut candidates = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|source| TraceError::Io {
                path: p.clone(),
                source,
            })?;
            let mut in_dir: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "csv"))
                .collect();
            in_dir.sort();
            candidates.extend(in_dir);
        } else {
            candidates.push(p.clone());
            candidates.extend(invitro_siblings(p).into_iter().filter(|s| !paths.contains(s)));
        }
    }
    for path in candidates {
        let day = day_of(&path);
        let first = first_line(&path)?;
        match kind_of_header(&first) {
            Some(FileKind::Invocations) => files.invocations.push((day, path)),
            Some(FileKind::Durations) => files.durations.push((day, path)),
            Some(FileKind::Memory) => files.memory.push((day, path)),
            None => {
                // A file given by name, an empty file, or one that looks like the trace's (its
                // header names a hash) but is none of its kinds: refused, never dropped
                // without a word (a swapped header would silently lose the durations).
                let looks_like_trace = first.contains("HashOwner") || first.contains("HashFunction");
                if paths.contains(&path) || first.trim().is_empty() || looks_like_trace {
                    return Err(crate::rows::row_error(&path, 1, "header", not_a_trace_file(&first)));
                }
                files.ignored.push(path);
            }
        }
    }
    for list in [&mut files.invocations, &mut files.durations, &mut files.memory] {
        list.sort();
    }
    one_file_per_day(&files.invocations)?;
    if files.invocations.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(TraceError::Io {
            path: paths.first().cloned().unwrap_or_default(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "no Azure 2019 invocation file (header `HashOwner,HashApp,HashFunction,Trigger,1,…`, or InVitro's `HashFunction,HashApp,HashOwner,minute_1,…`) in {}",
                    shown.join(", ")
                ),
            ),
        });
    }
    Ok(files)
}
