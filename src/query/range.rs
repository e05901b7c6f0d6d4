//! Time ranges of queries: `from`/`to` or a named `range`, defaulting to the last 24 hours.

use crate::model::time::{DAY_MS, HOUR_MS, MAX_TIME_MS};
use crate::store::Granularity;

/// A half-open range of whole UTC hours, in epoch ms: `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourRange {
    pub from: u64,
    pub to: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("`range` must be one of 1h, 24h, 7d, 30d, 90d")]
    UnknownRange,
    #[error("`from` must be before `to`")]
    Inverted,
    #[error("the range may span at most 400 days")]
    TooLong,
    #[error("times must lie before the year 10000")]
    OutOfRange,
}

/// The length of a named range.
pub fn named_range_ms(name: &str) -> Option<u64> {
    match name {
        "1h" => Some(HOUR_MS),
        "24h" => Some(DAY_MS),
        "7d" => Some(7 * DAY_MS),
        "30d" => Some(30 * DAY_MS),
        "90d" => Some(90 * DAY_MS),
        _ => None,
    }
}

/// The exact `[from, to)` a request asks for: explicit bounds win, then `range` ending now,
/// else the last 24 hours.
pub fn resolve(
    from: Option<u64>,
    to: Option<u64>,
    range: Option<&str>,
    now: u64,
) -> Result<(u64, u64), RangeError> {
    let span = match range {
        Some(name) => named_range_ms(name).ok_or(RangeError::UnknownRange)?,
        None => DAY_MS,
    };
    if from
        .into_iter()
        .chain(to)
        .any(|t| t > MAX_TIME_MS - HOUR_MS)
    {
        return Err(RangeError::OutOfRange);
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to.saturating_sub(span));
    if from >= to {
        return Err(RangeError::Inverted);
    }
    if to - from > 400 * DAY_MS {
        return Err(RangeError::TooLong);
    }
    Ok((from, to))
}

impl HourRange {
    /// Widens `[from, to)` to whole hours: `from` down, `to` up.
    pub fn covering(from: u64, to: u64) -> HourRange {
        HourRange {
            from: from / HOUR_MS * HOUR_MS,
            to: to.div_ceil(HOUR_MS) * HOUR_MS,
        }
    }

    /// The counter spans covering the range: whole UTC days as one run of day buckets, the
    /// hours before and after them as runs of hour buckets. `(granularity, first, end)`.
    pub fn spans(&self) -> Vec<(Granularity, u32, u32)> {
        let (from, to) = self.buckets();
        let first_day = from.div_ceil(24);
        let end_day = to / 24;
        if first_day >= end_day {
            return vec![(Granularity::Hour, from, to)];
        }
        let mut spans = Vec::with_capacity(3);
        if from < first_day * 24 {
            spans.push((Granularity::Hour, from, first_day * 24));
        }
        spans.push((Granularity::Day, first_day, end_day));
        if end_day * 24 < to {
            spans.push((Granularity::Hour, end_day * 24, to));
        }
        spans
    }

    /// First and one-past-last hour bucket.
    pub fn buckets(&self) -> (u32, u32) {
        ((self.from / HOUR_MS) as u32, (self.to / HOUR_MS) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_named_ranges() {
        let now = 100 * DAY_MS + 123;
        assert_eq!(resolve(None, None, None, now), Ok((now - DAY_MS, now)));
        assert_eq!(
            resolve(None, None, Some("7d"), now),
            Ok((now - 7 * DAY_MS, now))
        );
        assert_eq!(
            resolve(None, None, Some("2w"), now),
            Err(RangeError::UnknownRange)
        );
        assert_eq!(
            resolve(Some(5), Some(5), None, now),
            Err(RangeError::Inverted)
        );
    }

    #[test]
    fn spans_use_days_inside_and_hours_at_the_edges() {
        let r = |from_h: u64, to_h: u64| HourRange {
            from: from_h * HOUR_MS,
            to: to_h * HOUR_MS,
        };
        assert_eq!(
            r(20, 24 * 3 + 2).spans(),
            vec![
                (Granularity::Hour, 20, 24),
                (Granularity::Day, 1, 3),
                (Granularity::Hour, 72, 74)
            ]
        );
        assert_eq!(r(24, 48).spans(), vec![(Granularity::Day, 1, 2)]);
        assert_eq!(r(25, 47).spans(), vec![(Granularity::Hour, 25, 47)]);
    }

    #[test]
    fn hour_cover_truncates_outward() {
        let r = HourRange::covering(HOUR_MS + 1, 3 * HOUR_MS + 1);
        assert_eq!((r.from, r.to), (HOUR_MS, 4 * HOUR_MS));
        let r = HourRange::covering(HOUR_MS, 2 * HOUR_MS);
        assert_eq!(r.buckets(), (1, 2));
    }
}
