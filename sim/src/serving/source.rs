//! A deployment's requests: from an Azure LLM trace, Poisson arrivals, a burst at time 0, or a
//! closed loop of clients (each sends its next request when its last one ended).

use super::spec::WorkloadSpec;
use crate::time::{Nanos, secs_to_ns};
use gpushare_traces::TraceError;
use gpushare_traces::llm::{LlmCost, LlmRequest, LlmSource};
use gpushare_traces::rng::Xoshiro256PlusPlus;
use rand::RngExt;

/// Where requests come from.
pub enum Requests {
    Trace {
        source: Box<LlmSource>,
        next: Option<LlmRequest>,
        speedup: f64,
    },
    Poisson {
        rng: Xoshiro256PlusPlus,
        rate: f64,
        next: Nanos,
        prompt: u64,
        output: u64,
    },
    /// Burst and closed loop: `ready` requests may be sent at the current time, `left` in all.
    Clients {
        ready: u64,
        left: u64,
        closed: bool,
        prompt: u64,
        output: u64,
    },
}

impl Requests {
    /// Opens deployment number `index`'s requests (`base`: the scenario's folder).
    pub fn open(spec: &WorkloadSpec, base: &std::path::Path, seed: u64, index: u64) -> Result<Requests, TraceError> {
        Ok(match spec {
            WorkloadSpec::AzureLlm {
                path,
                skip_bad_rows,
                speedup,
            } => {
                // The duration cost model is not used here: the serving engine times iterations.
                let cost = LlmCost {
                    prefill_ns_per_token: 0.0,
                    decode_ns_per_token: 0.0,
                };
                let mut source = Box::new(LlmSource::open(&base.join(path), cost, *skip_bad_rows)?);
                let next = source.next_request()?;
                Requests::Trace {
                    source,
                    next,
                    speedup: *speedup,
                }
            }
            WorkloadSpec::Poisson {
                rate_per_s,
                prompt_tokens,
                output_tokens,
            } => {
                let mut rng = gpushare_traces::rng::stream(seed, "serving-arrivals", index);
                let next = exponential_ns(&mut rng, *rate_per_s);
                Requests::Poisson {
                    rng,
                    rate: *rate_per_s,
                    next,
                    prompt: *prompt_tokens,
                    output: *output_tokens,
                }
            }
            WorkloadSpec::Burst {
                requests,
                prompt_tokens,
                output_tokens,
            } => Requests::Clients {
                ready: *requests,
                left: *requests,
                closed: false,
                prompt: *prompt_tokens,
                output: *output_tokens,
            },
            WorkloadSpec::ClosedLoop {
                clients,
                requests,
                prompt_tokens,
                output_tokens,
            } => Requests::Clients {
                ready: (*clients).min(*requests),
                left: *requests,
                closed: true,
                prompt: *prompt_tokens,
                output: *output_tokens,
            },
        })
    }

    /// When the next request arrives (`None`: no more, or a closed loop's clients all wait).
    pub fn peek_time(&mut self) -> Result<Option<Nanos>, TraceError> {
        Ok(match self {
            Requests::Trace { next, speedup, .. } => next.map(|r| (r.time as f64 / *speedup).round() as Nanos),
            Requests::Poisson { next, .. } => Some(*next),
            Requests::Clients { ready, left, .. } => (*ready > 0 && *left > 0).then_some(0),
        })
    }

    /// Takes the next request (the one [`Requests::peek_time`] announced).
    pub fn take(&mut self) -> Result<LlmRequest, TraceError> {
        Ok(match self {
            Requests::Trace { source, next, .. } => {
                let r = next.take().expect("announced");
                *next = source.next_request()?;
                r
            }
            Requests::Poisson {
                rng,
                rate,
                next,
                prompt,
                output,
            } => {
                let r = LlmRequest {
                    time: *next,
                    context: *prompt,
                    generated: *output,
                };
                *next += exponential_ns(rng, *rate);
                r
            }
            Requests::Clients {
                ready,
                left,
                prompt,
                output,
                ..
            } => {
                *ready -= 1;
                *left -= 1;
                LlmRequest {
                    time: 0,
                    context: *prompt,
                    generated: *output,
                }
            }
        })
    }

    /// A request ended (served or refused): a closed loop's client sends again.
    pub fn ended(&mut self) {
        if let Requests::Clients {
            ready, closed: true, ..
        } = self
        {
            *ready += 1;
        }
    }
}

/// An exponential gap at `rate` per second, at least 1 ns.
fn exponential_ns(rng: &mut Xoshiro256PlusPlus, rate: f64) -> Nanos {
    let u: f64 = rng.random();
    secs_to_ns(-(1.0 - u).ln() / rate).max(1)
}
