//! Shared by the simulated crash tests (power_loss.rs, io_faults.rs): a
//! deterministic workload of ~200 transactions spanning two checkpoints on
//! the in-memory storage, and the check that a recovered engine holds
//! exactly a prefix of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rewinddb_engine::durability::MemStorage;
use rewinddb_engine::{
    CheckpointPolicy, Durability, Engine, EngineConfig, Error, Isolation, Key, Namespace, RunId,
    Scope, TypeTag, Value,
};

/// Transactions in the workload.
pub const TXNS: usize = 200;
/// Checkpoints are taken after these transactions (0-based).
pub const CHECKPOINT_AFTER: [usize; 2] = [70, 140];
const KEYS: usize = 7;

/// The modes the crash tests run in.
pub fn modes() -> [Durability; 3] {
    [
        Durability::Strict,
        Durability::Batched {
            interval: Duration::from_secs(3600),
            bytes: 300,
        },
        Durability::Async,
    ]
}

pub fn key(i: usize) -> Key {
    let ns = Namespace::new("crash/model").unwrap();
    Key::new(ns, Scope::Shared, TypeTag::Kv, format!("k{i}"))
}

pub fn run_id(i: usize) -> RunId {
    match i % 3 {
        0 => RunId::NIL,
        r => RunId::from_u128(r as u128),
    }
}

/// What transaction `i` writes, in key order.
pub fn txn_writes(i: usize) -> Vec<(Key, Option<Value>)> {
    let mut w = vec![(
        key(i % KEYS),
        Some(Value::from(format!("{i}:{}", "x".repeat(i % 40)))),
    )];
    if i % 5 == 4 {
        w.push((key((i + 3) % KEYS), None));
    }
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w.dedup_by(|a, b| a.0 == b.0);
    w
}

pub fn config(mode: Durability) -> EngineConfig {
    EngineConfig::default()
        .durability(mode)
        .checkpoint(CheckpointPolicy::MANUAL)
        .wal_segment_size_bytes_max(2048)
        // Segments grow by steps inside, not only when created.
        .wal_preallocate_step_bytes(512)
        .background_threads(false)
}

pub fn open(storage: &MemStorage, mode: Durability) -> Result<Engine, Error> {
    Engine::open_with_storage(config(mode), Arc::new(storage.clone()))
}

/// What a run of the workload observed before it stopped.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Versions of commits that returned `Ok`, in order.
    pub acked: Vec<u64>,
    /// Newest `durable_version()` seen.
    pub durable_seen: u64,
    /// Commit attempts made (attempt j, 1-based, can only get version j).
    pub attempts: usize,
    /// Commit errors, in order, with the transaction index.
    pub errors: Vec<(usize, Error)>,
    /// Checkpoint errors, with the transaction index they followed.
    pub checkpoint_errors: Vec<(usize, Error)>,
    /// True if the open itself failed.
    pub open_failed: bool,
}

/// Run the workload; stop at the first error if `stop_on_error`.
pub fn run(storage: &MemStorage, mode: Durability, stop_on_error: bool) -> Outcome {
    let mut out = Outcome::default();
    let engine = match open(storage, mode) {
        Ok(e) => e,
        Err(_) => {
            out.open_failed = true;
            return out;
        }
    };
    for i in 0..TXNS {
        let mut txn = engine.begin(run_id(i), Isolation::Snapshot);
        for (k, v) in txn_writes(i) {
            match v {
                Some(v) => txn.put(k, v).unwrap(),
                None => txn.delete(k).unwrap(),
            }
        }
        out.attempts += 1;
        match txn.commit() {
            Ok(v) => {
                assert_eq!(v as usize, i + 1, "versions are dense in attempt order");
                out.acked.push(v);
            }
            Err(e) => {
                out.errors.push((i, e));
                if stop_on_error {
                    break;
                }
            }
        }
        out.durable_seen = out.durable_seen.max(engine.durable_version());
        if CHECKPOINT_AFTER.contains(&i) {
            if let Err(e) = engine.checkpoint() {
                out.checkpoint_errors.push((i, e));
                if stop_on_error {
                    break;
                }
            }
            out.durable_seen = out.durable_seen.max(engine.durable_version());
        }
    }
    // Dropping the engine would flush; a crashed process does not.
    std::mem::forget(engine);
    out
}

/// The recovered engine holds exactly the first `visible` transactions,
/// and `visible <= attempts`: nothing invented, nothing applied twice,
/// point-in-time reads and the per-run index intact.
pub fn check_prefix(engine: &Engine, attempts: usize) -> Result<u64, String> {
    let v = engine.visible_version();
    if v as usize > attempts {
        return Err(format!(
            "recovered version {v} but only {attempts} commits were attempted"
        ));
    }
    for k in 0..KEYS {
        let want: Vec<(u64, RunId, Option<Value>)> = (0..v as usize)
            .rev()
            .filter_map(|i| {
                let w = txn_writes(i);
                let hit = w.into_iter().find(|(kk, _)| *kk == key(k))?;
                Some((i as u64 + 1, run_id(i), hit.1))
            })
            .collect();
        let got = engine.history(&key(k), u64::MAX);
        if got != want {
            return Err(format!(
                "key {k} at version {v}: got {got:?}, want {want:?}"
            ));
        }
    }
    for r in 1..3u128 {
        let got: Vec<u64> = engine
            .run_commits(RunId::from_u128(r))
            .unwrap()
            .iter()
            .map(|c| c.version)
            .collect();
        let want: Vec<u64> = (0..v as usize)
            .filter(|&i| run_id(i) == RunId::from_u128(r))
            .map(|i| i as u64 + 1)
            .collect();
        if got != want {
            return Err(format!("run {r}: commits {got:?}, want {want:?}"));
        }
    }
    if v > 0 {
        let mid = v / 2 + 1;
        let i = (mid - 1) as usize;
        let snap = engine.snapshot_at(mid).map_err(|e| e.to_string())?;
        let got = snap.get(&key(i % KEYS)).map_err(|e| e.to_string())?;
        if got
            != txn_writes(i)
                .into_iter()
                .find(|(k, _)| *k == key(i % KEYS))
                .unwrap()
                .1
        {
            return Err(format!("snapshot_at({mid}) reads {got:?}"));
        }
    }
    Ok(v)
}
