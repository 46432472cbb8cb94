//! T3, I/O-error countdown: the workload is run once per storage operation
//! N with exactly the Nth operation failing. Every commit that returned
//! `Ok` survives reopen; once a WAL write or sync failed the engine refuses
//! every later commit with `Error::Poisoned` naming the failure instead of
//! pretending; a failed checkpoint leaves commits working and the
//! database recoverable; a failed open is a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash_support;

use crash_support::{check_prefix, open, run};
use rewinddb_engine::durability::{DataLoss, DirLoss, MemStorage};
use rewinddb_engine::{Durability, Error};

#[test]
fn every_failed_operation_keeps_acknowledged_commits_and_poisons_after_wal_failures() {
    let mode = Durability::Strict;
    let total = {
        let storage = MemStorage::new();
        run(&storage, mode, false);
        storage.ops()
    };
    let mut poisoned_runs = 0;
    for n in 1..=total {
        let storage = MemStorage::new();
        storage.fail_op(n);
        let out = run(&storage, mode, false);
        let ctx = format!("op {n}/{total} failed");
        if out.open_failed {
            continue;
        }
        // Once a WAL operation failed, every later commit is refused as
        // poisoned, naming the failure; the first error is the I/O error.
        let poisoned: Vec<&(usize, Error)> = out
            .errors
            .iter()
            .filter(|(_, e)| matches!(e, Error::Poisoned(_)))
            .collect();
        if let Some((first_poison, _)) = poisoned.first() {
            poisoned_runs += 1;
            assert!(
                out.acked.iter().all(|&v| v as usize <= *first_poison),
                "{ctx}: a commit succeeded after the engine was poisoned"
            );
            assert_eq!(
                out.attempts - 1 - first_poison,
                poisoned.len() - 1,
                "{ctx}: a later commit was not refused"
            );
            for (_, e) in &poisoned {
                assert!(e.to_string().contains("injected failure"), "{ctx}: {e}");
            }
            let first_io = out
                .errors
                .iter()
                .chain(&out.checkpoint_errors)
                .any(|(_, e)| {
                    matches!(e, Error::Io { .. }) && e.to_string().contains("refuses commits")
                });
            assert!(first_io, "{ctx}: poisoned without a reported WAL failure");
        }
        for (data, dir) in [
            (DataLoss::Dropped, DirLoss::Dropped),
            (DataLoss::Kept, DirLoss::Kept),
        ] {
            let image = storage.crash_image(data, dir, n);
            let engine = open(&image, mode).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
            let v = check_prefix(&engine, out.attempts).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let acked = out.acked.last().copied().unwrap_or(0);
            assert!(
                v >= acked,
                "{ctx}, {data:?}: acknowledged {acked}, recovered {v}"
            );
        }
    }
    assert!(
        poisoned_runs > 0,
        "no injected failure ever poisoned the engine"
    );
}

#[test]
fn a_failed_sync_poisons_the_engine_with_a_clear_error() {
    let storage = MemStorage::new();
    let engine = open(&storage, Durability::Strict).unwrap();
    let ns = rewinddb_engine::Namespace::new("t3").unwrap();
    let k = rewinddb_engine::Key::new(
        ns,
        rewinddb_engine::Scope::Shared,
        rewinddb_engine::TypeTag::Kv,
        b"k",
    );
    let mut txn = engine.begin(
        rewinddb_engine::RunId::NIL,
        rewinddb_engine::Isolation::Snapshot,
    );
    txn.put(k.clone(), 1).unwrap();
    txn.commit().unwrap();
    // The next commit does append (op n+1) then sync (op n+2): fail the sync.
    storage.fail_op(storage.ops() + 2);
    let mut txn = engine.begin(
        rewinddb_engine::RunId::NIL,
        rewinddb_engine::Isolation::Snapshot,
    );
    txn.put(k.clone(), 2).unwrap();
    let err = txn.commit().unwrap_err();
    assert!(
        matches!(err, Error::Io { ref context, .. } if context.contains("fdatasync")),
        "{err}"
    );
    // Not visible: it was never durable.
    assert_eq!(engine.visible_version(), 1);
    let mut txn = engine.begin(
        rewinddb_engine::RunId::NIL,
        rewinddb_engine::Isolation::Snapshot,
    );
    txn.put(k, 3).unwrap();
    let err = txn.commit().unwrap_err();
    assert!(
        matches!(err, Error::Poisoned(ref m) if m.contains("fdatasync")),
        "{err}"
    );
    assert!(engine.flush().is_err());
}
