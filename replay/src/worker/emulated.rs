//! The emulated backend: every operation is host time of its planned duration. It runs the
//! whole harness — processes, dispatch, records, summaries — on a machine without a GPU, for
//! tests and dry runs; it shares nothing between workers, so it shows no contention, and its
//! output says it was emulated.

use super::{Executor, Timing, host_wait};
use crate::plan::Op;
use crate::protocol::{Ready, Setup};

pub(super) struct Emulated;

pub(super) fn build(setup: &Setup) -> (Box<dyn Executor>, Ready) {
    let ready = Ready {
        pid: std::process::id(),
        sms: 0,
        context_s: 0.0,
        kernels: "none".into(),
        resident_bytes: setup.functions.iter().map(|(_, p)| p.resident_bytes).sum(),
        extra_bytes: 0,
        cublas: false,
    };
    (Box::new(Emulated), ready)
}

impl Executor for Emulated {
    fn run(&self, _lane: u32, ops: &[(Op, u32, u64)]) -> Result<Timing, String> {
        let mut t = Timing::start();
        for &(op, repeat, ns) in ops {
            let total = ns * u64::from(repeat);
            host_wait(total);
            if op.on_gpu() {
                t.gpu_segment(total);
            }
        }
        Ok(t.end())
    }
}
