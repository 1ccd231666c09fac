//! One poll, end to end: for each window of the plan, scan its pages, diff
//! each page against the store, commit the page (its events' snapshots and
//! outbox entries in one transaction, flushed before anything of it can be
//! sent; see [`crate::store`]), and after the last page record the window's
//! baseline; then prune.
//!
//! What keeps it correct on a bad day:
//!
//! - **A failed or short page ends nothing it should not.** Pages before it
//!   stay committed (the diff never infers anything from an invoice it did not
//!   see), but the poll is not complete: no baseline is recorded, nothing is
//!   pruned, and the caller reports failure.
//! - **Baseline per window.** A window's covered range starts at the first day
//!   a complete scan of it read. When the window reaches further back than
//!   that (new, or `lookback_days` raised), the uncovered days are scanned as
//!   their own query and recorded silently; an invoice first seen in the
//!   covered days is announced. A window with no covered range yet is a
//!   baseline as a whole.
//! - **One invoice, one observation.** An invoice listed by several rows (a
//!   combined shipment, or a row repeated as pages drift, or overlapping
//!   windows) is diffed once per poll, with every row of its page.
//! - **Canceled only when every row says so.** An invoice whose rows all list
//!   it as canceled is held until the scan is complete, because a later page
//!   may list it as active; an incomplete scan drops the held cancellations
//!   (the next poll sees them again).
//! - **Skipped invoices cost only themselves.** The parser leaves out an
//!   invoice with an odd tracked value; the poll counts and logs it once
//!   (path, never value) and skips the invoice in every row for this poll.
//! - **A row that has not changed is not read twice a day.** Once every
//!   invoice of a row has been diffed and committed through that row alone
//!   (no other row of the poll lists it, nothing of it skipped or held), the
//!   store vouches for the row's exact bytes until the end of the
//!   Korea-time day (`rows` in [`crate::store`]). A later poll that receives
//!   the same bytes marks its invoices seen without parsing or diffing them:
//!   most of an idle poll's work. Any byte that differs, any row of the same
//!   page listing one of its invoices, or a held cancellation of one, and
//!   the row is read as before. The first poll of each day reads every row
//!   (that is also when `last_seen` is refreshed for pruning).

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::Arc,
};

use chrono::{DateTime, Days, NaiveDate, Utc};
use tokio::sync::watch;

use crate::config::Config;
pub use crate::delivery::driver::DeliveryReport;
use crate::delivery::{Sender, Target};
use crate::diff::{DiffContext, Observation, OrderRef, Prior, diff};
use crate::poomgo::{Invoice, PoomgoClient, PoomgoError, Reported, Row, ScanPage, Skip, Window};
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
    /// Bumped whenever an outbox changed: after every flushed commit that
    /// queued entries (so nothing a worker reads can be forgotten by a crash),
    /// and after a replay or "retry now". Delivery workers wake on it.
    pub outbox_changed: watch::Sender<u64>,
}

impl App {
    /// The app of a config with one merchant (no `[[merchants]]`, or one
    /// merchant's config from [`Config::merchants`]).
    pub fn new(config: Config) -> anyhow::Result<App> {
        let mut apps = App::open_all(config)?;
        anyhow::ensure!(
            apps.len() == 1,
            "the config has {} merchants: name one with `--merchant`",
            apps.len()
        );
        Ok(apps.remove(0))
    }

    pub fn load(config_path: &Path) -> anyhow::Result<App> {
        App::new(Config::load(config_path)?)
    }

    /// One app per merchant of the file (see [`Config::merchants`]), on one
    /// store, sharing what does not depend on the merchant: the HTTP
    /// clients, the status table, the compiled templates. Per merchant they
    /// cost only their own trees, targets and Poomgo client, so a thousand
    /// small merchants fit in one process.
    pub fn open_all(file: Config) -> anyhow::Result<Vec<App>> {
        let configs = file.merchants();
        let statuses = Arc::new(StatusTable::new(&file.statuses, &file.couriers));
        let mut renderer = Renderer::new(&file.templates_path(), statuses.clone())?;
        if configs.len() > 1 {
            renderer.name_merchants(
                configs
                    .iter()
                    .map(|c| (c.merchant.name.as_str(), c.merchant.display_name.as_str())),
            );
        }
        let renderer = Arc::new(renderer);
        let upstream = Arc::new(tokio::sync::Semaphore::new(file.upstream_in_flight));
        let mut clients: HashMap<(std::time::Duration, std::time::Duration), reqwest::Client> =
            HashMap::new();
        let mut http_for = |connect, request| -> anyhow::Result<reqwest::Client> {
            if let Some(c) = clients.get(&(connect, request)) {
                return Ok(c.clone());
            }
            let c = crate::http::client(connect, request)?;
            clients.insert((connect, request), c.clone());
            Ok(c)
        };
        let mut parts = Vec::with_capacity(configs.len());
        for config in configs {
            let http = http_for(config.poomgo.connect_timeout, config.poomgo.request_timeout)?;
            let client = PoomgoClient::new(&config.poomgo, http.clone())?
                .for_merchant(&config.merchant.name, upstream.clone());
            let Delivery {
                statuses,
                sender,
                targets,
            } = Delivery::sharing(&config, http, statuses.clone(), renderer.clone())?;
            parts.push((config, client, statuses, sender, targets));
        }
        let names: Vec<(String, Vec<&str>)> = parts
            .iter()
            .map(|(c, _, _, _, targets)| {
                (
                    c.merchant.name.clone(),
                    targets.iter().map(|t| t.name.as_str()).collect(),
                )
            })
            .collect();
        let keyspaces: Vec<(&str, &[&str])> = names
            .iter()
            .map(|(m, t)| (m.as_str(), t.as_slice()))
            .collect();
        let stores = Store::open_many(
            &file.store_path(),
            file.store.cache_mb,
            file.store.min_free_mb,
            &keyspaces,
        )?;
        drop(keyspaces);
        drop(names);
        let mut apps = Vec::with_capacity(parts.len());
        for ((config, client, statuses, sender, targets), mut store) in
            parts.into_iter().zip(stores)
        {
            store.keep_history(config.store.history_days > 0);
            for (target, pending) in store.orphaned_outboxes()? {
                tracing::warn!(
                    merchant = %config.merchant.name,
                    target = %target,
                    pending,
                    "the store holds undelivered entries for a target that is no longer in the config; restore the target to deliver them"
                );
            }
            apps.push(App {
                sender,
                config,
                store,
                client,
                statuses,
                targets,
                outbox_changed: watch::Sender::new(0),
            });
        }
        Ok(apps)
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
        let statuses = Arc::new(StatusTable::new(&config.statuses, &config.couriers));
        let mut renderer = Renderer::new(&config.templates_path(), statuses.clone())?;
        if config.merchant.several() {
            renderer.name_merchants([(
                config.merchant.name.as_str(),
                config.merchant.display_name.as_str(),
            )]);
        }
        Delivery::sharing(config, http, statuses, Arc::new(renderer))
    }

    /// The targets of `config`, with a status table and templates shared
    /// with other merchants.
    fn sharing(
        config: &Config,
        http: reqwest::Client,
        statuses: Arc<StatusTable>,
        renderer: Arc<Renderer>,
    ) -> anyhow::Result<Delivery> {
        let targets = config
            .targets
            .iter()
            .map(|t| Target::from_config(t, &config.delivery))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
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
            sender: Sender::new(http, renderer),
            targets,
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PollOptions {
    /// Announce what windows see for the first time instead of recording it silently.
    pub notify_existing: bool,
    /// Read every window of the plan, not only the ones due.
    pub full: bool,
}

/// What the scan-and-commit half of a poll did.
#[derive(Debug, Default)]
pub struct PollReport {
    /// The windows read.
    pub windows: Vec<String>,
    pub pages: u32,
    /// Distinct invoices diffed (or known unchanged).
    pub invoices_seen: u64,
    /// Rows known unchanged since an earlier poll today, not parsed.
    pub rows_unchanged: u64,
    pub events: u64,
    pub outbox_entries: u64,
    /// Some part of the poll was a silent baseline.
    pub baseline: bool,
    pub pruned: u64,
    /// Snapshots in the store after a complete poll (counted by the prune pass).
    pub invoices_tracked: Option<u64>,
    /// Invoices (and rows) left out for odd values, one per invoice and path.
    pub skipped: Vec<Skip>,
    /// Pages that fell short of their `total`, as "`window` page N".
    pub short_pages: Vec<String>,
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
    /// Every window was read to its end and every page held what its `total` promised.
    pub fn is_complete(&self) -> bool {
        matches!(self.end, ScanEnd::Complete) && self.short_pages.is_empty()
    }

    /// Retrying cannot help until the configuration changes (a rejected key).
    pub fn needs_operator(&self) -> bool {
        matches!(&self.end, ScanEnd::Failed(e) if e.is_configuration())
    }

    /// Why the poll is not complete, worded for a person.
    pub fn failure(&self) -> Option<String> {
        match &self.end {
            ScanEnd::Interrupted => Some(format!(
                "the poll was interrupted by shutdown; the {} page(s) before were committed",
                self.pages
            )),
            ScanEnd::Failed(e) => Some(format!("the Poomgo scan stopped at {e}")),
            ScanEnd::Complete if !self.short_pages.is_empty() => Some(format!(
                "the Poomgo scan was incomplete: {} held fewer rows than `total` promised, even when read again; what they held is committed, no baseline was recorded, and the next poll reads them again",
                self.short_pages.join(", ")
            )),
            ScanEnd::Complete => None,
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

/// One part of a window: a day range, announced or recorded silently.
#[derive(Debug)]
struct Part {
    from: NaiveDate,
    to: NaiveDate,
    silent: bool,
}

/// The parts of `window` given the first day its baseline covers: covered
/// days first (so an invoice is announced when any covered day shows it),
/// then the uncovered ones, silently.
fn parts(window: &Window, covered_from: Option<NaiveDate>, notify_existing: bool) -> Vec<Part> {
    let whole = |silent| Part {
        from: window.from,
        to: window.to,
        silent,
    };
    match covered_from {
        _ if notify_existing => vec![whole(false)],
        None => vec![whole(true)],
        Some(c) if c <= window.from => vec![whole(false)],
        Some(c) if c > window.to => vec![whole(true)],
        Some(c) => vec![
            Part {
                from: c,
                to: window.to,
                silent: false,
            },
            Part {
                from: window.from,
                to: c.checked_sub_days(Days::new(1)).unwrap_or(c),
                silent: true,
            },
        ],
    }
}

/// As [`poll`], stopping when `stop` fires: pages already committed stay,
/// the page being fetched and the rest are abandoned, uncommitted.
pub async fn poll_until(
    app: &App,
    options: PollOptions,
    now: DateTime<Utc>,
    stop: &Shutdown,
) -> Result<PollReport, StoreError> {
    let started = std::time::Instant::now();
    let mut report = PollReport::default();
    let mut state = PollState::default();
    let interval = app.config.tick_interval();
    let specs = app.config.plan.specs(app.config.poomgo.lookback_days);
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    for gone in app.store.forget_windows_not_in(&names)? {
        tracing::info!(window = %gone, "this window is no longer in the scan plan: its baseline is forgotten (if it comes back, it starts a new one)");
    }
    let mut windows = Vec::new();
    for spec in specs {
        let last_read = app.store.window_read_at(&spec.name)?;
        if options.full || spec.is_due(last_read, now, interval) {
            windows.push(spec.window_since(now, last_read, app.config.poomgo.lookback_days));
        }
    }
    // Every part of every due window; announced parts first, so an invoice
    // that a covered day shows is announced even when a new window would
    // see it first.
    let mut parts = Vec::new();
    for (w, window) in windows.iter().enumerate() {
        let covered = match app.store.covered_from(&window.name)? {
            Some(c) => Some(c),
            // A schema-1 store: its one baseline covered this window.
            None if window.name == crate::poomgo::plan::CREATED
                && app.store.legacy_baseline_done()? =>
            {
                Some(window.from)
            }
            None => None,
        };
        parts.extend(
            self::parts(window, covered, options.notify_existing)
                .into_iter()
                .map(|p| (w, p)),
        );
    }
    parts.sort_by_key(|(_, p)| p.silent);
    report.windows = windows.iter().map(|w| w.name.clone()).collect();
    let mut incomplete = vec![false; windows.len()];
    for (w, part) in &parts {
        report.baseline |= part.silent;
        if part.silent {
            tracing::info!(window = %windows[*w].name, from = %part.from, to = %part.to, "these days of the window are read for the first time: what they show first is recorded silently (its baseline)");
        }
        let shorts = report.short_pages.len();
        let end = scan_part(app, &windows[*w], part, now, stop, &mut state, &mut report).await?;
        incomplete[*w] |= report.short_pages.len() > shorts;
        if !matches!(end, ScanEnd::Complete) {
            report.end = end;
            incomplete.iter_mut().for_each(|i| *i = true);
            break;
        }
    }
    for (window, incomplete) in windows.iter().zip(&incomplete) {
        if !incomplete {
            app.store.set_covered_from(&window.name, window.from)?;
            app.store
                .set_window_read_at(&window.name, now.timestamp_millis())?;
        }
    }
    report.invoices_seen = state.diffed;
    crate::metrics::rows_unchanged(app.store.merchant(), report.rows_unchanged);
    report_skips(app.store.merchant(), &report.skipped);
    if report.is_complete() {
        app.store.record_successful_poll(now.timestamp())?;
        // Pruning walks every snapshot: once an hour is plenty for a
        // retention counted in days.
        if app
            .store
            .pruned_at()?
            .is_none_or(|at| now.timestamp() - at >= 3600 || at > now.timestamp())
        {
            let retention = i64::from(app.config.store.retention_days) * 86_400;
            let pruned = app.store.prune(now.timestamp() - retention)?;
            app.store.set_pruned_at(now.timestamp())?;
            report.pruned = pruned.removed;
            report.invoices_tracked = Some(pruned.kept);
            let days = i64::from(app.config.store.history_days);
            let before = match days {
                0 => i64::MAX,
                d => now.timestamp_millis() - d * 86_400_000,
            };
            let gone = app.store.history().prune(before)?;
            if gone > 0 {
                tracing::debug!(events = gone, "history pruned");
            }
            app.store.prune_known_rows(day_number(now) - 1)?;
        }
    }
    app.store.record_poll(crate::history::PollRecord {
        at: now.timestamp_millis(),
        took_ms: started.elapsed().as_millis() as u64,
        windows: report.windows.clone(),
        pages: report.pages,
        invoices_seen: state.diffed,
        events: report.events,
        queued: report.outbox_entries,
        baseline: report.baseline,
        skipped: report.skipped.len() as u64,
        error: report.failure(),
    })?;
    app.store.flush().await?;
    Ok(report)
}

/// Scans one part of a window, committing page by page.
async fn scan_part(
    app: &App,
    window: &Window,
    part: &Part,
    now: DateTime<Utc>,
    stop: &Shutdown,
    state: &mut PollState,
    report: &mut PollReport,
) -> Result<ScanEnd, StoreError> {
    let ctx = DiffContext {
        now,
        statuses: &app.statuses,
        baseline: part.silent,
        generation: app.store.generation(),
        merchant: app.store.merchant(),
    };
    let known = Arc::new(app.store.known_rows_on(day_number(now))?);
    let mut scan = app
        .client
        .scan(window.query_days(part.from, part.to))
        .with_known(known);
    let mut stopped = stop.clone();
    let mut short = false;
    let end = loop {
        // A shutdown abandons the page being fetched (nothing of it is
        // committed) rather than waiting out a slow upstream.
        let page = tokio::select! {
            biased;
            _ = stopped.wait() => break ScanEnd::Interrupted,
            page = scan.next_page() => page,
        };
        match page {
            None => break ScanEnd::Complete,
            Some(Ok(page)) => {
                if page.short {
                    short = true;
                    report
                        .short_pages
                        .push(format!("`{}` page {}", window.name, page.number));
                }
                let batch = diff_page(app, &page, &ctx, state, report)?;
                commit(app, &batch).await?;
                if state.vouched.len() >= VOUCH_BATCH {
                    let rows = std::mem::take(&mut state.vouched);
                    app.store.vouch(day_number(now), rows)?;
                }
            }
            Some(Err(e)) => break ScanEnd::Failed(e),
        }
    };
    report.pages += scan.stats().pages;
    app.store
        .vouch(day_number(now), std::mem::take(&mut state.vouched))?;
    let held = std::mem::take(&mut state.held);
    if matches!(end, ScanEnd::Complete) && !short {
        let mut batch = PageBatch::default();
        for h in held.values() {
            let rows = h.rows.rows();
            let rows: Vec<&Row> = rows.iter().collect();
            observe(app, &h.invoice, &rows, true, None, &ctx, &mut batch, report)?;
        }
        commit(app, &batch).await?;
    } else if !held.is_empty() {
        tracing::info!(
            held = held.len(),
            "cancellations seen in an incomplete scan are left for the next poll"
        );
    }
    Ok(end)
}

/// Commits a page's batch; when it queued deliveries, makes it durable
/// before any of them can be sent, then wakes the delivery workers.
async fn commit(app: &App, batch: &PageBatch) -> Result<(), StoreError> {
    app.store.commit_page(batch)?;
    if !batch.entries.is_empty() {
        app.store.flush().await?;
        app.outbox_changed.send_modify(|n| *n += 1);
    }
    Ok(())
}

/// What a poll remembers across its pages and windows.
#[derive(Default)]
struct PollState {
    /// Invoices diffed (or held, or skipped) so far in this poll.
    seen: SeenInvoices,
    /// Invoices every row of which listed them as canceled, waiting for the
    /// end of the scan (a later page may list them as active), by invoice id
    /// (observed in that order at the end).
    held: std::collections::BTreeMap<String, Held>,
    diffed: u64,
    /// Rows of committed pages to record as known (see [`Store::vouch`]).
    vouched: Vec<(u64, crate::store::KnownRowRecord)>,
}

/// Known rows are recorded in sorted batches of this many. Measured at
/// 100,000 orders (baseline, then 10 change polls): per page, the store
/// ended 91 MB on disk; batches of 8,192, 69 MB at the same peak memory;
/// 65,536 at once, 69 MB but 140 MB of memory (sled holds what a batch
/// touches until it is flushed).
const VOUCH_BATCH: usize = 8_192;

struct Held {
    invoice: Invoice,
    rows: HeldRows,
}

/// The rows that listed a held cancellation.
enum HeldRows {
    Whole(Vec<Row>),
    /// Only what names their orders: a first sighting in a baseline
    /// announces nothing, and a baseline holds every canceled invoice of its
    /// window until its end (at 300,000 orders, whole rows were 6.8 MB of a
    /// baseline's peak in heaptrack).
    Named(Vec<crate::diff::OrderRef>),
}

impl HeldRows {
    /// `rows`, whole or by name as the invoice is held. A row repeated (as
    /// pages drift) counts once.
    fn new(rows: &[&Row], named: bool) -> HeldRows {
        let mut held = match named {
            true => HeldRows::Named(Vec::new()),
            false => HeldRows::Whole(Vec::new()),
        };
        held.add(rows);
        held
    }

    fn add(&mut self, rows: &[&Row]) {
        for &row in rows {
            let name = OrderRef::of(row);
            match self {
                HeldRows::Whole(held) if !held.iter().any(|r| OrderRef::of(r) == name) => {
                    held.push(row.clone())
                }
                HeldRows::Named(held) if !held.contains(&name) => held.push(name),
                _ => {}
            }
        }
    }

    fn rows(&self) -> std::borrow::Cow<'_, [Row]> {
        match self {
            HeldRows::Whole(rows) => std::borrow::Cow::Borrowed(rows),
            HeldRows::Named(orders) => orders.iter().map(|o| o.to_row()).collect(),
        }
    }
}

/// One invoice's listings on one page, merged: every row that lists it, and
/// whether all of them list it as canceled.
#[derive(Debug)]
pub struct Listed<'a> {
    /// Borrowed from the page unless listings had to be merged.
    pub invoice: std::borrow::Cow<'a, Invoice>,
    pub rows: Vec<&'a Row>,
    pub all_canceled: bool,
}

/// Groups a page's listings by invoice, in page order. Active listings'
/// reports win over canceled ones; otherwise the first report of a field
/// wins. A row repeated on the page counts once.
pub fn group_page(rows: &[Row]) -> Vec<Listed<'_>> {
    let mut groups: Vec<Listed> = Vec::new();
    let mut index: HashMap<&str, usize, Fx> = HashMap::default();
    for row in rows {
        let listings = row
            .invoices
            .iter()
            .map(|i| (i, false))
            .chain(row.canceled_invoices.iter().map(|i| (i, true)));
        for (invoice, canceled) in listings {
            let id = invoice.invoice_id.as_str();
            match index.get(id) {
                Some(&g) => {
                    let group = &mut groups[g];
                    if !group
                        .rows
                        .iter()
                        .any(|r| r.id == row.id && r.order_code == row.order_code)
                    {
                        group.rows.push(row);
                    }
                    merge(
                        group.invoice.to_mut(),
                        invoice,
                        !canceled && group.all_canceled,
                    );
                    group.all_canceled &= canceled;
                }
                None => {
                    index.insert(id, groups.len());
                    groups.push(Listed {
                        invoice: std::borrow::Cow::Borrowed(invoice),
                        rows: vec![row],
                        all_canceled: canceled,
                    });
                }
            }
        }
    }
    groups
}

/// The Korea-time day of `now` as a number, for known rows.
fn day_number(now: DateTime<Utc>) -> i32 {
    use chrono::Datelike;
    crate::poomgo::kst_day(now).num_days_from_ce()
}

/// The rows of a page to read, each with its digest (`None`: not to be
/// vouched for), and the skips of reading them.
struct PageRows<'a> {
    rows: std::borrow::Cow<'a, [Row]>,
    digests: std::borrow::Cow<'a, [Option<crate::poomgo::RowDigest>]>,
    skipped: std::borrow::Cow<'a, [Skip]>,
}

/// Marks the invoices of the page's known rows seen, except rows that a
/// parsed row of the page, or a held cancellation, shares an invoice with
/// (and so on, until none does): those are parsed after all and returned
/// with the page's other rows.
fn take_known_rows<'a>(
    page: &'a ScanPage,
    state: &mut PollState,
    report: &mut PollReport,
) -> PageRows<'a> {
    let mut out = PageRows {
        rows: std::borrow::Cow::Borrowed(&page.content.rows[..]),
        digests: std::borrow::Cow::Borrowed(&page.content.digests[..]),
        skipped: std::borrow::Cow::Borrowed(&page.content.skipped[..]),
    };
    if page.content.known.is_empty() {
        return out;
    }
    let mut known: Vec<&crate::poomgo::KnownRow> = page.content.known.iter().collect();
    let mut listed: HashSet<&str, Fx> = page.content.rows.iter().flat_map(listed_ids).collect();
    let held = &state.held;
    let mut read = Vec::new();
    loop {
        let (clash, rest): (Vec<_>, Vec<_>) = known.into_iter().partition(|k| {
            k.invoice_ids
                .iter()
                .any(|id| listed.contains(id.as_str()) || held.contains_key(id))
        });
        known = rest;
        if clash.is_empty() {
            break;
        }
        for k in clash {
            listed.extend(k.invoice_ids.iter().map(String::as_str));
            read.push(k);
        }
    }
    if !read.is_empty() {
        let body = page.content.body.as_deref().unwrap_or_default();
        let (rows, digests, skipped) = (
            out.rows.to_mut(),
            out.digests.to_mut(),
            out.skipped.to_mut(),
        );
        for k in read {
            if let Some(row) = crate::poomgo::parse_known_row(body, k, skipped) {
                rows.push(row);
                digests.push(None);
            }
        }
    }
    for k in &known {
        report.rows_unchanged += 1;
        for id in &k.invoice_ids {
            if !state.seen.contains(id) {
                state.seen.insert(id);
                state.diffed += 1;
            }
        }
    }
    out
}

/// The rows of a page it may vouch for, by order id: their digest is clean,
/// their order id is on no other row of the page, and no invoice of theirs
/// was seen before this page or is listed by another row of it. (Held
/// cancellations are left out after the diff.)
fn vouchable(
    rows: &[Row],
    digests: &[Option<crate::poomgo::RowDigest>],
    seen: &SeenInvoices,
) -> HashMap<u64, crate::poomgo::RowDigest, Fx> {
    let mut listings: HashMap<&str, u32, Fx> = HashMap::default();
    let mut orders: HashMap<u64, u32, Fx> = HashMap::default();
    for row in rows {
        let mut ids: Vec<&str> = listed_ids(row).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            *listings.entry(id).or_default() += 1;
        }
        if let Some(order_id) = row.id {
            *orders.entry(order_id).or_default() += 1;
        }
    }
    rows.iter()
        .zip(digests)
        .filter_map(|(row, digest)| Some((row.id?, (*digest)?, row)))
        .filter(|(order_id, _, row)| {
            orders.get(order_id) == Some(&1)
                && listed_ids(row).all(|id| !seen.contains(id) && listings.get(id) == Some(&1))
        })
        .map(|(order_id, digest, _)| (order_id, digest))
        .collect()
}

/// Every invoice id a row lists, active or canceled.
fn listed_ids(row: &Row) -> impl Iterator<Item = &str> {
    row.invoices
        .iter()
        .chain(&row.canceled_invoices)
        .map(|i| i.invoice_id.as_str())
}

fn diff_page(
    app: &App,
    page: &ScanPage,
    ctx: &DiffContext<'_>,
    state: &mut PollState,
    report: &mut PollReport,
) -> Result<PageBatch, StoreError> {
    let mut batch = PageBatch::default();
    // Rows known with other bytes changed since: forget them with this commit.
    batch.forget_rows.extend(&page.content.stale);
    let PageRows {
        rows,
        digests,
        skipped,
    } = take_known_rows(page, state, report);
    for skip in skipped.iter() {
        if let Some(id) = &skip.invoice_id {
            state.seen.insert(id);
        }
        if !report.skipped.iter().any(|s| same_skip(s, skip)) {
            report.skipped.push(skip.clone());
        }
    }
    let vouch = vouchable(&rows, &digests, &state.seen);
    for group in group_page(&rows) {
        let id = group.invoice.invoice_id.as_str();
        if state.seen.contains(id) {
            // Listed again in this poll (drift, another window, another
            // page of a combined shipment): a held cancellation that is
            // listed as active here is active after all; listed as canceled
            // again, it is held with this row's order too.
            if group.all_canceled {
                if let Some(held) = state.held.get_mut(id) {
                    merge(&mut held.invoice, &group.invoice, false);
                    held.rows.add(&group.rows);
                }
            } else if let Some(held) = state.held.remove(id) {
                let mut merged = group.invoice.clone().into_owned();
                merge(&mut merged, &held.invoice, false);
                let held_rows = held.rows.rows();
                let rows: Vec<&Row> = group.rows.iter().copied().chain(&*held_rows).collect();
                observe(app, &merged, &rows, false, None, ctx, &mut batch, report)?;
            }
            continue;
        }
        state.seen.insert(id);
        state.diffed += 1;
        if group.all_canceled {
            let snapshot = app.store.snapshot(&group.invoice.invoice_id)?;
            if !snapshot.as_ref().is_some_and(|s| s.canceled) {
                let named = ctx.baseline && snapshot.is_none();
                let rows = HeldRows::new(&group.rows, named);
                state.held.insert(
                    id.to_owned(),
                    Held {
                        invoice: group.invoice.into_owned(),
                        rows,
                    },
                );
                continue;
            }
        }
        // The row that vouches for this reading, if the page may vouch for it.
        let vouching_row = match group.rows[..] {
            [row] => row.id.filter(|id| vouch.contains_key(id)),
            _ => None,
        };
        observe(
            app,
            &group.invoice,
            &group.rows,
            group.all_canceled,
            vouching_row,
            ctx,
            &mut batch,
            report,
        )?;
    }
    let day = day_number(ctx.now);
    for row in rows.iter() {
        let Some((order_id, digest)) = row.id.and_then(|id| Some((id, *vouch.get(&id)?))) else {
            continue;
        };
        if listed_ids(row).any(|id| state.held.contains_key(id)) {
            continue;
        }
        let mut invoice_ids: Vec<String> = listed_ids(row).map(str::to_owned).collect();
        invoice_ids.sort_unstable();
        invoice_ids.dedup();
        state.vouched.push((
            order_id,
            crate::store::KnownRowRecord {
                digest: digest.0,
                day,
                invoice_ids,
            },
        ));
    }
    Ok(batch)
}

/// `into` takes from `other` every field it did not report. With `prefer`,
/// `other`'s reports win instead (an active listing over canceled ones).
fn merge(into: &mut Invoice, other: &Invoice, prefer: bool) {
    fn pick<T: Clone>(a: &mut Reported<T>, b: &Reported<T>, prefer: bool) {
        if prefer && !matches!(b, Reported::Absent) || matches!(a, Reported::Absent) {
            *a = b.clone();
        }
    }
    fn pick_opt<T: Clone>(a: &mut Option<T>, b: &Option<T>, prefer: bool) {
        if prefer && b.is_some() || a.is_none() {
            *a = b.clone();
        }
    }
    pick(&mut into.invoice_code, &other.invoice_code, prefer);
    pick(
        &mut into.cargo_status_code_key,
        &other.cargo_status_code_key,
        prefer,
    );
    pick_opt(&mut into.is_printed, &other.is_printed, prefer);
    pick_opt(&mut into.is_closed, &other.is_closed, prefer);
    pick_opt(
        &mut into.logistics_partner_name,
        &other.logistics_partner_name,
        prefer,
    );
}

/// Diffs one invoice against the store and adds what it changes to `batch`.
#[allow(clippy::too_many_arguments)]
fn observe(
    app: &App,
    invoice: &Invoice,
    rows: &[&Row],
    canceled: bool,
    vouching_row: Option<u64>,
    ctx: &DiffContext<'_>,
    batch: &mut PageBatch,
    report: &mut PollReport,
) -> Result<(), StoreError> {
    let id = &invoice.invoice_id;
    let snapshot = app.store.snapshot(id)?;
    let tombstone = match snapshot {
        Some(_) => None,
        None => app.store.tombstone(id)?,
    };
    let detection = diff(
        Prior::from_store(snapshot.as_ref(), tombstone),
        Observation {
            invoice,
            rows,
            canceled,
            vouching_row,
        },
        ctx,
    );
    // Read other than through the row that vouched for it alone: that row's
    // record must not skip the invoice again.
    if let Some(old) = snapshot.as_ref().and_then(|s| s.vouched_by)
        && detection.snapshot.vouched_by != Some(old)
    {
        batch.forget_rows.push(old);
    }
    if let Some(event) = &detection.event {
        report.events += 1;
        crate::metrics::event(event.merchant.as_str(), event.kind);
        let mut routed = Vec::new();
        let mut personal_data = false;
        for target in app.targets.iter().filter(|t| t.wants(event)) {
            batch.entries.push((
                target.name.clone(),
                target.entry_for(event, ctx.now.timestamp_millis()),
            ));
            report.outbox_entries += 1;
            routed.push(target.name.clone());
            personal_data |= target.include_personal_data;
        }
        batch.history.push(crate::history::EventRecord::of(
            event,
            routed,
            personal_data,
        ));
    }
    if detection.needs_write {
        let snapshots = match detection.event {
            Some(_) => &mut batch.snapshots,
            None => &mut batch.quiet,
        };
        snapshots.push((id.clone(), detection.snapshot));
    }
    Ok(())
}

/// The same odd listing seen again (a repeated row, another window).
fn same_skip(a: &Skip, b: &Skip) -> bool {
    let field = |s: &Skip| s.path.rsplit('.').next().map(str::to_owned);
    a.order_id == b.order_id
        && a.invoice_id == b.invoice_id
        && a.reason == b.reason
        && field(a) == field(b)
}

/// Logs each skip once and counts it by reason. The log names the order,
/// the invoice and the JSON path, never the value (it may be personal data).
fn report_skips(merchant: &str, skipped: &[Skip]) {
    for s in skipped {
        crate::metrics::skipped(merchant, s.reason.label());
        tracing::warn!(
            order_id = s.order_id,
            invoice_id = s.invoice_id.as_deref().unwrap_or("-"),
            path = %s.path,
            reason = %s.reason,
            "skipped an invoice with an odd value this poll; its stored state is kept and it is read again next poll"
        );
    }
}

/// Invoice ids handed out in one poll: the one part of a poll that grows
/// with the number of invoices. Decimal ids are kept in a compressed bitmap
/// (the vendor's ids are numbers handed out in sequence, and a bitmap takes
/// 8 KB per 65,536 of them: about 150 KB for a million, where a hash set of
/// `u64` takes 18 MB). Anything else, including a number with leading
/// zeros ("007" is not "7"), is kept as text, so two distinct ids never
/// share a key.
#[derive(Default)]
struct SeenInvoices {
    /// Ids that are canonical decimal numbers (the vendor's are).
    numbers: roaring::RoaringTreemap,
    texts: HashSet<Box<str>, Fx>,
}

/// A fast hasher (FxHash's multiply-rotate) for the per-poll sets of ids:
/// SipHash's resistance to flooding buys nothing here and costs a few
/// percent of an idle poll.
#[derive(Default, Clone, Copy)]
struct Fx;

impl std::hash::BuildHasher for Fx {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// `id` as a number when it is one written canonically (no sign, no
/// leading zero), so no two distinct ids share a key.
fn canonical_number(id: &str) -> Option<u64> {
    let canonical = !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && (id == "0" || !id.starts_with('0'));
    if canonical { id.parse().ok() } else { None }
}

impl SeenInvoices {
    fn insert(&mut self, id: &str) -> bool {
        match canonical_number(id) {
            Some(n) => self.numbers.insert(n),
            None if self.texts.contains(id) => false,
            None => self.texts.insert(id.into()),
        }
    }

    fn contains(&self, id: &str) -> bool {
        match canonical_number(id) {
            Some(n) => self.numbers.contains(n),
            None => self.texts.contains(id),
        }
    }
}

/// Delivers what is due for every target now, through the one driver.
pub async fn deliver_all(app: &App) -> Result<DeliveryReport, StoreError> {
    crate::delivery::driver::deliver_all(&app.store, &app.sender, &app.targets).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    fn window() -> Window {
        Window {
            name: "created".into(),
            axis: crate::poomgo::Axis::Created,
            from: day(1),
            to: day(15),
        }
    }

    fn spans(parts: &[Part]) -> Vec<(u32, u32, bool)> {
        use chrono::Datelike;
        parts
            .iter()
            .map(|p| (p.from.day(), p.to.day(), p.silent))
            .collect()
    }

    #[test]
    fn a_window_is_split_at_its_covered_day() {
        let w = window();
        assert_eq!(spans(&parts(&w, None, false)), [(1, 15, true)]);
        assert_eq!(spans(&parts(&w, None, true)), [(1, 15, false)]);
        assert_eq!(spans(&parts(&w, Some(day(1)), false)), [(1, 15, false)]);
        assert_eq!(
            spans(&parts(&w, Some(day(10)), false)),
            [(10, 15, false), (1, 9, true)],
            "widened: the new days are a silent baseline"
        );
        assert_eq!(spans(&parts(&w, Some(day(20)), false)), [(1, 15, true)]);
    }

    #[test]
    fn distinct_ids_never_share_a_seen_key() {
        assert_eq!(canonical_number("456000"), Some(456000));
        assert_eq!(canonical_number("0"), Some(0));
        for text in ["007", "+7", "INV-1", "", "99999999999999999999999"] {
            assert_eq!(canonical_number(text), None, "{text}");
        }
        let mut seen = SeenInvoices::default();
        assert!(seen.insert("7") && seen.insert("007") && seen.insert("+7"));
        assert!(!seen.insert("7") && !seen.insert("007"));
        assert!(seen.contains("+7") && !seen.contains("8") && !seen.contains("0007"));
    }

    #[test]
    fn merging_listings_keeps_the_first_report_unless_preferred() {
        let mut a = Invoice::bare("1");
        a.is_printed = Some(true);
        let mut b = Invoice::bare("1");
        b.is_printed = Some(false);
        b.is_closed = Some(true);
        merge(&mut a, &b, false);
        assert_eq!((a.is_printed, a.is_closed), (Some(true), Some(true)));
        merge(&mut a, &b, true);
        assert_eq!(a.is_printed, Some(false));
    }
}
