//! One poll, end to end: scan the window, diff each page against the store,
//! commit the page (snapshots + outbox entries in one transaction), and
//! after the last page record the poll, prune and flush; then deliver.
//!
//! A failed page ends the scan, but every page before it stays committed:
//! the diff never infers anything from an invoice it did not see, so a
//! partial poll is safe, and the next poll carries on. The baseline (silent
//! first poll) is only marked done by a complete scan.

use std::{path::Path, sync::Arc};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::delivery::{self, Sender, Target};
use crate::diff::{DiffContext, Observation, diff};
use crate::poomgo::{PoomgoClient, PoomgoError, ScanPage, poll_window};
use crate::render::Renderer;
use crate::shutdown::Shutdown;
use crate::status::StatusTable;
use crate::store::{PageBatch, Store, StoreError};

/// Everything a poll needs, built once per process from the config.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub client: PoomgoClient,
    pub statuses: Arc<StatusTable>,
    pub targets: Vec<Target>,
    pub sender: Sender,
}

impl App {
    pub fn new(config: Config) -> anyhow::Result<App> {
        let http =
            crate::http_client(config.poomgo.connect_timeout, config.poomgo.request_timeout)?;
        let client = PoomgoClient::new(&config.poomgo, http.clone())?;
        let Delivery {
            statuses,
            sender,
            targets,
        } = Delivery::new(&config, http)?;
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        let store = Store::open(&config.store_path(), config.store.cache_mb, &names)?;
        for (target, pending) in store.orphaned_outboxes()? {
            tracing::warn!(
                target = %target,
                pending,
                "the store holds undelivered entries for a target that is no longer in the config; restore the target to deliver them"
            );
        }
        Ok(App {
            sender,
            config,
            store,
            client,
            statuses,
            targets,
        })
    }

    pub fn load(config_path: &Path) -> anyhow::Result<App> {
        App::new(Config::load(config_path)?)
    }
}

/// The parts of an [`App`] that shape and send messages, without the store
/// or the Poomgo client (`preview` and `check` need only these, and must
/// work while a daemon holds the store's lock).
pub struct Delivery {
    pub statuses: Arc<StatusTable>,
    pub sender: Sender,
    pub targets: Vec<Target>,
}

impl Delivery {
    pub fn new(config: &Config, http: reqwest::Client) -> anyhow::Result<Delivery> {
        let statuses = Arc::new(StatusTable::new(&config.statuses));
        let renderer = Renderer::new(&config.templates_path(), statuses.clone())?;
        let targets = Target::all(config).map_err(anyhow::Error::msg)?;
        for t in &targets {
            if let Some(name) = t.template()
                && !renderer.has(name)
            {
                anyhow::bail!(
                    "target `{}`: template `{name}` does not exist in {} or the built-ins",
                    t.name,
                    config.templates_path().display()
                );
            }
        }
        Ok(Delivery {
            statuses,
            sender: Sender::new(http, Arc::new(renderer)),
            targets,
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PollOptions {
    /// Announce every invoice of the first poll instead of recording silently.
    pub notify_existing: bool,
}

/// What the scan-and-commit half of a poll did.
#[derive(Debug, Default)]
pub struct PollReport {
    pub pages: u32,
    pub invoices_seen: u64,
    pub events: u64,
    pub outbox_entries: u64,
    pub baseline: bool,
    pub pruned: u64,
    /// Snapshots in the store after a complete poll (counted by the prune pass).
    pub invoices_tracked: Option<u64>,
    pub end: ScanEnd,
}

/// How the scan ended. Pages handed out before an early end are committed.
#[derive(Debug, Default)]
pub enum ScanEnd {
    #[default]
    Complete,
    /// Shutdown fired; the page being fetched and the rest were abandoned.
    Interrupted,
    Failed(PoomgoError),
}

impl PollReport {
    pub fn is_complete(&self) -> bool {
        matches!(self.end, ScanEnd::Complete)
    }

    /// Retrying cannot help until the configuration changes (a rejected key).
    pub fn needs_operator(&self) -> bool {
        matches!(&self.end, ScanEnd::Failed(e) if e.is_configuration())
    }

    /// Why the scan ended early, worded for a person.
    pub fn failure(&self) -> Option<String> {
        match &self.end {
            ScanEnd::Complete => None,
            ScanEnd::Interrupted => Some(format!(
                "the poll was interrupted by shutdown; the {} page(s) before were committed",
                self.pages
            )),
            ScanEnd::Failed(e) => Some(format!("the Poomgo scan stopped at {e}")),
        }
    }
}

/// Scans, diffs and commits. Delivery is separate ([`deliver_all`]).
pub async fn poll(
    app: &App,
    options: PollOptions,
    now: DateTime<Utc>,
) -> Result<PollReport, StoreError> {
    poll_until(app, options, now, &Shutdown::new()).await
}

/// As [`poll`], stopping when `stop` fires: pages already committed stay,
/// the page being fetched and the rest are abandoned, uncommitted.
pub async fn poll_until(
    app: &App,
    options: PollOptions,
    now: DateTime<Utc>,
    stop: &Shutdown,
) -> Result<PollReport, StoreError> {
    let baseline = !app.store.baseline_done()? && !options.notify_existing;
    let mut report = PollReport {
        baseline,
        ..PollReport::default()
    };
    let ctx = DiffContext {
        now,
        statuses: &app.statuses,
        baseline,
    };
    let mut scan = app
        .client
        .scan(poll_window(now, app.config.poomgo.lookback_days));
    let mut stopped = stop.clone();
    loop {
        // A shutdown abandons the page being fetched (nothing of it is
        // committed) rather than waiting out a slow upstream.
        let page = tokio::select! {
            biased;
            _ = stopped.wait() => {
                report.end = ScanEnd::Interrupted;
                break;
            }
            page = scan.next_page() => page,
        };
        match page {
            None => break,
            Some(Ok(page)) => {
                let batch = diff_page(app, &page, &ctx, &mut report)?;
                app.store.commit_page(&batch)?;
            }
            Some(Err(e)) => {
                report.end = ScanEnd::Failed(e);
                break;
            }
        }
    }
    let stats = scan.stats();
    report.pages = stats.pages;
    report.invoices_seen = stats.invoices;
    if report.is_complete() {
        app.store.record_successful_poll(now.timestamp())?;
        let retention = i64::from(app.config.store.retention_days) * 86_400;
        let pruned = app.store.prune(now.timestamp() - retention)?;
        report.pruned = pruned.removed;
        report.invoices_tracked = Some(pruned.kept);
    }
    app.store.flush().await?;
    Ok(report)
}

fn diff_page(
    app: &App,
    page: &ScanPage,
    ctx: &DiffContext<'_>,
    report: &mut PollReport,
) -> Result<PageBatch, StoreError> {
    let mut batch = PageBatch::default();
    for row in &page.rows {
        let seen = row
            .invoices
            .iter()
            .map(|i| (i, false))
            .chain(row.canceled_invoices.iter().map(|i| (i, true)));
        for (invoice, canceled) in seen {
            let previous = app.store.snapshot(&invoice.invoice_id)?;
            let detection = diff(
                previous.as_ref(),
                Observation {
                    row,
                    invoice,
                    canceled,
                },
                ctx,
            );
            if let Some(event) = &detection.event {
                report.events += 1;
                crate::metrics::event(event.kind);
                for target in app.targets.iter().filter(|t| t.wants(event)) {
                    batch.entries.push((
                        target.name.clone(),
                        target.entry_for(event, ctx.now.timestamp()),
                    ));
                    report.outbox_entries += 1;
                }
            }
            if detection.needs_write {
                batch
                    .snapshots
                    .push((invoice.invoice_id.clone(), detection.snapshot));
            }
        }
    }
    Ok(batch)
}

/// What delivering every target's outbox did.
#[derive(Debug, Default)]
pub struct DeliveryReport {
    pub delivered: u64,
    pub pending: u64,
    /// (target, reason) for each target whose drain stopped on a failure.
    pub failures: Vec<(String, String)>,
}

/// Drains every target's outbox (targets one after another, each in order).
pub async fn deliver_all(app: &App) -> Result<DeliveryReport, StoreError> {
    let mut report = DeliveryReport::default();
    let never = Shutdown::new();
    for target in &app.targets {
        let r = delivery::drain(&app.store, &app.sender, target, &never).await?;
        report.delivered += r.delivered;
        report.pending += r.pending;
        if let Some(reason) = r.failure {
            report.failures.push((
                target.name.clone(),
                format!("{reason} ({} pending)", r.pending),
            ));
        }
    }
    app.store.flush().await?;
    Ok(report)
}
