//! `query`: sequential GETs against read endpoints, with latency percentiles per
//! path; any non-2xx answer makes the run fail (after the report is printed).

use std::time::Instant;

use anyhow::bail;
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use hyper::Method;
use serde_json::json;

use crate::client::{snippet, Conn, Target, TimedOut};
use crate::stats::{self, Errors, Latency};

/// Options of `gatewatch-bench query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Base URL of the server (http only).
    #[arg(long, env = "GATEWATCH_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Admin API token (`gw_admin_…`) of a user who may read the tenant.
    #[arg(long, env = "GATEWATCH_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// Tenant slug; replaces `{tenant}` in paths and is used by the default paths.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Measured requests per path.
    #[arg(long, default_value_t = 200)]
    pub requests: u64,
    /// Unmeasured requests per path before the measured ones.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Path and query to GET (repeatable). Default: stats over 30 days, newest 50
    /// events of one type, top clients and an hourly time series.
    #[arg(long = "path")]
    pub paths: Vec<String>,
    /// Print exactly one JSON object on stdout instead of the text table.
    #[arg(long)]
    pub json: bool,
}

/// The measurements of one path.
struct PathResult {
    path: String,
    hist: Histogram<u64>,
    ok: u64,
    bytes: u64,
    errors: Errors,
}

/// Runs the query benchmark.
pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    let target = Target::new(&args.url, &args.admin_token)?;
    let mut paths: Vec<String> = if args.paths.is_empty() {
        vec![
            "/api/v1/tenants/{tenant}/stats?range=30d".to_string(),
            "/api/v1/tenants/{tenant}/events?limit=50&type=token.issued".to_string(),
            "/api/v1/tenants/{tenant}/top?dim=client_id&range=7d".to_string(),
            "/api/v1/tenants/{tenant}/timeseries?range=7d&interval=hour&group_by=type".to_string(),
        ]
    } else {
        args.paths.clone()
    };
    for p in &mut paths {
        *p = p.replace("{tenant}", &args.tenant);
        if !p.starts_with('/') {
            bail!("--path {p:?} must start with '/'");
        }
    }
    if args.requests == 0 {
        bail!("--requests must be at least 1");
    }
    eprintln!(
        "query: {} path(s), {} requests each after {} warm-up, one connection, sequential → {}",
        paths.len(),
        args.requests,
        args.warmup,
        target.display()
    );

    let mut conn = Conn::open(&target).await?;
    let mut results = Vec::with_capacity(paths.len());
    for path in paths {
        let mut result = PathResult {
            hist: stats::histogram()?,
            path,
            ok: 0,
            bytes: 0,
            errors: Errors::default(),
        };
        for i in 0..args.warmup.saturating_add(args.requests) {
            let measured = i >= args.warmup;
            if !conn.ready().await {
                conn = Conn::open(&target).await?;
            }
            let req = target.request(Method::GET, &result.path, None, Bytes::new())?;
            let sent = Instant::now();
            let answer = conn.send(req).await;
            let took = sent.elapsed();
            match answer {
                Ok(a) if a.status.is_success() => {
                    if measured {
                        stats::record(&mut result.hist, took);
                        result.ok += 1;
                        result.bytes += a.body.len() as u64;
                    }
                }
                Ok(a) => result
                    .errors
                    .add(a.status.as_str(), || snippet(&a.body, 300)),
                Err(e) => {
                    let kind = if e.is::<TimedOut>() { "timeout" } else { "io" };
                    result.errors.add(kind, || format!("{e:#}"));
                    conn = Conn::open(&target).await?;
                }
            }
        }
        results.push(result);
    }

    if args.json {
        let per_path: Vec<_> = results
            .iter()
            .map(|r| {
                json!({
                    "path": r.path,
                    "ok": r.ok,
                    "failed": r.errors.total(),
                    "errors": r.errors.to_json(),
                    "mean_body_bytes": r.bytes.checked_div(r.ok).unwrap_or(0),
                    "latency_ms": Latency::of(&r.hist).to_json(),
                })
            })
            .collect();
        let value = json!({
            "command": "query",
            "url": target.display(),
            "tenant": args.tenant,
            "requests_per_path": args.requests,
            "warmup_per_path": args.warmup,
            "paths": per_path,
        });
        println!("{}", serde_json::to_string(&value)?);
    } else {
        let width = results
            .iter()
            .map(|r| r.path.len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "{:<width$}  {:>6}  {:>5}  {:>9}  {:>9}  {:>9}  {:>9}  {:>8}",
            "path", "ok", "fail", "p50 ms", "p90 ms", "p99 ms", "max ms", "bytes"
        );
        for r in &results {
            let l = Latency::of(&r.hist);
            println!(
                "{:<width$}  {:>6}  {:>5}  {:>9.3}  {:>9.3}  {:>9.3}  {:>9.3}  {:>8}",
                r.path,
                r.ok,
                r.errors.total(),
                l.p50,
                l.p90,
                l.p99,
                l.max,
                r.bytes.checked_div(r.ok).unwrap_or(0)
            );
        }
    }

    let failed: u64 = results.iter().map(|r| r.errors.total()).sum();
    if failed > 0 {
        for r in &results {
            for (kind, sample) in &r.errors.samples {
                eprintln!("{}: first {kind} answer: {sample}", r.path);
            }
        }
        bail!("{failed} request(s) got a non-2xx answer or failed");
    }
    Ok(())
}
