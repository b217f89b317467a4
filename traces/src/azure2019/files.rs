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
}

/// Recognises a file's kind from its first line.
pub fn kind_of(path: &Path) -> Result<Option<FileKind>, TraceError> {
    let first = first_line(path)?;
    Ok(if first.starts_with("HashOwner,HashApp,HashFunction,Trigger,") {
        Some(FileKind::Invocations)
    } else if first.starts_with("HashOwner,HashApp,HashFunction,Average,") {
        Some(FileKind::Durations)
    } else if first.starts_with("HashOwner,HashApp,SampleCount,") {
        Some(FileKind::Memory)
    } else {
        None
    })
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
        }
    }
    for path in candidates {
        let day = day_of(&path);
        match kind_of(&path)? {
            Some(FileKind::Invocations) => files.invocations.push((day, path)),
            Some(FileKind::Durations) => files.durations.push((day, path)),
            Some(FileKind::Memory) => files.memory.push((day, path)),
            None => {
                // A file given by name, an empty file, or one that looks like the trace's (its
                // header starts `HashOwner,`) but is none of its kinds: refused, never dropped
                // without a word (a swapped header would silently lose the durations).
                let first = first_line(&path)?;
                let looks_like_trace = first.starts_with("HashOwner,");
                if paths.contains(&path) || first.trim().is_empty() || looks_like_trace {
                    let what = if first.trim().is_empty() {
                        "it is empty; expected".to_string()
                    } else {
                        format!(
                            "`{}` is none of its headers; expected",
                            first.chars().take(60).collect::<String>()
                        )
                    };
                    return Err(crate::rows::row_error(
                        &path,
                        1,
                        "header",
                        format!(
                            "not an Azure Functions 2019 file: {what} a header starting `HashOwner,HashApp,HashFunction,Trigger,` (invocations), \
                             `HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,…` (durations) or \
                             `HashOwner,HashApp,SampleCount,` (memory)"
                        ),
                    ));
                }
            }
        }
    }
    for list in [&mut files.invocations, &mut files.durations, &mut files.memory] {
        list.sort();
    }
    if files.invocations.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(TraceError::Io {
            path: paths.first().cloned().unwrap_or_default(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "no Azure 2019 invocation file (header `HashOwner,HashApp,HashFunction,Trigger,1,…`) in {}",
                    shown.join(", ")
                ),
            ),
        });
    }
    Ok(files)
}
