//! The command line. Everything it runs lives in the library (`commands`).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use poomgo_notifier::{
    commands,
    sim::{FaultRule, SimOptions},
};

#[derive(Parser)]
#[command(
    name = "poomgo-notifier",
    version,
    about = "Tells Slack and signed webhooks when a Poomgo shipment changes."
)]
struct Cli {
    /// Log lines as human-readable text (default) or JSON for log shippers. Filter with RUST_LOG.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr; stdout is for what a command reports.
fn init_logging(format: LogFormat) {
    // Dependencies only speak up for problems unless RUST_LOG asks for more.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        "info,hyper=warn,reqwest=warn,sled=warn,tokio_cron_scheduler=warn".into()
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve a local simulator of the Poomgo OMS orders API.
    Sim {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Orders the generated merchant starts with.
        #[arg(long, default_value_t = 300)]
        orders: usize,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Advance time one step this often (e.g. "2s"); frozen when absent.
        #[arg(long, value_parser = humantime::parse_duration)]
        tick: Option<Duration>,
        /// The first merchant's key; the others' are KEY-2, KEY-3, ….
        #[arg(long, default_value = "sim-key")]
        api_key: String,
        /// Merchants served, each with its own key and --orders orders.
        #[arg(long, default_value_t = 1)]
        merchants: usize,
        /// Inject a fault: KIND[:ARG][@PAGE][xTIMES], e.g. 500@3x2, 429:2@1, slow:1500ms, notjson@4, truncated.
        #[arg(long = "fault", value_parser = FaultRule::parse)]
        faults: Vec<FaultRule>,
    },
    /// The daemon: polls on the cron schedule, delivers continuously, serves /healthz and /metrics.
    Run {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Poll once: scan, detect changes, commit, deliver, exit (non-zero when anything failed).
    Poll {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// Only this merchant (a name from `[[merchants]]`); every merchant when absent.
        #[arg(long)]
        merchant: Option<String>,
        /// On the first poll of an empty store, send invoice.assigned for every invoice instead of recording silently.
        #[arg(long)]
        notify_existing: bool,
        /// Read every window of the scan plan, not only the ones due.
        #[arg(long)]
        full: bool,
    },
    /// The simulator, the notifier and a local receiver together: watch alerts flow (Ctrl-C stops).
    Demo {
        #[arg(long, default_value_t = 300)]
        orders: usize,
        /// How often simulated time moves.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        tick: Duration,
        /// How often the notifier polls.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        every: Duration,
    },
    /// Validate the config and templates (each rendered against sample events in strict mode).
    Check {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// Only this merchant (a name from `[[merchants]]`); every merchant when absent.
        #[arg(long)]
        merchant: Option<String>,
        /// Also call the Poomgo API once (page 1, size 1) to see whether the key works, and probe
        /// each target without posting where the service allows it.
        #[arg(long)]
        online: bool,
        /// Send one clearly marked test message (Slack) or `webhook.test` event to each target.
        #[arg(long)]
        send_test: bool,
    },
    /// Print exactly the body a target would send for an event (headers on stderr).
    Preview {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        #[arg(long)]
        target: String,
        /// An event JSON file (as a webhook receives it).
        #[arg(long, conflicts_with = "kind")]
        event: Option<PathBuf>,
        /// A sample event of this kind, e.g. invoice.status_changed (the default).
        #[arg(long)]
        kind: Option<poomgo_notifier::event::EventType>,
        /// Show the message as a person reads it in the channel instead of the JSON body.
        #[arg(long)]
        readable: bool,
    },
    /// List pending deliveries per target, oldest first (through the daemon when it runs).
    Outbox {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// Only this merchant (a name from `[[merchants]]`); every merchant when absent.
        #[arg(long)]
        merchant: Option<String>,
        #[arg(long)]
        target: Option<String>,
    },
    /// List, show, replay or purge dead letters (through the daemon when it runs).
    DeadLetters {
        #[arg(long, default_value = "config.toml", global = true)]
        config: PathBuf,
        /// Only this merchant (a name from `[[merchants]]`); every merchant when absent.
        #[arg(long, global = true)]
        merchant: Option<String>,
        #[command(subcommand)]
        action: DeadLettersCommand,
    },
    /// Store maintenance: `store rebuild` moves a damaged store aside and starts a fresh one.
    Store {
        #[command(subcommand)]
        action: StoreCommand,
    },
    /// Scan the poll window once and print what the API returned (no store, no delivery).
    Scan {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// Only this merchant (a name from `[[merchants]]`); every merchant when absent.
        #[arg(long)]
        merchant: Option<String>,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Move the store aside (never deleting it) and start a fresh one with a new generation.
    Rebuild {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum DeadLettersCommand {
    /// One line per dead letter: event id, target, invoice, order, type, when, why.
    List {
        #[arg(long)]
        target: Option<String>,
    },
    /// One dead letter with its event (personal data masked).
    Show { event_id: String },
    /// Move dead letters back to the outbox: attempts reset, event ids kept.
    Replay {
        /// Event ids to replay.
        event_ids: Vec<String>,
        /// Replay every dead letter (of `--target`, or of every target).
        #[arg(long, conflicts_with = "event_ids")]
        all: bool,
        #[arg(long, requires = "all")]
        target: Option<String>,
    },
    /// Remove dead letters older than a duration, e.g. 30d.
    Purge {
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Duration,
        #[arg(long)]
        target: Option<String>,
    },
}

/// glibc's malloc gives each thread that allocates an arena of its own, up
/// to eight per core, and memory freed in one arena is not reused by
/// another. The notifier's threads (the runtime's workers, sled's flusher
/// and I/O pool) each hold freed memory that way: a 1,000,000-order change
/// poll peaked at 152 MiB with glibc's default, 139 MiB with two arenas and
/// 130 MiB with one, in the same time (`MALLOC_ARENA_MAX`, one store copied
/// three times). Two arenas: little contention on these 2-core machines.
/// `MALLOC_ARENA_MAX` set by the operator wins. Called first thing, while
/// this is the only thread.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a malloc parameter; nothing else runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sim {
                listen,
                orders,
                seed,
                tick,
                api_key,
                merchants,
                faults,
            } => {
                let options = SimOptions {
                    orders,
                    seed,
                    tick,
                    api_key,
                    merchants,
                    faults,
                    ..SimOptions::default()
                };
                commands::sim(listen, options).await
            }
            Command::Scan { config, merchant } => {
                commands::scan(&config, merchant.as_deref()).await
            }
            Command::Store {
                action: StoreCommand::Rebuild { config },
            } => commands::store_rebuild(&config),
            Command::Outbox {
                config,
                merchant,
                target,
            } => commands::outbox(&config, merchant.as_deref(), target.as_deref()).await,
            Command::DeadLetters {
                config,
                merchant,
                action,
            } => {
                use commands::DeadLettersAction as A;
                let action = match action {
                    DeadLettersCommand::List { target } => A::List { target },
                    DeadLettersCommand::Show { event_id } => A::Show { event_id },
                    DeadLettersCommand::Replay {
                        event_ids,
                        all: true,
                        target,
                    } => {
                        let _ = event_ids;
                        A::ReplayAll { target }
                    }
                    DeadLettersCommand::Replay {
                        event_ids,
                        all: false,
                        ..
                    } if event_ids.is_empty() => {
                        return Err(commands::NeedsOperator(
                            "name the event ids to replay, or pass --all".into(),
                        )
                        .into());
                    }
                    DeadLettersCommand::Replay { event_ids, .. } => A::Replay { event_ids },
                    DeadLettersCommand::Purge { older_than, target } => {
                        A::Purge { older_than, target }
                    }
                };
                commands::dead_letters(&config, merchant.as_deref(), action).await
            }
            Command::Run { config } => {
                match poomgo_notifier::config::Config::load(&config)
                    .map_err(anyhow::Error::from)
                    .and_then(poomgo_notifier::poll::App::open_all)
                {
                    Ok(apps) => run_daemon(apps).await,
                    Err(e) => Err(e),
                }
            }
            Command::Check {
                config,
                merchant,
                online,
                send_test,
            } => commands::check(&config, merchant.as_deref(), online, send_test).await,
            Command::Preview {
                config,
                target,
                event,
                kind,
                readable,
            } => commands::preview(&config, &target, event.as_deref(), kind, readable),
            Command::Poll {
                config,
                merchant,
                notify_existing,
                full,
            } => {
                commands::poll(
                    &config,
                    merchant.as_deref(),
                    poomgo_notifier::poll::PollOptions {
                        notify_existing,
                        full,
                    },
                )
                .await
            }
            Command::Demo {
                orders,
                tick,
                every,
            } => {
                poomgo_notifier::demo::run(poomgo_notifier::demo::DemoOptions {
                    orders,
                    tick,
                    every,
                })
                .await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(commands::exit_code(&e))
        }
    }
}

/// `poomgo-notifier run` as `main` calls it: stops on SIGINT/SIGTERM,
/// listened for before anything else so a signal while starting is not lost.
async fn run_daemon(apps: Vec<poomgo_notifier::poll::App>) -> anyhow::Result<()> {
    let mut signals = StopSignals::listen()?;
    let metrics = poomgo_notifier::metrics::install()?;
    let listener = poomgo_notifier::daemon::Daemon::bind(&apps[0].config).await?;
    let shutdown = poomgo_notifier::shutdown::Shutdown::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        signals.wait().await;
        stop.trigger();
    });
    poomgo_notifier::daemon::run(poomgo_notifier::daemon::Daemon {
        apps,
        listener,
        shutdown,
        metrics,
    })
    .await
}

/// SIGINT and SIGTERM, listened for from the start of `run`, so a signal that
/// arrives while the daemon is still starting is not lost.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
