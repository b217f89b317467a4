//! A synthetic trace calibrated to the published Azure Functions 2019 statistics, written as real
//! 2019-format files (`invocations_per_function_md.anon.dNN.csv`,
//! `function_durations_percentiles.anon.dNN.csv`, `app_memory_percentiles.anon.dNN.csv`), so
//! the one reader serves real and generated traces alike.
//!
//! Defaults and their sources (Shahrad et al., "Serverless in the Wild", ATC '20, as summarised in
//! `shared/traces/README.md`); every one can be overridden:
//! - Trigger mix by functions: http 55 %, queue 15.2 %, timer 15.6 %, orchestration 6.9 %,
//!   storage 2.8 %, event 2.2 %, others 2.2 % (published).
//! - Daily invocations per function: log-normal with median 10 (published) and σ = 3.54, derived
//!   so that the most-invoked 18.6 % carry 99.6 % of invocations (published for apps: for a
//!   log-normal, the top fraction p carries 1 − Φ(z₁₋ₚ − σ), which gives σ = 0.893 + 2.652).
//! - Inter-arrival CV: timer functions are periodic, CV ≈ 0 (published: ~20 % of apps); every
//!   other function follows its app's CV, log-normal with median 1 and σ = 1.2 (*assumed*: with
//!   timers at ~20 % this gives the published "40 % of apps above 1", and a tail beyond 10 of
//!   about 3 %).
//! - Average duration per function: log-normal μ = −0.38, σ = 2.36 s (published); within a
//!   function, 30-second averages spread log-normally with σ = 0.5 around it (*assumed*).
//! - Allocated memory per app: Burr XII with c = 11.652, k = 0.221, λ = 107.083 MB (published).
//! - Diurnal cycle: rate × (1 + 0.5 cos(2π (t − 14 h) / 24 h)): half the load constant, peak at
//!   14:00 (the published cycle "on a ~50 % constant base"; the peak hour is *assumed*).
//!   Timers do not follow it.
//! - Apps per owner and functions per app: geometric with means 1.5 and 2 (*assumed*).
//!
//! Arrivals of a function are a renewal process with gamma-distributed gaps of the app's CV,
//! mapped through the diurnal intensity; a function averaging more than 20 invocations a minute
//! is drawn per minute directly (counts with variance mean × CV², the renewal process's limit:
//! gamma–Poisson when CV > 1, normal below) to keep generation fast.

use crate::azure2019::parse::{DURATIONS_HEADER, DurationStats, MEMORY_HEADER, MINUTES_PER_DAY, TRIGGERS};
use crate::rng;
use crate::write::{day_file, invocations_header, write_csv, write_durations_row};
use rand::RngExt;
use rand_distr::{Distribution, Gamma, Poisson, StandardNormal};
use serde::Deserialize;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

/// The most functions a generated trace may have: twenty times the Azure 2019 trace's daily
/// count, and about 60 MB of function tables (a billion would need 56 GB before writing a row).
pub const MAX_FUNCTIONS: usize = 1_000_000;

/// Generator parameters; `Default` gives the published values.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorConfig {
    pub functions: usize,
    pub days: u32,
    pub seed: u64,
    /// Weights of http, timer, event, queue, storage, orchestration, others.
    pub trigger_mix: [f64; 7],
    pub daily_median: f64,
    pub daily_sigma: f64,
    pub cv_median: f64,
    pub cv_sigma: f64,
    pub duration_mu: f64,
    pub duration_sigma: f64,
    pub duration_spread_sigma: f64,
    pub memory_burr_c: f64,
    pub memory_burr_k: f64,
    pub memory_burr_lambda: f64,
    /// Amplitude of the diurnal cycle (0 = none; 0.5 = half the load constant).
    pub diurnal_amplitude: f64,
    pub diurnal_peak_hour: f64,
    pub apps_per_owner_mean: f64,
    pub functions_per_app_mean: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            functions: 1000,
            days: 1,
            seed: 0,
            trigger_mix: [55.0, 15.6, 2.2, 15.2, 2.8, 6.9, 2.2],
            daily_median: 10.0,
            daily_sigma: 3.54,
            cv_median: 1.0,
            cv_sigma: 1.2,
            duration_mu: -0.38,
            duration_sigma: 2.36,
            duration_spread_sigma: 0.5,
            memory_burr_c: 11.652,
            memory_burr_k: 0.221,
            memory_burr_lambda: 107.083,
            diurnal_amplitude: 0.5,
            diurnal_peak_hour: 14.0,
            apps_per_owner_mean: 1.5,
            functions_per_app_mean: 2.0,
        }
    }
}

/// One generated function's parameters.
#[derive(Clone, Debug)]
struct GenFunction {
    owner: usize,
    app: usize,
    index: usize,
    trigger: usize,
    daily: f64,
    cv: f64,
    avg_duration_s: f64,
}

impl GenFunction {
    /// Its (HashOwner, HashApp, HashFunction) under `seed`.
    fn hashes(&self, seed: u64) -> [String; 3] {
        [
            hash(seed, "owner", self.owner),
            hash(seed, "app", self.app),
            hash(seed, "function", self.index),
        ]
    }
}

/// A 64-hex-digit pseudo hash, deterministic in (kind, n, seed).
fn hash(seed: u64, kind: &str, n: usize) -> String {
    let mut s = String::with_capacity(64);
    for i in 0..4 {
        let _ = write!(s, "{:016x}", rng::derive_seed(seed, kind, (n as u64) << 2 | i));
    }
    s
}

fn geometric<R: rand::Rng>(rng: &mut R, mean: f64) -> usize {
    // Number of trials to the first success with p = 1 / mean (≥ 1).
    let p = (1.0 / mean.max(1.0)).min(1.0);
    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    1 + (u.ln() / (1.0 - p).ln()).floor().max(0.0) as usize
}

fn lognormal<R: rand::Rng>(rng: &mut R, mu: f64, sigma: f64) -> f64 {
    let z: f64 = StandardNormal.sample(rng);
    (mu + sigma * z).exp()
}

/// A minute's count with mean `mean` and variance `mean × cv²` (the renewal process's limit):
/// a gamma–Poisson (negative binomial) mixture when over-dispersed (cv > 1), a rounded normal
/// when under-dispersed (its standard deviation is below √mean ≤ mean / 4 here, so rounding and
/// the floor at 0 do not bias it).
fn minute_count<R: rand::Rng>(rng: &mut R, mean: f64, cv: f64) -> u32 {
    if cv > 1.0 {
        let shape = mean / (cv * cv - 1.0);
        let lambda: f64 = Gamma::new(shape, mean / shape).expect("valid gamma").sample(rng);
        if lambda <= 0.0 {
            return 0;
        }
        let n: f64 = Poisson::new(lambda).expect("valid rate").sample(rng);
        n.min(f64::from(u32::MAX)) as u32
    } else {
        let z: f64 = StandardNormal.sample(rng);
        (mean + mean.sqrt() * cv * z).round().max(0.0) as u32
    }
}

fn burr12<R: rand::Rng>(rng: &mut R, c: f64, k: f64, lambda: f64) -> f64 {
    // Inverse CDF: F(x) = 1 − (1 + (x/λ)^c)^(−k).
    let u: f64 = rng.random::<f64>().min(1.0 - 1e-12);
    lambda * ((1.0 - u).powf(-1.0 / k) - 1.0).powf(1.0 / c)
}

/// Checks that every one of the named `values` is `what` (`ok` says which are); the first that
/// is not, with a message.
fn all_are(what: &str, values: &[(&'static str, f64)], ok: impl Fn(f64) -> bool) -> Result<(), (&'static str, String)> {
    match values.iter().find(|&&(_, v)| !ok(v)) {
        Some(&(field, v)) => Err((field, format!("must be {what}, got {v}"))),
        None => Ok(()),
    }
}

impl GeneratorConfig {
    /// Checks ranges; returns (field, message) for the first bad one.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.functions == 0 || self.functions > MAX_FUNCTIONS {
            return Err((
                "functions",
                format!(
                    "must be 1 to {MAX_FUNCTIONS} (the Azure 2019 trace has about 46,000 a day), got {}",
                    self.functions
                ),
            ));
        }
        if self.days == 0 || self.days > 99 {
            return Err(("days", format!("must be 1–99, got {}", self.days)));
        }
        if self.trigger_mix.iter().any(|w| !(w.is_finite() && *w >= 0.0)) || self.trigger_mix.iter().sum::<f64>() <= 0.0
        {
            return Err(("trigger_mix", "weights must be non-negative with a positive sum".into()));
        }
        let positive = [
            ("daily_median", self.daily_median),
            ("cv_median", self.cv_median),
            ("memory_burr_c", self.memory_burr_c),
            ("memory_burr_k", self.memory_burr_k),
            ("memory_burr_lambda", self.memory_burr_lambda),
            ("apps_per_owner_mean", self.apps_per_owner_mean),
            ("functions_per_app_mean", self.functions_per_app_mean),
        ];
        all_are("positive", &positive, |v| v.is_finite() && v > 0.0)?;
        let non_negative = [
            ("daily_sigma", self.daily_sigma),
            ("cv_sigma", self.cv_sigma),
            ("duration_sigma", self.duration_sigma),
            ("duration_spread_sigma", self.duration_spread_sigma),
        ];
        all_are("non-negative", &non_negative, |v| v.is_finite() && v >= 0.0)?;
        if !(0.0..=1.0).contains(&self.diurnal_amplitude) {
            return Err((
                "diurnal_amplitude",
                format!("must be in [0, 1], got {}", self.diurnal_amplitude),
            ));
        }
        Ok(())
    }

    /// Diurnal intensity multiplier at minute `t` of a day (mean 1 over the day).
    fn diurnal(&self, minute_of_day: f64) -> f64 {
        let phase =
            2.0 * std::f64::consts::PI * (minute_of_day - self.diurnal_peak_hour * 60.0) / f64::from(MINUTES_PER_DAY);
        1.0 + self.diurnal_amplitude * phase.cos()
    }

    fn draw_functions(&self) -> Vec<GenFunction> {
        let mut r = rng::stream(self.seed, "gen-structure", 0);
        let total: f64 = self.trigger_mix.iter().sum();
        let mut out = Vec::with_capacity(self.functions);
        let (mut owner, mut app) = (0usize, 0usize);
        while out.len() < self.functions {
            let apps = geometric(&mut r, self.apps_per_owner_mean);
            for _ in 0..apps {
                let nf = geometric(&mut r, self.functions_per_app_mean);
                // The app's CV drives its functions' arrivals; timer functions are periodic.
                let app_cv = lognormal(&mut r, self.cv_median.ln(), self.cv_sigma);
                let first = out.len();
                for _ in 0..nf {
                    if out.len() == self.functions {
                        break;
                    }
                    let mut u: f64 = r.random::<f64>() * total;
                    let trigger = self.trigger_mix.iter().position(|w| {
                        u -= w;
                        u < 0.0
                    });
                    let trigger = trigger.unwrap_or(0);
                    out.push(GenFunction {
                        owner,
                        app,
                        index: out.len(),
                        trigger,
                        daily: lognormal(&mut r, self.daily_median.ln(), self.daily_sigma).min(1e9),
                        cv: 0.0,
                        avg_duration_s: lognormal(&mut r, self.duration_mu, self.duration_sigma).clamp(1e-3, 3600.0),
                    });
                }
                for f in &mut out[first..] {
                    f.cv = if TRIGGERS[f.trigger] == "timer" { 0.0 } else { app_cv };
                }
                app += 1;
            }
            owner += 1;
        }
        out
    }

    /// Per-minute counts of one function over all days.
    fn counts(&self, f: &GenFunction) -> Vec<u32> {
        let minutes = (self.days * MINUTES_PER_DAY) as usize;
        let mut counts = vec![0u32; minutes];
        let mut r = rng::stream(self.seed, "gen-arrivals", f.index as u64);
        let per_minute = f.daily / f64::from(MINUTES_PER_DAY);
        if f.cv == 0.0 {
            // Timer: periodic with a random phase, no diurnal cycle.
            let period = 1.0 / per_minute;
            let mut t = r.random::<f64>() * period;
            if per_minute > 20.0 {
                for c in &mut counts {
                    *c = per_minute.round() as u32;
                }
                return counts;
            }
            while t < minutes as f64 {
                counts[t as usize] += 1;
                t += period;
            }
            return counts;
        }
        if per_minute > 20.0 {
            for (m, c) in counts.iter_mut().enumerate() {
                let mean = per_minute * self.diurnal((m % MINUTES_PER_DAY as usize) as f64);
                *c = minute_count(&mut r, mean, f.cv);
            }
            return counts;
        }
        // Renewal process in operational time (unit rate per mean gap), mapped through the
        // cumulative diurnal intensity minute by minute.
        let shape = 1.0 / (f.cv * f.cv);
        let gamma = Gamma::new(shape, 1.0 / shape).expect("valid gamma");
        // Operational time accumulated per minute: per_minute × diurnal.
        let mut next = {
            // Stationary start: the gap straddling time 0 is length-biased — Gamma(k + 1, θ) for
            // Gamma(k, θ) gaps — and time 0 falls uniformly inside it. Starting with an ordinary
            // gap instead would add about (CV² − 1)/2 arrivals to every function.
            let straddling: f64 = Gamma::new(shape + 1.0, 1.0 / shape)
                .expect("valid gamma")
                .sample(&mut r);
            straddling * r.random::<f64>()
        };
        let mut acc = 0.0;
        for (m, c) in counts.iter_mut().enumerate() {
            let step = per_minute * self.diurnal((m % MINUTES_PER_DAY as usize) as f64);
            let end = acc + step;
            while next < end {
                *c += 1;
                next += gamma.sample(&mut r);
            }
            acc = end;
        }
        counts
    }

    /// Writes the trace into `dir` (created if needed); returns the number of invocations.
    pub fn write(&self, dir: &Path) -> io::Result<u64> {
        std::fs::create_dir_all(dir)?;
        let fns = self.draw_functions();
        let mut total = 0u64;
        let all_counts: Vec<Vec<u32>> = fns.iter().map(|f| self.counts(f)).collect();
        let mut r = rng::stream(self.seed, "gen-files", 0);
        let mut app_memory = std::collections::BTreeMap::new();
        for f in &fns {
            app_memory.entry(f.app).or_insert_with(|| {
                (
                    f.owner,
                    burr12(&mut r, self.memory_burr_c, self.memory_burr_k, self.memory_burr_lambda),
                )
            });
        }
        for day in 1..=self.days {
            let day_slice = ((day - 1) * MINUTES_PER_DAY) as usize..(day * MINUTES_PER_DAY) as usize;
            write_csv(
                &day_file(dir, "invocations_per_function_md", day),
                &invocations_header(),
                |w| {
                    let mut line = String::new();
                    for (f, counts) in fns.iter().zip(&all_counts) {
                        line.clear();
                        let [owner, app, function] = f.hashes(self.seed);
                        let _ = write!(line, "{owner},{app},{function},{}", TRIGGERS[f.trigger]);
                        for &c in &counts[day_slice.clone()] {
                            total += u64::from(c);
                            let _ = write!(line, ",{c}");
                        }
                        writeln!(w, "{line}")?;
                    }
                    Ok(())
                },
            )?;
            let durations = day_file(dir, "function_durations_percentiles", day);
            write_csv(&durations, &DURATIONS_HEADER.join(","), |w| {
                for (f, counts) in fns.iter().zip(&all_counts) {
                    let n: u64 = counts[day_slice.clone()].iter().map(|&c| u64::from(c)).sum();
                    if n == 0 {
                        continue;
                    }
                    // Percentiles of a log-normal with mean avg and σ = spread.
                    let s = self.duration_spread_sigma;
                    let mu = (f.avg_duration_s * 1e3).ln() - s * s / 2.0;
                    let q = |z: f64| (mu + s * z).exp();
                    let p = [q(-3.09), q(-2.326), q(-0.674), q(0.0), q(0.674), q(2.326), q(3.09)];
                    let d = DurationStats {
                        average: f.avg_duration_s * 1e3,
                        count: n as f64,
                        minimum: p[0],
                        maximum: p[6],
                        percentiles: p,
                    };
                    let key = f.hashes(self.seed);
                    write_durations_row(w, key.each_ref().map(String::as_str), &d, Some(3))?;
                }
                Ok(())
            })?;
            write_csv(
                &day_file(dir, "app_memory_percentiles", day),
                &MEMORY_HEADER.join(","),
                |w| {
                    for (app, (owner, mb)) in &app_memory {
                        let p = |f: f64| mb * f;
                        writeln!(
                            w,
                            "{},{},1440,{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1}",
                            hash(self.seed, "owner", *owner),
                            hash(self.seed, "app", *app),
                            mb,
                            p(0.8),
                            p(0.85),
                            p(0.95),
                            p(1.0),
                            p(1.05),
                            p(1.15),
                            p(1.2),
                            p(1.3)
                        )?;
                    }
                    Ok(())
                },
            )?;
        }
        Ok(total)
    }
}
