//! Fuzz target: the scenario loader — TOML parsing, overrides-free validation, building the
//! policy it names, and opening the workload (its first arrivals).
use gpushare_sim::ScenarioSource;
use std::path::Path;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else { return };
        let src = ScenarioSource::from_text(Path::new("fuzz.toml"), text);
        if let Ok(scenario) = src.parse() {
            let _ = gpushare_policies::build(&scenario);
            if let Ok(mut source) = scenario.open_workload() {
                gpushare_fuzz::drain(&mut source, 1_000);
            }
        }
    });
}
