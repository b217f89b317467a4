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
    /// Generated with a trace's statistics (see [`WorkloadSpec::Synthetic`]).
    Synthetic {
        rng: Xoshiro256PlusPlus,
        spec: Synthetic,
        next: Nanos,
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
            WorkloadSpec::Synthetic {
                rate_per_s,
                diurnal_amplitude,
                prompt_median,
                prompt_p99,
                output_median,
                output_p99,
                max_tokens,
            } => {
                let spec = Synthetic {
                    rate: *rate_per_s,
                    amplitude: *diurnal_amplitude,
                    prompt: LogNormal::from_median_p99(*prompt_median, *prompt_p99),
                    output: LogNormal::from_median_p99(*output_median, *output_p99),
                    max_tokens: *max_tokens,
                };
                let mut rng = gpushare_traces::rng::stream(seed, "serving-arrivals", index);
                let next = spec.next_arrival(&mut rng, 0);
                Requests::Synthetic { rng, spec, next }
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
            Requests::Poisson { next, .. } | Requests::Synthetic { next, .. } => Some(*next),
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
            Requests::Synthetic { rng, spec, next } => {
                let r = LlmRequest {
                    time: *next,
                    context: spec.tokens(rng, spec.prompt),
                    generated: spec.tokens(rng, spec.output),
                };
                *next = spec.next_arrival(rng, *next);
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

/// A log-normal distribution of token counts.
#[derive(Clone, Copy, Debug)]
pub struct LogNormal {
    mu: f64,
    sigma: f64,
}

impl LogNormal {
    /// The log-normal with this median and 99th percentile (z₀.₉₉ = 2.326).
    pub fn from_median_p99(median: f64, p99: f64) -> LogNormal {
        LogNormal {
            mu: median.ln(),
            sigma: (p99 / median).ln().max(0.0) / 2.326_347_874,
        }
    }

    /// A draw from two uniforms (Box–Muller).
    fn draw(self, rng: &mut Xoshiro256PlusPlus) -> f64 {
        let (u1, u2): (f64, f64) = (rng.random(), rng.random());
        let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (self.mu + self.sigma * z).exp()
    }
}

/// Generated requests' statistics.
pub struct Synthetic {
    rate: f64,
    amplitude: f64,
    prompt: LogNormal,
    output: LogNormal,
    max_tokens: u64,
}

impl Synthetic {
    /// The arrival after `now`: a Poisson process at `rate · (1 + a·sin(2πt / 1 day))`, drawn by
    /// thinning one at the peak rate.
    fn next_arrival(&self, rng: &mut Xoshiro256PlusPlus, now: Nanos) -> Nanos {
        let peak = self.rate * (1.0 + self.amplitude.abs());
        let mut t = now;
        loop {
            t += exponential_ns(rng, peak);
            let day = (t % 86_400_000_000_000) as f64 / 86_400e9;
            let rate = self.rate * (1.0 + self.amplitude * (std::f64::consts::TAU * day).sin());
            let u: f64 = rng.random();
            if u * peak < rate {
                return t;
            }
        }
    }

    fn tokens(&self, rng: &mut Xoshiro256PlusPlus, d: LogNormal) -> u64 {
        (d.draw(rng).round() as u64).clamp(1, self.max_tokens)
    }
}
