//! Where a target's pending entries live, so that letting go of a delivered
//! one costs next to nothing.
//!
//! **Why.** Removing a delivered entry was the largest cost of delivery
//! beyond the HTTP request itself: sled rewrites a whole leaf every few
//! changes, so one removal of a 744-byte entry cost 3.6–6.4 µs and wrote
//! 1.3–4.5 KB (`bench`'s `sled_alone_remove_per_entry`, over several days of
//! runs), while dropping a whole tree costs 0.1–0.6 µs per entry
//! (`sled_alone_drop_tree_per_entry`). Moving the
//! bodies out of the entries does not help: reading a body from another tree
//! costs what the smaller removal saves (measured in a scratch crate, 10,000
//! entries, alternating runs: 5–8 µs per entry either way).
//!
//! **How.** A poll's commit writes each entry to a *generation tree*,
//! `outbox/<target>/<g>` (`g` in 16 hex digits), where `g` is the entry's
//! sequence number shifted right by [`GEN_BITS`]: 4,096 sequence numbers per
//! generation, shared by all targets. A delivered or dead-lettered entry is
//! not removed: its bit is set in its generation's *marks* (`meta` key
//! `marks/<target>/<g>`: 513 bytes), one write per batch the driver lets go
//! of (16). A generation whose every entry is marked is dropped whole
//! ([`Generations::collect`]), with its marks. Walks start at each
//! generation's first unmarked entry, remembered in memory.
//!
//! 4,096 per generation: few trees (only generations with a pending entry
//! exist; a 10,000-event burst is three), and what an entry in back-off
//! keeps on disk with it, its generation's delivered entries, stays small
//! (about 3 MB at 744 bytes).
//!
//! The tree `outbox/<target>` stays, for two kinds of entries, delivered
//! first-come in sequence order with the generations and removed one by one
//! as before: entries queued by a build from before generations, and
//! replayed dead letters (a replay keeps the event's sequence number, whose
//! generation may be gone).
//!
//! **Crash safety.** An entry and its sequence number are written in the
//! poll's transaction; a mark is written after the receiver's 2xx (a crash
//! before it re-sends, as a crash before a removal did); a dead letter and
//! its mark are one transaction; a generation is dropped only when all its
//! entries are marked, and its marks after it (marks left without a tree
//! are removed when the store opens; a tree left fully marked is dropped
//! then). Marks that cannot be read count as nothing delivered: at worst a
//! re-send, never a loss.
//!
//! **Handles.** sled lets a handle outlive its dropped tree (its root
//! becomes an invalid page id), so every use of a generation tree happens
//! under the read side of one lock, and a drop under the write side. A
//! generation is dropped only while no commit runs (the store's commit lock,
//! taken with `try_lock`: a busy commit only postpones the drop), so a
//! commit never writes to a tree being dropped; it opens the trees it needs
//! before its transaction.

use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use sled::{IVec, Tree};

use crate::store::StoreError;

/// Sequence numbers per generation: `1 << GEN_BITS`.
pub const GEN_BITS: u32 = 12;
const WORDS: usize = (1 << GEN_BITS) / 64;
const MARKS_VERSION: u8 = 1;

/// The generation of sequence number `seq`.
pub fn generation_of(seq: u64) -> u64 {
    seq >> GEN_BITS
}

/// The name of `target`'s tree for generation `g`.
pub fn tree_name(target: &str, g: u64) -> String {
    format!("outbox/{target}/{g:016x}")
}

pub(crate) fn marks_key(target: &str, g: u64) -> String {
    format!("marks/{target}/{g:016x}")
}

/// The target and generation a tree name stands for, if it is one.
pub fn parse_tree_name(name: &[u8]) -> Option<(&str, u64)> {
    let rest = std::str::from_utf8(name).ok()?.strip_prefix("outbox/")?;
    let (target, g) = rest.split_once('/')?;
    (g.len() == 16)
        .then(|| u64::from_str_radix(g, 16).ok())
        .flatten()
        .map(|g| (target, g))
}

/// Which entries of one generation are done (delivered or dead-lettered):
/// one bit per sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marks(Box<[u64; WORDS]>);

impl Default for Marks {
    fn default() -> Self {
        Marks(Box::new([0; WORDS]))
    }
}

impl Marks {
    fn offset(seq: u64) -> usize {
        (seq & ((1 << GEN_BITS) - 1)) as usize
    }

    pub fn is_set(&self, seq: u64) -> bool {
        let o = Self::offset(seq);
        self.0[o / 64] >> (o % 64) & 1 == 1
    }

    pub fn set(&mut self, seq: u64) {
        let o = Self::offset(seq);
        self.0[o / 64] |= 1 << (o % 64);
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + WORDS * 8);
        out.push(MARKS_VERSION);
        for w in self.0.iter() {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// `None` for anything but a marks record of this layout.
    fn from_bytes(bytes: &[u8]) -> Option<Marks> {
        let (&MARKS_VERSION, rest) = bytes.split_first()? else {
            return None;
        };
        if rest.len() != WORDS * 8 {
            return None;
        }
        let mut marks = Marks::default();
        for (w, chunk) in marks.0.iter_mut().zip(rest.chunks_exact(8)) {
            *w = u64::from_le_bytes(chunk.try_into().ok()?);
        }
        Some(marks)
    }

    /// Marks as stored (`old`), with `seqs` set: for `fetch_and_update` and
    /// transactions.
    pub(crate) fn merged(target: &str, g: u64, old: Option<&[u8]>, seqs: &[u64]) -> Vec<u8> {
        let mut marks = old.map_or_else(Marks::default, |b| read_marks(target, g, b));
        for &s in seqs {
            marks.set(s);
        }
        marks.to_bytes()
    }
}

fn read_marks(target: &str, g: u64, bytes: &[u8]) -> Marks {
    Marks::from_bytes(bytes).unwrap_or_else(|| {
        tracing::error!(
            target,
            generation = g,
            "the delivered marks of an outbox generation cannot be read; its entries count as not delivered (they may be sent again)"
        );
        Marks::default()
    })
}

/// The generation trees of every configured target.
pub struct Generations {
    db: sled::Db,
    /// The merchant's prefix of every tree name (see [`crate::store`]).
    ns: String,
    meta: Tree,
    trees: RwLock<BTreeMap<String, BTreeMap<u64, Tree>>>,
    /// Per (target, generation): every entry below this sequence number is
    /// marked, so walks start there instead of stepping over every
    /// delivered entry again. It only moves up: marks are never removed,
    /// and a commit only adds entries above every entry there is. Kept in
    /// memory (after a restart, the first walk finds it again).
    starts: Mutex<BTreeMap<(String, u64), u64>>,
    /// Targets whose collection a running commit put off.
    postponed: Mutex<std::collections::BTreeSet<String>>,
}

/// A read view: the trees stay valid while it lives.
pub struct View<'a> {
    generations: &'a Generations,
    trees: RwLockReadGuard<'a, BTreeMap<String, BTreeMap<u64, Tree>>>,
}

/// One generation of a target, with its marks as read when the view asked.
pub struct Generation<'v> {
    pub g: u64,
    pub tree: &'v Tree,
    pub marks: Marks,
    /// Every entry below this is marked.
    start: u64,
}

impl Generations {
    /// Finds the generation trees of `targets` and removes marks whose tree
    /// is gone (a crash between a drop and the removal of its marks).
    pub fn open(
        db: &sled::Db,
        ns: &str,
        meta: &Tree,
        targets: &[&str],
    ) -> Result<Generations, StoreError> {
        let names: Vec<IVec> = db
            .tree_names()
            .into_iter()
            .filter_map(|n| n.strip_prefix(ns.as_bytes()).map(IVec::from))
            .collect();
        let mut trees: BTreeMap<String, BTreeMap<u64, Tree>> = targets
            .iter()
            .map(|t| ((*t).to_owned(), BTreeMap::new()))
            .collect();
        for name in &names {
            if let Some((target, g)) = parse_tree_name(name)
                && let Some(gens) = trees.get_mut(target)
            {
                gens.insert(g, db.open_tree([ns.as_bytes(), name].concat())?);
            }
        }
        for item in meta.scan_prefix("marks/") {
            let (key, _) = item?;
            let tree = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| k.strip_prefix("marks/"))
                .map(|rest| format!("outbox/{rest}"));
            if tree.is_none_or(|t| !names.iter().any(|n| n.as_ref() == t.as_bytes())) {
                meta.remove(key)?;
            }
        }
        Ok(Generations {
            db: db.clone(),
            ns: ns.to_owned(),
            meta: meta.clone(),
            trees: RwLock::new(trees),
            starts: Mutex::default(),
            postponed: Mutex::default(),
        })
    }

    /// The name of `target`'s generation `g` tree in this keyspace.
    fn tree_name(&self, target: &str, g: u64) -> String {
        format!("{}{}", self.ns, tree_name(target, g))
    }

    /// Where `target`'s generation `g` has its first entry not marked (or,
    /// when all are, just after its last entry), looking from where the last
    /// look found it; remembered for the next look.
    fn start_of(
        &self,
        target: &str,
        g: u64,
        tree: &Tree,
        marks: &Marks,
    ) -> Result<u64, StoreError> {
        let key = (target.to_owned(), g);
        let from = self.starts().get(&key).copied().unwrap_or(g << GEN_BITS);
        let mut start = from;
        for k in tree.range(from.to_be_bytes()..).keys() {
            let seq = seq_in(&k?, g)?;
            if !marks.is_set(seq) {
                start = seq;
                break;
            }
            start = seq + 1;
        }
        if start != from {
            let mut starts = self.starts();
            let known = starts.entry(key).or_insert(start);
            *known = (*known).max(start);
        }
        Ok(start)
    }

    fn postponed(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<String>> {
        self.postponed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn starts(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, u64), u64>> {
        self.starts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn view(&self) -> View<'_> {
        View {
            generations: self,
            trees: self.trees.read().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Opens (creating) the trees of `needed` (target, generation) pairs not
    /// open yet. Called by the commit, before its transaction.
    pub fn ensure(&self, needed: &[(&str, u64)]) -> Result<(), StoreError> {
        let missing: Vec<_> = {
            let view = self.view();
            needed
                .iter()
                .filter(|(t, g)| view.trees.get(*t).is_none_or(|gens| !gens.contains_key(g)))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let mut trees = self.trees.write().unwrap_or_else(|e| e.into_inner());
        for &&(target, g) in &missing {
            let tree = self.db.open_tree(self.tree_name(target, g))?;
            trees.entry(target.to_owned()).or_default().insert(g, tree);
        }
        Ok(())
    }

    /// Marks `seqs` of `target` done, one write per generation.
    pub fn mark(&self, target: &str, seqs: &[u64]) -> Result<(), StoreError> {
        let mut by_gen: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for &s in seqs {
            by_gen.entry(generation_of(s)).or_default().push(s);
        }
        for (g, seqs) in by_gen {
            self.meta.fetch_and_update(marks_key(target, g), |old| {
                Some(Marks::merged(target, g, old, &seqs))
            })?;
        }
        Ok(())
    }

    /// Drops the generations `which` of `target` (all of them for `None`)
    /// whose entries are all marked, unless a commit is running (`commit`:
    /// the store's commit lock); then the next call looks at all of them.
    /// Returns the generations dropped.
    pub fn collect(
        &self,
        target: &str,
        which: Option<&[u64]>,
        commit: &Mutex<()>,
    ) -> Result<Vec<u64>, StoreError> {
        let Ok(_no_commit) = commit.try_lock() else {
            self.postponed().insert(target.to_owned());
            return Ok(Vec::new());
        };
        let which = match self.postponed().remove(target) {
            true => None,
            false => which,
        };
        let done: Vec<u64> = {
            let view = self.view();
            let mut done = Vec::new();
            for generation in view.select(target, which)? {
                if generation.all_marked()? {
                    done.push(generation.g);
                }
            }
            done
        };
        if done.is_empty() {
            return Ok(done);
        }
        let mut trees = self.trees.write().unwrap_or_else(|e| e.into_inner());
        for &g in &done {
            if let Some(tree) = trees.get_mut(target).and_then(|gens| gens.remove(&g)) {
                drop(tree);
                self.starts().remove(&(target.to_owned(), g));
                self.db.drop_tree(self.tree_name(target, g))?;
                self.meta.remove(marks_key(target, g))?;
                tracing::debug!(
                    target,
                    generation = g,
                    "an outbox generation is delivered: dropped"
                );
            }
        }
        Ok(done)
    }

    /// Entries left in a generation tree of a target that is not configured
    /// (for the orphan report): its entries not marked.
    pub fn unmarked_len(&self, target: &str, g: u64) -> Result<usize, StoreError> {
        let tree = self.db.open_tree(self.tree_name(target, g))?;
        let marks = self.marks(target, g)?;
        Ok(Generation {
            g,
            tree: &tree,
            marks,
            start: g << GEN_BITS,
        }
        .unmarked()
        .count())
    }

    /// Moves the entry `seq` of a generation to dead letters: the letter
    /// and the entry's mark in one transaction. Nothing happens when it is
    /// marked already (delivered or dead meanwhile).
    pub fn move_to_dead(
        &self,
        target: &str,
        seq: u64,
        dead: &Tree,
        letter: &[u8],
    ) -> Result<(), StoreError> {
        use sled::Transactional;
        let g = generation_of(seq);
        let key = marks_key(target, g);
        (dead, &self.meta)
            .transaction(|(dead, meta)| {
                let old = meta.get(key.as_bytes())?;
                if old
                    .as_deref()
                    .is_some_and(|b| read_marks(target, g, b).is_set(seq))
                {
                    return Ok(());
                }
                meta.insert(
                    key.as_bytes(),
                    Marks::merged(target, g, old.as_deref(), &[seq]),
                )?;
                dead.insert(&seq.to_be_bytes(), letter)?;
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
                sled::transaction::TransactionError::Abort(()) => StoreError::Corrupt {
                    tree: format!("dead/{target}"),
                    reason: "aborted".into(),
                },
            })
    }

    fn marks(&self, target: &str, g: u64) -> Result<Marks, StoreError> {
        Ok(self
            .meta
            .get(marks_key(target, g))?
            .map(|b| read_marks(target, g, &b))
            .unwrap_or_default())
    }
}

impl View<'_> {
    /// `target`'s generations, oldest first, with their marks.
    pub fn of(&self, target: &str) -> Result<Vec<Generation<'_>>, StoreError> {
        self.select(target, None)
    }

    /// As [`View::of`], only the generations in `which` (all for `None`).
    pub fn select(
        &self,
        target: &str,
        which: Option<&[u64]>,
    ) -> Result<Vec<Generation<'_>>, StoreError> {
        let Some(gens) = self.trees.get(target) else {
            return Ok(Vec::new());
        };
        gens.iter()
            .filter(|(g, _)| which.is_none_or(|w| w.contains(g)))
            .map(|(&g, tree)| {
                let marks = self.generations.marks(target, g)?;
                let start = self.generations.start_of(target, g, tree, &marks)?;
                Ok(Generation {
                    g,
                    tree,
                    marks,
                    start,
                })
            })
            .collect()
    }

    /// The tree of `target`'s generation `g`, if it is open.
    pub fn tree(&self, target: &str, g: u64) -> Option<&Tree> {
        self.trees.get(target)?.get(&g)
    }

    /// The stored entry `seq` of `target` if it is in a generation and not
    /// marked, with its tree.
    pub fn unmarked_entry(
        &self,
        target: &str,
        seq: u64,
    ) -> Result<Option<(&Tree, IVec)>, StoreError> {
        let g = generation_of(seq);
        let Some(tree) = self.tree(target, g) else {
            return Ok(None);
        };
        if self.generations.marks(target, g)?.is_set(seq) {
            return Ok(None);
        }
        Ok(tree.get(seq.to_be_bytes())?.map(|v| (tree, v)))
    }
}

impl Generation<'_> {
    /// Its entries not marked, oldest first: (sequence number, stored bytes).
    pub fn unmarked(&self) -> impl Iterator<Item = Result<(u64, IVec), StoreError>> + '_ {
        self.tree
            .range(self.start.to_be_bytes()..)
            .filter_map(move |item| match item {
                Err(e) => Some(Err(e.into())),
                Ok((k, v)) => match seq_in(&k, self.g) {
                    Ok(seq) => (!self.marks.is_set(seq)).then_some(Ok((seq, v))),
                    Err(e) => Some(Err(e)),
                },
            })
    }

    /// Whether every entry is marked.
    pub fn all_marked(&self) -> Result<bool, StoreError> {
        self.unmarked()
            .next()
            .transpose()
            .map(|first| first.is_none())
    }
}

fn seq_in(key: &[u8], g: u64) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt {
            tree: format!("outbox generation {g:016x}"),
            reason: "key is not a u64".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_set_and_read_back() {
        let g = 3;
        let base = g << GEN_BITS;
        let mut marks = Marks::default();
        for s in base..base + 70 {
            marks.set(s);
        }
        marks.set(base + 72);
        assert!(marks.is_set(base + 69) && !marks.is_set(base + 70) && marks.is_set(base + 72));
        let back = Marks::from_bytes(&marks.to_bytes()).unwrap();
        assert_eq!(back, marks);
        assert!(Marks::from_bytes(&[MARKS_VERSION, 1, 2]).is_none());
        assert!(Marks::from_bytes(&[]).is_none());
        assert!(Marks::from_bytes(&[9; 1 + WORDS * 8]).is_none());
    }

    #[test]
    fn tree_names_round_trip_and_other_names_are_not_generations() {
        assert_eq!(
            parse_tree_name(tree_name("erp_1", 17).as_bytes()),
            Some(("erp_1", 17))
        );
        assert_eq!(parse_tree_name(b"outbox/erp"), None);
        assert_eq!(parse_tree_name(b"dead/erp"), None);
        assert_eq!(parse_tree_name(b"outbox/erp/zz"), None);
    }
}
