//! Guards transaction isolation under real concurrency: a whitebox checker over recorded histories of thousands of random transactions.
//!
//! Every worker thread drives up to three interleaved transactions at a time over a small key
//! set (so conflicts are frequent even on one core), and records each transaction's start
//! version, every read (key, commit version seen via `get_versioned`, value), every scan (rows
//! returned), its writes and its outcome. Written values are unique, so a value names the write
//! that produced it. After the threads join, the checker verifies:
//!
//! - commit versions are dense and unique;
//! - every read saw the newest committed version at or below the start version, or the
//!   transaction's own write; every scan returned exactly that state of the range;
//! - no two concurrent committed transactions (overlapping `[start, commit]`) wrote one key;
//! - for Serializable transactions, nothing a committed transaction read or scanned was
//!   overwritten between its start and its commit;
//! - the final state and every key's chain hold exactly the committed writes.
//!
//! The same histories run on durable engines (in-memory storage, every durability mode), and
//! the WAL must give them back after a clean close and after a simulated power loss: all
//! acknowledged commits under `Strict`, and in every mode exactly a prefix of the history.
//!
//! The planted-bug tests switch commit validation off (`test-hooks` feature) and show that the
//! checker then reports violations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rewinddb_engine::durability::MemStorage;
use rewinddb_engine::durability::io::{DataLoss, DirLoss};
use rewinddb_engine::{
    Durability, Engine, EngineConfig, Isolation, Key, Namespace, Retention, RunId, Scope,
    Transaction, TypeTag, Version,
};

/// User bytes of the keys, sorted (so index order is key order).
const KEYS: [&str; 8] = ["a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3"];
/// User bytes of the prefixes scans use.
const PREFIXES: [&str; 3] = ["", "a", "b"];
/// Largest number of transactions one thread keeps open at once.
const OPEN_MAX: usize = 3;
/// Operations after which a transaction is finished.
const OPS_MAX: usize = 6;

fn key(user: &str) -> Key {
    Key::new(
        Namespace::new("checker").unwrap(),
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

/// (thread, sequence number within the thread) of a transaction.
type TxnId = (usize, usize);

#[derive(Clone, Debug)]
enum Op {
    Get {
        key: usize,
        seen: Version,
        value: Option<i64>,
    },
    Scan {
        prefix: usize,
        after: Option<usize>,
        limit: usize,
        rows: Vec<(usize, i64)>,
    },
    Put {
        key: usize,
        value: i64,
    },
    Delete {
        key: usize,
    },
    /// A read failed with an error a pinned snapshot must never see.
    Failed {
        what: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Committed(Version),
    ReadOnly,
    Conflict,
    RolledBack,
}

#[derive(Clone, Debug)]
struct TxnRecord {
    id: TxnId,
    isolation: Isolation,
    start: Version,
    /// Newest commit version returned to this thread before this transaction began.
    begun_after: Version,
    ops: Vec<Op>,
    outcome: Outcome,
    /// Run by `Engine::transaction_locked`.
    locked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Violation {
    VersionsNotDense {
        versions: Vec<Version>,
    },
    StaleRead {
        txn: TxnId,
        key: usize,
        seen: (Version, Option<i64>),
        expected: (Version, Option<i64>),
    },
    WrongScan {
        txn: TxnId,
        prefix: usize,
        got: Vec<(usize, i64)>,
        expected: Vec<(usize, i64)>,
    },
    ConcurrentWrites {
        key: usize,
        first: TxnId,
        second: TxnId,
    },
    ReadChanged {
        txn: TxnId,
        key: usize,
        start: Version,
        overwritten_at: Version,
        commit: Version,
    },
    /// A transaction began after its thread saw a commit return, but did not see it.
    StartBeforeOwnCommit {
        txn: TxnId,
        start: Version,
        begun_after: Version,
    },
    /// A past read (`snapshot_at`) returned another version than history says.
    WrongPastRead {
        at: Version,
        key: usize,
        seen: (Version, Option<i64>),
        expected: (Version, Option<i64>),
    },
    Error {
        txn: TxnId,
        what: String,
    },
    FinalState {
        key: usize,
        engine: String,
        expected: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// The committed writes, indexed for the checks.
struct Committed {
    /// Per key: (commit version, value or tombstone), ascending.
    writes: Vec<Vec<(Version, Option<i64>)>>,
}

impl Committed {
    fn new(history: &[TxnRecord]) -> Committed {
        let mut writes = vec![Vec::new(); KEYS.len()];
        for t in history {
            let Outcome::Committed(v) = t.outcome else {
                continue;
            };
            for (k, value) in final_writes(t) {
                writes[k].push((v, value));
            }
        }
        for w in &mut writes {
            w.sort_by_key(|(v, _)| *v);
        }
        Committed { writes }
    }

    /// The newest committed (version, value) of `key` at or below `at`; (0, None) if none.
    fn at(&self, key: usize, at: Version) -> (Version, Option<i64>) {
        let w = &self.writes[key];
        let i = w.partition_point(|(v, _)| *v <= at);
        if i == 0 { (0, None) } else { w[i - 1] }
    }

    /// The first committed write of `key` in `(after, upto)`, if any.
    fn changed_between(&self, key: usize, after: Version, upto: Version) -> Option<Version> {
        self.writes[key]
            .iter()
            .map(|(v, _)| *v)
            .find(|v| *v > after && *v < upto)
    }
}

/// A transaction's writes as they stood when it finished (last write per key wins).
fn final_writes(t: &TxnRecord) -> BTreeMap<usize, Option<i64>> {
    let mut own = BTreeMap::new();
    for op in &t.ops {
        match op {
            Op::Put { key, value } => {
                own.insert(*key, Some(*value));
            }
            Op::Delete { key } => {
                own.insert(*key, None);
            }
            _ => {}
        }
    }
    own
}

fn check(history: &[TxnRecord]) -> Vec<Violation> {
    let committed = Committed::new(history);
    let mut out = check_dense(history);
    for t in history {
        if t.start < t.begun_after {
            out.push(Violation::StartBeforeOwnCommit {
                txn: t.id,
                start: t.start,
                begun_after: t.begun_after,
            });
        }
        check_reads(t, &committed, &mut out);
        if t.isolation == Isolation::Serializable {
            check_serializable(t, &committed, &mut out);
        }
    }
    check_write_write(history, &mut out);
    out
}

fn check_dense(history: &[TxnRecord]) -> Vec<Violation> {
    let mut versions: Vec<Version> = history
        .iter()
        .filter_map(|t| match t.outcome {
            Outcome::Committed(v) => Some(v),
            _ => None,
        })
        .collect();
    versions.sort_unstable();
    let dense = versions
        .iter()
        .enumerate()
        .all(|(i, v)| *v == i as Version + 1);
    if dense {
        Vec::new()
    } else {
        vec![Violation::VersionsNotDense { versions }]
    }
}

/// Every get and scan saw the transaction's own writes or the committed state at its start.
fn check_reads(t: &TxnRecord, committed: &Committed, out: &mut Vec<Violation>) {
    let mut own: BTreeMap<usize, Option<i64>> = BTreeMap::new();
    let visible = |own: &BTreeMap<usize, Option<i64>>, k: usize| match own.get(&k) {
        Some(v) => (Version::MAX, *v),
        None => committed.at(k, t.start),
    };
    for op in &t.ops {
        match op {
            Op::Put { key, value } => {
                own.insert(*key, Some(*value));
            }
            Op::Delete { key } => {
                own.insert(*key, None);
            }
            Op::Get { key, seen, value } => {
                let expected = visible(&own, *key);
                if (*seen, *value) != expected {
                    out.push(Violation::StaleRead {
                        txn: t.id,
                        key: *key,
                        seen: (*seen, *value),
                        expected,
                    });
                }
            }
            Op::Scan {
                prefix,
                after,
                limit,
                rows,
            } => {
                let expected: Vec<(usize, i64)> = (0..KEYS.len())
                    .filter(|k| {
                        KEYS[*k].starts_with(PREFIXES[*prefix]) && after.is_none_or(|a| *k > a)
                    })
                    .filter_map(|k| visible(&own, k).1.map(|v| (k, v)))
                    .take(*limit)
                    .collect();
                if *rows != expected {
                    out.push(Violation::WrongScan {
                        txn: t.id,
                        prefix: *prefix,
                        got: rows.clone(),
                        expected,
                    });
                }
            }
            Op::Failed { what } => out.push(Violation::Error {
                txn: t.id,
                what: what.clone(),
            }),
        }
    }
}

/// A committed Serializable transaction's reads and scanned ranges were not overwritten
/// between its start and its commit.
fn check_serializable(t: &TxnRecord, committed: &Committed, out: &mut Vec<Violation>) {
    let Outcome::Committed(commit) = t.outcome else {
        return;
    };
    let mut own = HashSet::new();
    let mut observed = BTreeSet::new();
    for op in &t.ops {
        match op {
            Op::Put { key, .. } | Op::Delete { key } => {
                own.insert(*key);
            }
            Op::Get { key, .. } if !own.contains(key) => {
                observed.insert(*key);
            }
            Op::Scan {
                prefix,
                after,
                limit,
                rows,
            } => {
                // The range the scan observed: the prefix after `after`, up to the last row
                // returned if the limit cut it short.
                let last = if rows.len() >= *limit {
                    rows.last().map(|(k, _)| *k)
                } else {
                    None
                };
                for (k, user) in KEYS.iter().enumerate() {
                    let in_range = user.starts_with(PREFIXES[*prefix])
                        && after.is_none_or(|a| k > a)
                        && last.is_none_or(|l| k <= l);
                    if in_range && !own.contains(&k) {
                        observed.insert(k);
                    }
                }
            }
            _ => {}
        }
    }
    for key in observed {
        if let Some(at) = committed.changed_between(key, t.start, commit) {
            out.push(Violation::ReadChanged {
                txn: t.id,
                key,
                start: t.start,
                overwritten_at: at,
                commit,
            });
        }
    }
}

/// No two committed transactions with overlapping `[start, commit]` wrote the same key. For
/// writers of a key in commit order it suffices to check neighbours: if a later writer started
/// before an earlier one committed, it also started before its direct predecessor committed.
fn check_write_write(history: &[TxnRecord], out: &mut Vec<Violation>) {
    let mut per_key: HashMap<usize, Vec<(Version, Version, TxnId)>> = HashMap::new();
    for t in history {
        let Outcome::Committed(commit) = t.outcome else {
            continue;
        };
        for k in final_writes(t).into_keys() {
            per_key.entry(k).or_default().push((commit, t.start, t.id));
        }
    }
    for (key, mut writers) in per_key {
        writers.sort_unstable();
        for pair in writers.windows(2) {
            let (first_commit, _, first) = pair[0];
            let (_, second_start, second) = pair[1];
            if second_start < first_commit {
                out.push(Violation::ConcurrentWrites { key, first, second });
            }
        }
    }
}

/// The engine's final state and chains hold exactly the committed writes.
fn check_final(engine: &Engine, history: &[TxnRecord], full_chains: bool) -> Vec<Violation> {
    let committed = Committed::new(history);
    let visible = engine.visible_version();
    let snap = engine.snapshot();
    let mut out = Vec::new();
    for (i, user) in KEYS.iter().enumerate() {
        let (value, version) = snap.get_versioned(&key(user)).unwrap();
        let got = (version, value.map(|v| v.as_i64().unwrap()));
        let expected = committed.at(i, visible);
        if got != expected {
            out.push(Violation::FinalState {
                key: i,
                engine: format!("{got:?}"),
                expected: format!("{expected:?}"),
            });
        }
        if full_chains {
            let chain: Vec<(Version, Option<i64>)> = engine
                .history(&key(user), Version::MAX)
                .into_iter()
                .rev()
                .map(|(v, _, value)| (v, value.map(|x| x.as_i64().unwrap())))
                .collect();
            // Up to the visible version: a recovered engine may hold a prefix of the history.
            let expected: Vec<_> = committed.writes[i]
                .iter()
                .copied()
                .filter(|(v, _)| *v <= visible)
                .collect();
            if chain != expected {
                out.push(Violation::FinalState {
                    key: i,
                    engine: format!("{chain:?}"),
                    expected: format!("{expected:?}"),
                });
            }
        }
    }
    out
}

#[derive(Clone, Copy)]
struct Workload {
    seed: u64,
    threads: usize,
    txns_per_thread: usize,
    /// None: each transaction picks Snapshot or Serializable at random.
    isolation: Option<Isolation>,
    /// Make about one transaction in four a locked one
    /// (`Engine::transaction_locked`), checked as serializable.
    locked: bool,
}

/// Write every key once (version 1), so reads have something to see from the start.
fn setup(engine: &Engine) -> TxnRecord {
    let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
    let mut ops = Vec::new();
    for (k, user) in KEYS.iter().enumerate() {
        let value = k as i64;
        txn.put(key(user), value).unwrap();
        ops.push(Op::Put { key: k, value });
    }
    let v = txn.commit().unwrap();
    TxnRecord {
        id: (usize::MAX, 0),
        isolation: Isolation::Snapshot,
        start: 0,
        begun_after: 0,
        ops,
        outcome: Outcome::Committed(v),
        locked: false,
    }
}

fn run(engine: &Engine, w: Workload) -> Vec<TxnRecord> {
    let mut history = vec![setup(engine)];
    let handles: Vec<_> = (0..w.threads)
        .map(|thread| {
            let engine = engine.clone();
            std::thread::spawn(move || worker(&engine, w, thread))
        })
        .collect();
    for h in handles {
        history.extend(h.join().unwrap());
    }
    history
}

struct Open {
    txn: Transaction,
    rec: TxnRecord,
}

fn worker(engine: &Engine, w: Workload, thread: usize) -> Vec<TxnRecord> {
    let mut rng =
        fastrand::Rng::with_seed(w.seed.wrapping_mul(1_000_003).wrapping_add(thread as u64));
    let mut open: Vec<Open> = Vec::new();
    let mut done: Vec<TxnRecord> = Vec::new();
    let mut begun = 0;
    let mut last_commit = 0;
    let mut next_value = (thread as i64 + 1) << 40;
    while done.len() < w.txns_per_thread {
        let can_begin = begun < w.txns_per_thread && open.len() < OPEN_MAX;
        if can_begin && w.locked && rng.u8(..4) == 0 {
            next_value += OPS_MAX as i64;
            let rec = locked_txn(engine, &mut rng, (thread, begun), last_commit, next_value);
            if let Outcome::Committed(v) = rec.outcome {
                last_commit = v;
            }
            done.push(rec);
            begun += 1;
            continue;
        }
        if can_begin && (open.is_empty() || rng.u8(..4) == 0) {
            let isolation = w.isolation.unwrap_or(if rng.bool() {
                Isolation::Snapshot
            } else {
                Isolation::Serializable
            });
            let txn = engine.begin(RunId::NIL, isolation);
            let rec = TxnRecord {
                id: (thread, begun),
                isolation,
                start: txn.start_version(),
                begun_after: last_commit,
                ops: Vec::new(),
                outcome: Outcome::RolledBack,
                locked: false,
            };
            open.push(Open { txn, rec });
            begun += 1;
            continue;
        }
        let i = rng.usize(..open.len());
        let o = &mut open[i];
        let finish = rng.u8(..8) == 0 || o.rec.ops.len() >= OPS_MAX;
        if finish {
            let o = open.swap_remove(i);
            let rec = finish_txn(o, &mut rng);
            if let Outcome::Committed(v) = rec.outcome {
                last_commit = v;
            }
            done.push(rec);
        } else {
            next_value += 1;
            step(o, &mut rng, next_value);
        }
        if rng.u8(..16) == 0 {
            std::thread::yield_now();
        }
    }
    done
}

/// One locked transaction of up to `OPS_MAX` random operations (values
/// from `values_end - OPS_MAX`, exclusive of `values_end`), recorded as a
/// serializable transaction starting at the version its reads saw; one in
/// ten returns an error from its closure (nothing installed: rolled back).
fn locked_txn(
    engine: &Engine,
    rng: &mut fastrand::Rng,
    id: TxnId,
    begun_after: Version,
    values_end: i64,
) -> TxnRecord {
    let ops_count = rng.usize(1..=OPS_MAX);
    let fail = rng.u8(..10) == 0;
    let mut rec = TxnRecord {
        id,
        isolation: Isolation::Serializable,
        start: 0,
        begun_after,
        ops: Vec::new(),
        outcome: Outcome::RolledBack,
        locked: true,
    };
    let result = engine.transaction_locked(RunId::NIL, |txn| {
        rec.start = txn.start_version();
        for i in 0..ops_count {
            step_on(
                txn,
                &mut rec.ops,
                rng,
                values_end - OPS_MAX as i64 + i as i64,
            );
        }
        if fail {
            return Err(rewinddb_engine::Error::InvalidArgument(
                "rolled back".into(),
            ));
        }
        Ok(())
    });
    rec.outcome = match result {
        Ok(((), v)) if final_writes(&rec).is_empty() => {
            assert_eq!(
                v, rec.start,
                "a read-only locked transaction returns its start"
            );
            Outcome::ReadOnly
        }
        Ok(((), v)) => Outcome::Committed(v),
        Err(rewinddb_engine::Error::InvalidArgument(_)) if fail => Outcome::RolledBack,
        Err(e) => panic!("a locked transaction failed: {e}"),
    };
    rec
}

/// One random operation on an open transaction, recorded.
fn step(o: &mut Open, rng: &mut fastrand::Rng, fresh_value: i64) {
    step_on(&mut o.txn, &mut o.rec.ops, rng, fresh_value);
}

/// One random operation on `txn`, recorded in `ops`.
fn step_on(txn: &mut Transaction, ops: &mut Vec<Op>, rng: &mut fastrand::Rng, fresh_value: i64) {
    let k = rng.usize(..KEYS.len());
    let op = match rng.u8(..10) {
        0..=3 => match txn.get_versioned(&key(KEYS[k])) {
            Ok((value, seen)) => Op::Get {
                key: k,
                seen,
                value: value.map(|v| v.as_i64().unwrap()),
            },
            Err(e) => Op::Failed {
                what: format!("get: {e}"),
            },
        },
        4 => {
            let prefix = rng.usize(..PREFIXES.len());
            let after = rng.bool().then(|| rng.usize(..KEYS.len()));
            let limit = rng.usize(1..=KEYS.len());
            let after_key = after.map(|a| key(KEYS[a]));
            match txn.scan(&key(PREFIXES[prefix]), after_key.as_ref(), limit) {
                Ok(rows) => Op::Scan {
                    prefix,
                    after,
                    limit,
                    rows: rows
                        .iter()
                        .map(|(k, v)| (key_index(k), v.as_i64().unwrap()))
                        .collect(),
                },
                Err(e) => Op::Failed {
                    what: format!("scan: {e}"),
                },
            }
        }
        5..=8 => {
            txn.put(key(KEYS[k]), fresh_value).unwrap();
            Op::Put {
                key: k,
                value: fresh_value,
            }
        }
        _ => {
            txn.delete(key(KEYS[k])).unwrap();
            Op::Delete { key: k }
        }
    };
    ops.push(op);
}

fn finish_txn(mut o: Open, rng: &mut fastrand::Rng) -> TxnRecord {
    o.rec.outcome = if rng.u8(..20) == 0 {
        o.txn.rollback().unwrap();
        Outcome::RolledBack
    } else {
        match o.txn.commit() {
            Ok(v) if o.txn.write_count() == 0 && final_writes(&o.rec).is_empty() => {
                assert_eq!(
                    v, o.rec.start,
                    "a read-only commit returns its start version"
                );
                Outcome::ReadOnly
            }
            Ok(v) => Outcome::Committed(v),
            Err(e) if e.is_conflict() => Outcome::Conflict,
            Err(e) => panic!("commit failed with a non-conflict error: {e}"),
        }
    };
    o.rec
}

fn summary(history: &[TxnRecord]) -> String {
    let count = |f: fn(&Outcome) -> bool| history.iter().filter(|t| f(&t.outcome)).count();
    format!(
        "{} txns: {} committed, {} read-only, {} conflicts, {} rolled back",
        history.len(),
        count(|o| matches!(o, Outcome::Committed(_))),
        count(|o| matches!(o, Outcome::ReadOnly)),
        count(|o| matches!(o, Outcome::Conflict)),
        count(|o| matches!(o, Outcome::RolledBack)),
    )
}

fn assert_clean(engine: &Engine, history: &[TxnRecord], full_chains: bool) {
    eprintln!("{}", summary(history));
    let mut violations = check(history);
    violations.extend(check_final(engine, history, full_chains));
    let shown: Vec<String> = violations.iter().take(5).map(ToString::to_string).collect();
    assert!(
        violations.is_empty(),
        "{} violations ({}), first: {shown:#?}",
        violations.len(),
        summary(history)
    );
    // The workload must actually have exercised both commits and conflicts.
    assert!(
        history
            .iter()
            .filter(|t| matches!(t.outcome, Outcome::Committed(_)))
            .count()
            > 100,
        "{}",
        summary(history)
    );
    assert!(
        history.iter().any(|t| t.outcome == Outcome::Conflict),
        "{}",
        summary(history)
    );
}

fn engine() -> Engine {
    Engine::open_in_memory(EngineConfig::default()).unwrap()
}

#[test]
fn snapshot_isolation_histories_are_clean() {
    for (seed, threads) in [(1, 2), (2, 3), (3, 4)] {
        let engine = engine();
        let w = Workload {
            seed,
            threads,
            txns_per_thread: 1500,
            isolation: Some(Isolation::Snapshot),
            locked: false,
        };
        let history = run(&engine, w);
        assert_clean(&engine, &history, true);
    }
}

#[test]
fn serializable_histories_are_clean() {
    for (seed, threads) in [(11, 2), (12, 3), (13, 4)] {
        let engine = engine();
        let w = Workload {
            seed,
            threads,
            txns_per_thread: 1500,
            isolation: Some(Isolation::Serializable),
            locked: false,
        };
        let history = run(&engine, w);
        assert_clean(&engine, &history, true);
    }
}

#[test]
fn mixed_isolation_histories_are_clean() {
    for (seed, threads) in [(21, 2), (22, 4)] {
        let engine = engine();
        let w = Workload {
            seed,
            threads,
            txns_per_thread: 1500,
            isolation: None,
            locked: false,
        };
        let history = run(&engine, w);
        assert_clean(&engine, &history, true);
    }
}

/// A read through `snapshot_at` of the past: `Some((version, value))`, or `None` for
/// `HistoryPruned`.
struct PastRead {
    at: Version,
    key: usize,
    seen: Option<(Version, Option<i64>)>,
}

/// Until `stop`, read random keys at random past versions while GC unlinks history. Returns
/// the reads and how many `snapshot_at` calls were refused as outside retention.
fn time_traveller(engine: &Engine, stop: &AtomicBool, seed: u64) -> (Vec<PastRead>, usize) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut reads = Vec::new();
    let mut refused = 0;
    while !stop.load(Ordering::Relaxed) {
        let at = rng.u64(0..=engine.visible_version());
        let snap = match engine.snapshot_at(at) {
            Ok(snap) => snap,
            Err(rewinddb_engine::Error::VersionOutsideRetention { .. }) => {
                refused += 1;
                continue;
            }
            Err(e) => panic!("snapshot_at({at}): {e}"),
        };
        for _ in 0..2 {
            let k = rng.usize(..KEYS.len());
            let seen = match snap.get_versioned(&key(KEYS[k])) {
                Ok((value, version)) => Some((version, value.map(|v| v.as_i64().unwrap()))),
                Err(rewinddb_engine::Error::HistoryPruned { .. }) => None,
                Err(e) => panic!("past read failed: {e}"),
            };
            reads.push(PastRead { at, key: k, seen });
        }
    }
    (reads, refused)
}

/// Every past read that answered matches the committed history at its version.
fn check_past_reads(history: &[TxnRecord], reads: &[PastRead]) -> Vec<Violation> {
    let committed = Committed::new(history);
    reads
        .iter()
        .filter_map(|r| {
            let seen = r.seen?;
            let expected = committed.at(r.key, r.at);
            (seen != expected).then_some(Violation::WrongPastRead {
                at: r.at,
                key: r.key,
                seen,
                expected,
            })
        })
        .collect()
}

// GC runs all the time: no read of a live transaction may fail with `HistoryPruned` or see a
// wrong version. A time traveller reads the past through `snapshot_at` meanwhile: each of its
// reads either returns exactly what history says (never "absent" for a pruned value) or, under
// `Versions(1)`, fails with `HistoryPruned`. Under a `Window`, `snapshot_at` refuses versions
// behind the floor instead, and a snapshot it grants never meets pruned history.
#[test]
fn histories_stay_clean_under_concurrent_gc() {
    let window = Retention::Window(Duration::from_millis(2));
    for (seed, threads, retention) in [
        (31, 2, Retention::Versions(1)),
        (32, 3, Retention::Versions(1)),
        (33, 2, window),
    ] {
        let engine = Engine::open_in_memory(EngineConfig::default().retention(retention)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let gc = {
            let (engine, stop) = (engine.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut unlinked = 0;
                while !stop.load(Ordering::Relaxed) {
                    unlinked += engine.gc().unwrap().unlinked;
                    std::thread::yield_now();
                }
                unlinked
            })
        };
        let traveller = {
            let (engine, stop) = (engine.clone(), Arc::clone(&stop));
            std::thread::spawn(move || time_traveller(&engine, &stop, seed))
        };
        let w = Workload {
            seed,
            threads,
            txns_per_thread: 1500,
            isolation: None,
            locked: false,
        };
        let history = run(&engine, w);
        stop.store(true, Ordering::Relaxed);
        let unlinked = gc.join().unwrap();
        let (past, refused) = traveller.join().unwrap();
        assert_clean(&engine, &history, false);
        let wrong = check_past_reads(&history, &past);
        assert!(
            wrong.is_empty(),
            "{} wrong past reads, first: {:?}",
            wrong.len(),
            wrong.first()
        );
        let pruned = past.iter().filter(|r| r.seen.is_none()).count();
        eprintln!(
            "{retention:?}: {} past reads, {pruned} pruned, {refused} refused; GC unlinked {unlinked}",
            past.len()
        );
        assert!(
            unlinked > 0,
            "GC never unlinked anything; the test proved nothing"
        );
        if retention == window {
            assert_eq!(pruned, 0, "a snapshot inside the window met pruned history");
        } else {
            assert!(
                pruned > 0 && pruned < past.len(),
                "past reads must meet both kept and pruned history"
            );
        }
    }
}

// Locked transactions (about one in four) among optimistic ones of both levels: their reads
// are the newest committed state, and no optimistic transaction that overlaps one and wrote
// a key it wrote (or read a key it wrote, under Serializable) commits.
#[test]
fn histories_with_locked_transactions_are_clean() {
    for (seed, threads) in [(31, 2), (32, 4)] {
        let engine = engine();
        let w = Workload {
            seed,
            threads,
            txns_per_thread: 1500,
            isolation: None,
            locked: true,
        };
        let history = run(&engine, w);
        assert_clean(&engine, &history, true);
        // Locked transactions did commit, each right after the version it read at.
        let locked: Vec<_> = history.iter().filter(|t| t.locked).collect();
        let committed = locked
            .iter()
            .filter_map(|t| match t.outcome {
                Outcome::Committed(v) => Some((t.start, v)),
                _ => None,
            })
            .inspect(|(start, v)| assert_eq!(start + 1, *v))
            .count();
        assert!(committed > 100, "{committed} of {} locked", locked.len());
    }
}

// The planted bug for locked transactions: releasing the commit lock while the closure runs
// lets other commits in between its reads and its install, which it does not validate.
#[test]
fn checker_catches_locked_transactions_that_release_the_lock() {
    let engine = engine();
    engine.set_unlock_locked_closures(true).unwrap();
    let w = Workload {
        seed: 45,
        threads: 4,
        txns_per_thread: 1500,
        isolation: Some(Isolation::Snapshot),
        locked: true,
    };
    let history = run(&engine, w);
    let violations = check(&history);
    assert!(
        violations.iter().any(|v| matches!(
            v,
            Violation::ConcurrentWrites { .. } | Violation::ReadChanged { .. }
        )),
        "the checker missed unisolated locked transactions: {}",
        summary(&history)
    );
}

// The planted bug: with commit validation switched off, concurrent transactions that write the
// same key both commit. The checker must report it.
#[test]
fn checker_catches_commits_without_validation() {
    let engine = engine();
    engine.set_skip_commit_validation(true).unwrap();
    let w = Workload {
        seed: 41,
        threads: 2,
        txns_per_thread: 1500,
        isolation: Some(Isolation::Snapshot),
        locked: false,
    };
    let history = run(&engine, w);
    let violations = check(&history);
    assert!(
        violations
            .iter()
            .any(|v| matches!(v, Violation::ConcurrentWrites { .. })),
        "the checker missed lost updates: {}",
        summary(&history)
    );
    assert!(
        !history.iter().any(|t| t.outcome == Outcome::Conflict),
        "validation was off, yet a commit conflicted"
    );
}

// The planted bug under Serializable: reads overwritten before commit go unnoticed by the
// engine, and the checker must report them.
#[test]
fn checker_catches_serializable_commits_without_validation() {
    let engine = engine();
    engine.set_skip_commit_validation(true).unwrap();
    let w = Workload {
        seed: 42,
        threads: 2,
        txns_per_thread: 1500,
        isolation: Some(Isolation::Serializable),
        locked: false,
    };
    let history = run(&engine, w);
    let violations = check(&history);
    assert!(
        violations
            .iter()
            .any(|v| matches!(v, Violation::ReadChanged { .. })),
        "{}",
        summary(&history)
    );
    assert!(
        violations
            .iter()
            .any(|v| matches!(v, Violation::ConcurrentWrites { .. })),
        "{}",
        summary(&history)
    );
}

// The hook is per engine and can be switched back: with validation on again, the same engine
// produces clean histories.
#[test]
fn validation_hook_switches_back_on() {
    let engine = engine();
    engine.set_skip_commit_validation(true).unwrap();
    engine.set_skip_commit_validation(false).unwrap();
    let w = Workload {
        seed: 43,
        threads: 2,
        txns_per_thread: 500,
        isolation: Some(Isolation::Snapshot),
        locked: false,
    };
    let history = run(&engine, w);
    assert_clean(&engine, &history, true);
}

// The checker's read check itself: a clean history with one read's version tampered with (as a
// stale read would look) is reported.
#[test]
fn checker_catches_a_stale_read() {
    let engine = engine();
    let w = Workload {
        seed: 44,
        threads: 1,
        txns_per_thread: 300,
        isolation: Some(Isolation::Snapshot),
        locked: false,
    };
    let mut history = run(&engine, w);
    assert!(check(&history).is_empty());
    let (t, op) = history
        .iter()
        .enumerate()
        .find_map(|(t, rec)| {
            let i = rec.ops.iter().position(
                |op| matches!(op, Op::Get { seen, .. } if *seen > 1 && *seen != Version::MAX),
            )?;
            Some((t, i))
        })
        .expect("some read saw a version newer than the setup");
    if let Op::Get { seen, .. } = &mut history[t].ops[op] {
        *seen -= 1;
    }
    let violations = check(&history);
    assert!(
        matches!(violations.as_slice(), [Violation::StaleRead { .. }]),
        "{violations:?}"
    );
}

/// The newest committed version in a history.
fn last_commit(history: &[TxnRecord]) -> Version {
    history
        .iter()
        .filter_map(|t| match t.outcome {
            Outcome::Committed(v) => Some(v),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

fn durable_engine(mode: Durability, storage: &MemStorage) -> Engine {
    let config = EngineConfig::default().durability(mode);
    Engine::open_with_storage(config, Arc::new(storage.clone())).unwrap()
}

fn assert_recovers(engine: &Engine, history: &[TxnRecord], what: &str) {
    let violations = check_final(engine, history, true);
    assert!(
        violations.is_empty(),
        "{what}: {} violations, first: {:?}",
        violations.len(),
        violations.first()
    );
}

// The same concurrent histories on durable engines (in-memory storage) in every durability
// mode: the group-committed commit path keeps them clean, including the session check (a
// strict commit is visible when it returns). Then the WAL must give the history back:
// - a clean close and reopen recovers every commit, chains and all;
// - a power loss (unsynced bytes and directory changes dropped, or torn) while the engine is
//   open recovers, under `Strict`, every acknowledged commit, and in every mode exactly the
//   history up to some version: never a gap, a partial commit or a foreign value.
#[test]
fn durable_histories_are_clean_and_recover() {
    let modes = [
        Durability::Strict,
        Durability::Batched {
            interval: Duration::from_millis(2),
            bytes: 16 * 1024,
        },
        Durability::Async,
    ];
    for (i, mode) in modes.into_iter().enumerate() {
        let storage = MemStorage::new();
        let engine = durable_engine(mode, &storage);
        let w = Workload {
            seed: 51 + i as u64,
            threads: 3,
            txns_per_thread: 600,
            isolation: None,
            locked: false,
        };
        let history = run(&engine, w);
        // Power loss right as the last commit returned, before anything else can sync.
        let losses = [DataLoss::Dropped, DataLoss::Torn];
        let images = losses.map(|data| (data, storage.crash_image(data, DirLoss::Dropped, 7)));
        assert_clean(&engine, &history, true);
        let last = last_commit(&history);
        for (data, image) in images {
            let recovered = durable_engine(mode, &image);
            let upto = recovered.visible_version();
            eprintln!(
                "{mode:?}, power loss with {data:?} bytes: recovered {upto} of {last} commits"
            );
            assert!(
                upto <= last,
                "{mode:?}/{data:?}: recovered {upto} > last commit {last}"
            );
            if mode == Durability::Strict {
                assert_eq!(
                    upto, last,
                    "{mode:?}/{data:?}: an acknowledged commit was lost"
                );
            }
            assert_recovers(
                &recovered,
                &history,
                &format!("{mode:?} after power loss ({data:?})"),
            );
        }
        drop(engine);
        let reopened = durable_engine(mode, &storage);
        assert_eq!(
            reopened.visible_version(),
            last,
            "{mode:?}: a clean close lost commits"
        );
        assert_recovers(&reopened, &history, &format!("{mode:?} after clean close"));
    }
}
