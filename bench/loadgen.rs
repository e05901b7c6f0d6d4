//! `gatewatch-bench`: the load generator of gatewatch.
//!
//! Subcommands:
//! - `ingest`: drives `POST /api/v1/events` (single events or batches) over N
//!   keep-alive connections, closed-loop or at a fixed, coordinated-omission-aware
//!   rate, and reports throughput, latency percentiles and errors by status.
//! - `fill`: loads a deterministic data set quickly, in batches, with `ts` spread
//!   over the last days (at most the 7 that the API accepts).
//! - `ndjson`: writes the same deterministic event mix as NDJSON to stdout, for
//!   import paths that accept older timestamps.
//! - `query`: sequential GETs of read endpoints with latency percentiles per path.
//! - `pg-csv`: the same mix as CSV rows of the Postgres reference table
//!   (`audit_logs`), for the side-by-side run of `bench/run.sh`.
//!
//! See `bench/README.md` for examples.
#![forbid(unsafe_code)]

#[path = "loadgen/client.rs"]
mod client;
#[path = "loadgen/events.rs"]
mod events;
#[path = "loadgen/fill.rs"]
mod fill;
#[path = "loadgen/ingest.rs"]
mod ingest;
#[path = "loadgen/pg.rs"]
mod pg;
#[path = "loadgen/query.rs"]
mod query;
#[path = "loadgen/rng.rs"]
mod rng;
#[path = "loadgen/stats.rs"]
mod stats;

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::events::{Pools, TsMode, DAY_MS};

/// Load generator for the gatewatch HTTP API.
#[derive(Debug, Parser)]
#[command(name = "gatewatch-bench", version, about)]
struct Cli {
    /// Client worker threads (default: the number of CPUs). On a small machine
    /// shared with the server, fewer client threads leave more CPU to the server.
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark `POST /api/v1/events` (single events or batches).
    Ingest(Box<ingest::IngestArgs>),
    /// Load a deterministic data set through the API (ts within the last 7 days).
    Fill(Box<fill::FillArgs>),
    /// Write the deterministic event mix as NDJSON to stdout.
    Ndjson(fill::NdjsonArgs),
    /// Benchmark read endpoints with sequential GETs.
    Query(Box<query::QueryArgs>),
    /// Write the event mix as CSV rows of the Postgres reference `audit_logs` table.
    PgCsv(pg::PgCsvArgs),
}

/// Sizes of the entity pools the event mix draws from.
#[derive(Debug, Clone, Copy, Args)]
pub struct PoolArgs {
    /// Distinct OAuth clients (a few of them dominate the traffic).
    #[arg(long, default_value_t = 200)]
    pub clients: u64,
    /// Distinct users.
    #[arg(long, default_value_t = 50_000)]
    pub users: u64,
    /// Distinct OAuth tokens (plus a quarter as many join links).
    #[arg(long, default_value_t = 100_000)]
    pub tokens: u64,
}

impl PoolArgs {
    /// As the generator's pool sizes.
    pub fn pools(&self) -> Pools {
        Pools {
            clients: self.clients,
            users: self.users,
            tokens: self.tokens,
        }
    }
}

/// The current time in epoch milliseconds.
pub fn now_ms() -> anyhow::Result<i64> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    Ok(i64::try_from(since.as_millis())?)
}

/// The server accepts `ts` only within [now − 7 days, now + 5 min].
const SERVER_MAX_DAYS: u64 = 7;
/// Kept clear at the old end of a 7-day window, so that events generated now are
/// still inside the server's window when a long run sends them.
const EDGE_MARGIN_MS: i64 = 30 * 60 * 1000;

/// The `ts` window for data sent through the API: `days` (1..=7) ending at `now_ms`,
/// with a note for stderr when `days` had to be clamped.
pub fn server_window(days: u64, now_ms: i64) -> (TsMode, Option<String>) {
    let mut note = None;
    let clamped = days.clamp(1, SERVER_MAX_DAYS);
    if days > SERVER_MAX_DAYS {
        note = Some(format!(
            "note: the API accepts ts only within the last {SERVER_MAX_DAYS} days: clamping \
             --days {days} to {SERVER_MAX_DAYS} (for older data use `gatewatch-bench ndjson` \
             with `gatewatch import`)"
        ));
    } else if days == 0 {
        note = Some("note: --days 0 raised to 1".to_string());
    }
    let mut span_ms = clamped as i64 * DAY_MS;
    if clamped == SERVER_MAX_DAYS {
        span_ms -= EDGE_MARGIN_MS;
    }
    let mode = TsMode::Spread {
        start_ms: now_ms - span_ms,
        span_ms,
    };
    (mode, note)
}

/// Exit codes as the project uses them: 0 ok, 1 operational error (one line on
/// stderr first), 2 usage (clap's own).
fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Ndjson(args) => return fill::write_ndjson(args),
        Command::PgCsv(args) => return pg::write_csv(args),
        _ => {}
    }
    let threads = match cli.threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Ingest(args) => ingest::run(*args, threads).await,
            Command::Fill(args) => fill::run(*args).await,
            Command::Query(args) => query::run(*args).await,
            Command::Ndjson(args) => fill::write_ndjson(&args),
            Command::PgCsv(args) => pg::write_csv(&args),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_clamped_to_the_api_limit() {
        let now = 1_800_000_000_000;
        let (mode, note) = server_window(30, now);
        assert!(note.is_some());
        match mode {
            TsMode::Spread { start_ms, span_ms } => {
                assert_eq!(start_ms + span_ms, now);
                assert!(start_ms > now - 7 * DAY_MS);
            }
            TsMode::Omit => panic!("expected a spread window"),
        }
        let (mode, note) = server_window(3, now);
        assert!(note.is_none());
        match mode {
            TsMode::Spread { start_ms, .. } => assert_eq!(start_ms, now - 3 * DAY_MS),
            TsMode::Omit => panic!("expected a spread window"),
        }
    }
}
