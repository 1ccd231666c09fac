//! The one delivery driver. A *round* takes what is due for one target
//! (per-invoice order, see [`super::queue::Queue::due`]), composes requests
//! (single events; digests for a chat burst over `digest_over`; arrays of up
//! to `batch_max` for webhooks), sends them with the target's concurrency,
//! each after its pace allows, and applies every answer:
//!
//! - delivered: removed;
//! - retried: the attempt is counted and the next one scheduled from the
//!   target's retry schedule (never earlier than `Retry-After`); when the
//!   schedule is spent, a dead letter;
//! - rejected (3xx, 4xx, a render failure): a dead letter at once, and the
//!   next events of that target go on.
//!
//! The daemon's worker runs rounds for ever; `poll` runs them until nothing
//! is due now ([`deliver_all`]).

use std::collections::HashSet;

use futures_util::{StreamExt, stream::FuturesUnordered};

use super::digest::{self, Digest};
use super::pace::Pace;
use super::queue::{DeliveryError, ErrorKind, OutboxEntry, Queue, TargetState};
use super::{Outcome, Sender, Target};
use crate::history::{Attempt, AttemptOf, AttemptOutcome, History};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};

/// What one round did.
#[derive(Debug, Default, Clone)]
pub struct Round {
    /// Requests sent.
    pub sent: u64,
    pub delivered: u64,
    pub retried: u64,
    /// Entries moved to dead letters.
    pub dead: u64,
    /// When the next entry not due yet will be (Unix ms), as of the start.
    pub next_at: Option<i64>,
    /// The last failure, worded for a person.
    pub last_failure: Option<String>,
    /// Delivered entries not removed yet: removed (and their attempts added
    /// to the history) together, a few at a time (a crash before that only
    /// means an at-least-once resend).
    done: Vec<Delivered>,
}

/// A delivered entry waiting for its removal.
#[derive(Debug, Clone)]
struct Delivered {
    seq: u64,
    event_id: String,
    /// The event's detection time (its history key).
    detected_at: i64,
    at: i64,
}

/// Delivered webhook entries removed together (see [`round`]).
const REMOVE_EVERY: usize = 16;

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One round for `target`. When `stop` fires, no new send starts; the ones
/// in flight finish and are applied.
pub async fn round(
    store: &Store,
    sender: &Sender,
    target: &Target,
    pace: &Pace,
    stop: &Shutdown,
) -> Result<Round, StoreError> {
    let queue = store.queue(&target.name)?;
    store.ensure_room()?;
    let limit = match target.digest_over {
        Some(_) => 2000,
        None => (target.concurrency * target.batch_max * 64).max(256),
    };
    let due = queue.due(now_ms(), limit, &HashSet::new())?;
    let mut round = Round {
        next_at: due.next_at,
        ..Round::default()
    };
    if due.entries.is_empty() {
        return Ok(round);
    }
    // The target's state is read once and written once per round.
    let before = queue.state()?;
    let mut state = before.clone();
    let groups = compose(target, due.entries);
    let mut groups = groups.into_iter();
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < target.concurrency && !stop.is_triggered() {
            let Some((entries, digest)) = groups.next() else {
                break;
            };
            in_flight.push(async move {
                pace.acquire().await;
                let outcome = attempt(sender, target, &entries, digest.as_ref()).await;
                (entries, outcome)
            });
        }
        let Some((entries, outcome)) = in_flight.next().await else {
            break;
        };
        round.sent += 1;
        apply(
            &queue,
            store.history(),
            target,
            &entries,
            outcome,
            &mut state,
            &mut round,
        )?;
        // Removals go in small batches: a crash re-sends at most this many
        // acknowledged entries (chat targets, which have no idempotency key,
        // none beyond the one in flight).
        let every = if target.kind.is_chat() {
            1
        } else {
            REMOVE_EVERY
        };
        if round.done.len() >= every {
            remove_delivered(&queue, store.history(), target, &mut round)?;
        }
    }
    remove_delivered(&queue, store.history(), target, &mut round)?;
    if state != before {
        queue.set_state(&state)?;
    }
    Ok(round)
}

/// Removes the delivered entries of `round` and adds their deliveries to the
/// history (written together: see [`History::record_delivered`]).
fn remove_delivered(
    queue: &Queue<'_>,
    history: &History,
    target: &Target,
    round: &mut Round,
) -> Result<(), StoreError> {
    if round.done.is_empty() {
        return Ok(());
    }
    let done = std::mem::take(&mut round.done);
    let seqs: Vec<u64> = done.iter().map(|d| d.seq).collect();
    queue.delivered_all(&seqs)?;
    history.record_delivered(
        &target.name,
        done.iter()
            .map(|d| (d.detected_at, d.event_id.as_str(), d.at)),
    )
}

type Group = (Vec<(u64, OutboxEntry)>, Option<Digest>);

/// The requests for what is due: digests for a chat burst, batches for
/// webhooks that ask for them, else one request per event.
fn compose(target: &Target, due: Vec<(u64, OutboxEntry)>) -> Vec<Group> {
    if let Some(over) = target.digest_over
        && due.len() > over
    {
        let kinds: Vec<_> = due.iter().map(|(_, e)| e.kind).collect();
        let mut due = due.into_iter();
        return digest::plan(&kinds)
            .into_iter()
            .map(|(range, d)| (due.by_ref().take(range.len()).collect(), Some(d)))
            .collect();
    }
    if target.batch_max > 1 {
        let mut groups = Vec::new();
        let mut due = due.into_iter().peekable();
        while due.peek().is_some() {
            groups.push((due.by_ref().take(target.batch_max).collect(), None));
        }
        return groups;
    }
    due.into_iter().map(|e| (vec![e], None)).collect()
}

/// One request for `entries`; an entry that cannot be shaped is rejected.
async fn attempt(
    sender: &Sender,
    target: &Target,
    entries: &[(u64, OutboxEntry)],
    digest: Option<&Digest>,
) -> Outcome {
    let refs: Vec<&OutboxEntry> = entries.iter().map(|(_, e)| e).collect();
    match sender.request(target, &refs, digest, chrono::Utc::now().timestamp()) {
        Ok(request) => {
            let personal = || {
                refs.iter()
                    .flat_map(|e| crate::mask::personal_values(&e.event))
                    .collect()
            };
            sender.post(target, request, personal).await
        }
        Err(e) => Outcome::Dead {
            error: DeliveryError {
                at: now_ms(),
                kind: e.kind(),
                status: None,
                detail: e.to_string(),
            },
            gone: false,
        },
    }
}

/// Applies one answer to the entries it covered, and to the target's state.
fn apply(
    queue: &Queue<'_>,
    history: &History,
    target: &Target,
    entries: &[(u64, OutboxEntry)],
    outcome: Outcome,
    state: &mut TargetState,
    round: &mut Round,
) -> Result<(), StoreError> {
    let now = now_ms();
    let ids = || {
        entries
            .iter()
            .map(|(_, e)| e.event_id.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    if let Outcome::Dead { error, .. } = &outcome {
        history.record_attempts(entries.iter().map(|(_, e)| AttemptOf {
            detected_at: e.enqueued_at,
            event_id: &e.event_id,
            target: &target.name,
            attempt: Attempt {
                at: now,
                outcome: AttemptOutcome::Dead,
                status: error.status,
                detail: Some(error.full()),
                next_at: None,
            },
        }))?;
    }
    match outcome {
        Outcome::Delivered => {
            round.done.extend(entries.iter().map(|(seq, e)| Delivered {
                seq: *seq,
                event_id: e.event_id.clone(),
                detected_at: e.enqueued_at,
                at: now,
            }));
            round.delivered += entries.len() as u64;
            crate::metrics::delivery(
                queue.merchant(),
                &target.name,
                "delivered",
                entries.len() as u64,
            );
            if state.failing_since.is_some() || state.gone {
                tracing::info!(target = %target.name, "the target accepts deliveries again");
            }
            state.failing_since = None;
            state.reason = None;
            state.gone = false;
            // Kept to the second: a state write per delivery would cost more
            // than the delivery.
            if state.last_success.is_none_or(|t| now - t >= 1000) {
                state.last_success = Some(now);
            }
        }
        Outcome::Retry { error, retry_after } => {
            for (seq, entry) in entries {
                let attempt = entry.attempts + 1;
                match target.retry.wait_after(attempt, retry_after) {
                    Some(wait) => {
                        let next = now + wait.as_millis() as i64;
                        tracing::warn!(target = %target.name, event_id = %entry.event_id, attempt, reason = %error, retry_in_ms = wait.as_millis() as u64, "delivery failed; retrying later");
                        queue.retry_at(*seq, error.clone(), next)?;
                        history.record_attempts([AttemptOf {
                            detected_at: entry.enqueued_at,
                            event_id: &entry.event_id,
                            target: &target.name,
                            attempt: Attempt {
                                at: now,
                                outcome: AttemptOutcome::Retry,
                                status: error.status,
                                detail: Some(error.full()),
                                next_at: Some(next),
                            },
                        }])?;
                        round.retried += 1;
                        crate::metrics::delivery(queue.merchant(), &target.name, "retried", 1);
                    }
                    None => {
                        let exhausted = DeliveryError {
                            at: now,
                            kind: ErrorKind::Exhausted,
                            status: error.status,
                            detail: format!("gave up after {attempt} attempts: {}", error.full()),
                        };
                        tracing::error!(target = %target.name, event_id = %entry.event_id, reason = %exhausted, "delivery failed for good; moved to dead letters");
                        history.record_attempts([AttemptOf {
                            detected_at: entry.enqueued_at,
                            event_id: &entry.event_id,
                            target: &target.name,
                            attempt: Attempt {
                                at: now,
                                outcome: AttemptOutcome::Dead,
                                status: exhausted.status,
                                detail: Some(exhausted.full()),
                                next_at: None,
                            },
                        }])?;
                        queue.dead_letter(*seq, exhausted)?;
                        round.dead += 1;
                        crate::metrics::delivery(queue.merchant(), &target.name, "dead", 1);
                    }
                }
            }
            if state.failing_since.is_none() {
                tracing::warn!(target = %target.name, reason = %error, "the target is failing");
                state.failing_since = Some(now);
            }
            state.reason = Some(error.to_string());
            round.last_failure = Some(format!("event {}: {error}", ids()));
        }
        Outcome::Dead { error, gone } => {
            for (seq, entry) in entries {
                tracing::error!(target = %target.name, event_id = %entry.event_id, reason = %error, "delivery rejected; moved to dead letters (replay with `poomgo-notifier dead-letters replay`)");
                queue.dead_letter(*seq, error.clone())?;
            }
            round.dead += entries.len() as u64;
            crate::metrics::delivery(queue.merchant(), &target.name, "dead", entries.len() as u64);
            if gone {
                if !state.gone {
                    tracing::error!(target = %target.name, reason = %error, "the receiver says this target is gone; its events go to dead letters until it is fixed");
                }
                state.gone = true;
                state.failing_since.get_or_insert(now);
                state.reason = Some(error.to_string());
            }
            round.last_failure = Some(format!("event {} moved to dead letters: {error}", ids()));
        }
    }
    Ok(())
}

/// Sets the gauges of `target`: pending, dead letters, oldest age, failing.
/// Counting walks the trees (sled's `len` is O(n)), so callers do it when
/// idle or at most once a second, not per round.
pub fn record_metrics(store: &Store, target: &str) -> Result<(u64, u64), StoreError> {
    let queue = store.queue(target)?;
    let pending = queue.pending_len() as u64;
    let dead = queue.dead_len() as u64;
    let oldest = queue.oldest_enqueued_at()?;
    let state = queue.state()?;
    crate::metrics::outbox(
        store.merchant(),
        target,
        pending,
        dead,
        oldest,
        state.failing_since.is_some() || state.gone,
    );
    Ok((pending, dead))
}

/// What delivering every target's due entries did.
#[derive(Debug, Default)]
pub struct DeliveryReport {
    pub delivered: u64,
    pub pending: u64,
    /// Dead letters in all, after this run.
    pub dead: u64,
    /// Per target: (name, pending, dead letters).
    pub targets: Vec<(String, u64, u64)>,
    /// (target, reason) for each target where something failed this run.
    pub failures: Vec<(String, String)>,
}

/// Runs rounds for every target until nothing is due now (entries in
/// back-off stay pending), one target after another.
pub async fn deliver_all(
    store: &Store,
    sender: &Sender,
    targets: &[Target],
) -> Result<DeliveryReport, StoreError> {
    let mut report = DeliveryReport::default();
    let never = Shutdown::new();
    for target in targets {
        let pace = Pace::for_target(target);
        let mut failure = None;
        loop {
            let r = round(store, sender, target, &pace, &never).await?;
            report.delivered += r.delivered;
            if r.last_failure.is_some() {
                failure = r.last_failure;
            }
            if r.sent == 0 {
                break;
            }
        }
        let (pending, dead) = record_metrics(store, &target.name)?;
        report.pending += pending;
        report.dead += dead;
        report.targets.push((target.name.clone(), pending, dead));
        if let Some(reason) = failure {
            report.failures.push((
                target.name.clone(),
                format!("{reason} ({pending} pending, {dead} dead letters)"),
            ));
        }
    }
    store.flush().await?;
    Ok(report)
}
