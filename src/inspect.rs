//! What an operator can look at, as plain data: the overview (`/api/status`),
//! search (`/api/search`) and an invoice's timeline (`/api/invoices/{id}`).
//! The console's pages and the JSON API render the same views, so what a
//! person reads and what a script reads never disagree.
//!
//! A timeline is built from the event history ([`crate::history`]): each
//! detected change with its Korean wording (the labels Slack messages use),
//! and under it each routed target's attempts and where the event stands
//! there now. Personal data is masked; URLs carrying tokens are never shown.

use serde::Serialize;
use serde_json::Value;

use crate::delivery::Target;
use crate::delivery::driver::now_ms;
use crate::event::Event;
use crate::history::{Attempt, AttemptOutcome, EventRecord, PollRecord};
use crate::operate::{OpError, time};
use crate::poomgo::InvoiceId;
use crate::render::{Lang, Renderer};
use crate::store::Store;

/// The upstream's state as the daemon last saw it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Upstream {
    pub key_rejected: bool,
    pub last_successful_poll: Option<String>,
    pub consecutive_failed_polls: u32,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub upstream: Upstream,
    /// Newest first.
    pub polls: Vec<PollView>,
    pub targets: Vec<TargetView>,
    /// Events the history holds, and for how many days.
    pub history_events: usize,
    pub history_days: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct PollView {
    pub at: String,
    pub at_kst: String,
    pub took_ms: u64,
    pub windows: Vec<String>,
    pub pages: u32,
    pub invoices_seen: u64,
    pub events: u64,
    pub queued: u64,
    pub baseline: bool,
    pub skipped: u64,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    pub name: String,
    pub kind: &'static str,
    pub pending: usize,
    /// Age of the oldest pending entry, in seconds.
    pub oldest_pending_secs: Option<i64>,
    pub dead_letters: usize,
    pub failing: bool,
    pub reason: Option<String>,
    pub last_success: Option<String>,
}

/// The overview.
pub fn status(
    store: &Store,
    targets: &[Target],
    upstream: Upstream,
    history_days: u32,
) -> Result<Status, OpError> {
    let now = now_ms();
    let polls = store
        .recent_polls()?
        .into_iter()
        .rev()
        .map(poll_view)
        .collect();
    let mut views = Vec::new();
    for t in targets {
        let queue = store.queue(&t.name)?;
        let state = queue.state()?;
        views.push(TargetView {
            name: t.name.clone(),
            kind: t.kind.as_str(),
            pending: queue.pending_len(),
            oldest_pending_secs: queue
                .oldest_enqueued_at()?
                .map(|at| ((now - at) / 1000).max(0)),
            dead_letters: queue.dead_len(),
            failing: state.failing_since.is_some() || state.gone,
            reason: state.reason,
            last_success: state.last_success.map(time),
        });
    }
    Ok(Status {
        upstream,
        polls,
        targets: views,
        history_events: store.history().len(),
        history_days,
    })
}

fn poll_view(p: PollRecord) -> PollView {
    let at = time(p.at);
    PollView {
        at_kst: crate::render::kst(&at).unwrap_or_default(),
        at,
        took_ms: p.took_ms,
        windows: p.windows,
        pages: p.pages,
        invoices_seen: p.invoices_seen,
        events: p.events,
        queued: p.queued,
        baseline: p.baseline,
        skipped: p.skipped,
        ok: p.error.is_none(),
        error: p.error,
    }
}

/// One invoice a search found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// Whose invoice it is (a search runs across every merchant).
    pub merchant: String,
    pub invoice_id: String,
    /// What the query matched: `invoice_id`, `event_id`, `order_code` or `invoice_code`.
    pub matched: &'static str,
    pub order_codes: Vec<String>,
    pub invoice_code: Option<String>,
    pub status: Option<String>,
    pub events: usize,
    pub last_event_at: Option<String>,
    /// The timeline, for the first hits (see [`search`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice: Option<InvoiceView>,
}

/// The invoices `query` names (order code, tracking number, invoice id or
/// event id; exact, trimmed; dashes in a tracking number ignored).
///
/// The first `timelines` hits carry their whole timeline (`invoice`); each
/// hit's history is read once either way.
pub fn search(
    store: &Store,
    renderer: &Renderer,
    query: &str,
    timelines: usize,
) -> Result<Vec<Found>, OpError> {
    let mut hits = store.history().search(query)?;
    let q = query.trim();
    if !q.is_empty()
        && !hits.iter().any(|h| h.invoice_id == q)
        && store.snapshot(&InvoiceId(q.to_owned()))?.is_some()
    {
        // Tracked, but nothing has happened to it since the history began.
        hits.push(crate::history::Hit {
            invoice_id: q.to_owned(),
            matched: "invoice_id",
        });
    }
    let mut out = Vec::new();
    for (i, hit) in hits.into_iter().enumerate() {
        let records = store.history().timeline(&hit.invoice_id)?;
        let last = records.last();
        let mut found = Found {
            order_codes: last.map(|r| r.order_codes.clone()).unwrap_or_default(),
            invoice_code: last.and_then(|r| r.invoice_code.clone()),
            status: last.and_then(|r| r.event()).map(|e| e.invoice.status.label),
            events: records.len(),
            last_event_at: last.map(|r| time(r.detected_at)),
            invoice: None,
            merchant: store.merchant().to_owned(),
            invoice_id: hit.invoice_id,
            matched: hit.matched,
        };
        if i < timelines {
            found.invoice = view(store, renderer, &found.invoice_id, &records)?;
        }
        out.push(found);
    }
    Ok(out)
}

/// One invoice: what it is now and everything that happened to it.
#[derive(Debug, Clone, Serialize)]
pub struct InvoiceView {
    pub invoice_id: String,
    /// The store tracks it now (it has not been pruned).
    pub tracked: bool,
    pub order_codes: Vec<String>,
    pub invoice_code: Option<String>,
    pub courier: Option<String>,
    pub tracking_url: Option<String>,
    /// The last status a change reported, in Korean.
    pub status: Option<String>,
    pub status_emoji: Option<String>,
    /// Oldest first.
    pub events: Vec<TimelineEvent>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineEvent {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Korean: 배송 상태 변경, 송장 출력, …
    pub type_label: String,
    /// Korean: 배송출발 → 배송완료, …
    pub summary: String,
    pub emoji: String,
    pub status: String,
    pub detected_at: String,
    pub detected_kst: String,
    pub deliveries: Vec<DeliveryView>,
    /// The event as recorded (personal data masked or absent).
    pub event: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    pub target: String,
    /// `pending`, `retrying`, `delivered`, `dead`, `purged`.
    pub state: &'static str,
    /// A dead letter that is still there to replay.
    pub replayable: bool,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub at: String,
    pub at_kst: String,
    pub outcome: &'static str,
    pub status: Option<u16>,
    pub detail: Option<String>,
    pub next_attempt_at: Option<String>,
}

/// The timeline of `invoice_id`; `None` when neither the history nor the
/// store knows it.
pub fn invoice(
    store: &Store,
    renderer: &Renderer,
    invoice_id: &str,
) -> Result<Option<InvoiceView>, OpError> {
    let records = store.history().timeline(invoice_id)?;
    view(store, renderer, invoice_id, &records)
}

/// The view of `invoice_id` from its history `records`.
fn view(
    store: &Store,
    renderer: &Renderer,
    invoice_id: &str,
    records: &[EventRecord],
) -> Result<Option<InvoiceView>, OpError> {
    let tracked = store.snapshot(&InvoiceId(invoice_id.to_owned()))?.is_some();
    if records.is_empty() && !tracked {
        return Ok(None);
    }
    let mut events = Vec::new();
    let mut last: Option<Event> = None;
    for record in records {
        let attempts = store.history().attempts(record)?;
        let event: Option<Event> = record.event();
        events.push(timeline_event(
            store,
            renderer,
            record,
            event.as_ref(),
            attempts,
        )?);
        if event.is_some() {
            last = event;
        }
    }
    let mut view = InvoiceView {
        invoice_id: invoice_id.to_owned(),
        tracked,
        order_codes: records
            .last()
            .map(|r| r.order_codes.clone())
            .unwrap_or_default(),
        invoice_code: None,
        courier: None,
        tracking_url: None,
        status: None,
        status_emoji: None,
        events,
    };
    if let Some(e) = last {
        view.invoice_code = e.invoice.invoice_code;
        view.courier = e.invoice.logistics_partner_name;
        view.tracking_url = e.invoice.tracking_url;
        view.status = Some(e.invoice.status.label);
        view.status_emoji = Some(e.invoice.status.emoji).filter(|s| !s.is_empty());
    }
    Ok(Some(view))
}

fn timeline_event(
    store: &Store,
    renderer: &Renderer,
    record: &EventRecord,
    event: Option<&Event>,
    attempts: Vec<(String, Attempt)>,
) -> Result<TimelineEvent, OpError> {
    let labels = event.map(|e| renderer.labels(e, Lang::Ko));
    let label = |k: &str| {
        labels
            .as_ref()
            .and_then(|l| l[k].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    // Every routed target, then any other that has attempts (a target
    // renamed since).
    let mut names: Vec<String> = record.targets.clone();
    for (t, _) in &attempts {
        if !names.contains(t) {
            names.push(t.clone());
        }
    }
    let mut deliveries = Vec::new();
    for name in names {
        let mine: Vec<&Attempt> = attempts
            .iter()
            .filter(|(t, _)| *t == name)
            .map(|(_, a)| a)
            .collect();
        let state = match mine.last().map(|a| a.outcome) {
            None | Some(AttemptOutcome::Replayed) => "pending",
            Some(AttemptOutcome::Retry) => "retrying",
            Some(AttemptOutcome::Delivered) => "delivered",
            Some(AttemptOutcome::Dead) => "dead",
            Some(AttemptOutcome::Purged) => "purged",
        };
        let replayable = state == "dead"
            && store
                .queue(&name)
                .ok()
                .map(|q| q.find_dead(&record.event_id))
                .transpose()?
                .flatten()
                .is_some();
        deliveries.push(DeliveryView {
            target: name,
            state,
            replayable,
            attempts: mine.into_iter().map(attempt_view).collect(),
        });
    }
    let mut value: Value = record.event_json();
    for who in ["receiver", "customer"] {
        if let Some(person) = value.get_mut(who) {
            crate::mask::person(person);
        }
    }
    let detected_at = time(record.detected_at);
    Ok(TimelineEvent {
        event_id: record.event_id.clone(),
        kind: record.kind.to_string(),
        type_label: label("type"),
        summary: label("summary"),
        emoji: label("emoji"),
        status: label("status"),
        detected_kst: crate::render::kst(&detected_at).unwrap_or_default(),
        detected_at,
        deliveries,
        event: value,
    })
}

fn attempt_view(a: &Attempt) -> AttemptView {
    let at = time(a.at);
    AttemptView {
        at_kst: crate::render::kst(&at).unwrap_or_default(),
        at,
        outcome: a.outcome.as_str(),
        status: a.status,
        detail: a.detail.clone(),
        next_attempt_at: a.next_at.map(time),
    }
}
