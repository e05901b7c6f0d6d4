//! `pg-csv`: the same deterministic event mix as `fill` / `ingest`, written as CSV
//! rows of the Postgres reference design's `audit_logs` table, for
//! `COPY audit_logs (user_id, action, resource_type, resource_id, details, created_at)
//! FROM STDIN (FORMAT csv)`.
//!
//! The mapping follows the origin's logging functions (`logTokenIssued` & co.):
//! - `action` is the event type, except that `token.issued` becomes
//!   `token.issued.{grant_type}`;
//! - `resource_type` is `oauth_token` for `token.*` / `auth.*`, `join_link` for
//!   `join.*` and `captcha` for `captcha.*`;
//! - `resource_id` is the OAuth client (as in the origin), the link token for join
//!   links, NULL for captchas;
//! - `details` (jsonb) holds every other field the event has (`ip` is named
//!   `ip_address` there, as in the origin), so both systems store the same facts;
//! - `created_at` is `ts` (empty, i.e. NULL, with `--no-ts`).

use std::io::Write;

use anyhow::Context;
use clap::Args;
use serde_json::{Map, Value};

use crate::events::{Event, Mix, TsMode};
use crate::{now_ms, server_window, PoolArgs};

/// Options of `gatewatch-bench pg-csv`.
#[derive(Debug, Args)]
pub struct PgCsvArgs {
    /// Number of events (rows) to write.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Days the timestamps spread over, ending at `--now-ms`; clamped to 7 exactly as
    /// `fill` does, so that `fill` and `pg-csv` with the same options give the same
    /// events.
    #[arg(long, default_value_t = 30)]
    pub days: u64,
    #[command(flatten)]
    pub pools: PoolArgs,
    /// Seed of the event mix.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// "Now" in epoch milliseconds (default: the current time).
    #[arg(long)]
    pub now_ms: Option<i64>,
    /// Events without `ts` (empty `created_at`), exactly as `ingest` sends them
    /// without `--with-ts`.
    #[arg(long)]
    pub no_ts: bool,
}

/// Writes `--events` rows of CSV to stdout.
pub fn write_csv(args: &PgCsvArgs) -> anyhow::Result<()> {
    let ts = if args.no_ts {
        TsMode::Omit
    } else {
        let now = match args.now_ms {
            Some(ms) => ms,
            None => now_ms()?,
        };
        let (mode, note) = server_window(args.days, now);
        if let Some(note) = note {
            eprintln!("{note}");
        }
        mode
    };
    let mix = Mix::new(args.seed, args.pools.pools(), ts);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut line = Vec::with_capacity(1024);
    for index in 0..args.events {
        line.clear();
        row(&mix.event(index), &mut line)?;
        if let Err(e) = out.write_all(&line) {
            return quiet_broken_pipe(e);
        }
    }
    if let Err(e) = out.flush() {
        return quiet_broken_pipe(e);
    }
    Ok(())
}

/// A closed pipe (`| head`) is a normal way for a reader to stop.
fn quiet_broken_pipe(e: std::io::Error) -> anyhow::Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e.into())
    }
}

/// Appends one CSV line (with its newline) for `event` to `out`.
fn row(event: &Event, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let action = match (event.kind, event.grant_type) {
        ("token.issued", Some(grant)) => format!("token.issued.{grant}"),
        (kind, _) => kind.to_string(),
    };
    let family = event.kind.split('.').next().unwrap_or_default();
    let (resource_type, resource_id) = match family {
        "join" => ("join_link", event.token.as_deref()),
        "captcha" => ("captcha", None),
        _ => ("oauth_token", event.client_id.as_deref()),
    };
    let details = details(event)?;
    field(out, event.user_id.as_deref());
    out.push(b',');
    field(out, Some(&action));
    out.push(b',');
    field(out, Some(resource_type));
    out.push(b',');
    field(out, resource_id);
    out.push(b',');
    field(out, Some(&details));
    out.push(b',');
    let created_at = event.ts.map(rfc3339).transpose()?;
    field(out, created_at.as_deref());
    out.push(b'\n');
    Ok(())
}

/// The `details` jsonb: the event minus the columns of its own (`type`, `ts`,
/// `user_id`, `id`), with `ip` as `ip_address`.
fn details(event: &Event) -> anyhow::Result<String> {
    let value = serde_json::to_value(event).context("cannot encode an event")?;
    let Value::Object(fields) = value else {
        anyhow::bail!("an event did not encode as a JSON object");
    };
    let mut details = Map::new();
    for (key, value) in fields {
        match key.as_str() {
            "type" | "ts" | "user_id" | "id" => {}
            "ip" => {
                details.insert("ip_address".to_string(), value);
            }
            _ => {
                details.insert(key, value);
            }
        }
    }
    Ok(serde_json::to_string(&Value::Object(details))?)
}

/// A CSV field: `None` is an empty unquoted field (NULL for `COPY … csv`); text is
/// always quoted, with `"` doubled.
fn field(out: &mut Vec<u8>, text: Option<&str>) {
    if let Some(text) = text {
        out.push(b'"');
        for &b in text.as_bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    }
}

/// Epoch milliseconds as an RFC 3339 UTC timestamp that Postgres parses.
fn rfc3339(ms: i64) -> anyhow::Result<String> {
    let nanos = i128::from(ms) * 1_000_000;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .context("a timestamp is out of range")?;
    Ok(t.format(&time::format_description::well_known::Rfc3339)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Pools;

    fn mix() -> Mix {
        let pools = Pools {
            clients: 20,
            users: 100,
            tokens: 200,
        };
        Mix::new(
            7,
            pools,
            TsMode::Spread {
                start_ms: 1_800_000_000_000,
                span_ms: 86_400_000,
            },
        )
    }

    #[test]
    fn rows_have_six_fields_and_map_issued_grants() -> anyhow::Result<()> {
        let mix = mix();
        let mut issued = 0;
        for i in 0..2000 {
            let event = mix.event(i);
            let mut line = Vec::new();
            row(&event, &mut line)?;
            let text = String::from_utf8(line)?;
            assert!(text.ends_with('\n'));
            if event.kind == "token.issued" {
                issued += 1;
                let grant = event.grant_type.unwrap_or("missing");
                assert!(
                    text.contains(&format!("\"token.issued.{grant}\"")),
                    "{text}"
                );
            }
            // Unquoted commas separate exactly six fields.
            let mut quoted = false;
            let mut commas = 0;
            for c in text.chars() {
                match c {
                    '"' => quoted = !quoted,
                    ',' if !quoted => commas += 1,
                    _ => {}
                }
            }
            assert_eq!(commas, 5, "{text}");
            assert!(!text.contains("\"type\""), "{text}");
        }
        assert!(issued > 0);
        Ok(())
    }

    #[test]
    fn details_rename_ip_and_drop_columns() -> anyhow::Result<()> {
        let event = mix().event(3);
        let details: Value = serde_json::from_str(&details(&event)?)?;
        assert_eq!(details["ip_address"], Value::String(event.ip.clone()));
        assert!(details.get("ip").is_none());
        assert!(details.get("ts").is_none());
        assert!(details.get("user_id").is_none());
        Ok(())
    }
}
