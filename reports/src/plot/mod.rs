//! `gpushare plot`: the figures of a sweep (or of one run) for a paper, as SVG and PNG.
//!
//! From a sweep's directory: against the x axis (`--x`; default `simulation.load_scale`, else
//! the first numeric axis), one line per value of the series axis (`--series`; default
//! `policy`), means over seeds with 95 % intervals — named `…_vs_load` (`…_vs_clients` for a
//! function group's count, else `…_vs_<axis>`):
//! - `latency_vs_load`: p50 and p99 end-to-end latency (two panels);
//! - `throughput_vs_load`: completions per second;
//! - `slo_violations_vs_load`: share of completions over `[simulation] slo_s` (when set);
//! - `cold_starts_vs_load`: cold-start ratio;
//!
//! and at the last x value (the heaviest load), from each series' first seed —
//! - `latency_cdf`: the end-to-end latency CDF;
//! - `gpu_utilisation_over_time`: GPU utilisation and SM occupancy, mean over GPUs (two panels);
//! - `gpu_memory_over_time`: device memory in use over all GPUs
//!
//! (the last two when the scenario sets `[output] timeseries_s`). Any further axis gives one
//! set of figures per value, its name suffixed `-key=value`. From a single run's directory
//! (`gpushare run`): the CDF and the over-time figures. `figures.md` lists what each figure
//! shows and which runs it draws.

pub mod chart;
pub mod style;

use crate::series::{read_cdf, read_timeseries};
use crate::sweep::run_dir;
use crate::sweep::stats::aggregate;
use crate::sweep::table::{RunRow, SweepInfo, read_info, read_runs};
use chart::{Figure, Markers, Panel, Point, Series, render};
use gpushare_sim::device::MIB;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use style::Width;

/// Choices for `gpushare plot`.
#[derive(Clone, Debug, Default)]
pub struct PlotOptions {
    /// The axis along x.
    pub x: Option<String>,
    /// The axis whose values are the lines.
    pub series: Option<String>,
    /// Where to write (default `<dir>/figures`).
    pub out: Option<PathBuf>,
    /// Letter the panels of figures with more than one: (a), (b), …
    pub panel_letters: bool,
}

/// What was written.
pub struct Plotted {
    pub files: Vec<PathBuf>,
    /// Notes on figures left out and why.
    pub notes: Vec<String>,
}

/// Why `plot` did not complete: bad input (exit 2) or a figure folder that cannot be written
/// (exit 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlotError {
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Write(String),
}

/// Creates the figure folder `out` and checks that a file can be written in it.
fn writable(out: &Path) -> Result<(), PlotError> {
    let probe = out.join(".gpushare-write-probe");
    std::fs::create_dir_all(out)
        .and_then(|_| std::fs::write(&probe, b""))
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| PlotError::Write(format!("{}: {e}", out.display())))
}

/// Plots `dir`, a sweep's or a run's output directory. A plot that fails on the way leaves no
/// figure of its own behind: the files it added to the figure folder are removed, and the
/// folder too when it made it.
pub fn plot(dir: &Path, opts: &PlotOptions) -> Result<Plotted, PlotError> {
    let out = opts.out.clone().unwrap_or_else(|| dir.join("figures"));
    let existed: Option<Vec<PathBuf>> = std::fs::read_dir(&out)
        .ok()
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect());
    let result = plot_into(dir, &out, opts);
    if result.is_err() {
        let added = std::fs::read_dir(&out)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()));
        for path in added {
            if !existed.as_ref().is_some_and(|before| before.contains(&path)) {
                let _ = std::fs::remove_file(&path);
            }
        }
        if existed.is_none() {
            let _ = std::fs::remove_dir(&out);
        }
    }
    result
}

fn plot_into(dir: &Path, out: &Path, opts: &PlotOptions) -> Result<Plotted, PlotError> {
    if dir.join("sweep.json").exists() {
        let info = read_info(dir).map_err(PlotError::Input)?;
        if let Some(shard) = &info.shard {
            return Err(PlotError::Input(format!(
                "{}: shard {shard} of a sweep holds only part of its runs; merge the shards first \
                 (gpushare merge SHARD_DIR… --out DIR) and plot DIR",
                dir.display()
            )));
        }
        writable(out)?;
        plot_sweep(dir, out, opts).map_err(PlotError::Input)
    } else if dir.join("summary.json").exists() {
        // A summary cut short is refused before the figure folder is made.
        let summary = dir.join("summary.json");
        let text =
            std::fs::read_to_string(&summary).map_err(|e| PlotError::Input(format!("{}: {e}", summary.display())))?;
        if serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v["kind"] == "llm-serving") {
            writable(out)?;
            let files = crate::serving_files::replot(dir, out).map_err(PlotError::Input)?;
            return Ok(Plotted {
                files,
                notes: Vec::new(),
            });
        }
        let run = serde_json::from_str::<RunIdentity>(&text)
            .map_err(|e| PlotError::Input(format!("{}: not a whole summary: {e}", summary.display())))?;
        writable(out)?;
        plot_run(dir, &run, out, opts.panel_letters).map_err(PlotError::Input)
    } else {
        Err(PlotError::Input(format!(
            "{}: neither a sweep's output (sweep.json) nor a run's (summary.json)",
            dir.display()
        )))
    }
}

/// What every run's `summary.json` has and the figures name: a summary without them is not one.
#[derive(serde::Deserialize)]
struct RunIdentity {
    scenario: String,
    policy: String,
}

fn axis_title(key: &str) -> String {
    match key {
        "simulation.load_scale" => "offered load (× the scenario's)".into(),
        "cluster.gpus_per_node" => "GPUs per node".into(),
        "cluster.nodes" => "nodes".into(),
        k if k.starts_with("functions[") && k.ends_with("].count") => "clients (functions of the group)".into(),
        k => k.to_string(),
    }
}

/// One facet of a sweep: the rows with the facet axes fixed, grouped by series and x value.
struct Facet<'a> {
    info: &'a SweepInfo,
    /// The x axis.
    xi: usize,
    grouped: &'a Grouped<'a>,
    rows: &'a [&'a RunRow],
    /// The facet's file-name suffix (`-key=value…`), empty without facet axes.
    suffix: &'a str,
    letters: bool,
}

/// The figures of a facet against its x axis (latency, throughput, SLO violations where the
/// scenario sets an objective, cold starts), each with what it shows; `first` notes once that
/// there is no SLO figure.
fn versus_figures(
    facet: &Facet<'_>,
    series_label: &dyn Fn(usize) -> String,
    first: bool,
    plotted: &mut Plotted,
) -> Vec<(Figure, &'static str)> {
    let Facet {
        info,
        xi,
        grouped,
        rows: facet_rows,
        suffix,
        letters,
    } = *facet;
    let numeric = |i: usize| info.axes[i].labels.iter().all(|l| l.parse::<f64>().is_ok());
    let vs = x_name(&info.axes[xi].key);
    let xs: Vec<f64> = info.axes[xi]
        .labels
        .iter()
        .enumerate()
        .map(|(k, l)| l.parse::<f64>().unwrap_or(k as f64))
        .collect();
    let categories = (!numeric(xi)).then(|| info.axes[xi].labels.clone());
    let panel = |m: &Metric| Panel {
        x_label: axis_title(&info.axes[xi].key),
        y_label: m.title.into(),
        x_log: false,
        y_log: m.log,
        y_from_zero: !m.log,
        x_categories: categories.clone(),
        series: grouped
            .iter()
            .map(|(&s, by_x)| Series {
                label: series_label(s),
                style: s,
                markers: Markers::All,
                points: by_x
                    .iter()
                    .filter_map(|(&k, runs)| {
                        let v: Vec<f64> = runs
                            .iter()
                            .filter(|r| {
                                !m.of_completions || metric(r, "counts.measured_completed").is_some_and(|n| n > 0.0)
                            })
                            .filter_map(|r| metric(r, m.name))
                            .map(|v| v * m.factor)
                            .collect();
                        (!v.is_empty()).then(|| {
                            let a = aggregate(&v);
                            Point {
                                x: xs[k],
                                y: a.mean,
                                err: (a.n > 1).then_some((a.ci95_low, a.ci95_high)),
                            }
                        })
                    })
                    .collect(),
            })
            .collect(),
    };
    // `{stem}_vs_{x}{suffix}`: a panel per metric.
    let figure = |stem: &str, width: Width, metrics: &[&Metric], shows: &'static str| {
        let name = format!("{stem}_vs_{vs}{}", sanitize(suffix));
        let panels = metrics.iter().map(|m| panel(m)).collect();
        (
            Figure {
                name,
                width,
                letters,
                panels,
            },
            shows,
        )
    };
    if serving_rows(facet_rows) {
        return vec![
            figure(
                "ttft",
                Width::Double,
                &[&TTFT_P50, &TTFT_P99],
                "p50 and p99 time to first token against the x axis; mean over seeds, bars 95 % CI",
            ),
            figure(
                "tpot",
                Width::Double,
                &[&TPOT_P50, &TPOT_P99],
                "p50 and p99 time per output token against the x axis; mean over seeds, bars 95 % CI",
            ),
            figure(
                "output_tokens",
                Width::Single,
                &[&TOKENS],
                "output tokens per second over the run; mean over seeds, bars 95 % CI",
            ),
            figure(
                "slo_attainment",
                Width::Single,
                &[&ATTAINMENT],
                "share of completed requests within both the TTFT and the TPOT objective; mean over seeds, bars 95 % CI",
            ),
        ];
    }
    let mut figures = vec![
        figure(
            "latency",
            Width::Double,
            &[&P50, &P99],
            "p50 and p99 end-to-end latency against the x axis; mean over seeds, bars 95 % CI",
        ),
        figure(
            "throughput",
            Width::Single,
            &[&THROUGHPUT],
            "completions per second over the measured window; mean over seeds, bars 95 % CI",
        ),
    ];
    if facet_rows.iter().any(|r| metric(r, SLO.name).is_some()) {
        figures.push(figure(
            "slo_violations",
            Width::Single,
            &[&SLO],
            "completions slower than the scenario's slo_s; mean over seeds, bars 95 % CI",
        ));
    } else if first {
        plotted
            .notes
            .push("no [simulation] slo_s in the scenario: no slo_violations_vs_<x> figure".into());
    }
    figures.push(figure(
        "cold_starts",
        Width::Single,
        &[&COLD],
        "share of measured completions that waited for a cold start; mean over seeds, bars 95 % CI",
    ));
    figures
}

/// How figure names call the x axis: `load`, `clients`, else the key.
fn x_name(key: &str) -> String {
    match key {
        "simulation.load_scale" => "load".into(),
        k if k.starts_with("functions[") && k.ends_with("].count") => "clients".into(),
        k => sanitize(k),
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A metric of the x-axis figures: summary name, file name, axis title, scale to the axis
/// unit, log axis wanted.
struct Metric {
    name: &'static str,
    title: &'static str,
    factor: f64,
    log: bool,
    /// A figure about completions: a run without measured completions has no value (its
    /// ratios would read 0 of 0).
    of_completions: bool,
}

const P50: Metric = Metric {
    name: "latency_s.end_to_end.p50",
    title: "p50 end-to-end latency (s)",
    factor: 1.0,
    log: true,
    of_completions: true,
};
const P99: Metric = Metric {
    name: "latency_s.end_to_end.p99",
    title: "p99 end-to-end latency (s)",
    factor: 1.0,
    log: true,
    of_completions: true,
};
const THROUGHPUT: Metric = Metric {
    name: "throughput_per_s",
    title: "throughput (completions/s)",
    factor: 1.0,
    log: false,
    of_completions: false,
};
const COLD: Metric = Metric {
    name: "cold_start_ratio",
    title: "cold starts (%)",
    factor: 100.0,
    log: false,
    of_completions: true,
};
const SLO: Metric = Metric {
    name: "slo_violation_ratio",
    title: "SLO violations (%)",
    factor: 100.0,
    log: false,
    of_completions: true,
};

/// The figures of LLM serving sweeps (`[serving]` scenarios).
const TTFT_P50: Metric = Metric {
    name: "ttft_s.p50",
    title: "p50 time to first token (s)",
    factor: 1.0,
    log: true,
    of_completions: false,
};
const TTFT_P99: Metric = Metric {
    name: "ttft_s.p99",
    title: "p99 time to first token (s)",
    factor: 1.0,
    log: true,
    of_completions: false,
};
const TPOT_P50: Metric = Metric {
    name: "tpot_s.p50",
    title: "p50 time per output token (s)",
    factor: 1.0,
    log: true,
    of_completions: false,
};
const TPOT_P99: Metric = Metric {
    name: "tpot_s.p99",
    title: "p99 time per output token (s)",
    factor: 1.0,
    log: true,
    of_completions: false,
};
const TOKENS: Metric = Metric {
    name: "output_tokens_per_s",
    title: "output tokens/s",
    factor: 1.0,
    log: false,
    of_completions: false,
};
const ATTAINMENT: Metric = Metric {
    name: "slo_attainment",
    title: "within both SLOs (%)",
    factor: 100.0,
    log: false,
    of_completions: false,
};

/// Whether a sweep's runs are LLM serving runs (their summaries have TTFT figures).
fn serving_rows(rows: &[&RunRow]) -> bool {
    rows.iter().any(|r| metric(r, TTFT_P50.name).is_some())
}

fn metric(r: &RunRow, name: &str) -> Option<f64> {
    r.metrics.iter().find(|(m, _)| m == name).map(|(_, v)| *v)
}

/// Runs of one facet, grouped: series label → x label → rows.
type Grouped<'a> = BTreeMap<usize, BTreeMap<usize, Vec<&'a RunRow>>>;

fn plot_sweep(dir: &Path, out: &Path, opts: &PlotOptions) -> Result<Plotted, String> {
    let letters = opts.panel_letters;
    let info = read_info(dir)?;
    let rows = read_runs(dir, &info)?;
    if rows.len() != info.runs {
        return Err(format!(
            "{}: holds {} of the sweep's {} runs (sweep.json); plot a whole sweep (an interrupted one: run it again)",
            dir.join("runs.csv").display(),
            rows.len(),
            info.runs
        ));
    }
    let axis = |key: &str| info.axes.iter().position(|a| a.key == key);
    let numeric = |i: usize| info.axes[i].labels.iter().all(|l| l.parse::<f64>().is_ok());
    let x = match &opts.x {
        Some(k) => Some(axis(k).ok_or_else(|| format!("--x {k}: the sweep has no such axis ({})", keys(&info)))?),
        None => axis("simulation.load_scale")
            .or_else(|| (0..info.axes.len()).find(|&i| info.axes[i].key != "policy" && numeric(i))),
    };
    let series = match &opts.series {
        Some(k) => Some(axis(k).ok_or_else(|| format!("--series {k}: the sweep has no such axis ({})", keys(&info)))?),
        None => axis("policy")
            .filter(|&i| Some(i) != x)
            .or_else(|| (0..info.axes.len()).find(|&i| Some(i) != x)),
    };
    if x.is_some() && x == series {
        return Err("--x and --series name the same axis".into());
    }
    let facets: Vec<usize> = (0..info.axes.len())
        .filter(|&i| Some(i) != x && Some(i) != series)
        .collect();
    let mut plotted = Plotted {
        files: Vec::new(),
        notes: Vec::new(),
    };
    let mut index = String::from("# Figures\n\n");
    let _ = writeln!(
        index,
        "Sweep of `{}` ({}), {} points × {} seeds. Lines: {}; x: {}.\n",
        info.scenario,
        info.file,
        info.points,
        info.seeds.len(),
        series.map_or("the scenario".to_string(), |i| format!("`{}`", info.axes[i].key)),
        x.map_or("none".to_string(), |i| format!("`{}`", info.axes[i].key)),
    );
    if x.is_none() {
        plotted
            .notes
            .push("no numeric axis to plot against (add one, e.g. simulation.load_scale): no *_vs_<x> figures".into());
    }
    // Every combination of the facet axes' values.
    let combos: usize = facets.iter().map(|&i| info.axes[i].labels.len()).product();
    for c in 0..combos {
        let mut rest = c;
        let mut fixed: Vec<(usize, usize)> = Vec::new();
        for &i in facets.iter().rev() {
            let n = info.axes[i].labels.len();
            fixed.push((i, rest % n));
            rest /= n;
        }
        fixed.reverse();
        let suffix: String = fixed
            .iter()
            .map(|&(i, k)| format!("-{}={}", info.axes[i].key, info.axes[i].labels[k]))
            .collect();
        let facet_rows: Vec<&RunRow> = rows
            .iter()
            .filter(|r| fixed.iter().all(|&(i, k)| r.labels[i] == info.axes[i].labels[k]))
            .collect();
        let pos = |i: Option<usize>, r: &RunRow| {
            i.map_or(0, |i| {
                info.axes[i].labels.iter().position(|l| *l == r.labels[i]).unwrap_or(0)
            })
        };
        let mut grouped: Grouped = BTreeMap::new();
        for r in &facet_rows {
            grouped
                .entry(pos(series, r))
                .or_default()
                .entry(pos(x, r))
                .or_default()
                .push(r);
        }
        let series_label = |s: usize| series.map_or(info.scenario.clone(), |i| info.axes[i].labels[s].clone());
        if !suffix.is_empty() {
            let _ = writeln!(index, "## {}\n", suffix.trim_start_matches('-'));
        }
        if let Some(xi) = x {
            let facet = Facet {
                info: &info,
                xi,
                grouped: &grouped,
                rows: &facet_rows,
                suffix: &suffix,
                letters,
            };
            let figures = versus_figures(&facet, &series_label, c == 0, &mut plotted);
            for (fig, what) in figures {
                plotted.files.extend(render(&fig, out)?);
                let _ = writeln!(index, "- `{}` — {what}", fig.name);
            }
        }
        // The representative runs: the last x value, first seed, of each series.
        let last_x = x.map_or(0, |i| info.axes[i].labels.len() - 1);
        let reps: Vec<(usize, &RunRow)> = grouped
            .iter()
            .filter_map(|(&s, by_x)| {
                by_x.get(&last_x)
                    .and_then(|runs| runs.iter().min_by_key(|r| r.replicate))
                    .map(|r| (s, *r))
            })
            .collect();
        let at = x.map_or(String::new(), |i| {
            format!(" at {} = {}", info.axes[i].key, info.axes[i].labels[last_x])
        });
        let run_dirs: Vec<(String, usize, PathBuf)> = reps
            .iter()
            .map(|(s, r)| (series_label(*s), *s, run_dir(dir, r.run, info.runs)))
            .collect();
        let used = reps
            .iter()
            .map(|(_, r)| r.run.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if serving_rows(&facet_rows) {
            if c == 0 {
                plotted.notes.push(
                    "LLM serving runs: each run's TTFT/TPOT CDFs are in its own folder (figures/ttft_tpot_cdf); no time figures"
                        .into(),
                );
            }
            continue;
        }
        let made = time_figures(&run_dirs, out, &sanitize(&suffix), letters, &mut plotted)?;
        for (name, what) in made {
            let _ = writeln!(index, "- `{name}` — {what}{at} (runs {used}, first seed)");
        }
        index.push('\n');
    }
    crate::atomic::write_atomic(&out.join("figures.md"), index.as_bytes())
        .map_err(|e| format!("{}: {e}", out.join("figures.md").display()))?;
    Ok(plotted)
}

fn keys(info: &SweepInfo) -> String {
    let k: Vec<&str> = info.axes.iter().map(|a| a.key.as_str()).collect();
    format!("axes: {}", k.join(", "))
}

/// Per sample time: Σ utilisation, Σ SM occupancy, Σ memory bytes, GPUs.
type Totals = (f64, f64, f64, usize);

/// The CDF and over-time figures of `runs` (label, style, directory); returns (name, what).
fn time_figures(
    runs: &[(String, usize, PathBuf)],
    out: &Path,
    suffix: &str,
    letters: bool,
    plotted: &mut Plotted,
) -> Result<Vec<(String, &'static str)>, String> {
    let mut made = Vec::new();
    let mut cdf = Vec::new();
    for (label, st, d) in runs {
        let points: Vec<Point> = read_cdf(&d.join("latency_cdf.csv"))?
            .into_iter()
            .filter(|&(_, v)| v > 0.0)
            .map(|(q, v)| Point { x: v, y: q, err: None })
            .collect();
        if !points.is_empty() {
            cdf.push(Series {
                label: label.clone(),
                style: *st,
                points,
                markers: Markers::Spread(8),
            });
        }
    }
    if !cdf.is_empty() {
        let fig = Figure {
            name: format!("latency_cdf{suffix}"),
            width: Width::Single,
            letters,
            panels: vec![Panel {
                x_label: "end-to-end latency (s)".into(),
                y_label: "fraction of completions".into(),
                x_log: true,
                y_log: false,
                y_from_zero: true,
                x_categories: None,
                series: cdf,
            }],
        };
        plotted.files.extend(render(&fig, out)?);
        made.push((fig.name, "end-to-end latency CDF of measured completions"));
    }
    let mut util = Vec::new();
    let mut occupancy = Vec::new();
    let mut memory = Vec::new();
    for (label, st, d) in runs {
        let path = d.join("timeseries.csv");
        if !path.exists() {
            continue;
        }
        // Per sample time: mean utilisation and occupancy over GPUs, total memory.
        let mut by_t: BTreeMap<u64, Totals> = BTreeMap::new();
        for s in read_timeseries(&path)? {
            let e = by_t.entry(s.time).or_insert((0.0, 0.0, 0.0, 0));
            e.0 += s.utilisation;
            e.1 += s.sm_occupancy;
            e.2 += s.memory as f64;
            e.3 += 1;
        }
        let line = |f: &dyn Fn(&Totals) -> f64| Series {
            label: label.clone(),
            style: *st,
            markers: Markers::Spread(8),
            points: by_t
                .iter()
                .map(|(&t, v)| Point {
                    x: t as f64 / 1e9,
                    y: f(v),
                    err: None,
                })
                .collect(),
        };
        util.push(line(&|v| 100.0 * v.0 / v.3 as f64));
        occupancy.push(line(&|v| 100.0 * v.1 / v.3 as f64));
        memory.push(line(&|v| v.2 / (1024.0 * MIB as f64)));
    }
    if util.is_empty() {
        if !plotted.notes.iter().any(|n| n.contains("timeseries_s")) {
            plotted
                .notes
                .push("no timeseries.csv (set [output] timeseries_s): no over-time figures".into());
        }
        return Ok(made);
    }
    let time_panel = |y: &str, series: Vec<Series>| Panel {
        x_label: "time (s)".into(),
        y_label: y.into(),
        x_log: false,
        y_log: false,
        y_from_zero: true,
        x_categories: None,
        series,
    };
    let fig = Figure {
        name: format!("gpu_utilisation_over_time{suffix}"),
        width: Width::Double,
        letters,
        panels: vec![
            time_panel("GPU utilisation (%)", util),
            time_panel("SM occupancy (%)", occupancy),
        ],
    };
    plotted.files.extend(render(&fig, out)?);
    made.push((fig.name, "GPU utilisation and SM occupancy over time, mean over GPUs"));
    let fig = Figure {
        name: format!("gpu_memory_over_time{suffix}"),
        width: Width::Single,
        letters,
        panels: vec![time_panel("GPU memory in use (GiB)", memory)],
    };
    plotted.files.extend(render(&fig, out)?);
    made.push((fig.name, "device memory in use over time, summed over GPUs"));
    Ok(made)
}

/// Figures of one run's directory.
fn plot_run(dir: &Path, run: &RunIdentity, out: &Path, letters: bool) -> Result<Plotted, String> {
    let mut plotted = Plotted {
        files: Vec::new(),
        notes: Vec::new(),
    };
    let label = run.policy.clone();
    let made = time_figures(&[(label, 0, dir.to_path_buf())], out, "", letters, &mut plotted)?;
    let mut index = format!("# Figures\n\nRun `{}` under `{}`.\n\n", run.scenario, run.policy);
    for (name, what) in made {
        let _ = writeln!(index, "- `{name}` — {what}");
    }
    crate::atomic::write_atomic(&out.join("figures.md"), index.as_bytes())
        .map_err(|e| format!("{}: {e}", out.join("figures.md").display()))?;
    Ok(plotted)
}
