//! Writing traces: the plain `time,func,duration` CSV (`convert`) and Azure 2019 files of a
//! selection (`sample`).

use crate::atomic::AtomicFile;
use crate::azure2019::Azure2019;
use crate::azure2019::parse::{DURATIONS_HEADER, MEMORY_HEADER, MINUTES_PER_DAY};
use crate::{ArrivalSource, NS_PER_S, TraceError};
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> TraceError + '_ {
    move |source| TraceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes every arrival of `source` as `time,func,duration` (seconds, nine decimals, exact).
pub fn write_plain(source: &mut dyn ArrivalSource, names: &[String], out: &Path) -> Result<u64, TraceError> {
    let e = io_err(out);
    let mut file = AtomicFile::create(out).map_err(&e)?;
    let w = file.writer();
    w.write_all(b"time,func,duration\n").map_err(&e)?;
    let mut line = String::new();
    let mut n = 0;
    while let Some(a) = source.next_arrival()? {
        line.clear();
        let _ = write!(
            line,
            "{}.{:09},{},",
            a.time / NS_PER_S,
            a.time % NS_PER_S,
            names[a.func as usize]
        );
        if let Some(d) = a.duration {
            let _ = write!(line, "{}.{:09}", d / NS_PER_S, d % NS_PER_S);
        }
        line.push('\n');
        w.write_all(line.as_bytes()).map_err(&e)?;
        n += 1;
    }
    file.commit().map_err(&e)?;
    Ok(n)
}

/// Writes the functions of `trace` (after selection) as 2019 files in `dir`, one set per day of
/// its window; minutes outside the window are written as 0.
pub fn write_azure2019(trace: &Azure2019, dir: &Path) -> Result<(), TraceError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let (first_day, last_day) = (
        trace.window.0 / MINUTES_PER_DAY + 1,
        (trace.window.1 - 1) / MINUTES_PER_DAY + 1,
    );
    for day in first_day..=last_day {
        let p = dir.join(format!("invocations_per_function_md.anon.d{day:02}.csv"));
        let e = io_err(&p);
        let mut file = AtomicFile::create(&p).map_err(&e)?;
        let w = file.writer();
        let mut line = String::from("HashOwner,HashApp,HashFunction,Trigger");
        for m in 1..=MINUTES_PER_DAY {
            let _ = write!(line, ",{m}");
        }
        writeln!(w, "{line}").map_err(&e)?;
        let day_start = (day - 1) * MINUTES_PER_DAY;
        for f in &trace.functions {
            let mut counts = vec![0u32; MINUTES_PER_DAY as usize];
            for &(m, c) in &f.minutes {
                if m >= day_start && m < day_start + MINUTES_PER_DAY {
                    counts[(m - day_start) as usize] = c;
                }
            }
            line.clear();
            let _ = write!(line, "{},{},{},{}", f.key.owner, f.key.app, f.key.function, f.trigger);
            for c in counts {
                let _ = write!(line, ",{c}");
            }
            writeln!(w, "{line}").map_err(&e)?;
        }
        file.commit().map_err(&e)?;

        let p = dir.join(format!("function_durations_percentiles.anon.d{day:02}.csv"));
        let e = io_err(&p);
        let mut file = AtomicFile::create(&p).map_err(&e)?;
        let w = file.writer();
        writeln!(w, "{}", DURATIONS_HEADER.join(",")).map_err(&e)?;
        for f in &trace.functions {
            if let Some(d) = f.durations {
                let p = d.percentiles;
                writeln!(
                    w,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    f.key.owner,
                    f.key.app,
                    f.key.function,
                    d.average,
                    d.count,
                    d.minimum,
                    d.maximum,
                    p[0],
                    p[1],
                    p[2],
                    p[3],
                    p[4],
                    p[5],
                    p[6]
                )
                .map_err(&e)?;
            }
        }
        file.commit().map_err(&e)?;

        let p = dir.join(format!("app_memory_percentiles.anon.d{day:02}.csv"));
        let e = io_err(&p);
        let mut file = AtomicFile::create(&p).map_err(&e)?;
        let w = file.writer();
        writeln!(w, "{}", MEMORY_HEADER.join(",")).map_err(&e)?;
        // The app's memory is the sum of its selected functions' shares (the reader splits it).
        let mut apps: std::collections::BTreeMap<(&str, &str), f64> = std::collections::BTreeMap::new();
        for f in &trace.functions {
            if let Some(mb) = f.memory_mb {
                *apps.entry((&f.key.owner, &f.key.app)).or_default() += mb;
            }
        }
        for ((owner, app), mb) in apps {
            // Only the average is known after the split; percentiles repeat it.
            writeln!(w, "{owner},{app},1,{mb},{mb},{mb},{mb},{mb},{mb},{mb},{mb},{mb}").map_err(&e)?;
        }
        file.commit().map_err(&e)?;
    }
    Ok(())
}
