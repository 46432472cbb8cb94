//! Diagnostic driver for W2 (point reads at 1M keys): splits rewinddb's gap
//! to the peer harness's ceiling (`scc::HashIndex` over 16-byte array keys)
//! into what the key type costs and what the engine adds. Three readers of
//! the same 1M keys with 100-byte values, all borrowing the value and
//! reading its first byte, in one process, the same random indices,
//! alternating 3 rounds: a rewinddb snapshot's `get_with`, a bare
//! `scc::HashIndex<Key, Value>` (rewinddb's key type, foldhash) and a bare
//! `scc::HashIndex<[u8; 16], Arc<[u8]>>`; and, as a fourth, an index over
//! a compact key (`FamilyKey`: namespace, scope and tag as one 4-byte
//! family number beside the user bytes, 28 bytes), to size what interning
//! the family would recover of the key type's cost. Run:
//! `cargo run --release -p rewinddb-engine --example w2_split`.
//! (The divan `point_get` ceiling clones its value out, as
//! `rewinddb_snapshot` does; compare `get_with` with this driver instead.)
#![allow(clippy::unwrap_used)]
use std::hint::black_box;
use std::time::Instant;

use rewinddb_engine::{Key, Value};
use scc::HashIndex;

/// The shared 1M-key load (`shared/loaded.rs`).
#[path = "shared/loaded.rs"]
mod shared;

const N: usize = 1 << 20;
const READS: usize = 2_000_000;

fn main() {
    let shared::Loaded {
        engine,
        users,
        keys,
        mut rng,
    } = shared::load(N);
    let by_key: HashIndex<Key, Value, foldhash::fast::RandomState> =
        HashIndex::with_hasher(Default::default());
    for k in &keys {
        by_key
            .insert_sync(
                k.clone(),
                Value::Bytes(std::sync::Arc::from(&[7u8; 100][..])),
            )
            .unwrap();
    }
    let by_16: HashIndex<[u8; 16], std::sync::Arc<[u8]>, foldhash::fast::RandomState> =
        HashIndex::with_hasher(Default::default());
    for u in &users {
        by_16
            .insert_sync(*u, std::sync::Arc::from(&[7u8; 100][..]))
            .unwrap();
    }
    let by_family: HashIndex<FamilyKey, Value, foldhash::fast::RandomState> =
        HashIndex::with_hasher(Default::default());
    let family_keys: Vec<FamilyKey> = users.iter().map(|u| FamilyKey::new(7, u)).collect();
    for k in &family_keys {
        by_family
            .insert_sync(*k, Value::Bytes(std::sync::Arc::from(&[7u8; 100][..])))
            .unwrap();
    }
    let idx: Vec<usize> = (0..READS).map(|_| rng.usize(..N)).collect();
    let snap = engine.snapshot();
    for round in 0..3 {
        let a = ns_per_read(&idx, |i| {
            snap.get_with(&keys[i], |v| {
                v.map_or(0, |v| v.as_bytes().unwrap()[0] as u64)
            })
            .unwrap()
        });
        let b = ns_per_read(&idx, |i| {
            by_key
                .peek_with(&keys[i], |_, v| v.as_bytes().unwrap()[0] as u64)
                .unwrap()
        });
        let c = ns_per_read(&idx, |i| {
            by_16.peek_with(&users[i], |_, v| v[0] as u64).unwrap()
        });
        let d = ns_per_read(&idx, |i| {
            by_family
                .peek_with(&family_keys[i], |_, v| v.as_bytes().unwrap()[0] as u64)
                .unwrap()
        });
        println!(
            "round {round}: rewinddb get_with {a:.0} ns, scc<Key> borrowed {b:.0} ns, scc<[u8;16]> borrowed {c:.0} ns, scc<FamilyKey> borrowed {d:.0} ns; ratios rw/sccKey {:.2}, sccKey/scc16 {:.2}, rw/scc16 {:.2}, sccFamily/scc16 {:.2}",
            a / b,
            b / c,
            a / c,
            d / c
        );
    }
}

/// Mean nanoseconds of `read(i)` over the indices `idx`, its results
/// summed into a black box so no read is optimised away.
fn ns_per_read(idx: &[usize], mut read: impl FnMut(usize) -> u64) -> f64 {
    let t = Instant::now();
    let sum: u64 = idx.iter().map(|&i| read(i)).sum();
    black_box(sum);
    t.elapsed().as_nanos() as f64 / idx.len() as f64
}

/// A compact key as interning would make it: a family number (namespace,
/// scope and tag) and up to 23 user bytes inline. Hashed and compared by
/// the family and the used bytes.
#[derive(Clone, Copy, Debug)]
struct FamilyKey {
    family: u32,
    len: u8,
    bytes: [u8; 23],
}

impl FamilyKey {
    fn new(family: u32, user: &[u8; 16]) -> FamilyKey {
        let mut bytes = [0; 23];
        bytes[..16].copy_from_slice(user);
        FamilyKey {
            family,
            len: 16,
            bytes,
        }
    }

    fn user(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl PartialEq for FamilyKey {
    fn eq(&self, other: &FamilyKey) -> bool {
        self.family == other.family && self.user() == other.user()
    }
}

impl Eq for FamilyKey {}

impl std::hash::Hash for FamilyKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u32(self.family);
        state.write(self.user());
    }
}
