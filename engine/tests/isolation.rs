//! Guards the isolation levels: Hermitage-style anomalies (G0, G1a, G1b, G1c, OTV, PMP, P4,
//! G-single, G2-item, G2 with predicates) as deterministic interleavings of explicit transactions.
//!
//! Each test names the anomaly, replays the interleaving from Hermitage
//! (<https://github.com/ept/hermitage>) step by step on `Transaction`s, and asserts what every
//! read returns and which commit fails with a conflict. Hermitage's row `id = 1` is key `x`
//! (initially 10) and `id = 2` is key `y` (initially 20); predicate reads become prefix scans
//! over `item/`, where `x` and `y` live.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, Value, Version,
};

const SI: Isolation = Isolation::Snapshot;
const SER: Isolation = Isolation::Serializable;

fn key(user: &str) -> Key {
    Key::new(
        Namespace::new("hermitage").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        user,
    )
}

fn x() -> Key {
    key("item/1")
}

fn y() -> Key {
    key("item/2")
}

fn items() -> Key {
    key("item/")
}

fn int(i: i64) -> Option<Value> {
    Some(Value::Int(i))
}

/// A fresh engine holding x = 10, y = 20 (committed at version 1).
fn setup() -> Engine {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let mut t = engine.begin(RunId::NIL, SI);
    t.put(x(), 10).unwrap();
    t.put(y(), 20).unwrap();
    assert_eq!(t.commit().unwrap(), 1);
    engine
}

/// The committed value of `k` as a fresh snapshot sees it.
fn committed(engine: &Engine, k: &Key) -> Option<Value> {
    engine.snapshot().get(k).unwrap()
}

/// The value of every `item/` key, as a fresh snapshot sees it.
fn committed_items(engine: &Engine) -> Vec<(String, Value)> {
    engine
        .snapshot()
        .scan(&items(), None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (String::from_utf8(k.user().to_vec()).unwrap(), v))
        .collect()
}

fn values(rows: &[(Key, Value)]) -> Vec<i64> {
    rows.iter().map(|(_, v)| v.as_i64().unwrap()).collect()
}

fn assert_conflict(result: rewinddb_engine::Result<Version>) {
    match result {
        Err(e) => assert!(e.is_conflict(), "expected a conflict, got {e}"),
        Ok(v) => panic!("expected a conflict, but the commit succeeded at version {v}"),
    }
}

// G0, write cycles (dirty writes): T1 and T2 both write x and y. If both commit, the final
// state could hold x from one and y from the other. First committer wins: T2 must abort and
// the final state is all of T1.
#[test]
fn g0_write_cycles_prevented() {
    for iso in [SI, SER] {
        let engine = setup();
        let mut t1 = engine.begin(RunId::NIL, iso);
        let mut t2 = engine.begin(RunId::NIL, iso);
        t1.put(x(), 11).unwrap();
        t2.put(x(), 12).unwrap();
        t1.put(y(), 21).unwrap();
        assert_eq!(t1.commit().unwrap(), 2);
        t2.put(y(), 22).unwrap();
        assert_conflict(t2.commit());
        assert_eq!(committed(&engine, &x()), int(11));
        assert_eq!(committed(&engine, &y()), int(21));
        assert_eq!(engine.visible_version(), 2);
    }
}

// G1a, aborted reads: T2 must never see a write of T1 that T1 then rolls back.
#[test]
fn g1a_aborted_reads_prevented() {
    for iso in [SI, SER] {
        let engine = setup();
        let mut t1 = engine.begin(RunId::NIL, iso);
        let mut t2 = engine.begin(RunId::NIL, iso);
        t1.put(x(), 101).unwrap();
        assert_eq!(t2.get(&x()).unwrap(), int(10));
        t1.rollback().unwrap();
        assert_eq!(t2.get(&x()).unwrap(), int(10));
        assert_eq!(
            t2.commit().unwrap(),
            1,
            "read-only commit returns its start version"
        );
        assert_eq!(committed(&engine, &x()), int(10));
        assert_eq!(engine.visible_version(), 1);
    }
}

// G1a with a dropped (never committed) transaction instead of an explicit rollback.
#[test]
fn g1a_dropped_transaction_leaves_nothing() {
    let engine = setup();
    {
        let mut t1 = engine.begin(RunId::NIL, SI);
        t1.put(x(), 101).unwrap();
        t1.delete(y()).unwrap();
    }
    assert_eq!(committed(&engine, &x()), int(10));
    assert_eq!(committed(&engine, &y()), int(20));
    assert_eq!(
        engine.stats().live_snapshots,
        0,
        "the dropped transaction released its snapshot"
    );
}

// G1b, intermediate reads: T2 must not see T1's intermediate value 101, neither before T1
// commits nor (at its own snapshot) afterwards.
#[test]
fn g1b_intermediate_reads_prevented() {
    for iso in [SI, SER] {
        let engine = setup();
        let mut t1 = engine.begin(RunId::NIL, iso);
        let mut t2 = engine.begin(RunId::NIL, iso);
        t1.put(x(), 101).unwrap();
        assert_eq!(t2.get(&x()).unwrap(), int(10));
        t1.put(x(), 11).unwrap();
        assert_eq!(t1.commit().unwrap(), 2);
        assert_eq!(t2.get(&x()).unwrap(), int(10));
        assert_eq!(t2.commit().unwrap(), 1);
        assert_eq!(
            committed(&engine, &x()),
            int(11),
            "the last write of T1 wins, not 101"
        );
    }
}

// G1b with a predicate read: a scan must not see the intermediate value either.
#[test]
fn g1b_intermediate_reads_prevented_in_scans() {
    let engine = setup();
    let mut t1 = engine.begin(RunId::NIL, SI);
    let mut t2 = engine.begin(RunId::NIL, SI);
    t1.put(x(), 101).unwrap();
    assert_eq!(values(&t2.scan(&items(), None, 10).unwrap()), [10, 20]);
    t1.put(x(), 11).unwrap();
    t1.commit().unwrap();
    assert_eq!(values(&t2.scan(&items(), None, 10).unwrap()), [10, 20]);
    let mut t3 = engine.begin(RunId::NIL, SI);
    assert_eq!(values(&t3.scan(&items(), None, 10).unwrap()), [11, 20]);
}

// G1c, circular information flow: T1 writes x, T2 writes y, each reads the other's key. Each
// must see the other's *old* value (otherwise T1 -> T2 -> T1 through wr dependencies). Both
// commit: their write sets are disjoint.
#[test]
fn g1c_circular_information_flow_prevented() {
    for iso in [SI, SER] {
        let engine = setup();
        let mut t1 = engine.begin(RunId::NIL, iso);
        let mut t2 = engine.begin(RunId::NIL, iso);
        t1.put(x(), 11).unwrap();
        t2.put(y(), 22).unwrap();
        assert_eq!(t1.get(&y()).unwrap(), int(20));
        assert_eq!(t2.get(&x()).unwrap(), int(10));
        assert_eq!(t1.get(&x()).unwrap(), int(11), "read-your-own-writes");
        assert_eq!(t2.get(&y()).unwrap(), int(22), "read-your-own-writes");
        assert_eq!(t1.commit().unwrap(), 2);
        match iso {
            // T2 read x, which T1 changed after T2 started: under Serializable that is an
            // rw-antidependency T2 -> T1 plus T1 -> T2 (T1 read y), so T2 must abort.
            Isolation::Serializable => {
                assert_conflict(t2.commit());
                assert_eq!(committed(&engine, &y()), int(20));
            }
            _ => {
                assert_eq!(t2.commit().unwrap(), 3);
                assert_eq!(committed(&engine, &y()), int(22));
            }
        }
        assert_eq!(committed(&engine, &x()), int(11));
    }
}

// OTV, observed transaction vanishes: T1 writes x = 11, y = 19 and commits; T2 tries to
// overwrite both. T3, which has seen T1's x, must also see T1's y (not T2's 18, not the
// original 20). T2 conflicts on x.
#[test]
fn otv_observed_transaction_vanishes_prevented() {
    for iso in [SI, SER] {
        let engine = setup();
        let mut t1 = engine.begin(RunId::NIL, iso);
        let mut t2 = engine.begin(RunId::NIL, iso);
        t1.put(x(), 11).unwrap();
        t1.put(y(), 19).unwrap();
        t2.put(x(), 12).unwrap();
        assert_eq!(t1.commit().unwrap(), 2);
        let mut t3 = engine.begin(RunId::NIL, iso);
        assert_eq!(t3.get(&x()).unwrap(), int(11));
        t2.put(y(), 18).unwrap();
        assert_conflict(t2.commit());
        assert_eq!(t3.get(&y()).unwrap(), int(19));
        assert_eq!(t3.commit().unwrap(), 2);
    }
}

// OTV with T3 started before T1 committed: it sees neither of T1's writes.
#[test]
fn otv_early_reader_sees_none_of_a_later_commit() {
    let engine = setup();
    let mut t3 = engine.begin(RunId::NIL, SI);
    let mut t1 = engine.begin(RunId::NIL, SI);
    t1.put(x(), 11).unwrap();
    t1.put(y(), 19).unwrap();
    t1.commit().unwrap();
    assert_eq!(t3.get(&x()).unwrap(), int(10));
    assert_eq!(t3.get(&y()).unwrap(), int(20));
}

// PMP, predicate-many-preceders (read): T1 scans for items with value 30 and finds none. T2
// inserts one and commits. T1's second scan must still find none.
#[test]
fn pmp_predicate_read_prevented() {
    for iso in [SI, SER] {
        let engine = setup();
        let mut t1 = engine.begin(RunId::NIL, iso);
        let thirty = |rows: Vec<(Key, Value)>| {
            rows.into_iter()
                .filter(|(_, v)| *v == Value::Int(30))
                .count()
        };
        assert_eq!(thirty(t1.scan(&items(), None, 100).unwrap()), 0);
        let mut t2 = engine.begin(RunId::NIL, iso);
        t2.put(key("item/3"), 30).unwrap();
        assert_eq!(t2.commit().unwrap(), 2);
        assert_eq!(thirty(t1.scan(&items(), None, 100).unwrap()), 0);
        assert_eq!(t1.get(&key("item/3")).unwrap(), None);
        assert_eq!(
            t1.commit().unwrap(),
            1,
            "read-only transactions never abort"
        );
        assert_eq!(committed_items(&engine).len(), 3);
    }
}

// PMP (write): T1 adds 10 to every item (a scan, then writes); T2 deletes the items whose value
// is 20, as its own snapshot sees them. T1 commits first, so T2's delete of y is a lost
// update of T1's write: T2 must abort.
#[test]
fn pmp_predicate_write_prevented() {
    for iso in [SI, SER] {
        let engine = setup();
        let mut t1 = engine.begin(RunId::NIL, iso);
        let mut t2 = engine.begin(RunId::NIL, iso);
        for (k, v) in t1.scan(&items(), None, 100).unwrap() {
            t1.put(k, v.as_i64().unwrap() + 10).unwrap();
        }
        let doomed: Vec<Key> = t2
            .scan(&items(), None, 100)
            .unwrap()
            .into_iter()
            .filter(|(_, v)| *v == Value::Int(20))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(doomed, [y()]);
        for k in doomed {
            t2.delete(k).unwrap();
        }
        assert_eq!(t1.commit().unwrap(), 2);
        assert_conflict(t2.commit());
        let want = vec![
            ("item/1".to_string(), Value::Int(20)),
            ("item/2".to_string(), Value::Int(30)),
        ];
        assert_eq!(committed_items(&engine), want);
    }
}

// P4, lost update: T1 and T2 both read x = 10 and write x + 1. If both commit, one increment is
// lost. The second committer must abort.
#[test]
fn p4_lost_update_prevented() {
    for iso in [SI, SER] {
        let engine = setup();
        let mut t1 = engine.begin(RunId::NIL, iso);
        let mut t2 = engine.begin(RunId::NIL, iso);
        let a = t1.get(&x()).unwrap().unwrap().as_i64().unwrap();
        let b = t2.get(&x()).unwrap().unwrap().as_i64().unwrap();
        assert_eq!((a, b), (10, 10));
        t1.put(x(), a + 1).unwrap();
        t2.put(x(), b + 1).unwrap();
        assert_eq!(t1.commit().unwrap(), 2);
        assert_conflict(t2.commit());
        // A retry of T2 sees T1's increment: nothing is lost.
        let mut t2 = engine.begin(RunId::NIL, iso);
        let b = t2.get(&x()).unwrap().unwrap().as_i64().unwrap();
        t2.put(x(), b + 1).unwrap();
        assert_eq!(t2.commit().unwrap(), 3);
        assert_eq!(committed(&engine, &x()), int(12));
    }
}

// P4 through compare-and-set: both see x at version 1; the second CAS-based commit conflicts,
// and a CAS against a stale version is refused outright.
#[test]
fn p4_lost_update_prevented_with_cas() {
    let engine = setup();
    let mut t1 = engine.begin(RunId::NIL, SI);
    let mut t2 = engine.begin(RunId::NIL, SI);
    t1.cas(x(), 1, Some(Value::Int(11))).unwrap();
    t2.cas(x(), 1, Some(Value::Int(12))).unwrap();
    assert_eq!(t1.commit().unwrap(), 2);
    assert_conflict(t2.commit());
    let mut t3 = engine.begin(RunId::NIL, SI);
    let err = t3.cas(x(), 1, Some(Value::Int(13))).unwrap_err();
    assert!(
        matches!(
            err,
            rewinddb_engine::Error::CasMismatch {
                expected: 1,
                current: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        !err.is_conflict(),
        "a CAS mismatch is not a retryable conflict of the commit"
    );
    assert_eq!(t3.write_count(), 0);
    assert_eq!(committed(&engine, &x()), int(11));
}

// G-single, single anti-dependency cycle (read skew): T1 reads x = 10; T2 moves 2 from y to x
// (x = 12, y = 18) and commits; T1 then reads y. It must see 20 (x + y = 30 holds in its
// snapshot), not 18.
#[test]
fn g_single_read_skew_prevented() {
    for iso in [SI, SER] {
        let engine = setup();
        let mut t1 = engine.begin(RunId::NIL, iso);
        let mut t2 = engine.begin(RunId::NIL, iso);
        assert_eq!(t1.get(&x()).unwrap(), int(10));
        assert_eq!(t2.get(&x()).unwrap(), int(10));
        assert_eq!(t2.get(&y()).unwrap(), int(20));
        t2.put(x(), 12).unwrap();
        t2.put(y(), 18).unwrap();
        assert_eq!(t2.commit().unwrap(), 2);
        assert_eq!(t1.get(&y()).unwrap(), int(20));
        assert_eq!(t1.commit().unwrap(), 1);
    }
}

// G-single with a predicate read: T1's scan after T2's commit still sees 10 and 20.
#[test]
fn g_single_read_skew_prevented_with_predicate() {
    for iso in [SI, SER] {
        let engine = setup();
        let mut t1 = engine.begin(RunId::NIL, iso);
        let mut t2 = engine.begin(RunId::NIL, iso);
        assert_eq!(values(&t1.scan(&items(), None, 100).unwrap()), [10, 20]);
        t2.put(x(), 12).unwrap();
        t2.put(y(), 18).unwrap();
        t2.commit().unwrap();
        assert_eq!(values(&t1.scan(&items(), None, 100).unwrap()), [10, 20]);
        assert_eq!(values(&t1.scan(&items(), Some(&x()), 100).unwrap()), [20]);
    }
}

// G-single (write): T1 reads x = 10; T2 writes x = 12, y = 18 and commits; T1 then deletes y
// based on its stale snapshot. T1 must abort (it writes y, which changed after its start).
#[test]
fn g_single_write_prevented() {
    for iso in [SI, SER] {
        let engine = setup();
        let mut t1 = engine.begin(RunId::NIL, iso);
        let mut t2 = engine.begin(RunId::NIL, iso);
        assert_eq!(t1.get(&x()).unwrap(), int(10));
        t2.put(x(), 12).unwrap();
        t2.put(y(), 18).unwrap();
        assert_eq!(t2.commit().unwrap(), 2);
        t1.delete(y()).unwrap();
        assert_conflict(t1.commit());
        assert_eq!(committed(&engine, &x()), int(12));
        assert_eq!(committed(&engine, &y()), int(18));
    }
}

/// The G2-item interleaving: both read x and y, T1 writes x, T2 writes y; T1 commits. Returns
/// T2's commit result.
fn write_skew(engine: &Engine, iso: Isolation) -> rewinddb_engine::Result<Version> {
    let mut t1 = engine.begin(RunId::NIL, iso);
    let mut t2 = engine.begin(RunId::NIL, iso);
    assert_eq!(
        (t1.get(&x()).unwrap(), t1.get(&y()).unwrap()),
        (int(10), int(20))
    );
    assert_eq!(
        (t2.get(&x()).unwrap(), t2.get(&y()).unwrap()),
        (int(10), int(20))
    );
    t1.put(x(), 11).unwrap();
    t2.put(y(), 21).unwrap();
    assert_eq!(t1.commit().unwrap(), 2);
    t2.commit()
}

// G2-item, item anti-dependency cycle (write skew): T1 and T2 read x and y, then write
// disjoint keys. Snapshot isolation allows it (the anomaly is observed: both commit);
// Serializable must abort T2 because x, which it read, changed after its start.
#[test]
fn g2_item_write_skew_observed_under_snapshot() {
    let engine = setup();
    assert_eq!(write_skew(&engine, SI).unwrap(), 3);
    assert_eq!(committed(&engine, &x()), int(11));
    assert_eq!(committed(&engine, &y()), int(21));
}

#[test]
fn g2_item_write_skew_prevented_under_serializable() {
    let engine = setup();
    assert_conflict(write_skew(&engine, SER));
    assert_eq!(committed(&engine, &x()), int(11));
    assert_eq!(committed(&engine, &y()), int(20));
    assert_eq!(engine.visible_version(), 2);
}

/// The G2 (predicate) interleaving: both scan `item/` for multiples of 3 and find none, then
/// each inserts a new multiple of 3 under a key of its own; T1 commits. Returns T2's result.
fn predicate_write_skew(engine: &Engine, iso: Isolation) -> rewinddb_engine::Result<Version> {
    let threes = |rows: Vec<(Key, Value)>| {
        rows.into_iter()
            .filter(|(_, v)| v.as_i64().unwrap() % 3 == 0)
            .count()
    };
    let mut t1 = engine.begin(RunId::NIL, iso);
    let mut t2 = engine.begin(RunId::NIL, iso);
    assert_eq!(threes(t1.scan(&items(), None, 100).unwrap()), 0);
    assert_eq!(threes(t2.scan(&items(), None, 100).unwrap()), 0);
    t1.put(key("item/3"), 30).unwrap();
    t2.put(key("item/4"), 42).unwrap();
    assert_eq!(
        threes(t1.scan(&items(), None, 100).unwrap()),
        1,
        "T1 sees its own insert"
    );
    assert_eq!(t1.commit().unwrap(), 2);
    t2.commit()
}

// G2, anti-dependency cycles with predicates (write skew over a prefix scan): allowed under
// Snapshot (both inserts land), prevented under Serializable (the scanned range changed).
#[test]
fn g2_predicate_write_skew_observed_under_snapshot() {
    let engine = setup();
    assert_eq!(predicate_write_skew(&engine, SI).unwrap(), 3);
    assert_eq!(committed_items(&engine).len(), 4);
}

#[test]
fn g2_predicate_write_skew_prevented_under_serializable() {
    let engine = setup();
    assert_conflict(predicate_write_skew(&engine, SER));
    assert_eq!(committed(&engine, &key("item/3")), int(30));
    assert_eq!(committed(&engine, &key("item/4")), None);
}

// G2 with predicates, where the concurrent change to the scanned range is a delete rather than
// an insert: still a change to what T2 saw, so Serializable aborts T2.
#[test]
fn g2_predicate_delete_in_scanned_range_prevented_under_serializable() {
    let engine = setup();
    let mut t1 = engine.begin(RunId::NIL, SER);
    let mut t2 = engine.begin(RunId::NIL, SER);
    assert_eq!(t2.scan(&items(), None, 100).unwrap().len(), 2);
    t1.delete(x()).unwrap();
    t1.commit().unwrap();
    t2.put(key("other"), 1).unwrap();
    assert_conflict(t2.commit());
}

// A read of a key that did not exist is a read too: T2 reads z (absent) and writes y; T1
// creates z and commits. Snapshot isolation lets T2 commit; Serializable aborts it, as it
// would had z existed and changed (T2's read was by a key with no chain yet, which
// validation looks up again), and does not when T1 created another key.
#[test]
fn serializable_read_of_an_absent_key_conflicts_with_its_creation() {
    for (iso, creates_z) in [(SI, true), (SER, true), (SER, false)] {
        let engine = setup();
        let mut t2 = engine.begin(RunId::NIL, iso);
        assert_eq!(t2.get(&key("z")).unwrap(), None);
        let mut t1 = engine.begin(RunId::NIL, iso);
        t1.put(key(if creates_z { "z" } else { "w" }), 1).unwrap();
        assert_eq!(t1.commit().unwrap(), 2);
        t2.put(y(), 21).unwrap();
        match (iso, creates_z) {
            (SER, true) => assert_conflict(t2.commit()),
            _ => assert_eq!(t2.commit().unwrap(), 3),
        }
    }
}

// Serializable validation is precise enough not to abort on changes outside what was read or
// scanned: a write to another prefix, or to a key T2 never read, does not conflict.
#[test]
fn serializable_ignores_changes_outside_reads_and_scans() {
    let engine = setup();
    let mut t2 = engine.begin(RunId::NIL, SER);
    assert_eq!(t2.get(&x()).unwrap(), int(10));
    assert_eq!(t2.scan(&key("item/1"), None, 100).unwrap().len(), 1);
    let mut t1 = engine.begin(RunId::NIL, SER);
    t1.put(y(), 21).unwrap();
    t1.put(key("elsewhere"), 1).unwrap();
    t1.commit().unwrap();
    t2.put(key("mine"), 2).unwrap();
    assert_eq!(t2.commit().unwrap(), 3);
}

// Read-only transactions never abort, whatever committed after they started.
#[test]
fn read_only_transactions_never_abort() {
    for iso in [SI, SER] {
        let engine = setup();
        let mut reader = engine.begin(RunId::NIL, iso);
        assert_eq!(reader.get(&x()).unwrap(), int(10));
        reader.scan(&items(), None, 100).unwrap();
        let mut w = engine.begin(RunId::NIL, iso);
        w.put(x(), 99).unwrap();
        w.put(key("item/9"), 9).unwrap();
        w.commit().unwrap();
        assert_eq!(reader.commit().unwrap(), 1);
    }
}

// A transaction's own writes take part in its scans: puts appear, deletes hide store keys,
// and `limit` counts the merged result.
#[test]
fn scans_merge_own_writes() {
    let engine = setup();
    let mut t = engine.begin(RunId::NIL, SI);
    t.delete(x()).unwrap();
    t.put(key("item/0"), 0).unwrap();
    t.put(key("item/3"), 30).unwrap();
    assert_eq!(values(&t.scan(&items(), None, 100).unwrap()), [0, 20, 30]);
    assert_eq!(values(&t.scan(&items(), None, 2).unwrap()), [0, 20]);
    assert_eq!(
        values(&t.scan(&items(), Some(&key("item/0")), 1).unwrap()),
        [20]
    );
    t.delete(key("item/3")).unwrap();
    assert_eq!(values(&t.scan(&items(), None, 100).unwrap()), [0, 20]);
}

/// The read-only anomaly interleaving (Fekete, O'Neil & O'Neil, "A read-only transaction
/// anomaly under snapshot isolation", 2004), with x = checking and y = savings, both 0:
/// T2 reads x and y; T1 deposits 20 into y and commits; T3 (read-only) reads x = 0, y = 20 and
/// commits; T2 then withdraws 10 from x, charging a 1 penalty because x + y < 10 in its
/// snapshot. Returns T2's commit result.
fn read_only_anomaly(engine: &Engine, iso: Isolation) -> rewinddb_engine::Result<Version> {
    let zero = |engine: &Engine| {
        let mut t = engine.begin(RunId::NIL, SI);
        t.put(x(), 0).unwrap();
        t.put(y(), 0).unwrap();
        t.commit().unwrap()
    };
    assert_eq!(zero(engine), 2);
    let mut t2 = engine.begin(RunId::NIL, iso);
    let (cx, cy) = (t2.get(&x()).unwrap(), t2.get(&y()).unwrap());
    assert_eq!((cx, cy), (int(0), int(0)));
    let mut t1 = engine.begin(RunId::NIL, iso);
    let y0 = t1.get(&y()).unwrap().unwrap().as_i64().unwrap();
    t1.put(y(), y0 + 20).unwrap();
    assert_eq!(t1.commit().unwrap(), 3);
    let mut t3 = engine.begin(RunId::NIL, iso);
    assert_eq!(
        (t3.get(&x()).unwrap(), t3.get(&y()).unwrap()),
        (int(0), int(20))
    );
    assert_eq!(
        t3.commit().unwrap(),
        3,
        "read-only transactions never abort"
    );
    // x + y = 0 < 10 in T2's snapshot, so the withdrawal costs a penalty of 1.
    t2.put(x(), -11).unwrap();
    t2.commit()
}

// Read-only anomaly: under Snapshot all three commit, and T3's view (x = 0, y = 20) fits no
// serial order (T3 saw T1 but not T2, T2 must precede T1 because it missed T1's deposit, yet
// T2's penalty says the deposit had not happened). Serializable aborts T2, whose read of y
// was overwritten by T1, so T3's view is a prefix of the commit order.
#[test]
fn read_only_anomaly_observed_under_snapshot() {
    let engine = setup();
    assert_eq!(read_only_anomaly(&engine, SI).unwrap(), 4);
    assert_eq!(committed(&engine, &x()), int(-11));
}

#[test]
fn read_only_anomaly_prevented_under_serializable() {
    let engine = setup();
    assert_conflict(read_only_anomaly(&engine, SER));
    assert_eq!(committed(&engine, &x()), int(0));
    assert_eq!(committed(&engine, &y()), int(20));
}

// First committer wins on every written key, whatever the transaction read first: a commit
// reuses the chain its first read found instead of looking that key up again, and that shortcut
// must neither hide a conflict on another written key nor put a value on the wrong key.
#[test]
fn written_keys_conflict_and_land_whichever_key_was_read_first() {
    for iso in [SI, SER] {
        // The key read first (y) is written, and so is a key read second (x), which T2 changes.
        let engine = setup();
        let mut t1 = engine.begin(RunId::NIL, iso);
        assert_eq!(t1.get(&y()).unwrap(), int(20));
        assert_eq!(t1.get(&x()).unwrap(), int(10));
        let mut t2 = engine.begin(RunId::NIL, iso);
        t2.put(x(), 11).unwrap();
        assert_eq!(t2.commit().unwrap(), 2);
        t1.put(x(), 12).unwrap();
        t1.put(y(), 21).unwrap();
        assert_conflict(t1.commit());

        // The key read first is the one T2 changes.
        let mut t1 = engine.begin(RunId::NIL, iso);
        assert_eq!(t1.get(&y()).unwrap(), int(20));
        let mut t2 = engine.begin(RunId::NIL, iso);
        t2.put(y(), 22).unwrap();
        assert_eq!(t2.commit().unwrap(), 3);
        t1.put(y(), 23).unwrap();
        assert_conflict(t1.commit());

        // No conflict: the key read first is not written; each value lands on its own key.
        let z = key("item/3");
        let mut t1 = engine.begin(RunId::NIL, iso);
        assert_eq!(t1.get(&x()).unwrap(), int(11));
        t1.put(y(), 24).unwrap();
        t1.put(z.clone(), 30).unwrap();
        assert_eq!(t1.commit().unwrap(), 4);
        assert_eq!(committed(&engine, &x()), int(11));
        assert_eq!(committed(&engine, &y()), int(24));
        assert_eq!(committed(&engine, &z), int(30));
    }
}
