//! Latency histograms (microseconds) and error tallies, and their summaries.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Highest latency a histogram tracks: one hour, in microseconds (beyond saturates).
const MAX_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds with 3 significant figures.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, MAX_US, 3)?)
}

/// Records `d` in `hist` (at least 1 µs, saturating at the top bound).
pub fn record(hist: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(MAX_US);
    hist.saturating_record(us.clamp(1, MAX_US));
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// Summarises `hist` (all zeros when it is empty).
    pub fn of(hist: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if hist.is_empty() {
            return Self {
                count: 0,
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Self {
            count: hist.len(),
            mean: hist.mean() / 1000.0,
            p50: ms(hist.value_at_quantile(0.50)),
            p90: ms(hist.value_at_quantile(0.90)),
            p99: ms(hist.value_at_quantile(0.99)),
            p999: ms(hist.value_at_quantile(0.999)),
            max: ms(hist.max()),
        }
    }

    /// As a JSON object of milliseconds (3 decimals).
    pub fn to_json(self) -> Value {
        json!({
            "count": self.count,
            "mean": round3(self.mean),
            "p50": round3(self.p50),
            "p90": round3(self.p90),
            "p99": round3(self.p99),
            "p999": round3(self.p999),
            "max": round3(self.max),
        })
    }

    /// One line for humans.
    pub fn line(self) -> String {
        format!(
            "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (mean {:.3})",
            self.p50, self.p90, self.p99, self.p999, self.max, self.mean
        )
    }
}

/// Rounds to 3 decimals for JSON output.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Failed requests by kind (an HTTP status like `"429"`, or `"io"`), with the first
/// answer body seen for each kind so that the cause can be shown.
#[derive(Debug, Default, Clone)]
pub struct Errors {
    pub counts: BTreeMap<String, u64>,
    pub samples: BTreeMap<String, String>,
}

impl Errors {
    /// Counts one failure of `kind`, keeping `sample` if it is the first of its kind.
    pub fn add(&mut self, kind: &str, sample: impl FnOnce() -> String) {
        *self.counts.entry(kind.to_string()).or_insert(0) += 1;
        if !self.samples.contains_key(kind) {
            self.samples.insert(kind.to_string(), sample());
        }
    }

    /// Adds the tallies of `other`.
    pub fn merge(&mut self, other: Errors) {
        for (k, n) in other.counts {
            *self.counts.entry(k).or_insert(0) += n;
        }
        for (k, s) in other.samples {
            self.samples.entry(k).or_insert(s);
        }
    }

    /// Total failures.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// `{"429": 3, "io": 1}`.
    pub fn to_json(&self) -> Value {
        json!(self.counts)
    }

    /// `none`, or `429 ×3, io ×1`.
    pub fn line(&self) -> String {
        if self.counts.is_empty() {
            return "none".to_string();
        }
        self.counts
            .iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Prints the first answer of each error kind on stderr.
    pub fn print_samples(&self) {
        for (k, s) in &self.samples {
            eprintln!("first {k} answer: {s}");
        }
    }
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(x: f64) -> String {
    let n = x.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.6), "1,234,568");
    }

    #[test]
    fn latency_percentiles_are_in_ms() -> anyhow::Result<()> {
        let mut h = histogram()?;
        for us in 1..=1000u64 {
            record(&mut h, Duration::from_micros(us * 10));
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert!((l.p50 - 5.0).abs() < 0.01, "{}", l.p50);
        assert!((l.max - 10.0).abs() < 0.01, "{}", l.max);
        Ok(())
    }
}
