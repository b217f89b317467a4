//! `gpushare plot`: the figure set of a sweep and of a run, in SVG and PNG, with their index.

mod common;

use common::{SWEEP, gpushare_ok, scenario};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

fn check_pair(dir: &std::path::Path, name: &str) {
    let png = std::fs::read(dir.join(format!("{name}.png"))).unwrap_or_else(|e| panic!("{name}.png: {e}"));
    assert!(png.starts_with(PNG_MAGIC), "{name}.png is not a PNG");
    assert!(png.len() > 10_000, "{name}.png is suspiciously small");
    let svg = std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{name}.svg");
}

#[test]
fn a_sweep_gets_its_whole_figure_set() {
    let s = scenario("fig-sweep", SWEEP);
    let out = s.parent().unwrap().join("out");
    gpushare_ok(&["sweep", s.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
    gpushare_ok(&["plot", out.to_str().unwrap()]);
    let figs = out.join("figures");
    for name in [
        "latency_vs_load",
        "throughput_vs_load",
        "slo_violations_vs_load",
        "cold_starts_vs_load",
        "latency_cdf",
        "gpu_utilisation_over_time",
        "gpu_memory_over_time",
    ] {
        check_pair(&figs, name);
    }
    // Axis labels carry units; the legend names the series by their labels.
    let svg = std::fs::read_to_string(figs.join("throughput_vs_load.svg")).unwrap();
    for text in [
        "throughput (completions/s)",
        "offered load",
        "\nmps\n</text>",
        "\nts\n</text>",
    ] {
        assert!(svg.contains(text), "missing `{text}`");
    }
    // Panels are lettered only on request, and only where a figure has more than one.
    let letters = |svg: &str| svg.contains(">\n(a)\n</text>") && svg.contains(">\n(b)\n</text>");
    assert!(!letters(
        &std::fs::read_to_string(figs.join("latency_vs_load.svg")).unwrap()
    ));
    let lettered = s.parent().unwrap().join("lettered");
    gpushare_ok(&[
        "plot",
        out.to_str().unwrap(),
        "--panel-letters",
        "--out",
        lettered.to_str().unwrap(),
    ]);
    assert!(letters(
        &std::fs::read_to_string(lettered.join("latency_vs_load.svg")).unwrap()
    ));
    assert!(
        !std::fs::read_to_string(lettered.join("throughput_vs_load.svg"))
            .unwrap()
            .contains("(a)")
    );
    let index = std::fs::read_to_string(figs.join("figures.md")).unwrap();
    assert!(index.contains("`latency_cdf` — end-to-end latency CDF") && index.contains("simulation.load_scale = 1.0"));
    // Plotting again gives the same files.
    let before = std::fs::read(figs.join("latency_vs_load.png")).unwrap();
    gpushare_ok(&["plot", out.to_str().unwrap()]);
    assert!(before == std::fs::read(figs.join("latency_vs_load.png")).unwrap());
}

#[test]
fn other_axes_facet_and_a_single_run_plots_too() {
    let s = scenario("fig-facets", SWEEP);
    let out = s.parent().unwrap().join("out");
    common::sweep_over_gpus_per_node(&s, &out);
    gpushare_ok(&["plot", out.to_str().unwrap()]);
    check_pair(&out.join("figures"), "throughput_vs_load-cluster.gpus_per_node=1");
    check_pair(&out.join("figures"), "throughput_vs_load-cluster.gpus_per_node=2");
    // --x and --series choose the axes.
    let by_gpus = out.join("by-gpus");
    let (from, to) = (out.to_str().unwrap(), by_gpus.to_str().unwrap());
    gpushare_ok(&[
        "plot",
        from,
        "--x",
        "cluster.gpus_per_node",
        "--series",
        "policy",
        "--out",
        to,
    ]);
    check_pair(
        &by_gpus,
        "throughput_vs_cluster.gpus_per_node-simulation.load_scale=0.5",
    );
    // A run's directory: its CDF and samples over time.
    let run = s.parent().unwrap().join("run");
    gpushare_ok(&common::run_args(s.to_str().unwrap(), &run, &[]));
    gpushare_ok(&["plot", run.to_str().unwrap()]);
    check_pair(&run.join("figures"), "latency_cdf");
    check_pair(&run.join("figures"), "gpu_memory_over_time");
}

#[test]
fn plotting_something_else_is_bad_input() {
    let dir = common::temp_dir("fig-bad");
    common::gpushare_refuses(&["plot", dir.to_str().unwrap()], "neither a sweep's output");
}

#[test]
fn the_committed_figures_are_what_the_readme_commands_make() {
    // README: `gpushare sweep scenarios/sweeps/policies_vs_load.toml`, then `gpushare plot`.
    let dir = common::temp_dir("fig-readme");
    let out = dir.join("sweep");
    gpushare_ok(&[
        "sweep",
        "scenarios/sweeps/policies_vs_load.toml",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    let figs = dir.join("figures");
    gpushare_ok(&["plot", out.to_str().unwrap(), "--out", figs.to_str().unwrap()]);
    let committed = common::repo_root().join("reports/figures");
    let mut names: Vec<String> = std::fs::read_dir(&committed)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "figures.md")
        .collect();
    names.sort();
    assert_eq!(names.len(), 14, "{names:?}");
    for n in &names {
        let now = std::fs::read(figs.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert!(
            now == std::fs::read(committed.join(n)).unwrap(),
            "reports/figures/{n} is stale: regenerate with `gpushare sweep scenarios/sweeps/policies_vs_load.toml` \
             and `gpushare plot out/policies-vs-load-sweep --out reports/figures`"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
