//! LLM serving (`[serving]` scenarios): the batching arithmetic exact on a small case, KV
//! admission and preemption end to end, cold-start tiers, the sharing mechanisms, accounting of
//! every request on the bundled scenarios, determinism and bad input. Behaviour checks of the
//! mechanics (their numbers follow from the stated formulas), not validations of the model:
//! `gpushare fidelity` holds the cost model against published measurements.

mod common;

use serde_json::Value;
use std::path::Path;

/// A one-GPU A100-80GB scenario for `model` with `workload` (a TOML inline table) and extra
/// `[serving]` lines.
fn scenario(name: &str, model: &str, workload: &str, serving: &str) -> std::path::PathBuf {
    common::scenario(
        name,
        &format!(
            r#"[simulation]
horizon_s = 1000.0

[cluster]
nodes = 1
gpus_per_node = 1
gpu = "a100-80gb"

[serving]
{serving}

[[deployments]]
name = "d"
model = "{model}"
workload = {workload}
"#
        ),
    )
}

fn run(path: &Path, sets: &[&str]) -> (Value, Vec<Vec<String>>) {
    let out = path.parent().unwrap().join("out");
    let p = path.to_str().unwrap();
    common::gpushare_ok(&common::run_args(p, &out, sets));
    let summary: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let rows = std::fs::read_to_string(out.join("invocations.csv"))
        .map(|t| {
            t.lines()
                .skip(1)
                .map(|l| l.split(',').map(String::from).collect())
                .collect()
        })
        .unwrap_or_default();
    (summary, rows)
}

/// Llama-2-7B's roofline iteration on an A100-80GB, computed here from the published
/// architecture and the device's peaks (the formula of `serving::cost`'s doc), seconds.
fn iteration_s(new_tokens: f64, attention: f64, cached: f64, eff: (f64, f64)) -> f64 {
    let (p, layers, hidden, kv) = (6.74e9, 32.0, 4096.0, 2.0 * 32.0 * 32.0 * 128.0 * 2.0);
    let flops = 2.0 * p * new_tokens + 4.0 * layers * hidden * attention;
    let bytes = 2.0 * p + kv * (cached + new_tokens);
    (flops / (eff.0 * 312e12)).max(bytes / (eff.1 * 2039e9))
}

#[test]
fn two_requests_batch_as_the_formulas_say() {
    let eff = (0.5, 0.8);
    let s = scenario(
        "llm-exact",
        "llama2-7b",
        "{ kind = \"burst\", requests = 2, prompt_tokens = 100, output_tokens = 3 }",
        "cost = { compute_efficiency = 0.5, memory_efficiency = 0.8, host_ms = 0.0 }",
    );
    let (summary, rows) = run(&s, &[]);
    // One prefill of both prompts (200 tokens, causal attention Σ p(p+1)/2), then two decodes
    // of both (contexts 100 and 101): each iteration rounded up to the nanosecond.
    let prefill = iteration_s(200.0, 2.0 * 100.0 * 101.0 / 2.0, 0.0, eff);
    let decode = |c: f64| iteration_s(2.0, 2.0 * (c + 1.0), 2.0 * c, eff);
    let ns = |x: f64| (x * 1e9).ceil() / 1e9;
    let ttft = ns(prefill);
    let e2e = ttft + ns(decode(100.0)) + ns(decode(101.0));
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let (got_ttft, got_e2e): (f64, f64) = (r[7].parse().unwrap(), r[9].parse().unwrap());
        assert!((got_ttft - ttft).abs() < 2e-9, "TTFT {got_ttft} vs {ttft}");
        assert!((got_e2e - e2e).abs() < 4e-9, "e2e {got_e2e} vs {e2e}");
    }
    assert_eq!(summary["iterations"], 3);
    assert_eq!(summary["mean_batch"], 2.0);
    // The run ends with its last request, not with the keep-alive after it.
    assert!((summary["end_s"].as_f64().unwrap() - e2e).abs() < 4e-9, "{summary}");
    assert!(summary["gpu_busy_fraction"].as_f64().unwrap() > 0.999, "{summary}");
    // Decoding is memory-bound here: the weights dominate the bytes.
    assert!(decode(100.0) > 2.0 * 6.74e9 / (0.8 * 2039e9) * 0.99);
}

#[test]
fn one_at_a_time_serves_requests_in_turn_and_batching_overlaps_them() {
    let w = "{ kind = \"burst\", requests = 8, prompt_tokens = 512, output_tokens = 64 }";
    let s = scenario("llm-serial", "llama2-7b", w, "");
    let (batched, _) = run(&s, &[]);
    let (serial, rows) = run(&s, &["serving.scheduler.max_batch=1"]);
    assert_eq!(serial["iterations"], 8 * 64);
    assert_eq!(batched["iterations"], 1 + 63);
    // In turn: each request's first token comes after the whole of the ones before it.
    let mut ends: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (r[7].parse().unwrap(), r[9].parse().unwrap()))
        .collect();
    ends.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in ends.windows(2) {
        assert!(w[1].0 > w[0].1, "{w:?}");
    }
    let tput = |v: &Value| v["output_tokens_per_s"].as_f64().unwrap();
    assert!(
        tput(&batched) > 5.0 * tput(&serial),
        "{} vs {}",
        tput(&batched),
        tput(&serial)
    );
}

#[test]
fn a_small_kv_cache_preempts_and_every_request_still_completes() {
    // 13B on an A100-40GB with 0.85 of its memory: ≈ 8.8 GB of KV cache, ≈ 10,700 tokens: 16
    // requests of 1,000 + 500 tokens (24,000 at the end) cannot all hold their cache.
    let w = "{ kind = \"burst\", requests = 16, prompt_tokens = 1000, output_tokens = 500 }";
    let s = scenario("llm-preempt", "llama2-13b", w, "");
    let (summary, rows) = run(&s, &["cluster.gpu=\"a100-40gb\""]);
    assert_eq!(summary["completed"], 16);
    assert!(summary["preemptions"].as_u64().unwrap() > 0, "{summary}");
    let preempted: u64 = rows.iter().map(|r| r[10].parse::<u64>().unwrap()).sum();
    assert_eq!(preempted, summary["preemptions"].as_u64().unwrap());
    // With room for all, none.
    let (roomy, _) = run(&s, &[]);
    assert_eq!(roomy["preemptions"], 0);
}

#[test]
fn cold_starts_load_from_the_remote_store_or_from_a_cached_checkpoint() {
    // One request every 100 s, instances stopped as soon as idle: every request starts one.
    let w = "{ kind = \"poisson\", rate_per_s = 0.01, prompt_tokens = 10, output_tokens = 1 }";
    let serving = "cold_start = { container_s = 1.0, runtime_s = 2.0, remote_gbps = 5.0, dram_gbps = 25.0 }";
    let s = scenario("llm-cold", "llama2-13b", w, serving);
    let sets = ["deployments[0].min_instances=0", "deployments[0].keep_alive_s=0.0"];
    let (plain, rows) = run(&s, &sets);
    // A request arriving while an instance starts waits for it; the others start their own.
    let starts = plain["cold_starts"].as_u64().unwrap();
    assert!(
        starts >= 3 && starts <= rows.len() as u64,
        "{starts} starts, {} requests",
        rows.len()
    );
    assert!(rows.iter().all(|r| r[11] == "true"), "every request waited for a start");
    let weights_gb = 13.0e9 * 2.0 / 1e9;
    let remote = 3.0 + weights_gb / 5.0;
    assert!((plain["cold_start_mean_s"].as_f64().unwrap() - remote).abs() < 1e-6);
    let sets_cached = [sets[0], sets[1], "serving.cold_start.checkpoint_cache=true"];
    let (cached, rows) = run(&s, &sets_cached);
    // The first start fetches the checkpoint; the node's host memory serves the others.
    let dram = 3.0 + weights_gb / 25.0;
    let k = cached["cold_starts"].as_u64().unwrap() as f64;
    let want = (remote + (k - 1.0) * dram) / k;
    assert!(
        (cached["cold_start_mean_s"].as_f64().unwrap() - want).abs() < 1e-6,
        "{cached}"
    );
    let ttft: Vec<f64> = rows.iter().map(|r| r[7].parse().unwrap()).collect();
    assert!(ttft[0] > remote && ttft[1..].iter().all(|&t| t < remote), "{ttft:?}");
}

#[test]
fn llms_sharing_a_gpu_run_under_every_mechanism_and_a_gpu_each_is_fastest() {
    let path = common::repo_root().join("scenarios/llm_sharing.toml");
    let p = path.to_str().unwrap();
    let mut p99 = Vec::new();
    for (m, extra) in [
        ("mps", vec![]),
        ("mig", vec![]),
        ("time-slicing", vec![]),
        ("dedicated", vec!["serving.per_gpu=1", "cluster.gpus_per_node=2"]),
    ] {
        let out = common::temp_dir(&format!("llm-share-{m}"));
        let sharing = format!("serving.sharing=\"{m}\"");
        let mut sets = vec![sharing.as_str(), "simulation.horizon_s=1200"];
        sets.extend(extra);
        common::gpushare_ok(&common::run_args(p, &out, &sets));
        let s: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(s["arrived"], s["completed"], "{m}: {s}");
        assert!(s["gpu_busy_fraction"].as_f64().unwrap() <= 1.0 + 1e-9, "{m}");
        p99.push((m, s["ttft_s"]["p99"].as_f64().unwrap()));
    }
    let dedicated = p99[3].1;
    assert!(p99[..3].iter().all(|&(_, t)| t > dedicated), "{p99:?}");
}

#[test]
fn every_bundled_serving_scenario_accounts_for_every_request_and_repeats_exactly() {
    let mut seen = 0;
    for path in common::bundled_scenarios() {
        let src = gpushare_sim::ScenarioSource::load(&path).unwrap();
        if !gpushare_sim::serving::is_serving(&src) {
            continue;
        }
        seen += 1;
        let (a, rows) = run_copy(&path, "a");
        let arrived = a["arrived"].as_u64().unwrap();
        assert!(arrived > 0, "{path:?}");
        assert_eq!(
            arrived,
            a["completed"].as_u64().unwrap() + a["refused"].as_u64().unwrap()
        );
        assert_eq!(rows.len() as u64, arrived, "{path:?}: one row per request");
        let (b, _) = run_copy(&path, "b");
        assert_eq!(a, b, "{path:?}: the same scenario gives the same run");
    }
    assert!(seen >= 3, "the bundled serving scenarios");
}

/// Runs a bundled scenario into a fresh folder, keeping its requests, its first 10 minutes
/// when it is longer than an hour (the scale benchmarks).
fn run_copy(path: &Path, tag: &str) -> (Value, Vec<Vec<String>>) {
    let name = path.file_stem().unwrap().to_string_lossy();
    let out = common::temp_dir(&format!("llm-bundled-{name}-{tag}"));
    let text = std::fs::read_to_string(path).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let horizon = table["simulation"]["horizon_s"].as_float().unwrap();
    let mut sets = vec!["output.invocations=true"];
    if horizon > 3600.0 {
        sets.push("simulation.horizon_s=600");
    }
    common::gpushare_ok(&common::run_args(path.to_str().unwrap(), &out, &sets));
    let summary: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let rows = std::fs::read_to_string(out.join("invocations.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (summary, rows)
}

#[test]
fn bad_serving_input_names_the_field_and_what_is_valid() {
    let w = "{ kind = \"burst\", requests = 1, prompt_tokens = 10, output_tokens = 1 }";
    let s = scenario("llm-bad", "llama2-7b", w, "");
    let p = s.to_str().unwrap();
    let out = s.parent().unwrap().join("out");
    let o = out.to_str().unwrap();
    let refuses = |set: &str, says: &str| common::gpushare_refuses(&["run", p, "--out", o, "--set", set], says);
    refuses("deployments[0].model=\"gpt-5\"", "valid: llama2-7b");
    refuses("serving.per_gpu=3", "dedicated takes 1");
    refuses("serving.sharing=\"magic\"", "serving.sharing");
    refuses(
        "serving.mps_cap=0",
        "serving.mps_cap: must be a fraction of the SMs in [0.01, 1], got 0",
    );
    refuses(
        "serving.cold_start.container_s=nan",
        "serving.cold_start.container_s: must be 0 s to a year",
    );
    refuses(
        "serving.cold_start.remote_gbps=1e-300",
        "serving.cold_start.remote_gbps",
    );
    refuses(
        "deployments[0].workload.requests=1000000000000",
        "deployments[0].workload.requests: must be 1 to 10⁷ requests",
    );
    refuses("cluster.gpus_per_node=0", "cluster.gpus_per_node: must be at least 1");
    refuses("deployments[0].scale_up_waiting=0", "deployments[0].scale_up_waiting");
    refuses("deployments[0].min_instances=3", "max_instances");
    common::gpushare_refuses(
        &[
            "run",
            p,
            "--out",
            o,
            "--set",
            "serving.sharing=\"mig\"",
            "--set",
            "serving.per_gpu=2",
            "--set",
            "cluster.gpu=\"v100-32gb\"",
        ],
        "v100-32gb has no MIG",
    );
    common::gpushare_refuses(
        &[
            "run",
            p,
            "--out",
            o,
            "--set",
            "deployments[0].min_instances=2",
            "--set",
            "deployments[0].max_instances=2",
        ],
        "deployments[0].min_instances: the deployments keep 2 instances; the cluster has 1 engine slots",
    );
    common::gpushare_refuses(
        &[
            "run",
            p,
            "--out",
            o,
            "--set",
            "cluster.gpu=\"t4\"",
            "--set",
            "serving.scheduler.memory_utilization=0.8",
        ],
        "leaves no KV cache",
    );
    refuses("serving.scheduler.nonsense=1", "unknown field `nonsense`");
    let text = std::fs::read_to_string(&s)
        .unwrap()
        .replace("name = \"d\"", "name = \"d\"\nmin_instances = 5");
    std::fs::write(&s, text).unwrap();
    common::gpushare_refuses(&["run", p, "--out", o], "min_instances");
}

/// A calibration check: the cost model's compiled-in efficiencies are the fit of
/// `validation/llm.csv`'s calibration rows, and those rows are predicted within 0.1 %.
#[test]
fn the_cost_model_is_the_fit_of_the_calibration_rows() {
    use gpushare_reports::fidelity::llm;
    use gpushare_sim::serving::cost::CostParams;
    let rows = llm::load(&common::repo_root().join("validation/llm.csv")).unwrap();
    let calibration: Vec<_> = rows.iter().filter(|r| r.calibration).collect();
    assert_eq!(calibration.len(), 2);
    let fit = llm::fit(&calibration).unwrap();
    let compiled = CostParams::default();
    assert!(
        (fit.compute_efficiency - compiled.compute_efficiency).abs() < 1e-3,
        "{fit:?}"
    );
    assert!(
        (fit.memory_efficiency - compiled.memory_efficiency).abs() < 1e-3,
        "{fit:?}"
    );
    for p in llm::predict_all(&rows, &compiled).iter().filter(|p| p.row.calibration) {
        assert!(p.error().unwrap().abs() < 1e-3, "{}: {:?}", p.row.id, p.predicted);
    }
}

#[test]
fn a_bad_llm_dataset_row_names_its_line_and_field() {
    use gpushare_reports::fidelity::llm;
    let dir = common::temp_dir("llm-bad-dataset");
    let path = dir.join("llm.csv");
    let text = std::fs::read_to_string(common::repo_root().join("validation/llm.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[3] = lines[3].replace("kind=burst", "kind=bursty");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let err = llm::load(&path).unwrap_err();
    assert!(
        err.contains("llm.csv:4: field `experiment`: kind `bursty`; valid: burst, iteration"),
        "{err}"
    );
}

/// The invocation engine's keep-alive plug-ins drive serving instances too: on the bursty code
/// trace, the hybrid histogram (which learns the deployment's idle times) keeps instances
/// through the gaps that the fixed 30 s keep-alive does not, so fewer requests wait for a start.
#[test]
fn the_hybrid_keep_alive_scales_llm_instances_with_fewer_cold_starts() {
    let path = common::repo_root().join("scenarios/llm_cold_start.toml");
    let p = path.to_str().unwrap();
    let mut cold = Vec::new();
    for k in ["fixed", "hybrid"] {
        let out = common::temp_dir(&format!("llm-keep-{k}"));
        let set = format!("deployments[0].keep_alive_policy=\"{k}\"");
        common::gpushare_ok(&common::run_args(p, &out, &[set.as_str()]));
        let s: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(s["arrived"], s["completed"], "{k}");
        cold.push((s["cold_starts"].as_u64().unwrap(), s["cold_requests"].as_u64().unwrap()));
    }
    assert!(
        cold[1].0 < cold[0].0 && cold[1].1 < cold[0].1,
        "fixed, hybrid: {cold:?}"
    );
}

#[test]
fn a_serving_run_writes_its_cdf_figure_and_plot_redraws_it_from_its_files() {
    let w = "{ kind = \"poisson\", rate_per_s = 2.0, prompt_tokens = 300, output_tokens = 40 }";
    let s = scenario("llm-figure", "llama2-7b", w, "");
    let (_, rows) = run(&s, &["simulation.horizon_s=120"]);
    assert!(rows.len() > 100);
    let out = s.parent().unwrap().join("out");
    let drawn = std::fs::read(out.join("figures/ttft_tpot_cdf.svg")).unwrap();
    let again = out.join("again");
    common::gpushare_ok(&["plot", out.to_str().unwrap(), "--out", again.to_str().unwrap()]);
    assert_eq!(std::fs::read(again.join("ttft_tpot_cdf.svg")).unwrap(), drawn);
    assert!(again.join("ttft_tpot_cdf.png").exists());
}

/// A sweep of a serving scenario: every run written as `gpushare run` writes it, its figures
/// in `runs.csv`, and `plot` drawing TTFT and TPOT against the swept rate.
#[test]
fn a_serving_sweep_plots_ttft_and_tpot_against_load() {
    let s = common::scenario(
        "llm-sweep",
        r#"[simulation]
horizon_s = 120.0

[cluster]
nodes = 1
gpus_per_node = 1
gpu = "a100-80gb"

[serving]

[[deployments]]
name = "d"
model = "llama2-7b"
workload = { kind = "poisson", rate_per_s = 1.0, prompt_tokens = 500, output_tokens = 50 }

[sweep]
"deployments[0].workload.rate_per_s" = [1.0, 8.0]
"#,
    );
    let out = s.parent().unwrap().join("sweep");
    let o = out.to_str().unwrap();
    common::gpushare_ok(&["validate", s.to_str().unwrap()]);
    common::gpushare_ok(&["sweep", s.to_str().unwrap(), "--seeds", "2", "--out", o, "-q"]);
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    let header = runs.lines().next().unwrap();
    assert!(
        header.contains("ttft_s.p50") && header.contains("output_tokens_per_s"),
        "{header}"
    );
    assert_eq!(runs.lines().count(), 1 + 4);
    let printed = common::gpushare_ok(&["plot", o]);
    let figures = out.join("figures");
    for f in ["ttft", "tpot", "output_tokens", "slo_attainment"] {
        let name = format!("{f}_vs_deployments_0_.workload.rate_per_s.svg");
        assert!(figures.join(&name).exists(), "{name}: {printed}");
    }
    // The sweep's runs are the runs `gpushare run` makes of each point.
    let single = s.parent().unwrap().join("single");
    let set = "deployments[0].workload.rate_per_s=8.0";
    common::gpushare_ok(&[
        "run",
        s.to_str().unwrap(),
        "-q",
        "--set",
        set,
        "--out",
        single.to_str().unwrap(),
    ]);
    let a: Value = serde_json::from_slice(&std::fs::read(single.join("summary.json")).unwrap()).unwrap();
    let b: Value = serde_json::from_slice(&std::fs::read(out.join("runs/0002/summary.json")).unwrap()).unwrap();
    assert_eq!(a["ttft_s"], b["ttft_s"]);
}

/// The hybrid keep-alive learns a periodic deployment (a request every 10 minutes): it stops
/// the idle instance and pre-warms one before the next request, and never pre-warms after the
/// last request.
#[test]
fn the_hybrid_keep_alive_prewarms_a_periodic_deployment_and_not_after_its_last_request() {
    let dir = common::temp_dir("llm-prewarm");
    let mut trace = String::from("TIMESTAMP,ContextTokens,GeneratedTokens\n");
    for i in 0..72u64 {
        let (h, m) = (i * 10 / 60, i * 10 % 60);
        trace.push_str(&format!("2024-05-10 {h:02}:{m:02}:00.000,500,20\n"));
    }
    std::fs::write(dir.join("trace.csv"), trace).unwrap();
    let s = dir.join("s.toml");
    std::fs::write(
        &s,
        r#"[simulation]
horizon_s = 42700.0

[cluster]
nodes = 1
gpus_per_node = 1
gpu = "a100-80gb"

[serving]

[[deployments]]
name = "d"
model = "llama2-7b"
min_instances = 0
keep_alive_s = 60.0
keep_alive_policy = "hybrid"
workload = { kind = "azure_llm", path = "trace.csv" }
"#,
    )
    .unwrap();
    let (summary, rows) = run(&s, &[]);
    assert_eq!(rows.len(), 72);
    let d = &summary["deployments"][0];
    let (prewarms, starts) = (
        d["prewarms"].as_u64().unwrap(),
        d["instances_started"].as_u64().unwrap(),
    );
    let cold = summary["cold_requests"].as_u64().unwrap();
    assert!(prewarms > 30, "{summary}");
    // Every start served a request: a cold one, or a pre-warmed one before its request.
    assert!(starts <= 72 && cold + prewarms >= starts, "{summary}");
    assert!(
        cold < 72 - 30,
        "pre-warming spares requests their cold start: {summary}"
    );
}
