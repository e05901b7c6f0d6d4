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
    /// Give the free space inside the store file back to the file system (server stopped).
    Compact(Common),
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
                "{} events; {} counter, {} token, {} index and {} sketch mismatches",
                report.events,
                report.counter_mismatches,
                report.token_mismatches,
                report.index_mismatches,
                report.sketch_mismatches
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
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("while binding {}", config.listen))?;
    let address = listener.local_addr()?;
    println!("gatewatch listening on http://{address}");
    tracing::info!(%address, data = %config.data.display(), "serving");
    let (stop_jobs, jobs_shutdown) = tokio::sync::watch::channel(false);
    let jobs = crate::jobs::spawn_all(app.clone(), jobs_shutdown);
    crate::http::serve(listener, app.clone(), config.limits(), shutdown_signal()).await;
    let _ = stop_jobs.send(true);
    for job in jobs {
        let _ = job.await;
    }
    tracing::info!("draining the write queue");
    app.store().close();
    tracing::info!("stopped cleanly");
    Ok(())
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
