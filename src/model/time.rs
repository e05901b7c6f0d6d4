//! Timestamps: milliseconds since the Unix epoch (UTC), with RFC 3339 parsing and formatting.

use ::time::format_description::well_known::Rfc3339;
use ::time::OffsetDateTime;

/// Milliseconds in one hour.
pub const HOUR_MS: u64 = 3_600_000;
/// Milliseconds in one day.
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// The latest representable time: 9999-12-31T23:59:59.999Z. Later epoch values are refused
/// at the boundary, so every stored time formats as RFC 3339 and hour buckets fit a `u32`.
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;

/// Parses an RFC 3339 timestamp into epoch milliseconds. Times before 1970 are refused.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let dt = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let ms = dt.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).ok()
}

/// Formats epoch milliseconds as `2026-11-23T10:00:00.123Z`.
pub fn format_ms(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let millis = ms % 1000;
    match OffsetDateTime::from_unix_timestamp(secs) {
        Ok(dt) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            millis
        ),
        // Only reachable for times past year 9999, which ingest never accepts.
        Err(_) => format!("{ms}"),
    }
}

/// The hour bucket (hours since the epoch) holding `ms`.
pub fn hour_of(ms: u64) -> u32 {
    (ms / HOUR_MS) as u32
}

/// The day bucket (UTC days since the epoch) holding `ms`.
pub fn day_of(ms: u64) -> u32 {
    (ms / DAY_MS) as u32
}

/// The wall clock as epoch milliseconds. Only the edges (http, cli, jobs) call this.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_millis() {
        let ms = parse_rfc3339_ms("2026-11-23T10:00:00.123Z").expect("valid");
        assert_eq!(format_ms(ms), "2026-11-23T10:00:00.123Z");
    }

    #[test]
    fn accepts_offsets_and_normalises_to_utc() {
        let ms = parse_rfc3339_ms("2026-11-23T12:00:00+02:00").expect("valid");
        assert_eq!(format_ms(ms), "2026-11-23T10:00:00.000Z");
    }

    #[test]
    fn refuses_garbage_and_pre_epoch() {
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59Z"), None);
    }

    #[test]
    fn buckets() {
        assert_eq!(hour_of(HOUR_MS * 5 + 1), 5);
        assert_eq!(day_of(DAY_MS * 3 - 1), 2);
    }
}
