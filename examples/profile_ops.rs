//! A driver for instruction counts under callgrind (issue 4's event-append
//! target): runs N operations of one kind on a fresh in-memory database,
//! so the cost of one operation is the difference between two runs
//! divided by the difference in N (setup and teardown cancel out).
//!
//! ```text
//! cargo build --release --example profile_ops
//! for n in 100000 300000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.append.$n \
//!     $CARGO_TARGET_DIR/release/examples/profile_ops append $n
//! done
//! # instructions per append = (total(300000) - total(100000)) / 200000
//! ```
//!
//! Kinds: `append` (one event append per transaction through the facade),
//! `append_object` (the same with a small object payload: a tool call's
//! name, arguments and result, 3 levels deep),
//! `floor` (the engine work of an append without the primitive: read the
//! head key, write a new key, rewrite the head, in an optimistic
//! transaction), `floor_locked` (the same work in
//! `Engine::transaction_locked`, the path an autocommit append takes),
//! `put` (a raw engine single-key put transaction, always the same key),
//! `put_random` (the peer harness's W4: a single-key put transaction of 100
//! bytes to a key chosen at random among `GET_KEYS` loaded keys), `read10` and
//! `read10_ser` (a transaction of 10 borrowed reads and one put, at random
//! among the same keys, at snapshot and at serializable isolation), `get` (a borrowed
//! point read through a snapshot, at random among `GET_KEYS` keys of 16
//! bytes with 100-byte values, as the peer harness's W2; the load is the
//! same for every N, so it cancels out), `replay` (builds one run of
//! 1,000 writes, 100 commits of 10 keys as in `benches/replay.rs`, once,
//! then replays it N times with `Database::replay_run`: instructions per
//! replay = (total(300) - total(100)) / 200, the setup cancelling out).
//!
//! The database is not dropped at the end (the process exits), so the
//! counts cover the operations only, not freeing what they wrote.

use std::error::Error;
use std::hint::black_box;

use rewinddb::engine::{Key, Scope, Transaction, ValueRef};
use rewinddb::{Database, Isolation, Namespace, RunId, RunSpec, TypeTag, Value};

const NS: &str = "bench/ns";

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_default();
    let n: u64 = args.next().unwrap_or_default().parse()?;
    let db = Database::in_memory()?;
    let run = db.begin_run(RunSpec::new("profile"))?;
    let engine = db.engine().clone();
    let ns = Namespace::new(NS)?;
    match kind.as_str() {
        "append" | "append_object" => {
            let log = db.events(NS, run);
            let payload = match kind.as_str() {
                "append" => Value::from("tool returned 42 results"),
                _ => object_payload(),
            };
            for _ in 0..n {
                black_box(log.append("tool.returned", payload.clone())?);
            }
        }
        "floor" | "floor_locked" => {
            let head = Key::new(ns.clone(), Scope::Run(run), TypeTag::Event, "h");
            let record = Value::from(vec![
                Value::from("tool returned 42 results"),
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
            ]);
            for seq in 0..n {
                let mut user = [b'e'; 9];
                user[1..].copy_from_slice(&seq.to_be_bytes());
                let key = Key::new(ns.clone(), Scope::Run(run), TypeTag::Event, user);
                let work = |t: &mut Transaction| {
                    black_box(t.get(&head)?);
                    t.put(key.clone(), record.clone())?;
                    t.put(head.clone(), Value::from(&seq.to_le_bytes()[..]))
                };
                if kind == "floor" {
                    engine.transaction(run, Isolation::Snapshot, work)?;
                } else {
                    engine.transaction_locked(run, work)?;
                }
            }
        }
        "replay" => {
            let replayed = replay_run_of_1000_writes(&db, &ns)?;
            for _ in 0..n {
                black_box(db.replay_run(replayed)?);
            }
        }
        "put" => {
            let key = Key::new(ns, Scope::Shared, TypeTag::Kv, "k");
            for i in 0..n {
                engine.transaction(run, Isolation::Snapshot, |t| t.put(key.clone(), i as i64))?;
            }
        }
        "get" => point_gets(&engine, &ns, n)?,
        "put_random" => reads_then_put(&engine, &ns, n, 0, Isolation::Snapshot)?,
        "read10" => reads_then_put(&engine, &ns, n, 10, Isolation::Snapshot)?,
        "read10_ser" => reads_then_put(&engine, &ns, n, 10, Isolation::Serializable)?,
        other => {
            return Err(format!(
                "unknown kind {other:?}: append, append_object, floor, floor_locked, put, \
                 put_random, read10, read10_ser, get or replay"
            )
            .into());
        }
    }
    // Skip the teardown: freeing N operations' versions is not part of an
    // operation's cost (the benches do not time it either).
    std::process::exit(0)
}

/// A tool call's record as an agent might log it: 4 fields, an argument
/// object and a result list, 3 levels deep.
fn object_payload() -> Value {
    let field = |k: &str, v: Value| (k.to_string(), v);
    let args = Value::from(std::collections::BTreeMap::from([
        field("query", Value::from("weather in Paris")),
        field("limit", Value::Int(5)),
    ]));
    let results = Value::from(vec![
        Value::from("sunny"),
        Value::from("18C"),
        Value::Int(42),
    ]);
    Value::from(std::collections::BTreeMap::from([
        field("tool", Value::from("search")),
        field("args", args),
        field("results", results),
        field("ms", Value::Int(130)),
    ]))
}

/// Keys loaded before `get` reads (the peer harness's W2 size).
const GET_KEYS: u64 = 1 << 20;

/// Load `GET_KEYS` keys of 16 bytes with 100-byte values (the peer
/// harness's bulk load, the same for every N) and return them.
fn load_keys(
    engine: &rewinddb::engine::Engine,
    ns: &Namespace,
) -> Result<Vec<Key>, Box<dyn Error>> {
    // Keys made from the engine's family, as the primitives and the peer
    // harness make theirs: one shared family allocation, so cloning a key
    // touches no per-key allocation.
    let family = engine.family(ns.clone(), Scope::Shared, TypeTag::Kv);
    let key = |i: u64| {
        let mut user = [0u8; 16];
        user[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        family.key(user)
    };
    let value = Value::from(&[7u8; 100][..]);
    for chunk in 0..GET_KEYS / 4096 {
        engine.transaction(rewinddb::RunId::NIL, Isolation::Snapshot, |t| {
            (chunk * 4096..(chunk + 1) * 4096).try_for_each(|i| t.put(key(i), value.clone()))
        })?;
    }
    Ok((0..GET_KEYS).map(key).collect())
}

/// Pseudo-random indexes into the loaded keys (xorshift: a few
/// instructions, the same per operation).
fn random_indexes() -> impl Iterator<Item = usize> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % GET_KEYS) as usize
    })
}

/// Load `GET_KEYS` keys, then read `n` of them at random through one
/// snapshot, borrowing each value as the peer harness does.
fn point_gets(
    engine: &rewinddb::engine::Engine,
    ns: &Namespace,
    n: u64,
) -> Result<(), Box<dyn Error>> {
    let keys = load_keys(engine, ns)?;
    let snap = engine.snapshot();
    for i in random_indexes().take(n as usize) {
        let k = &keys[i];
        black_box(snap.get_with(k, |v| v.map(|v| v.as_bytes().map_or(0, |b| b[0])))?);
    }
    Ok(())
}

/// Load `GET_KEYS` keys, then `n` transactions, each reading `reads` of
/// them at random (borrowed) and writing 100 bytes lent with `put_ref` to
/// one more, at `isolation` (a serializable one also validates its reads
/// at commit). With no reads, the peer harness's W4 (an explicit
/// transaction, one put, commit).
fn reads_then_put(
    engine: &rewinddb::engine::Engine,
    ns: &Namespace,
    n: u64,
    reads: usize,
    isolation: Isolation,
) -> Result<(), Box<dyn Error>> {
    let keys = load_keys(engine, ns)?;
    let value = [9u8; 100];
    let mut picks = random_indexes();
    for _ in 0..n {
        let mut txn = engine.begin(RunId::NIL, isolation);
        for i in picks.by_ref().take(reads) {
            black_box(txn.get_with(&keys[i], |v| v.is_some())?);
        }
        let i = picks.next().unwrap_or(0);
        txn.put_ref(&keys[i], ValueRef::Bytes(&value))?;
        black_box(txn.commit()?);
    }
    Ok(())
}

/// The replay bench's run with no other runs around it: 100 commits of
/// 10 keys, one in five shared and the rest in the run's own scope.
fn replay_run_of_1000_writes(db: &Database, ns: &Namespace) -> Result<RunId, Box<dyn Error>> {
    let run = db.begin_run(RunSpec::new("replayed"))?;
    for c in 0..100 {
        let mut txn = db.engine().begin(run, Isolation::Snapshot);
        for i in c * 10..c * 10 + 10 {
            let scope = if i % 5 == 0 {
                Scope::Shared
            } else {
                Scope::Run(run)
            };
            let key = Key::new(ns.clone(), scope, TypeTag::Kv, format!("replayed:{i}"));
            txn.put(key, i as i64)?;
        }
        txn.commit()?;
    }
    Ok(run)
}
