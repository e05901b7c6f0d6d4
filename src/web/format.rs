//! How numbers, times and changes read on the dashboard.

use crate::model::time::format_ms;

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A ratio as a percentage with one decimal: `0.18181` → `18.2%`.
pub fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

/// Epoch ms as `2026-11-23 10:00:00` (UTC; the page says so once).
pub fn time(ms: u64) -> String {
    let text = format_ms(ms);
    match (text.get(..10), text.get(11..19)) {
        (Some(day), Some(clock)) => format!("{day} {clock}"),
        _ => text,
    }
}

/// A duration in milliseconds, in the unit that reads best: `850 ms`, `4.2 s`, `12 min`,
/// `3.5 h`, `2.0 d`.
pub fn duration(ms: u64) -> String {
    const S: u64 = 1000;
    const MIN: u64 = 60 * S;
    const H: u64 = 60 * MIN;
    const D: u64 = 24 * H;
    let f = ms as f64;
    match ms {
        0..S => format!("{ms} ms"),
        S..MIN => format!("{:.1} s", f / S as f64),
        MIN..H => format!("{:.0} min", f / MIN as f64),
        H..D => format!("{:.1} h", f / H as f64),
        _ => format!("{:.1} d", f / D as f64),
    }
}

/// How a figure moved against the previous period of the same length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `+12%`, `−5%`, `new`, or `±0%`.
    pub text: String,
    /// `up`, `down` or `flat`: the page colours it (whether up is good depends on the card).
    pub direction: &'static str,
}

pub fn change(current: u64, previous: u64) -> Change {
    if previous == 0 {
        return if current == 0 {
            Change {
                text: "±0%".into(),
                direction: "flat",
            }
        } else {
            Change {
                text: "new".into(),
                direction: "up",
            }
        };
    }
    let pct = (current as f64 - previous as f64) / previous as f64 * 100.0;
    let rounded = pct.round();
    if rounded == 0.0 {
        Change {
            text: "±0%".into(),
            direction: "flat",
        }
    } else if rounded > 0.0 {
        Change {
            text: format!("+{rounded:.0}%"),
            direction: "up",
        }
    } else {
        Change {
            text: format!("−{:.0}%", -rounded),
            direction: "down",
        }
    }
}

/// The change of a rate, in percentage points: `+2.1 pp`.
pub fn rate_change(current: f64, previous: f64) -> Change {
    let points = ((current - previous) * 1000.0).round() / 10.0;
    if points == 0.0 {
        Change {
            text: "±0 pp".into(),
            direction: "flat",
        }
    } else if points > 0.0 {
        Change {
            text: format!("+{points:.1} pp"),
            direction: "up",
        }
    } else {
        Change {
            text: format!("−{:.1} pp", -points),
            direction: "down",
        }
    }
}

/// Percent-encodes a query value.
pub fn query_value(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `a=1&b=2` from pairs whose value is present (each value percent-encoded).
pub fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", query_value(v))))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(percent(2.0 / 11.0), "18.2%");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(4_200), "4.2 s");
        assert_eq!(duration(12 * 60_000), "12 min");
        assert_eq!(duration(3 * 3_600_000 + 1_800_000), "3.5 h");
        assert_eq!(duration(2 * 86_400_000), "2.0 d");
    }

    #[test]
    fn changes() {
        assert_eq!(change(0, 0).text, "±0%");
        assert_eq!(change(5, 0).text, "new");
        assert_eq!(change(112, 100).text, "+12%");
        assert_eq!(change(95, 100).text, "−5%");
        assert_eq!(change(95, 100).direction, "down");
        assert_eq!(rate_change(0.25, 0.2).text, "+5.0 pp");
    }

    #[test]
    fn queries() {
        assert_eq!(
            query_string(&[("a", Some("x y&z")), ("b", None), ("c", Some("1"))]),
            "a=x+y%26z&c=1"
        );
        assert_eq!(time(0), "1970-01-01 00:00:00");
    }
}
