//! Atomicity across primitives: a transaction that fails or conflicts
//! leaves no KV write, no event, no span and no state change behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb::{Database, Error, Isolation, RunId, RunSpec, SpanSpec, Value};

const NS: &str = "acme/bot";

struct Fixture {
    db: Database,
    run: RunId,
}

fn fixture() -> Fixture {
    let db = Database::in_memory().unwrap();
    let run = db.begin_run(RunSpec::new("atomic")).unwrap();
    db.state(NS)
        .define(RunId::NIL, "phase", "idle", None)
        .unwrap();
    Fixture { db, run }
}

/// Nothing of the four writes is visible, and the engine installed nothing.
fn assert_untouched(f: &Fixture, visible_before: u64) {
    let db = &f.db;
    assert_eq!(db.engine().visible_version(), visible_before);
    assert_eq!(db.kv(NS).get("k").unwrap(), None);
    assert_eq!(db.events(NS, f.run).len().unwrap(), 0);
    assert_eq!(db.traces(NS, f.run).len().unwrap(), 0);
    let phase = db.state(NS).read_state("phase").unwrap();
    assert_eq!((phase.value, phase.version), (Value::from("idle"), 1));
}

fn write_all_four(txn: &rewinddb::Transaction) -> rewinddb::Result<()> {
    txn.kv(NS).put("k", 1)?;
    txn.events(NS).append("did", "something")?;
    txn.traces(NS).record(SpanSpec::custom("step", 1))?;
    txn.state(NS).cas("phase", 1, "busy")?;
    Ok(())
}

#[test]
fn a_closure_that_fails_after_writing_everything_commits_nothing() {
    let f = fixture();
    let before = f.db.engine().visible_version();
    let err =
        f.db.transaction(f.run, |txn| {
            write_all_four(txn)?;
            Err::<(), _>(Error::InvalidArgument("the agent changed its mind".into()))
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert_untouched(&f, before);
}

#[test]
fn an_oversized_last_write_undoes_the_earlier_ones() {
    let f = fixture();
    let before = f.db.engine().visible_version();
    let huge = Value::from(vec![0u8; 2 << 20]);
    let err =
        f.db.transaction(f.run, |txn| {
            write_all_four(txn)?;
            txn.events(NS).append("too.big", huge.clone())
        })
        .unwrap_err();
    assert!(err.to_string().contains("value_size_bytes_max"), "{err}");
    assert_untouched(&f, before);
}

#[test]
fn a_conflicting_explicit_transaction_commits_nothing() {
    let f = fixture();
    let txn = f.db.begin(f.run, Isolation::Snapshot).unwrap();
    write_all_four(&txn).unwrap();
    // Another writer moves the state machine first: first committer wins.
    f.db.state(NS).cas(RunId::NIL, "phase", 1, "busy").unwrap();
    let before = f.db.engine().visible_version();
    let err = txn.commit().unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(f.db.engine().visible_version(), before);
    assert_eq!(f.db.kv(NS).get("k").unwrap(), None);
    assert_eq!(f.db.events(NS, f.run).len().unwrap(), 0);
    assert_eq!(f.db.traces(NS, f.run).len().unwrap(), 0);
    assert_eq!(f.db.state(NS).read_state("phase").unwrap().version, 2);
}

#[test]
fn a_rolled_back_transaction_commits_nothing() {
    let f = fixture();
    let before = f.db.engine().visible_version();
    let txn = f.db.begin(f.run, Isolation::Serializable).unwrap();
    write_all_four(&txn).unwrap();
    // Inside, the transaction sees its own writes.
    assert_eq!(txn.events(NS).len().unwrap(), 1);
    assert_eq!(txn.state(NS).read_state("phase").unwrap().version, 2);
    txn.rollback().unwrap();
    assert_untouched(&f, before);
}

#[test]
fn a_committed_transaction_shows_all_four_at_one_version() {
    let f = fixture();
    let ((), v) = f.db.transaction_versioned(f.run, write_all_four).unwrap();
    let before = f.db.snapshot_at(v - 1).unwrap();
    let after = f.db.snapshot_at(v).unwrap();
    assert_eq!(before.kv(NS).get("k").unwrap(), None);
    assert_eq!(before.events(NS, f.run).len().unwrap(), 0);
    assert_eq!(after.kv(NS).get("k").unwrap(), Some(Value::Int(1)));
    assert_eq!(after.events(NS, f.run).len().unwrap(), 1);
    assert_eq!(after.traces(NS, f.run).len().unwrap(), 1);
    assert_eq!(after.state(NS).read_state("phase").unwrap().version, 2);
}

#[test]
fn a_transition_closure_may_ask_its_transaction_for_run_and_version() {
    // The closure runs while the transaction is busy: reading plain
    // properties works, using the transaction again is an error, not a panic.
    let f = fixture();
    let txn = f.db.begin(f.run, Isolation::Snapshot).unwrap();
    let start = txn.start_version();
    let moved = txn.state(NS).transition("phase", |_| {
        assert_eq!((txn.run(), txn.start_version()), (f.run, start));
        assert!(txn.kv(NS).get("k").is_err());
        "busy"
    });
    assert_eq!(moved.unwrap().version, 2);
    txn.commit().unwrap();
}
