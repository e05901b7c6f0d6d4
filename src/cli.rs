//! The command line: parses flags into validated values, then calls `app` (or `store` for
//! maintenance). `main` only maps the result to an exit code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::app::{App, AppError, BootstrapOptions};
use crate::config::{Config, Overrides};
use crate::model::time::now_ms;
use crate::store::Store;

/// gatewatch: security-event analytics and abuse decisions for your app's public gates.
#[derive(Debug, Parser)]
#[command(name = "gatewatch", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (bootstraps an empty store first).
    Serve(Common),
    /// Create the store, the owner and a first tenant.
    Init(InitArgs),
    /// Print the effective configuration.
    CheckConfig(Common),
    /// Recount the log and compare every counter and token state with it.
    Verify(Common),
    /// Recompute every aggregate from the log, reporting what differed.
    Rebuild(Common),
    /// Rewrite the store into a new, densely packed file and give the old one's space back
    /// (server stopped; needs free disk space for the copy).
    Compact(Common),
    /// Serve a temporary store filled with realistic traffic (and live traffic while it
    /// runs); prints the URL and the logins. The store is deleted on exit.
    Demo(DemoArgs),
}

/// Flags shared by every command that opens a store.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Data directory [env: GATEWATCH_DATA] [default: ./gatewatch-data]
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Listen address [env: GATEWATCH_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub common: Common,
    /// Slug of the first tenant.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Name of the owner account.
    #[arg(long, default_value = "admin")]
    pub owner: String,
    /// Owner password (generated when absent).
    #[arg(long)]
    pub owner_password: Option<String>,
    /// Print exactly one JSON object with the new secrets.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Listen address [env: GATEWATCH_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Days of history to generate before now (1 to 7).
    #[arg(long, default_value_t = crate::demo::DEFAULT_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::demo::MAX_DAYS)))]
    pub days: u32,
    /// Seed of the traffic generator: the same seed gives the same traffic relative to
    /// the start time.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl Common {
    fn config(&self) -> Result<Config> {
        let overrides = Overrides {
            data: self.data.clone(),
            listen: self.listen,
        };
        let (config, warnings) = Config::load(self.config.as_deref(), std::env::vars(), &overrides)
            .context("while loading the configuration")?;
        for warning in warnings {
            eprintln!("warning: {warning}");
        }
        Ok(config)
    }
}

/// Runs one command to completion.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(common) => {
            let config = common.config()?;
            init_logging(&config.log);
            runtime()?.block_on(serve(config))
        }
        Command::Init(args) => {
            let config = args.common.config()?;
            runtime()?.block_on(init(config, args))
        }
        Command::CheckConfig(common) => {
            let config = common.config()?;
            print!(
                "{}",
                toml::to_string(&config).context("while printing the configuration")?
            );
            Ok(())
        }
        Command::Verify(common) => {
            let config = common.config()?;
            let store = open_store(&config)?;
            let report = store.snapshot()?.verify()?;
            println!(
                "{} events; {} counter, {} token, {} index, {} sketch and {} column mismatches",
                report.events,
                report.counter_mismatches,
                report.token_mismatches,
                report.index_mismatches,
                report.sketch_mismatches,
                report.column_mismatches
            );
            if !report.is_consistent() {
                bail!("the aggregates do not match the log; run `gatewatch rebuild`");
            }
            Ok(())
        }
        Command::Compact(common) => {
            let config = common.config()?;
            let (before, after) = crate::store::compact(&config.data).with_context(|| {
                format!("while compacting the store in {}", config.data.display())
            })?;
            println!("compacted {} → {} bytes", before, after);
            Ok(())
        }
        Command::Demo(args) => runtime()?.block_on(demo(args)),
        Command::Rebuild(common) => {
            let config = common.config()?;
            runtime()?.block_on(async {
                let store = open_store(&config)?;
                let before = store.rebuild().await?;
                store.close();
                if before.is_consistent() {
                    println!("rebuilt from {} events: nothing differed", before.events);
                } else {
                    println!(
                        "rebuilt from {} events: repaired {} counter buckets and {} token states",
                        before.events, before.counter_mismatches, before.token_mismatches
                    );
                }
                Ok(())
            })
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEWATCH_LOG_FILTER")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn open_store(config: &Config) -> Result<Store> {
    Store::open(&config.data, config.writer())
        .with_context(|| format!("while opening the store in {}", config.data.display()))
}

async fn init(config: Config, args: InitArgs) -> Result<()> {
    let app = App::new(open_store(&config)?)?;
    let options = BootstrapOptions {
        tenant: args.tenant,
        tenant_name: None,
        owner: args.owner,
        owner_password: args.owner_password,
    };
    let result = app.bootstrap(options, now_ms()).await;
    app.store().close();
    let boot = match result {
        Ok(boot) => boot,
        Err(AppError::Conflict { .. }) => bail!(
            "the store in {} already has an owner; nothing was changed",
            config.data.display()
        ),
        Err(other) => return Err(other.into()),
    };
    if args.json {
        let value = serde_json::json!({
            "tenant": boot.tenant,
            "owner": boot.owner,
            "owner_password": boot.owner_password,
            "owner_token": boot.owner_token,
            "ingest_key": boot.ingest_key,
        });
        println!("{value}");
    } else {
        print_bootstrap(&boot);
    }
    Ok(())
}

fn print_bootstrap(boot: &crate::app::Bootstrap) {
    println!(
        "Created tenant `{}` and owner `{}`. These secrets are shown once:",
        boot.tenant, boot.owner
    );
    println!("  owner password: {}", boot.owner_password);
    println!("  owner token:    {}", boot.owner_token);
    println!("  ingest key:     {}", boot.ingest_key);
}

async fn serve(config: Config) -> Result<()> {
    let app = Arc::new(App::with_settings(open_store(&config)?, config.web())?);
    if !app.is_bootstrapped()? {
        let boot = app.bootstrap(BootstrapOptions::default(), now_ms()).await?;
        print_bootstrap(&boot);
    }
    let listener = bind(config.listen).await?;
    let address = listener.local_addr()?;
    println!("gatewatch listening on http://{address}");
    tracing::info!(%address, data = %config.data.display(), "serving");
    run_server(app, listener, config.limits(), shutdown_signal(), |_| {
        Vec::new()
    })
    .await;
    Ok(())
}

async fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("while binding {listen}"))
}

/// Serves `app` until `shutdown` resolves, with the background jobs and the tasks
/// `extra` spawns (given the jobs' shutdown signal) running alongside; then stops them
/// and drains the write queue. What `serve` and `demo` share.
async fn run_server(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    limits: crate::http::Limits,
    shutdown: impl std::future::Future<Output = ()>,
    extra: impl FnOnce(tokio::sync::watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>>,
) {
    let (stop_jobs, jobs_shutdown) = tokio::sync::watch::channel(false);
    let mut jobs = crate::jobs::spawn_all(app.clone(), jobs_shutdown.clone());
    jobs.extend(extra(jobs_shutdown));
    crate::http::serve(listener, app.clone(), limits, shutdown).await;
    let _ = stop_jobs.send(true);
    for job in jobs {
        let _ = job.await;
    }
    tracing::info!("draining the write queue");
    app.store().close();
    tracing::info!("stopped cleanly");
}

/// A temporary data directory, removed (with the store in it) when dropped.
struct TempData(PathBuf);

impl TempData {
    fn create() -> Result<TempData> {
        let suffix = crate::app::secrets::hex(&crate::app::secrets::random_bytes::<8>()?);
        let path = std::env::temp_dir().join(format!("gatewatch-demo-{suffix}"));
        std::fs::create_dir(&path).with_context(|| format!("while creating {}", path.display()))?;
        Ok(TempData(path))
    }
}

impl Drop for TempData {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            eprintln!("warning: could not remove {}: {error}", self.0.display());
        }
    }
}

async fn demo(args: DemoArgs) -> Result<()> {
    // Declared first, so dropped last: after the store is closed and the app gone.
    let data = TempData::create()?;
    let config = Common {
        data: Some(data.0.clone()),
        listen: args.listen,
        config: None,
    }
    .config()?;
    init_logging(&config.log);
    let listener = bind(config.listen).await?;
    let address = listener.local_addr()?;
    let app = Arc::new(App::with_settings(open_store(&config)?, config.web())?);
    // SIGINT/SIGTERM during the fill stop the demo too, and still remove the directory.
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let now = now_ms();
    let started = std::time::Instant::now();
    let prepare = async {
        let setup = crate::demo::setup(&app, now).await?;
        let set_up = started.elapsed();
        let mut generator = crate::demo::Generator::new(args.seed);
        let (traffic, marks) = generator.history(now, args.days);
        let generated = started.elapsed();
        let stored = crate::demo::fill(app.store(), &setup, traffic).await?;
        tracing::info!(
            events = stored,
            setup_ms = set_up.as_millis() as u64,
            generate_ms = (generated - set_up).as_millis() as u64,
            ingest_ms = (started.elapsed() - generated).as_millis() as u64,
            "demo store filled"
        );
        anyhow::Ok((setup, generator, marks, stored))
    };
    let (setup, generator, marks, stored) = tokio::select! {
        prepared = prepare => prepared?,
        () = &mut shutdown => {
            app.store().close();
            return Ok(());
        }
    };
    print_demo(address, &args, &setup, &marks, stored, started.elapsed());
    let live = {
        let (app, setup) = (app.clone(), setup.clone());
        move |stop| vec![tokio::spawn(crate::demo::live(app, setup, generator, stop))]
    };
    run_server(app, listener, config.limits(), &mut shutdown, live).await;
    drop(data);
    Ok(())
}

fn print_demo(
    address: SocketAddr,
    args: &DemoArgs,
    setup: &crate::demo::DemoSetup,
    marks: &crate::demo::Landmarks,
    stored: usize,
    elapsed: std::time::Duration,
) {
    use crate::demo::{JOIN_TENANT, OAUTH_TENANT, OWNER, OWNER_PASSWORD, VIEWER, VIEWER_PASSWORD};
    use crate::model::time::format_ms;
    let url = format!("http://{address}/");
    println!(
        "gatewatch demo: {stored} events over {} days (seed {}) loaded in {:.1} s; \
         live traffic keeps coming. The store is temporary and deleted on exit.",
        args.days,
        args.seed,
        elapsed.as_secs_f64()
    );
    println!();
    println!("  URL:          {url}");
    println!("  owner login:  {OWNER} / {OWNER_PASSWORD}");
    println!("  viewer login: {VIEWER} / {VIEWER_PASSWORD}  (viewer of both tenants)");
    println!("  owner token:  {}", setup.owner_token);
    println!("  ingest keys:  {OAUTH_TENANT}: {}", setup.oauth_key);
    println!("                {JOIN_TENANT}: {}", setup.join_key);
    println!();
    println!("  Worth a look:");
    println!(
        "  - brute force from {} on {OAUTH_TENANT}, {} to {}",
        crate::demo::ATTACKER_IP,
        format_ms(marks.brute_force.0),
        format_ms(marks.brute_force.1)
    );
    println!(
        "  - join link {} of {JOIN_TENANT} under attack, {} to {}",
        marks.attacked_token,
        format_ms(marks.attack.0),
        format_ms(marks.attack.1)
    );
    println!(
        "  - join link {} idle for over 30 days (/tokens?inactive_days=30)",
        marks.stale_token
    );
    println!();
    println!("  Try:");
    println!(
        "    curl -s '{url}api/v1/tenants/{OAUTH_TENANT}/stats?range=7d' \\\n      \
         -H 'Authorization: Bearer {}'",
        setup.owner_token
    );
    println!(
        "    curl -s -X POST {url}api/v1/events -H 'Authorization: Bearer {}' \\\n      \
         -H 'Content-Type: application/json' \\\n      \
         -d '{{\"type\":\"token.issued\",\"grant_type\":\"authorization_code\",\"client_id\":\"acme-web\",\"user_id\":\"user-00001\"}}'",
        setup.oauth_key
    );
    println!();
    println!("Stop with Ctrl-C (or SIGTERM).");
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
