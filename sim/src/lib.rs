//! The gpushare simulation engine.
//!
//! This crate owns simulated time and the event queue ([`events`]), the cluster, instance and
//! GPU state and its mechanics ([`world`]) with run plans for policies that move data or run host
//! code off the GPU ([`plan`]), the GPU execution and speed models ([`speed`]),
//! device specs ([`device`]), function profiles, their kernel graphs and the built-in catalog
//! ([`profile`], [`kernel_graph`], [`catalog`]), scenario files ([`scenario`]), the policy traits ([`policy`]), streaming
//! metrics and the run summary ([`metrics`], [`summary`]), per-invocation records ([`record`])
//! and the timeline of spans ([`timeline`]). Policies live in `gpushare-policies`, output files in `gpushare-reports`.
//!
//! ```text
//! Scenario ──► Simulation::new(scenario, policy, sink) ──► run() ──► Summary + records
//! ```

pub mod catalog;
pub mod contention;
pub mod device;
pub mod engine;
pub mod events;
pub mod fitted;
pub mod ids;
pub mod keepalive;
pub mod kernel_graph;
pub mod metrics;
pub mod plan;
pub mod policy;
pub mod profile;
pub mod record;
pub mod scenario;
pub mod serving;

pub mod summary;
pub mod time;
pub mod timeline;
pub mod usage_estimator;
pub mod world;

pub use engine::{RunOutput, SimError, Simulation};
pub use gpushare_traces::rng;
pub use ids::{FuncId, GpuId, InstId, InvId};
pub use scenario::{Scenario, ScenarioSource};
pub use summary::Summary;
