//! Fuzz target: the Azure Functions 2021 reader (`app,func,end_timestamp,duration`), with its
//! bounded-memory re-sort spilling runs of 3 rows.
use gpushare_traces::azure2021;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let (skip, bytes) = gpushare_fuzz::flag_and_rest(data);
        let p = gpushare_fuzz::file("azure2021.csv", bytes);
        if let Ok(t) = azure2021::read(&p, 3, skip) {
            if let Ok(mut s) = azure2021::Azure2021Stream::new(&t, true) {
                gpushare_fuzz::drain(&mut s, 10_000);
            }
        }
    });
}
