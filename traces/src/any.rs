//! Any supported trace, opened by format: for `gpushare trace stats` and `convert`.

use crate::azure2019::{self, DurationModel, ReadOptions, Selection, Spread, StreamOptions};
use crate::llm::{LlmSource, builtin_llms};
use crate::rows::{header, open_csv, row_error};
use crate::{ArrivalSource, PlainCsvSource, TraceError, azure2021};
use std::collections::BTreeMap;
use std::path::Path;

/// A trace format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Azure2019,
    Azure2021,
    AzureLlm,
    Plain,
}

impl Format {
    /// Parses a `--format` value.
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "azure2019" => Format::Azure2019,
            "azure2021" => Format::Azure2021,
            "azure-llm" | "azure_llm" | "llm" => Format::AzureLlm,
            "plain" | "csv" => Format::Plain,
            _ => return None,
        })
    }

    /// Recognises a directory (2019) or a file by its header.
    pub fn detect(path: &Path) -> Result<Format, TraceError> {
        if path.is_dir() {
            return Ok(Format::Azure2019);
        }
        let mut rdr = open_csv(path)?;
        let h = header(&mut rdr, path, "a supported trace header")?.join(",");
        let first = h.split(',').next().unwrap_or_default();
        Ok(if ["HashOwner", "HashFunction", "HashApp"].contains(&first) {
            Format::Azure2019
        } else if h == "app,func,end_timestamp,duration" {
            Format::Azure2021
        } else if h.starts_with("TIMESTAMP,ContextTokens,GeneratedTokens") {
            Format::AzureLlm
        } else if h == "time,func" || h == "time,func,duration" {
            Format::Plain
        } else {
            return Err(row_error(
                path,
                1,
                "header",
                format!(
                    "`{h}` is no supported trace; expected Azure 2019 (`HashOwner,…`, or InVitro's `HashFunction,…`), Azure 2021 (`app,func,end_timestamp,duration`), \
                     Azure LLM (`TIMESTAMP,ContextTokens,GeneratedTokens[,NumImages]`) or plain (`time,func[,duration]`)"
                ),
            ));
        })
    }
}

/// How to open a trace for statistics or conversion.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    pub spread: Spread,
    pub shift: bool,
    pub durations: DurationModel,
    pub seed: u64,
    pub skip_bad_rows: bool,
    /// Azure 2019 only: window and selection.
    pub days: Option<(u32, u32)>,
    pub window: Option<(u32, u32)>,
    pub selection: Selection,
}

/// An opened trace.
pub struct Opened {
    pub format: Format,
    /// Function names (indices of the arrivals), and each function's app.
    pub names: Vec<String>,
    pub apps: Vec<String>,
    /// Per-function memory (Azure 2019), MB.
    pub memory_mb: Vec<Option<f64>>,
    pub source: Box<dyn ArrivalSource>,
    /// What reading found so far.
    pub notes: String,
}

fn short(s: &str) -> String {
    s.chars().take(8).collect()
}

/// Opens `path` as `format` (detected when `None`).
pub fn open(path: &Path, format: Option<Format>, opts: &OpenOptions) -> Result<Opened, TraceError> {
    let format = match format {
        Some(f) => f,
        None => Format::detect(path)?,
    };
    Ok(match format {
        Format::Azure2019 => {
            let files = azure2019::discover(&[path.to_path_buf()])?;
            let mut t = azure2019::read(
                &files,
                &ReadOptions {
                    days: opts.days,
                    window: opts.window,
                    skip_bad_rows: opts.skip_bad_rows,
                },
            )?;
            t.functions = opts.selection.apply(std::mem::take(&mut t.functions), opts.seed);
            let names = t
                .functions
                .iter()
                .map(|f| format!("{}-{}", short(&f.key.app), short(&f.key.function)))
                .collect();
            let apps = t
                .functions
                .iter()
                .map(|f| format!("{}/{}", f.key.owner, f.key.app))
                .collect();
            let memory_mb = t.functions.iter().map(|f| f.memory_mb).collect();
            let notes = t.report.to_string();
            let stream = azure2019::Azure2019Stream::new(
                t,
                StreamOptions {
                    spread: opts.spread,
                    shift: opts.shift,
                    durations: opts.durations,
                    scale: 1.0,
                    seed: opts.seed,
                },
            );
            Opened {
                format,
                names,
                apps,
                memory_mb,
                source: Box::new(stream),
                notes,
            }
        }
        Format::Azure2021 => {
            let t = azure2021::read(path, 1_000_000, opts.skip_bad_rows)?;
            let names: Vec<String> = t
                .functions
                .iter()
                .map(|f| format!("{}-{}", short(&f.app), short(&f.func)))
                .collect();
            let apps = t.functions.iter().map(|f| f.app.clone()).collect();
            let n = names.len();
            let source = Box::new(azure2021::Azure2021Stream::new(&t, true)?);
            Opened {
                format,
                names,
                apps,
                memory_mb: vec![None; n],
                source,
                notes: t.report.to_string(),
            }
        }
        Format::AzureLlm => {
            let m = &builtin_llms()[0];
            let cost = m.cost_on(2039.0, 312.0);
            let source = Box::new(LlmSource::open(path, cost, opts.skip_bad_rows)?);
            let notes = format!(
                "durations: {} on a100-80gb (2,039 GB/s, 312 TFLOP/s) by the token cost model",
                m.name
            );
            Opened {
                format,
                names: vec!["llm".into()],
                apps: vec!["llm".into()],
                memory_mb: vec![None],
                source,
                notes,
            }
        }
        Format::Plain => {
            // First pass: the function names, in order of first appearance.
            let mut rdr = open_csv(path)?;
            header(&mut rdr, path, "time,func[,duration]")?;
            let mut seen: BTreeMap<String, ()> = BTreeMap::new();
            let mut names = Vec::new();
            let mut rec = csv::StringRecord::new();
            while rdr
                .read_record(&mut rec)
                .map_err(|e| row_error(path, crate::rows::line_at(&rdr, e.position()), "row", e.to_string()))?
            {
                if let Some(f) = rec.get(1) {
                    if seen.insert(f.to_string(), ()).is_none() {
                        names.push(f.to_string());
                    }
                }
            }
            let source = Box::new(PlainCsvSource::open(path, &names, opts.skip_bad_rows)?);
            let n = names.len();
            Opened {
                format,
                apps: names.clone(),
                names,
                memory_mb: vec![None; n],
                source,
                notes: String::new(),
            }
        }
    })
}
