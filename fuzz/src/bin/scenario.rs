//! Fuzz target: the scenario loader — TOML parsing, overrides-free validation, building the
//! policy it names, and opening the workload (its first arrivals).
//!
//! Inputs that ask for a generated Azure trace (`generate`) are skipped: generating one costs
//! milliseconds to seconds, which would slow the fuzzer a hundredfold; the generator's bounds are
//! tested in `traces/tests/generator.rs` and by the hostile corpus.
use gpushare_sim::ScenarioSource;
use std::path::Path;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else { return };
        if text.contains("generate") {
            return;
        }
        let src = ScenarioSource::from_text(Path::new("fuzz.toml"), text);
        if let Ok(scenario) = src.parse() {
            let _ = gpushare_policies::build(&scenario);
            if let Ok(mut source) = scenario.open_workload() {
                gpushare_fuzz::drain(&mut source, 1_000);
            }
        }
    });
}
