//! Engine micro-benchmarks (issue 2, "Performance"): snapshot point gets
//! beside a bare `scc::HashIndex` over the same keys, put transactions, a
//! 10-read/1-write transaction, O(1) snapshot creation, and GC passes.
//!
//! Run: `cargo bench --bench engine` (add `-- get` etc. to filter).
//! Targets (2 cores): point get at 1M keys >= 0.8x `scc::HashIndex`;
//! single-key put transaction >= 1.5M/s (measured on 1K and 100K keys,
//! beside a bare `scc::HashMap` upsert as the ceiling); snapshot creation at
//! 1M keys within 1.2x of 1K keys. Keys, values and access indices are generated before
//! timing; every timed loop only indexes into them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use divan::Bencher;
use divan::counter::ItemsCount;
use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, Retention, RunId, Scope, TypeTag, Value,
    ValueRef,
};
use scc::HashIndex;

fn main() {
    divan::main();
}

/// Database sizes of the point-get benchmarks.
const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
/// Access indices per benchmark (a power of two, cycled through).
const ACCESSES: usize = 1 << 16;
/// Bytes of user key and of value, as in the peer harness.
const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;

/// True under `cargo bench`; false under `cargo test --all-targets`, which
/// runs each benchmark once: then the databases shrink to keep tests fast.
fn benching() -> bool {
    let mut args = std::env::args();
    args.any(|a| a == "--bench") && !std::env::args().any(|a| a == "--test")
}

/// `n` distinct random 16-byte keys (fixed seed) in one namespace; at most
/// 2K outside `cargo bench`.
fn keys(n: usize) -> Vec<Key> {
    let n = if benching() { n } else { n.min(2_000) };
    let ns = Namespace::new("bench").unwrap();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let user: [u8; KEY_BYTES] = std::array::from_fn(|_| rng.u8(..));
        if seen.insert(user) {
            out.push(Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, user));
        }
    }
    out
}

/// Uniform random indices into `0..n`, fixed seed.
fn accesses(n: usize) -> Vec<usize> {
    let mut rng = fastrand::Rng::with_seed(0xacce55);
    (0..ACCESSES).map(|_| rng.usize(..n)).collect()
}

fn value() -> Value {
    Value::from(vec![0xab_u8; VALUE_BYTES])
}

/// An engine holding `keys`, loaded in transactions of 10K writes.
fn loaded_engine(keys: &[Key]) -> Engine {
    written(keys, 1, EngineConfig::default())
}

/// An engine of `config` holding `keys` written `rounds` times, in
/// transactions of 10K writes.
fn written(keys: &[Key], rounds: usize, config: EngineConfig) -> Engine {
    let engine = Engine::open_in_memory(config).unwrap();
    for _ in 0..rounds {
        for chunk in keys.chunks(10_000) {
            let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
            for key in chunk {
                txn.put(key.clone(), value()).unwrap();
            }
            txn.commit().unwrap();
        }
    }
    engine
}

/// Cycles through the pre-generated access indices.
struct Cursor {
    at: usize,
}

impl Cursor {
    fn next(&mut self, accesses: &[usize]) -> usize {
        self.at = (self.at + 1) & (ACCESSES - 1);
        accesses[self.at]
    }
}

mod point_get {
    use super::*;

    /// `Snapshot::get` on one long-lived snapshot.
    #[divan::bench(args = SIZES, sample_size = 1000)]
    fn rewinddb_snapshot(bencher: Bencher, n: usize) {
        let keys = keys(n);
        let engine = loaded_engine(&keys);
        let idx = accesses(keys.len());
        let snap = engine.snapshot();
        let mut cur = Cursor { at: 0 };
        bencher
            .counter(ItemsCount::new(1_usize))
            .bench_local(|| snap.get(&keys[cur.next(&idx)]).unwrap());
    }

    /// `Snapshot::get_with`: the value is borrowed, not cloned.
    #[divan::bench(args = SIZES, sample_size = 1000)]
    fn rewinddb_snapshot_get_with(bencher: Bencher, n: usize) {
        let keys = keys(n);
        let engine = loaded_engine(&keys);
        let idx = accesses(keys.len());
        let snap = engine.snapshot();
        let mut cur = Cursor { at: 0 };
        bencher.counter(ItemsCount::new(1_usize)).bench_local(|| {
            snap.get_with(&keys[cur.next(&idx)], |v| {
                v.map(|v| v.as_bytes().map(<[u8]>::len))
            })
            .unwrap()
        });
    }

    /// The ceiling: a bare `scc::HashIndex<Key, Value>` with the engine's
    /// hasher (foldhash), the same keys, and the same clone-out of the value.
    #[divan::bench(args = SIZES, sample_size = 1000)]
    fn scc_hash_index(bencher: Bencher, n: usize) {
        let keys = keys(n);
        let index: HashIndex<Key, Value, foldhash::fast::RandomState> =
            HashIndex::with_hasher(foldhash::fast::RandomState::default());
        for key in &keys {
            index.insert_sync(key.clone(), value()).unwrap();
        }
        let idx = accesses(keys.len());
        let mut cur = Cursor { at: 0 };
        bencher
            .counter(ItemsCount::new(1_usize))
            .bench_local(|| index.peek_with(&keys[cur.next(&idx)], |_, v| v.clone()));
    }
}

mod txn {
    use super::*;

    /// Keys in the database the read/write transaction benchmark uses.
    const N: usize = 100_000;
    /// Database sizes of the put benchmarks: 1K keys stay in cache, so the
    /// figure is the commit path's own cost; at 100K keys every transaction
    /// also pays cache and TLB misses on a random key, which the
    /// `scc_upsert` ceiling beside it pays too.
    const PUT_SIZES: [usize; 2] = [1_000, 100_000];

    /// One transaction writing one existing key (no durability: in memory).
    /// Every version is kept (default retention), so chains grow.
    #[divan::bench(args = PUT_SIZES, max_time = 3, sample_size = 1000)]
    fn put_1(bencher: Bencher, n: usize) {
        let keys = keys(n);
        let engine = loaded_engine(&keys);
        let idx = accesses(keys.len());
        let value = value();
        let mut cur = Cursor { at: 0 };
        bencher.counter(ItemsCount::new(1_usize)).bench_local(|| {
            let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
            txn.put(&keys[cur.next(&idx)], value.clone()).unwrap();
            txn.commit().unwrap()
        });
    }

    /// `put_1` with the value lent as bytes (`Transaction::put_ref`), as
    /// a caller holding a `&[u8]` writes it: copied once, into the version.
    #[divan::bench(args = PUT_SIZES, max_time = 3, sample_size = 1000)]
    fn put_1_ref(bencher: Bencher, n: usize) {
        let keys = keys(n);
        let engine = loaded_engine(&keys);
        let idx = accesses(keys.len());
        let bytes = [0xab_u8; VALUE_BYTES];
        let mut cur = Cursor { at: 0 };
        bencher.counter(ItemsCount::new(1_usize)).bench_local(|| {
            let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
            txn.put_ref(&keys[cur.next(&idx)], ValueRef::Bytes(&bytes))
                .unwrap();
            txn.commit().unwrap()
        });
    }

    /// The ceiling for `put_1`: overwrite one existing key of a bare
    /// `scc::HashMap<Key, Value>` (the write-friendly sibling of
    /// `HashIndex`: no versions, no transaction), same keys, same hasher,
    /// same key and value clones.
    #[divan::bench(args = PUT_SIZES, max_time = 3, sample_size = 1000)]
    fn scc_upsert(bencher: Bencher, n: usize) {
        let keys = keys(n);
        let index: scc::HashMap<Key, Value, foldhash::fast::RandomState> =
            scc::HashMap::with_hasher(foldhash::fast::RandomState::default());
        for key in &keys {
            index.upsert_sync(key.clone(), value());
        }
        let idx = accesses(keys.len());
        let value = value();
        let mut cur = Cursor { at: 0 };
        bencher
            .counter(ItemsCount::new(1_usize))
            .bench_local(|| index.upsert_sync(keys[cur.next(&idx)].clone(), value.clone()));
    }

    /// One transaction reading 10 keys and writing 1, at each isolation
    /// level (a serializable one also validates its 10 reads).
    #[divan::bench(
        args = [Isolation::Snapshot, Isolation::Serializable],
        max_time = 3,
        sample_size = 1000
    )]
    fn read_10_write_1(bencher: Bencher, isolation: Isolation) {
        let keys = keys(N);
        let engine = loaded_engine(&keys);
        let idx = accesses(keys.len());
        let value = value();
        let mut cur = Cursor { at: 0 };
        bencher.counter(ItemsCount::new(1_usize)).bench_local(|| {
            let mut txn = engine.begin(RunId::NIL, isolation);
            for _ in 0..10 {
                black_box(txn.get(&keys[cur.next(&idx)]).unwrap());
            }
            txn.put(&keys[cur.next(&idx)], value.clone()).unwrap();
            txn.commit().unwrap()
        });
    }
}

mod snapshot {
    use super::*;

    /// Take and drop a snapshot: O(1), so 1M keys should cost what 1K do.
    #[divan::bench(args = [1_000, 1_000_000], sample_size = 1000)]
    fn create(bencher: Bencher, n: usize) {
        let engine = loaded_engine(&keys(n));
        bencher
            .counter(ItemsCount::new(1_usize))
            .bench_local(|| black_box(engine.snapshot()).version());
    }
}

mod gc {
    use super::*;

    const GC_SIZES: [usize; 2] = [100_000, 1_000_000];

    /// An engine keeping one version per key, holding `keys` written
    /// twice. No key is ever scanned, as for an event log.
    fn twice_written(keys: &[Key]) -> Engine {
        written(
            keys,
            2,
            EngineConfig::default().retention(Retention::Versions(1)),
        )
    }

    /// The first GC pass over `n` keys of two versions each: it walks
    /// every chain and unlinks one version per key. A fresh engine per
    /// sample; it is dropped after timing.
    #[divan::bench(args = GC_SIZES, sample_count = 5, sample_size = 1)]
    fn first_pass(bencher: Bencher, n: usize) {
        let keys = keys(n);
        bencher
            .counter(ItemsCount::new(keys.len()))
            .with_inputs(|| twice_written(&keys))
            .bench_local_values(|engine| {
                assert_eq!(engine.gc().unwrap().unlinked, keys.len());
                engine
            });
    }

    /// A GC pass with nothing to unlink: the walk over `n` chains alone.
    #[divan::bench(args = GC_SIZES, sample_count = 10, sample_size = 1)]
    fn idle_pass(bencher: Bencher, n: usize) {
        let keys = keys(n);
        let engine = twice_written(&keys);
        engine.gc().unwrap();
        bencher
            .counter(ItemsCount::new(keys.len()))
            .bench_local(|| assert_eq!(engine.gc().unwrap().unlinked, 0));
    }
}
