//! Fuzz target: the plain `time,func[,duration]` CSV reader.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let (skip, bytes) = gpushare_fuzz::flag_and_rest(data);
        let p = gpushare_fuzz::file("plain.csv", bytes);
        let names = ["a".to_string(), "b".to_string(), "1".to_string()];
        if let Ok(mut s) = gpushare_traces::PlainCsvSource::open(&p, &names, skip) {
            gpushare_fuzz::drain(&mut s, 10_000);
        }
    });
}
