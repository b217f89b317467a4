//! Azure LLM inference traces (Patel et al., "Splitwise", ISCA '24; Azure Public Dataset):
//! `TIMESTAMP,ContextTokens,GeneratedTokens` (2023, 2024) and with `NumImages` (2025).
//!
//! Each request becomes one invocation of the serving function whose execution time comes from a
//! token cost model, and the model's memory (weights, KV cache) becomes the function's profile.
//!
//! **Cost model** (a roofline estimate, one request at a time, no batching):
//! - prefill: every context token costs 2 × parameters FLOPs at 50 % of the device's dense FP16
//!   tensor peak;
//! - decode: every generated token reads all weights once at 80 % of the device's memory
//!   bandwidth;
//! - an image adds 576 context tokens (LLaVA-1.5's 24 × 24 patches of a 336-pixel image).
//!
//! The 50 % and 80 % efficiencies are *assumed* typical achieved fractions, to be replaced by
//! calibration on a real GPU. Architectures come from the models' papers: Llama 2 (Touvron et
//! al., 2023, table 1 and §2.2: 7B has 32 layers and 32 KV heads of 128; 13B has 40 and 40) and
//! Mistral 7B (Jiang et al., 2023: 32 layers, 8 KV heads of 128, 7.24 B parameters). Weights and
//! the KV cache are FP16: KV bytes per token = 2 (K, V) × layers × KV heads × head size × 2 B.

use crate::rows::{SkippedRows, header, open_csv, row_error};
use crate::{Arrival, ArrivalSource, Nanos, TraceError};
use std::path::{Path, PathBuf};

/// Achieved fraction of the FP16 tensor peak during prefill (assumed).
pub const PREFILL_EFFICIENCY: f64 = 0.5;
/// Achieved fraction of memory bandwidth during decode (assumed).
pub const DECODE_EFFICIENCY: f64 = 0.8;
/// Context tokens per image (LLaVA-1.5: 576).
pub const IMAGE_TOKENS: u64 = 576;

/// An LLM's architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmModel {
    pub name: &'static str,
    pub parameters: f64,
    pub layers: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    /// Model (hidden) dimension: query heads × head size.
    pub hidden: u32,
    pub source: &'static str,
}

impl LlmModel {
    /// FP16 weights, bytes.
    pub fn weights_bytes(&self) -> f64 {
        self.parameters * 2.0
    }
    /// FP16 KV cache per token, bytes.
    pub fn kv_bytes_per_token(&self) -> f64 {
        2.0 * f64::from(self.layers) * f64::from(self.kv_heads) * f64::from(self.head_dim) * 2.0
    }
    /// The cost model on a device with this memory bandwidth (GB/s) and FP16 tensor peak
    /// (TFLOP/s).
    pub fn cost_on(&self, mem_bandwidth_gbps: f64, tensor_tflops: f64) -> LlmCost {
        LlmCost {
            prefill_ns_per_token: 2.0 * self.parameters / (tensor_tflops * 1e12 * PREFILL_EFFICIENCY) * 1e9,
            decode_ns_per_token: self.weights_bytes() / (mem_bandwidth_gbps * 1e9 * DECODE_EFFICIENCY) * 1e9,
        }
    }
}

/// The built-in models.
pub fn builtin_llms() -> Vec<LlmModel> {
    vec![
        LlmModel {
            name: "llama2-7b",
            parameters: 6.74e9,
            layers: 32,
            kv_heads: 32,
            head_dim: 128,
            hidden: 4096,
            source: "Touvron et al., Llama 2, 2023",
        },
        LlmModel {
            name: "llama2-13b",
            parameters: 13.0e9,
            layers: 40,
            kv_heads: 40,
            head_dim: 128,
            hidden: 5120,
            source: "Touvron et al., Llama 2, 2023",
        },
        LlmModel {
            name: "mistral-7b",
            parameters: 7.24e9,
            layers: 32,
            kv_heads: 8,
            head_dim: 128,
            hidden: 4096,
            source: "Jiang et al., Mistral 7B, 2023",
        },
        LlmModel {
            name: "llama3-8b",
            parameters: 8.03e9,
            layers: 32,
            kv_heads: 8,
            head_dim: 128,
            hidden: 4096,
            source: "Meta, Llama 3 model card, 2024 (8B: 32 layers, 32 query and 8 KV heads of 128)",
        },
    ]
}

/// Per-token costs on one device.
/// One request of an LLM trace: when it arrived (from the first row) and its tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LlmRequest {
    pub time: Nanos,
    /// Context (prompt) tokens, images counted as [`IMAGE_TOKENS`] each.
    pub context: u64,
    pub generated: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LlmCost {
    pub prefill_ns_per_token: f64,
    pub decode_ns_per_token: f64,
}

impl LlmCost {
    /// Execution time of one request.
    pub fn request_ns(&self, context: u64, generated: u64, images: u64) -> Nanos {
        let ctx = (context + images * IMAGE_TOKENS) as f64;
        (ctx * self.prefill_ns_per_token + generated as f64 * self.decode_ns_per_token)
            .round()
            .max(1.0) as Nanos
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian; Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `2023-11-16 18:17:03.9799600` (also with `T` and a `Z` or `±HH:MM` suffix) into exact
/// nanoseconds since 1970 (fractions beyond nanoseconds are truncated).
pub fn parse_timestamp(text: &str) -> Option<i128> {
    let text = text.trim();
    let (date, time) = text.split_once([' ', 'T'])?;
    let mut d = date.split('-');
    let (y, mo, day): (i64, u32, u32) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    // Years 1 to 9999, as ISO 8601 writes them: far beyond any trace, and no arithmetic below
    // can overflow (a fuzzed year of 2·10¹⁶ once wrapped into a wrong time).
    if d.next().is_some() || !(1..=9999).contains(&y) || !(1..=12).contains(&mo) || !(1..=31).contains(&day) {
        return None;
    }
    let (time, offset_s) = if let Some(t) = time.strip_suffix('Z') {
        (t, 0i64)
    } else if let Some(i) = time.rfind(['+', '-']).filter(|&i| i >= 8) {
        let (t, z) = time.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (zh, zm) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
        let (zh, zm) = (zh.parse::<i64>().ok()?, zm.parse::<i64>().ok()?);
        if !(0..24).contains(&zh) || !(0..60).contains(&zm) {
            return None;
        }
        (t, sign * (zh * 3600 + zm * 60))
    } else {
        (time, 0)
    };
    let mut t = time.split(':');
    let (h, mi): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec_text = t.next()?;
    if t.next().is_some() || !(0..24).contains(&h) || !(0..60).contains(&mi) {
        return None;
    }
    let (whole, frac) = sec_text.split_once('.').unwrap_or((sec_text, ""));
    let s: i64 = whole.parse().ok()?;
    if !(0..61).contains(&s) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let ns: i64 = digits.parse().ok()?;
    let secs = days_from_civil(y, mo, day) * 86_400 + h * 3600 + mi * 60 + s - offset_s;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(ns))
}

/// What reading found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LlmReport {
    pub requests: u64,
    pub context_tokens: u64,
    pub generated_tokens: u64,
    pub images: u64,
    pub skipped: SkippedRows,
}

/// Streams an LLM trace as arrivals of function 0, times relative to the first request.
pub struct LlmSource {
    path: PathBuf,
    reader: csv::Reader<crate::rows::CsvFile>,
    record: csv::StringRecord,
    images_col: bool,
    first: Option<i128>,
    last: i128,
    cost: LlmCost,
    skip_bad_rows: bool,
    pub report: LlmReport,
}

impl LlmSource {
    /// Opens `path`; requests cost `cost`.
    pub fn open(path: &Path, cost: LlmCost, skip_bad_rows: bool) -> Result<Self, TraceError> {
        let mut reader = open_csv(path)?;
        let h = header(&mut reader, path, "TIMESTAMP,ContextTokens,GeneratedTokens[,NumImages]")?;
        let images_col = match h.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["TIMESTAMP", "ContextTokens", "GeneratedTokens"] => false,
            ["TIMESTAMP", "ContextTokens", "GeneratedTokens", "NumImages"] => true,
            _ => {
                return Err(row_error(
                    path,
                    1,
                    "header",
                    format!(
                        "found `{}`; expected `TIMESTAMP,ContextTokens,GeneratedTokens` (2023/2024) or with `,NumImages` (2025)",
                        h.join(",")
                    ),
                ));
            }
        };
        Ok(LlmSource {
            path: path.to_owned(),
            reader,
            record: csv::StringRecord::new(),
            images_col,
            first: None,
            last: i128::MIN,
            cost,
            skip_bad_rows,
            report: LlmReport::default(),
        })
    }

    fn parse_row(&self, line: u64) -> Result<(i128, u64, u64, u64), TraceError> {
        let r = &self.record;
        let want = if self.images_col { 4 } else { 3 };
        if r.len() != want {
            return Err(row_error(
                &self.path,
                line,
                "row",
                format!("has {} fields; the header has {want}", r.len()),
            ));
        }
        let ts = parse_timestamp(&r[0]).ok_or_else(|| {
            row_error(
                &self.path,
                line,
                "TIMESTAMP",
                format!(
                    "`{}` is not a timestamp; expected like `2023-11-16 18:17:03.9799600`",
                    &r[0]
                ),
            )
        })?;
        let count = |i: usize, name: &str| -> Result<u64, TraceError> {
            r[i].parse::<u64>()
                .ok()
                .filter(|n| *n <= crate::MAX_TOKENS)
                .ok_or_else(|| {
                    row_error(
                        &self.path,
                        line,
                        name,
                        format!(
                            "`{}` is not a count; expected a whole number from 0 to {}",
                            &r[i],
                            crate::MAX_TOKENS
                        ),
                    )
                })
        };
        let images = if self.images_col { count(3, "NumImages")? } else { 0 };
        Ok((ts, count(1, "ContextTokens")?, count(2, "GeneratedTokens")?, images))
    }
}

impl LlmSource {
    /// The next request with its tokens (what [`ArrivalSource::next_arrival`] turns into an
    /// invocation whose duration is the token cost model's).
    pub fn next_request(&mut self) -> Result<Option<LlmRequest>, TraceError> {
        loop {
            let more = match self.reader.read_record(&mut self.record) {
                Ok(m) => m,
                Err(e) => {
                    let line = crate::rows::line_at(&self.reader, e.position());
                    self.report
                        .skipped
                        .skip_or_fail(self.skip_bad_rows, row_error(&self.path, line, "row", e.to_string()))?;
                    continue;
                }
            };
            if !more {
                return Ok(None);
            }
            let line = crate::rows::line_at(&self.reader, self.record.position());
            let parsed = self.parse_row(line).and_then(|row| {
                if row.0 < self.last {
                    Err(row_error(
                        &self.path,
                        line,
                        "TIMESTAMP",
                        format!(
                            "`{}` is earlier than the previous row; rows must be sorted by time",
                            &self.record[0]
                        ),
                    ))
                } else {
                    Ok(row)
                }
            });
            let (ts, ctx, generated, images) = match parsed {
                Ok(v) => v,
                Err(e) => {
                    self.report.skipped.skip_or_fail(self.skip_bad_rows, e)?;
                    continue;
                }
            };
            self.last = ts;
            let first = *self.first.get_or_insert(ts);
            self.report.requests += 1;
            self.report.context_tokens += ctx;
            self.report.generated_tokens += generated;
            self.report.images += images;
            return Ok(Some(LlmRequest {
                time: (ts - first) as Nanos,
                context: ctx + images * IMAGE_TOKENS,
                generated,
            }));
        }
    }
}

impl ArrivalSource for LlmSource {
    fn next_arrival(&mut self) -> Result<Option<Arrival>, TraceError> {
        Ok(self.next_request()?.map(|r| Arrival {
            time: r.time,
            func: 0,
            duration: Some(self.cost.request_ns(r.context, r.generated, 0)),
        }))
    }

    fn skipped_rows(&self) -> Option<&SkippedRows> {
        Some(&self.report.skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_with_fractions_and_zones() {
        let a = parse_timestamp("2023-11-16 18:17:03.9799600").unwrap();
        let b = parse_timestamp("2023-11-16T18:17:04.0319600Z").unwrap();
        assert_eq!(b - a, 52_000_000);
        assert_eq!(
            parse_timestamp("1970-01-02 00:00:00.000000001").unwrap(),
            86_400_000_000_001
        );
        assert_eq!(
            parse_timestamp("2024-05-10 02:00:00+02:00").unwrap(),
            parse_timestamp("2024-05-10 00:00:00").unwrap()
        );
        for bad in [
            "",
            "2023-13-01 00:00:00",
            "yesterday",
            "2023-11-16",
            "2023-11-16 25:00:00",
            // Found by fuzzing: each overflowed (and wrapped in release builds).
            "20000000000000025-01-01 00:00:00.0",
            "-9223372036854775808-01-01 00:00:00",
            "2023-11-16 18:00:00+99999999999999999:00",
            "2023-11-16 18:00:00-01:9999999999999999",
            "0-01-01 00:00:00",
        ] {
            assert!(parse_timestamp(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn cost_model_is_the_roofline() {
        let m = &builtin_llms()[0];
        // A100-80GB: 2,039 GB/s, 312 TFLOP/s.
        let c = m.cost_on(2039.0, 312.0);
        assert!((c.decode_ns_per_token / 1e6 - 13.48e9 / (2039e9 * 0.8) * 1e3).abs() < 1e-9);
        assert!((c.prefill_ns_per_token - 2.0 * 6.74e9 / (312e12 * 0.5) * 1e9).abs() < 1e-6);
        assert_eq!(c.request_ns(0, 1, 0), c.decode_ns_per_token.round() as u64);
        assert!(
            (m.kv_bytes_per_token() - 524_288.0).abs() < 1e-9,
            "Llama-2-7B: 0.5 MiB per token"
        );
    }
}
