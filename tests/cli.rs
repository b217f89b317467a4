//! The command line: bad input gets a located error and exit code 2, never a panic.

mod common;

use std::path::PathBuf;

const VALID: &str = r#"[simulation]
seed = 1
horizon_s = 10.0

[cluster]
nodes = 1
gpus_per_node = 1
gpu = "v100-16gb"

[[functions]]
name = "r"
profile = "kaas-resnet50"
rate_per_s = 1.0

[workload]
kind = "poisson"

[policy]
name = "exclusive"
keep_alive_s = 60.0
"#;

fn write(name: &str, text: &str) -> PathBuf {
    let dir = common::temp_dir(&format!("cli-{name}"));
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `validate` on `text` with extra args; returns (exit code, stderr).
fn validate(name: &str, text: &str, extra: &[&str]) -> (i32, String) {
    let p = write(name, text);
    let mut args = vec!["validate", p.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = common::gpushare(&args);
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn expect_error(name: &str, text: &str, extra: &[&str], wanted: &[&str]) {
    let (code, err) = validate(name, text, extra);
    assert_eq!(code, 2, "{name}: exit code, stderr: {err}");
    for w in wanted {
        assert!(err.contains(w), "{name}: expected `{w}` in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{name}: {err}");
}

#[test]
fn valid_scenario_validates() {
    let (code, err) = validate("valid", VALID, &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn unknown_key_names_line_column_and_valid_keys() {
    let text = VALID.replace("horizon_s = 10.0", "horizon_s = 10.0\nhorizn = 3");
    expect_error(
        "unknown",
        &text,
        &[],
        &[
            "unknown.toml:4:1: simulation.horizn: unknown field `horizn`",
            "expected one of",
            "4 | horizn = 3",
        ],
    );
}

#[test]
fn missing_field_points_at_its_table() {
    let text = VALID.replace("horizon_s = 10.0\n", "");
    expect_error(
        "missing",
        &text,
        &[],
        &["missing.toml:1:1: simulation: missing field `horizon_s`"],
    );
}

#[test]
fn out_of_range_values_are_located() {
    let text = VALID.replace("horizon_s = 10.0", "horizon_s = 10.0\nwarmup_s = -1.0");
    expect_error(
        "range",
        &text,
        &[],
        &["range.toml:4:12: simulation.warmup_s: must be a non-negative number, got -1"],
    );
    let text = VALID.replace("rate_per_s = 1.0", "rate_per_s = -2.0");
    expect_error(
        "rate",
        &text,
        &[],
        &["rate.toml:13:14: functions[0].rate_per_s: must be a non-negative number"],
    );
}

#[test]
fn unknown_gpu_profile_and_policy_list_valid_names() {
    expect_error(
        "gpu",
        &VALID.replace("\"v100-16gb\"", "\"a1000\""),
        &[],
        &["gpu.toml:8:7: cluster.gpu: unknown GPU `a1000`; valid: v100-16gb, v100-32gb, t4"],
    );
    expect_error(
        "profile",
        &VALID.replace("kaas-resnet50", "resnet"),
        &[],
        &["functions[0].profile: unknown profile `resnet`; known: kaas-resnet50"],
    );
    expect_error(
        "policy",
        &VALID.replace("name = \"exclusive\"", "name = \"mps9\""),
        &[],
        &["policy.toml:19:8: policy.name: unknown policy `mps9`; valid: exclusive"],
    );
}

#[test]
fn policy_parameters_are_checked() {
    expect_error(
        "ka",
        &VALID.replace("keep_alive_s = 60.0", "keep_alive_s = -5.0"),
        &[],
        &["ka.toml:20:16: policy.keep_alive_s: must be ≥ 0 seconds"],
    );
    expect_error(
        "kakey",
        &VALID.replace("keep_alive_s = 60.0", "keepalive = 5"),
        &[],
        &["kakey.toml:20:1: policy.keepalive: unknown field `keepalive`, expected one of `keep_alive_s`"],
    );
    // A policy's own keys are listed beside the pool's.
    expect_error(
        "ownkey",
        &VALID.replace("keep_alive_s = 60.0", "kill_larges = true"),
        &[],
        &[
            "ownkey.toml:20:1: policy.kill_larges: unknown field",
            "or exclusive's own `kill_largest`",
        ],
    );
}

#[test]
fn function_that_fits_no_gpu_is_refused() {
    let text = VALID.replace(
        "profile = \"kaas-resnet50\"",
        "profile = { base = \"kaas-resnet50\", weights_mib = 20000.0 }",
    );
    expect_error(
        "fit",
        &text,
        &[],
        &[
            "fit.toml:12:11: functions[0].profile: needs",
            "the largest GPU in the cluster, v100-16gb, has 16160 MiB",
        ],
    );
}

#[test]
fn overrides_are_applied_and_their_errors_named() {
    let (code, err) = validate(
        "set-ok",
        VALID,
        &["--set", "policy.keep_alive_s=5", "--set", "functions[0].rate_per_s=3"],
    );
    assert_eq!(code, 0, "{err}");
    expect_error(
        "set-type",
        VALID,
        &["--set", "simulation.horizon_s=abc"],
        &["in --set simulation.horizon_s=abc: simulation.horizon_s: invalid type: string \"abc\", expected f64"],
    );
    expect_error(
        "set-syntax",
        VALID,
        &["--set", "nonsense"],
        &["in --set nonsense: expected KEY=VALUE"],
    );
    expect_error(
        "set-index",
        VALID,
        &["--set", "functions[3].name=x"],
        &["index 3 is out of range (1 entries)"],
    );
}

#[test]
fn syntax_errors_and_missing_files() {
    expect_error(
        "syntax",
        &VALID.replace("seed = 1", "seed = = 1"),
        &[],
        &["syntax.toml:2:8: invalid TOML"],
    );
    let o = common::gpushare(&["run", "/nonexistent/s.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/s.toml: cannot read the scenario"));
}

#[test]
fn trace_errors_name_file_line_and_field() {
    let dir = common::temp_dir("cli-trace");
    std::fs::write(dir.join("t.csv"), "time,func\n0.5,r\n0.2,r\n").unwrap();
    let text = VALID
        .replace("rate_per_s = 1.0\n", "")
        .replace("kind = \"poisson\"", "kind = \"csv\"\npath = \"t.csv\"");
    std::fs::write(dir.join("s.toml"), text).unwrap();
    let o = common::gpushare(&[
        "run",
        dir.join("s.toml").to_str().unwrap(),
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("t.csv:3: field `time`: 0.2 is earlier than the previous row's 0.5"),
        "{err}"
    );
}

#[test]
fn poisson_rate_with_a_csv_workload_is_refused() {
    let text = VALID.replace("kind = \"poisson\"", "kind = \"csv\"\npath = \"t.csv\"");
    expect_error(
        "csvrate",
        &text,
        &[],
        &["csvrate.toml:13:14: functions[0].rate_per_s: applies to Poisson workloads only"],
    );
}

#[test]
fn policies_lists_the_registry() {
    let o = common::gpushare(&["policies"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for p in gpushare_policies::registry() {
        assert!(text.contains(&format!("{}\n", p.name)), "{} missing", p.name);
        for d in (p.params)() {
            assert!(text.contains(&format!("  {}", d.key)), "{}.{} missing", p.name, d.key);
        }
    }
    for r in gpushare_policies::placement::rankings() {
        assert!(text.contains(&format!("  {:<13} {}", r.name, r.summary)), "{}", r.name);
    }
}

/// The text of README between `<!-- NAME: begin -->` and `<!-- NAME: end -->`.
fn readme_block(name: &str) -> String {
    let readme = std::fs::read_to_string(common::repo_root().join("README.md")).unwrap();
    let begin = format!("<!-- {name}: begin -->");
    let end = format!("<!-- {name}: end -->");
    let (_, rest) = readme
        .split_once(&begin)
        .unwrap_or_else(|| panic!("README has no {begin}"));
    let (block, _) = rest.split_once(&end).unwrap_or_else(|| panic!("README has no {end}"));
    block.to_string()
}

/// README's policy tables are what `gpushare policies --markdown` prints, so no key or default
/// in them is kept by hand.
#[test]
fn readme_policy_tables_are_generated() {
    let block = readme_block("policies");
    let block = block.strip_prefix('\n').expect("the block starts on its own line");
    let o = common::gpushare(&["policies", "--markdown"]);
    assert!(o.status.success());
    assert_eq!(
        block,
        String::from_utf8(o.stdout).unwrap(),
        "README's policy tables are stale: replace them with `gpushare policies --markdown`"
    );
}

const TRACE: &str = r#"[simulation]
horizon_s = 60.0

[cluster]
nodes = 1
gpus_per_node = 1
gpu = "v100-16gb"

[workload]
kind = "azure2019"
path = "SAMPLE"
minutes = 10

[workload.mapping]
kind = "single"
profile = "kaas-resnet50"

[policy]
name = "exclusive"
"#;

fn trace_scenario() -> String {
    TRACE.replace(
        "SAMPLE",
        common::repo_root()
            .join("traces/samples/azure2019-example")
            .to_str()
            .unwrap(),
    )
}

#[test]
fn trace_workload_errors_are_located() {
    let (code, err) = validate("trace-ok", &trace_scenario(), &[]);
    assert_eq!(code, 0, "{err}");
    expect_error(
        "map",
        &trace_scenario().replace("\"kaas-resnet50\"", "\"resnet\""),
        &[],
        &["map.toml:16:11: workload.mapping.profile: unknown profile `resnet`"],
    );
    expect_error(
        "withfns",
        &format!(
            "{}\n[[functions]]\nname = \"x\"\nprofile = \"kaas-bert\"\n",
            trace_scenario()
        ),
        &[],
        &["functions: a trace workload takes its functions from the trace"],
    );
    expect_error(
        "both",
        &trace_scenario().replace("minutes = 10", "minutes = 10\ngenerate = { functions = 5 }"),
        &[],
        &["workload: give either `path`"],
    );
    expect_error(
        "sel",
        &trace_scenario().replace("minutes = 10", "minutes = 10\nselect = { popularity = [0.9, 0.1] }"),
        &[],
        &["workload.select.popularity: must be [lo, hi]"],
    );
    expect_error(
        "spread",
        &trace_scenario().replace("minutes = 10", "minutes = 10\nspread = \"gaussian\""),
        &[],
        &[
            "workload.spread: unknown variant `gaussian`, expected one of `exponential`, `uniform`, `equidistant`, `poisson-fit`",
        ],
    );
    let missing = trace_scenario().replace("azure2019-example", "no-such-dir");
    expect_error("missing-trace", &missing, &[], &["no-such-dir"]);
}

/// `compare`: one row per policy in the order given, the same table whatever the thread count,
/// figures equal to what `run` reports, and bad policies refused before anything runs.
#[test]
fn compare_tables_policies_in_order_deterministically() {
    let p = write("compare", &VALID.replace("horizon_s = 10.0", "horizon_s = 60.0"));
    let path = p.to_str().unwrap();
    let table = |threads: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_gpushare"))
            .args(["compare", path, "--policy", "exclusive"])
            .args(["--policy", "{ name = \"mps\", active_thread_percentage = 50 }"])
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let one = table("1");
    println!("{one}");
    assert_eq!(one, table("2"), "the table depends on the thread count");
    let rows: Vec<&str> = one.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), 3, "{one}");
    assert!(rows[1].starts_with("| exclusive |") && rows[2].starts_with("| { name = \"mps\""));

    let out = common::temp_dir("compare-run");
    let o = common::gpushare(&["run", path, "--quiet", "--out", out.to_str().unwrap()]);
    assert!(o.status.success());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let completed = summary["counts"]["completed"].as_u64().unwrap();
    let cells: Vec<&str> = rows[1].split('|').map(str::trim).collect();
    assert_eq!(cells[3], completed.to_string(), "{}", rows[1]);

    let o = common::gpushare(&["compare", path, "--policy", "exclusive", "--policy", "mpss"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("mpss") && err.contains("fast-gshare"), "{err}");
    assert!(o.stdout.is_empty(), "a table was printed before the error");
}

/// README's side-by-side table is what its command prints today.
#[test]
fn readme_compare_table_is_reproduced_by_its_command() {
    let block = readme_block("compare");
    let (_, rest) = block.split_once("```sh\n").expect("the block opens with the command");
    let (command, printed) = rest.split_once("```\n").expect("the command block closes");
    let command = command.replace("\\\n", " ");
    let command = command
        .trim()
        .strip_prefix("cargo run --release -- ")
        .expect("the command starts with `cargo run --release --`");
    // Shell words: whitespace-separated, single quotes group.
    let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
    for c in command.chars() {
        match c {
            '\'' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    words.push(word);
    let args: Vec<&str> = words.iter().map(String::as_str).collect();
    let o = common::gpushare(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let now = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        printed.trim(),
        now.trim(),
        "README.md's compare table is stale; the command prints:\n{now}"
    );
}

#[test]
fn kaas_parameters_graphs_and_zipf_rates_are_checked() {
    let kaas = VALID.replace("name = \"exclusive\"\nkeep_alive_s = 60.0", "name = \"kaas\"\nKEY");
    expect_error(
        "kaas-reserve",
        &kaas.replace("KEY", "reserve_mib = 20000.0"),
        &[],
        &["kaas-reserve.toml:20:15: policy.reserve_mib: leaves no room for buffers on v100-16gb"],
    );
    expect_error(
        "kaas-module",
        &kaas.replace("KEY", "module_load_ms = -1.0"),
        &[],
        &["kaas-module.toml:20:18: policy.module_load_ms: must be a non-negative number, got -1"],
    );
    expect_error(
        "kaas-key",
        &kaas.replace("KEY", "affinty = false"),
        &[],
        &[
            "kaas-key.toml:20:1: policy.affinty: unknown field `affinty`",
            "`affinity`",
        ],
    );
    let graph = VALID.replace(
        "profile = \"kaas-resnet50\"",
        "profile = { base = \"kaas-resnet50\", kernel_graph = { buffers = [\
         { name = \"w\", mib = 1.0, role = \"input\", const = true }, \
         { name = \"w\", mib = 2.0, role = \"output\" }] } }",
    );
    expect_error(
        "graph",
        &graph,
        &[],
        &["functions[0].profile.kernel_graph.buffers[1].name: buffer `w` is named twice"],
    );
    expect_error(
        "graph-role",
        &graph.replace("\"output\"", "\"scratch\""),
        &[],
        &["unknown variant `scratch`, expected one of `input`, `output`, `temporary`"],
    );
    expect_error(
        "zipf",
        &VALID.replace("rate_per_s = 1.0", "rate_per_s = 1.0\nzipf_s = -1.8"),
        &[],
        &["zipf.toml:14:10: functions[0].zipf_s: must be a non-negative number (the Zipf exponent), got -1.8"],
    );
}

#[test]
fn zipf_rates_split_the_total_and_compare_labels_rows() {
    // Two clients, Zipf(1): shares 2/3 and 1/3 of 30/s.
    let text = VALID.replace("rate_per_s = 1.0", "rate_per_s = 30.0\ncount = 2\nzipf_s = 1.0");
    let sc = gpushare_sim::ScenarioSource::from_text(std::path::Path::new("z.toml"), &text)
        .parse()
        .unwrap();
    let rates: Vec<f64> = sc.functions.iter().map(|f| f.rate_per_s).collect();
    assert!(
        (rates[0] - 20.0).abs() < 1e-9 && (rates[1] - 10.0).abs() < 1e-9,
        "{rates:?}"
    );
    let p = write("label", &text);
    let o = common::gpushare(&[
        "compare",
        p.to_str().unwrap(),
        "--policy",
        "exclusive",
        "--policy",
        "short name: { name = \"kaas\" }",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(
        table.contains("\n| exclusive | ") && table.contains("\n| short name | "),
        "{table}"
    );
}

/// The ```text block of README.md that follows the first line containing `marker`.
fn readme_block_after(marker: &str) -> String {
    let readme = std::fs::read_to_string(common::repo_root().join("README.md")).unwrap();
    let (_, rest) = readme.split_once(marker).expect("README has the marker");
    let (_, rest) = rest.split_once("```text\n").expect("a text block follows");
    rest.split_once("```").expect("the block closes").0.to_string()
}

/// README's terminal summary of the quickstart is what `run` prints today (less the lines that
/// name the output directory and the wall-clock speed, which vary).
#[test]
fn readme_quickstart_summary_is_what_run_prints() {
    let block = readme_block_after("The terminal summary of the quickstart");
    let out = common::temp_dir("readme-quickstart");
    let o = common::gpushare(&["run", "scenarios/quickstart.toml", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("wrote") && !l.starts_with("performance"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        block.trim_end(),
        printed.join("\n"),
        "README.md's quickstart summary is stale; `run` prints the right-hand side"
    );
    let _ = std::fs::remove_dir_all(out);
}

/// README's example error is what `validate` prints for the quickstart with the stated edit.
#[test]
fn readme_error_example_is_what_validate_prints() {
    let block = readme_block_after("The quickstart with `keep_alive_s = -5.0`");
    let dir = common::temp_dir("readme-error");
    let text = std::fs::read_to_string(common::repo_root().join("scenarios/quickstart.toml")).unwrap();
    assert!(
        text.contains("keep_alive_s = 60.0"),
        "the quickstart's keep-alive moved"
    );
    std::fs::write(
        dir.join("quickstart.toml"),
        text.replace("keep_alive_s = 60.0", "keep_alive_s = -5.0"),
    )
    .unwrap();
    let bin = std::env::var_os("GPUSHARE_BIN").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_BIN_EXE_gpushare")),
        std::path::PathBuf::from,
    );
    let o = std::process::Command::new(bin)
        .args(["validate", "quickstart.toml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(block.trim_end(), String::from_utf8_lossy(&o.stderr).trim_end());
    let _ = std::fs::remove_dir_all(dir);
}
