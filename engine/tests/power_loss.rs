//! T2, simulated power loss: the workload (~200 transactions spanning two
//! checkpoints) is crashed at every storage operation (write, sync,
//! rename, remove, ...) in each durability mode; the image a power loss
//! would leave is built with every damage variant of unsynced data
//! (dropped, torn at 512 B sectors, replaced by garbage, kept) and of
//! unsynced directory entries (lost, kept), and reopened.
//! Strict: no acknowledged commit is lost. Batched: only commits after the
//! last sync may be missing. Async: a prefix. Always: nothing invented,
//! nothing applied twice, history and run index intact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash_support;

use crash_support::{check_prefix, modes, open, run};
use rewinddb_engine::Durability;
use rewinddb_engine::durability::{DataLoss, DirLoss, MemStorage};

fn crash_everywhere(mode: Durability) {
    let total = {
        let storage = MemStorage::new();
        let out = run(&storage, mode, true);
        assert!(out.errors.is_empty(), "{mode:?}: {:?}", out.errors);
        assert!(
            out.checkpoint_errors.is_empty(),
            "{mode:?}: {:?}",
            out.checkpoint_errors
        );
        storage.ops()
    };
    let mut recoveries = 0;
    for crash_at in 1..=total + 1 {
        let storage = MemStorage::new();
        storage.crash_at_op(crash_at);
        let out = run(&storage, mode, true);
        for data in [
            DataLoss::Dropped,
            DataLoss::Torn,
            DataLoss::Garbage,
            DataLoss::Kept,
        ] {
            for dir in [DirLoss::Dropped, DirLoss::Kept] {
                let image = storage.crash_image(data, dir, crash_at);
                let ctx =
                    format!("{mode:?}, crash at op {crash_at}/{total}, {data:?}, dir {dir:?}");
                let engine = open(&image, mode).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
                let v =
                    check_prefix(&engine, out.attempts).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                assert!(
                    v >= out.durable_seen,
                    "{ctx}: lost durable version {}",
                    out.durable_seen
                );
                if mode == Durability::Strict {
                    let acked = out.acked.last().copied().unwrap_or(0);
                    assert!(v >= acked, "{ctx}: acknowledged {acked}, recovered {v}");
                }
                recoveries += 1;
                // The recovered database takes new commits and reopens.
                drop(engine);
                let again = open(&image, mode).unwrap_or_else(|e| panic!("{ctx}: 2nd reopen: {e}"));
                assert_eq!(again.visible_version(), v, "{ctx}: second recovery differs");
            }
        }
    }
    assert!(recoveries >= 8 * total as usize);
}

#[test]
fn strict_loses_no_acknowledged_commit_at_any_crash_point() {
    crash_everywhere(Durability::Strict);
}

#[test]
fn batched_loses_at_most_the_unsynced_window() {
    crash_everywhere(modes()[1]);
}

#[test]
fn async_recovers_a_prefix_at_any_crash_point() {
    crash_everywhere(Durability::Async);
}
