//! Kernel graphs: a function as a kernel server (KaaS) sees it — its kernels, which are the
//! profile's kernel phases in order, and the named buffers they read and write.
//!
//! A profile may state its graph (`kernel_graph = { dispatch_ms, buffers = [...] }`); otherwise
//! one is derived from the profile ([`KernelGraph::derived`]): the weights are a constant input,
//! the host→device copies an input and the device→host copies an output, both new every
//! request, and the activations a constant temporary (a workspace kept with the function).
//!
//! What a buffer costs a kernel server, by role and lifetime:
//!
//! | role | `const = true` (kept on the device between requests) | `const = false` (ephemeral: this request only) |
//! | --- | --- | --- |
//! | input | loaded over the host link when missing from the device | loaded every request |
//! | output | allocated on first use; state updated in place, dirty, written back only when evicted | allocated, written back at the end of every request |
//! | temporary | allocated on first use (no copy) | allocated (no copy) |

use serde::{Deserialize, Serialize};

/// What a buffer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferRole {
    /// Read by the kernels; its data comes from the host.
    Input,
    /// Written by the kernels; its data goes back to the host.
    Output,
    /// Scratch space: neither loaded nor written back.
    Temporary,
}

/// One named buffer of a kernel graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferSpec {
    pub name: String,
    /// Size, MiB.
    pub mib: f64,
    pub role: BufferRole,
    /// Kept on the device between requests (model weights, a workspace, state); otherwise
    /// ephemeral: new every request and dropped after it.
    #[serde(default, rename = "const")]
    pub constant: bool,
}

/// A function's kernel graph.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelGraph {
    /// Worker time per request besides the kernels themselves (the kernel server's launch and
    /// argument path), ms; it holds the worker but no SMs.
    #[serde(default)]
    pub dispatch_ms: f64,
    pub buffers: Vec<BufferSpec>,
}

impl KernelGraph {
    /// The graph a profile without one gets: weights (constant input), inputs and outputs (new
    /// every request) from its copies, activations (a constant temporary).
    pub fn derived(weights_mib: f64, h2d_mib: f64, d2h_mib: f64, activation_mib: f64) -> KernelGraph {
        let buffer = |name: &str, mib: f64, role, constant| BufferSpec {
            name: name.into(),
            mib,
            role,
            constant,
        };
        let all = [
            buffer("weights", weights_mib, BufferRole::Input, true),
            buffer("input", h2d_mib, BufferRole::Input, false),
            buffer("output", d2h_mib, BufferRole::Output, false),
            buffer("workspace", activation_mib, BufferRole::Temporary, true),
        ];
        KernelGraph {
            dispatch_ms: 0.0,
            buffers: all.into_iter().filter(|b| b.mib > 0.0).collect(),
        }
    }

    /// Checks ranges and names; returns (field, message) for the first problem, the field
    /// relative to the graph.
    pub fn check(&self) -> Result<(), (String, String)> {
        if !(self.dispatch_ms.is_finite() && self.dispatch_ms >= 0.0) {
            return Err((
                "dispatch_ms".into(),
                format!("must be a non-negative number, got {}", self.dispatch_ms),
            ));
        }
        for (i, b) in self.buffers.iter().enumerate() {
            if b.name.is_empty() {
                return Err((format!("buffers[{i}].name"), "must not be empty".into()));
            }
            if self.buffers[..i].iter().any(|o| o.name == b.name) {
                return Err((
                    format!("buffers[{i}].name"),
                    format!("buffer `{}` is named twice; names must be unique in a graph", b.name),
                ));
            }
            if !(b.mib.is_finite() && b.mib >= 0.0) {
                return Err((
                    format!("buffers[{i}].mib"),
                    format!("must be a non-negative number, got {}", b.mib),
                ));
            }
        }
        Ok(())
    }

    /// Total size of its buffers, MiB: what one request needs on the device at once.
    pub fn total_mib(&self) -> f64 {
        self.buffers.iter().map(|b| b.mib).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_graph_leaves_out_empty_buffers() {
        let g = KernelGraph::derived(98.0, 0.5, 0.0, 380.0);
        let names: Vec<&str> = g.buffers.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["weights", "input", "workspace"]);
        assert!(g.buffers[0].constant && !g.buffers[1].constant);
        assert_eq!(g.total_mib(), 478.5);
    }

    #[test]
    fn check_names_the_bad_field() {
        let mut g = KernelGraph::derived(1.0, 1.0, 1.0, 1.0);
        g.buffers[2].name = "weights".into();
        assert_eq!(g.check().unwrap_err().0, "buffers[2].name");
        let mut g = KernelGraph::derived(1.0, 1.0, 1.0, 1.0);
        g.buffers[1].mib = -1.0;
        assert_eq!(g.check().unwrap_err().0, "buffers[1].mib");
        g.buffers[1].mib = 1.0;
        g.dispatch_ms = f64::NAN;
        assert_eq!(g.check().unwrap_err().0, "dispatch_ms");
    }
}
