//! The Azure Functions 2021 reader: start = end − duration, re-sorted with bounded memory.

use gpushare_traces::azure2021::{self, Azure2021Stream};
use gpushare_traces::{Arrival, ArrivalSource, NS_PER_S};
use std::path::{Path, PathBuf};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/azure2021-synthetic-30.csv")
}

fn collect(t: &azure2021::Azure2021, durations: bool) -> Vec<Arrival> {
    let mut s = Azure2021Stream::new(t, durations).unwrap();
    std::iter::from_fn(|| s.next_arrival().unwrap()).collect()
}

fn write(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("gpushare-az21-{}-{name}.csv", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn reads_the_sample() {
    let t = azure2021::read(&sample(), 1_000_000, false).unwrap();
    assert_eq!(t.report.rows, 29, "a header and 29 rows");
    let a = collect(&t, true);
    assert_eq!(a.len(), 29);
    // First row: end 10 s, duration 9 s → starts at 1 s.
    assert_eq!(a[0].time, NS_PER_S);
    assert_eq!(a[0].duration, Some(9 * NS_PER_S));
    assert!(a.windows(2).all(|w| w[0].time <= w[1].time));
    assert_eq!(t.functions.iter().map(|f| f.invocations).sum::<u64>(), 29);
}

#[test]
fn spilled_runs_merge_to_the_in_memory_order() {
    // 5,000 rows in a scrambled order, 8 functions.
    let mut text = String::from("app,func,end_timestamp,duration\n");
    for i in 0..5000u64 {
        let j = (i * 7919) % 5000;
        let dur = (j % 13) as f64 * 0.25;
        text.push_str(&format!(
            "app{},f{},{:.3},{dur}\n",
            j % 3,
            j % 8,
            100.0 + j as f64 * 0.37 + dur
        ));
    }
    let p = write("scrambled", &text);
    let whole = azure2021::read(&p, 1_000_000, false).unwrap();
    let spilled = azure2021::read(&p, 97, false).unwrap();
    assert_eq!(whole.report.runs, 1);
    assert_eq!(spilled.report.runs, 52);
    let a = collect(&whole, true);
    let b = collect(&spilled, true);
    assert_eq!(a.len(), 5000);
    assert_eq!(a, b);
    assert!(a.windows(2).all(|w| (w[0].time, w[0].func) <= (w[1].time, w[1].func)));
    assert!(collect(&whole, false).iter().all(|x| x.duration.is_none()));
}

#[test]
fn negative_starts_are_clamped_and_counted() {
    let p = write("clamp", "app,func,end_timestamp,duration\na,f,1.0,3.0\na,f,5.0,1.0\n");
    let t = azure2021::read(&p, 10, false).unwrap();
    assert_eq!(t.report.clamped_starts, 1);
    assert_eq!(collect(&t, true)[0].time, 0);
}

#[test]
fn bad_rows_are_located_or_skipped() {
    let cases = [
        (
            "app,func,end_timestamp,duration\na,f,x,1\n",
            ":2: field `end_timestamp`: `x` is not a number",
        ),
        (
            "app,func,end_timestamp,duration\na,f,3,-1\n",
            ":2: field `duration`: `-1` is out of range",
        ),
        (
            "app,func,end_timestamp,duration\na,f,3\n",
            ":2: field `row`: has 3 fields",
        ),
        (
            "app,func,end,duration\na,f,3,1\n",
            ":1: field `header`: found `app,func,end,duration`",
        ),
        ("", ":1: field `header`: the file is empty"),
        ("app,func,end_timestamp,duration\n,f,3,1\n", ":2: field `app`: is empty"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = write(&format!("bad{i}"), text);
        let e = azure2021::read(&p, 10, false).unwrap_err().to_string();
        assert!(e.contains(want), "expected `{want}` in `{e}`");
    }
    let p = write("skip", "app,func,end_timestamp,duration\na,f,x,1\na,f,4,1\n");
    let t = azure2021::read(&p, 10, true).unwrap();
    assert_eq!((t.report.rows, t.report.skipped.count), (1, 1));
}
