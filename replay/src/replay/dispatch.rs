//! The replay's event loop: each arrival at its time, sent to a worker of its function with a
//! free lane (the least loaded) or queued in its function's FIFO (up to `[policy] max_queue`);
//! under a kernel server its host code first, as a timer; each reply recorded, a freed lane
//! given the oldest waiting request; until the horizon (and the drain), or an abort.

use super::prepare::Prepared;
use super::workers::{Msg, Workers, log_tail};
use crate::driver::ReplayError;
use crate::measured::Record;
use crate::plan::FunctionPlan;
use crate::protocol::{Done, Reply, Request, now_ns};
use crate::signals;
use gpushare_sim::Scenario;
use gpushare_sim::record::{Outcome, RejectReason};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::mpsc;
use std::time::Duration;

/// A live invocation.
pub(super) struct Inv {
    func: u32,
    arrival: u64,
    scale: f64,
    /// When it may take a worker (after its host code under kaas).
    ready_at: u64,
    host_after: u64,
    worker: Option<usize>,
    sent_at: u64,
}

/// What the loop leaves.
pub(super) struct Tally {
    pub records: Vec<Record>,
    /// The invocations that did not finish, by id.
    pub live: HashMap<u64, Inv>,
    /// How late arrivals were sent, and how long a request took to reach its worker, ns.
    pub lags: Vec<u64>,
    pub handoffs: Vec<u64>,
    pub replies: u64,
    /// Why the replay stopped early, if it did.
    pub aborted: Option<String>,
}

/// Why the loop stops before its end: an abort (what was recorded is still written out) or an
/// error (returned at once).
enum Halt {
    Abort(String),
    Fail(ReplayError),
}

impl From<ReplayError> for Halt {
    fn from(e: ReplayError) -> Self {
        Halt::Fail(e)
    }
}

/// The loop's state.
pub(super) struct Dispatch<'a> {
    s: &'a Scenario,
    plans: &'a [FunctionPlan],
    split: &'a [(u64, u64, FunctionPlan)],
    host_off_worker: bool,
    workers: &'a mut Workers,
    /// The replay's time 0, on the clock of [`now_ns`].
    origin: u64,
    limit: u64,
    next_id: u64,
    live: HashMap<u64, Inv>,
    queues: Vec<VecDeque<u64>>,
    in_host: Vec<u64>,
    timers: BinaryHeap<Reverse<(u64, u64)>>,
    records: Vec<Record>,
    lags: Vec<u64>,
    handoffs: Vec<u64>,
    replies: u64,
}

fn max_queue(s: &Scenario) -> u64 {
    s.policy
        .params
        .get("max_queue")
        .and_then(|v| v.as_integer())
        .map_or(u64::MAX, |v| v.max(0) as u64)
}

impl<'a> Dispatch<'a> {
    pub(super) fn new(p: &'a Prepared, workers: &'a mut Workers, origin: u64) -> Self {
        let s = &p.scenario;
        Dispatch {
            s,
            plans: &p.plans,
            split: &p.split,
            host_off_worker: p.host_off_worker,
            workers,
            origin,
            limit: max_queue(s),
            next_id: 0,
            live: HashMap::new(),
            queues: vec![VecDeque::new(); s.functions.len()],
            in_host: vec![0; s.functions.len()],
            timers: BinaryHeap::new(),
            records: Vec::new(),
            lags: Vec::new(),
            handoffs: Vec::new(),
            replies: 0,
        }
    }

    /// Replays the scenario's workload with the replies from `rx`; a drain cut short after
    /// `drain_timeout` is noted in `notes`.
    pub(super) fn run(
        mut self,
        rx: &mpsc::Receiver<Msg>,
        drain_timeout: Duration,
        notes: &mut Vec<String>,
    ) -> Result<Tally, ReplayError> {
        let aborted = match self.run_until_stopped(rx, drain_timeout, notes) {
            Ok(()) => None,
            Err(Halt::Abort(why)) => Some(why),
            Err(Halt::Fail(e)) => return Err(e),
        };
        Ok(Tally {
            records: self.records,
            live: self.live,
            lags: self.lags,
            handoffs: self.handoffs,
            replies: self.replies,
            aborted,
        })
    }

    fn rel(&self, t: u64) -> u64 {
        t.saturating_sub(self.origin)
    }

    fn run_until_stopped(
        &mut self,
        rx: &mpsc::Receiver<Msg>,
        drain_timeout: Duration,
        notes: &mut Vec<String>,
    ) -> Result<(), Halt> {
        let horizon = self.s.horizon;
        let mut source = self.s.open_workload().map_err(|e| ReplayError::Input(e.to_string()))?;
        let mut pending = source.next_arrival().map_err(|e| ReplayError::Input(e.to_string()))?;
        loop {
            if signals::interrupted() {
                return Err(Halt::Abort("interrupted (a signal)".into()));
            }
            let now = self.rel(now_ns());
            // Arrivals due.
            while let Some(a) = pending.filter(|a| a.time <= now && a.time < horizon) {
                pending = source.next_arrival().map_err(|e| ReplayError::Input(e.to_string()))?;
                self.lags.push(now - a.time);
                let inv = self.invocation(a.time, a.func, a.duration);
                self.admit(inv)?;
            }
            if pending.is_some_and(|a| a.time >= horizon) {
                pending = None;
            }
            self.host_done(now)?;
            if pending.is_none() && self.ended(now, drain_timeout, notes) {
                return Ok(());
            }
            let Some(msg) = self.next_message(rx, now, pending.map(|a| a.time))? else {
                continue;
            };
            self.replies += 1;
            self.handle(msg)?;
        }
    }

    /// An invocation of `func` arriving at `arrival`, its times scaled to the trace's
    /// `duration` if it gives one.
    fn invocation(&self, arrival: u64, func: u32, duration: Option<u64>) -> Inv {
        let (host_before, host_after, _) = self.split[func as usize];
        let scale = match duration {
            Some(d) if self.plans[func as usize].planned_ns > 0 => {
                d as f64 / self.plans[func as usize].planned_ns as f64
            }
            _ => 1.0,
        };
        Inv {
            func,
            arrival,
            scale,
            ready_at: arrival + (host_before as f64 * scale).round() as u64,
            host_after: (host_after as f64 * scale).round() as u64,
            worker: None,
            sent_at: 0,
        }
    }

    /// Takes an arrival: to its host code (a kernel server), to a free worker, to its queue, or
    /// rejected when the queue is full.
    fn admit(&mut self, mut inv: Inv) -> Result<(), Halt> {
        let id = self.next_id;
        self.next_id += 1;
        let f = inv.func as usize;
        let waiting = self.queues[f].len() as u64 + self.in_host[f];
        if self.host_off_worker {
            if waiting >= self.limit {
                self.records.push(rejected(id, &inv));
                return Ok(());
            }
            self.in_host[f] += 1;
            self.timers.push(Reverse((inv.ready_at, id)));
        } else if let Some(w) = free_worker(self.workers, inv.func) {
            if let Err(e) = send(self.workers, w, id, &mut inv) {
                self.live.insert(id, inv);
                return Err(Halt::Abort(e));
            }
        } else if waiting >= self.limit {
            self.records.push(rejected(id, &inv));
            return Ok(());
        } else {
            self.queues[f].push_back(id);
        }
        self.live.insert(id, inv);
        Ok(())
    }

    /// Host code done (kaas): the request may take a worker.
    fn host_done(&mut self, now: u64) -> Result<(), Halt> {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let inv = self.live.get_mut(&id).expect("live");
            let f = inv.func as usize;
            self.in_host[f] -= 1;
            if let Some(w) = free_worker(self.workers, inv.func) {
                send(self.workers, w, id, inv).map_err(Halt::Abort)?;
            } else {
                self.queues[f].push_back(id);
            }
        }
        Ok(())
    }

    /// Whether the replay is over at `now`, all arrivals taken: past the horizon, drained if
    /// the scenario drains (or past the drain's timeout).
    fn ended(&self, now: u64, drain_timeout: Duration, notes: &mut Vec<String>) -> bool {
        let (s, horizon) = (self.s, self.s.horizon);
        let quiet = self.live.is_empty();
        if now >= horizon && (!s.drain || quiet) {
            return true;
        }
        if s.drain && now >= horizon + drain_timeout.as_nanos() as u64 {
            notes.push(format!(
                "drain stopped {} s after the horizon with {} invocations in flight",
                drain_timeout.as_secs(),
                self.live.len()
            ));
            return true;
        }
        false
    }

    /// Waits for a reply, the next arrival (at `pending`) or timer, or the horizon; `None` when
    /// none came.
    fn next_message(&self, rx: &mpsc::Receiver<Msg>, now: u64, pending: Option<u64>) -> Result<Option<Msg>, Halt> {
        let horizon = self.s.horizon;
        let mut wake = now + 100_000_000;
        if let Some(a) = pending {
            wake = wake.min(a);
        }
        if let Some(&Reverse((at, _))) = self.timers.peek() {
            wake = wake.min(at);
        }
        if pending.is_none() && now < horizon {
            wake = wake.min(horizon);
        }
        match rx.recv_timeout(Duration::from_nanos(wake.saturating_sub(now))) {
            Ok(m) => Ok(Some(m)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Halt::Abort("every worker exited".into())),
        }
    }

    /// What a worker said during the replay.
    fn handle(&mut self, msg: Msg) -> Result<(), Halt> {
        match msg {
            Msg::Reply(w, Reply::Done(d)) => self.done(w, &d),
            Msg::Reply(w, Reply::Failed { id, error }) => {
                if let Some(inv) = self.live.remove(&id) {
                    self.records.push(Record {
                        outcome: Outcome::Failed,
                        ..unfinished(id, &inv)
                    });
                }
                Err(Halt::Abort(format!(
                    "worker {w} failed: {error}{}",
                    log_tail(&self.workers.0[w].log)
                )))
            }
            Msg::Reply(w, other) => Err(Halt::Abort(format!("worker {w} sent {other:?} during the replay"))),
            Msg::Garbage(w, l) => Err(Halt::Abort(format!(
                "worker {w} wrote something not in the protocol: {l}"
            ))),
            Msg::Closed(w) => Err(Halt::Abort(format!(
                "worker {w} exited during the replay{}",
                log_tail(&self.workers.0[w].log)
            ))),
        }
    }

    /// Worker `w` finished an invocation: recorded, and its lane given to the oldest request
    /// waiting for its functions.
    fn done(&mut self, w: usize, d: &Done) -> Result<(), Halt> {
        let Some(inv) = self.live.remove(&d.id) else {
            return Err(Halt::Abort(format!(
                "worker {w} reported invocation {} it was not running",
                d.id
            )));
        };
        self.workers.0[w].outstanding -= 1;
        self.workers.0[w].completed += 1;
        self.handoffs.push(d.start_ns.saturating_sub(inv.sent_at));
        let rel = |t: u64| self.rel(t);
        let record = completed(d.id, &inv, d, w, self.workers.0[w].spec.gpu, &rel);
        self.records.push(record);
        // The freed lane takes the oldest request waiting for this worker's functions.
        while self.workers.0[w].outstanding < self.workers.0[w].spec.lanes.max(1) {
            let next = self.workers.0[w]
                .spec
                .functions
                .iter()
                .filter_map(|&f| self.queues[f as usize].front().map(|&id| (id, f)))
                .min();
            let Some((id, f)) = next else { break };
            self.queues[f as usize].pop_front();
            let inv = self.live.get_mut(&id).expect("queued invocations are live");
            send(self.workers, w, id, inv).map_err(Halt::Abort)?;
        }
        Ok(())
    }
}

/// Sends invocation `id` to worker `w`.
fn send(workers: &mut Workers, w: usize, id: u64, inv: &mut Inv) -> Result<(), String> {
    let req = Request::Run {
        id,
        func: inv.func,
        scale: inv.scale,
    };
    workers.send(w, &req)?;
    workers.0[w].outstanding += 1;
    inv.worker = Some(w);
    inv.sent_at = now_ns();
    Ok(())
}

/// A worker of `func` with a free lane, the least loaded.
fn free_worker(workers: &Workers, func: u32) -> Option<usize> {
    workers
        .0
        .iter()
        .enumerate()
        .filter(|(_, w)| w.spec.functions.contains(&func) && w.outstanding < w.spec.lanes.max(1))
        .min_by_key(|(i, w)| (w.outstanding, *i))
        .map(|(i, _)| i)
}

fn rejected(id: u64, inv: &Inv) -> Record {
    Record {
        outcome: Outcome::Rejected(RejectReason::QueueFull),
        ..unfinished(id, inv)
    }
}

pub(super) fn unfinished(id: u64, inv: &Inv) -> Record {
    Record {
        id,
        func: inv.func,
        arrival: inv.arrival,
        start: None,
        end: None,
        queue: None,
        exec: None,
        gpu: None,
        worker: None,
        gpu_busy: None,
        worker_busy: None,
        outcome: Outcome::Unfinished,
    }
}

fn completed(id: u64, inv: &Inv, d: &Done, w: usize, gpu: u32, rel: &dyn Fn(u64) -> u64) -> Record {
    let (start_w, end_w) = (rel(d.start_ns), rel(d.end_ns));
    let end = end_w + inv.host_after;
    let queue = start_w.saturating_sub(inv.ready_at);
    // Under kaas the host code before the worker is execution, not waiting: it ran at arrival.
    let start = if inv.ready_at > inv.arrival {
        inv.arrival
    } else {
        start_w
    };
    Record {
        id,
        func: inv.func,
        arrival: inv.arrival,
        start: Some(start),
        end: Some(end),
        queue: Some(queue),
        exec: Some(end.saturating_sub(inv.arrival + queue)),
        gpu: Some(gpu),
        worker: Some(w),
        gpu_busy: (d.gpu_ns > 0).then(|| {
            let e = rel(d.gpu_end_ns);
            (e.saturating_sub(d.gpu_ns), e)
        }),
        worker_busy: Some((start_w, end_w)),
        outcome: Outcome::Completed,
    }
}
