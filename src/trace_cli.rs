//! `gpushare trace`: statistics, generation, sampling, benchmarking and conversion of traces,
//! and the reading options they share.

use crate::scenario_cli::peak_rss_mib;
use crate::{Failure, help};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Subcommand)]
pub(crate) enum TraceCommand {
    /// Functions, apps, invocations, rate over time, inter-arrival CVs, durations, memory, and
    /// what reading skipped; streams the whole trace.
    #[command(after_help = help::TRACE_STATS)]
    Stats {
        /// A trace file, or a directory of Azure 2019 files.
        path: PathBuf,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Write a synthetic trace with the published Azure 2019 statistics, in the 2019 format.
    #[command(after_help = help::TRACE_GENERATE)]
    Generate {
        /// How many functions (at most 1,000,000).
        #[arg(long, default_value_t = 1000)]
        functions: usize,
        /// How many days of minutes (1,440 each).
        #[arg(long, default_value_t = 1)]
        days: u32,
        /// Seed of the generator: the same seed writes the same trace.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The directory to write the trace's files into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the selected functions and window of an Azure 2019 trace back in the 2019 format.
    #[command(after_help = help::TRACE_SAMPLE)]
    Sample {
        /// A directory (or file) of an Azure 2019 trace.
        path: PathBuf,
        /// The directory to write the sampled trace into (not the input's).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Benchmark: read, spread and stream every arrival with nothing else (BENCHMARKS.md).
    #[command(after_help = help::TRACE_BENCH)]
    Bench {
        /// A trace file, or a directory of Azure 2019 files.
        path: PathBuf,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Convert any supported trace to the plain `time,func,duration` CSV.
    #[command(after_help = help::TRACE_CONVERT)]
    Convert {
        /// A trace file, or a directory of Azure 2019 files.
        path: PathBuf,
        /// The plain CSV to write (not the input).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        read: ReadArgs,
    },
}

#[derive(Args)]
pub(crate) struct ReadArgs {
    /// azure2019, azure2021, azure-llm or plain (default: detected).
    #[arg(long)]
    pub(crate) format: Option<String>,
    /// Skip and count malformed rows instead of failing.
    #[arg(long)]
    pub(crate) skip_bad_rows: bool,
    /// Azure 2019: exponential, uniform, equidistant or poisson-fit.
    #[arg(long, default_value = "exponential")]
    pub(crate) spread: String,
    /// Azure 2019: shift each function by a random offset within the minute.
    #[arg(long)]
    pub(crate) shift: bool,
    /// Azure 2019: percentiles, lognormal, global or none.
    #[arg(long, default_value = "percentiles")]
    pub(crate) durations: String,
    /// Seed of the random spreading within minutes and of durations drawn from distributions.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Azure 2019: first and last day, e.g. 1-3.
    #[arg(long)]
    pub(crate) days: Option<String>,
    /// Azure 2019: window start in minutes from the first day read.
    #[arg(long)]
    pub(crate) start_minute: Option<u32>,
    /// Azure 2019: window length in minutes.
    #[arg(long)]
    pub(crate) minutes: Option<u32>,
    /// Azure 2019: keep the k most invoked functions.
    #[arg(long)]
    pub(crate) top_k: Option<usize>,
    /// Azure 2019: popularity band LO,HI (quantiles, 1 = most invoked).
    #[arg(long)]
    pub(crate) popularity: Option<String>,
    /// Azure 2019: keep a random fraction of the functions.
    #[arg(long)]
    pub(crate) sample_fraction: Option<f64>,
    /// Azure 2019: keep a random number of the functions.
    #[arg(long)]
    pub(crate) sample_count: Option<usize>,
    /// Azure 2019: seed of the random subset (default: --seed).
    #[arg(long)]
    pub(crate) sample_seed: Option<u64>,
    /// Azure 2019: keep these triggers, e.g. http,timer.
    #[arg(long)]
    pub(crate) triggers: Option<String>,
}

impl ReadArgs {
    fn options(&self) -> Result<(Option<gpushare_traces::any::Format>, gpushare_traces::any::OpenOptions), Failure> {
        use gpushare_traces::azure2019::{DurationModel, Selection, Spread};
        let bad = |flag: &str, v: &str, valid: &str| Failure::Input(format!("--{flag} {v}: expected {valid}"));
        let format = match &self.format {
            Some(f) => Some(
                gpushare_traces::any::Format::parse(f)
                    .ok_or_else(|| bad("format", f, "azure2019, azure2021, azure-llm or plain"))?,
            ),
            None => None,
        };
        let pair = |flag: &str, v: &str, sep: char| -> Result<(f64, f64), Failure> {
            let (a, b) = v
                .split_once(sep)
                .ok_or_else(|| bad(flag, v, &format!("two numbers separated by `{sep}`")))?;
            Ok((
                a.trim().parse().map_err(|_| bad(flag, v, "numbers"))?,
                b.trim().parse().map_err(|_| bad(flag, v, "numbers"))?,
            ))
        };
        let selection = Selection {
            triggers: self
                .triggers
                .as_ref()
                .map(|t| t.split(',').map(|s| s.trim().to_string()).collect()),
            popularity: self
                .popularity
                .as_ref()
                .map(|p| pair("popularity", p, ','))
                .transpose()?
                .map(|(a, b)| [a, b]),
            top_k: self.top_k,
            sample_fraction: self.sample_fraction,
            sample_count: self.sample_count,
            sample_seed: self.sample_seed,
        };
        selection
            .check()
            .map_err(|(f, m)| Failure::Input(format!("--{}: {m}", f.replace('_', "-"))))?;
        let days = match &self.days {
            Some(d) => {
                let (a, b) = pair("days", d, '-')?;
                if a < 1.0 || b < a || a.fract() != 0.0 || b.fract() != 0.0 {
                    return Err(bad("days", d, "FIRST-LAST with 1 ≤ FIRST ≤ LAST"));
                }
                Some((a as u32, b as u32))
            }
            None => None,
        };
        let window = match (self.start_minute, self.minutes) {
            (None, None) => None,
            (_, Some(0)) => return Err(Failure::Input("--minutes: must be at least 1".into())),
            (s, m) => Some((s.unwrap_or(0), m.unwrap_or(u32::MAX / 2))),
        };
        Ok((
            format,
            gpushare_traces::any::OpenOptions {
                spread: Spread::parse(&self.spread).ok_or_else(|| {
                    bad(
                        "spread",
                        &self.spread,
                        "exponential, uniform, equidistant or poisson-fit",
                    )
                })?,
                shift: self.shift,
                durations: DurationModel::parse(&self.durations)
                    .ok_or_else(|| bad("durations", &self.durations, "percentiles, lognormal, global or none"))?,
                seed: self.seed,
                skip_bad_rows: self.skip_bad_rows,
                days,
                window,
                selection,
            },
        ))
    }
}

pub(crate) fn trace(cmd: TraceCommand) -> Result<(), Failure> {
    let input = |e: gpushare_traces::TraceError| Failure::Input(e.to_string());
    // Writing failed (a full disk, a folder that cannot be written): exit 1, not bad input.
    let output = |e: gpushare_traces::TraceError| match e {
        gpushare_traces::TraceError::Io { .. } => Failure::Run(anyhow::anyhow!(e.to_string())),
        other => Failure::Input(other.to_string()),
    };
    match cmd {
        TraceCommand::Stats { path, read } => {
            let (format, opts) = read.options()?;
            let opened = gpushare_traces::any::open(&path, format, &opts).map_err(input)?;
            let (stats, opened) = gpushare_traces::stats::compute(opened).map_err(input)?;
            println!("{}: {:?} trace", path.display(), opened.format);
            println!("{}", stats.render());
            if !opened.notes.is_empty() {
                println!("reading:\n{}", opened.notes);
            }
            print_skipped(opts.skip_bad_rows, opened.source.as_ref());
        }
        TraceCommand::Generate {
            functions,
            days,
            seed,
            out,
        } => {
            let cfg = gpushare_traces::generate::GeneratorConfig {
                functions,
                days,
                seed,
                ..Default::default()
            };
            cfg.check()
                .map_err(|(f, m)| Failure::Input(format!("--{}: {m}", f.replace('_', "-"))))?;
            let n = cfg.write(&out).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {} functions × {days} day(s), {n} invocations, to {}",
                functions,
                out.display()
            );
        }
        TraceCommand::Sample { path, out, read } => {
            let (_, opts) = read.options()?;
            let files = gpushare_traces::azure2019::discover(std::slice::from_ref(&path)).map_err(input)?;
            let ro = gpushare_traces::azure2019::ReadOptions {
                days: opts.days,
                window: opts.window,
                skip_bad_rows: opts.skip_bad_rows,
            };
            let mut t = gpushare_traces::azure2019::read(&files, &ro).map_err(input)?;
            let triggers: std::collections::BTreeSet<String> = t.functions.iter().map(|f| f.trigger.clone()).collect();
            t.functions = opts.selection.apply(std::mem::take(&mut t.functions), opts.seed);
            if t.functions.is_empty() {
                return Err(Failure::Input(format!(
                    "{}: no function is left in minutes [{}, {}) after the selection ({}); the window's functions have the triggers {}: nothing to write",
                    path.display(),
                    t.window.0,
                    t.window.1,
                    opts.selection.describe(),
                    triggers.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
            refuse_overwriting_input(&path, &out, "--out")?;
            gpushare_traces::write::write_azure2019(&t, &out).map_err(output)?;
            let n: u64 = t.functions.iter().map(|f| f.total).sum();
            println!(
                "wrote {} functions, {n} invocations in minutes [{}, {}), to {}",
                t.functions.len(),
                t.window.0,
                t.window.1,
                out.display()
            );
            println!("reading:\n{}", t.report);
        }
        TraceCommand::Bench { path, read } => {
            let (format, opts) = read.options()?;
            let started = Instant::now();
            let mut opened = gpushare_traces::any::open(&path, format, &opts).map_err(input)?;
            let read_s = started.elapsed().as_secs_f64();
            let (mut n, mut last) = (0u64, 0u64);
            while let Some(a) = opened.source.next_arrival().map_err(input)? {
                n += 1;
                last = a.time;
            }
            let total_s = started.elapsed().as_secs_f64();
            let rss = peak_rss_mib()
                .map(|m| format!(", peak RSS {m:.0} MiB"))
                .unwrap_or_default();
            println!(
                "{}: {n} arrivals of {} functions (last at {:.1} s); read {read_s:.2} s, read + spread + stream {total_s:.2} s: \
                 {:.2} M arrivals/s overall, {:.2} M/s spreading and streaming{rss}",
                path.display(),
                opened.names.len(),
                last as f64 / 1e9,
                n as f64 / total_s / 1e6,
                n as f64 / (total_s - read_s).max(1e-9) / 1e6
            );
        }
        TraceCommand::Convert { path, out, read } => {
            let (format, opts) = read.options()?;
            refuse_overwriting_input(&path, &out, "--out")?;
            let mut opened = gpushare_traces::any::open(&path, format, &opts).map_err(input)?;
            let n = gpushare_traces::write::write_plain(opened.source.as_mut(), &opened.names, &out).map_err(output)?;
            println!(
                "wrote {n} invocations of {} functions to {}",
                opened.names.len(),
                out.display()
            );
            print_skipped(opts.skip_bad_rows, opened.source.as_ref());
        }
    }
    Ok(())
}

/// With `--skip-bad-rows`, what a streamed reader (plain CSV, LLM) skipped; the readers that
/// load the whole trace report it in their notes.
pub(crate) fn print_skipped(skip_bad_rows: bool, source: &dyn gpushare_traces::ArrivalSource) {
    if let Some(skipped) = source.skipped_rows().filter(|_| skip_bad_rows) {
        println!("{skipped}");
    }
}

/// Refuses an output that is the input, or lies in the input folder: the trace would be
/// replaced by (or mixed with) what is read from it.
pub(crate) fn refuse_overwriting_input(input: &Path, out: &Path, flag: &str) -> Result<(), Failure> {
    let (Ok(i), Some(o)) = (input.canonicalize(), canonical_even_if_new(out)) else {
        return Ok(());
    };
    let inside = i.is_dir() && (o == i || o.parent() == Some(i.as_path()));
    if o == i || inside {
        return Err(Failure::Input(format!(
            "{flag} {}: that is {} {}: the trace would be overwritten while it is read; write somewhere else",
            out.display(),
            if o == i { "the input" } else { "inside the input folder" },
            input.display()
        )));
    }
    Ok(())
}

/// `p` made absolute through its existing parent (the file itself need not exist).
pub(crate) fn canonical_even_if_new(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = p.canonicalize() {
        return Some(c);
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.canonicalize().ok()?,
        _ => std::env::current_dir().ok()?,
    };
    Some(parent.join(p.file_name()?))
}
