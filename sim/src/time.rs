//! Simulated time: integer nanoseconds, exact and totally ordered.

pub use gpushare_traces::{NS_PER_S, Nanos, secs_to_ns};

/// Nanoseconds to seconds, for reporting.
pub fn ns_to_secs(ns: Nanos) -> f64 {
    ns as f64 / NS_PER_S as f64
}

/// Milliseconds (finite, non-negative) to nanoseconds, rounded.
pub fn ms_to_ns(ms: f64) -> Nanos {
    (ms * 1e6).round() as Nanos
}

/// Writes `ns` as seconds with all nine decimals, exactly (no floating point).
pub fn write_secs(out: &mut String, ns: Nanos) {
    use std::fmt::Write;
    let _ = write!(out, "{}.{:09}", ns / NS_PER_S, ns % NS_PER_S);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_seconds_formatting() {
        let mut s = String::new();
        write_secs(&mut s, 12_000_000_345);
        assert_eq!(s, "12.000000345");
    }
}
