//! `ingest`: drives `POST /api/v1/events` over N keep-alive connections, either
//! closed-loop (each connection sends its next request as soon as the previous
//! answer is read) or at a fixed rate, where latency is measured from each request's
//! scheduled send time so that a stalled server cannot hide (coordinated omission).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use hyper::header::HeaderValue;
use hyper::Method;
use serde::Deserialize;
use serde_json::json;

use crate::client::{snippet, Conn, Target, TimedOut};
use crate::events::{Mix, TsMode};
use crate::stats::{self, round3, thousands, Errors, Latency};
use crate::{now_ms, server_window, PoolArgs};

/// One event per request, or a JSON array (or NDJSON) of `--batch` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Single,
    Batch,
}

/// Options of `gatewatch-bench ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Base URL of the server (http only).
    #[arg(long, env = "GATEWATCH_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Ingest key (`gw_ingest_…`) of the tenant.
    #[arg(long, env = "GATEWATCH_INGEST_KEY", hide_env_values = true)]
    pub key: String,
    /// Tenant the key belongs to (only echoed in the report: keys are bound to one).
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// `single`: one event object per request; `batch`: `--batch` events per request.
    #[arg(long, value_enum, default_value_t = Mode::Single)]
    pub mode: Mode,
    /// Keep-alive HTTP/1.1 connections, one task each.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Events per request in batch mode (1..=10000).
    #[arg(long, default_value_t = 1000)]
    pub batch: u64,
    /// Length of the measured phase in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Unmeasured warm-up before the measured phase, in seconds.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_s: f64,
    /// Fixed offered load in events/s over all connections (coordinated-omission
    /// aware: latency counts from each request's scheduled send time). Without it,
    /// connections send back to back (closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Fixed-rate mode: how long after the end a connection may still work off its
    /// backlog; slots never sent by then are reported as `unsent`.
    #[arg(long, default_value_t = 10.0)]
    pub grace_s: f64,
    /// Seed of the event mix.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Send `ts` (spread over the last `--days`, at most 7) instead of letting the
    /// server stamp the receive time.
    #[arg(long)]
    pub with_ts: bool,
    /// With `--with-ts`: days the timestamps spread over (clamped to 7).
    #[arg(long, default_value_t = 1)]
    pub days: u64,
    #[command(flatten)]
    pub pools: PoolArgs,
    /// Events pre-generated before the timed phase; request bodies cycle over them.
    #[arg(long, default_value_t = 200_000)]
    pub pool_events: u64,
    /// Batch mode: send NDJSON (`application/x-ndjson`) instead of a JSON array.
    #[arg(long)]
    pub ndjson: bool,
    /// Parse each 2xx answer and count `accepted` / `duplicates` from it (costs
    /// client CPU); otherwise a 2xx counts as the whole request's events accepted.
    #[arg(long)]
    pub verify: bool,
    /// Exit non-zero if any request failed (by default only if none succeeded).
    #[arg(long)]
    pub strict: bool,
    /// Print exactly one JSON object on stdout instead of the text summary.
    #[arg(long)]
    pub json: bool,
}

/// Upper bound of the time options (a week), so that every run stays bounded.
const MAX_SECONDS: f64 = 7.0 * 86_400.0;

/// What every connection task shares.
struct Plan {
    target: Target,
    bodies: Vec<Bytes>,
    content_type: HeaderValue,
    events_per_request: u64,
    connections: usize,
    /// When every connection sends its first request.
    start: Instant,
    /// Requests whose origin (scheduled or actual send time) is before this are
    /// warm-up and not counted.
    measure_from: Instant,
    /// No request is started (closed loop) or scheduled (fixed rate) from here on.
    end: Instant,
    /// Fixed rate: backlog still unsent at this instant is given up.
    give_up: Instant,
    /// Fixed rate: requests per second over all connections.
    request_rate: Option<f64>,
    verify: bool,
}

impl Plan {
    /// Fixed rate: when slot `slot` is due, or `None` if that is not before the end.
    fn slot_time(&self, slot: u64, rate: f64) -> Option<Instant> {
        let offset = Duration::try_from_secs_f64(slot as f64 / rate).ok()?;
        let at = self.start.checked_add(offset)?;
        (at < self.end).then_some(at)
    }
}

/// What one connection task measured.
struct Tally {
    hist: Histogram<u64>,
    ok_requests: u64,
    ok_events: u64,
    duplicates: u64,
    errors: Errors,
    /// Completion of the last measured request, successful or not.
    last_done: Option<Instant>,
    unsent: u64,
    reconnects: u64,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            hist: stats::histogram()?,
            ok_requests: 0,
            ok_events: 0,
            duplicates: 0,
            errors: Errors::default(),
            last_done: None,
            unsent: 0,
            reconnects: 0,
        })
    }

    fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.hist.add(&other.hist)?;
        self.ok_requests += other.ok_requests;
        self.ok_events += other.ok_events;
        self.duplicates += other.duplicates;
        self.errors.merge(other.errors);
        self.last_done = self.last_done.max(other.last_done);
        self.unsent += other.unsent;
        self.reconnects += other.reconnects;
        Ok(())
    }
}

/// The part of the ingest answer that `--verify` reads.
#[derive(Deserialize)]
struct Accepted {
    accepted: u64,
    #[serde(default)]
    duplicates: u64,
}

/// Runs the ingest benchmark and prints its report.
pub async fn run(args: IngestArgs, threads: usize) -> anyhow::Result<()> {
    let per_request = match args.mode {
        Mode::Single => 1,
        Mode::Batch => args.batch,
    };
    if !(1..=10_000).contains(&per_request) {
        bail!("--batch must be within 1..=10000 (the server's limit per request)");
    }
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let seconds = |name: &str, value: f64, positive: bool| -> anyhow::Result<Duration> {
        let ok = value.is_finite() && value <= MAX_SECONDS && (value > 0.0 || !positive);
        match Duration::try_from_secs_f64(value) {
            Ok(d) if ok => Ok(d),
            _ => bail!(
                "{name} must be a number of seconds within 0..={MAX_SECONDS}{}",
                if positive { ", above 0" } else { "" }
            ),
        }
    };
    let duration = seconds("--duration-s", args.duration_s, true)?;
    let warmup = seconds("--warmup-s", args.warmup_s, false)?;
    let grace = seconds("--grace-s", args.grace_s, false)?;
    if let Some(rate) = args.rate {
        if !(rate >= 0.001 && rate.is_finite()) {
            bail!("--rate must be a number of events per second of at least 0.001");
        }
    }
    let target = Target::new(&args.url, &args.key)?;

    let ts = if args.with_ts {
        let (mode, note) = server_window(args.days, now_ms()?);
        if let Some(note) = note {
            eprintln!("{note}");
        }
        mode
    } else {
        TsMode::Omit
    };
    let mix = Mix::new(args.seed, args.pools.pools(), ts);
    let single_json = args.mode == Mode::Single || !args.ndjson;
    let content_type = HeaderValue::from_static(if single_json {
        "application/json"
    } else {
        "application/x-ndjson"
    });

    // Open every connection first (fail fast), and before the clock starts.
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let target = target.clone();
        opening.spawn(async move { Conn::open(&target).await });
    }
    let mut conns = Vec::with_capacity(args.connections);
    while let Some(joined) = opening.join_next().await {
        conns.push(joined.context("a connect task failed")??);
    }

    // Pre-generate every body so that JSON encoding is not part of the timed phase.
    let n_bodies = usize::try_from(args.pool_events.div_ceil(per_request))?.max(args.connections);
    let generated = Instant::now();
    let mut bodies = Vec::with_capacity(n_bodies);
    let mut body_bytes = 0usize;
    for b in 0..n_bodies as u64 {
        let first = b * per_request;
        let body = match args.mode {
            Mode::Single => {
                let mut out = Vec::with_capacity(400);
                mix.write_json(first, &mut out)?;
                out
            }
            Mode::Batch if args.ndjson => mix.ndjson(first, per_request)?,
            Mode::Batch => mix.json_array(first, per_request)?,
        };
        body_bytes += body.len();
        bodies.push(Bytes::from(body));
    }
    let total_events = n_bodies as u64 * per_request;
    eprintln!(
        "pre-generated {} bodies ({} events, {:.1} MB, {:.0} bytes/event) in {:.2} s",
        thousands(n_bodies as f64),
        thousands(total_events as f64),
        body_bytes as f64 / 1e6,
        body_bytes as f64 / total_events as f64,
        generated.elapsed().as_secs_f64()
    );

    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let plan = Arc::new(Plan {
        target,
        bodies,
        content_type,
        events_per_request: per_request,
        connections: args.connections,
        start,
        measure_from,
        end,
        give_up: end + grace,
        request_rate: args.rate.map(|r| r / per_request as f64),
        verify: args.verify,
    });
    let how = match args.rate {
        Some(rate) => format!("fixed rate {} events/s", thousands(rate)),
        None => "closed loop".to_string(),
    };
    eprintln!(
        "ingest: {} connections, {} event(s)/request, {}, {:.1} s measured after {:.1} s warm-up → {}",
        args.connections,
        per_request,
        how,
        args.duration_s,
        args.warmup_s,
        plan.target.display()
    );

    let mut tasks = tokio::task::JoinSet::new();
    for (index, conn) in conns.into_iter().enumerate() {
        let plan = Arc::clone(&plan);
        tasks.spawn(drive(plan, index, conn));
    }
    let mut total = Tally::new()?;
    while let Some(joined) = tasks.join_next().await {
        total.merge(joined.context("a connection task failed")??)?;
    }

    report(&args, &plan, threads, per_request, &total)?;
    if total.ok_requests == 0 {
        bail!("no request succeeded");
    }
    if args.strict && (total.errors.total() > 0 || total.unsent > 0) {
        bail!(
            "{} request(s) failed and {} were never sent (--strict)",
            total.errors.total(),
            total.unsent
        );
    }
    Ok(())
}

/// The loop of one connection.
async fn drive(plan: Arc<Plan>, index: usize, conn: Conn) -> anyhow::Result<Tally> {
    let mut tally = Tally::new()?;
    let mut conn = Some(conn);
    let n_bodies = plan.bodies.len();
    tokio::time::sleep_until(plan.start.into()).await;
    let mut k: u64 = 0;
    loop {
        let slot = k * plan.connections as u64 + index as u64;
        k += 1;
        // The instant latency is measured from.
        let scheduled = match plan.request_rate {
            Some(rate) => {
                let Some(at) = plan.slot_time(slot, rate) else {
                    break;
                };
                if Instant::now() >= plan.give_up {
                    // Count this slot and every later one of ours that was due.
                    let mut due = slot;
                    while plan.slot_time(due, rate).is_some() {
                        tally.unsent += 1;
                        due += plan.connections as u64;
                    }
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                Some(at)
            }
            None => {
                if Instant::now() >= plan.end {
                    break;
                }
                None
            }
        };
        let body_index = usize::try_from(slot % n_bodies as u64)?;
        let body = plan.bodies[body_index].clone();

        let usable = match conn.as_mut() {
            Some(c) => c.ready().await,
            None => false,
        };
        if !usable {
            // Closed by the server (e.g. `Connection: close`) or broken before:
            // open a new one.
            conn = None;
            match Conn::open(&plan.target).await {
                Ok(fresh) => {
                    tally.reconnects += 1;
                    conn = Some(fresh);
                }
                Err(e) => {
                    if scheduled.unwrap_or_else(Instant::now) >= plan.measure_from {
                        tally.errors.add("connect", || format!("{e:#}"));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            continue;
        };
        let req = plan.target.request(
            Method::POST,
            "/api/v1/events",
            Some(&plan.content_type),
            body,
        )?;
        let sent = Instant::now();
        let result = c.send(req).await;
        let done = Instant::now();
        let origin = scheduled.unwrap_or(sent);
        if origin < plan.measure_from {
            if result.is_err() {
                conn = None;
            }
            continue;
        }
        tally.last_done = Some(done);
        match result {
            Ok(answer) if answer.status.is_success() => {
                stats::record(&mut tally.hist, done.saturating_duration_since(origin));
                tally.ok_requests += 1;
                if plan.verify {
                    match serde_json::from_slice::<Accepted>(&answer.body) {
                        Ok(a) => {
                            tally.ok_events += a.accepted;
                            tally.duplicates += a.duplicates;
                        }
                        Err(_) => tally
                            .errors
                            .add("unreadable_2xx", || snippet(&answer.body, 300)),
                    }
                } else {
                    tally.ok_events += plan.events_per_request;
                }
            }
            Ok(answer) => {
                tally
                    .errors
                    .add(answer.status.as_str(), || snippet(&answer.body, 300));
            }
            Err(e) => {
                let kind = if e.is::<TimedOut>() { "timeout" } else { "io" };
                tally.errors.add(kind, || format!("{e:#}"));
                conn = None;
            }
        }
    }
    Ok(tally)
}

/// Prints the text summary, or the one JSON object with `--json`.
fn report(
    args: &IngestArgs,
    plan: &Plan,
    threads: usize,
    per_request: u64,
    total: &Tally,
) -> anyhow::Result<()> {
    let finished = total.last_done.unwrap_or(plan.end).max(plan.end);
    let elapsed = finished
        .saturating_duration_since(plan.measure_from)
        .as_secs_f64()
        .max(1e-9);
    let events_per_s = total.ok_events as f64 / elapsed;
    let requests_per_s = total.ok_requests as f64 / elapsed;
    let latency = Latency::of(&total.hist);
    let mode = match args.mode {
        Mode::Single => "single",
        Mode::Batch => "batch",
    };
    if args.json {
        let value = json!({
            "command": "ingest",
            "url": plan.target.display(),
            "tenant": args.tenant,
            "mode": mode,
            "body_format": if plan.content_type == "application/json" { "json" } else { "ndjson" },
            "connections": args.connections,
            "events_per_request": per_request,
            "client_threads": threads,
            "with_ts": args.with_ts,
            "seed": args.seed,
            "target_events_per_s": args.rate,
            "duration_s": args.duration_s,
            "warmup_s": args.warmup_s,
            "elapsed_s": round3(elapsed),
            "requests_ok": total.ok_requests,
            "requests_failed": total.errors.total(),
            "events_ok": total.ok_events,
            "duplicates": if args.verify { json!(total.duplicates) } else { json!(null) },
            "events_per_s": events_per_s.round(),
            "requests_per_s": requests_per_s.round(),
            "latency_ms": latency.to_json(),
            "latency_from": if args.rate.is_some() { "scheduled_send" } else { "actual_send" },
            "errors": total.errors.to_json(),
            "unsent": total.unsent,
            "reconnects": total.reconnects,
        });
        println!("{}", serde_json::to_string(&value)?);
    } else {
        println!(
            "ingest {mode}: {} connections, {per_request} event(s)/request, {} client thread(s), {:.2} s measured",
            args.connections, threads, elapsed
        );
        if let Some(rate) = args.rate {
            println!(
                "  offered:   {} events/s (latency from scheduled send time)",
                thousands(rate)
            );
        }
        println!(
            "  events/s:  {}   requests/s: {}",
            thousands(events_per_s),
            thousands(requests_per_s)
        );
        println!(
            "  ok:        {} requests, {} events{}",
            thousands(total.ok_requests as f64),
            thousands(total.ok_events as f64),
            if args.verify {
                format!(", {} duplicates", thousands(total.duplicates as f64))
            } else {
                String::new()
            }
        );
        println!("  latency ms (2xx): {}", latency.line());
        println!(
            "  errors:    {}   unsent: {}   reconnects: {}",
            total.errors.line(),
            total.unsent,
            total.reconnects
        );
    }
    if total.errors.total() > 0 {
        total.errors.print_samples();
    }
    Ok(())
}
