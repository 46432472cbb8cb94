//! Diagnostic driver for the ordered index: loads 1M keys of one family
//! (never scanned, so all on the pending list), times the first scan
//! (which merges them all into the skip list) and then scans of up to 100
//! keys under random 2-byte prefixes. Run:
//! `cargo run --release -p rewinddb-engine --example scan_costs`.
#![allow(clippy::unwrap_used)]

use rewinddb_engine as rw;
use std::time::{Duration, Instant};
fn key(ns: &rw::Namespace, i: u64) -> rw::Key {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    rw::Key::new(ns.clone(), rw::Scope::Shared, rw::TypeTag::Kv, k)
}
fn main() {
    let n: u64 = 1_000_000;
    let ns = rw::Namespace::new("bench").unwrap();
    let e = rw::Engine::open_in_memory(rw::EngineConfig::default()).unwrap();
    let value = rw::Value::from(vec![7u8; 100]);
    let keys: Vec<rw::Key> = (0..n).map(|i| key(&ns, i)).collect();
    for c in keys.chunks(10_000) {
        let mut t = e.begin(rw::RunId::NIL, rw::Isolation::Snapshot);
        for k in c {
            t.put(k.clone(), value.clone()).unwrap();
        }
        t.commit().unwrap();
    }
    let t0 = Instant::now();
    let snap = e.snapshot();
    let first = snap
        .scan(
            &rw::Key::new(ns.clone(), rw::Scope::Shared, rw::TypeTag::Kv, b""),
            None,
            100,
        )
        .unwrap();
    assert_eq!(first.len(), 100);
    let merge = t0.elapsed();
    let mut x: u64 = 88172645463325252;
    let mut rates = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut i = 0u64;
        while start.elapsed() < Duration::from_millis(500) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = rw::Key::new(
                ns.clone(),
                rw::Scope::Shared,
                rw::TypeTag::Kv,
                [(x >> 56) as u8, (x >> 48) as u8],
            );
            let got = snap.scan(&p, None, 100).unwrap();
            std::hint::black_box(got.len());
            i += 1;
        }
        rates.push(start.elapsed().as_secs_f64() * 1e6 / i as f64);
    }
    rates.sort_by(f64::total_cmp);
    eprintln!(
        "first scan (merge) {:.0} ms; scan of up to 100 keys (2-byte prefix) median {:.1} us (min {:.1})",
        merge.as_secs_f64() * 1e3,
        rates[2],
        rates[0]
    );
}
