//! KaaS's device buffer cache, one per worker (the artifact's `bufferCache` and `lruPolicy`).
//!
//! Constant buffers stay on the device between requests, least recently used evicted first —
//! but buffers used more than twice count as constants proper and go only after every other
//! one. Before a request runs, everything it lacks is made room for at once (one batch of
//! evictions); evicting a dirty buffer (a constant output) writes it back first. Ephemeral
//! buffers live for their request only. The cache only counts bytes and costs; the caller
//! turns them into memory reservations and copies.

use gpushare_sim::kernel_graph::BufferRole;

/// A buffer of a function's graph, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub bytes: u64,
    pub role: BufferRole,
    pub constant: bool,
}

#[derive(Clone, Copy, Debug)]
struct Resident {
    bytes: u64,
    uses: u32,
    last_use: u64,
    dirty: bool,
}

/// What making room for one request costs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    /// Bytes evicted (to give back to the device) and, of those, written back first.
    pub evicted: u64,
    pub written_back: u64,
    /// Bytes newly allocated for this request (to reserve).
    pub allocated: u64,
    /// Bytes to load host→device before the kernels, and to write back after them.
    pub load: u64,
    pub store: u64,
    /// Bytes to free when the request ends (its ephemeral buffers).
    pub ephemeral: u64,
    pub hits: u32,
    pub misses: u32,
    pub evictions: u32,
}

/// Running totals for the policy report.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub loaded: u64,
    pub written_back: u64,
}

/// One device's cache. Buffers are identified by a dense global index (the caller numbers every
/// function's buffers); a function's buffers are `first..first + count`.
pub struct BufferCache {
    capacity: u64,
    used: u64,
    slots: Vec<Option<Resident>>,
    /// Whether a buffer's current data lives on the host (an evicted, written-back output):
    /// then a miss loads it.
    on_host: Vec<bool>,
    resident: Vec<u32>,
    clock: u64,
    pub stats: CacheStats,
}

impl BufferCache {
    /// A cache of `capacity` bytes for `buffers` buffers in all.
    pub fn new(capacity: u64, buffers: usize) -> Self {
        BufferCache {
            capacity,
            used: 0,
            slots: vec![None; buffers],
            on_host: vec![false; buffers],
            resident: Vec::new(),
            clock: 0,
            stats: CacheStats::default(),
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Makes room for a request of the function whose buffers are `bufs`, numbered from
    /// `first`; with `keep` false every buffer is treated as ephemeral (no caching). `None` if
    /// the request cannot fit even with everything else evicted.
    pub fn prepare(&mut self, first: u32, bufs: &[Buffer], keep: bool) -> Option<Prepared> {
        let mut p = Prepared::default();
        let mut need = 0u64;
        for (k, b) in bufs.iter().enumerate() {
            let id = first as usize + k;
            let cached = keep && b.constant;
            if cached && self.slots[id].is_some() {
                p.hits += 1;
                continue;
            }
            if cached {
                p.misses += 1;
            } else {
                p.ephemeral += b.bytes;
            }
            need += b.bytes;
            let has_host_data = b.role == BufferRole::Input || (cached && self.on_host[id]);
            if has_host_data {
                p.load += b.bytes;
            }
            if b.role == BufferRole::Output && !cached {
                p.store += b.bytes;
            }
        }
        if self.used + need > self.capacity {
            // One batch: least recently used first, buffers used more than twice last; never
            // this request's own.
            let own = first..first + bufs.len() as u32;
            let mut victims: Vec<u32> = self.resident.iter().copied().filter(|id| !own.contains(id)).collect();
            victims.sort_by_key(|&id| {
                let r = self.slots[id as usize].expect("resident");
                (r.uses > 2, r.last_use, id)
            });
            let freeable: u64 = victims
                .iter()
                .map(|&id| self.slots[id as usize].expect("resident").bytes)
                .sum();
            if self.used - freeable + need > self.capacity {
                return None;
            }
            for id in victims {
                if self.used + need <= self.capacity {
                    break;
                }
                let r = self.slots[id as usize].take().expect("resident");
                self.used -= r.bytes;
                p.evicted += r.bytes;
                p.evictions += 1;
                if r.dirty {
                    p.written_back += r.bytes;
                    self.on_host[id as usize] = true;
                }
            }
            self.resident.retain(|&id| self.slots[id as usize].is_some());
        }
        // The request's buffers are now on the device; constant ones stay and count a use.
        self.clock += 1;
        for (k, b) in bufs.iter().enumerate() {
            let id = first as usize + k;
            if !(keep && b.constant) {
                continue;
            }
            match &mut self.slots[id] {
                Some(r) => {
                    r.uses += 1;
                    r.last_use = self.clock;
                    r.dirty |= b.role == BufferRole::Output;
                }
                slot @ None => {
                    *slot = Some(Resident {
                        bytes: b.bytes,
                        uses: 1,
                        last_use: self.clock,
                        dirty: b.role == BufferRole::Output,
                    });
                    self.resident.push(id as u32);
                    self.used += b.bytes;
                    p.allocated += b.bytes;
                }
            }
        }
        p.allocated += p.ephemeral;
        self.stats.hits += u64::from(p.hits);
        self.stats.misses += u64::from(p.misses);
        self.stats.evictions += u64::from(p.evictions);
        self.stats.loaded += p.load;
        self.stats.written_back += p.written_back;
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn buffer(bytes: u64, role: BufferRole, constant: bool) -> Buffer {
        Buffer { bytes, role, constant }
    }
    const W: Buffer = buffer(40, BufferRole::Input, true);
    const IN: Buffer = buffer(1, BufferRole::Input, false);
    const OUT: Buffer = buffer(2, BufferRole::Output, false);
    const STATE: Buffer = buffer(30, BufferRole::Output, true);

    #[test]
    fn constants_stay_ephemerals_come_and_go() {
        let mut c = BufferCache::new(100, 3);
        let p = c.prepare(0, &[W, IN, OUT], true).unwrap();
        assert_eq!(
            (p.misses, p.hits, p.load, p.store, p.allocated, p.ephemeral),
            (1, 0, 41, 2, 43, 3)
        );
        let p = c.prepare(0, &[W, IN, OUT], true).unwrap();
        assert_eq!((p.misses, p.hits, p.load, p.store, p.allocated), (0, 1, 1, 2, 3));
        assert_eq!(c.used(), 40);
        // Without caching the weights are loaded every time.
        let p = c.prepare(0, &[W, IN, OUT], false).unwrap();
        assert_eq!((p.load, p.ephemeral), (41, 43));
    }

    #[test]
    fn eviction_is_one_batch_lru_with_frequent_buffers_last_and_dirty_ones_written_back() {
        // Functions a (buffer 0), b (1), c (2), d (3: a constant output), each 40 or 30 bytes.
        let mut c = BufferCache::new(100, 4);
        c.prepare(0, &[W], true).unwrap();
        for _ in 0..3 {
            c.prepare(0, &[W], true).unwrap(); // a used 4 times: promoted
        }
        c.prepare(1, &[W], true).unwrap(); // b used once, more recently than a
        // c needs 40 with 20 free: b goes (a is promoted), although a was used longer ago.
        let p = c.prepare(2, &[W], true).unwrap();
        assert_eq!((p.evictions, p.evicted, p.written_back), (1, 40, 0));
        // d (30) with 20 free: c goes (least recently used of the unpromoted).
        let p = c.prepare(3, &[STATE], true).unwrap();
        assert_eq!((p.evicted, p.allocated, p.load), (40, 30, 0));
        // d is dirty: evicting it for b (40 with 30 free … a 40, d 30 held) writes it back.
        let p = c.prepare(1, &[W], true).unwrap();
        assert_eq!((p.evicted, p.written_back), (30, 30));
        // Its data is on the host now: the next miss loads it.
        let p = c.prepare(3, &[STATE], true).unwrap();
        assert_eq!(p.load, 30);
    }

    #[test]
    fn a_request_larger_than_the_cache_does_not_fit() {
        let mut c = BufferCache::new(50, 2);
        assert!(c.prepare(0, &[W, STATE], true).is_none());
        assert_eq!(c.used(), 0);
    }
}
