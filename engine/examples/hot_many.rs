//! Diagnostic driver for the contention backoff (`RetryPolicy`): N threads
//! read-modify-write one hot key for a while, and the driver prints
//! commits/s, the share of attempts that failed, and the fewest and most
//! commits any one thread made (the backoff trades evenness for
//! throughput).
//!
//! - `explicit` (default): `begin`, read, write, `commit`, a conflict
//!   counted as a failed attempt and retried by the loop;
//! - `closure`: `Engine::transaction`, whose own retries end in
//!   `Error::RetriesExhausted` after `RetryPolicy::attempts`; a failed
//!   attempt is one such give-up.
//!
//! Run: `cargo run --release -p rewinddb-engine --example hot_many [threads] [secs] [explicit|closure]`
//! (defaults 8 threads, 1 s, explicit).
#![allow(clippy::unwrap_used)]
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, Transaction, TypeTag, ValueRef,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map_or(8, |s| s.parse().unwrap());
    let secs: f64 = args.next().map_or(1.0, |s| s.parse().unwrap());
    let closure = args.next().is_some_and(|s| s == "closure");
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let key = Key::new(
        Namespace::new("hot").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        "k",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (engine, key, stop) = (engine.clone(), key.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let (mut commits, mut failed) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let ok = match closure {
                        true => engine
                            .transaction(RunId::NIL, Isolation::Snapshot, |t| increment(t, &key))
                            .is_ok(),
                        false => {
                            let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
                            increment(&mut t, &key).unwrap();
                            match t.commit() {
                                Ok(_) => true,
                                Err(e) if e.is_conflict() => false,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    };
                    match ok {
                        true => commits += 1,
                        false => failed += 1,
                    }
                }
                (commits, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let results: Vec<(u64, u64)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let elapsed = start.elapsed().as_secs_f64();
    let commits: u64 = results.iter().map(|r| r.0).sum();
    let failed: u64 = results.iter().map(|r| r.1).sum();
    let fewest = results.iter().map(|r| r.0).min().unwrap_or(0);
    let most = results.iter().map(|r| r.0).max().unwrap_or(0);
    println!(
        "{threads} threads, {}: {:.2}M commits/s; failed attempts {failed} ({:.2}%); \
         commits per thread {fewest}..{most}",
        if closure {
            "Engine::transaction"
        } else {
            "explicit"
        },
        commits as f64 / elapsed / 1e6,
        100.0 * failed as f64 / (commits + failed).max(1) as f64,
    );
}

/// Read the key's counter (its first byte) and write it back plus one.
fn increment(t: &mut Transaction, key: &Key) -> rewinddb_engine::Result<()> {
    let n = t
        .get(key)?
        .and_then(|v| v.as_bytes().map(|b| b[0]))
        .unwrap_or(0);
    t.put_ref(key, ValueRef::Bytes(&[n.wrapping_add(1); 100]))
}
