//! Choosing which functions of a trace to replay.

use super::parse::TraceFunction;
use crate::rng;
use rand::seq::SliceRandom;
use serde::Deserialize;

/// Which functions to keep, applied in this order: trigger filter, popularity band, top-k,
/// random subset.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Keep only these triggers.
    pub triggers: Option<Vec<String>>,
    /// Keep functions whose popularity rank (by invocations in the window, as a quantile from
    /// 0 = least to 1 = most invoked) lies in [lo, hi].
    pub popularity: Option<[f64; 2]>,
    /// Keep the k most invoked functions.
    pub top_k: Option<usize>,
    /// Keep a random fraction (0, 1] of the functions …
    pub sample_fraction: Option<f64>,
    /// … or a random number of them.
    pub sample_count: Option<usize>,
    /// Seed of the random subset (default: the scenario seed).
    pub sample_seed: Option<u64>,
}

impl Selection {
    /// The options set, as `trace` flags (`--triggers timer, --top-k 5`); `none` if none is.
    pub fn describe(&self) -> String {
        let mut set = Vec::new();
        if let Some(t) = &self.triggers {
            set.push(format!("--triggers {}", t.join(",")));
        }
        if let Some([lo, hi]) = self.popularity {
            set.push(format!("--popularity {lo},{hi}"));
        }
        if let Some(k) = self.top_k {
            set.push(format!("--top-k {k}"));
        }
        if let Some(f) = self.sample_fraction {
            set.push(format!("--sample-fraction {f}"));
        }
        if let Some(n) = self.sample_count {
            set.push(format!("--sample-count {n}"));
        }
        if set.is_empty() { "none".into() } else { set.join(", ") }
    }

    /// Applies the selection; the result stays sorted by key.
    pub fn apply(&self, mut functions: Vec<TraceFunction>, seed: u64) -> Vec<TraceFunction> {
        if let Some(triggers) = &self.triggers {
            functions.retain(|f| triggers.contains(&f.trigger));
        }
        if self.popularity.is_some() || self.top_k.is_some() {
            // Rank by invocations, ties by key, most invoked first.
            let mut order: Vec<usize> = (0..functions.len()).collect();
            order.sort_by(|&a, &b| {
                functions[b]
                    .total
                    .cmp(&functions[a].total)
                    .then(functions[a].key.cmp(&functions[b].key))
            });
            let n = order.len();
            let mut keep = vec![true; n];
            if let Some([lo, hi]) = self.popularity {
                for (rank, &i) in order.iter().enumerate() {
                    // Quantile of popularity: 1 for the most invoked, 0 for the least.
                    let q = if n <= 1 {
                        1.0
                    } else {
                        1.0 - rank as f64 / (n - 1) as f64
                    };
                    keep[i] &= q >= lo && q <= hi;
                }
            }
            if let Some(k) = self.top_k {
                let mut kept = 0;
                for &i in &order {
                    if keep[i] {
                        kept += 1;
                        keep[i] = kept <= k;
                    }
                }
            }
            let mut it = keep.into_iter();
            functions.retain(|_| it.next().unwrap_or(false));
        }
        let count = match (self.sample_fraction, self.sample_count) {
            (Some(f), _) => Some(((functions.len() as f64) * f).round() as usize),
            (None, Some(c)) => Some(c),
            (None, None) => None,
        };
        if let Some(count) = count.filter(|&c| c < functions.len()) {
            let mut idx: Vec<usize> = (0..functions.len()).collect();
            idx.shuffle(&mut rng::stream(self.sample_seed.unwrap_or(seed), "azure-sample", 0));
            let mut chosen = idx[..count].to_vec();
            chosen.sort_unstable();
            let mut keep = vec![false; functions.len()];
            for i in chosen {
                keep[i] = true;
            }
            let mut it = keep.into_iter();
            functions.retain(|_| it.next().unwrap_or(false));
        }
        functions
    }

    /// Checks ranges; returns (field, message) for the first bad one.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some([lo, hi]) = self.popularity {
            if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) || lo > hi {
                return Err((
                    "popularity",
                    format!("must be [lo, hi] with 0 ≤ lo ≤ hi ≤ 1, got [{lo}, {hi}]"),
                ));
            }
        }
        if let Some(f) = self.sample_fraction {
            if !(f > 0.0 && f <= 1.0) {
                return Err(("sample_fraction", format!("must be in (0, 1], got {f}")));
            }
        }
        if self.top_k == Some(0) || self.sample_count == Some(0) {
            let f = if self.top_k == Some(0) { "top_k" } else { "sample_count" };
            return Err((f, "must be at least 1 (0 keeps no function)".into()));
        }
        if self.sample_fraction.is_some() && self.sample_count.is_some() {
            return Err(("sample_count", "give sample_fraction or sample_count, not both".into()));
        }
        if let Some(t) = &self.triggers {
            let known = |t: &str| super::parse::TRIGGERS.contains(&t) || t == super::layout::NO_TRIGGER;
            if let Some(bad) = t.iter().find(|t| !known(t)) {
                return Err((
                    "triggers",
                    format!(
                        "`{bad}` is not a trigger; expected any of {}, or `{}` (files without triggers: InVitro's)",
                        super::parse::TRIGGERS.join(", "),
                        super::layout::NO_TRIGGER
                    ),
                ));
            }
        }
        Ok(())
    }
}
