//! The plain-CSV reader's own line splitter and decimal parser against the csv crate and
//! `str::parse` on random files: the same arrivals, and the same rows refused on the same lines
//! (a differential test; the reference is the reader as it was before, csv crate throughout).
//! Lone CRs (not line ends) are left out: there the reference's line numbers were off (it
//! counted a line holding only `\r` as none), while the new reader counts the file's lines.

use gpushare_traces::rows::{line_at, open_lines};
use gpushare_traces::{ArrivalSource, PlainCsvSource, secs_to_ns};
use proptest::prelude::*;
use std::path::Path;

/// What reading a file gives: each arrival as (time ns, function, duration ns), or the line
/// a refused row is on.
type Outcome = Vec<Result<Read, u64>>;

/// An arrival as read: time (ns), function, duration (ns).
type Read = (u64, u32, Option<u64>);

fn names() -> Vec<String> {
    vec!["a".into(), "b c".into(), "d,e".into(), "f\r\ng".into(), "h\ni".into()]
}

/// The reference: the csv crate reads every record (skipping bad rows so that all are seen).
fn reference(path: &Path) -> Option<Outcome> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(open_lines(path).ok()?);
    let header: Vec<String> = reader.headers().ok()?.iter().map(|h| h.trim().to_string()).collect();
    let duration = match header.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["time", "func"] => false,
        ["time", "func", "duration"] => true,
        _ => return None,
    };
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut last = 0.0;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => return Some(out),
            Ok(true) => {
                let line = line_at(&reader, record.position());
                let parsed = parse(&record, duration, last);
                if let Ok((t, _)) = parsed {
                    last = t;
                }
                out.push(parsed.map(|(_, a)| a).map_err(|()| line));
            }
            Err(e) => out.push(Err(line_at(&reader, e.position()))),
        }
    }
}

fn parse(r: &csv::StringRecord, duration: bool, last: f64) -> Result<(f64, Read), ()> {
    if r.len() != if duration { 3 } else { 2 } {
        return Err(());
    }
    let secs = |t: &str, positive: bool| -> Result<f64, ()> {
        let v: f64 = t.parse().map_err(|_| ())?;
        let ok = v.is_finite() && v >= 0.0 && !(positive && v == 0.0) && v <= 1e9;
        if ok { Ok(v) } else { Err(()) }
    };
    let time = secs(r[0].trim(), false)?;
    if time < last {
        return Err(());
    }
    let func = names().iter().position(|n| n == r[1].trim()).ok_or(())? as u32;
    let dur = match duration.then(|| r[2].trim()) {
        None | Some("") => None,
        Some(t) => Some(secs_to_ns(secs(t, true)?)),
    };
    Ok((time, (secs_to_ns(time), func, dur)))
}

fn ours(path: &Path) -> Option<Outcome> {
    let mut src = PlainCsvSource::open(path, &names(), true).ok()?;
    let mut arrivals = Vec::new();
    while let Some(a) = src.next_arrival().ok()? {
        arrivals.push(Ok((a.time, a.func, a.duration)));
    }
    let skipped: Vec<u64> = src
        .skipped_rows()
        .unwrap()
        .examples
        .iter()
        .map(|e| e.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    Some(arrivals.into_iter().chain(skipped.into_iter().map(Err)).collect())
}

/// The reference's outcome with the refused rows after the arrivals (as the skip report keeps
/// them), and only the first few refused (the report's examples).
fn arranged(reference: Outcome, shown: usize) -> Outcome {
    let (ok, bad): (Vec<_>, Vec<_>) = reference.into_iter().partition(Result::is_ok);
    ok.into_iter().chain(bad.into_iter().take(shown)).collect()
}

fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "0.5",
        "1",
        "2.25",
        "10",
        "1e2",
        " 3 ",
        "0.000001",
        "12345678901234567890.5",
        ".5",
        "5.",
        "-1",
        "nan",
        "inf",
        "x",
        "a",
        "b c",
        "\"d,e\"",
        "\"a\"",
        "\"b \"\" c\"",
        "\"f\r\ng\"",
        "\"h\ni\"",
        ",",
        ",",
        ",",
        "\n",
        "\n",
        "\r\n",
        "\"",
        " ",
        "",
        "\u{feff}",
        "\u{e9}",
        "\n\n",
    ])
}

fn file() -> impl Strategy<Value = String> {
    let header = prop::sample::select(vec![
        "time,func\n",
        "time,func,duration\n",
        "\u{feff}time, func ,duration\r\n",
    ]);
    (header, prop::collection::vec(piece(), 0..60)).prop_map(|(h, body)| format!("{h}{}", body.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn the_line_splitter_reads_what_the_csv_crate_reads(text in file()) {
        let dir = gpushare_traces::tempdir::TempDir::new("plain-ref").unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, &text).unwrap();
        let want = reference(&path).map(|r| arranged(r, 5));
        let got = ours(&path);
        prop_assert_eq!(got, want, "{:?}", text);
    }
}

#[test]
fn plain_decimals_parse_to_the_same_double_as_str_parse() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let digits = (x % 17 + 1) as usize;
        let point = (x >> 8) as usize % (digits + 1);
        let mut text: String = (0..digits)
            .map(|k| char::from(b'0' + ((x >> (k * 3 + 11)) % 10) as u8))
            .collect();
        text.insert(point, '.');
        let want: f64 = text.parse().unwrap_or(f64::NAN);
        let fast = gpushare_traces::plain_csv::plain_decimal(text.as_bytes());
        if let Some(v) = fast {
            assert_eq!(v.to_bits(), want.to_bits(), "{text}");
        }
    }
}
