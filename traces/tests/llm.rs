//! The Azure LLM inference reader on the bundled (subsampled, CC BY 4.0) 2023 code trace.

use gpushare_traces::ArrivalSource;
use gpushare_traces::llm::{LlmSource, builtin_llms};
use std::path::Path;

fn cost() -> gpushare_traces::llm::LlmCost {
    builtin_llms()[0].cost_on(2039.0, 312.0)
}

#[test]
fn reads_the_sample_relative_to_its_first_request() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/azure-llm-2023-code-1000.csv");
    let mut s = LlmSource::open(&p, cost(), false).unwrap();
    let a: Vec<_> = std::iter::from_fn(|| s.next_arrival().unwrap()).collect();
    assert_eq!(a.len(), 1000);
    assert_eq!(a[0].time, 0);
    // Second request: 2023-11-16 18:17:04.0319600 − 18:17:03.9799600 = 52 ms.
    assert_eq!(a[1].time, 52_000_000);
    assert!(a.windows(2).all(|w| w[0].time <= w[1].time));
    // First request: 4,808 context and 10 generated tokens.
    assert_eq!(a[0].duration, Some(cost().request_ns(4808, 10, 0)));
    assert_eq!(s.report.requests, 1000);
}

#[test]
fn images_column_and_bad_rows() {
    let dir = std::env::temp_dir();
    let p = dir.join(format!("gpushare-llm-{}.csv", std::process::id()));
    std::fs::write(&p, "TIMESTAMP,ContextTokens,GeneratedTokens,NumImages\n2025-01-01 00:00:00.5,100,10,2\n2025-01-01 00:00:01,5,x,0\n").unwrap();
    let mut s = LlmSource::open(&p, cost(), false).unwrap();
    assert_eq!(
        s.next_arrival().unwrap().unwrap().duration,
        Some(cost().request_ns(100, 10, 2))
    );
    let e = s.next_arrival().unwrap_err().to_string();
    assert!(e.contains(":3: field `GeneratedTokens`: `x` is not a count"), "{e}");
    std::fs::write(
        &p,
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2025-01-01 00:00:02,1,1\n2025-01-01 00:00:01,1,1\n",
    )
    .unwrap();
    let mut s = LlmSource::open(&p, cost(), false).unwrap();
    s.next_arrival().unwrap();
    assert!(
        s.next_arrival()
            .unwrap_err()
            .to_string()
            .contains(":3: field `TIMESTAMP`")
    );
    let mut s = LlmSource::open(&p, cost(), true).unwrap();
    assert_eq!(std::iter::from_fn(|| s.next_arrival().unwrap()).count(), 1);
    assert_eq!(s.report.skipped.count, 1);
    std::fs::write(&p, "time,ctx\n").unwrap();
    assert!(
        LlmSource::open(&p, cost(), false)
            .err()
            .unwrap()
            .to_string()
            .contains(":1: field `header`: found `time,ctx`")
    );
}
