//! The Azure Functions 2019 reader on the bundled sample and on hand-made dirty files.

use gpushare_traces::azure2019::{self, DurationModel, ReadOptions, Selection, Spread, StreamOptions};
use gpushare_traces::{Arrival, ArrivalSource, NS_PER_S};
use std::path::{Path, PathBuf};

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/azure2019-example")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gpushare-az19-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn all_opts() -> ReadOptions {
    ReadOptions {
        days: None,
        window: None,
        skip_bad_rows: false,
    }
}

fn stream_opts(spread: Spread, shift: bool) -> StreamOptions {
    StreamOptions {
        spread,
        shift,
        durations: DurationModel::Percentiles,
        scale: 1.0,
        seed: 5,
    }
}

fn collect(src: &mut dyn ArrivalSource) -> Vec<Arrival> {
    std::iter::from_fn(|| src.next_arrival().unwrap()).collect()
}

#[test]
fn reads_and_joins_the_sample() {
    let files = azure2019::discover(&[sample_dir()]).unwrap();
    let t = azure2019::read(&files, &all_opts()).unwrap();
    assert_eq!(t.functions.len(), 4);
    let mut totals: Vec<u64> = t.functions.iter().map(|f| f.total).collect();
    totals.sort_unstable();
    assert_eq!(totals, vec![1125, 1125, 1125, 1150]);
    assert!(
        t.functions
            .iter()
            .all(|f| f.durations.is_some() && f.memory_mb.is_some())
    );
    let timer = t.functions.iter().find(|f| f.trigger == "timer").unwrap();
    assert_eq!(timer.memory_mb, Some(112.0));
    assert_eq!(timer.durations.unwrap().average, 125.0);
    assert_eq!(
        t.report.missing_durations + t.report.missing_memory + t.report.duplicate_rows,
        0
    );
}

#[test]
fn every_spread_keeps_counts_order_and_minutes() {
    let files = azure2019::discover(&[sample_dir()]).unwrap();
    let t = azure2019::read(&files, &all_opts()).unwrap();
    let total: u64 = t.functions.iter().map(|f| f.total).sum();
    for spread in [Spread::Exponential, Spread::Uniform, Spread::Equidistant] {
        for shift in [false, true] {
            let mut s = azure2019::Azure2019Stream::new(t.clone(), stream_opts(spread, shift));
            let a = collect(&mut s);
            assert_eq!(a.len() as u64, total, "{spread:?}");
            assert!(
                a.windows(2).all(|w| (w[0].time, w[0].func) <= (w[1].time, w[1].func)),
                "{spread:?} not sorted"
            );
            // Every arrival lies in a minute where its function has invocations, shifted or not
            // (a shift wraps within the minute): none leaves the window.
            for x in &a {
                let minute = (x.time / (60 * NS_PER_S)) as u32;
                assert!(t.functions[x.func as usize].minutes.iter().any(|&(m, _)| m == minute));
            }
            // Durations come from the published percentiles (all between p0 and p100).
            for x in a.iter().take(200) {
                let p = t.functions[x.func as usize].durations.unwrap().percentiles;
                let d = x.duration.unwrap() as f64 / 1e6;
                assert!(d >= p[0] - 1e-6 && d <= p[6] + 1e-6, "{d} outside [{}, {}]", p[0], p[6]);
            }
        }
    }
}

#[test]
fn equidistant_spacing_is_exact() {
    let dir = temp_dir("equi");
    let mut row = String::from("o,a,f,http,4");
    row.push_str(&",0".repeat(1439));
    write_invocations(&dir, &[row]);
    let t = azure2019::read(&azure2019::discover(&[dir]).unwrap(), &all_opts()).unwrap();
    let mut s = azure2019::Azure2019Stream::new(t, stream_opts(Spread::Equidistant, false));
    let times: Vec<u64> = collect(&mut s).iter().map(|a| a.time).collect();
    assert_eq!(times, vec![0, 15 * NS_PER_S, 30 * NS_PER_S, 45 * NS_PER_S]);
}

#[test]
fn poisson_fit_keeps_the_mean_rate() {
    let files = azure2019::discover(&[sample_dir()]).unwrap();
    let t = azure2019::read(&files, &all_opts()).unwrap();
    let total: u64 = t.functions.iter().map(|f| f.total).sum();
    let mut s = azure2019::Azure2019Stream::new(t, stream_opts(Spread::PoissonFit, false));
    let n = collect(&mut s).len() as f64;
    assert!((n - total as f64).abs() < 4.0 * (total as f64).sqrt(), "{n} vs {total}");
}

#[test]
fn rescaling_hits_the_target_in_expectation() {
    let files = azure2019::discover(&[sample_dir()]).unwrap();
    let t = azure2019::read(&files, &all_opts()).unwrap();
    let total: u64 = t.functions.iter().map(|f| f.total).sum();
    let mut o = stream_opts(Spread::Exponential, false);
    o.scale = 2.5;
    let n = collect(&mut azure2019::Azure2019Stream::new(t, o)).len() as f64;
    assert!((n - 2.5 * total as f64).abs() < 0.01 * 2.5 * total as f64, "{n}");
}

fn header_line() -> String {
    let mut h = String::from("HashOwner,HashApp,HashFunction,Trigger");
    for m in 1..=1440 {
        h.push_str(&format!(",{m}"));
    }
    h
}

fn write_invocations(dir: &Path, rows: &[String]) -> PathBuf {
    let p = dir.join("invocations_per_function_md.anon.d01.csv");
    let mut text = header_line();
    for r in rows {
        text.push('\n');
        text.push_str(r);
    }
    text.push('\n');
    std::fs::write(&p, text).unwrap();
    p
}

fn row(owner: &str, app: &str, f: &str, trigger: &str, first_minutes: &[u32]) -> String {
    let mut counts = vec![0u32; 1440];
    counts[..first_minutes.len()].copy_from_slice(first_minutes);
    format!(
        "{owner},{app},{f},{trigger},{}",
        counts.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    )
}

const DUR_HEADER: &str = "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,percentile_Average_99,percentile_Average_100";
const MEM_HEADER: &str = "HashOwner,HashApp,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1,AverageAllocatedMb_pct5,AverageAllocatedMb_pct25,AverageAllocatedMb_pct50,AverageAllocatedMb_pct75,AverageAllocatedMb_pct95,AverageAllocatedMb_pct99,AverageAllocatedMb_pct100";

#[test]
fn dirt_is_counted_never_silently_dropped() {
    let dir = temp_dir("dirt");
    write_invocations(
        &dir,
        &[
            row("o1", "a1", "f1", "http", &[3, 1]),
            row("o1", "a1", "f1", "http", &[9]),  // duplicate
            row("o2", "a1", "f1", "queue", &[2]), // same function hash, other owner: distinct
            row("o1", "a1", "f2", "timer", &[]),  // never invoked
            row("o1", "a2", "f3", "event", &[1]), // no durations, no memory
        ],
    );
    std::fs::write(
        dir.join("function_durations_percentiles.anon.d01.csv"),
        format!(
            "{DUR_HEADER}\no1,a1,f1,0,4,0,0,0,0,0,0,0,0,0\no2,a1,f1,100,2,90,110,90,91,95,100,105,109,110\no9,a9,f9,5,1,5,5,5,5,5,5,5,5,5\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("app_memory_percentiles.anon.d01.csv"),
        format!("{MEM_HEADER}\no1,a1,10,200,1,1,1,1,1,1,1,1\no7,a7,1,50,1,1,1,1,1,1,1,1\n"),
    )
    .unwrap();
    let t = azure2019::read(&azure2019::discover(&[dir]).unwrap(), &all_opts()).unwrap();
    let r = &t.report;
    assert_eq!(t.functions.len(), 3);
    assert_eq!(r.duplicate_rows, 1);
    assert_eq!(r.never_invoked, 1);
    assert_eq!(r.zero_average, 1);
    assert_eq!(r.missing_durations, 1);
    assert_eq!(r.durations_without_invocations, 1);
    assert_eq!(r.missing_memory, 2, "apps (o2,a1) and (o1,a2)");
    assert_eq!(r.memory_without_invocations, 1);
    // (o1, a1) has one invoked function left (f2 never ran): it gets all 200 MB.
    let f1 = t
        .functions
        .iter()
        .find(|f| f.key.owner == "o1" && f.key.function == "f1")
        .unwrap();
    assert_eq!(f1.memory_mb, Some(200.0));
    assert_eq!(f1.total, 4, "the first of the duplicate rows is kept");
    assert!(r.to_string().contains("duplicate rows (first kept): 1"));
}

#[test]
fn days_without_memory_are_reported() {
    let dir = temp_dir("nomem");
    write_invocations(&dir, &[row("o", "a", "f", "http", &[1])]);
    let t = azure2019::read(&azure2019::discover(&[dir]).unwrap(), &all_opts()).unwrap();
    assert_eq!(t.report.days_without_memory, vec![1]);
    assert_eq!(t.report.missing_memory, 1);
}

fn read_err(rows: &[String], skip: bool) -> Result<azure2019::Azure2019, String> {
    let dir = temp_dir(&format!(
        "bad{}",
        rows.len() + skip as usize * 100 + rows.first().map_or(0, String::len)
    ));
    write_invocations(&dir, rows);
    let files = azure2019::discover(&[dir]).map_err(|e| e.to_string())?;
    azure2019::read(
        &files,
        &ReadOptions {
            skip_bad_rows: skip,
            ..all_opts()
        },
    )
    .map_err(|e| e.to_string())
}

#[test]
fn malformed_rows_are_located_or_skipped_and_counted() {
    let good = row("o", "a", "f", "http", &[1]);
    let nan = good.replacen(",1,", ",NaN,", 1);
    let neg = good.replacen(",1,", ",-2,", 1);
    let frac = good.replacen(",1,", ",1.5,", 1);
    let short = "o,a,g,http,1,2".to_string();
    let trig = row("o", "a", "h", "cron", &[1]);
    let cases = [
        (&nan, ":3: field `1`: `NaN` is out of range"),
        (&neg, ":3: field `1`: `-2` is out of range"),
        (&frac, ":3: field `1`: `1.5` is not a whole count"),
        (&short, ":3: field `row`: has 6 fields; the header has 1444"),
        (
            &trig,
            ":3: field `Trigger`: `cron` is not a trigger; expected one of http, timer",
        ),
    ];
    for (bad, want) in cases {
        let e = read_err(&[good.clone(), bad.clone()], false).unwrap_err();
        assert!(e.contains(want), "expected `{want}` in `{e}`");
        let t = read_err(&[good.clone(), bad.clone()], true).unwrap();
        assert_eq!(t.report.skipped.count, 1);
        assert_eq!(t.functions.len(), 1);
    }
}

#[test]
fn bad_headers_empty_and_truncated_files() {
    let dir = temp_dir("hdr");
    let p = dir.join("inv.csv");
    std::fs::write(&p, "HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,2\n").unwrap();
    // Recognised as an invocation file cut short: refused when the files are discovered.
    let e = azure2019::discover(std::slice::from_ref(&p)).unwrap_err().to_string();
    assert!(
        e.contains(
            "inv.csv:1: field `header`: found `HashOwner,HashApp,HashFunction,Trigger,1,2`: not a whole invocation file"
        ) && e.contains("1440"),
        "{e}"
    );
    std::fs::write(&p, "").unwrap();
    let e = azure2019::discover(std::slice::from_ref(&p)).unwrap_err().to_string();
    assert!(
        e.contains("inv.csv:1: field `header`: not an Azure Functions 2019 file"),
        "{e}"
    );
    // A truncated last line (a row cut mid-way) is a short row.
    let mut text = header_line();
    text.push('\n');
    text.push_str(&row("o", "a", "f", "http", &[1])[..100]);
    std::fs::write(&p, text).unwrap();
    let e = azure2019::read(&azure2019::discover(&[p]).unwrap(), &all_opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains(":2: field `row`: has"), "{e}");
}

#[test]
fn selection_by_trigger_popularity_top_k_and_sample() {
    let dir = temp_dir("sel");
    let rows: Vec<String> = (1..=10)
        .map(|i| {
            row(
                "o",
                "a",
                &format!("f{i:02}"),
                if i % 2 == 0 { "http" } else { "timer" },
                &[i],
            )
        })
        .collect();
    write_invocations(&dir, &rows);
    let t = azure2019::read(&azure2019::discover(&[dir]).unwrap(), &all_opts()).unwrap();
    let names = |s: &Selection| -> Vec<u64> { s.apply(t.functions.clone(), 1).iter().map(|f| f.total).collect() };
    assert_eq!(
        names(&Selection {
            top_k: Some(3),
            ..Default::default()
        }),
        vec![8, 9, 10]
    );
    assert_eq!(
        names(&Selection {
            triggers: Some(vec!["http".into()]),
            top_k: Some(2),
            ..Default::default()
        }),
        vec![8, 10]
    );
    assert_eq!(
        names(&Selection {
            popularity: Some([0.0, 0.25]),
            ..Default::default()
        }),
        vec![1, 2, 3]
    );
    let s = Selection {
        sample_count: Some(4),
        sample_seed: Some(9),
        ..Default::default()
    };
    let a = names(&s);
    assert_eq!(a.len(), 4);
    assert_eq!(a, names(&s), "the same seed picks the same subset");
}

#[test]
fn window_and_days_restrict_what_is_read() {
    let dir = temp_dir("window");
    write_invocations(&dir, &[row("o", "a", "f", "http", &[1, 2, 3, 4, 5])]);
    let t = azure2019::read(
        &azure2019::discover(&[dir]).unwrap(),
        &ReadOptions {
            window: Some((2, 2)),
            ..all_opts()
        },
    )
    .unwrap();
    assert_eq!(t.functions[0].total, 3 + 4);
    assert_eq!(t.window, (2, 4));
    let a = collect(&mut azure2019::Azure2019Stream::new(
        t,
        stream_opts(Spread::Uniform, false),
    ));
    assert!(
        a.iter().all(|x| x.time < 120 * NS_PER_S),
        "times are relative to the window start"
    );
}

/// InVitro's sampled layout (vHive's load generator): the hashes in another order, no
/// `Trigger`, `minute_N` columns, durations with the hashes first, memory per app with
/// `HashApp` first — or per function.
fn invitro_files(dir: &Path, sample: &str, memory_per_function: bool) {
    let minutes = |counts: &[(usize, u32)]| {
        let mut v = vec![0u32; 1440];
        for &(m, c) in counts {
            v[m] = c;
        }
        v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    };
    let mut inv = String::from("HashFunction,HashApp,HashOwner");
    for m in 1..=1440 {
        inv.push_str(&format!(",minute_{m}"));
    }
    inv.push_str(&format!(
        "\nf1,a1,o1,{}\nf2,a1,o1,{}\n",
        minutes(&[(0, 3), (5, 1)]),
        minutes(&[(2, 2)])
    ));
    std::fs::write(dir.join(format!("{sample}_inv.csv")), inv).unwrap();
    let run = "HashFunction,HashApp,HashOwner,Count,Average,Minimum,Maximum,percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,percentile_Average_99,percentile_Average_100\n\
               f1,a1,o1,4,120,100.0,200.0,100,100,110,120,130,190,200\n\
               f2,a1,o1,2,50,40.0,60.0,40,40,45,50,55,60,60\n";
    std::fs::write(dir.join(format!("{sample}_run.csv")), run).unwrap();
    let mem = if memory_per_function {
        "HashOwner,HashApp,HashFunction,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1\no1,a1,f1,10,300,290\no1,a1,f2,10,100,90\n"
    } else {
        "HashApp,HashOwner,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1\na1,o1,10,400,390\n"
    };
    std::fs::write(dir.join(format!("{sample}_mem.csv")), mem).unwrap();
}

#[test]
fn invitro_samples_are_read_by_their_header() {
    for per_function in [false, true] {
        let dir = temp_dir(&format!("invitro-{per_function}"));
        invitro_files(&dir, "10", per_function);
        // Naming the invocation file brings its durations and memory beside it.
        let files = azure2019::discover(&[dir.join("10_inv.csv")]).unwrap();
        assert_eq!((files.durations.len(), files.memory.len()), (1, 1));
        let t = azure2019::read(&files, &all_opts()).unwrap();
        let f: Vec<_> = t
            .functions
            .iter()
            .map(|f| (f.key.function.as_str(), f.total, f.trigger.as_str()))
            .collect();
        assert_eq!(f, vec![("f1", 4, "unknown"), ("f2", 2, "unknown")]);
        assert_eq!(t.functions[0].minutes, vec![(0, 3), (5, 1)]);
        assert_eq!(t.functions[0].durations.unwrap().average, 120.0);
        let memory: Vec<f64> = t.functions.iter().map(|f| f.memory_mb.unwrap()).collect();
        // Per app: 400 MB split evenly; per function: each its own.
        assert_eq!(
            memory,
            if per_function {
                vec![300.0, 100.0]
            } else {
                vec![200.0, 200.0]
            }
        );
        assert_eq!(t.report.missing_memory, 0);
        // The missing trigger is `unknown`, and it can be selected.
        let sel = Selection {
            triggers: Some(vec!["unknown".into()]),
            ..Default::default()
        };
        assert!(sel.check().is_ok());
        assert_eq!(sel.apply(t.functions.clone(), 1).len(), 2);
    }
}

#[test]
fn a_folder_of_several_invitro_samples_is_refused_with_their_names() {
    let dir = temp_dir("invitro-many");
    invitro_files(&dir, "10", false);
    invitro_files(&dir, "20", false);
    let e = azure2019::discover(std::slice::from_ref(&dir)).unwrap_err().to_string();
    assert!(
        e.contains("2 invocation files are all of day 1") && e.contains("10_inv.csv") && e.contains("20_inv.csv"),
        "{e}"
    );
    assert!(azure2019::discover(&[dir.join("20_inv.csv")]).is_ok());
}

/// A CSV of the folder that is none of the trace's is named in the report, not dropped silently.
#[test]
fn unrelated_files_of_the_folder_are_named() {
    let dir = temp_dir("ignored");
    invitro_files(&dir, "10", false);
    std::fs::write(dir.join("notes.csv"), "a,b\n1,2\n").unwrap();
    let files = azure2019::discover(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(files.ignored, vec![dir.join("notes.csv")]);
    let t = azure2019::read(&files, &all_opts()).unwrap();
    assert!(
        t.report
            .to_string()
            .contains("files ignored (not the trace's: no hash in their header): "),
        "{}",
        t.report
    );
    assert!(t.report.to_string().contains("notes.csv"));
}
