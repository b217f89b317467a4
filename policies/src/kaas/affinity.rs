//! KaaS's affinity: each client group is assigned one GPU by the fraction of the GPU's buffer
//! cache its buffers take, rounded up to eighths — at most eight small clients share a GPU's
//! affinity before it counts as full.
//!
//! Groups are placed in group order on the GPU with the most eighths left (ties: the lower
//! index), so affinities spread over the pool and each GPU's cache holds its own groups; once
//! every GPU is full, the GPU with the most left takes the next group anyway and is
//! oversubscribed — its groups then compete for its cache. (Filling one GPU before the next
//! would leave the others without affine groups: they would serve whichever group waits and
//! thrash their caches.)

/// Eighths of a cache of `capacity` bytes that `bytes` take, rounded up, at least one.
pub fn eighths(bytes: u64, capacity: u64) -> i64 {
    if capacity == 0 {
        return 8;
    }
    (bytes.saturating_mul(8).div_ceil(capacity)).max(1) as i64
}

/// The affine GPU of each group, given each group's bytes and each GPU's cache capacity.
pub fn assign(group_bytes: &[u64], capacities: &[u64]) -> Vec<usize> {
    let mut left: Vec<i64> = vec![8; capacities.len()];
    group_bytes
        .iter()
        .map(|&bytes| {
            let gpu = (0..capacities.len())
                .max_by_key(|&g| (left[g] - eighths(bytes, capacities[g]), std::cmp::Reverse(g)))
                .expect("at least one GPU");
            left[gpu] -= eighths(bytes, capacities[gpu]);
            gpu
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_to_eighths_and_spreads_groups() {
        assert_eq!(eighths(1, 800), 1);
        assert_eq!(eighths(100, 800), 1);
        assert_eq!(eighths(101, 800), 2);
        assert_eq!(eighths(900, 800), 9);
        // Four groups of 3/8 on two GPUs: two each, alternating.
        assert_eq!(assign(&[300, 300, 300, 300], &[800, 800]), [0, 1, 0, 1]);
        // A fifth fits nowhere (2/8 left each): the tie goes to GPU 0, now oversubscribed.
        assert_eq!(assign(&[300, 300, 300, 300, 300], &[800, 800]), [0, 1, 0, 1, 0]);
        // A large group takes a GPU to itself; the small ones go to the other while it has room.
        assert_eq!(assign(&[700, 100, 100, 100], &[800, 800]), [0, 1, 1, 1]);
        // With different capacities, the same bytes take fewer eighths of the larger cache.
        // (after the first, GPU 1 keeps 4/8 either way: a tie, to GPU 0).
        assert_eq!(assign(&[400, 400, 400], &[800, 1600]), [1, 0, 1]);
    }
}
