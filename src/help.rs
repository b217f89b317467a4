//! The Examples sections of `--help`, one per subcommand, and the checks that every subcommand
//! has one, that every example parses, and that every argument has a description.

/// Examples of `run`.
pub const RUN: &str = r#"Examples:
  # simulate the quickstart; outputs in out/quickstart/
  gpushare run scenarios/quickstart.toml
  # another policy and seed, elsewhere
  gpushare run scenarios/quickstart.toml --set policy.name=mps --seed 7 --out out/q-mps
  # only the output directory on stdout (for scripts)
  gpushare run scenarios/quickstart.toml --quiet --no-invocations"#;

/// Examples of `validate`.
pub const VALIDATE: &str = r#"Examples:
  # check a scenario and stream its whole workload
  gpushare validate scenarios/azure2019_sample.toml
  # with an override, as a run would apply it
  gpushare validate scenarios/quickstart.toml --set cluster.gpu=h100-80gb"#;

/// Examples of `compare`.
pub const COMPARE: &str = r#"Examples:
  # three policies side by side, one Markdown table
  gpushare compare scenarios/quickstart.toml --policy exclusive --policy mps --policy time-sharing
  # a policy table with a row label
  gpushare compare scenarios/quickstart.toml --policy 'mps 50%: { name = "mps", active_thread_percentage = 50 }'"#;

/// Examples of `replay-compare`.
pub const REPLAY_COMPARE: &str = r#"Examples:
  # the quickstart simulated, then replayed on a GPU: predicted against measured
  gpushare replay-compare out/quickstart out/quickstart-replay --out out/comparison"#;

/// Examples of `replay`.
pub const REPLAY: &str = r#"Examples:
  # replay on GPU 0 (a machine with an NVIDIA GPU)
  gpushare replay scenarios/quickstart.toml --gpu 0 --out out/quickstart-replay
  # the same plan without a GPU (the emulated backend)
  gpushare replay scenarios/quickstart.toml --emulate --time-scale 20"#;

/// Examples of `calibrate`.
pub const CALIBRATE: &str = r#"Examples:
  # measure GPU 0 into a device profile
  gpushare calibrate --gpu 0 --out calibration.toml
  # without the MPS probes
  gpushare calibrate --no-mps"#;

/// Examples of `replay-overhead`.
pub const REPLAY_OVERHEAD: &str = r#"Examples:
  # the harness's added time per invocation, without a GPU
  gpushare replay-overhead --emulate --n 200"#;

/// Examples of `probe`.
pub const PROBE: &str = r#"Examples:
  # what this machine can replay; shell variables for scripts
  gpushare probe --out probe.json --env probe.env
  # the probe's plan without a GPU
  gpushare probe --emulate"#;

/// Examples of `colocate`.
pub const COLOCATE: &str = r#"Examples:
  # a co-location matrix on this GPU
  gpushare colocate --calibration calibration.toml --label h100 --out out/colocation
  # the matrix's plan without a GPU
  gpushare colocate --emulate"#;

/// Examples of `sweep`.
pub const SWEEP: &str = r#"Examples:
  # the bundled policies-vs-load sweep (90 runs)
  gpushare sweep scenarios/sweeps/policies_vs_load.toml
  # an axis from the command line, 10 seeds per point
  gpushare sweep scenarios/quickstart.toml --axis simulation.load_scale=0.5,1,2 --seeds 10 --out out/q-load
  # shard 1 of 4 (join them with merge)
  gpushare sweep scenarios/sweeps/policies_vs_load.toml --shard 1/4 --out out/shard1"#;

/// Examples of `plot`.
pub const PLOT: &str = r#"Examples:
  # the figures of a sweep
  gpushare plot out/policies-vs-load-sweep
  # choose the axes (a sweep of load and policy) and where the figures go
  gpushare plot out/policies-vs-load-sweep --x simulation.load_scale --series policy --out out/figures
  # panels lettered (a), (b) for a paper
  gpushare plot out/policies-vs-load-sweep --panel-letters"#;

/// Examples of `check`.
pub const CHECK: &str = r#"Examples:
  # the CI scenarios against the committed baseline
  gpushare check
  # a looser bound for one metric
  gpushare check --tolerance latency_s.end_to_end.p99=0.05"#;

/// Examples of `merge`.
pub const MERGE: &str = r#"Examples:
  # join four shards
  gpushare merge out/shard1 out/shard2 out/shard3 out/shard4 --out out/merged"#;

/// Examples of `profile`.
pub const PROFILE: &str = r#"Examples:
  # the FaST-Profiler grid of a scenario's functions
  gpushare profile scenarios/fastgshare_profile.toml --out out/profile.csv"#;

/// Examples of `fit`.
pub const FIT: &str = r#"Examples:
  # refit validation/fitted.toml on the calibration rows
  gpushare fit
  # check that the committed fit is reproduced (CI)
  gpushare fit --check"#;

/// Examples of `fidelity`.
pub const FIDELITY: &str = r#"Examples:
  # predict every dataset row; report in reports/fidelity/
  gpushare fidelity
  # fail if the validation error got worse (CI)
  gpushare fidelity --check"#;

/// Examples of `policies`.
pub const POLICIES: &str = r#"Examples:
  # every policy and its parameters
  gpushare policies
  # README's policy tables, generated from the same declarations
  gpushare policies --markdown"#;

/// Examples of `catalog`.
pub const CATALOG: &str = r#"Examples:
  # the built-in GPUs, function profiles and LLMs
  gpushare catalog"#;

/// Examples of `trace`.
pub const TRACE: &str = r#"Examples:
  # statistics of a trace (format detected)
  gpushare trace stats traces/samples/azure2019-example
  # a synthetic Azure 2019 trace
  gpushare trace generate --functions 500 --days 1 --out out/synthetic"#;

/// Examples of `trace stats`.
pub const TRACE_STATS: &str = r#"Examples:
  # an Azure 2019 directory, one hour, timer functions only
  gpushare trace stats traces/samples/azure2019-example --minutes 60 --triggers timer
  # an LLM trace, skipping malformed rows
  gpushare trace stats traces/samples/azure-llm-2023-code-1000.csv --skip-bad-rows"#;

/// Examples of `trace generate`.
pub const TRACE_GENERATE: &str = r#"Examples:
  # 500 functions over 2 days
  gpushare trace generate --functions 500 --days 2 --seed 3 --out out/synthetic"#;

/// Examples of `trace sample`.
pub const TRACE_SAMPLE: &str = r#"Examples:
  # the 100 most invoked functions of the first hour
  gpushare trace sample traces/samples/azure2019-example --minutes 60 --top-k 100 --out out/sampled"#;

/// Examples of `trace bench`.
pub const TRACE_BENCH: &str = r#"Examples:
  # how fast a trace streams
  gpushare trace bench traces/samples/azure2019-example"#;

/// Examples of `trace convert`.
pub const TRACE_CONVERT: &str = r#"Examples:
  # any trace to the plain time,func,duration CSV
  gpushare trace convert traces/samples/azure2019-example --minutes 10 --out out/plain.csv"#;

/// The name in `names` nearest to `typed` (fewest single-character edits), if it is near enough
/// to be what was meant: at most half of `typed`'s length away.
pub fn nearest<'a>(typed: &str, names: &[&'a str]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut diagonal = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let substitute = diagonal + usize::from(ca != *cb);
                diagonal = row[j + 1];
                row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
            }
        }
        row[b.len()]
    };
    names
        .iter()
        .map(|n| (distance(typed, n), *n))
        .min()
        .filter(|(d, _)| *d <= typed.chars().count().div_ceil(2))
        .map(|(_, n)| n)
}

/// Parses the command line; an unknown subcommand that clap finds no suggestion for gets the
/// nearest one.
pub fn parse_cli() -> crate::Cli {
    use clap::{CommandFactory, FromArgMatches};
    let mut command = crate::Cli::command();
    let matches = command.try_get_matches_from_mut(std::env::args_os());
    let error = match matches.and_then(|m| crate::Cli::from_arg_matches(&m)) {
        Ok(cli) => return cli,
        Err(e) => e,
    };
    let rendered = error.render().to_string();
    if error.kind() == clap::error::ErrorKind::InvalidSubcommand && !rendered.contains("tip:") {
        let typed = error
            .get(clap::error::ContextKind::InvalidSubcommand)
            .map(|v| v.to_string())
            .unwrap_or_default();
        let names: Vec<&str> = command
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| c.get_name())
            .collect();
        if let Some(n) = nearest(&typed, &names) {
            let (head, tail) = rendered.split_once("\n\n").unwrap_or((&rendered, ""));
            eprint!("{head}\n\n  tip: the nearest subcommand is '{n}'\n\n{tail}");
            std::process::exit(2);
        }
    }
    error.exit()
}

#[cfg(test)]
mod tests {
    use crate::Cli;
    use clap::{CommandFactory, Parser};

    /// Every subcommand, nested ones included, with its full name (`trace stats`).
    fn every_subcommand() -> Vec<(String, clap::Command)> {
        let mut out = Vec::new();
        let mut stack: Vec<(String, clap::Command)> = Cli::command()
            .get_subcommands()
            .map(|c| (c.get_name().to_string(), c.clone()))
            .collect();
        while let Some((name, cmd)) = stack.pop() {
            for sub in cmd.get_subcommands() {
                stack.push((format!("{name} {}", sub.get_name()), sub.clone()));
            }
            out.push((name, cmd));
        }
        out.retain(|(n, _)| !n.ends_with("help"));
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The example command lines of a subcommand's help (the lines after `Examples:` that
    /// start with `gpushare`), as shell words (single quotes group).
    fn examples_of(cmd: &clap::Command) -> Vec<Vec<String>> {
        let text = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
        text.lines()
            .map(str::trim)
            .filter(|l| l.starts_with("gpushare "))
            .map(|l| {
                let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
                for c in l.chars() {
                    match c {
                        '\'' => quoted = !quoted,
                        c if c.is_whitespace() && !quoted => words.push(std::mem::take(&mut word)),
                        c => word.push(c),
                    }
                }
                words.push(word);
                words.retain(|w| !w.is_empty());
                words
            })
            .collect()
    }

    #[test]
    fn every_subcommand_has_examples_that_parse() {
        let mut missing = Vec::new();
        for (name, cmd) in every_subcommand() {
            if cmd.is_hide_set() {
                continue;
            }
            let examples = examples_of(&cmd);
            if examples.is_empty() {
                missing.push(name.clone());
            }
            for words in examples {
                assert!(
                    words[1..].join(" ").starts_with(&name),
                    "an example of `{name}` runs another command: {words:?}"
                );
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("the example {words:?} of `{name}` does not parse:\n{e}");
                }
            }
        }
        assert!(missing.is_empty(), "subcommands without examples: {missing:?}");
    }

    #[test]
    fn an_unknown_subcommand_gets_the_nearest() {
        assert_eq!(super::nearest("rn", &["run", "plot", "replay"]), Some("run"));
        assert_eq!(super::nearest("calibrat", &["calibrate", "catalog"]), Some("calibrate"));
        assert_eq!(super::nearest("zzzzzzzzzz", &["run"]), None);
    }

    #[test]
    fn every_argument_says_what_it_is() {
        let mut bare = Vec::new();
        for (name, cmd) in every_subcommand() {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    bare.push(format!("{name}: {id}"));
                }
            }
        }
        assert!(
            bare.is_empty(),
            "arguments without a description:\n  {}",
            bare.join("\n  ")
        );
    }
}
