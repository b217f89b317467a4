//! Fuzz target: the Azure Functions 2019 reader. The input is the day's invocation file, then
//! its durations file and its memory file, separated by the byte 0x1E (record separator); the reader discovers
//! them by name in a folder, reads, selects and streams them.
use gpushare_traces::azure2019::{self, DurationModel, ReadOptions, Spread, StreamOptions};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let (skip, bytes) = gpushare_fuzz::flag_and_rest(data);
        let dir = gpushare_fuzz::scratch().join("azure2019");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch folder can be made");
        let names = [
            "invocations_per_function_md.anon.d01.csv",
            "function_durations_percentiles.anon.d01.csv",
            "app_memory_percentiles.anon.d01.csv",
        ];
        let mut parts = bytes.split(|&b| b == 0x1e);
        for name in names {
            if let Some(part) = parts.next() {
                std::fs::write(dir.join(name), part).expect("the scratch file can be written");
            }
        }
        let Ok(files) = azure2019::discover(&[dir]) else { return };
        let opts = ReadOptions {
            days: None,
            window: None,
            skip_bad_rows: skip,
        };
        if let Ok(t) = azure2019::read(&files, &opts) {
            let stream = StreamOptions {
                spread: Spread::Exponential,
                shift: true,
                durations: DurationModel::Percentiles,
                scale: 1.0,
                seed: 1,
            };
            gpushare_fuzz::drain(&mut azure2019::Azure2019Stream::new(t, stream), 10_000);
        }
    });
}
