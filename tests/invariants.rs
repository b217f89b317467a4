//! Random scenarios, invariants always: a generator of valid scenarios — clusters of the
//! built-in GPUs, random profiles (copies, kernels in every optional form, host steps), Poisson
//! loads, keep-alives, and every policy with random parameters — each run twice and checked for:
//!
//! - conservation per function: arrivals = completed + rejected + failed + unfinished;
//! - GPU utilisation ≤ 1 and SM occupancy ≤ utilisation, on every GPU;
//! - GPU-seconds allocated ≤ GPUs × measured time, idle ≤ allocated;
//! - peak memory ≤ each GPU's capacity;
//! - no invocation faster than its own work alone on its GPU (end-to-end ≥ the profile's solo
//!   time on that device);
//! - throughput ≤ offered load (completions in the window ≤ arrivals);
//! - the same seed gives the same summary, byte for byte.
//!
//! On a failure, proptest shrinks the case and prints the smallest failing scenario file as
//! TOML (its `Debug`), ready to save and run with `gpushare run`. A model property suite: no
//! published number is involved. 500 cases, in about a minute on two cores.

mod common;

use gpushare_sim::record::{InvocationRecord, Outcome, RecordSink};
use gpushare_sim::{ScenarioSource, Simulation};
use proptest::prelude::*;
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A generated scenario: its TOML text, which `Debug` prints whole.
#[derive(Clone)]
struct Case {
    toml: String,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\n# --- scenario (save as case.toml; `gpushare run case.toml`) ---\n{}",
            self.toml
        )
    }
}

const GPUS: [&str; 6] = ["v100-16gb", "t4", "a100-40gb", "a100-80gb", "h100-80gb", "h200-141gb"];
const MIG_GPUS: [&str; 4] = ["a100-40gb", "a100-80gb", "h100-80gb", "h200-141gb"];

fn kernel() -> impl Strategy<Value = String> {
    (
        0.5f64..40.0,
        1u32..=100,
        0u32..=100,
        prop::option::of(1u32..2000),
        prop::option::of(prop_oneof![
            (32u32..=1024).prop_map(|t| format!("threads_per_block = {t}")),
            (5u32..=100).prop_map(|o| format!("occupancy_pct = {o}")),
        ]),
        prop::option::of(1u32..80),
    )
        .prop_map(|(ms, sm, dram, blocks, occ, l2)| {
            let mut k = format!("{{ kind = \"kernel\", solo_ms = {ms:.3}, sm_pct = {sm}, dram_pct = {dram}");
            // A grid must be able to hold its SM throughput on the reference (a V100, 80 SMs):
            // keep the pair consistent, as a profiler's figures are.
            if let Some(b) = blocks.filter(|b| f64::from(*b) / 80.0 * 100.0 >= f64::from(sm)) {
                k.push_str(&format!(", blocks = {b}"));
                if let Some(o) = occ {
                    k.push_str(&format!(", {o}"));
                }
            }
            if let Some(w) = l2 {
                k.push_str(&format!(", l2_mib = {w}"));
            }
            k.push_str(" }");
            k
        })
}

fn profile() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop_oneof![
                3 => kernel(),
                1 => (0.01f64..50.0).prop_map(|m| format!("{{ kind = \"h2d\", mib = {m:.3} }}")),
                1 => (0.01f64..50.0).prop_map(|m| format!("{{ kind = \"d2h\", mib = {m:.3} }}")),
                1 => (0.1f64..20.0).prop_map(|m| format!("{{ kind = \"host\", ms = {m:.3} }}")),
            ],
            1..5,
        ),
        0u32..2000,
        1u32..1500,
        0.0f64..3.0,
        0.0f64..20.0,
    )
        .prop_map(|(phases, weights, act, setup, host)| {
            format!(
                "reference_gpu = \"v100-16gb\"\nweights_mib = {weights}\nactivation_mib = {act}\ncontainer_start_s = {setup:.3}\n\
                 framework_init_s = 0.5\nhost_pre_ms = {host:.3}\nphases = [{}]\n",
                phases.join(", ")
            )
        })
}

fn pool_params() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("inf".to_string()), (0.0f64..120.0).prop_map(|k| format!("{k:.2}"))],
        prop::option::of(1u32..5),
        prop::option::of(1u64..50),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(keep, max_inst, max_queue, evict, prewarm, hybrid)| {
            let mut p = format!("keep_alive_s = {keep}\nevict_idle = {evict}\nprewarm = {prewarm}\n");
            if let Some(m) = max_inst {
                p.push_str(&format!("max_instances = {m}\n"));
            }
            if let Some(q) = max_queue {
                p.push_str(&format!("max_queue = {q}\n"));
            }
            if hybrid {
                p.push_str("keep_alive_policy = \"hybrid\"\n");
            }
            p
        })
}

/// A policy table for `n` functions named f0…, on a cluster of `gpu`.
fn policy(gpu: &'static str) -> BoxedStrategy<String> {
    let mig = MIG_GPUS.contains(&gpu);
    let mut choices: Vec<BoxedStrategy<String>> = vec![
        (pool_params(), any::<bool>())
            .prop_map(|(p, kill)| format!("name = \"exclusive\"\nkill_largest = {kill}\n{p}"))
            .boxed(),
        (pool_params(), any::<bool>(), 1.0f64..5.0, 0.0f64..500.0)
            .prop_map(|(p, exact, slice, switch)| {
                let mode = if exact { "exact" } else { "fluid" };
                format!("name = \"time-sharing\"\nmode = \"{mode}\"\nslice_ms = {slice:.2}\nswitch_us = {switch:.1}\n{p}")
            })
            .boxed(),
        (pool_params(), 5.0f64..=100.0, prop_oneof![Just(1.0), 1.0f64..4.0, Just(f64::INFINITY)], any::<bool>())
            .prop_map(|(p, cap, sum, pack)| {
                let place = if pack { "best-fit" } else { "least-loaded" };
                let sum = if sum.is_finite() { format!("{sum:.2}") } else { "inf".into() };
                format!("name = \"mps\"\nactive_thread_percentage = {cap:.1}\nmax_sm_sum = {sum}\nplacement = \"{place}\"\n{p}")
            })
            .boxed(),
        pool_params().prop_map(|p| format!("name = \"fractional\"\n{p}")).boxed(),
        (pool_params(), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(p, a, b, c)| {
                format!("name = \"sage\"\nparallel_setup = {a}\nshare_weights = {b}\nshare_context = {c}\n{p}")
            })
            .boxed(),
        (any::<bool>(), any::<bool>(), 1u64..30)
            .prop_map(|(affinity, cache, q)| {
                format!("name = \"kaas\"\naffinity = {affinity}\nbuffer_cache = {cache}\nmax_queue = {q}\n")
            })
            .boxed(),
        (1u32..3, 1u64..30).prop_map(|(i, q)| format!("name = \"static\"\ninstances = {i}\nmax_queue = {q}\n")).boxed(),
        (10.0f64..=100.0, 1u32..=20, 0.0f64..60.0)
            .prop_map(|(usage, target, keep)| {
                format!("name = \"knix-vcuda\"\ngpu_usage = {usage:.1}\nconcurrency_target = {target}\nkeep_alive_s = {keep:.1}\n")
            })
            .boxed(),
        (pool_params(), any::<bool>())
            .prop_map(|(p, share)| format!("name = \"fast-gshare\"\nmodel_sharing = {share}\n{p}"))
            .boxed(),
    ];
    if mig {
        choices.push(
            (pool_params(), 0.0f64..5.0)
                .prop_map(|(p, r)| format!("name = \"mig\"\nreconfigure_s = {r:.2}\n{p}"))
                .boxed(),
        );
    }
    prop::strategy::Union::new(choices).boxed()
}

fn case() -> impl Strategy<Value = Case> {
    (0usize..GPUS.len(), 1u32..=2, 1u32..=3, 0u64..1000)
        .prop_flat_map(|(g, nodes, per_node, seed)| {
            let gpu = GPUS[g];
            (
                Just((gpu, nodes, per_node, seed)),
                prop::collection::vec((profile(), 0.05f64..30.0), 1..5),
                policy(gpu),
                30.0f64..120.0,
            )
        })
        .prop_map(|((gpu, nodes, per_node, seed), functions, policy, horizon)| {
            let mut t = format!(
                "[simulation]\nseed = {seed}\nhorizon_s = {horizon:.1}\nwarmup_s = {:.1}\n\n[cluster]\nnodes = {nodes}\ngpus_per_node = {per_node}\ngpu = \"{gpu}\"\n\n",
                horizon / 5.0
            );
            for (i, (p, _)) in functions.iter().enumerate() {
                t.push_str(&format!("[profiles.p{i}]\n{p}\n"));
            }
            for (i, (_, rate)) in functions.iter().enumerate() {
                t.push_str(&format!("[[functions]]\nname = \"f{i}\"\nprofile = \"p{i}\"\nrate_per_s = {rate:.3}\n\n"));
            }
            t.push_str(&format!("[workload]\nkind = \"poisson\"\n\n[policy]\n{policy}"));
            Case { toml: t }
        })
}

/// (function, end-to-end ns, GPU) of one completion.
type Completion = (String, u64, Option<u32>);

/// Every completion.
struct Completions(Rc<RefCell<Vec<Completion>>>);

impl RecordSink for Completions {
    fn record(&mut self, r: &InvocationRecord<'_>) -> std::io::Result<()> {
        if r.outcome == Outcome::Completed {
            let e2e = r.end.unwrap() - r.arrival;
            self.0.borrow_mut().push((r.function.to_string(), e2e, r.gpu));
        }
        Ok(())
    }
}

/// Cases refused with a located input error (not run), and cases run.
static REFUSED: AtomicUsize = AtomicUsize::new(0);
static RAN: AtomicUsize = AtomicUsize::new(0);

fn check(case: &Case) -> Result<(), TestCaseError> {
    let src = ScenarioSource::from_text(std::path::Path::new("case.toml"), &case.toml);
    let sc = src
        .parse()
        .map_err(|e| TestCaseError::fail(format!("the generator made an invalid scenario: {e}")))?;
    let run = || {
        let policy = gpushare_policies::build(&sc).map_err(|e| format!("{}", src.locate(e)))?;
        let recs = Rc::new(RefCell::new(Vec::new()));
        let out = Simulation::new(&sc, policy, Box::new(Completions(recs.clone())))
            .and_then(|s| s.run())
            .map_err(|e| e.to_string())?;
        let recs = recs.borrow().clone();
        Ok::<_, String>((out.summary, recs))
    };
    let (s, recs) = match run() {
        Ok(r) => r,
        // A function that fits no slice, too many functions for a kernel server's memory…:
        // refused with a located error, as bad input must be. Not an invariant breach.
        Err(e) if e.contains("case.toml") => {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        Err(e) => return Err(TestCaseError::fail(format!("the run failed: {e}"))),
    };
    let c = &s.counts;
    prop_assert_eq!(c.arrivals, c.completed + c.rejected + c.failed + c.unfinished);
    for f in &s.functions {
        prop_assert_eq!(
            f.arrivals,
            f.completed + f.rejected + f.failed + f.unfinished,
            "function {}",
            f.name
        );
    }
    let window = s.end_s - s.warmup_s;
    for g in &s.gpus {
        prop_assert!(
            g.utilisation <= 1.0 + 1e-9,
            "GPU {} utilisation {}",
            g.id,
            g.utilisation
        );
        prop_assert!(
            g.sm_occupancy <= g.utilisation + 1e-9,
            "GPU {}: occupancy {} > utilisation {}",
            g.id,
            g.sm_occupancy,
            g.utilisation
        );
        let capacity = sc.devices.iter().find(|d| d.name == g.device).unwrap().memory_mib;
        prop_assert!(
            g.peak_memory_mib <= capacity + 1e-6,
            "GPU {}: {} MiB of {capacity}",
            g.id,
            g.peak_memory_mib
        );
    }
    let gpus = s.gpus.len() as f64;
    prop_assert!(
        s.gpu.gpu_seconds_allocated <= gpus * window * (1.0 + 1e-9) + 1e-9,
        "{} GPU-s in {window} s on {gpus} GPUs",
        s.gpu.gpu_seconds_allocated
    );
    prop_assert!(s.gpu.gpu_seconds_idle <= s.gpu.gpu_seconds_allocated + 1e-9);
    prop_assert!(
        s.throughput_per_s * window <= c.arrivals as f64 + 1e-6,
        "throughput {} over {window} s, {} arrivals",
        s.throughput_per_s,
        c.arrivals
    );
    for (func, e2e, gpu) in &recs {
        let f = sc.functions.iter().find(|f| &f.name == func).unwrap();
        let Some(gpu) = gpu else { continue };
        let dev = &sc.devices[sc.gpus[*gpu as usize].1];
        let solo = f.profile.compile(&f.reference, dev, sc.storage_gbps).solo_exec;
        prop_assert!(
            *e2e + 1 >= solo,
            "{func} on GPU {gpu}: {e2e} ns end to end, {solo} ns of work alone"
        );
    }
    RAN.fetch_add(1, Ordering::Relaxed);
    let (again, _) = run().map_err(TestCaseError::fail)?;
    prop_assert_eq!(
        serde_json::to_string(&s).unwrap(),
        serde_json::to_string(&again).unwrap(),
        "same seed, other summary"
    );
    Ok(())
}

#[test]
fn random_scenarios_keep_every_invariant() {
    let config = ProptestConfig {
        cases: 500,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    if let Err(e) = runner.run(&case(), |c| check(&c)) {
        panic!("{e}");
    }
    let (ran, refused) = (RAN.load(Ordering::Relaxed), REFUSED.load(Ordering::Relaxed));
    println!("{ran} scenarios run, {refused} refused as bad input");
    // The generator makes valid scenarios: nearly all must run.
    assert!(
        ran >= 450,
        "only {ran} of 500 generated scenarios ran ({refused} refused)"
    );
}
