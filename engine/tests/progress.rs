//! Progress reports of long work (`EngineConfig::progress`): opening a
//! durable database reports the checkpoint it decodes, then each WAL
//! segment in order (with the checkpoint's installation reported beside
//! them), then `Opened` with the recovered version and key count;
//! checkpoints, installing a checkpoint and GC passes report every
//! `PROGRESS_STEP_KEYS` keys and once at the end; an observer that panics
//! fails nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use rewinddb_engine::durability::MemStorage;
use rewinddb_engine::{
    CheckpointPolicy, Durability, Engine, EngineConfig, Isolation, Key, Namespace,
    PROGRESS_STEP_KEYS, Progress, Retention, RunId, Scope, TypeTag, Version,
};

type Log = Arc<Mutex<Vec<Progress>>>;

/// A durable config on small WAL segments (so a few thousand strict
/// writes span several: a segment rotates when a flush passes its size),
/// with no background threads (nothing reports on its own).
fn config() -> EngineConfig {
    EngineConfig::default()
        .durability(Durability::Strict)
        .checkpoint(CheckpointPolicy::MANUAL)
        .wal_segment_size_bytes_max(64 << 10)
        .wal_preallocate_step_bytes(16 << 10)
        .background_threads(false)
}

fn observed(config: EngineConfig) -> (EngineConfig, Log) {
    let log = Log::default();
    let sink = Arc::clone(&log);
    let config = config.progress(move |p| sink.lock().unwrap().push(p.clone()));
    (config, log)
}

fn key(i: u64) -> Key {
    let ns = Namespace::new("progress").unwrap();
    Key::new(ns, Scope::Shared, TypeTag::Kv, i.to_be_bytes())
}

/// Write keys `from..to` (100-byte values), `per_txn` to a commit.
fn write(engine: &Engine, from: u64, to: u64, per_txn: u64) -> Version {
    let mut last = 0;
    let mut i = from;
    while i < to {
        let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
        for k in i..(i + per_txn).min(to) {
            txn.put(key(k), vec![7u8; 100]).unwrap();
        }
        last = txn.commit().unwrap();
        i += per_txn;
    }
    last
}

#[test]
fn opening_reports_the_checkpoint_each_wal_segment_then_opened() {
    let storage = Arc::new(MemStorage::new());
    let (fresh, log) = observed(config());
    let engine = Engine::open_with_storage(fresh, storage.clone()).unwrap();
    // An empty directory: nothing to read, only the end.
    assert_eq!(
        *log.lock().unwrap(),
        vec![Progress::Opened {
            version: 0,
            keys: 0
        }]
    );
    write(&engine, 0, 1000, 100);
    let checkpointed = engine.checkpoint().unwrap();
    let last = write(&engine, 1000, 4000, 10);
    engine.close().unwrap();

    let (reopen, log) = observed(config());
    let engine = Engine::open_with_storage(reopen, storage).unwrap();
    // The checkpoint's installation runs beside the WAL's decoding.
    let (installing, log): (Vec<Progress>, Vec<Progress>) = log
        .lock()
        .unwrap()
        .iter()
        .cloned()
        .partition(|p| matches!(p, Progress::OpenCheckpointKeys { .. }));
    assert_eq!(
        installing,
        vec![Progress::OpenCheckpointKeys {
            version: checkpointed,
            keys_done: 1000,
            keys_total: 1000
        }]
    );
    let Some((
        Progress::OpenCheckpoint { version, bytes },
        [
            wal @ ..,
            Progress::Opened {
                version: opened,
                keys,
            },
        ],
    )) = log.split_first().map(|(first, rest)| (first.clone(), rest))
    else {
        panic!("not checkpoint, segments, opened: {log:?}");
    };
    assert_eq!(version, checkpointed);
    assert!(bytes > 1000 * 100, "checkpoint of {bytes} bytes");
    assert_eq!((*opened, *keys), (last, 4000));
    assert_eq!(engine.visible_version(), last);
    // One report per segment, counted from 1, all of the same total,
    // versions never going back, the last one at the end of the WAL.
    assert!(wal.len() >= 3, "{wal:?}");
    let mut newest = checkpointed;
    for (n, report) in wal.iter().enumerate() {
        let Progress::OpenWal {
            segments_done,
            segments_total,
            version,
        } = report
        else {
            panic!("not a WAL report: {report:?}");
        };
        assert_eq!((*segments_done, *segments_total), (n + 1, wal.len()));
        assert!(*version >= newest, "{wal:?}");
        newest = *version;
    }
    assert_eq!(newest, last);
}

#[test]
fn checkpoints_and_gc_report_every_step_and_at_the_end() {
    let total = 2 * PROGRESS_STEP_KEYS + 5;
    let config = config().retention(Retention::Versions(1));
    let (observing, log) = observed(config.clone());
    let storage = Arc::new(MemStorage::new());
    let engine = Engine::open_with_storage(observing, storage.clone()).unwrap();
    write(&engine, 0, total, 10_000);
    log.lock().unwrap().clear();

    let version = engine.checkpoint().unwrap();
    let steps = [PROGRESS_STEP_KEYS, 2 * PROGRESS_STEP_KEYS, total];
    let expected: Vec<Progress> = steps
        .iter()
        .map(|&keys_done| Progress::Checkpoint {
            version,
            keys_done,
            keys_total: total,
        })
        .collect();
    assert_eq!(std::mem::take(&mut *log.lock().unwrap()), expected);

    let stats = engine.gc().unwrap();
    assert_eq!(stats.chains as u64, total);
    let expected: Vec<Progress> = steps
        .iter()
        .map(|&keys_done| Progress::Gc {
            keys_done,
            keys_total: total,
        })
        .collect();
    assert_eq!(std::mem::take(&mut *log.lock().unwrap()), expected);

    // Reopening installs the checkpoint's keys, reporting likewise.
    let (config, log) = observed(config);
    engine.close().unwrap();
    Engine::open_with_storage(config, storage).unwrap();
    let installing: Vec<Progress> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|p| matches!(p, Progress::OpenCheckpointKeys { .. }))
        .cloned()
        .collect();
    let expected: Vec<Progress> = steps
        .iter()
        .map(|&keys_done| Progress::OpenCheckpointKeys {
            version,
            keys_done,
            keys_total: total,
        })
        .collect();
    assert_eq!(installing, expected);
}

#[test]
fn a_config_with_an_observer_still_prints() {
    let (config, _) = observed(config());
    assert!(format!("{config:?}").contains("progress: Some(ProgressObserver(..))"));
    assert!(format!("{:?}", EngineConfig::default()).contains("progress: None"));
}

#[test]
fn gc_under_keep_all_visits_nothing_and_reports_nothing() {
    let (config, log) = observed(config());
    let engine = Engine::open_with_storage(config, Arc::new(MemStorage::new())).unwrap();
    write(&engine, 0, 100, 100);
    log.lock().unwrap().clear();
    assert_eq!(engine.gc().unwrap().chains, 0);
    assert_eq!(*log.lock().unwrap(), vec![]);
}

#[test]
fn an_observer_that_panics_fails_nothing() {
    let storage = Arc::new(MemStorage::new());
    let panicking = || {
        config()
            .retention(Retention::Versions(1))
            .progress(|p| panic!("observer refuses {p:?}"))
    };
    let engine = Engine::open_with_storage(panicking(), storage.clone()).unwrap();
    let last = write(&engine, 0, PROGRESS_STEP_KEYS + 1, 10_000);
    engine.checkpoint().unwrap();
    engine.gc().unwrap();
    engine.close().unwrap();
    let engine = Engine::open_with_storage(panicking(), storage).unwrap();
    assert_eq!(engine.visible_version(), last);
    assert_eq!(engine.stats().keys as u64, PROGRESS_STEP_KEYS + 1);
}
