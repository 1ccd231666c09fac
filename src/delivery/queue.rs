//! The delivery queue: an outbox entry's whole life, as data in the store.
//!
//! ```text
//!  committed by a poll ──► pending (due now) ──send──► 2xx: done (marked)
//!                               ▲   │
//!                 retry at time │   ├─ 408/429/5xx/time-out: attempts+1, next attempt
//!                               └───┤     from the retry schedule (survives restarts)
//!                                   ├─ 3xx/4xx, render failure, schedule exhausted:
//!                                   ▼     moved to dead letters with the reason
//!                              dead letter ──replay──► pending again, same id, attempts 0
//!                                   └──purge──► gone
//! ```
//!
//! Every operation here is the one way to do that thing: the driver, `poll`,
//! the daemon, the CLI commands and the admin API call these and nothing
//! else. Entries are keyed by the global outbox sequence (detection order);
//! a dead letter keeps its key, so a replay puts it back where it was.
//!
//! Pending entries live in two places, read as one sequence: the target's
//! generation trees, where a delivered entry is marked rather than removed,
//! and the tree `outbox/<target>`, for entries queued before generations and
//! replays (see [`super::generations`]).
//!
//! Updates to a pending entry go through `fetch_and_update`, so an entry
//! removed meanwhile (delivered, dead-lettered) is never brought back.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use sled::{IVec, Tree};

use super::generations::generation_of;
use crate::event::EventType;
use crate::store::{Store, StoreError, decode, encode};

/// One pending delivery: an event, already shaped for its target (personal
/// data removed or masked unless the target opted in), as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub event_id: String,
    pub kind: EventType,
    pub invoice_id: String,
    pub order_code: Option<String>,
    /// The event as JSON (the webhook body; templates render from it).
    /// Stored packed (see [`crate::packed`]).
    #[serde(with = "crate::packed")]
    pub event: Vec<u8>,
    /// Unix milliseconds.
    pub enqueued_at: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not sent before this (Unix milliseconds).
    pub next_attempt_at: i64,
    pub last_error: Option<DeliveryError>,
}

/// Why an attempt failed, as kept with the entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryError {
    /// Unix milliseconds.
    pub at: i64,
    pub kind: ErrorKind,
    pub status: Option<u16>,
    /// One line: the receiver's answer (at most 512 bytes of body) or the
    /// transport error. Never the URL.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Connect error, time-out, broken body.
    Transport,
    /// The receiver answered with a status.
    Http,
    /// The target's template failed for this event.
    Render,
    /// The stored entry cannot be read or shaped into a request.
    Unreadable,
    /// The retry schedule ran out (the detail is the last error).
    Exhausted,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transport => "transport",
            ErrorKind::Http => "http",
            ErrorKind::Render => "render",
            ErrorKind::Unreadable => "unreadable",
            ErrorKind::Exhausted => "exhausted",
        }
    }
}

/// The short classification: what logs, `/healthz`, the target's state and
/// the alerts show. A receiver's answer may echo the body it was sent
/// (personal data included), so only its status, its length and, for an
/// answer that is one `snake_case` word (Slack's `invalid_blocks`,
/// `channel_is_archived`), that word are shown; the answer itself, redacted,
/// is in [`DeliveryError::full`] for an operator who signed in.
impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Http => match self.status {
                Some(status) => {
                    write!(f, "HTTP {status}")?;
                    answer_summary(f, &self.detail)
                }
                // Schema 1 kept the error as text ("HTTP 500: <answer>").
                None => f.write_str(
                    self.detail
                        .split_once(": ")
                        .map_or(&*self.detail, |(h, _)| h),
                ),
            },
            ErrorKind::Exhausted => {
                // "gave up after N attempts: <the last error in full>"
                let (head, _) = self.detail.split_once(": ").unwrap_or((&self.detail, ""));
                f.write_str(head)?;
                match self.status {
                    Some(status) => write!(f, "; last answer HTTP {status}"),
                    None => Ok(()),
                }
            }
            ErrorKind::Unreadable => f.write_str("the stored entry cannot be read"),
            // Our own words: a transport error without its URL, a template's
            // name, line and variable.
            ErrorKind::Transport | ErrorKind::Render => f.write_str(&self.detail),
        }
    }
}

/// An answer that is one `snake_case` word of letters: an error code, never
/// a value sent (it has no digits, no spaces, no `@`).
fn is_answer_code(detail: &str) -> bool {
    detail.split('_').count() >= 2
        && detail.len() <= 64
        && detail.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        && !detail.starts_with('_')
}

fn answer_summary(f: &mut fmt::Formatter<'_>, detail: &str) -> fmt::Result {
    if detail.is_empty() {
        Ok(())
    } else if is_answer_code(detail) {
        write!(f, ": {detail}")
    } else {
        write!(f, " ({}-byte answer)", detail.len())
    }
}

impl DeliveryError {
    /// The error with the receiver's (redacted) answer: for dead letters and
    /// the console's timeline, which only a signed-in operator reads.
    pub fn full(&self) -> String {
        match (self.kind, self.status) {
            (ErrorKind::Http, Some(status)) if self.detail.is_empty() => format!("HTTP {status}"),
            (ErrorKind::Http, Some(status)) => format!("HTTP {status}: {}", self.detail),
            _ => self.detail.clone(),
        }
    }
}

/// An entry that can never succeed as it is, kept for an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub entry: OutboxEntry,
    /// Unix milliseconds.
    pub dead_at: i64,
    pub reason: DeliveryError,
}

/// What is due for a target now.
#[derive(Debug, Default)]
pub struct Due {
    /// The earliest pending entry of each invoice that is due, oldest first.
    pub entries: Vec<(u64, OutboxEntry)>,
    /// When the next entry that is not due yet will be (Unix ms).
    pub next_at: Option<i64>,
}

/// What a target's delivery looks like, kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetState {
    /// Failing since (Unix ms): the last attempt failed.
    pub failing_since: Option<i64>,
    /// Why, as the last failure said it.
    pub reason: Option<String>,
    /// The receiver said it will never accept (410, Slack's
    /// `channel_is_archived`, …): only a success or a replay clears it.
    pub gone: bool,
    /// Unix ms.
    pub last_success: Option<i64>,
}

/// One target's queue: its outbox and its dead letters.
pub struct Queue<'a> {
    store: &'a Store,
    name: &'a str,
    outbox: &'a Tree,
    dead: &'a Tree,
    /// The trees' names, as errors name them (made once: `due` reads
    /// hundreds of entries per round).
    names: [String; 2],
}

impl Store {
    /// The queue of `target`.
    pub fn queue<'a>(&'a self, target: &'a str) -> Result<Queue<'a>, StoreError> {
        let (outbox, dead) = self.target_trees(target)?;
        Ok(Queue {
            store: self,
            name: target,
            outbox,
            dead,
            names: [format!("outbox/{target}"), format!("dead/{target}")],
        })
    }
}

impl Queue<'_> {
    /// The merchant whose outbox this is.
    pub fn merchant(&self) -> &str {
        self.store.merchant()
    }

    pub fn name(&self) -> &str {
        self.name
    }

    /// Entries pending. Counts them (sled keeps no count): O(pending).
    pub fn pending_len(&self) -> usize {
        let mut n = 0;
        // An unreadable key still counts as pending (`due` dead-letters it).
        let _ = self.walk(|_, _| {
            n += 1;
            Ok(true)
        });
        n
    }

    pub fn dead_len(&self) -> usize {
        self.dead.len()
    }

    fn tree_name(&self, dead: bool) -> &str {
        &self.names[usize::from(dead)]
    }

    /// Calls `each` with the sequence number and stored bytes of every
    /// pending entry, oldest first, while it returns `true`: the outbox tree
    /// and the generations merged by sequence number. The generations stay
    /// open meanwhile (a drop waits).
    fn walk(
        &self,
        mut each: impl FnMut(u64, IVec) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let view = self.store.generations().view();
        let generations = view.of(self.name)?;
        let tree = self.tree_name(false);
        let mut outbox = self
            .outbox
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((seq_of(&k, tree)?, v))
            })
            .peekable();
        let mut in_generations = generations.iter().flat_map(|g| g.unmarked()).peekable();
        loop {
            let from_outbox = match (outbox.peek(), in_generations.peek()) {
                (None, None) => return Ok(()),
                (Some(Ok((a, _))), Some(Ok((b, _)))) => a <= b,
                (Some(_), None) | (Some(Err(_)), _) => true,
                (None, Some(_)) | (_, Some(Err(_))) => false,
            };
            let next = if from_outbox {
                outbox.next()
            } else {
                in_generations.next()
            };
            let Some(next) = next else { return Ok(()) };
            let (seq, value) = next?;
            if !each(seq, value)? {
                return Ok(());
            }
        }
    }

    /// Pending entries, oldest first.
    pub fn pending(&self, limit: usize) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let tree = self.tree_name(false);
        self.walk(|seq, value| {
            out.push((seq, decode_entry(tree, &value)?));
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// The oldest pending entry's enqueue time (Unix ms).
    pub fn oldest_enqueued_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.pending(1)?.first().map(|(_, e)| e.enqueued_at))
    }

    /// Entries due at `now` (Unix ms), at most `limit`, keeping per-invoice
    /// order: an invoice with an earlier entry pending (in back-off, or in
    /// `busy`: being sent) contributes nothing, so a later change never
    /// overtakes an earlier one, while other invoices keep flowing.
    pub fn due(&self, now: i64, limit: usize, busy: &HashSet<String>) -> Result<Due, StoreError> {
        let mut due = Due::default();
        let mut blocked: HashSet<String> = HashSet::new();
        let mut unreadable = Vec::new();
        let tree = self.tree_name(false);
        if limit > 0 {
            self.walk(|seq, value| {
                let entry = match decode_entry(tree, &value) {
                    Ok(e) => e,
                    Err(e) => {
                        unreadable.push((seq, value, e));
                        return Ok(true);
                    }
                };
                if busy.contains(&entry.invoice_id) || blocked.contains(&entry.invoice_id) {
                    blocked.insert(entry.invoice_id);
                    return Ok(true);
                }
                blocked.insert(entry.invoice_id.clone());
                if entry.next_attempt_at <= now {
                    due.entries.push((seq, entry));
                } else {
                    due.next_at = Some(
                        due.next_at
                            .map_or(entry.next_attempt_at, |n| n.min(entry.next_attempt_at)),
                    );
                }
                Ok(due.entries.len() < limit)
            })?;
        }
        // An unreadable entry must never block the queue.
        for (seq, value, e) in unreadable {
            tracing::error!(target = %self.name, seq, error = %e, "an outbox entry cannot be read; moving it to dead letters");
            self.dead_letter_raw(seq, &value, now, &e.to_string())?;
        }
        Ok(due)
    }

    /// A 2xx: the entry is done.
    pub fn delivered(&self, seq: u64) -> Result<(), StoreError> {
        self.delivered_all(&[seq])
    }

    /// Several delivered entries let go of: marked in their generations (one
    /// write per generation), or removed from the outbox tree (entries from
    /// before generations, replays); then the generations wholly delivered
    /// are dropped. A crash part-way only re-sends what was not marked yet.
    pub fn delivered_all(&self, seqs: &[u64]) -> Result<(), StoreError> {
        let mut marked = Vec::with_capacity(seqs.len());
        // `is_empty` first: the outbox tree is empty but after an upgrade
        // or a replay.
        let outbox_in_use = !self.outbox.is_empty();
        for &seq in seqs {
            let key = seq.to_be_bytes();
            if outbox_in_use && self.outbox.contains_key(key)? {
                self.outbox.remove(key)?;
            } else {
                marked.push(seq);
            }
        }
        if !marked.is_empty() {
            self.store.generations().mark(self.name, &marked)?;
            // Only these generations changed.
            let mut changed: Vec<u64> = marked.iter().map(|&s| generation_of(s)).collect();
            changed.dedup();
            self.store.collect_generations(self.name, Some(&changed))?;
        }
        Ok(())
    }

    /// A transient failure: count the attempt, keep the error, try again at
    /// `next_at` (Unix ms).
    pub fn retry_at(&self, seq: u64, error: DeliveryError, next_at: i64) -> Result<(), StoreError> {
        self.update(seq, |e| {
            e.attempts += 1;
            e.last_error = Some(error.clone());
            e.next_attempt_at = next_at;
        })
        .map(|_| ())
    }

    /// Makes pending entries due now ("retry now"); all of them when `seq`
    /// is `None`. Returns how many.
    pub fn retry_now(&self, seq: Option<u64>, now: i64) -> Result<usize, StoreError> {
        let keys: Vec<u64> = match seq {
            Some(s) => vec![s],
            None => {
                let mut keys = Vec::new();
                self.walk(|seq, _| {
                    keys.push(seq);
                    Ok(true)
                })?;
                keys
            }
        };
        let mut n = 0;
        for s in keys {
            if self.update(s, |e| e.next_attempt_at = now)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Changes the pending entry `seq`; false when it is not pending.
    fn update(&self, seq: u64, change: impl Fn(&mut OutboxEntry)) -> Result<bool, StoreError> {
        let view = self.store.generations().view();
        let key = seq.to_be_bytes();
        let tree = if self.outbox.contains_key(key)? {
            self.outbox
        } else {
            match view.unmarked_entry(self.name, seq)? {
                Some((tree, _)) => tree,
                None => return Ok(false),
            }
        };
        let name = self.tree_name(false);
        let mut failed = None;
        tree.fetch_and_update(key, |old| {
            let old = old?;
            match decode_entry(name, old) {
                Ok(mut e) => {
                    change(&mut e);
                    Some(encode(&e))
                }
                Err(err) => {
                    failed = Some(err);
                    Some(old.to_vec())
                }
            }
        })?;
        failed.map_or(Ok(true), Err)
    }

    /// The pending entry `seq` as stored, from the outbox tree or its
    /// generation.
    fn stored(&self, seq: u64) -> Result<Option<IVec>, StoreError> {
        if let Some(v) = self.outbox.get(seq.to_be_bytes())? {
            return Ok(Some(v));
        }
        let view = self.store.generations().view();
        Ok(view.unmarked_entry(self.name, seq)?.map(|(_, v)| v))
    }

    /// Moves a pending entry to dead letters, with the reason, in one
    /// transaction. The attempt that failed is counted.
    pub fn dead_letter(&self, seq: u64, reason: DeliveryError) -> Result<(), StoreError> {
        let Some(value) = self.stored(seq)? else {
            return Ok(());
        };
        let mut entry = decode_entry(self.tree_name(false), &value)?;
        entry.attempts += 1;
        entry.last_error = Some(reason.clone());
        let letter = DeadLetter {
            dead_at: reason.at,
            entry,
            reason,
        };
        self.move_to_dead(seq, &encode(&letter))
    }

    /// An entry that cannot even be read: kept raw-ish as a dead letter so
    /// nothing is lost and the queue moves on.
    fn dead_letter_raw(
        &self,
        seq: u64,
        value: &[u8],
        now: i64,
        why: &str,
    ) -> Result<(), StoreError> {
        let letter = DeadLetter {
            entry: OutboxEntry {
                event_id: format!("unreadable-{}", hex(&seq.to_be_bytes())),
                kind: EventType::Assigned,
                invoice_id: String::new(),
                order_code: None,
                event: value.to_vec(),
                enqueued_at: now,
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
            },
            dead_at: now,
            reason: DeliveryError {
                at: now,
                kind: ErrorKind::Unreadable,
                status: None,
                detail: why.to_owned(),
            },
        };
        self.move_to_dead(seq, &encode(&letter))
    }

    /// Moves pending entry `seq` to dead letters as `letter`, and its removal
    /// or mark, in one transaction.
    fn move_to_dead(&self, seq: u64, letter: &[u8]) -> Result<(), StoreError> {
        let key = &seq.to_be_bytes()[..];
        if !self.outbox.contains_key(key)? {
            self.store
                .generations()
                .move_to_dead(self.name, seq, self.dead, letter)?;
            self.store
                .collect_generations(self.name, Some(&[generation_of(seq)]))?;
            return Ok(());
        }
        use sled::Transactional;
        (self.outbox, self.dead)
            .transaction(|(outbox, dead)| {
                outbox.remove(key)?;
                dead.insert(key, letter)?;
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
                sled::transaction::TransactionError::Abort(()) => StoreError::Corrupt {
                    tree: self.tree_name(true).to_owned(),
                    reason: "aborted".into(),
                },
            })
    }

    /// Dead letters, oldest first.
    pub fn dead(&self, limit: usize) -> Result<Vec<(u64, DeadLetter)>, StoreError> {
        let tree = self.tree_name(true);
        self.dead
            .iter()
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                Ok((seq_of(&k, tree)?, decode(tree, &v)?))
            })
            .collect()
    }

    /// The dead letter of event `event_id`, if this target has one.
    pub fn find_dead(&self, event_id: &str) -> Result<Option<(u64, DeadLetter)>, StoreError> {
        Ok(self
            .dead(usize::MAX)?
            .into_iter()
            .find(|(_, d)| d.entry.event_id == event_id))
    }

    /// Moves a dead letter back to the outbox: due now, attempts reset,
    /// event id kept. Returns its event id.
    pub fn replay(&self, seq: u64, now: i64) -> Result<Option<String>, StoreError> {
        let key = seq.to_be_bytes();
        let Some(value) = self.dead.get(key)? else {
            return Ok(None);
        };
        let letter: DeadLetter = decode(self.tree_name(true), &value)?;
        let mut entry = letter.entry;
        entry.attempts = 0;
        entry.next_attempt_at = now;
        let id = entry.event_id.clone();
        use sled::Transactional;
        let encoded = encode(&entry);
        (self.outbox, self.dead)
            .transaction(|(outbox, dead)| {
                dead.remove(&key)?;
                outbox.insert(&key, encoded.as_slice())?;
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
                sled::transaction::TransactionError::Abort(()) => StoreError::Corrupt {
                    tree: self.tree_name(true).to_owned(),
                    reason: "aborted".into(),
                },
            })?;
        // An operator replaying is fixing the target: its failing mark goes.
        let mut state = self.state()?;
        if state.gone {
            state.gone = false;
            self.set_state(&state)?;
        }
        Ok(Some(id))
    }

    /// Replays every dead letter; returns their event ids.
    pub fn replay_all(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        for (seq, _) in self.dead(usize::MAX)? {
            ids.extend(self.replay(seq, now)?);
        }
        Ok(ids)
    }

    /// Removes dead letters that died before `before` (Unix ms); returns their ids.
    pub fn purge(&self, before: i64) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        for (seq, letter) in self.dead(usize::MAX)? {
            if letter.dead_at < before {
                self.dead.remove(seq.to_be_bytes())?;
                ids.push(letter.entry.event_id);
            }
        }
        Ok(ids)
    }

    pub fn state(&self) -> Result<TargetState, StoreError> {
        let mut state: TargetState = self
            .store
            .meta_get(&format!("target/{}", self.name))?
            .unwrap_or_default();
        // Builds before the short classification kept the receiver's answer
        // here ("HTTP 500: <body>"); it is shown without it until the next
        // attempt replaces it.
        if let Some(reason) = &mut state.reason
            && reason.starts_with("HTTP ")
            && let Some((status, answer)) = reason.split_once(": ")
            && !is_answer_code(answer)
        {
            let status = status.to_owned();
            *reason = status;
        }
        Ok(state)
    }

    pub fn set_state(&self, state: &TargetState) -> Result<(), StoreError> {
        self.store.meta_put(&format!("target/{}", self.name), state)
    }
}

fn seq_of(key: &[u8], tree: &str) -> Result<u64, StoreError> {
    key.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt {
            tree: tree.to_owned(),
            reason: "key is not a u64".into(),
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entry layout of schema 1: no order code, seconds, a string error.
#[derive(Deserialize)]
struct OutboxEntryV1 {
    event_id: String,
    kind: EventType,
    invoice_id: String,
    event: Vec<u8>,
    enqueued_at: i64,
    attempts: u32,
    last_error: Option<String>,
}

/// Entries are record version 2; schema 1's version-1 entries are read too
/// (due at once, their error kept as text).
pub(crate) fn decode_entry(tree: &str, bytes: &[u8]) -> Result<OutboxEntry, StoreError> {
    if let Some((1, rest)) = bytes.split_first() {
        let v1: OutboxEntryV1 = postcard::from_bytes(rest).map_err(|e| StoreError::Corrupt {
            tree: tree.to_owned(),
            reason: e.to_string(),
        })?;
        let at = v1.enqueued_at * 1000;
        return Ok(OutboxEntry {
            event_id: v1.event_id,
            kind: v1.kind,
            invoice_id: v1.invoice_id,
            order_code: None,
            event: v1.event,
            enqueued_at: at,
            attempts: v1.attempts,
            next_attempt_at: 0,
            last_error: v1.last_error.map(|detail| DeliveryError {
                at,
                kind: ErrorKind::Http,
                status: None,
                detail,
            }),
        });
    }
    decode(tree, bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::delivery::generations::GEN_BITS;
    use crate::store::{PageBatch, tests::entry};

    fn store(dir: &tempfile::TempDir) -> Store {
        let s = Store::open(&dir.path().join("db"), 8, &["t"]).unwrap();
        s.commit_page(&PageBatch {
            snapshots: vec![],
            entries: vec![
                ("t".into(), entry("a-1", "A")),
                ("t".into(), entry("b-1", "B")),
                ("t".into(), entry("a-2", "A")),
                ("t".into(), entry("c-1", "C")),
            ],
            ..Default::default()
        })
        .unwrap();
        s
    }

    #[test]
    fn an_entry_stored_before_bodies_were_packed_is_read_as_it_was() {
        // The layout before packing: the body as the JSON itself.
        #[derive(Serialize)]
        struct Before<'a> {
            event_id: &'a str,
            kind: EventType,
            invoice_id: &'a str,
            order_code: Option<&'a str>,
            event: &'a Vec<u8>,
            enqueued_at: i64,
            attempts: u32,
            next_attempt_at: i64,
            last_error: Option<&'a DeliveryError>,
        }
        let statuses = crate::status::StatusTable::default();
        let sample = &crate::samples::all(&statuses, chrono::Utc::now())[0];
        let mut e = entry("a-1", "A");
        e.event = serde_json::to_vec(sample).unwrap();
        e.last_error = Some(error(503));
        let before = crate::store::encode(&Before {
            event_id: &e.event_id,
            kind: e.kind,
            invoice_id: &e.invoice_id,
            order_code: e.order_code.as_deref(),
            event: &e.event,
            enqueued_at: e.enqueued_at,
            attempts: e.attempts,
            next_attempt_at: e.next_attempt_at,
            last_error: e.last_error.as_ref(),
        });
        let back: OutboxEntry = crate::store::decode("outbox/t", &before).unwrap();
        assert_eq!(back, e);
        let now = crate::store::encode(&e);
        assert!(
            now.len() < before.len() * 3 / 4,
            "{} / {}",
            now.len(),
            before.len()
        );
        assert_eq!(
            crate::store::decode::<OutboxEntry>("outbox/t", &now).unwrap(),
            e
        );
    }

    fn ids(entries: &[(u64, OutboxEntry)]) -> Vec<&str> {
        entries.iter().map(|(_, e)| e.event_id.as_str()).collect()
    }

    fn error(status: u16) -> DeliveryError {
        DeliveryError {
            at: 5,
            kind: ErrorKind::Http,
            status: Some(status),
            detail: "nope".into(),
        }
    }

    #[test]
    fn one_invoice_in_order_while_others_flow() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let q = store.queue("t").unwrap();
        let due = q.due(100, 10, &HashSet::new()).unwrap();
        assert_eq!(
            ids(&due.entries),
            ["a-1", "b-1", "c-1"],
            "a-2 waits for a-1"
        );
        // a-1 in back-off: a-2 still waits, the others flow.
        let (seq, _) = due.entries[0];
        q.retry_at(seq, error(503), 1000).unwrap();
        let due = q.due(100, 10, &HashSet::new()).unwrap();
        assert_eq!(ids(&due.entries), ["b-1", "c-1"]);
        assert_eq!(due.next_at, Some(1000));
        let (_, e) = &q.pending(1).unwrap()[0];
        assert_eq!((e.attempts, e.next_attempt_at), (1, 1000));
        assert_eq!(e.last_error.as_ref().unwrap().full(), "HTTP 503: nope");
        assert_eq!(
            e.last_error.as_ref().unwrap().to_string(),
            "HTTP 503 (4-byte answer)"
        );
        // Dead-lettered: the invoice's later event proceeds.
        q.dead_letter(seq, error(400)).unwrap();
        let due = q.due(100, 10, &HashSet::new()).unwrap();
        assert_eq!(ids(&due.entries), ["b-1", "a-2", "c-1"]);
        assert_eq!(q.dead_len(), 1);
        let busy = HashSet::from(["B".to_owned()]);
        assert_eq!(ids(&q.due(100, 10, &busy).unwrap().entries), ["a-2", "c-1"]);
    }

    #[test]
    fn replay_keeps_the_id_and_the_place_and_purge_removes() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let q = store.queue("t").unwrap();
        let (seq, _) = q.pending(1).unwrap()[0].clone();
        q.dead_letter(seq, error(400)).unwrap();
        let (dseq, letter) = q.find_dead("a-1").unwrap().unwrap();
        assert_eq!(
            (dseq, letter.entry.attempts, letter.reason.status),
            (seq, 1, Some(400))
        );
        assert_eq!(q.replay(seq, 50).unwrap().as_deref(), Some("a-1"));
        let (first, e) = q.pending(1).unwrap()[0].clone();
        assert_eq!(
            (first, e.event_id.as_str(), e.attempts, e.next_attempt_at),
            (seq, "a-1", 0, 50)
        );
        q.dead_letter(seq, error(400)).unwrap();
        assert_eq!(q.purge(5).unwrap(), Vec::<String>::new(), "not older yet");
        assert_eq!(q.purge(6).unwrap(), ["a-1"]);
        assert_eq!(q.dead_len(), 0);
        assert_eq!(q.replay(seq, 60).unwrap(), None);
    }

    #[test]
    fn an_unreadable_entry_becomes_a_dead_letter_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let q = store.queue("t").unwrap();
        let (seq, _) = q.pending(1).unwrap()[0].clone();
        // Damaged where it lives (a generation), and one in the outbox tree.
        store
            .generations()
            .view()
            .tree("t", generation_of(seq))
            .unwrap()
            .insert(seq.to_be_bytes(), vec![2u8, 0xff, 0xff])
            .unwrap();
        q.outbox
            .insert(50u64.to_be_bytes(), vec![2u8, 0xff])
            .unwrap();
        let due = q.due(100, 10, &HashSet::new()).unwrap();
        assert_eq!(ids(&due.entries), ["b-1", "a-2", "c-1"]);
        let dead = q.dead(10).unwrap();
        let dead: Vec<_> = dead.iter().map(|(s, d)| (*s, d.reason.kind)).collect();
        assert_eq!(
            dead,
            [(seq, ErrorKind::Unreadable), (50, ErrorKind::Unreadable)]
        );
        assert_eq!(q.pending_len(), 3);
    }

    /// Commits one entry per invoice `first..first + n`, in pages of 500.
    pub(crate) fn commit_many(store: &Store, first: usize, n: usize) {
        let ids: Vec<usize> = (first..first + n).collect();
        for page in ids.chunks(500) {
            store
                .commit_page(&PageBatch {
                    entries: page
                        .iter()
                        .map(|i| ("t".to_owned(), entry(&format!("{i}-1"), &i.to_string())))
                        .collect(),
                    ..Default::default()
                })
                .unwrap();
        }
    }

    fn deliver(q: &Queue<'_>, seqs: impl Iterator<Item = u64>) {
        let seqs: Vec<u64> = seqs.collect();
        for chunk in seqs.chunks(16) {
            q.delivered_all(chunk).unwrap();
        }
    }

    fn first_seq(q: &Queue<'_>) -> Option<u64> {
        q.pending(1).unwrap().first().map(|(s, _)| *s)
    }

    const GEN: u64 = 1 << GEN_BITS;

    #[test]
    fn a_delivered_generation_is_dropped_whole_and_marks_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path, 8, &["t"]).unwrap();
            commit_many(&store, 0, 5000); // seqs 1..=5000: generations 0 and 1
            let q = store.queue("t").unwrap();
            deliver(&q, 1..=2000);
            assert_eq!((q.pending_len(), first_seq(&q)), (3000, Some(2001)));
            assert!(store.generations().view().tree("t", 0).is_some());
        }
        let store = Store::open(&path, 8, &["t"]).unwrap();
        let q = store.queue("t").unwrap();
        assert_eq!(
            (q.pending_len(), first_seq(&q)),
            (3000, Some(2001)),
            "marks are durable"
        );
        deliver(&q, 2001..GEN);
        assert!(store.generations().view().tree("t", 0).is_none(), "dropped");
        assert!(store.generations().view().tree("t", 1).is_some());
        assert_eq!((q.pending_len(), first_seq(&q)), (905, Some(GEN)));
        // The generation still being written to goes too once delivered,
        // and the next commit opens it again.
        deliver(&q, GEN..=5000);
        assert_eq!(q.pending_len(), 0);
        assert!(store.generations().view().tree("t", 1).is_none());
        commit_many(&store, 5000, 3);
        let due = q.due(100, 10, &HashSet::new()).unwrap();
        assert_eq!(ids(&due.entries), ["5000-1", "5001-1", "5002-1"]);
        assert_eq!(due.entries[0].0, 5001);
        drop(q);
        drop(store);
        let store = Store::open(&path, 8, &["t"]).unwrap();
        assert_eq!(store.queue("t").unwrap().pending_len(), 3);
        assert!(store.generations().view().tree("t", 0).is_none());
    }

    #[test]
    fn a_replay_after_its_generation_is_gone_comes_back_in_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir); // a-1, b-1, a-2, c-1: seqs 1..=4
        let q = store.queue("t").unwrap();
        deliver(&q, 2..=4);
        assert!(store.generations().view().tree("t", 0).is_some());
        // The last entry of the generation dies: the generation goes.
        q.dead_letter(1, error(400)).unwrap();
        assert_eq!(q.pending_len(), 0);
        assert!(store.generations().view().tree("t", 0).is_none());
        assert_eq!(q.replay(1, 50).unwrap().as_deref(), Some("a-1"));
        commit_many(&store, 0, 1); // seq 5
        let due = q.due(100, 10, &HashSet::new()).unwrap();
        assert_eq!(ids(&due.entries), ["a-1", "0-1"]);
        assert_eq!(
            due.entries.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [1, 5]
        );
        deliver(&q, [1, 5].into_iter());
        assert_eq!(q.pending_len(), 0);
        assert!(q.outbox.is_empty(), "a replay is removed once delivered");
    }

    #[test]
    fn entries_queued_before_generations_go_first_and_keep_each_invoice_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        // A store as schema 3 left it: entries in `outbox/t`, the counter at 2.
        crate::store::tests::write_raw(
            &path,
            &[
                ("meta", b"schema_version", &3u32.to_be_bytes()),
                ("meta", b"outbox_seq", &2u64.to_be_bytes()),
                ("outbox/t", &1u64.to_be_bytes(), &encode(&entry("a-1", "A"))),
                ("outbox/t", &2u64.to_be_bytes(), &encode(&entry("b-1", "B"))),
            ],
        );
        let store = Store::open(&path, 8, &["t"]).unwrap();
        store
            .commit_page(&PageBatch {
                entries: vec![
                    ("t".into(), entry("a-2", "A")),
                    ("t".into(), entry("c-1", "C")),
                ],
                ..Default::default()
            })
            .unwrap();
        let q = store.queue("t").unwrap();
        assert_eq!(q.pending_len(), 4);
        let due = q.due(100, 10, &HashSet::new()).unwrap();
        assert_eq!(ids(&due.entries), ["a-1", "b-1", "c-1"], "a-2 waits");
        assert_eq!(
            due.entries.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [1, 2, 4]
        );
        q.retry_at(2, error(503), 1000).unwrap();
        assert_eq!(q.pending(2).unwrap()[1].1.attempts, 1, "updated in place");
        deliver(&q, [1, 4].into_iter());
        let due = q.due(100, 10, &HashSet::new()).unwrap();
        assert_eq!(ids(&due.entries), ["a-2"]);
        assert_eq!(due.next_at, Some(1000));
        deliver(&q, [2, 3].into_iter());
        assert_eq!(q.pending_len(), 0);
        assert!(q.outbox.is_empty());
    }

    #[test]
    fn commits_and_deliveries_at_once_lose_nothing_and_repeat_nothing() {
        // A poll commits while the driver delivers and drops generations,
        // including the one being written to whenever it catches up.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 8, &["t"]).unwrap();
        let committed = std::sync::atomic::AtomicBool::new(false);
        let mut delivered = Vec::new();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for page in 0..30 {
                    commit_many(&store, page * 300, 300);
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                committed.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            let q = store.queue("t").unwrap();
            loop {
                let done = committed.load(std::sync::atomic::Ordering::SeqCst);
                let due = q.due(100, 256, &HashSet::new()).unwrap();
                if due.entries.is_empty() && done {
                    break;
                }
                let seqs: Vec<u64> = due.entries.iter().map(|(s, _)| *s).collect();
                deliver(&q, seqs.iter().copied());
                delivered.extend(seqs);
            }
        });
        assert_eq!(delivered, (1..=9000).collect::<Vec<u64>>());
        assert_eq!(store.queue("t").unwrap().pending_len(), 0);
    }

    #[test]
    fn readers_never_see_a_generation_as_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 8, &["t"]).unwrap();
        commit_many(&store, 0, 9000); // generations 0, 1 and 2
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let q = store.queue("t").unwrap();
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let seqs: Vec<u64> = q
                        .pending(usize::MAX)
                        .unwrap()
                        .iter()
                        .map(|(s, _)| *s)
                        .collect();
                    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
                    assert!(seqs.last().is_none_or(|s| *s == 9000), "no entry lost");
                    reads += 1;
                }
                reads
            });
            let q = store.queue("t").unwrap();
            deliver(&q, 1..=9000);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
        });
        assert_eq!(store.queue("t").unwrap().pending_len(), 0);
        for g in 0..3 {
            assert!(store.generations().view().tree("t", g).is_none());
        }
    }

    #[test]
    fn retry_now_and_updates_never_resurrect_a_removed_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let q = store.queue("t").unwrap();
        let (seq, _) = q.pending(1).unwrap()[0].clone();
        q.retry_at(seq, error(500), 9_999).unwrap();
        assert_eq!(q.retry_now(None, 10).unwrap(), 4);
        assert_eq!(q.pending(1).unwrap()[0].1.next_attempt_at, 10);
        q.delivered(seq).unwrap();
        q.retry_at(seq, error(500), 1).unwrap();
        assert_eq!(q.pending_len(), 3, "a late update does not bring it back");
    }

    #[test]
    fn retry_now_of_one_entry_touches_only_that_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let q = store.queue("t").unwrap();
        let seqs: Vec<u64> = q.pending(4).unwrap().iter().map(|(s, _)| *s).collect();
        for &seq in &seqs {
            q.retry_at(seq, error(500), 9_999).unwrap();
        }
        assert_eq!(q.retry_now(Some(seqs[1]), 10).unwrap(), 1);
        let next: Vec<i64> = q
            .pending(4)
            .unwrap()
            .iter()
            .map(|(_, e)| e.next_attempt_at)
            .collect();
        assert_eq!(next, [9_999, 10, 9_999, 9_999]);
    }

    #[test]
    fn schema_1_entries_are_read_and_due_at_once() {
        let old = (
            "456000-1".to_owned(),
            EventType::Printed,
            "456000".to_owned(),
            b"{}".to_vec(),
            1_700_000_000i64,
            2u32,
            Some("HTTP 500".to_owned()),
        );
        let mut bytes = vec![1u8];
        bytes.extend(postcard::to_stdvec(&old).unwrap());
        let e = decode_entry("outbox/t", &bytes).unwrap();
        assert_eq!(
            (e.attempts, e.next_attempt_at, e.enqueued_at),
            (2, 0, 1_700_000_000_000)
        );
        assert_eq!(e.last_error.unwrap().to_string(), "HTTP 500");
    }
}
