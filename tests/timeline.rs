//! `timeline.json`: a Chrome / Perfetto trace whose spans nest as they happened.

mod common;

#[test]
fn timeline_spans_nest_on_their_tracks_within_the_window() {
    let out = common::temp_dir("timeline");
    let sets = ["output.timeline=true", "output.timeline_window_s=[30.0, 31.0]"];
    common::gpushare_ok(&common::run_args("scenarios/kaas_contention.toml", &out, &sets));
    let trace: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("timeline.json")).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let named: Vec<&str> = events
        .iter()
        .filter(|e| e["name"] == "process_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        named,
        [
            "GPU 0 (v100-16gb, node 0)",
            "GPU 1 (v100-16gb, node 0)",
            "GPU 2 (v100-16gb, node 0)",
            "GPU 3 (v100-16gb, node 0)"
        ]
    );
    let spans: Vec<(&str, u64, u64, f64, f64)> = events
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| {
            (
                e["cat"].as_str().unwrap(),
                e["pid"].as_u64().unwrap(),
                e["tid"].as_u64().unwrap(),
                e["ts"].as_f64().unwrap(),
                e["dur"].as_f64().unwrap(),
            )
        })
        .collect();
    let count = |cat: &str| spans.iter().filter(|s| s.0 == cat).count();
    assert!(
        count("kernel") > 50 && count("invocation") > 50 && count("host") > 0,
        "{}",
        spans.len()
    );
    for &(_, pid, _, ts, dur) in &spans {
        assert!(pid < 4 && dur >= 0.0);
        assert!(
            ts >= 30e6 - 1e-6 && ts + dur <= 31e6 + 1e-6,
            "outside the window: {ts} + {dur}"
        );
    }
    // Every kernel lies within an invocation on its own track (a worker's slot on its GPU).
    for &(_, pid, tid, ts, dur) in spans.iter().filter(|s| s.0 == "kernel") {
        let inside = spans.iter().any(|&(c, p, t, s, d)| {
            c == "invocation" && p == pid && t == tid && s <= ts + 1e-6 && s + d >= ts + dur - 1e-6
        });
        assert!(inside, "kernel at {ts} on {pid}/{tid} in no invocation");
    }
}
