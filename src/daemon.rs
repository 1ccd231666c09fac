//! `poomgo-notifier run`: the daemon.
//!
//! - **A value, not a process.** [`run`] takes a [`Daemon`]: the app, the
//!   admin listener already bound, a [`Shutdown`] to stop it and the metrics
//!   handle. `main` listens for signals and installs the metrics recorder;
//!   tests build the same value in-process (port 0, their own shutdown).
//!
//! - **Schedule.** tokio-cron-scheduler fires ticks from `schedule.cron` in
//!   `schedule.timezone`. It would start a job again while the last run is
//!   still going, so every tick first takes the poll lock with `try_lock`:
//!   a tick that finds a poll running is skipped, logged and counted.
//! - **Delivery workers**, one per target, drain their outbox whenever a
//!   poll commits something and retry failures on their own back-off, so a
//!   retry never waits for the next tick.
//! - **Health.** `/healthz` is 200 while the last successful poll is within
//!   three schedule intervals and the store takes a write; 503 with a JSON
//!   reason otherwise, at once when the API key is rejected. Consecutive
//!   failures are logged once when they start and once when they end, not on
//!   every tick.
//! - **A rejected key.** On the first poll after start it is a
//!   misconfiguration: `run` exits 2 (someone is watching). Once a poll of
//!   this process has succeeded, keys get revoked and auth services have
//!   outages: the daemon stays up, keeps delivering its outbox, and polls
//!   again after a back-off that doubles from one tick up to 30 minutes,
//!   recovering by itself when the key works again.
//! - **Shutdown.** SIGINT or SIGTERM: stop scheduling; the poll in progress
//!   commits the page it is on and abandons the rest; no new send starts and
//!   the ones in flight get `shutdown_grace`; then sled is flushed and the
//!   process exits 0. Nothing committed is lost, because an outbox entry is
//!   only removed after a 2xx and the next run picks up where this one stopped.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::task::JoinSet;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::delivery::{driver, pace::Pace};
use crate::poll::{App, PollOptions, poll_until};
use crate::shutdown::Shutdown;

/// What `/healthz` reports from: one lock, so a reader never sees half an update.
struct Health {
    merchant: String,
    state: Mutex<HealthState>,
    interval: Duration,
}

#[derive(Clone, Default)]
struct HealthState {
    last_success: Option<DateTime<Utc>>,
    consecutive_failures: u32,
    last_error: Option<String>,
    /// The last poll's key was rejected.
    key_rejected: bool,
}

/// The longest wait between polls while the key is rejected.
const KEY_BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

/// Polls skipped while the API key is rejected.
#[derive(Default)]
struct KeyBackoff {
    /// No poll before this.
    until: Option<Instant>,
    /// The current wait; doubles per rejection.
    wait: Duration,
}

impl Health {
    fn snapshot(&self) -> HealthState {
        self.state.lock().expect("health lock").clone()
    }
}

/// Everything a tick needs.
struct Poller {
    app: Arc<App>,
    health: Arc<Health>,
    lock: tokio::sync::Mutex<()>,
    shutdown: Shutdown,
    /// A poll of this process has succeeded.
    succeeded: std::sync::atomic::AtomicBool,
    backoff: Mutex<KeyBackoff>,
    /// Set when the daemon must exit because the configuration must change
    /// (only when it serves a single merchant).
    fatal: Option<tokio::sync::mpsc::Sender<String>>,
}

/// Everything the daemon needs from outside, built by `main` for `run` and
/// by tests in-process: the app, the admin listener already bound (so a
/// test binds port 0 and knows where it is), the signal to stop, and the
/// handle `/metrics` renders. Signal handling and installing the global
/// metrics recorder stay with the caller (`main`; [`crate::metrics::install`]).
pub struct Daemon {
    /// One app per merchant ([`App::open_all`]), sharing one store.
    pub apps: Vec<App>,
    /// The admin listener (console, `/api`, `/healthz`, `/metrics`), or
    /// none when `admin.listen` is unset.
    pub listener: Option<tokio::net::TcpListener>,
    /// Triggered to stop cleanly (SIGINT/SIGTERM in `main`).
    pub shutdown: Shutdown,
    pub metrics: PrometheusHandle,
}

impl Daemon {
    /// Binds `admin.listen` when it is set (the error names the key).
    pub async fn bind(
        config: &crate::config::Config,
    ) -> anyhow::Result<Option<tokio::net::TcpListener>> {
        match config.admin.listen {
            Some(addr) => tokio::net::TcpListener::bind(addr)
                .await
                .map(Some)
                .with_context(|| format!("cannot listen on `admin.listen` = {addr}")),
            None => Ok(None),
        }
    }
}

/// Runs the daemon until `daemon.shutdown` is triggered (then `Ok`) or the
/// configuration must change (an API key rejected on the first poll: a
/// [`crate::commands::NeedsOperator`] error).
pub async fn run(daemon: Daemon) -> anyhow::Result<()> {
    let Daemon {
        apps,
        listener,
        shutdown,
        metrics,
    } = daemon;
    anyhow::ensure!(!apps.is_empty(), "no merchant to serve");
    let apps: Vec<Arc<App>> = apps.into_iter().map(Arc::new).collect();
    let first = apps[0].clone();
    let config = &first.config;
    let cron = crate::schedule::parse_cron(&config.schedule.cron).map_err(anyhow::Error::msg)?;
    let tz: chrono_tz::Tz = config
        .schedule
        .timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("`schedule.timezone` is not a time zone"))?;
    let interval = crate::schedule::longest_interval(&cron, tz, Utc::now());
    let mut healths = Vec::with_capacity(apps.len());
    for app in &apps {
        let last_success = app
            .store
            .last_successful_poll()?
            .and_then(|t| DateTime::from_timestamp(t, 0));
        let health = Arc::new(Health {
            merchant: app.config.merchant.name.clone(),
            state: Mutex::new(HealthState {
                last_success,
                ..HealthState::default()
            }),
            interval,
        });
        health.publish();
        healths.push(health);
    }

    if let Some(listener) = listener {
        let local = listener.local_addr()?;
        println!("admin HTTP on http://{local} (console at /, /healthz, /metrics, /api)");
        let seen = healths.clone();
        let upstream = Arc::new(move |merchant: &str| {
            let h = seen
                .iter()
                .find(|h| h.merchant == merchant)
                .map(|h| h.snapshot())
                .unwrap_or_default();
            crate::inspect::Upstream {
                key_rejected: h.key_rejected,
                last_successful_poll: h.last_success.map(|t| t.to_rfc3339()),
                consecutive_failed_polls: h.consecutive_failures,
                last_error: h.last_error,
            }
        });
        let monitors = Router::new()
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics_text))
            .with_state(AdminState {
                apps: apps.clone(),
                healths: healths.clone(),
                metrics,
            });
        let router =
            crate::admin::router(crate::admin::Admin::new(apps.clone(), upstream), monitors);
        let limits = crate::admin::ServeLimits {
            header_timeout: config.admin.header_timeout,
            max_connections: config.admin.max_connections,
        };
        tokio::spawn(crate::admin::serve(
            listener,
            router,
            limits,
            shutdown.clone(),
        ));
    }

    let mut workers = JoinSet::new();
    let paces = Paces::default();
    for app in &apps {
        for index in 0..app.targets.len() {
            let pace = paces.for_target(&app.targets[index]);
            workers.spawn(worker(app.clone(), index, pace, shutdown.clone()));
        }
    }
    for (app, health) in apps.iter().zip(&healths) {
        if app.config.delivery.alerts_to.is_some() {
            workers.spawn(alert_checks(app.clone(), health.clone(), shutdown.clone()));
        }
    }

    let (fatal, mut fatal_rx) = tokio::sync::mpsc::channel(1);
    // With one merchant a key rejected on the first poll is a
    // misconfiguration someone is watching; with several, one merchant's
    // key never stops the others.
    let single = apps.len() == 1;
    let pollers: Vec<Arc<Poller>> = apps
        .iter()
        .zip(&healths)
        .map(|(app, health)| {
            Arc::new(Poller {
                app: app.clone(),
                health: health.clone(),
                lock: tokio::sync::Mutex::new(()),
                shutdown: shutdown.clone(),
                succeeded: Default::default(),
                backoff: Mutex::new(KeyBackoff::default()),
                fatal: single.then(|| fatal.clone()),
            })
        })
        .collect();
    drop(fatal);
    let pollers = Arc::new(pollers);
    let mut scheduler = JobScheduler::new()
        .await
        .context("cannot start the scheduler")?;
    let ticking = pollers.clone();
    let spread = shutdown.clone();
    let job = Job::new_async_tz(config.schedule.cron.as_str(), tz, move |_, _| {
        let pollers = ticking.clone();
        let shutdown = spread.clone();
        Box::pin(async move { tick_all(&pollers, interval, shutdown) })
    })
    .map_err(|e| anyhow::anyhow!("`schedule.cron`: the scheduler refused it: {e}"))?;
    scheduler
        .add(job)
        .await
        .context("cannot schedule the poll")?;
    scheduler
        .start()
        .await
        .context("cannot start the scheduler")?;
    let targets: usize = apps.iter().map(|a| a.targets.len()).sum();
    tracing::info!(cron = %config.schedule.cron, timezone = %tz, merchants = apps.len(), targets, "poomgo-notifier is running");

    let mut stopping = shutdown.clone();
    let fatal = tokio::select! {
        _ = stopping.wait() => None,
        // No sender is left with several merchants: then only a signal stops.
        Some(reason) = fatal_rx.recv() => Some(reason),
    };
    tracing::info!(
        grace_secs = config.shutdown_grace.as_secs_f64(),
        "shutting down"
    );
    shutdown.trigger();
    let _ = scheduler.shutdown().await;
    let deadline = tokio::time::Instant::now() + config.shutdown_grace;
    for poller in pollers.iter() {
        if tokio::time::timeout_at(deadline, poller.lock.lock())
            .await
            .is_err()
        {
            tracing::warn!(
                merchant = %poller.health.merchant,
                "the poll in progress did not finish its page within the grace period; its uncommitted pages are abandoned"
            );
        }
    }
    let drained = tokio::time::timeout_at(deadline, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "sends still in flight after the grace period were cut off; they stay in the outbox and are sent again"
        );
        workers.abort_all();
    }
    // One store under every merchant: one flush makes all of it durable.
    first.store.flush().await?;
    tracing::info!("stopped");
    match fatal {
        Some(reason) => Err(crate::commands::NeedsOperator(reason).into()),
        None => Ok(()),
    }
}

/// One cron tick for every merchant, spread over the interval: merchant `i`
/// of `n` starts `i/n` of an interval after the tick, so a thousand
/// merchants do not all ask the upstream at second 0. Each poll runs on its
/// own task: a merchant whose page takes 30 s delays nobody else (its own
/// next tick is skipped while it runs).
fn tick_all(pollers: &Arc<Vec<Arc<Poller>>>, interval: Duration, shutdown: Shutdown) {
    let n = pollers.len() as u32;
    for (i, poller) in pollers.iter().enumerate() {
        let poller = poller.clone();
        let mut stop = shutdown.clone();
        let delay = (interval / n.max(1)) * i as u32;
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::select! {
                    _ = stop.wait() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            poller.tick().await;
        });
    }
}

/// One pace per target *name*, shared by every merchant that delivers to
/// it: a shared Slack channel gets one message a second in all, not one
/// per merchant.
#[derive(Default)]
struct Paces(Mutex<std::collections::HashMap<String, Arc<Pace>>>);

impl Paces {
    fn for_target(&self, target: &crate::delivery::Target) -> Arc<Pace> {
        self.0
            .lock()
            .expect("paces lock")
            .entry(target.name.clone())
            .or_insert_with(|| Arc::new(Pace::for_target(target)))
            .clone()
    }
}

impl Poller {
    async fn tick(&self) {
        if self.shutdown.is_triggered() {
            return;
        }
        let Ok(_running) = self.lock.try_lock() else {
            crate::metrics::poll_skipped(&self.health.merchant);
            tracing::warn!(merchant = %self.health.merchant, "cron tick skipped: the previous poll is still running");
            return;
        };
        if let Some(until) = self.backoff.lock().expect("backoff lock").until
            && Instant::now() < until
        {
            tracing::debug!("cron tick skipped: waiting before trying the rejected key again");
            return;
        }
        let started = Instant::now();
        let now = Utc::now();
        let outcome = poll_until(&self.app, PollOptions::default(), now, &self.shutdown).await;
        let took = started.elapsed();
        let (ok, error, pages) = match &outcome {
            Ok(r) => (r.is_complete(), r.failure(), r.pages),
            Err(e) => (false, Some(e.to_string()), 0),
        };
        let tracked = outcome.as_ref().ok().and_then(|r| r.invoices_tracked);
        crate::metrics::poll(&self.health.merchant, ok, took, pages, tracked);
        let key_rejected = matches!(&outcome, Ok(r) if r.needs_operator());
        if key_rejected {
            let reason = error.clone().unwrap_or_default();
            if !self.succeeded.load(std::sync::atomic::Ordering::SeqCst)
                && let Some(fatal) = &self.fatal
            {
                tracing::error!(%reason, "the API key was rejected on the first poll: check `poomgo.api_key`");
                let _ = fatal.try_send(reason);
                return;
            }
            let mut b = self.backoff.lock().expect("backoff lock");
            b.wait = if b.wait.is_zero() {
                self.health.interval
            } else {
                (b.wait * 2).min(KEY_BACKOFF_MAX)
            };
            b.until = Some(Instant::now() + b.wait);
            tracing::error!(merchant = %self.health.merchant, %reason, retry_in_secs = b.wait.as_secs(), "the API key was rejected; delivery goes on, and polling backs off until the key works again");
        } else if ok {
            self.succeeded
                .store(true, std::sync::atomic::Ordering::SeqCst);
            *self.backoff.lock().expect("backoff lock") = KeyBackoff::default();
        }
        if let Ok(r) = &outcome {
            tracing::info!(
                merchant = %self.health.merchant,
                ok,
                windows = %r.windows.join(","),
                pages = r.pages,
                invoices = r.invoices_seen,
                rows_unchanged = r.rows_unchanged,
                events = r.events,
                queued = r.outbox_entries,
                baseline = r.baseline,
                pruned = r.pruned,
                took_ms = took.as_millis() as u64,
                error = error.as_deref().unwrap_or(""),
                "poll finished"
            );
            for target in &self.app.targets {
                match driver::record_metrics(&self.app.store, &target.name) {
                    Ok((pending, dead)) if pending + dead > 0 => {
                        tracing::info!(merchant = %self.health.merchant, target = %target.name, pending, dead_letters = dead, "outbox");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(target = %target.name, error = %e, "the outbox cannot be read");
                    }
                }
            }
        }
        self.record(ok, now, error, key_rejected);
    }

    /// Updates health; logs only when polls start or stop failing.
    fn record(&self, ok: bool, at: DateTime<Utc>, error: Option<String>, key_rejected: bool) {
        if !ok && self.shutdown.is_triggered() {
            return;
        }
        {
            let mut h = self.health.state.lock().expect("health lock");
            let merchant = &self.health.merchant;
            if ok {
                if h.consecutive_failures > 0 {
                    tracing::info!(%merchant, failed_polls = h.consecutive_failures, "polls recovered");
                }
                *h = HealthState {
                    last_success: Some(at),
                    ..HealthState::default()
                };
            } else {
                let reason = error.unwrap_or_else(|| "unknown".into());
                if h.consecutive_failures == 0 {
                    tracing::error!(%merchant, %reason, "polls are failing; /healthz counts this merchant unhealthy after three intervals without success");
                }
                h.consecutive_failures += 1;
                h.last_error = Some(reason);
                h.key_rejected = key_rejected;
            }
        }
        self.health.publish();
    }
}

/// One target's worker: runs the driver's rounds while something is due,
/// then sleeps until the next entry is due, the outbox changes (a poll
/// committed, an operator replayed) or shutdown fires. A send in flight at
/// shutdown finishes first. Back-off lives in the entries, not here, so a
/// restart neither forgets it nor sends early.
async fn worker(app: Arc<App>, index: usize, pace: Arc<Pace>, mut shutdown: Shutdown) {
    let target = &app.targets[index];
    let mut changed = app.outbox_changed.subscribe();
    let mut gauges_at = Instant::now();
    loop {
        if shutdown.is_triggered() {
            return;
        }
        changed.mark_unchanged();
        let round = driver::round(&app.store, &app.sender, target, &pace, &shutdown).await;
        let busy = matches!(&round, Ok(r) if r.sent > 0);
        if !busy || gauges_at.elapsed() >= Duration::from_secs(1) {
            gauges_at = Instant::now();
            if let Err(e) = driver::record_metrics(&app.store, &target.name) {
                tracing::error!(target = %target.name, error = %e, "the outbox cannot be read");
            }
        }
        let wait = match round {
            Ok(round) if round.sent > 0 => continue,
            Ok(round) => round
                .next_at
                .map(|at| Duration::from_millis((at - driver::now_ms()).max(0) as u64)),
            Err(e) => {
                tracing::error!(merchant = %app.config.merchant.name, target = %target.name, error = %e, "the outbox cannot be read");
                Some(Duration::from_secs(5))
            }
        };
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = changed.changed() => {}
            _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
        }
    }
}

/// Checks the self-alert conditions every few seconds (see
/// [`crate::delivery::alerts`]).
async fn alert_checks(app: Arc<App>, health: Arc<Health>, mut shutdown: Shutdown) {
    let every = (app.config.delivery.alert_after / 4)
        .clamp(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let polling = crate::delivery::alerts::PollingHealth {
            failing: health.failing_for_three_intervals(),
        };
        if let Err(e) = crate::delivery::alerts::check(
            &app.store,
            &app.sender,
            &app.targets,
            &app.config.delivery,
            &polling,
            driver::now_ms(),
        )
        .await
        {
            tracing::error!(error = %e, "the alert state cannot be read");
        }
        tracing::debug!("alert check done");
    }
}

impl Health {
    /// Why polling has failed for three intervals or more, if it has.
    fn failing_for_three_intervals(&self) -> Option<String> {
        let h = self.snapshot();
        if h.consecutive_failures == 0 {
            return None;
        }
        let reason = h.last_error.clone().unwrap_or_default();
        if h.key_rejected {
            return Some(format!("API key rejected: {reason}"));
        }
        let stale = match h.last_success {
            None => true,
            Some(at) => (Utc::now() - at).to_std().unwrap_or_default() > self.interval * 3,
        };
        (stale && h.consecutive_failures >= 3).then_some(reason)
    }
}

#[derive(Clone)]
struct AdminState {
    apps: Vec<Arc<App>>,
    healths: Vec<Arc<Health>>,
    metrics: PrometheusHandle,
}

impl Health {
    /// Whether this merchant's polling is healthy, and if not, why: its key
    /// is rejected, no poll has succeeded yet, or the last success is more
    /// than three intervals old.
    fn verdict(&self, h: &HealthState) -> Result<DateTime<Utc>, String> {
        if h.key_rejected {
            return Err(
                "API key rejected: the Poomgo API answers 401/403; polling backs off and delivery goes on"
                    .into(),
            );
        }
        let Some(at) = h.last_success else {
            return Err("no poll has succeeded yet".into());
        };
        let limit = self.interval * 3;
        let age = (Utc::now() - at).to_std().unwrap_or_default();
        if age > limit {
            return Err(format!(
                "the last successful poll was {:.1}s ago, more than three intervals ({}s)",
                age.as_secs_f64(),
                limit.as_secs()
            ));
        }
        Ok(at)
    }

    /// Sets this merchant's health gauges.
    fn publish(&self) {
        let h = self.snapshot();
        crate::metrics::merchant_health(
            &self.merchant,
            self.verdict(&h).is_ok(),
            h.key_rejected,
            h.consecutive_failures,
        );
    }
}

/// `/healthz`. Each merchant is judged on its own ([`Health::verdict`]);
/// the process is healthy (200) while the store takes a write and at least
/// one merchant is: `ok` when all are, `degraded` (still 200, naming the
/// others) when some are not, `unhealthy` (503) when none is. Restarting
/// the process would not mend one merchant's key or upstream, and the
/// healthy merchants must not be restarted with it. With a single merchant
/// the body has the same top-level fields it always had.
async fn healthz(State(s): State<AdminState>) -> impl IntoResponse {
    let mut merchants = serde_json::Map::new();
    let mut broken = Vec::new();
    let mut single = None;
    for (app, health) in s.apps.iter().zip(&s.healths) {
        let h = health.snapshot();
        let verdict = health.verdict(&h);
        health.publish();
        let targets = target_details(app);
        let mut detail = json!({
            "status": if verdict.is_ok() { "ok" } else { "unhealthy" },
            "last_successful_poll": h.last_success.map(|t| t.to_rfc3339()),
            "consecutive_failed_polls": h.consecutive_failures,
            "key_rejected": h.key_rejected,
            "targets": targets,
        });
        if let Err(reason) = &verdict {
            detail["reason"] = json!(reason);
            detail["last_error"] = json!(h.last_error);
            broken.push(health.merchant.clone());
        }
        merchants.insert(health.merchant.clone(), detail);
        single = Some((h, verdict, targets));
    }
    let store = s.apps[0]
        .store
        .probe_write()
        .err()
        .map(|e| format!("the store is not writable: {e}"));
    let merchants = serde_json::Value::Object(merchants);
    if s.apps.len() == 1
        && let Some((h, verdict, targets)) = single
    {
        let reason = verdict.as_ref().err().cloned().or(store);
        return match (reason, verdict) {
            (None, Ok(at)) => (
                StatusCode::OK,
                Json(json!({
                    "status": "ok",
                    "last_successful_poll": at.to_rfc3339(),
                    "consecutive_failed_polls": h.consecutive_failures,
                    "targets": targets,
                    "merchants": merchants,
                })),
            ),
            (reason, _) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unhealthy",
                    "reason": reason,
                    "last_successful_poll": h.last_success.map(|t| t.to_rfc3339()),
                    "consecutive_failed_polls": h.consecutive_failures,
                    "last_error": h.last_error,
                    "targets": targets,
                    "merchants": merchants,
                })),
            ),
        };
    }
    let n = s.apps.len();
    let (code, status, reason) = if let Some(reason) = store {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy", Some(reason))
    } else if broken.is_empty() {
        (StatusCode::OK, "ok", None)
    } else if broken.len() < n {
        (
            StatusCode::OK,
            "degraded",
            Some(format!(
                "{} of {n} merchants unhealthy: {}",
                broken.len(),
                broken.join(", ")
            )),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            Some(format!(
                "every merchant is unhealthy: {}",
                broken.join(", ")
            )),
        )
    };
    (
        code,
        Json(json!({
            "status": status,
            "reason": reason,
            "unhealthy_merchants": broken,
            "merchants": merchants,
        })),
    )
}

/// Per target: pending, dead letters, failing and why. Delivery trouble is
/// shown here but does not make the process unhealthy (restarting it would
/// not help a receiver that is down; the self-alerts say so instead).
fn target_details(app: &App) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for t in &app.targets {
        let Ok(queue) = app.store.queue(&t.name) else {
            continue;
        };
        let state = queue.state().unwrap_or_default();
        out.insert(
            t.name.clone(),
            json!({
                "pending": queue.pending_len(),
                "dead_letters": queue.dead_len(),
                "failing": state.failing_since.is_some() || state.gone,
                "failing_since": state.failing_since.map(crate::operate::time),
                "reason": state.reason,
                "last_success": state.last_success.map(crate::operate::time),
            }),
        );
    }
    serde_json::Value::Object(out)
}

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        s.metrics.render(),
    )
}
