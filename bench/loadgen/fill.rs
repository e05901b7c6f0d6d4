//! `fill` loads a deterministic data set through the HTTP API in large batches;
//! `ndjson` writes the same event mix to stdout for import paths that also accept
//! timestamps older than the API's 7-day window.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use hyper::header::HeaderValue;
use hyper::Method;
use serde::Deserialize;
use serde_json::json;

use crate::client::{snippet, Conn, Target};
use crate::events::{Mix, TsMode, DAY_MS};
use crate::stats::{round3, thousands};
use crate::{now_ms, server_window, PoolArgs};

/// Options of `gatewatch-bench fill`.
#[derive(Debug, Args)]
pub struct FillArgs {
    /// Base URL of the server (http only).
    #[arg(long, env = "GATEWATCH_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Ingest key (`gw_ingest_…`) of the tenant to fill.
    #[arg(long, env = "GATEWATCH_INGEST_KEY", hide_env_values = true)]
    pub key: String,
    /// Tenant the key belongs to (only echoed in the report).
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Number of events to load.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Days the timestamps spread over, ending now (clamped to the API's 7).
    #[arg(long, default_value_t = 30)]
    pub days: u64,
    #[command(flatten)]
    pub pools: PoolArgs,
    /// Events per request (1..=10000).
    #[arg(long, default_value_t = 5000)]
    pub batch: u64,
    /// Keep-alive connections sending batches in parallel.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Seed of the event mix.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// "Now" in epoch milliseconds (default: the current time); the window ends here.
    #[arg(long)]
    pub now_ms: Option<i64>,
    /// Give each event an idempotency `id` (`fill-SEED-INDEX`), so that retries and
    /// repeated runs do not store events twice.
    #[arg(long)]
    pub ids: bool,
    /// Print exactly one JSON object on stdout instead of the text summary.
    #[arg(long)]
    pub json: bool,
}

/// Options of `gatewatch-bench ndjson`.
#[derive(Debug, Args)]
pub struct NdjsonArgs {
    /// Number of events to write.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Days the timestamps spread over, ending at `--now-ms` (no clamping).
    #[arg(long, default_value_t = 30)]
    pub days: u64,
    #[command(flatten)]
    pub pools: PoolArgs,
    /// Seed of the event mix.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// "Now" in epoch milliseconds (default: the current time); pass it to get the
    /// same file twice.
    #[arg(long)]
    pub now_ms: Option<i64>,
    /// Give each event an idempotency `id` (`fill-SEED-INDEX`, as `fill --ids`).
    #[arg(long)]
    pub ids: bool,
}

/// The part of the ingest answer that `fill` reads.
#[derive(Deserialize)]
struct Accepted {
    accepted: u64,
    #[serde(default)]
    duplicates: u64,
}

/// Counters shared by the fill workers.
#[derive(Default)]
struct Progress {
    next_batch: AtomicU64,
    sent: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    retries: AtomicU64,
    resent_after_io: AtomicU64,
}

/// Writes `--events` events as NDJSON to stdout.
pub fn write_ndjson(args: &NdjsonArgs) -> anyhow::Result<()> {
    let now = match args.now_ms {
        Some(ms) => ms,
        None => now_ms()?,
    };
    let days = i64::try_from(args.days.max(1))?;
    let span_ms = days.checked_mul(DAY_MS).context("--days is too large")?;
    let mix = with_ids(
        Mix::new(
            args.seed,
            args.pools.pools(),
            TsMode::Spread {
                start_ms: now - span_ms,
                span_ms,
            },
        ),
        args.ids,
        args.seed,
    );
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let chunk = 10_000u64;
    let mut first = 0u64;
    while first < args.events {
        let count = chunk.min(args.events - first);
        let text = mix.ndjson(first, count)?;
        if let Err(e) = out.write_all(&text) {
            return quiet_broken_pipe(e);
        }
        first += count;
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

fn with_ids(mix: Mix, ids: bool, seed: u64) -> Mix {
    if ids {
        mix.with_ids(format!("fill-{seed}-"))
    } else {
        mix
    }
}

/// Loads the data set and prints a summary.
pub async fn run(args: FillArgs) -> anyhow::Result<()> {
    if !(1..=10_000).contains(&args.batch) {
        bail!("--batch must be within 1..=10000 (the server's limit per request)");
    }
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let target = Target::new(&args.url, &args.key)?;
    let now = match args.now_ms {
        Some(ms) => ms,
        None => now_ms()?,
    };
    let (ts, note) = server_window(args.days, now);
    if let Some(note) = note {
        eprintln!("{note}");
    }
    let mix = Arc::new(with_ids(
        Mix::new(args.seed, args.pools.pools(), ts),
        args.ids,
        args.seed,
    ));
    let batches = args.events.div_ceil(args.batch);
    let progress = Arc::new(Progress::default());
    eprintln!(
        "fill: {} events in {} batches of {} over {} connections → {}",
        thousands(args.events as f64),
        thousands(batches as f64),
        args.batch,
        args.connections,
        target.display()
    );

    let started = Instant::now();
    let reporter = {
        let progress = Arc::clone(&progress);
        let total = args.events;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                let sent = progress.sent.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "fill: {} / {} events ({:.0}%), {} events/s",
                    thousands(sent as f64),
                    thousands(total as f64),
                    100.0 * sent as f64 / total.max(1) as f64,
                    thousands(sent as f64 / secs)
                );
            }
        })
    };

    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let job = Job {
            target: target.clone(),
            mix: Arc::clone(&mix),
            progress: Arc::clone(&progress),
            events: args.events,
            batch: args.batch,
            batches,
        };
        workers.spawn(job.work());
    }
    let mut failure = None;
    while let Some(joined) = workers.join_next().await {
        let outcome = joined.context("a fill task failed").and_then(|r| r);
        if let Err(e) = outcome {
            if failure.is_none() {
                // Stop handing out batches; the other workers finish theirs.
                progress.next_batch.store(batches, Ordering::Relaxed);
                failure = Some(e);
            }
        }
    }
    reporter.abort();
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let sent = progress.sent.load(Ordering::Relaxed);
    let accepted = progress.accepted.load(Ordering::Relaxed);
    let duplicates = progress.duplicates.load(Ordering::Relaxed);
    let retries = progress.retries.load(Ordering::Relaxed);
    let resent = progress.resent_after_io.load(Ordering::Relaxed);
    let (from_ms, to_ms) = match ts {
        TsMode::Spread { start_ms, span_ms } => (start_ms, start_ms + span_ms),
        TsMode::Omit => (now, now),
    };
    if args.json {
        let value = json!({
            "command": "fill",
            "url": target.display(),
            "tenant": args.tenant,
            "seed": args.seed,
            "events": args.events,
            "sent": sent,
            "accepted": accepted,
            "duplicates": duplicates,
            "retries": retries,
            "resent_after_io_error": resent,
            "elapsed_s": round3(elapsed),
            "events_per_s": (accepted as f64 / elapsed).round(),
            "ts_from_ms": from_ms,
            "ts_to_ms": to_ms,
            "ok": failure.is_none(),
        });
        println!("{}", serde_json::to_string(&value)?);
    } else {
        println!(
            "fill: {} accepted, {} duplicates of {} sent in {:.2} s → {} events/s",
            thousands(accepted as f64),
            thousands(duplicates as f64),
            thousands(sent as f64),
            elapsed,
            thousands(accepted as f64 / elapsed)
        );
        println!(
            "  ts from {} to {}; {} throttled/unavailable retries",
            rfc3339(from_ms),
            rfc3339(to_ms),
            retries
        );
    }
    if resent > 0 && !args.ids {
        eprintln!(
            "warning: {resent} batch(es) were re-sent after a connection error without --ids; \
             some events may be stored twice"
        );
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One fill worker: takes the next batch number until none is left.
struct Job {
    target: Target,
    mix: Arc<Mix>,
    progress: Arc<Progress>,
    events: u64,
    batch: u64,
    batches: u64,
}

impl Job {
    async fn work(self) -> anyhow::Result<()> {
        let content_type = HeaderValue::from_static("application/json");
        let mut conn = Some(Conn::open(&self.target).await?);
        loop {
            let b = self.progress.next_batch.fetch_add(1, Ordering::Relaxed);
            if b >= self.batches {
                return Ok(());
            }
            let first = b * self.batch;
            let count = self.batch.min(self.events - first);
            let body = Bytes::from(self.mix.json_array(first, count)?);
            let mut backoff = Duration::from_millis(250);
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                if attempt > 30 {
                    bail!(
                        "batch {b} (events {first}..{}): gave up after 30 attempts",
                        first + count
                    );
                }
                let usable = match conn.as_mut() {
                    Some(c) => c.ready().await,
                    None => false,
                };
                if !usable {
                    conn = Some(Conn::open(&self.target).await?);
                }
                let Some(c) = conn.as_mut() else {
                    continue;
                };
                let req = self.target.request(
                    Method::POST,
                    "/api/v1/events",
                    Some(&content_type),
                    body.clone(),
                )?;
                match c.send(req).await {
                    Ok(answer) if answer.status.is_success() => {
                        let (accepted, duplicates) =
                            match serde_json::from_slice::<Accepted>(&answer.body) {
                                Ok(a) => (a.accepted, a.duplicates),
                                Err(_) => (count, 0),
                            };
                        self.progress.sent.fetch_add(count, Ordering::Relaxed);
                        self.progress
                            .accepted
                            .fetch_add(accepted, Ordering::Relaxed);
                        self.progress
                            .duplicates
                            .fetch_add(duplicates, Ordering::Relaxed);
                        break;
                    }
                    Ok(answer) if answer.status == 429 || answer.status == 503 => {
                        self.progress.retries.fetch_add(1, Ordering::Relaxed);
                        let wait = answer
                            .retry_after_s
                            .map(|s| Duration::from_secs(s.clamp(1, 60)))
                            .unwrap_or(backoff);
                        tokio::time::sleep(wait).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    Ok(answer) => bail!(
                        "batch {b} (events {first}..{}): HTTP {}: {}",
                        first + count,
                        answer.status,
                        snippet(&answer.body, 500)
                    ),
                    Err(e) => {
                        eprintln!("fill: batch {b}: {e:#}; reconnecting and re-sending");
                        self.progress
                            .resent_after_io
                            .fetch_add(1, Ordering::Relaxed);
                        conn = None;
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    }
}

/// Epoch milliseconds as RFC 3339, for messages (falls back to the number).
fn rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
