//! Guards the engine against a model: random sequences of transaction, snapshot and GC operations run on the engine and on a `BTreeMap` + history model must never diverge.
//!
//! The model keeps, per key, the versions the engine should still link (pruned by the GC rule
//! "keep the n newest, and everything from the version the oldest live reader needs") and,
//! separately, the full history that is never pruned. Every read is compared with the pruned
//! model exactly (value, version, or `HistoryPruned`), and any read that succeeds must also
//! agree with the full history. Two transaction slots (slot 0 Snapshot, slot 1 Serializable by
//! default) interleave, so commits can conflict; the model predicts which.
//! Shrunk failures are kept in `proptest-regressions/` and replayed first. 256 cases by
//! default; `PROPTEST_CASES=5000 cargo test -p rewinddb-engine --test model` digs deeper.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use std::sync::Arc;

use rewinddb_engine::durability::MemStorage;
use rewinddb_engine::{
    CheckpointPolicy, Durability, Engine, EngineConfig, Error, Isolation, Key, Namespace,
    Retention, RunId, Scope, Snapshot, Transaction, TypeTag, Value, Version,
};

/// Keys (user bytes), sorted; chosen so that prefixes overlap.
const KEYS: [&str; 5] = ["a", "ab", "abc", "b", "ba"];
const PREFIXES: [&str; 5] = ["", "a", "ab", "b", "c"];
const SLOTS: usize = 2;
/// The run slot 0 writes for (slot 1 writes outside any run).
const RUN: RunId = RunId::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);

fn key(user: &str) -> Key {
    Key::new(
        Namespace::new("model").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        user,
    )
}

fn key_index(k: &Key) -> usize {
    KEYS.iter()
        .position(|u| u.as_bytes() == &**k.user())
        .unwrap()
}

fn prefix_keys(prefix: usize, after: Option<usize>) -> impl Iterator<Item = usize> {
    (0..KEYS.len())
        .filter(move |k| KEYS[*k].starts_with(PREFIXES[prefix]) && after.is_none_or(|a| *k > a))
}

#[derive(Clone, Debug)]
enum Op {
    Begin {
        slot: usize,
        serializable: bool,
    },
    Put {
        slot: usize,
        key: usize,
        value: i64,
    },
    Delete {
        slot: usize,
        key: usize,
    },
    Get {
        slot: usize,
        key: usize,
    },
    Scan {
        slot: usize,
        prefix: usize,
        after: Option<usize>,
        limit: usize,
    },
    Commit {
        slot: usize,
    },
    Abort {
        slot: usize,
    },
    /// A one-shot transaction writing one key (None deletes) for the run, committed at once.
    Autocommit {
        key: usize,
        value: Option<i64>,
    },
    Snapshot,
    /// `snapshot_at(v)` for a `v` in `0..=visible + 1` (the last one is in the future).
    SnapshotAt {
        at: Index,
    },
    SnapGet {
        snap: Index,
        key: usize,
    },
    SnapScan {
        snap: Index,
        prefix: usize,
        after: Option<usize>,
        limit: usize,
    },
    DropSnapshot {
        snap: Index,
    },
    /// Every reader leaves: all snapshots dropped, open transactions rolled back.
    Quiesce,
    /// Durable engines: write a checkpoint.
    Checkpoint,
    /// Durable engines: every reader leaves, the engine closes and is opened again from its
    /// storage (recovery from checkpoint + WAL).
    Reopen,
    Gc,
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    let key = 0..KEYS.len();
    let prefix = 0..PREFIXES.len();
    let after = proptest::option::of(0..KEYS.len());
    prop_oneof![
        1 => (slot.clone(), any::<bool>()).prop_map(|(slot, serializable)| Op::Begin { slot, serializable }),
        5 => (slot.clone(), key.clone(), 0..1000i64).prop_map(|(slot, key, value)| Op::Put { slot, key, value }),
        2 => (slot.clone(), key.clone()).prop_map(|(slot, key)| Op::Delete { slot, key }),
        3 => (slot.clone(), key.clone()).prop_map(|(slot, key)| Op::Get { slot, key }),
        2 => (slot.clone(), prefix.clone(), after.clone(), 0..6usize)
            .prop_map(|(slot, prefix, after, limit)| Op::Scan { slot, prefix, after, limit }),
        5 => slot.clone().prop_map(|slot| Op::Commit { slot }),
        2 => slot.prop_map(|slot| Op::Abort { slot }),
        4 => (key.clone(), proptest::option::weighted(0.8, 0..1000i64)).prop_map(|(key, value)| Op::Autocommit { key, value }),
        1 => Just(Op::Snapshot),
        2 => any::<Index>().prop_map(|at| Op::SnapshotAt { at }),
        4 => (any::<Index>(), key).prop_map(|(snap, key)| Op::SnapGet { snap, key }),
        1 => (any::<Index>(), prefix, after, 0..6usize)
            .prop_map(|(snap, prefix, after, limit)| Op::SnapScan { snap, prefix, after, limit }),
        3 => any::<Index>().prop_map(|snap| Op::DropSnapshot { snap }),
        1 => Just(Op::Quiesce),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
        3 => Just(Op::Gc),
    ]
}

fn retention() -> impl Strategy<Value = Retention> {
    prop_oneof![
        Just(Retention::KeepAll),
        (1..4usize).prop_map(Retention::Versions)
    ]
}

/// What a point read returns, in model terms: Ok((value, version)) or Err(()) for
/// `HistoryPruned`.
type Read = Result<(Option<i64>, Version), ()>;

/// One key's versions, oldest first: (commit, run, value; None = tombstone).
type Versions = Vec<(Version, RunId, Option<i64>)>;

#[derive(Default)]
struct ModelTxn {
    start: Version,
    isolation: Isolation,
    run: RunId,
    writes: BTreeMap<usize, Option<i64>>,
    reads: BTreeSet<usize>,
    scans: BTreeSet<usize>,
}

struct Model {
    retention: Retention,
    visible: Version,
    /// Versions the engine should still link, per key.
    linked: BTreeMap<usize, Versions>,
    /// Every version ever committed, per key (never pruned).
    full: BTreeMap<usize, Versions>,
    /// Keys whose chain GC has cut.
    pruned: BTreeSet<usize>,
    /// One per slot, plus one for `Autocommit`.
    txns: [Option<ModelTxn>; SLOTS + 1],
    snaps: Vec<Version>,
    /// The run's commits and the keys each wrote, in order: the per-run index keeps them
    /// even after GC unlinks their versions (replay reports pruned history from it).
    run_commits: Vec<(Version, Vec<usize>)>,
}

fn read_in(versions: Option<&Versions>, pruned: bool, at: Version) -> Read {
    let found = versions.and_then(|vs| vs.iter().rev().find(|(v, _, _)| *v <= at));
    match found {
        Some((v, _, value)) => Ok((*value, *v)),
        None if pruned => Err(()),
        None => Ok((None, 0)),
    }
}

impl Model {
    fn new(retention: Retention) -> Model {
        Model {
            retention,
            visible: 0,
            linked: BTreeMap::new(),
            full: BTreeMap::new(),
            pruned: BTreeSet::new(),
            txns: Default::default(),
            snaps: Vec::new(),
            run_commits: Vec::new(),
        }
    }

    fn read(&self, key: usize, at: Version) -> Read {
        let read = read_in(self.linked.get(&key), self.pruned.contains(&key), at);
        if let Ok(answer) = read {
            // Whatever GC did, a read that answers must answer as the full history does.
            assert_eq!(
                Ok(answer),
                read_in(self.full.get(&key), false, at),
                "model: pruned and full history disagree"
            );
        }
        read
    }

    /// A scan at `at` over committed state (no own writes), as the engine's store does it:
    /// in key order, stopping at `limit`, failing on the first pruned key it must read.
    fn scan(
        &self,
        prefix: usize,
        after: Option<usize>,
        limit: usize,
        at: Version,
    ) -> Result<Vec<(usize, i64)>, ()> {
        let mut out = Vec::new();
        for k in prefix_keys(prefix, after).filter(|k| self.linked.contains_key(k)) {
            if out.len() >= limit {
                break;
            }
            if let (Some(v), _) = self.read(k, at)? {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    fn head(&self, key: usize) -> Version {
        self.linked
            .get(&key)
            .and_then(|vs| vs.last())
            .map_or(0, |(v, _, _)| *v)
    }

    fn conflicts(&self, t: &ModelTxn) -> bool {
        let changed = |k: &usize| self.head(*k) > t.start;
        t.writes.keys().any(changed)
            || (t.isolation == Isolation::Serializable
                && (t.reads.iter().any(changed)
                    || t.scans
                        .iter()
                        .any(|p| prefix_keys(*p, None).any(|k| changed(&k)))))
    }

    /// Commit the transaction in `slot`: Ok(version), or Err(()) for a conflict.
    fn commit(&mut self, slot: usize) -> Result<Version, ()> {
        let t = self.txns[slot].take().unwrap();
        if t.writes.is_empty() {
            return Ok(t.start);
        }
        if self.conflicts(&t) {
            return Err(());
        }
        self.visible += 1;
        for (k, value) in &t.writes {
            self.linked
                .entry(*k)
                .or_default()
                .push((self.visible, t.run, *value));
            self.full
                .entry(*k)
                .or_default()
                .push((self.visible, t.run, *value));
        }
        if t.run == RUN {
            self.run_commits
                .push((self.visible, t.writes.keys().copied().collect()));
        }
        Ok(self.visible)
    }

    fn oldest_reader(&self) -> Version {
        let txns = self.txns.iter().flatten().map(|t| t.start);
        self.snaps
            .iter()
            .copied()
            .chain(txns)
            .min()
            .unwrap_or(self.visible)
    }

    /// GC: keep each key's n newest versions and every version from the one answering the
    /// oldest live reader up. Returns how many versions it unlinked.
    fn gc(&mut self) -> usize {
        let Retention::Versions(n) = self.retention else {
            return 0;
        };
        let oldest = self.oldest_reader();
        let mut unlinked = 0;
        for (k, vs) in &mut self.linked {
            if vs.len() <= n {
                continue;
            }
            let nth_newest = vs[vs.len() - n].0;
            let keep_from = nth_newest.min(oldest);
            // Index of the version answering reads at `keep_from`; everything before it goes.
            let Some(i) = vs.iter().rposition(|(v, _, _)| *v <= keep_from) else {
                continue;
            };
            if i > 0 {
                vs.drain(..i);
                unlinked += i;
                self.pruned.insert(*k);
            }
        }
        unlinked
    }

    fn linked_count(&self) -> u64 {
        self.linked.values().map(|vs| vs.len() as u64).sum()
    }
}

struct Harness {
    engine: Engine,
    /// The storage of a durable engine (None: in memory).
    storage: Option<MemStorage>,
    model: Model,
    txns: [Option<Transaction>; SLOTS],
    snaps: Vec<Snapshot>,
    /// Commit time of every commit, as the engine reported it right after the commit.
    times: BTreeMap<Version, u64>,
}

fn open_durable(retention: Retention, storage: &MemStorage) -> Engine {
    let config = EngineConfig::default()
        .retention(retention)
        .durability(Durability::Strict)
        .checkpoint(CheckpointPolicy::MANUAL);
    Engine::open_with_storage(config, Arc::new(storage.clone())).unwrap()
}

fn int(v: Option<Value>) -> Option<i64> {
    v.map(|v| v.as_i64().unwrap())
}

fn read_result(r: rewinddb_engine::Result<(Option<Value>, Version)>) -> Read {
    match r {
        Ok((v, version)) => Ok((int(v), version)),
        Err(Error::HistoryPruned { .. }) => Err(()),
        Err(e) => panic!("unexpected read error: {e}"),
    }
}

fn scan_result(r: rewinddb_engine::Result<Vec<(Key, Value)>>) -> Result<Vec<(usize, i64)>, ()> {
    match r {
        Ok(rows) => Ok(rows
            .into_iter()
            .map(|(k, v)| {
                (
                    KEYS.iter()
                        .position(|u| u.as_bytes() == &**k.user())
                        .unwrap(),
                    v.as_i64().unwrap(),
                )
            })
            .collect()),
        Err(Error::HistoryPruned { .. }) => Err(()),
        Err(e) => panic!("unexpected scan error: {e}"),
    }
}

impl Harness {
    fn new(retention: Retention) -> Harness {
        let engine = Engine::open_in_memory(EngineConfig::default().retention(retention)).unwrap();
        Harness {
            engine,
            storage: None,
            model: Model::new(retention),
            txns: Default::default(),
            snaps: Vec::new(),
            times: BTreeMap::new(),
        }
    }

    /// A durable engine (Strict, checkpoints only when asked) on in-memory storage.
    fn durable(retention: Retention) -> Harness {
        let storage = MemStorage::new();
        let mut h = Harness::new(retention);
        h.engine = open_durable(retention, &storage);
        h.storage = Some(storage);
        h
    }

    /// Close the durable engine and recover it from its storage. The recovered chains must
    /// be a newest-first suffix of the full history that keeps every version the model still
    /// links (recovery may bring back versions GC unlinked after the last checkpoint); the
    /// model adopts them. Versions, commit times and the run index must come back unchanged.
    fn reopen(&mut self) {
        let Some(storage) = self.storage.clone() else {
            return;
        };
        self.txns = Default::default();
        self.snaps.clear();
        self.model.txns = Default::default();
        self.model.snaps.clear();
        let placeholder = Engine::open_in_memory(EngineConfig::default()).unwrap();
        std::mem::replace(&mut self.engine, placeholder)
            .close()
            .unwrap();
        self.engine = open_durable(self.model.retention, &storage);
        assert_eq!(
            self.engine.visible_version(),
            self.model.visible,
            "recovery lost commits"
        );
        for (k, user) in KEYS.iter().enumerate() {
            let chain: Versions = self
                .engine
                .history(&key(user), Version::MAX)
                .into_iter()
                .rev()
                .map(|(v, run, value)| (v, run, int(value)))
                .collect();
            let full = self.model.full.get(&k).cloned().unwrap_or_default();
            let kept = self.model.linked.get(&k).map_or(0, Vec::len);
            assert!(
                chain.len() >= kept && full.ends_with(&chain),
                "recovered chain of {user}: {chain:?}, full history {full:?}, model kept {kept}"
            );
            if chain.len() < full.len() {
                self.model.pruned.insert(k);
            } else {
                self.model.pruned.remove(&k);
            }
            if chain.is_empty() {
                self.model.linked.remove(&k);
            } else {
                self.model.linked.insert(k, chain);
            }
        }
        for (v, ms) in &self.times {
            assert_eq!(
                self.engine.commit_time(*v).unwrap(),
                *ms,
                "commit time of version {v} after recovery"
            );
        }
    }

    fn begin(&mut self, slot: usize, isolation: Isolation) {
        let run = if slot == 0 { RUN } else { RunId::NIL };
        let txn = self.engine.begin(run, isolation);
        assert_eq!(txn.start_version(), self.model.visible);
        self.model.txns[slot] = Some(ModelTxn {
            start: self.model.visible,
            isolation,
            run,
            ..ModelTxn::default()
        });
        self.txns[slot] = Some(txn);
    }

    /// The open transaction of `slot`, begun with the slot's default isolation if none is open.
    fn txn(&mut self, slot: usize) -> (&mut Transaction, &mut ModelTxn) {
        if self.txns[slot].is_none() {
            self.begin(
                slot,
                if slot == 0 {
                    Isolation::Snapshot
                } else {
                    Isolation::Serializable
                },
            );
        }
        (
            self.txns[slot].as_mut().unwrap(),
            self.model.txns[slot].as_mut().unwrap(),
        )
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Begin { slot, serializable } => {
                if self.txns[slot].is_none() {
                    self.begin(
                        slot,
                        if serializable {
                            Isolation::Serializable
                        } else {
                            Isolation::Snapshot
                        },
                    );
                }
            }
            Op::Put {
                slot,
                key: k,
                value,
            } => {
                let (t, m) = self.txn(slot);
                t.put(key(KEYS[k]), value).unwrap();
                m.writes.insert(k, Some(value));
            }
            Op::Delete { slot, key: k } => {
                let (t, m) = self.txn(slot);
                t.delete(key(KEYS[k])).unwrap();
                m.writes.insert(k, None);
            }
            Op::Get { slot, key: k } => self.txn_get(slot, k),
            Op::Scan {
                slot,
                prefix,
                after,
                limit,
            } => self.txn_scan(slot, prefix, after, limit),
            Op::Commit { slot } => self.commit(slot),
            Op::Abort { slot } => {
                if let Some(mut t) = self.txns[slot].take() {
                    t.rollback().unwrap();
                    self.model.txns[slot] = None;
                }
            }
            Op::Autocommit { key: k, value } => self.autocommit(k, value),
            Op::Snapshot => {
                let snap = self.engine.snapshot();
                assert_eq!(snap.version(), self.model.visible);
                self.snaps.push(snap);
                self.model.snaps.push(self.model.visible);
            }
            Op::SnapshotAt { at } => {
                self.snapshot_at(at.index(self.model.visible as usize + 2) as Version)
            }
            Op::SnapGet { snap, key: k } => {
                if self.snaps.is_empty() {
                    return;
                }
                let i = snap.index(self.snaps.len());
                let got = read_result(self.snaps[i].get_versioned(&key(KEYS[k])));
                assert_eq!(
                    got,
                    self.model.read(k, self.model.snaps[i]),
                    "snapshot {} get {}",
                    self.model.snaps[i],
                    KEYS[k]
                );
            }
            Op::SnapScan {
                snap,
                prefix,
                after,
                limit,
            } => {
                if self.snaps.is_empty() {
                    return;
                }
                let i = snap.index(self.snaps.len());
                let after_key = after.map(|a| key(KEYS[a]));
                let got = scan_result(self.snaps[i].scan(
                    &key(PREFIXES[prefix]),
                    after_key.as_ref(),
                    limit,
                ));
                assert_eq!(
                    got,
                    self.model.scan(prefix, after, limit, self.model.snaps[i])
                );
            }
            Op::DropSnapshot { snap } => {
                if !self.snaps.is_empty() {
                    let i = snap.index(self.snaps.len());
                    self.snaps.swap_remove(i);
                    self.model.snaps.swap_remove(i);
                }
            }
            Op::Quiesce => {
                self.snaps.clear();
                self.model.snaps.clear();
                for slot in 0..SLOTS {
                    self.apply(&Op::Abort { slot });
                }
            }
            Op::Checkpoint => {
                if self.storage.is_some() {
                    assert_eq!(self.engine.checkpoint().unwrap(), self.model.visible);
                }
            }
            Op::Reopen => self.reopen(),
            Op::Gc => {
                let stats = self.engine.gc().unwrap();
                assert_eq!(stats.oldest_reader, self.model.oldest_reader());
                assert_eq!(stats.unlinked, self.model.gc());
            }
        }
    }

    fn snapshot_at(&mut self, version: Version) {
        match self.engine.snapshot_at(version) {
            Ok(snap) => {
                assert!(version <= self.model.visible);
                self.snaps.push(snap);
                self.model.snaps.push(version);
            }
            Err(Error::VersionInFuture { requested, visible }) => {
                assert!(version > self.model.visible);
                assert_eq!((requested, visible), (version, self.model.visible));
            }
            Err(e) => panic!("snapshot_at({version}): {e}"),
        }
    }

    fn autocommit(&mut self, k: usize, value: Option<i64>) {
        let mut t = self.engine.begin(RUN, Isolation::Snapshot);
        t.cas(key(KEYS[k]), self.model.head(k), value.map(Value::Int))
            .unwrap();
        let v = t.commit().unwrap();
        let mut m = ModelTxn {
            start: self.model.visible,
            run: RUN,
            ..ModelTxn::default()
        };
        m.writes.insert(k, value);
        let slot = SLOTS;
        self.model.txns[slot] = Some(m);
        assert_eq!(Ok(v), self.model.commit(slot));
        self.times.insert(v, self.engine.commit_time(v).unwrap());
    }

    fn txn_get(&mut self, slot: usize, k: usize) {
        let (t, m) = self.txn(slot);
        let got = read_result(t.get_versioned(&key(KEYS[k])));
        let (start, own) = (m.start, m.writes.get(&k).copied());
        if own.is_none() && m.isolation == Isolation::Serializable {
            m.reads.insert(k);
        }
        let expected = match own {
            Some(v) => Ok((v, Version::MAX)),
            None => self.model.read(k, start),
        };
        assert_eq!(got, expected, "txn {slot} get {}", KEYS[k]);
    }

    fn txn_scan(&mut self, slot: usize, prefix: usize, after: Option<usize>, limit: usize) {
        let (t, m) = self.txn(slot);
        let after_key = after.map(|a| key(KEYS[a]));
        let got = scan_result(t.scan(&key(PREFIXES[prefix]), after_key.as_ref(), limit))
            .expect("a transaction's scan never meets pruned history");
        if m.isolation == Isolation::Serializable {
            m.scans.insert(prefix);
        }
        let (start, own) = (m.start, m.writes.clone());
        let expected: Vec<(usize, i64)> = prefix_keys(prefix, after)
            .filter_map(|k| match own.get(&k) {
                Some(v) => v.map(|v| (k, v)),
                None => self.model.read(k, start).unwrap().0.map(|v| (k, v)),
            })
            .take(limit)
            .collect();
        assert_eq!(
            got, expected,
            "txn {slot} scan {:?} after {after:?} limit {limit}",
            PREFIXES[prefix]
        );
    }

    fn commit(&mut self, slot: usize) {
        let Some(mut t) = self.txns[slot].take() else {
            return;
        };
        let got = t.commit();
        match (got, self.model.commit(slot)) {
            (Ok(v), Ok(expected)) => {
                assert_eq!(v, expected);
                self.times.insert(v, self.engine.commit_time(v).unwrap());
            }
            (Err(e), Err(())) => assert!(e.is_conflict(), "{e}"),
            (got, expected) => panic!("commit of slot {slot}: engine {got:?}, model {expected:?}"),
        }
    }

    /// Invariants checked after every operation.
    fn check(&self) {
        let stats = self.engine.stats();
        assert_eq!(stats.visible, self.model.visible);
        assert_eq!(stats.versions, self.model.linked_count());
        let open = self.txns.iter().flatten().count();
        assert_eq!(stats.live_snapshots, self.snaps.len() + open);
        assert_eq!(stats.keys, self.model.linked.len());
    }

    /// Whitebox: every chain links exactly the model's versions, and the per-run index lists
    /// exactly the run's commits.
    fn check_chains(&self) {
        for (k, user) in KEYS.iter().enumerate() {
            let chain: Versions = self
                .engine
                .history(&key(user), Version::MAX)
                .into_iter()
                .rev()
                .map(|(v, run, value)| (v, run, int(value)))
                .collect();
            assert_eq!(
                &chain,
                self.model.linked.get(&k).unwrap_or(&Vec::new()),
                "chain of {user}"
            );
        }
        let runs: Vec<(Version, Vec<usize>)> = self
            .engine
            .run_commits(RUN)
            .unwrap()
            .iter()
            .map(|c| (c.version, c.keys().map(key_index).collect()))
            .collect();
        assert_eq!(runs, self.model.run_commits, "per-run index");
        // The run's first and last commit at or below a version, without
        // copying the list.
        let versions: Vec<Version> = self.model.run_commits.iter().map(|(v, _)| *v).collect();
        let newest = versions.last().copied().unwrap_or(0);
        for at in [
            0,
            1,
            newest / 2,
            newest.saturating_sub(1),
            newest,
            newest + 1,
            Version::MAX,
        ] {
            let seen: Vec<Version> = versions.iter().copied().filter(|&v| v <= at).collect();
            let want = seen.first().zip(seen.last()).map(|(&f, &l)| (f, l));
            assert_eq!(
                self.engine.run_span(RUN, at).unwrap(),
                want,
                "run_span at {at}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Integration tests have no lib.rs beside them, so name the file; cargo runs tests
        // from the package root.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/proptest-regressions/model.txt"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_model(retention in retention(), durable in any::<bool>(), ops in proptest::collection::vec(op(), 1..160)) {
        // Durable engines run with KeepAll only, for now: a checkpoint does not carry the
        // per-run index entries of versions GC unlinked, so after a restart the index loses
        // them (see gc.rs, run_index_survives_a_restart_after_gc, ignored until fixed).
        let mut h = if durable && retention == Retention::KeepAll {
            Harness::durable(retention)
        } else {
            Harness::new(retention)
        };
        for op in &ops {
            h.apply(op);
            h.check();
        }
        h.check_chains();
        // Finish everything: all readers gone, one more GC leaves the retention minimum.
        for slot in 0..SLOTS {
            h.apply(&Op::Commit { slot });
        }
        h.snaps.clear();
        h.model.snaps.clear();
        h.apply(&Op::Gc);
        h.check();
        h.check_chains();
        if let Retention::Versions(n) = retention {
            for vs in h.model.linked.values() {
                prop_assert!(vs.len() <= n);
            }
        }
        h.apply(&Op::Reopen);
        h.check();
        h.check_chains();
    }
}

// Regression (found by the model, kept in proptest-regressions/model.txt): a scan whose `after`
// was the prefix key itself started at the prefix inclusively and returned `after` again.
#[test]
fn scan_after_the_prefix_key_itself_excludes_it() {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
    t.put(key("ab"), 1).unwrap();
    t.put(key("abc"), 2).unwrap();
    t.commit().unwrap();
    let users = |rows: Vec<(Key, Value)>| {
        rows.into_iter()
            .map(|(k, _)| k.user().to_vec())
            .collect::<Vec<_>>()
    };
    let snap = engine.snapshot();
    assert_eq!(
        users(snap.scan(&key("ab"), Some(&key("ab")), 10).unwrap()),
        [b"abc".to_vec()]
    );
    assert_eq!(
        users(snap.scan(&key("ab"), None, 10).unwrap()),
        [b"ab".to_vec(), b"abc".to_vec()]
    );
    let mut t = engine.begin(RunId::NIL, Isolation::Serializable);
    assert_eq!(
        users(t.scan(&key("ab"), Some(&key("ab")), 10).unwrap()),
        [b"abc".to_vec()]
    );
}

// The model is not hollow: with commit validation switched off (test-hooks), the lost update
// below commits in the engine while the model predicts a conflict, and the harness says so.
#[test]
fn model_catches_commits_without_validation() {
    let ops = [
        Op::Put {
            slot: 0,
            key: 0,
            value: 1,
        },
        Op::Put {
            slot: 1,
            key: 0,
            value: 2,
        },
        Op::Commit { slot: 0 },
        Op::Commit { slot: 1 },
    ];
    let mut h = Harness::new(Retention::KeepAll);
    h.engine.set_skip_commit_validation(true).unwrap();
    let diverged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for op in &ops {
            h.apply(op);
        }
    }));
    assert!(
        diverged.is_err(),
        "the harness missed a commit that should have conflicted"
    );
}
