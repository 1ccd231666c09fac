//! The durable state, in sled: snapshots, one outbox per target, dead
//! letters, meta.
//!
//! | tree              | key                      | value |
//! |-------------------|--------------------------|-------|
//! | `snapshots`       | invoice id (UTF-8)       | [`Snapshot`] |
//! | `tombstones`      | invoice id (UTF-8)       | last revision (u64 big-endian) of a pruned invoice |
//! | `rows`            | order id (u64 big-endian) | [`KnownRowRecord`]: the digest of the row's bytes, the day it was vouched for, its invoice ids |
//! | `outbox/<target>/<g>` | sequence (u64 big-endian) | [`OutboxEntry`] of generation `g` (see [`crate::delivery::generations`]) |
//! | `outbox/<target>` | sequence (u64 big-endian) | [`OutboxEntry`] queued by a build before generations, or replayed |
//! | `dead/<target>`   | sequence (u64 big-endian) | [`crate::delivery::queue::DeadLetter`] |
//! | `meta`            | name                     | schema version, generation, covered ranges, last poll, outbox sequence, delivered marks, target states, alert times |
//!
//! **Merchants.** Each merchant has a keyspace of these trees in the one
//! store ([`Store::open_many`]): [`crate::merchant::DEFAULT`]'s trees have
//! the names above, so a store from before merchants is its keyspace with
//! no migration; another merchant's are the same names under `m/<name>/`.
//! One sled database for all (one page cache, one flusher thread, one file
//! lock): a database per merchant would cost each its own cache and thread.
//!
//! Values are one version byte followed by postcard: compact, and a future
//! layout can be told apart from this one. Older record versions are still
//! read (a snapshot written by schema 1 has no order list); opening a store
//! whose schema version is newer than this binary's fails with a message
//! saying so. An older store is migrated in place and the log says so.
//!
//! **The generation** is a random token renewed every time a process opens
//! the store, and the first part of every event id detected in that run. An
//! event's id is fixed when it is committed, so retries keep it; a wiped store
//! or one restored from a backup starts a new generation, so no id is ever
//! reused. (A generation made only at creation would repeat ids after a
//! restore from backup.) Pruning leaves a tombstone with the invoice's last
//! revision, so an invoice that reappears continues its revisions.
//!
//! **The commit.** The snapshots of a page's events and the outbox entries
//! (and history) those events produce are written in one sled transaction
//! across the trees, so a crash leaves both or neither. Everything is
//! encoded *before* the transaction: sled may run the closure more than
//! once, so it only inserts. Outbox keys come from a counter in `meta`
//! incremented in that same transaction, so entries keep the order in which
//! changes were detected (which is what keeps one invoice's events in order
//! for a target). An entry goes to the generation tree of its key (see
//! [`crate::delivery::generations`]): the commit reads the counter first,
//! under a lock that keeps commits one at a time and generations from being
//! dropped meanwhile, opens those trees, and the transaction checks that the
//! counter has not moved.
//!
//! Snapshots written with no event (a baseline, the daily `last_seen`
//! refresh) each stand alone, so they are plain inserts, written before the
//! transaction. That is a measured choice, not a shortcut: every sled
//! transaction (and `apply_batch`) pins the log for an atomic batch, and over
//! a baseline's run of such commits sled kept far more of its nodes in
//! memory than its cache allows: at 300,000 orders with a 2 MiB cache, 157
//! MiB peak with a transaction per page against 84 MiB with plain inserts
//! (heaptrack: 42 MB of nodes read back from disk and 25 MB of node copies
//! left live, against 4 and 6).
//!
//! **Known rows.** A row whose every invoice was diffed and committed
//! through that row alone is recorded under its order id with the digest of
//! its exact bytes, after the pages that committed its snapshots
//! ([`Store::vouch`]). Until the end of that Korea-time day, the row with the
//! same bytes is known to change nothing and the poll does not parse or diff
//! it (see [`crate::poll`]). The record is removed first thing in the
//! commit of anything read from other bytes: the row changed (its page saw
//! it with another digest), or one of its invoices was read through another
//! row ([`Snapshot::vouched_by`]). sled recovers its log in order, so a
//! record is never older than what it vouches for, even after a crash
//! (removing a record too early only means the row is read again). Records
//! from before yesterday are pruned with the snapshots.
//!
//! sled's default page cache is 1 GiB; it is sized from `store.cache_mb`.
//! sled takes a file lock, so two processes can never share a store.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sled::{Transactional, Tree, transaction::ConflictableTransactionError};

use crate::delivery::generations::{Generations, generation_of};
use crate::delivery::queue::OutboxEntry;
use crate::diff::Snapshot;
use crate::poomgo::InvoiceId;

/// The layout this binary writes and reads (3: snapshots say which row
/// vouched for them, and the `rows` tree; 4: outbox generations).
pub const SCHEMA_VERSION: u32 = 4;
/// The version byte in front of every value this binary writes (schema 1
/// wrote version 1; its snapshots and outbox entries are still read).
const RECORD_VERSION: u8 = 2;
/// Snapshots carry the orders of a combined shipment since version 2, and
/// the row that vouched for them since version 3.
const SNAPSHOT_VERSION: u8 = 3;

const META_SCHEMA: &[u8] = b"schema_version";
/// Schema 1's "the first poll completed" flag; read once to migrate.
const META_BASELINE: &[u8] = b"baseline_done";
const META_LAST_POLL: &[u8] = b"last_successful_poll";
/// The last day rows were vouched for (i32 big-endian).
const META_ROWS_DAY: &[u8] = b"rows_day";
const META_OUTBOX_SEQ: &[u8] = b"outbox_seq";
const META_GENERATION: &[u8] = b"generation";
const META_COVERED: &str = "covered/";
/// Meta key prefix: when a window was last read to its end.
const META_READ: &str = "read/";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {}", open_advice(source))]
    Open { path: PathBuf, source: sled::Error },
    #[error(
        "the store at {path} was written by a newer poomgo-notifier (schema {found}; this one reads up to {SCHEMA_VERSION}): upgrade, or point `store.path` elsewhere"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error(
        "the store holds a record it cannot read in `{tree}`: {reason} (if this persists, `poomgo-notifier store rebuild` moves the store aside and starts a fresh one)"
    )]
    Corrupt { tree: String, reason: String },
    #[error(
        "the disk holding the store at {path} is nearly full ({free_mib} MiB free; `store.min_free_mb` asks for {need_mib}): nothing was written, so nothing committed is at risk; free some space and the next poll catches up"
    )]
    DiskFull {
        path: PathBuf,
        free_mib: u64,
        need_mib: u64,
    },
    #[error("the store failed: {0}")]
    Sled(#[from] sled::Error),
}

/// The default `store.min_free_mb`.
pub const DEFAULT_MIN_FREE_MB: u64 = 64;

fn room(path: &Path, min_free: u64) -> Result<(), StoreError> {
    if min_free == 0 {
        return Ok(());
    }
    let Ok(free) = fs2::available_space(path) else {
        return Ok(()); // cannot tell: sled's own errors will say
    };
    if free < min_free {
        return Err(StoreError::DiskFull {
            path: path.to_owned(),
            free_mib: free / (1024 * 1024),
            need_mib: min_free / (1024 * 1024),
        });
    }
    Ok(())
}

/// Says which of the usual causes it is, and what to do.
fn open_advice(e: &sled::Error) -> String {
    const REBUILD: &str = "`poomgo-notifier store rebuild` moves it aside (nothing is deleted) and starts a fresh store; the next poll is a silent baseline, and receivers see no reused ids";
    match e {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            format!(
                "{io} (is another poomgo-notifier using it? stop it first; `outbox` and `dead-letters` go through a running daemon's admin API)"
            )
        }
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => format!(
            "permission denied ({io}): this user cannot read or write the store; run as its owner, or give the folder to this user (chown -R)"
        ),
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => format!(
            "the disk is full ({io}): free some space and start again; nothing committed is lost"
        ),
        sled::Error::Io(io) => io.to_string(),
        sled::Error::Corruption { .. }
        | sled::Error::ReportableBug(_)
        | sled::Error::Unsupported(_) => {
            format!("the store is damaged ({e}): {REBUILD}")
        }
        other => format!("{other}: {REBUILD}"),
    }
}

/// The store's folder is the owner's only: it holds recipients' names and
/// phones for targets that opt in. A folder others could read is tightened
/// (and said so); files sled made under a looser umask are made 0600.
#[cfg(unix)]
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(path) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "the store could be read by other users (it holds personal data for targets that opt in); tightened to 0700"
                );
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        Err(_) => std::fs::DirBuilder::new().mode(0o700).create(path)?,
    }
    Ok(())
}

#[cfg(unix)]
fn private_files(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700))?;
            private_files(&entry.path())?;
        } else if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn private_files(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Opens sled at `path`. sled releases its file lock when the last of its
/// deferred clean-ups lets go of the file, which can be a moment after the
/// store that held it is dropped (they wait in thread-local lists of sled's
/// epoch-based reclamation, its I/O threads' included): a process that
/// reopens a store it has just closed waits up to a second for that (sled's
/// own tests block on the lock for the same reason: its `testing` feature).
/// A lock held longer is another process's, and the error says so.
fn open_db(path: &Path, cache_mb: u64) -> sled::Result<sled::Db> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(cache_mb.saturating_mul(1024 * 1024));
    let started = std::time::Instant::now();
    loop {
        match config.open() {
            Err(sled::Error::Io(io))
                if io.to_string().contains("could not acquire lock")
                    && started.elapsed() < std::time::Duration::from_secs(1) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Moves the store at `path` aside (never deleting it) and starts a fresh
/// one with a new generation. Returns where the old one went.
pub fn rebuild(path: &Path, cache_mb: u64, targets: &[&str]) -> Result<PathBuf, StoreError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    let aside = path.with_file_name(format!("{name}.damaged-{stamp}"));
    if path.exists() {
        // A running process holds sled's lock: refuse rather than pull the
        // store from under it. (Any other failure to open is why we are here.)
        match sled::Config::new().path(path).open() {
            Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                return Err(StoreError::Open {
                    path: path.to_owned(),
                    source: sled::Error::Io(io),
                });
            }
            Ok(db) => drop(db),
            Err(_) => {}
        }
        std::fs::rename(path, &aside).map_err(|e| StoreError::Open {
            path: path.to_owned(),
            source: e.into(),
        })?;
    }
    let store = Store::open(path, cache_mb, targets)?;
    drop(store);
    Ok(aside)
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
    /// Snapshots of the invoices with an event: committed in one
    /// transaction with the entries and the history.
    pub snapshots: Vec<(InvoiceId, Snapshot)>,
    /// Snapshots with no event: each stands alone, written one by one
    /// before the transaction (see "The commit" above).
    pub quiet: Vec<(InvoiceId, Snapshot)>,
    /// (target name, entry), in detection order.
    pub entries: Vec<(String, OutboxEntry)>,
    /// The events detected, for the history (see [`crate::history`]).
    pub history: Vec<crate::history::EventRecord>,
    /// Known rows (order ids) to forget: what they vouch for was read from other bytes.
    pub forget_rows: Vec<u64>,
}

/// A row known to change nothing while its bytes have this digest: the
/// Korea-time day (days since 1 January of year 1) a poll diffed every
/// invoice it lists, and those invoice ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownRowRecord {
    pub digest: u64,
    pub day: i32,
    pub invoice_ids: Vec<String>,
}

/// Rows the store vouches for on one day: what a scan asks before parsing a row.
pub struct KnownRowsOn {
    rows: Tree,
    day: i32,
    /// False when nothing was vouched for on `day` (a new store, the first
    /// poll of a day): then no row is looked up.
    any: bool,
}

impl KnownRowsOn {
    fn answer(&self, value: &[u8], digest: &crate::poomgo::RowDigest) -> crate::poomgo::Known {
        use crate::poomgo::Known;
        // An unreadable record: parse the row, and forget the record.
        match decode::<KnownRowRecord>("rows", value) {
            Ok(r) if r.digest != digest.0 => Known::Changed,
            Ok(r) if r.day == self.day => Known::Unchanged(r.invoice_ids),
            Ok(_) => Known::Unknown,
            Err(_) => Known::Changed,
        }
    }
}

impl crate::poomgo::KnownRows for KnownRowsOn {
    fn known(&self, order_id: u64, digest: &crate::poomgo::RowDigest) -> crate::poomgo::Known {
        if !self.any {
            return crate::poomgo::Known::Unknown;
        }
        // A read error only means "parse the row".
        match self.rows.get(order_id.to_be_bytes()) {
            Ok(Some(value)) => self.answer(&value, digest),
            _ => crate::poomgo::Known::Unknown,
        }
    }

    /// A page's rows are mostly a run of neighbouring order ids (the API
    /// lists newest first): one walk over that range of the tree costs far
    /// less than a lookup per row (at 100,000 orders, the lookups were a
    /// sixth of a change poll). When the range holds many more records than
    /// the page has rows (a window on another axis), row by row.
    fn known_many(&self, rows: &[(u64, crate::poomgo::RowDigest)]) -> Vec<crate::poomgo::Known> {
        use crate::poomgo::Known;
        if !self.any || rows.is_empty() {
            return vec![Known::Unknown; rows.len()];
        }
        let (lo, hi) = rows.iter().fold((u64::MAX, 0), |(lo, hi), (id, _)| {
            (lo.min(*id), hi.max(*id))
        });
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for item in self
            .rows
            .range(lo.to_be_bytes()..=hi.to_be_bytes())
            .take(rows.len() * 2 + 16)
        {
            let Ok((key, value)) = item else {
                return rows.iter().map(|(id, d)| self.known(*id, d)).collect();
            };
            if let Some(id) = u64_of(&key) {
                found.insert(id, value);
            }
        }
        if found.len() >= rows.len() * 2 + 16 {
            return rows.iter().map(|(id, d)| self.known(*id, d)).collect();
        }
        rows.iter()
            .map(|(id, digest)| match found.get(id) {
                Some(value) => self.answer(value, digest),
                None => Known::Unknown,
            })
            .collect()
    }
}

pub struct Store {
    db: sled::Db,
    path: PathBuf,
    /// Writes are refused below this much free disk (bytes).
    min_free: u64,
    snapshots: Tree,
    tombstones: Tree,
    rows: Tree,
    meta: Tree,
    generation: String,
    outboxes: BTreeMap<String, Tree>,
    dead: BTreeMap<String, Tree>,
    generations: Generations,
    /// Held by a commit, so that a generation is never dropped under one.
    commit_lock: Mutex<()>,
    history: crate::history::History,
    /// Whose keyspace this is, and the prefix of its tree names.
    merchant: String,
    ns: String,
}

/// The prefix of a merchant's tree names: none for
/// [`crate::merchant::DEFAULT`] (the keyspace of every store from before
/// merchants), `m/<name>/` for any other. Merchant names have no `/`.
fn keyspace(merchant: &str) -> String {
    if merchant == crate::merchant::DEFAULT {
        String::new()
    } else {
        format!("m/{merchant}/")
    }
}

impl Store {
    /// Opens (or creates) the store at `path` with trees for `targets`.
    pub fn open(path: &Path, cache_mb: u64, targets: &[&str]) -> Result<Store, StoreError> {
        Store::open_with(path, cache_mb, DEFAULT_MIN_FREE_MB, targets)
    }

    /// As [`Store::open`], refusing writes when less than `min_free_mb` MiB
    /// of disk is free: sled 0.34 can leave a store unreadable when the disk
    /// fills in the middle of its writes, so it must never get there.
    pub fn open_with(
        path: &Path,
        cache_mb: u64,
        min_free_mb: u64,
        targets: &[&str],
    ) -> Result<Store, StoreError> {
        let mut stores = Store::open_many(
            path,
            cache_mb,
            min_free_mb,
            &[(crate::merchant::DEFAULT, targets)],
        )?;
        Ok(stores.remove(0))
    }

    /// Opens the store at `path` once and each merchant's keyspace in it,
    /// with trees for its targets: `(merchant, targets)`, in that order.
    /// Every keyspace gets its own generation, never the same as another's
    /// in this process, so event ids stay unique although upstream invoice
    /// ids repeat across merchants.
    pub fn open_many(
        path: &Path,
        cache_mb: u64,
        min_free_mb: u64,
        merchants: &[(&str, &[&str])],
    ) -> Result<Vec<Store>, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| open_err(e.into()))?;
        }
        make_private(path).map_err(|e| open_err(e.into()))?;
        let min_free = min_free_mb.saturating_mul(1024 * 1024);
        room(path, min_free)?;
        let db = open_db(path, cache_mb).map_err(open_err)?;
        private_files(path).map_err(|e| open_err(e.into()))?;
        let mut generations = std::collections::HashSet::new();
        let mut stores = Vec::with_capacity(merchants.len());
        for &(merchant, targets) in merchants {
            let store =
                Store::open_keyspace(&db, path, min_free, merchant, targets, &mut generations)?;
            stores.push(store);
        }
        Ok(stores)
    }

    /// One merchant's keyspace: [`crate::merchant::DEFAULT`]'s trees have
    /// the original names (a store from before merchants is its keyspace),
    /// another's are prefixed with `m/<name>/`.
    fn open_keyspace(
        db: &sled::Db,
        path: &Path,
        min_free: u64,
        merchant: &str,
        targets: &[&str],
        taken: &mut std::collections::HashSet<String>,
    ) -> Result<Store, StoreError> {
        let ns = keyspace(merchant);
        let db = db.clone();
        let meta = db.open_tree(format!("{ns}meta"))?;
        if meta.get(META_SCHEMA)?.is_none() && !ns.is_empty() {
            tracing::info!(
                merchant,
                "a new merchant: its first poll is a silent baseline"
            );
        }
        // A store from before the history (schema 2 without its trees).
        let history_is_new = meta.get(META_SCHEMA)?.is_some()
            && !db
                .tree_names()
                .iter()
                .any(|n| n.as_ref() == format!("{ns}history/events").as_bytes());
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
                if found < 2 {
                    tracing::info!(
                        path = %path.display(),
                        from = found,
                        to = SCHEMA_VERSION,
                        "migrating the store in place: event ids now carry a generation, pruned invoices leave a tombstone, and each poll window keeps its own baseline (the existing baseline counts for the current window)"
                    );
                }
                if found < 3 {
                    tracing::info!(
                        path = %path.display(),
                        from = found,
                        to = SCHEMA_VERSION,
                        "migrating the store in place: polls now record rows that did not change, so that later polls the same day skip reading them (existing snapshots are read as they are; the next poll reads every row once)"
                    );
                }
                if found < 4 {
                    tracing::info!(
                        path = %path.display(),
                        from = found,
                        to = SCHEMA_VERSION,
                        "migrating the store in place: new events are queued in outbox generations that are dropped whole once delivered; events already queued are delivered first, in order, as before (an older poomgo-notifier can no longer open this store)"
                    );
                }
                if found < SCHEMA_VERSION {
                    meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
                }
            }
            None => {
                meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
            }
        }
        if history_is_new {
            tracing::info!(
                path = %path.display(),
                "the event history (the console's timelines) starts now: events detected before this run have no timeline"
            );
        }
        let generation = loop {
            let g = format!("g{:08x}", fastrand::u32(..));
            if taken.insert(g.clone()) {
                break g;
            }
        };
        meta.insert(META_GENERATION, generation.as_bytes())?;
        let mut outboxes = BTreeMap::new();
        let mut dead = BTreeMap::new();
        for &t in targets {
            outboxes.insert(t.to_owned(), db.open_tree(format!("{ns}outbox/{t}"))?);
            dead.insert(t.to_owned(), db.open_tree(format!("{ns}dead/{t}"))?);
        }
        let generations = Generations::open(&db, &ns, &meta, targets)?;
        let store = Store {
            path: path.to_owned(),
            min_free,
            snapshots: db.open_tree(format!("{ns}snapshots"))?,
            tombstones: db.open_tree(format!("{ns}tombstones"))?,
            rows: db.open_tree(format!("{ns}rows"))?,
            meta,
            generation,
            outboxes,
            dead,
            generations,
            commit_lock: Mutex::new(()),
            history: crate::history::History::open(&db, &ns)?,
            merchant: merchant.to_owned(),
            ns,
            db,
        };
        // Generations a crash left fully delivered.
        for &t in targets {
            store.generations.collect(t, None, &store.commit_lock)?;
        }
        Ok(store)
    }

    /// The outbox generations (see [`crate::delivery::generations`]).
    pub(crate) fn generations(&self) -> &Generations {
        &self.generations
    }

    /// Drops `target`'s generations `which` (all for `None`) that are
    /// wholly delivered.
    pub(crate) fn collect_generations(
        &self,
        target: &str,
        which: Option<&[u64]>,
    ) -> Result<Vec<u64>, StoreError> {
        self.generations.collect(target, which, &self.commit_lock)
    }

    /// The event history (see [`crate::history`]).
    pub fn history(&self) -> &crate::history::History {
        &self.history
    }

    /// Keeps the event history or not (`store.history_days = 0`).
    pub fn keep_history(&mut self, on: bool) {
        self.history.set_enabled(on);
    }

    /// The merchant whose keyspace this is.
    pub fn merchant(&self) -> &str {
        &self.merchant
    }

    /// This run's generation: the first part of every event id it detects.
    pub fn generation(&self) -> &str {
        &self.generation
    }

    pub fn snapshot(&self, id: &InvoiceId) -> Result<Option<Snapshot>, StoreError> {
        self.snapshots
            .get(id.as_str())?
            .map(|v| decode_snapshot(&v))
            .transpose()
    }

    /// The last revision of a pruned invoice.
    pub fn tombstone(&self, id: &InvoiceId) -> Result<Option<u64>, StoreError> {
        Ok(self.tombstones.get(id.as_str())?.and_then(|v| u64_of(&v)))
    }

    /// Snapshots stored in all.
    pub fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }

    /// Fails with [`StoreError::DiskFull`] when the disk is nearly full:
    /// checked before every commit and every delivery round.
    pub fn ensure_room(&self) -> Result<(), StoreError> {
        room(&self.path, self.min_free)
    }

    /// Writes one page: forgets the known rows it must, writes its quiet
    /// snapshots, then its events' snapshots, outbox entries and history
    /// atomically.
    pub fn commit_page(&self, batch: &PageBatch) -> Result<(), StoreError> {
        let history = if self.history.enabled() {
            &batch.history[..]
        } else {
            &[]
        };
        if batch.snapshots.is_empty()
            && batch.quiet.is_empty()
            && batch.entries.is_empty()
            && history.is_empty()
            && batch.forget_rows.is_empty()
        {
            return Ok(());
        }
        self.ensure_room()?;
        // Before anything read from other bytes is written.
        for order_id in &batch.forget_rows {
            self.rows.remove(order_id.to_be_bytes())?;
        }
        for (id, snapshot) in &batch.quiet {
            self.snapshots
                .insert(id.as_str(), encode_versioned(SNAPSHOT_VERSION, snapshot))?;
        }
        if batch.snapshots.is_empty() && batch.entries.is_empty() && history.is_empty() {
            return Ok(());
        }
        let snapshots: Vec<(&str, Vec<u8>)> = batch
            .snapshots
            .iter()
            .map(|(id, s)| (id.as_str(), encode_versioned(SNAPSHOT_VERSION, s)))
            .collect();
        // The sequence numbers come from the counter: read here (no other
        // commit can move it while the lock is held, and the transaction
        // checks) to know which generation trees to open before it.
        let _commit = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let last_seq = match self.meta.get(META_OUTBOX_SEQ)? {
            Some(v) => u64_of(&v).ok_or_else(|| StoreError::Corrupt {
                tree: "meta".into(),
                reason: "outbox_seq is not a u64".into(),
            })?,
            None => 0,
        };
        let mut places: Vec<(&str, u64)> = Vec::new();
        let mut entries = Vec::with_capacity(batch.entries.len());
        for (i, (target, entry)) in (1..).zip(&batch.entries) {
            self.outbox_tree(target)?; // a configured target
            let seq = last_seq + i;
            let place = (target.as_str(), generation_of(seq));
            let index = match places.iter().position(|p| *p == place) {
                Some(index) => index,
                None => {
                    places.push(place);
                    places.len() - 1
                }
            };
            entries.push((index, seq, encode(entry)));
        }
        self.generations.ensure(&places)?;
        let view = self.generations.view();
        let mut trees: Vec<&Tree> = vec![&self.snapshots, &self.meta];
        for &(target, g) in &places {
            trees.push(view.tree(target, g).ok_or_else(|| StoreError::Corrupt {
                tree: crate::delivery::generations::tree_name(target, g),
                reason: "the generation tree was not opened".into(),
            })?);
        }
        let records: Vec<_> = history.iter().map(|r| (r, encode(r), r.keys())).collect();
        let h = trees.len();
        if !records.is_empty() {
            trees.extend([
                &self.history.events,
                &self.history.index,
                &self.history.time,
            ]);
        }
        trees[..]
            .transaction(|t| {
                for (record, value, keys) in &records {
                    t[h].insert(record.event_id.as_bytes(), value.as_slice())?;
                    for k in &keys.index {
                        t[h + 1].insert(k.as_slice(), &[][..])?;
                    }
                    t[h + 2].insert(keys.time.as_slice(), record.invoice_id.as_bytes())?;
                }
                for (key, value) in &snapshots {
                    t[0].insert(key.as_bytes(), value.as_slice())?;
                }
                if let Some((_, last, _)) = entries.last() {
                    let found = t[1].get(META_OUTBOX_SEQ)?.and_then(|v| u64_of(&v));
                    if found.unwrap_or(0) != last_seq {
                        return Err(ConflictableTransactionError::Abort(
                            "outbox_seq moved during a commit".to_owned(),
                        ));
                    }
                    for (index, seq, value) in &entries {
                        t[2 + *index].insert(&seq.to_be_bytes(), value.as_slice())?;
                    }
                    t[1].insert(META_OUTBOX_SEQ, &last.to_be_bytes())?;
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

    /// Records rows as known on `day` (see "Known rows" above). Call it only
    /// after the pages that diffed their invoices are committed: sled
    /// recovers its log in order, so after a crash a known row is never there
    /// without the snapshots it vouches for (the other way round, the row is
    /// only read again). Sorted by order id. Low on disk, nothing is
    /// written: known rows only save work.
    pub fn vouch(&self, day: i32, mut rows: Vec<(u64, KnownRowRecord)>) -> Result<(), StoreError> {
        if rows.is_empty() || self.ensure_room().is_err() {
            return Ok(());
        }
        rows.sort_unstable_by_key(|(order_id, _)| *order_id);
        // One insert each: measured at 10,000 orders, sled's batches of 1,024
        // peaked at 41 MiB and 0.32 s of CPU for the baseline poll, single
        // inserts at 30 MiB and 0.21 s. Each record stands alone anyway.
        for (order_id, record) in &rows {
            self.rows
                .insert(&order_id.to_be_bytes()[..], encode(record))?;
        }
        self.meta.insert(META_ROWS_DAY, &day.to_be_bytes())?;
        Ok(())
    }

    /// Whether a schema-1 store had completed its first poll: its baseline
    /// counts for the window that has no covered range of its own yet.
    pub fn legacy_baseline_done(&self) -> Result<bool, StoreError> {
        Ok(self.meta.get(META_BASELINE)?.is_some())
    }

    /// The first day a window's baseline covers: invoices first seen on an
    /// earlier day of that window are recorded silently.
    pub fn covered_from(&self, window: &str) -> Result<Option<chrono::NaiveDate>, StoreError> {
        let Some(v) = self.meta.get(format!("{META_COVERED}{window}"))? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&v).unwrap_or_default();
        text.parse().map(Some).map_err(|_| StoreError::Corrupt {
            tree: "meta".into(),
            reason: format!("covered range of window `{window}` is not a date"),
        })
    }

    /// Records that a complete scan covered `window` from `from`.
    pub fn set_covered_from(
        &self,
        window: &str,
        from: chrono::NaiveDate,
    ) -> Result<(), StoreError> {
        self.meta.insert(
            format!("{META_COVERED}{window}"),
            from.format("%Y-%m-%d").to_string().as_bytes(),
        )?;
        Ok(())
    }

    /// Forgets the baseline and schedule of every window not named in
    /// `plan`, and returns their names. A window that comes back later
    /// starts a new baseline, so what it missed meanwhile is never announced
    /// as new.
    pub fn forget_windows_not_in(&self, plan: &[&str]) -> Result<Vec<String>, StoreError> {
        let mut gone = std::collections::BTreeSet::new();
        for prefix in [META_COVERED, META_READ] {
            for key in self.meta.scan_prefix(prefix).keys() {
                let key = key?;
                let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                if !plan.contains(&name.as_str()) {
                    self.meta.remove(&key)?;
                    gone.insert(name);
                }
            }
        }
        Ok(gone.into_iter().collect())
    }

    /// When `window` was last read to its end (Unix ms).
    pub fn window_read_at(&self, window: &str) -> Result<Option<i64>, StoreError> {
        self.meta_get(&format!("{META_READ}{window}"))
    }

    pub fn set_window_read_at(&self, window: &str, at_ms: i64) -> Result<(), StoreError> {
        self.meta_put(&format!("{META_READ}{window}"), &at_ms)
    }

    /// When the last prune pass ran (Unix seconds).
    pub fn pruned_at(&self) -> Result<Option<i64>, StoreError> {
        self.meta_get("pruned_at")
    }

    pub fn set_pruned_at(&self, at: i64) -> Result<(), StoreError> {
        self.meta_put("pruned_at", &at)
    }

    /// Records a complete poll.
    pub fn record_successful_poll(&self, at_unix: i64) -> Result<(), StoreError> {
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

    /// Removes snapshots last seen before `before_unix`, final or not: the
    /// plan's windows follow every live invoice, so one that no window has
    /// shown for `retention_days` has left them all. A tombstone keeps its
    /// last revision (if it reappears it is recorded silently and continues
    /// its revisions). The same pass counts what is kept, so nothing else has
    /// to walk every snapshot to know the total.
    pub fn prune(&self, before_unix: i64) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        for item in self.snapshots.iter() {
            let (key, value) = item?;
            let s = decode_snapshot(&value)?;
            if s.last_seen >= before_unix {
                pruned.kept += 1;
                continue;
            }
            // A row record that vouches for it goes first: a poll that
            // skipped the row would count the invoice seen with no snapshot,
            // and its next change would be recorded silently.
            if let Some(order_id) = s.vouched_by {
                self.rows.remove(order_id.to_be_bytes())?;
            }
            // The tombstone next: a crash in between leaves both, never neither.
            self.tombstones.insert(&key, &s.rev.to_be_bytes())?;
            // Only if unchanged since read: a concurrent writer would win.
            if self
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

    /// The rows vouched for on `day` (see "Known rows" above).
    pub fn known_rows_on(&self, day: i32) -> Result<KnownRowsOn, StoreError> {
        let vouched_on = self.meta.get(META_ROWS_DAY)?;
        Ok(KnownRowsOn {
            rows: self.rows.clone(),
            day,
            any: vouched_on.as_deref() == Some(&day.to_be_bytes()[..]),
        })
    }

    /// Removes known-row records from before `day`; returns how many.
    pub fn prune_known_rows(&self, before_day: i32) -> Result<u64, StoreError> {
        let mut removed = 0;
        for item in self.rows.iter() {
            let (key, value) = item?;
            let stale =
                decode::<KnownRowRecord>("rows", &value).map_or(true, |r| r.day < before_day);
            if stale
                && self
                    .rows
                    .compare_and_swap(&key, Some(value), None::<&[u8]>)?
                    .is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
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

    /// The outbox and dead-letter trees of `target`.
    pub(crate) fn target_trees(&self, target: &str) -> Result<(&Tree, &Tree), StoreError> {
        match (self.outboxes.get(target), self.dead.get(target)) {
            (Some(o), Some(d)) => Ok((o, d)),
            _ => Err(StoreError::Corrupt {
                tree: format!("outbox/{target}"),
                reason: "no such target was opened".into(),
            }),
        }
    }

    fn outbox_tree(&self, target: &str) -> Result<&Tree, StoreError> {
        self.target_trees(target).map(|(o, _)| o)
    }

    /// Remembers a poll for the overview (the last [`crate::history::POLLS_KEPT`]).
    pub fn record_poll(&self, poll: crate::history::PollRecord) -> Result<(), StoreError> {
        let mut polls = self.recent_polls()?;
        polls.push(poll);
        let excess = polls.len().saturating_sub(crate::history::POLLS_KEPT);
        polls.drain(..excess);
        self.meta_put("recent_polls", &polls)
    }

    /// The last polls, oldest first.
    pub fn recent_polls(&self) -> Result<Vec<crate::history::PollRecord>, StoreError> {
        Ok(self.meta_get("recent_polls")?.unwrap_or_default())
    }

    /// A small record in `meta`.
    pub(crate) fn meta_get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.meta.get(key)?.map(|v| decode("meta", &v)).transpose()
    }

    pub(crate) fn meta_put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.meta.insert(key, encode(value))?;
        Ok(())
    }

    /// Outboxes left by targets that are no longer configured (renamed or
    /// removed), with how many entries each still holds. They are never
    /// delivered; the operator should know.
    pub fn orphaned_outboxes(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let mut orphans: BTreeMap<String, usize> = BTreeMap::new();
        for full in self.db.tree_names() {
            // Another merchant's trees (for the default keyspace, every
            // name under `m/`) are not this keyspace's.
            let Some(name) = full.strip_prefix(self.ns.as_bytes()) else {
                continue;
            };
            // A configured target's trees are never opened here: one of its
            // generations could be dropped meanwhile.
            let (target, pending) = match crate::delivery::generations::parse_tree_name(name) {
                Some((target, _)) if self.outboxes.contains_key(target) => continue,
                Some((target, g)) => (target, self.generations.unmarked_len(target, g)?),
                None => match std::str::from_utf8(name)
                    .ok()
                    .and_then(|n| n.strip_prefix("outbox/"))
                {
                    Some(target) if self.outboxes.contains_key(target) => continue,
                    Some(target) => (target, self.db.open_tree(&full)?.len()),
                    None => continue,
                },
            };
            if pending > 0 {
                *orphans.entry(target.to_owned()).or_default() += pending;
            }
        }
        Ok(orphans.into_iter().collect())
    }
}

fn u64_of(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    encode_versioned(RECORD_VERSION, value)
}

fn encode_versioned<T: Serialize>(version: u8, value: &T) -> Vec<u8> {
    let mut out = vec![version];
    out.extend(postcard::to_stdvec(value).expect("postcard serializes plain data"));
    out
}

/// A snapshot as schema 1 wrote it (before combined-shipment orders).
#[derive(Deserialize)]
struct SnapshotV1 {
    rev: u64,
    invoice_code: Option<String>,
    is_printed: bool,
    is_closed: bool,
    cargo_status_code_key: Option<String>,
    canceled: bool,
    is_final: bool,
    last_seen: i64,
}

/// A snapshot as schema 2 wrote it (before the vouching row).
#[derive(Deserialize)]
struct SnapshotV2 {
    rev: u64,
    invoice_code: Option<Option<String>>,
    is_printed: Option<bool>,
    is_closed: Option<bool>,
    cargo_status_code_key: Option<Option<String>>,
    canceled: bool,
    is_final: bool,
    last_seen: i64,
    orders: Vec<crate::diff::OrderRef>,
}

fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        tree: "snapshots".into(),
        reason,
    };
    match bytes.split_first() {
        Some((&SNAPSHOT_VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| corrupt(e.to_string()))
        }
        Some((2, rest)) => {
            let v2: SnapshotV2 = postcard::from_bytes(rest).map_err(|e| corrupt(e.to_string()))?;
            Ok(Snapshot {
                rev: v2.rev,
                invoice_code: v2.invoice_code,
                is_printed: v2.is_printed,
                is_closed: v2.is_closed,
                cargo_status_code_key: v2.cargo_status_code_key,
                canceled: v2.canceled,
                is_final: v2.is_final,
                last_seen: v2.last_seen,
                orders: v2.orders,
                vouched_by: None,
            })
        }
        Some((1, rest)) => {
            let v1: SnapshotV1 = postcard::from_bytes(rest).map_err(|e| corrupt(e.to_string()))?;
            Ok(Snapshot {
                rev: v1.rev,
                invoice_code: Some(v1.invoice_code),
                is_printed: Some(v1.is_printed),
                is_closed: Some(v1.is_closed),
                cargo_status_code_key: Some(v1.cargo_status_code_key),
                canceled: v1.canceled,
                is_final: v1.is_final,
                last_seen: v1.last_seen,
                orders: Vec::new(),
                vouched_by: None,
            })
        }
        Some((v, _)) => Err(corrupt(format!(
            "record version {v} is unknown to this binary"
        ))),
        None => Err(corrupt("empty record".into())),
    }
}

pub(crate) fn decode<T: DeserializeOwned>(tree: &str, bytes: &[u8]) -> Result<T, StoreError> {
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
pub(crate) mod tests {
    use super::*;

    fn snap(rev: u64, is_final: bool, last_seen: i64) -> Snapshot {
        Snapshot {
            rev,
            invoice_code: Some(Some("1".into())),
            is_printed: Some(true),
            is_closed: Some(false),
            cargo_status_code_key: Some(None),
            canceled: false,
            is_final,
            last_seen,
            orders: Vec::new(),
            vouched_by: None,
        }
    }

    pub(crate) fn entry(id: &str, invoice: &str) -> OutboxEntry {
        OutboxEntry {
            event_id: id.into(),
            kind: crate::event::EventType::Printed,
            invoice_id: invoice.into(),
            order_code: None,
            event: b"{}".to_vec(),
            enqueued_at: 0,
            attempts: 0,
            next_attempt_at: 0,
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
                ("a".into(), entry("1-1", "1")),
                ("b".into(), entry("1-1", "1")),
                ("a".into(), entry("2-1", "2")),
            ],
            ..Default::default()
        };
        store.commit_page(&batch).unwrap();
        store
            .commit_page(&PageBatch {
                snapshots: vec![],
                entries: vec![("a".into(), entry("3-1", "3"))],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            store.snapshot(&InvoiceId("1".into())).unwrap(),
            Some(snap(1, false, 10))
        );
        let ids: Vec<_> = store
            .queue("a")
            .unwrap()
            .pending(10)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.event_id)
            .collect();
        assert_eq!(ids, ["1-1", "2-1", "3-1"]);
        assert_eq!(store.queue("b").unwrap().pending_len(), 1);
    }

    #[test]
    fn a_page_with_no_event_writes_its_snapshots_and_forgets_its_rows() {
        use crate::poomgo::{Known, KnownRows, RowDigest};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 8, &["a"]).unwrap();
        let record = KnownRowRecord {
            digest: 42,
            day: 10,
            invoice_ids: vec!["1".into()],
        };
        store
            .vouch(10, vec![(7, record.clone()), (8, record)])
            .unwrap();
        store
            .commit_page(&PageBatch {
                quiet: vec![
                    (InvoiceId("1".into()), snap(0, false, 10)),
                    (InvoiceId("2".into()), snap(0, true, 10)),
                ],
                forget_rows: vec![7],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            store.snapshot(&InvoiceId("2".into())).unwrap(),
            Some(snap(0, true, 10))
        );
        assert_eq!(store.snapshot_count(), 2);
        let on = store.known_rows_on(10).unwrap();
        assert_eq!(on.known(7, &RowDigest(42)), Known::Unknown, "forgotten");
        assert_eq!(
            on.known(8, &RowDigest(42)),
            Known::Unchanged(vec!["1".into()])
        );
        assert_eq!(store.queue("a").unwrap().pending_len(), 0);
    }

    #[test]
    fn state_survives_reopening_and_every_open_is_a_new_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 17).unwrap();
        let first = {
            let store = Store::open(&path, 8, &["a"]).unwrap();
            assert_eq!(store.covered_from("created").unwrap(), None);
            store
                .commit_page(&PageBatch {
                    snapshots: vec![(InvoiceId("9".into()), snap(0, false, 1))],
                    entries: vec![],
                    ..Default::default()
                })
                .unwrap();
            store.record_successful_poll(1234).unwrap();
            store.set_covered_from("created", day).unwrap();
            store.generation().to_owned()
        };
        let store = Store::open(&path, 8, &["a"]).unwrap();
        assert_eq!(store.covered_from("created").unwrap(), Some(day));
        assert_eq!(store.last_successful_poll().unwrap(), Some(1234));
        assert_eq!(store.snapshot_count(), 1);
        assert!(first.starts_with('g') && first.len() == 9, "{first}");
        assert_ne!(store.generation(), first);
    }

    #[test]
    fn a_crash_between_marks_and_the_drop_of_a_generation_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        // Marks whose tree is gone (the crash came after the drop).
        write_raw(&path, &[("meta", b"marks/t/00000000000000ff", &[1u8; 513])]);
        {
            let store = Store::open(&path, 8, &["t"]).unwrap();
            crate::delivery::queue::tests::commit_many(&store, 0, 10);
            // Marked, not dropped (the crash came before the drop).
            store
                .generations()
                .mark("t", &(1..=10).collect::<Vec<_>>())
                .unwrap();
            assert!(store.generations().view().tree("t", 0).is_some());
        }
        let store = Store::open(&path, 8, &["t"]).unwrap();
        assert!(store.generations().view().tree("t", 0).is_none());
        assert_eq!(store.queue("t").unwrap().pending_len(), 0);
        assert_eq!(store.meta.scan_prefix("marks/").count(), 0);
        assert!(
            !store
                .db
                .tree_names()
                .iter()
                .any(|n| n.starts_with(b"outbox/t/"))
        );
    }

    #[test]
    fn a_store_from_before_the_history_gains_it_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = sled::open(&path).unwrap();
            let meta = db.open_tree("meta").unwrap();
            meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
            assert!(!db.tree_names().iter().any(|n| n.starts_with(b"history/")));
        }
        let store = Store::open(&path, 8, &["a"]).unwrap();
        assert!(store.history().is_empty());
        let event = crate::samples::event(
            crate::event::EventType::Printed,
            &crate::status::StatusTable::new(&[], &[]),
            chrono::Utc::now(),
        );
        store
            .commit_page(&PageBatch {
                history: vec![crate::history::EventRecord::of(&event, vec![], false)],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(store.history().len(), 1);
        let hits = store.history().search(&event.invoice.invoice_id).unwrap();
        assert_eq!(hits.len(), 1);
    }

    /// Writes `records` (tree, key, value) into the store at `path` with sled
    /// alone, as an older build or a crash left them.
    pub(crate) fn write_raw(path: &Path, records: &[(&str, &[u8], &[u8])]) {
        let db = sled::open(path).unwrap();
        for (tree, key, value) in records {
            db.open_tree(tree).unwrap().insert(key, *value).unwrap();
        }
        db.flush().unwrap();
    }

    /// A store as an older schema left it: `meta` entries, and invoice
    /// 456000's snapshot as record `version` followed by `old` in postcard.
    /// Returns that invoice's snapshot and the store, opened by this binary.
    fn open_old_store(
        path: &Path,
        meta: &[(&[u8], &[u8])],
        version: u8,
        old: impl Serialize,
    ) -> (Snapshot, Store) {
        let mut bytes = vec![version];
        bytes.extend(postcard::to_stdvec(&old).unwrap());
        let mut records: Vec<(&str, &[u8], &[u8])> =
            meta.iter().map(|(k, v)| ("meta", *k, *v)).collect();
        records.push(("snapshots", b"456000", &bytes));
        write_raw(path, &records);
        let store = Store::open(path, 8, &[]).unwrap();
        let snapshot = store
            .snapshot(&InvoiceId("456000".into()))
            .unwrap()
            .unwrap();
        (snapshot, store)
    }

    #[test]
    fn a_schema_2_store_is_read_as_it_is_and_marked_schema_3() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        // Schema 2's snapshot: the same fields, without `vouched_by`.
        let old = (
            4u64,
            Some(Some("380")),
            Some(true),
            Some(false),
            Some(None::<String>),
            false,
            false,
            99i64,
            vec![(Some(7u64), Some("20261201_000001"))],
        );
        let (s, store) = open_old_store(&path, &[(META_SCHEMA, &2u32.to_be_bytes())], 2, old);
        assert_eq!((s.rev, s.last_seen, s.vouched_by), (4, 99, None));
        assert_eq!(s.orders[0].order_code.as_deref(), Some("20261201_000001"));
        assert_eq!(
            store.meta.get(META_SCHEMA).unwrap().unwrap().as_ref(),
            SCHEMA_VERSION.to_be_bytes()
        );
        // A known row is only known on its day, with its bytes, and
        // forgotten when pruned.
        use crate::poomgo::{Known, KnownRows, RowDigest};
        let digest = RowDigest(42);
        let record = |day| KnownRowRecord {
            digest: 42,
            day,
            invoice_ids: vec!["456000".into()],
        };
        let known =
            |day, order_id, digest| store.known_rows_on(day).unwrap().known(order_id, &digest);
        assert_eq!(known(10, 7, digest), Known::Unknown);
        store.vouch(10, vec![(7, record(10))]).unwrap();
        assert_eq!(
            known(10, 7, digest),
            Known::Unchanged(vec!["456000".to_owned()])
        );
        assert_eq!(known(10, 7, RowDigest(43)), Known::Changed);
        assert_eq!(known(10, 8, digest), Known::Unknown);
        assert_eq!(
            known(11, 7, digest),
            Known::Unknown,
            "yesterday's is not known today"
        );
        // A page at once: one walk over its range of ids, or row by row
        // when that range holds many more records than the page has rows.
        store
            .vouch(10, (100..200).map(|id| (id, record(10))).collect())
            .unwrap();
        let on = store.known_rows_on(10).unwrap();
        let yes = Known::Unchanged(vec!["456000".to_owned()]);
        assert_eq!(
            on.known_many(&[
                (7, digest),
                (150, digest),
                (151, RowDigest(1)),
                (99, digest)
            ]),
            [yes.clone(), yes.clone(), Known::Changed, Known::Unknown],
            "a range of 144 records for 4 rows: row by row"
        );
        assert_eq!(
            on.known_many(&[(122, digest), (120, RowDigest(1)), (121, digest)]),
            [yes.clone(), Known::Changed, yes],
            "neighbours: one walk"
        );
        assert_eq!(store.prune_known_rows(10).unwrap(), 0);
        assert_eq!(store.prune_known_rows(11).unwrap(), 101);
        assert_eq!(known(10, 7, digest), Known::Unknown);
    }

    #[test]
    fn a_schema_1_store_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let old = (
            3u64,
            Some("380"),
            true,
            true,
            None::<String>,
            false,
            false,
            99i64,
        );
        let meta: [(&[u8], &[u8]); 2] =
            [(META_SCHEMA, &1u32.to_be_bytes()), (META_BASELINE, &[1u8])];
        let (s, store) = open_old_store(&path, &meta, 1, old);
        assert!(store.legacy_baseline_done().unwrap());
        assert_eq!(
            (s.rev, s.invoice_code, s.last_seen),
            (3, Some(Some("380".into())), 99)
        );
        assert!(s.orders.is_empty());
        assert_eq!(
            store.meta.get(META_SCHEMA).unwrap().unwrap().as_ref(),
            SCHEMA_VERSION.to_be_bytes()
        );
    }

    #[test]
    fn a_lock_let_go_a_moment_later_is_waited_for_and_one_held_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = sled::open(&path).unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(db);
        });
        let store = Store::open(&path, 8, &[]).unwrap();
        holder.join().unwrap();
        let started = std::time::Instant::now();
        let Err(e) = Store::open(&path, 8, &[]) else {
            panic!("two stores on one path");
        };
        assert!(started.elapsed() >= std::time::Duration::from_millis(900));
        assert!(e.to_string().contains("another poomgo-notifier"), "{e}");
        drop(store);
    }

    #[test]
    fn outboxes_of_targets_no_longer_configured_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path, 8, &["old", "kept"]).unwrap();
            let batch = PageBatch {
                snapshots: vec![],
                entries: vec![
                    ("old".into(), entry("1-1", "1")),
                    ("kept".into(), entry("1-1", "1")),
                ],
                ..Default::default()
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
        write_raw(
            &path,
            &[("meta", META_SCHEMA, &(SCHEMA_VERSION + 1).to_be_bytes())],
        );
        let message = Store::open(&path, 8, &[]).err().unwrap().to_string();
        assert!(
            message.contains("newer poomgo-notifier")
                && message.contains(&format!("schema {}", SCHEMA_VERSION + 1)),
            "{message}"
        );
    }

    #[test]
    fn prune_removes_invoices_unseen_long_enough_and_leaves_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 8, &[]).unwrap();
        let vouched = |order_id| Snapshot {
            vouched_by: Some(order_id),
            ..snap(1, false, 100)
        };
        let batch = PageBatch {
            snapshots: vec![
                (InvoiceId("old-final".into()), snap(1, true, 100)),
                (InvoiceId("old-open".into()), vouched(7)),
                (InvoiceId("new-final".into()), snap(1, true, 1000)),
            ],
            entries: vec![],
            ..Default::default()
        };
        store.commit_page(&batch).unwrap();
        let record = KnownRowRecord {
            digest: 1,
            day: 10,
            invoice_ids: vec!["old-open".into()],
        };
        store
            .vouch(10, vec![(7, record.clone()), (8, record)])
            .unwrap();
        assert_eq!(
            store.prune(500).unwrap(),
            Pruned {
                removed: 2,
                kept: 1
            }
        );
        assert_eq!(
            store.snapshot(&InvoiceId("old-final".into())).unwrap(),
            None
        );
        assert_eq!(
            store.tombstone(&InvoiceId("old-final".into())).unwrap(),
            Some(1),
            "a pruned invoice leaves its last revision"
        );
        assert_eq!(
            store.tombstone(&InvoiceId("old-open".into())).unwrap(),
            Some(1),
            "open or final: unseen for retention_days is pruned"
        );
        assert!(
            store
                .snapshot(&InvoiceId("new-final".into()))
                .unwrap()
                .is_some()
        );
        use crate::poomgo::{Known, KnownRows, RowDigest};
        let known = store.known_rows_on(10).unwrap();
        assert_eq!(
            known.known(7, &RowDigest(1)),
            Known::Unknown,
            "the row that vouched for a pruned invoice is forgotten with it"
        );
        assert_ne!(known.known(8, &RowDigest(1)), Known::Unknown);
    }

    #[test]
    fn an_unknown_record_version_is_an_error_not_a_panic() {
        assert!(
            decode_snapshot(&[9, 1, 2])
                .unwrap_err()
                .to_string()
                .contains("record version 9")
        );
        assert!(decode_snapshot(&[]).is_err());
        assert!(decode_snapshot(&[SNAPSHOT_VERSION, 0xff]).is_err());
        assert!(decode::<OutboxEntry>("outbox/a", &[RECORD_VERSION, 0xff]).is_err());
    }
}
