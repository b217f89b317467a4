//! The documented defaults are the real ones: every policy run with each of its parameters
//! spelled out at the default `gpushare policies` shows for it gives the same run as with none
//! set. A validation of the documentation (not of a model): it fails if a shown default, a
//! policy-specific default or a key's name drifts from what the code uses.

mod common;

use gpushare_policies::registry;

fn scenario(policy: &str) -> String {
    format!(
        r#"[simulation]
horizon_s = 30.0
seed = 3

[cluster]
nodes = 1
gpus_per_node = 2
gpu = "a100-80gb"

[[functions]]
name = "a"
profile = "kaas-resnet50"
rate_per_s = 30.0

[[functions]]
name = "b"
profile = "kaas-cgemm"
rate_per_s = 8.0

[workload]
kind = "poisson"

[policy]
{policy}
"#
    )
}

#[test]
fn every_documented_default_is_the_default_the_policy_runs_with() {
    for info in registry() {
        let bare = common::simulate(&scenario(&format!("name = {:?}", info.name)));
        let mut spelled = format!("name = {:?}\n", info.name);
        let params = info.all_params();
        for p in &params {
            if let Some(d) = &p.default {
                spelled.push_str(&format!("{} = {d}\n", p.key));
            }
        }
        let full = common::simulate(&scenario(&spelled));
        let (a, b) = (
            serde_json::to_value(&bare).unwrap(),
            serde_json::to_value(&full).unwrap(),
        );
        assert_eq!(
            a, b,
            "{}: the run with every default spelled out differs:\n{spelled}",
            info.name
        );
        assert!(
            bare.counts.completed > 0 || info.name == "null",
            "{} ran nothing",
            info.name
        );
    }
}

#[test]
fn unknown_keys_are_refused_with_the_declared_ones_listed() {
    for info in registry() {
        let err = build_error(&format!("name = {:?}\nno_such_key = 1", info.name)).expect(info.name);
        assert!(err.contains("no_such_key"), "{}: {err}", info.name);
        for d in (info.params)() {
            assert!(err.contains(d.key), "{}: `{}` not listed in: {err}", info.name, d.key);
        }
    }
}

/// The error building `policy` under [`scenario`] gives, or `None` if it builds.
fn build_error(policy: &str) -> Option<String> {
    gpushare_sim::ScenarioSource::from_text(std::path::Path::new("p.toml"), &scenario(policy))
        .parse()
        .map_err(|e| e.to_string())
        .and_then(|s| gpushare_policies::build(&s).map(|_| ()).map_err(|e| e.message))
        .err()
}

#[test]
fn keep_alive_parameters_are_checked_whichever_plug_in_runs() {
    let fixed = "name = \"exclusive\"\nkeep_alive_policy = \"fixed\"";
    let err =
        build_error(&format!("{fixed}\nkeep_alive_params = {{ bin_s = 1.0 }}")).expect("fixed takes no parameters");
    assert!(
        err.contains("bin_s") && err.contains("`fixed` takes no parameters"),
        "{err}"
    );
    // The older `hybrid` table is checked even when another plug-in runs (as before the
    // plug-ins), and may stay in a scenario that sweeps `keep_alive_policy`.
    let err = build_error(&format!("{fixed}\nhybrid = {{ bogus = 1 }}")).expect("unknown hybrid key");
    assert!(err.contains("bogus") && err.contains("min_cv"), "{err}");
    assert_eq!(build_error(&format!("{fixed}\nhybrid = {{ bin_s = 1.0 }}")), None);
    let both = "name = \"exclusive\"\nkeep_alive_policy = \"hybrid\"\nhybrid = { bin_s = 1.0 }\nkeep_alive_params = { bin_s = 2.0 }";
    let err = build_error(both).expect("two tables of hybrid parameters");
    assert!(err.contains("keep one"), "{err}");
}

#[test]
fn every_keep_alive_plug_in_runs_with_its_documented_defaults() {
    for k in gpushare_policies::keep_alive::keep_alives() {
        let policy = format!(
            "name = \"exclusive\"\nkeep_alive_s = 5.0\nkeep_alive_policy = {:?}",
            k.name
        );
        let bare = common::simulate(&scenario(&policy));
        let params: Vec<String> = (k.params)()
            .iter()
            .filter_map(|p| p.default.as_ref().map(|d| format!("{} = {d}", p.key)))
            .collect();
        let spelled = format!("{policy}\nkeep_alive_params = {{ {} }}", params.join(", "));
        let full = common::simulate(&scenario(&spelled));
        assert_eq!(
            serde_json::to_value(&bare).unwrap(),
            serde_json::to_value(&full).unwrap(),
            "{}: {spelled}",
            k.name
        );
    }
}
