//! What an operator can do to the delivery queue, as plain functions over the
//! store: list pending entries and dead letters, show one, replay, purge,
//! retry now. The CLI commands (`outbox`, `dead-letters`) call these directly
//! when no daemon holds the store, and through the daemon's admin API when
//! one does; the API calls the same functions. So there is one way to
//! replay, whoever asks.
//!
//! Views are what a person reads: times in RFC 3339, reasons as text, and
//! personal data masked (a dead letter of a target that opted in holds the
//! recipient's name and phone).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::delivery::Target;
use crate::delivery::driver::now_ms;
use crate::delivery::queue::{DeadLetter, DeliveryError, OutboxEntry};
use crate::history::{Attempt, AttemptOf, AttemptOutcome};
use crate::store::{Store, StoreError};

/// A pending entry, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingView {
    pub target: String,
    pub seq: u64,
    pub event_id: String,
    pub invoice_id: String,
    pub order_code: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub attempts: u32,
    pub enqueued_at: String,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
}

/// A dead letter, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadView {
    pub target: String,
    pub seq: u64,
    pub event_id: String,
    pub invoice_id: String,
    pub order_code: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub attempts: u32,
    pub dead_at: String,
    pub status: Option<u16>,
    pub reason: String,
}

/// One dead letter with its event (personal data masked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadDetail {
    #[serde(flatten)]
    pub view: DeadView,
    pub event: Value,
}

/// What a state-changing operation did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// (target, event id) of every entry it touched.
    pub entries: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("no target is named `{0}`")]
    NoTarget(String),
    #[error("no dead letter has the event id {0}")]
    NoDeadLetter(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn pending_view(target: &str, seq: u64, e: &OutboxEntry) -> PendingView {
    PendingView {
        target: target.to_owned(),
        seq,
        event_id: e.event_id.clone(),
        invoice_id: e.invoice_id.clone(),
        order_code: e.order_code.clone(),
        kind: e.kind.to_string(),
        attempts: e.attempts,
        enqueued_at: time(e.enqueued_at),
        next_attempt_at: time(e.next_attempt_at),
        last_error: e.last_error.as_ref().map(DeliveryError::full),
    }
}

fn dead_view(target: &str, seq: u64, d: &DeadLetter) -> DeadView {
    DeadView {
        target: target.to_owned(),
        seq,
        event_id: d.entry.event_id.clone(),
        invoice_id: d.entry.invoice_id.clone(),
        order_code: d.entry.order_code.clone(),
        kind: d.entry.kind.to_string(),
        attempts: d.entry.attempts,
        dead_at: time(d.dead_at),
        status: d.reason.status,
        reason: d.reason.full(),
    }
}

/// The targets named by `only`, or all of them.
fn chosen<'a>(targets: &'a [Target], only: Option<&str>) -> Result<Vec<&'a Target>, OpError> {
    match only {
        None => Ok(targets.iter().collect()),
        Some(name) => targets
            .iter()
            .find(|t| t.name == name)
            .map(|t| vec![t])
            .ok_or_else(|| OpError::NoTarget(name.to_owned())),
    }
}

/// `each` over the queue of every chosen target, results in target order.
fn across<T>(
    store: &Store,
    targets: &[Target],
    only: Option<&str>,
    each: impl Fn(&crate::delivery::queue::Queue<'_>, &str) -> Result<Vec<T>, StoreError>,
) -> Result<Vec<T>, OpError> {
    let mut out = Vec::new();
    for t in chosen(targets, only)? {
        out.extend(each(&store.queue(&t.name)?, &t.name)?);
    }
    Ok(out)
}

/// Pending entries per target, oldest first.
pub fn outbox(
    store: &Store,
    targets: &[Target],
    only: Option<&str>,
) -> Result<Vec<PendingView>, OpError> {
    across(store, targets, only, |q, name| {
        Ok(q.pending(usize::MAX)?
            .iter()
            .map(|(seq, e)| pending_view(name, *seq, e))
            .collect())
    })
}

/// Dead letters per target, oldest first.
pub fn dead_letters(
    store: &Store,
    targets: &[Target],
    only: Option<&str>,
) -> Result<Vec<DeadView>, OpError> {
    across(store, targets, only, |q, name| {
        Ok(q.dead(usize::MAX)?
            .iter()
            .map(|(seq, d)| dead_view(name, *seq, d))
            .collect())
    })
}

/// One dead letter by event id (the first target that has it).
pub fn dead_letter(
    store: &Store,
    targets: &[Target],
    event_id: &str,
) -> Result<DeadDetail, OpError> {
    for t in targets {
        if let Some((seq, d)) = store.queue(&t.name)?.find_dead(event_id)? {
            let mut event: Value = serde_json::from_slice(&d.entry.event).unwrap_or(Value::Null);
            for who in ["receiver", "customer"] {
                if let Some(person) = event.get_mut(who) {
                    crate::mask::person(person);
                }
            }
            return Ok(DeadDetail {
                view: dead_view(&t.name, seq, &d),
                event,
            });
        }
    }
    Err(OpError::NoDeadLetter(event_id.to_owned()))
}

/// Moves dead letters back to their outbox (attempts reset, ids kept). Every
/// id must exist; nothing is replayed when one does not.
pub fn replay(store: &Store, targets: &[Target], event_ids: &[String]) -> Result<Done, OpError> {
    let mut found = Vec::new();
    for id in event_ids {
        let mut hit = None;
        for t in targets {
            if let Some((seq, _)) = store.queue(&t.name)?.find_dead(id)? {
                hit = Some((t.name.as_str(), seq));
                break;
            }
        }
        found.push(hit.ok_or_else(|| OpError::NoDeadLetter(id.clone()))?);
    }
    let mut done = Done::default();
    for (target, seq) in found {
        if let Some(id) = store.queue(target)?.replay(seq, now_ms())? {
            done.entries.push((target.to_owned(), id));
        }
    }
    remember(store, &done, AttemptOutcome::Replayed)?;
    Ok(done)
}

/// Adds what an operator did to each event's history.
fn remember(store: &Store, done: &Done, outcome: AttemptOutcome) -> Result<(), StoreError> {
    let at = now_ms();
    let history = store.history();
    let mut attempts = Vec::new();
    for (target, id) in &done.entries {
        // An event the history no longer holds has no timeline to add to.
        if let Some(detected_at) = history.detected_at(id)? {
            attempts.push(AttemptOf {
                detected_at,
                event_id: id,
                target,
                attempt: Attempt {
                    at,
                    outcome,
                    status: None,
                    detail: None,
                    next_at: None,
                },
            });
        }
    }
    history.record_attempts(attempts)
}

/// Replays every dead letter (of one target, or all).
pub fn replay_all(store: &Store, targets: &[Target], only: Option<&str>) -> Result<Done, OpError> {
    let entries = across(store, targets, only, |q, name| {
        Ok(q.replay_all(now_ms())?
            .into_iter()
            .map(|id| (name.to_owned(), id))
            .collect())
    })?;
    let done = Done { entries };
    remember(store, &done, AttemptOutcome::Replayed)?;
    Ok(done)
}

/// Removes dead letters older than `older_than`.
pub fn purge(
    store: &Store,
    targets: &[Target],
    only: Option<&str>,
    older_than: std::time::Duration,
) -> Result<Done, OpError> {
    let before = now_ms() - older_than.as_millis() as i64;
    let entries = across(store, targets, only, |q, name| {
        Ok(q.purge(before)?
            .into_iter()
            .map(|id| (name.to_owned(), id))
            .collect())
    })?;
    let done = Done { entries };
    remember(store, &done, AttemptOutcome::Purged)?;
    Ok(done)
}

/// Makes pending entries due now: one (`seq`) or all of a target's.
pub fn retry_now(
    store: &Store,
    targets: &[Target],
    only: Option<&str>,
    seq: Option<u64>,
) -> Result<usize, OpError> {
    let mut n = 0;
    for t in chosen(targets, only)? {
        n += store.queue(&t.name)?.retry_now(seq, now_ms())?;
    }
    Ok(n)
}
