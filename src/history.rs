//! The event history: what the console and `/api/invoices` answer "what
//! happened to this order?" from.
//!
//! Every event a poll detects is recorded in the same transaction that
//! queues its deliveries ([`crate::store::Store::commit_page`]): what
//! changed, when, and the targets it was routed to (none is a valid answer:
//! no target wanted it). Every delivery attempt is appended as it is
//! applied (time, outcome, status, reason), and so are an operator's replays
//! and purges.
//!
//! Successful deliveries, by far the most common attempt, are written
//! together: one record per batch of removals from the outbox and detection
//! time, listing each event with the time its receiver acknowledged it,
//! instead of one record per event. A write per delivered event was the
//! largest part of what delivery costs beyond the request itself (`bench`,
//! perf: about a quarter of the driver's CPU). Finding an event's deliveries
//! reads the records of its detection time (a poll's events share it), which
//! only the console does.
//!
//! Records older than `store.history_days` go with the hourly prune pass;
//! `history_days = 0` turns the history off.
//!
//! **Personal data** follows the targets' rule: a record keeps the
//! recipient only when a target it was routed to opted in, and then masked
//! (홍*동 010-****-5678), never raw, so nothing a person can open here shows
//! more than a channel does.
//!
//! Trees (keys are bytes; `\0` separates parts, times are big-endian ms so
//! keys sort by time):
//!
//! | tree | key | value |
//! |---|---|---|
//! | `history/events` | event id | [`EventRecord`] |
//! | `history/attempts` | detection time, event id `\0` target `\0` time n | [`Attempt`] |
//! | | detection time `\0` target `\0` time n | deliveries acknowledged together |
//! | `history/index` | `i\0`invoice`\0`time event id | — (an invoice's timeline) |
//! | | `o\0`order code`\0`invoice | — (search by order code) |
//! | | `c\0`tracking no.`\0`invoice | — (search by `invoiceCode`, digits only) |
//! | `history/time` | time event id | invoice id (what pruning walks) |

use serde::{Deserialize, Serialize};
use sled::Tree;

use crate::event::{Event, EventType};
use crate::store::{StoreError, decode, encode};

/// One detected event, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub event_id: String,
    pub invoice_id: String,
    pub kind: EventType,
    /// Unix milliseconds.
    pub detected_at: i64,
    pub order_codes: Vec<String>,
    pub invoice_code: Option<String>,
    /// The targets it was routed to, in config order (empty: none wanted it).
    pub targets: Vec<String>,
    /// The event JSON; personal data masked, or absent when no routed
    /// target opted in. Stored packed (see [`crate::packed`]).
    #[serde(with = "crate::packed")]
    pub event: Vec<u8>,
}

impl EventRecord {
    /// The record of `event`, routed to `targets` (whether any of them opted
    /// in to personal data decides if the masked recipient is kept).
    pub fn of(event: &Event, targets: Vec<String>, personal_data: bool) -> EventRecord {
        let mut shaped = if personal_data {
            event.clone().with_personal_data_masked()
        } else {
            event.clone().without_personal_data()
        };
        // Most invoices belong to one order, which the event lists twice
        // (`order` and `orders: [order]`): the record keeps it once, a
        // quarter of its bytes, and [`EventRecord::event`] restores it.
        if shaped.orders.len() == 1 && shaped.orders[0] == shaped.order {
            shaped.orders.clear();
        }
        let mut order_codes: Vec<String> = event
            .orders
            .iter()
            .chain(std::iter::once(&event.order))
            .filter_map(|o| o.order_code.clone())
            .collect();
        order_codes.sort();
        order_codes.dedup();
        EventRecord {
            event_id: event.id.clone(),
            invoice_id: event.invoice.invoice_id.clone(),
            kind: event.kind,
            detected_at: event.detected_at.timestamp_millis(),
            order_codes,
            invoice_code: event.invoice.invoice_code.clone(),
            targets,
            event: serde_json::to_vec(&shaped).expect("an event serializes"),
        }
    }

    /// The event as recorded (personal data masked or absent), its `orders`
    /// restored; `None` when the JSON cannot be read.
    pub fn event(&self) -> Option<Event> {
        serde_json::from_value(self.event_json()).ok()
    }

    /// [`EventRecord::event`] as JSON, as the console and `/api` show it
    /// (`null` when it cannot be read).
    pub fn event_json(&self) -> serde_json::Value {
        let mut value: serde_json::Value =
            serde_json::from_slice(&self.event).unwrap_or(serde_json::Value::Null);
        if let Some(object) = value.as_object_mut() {
            let listed = object
                .get("orders")
                .and_then(|o| o.as_array())
                .is_some_and(|o| !o.is_empty());
            if let (false, Some(order)) = (listed, object.get("order").cloned()) {
                object.insert("orders".into(), serde_json::Value::Array(vec![order]));
            }
        }
        value
    }

    /// Every key this record adds to `history/index` and `history/time`.
    pub(crate) fn keys(&self) -> Keys {
        let mut keys = vec![timeline_key(
            &self.invoice_id,
            self.detected_at,
            &self.event_id,
        )];
        for code in &self.order_codes {
            keys.push(lookup_key(b'o', code, &self.invoice_id));
        }
        if let Some(code) = &self.invoice_code {
            let code = tracking_number(code);
            if !code.is_empty() {
                keys.push(lookup_key(b'c', &code, &self.invoice_id));
            }
        }
        Keys {
            index: keys,
            time: time_key(self.detected_at, &self.event_id),
        }
    }
}

/// The keys of one [`EventRecord`]: its timeline key first, then its
/// lookup keys; and its `history/time` key.
pub(crate) struct Keys {
    pub index: Vec<Vec<u8>>,
    pub time: Vec<u8>,
}

/// One poll, as the console's overview lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollRecord {
    /// When it started (Unix ms).
    pub at: i64,
    pub took_ms: u64,
    pub windows: Vec<String>,
    pub pages: u32,
    pub invoices_seen: u64,
    pub events: u64,
    pub queued: u64,
    pub baseline: bool,
    pub skipped: u64,
    /// Why it was not complete, worded for a person; `None`: it was.
    pub error: Option<String>,
}

/// Polls kept for the overview.
pub const POLLS_KEPT: usize = 20;

/// An attempt at one event's delivery to one target. `detected_at` is the
/// event's (an outbox entry's `enqueued_at`): attempts are keyed by it.
pub struct AttemptOf<'a> {
    pub detected_at: i64,
    pub event_id: &'a str,
    pub target: &'a str,
    pub attempt: Attempt,
}

/// Deliveries to one target acknowledged in one batch, of events detected
/// at the same time: each event id with when it was acknowledged (Unix ms).
#[derive(Debug, Default, Serialize, Deserialize)]
struct DeliveredTogether {
    events: Vec<(String, i64)>,
}

/// What one attempt (or an operator's action) did to an event at a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Unix milliseconds.
    pub at: i64,
    pub outcome: AttemptOutcome,
    pub status: Option<u16>,
    /// The receiver's answer or the transport error, one line; never a URL.
    pub detail: Option<String>,
    /// For a retry: when the next attempt is due (Unix ms).
    pub next_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; another attempt is scheduled.
    Retry,
    /// Moved to dead letters.
    Dead,
    /// An operator replayed the dead letter.
    Replayed,
    /// An operator purged the dead letter.
    Purged,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::Dead => "dead",
            AttemptOutcome::Replayed => "replayed",
            AttemptOutcome::Purged => "purged",
        }
    }
}

/// The history trees of a store.
pub struct History {
    pub(crate) events: Tree,
    attempts: Tree,
    pub(crate) index: Tree,
    pub(crate) time: Tree,
    /// The last part of an attempt's key, after its time: two attempts in
    /// the same millisecond stay apart (seeded at random per process).
    counter: std::sync::atomic::AtomicU32,
    /// Off when the config says `history_days = 0`.
    enabled: bool,
}

/// What `history/index` finds for a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    pub invoice_id: String,
    /// `invoice_id`, `event_id`, `order_code` or `invoice_code`.
    pub matched: &'static str,
}

impl History {
    pub(crate) fn open(db: &sled::Db, ns: &str) -> Result<History, StoreError> {
        Ok(History {
            events: db.open_tree(format!("{ns}history/events"))?,
            attempts: db.open_tree(format!("{ns}history/attempts"))?,
            index: db.open_tree(format!("{ns}history/index"))?,
            time: db.open_tree(format!("{ns}history/time"))?,
            counter: fastrand::u32(..).into(),
            enabled: true,
        })
    }

    pub(crate) fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Appends attempts in one batch.
    pub fn record_attempts<'a>(
        &self,
        attempts: impl IntoIterator<Item = AttemptOf<'a>>,
    ) -> Result<(), StoreError> {
        if !self.enabled {
            return Ok(());
        }
        // Plain inserts: for a handful of keys, sled 0.34's `apply_batch`
        // cost more CPU per key than `insert` (about 13 against 7 µs, measured
        // with 10,000 keys in batches of 16).
        for a in attempts {
            let key = self.attempt_key(
                attempts_prefix(a.detected_at, a.event_id),
                a.target,
                a.attempt.at,
            );
            self.attempts.insert(key, encode(&a.attempt))?;
        }
        Ok(())
    }

    /// `prefix`, then `target \0 at n`: `n` keeps two records of the same
    /// millisecond apart.
    fn attempt_key(&self, mut prefix: Vec<u8>, target: &str, at: i64) -> Vec<u8> {
        prefix.extend_from_slice(target.as_bytes());
        prefix.push(0);
        prefix.extend_from_slice(&at.to_be_bytes());
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        prefix.extend_from_slice(&n.to_be_bytes());
        prefix
    }

    /// Successful deliveries to `target`, written together: one record per
    /// detection time among them (`(detected_at, event id, acknowledged at)`).
    pub fn record_delivered<'a>(
        &self,
        target: &str,
        delivered: impl IntoIterator<Item = (i64, &'a str, i64)>,
    ) -> Result<(), StoreError> {
        if !self.enabled {
            return Ok(());
        }
        let mut by_detection: std::collections::BTreeMap<i64, DeliveredTogether> =
            Default::default();
        for (detected_at, event_id, at) in delivered {
            by_detection
                .entry(detected_at)
                .or_default()
                .events
                .push((event_id.to_owned(), at));
        }
        for (detected_at, together) in by_detection {
            let first = together.events.iter().map(|(_, at)| *at).min();
            let key = self.attempt_key(
                together_prefix(detected_at),
                target,
                first.unwrap_or_default(),
            );
            self.attempts.insert(key, encode(&together))?;
        }
        Ok(())
    }

    /// When `event_id` was detected, as the history recorded it.
    pub fn detected_at(&self, event_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.event(event_id)?.map(|r| r.detected_at))
    }

    pub fn event(&self, event_id: &str) -> Result<Option<EventRecord>, StoreError> {
        self.events
            .get(event_id)?
            .map(|v| decode("history/events", &v))
            .transpose()
    }

    /// An invoice's events, oldest first.
    pub fn timeline(&self, invoice_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        let mut prefix = prefix1(b'i', invoice_id);
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.index.scan_prefix(&prefix) {
            let (key, _) = item?;
            let Some(event_id) = key.get(prefix.len() + 8..) else {
                continue;
            };
            let event_id = String::from_utf8_lossy(event_id);
            if let Some(record) = self.event(&event_id)? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Every attempt at the event of `record`, per target in the order made.
    pub fn attempts(&self, record: &EventRecord) -> Result<Vec<(String, Attempt)>, StoreError> {
        let target_of = |key: &[u8], prefix: usize| {
            let rest = &key[prefix..];
            let end = rest.iter().position(|&b| b == 0)?;
            Some(String::from_utf8_lossy(&rest[..end]).into_owned())
        };
        // (target, time, written together): a delivery acknowledged in the
        // same millisecond as another attempt comes after it.
        let mut out: Vec<(String, Attempt, bool)> = Vec::new();
        let prefix = attempts_prefix(record.detected_at, &record.event_id);
        for item in self.attempts.scan_prefix(&prefix) {
            let (key, value) = item?;
            let Some(target) = target_of(&key, prefix.len()) else {
                continue;
            };
            out.push((target, decode("history/attempts", &value)?, false));
        }
        let prefix = together_prefix(record.detected_at);
        for item in self.attempts.scan_prefix(&prefix) {
            let (key, value) = item?;
            let Some(target) = target_of(&key, prefix.len()) else {
                continue;
            };
            let together: DeliveredTogether = decode("history/attempts", &value)?;
            for (event_id, at) in together.events {
                if event_id == record.event_id {
                    let attempt = Attempt {
                        at,
                        outcome: AttemptOutcome::Delivered,
                        status: None,
                        detail: None,
                        next_at: None,
                    };
                    out.push((target.clone(), attempt, true));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, a.1.at, a.2).cmp(&(&b.0, b.1.at, b.2)));
        Ok(out.into_iter().map(|(t, a, _)| (t, a)).collect())
    }

    /// The invoices `query` names: an invoice id, an event id, an order code
    /// or a tracking number (dashes and spaces ignored), exact matches.
    pub fn search(&self, query: &str) -> Result<Vec<Hit>, StoreError> {
        let q = query.trim();
        let mut hits: Vec<Hit> = Vec::new();
        let mut add = |invoice_id: String, matched: &'static str| {
            if !hits.iter().any(|h| h.invoice_id == invoice_id) {
                hits.push(Hit {
                    invoice_id,
                    matched,
                });
            }
        };
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let mut timeline = prefix1(b'i', q);
        timeline.push(0);
        if self
            .index
            .scan_prefix(&timeline)
            .next()
            .transpose()?
            .is_some()
        {
            add(q.to_owned(), "invoice_id");
        }
        if let Some(record) = self.event(q)? {
            add(record.invoice_id, "event_id");
        }
        for (kind, key, matched) in [
            (b'o', q.to_owned(), "order_code"),
            (b'c', tracking_number(q), "invoice_code"),
        ] {
            if key.is_empty() {
                continue;
            }
            let mut prefix = prefix1(kind, &key);
            prefix.push(0);
            for item in self.index.scan_prefix(&prefix) {
                let (k, _) = item?;
                add(
                    String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                    matched,
                );
            }
        }
        Ok(hits)
    }

    /// Removes events detected before `before_ms`, their attempts and
    /// index keys. Returns how many events went.
    pub fn prune(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut removed = 0;
        for item in self.time.range(..before_ms.to_be_bytes().to_vec()) {
            let (key, _) = item?;
            let event_id = String::from_utf8_lossy(&key[8..]).into_owned();
            if let Some(record) = self.event(&event_id)? {
                let index = record.keys().index;
                // The timeline key first; the lookup keys only once the
                // invoice has no events left.
                self.index.remove(&index[0])?;
                let mut timeline = prefix1(b'i', &record.invoice_id);
                timeline.push(0);
                if self.index.scan_prefix(&timeline).next().is_none() {
                    for k in &index[1..] {
                        self.index.remove(k)?;
                    }
                }
                self.events.remove(event_id.as_bytes())?;
            }
            self.time.remove(&key)?;
            removed += 1;
        }
        // Attempts are keyed by their event's detection time first.
        let mut batch = sled::Batch::default();
        for k in self
            .attempts
            .range(..before_ms.to_be_bytes().to_vec())
            .keys()
        {
            batch.remove(k?);
        }
        self.attempts.apply_batch(batch)?;
        Ok(removed)
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }
}

/// A tracking number as searched: digits and letters only, so
/// `6012-3456-7890` finds `601234567890`.
pub fn tracking_number(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// An event's attempts: its detection time first, so attempts are written
/// near the end of the tree (recent events) and pruned by range.
fn attempts_prefix(detected_at: i64, event_id: &str) -> Vec<u8> {
    let mut k = detected_at.to_be_bytes().to_vec();
    k.extend_from_slice(event_id.as_bytes());
    k.push(0);
    k
}

/// The deliveries written together for events detected at `detected_at`:
/// an event id is never empty, so `\0` right after the time tells them apart
/// from [`attempts_prefix`].
fn together_prefix(detected_at: i64) -> Vec<u8> {
    let mut k = detected_at.to_be_bytes().to_vec();
    k.push(0);
    k
}

fn prefix1(kind: u8, a: &str) -> Vec<u8> {
    let mut k = vec![kind, 0];
    k.extend_from_slice(a.as_bytes());
    k
}

fn timeline_key(invoice_id: &str, at: i64, event_id: &str) -> Vec<u8> {
    let mut k = prefix1(b'i', invoice_id);
    k.push(0);
    k.extend_from_slice(&at.to_be_bytes());
    k.extend_from_slice(event_id.as_bytes());
    k
}

fn lookup_key(kind: u8, value: &str, invoice_id: &str) -> Vec<u8> {
    let mut k = prefix1(kind, value);
    k.push(0);
    k.extend_from_slice(invoice_id.as_bytes());
    k
}

fn time_key(at: i64, event_id: &str) -> Vec<u8> {
    let mut k = at.to_be_bytes().to_vec();
    k.extend_from_slice(event_id.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PageBatch, Store};

    fn event(id: &str, invoice: &str, order: &str, code: &str, at_ms: i64) -> Event {
        let statuses = crate::status::StatusTable::new(&[], &[]);
        let mut e = crate::samples::event(
            EventType::StatusChanged,
            &statuses,
            chrono::DateTime::from_timestamp_millis(at_ms).unwrap(),
        );
        e.id = id.into();
        e.invoice.invoice_id = invoice.into();
        e.invoice.invoice_code = Some(code.into());
        e.order.order_code = Some(order.into());
        e.orders = vec![e.order.clone()];
        e
    }

    fn commit(store: &Store, records: Vec<EventRecord>) {
        store
            .commit_page(&PageBatch {
                history: records,
                ..Default::default()
            })
            .unwrap();
    }

    /// A store in a temp dir holding `events`, each routed to every target.
    fn store_with(targets: &[&str], events: &[&Event]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), 8, targets).unwrap();
        let routed: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        commit(
            &store,
            events
                .iter()
                .map(|e| EventRecord::of(e, routed.clone(), false))
                .collect(),
        );
        (dir, store)
    }

    #[test]
    fn lookups_find_an_invoice_by_every_key_and_its_timeline_is_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), 8, &["erp"]).unwrap();
        let e2 = event("g-1-2", "1", "20261201_000001", "601234567890", 2_000);
        let e1 = event("g-1-1", "1", "20261201_000001", "601234567890", 1_000);
        let other = event("g-2-1", "2", "20261201_000002", "609999999999", 1_500);
        commit(
            &store,
            vec![
                EventRecord::of(&e2, vec!["erp".into()], false),
                EventRecord::of(&e1, vec!["erp".into()], false),
                EventRecord::of(&other, vec![], false),
            ],
        );
        let h = store.history();
        let ids: Vec<String> = h
            .timeline("1")
            .unwrap()
            .into_iter()
            .map(|r| r.event_id)
            .collect();
        assert_eq!(ids, ["g-1-1", "g-1-2"], "oldest first");
        for (q, matched) in [
            ("1", "invoice_id"),
            ("g-1-2", "event_id"),
            (" 20261201_000001 ", "order_code"),
            ("6012-3456-7890", "invoice_code"),
        ] {
            let hits = h.search(q).unwrap();
            assert_eq!(
                hits,
                vec![Hit {
                    invoice_id: "1".into(),
                    matched
                }],
                "{q}"
            );
        }
        assert!(h.search("20261201_00000").unwrap().is_empty(), "exact only");
        assert!(h.search("").unwrap().is_empty());
    }

    #[test]
    fn personal_data_is_kept_masked_and_only_when_a_target_opted_in() {
        let mut e = event("g-1-1", "1", "o", "c", 1_000);
        e.receiver = Some(crate::poomgo::Person {
            name: Some("홍길동".into()),
            mobile: Some("010-1234-5678".into()),
            ..Default::default()
        });
        let kept = String::from_utf8(EventRecord::of(&e, vec![], true).event).unwrap();
        assert!(
            kept.contains("010-****-5678") && kept.contains("홍*동"),
            "{kept}"
        );
        assert!(!kept.contains("1234") && !kept.contains("홍길동"));
        let left = String::from_utf8(EventRecord::of(&e, vec![], false).event).unwrap();
        assert!(!left.contains("receiver"), "{left}");
    }

    #[test]
    fn a_record_keeps_a_lone_order_once_and_gives_the_event_back_whole() {
        let single = event("g-1-1", "1", "O1", "111", 1_000);
        let record = EventRecord::of(&single, vec![], false);
        let stored = String::from_utf8(record.event.clone()).unwrap();
        assert_eq!(stored.matches("\"O1\"").count(), 1, "{stored}");
        assert_eq!(record.event().unwrap().orders, single.orders);
        assert_eq!(
            record.event_json()["orders"],
            serde_json::to_value(&single.orders).unwrap()
        );
        assert!(record.event_json()["order"]["orderCode"] == "O1");

        // A combined shipment keeps every order, as before.
        let mut combined = single.clone();
        let mut other = combined.order.clone();
        other.order_code = Some("O2".into());
        combined.orders.push(other);
        let record = EventRecord::of(&combined, vec![], false);
        assert_eq!(record.event().unwrap().orders, combined.orders);
        assert_eq!(record.event_json()["orders"].as_array().unwrap().len(), 2);

        // A record written before this (the order twice) reads the same.
        let mut old = EventRecord::of(&single, vec![], false);
        old.event = serde_json::to_vec(&single.clone().without_personal_data()).unwrap();
        assert_eq!(old.event().unwrap().orders, single.orders);
        assert_eq!(
            old.event_json(),
            EventRecord::of(&single, vec![], false).event_json()
        );
        // Unreadable JSON is no event, not a panic.
        old.event = b"not json".to_vec();
        assert!(old.event().is_none());
        assert!(old.event_json().is_null());
    }

    #[test]
    fn pruning_removes_old_events_their_attempts_and_keys_and_keeps_the_rest() {
        let old = event("g-1-1", "1", "O1", "111", 1_000);
        let new = event("g-1-2", "1", "O1", "111", 5_000);
        let gone = event("g-2-1", "2", "O2", "222", 1_000);
        let (_dir, store) = store_with(&["erp"], &[&old, &new, &gone]);
        let attempt = |at| Attempt {
            at,
            outcome: AttemptOutcome::Delivered,
            status: None,
            detail: None,
            next_at: None,
        };
        let h = store.history();
        fn of(e: &Event, attempt: Attempt) -> AttemptOf<'_> {
            AttemptOf {
                detected_at: e.detected_at.timestamp_millis(),
                event_id: &e.id,
                target: "erp",
                attempt,
            }
        }
        h.record_attempts([
            of(&old, attempt(1)),
            of(&gone, attempt(2)),
            of(&new, attempt(3)),
        ])
        .unwrap();
        let old_record = h.event("g-1-1").unwrap().unwrap();
        let gone_record = h.event("g-2-1").unwrap().unwrap();
        assert_eq!(h.attempts(&old_record).unwrap().len(), 1);
        assert_eq!(h.prune(3_000).unwrap(), 2);
        assert_eq!(h.len(), 1);
        assert!(h.event("g-1-1").unwrap().is_none());
        assert!(h.attempts(&old_record).unwrap().is_empty());
        assert!(h.attempts(&gone_record).unwrap().is_empty());
        let kept = h.event("g-1-2").unwrap().unwrap();
        assert_eq!(h.attempts(&kept).unwrap().len(), 1);
        // Invoice 1 keeps its newer event and stays findable; invoice 2 is gone.
        assert_eq!(h.search("O1").unwrap().len(), 1);
        assert!(h.search("O2").unwrap().is_empty());
        assert!(h.search("222").unwrap().is_empty());
        assert_eq!(h.timeline("1").unwrap().len(), 1);
        assert_eq!(h.prune(3_000).unwrap(), 0);
    }

    #[test]
    fn deliveries_written_together_read_back_per_event_in_order_and_are_pruned() {
        let a = event("g-1-1", "1", "O1", "111", 1_000);
        let b = event("g-2-1", "2", "O2", "222", 1_000);
        let later = event("g-3-1", "3", "O3", "333", 9_000);
        let (_dir, store) = store_with(&["erp", "ops"], &[&a, &b, &later]);
        let h = store.history();
        // `a` failed once at erp, then erp acknowledged a, b and later in one
        // batch; ops acknowledged a on its own.
        h.record_attempts([AttemptOf {
            detected_at: 1_000,
            event_id: "g-1-1",
            target: "erp",
            attempt: Attempt {
                at: 1_500,
                outcome: AttemptOutcome::Retry,
                status: Some(503),
                detail: Some("503".into()),
                next_at: Some(2_000),
            },
        }])
        .unwrap();
        h.record_delivered(
            "erp",
            [
                (1_000, "g-1-1", 2_000),
                (1_000, "g-2-1", 2_001),
                (9_000, "g-3-1", 9_500),
            ],
        )
        .unwrap();
        h.record_delivered("ops", [(1_000, "g-1-1", 1_200)])
            .unwrap();
        // One record per target and detection time: erp 2, ops 1, plus the retry.
        assert_eq!(h.attempts.len(), 4);
        let seen = |id: &str| {
            let record = h.event(id).unwrap().unwrap();
            h.attempts(&record)
                .unwrap()
                .into_iter()
                .map(|(t, a)| (t, a.at, a.outcome))
                .collect::<Vec<_>>()
        };
        use AttemptOutcome::{Delivered, Retry};
        assert_eq!(
            seen("g-1-1"),
            [
                ("erp".to_owned(), 1_500, Retry),
                ("erp".to_owned(), 2_000, Delivered),
                ("ops".to_owned(), 1_200, Delivered),
            ]
        );
        assert_eq!(seen("g-2-1"), [("erp".to_owned(), 2_001, Delivered)]);
        assert_eq!(seen("g-3-1"), [("erp".to_owned(), 9_500, Delivered)]);
        // Pruning by detection time takes the records of the old events only.
        assert_eq!(h.prune(5_000).unwrap(), 2);
        assert_eq!(h.attempts.len(), 1);
        assert_eq!(seen("g-3-1"), [("erp".to_owned(), 9_500, Delivered)]);
    }

    #[test]
    fn a_store_that_keeps_no_history_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s"), 8, &["erp"]).unwrap();
        store.keep_history(false);
        let e = event("g-1-1", "1", "O1", "111", 1_000);
        commit(&store, vec![EventRecord::of(&e, vec![], false)]);
        store
            .history()
            .record_attempts([AttemptOf {
                detected_at: 1_000,
                event_id: "g-1-1",
                target: "erp",
                attempt: Attempt {
                    at: 1,
                    outcome: AttemptOutcome::Delivered,
                    status: None,
                    detail: None,
                    next_at: None,
                },
            }])
            .unwrap();
        store
            .history()
            .record_delivered("erp", [(1_000, "g-1-1", 2)])
            .unwrap();
        assert!(store.history().is_empty());
        assert_eq!(store.history().attempts.len(), 0);
    }
}
