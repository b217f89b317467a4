//! Writing traces: the plain `time,func,duration` CSV (`convert`) and Azure 2019 files of a
//! selection (`sample`), with the 2019 files' naming, headers and duration rows that the
//! synthetic generator ([`crate::generate`]) writes its files with too.

use crate::atomic::AtomicFile;
use crate::azure2019::Azure2019;
use crate::azure2019::parse::{DURATIONS_HEADER, DurationStats, MEMORY_HEADER, MINUTES_PER_DAY};
use crate::{ArrivalSource, NS_PER_S, TraceError};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

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
        let p = day_file(dir, "invocations_per_function_md", day);
        write_csv(&p, &invocations_header(), |w| {
            let day_start = (day - 1) * MINUTES_PER_DAY;
            let mut line = String::new();
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
                writeln!(w, "{line}")?;
            }
            Ok(())
        })
        .map_err(io_err(&p))?;

        let p = day_file(dir, "function_durations_percentiles", day);
        write_csv(&p, &DURATIONS_HEADER.join(","), |w| {
            for f in &trace.functions {
                if let Some(d) = &f.durations {
                    write_durations_row(w, [&f.key.owner, &f.key.app, &f.key.function], d, None)?;
                }
            }
            Ok(())
        })
        .map_err(io_err(&p))?;

        let p = day_file(dir, "app_memory_percentiles", day);
        write_csv(&p, &MEMORY_HEADER.join(","), |w| {
            // The app's memory is the sum of its selected functions' shares (the reader splits it).
            let mut apps: std::collections::BTreeMap<(&str, &str), f64> = std::collections::BTreeMap::new();
            for f in &trace.functions {
                if let Some(mb) = f.memory_mb {
                    *apps.entry((&f.key.owner, &f.key.app)).or_default() += mb;
                }
            }
            for ((owner, app), mb) in apps {
                // Only the average is known after the split; percentiles repeat it.
                writeln!(w, "{owner},{app},1,{mb},{mb},{mb},{mb},{mb},{mb},{mb},{mb},{mb}")?;
            }
            Ok(())
        })
        .map_err(io_err(&p))?;
    }
    Ok(())
}

/// `dir`'s 2019 file of `kind` (e.g. `invocations_per_function_md`) for day `day`, named as the
/// dataset names it.
pub(crate) fn day_file(dir: &Path, kind: &str, day: u32) -> PathBuf {
    dir.join(format!("{kind}.anon.d{day:02}.csv"))
}

/// Writes the CSV file `path` atomically: the `header` line, then the rows `rows` writes.
pub(crate) fn write_csv(
    path: &Path,
    header: &str,
    rows: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    let w = file.writer();
    writeln!(w, "{header}")?;
    rows(w)?;
    file.commit()
}

/// The header line of a 2019 invocations file: the hashes, the trigger, and minutes 1 to 1440.
pub(crate) fn invocations_header() -> String {
    let mut line = String::from("HashOwner,HashApp,HashFunction,Trigger");
    for m in 1..=MINUTES_PER_DAY {
        let _ = write!(line, ",{m}");
    }
    line
}

/// Writes one row of a 2019 durations file: the function's three hashes, then `d` in the file's
/// column order, its times (ms) with `decimals` decimals (as many as they need when `None`).
pub(crate) fn write_durations_row(
    w: &mut impl Write,
    [owner, app, function]: [&str; 3],
    d: &DurationStats,
    decimals: Option<usize>,
) -> io::Result<()> {
    let ms = |x: f64| match decimals {
        Some(n) => format!("{x:.n$}"),
        None => format!("{x}"),
    };
    let (average, count, minimum, maximum) = (ms(d.average), d.count, ms(d.minimum), ms(d.maximum));
    write!(w, "{owner},{app},{function},{average},{count},{minimum},{maximum}")?;
    for p in d.percentiles {
        write!(w, ",{}", ms(p))?;
    }
    writeln!(w)
}
