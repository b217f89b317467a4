//! Every reader, fed arbitrary bytes, returns arrivals or a located error — never panics.
//!
//! Inputs mix pure noise with mutations of valid files (a header plus rows of plausible and
//! implausible fields), so the property reaches past the header checks into row parsing.

use gpushare_traces::azure2019::{self, DurationModel, ReadOptions, Spread, StreamOptions};
use gpushare_traces::llm::{LlmSource, builtin_llms};
use gpushare_traces::{ArrivalSource, PlainCsvSource, azure2021};
use proptest::prelude::*;
use std::path::PathBuf;

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gpushare-fuzz-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Drains a source, stopping at the first error; at most `limit` arrivals.
fn drain(src: &mut dyn ArrivalSource, limit: usize) {
    for _ in 0..limit {
        match src.next_arrival() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,4}",
        "-?[0-9]{1,3}\\.[0-9]{0,3}",
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just(String::new()),
        "[a-z]{1,6}",
        "\"[a-z,]{0,4}\"",
        Just("2023-11-16 18:17:03.97".to_string()),
    ]
}

fn rows(header: &'static str, width: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::collection::vec(field(), 0..width + 2), 0..6).prop_map(move |rows| {
        let mut s = String::from(header);
        for r in rows {
            s.push('\n');
            s.push_str(&r.join(","));
        }
        s.into_bytes()
    })
}

fn noise() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..300)
}

fn inv_header() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        let mut h = String::from("HashOwner,HashApp,HashFunction,Trigger");
        for m in 1..=1440 {
            h.push_str(&format!(",{m}"));
        }
        h
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn plain_csv_never_panics(bytes in prop_oneof![noise(), rows("time,func,duration", 3), rows("time,func", 2)], skip in any::<bool>()) {
        let p = file("plain.csv", &bytes);
        if let Ok(mut s) = PlainCsvSource::open(&p, &["a".to_string(), "1".to_string()], skip) {
            drain(&mut s, 1000);
        }
    }

    #[test]
    fn azure2021_never_panics(bytes in prop_oneof![noise(), rows("app,func,end_timestamp,duration", 4)], skip in any::<bool>()) {
        let p = file("a21.csv", &bytes);
        if let Ok(t) = azure2021::read(&p, 3, skip) {
            let mut s = azure2021::Azure2021Stream::new(&t, true).unwrap();
            drain(&mut s, 1000);
        }
    }

    #[test]
    fn llm_never_panics(bytes in prop_oneof![noise(), rows("TIMESTAMP,ContextTokens,GeneratedTokens", 3), rows("TIMESTAMP,ContextTokens,GeneratedTokens,NumImages", 4)], skip in any::<bool>()) {
        let p = file("llm.csv", &bytes);
        let cost = builtin_llms()[0].cost_on(2039.0, 312.0);
        if let Ok(mut s) = LlmSource::open(&p, cost, skip) {
            drain(&mut s, 1000);
        }
    }

    #[test]
    fn azure2019_never_panics(
        inv in prop_oneof![noise(), rows(inv_header(), 8), prop::collection::vec(0u32..50, 0..1446).prop_map(|v| {
            let mut s = inv_header().to_string();
            s.push_str("\no,a,f,http,");
            s.push_str(&v.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
            s.into_bytes()
        })],
        dur in prop_oneof![noise(), rows("HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,percentile_Average_99,percentile_Average_100", 14)],
        skip in any::<bool>(),
    ) {
        let dir = std::env::temp_dir().join(format!("gpushare-fuzz19-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("invocations_per_function_md.anon.d01.csv"), &inv).unwrap();
        std::fs::write(dir.join("function_durations_percentiles.anon.d01.csv"), &dur).unwrap();
        if let Ok(files) = azure2019::discover(&[dir]) {
            if let Ok(t) = azure2019::read(&files, &ReadOptions { days: None, window: None, skip_bad_rows: skip }) {
                let opts = StreamOptions { spread: Spread::Exponential, shift: true, durations: DurationModel::Lognormal, scale: 1.0, seed: 1 };
                drain(&mut azure2019::Azure2019Stream::new(t, opts), 100_000);
            }
        }
    }
}
