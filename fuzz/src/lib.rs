//! What the fuzz targets share: writing an input where a reader can open it, and draining a
//! source. Every target's property is the same: the reader returns arrivals or an error —
//! never a panic, an abort or a hang.

use gpushare_traces::ArrivalSource;
use std::path::{Path, PathBuf};

/// A folder of this process's own in memory (`/dev/shm`) where there is one, else the system's
/// temporary folder: readers take paths, and a file per execution must be cheap.
pub fn scratch() -> PathBuf {
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("gpushare-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder can be made");
    dir
}

/// Writes `bytes` to `name` in the scratch folder and returns its path.
pub fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    std::fs::write(&p, bytes).expect("the scratch file can be written");
    p
}

/// Drains a source, stopping at the first error; at most `limit` arrivals.
pub fn drain(src: &mut dyn ArrivalSource, limit: usize) {
    for _ in 0..limit {
        match src.next_arrival() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
}

/// The first byte of an input as a flag (skip malformed rows or not), and the rest.
pub fn flag_and_rest(data: &[u8]) -> (bool, &[u8]) {
    match data.split_first() {
        Some((b, rest)) => (b & 1 == 1, rest),
        None => (false, data),
    }
}
