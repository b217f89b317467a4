//! `kaas`: Kernel-as-a-Service — Pemberton, Zabreyko, Ding, Katz, Gonzalez, "Kernel-as-a-Service:
//! A Serverless Interface to GPUs", arXiv 2212.08146 (PAPERS.md §2); the artifact's pool
//! (`pool.py`, `CfsQueue`) and worker (`_server.py`, `bufferCache`, `kernelCache`) are the
//! reference for what the paper leaves open.
//!
//! **Mechanism.** A function is a kernel graph: its kernels (the profile's kernel phases, in
//! order) and named buffers (`kernel_graph` in the profile, or the graph derived from it; see
//! `gpushare_sim::kernel_graph`). One worker per GPU, started when the run begins, owns one
//! CUDA context for its whole life and serves every function, one request at a time (time
//! sharing at kernel-graph granularity). A request's host code runs first as an ordinary CPU
//! function, holding no GPU; the request then waits in the pool's shared CFS queue
//! (`cfs`: virtual time += the request's GPU time, off-affinity standing + `penalty` ×
//! that time, idle groups reset to the base, ties to the least recently served). A free worker
//! takes the group with the lowest standing on its GPU; when several are free, the request goes
//! where its standing is lowest (an idle worker of its affinity before any other). The worker
//! then makes room for the request's buffers in one batch of evictions from its LRU buffer
//! cache (`cache`: capacity = device memory − `reserve_mib` − the context; buffers used more
//! than twice evicted last; dirty buffers written back), loads what is missing over the host
//! link, loads the function's kernel module if it has not yet (`module_load_ms`), runs the
//! dispatch path and the kernels, and writes the outputs back; the request's trailing host code
//! runs on the CPU while the worker takes the next request. Affinity (`affinity`): each group
//! is packed onto one GPU by its buffers' fraction of the cache, rounded up to eighths.
//!
//! **What the model keeps.** One context per GPU created once (no per-function cold start);
//! the module cache; the buffer cache with its two LRU classes, batch eviction, write-back of
//! dirty constant outputs and loads over the shared host link; CFS with the artifact's base
//! reset, affinity penalty and LRU tie-break; host code off the GPU.
//!
//! **Simplifications.** Client groups are functions. A request's GPU time for CFS is its
//! expected time on the worker's device with a warm cache (kernels, dispatch, its own per-request
//! copies), charged when it starts, as the artifact charges a fixed weight per request. Ephemeral
//! buffers are freed when their request ends (the artifact leaves them in its LRU until
//! evicted, first in line). Host code has unlimited CPUs and no cold start. Buffers are not
//! shared between functions (the artifact keys them by client). Each worker reports what its
//! cache did in `policy_report`.
//!
//! **Parameters** (`[policy]`): `worker_start_s = 0.5` (the worker's process start before its
//! context, the catalog's container start; the device's `context_create_s` is added),
//! `reserve_mib = 300` (the artifact's margin: cache capacity = memory − 300 MiB − context),
//! `module_load_ms = 5` (one module load per function per worker; *assumed*, not published),
//! `off_affinity_penalty = 10` (the artifact's `10 * weight`), `affinity = true` and
//! `buffer_cache = true` (switch either off to see what it contributes; without the cache every
//! buffer is loaded and freed per request), `max_queue` (requests of a function waiting or in
//! host code; beyond it `rejected:queue_full`).

mod affinity;
mod cache;
mod cfs;

use cache::{Buffer, BufferCache};
use cfs::Cfs;
use gpushare_sim::device::MIB;
use gpushare_sim::kernel_graph::BufferRole;
use gpushare_sim::policy::{Ctx, ExtraWork, InstanceSpec, Partition, Policy, RunPlan};
use gpushare_sim::profile::{PhaseKind, Step, copy_ns};
use gpushare_sim::record::RejectReason;
use gpushare_sim::scenario::{ConfigError, PolicySpec};
use gpushare_sim::time::{Nanos, ms_to_ns, secs_to_ns};
use gpushare_sim::{FuncId, GpuId, InstId, InvId, Scenario};

use crate::pool::param_path;

crate::params! {
    /// `kaas`'s parameters (KaaS's artifact values).
    pub(crate) struct KaasParams {
        /// Starting a GPU's worker (process and context, once), s.
        worker_start_s: f64 = 0.5,
        /// Memory reserved on each GPU besides the buffer cache, MiB.
        reserve_mib: f64 = 300.0,
        /// Loading a kernel module the first time a worker runs it, ms.
        module_load_ms: f64 = 5.0,
        /// CFS: a client served off its affinity GPU pays this many times its GPU time in virtual time.
        off_affinity_penalty: f64 = 10.0,
        /// Clients prefer the GPUs their affinity packs them onto.
        affinity: bool = true,
        /// An LRU buffer cache per GPU keeps constant buffers between requests.
        buffer_cache: bool = true,
        /// Requests queued per client; beyond it they are rejected (`queue_full`). Unset: unlimited.
        max_queue: Option<u64> = None,
    }
}

/// A function as the pool sees it.
struct Func {
    bufs: Vec<Buffer>,
    /// Global index of its first buffer.
    first: u32,
    bytes: u64,
    dispatch: Nanos,
    /// Per-request copies with a warm cache (its ephemeral inputs and outputs), bytes.
    io_bytes: u64,
    /// Its affine GPU.
    affine: usize,
}

/// One worker: a process with one context on one GPU.
struct Worker {
    gpu: GpuId,
    inst: Option<InstId>,
    ready: bool,
    /// The function it runs now and the ephemeral bytes to free when it ends.
    busy: Option<(u32, u64)>,
    modules: Vec<bool>,
    cache: BufferCache,
    capacity: u64,
    served: u64,
    off_affinity: u64,
    module_loads: u64,
}

/// The KaaS policy.
pub struct Kaas {
    funcs: Vec<Func>,
    workers: Vec<Worker>,
    /// Worker index by instance slot.
    worker_of: Vec<usize>,
    cfs: Cfs,
    /// Requests of each function in their host code (for `max_queue`).
    in_host: Vec<u64>,
    /// Expected GPU time per (function, device type), ns; set when the run starts.
    weights: Vec<u64>,
    devices: usize,
    worker_start: Nanos,
    module_load: Nanos,
    penalty: f64,
    use_affinity: bool,
    use_cache: bool,
    max_queue: u64,
}

impl Kaas {
    /// Builds it from `[policy]`.
    pub fn build(spec: &PolicySpec, scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let p: KaasParams = spec.params()?;
        let nonneg = |v: f64, field: &str| {
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                Err(ConfigError::at(
                    param_path(field),
                    format!("must be a non-negative number, got {v}"),
                ))
            }
        };
        nonneg(p.worker_start_s, "worker_start_s")?;
        nonneg(p.reserve_mib, "reserve_mib")?;
        nonneg(p.module_load_ms, "module_load_ms")?;
        nonneg(p.off_affinity_penalty, "off_affinity_penalty")?;
        if p.max_queue == Some(0) {
            return Err(ConfigError::at(
                param_path("max_queue"),
                "must be at least 1 (omit it for no limit)",
            ));
        }
        let reserve = (p.reserve_mib * MIB as f64).round() as u64;
        let mut capacities = Vec::with_capacity(scenario.gpus.len());
        for &(_, d) in &scenario.gpus {
            let dev = &scenario.devices[d];
            let held = reserve + dev.context_bytes();
            if held >= dev.memory_bytes() {
                return Err(ConfigError::at(
                    param_path("reserve_mib"),
                    format!(
                        "leaves no room for buffers on {} ({:.0} MiB of memory, {:.0} MiB of context)",
                        dev.name,
                        dev.memory_bytes() as f64 / MIB as f64,
                        dev.context_bytes() as f64 / MIB as f64
                    ),
                ));
            }
            capacities.push(dev.memory_bytes() - held);
        }
        let mut funcs = Vec::with_capacity(scenario.functions.len());
        let mut first = 0u32;
        for f in &scenario.functions {
            let graph = f.profile.graph();
            let bufs: Vec<Buffer> = graph
                .buffers
                .iter()
                .map(|b| Buffer {
                    bytes: (b.mib * MIB as f64).round() as u64,
                    role: b.role,
                    constant: b.constant,
                })
                .collect();
            let io_bytes = bufs
                .iter()
                .filter(|b| !b.constant && b.role != BufferRole::Temporary)
                .map(|b| b.bytes)
                .sum();
            funcs.push(Func {
                first,
                bytes: bufs.iter().map(|b| b.bytes).sum(),
                bufs,
                dispatch: ms_to_ns(graph.dispatch_ms),
                io_bytes,
                affine: 0,
            });
            first += graph.buffers.len() as u32;
        }
        let group_bytes: Vec<u64> = funcs.iter().map(|f| f.bytes).collect();
        for (f, gpu) in funcs.iter_mut().zip(affinity::assign(&group_bytes, &capacities)) {
            f.affine = gpu;
        }
        let workers = capacities
            .iter()
            .enumerate()
            .map(|(g, &capacity)| Worker {
                gpu: GpuId(g as u32),
                inst: None,
                ready: false,
                busy: None,
                modules: vec![false; funcs.len()],
                cache: BufferCache::new(capacity, first as usize),
                capacity,
                served: 0,
                off_affinity: 0,
                module_loads: 0,
            })
            .collect();
        Ok(Box::new(Kaas {
            cfs: Cfs::new(funcs.len()),
            in_host: vec![0; funcs.len()],
            weights: Vec::new(),
            devices: scenario.devices.len(),
            funcs,
            workers,
            worker_of: Vec::new(),
            worker_start: secs_to_ns(p.worker_start_s),
            module_load: ms_to_ns(p.module_load_ms),
            penalty: p.off_affinity_penalty,
            use_affinity: p.affinity,
            use_cache: p.buffer_cache,
            max_queue: p.max_queue.unwrap_or(u64::MAX),
        }))
    }

    fn weight(&self, func: u32, device: usize) -> u64 {
        self.weights[func as usize * self.devices + device]
    }

    /// The worker time of one warm request of each function on each device type.
    fn compute_weights(&mut self, ctx: &Ctx<'_>) {
        self.weights = vec![0; self.funcs.len() * self.devices];
        for w in &self.workers {
            let d = ctx.gpus()[w.gpu.ix()].device;
            if self.weights[d..].iter().step_by(self.devices).any(|&x| x > 0) {
                continue;
            }
            let link = ctx.device(w.gpu).host_link_gbps;
            for (f, func) in self.funcs.iter().enumerate() {
                let c = ctx.profile(FuncId(f as u32), w.gpu);
                let inner: Nanos = c
                    .kernel_span()
                    .map(|(lo, hi)| {
                        c.steps[lo..hi]
                            .iter()
                            .map(|s| match s {
                                Step::Host(ns) => *ns,
                                Step::Gpu(p) if p.kind == PhaseKind::Kernel => p.work,
                                Step::Gpu(_) => 0,
                            })
                            .sum()
                    })
                    .unwrap_or(0);
                // At least 1 ns, so that every run advances virtual time.
                self.weights[f * self.devices + d] = (inner + func.dispatch + copy_ns(func.io_bytes, link)).max(1);
            }
        }
    }

    /// Starts queued requests on free workers while both exist.
    fn dispatch(&mut self, ctx: &mut Ctx<'_>) {
        while !self.cfs.is_empty() {
            let mut best = None;
            for (w, wk) in self.workers.iter().enumerate() {
                if !wk.ready || wk.busy.is_some() {
                    continue;
                }
                let (g, d) = (wk.gpu.ix(), ctx.gpus()[wk.gpu.ix()].device);
                let s = self.cfs.best(
                    |f| self.funcs[f as usize].bytes <= wk.capacity,
                    |f| {
                        if !self.use_affinity || self.funcs[f as usize].affine == g {
                            0
                        } else {
                            (self.penalty * self.weight(f, d) as f64).round() as u64
                        }
                    },
                );
                if let Some(s) = s {
                    if best.is_none_or(|(b, _)| s < b) {
                        best = Some((s, w));
                    }
                }
            }
            let Some((s, w)) = best else { return };
            let d = ctx.gpus()[self.workers[w].gpu.ix()].device;
            let inv = self.cfs.pop(s.group, self.weight(s.group, d));
            self.start(ctx, w, s.group, inv);
        }
    }

    /// Runs request `inv` of function `f` on worker `w`.
    fn start(&mut self, ctx: &mut Ctx<'_>, w: usize, f: u32, inv: InvId) {
        let func = &self.funcs[f as usize];
        let wk = &mut self.workers[w];
        let Some(p) = wk.cache.prepare(func.first, &func.bufs, self.use_cache) else {
            ctx.error(format!(
                "kaas: function {} does not fit worker {w}'s cache, which was checked before",
                ctx.function_name(FuncId(f))
            ));
            return;
        };
        ctx.release(wk.gpu, p.evicted);
        if ctx.reserve(wk.gpu, p.allocated).is_err() {
            ctx.error(format!(
                "kaas: GPU {} refused {} bytes of buffers within the cache's capacity",
                wk.gpu.0, p.allocated
            ));
            return;
        }
        let mut host = func.dispatch;
        if !std::mem::replace(&mut wk.modules[f as usize], true) {
            host += self.module_load;
            wk.module_loads += 1;
        }
        if self.use_affinity && func.affine != wk.gpu.ix() {
            wk.off_affinity += 1;
        }
        wk.served += 1;
        wk.busy = Some((f, p.ephemeral));
        let plan = RunPlan {
            gpu_part_only: true,
            before: ExtraWork {
                d2h_bytes: p.written_back,
                h2d_bytes: p.load,
                host,
            },
            after: ExtraWork {
                d2h_bytes: p.store,
                ..ExtraWork::default()
            },
        };
        let inst = wk.inst.expect("a ready worker has an instance");
        ctx.run_plan(inv, inst, plan);
    }

    fn worker(&self, inst: InstId) -> usize {
        self.worker_of[inst.ix()]
    }
}

impl Policy for Kaas {
    fn name(&self) -> &str {
        "kaas"
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        self.compute_weights(ctx);
        for w in 0..self.workers.len() {
            let gpu = self.workers[w].gpu;
            let dev = ctx.device(gpu);
            let spec = InstanceSpec {
                memory: dev.context_bytes(),
                setup: self.worker_start + secs_to_ns(dev.context_create_s),
                sm_cap: 1.0,
                time_quota: 1.0,
                gpu_fraction: 1.0,
                partition: Partition::WHOLE,
            };
            match ctx.start_worker(gpu, spec) {
                Ok(inst) => {
                    if self.worker_of.len() <= inst.ix() {
                        self.worker_of.resize(inst.ix() + 1, usize::MAX);
                    }
                    self.worker_of[inst.ix()] = w;
                    self.workers[w].inst = Some(inst);
                }
                Err(_) => {
                    ctx.error(format!("kaas: GPU {} has no room for a worker's context", gpu.0));
                    return;
                }
            }
        }
    }

    fn on_arrival(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        let f = ctx.invocation(inv).func;
        let func = &self.funcs[f.ix()];
        if !self.workers.iter().any(|w| func.bytes <= w.capacity) {
            ctx.reject(inv, RejectReason::NoFit);
            return;
        }
        if self.cfs.queued(f.0) as u64 + self.in_host[f.ix()] >= self.max_queue {
            ctx.reject(inv, RejectReason::QueueFull);
            return;
        }
        self.in_host[f.ix()] += 1;
        ctx.run_host_first(inv);
    }

    fn on_host_done(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        let f = ctx.invocation(inv).func;
        self.in_host[f.ix()] -= 1;
        self.cfs.push(f.0, inv);
        self.dispatch(ctx);
    }

    fn on_instance_ready(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        let w = self.worker(inst);
        self.workers[w].ready = true;
        self.dispatch(ctx);
    }

    fn on_complete(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        let w = self.worker(inst);
        if let Some((_, ephemeral)) = self.workers[w].busy.take() {
            ctx.release(self.workers[w].gpu, ephemeral);
        }
        self.dispatch(ctx);
    }

    fn on_idle_expired(&mut self, _ctx: &mut Ctx<'_>, _inst: InstId) {
        // Workers live for the whole run; no keep-alive is ever set.
    }

    fn report(&self) -> Vec<String> {
        let mib = |b: u64| b as f64 / MIB as f64;
        let mut lines = vec![format!(
            "kaas: {} workers (one per GPU); buffer cache {} per GPU; affinity {}, buffer cache {}",
            self.workers.len(),
            self.workers
                .iter()
                .map(|w| format!("{:.0} MiB", mib(w.capacity)))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(" / "),
            if self.use_affinity { "on" } else { "off" },
            if self.use_cache { "on" } else { "off" },
        )];
        for w in &self.workers {
            let s = &w.cache.stats;
            let affine = self.funcs.iter().filter(|f| f.affine == w.gpu.ix()).count();
            lines.push(format!(
                "gpu {}: {} affine functions; {} requests ({} off affinity); module loads {}; \
                 cache hits {} misses {} evictions {}; loaded {:.1} MiB, written back {:.1} MiB; holds {:.1} MiB at the end",
                w.gpu.0,
                affine,
                w.served,
                w.off_affinity,
                w.module_loads,
                s.hits,
                s.misses,
                s.evictions,
                mib(s.loaded),
                mib(s.written_back),
                mib(w.cache.used())
            ));
        }
        lines
    }
}
