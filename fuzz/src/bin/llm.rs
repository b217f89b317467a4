//! Fuzz target: the Azure LLM inference trace reader (2023/2024/2025 layouts).
use gpushare_traces::llm::{LlmSource, builtin_llms};

fn main() {
    let cost = builtin_llms()[0].cost_on(2039.0, 312.0);
    afl::fuzz!(|data: &[u8]| {
        let (skip, bytes) = gpushare_fuzz::flag_and_rest(data);
        let p = gpushare_fuzz::file("llm.csv", bytes);
        if let Ok(mut s) = LlmSource::open(&p, cost, skip) {
            gpushare_fuzz::drain(&mut s, 10_000);
        }
    });
}
