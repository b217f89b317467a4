//! `gpushare trace`: generate → sample → stats → convert round trip, and located errors.

mod common;

#[test]
fn generate_sample_stats_convert_round_trip() {
    let dir = common::temp_dir("trace-cli");
    let gen_dir = dir.join("gen");
    let o = common::gpushare(&[
        "trace",
        "generate",
        "--functions",
        "120",
        "--seed",
        "4",
        "--out",
        gen_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "invocations_per_function_md.anon.d01.csv",
        "function_durations_percentiles.anon.d01.csv",
        "app_memory_percentiles.anon.d01.csv",
    ] {
        assert!(gen_dir.join(f).exists(), "{f}");
    }

    // Sample: the 5 most invoked functions in the first two hours, in the same format.
    let sample = dir.join("sample");
    let o = common::gpushare(&[
        "trace",
        "sample",
        gen_dir.to_str().unwrap(),
        "--top-k",
        "5",
        "--minutes",
        "120",
        "--out",
        sample.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    let n: u64 = said.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(said.starts_with("wrote 5 functions"), "{said}");

    // Stats of the sample: the same counts come back through the reader.
    let o = common::gpushare(&["trace", "stats", sample.to_str().unwrap()]);
    let stats = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success());
    assert!(stats.contains("functions      5 in"), "{stats}");
    assert!(stats.contains(&format!("invocations    {n} over")), "{stats}");

    // Convert to plain CSV; its stats agree again.
    let plain = dir.join("plain.csv");
    let o = common::gpushare(&[
        "trace",
        "convert",
        sample.to_str().unwrap(),
        "--out",
        plain.to_str().unwrap(),
        "--spread",
        "equidistant",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = std::fs::read_to_string(&plain).unwrap().lines().count() as u64 - 1;
    assert_eq!(rows, n);
    let o = common::gpushare(&["trace", "stats", plain.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("invocations    {n} over")));
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
        let o = common::gpushare(&["trace", "stats", s]);
        assert!(o.status.success(), "{s}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("invocations"));
    }
}

#[test]
fn bad_trace_input_exits_2_with_a_location() {
    let dir = common::temp_dir("trace-bad");
    let p = dir.join("t.csv");
    std::fs::write(&p, "app,func,end_timestamp,duration\na,f,1,2\na,f,NaN,1\n").unwrap();
    let o = common::gpushare(&["trace", "stats", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("t.csv:3: field `end_timestamp`: `NaN` is out of range"));
    // With --skip-bad-rows the row is skipped and counted.
    let o = common::gpushare(&["trace", "stats", p.to_str().unwrap(), "--skip-bad-rows"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("malformed rows skipped: 1"));
    std::fs::write(&p, "what,ever\n1,2\n").unwrap();
    let o = common::gpushare(&["trace", "stats", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`what,ever` is no supported trace"));
    std::fs::remove_dir_all(&dir).unwrap();
}
