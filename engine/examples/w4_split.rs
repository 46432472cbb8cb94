//! Diagnostic driver for W4 (single-key put transactions at 1M keys):
//! splits a put transaction's time into its stages by doing less of it,
//! beside the peer harness's ceilings, in one process over the same keys
//! and the same random indices, stages alternated over rounds:
//!
//! - `snapshot get_with`: a borrowed point read through one snapshot taken
//!   at the start of the round (W2's read);
//! - `begin;drop;get_with`: the same read after a transaction is begun and
//!   dropped: what a snapshot registration costs the reads around it;
//! - `begin+drop`: a transaction begun and dropped (snapshot, backoff check);
//! - `begin+get+drop`: plus a point read of the key through it (the index
//!   probe and the chain, as the put's own lookup finds them);
//! - `begin+put+drop`: plus the put (lookup and the version built), rolled
//!   back, so the version is freed;
//! - `commit`: the whole transaction, as W4;
//! - `scc update`: `scc::HashIndex<[u8; 16], Arc<[u8]>>`, a fresh value
//!   `Arc` per update, as the harness's ceiling;
//! - `HashMap insert`: `std::collections::HashMap<[u8; 16], Box<[u8]>>`,
//!   no lock (the harness's has an uncontended `RwLock`).
//!
//! Run: `cargo run --release -p rewinddb-engine --example w4_split`.
#![allow(clippy::unwrap_used)]
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use rewinddb_engine::{Isolation, RunId, ValueRef};
use scc::HashIndex;

/// The shared 1M-key load (`shared/loaded.rs`).
#[path = "shared/loaded.rs"]
mod shared;

const N: usize = 1 << 20;
const OPS: usize = 1_000_000;
const ROUNDS: usize = 5;

fn main() {
    let shared::Loaded {
        engine,
        users,
        keys,
        mut rng,
    } = shared::load(N);
    let value = [7u8; 100];
    let scc: HashIndex<[u8; 16], Arc<[u8]>, foldhash::fast::RandomState> =
        HashIndex::with_hasher(Default::default());
    let mut map: HashMap<[u8; 16], Box<[u8]>, foldhash::fast::RandomState> =
        HashMap::with_hasher(Default::default());
    for u in &users {
        scc.insert_sync(*u, Arc::from(&value[..])).unwrap();
        map.insert(*u, Box::from(&value[..]));
    }
    let picks: Vec<usize> = (0..OPS).map(|_| rng.usize(..N)).collect();

    // Indexed by the stage numbers below; run in this order.
    let stages: [&str; 9] = [
        "begin+drop",
        "begin+get_with+drop",
        "begin+get+drop",
        "begin+put+drop",
        "commit",
        "scc update",
        "HashMap insert",
        "snapshot get_with",
        "begin;drop;get_with",
    ];
    let order = [7, 8, 0, 1, 2, 3, 4, 5, 6];
    // Reads the value's first byte, as W2's readers do.
    let first = |v: Option<ValueRef<'_>>| match v {
        Some(ValueRef::Bytes(b)) => b.first().copied(),
        _ => None,
    };
    let mut best = [f64::MAX; 9];
    for round in 0..ROUNDS {
        // Taken anew each round, so that it reads the heads the last
        // round's commits installed, as a fresh transaction does.
        let snap = engine.snapshot();
        for s in order {
            let name = stages[s];
            let start = Instant::now();
            for &i in &picks {
                match s {
                    7 => {
                        black_box(snap.get_with(&keys[i], first).unwrap());
                    }
                    8 => {
                        drop(black_box(engine.begin(RunId::NIL, Isolation::Snapshot)));
                        black_box(snap.get_with(&keys[i], first).unwrap());
                    }
                    0 => drop(black_box(engine.begin(RunId::NIL, Isolation::Snapshot))),
                    1 => {
                        let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
                        black_box(t.get_with(&keys[i], first).unwrap());
                    }
                    2 => {
                        let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
                        black_box(t.get(&keys[i]).unwrap());
                    }
                    3 => {
                        let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
                        t.put_ref(&keys[i], ValueRef::Bytes(&value)).unwrap();
                        black_box(&t);
                    }
                    4 => {
                        let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
                        t.put_ref(&keys[i], ValueRef::Bytes(&value)).unwrap();
                        black_box(t.commit().unwrap());
                    }
                    5 => {
                        // As the harness's ceiling puts.
                        match scc.entry_sync(users[i]) {
                            scc::hash_index::Entry::Occupied(mut o) => {
                                o.update(Arc::from(&value[..]));
                            }
                            scc::hash_index::Entry::Vacant(v) => {
                                v.insert_entry(Arc::from(&value[..]));
                            }
                        }
                    }
                    _ => {
                        black_box(map.insert(users[i], Box::from(&value[..])));
                    }
                }
            }
            let ns = start.elapsed().as_nanos() as f64 / OPS as f64;
            best[s] = best[s].min(ns);
            println!("round {round} {name:>20}: {ns:6.1} ns/op");
        }
    }
    println!("best of {ROUNDS} rounds:");
    for (name, ns) in order.iter().map(|&s| (stages[s], best[s])) {
        println!("{name:>20}: {ns:6.1} ns/op");
    }
}
