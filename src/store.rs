//! The durable state, in sled: snapshots, one outbox per target, dead
//! letters, meta.
//!
//! | tree              | key                      | value |
//! |-------------------|--------------------------|-------|
//! | `snapshots`       | invoice id (UTF-8)       | [`Snapshot`] |
//! | `outbox/<target>` | sequence (u64 big-endian) | [`OutboxEntry`] |
//! | `dead/<target>`   | sequence (u64 big-endian) | [`OutboxEntry`] |
//! | `meta`            | name                     | schema version, baseline flag, last poll, outbox sequence |
//!
//! Values are one version byte followed by postcard: compact, and a future
//! layout can be told apart from this one. Opening a store whose schema
//! version is newer than this binary's fails with a message saying so.
//!
//! **The commit.** The snapshots of one page and the outbox entries its
//! events produce are written in one sled transaction across the trees, so a
//! crash leaves both or neither. Everything is encoded *before* the
//! transaction: sled may run the closure more than once, so it only inserts.
//! Outbox keys come from a counter in `meta` incremented in that same
//! transaction, so entries keep the order in which changes were detected
//! (which is what keeps one invoice's events in order for a target).
//!
//! sled's default page cache is 1 GiB; it is sized from `store.cache_mb`.
//! sled takes a file lock, so two processes can never share a store.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sled::{Transactional, Tree, transaction::ConflictableTransactionError};

use crate::diff::Snapshot;
use crate::event::EventType;
use crate::poomgo::InvoiceId;

/// The layout this binary writes and reads.
pub const SCHEMA_VERSION: u32 = 1;
/// The version byte in front of every value.
const RECORD_VERSION: u8 = 1;

const META_SCHEMA: &[u8] = b"schema_version";
const META_BASELINE: &[u8] = b"baseline_done";
const META_LAST_POLL: &[u8] = b"last_successful_poll";
const META_OUTBOX_SEQ: &[u8] = b"outbox_seq";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source} (is another poomgo-notifier using it?)")]
    Open { path: PathBuf, source: sled::Error },
    #[error(
        "the store at {path} was written by a newer poomgo-notifier (schema {found}; this one reads up to {SCHEMA_VERSION}): upgrade, or point `store.path` elsewhere"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("the store holds a record it cannot read in `{tree}`: {reason}")]
    Corrupt { tree: String, reason: String },
    #[error("the store failed: {0}")]
    Sled(#[from] sled::Error),
}

/// One pending delivery: an event, already shaped for its target (personal
/// data removed unless the target opted in), as the JSON it will be sent as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub event_id: String,
    pub kind: EventType,
    pub invoice_id: String,
    /// The event as JSON (the webhook body; templates render from it).
    pub event: Vec<u8>,
    /// Unix seconds.
    pub enqueued_at: i64,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// What a prune pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub removed: u64,
    pub kept: u64,
}

/// What one page of a poll writes.
#[derive(Debug, Default)]
pub struct PageBatch {
    pub snapshots: Vec<(InvoiceId, Snapshot)>,
    /// (target name, entry), in detection order.
    pub entries: Vec<(String, OutboxEntry)>,
}

pub struct Store {
    db: sled::Db,
    snapshots: Tree,
    meta: Tree,
    outboxes: BTreeMap<String, Tree>,
    dead: BTreeMap<String, Tree>,
}

impl Store {
    /// Opens (or creates) the store at `path` with trees for `targets`.
    pub fn open(path: &Path, cache_mb: u64, targets: &[&str]) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| open_err(e.into()))?;
        }
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb.saturating_mul(1024 * 1024))
            .open()
            .map_err(open_err)?;
        let meta = db.open_tree("meta")?;
        match meta.get(META_SCHEMA)? {
            Some(v) => {
                let found =
                    u32::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                        tree: "meta".into(),
                        reason: "schema_version is not a u32".into(),
                    })?);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema {
                        path: path.to_owned(),
                        found,
                    });
                }
            }
            None => {
                meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
            }
        }
        let mut outboxes = BTreeMap::new();
        let mut dead = BTreeMap::new();
        for &t in targets {
            outboxes.insert(t.to_owned(), db.open_tree(format!("outbox/{t}"))?);
            dead.insert(t.to_owned(), db.open_tree(format!("dead/{t}"))?);
        }
        Ok(Store {
            snapshots: db.open_tree("snapshots")?,
            meta,
            outboxes,
            dead,
            db,
        })
    }

    pub fn snapshot(&self, id: &InvoiceId) -> Result<Option<Snapshot>, StoreError> {
        self.snapshots
            .get(id.as_str())?
            .map(|v| decode("snapshots", &v))
            .transpose()
    }

    /// Snapshots stored in all.
    pub fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }

    /// Writes one page's snapshots and outbox entries atomically.
    pub fn commit_page(&self, batch: &PageBatch) -> Result<(), StoreError> {
        if batch.snapshots.is_empty() && batch.entries.is_empty() {
            return Ok(());
        }
        let snapshots: Vec<(&str, Vec<u8>)> = batch
            .snapshots
            .iter()
            .map(|(id, s)| (id.as_str(), encode(s)))
            .collect();
        let mut target_index = BTreeMap::new();
        let mut trees: Vec<&Tree> = vec![&self.snapshots, &self.meta];
        let mut entries = Vec::with_capacity(batch.entries.len());
        for (target, entry) in &batch.entries {
            let tree = self.outbox_tree(target)?;
            let index = *target_index.entry(target.as_str()).or_insert_with(|| {
                trees.push(tree);
                trees.len() - 1
            });
            entries.push((index, encode(entry)));
        }
        trees[..]
            .transaction(|t| {
                for (key, value) in &snapshots {
                    t[0].insert(key.as_bytes(), value.as_slice())?;
                }
                if !entries.is_empty() {
                    let mut seq = match t[1].get(META_OUTBOX_SEQ)? {
                        Some(v) => u64_of(&v).ok_or_else(|| {
                            ConflictableTransactionError::Abort(
                                "meta outbox_seq is not a u64".to_owned(),
                            )
                        })?,
                        None => 0,
                    };
                    for (index, value) in &entries {
                        seq += 1;
                        t[*index].insert(&seq.to_be_bytes(), value.as_slice())?;
                    }
                    t[1].insert(META_OUTBOX_SEQ, &seq.to_be_bytes())?;
                }
                Ok(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Abort(reason) => StoreError::Corrupt {
                    tree: "meta".into(),
                    reason,
                },
                sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
            })
    }

    pub fn baseline_done(&self) -> Result<bool, StoreError> {
        Ok(self.meta.get(META_BASELINE)?.is_some())
    }

    /// Records a complete poll: the baseline is done from now on.
    pub fn record_successful_poll(&self, at_unix: i64) -> Result<(), StoreError> {
        self.meta.insert(META_BASELINE, &[1u8])?;
        self.meta.insert(META_LAST_POLL, &at_unix.to_be_bytes())?;
        Ok(())
    }

    /// Unix seconds of the last complete poll.
    pub fn last_successful_poll(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .meta
            .get(META_LAST_POLL)?
            .and_then(|v| u64_of(&v))
            .map(|v| v as i64))
    }

    /// Removes snapshots of final invoices last seen before `before_unix`.
    /// Non-final invoices are kept however old: forgetting them would
    /// announce them again as new. The same pass counts what is kept, so
    /// nothing else has to walk every snapshot to know the total.
    pub fn prune(&self, before_unix: i64) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        for item in self.snapshots.iter() {
            let (key, value) = item?;
            let s: Snapshot = decode("snapshots", &value)?;
            // Only if unchanged since read: a concurrent writer would win.
            if s.is_final
                && s.last_seen < before_unix
                && self
                    .snapshots
                    .compare_and_swap(&key, Some(value), None::<&[u8]>)?
                    .is_ok()
            {
                pruned.removed += 1;
            } else {
                pruned.kept += 1;
            }
        }
        Ok(pruned)
    }

    /// A small write, to tell whether the store still takes writes (health).
    pub fn probe_write(&self) -> Result<(), StoreError> {
        self.meta.insert(
            b"health_probe",
            &chrono::Utc::now().timestamp().to_be_bytes(),
        )?;
        Ok(())
    }

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// The outbox of `target`, oldest first.
    pub fn outbox<'a>(&'a self, target: &'a str) -> Result<Outbox<'a>, StoreError> {
        Ok(Outbox {
            tree: self.outbox_tree(target)?,
            name: target,
        })
    }

    fn outbox_tree(&self, target: &str) -> Result<&Tree, StoreError> {
        self.outboxes
            .get(target)
            .ok_or_else(|| StoreError::Corrupt {
                tree: format!("outbox/{target}"),
                reason: "no such target was opened".into(),
            })
    }

    /// Outboxes left by targets that are no longer configured (renamed or
    /// removed), with how many entries each still holds. They are never
    /// delivered; the operator should know.
    pub fn orphaned_outboxes(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let mut orphans = Vec::new();
        for name in self.db.tree_names() {
            let Some(target) = std::str::from_utf8(&name)
                .ok()
                .and_then(|n| n.strip_prefix("outbox/"))
            else {
                continue;
            };
            if !self.outboxes.contains_key(target) {
                let pending = self.db.open_tree(&name)?.len();
                if pending > 0 {
                    orphans.push((target.to_owned(), pending));
                }
            }
        }
        Ok(orphans)
    }

    pub fn dead_letter_count(&self, target: &str) -> usize {
        self.dead.get(target).map_or(0, |t| t.len())
    }
}

/// One target's queue of pending deliveries.
pub struct Outbox<'a> {
    tree: &'a Tree,
    name: &'a str,
}

impl Outbox<'_> {
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The oldest entry and its key.
    pub fn first(&self) -> Result<Option<(u64, OutboxEntry)>, StoreError> {
        self.entries(1).map(|mut v| v.pop())
    }

    /// Up to `limit` entries, oldest first.
    pub fn entries(&self, limit: usize) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        let tree = format!("outbox/{}", self.name);
        self.tree
            .iter()
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                let seq = u64_of(&k).ok_or_else(|| StoreError::Corrupt {
                    tree: tree.clone(),
                    reason: "key is not a u64".into(),
                })?;
                Ok((seq, decode(&tree, &v)?))
            })
            .collect()
    }

    /// Removes a delivered entry.
    pub fn remove(&self, seq: u64) -> Result<(), StoreError> {
        self.tree.remove(seq.to_be_bytes())?;
        Ok(())
    }

    /// Keeps a failed entry where it is, noting the attempt and why.
    pub fn record_failure(
        &self,
        seq: u64,
        entry: &OutboxEntry,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut updated = entry.clone();
        updated.attempts += 1;
        updated.last_error = Some(error.to_owned());
        self.tree.insert(seq.to_be_bytes(), encode(&updated))?;
        Ok(())
    }
}

fn u64_of(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    out.extend(postcard::to_stdvec(value).expect("postcard serializes plain data"));
    out
}

fn decode<T: DeserializeOwned>(tree: &str, bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        tree: tree.to_owned(),
        reason,
    };
    match bytes.split_first() {
        Some((&RECORD_VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| corrupt(e.to_string()))
        }
        Some((v, _)) => Err(corrupt(format!(
            "record version {v} is unknown to this binary"
        ))),
        None => Err(corrupt("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(rev: u64, is_final: bool, last_seen: i64) -> Snapshot {
        Snapshot {
            rev,
            invoice_code: Some("1".into()),
            is_printed: true,
            is_closed: false,
            cargo_status_code_key: None,
            canceled: false,
            is_final,
            last_seen,
        }
    }

    fn entry(id: &str) -> OutboxEntry {
        OutboxEntry {
            event_id: id.into(),
            kind: EventType::Printed,
            invoice_id: "1".into(),
            event: b"{}".to_vec(),
            enqueued_at: 0,
            attempts: 0,
            last_error: None,
        }
    }

    #[test]
    fn a_page_commits_snapshots_and_ordered_outbox_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 8, &["a", "b"]).unwrap();
        let batch = PageBatch {
            snapshots: vec![(InvoiceId("1".into()), snap(1, false, 10))],
            entries: vec![
                ("a".into(), entry("1-1")),
                ("b".into(), entry("1-1")),
                ("a".into(), entry("2-1")),
            ],
        };
        store.commit_page(&batch).unwrap();
        store
            .commit_page(&PageBatch {
                snapshots: vec![],
                entries: vec![("a".into(), entry("3-1"))],
            })
            .unwrap();
        assert_eq!(
            store.snapshot(&InvoiceId("1".into())).unwrap(),
            Some(snap(1, false, 10))
        );
        let ids: Vec<_> = store
            .outbox("a")
            .unwrap()
            .entries(10)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.event_id)
            .collect();
        assert_eq!(ids, ["1-1", "2-1", "3-1"]);
        assert_eq!(store.outbox("b").unwrap().len(), 1);
        let (seq, first) = store.outbox("a").unwrap().first().unwrap().unwrap();
        store
            .outbox("a")
            .unwrap()
            .record_failure(seq, &first, "HTTP 500")
            .unwrap();
        let (_, again) = store.outbox("a").unwrap().first().unwrap().unwrap();
        assert_eq!(
            (again.attempts, again.last_error.as_deref()),
            (1, Some("HTTP 500"))
        );
        store.outbox("a").unwrap().remove(seq).unwrap();
        assert_eq!(store.outbox("a").unwrap().len(), 2);
    }

    #[test]
    fn state_survives_reopening_and_baseline_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path, 8, &["a"]).unwrap();
            assert!(!store.baseline_done().unwrap());
            store
                .commit_page(&PageBatch {
                    snapshots: vec![(InvoiceId("9".into()), snap(0, false, 1))],
                    entries: vec![],
                })
                .unwrap();
            store.record_successful_poll(1234).unwrap();
        }
        let store = Store::open(&path, 8, &["a"]).unwrap();
        assert!(store.baseline_done().unwrap());
        assert_eq!(store.last_successful_poll().unwrap(), Some(1234));
        assert_eq!(store.snapshot_count(), 1);
    }

    #[test]
    fn outboxes_of_targets_no_longer_configured_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path, 8, &["old", "kept"]).unwrap();
            let batch = PageBatch {
                snapshots: vec![],
                entries: vec![("old".into(), entry("1-1")), ("kept".into(), entry("1-1"))],
            };
            store.commit_page(&batch).unwrap();
        }
        let store = Store::open(&path, 8, &["kept", "new"]).unwrap();
        assert_eq!(
            store.orphaned_outboxes().unwrap(),
            vec![("old".to_owned(), 1)]
        );
    }

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = sled::open(&path).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(META_SCHEMA, &(SCHEMA_VERSION + 1).to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let message = Store::open(&path, 8, &[]).err().unwrap().to_string();
        assert!(
            message.contains("newer poomgo-notifier") && message.contains("schema 2"),
            "{message}"
        );
    }

    #[test]
    fn prune_removes_only_final_invoices_unseen_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 8, &[]).unwrap();
        let batch = PageBatch {
            snapshots: vec![
                (InvoiceId("old-final".into()), snap(1, true, 100)),
                (InvoiceId("old-open".into()), snap(1, false, 100)),
                (InvoiceId("new-final".into()), snap(1, true, 1000)),
            ],
            entries: vec![],
        };
        store.commit_page(&batch).unwrap();
        assert_eq!(
            store.prune(500).unwrap(),
            Pruned {
                removed: 1,
                kept: 2
            }
        );
        assert_eq!(
            store.snapshot(&InvoiceId("old-final".into())).unwrap(),
            None
        );
        assert!(
            store
                .snapshot(&InvoiceId("old-open".into()))
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .snapshot(&InvoiceId("new-final".into()))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn an_unknown_record_version_is_an_error_not_a_panic() {
        assert!(
            decode::<Snapshot>("snapshots", &[9, 1, 2])
                .unwrap_err()
                .to_string()
                .contains("record version 9")
        );
        assert!(decode::<Snapshot>("snapshots", &[]).is_err());
        assert!(decode::<Snapshot>("snapshots", &[RECORD_VERSION, 0xff]).is_err());
    }
}
