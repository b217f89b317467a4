//! The worker process (`gpushare replay-worker`, started by the orchestrator): reads its
//! [`Setup`] from stdin, sets its backend up (a CUDA context with the functions' memory, or the
//! emulated backend), says [`Reply::Ready`], then runs [`Request::Run`]s on its lanes — one
//! thread and one stream each — and answers each with [`Reply::Done`] until `Quit` or the end of
//! stdin.
//!
//! A worker is one process of the mechanism's layout: an instance with its own context
//! (exclusive, time sharing, MPS), a KaaS kernel server, or a SAGE shared context whose
//! instances are its lanes.

mod cuda_backend;
mod emulated;

use crate::plan::{FunctionPlan, Op};
use crate::protocol::{Backend, Done, Ready, Reply, Request, Setup, line, now_ns};
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex, mpsc};

/// What running one invocation gives back.
pub(crate) struct Timing {
    pub start_ns: u64,
    pub end_ns: u64,
    pub gpu_end_ns: u64,
    pub gpu_ns: u64,
}

impl Timing {
    /// The timing of an invocation that starts now: no GPU time yet.
    fn start() -> Timing {
        let now = now_ns();
        Timing {
            start_ns: now,
            end_ns: now,
            gpu_end_ns: now,
            gpu_ns: 0,
        }
    }

    /// Adds a segment of `ns` GPU time that ended just now.
    fn gpu_segment(&mut self, ns: u64) {
        self.gpu_ns += ns;
        self.gpu_end_ns = now_ns();
    }

    /// The invocation ends now.
    fn end(self) -> Timing {
        Timing {
            end_ns: now_ns(),
            ..self
        }
    }
}

/// Runs invocations on a backend.
pub(crate) trait Executor: Send + Sync {
    /// Runs `ops` of one invocation on lane `lane`.
    fn run(&self, lane: u32, ops: &[(Op, u32, u64)]) -> Result<Timing, String>;
}

/// Waits `ns` of host time: sleeps most of it and spins the rest, so short host steps keep
/// their length (a sleep alone overshoots by tens of microseconds).
pub(crate) fn host_wait(ns: u64) {
    const SPIN_NS: u64 = 200_000;
    let until = now_ns() + ns;
    if ns > SPIN_NS {
        std::thread::sleep(std::time::Duration::from_nanos(ns - SPIN_NS));
    }
    while now_ns() < until {
        std::hint::spin_loop();
    }
}

/// The backend `setup` asks for, set up in this process.
pub(crate) fn executor(setup: &Setup) -> Result<(Box<dyn Executor>, Ready), String> {
    match setup.backend {
        Backend::Emulated => Ok(emulated::build(setup)),
        Backend::Cuda => {
            if !crate::driver::driver_present() {
                Err(crate::driver::NO_DRIVER.to_string())
            } else {
                cuda_backend::build(setup).map(|(e, r)| (Box::new(e) as Box<dyn Executor>, r))
            }
        }
    }
}

/// The operations of one request: each op scaled, with its repeat count and planned ns per
/// repetition.
pub(crate) fn request_ops(plan: &FunctionPlan, scale: f64) -> Vec<(Op, u32, u64)> {
    plan.ops
        .iter()
        .map(|p| {
            let (op, repeat) = p.op.scaled(scale);
            let ns = if repeat == 1 && scale != 1.0 && !matches!(op, Op::H2d { .. } | Op::D2h { .. }) {
                (p.ns as f64 * scale).round() as u64
            } else {
                p.ns
            };
            (op, repeat, ns)
        })
        .collect()
}

fn send(out: &Mutex<std::io::Stdout>, reply: &Reply) {
    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
    // The orchestrator reading our stdout is the only consumer; if it is gone, so are we.
    if o.write_all(line(reply).as_bytes()).and_then(|_| o.flush()).is_err() {
        std::process::exit(1);
    }
}

/// Runs one request on `lane` and answers it; a failure ends the process (the orchestrator sees
/// the `Failed` reply, then the worker's exit).
fn serve(
    executor: &dyn Executor,
    plans: &[(u32, FunctionPlan)],
    lane: u32,
    (id, func, scale): (u64, u32, f64),
    out: &Mutex<std::io::Stdout>,
) {
    let Some((_, plan)) = plans.iter().find(|(f, _)| *f == func) else {
        send(
            out,
            &Reply::Failed {
                id,
                error: format!("this worker does not serve function {func}"),
            },
        );
        std::process::exit(1);
    };
    match executor.run(lane, &request_ops(plan, scale)) {
        Ok(t) => send(
            out,
            &Reply::Done(Done {
                id,
                start_ns: t.start_ns,
                end_ns: t.end_ns,
                gpu_end_ns: t.gpu_end_ns,
                gpu_ns: t.gpu_ns,
                lane,
            }),
        ),
        Err(error) => {
            send(out, &Reply::Failed { id, error });
            std::process::exit(1);
        }
    }
}

/// The worker's main: returns the process exit code.
pub fn main() -> i32 {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let setup: Setup = match lines.next() {
        Some(Ok(l)) => match serde_json::from_str(&l) {
            Ok(s) => s,
            Err(e) => {
                send(
                    &out,
                    &Reply::SetupFailed {
                        error: format!("bad setup line: {e}"),
                    },
                );
                return 2;
            }
        },
        _ => {
            send(
                &out,
                &Reply::SetupFailed {
                    error: "no setup line on stdin".into(),
                },
            );
            return 2;
        }
    };
    let (executor, ready) = match executor(&setup) {
        Ok(b) => b,
        Err(error) => {
            send(&out, &Reply::SetupFailed { error });
            return 1;
        }
    };
    send(&out, &Reply::Ready(ready));

    let executor: Arc<dyn Executor> = Arc::from(executor);
    let plans: Arc<Vec<(u32, FunctionPlan)>> = Arc::new(setup.functions);
    let lanes_n = setup.worker.lanes.max(1);
    // One lane runs its requests on this thread, as they are read: no hand-over between
    // threads on the measured path. Several lanes each get a thread and share a queue.
    let (tx, rx) = mpsc::channel::<(u64, u32, f64)>();
    let rx = Arc::new(Mutex::new(rx));
    let lanes: Vec<_> = (0..if lanes_n > 1 { lanes_n } else { 0 })
        .map(|lane| {
            let (rx, out, executor, plans) = (rx.clone(), out.clone(), executor.clone(), plans.clone());
            std::thread::spawn(move || {
                loop {
                    let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok((id, func, scale)) = next else { return };
                    serve(&*executor, &plans, lane, (id, func, scale), &out);
                }
            })
        })
        .collect();
    for l in lines {
        let Ok(l) = l else { break };
        match serde_json::from_str::<Request>(&l) {
            Ok(Request::Run { id, func, scale }) if lanes_n == 1 => {
                serve(&*executor, &plans, 0, (id, func, scale), &out)
            }
            Ok(Request::Run { id, func, scale }) => {
                if tx.send((id, func, scale)).is_err() {
                    break;
                }
            }
            Ok(Request::Quit) => break,
            Err(e) => {
                send(
                    &out,
                    &Reply::Failed {
                        id: u64::MAX,
                        error: format!("bad request line: {e}"),
                    },
                );
                return 2;
            }
        }
    }
    drop(tx);
    for l in lanes {
        let _ = l.join();
    }
    0
}
