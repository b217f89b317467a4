//! `gpushare trace`: generate → sample → stats → convert round trip, and located errors.

mod common;

use common::{gpushare_ok, gpushare_refuses};

#[test]
fn generate_sample_stats_convert_round_trip() {
    let dir = common::temp_dir("trace-cli");
    let gen_dir = dir.join("gen");
    let generated = gen_dir.to_str().unwrap();
    gpushare_ok(&[
        "trace",
        "generate",
        "--functions",
        "120",
        "--seed",
        "4",
        "--out",
        generated,
    ]);
    for f in [
        "invocations_per_function_md.anon.d01.csv",
        "function_durations_percentiles.anon.d01.csv",
        "app_memory_percentiles.anon.d01.csv",
    ] {
        assert!(gen_dir.join(f).exists(), "{f}");
    }

    // Sample: the 5 most invoked functions in the first two hours, in the same format.
    let sample = dir.join("sample");
    let sampled = sample.to_str().unwrap();
    let said = gpushare_ok(&[
        "trace",
        "sample",
        generated,
        "--top-k",
        "5",
        "--minutes",
        "120",
        "--out",
        sampled,
    ]);
    let n: u64 = said.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(said.starts_with("wrote 5 functions"), "{said}");

    // Stats of the sample: the same counts come back through the reader.
    let stats = gpushare_ok(&["trace", "stats", sampled]);
    assert!(stats.contains("functions      5 in"), "{stats}");
    assert!(stats.contains(&format!("invocations    {n} over")), "{stats}");

    // Convert to plain CSV; its stats agree again.
    let plain = dir.join("plain.csv");
    let converted = plain.to_str().unwrap();
    gpushare_ok(&[
        "trace",
        "convert",
        sampled,
        "--out",
        converted,
        "--spread",
        "equidistant",
    ]);
    let rows = std::fs::read_to_string(&plain).unwrap().lines().count() as u64 - 1;
    assert_eq!(rows, n);
    assert!(gpushare_ok(&["trace", "stats", converted]).contains(&format!("invocations    {n} over")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_bundled_sample_has_stats() {
    for s in [
        "traces/samples/azure2019-example",
        "traces/samples/azure2021-synthetic-30.csv",
        "traces/samples/azure-llm-2023-code-1000.csv",
        "traces/samples/plain-example.csv",
    ] {
        assert!(gpushare_ok(&["trace", "stats", s]).contains("invocations"), "{s}");
    }
}

#[test]
fn bad_trace_input_exits_2_with_a_location() {
    let dir = common::temp_dir("trace-bad");
    let p = dir.join("t.csv");
    std::fs::write(&p, "app,func,end_timestamp,duration\na,f,1,2\na,f,NaN,1\n").unwrap();
    let stats = ["trace", "stats", p.to_str().unwrap()];
    gpushare_refuses(&stats, "t.csv:3: field `end_timestamp`: `NaN` is out of range");
    // With --skip-bad-rows the row is skipped and counted.
    let skipping = gpushare_ok(&["trace", "stats", p.to_str().unwrap(), "--skip-bad-rows"]);
    assert!(skipping.contains("malformed rows skipped: 1"), "{skipping}");
    std::fs::write(&p, "what,ever\n1,2\n").unwrap();
    gpushare_refuses(&stats, "`what,ever` is no supported trace");
    std::fs::remove_dir_all(&dir).unwrap();
}
