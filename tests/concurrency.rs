//! Concurrency: threads appending to one run's event log get dense, unique
//! sequence numbers and a chain that verifies, also when autocommit appends
//! under the commit lock race appends in explicit transactions and large
//! optimistic ones; threads moving one state machine with `cas` or
//! `transition` lose no update.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use rewinddb::{Config, Database, Error, RetryPolicy, RunId, RunSpec, TypeTag, Value};

const NS: &str = "acme/bot";

/// Contention is the point here, so let retries go on much longer than
/// the default 32 attempts.
fn db() -> Database {
    let retry = RetryPolicy {
        attempts: 100_000,
        backoff_min: Duration::from_micros(1),
        backoff_max: Duration::from_micros(200),
    };
    Database::open(Config::in_memory().retry(retry)).unwrap()
}

#[test]
fn concurrent_appends_get_dense_unique_seqs_and_a_valid_chain() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 300;
    let db = db();
    let run = db.begin_run(RunSpec::new("appenders")).unwrap();
    let seqs: Vec<(u64, u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let db = &db;
                s.spawn(move || {
                    let log = db.events(NS, run);
                    (0..PER_THREAD)
                        .map(|i| {
                            (
                                log.append(
                                    "tick",
                                    vec![Value::from(t as i64), Value::from(i as i64)],
                                )
                                .unwrap(),
                                t,
                                i,
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let total = THREADS * PER_THREAD;
    let unique: BTreeSet<u64> = seqs.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(unique.len() as u64, total, "duplicate sequence numbers");
    assert_eq!(
        unique.iter().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    let log = db.events(NS, run);
    assert_eq!(log.len().unwrap(), total);
    log.verify().unwrap();
    // Each append landed at the seq it was told, with its own payload, and
    // each thread's appends are in its own order.
    let events = log.read(..).unwrap();
    for (seq, t, i) in &seqs {
        let expected = Value::from(vec![Value::from(*t as i64), Value::from(*i as i64)]);
        assert_eq!(events[*seq as usize].payload, expected);
    }
    for t in 0..THREADS {
        let mine: Vec<u64> = seqs
            .iter()
            .filter(|(_, tt, _)| *tt == t)
            .map(|(s, _, _)| *s)
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
    }
}

/// How an append of the mixed test is made.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Path {
    /// `db.events(..).append` with a small payload: under the commit lock.
    Locked,
    /// `txn.events(..).append` in a retried explicit transaction, beside a
    /// KV write.
    Explicit,
    /// `db.events(..).append` with a payload over 16 KiB: optimistic.
    Large,
}

fn append_by(db: &Database, run: RunId, path: Path, t: u64, i: u64) -> u64 {
    let tag = vec![Value::from(t as i64), Value::from(i as i64)];
    match path {
        Path::Locked => db.events(NS, run).append("tick", tag).unwrap(),
        Path::Large => {
            let pad = Value::from("x".repeat(17 * 1024));
            let payload = vec![tag[0].clone(), tag[1].clone(), pad];
            db.events(NS, run).append("big", payload).unwrap()
        }
        Path::Explicit => db
            .transaction(run, |txn| {
                let seq = txn.events(NS).append("tick", tag.clone())?;
                txn.kv_run(NS).put(&format!("t{t}"), i as i64)?;
                Ok(seq)
            })
            .unwrap(),
    }
}

/// The three append paths race on one log: seqs stay dense and unique,
/// the chain verifies, each append sits at the seq it was told, and an
/// append under the commit lock carries exactly its commit's time (an
/// optimistic one a time at or before it).
#[test]
fn appends_under_the_commit_lock_and_optimistic_ones_share_one_dense_chain() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 300;
    const PATHS: [Path; 4] = [Path::Locked, Path::Explicit, Path::Locked, Path::Large];
    let db = db();
    let run = db.begin_run(RunSpec::new("mixed")).unwrap();
    let told: Vec<(u64, u64, u64, Path)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let db = &db;
                s.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let path = PATHS[((t + i) % 4) as usize];
                            (append_by(db, run, path, t, i), t, i, path)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let total = THREADS * PER_THREAD;
    let unique: BTreeSet<u64> = told.iter().map(|(seq, ..)| *seq).collect();
    assert_eq!(
        unique.into_iter().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    let log = db.events(NS, run);
    log.verify().unwrap();
    let events = log.read(..).unwrap();
    for (seq, t, i, _) in &told {
        let payload = events[*seq as usize].payload.as_array().unwrap();
        assert_eq!(
            payload[..2],
            [Value::from(*t as i64), Value::from(*i as i64)]
        );
    }
    // Each event's time against the time of the commit that wrote it.
    let path_of: std::collections::BTreeMap<u64, Path> =
        told.iter().map(|(seq, _, _, path)| (*seq, *path)).collect();
    let mut checked = 0;
    for commit in db.engine().run_commits(run).unwrap() {
        for key in commit.keys().filter(|k| k.tag() == TypeTag::Event) {
            let Some(seq_bytes) = key.user().strip_prefix(b"e") else {
                continue;
            };
            let seq = u64::from_be_bytes(seq_bytes.try_into().unwrap());
            let event_ms = events[seq as usize].wall_ms;
            match path_of[&seq] {
                Path::Locked => assert_eq!(event_ms, commit.wall_ms, "seq {seq}"),
                _ => assert!(event_ms <= commit.wall_ms, "seq {seq}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, total);
}

#[test]
fn concurrent_transitions_lose_no_update() {
    const PER_THREAD: i64 = 300;
    let db = db();
    db.state(NS).define(RunId::NIL, "counter", 0, None).unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..PER_THREAD {
                    db.state(NS)
                        .transition(RunId::NIL, "counter", |v| v.as_i64().unwrap_or(0) + 1)
                        .unwrap();
                }
            });
        }
    });
    let now = db.state(NS).read_state("counter").unwrap();
    assert_eq!(now.value, Value::Int(2 * PER_THREAD));
    assert_eq!(now.version, 1 + 2 * PER_THREAD as u64);
}

#[test]
fn concurrent_cas_loops_lose_no_update() {
    const PER_THREAD: i64 = 300;
    let db = db();
    db.state(NS).define(RunId::NIL, "counter", 0, None).unwrap();
    let mismatches: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let sm = db.state(NS);
                    let mut mismatches = 0;
                    for _ in 0..PER_THREAD {
                        loop {
                            let cur = sm.read_state("counter").unwrap();
                            let next = cur.value.as_i64().unwrap() + 1;
                            match sm.cas(RunId::NIL, "counter", cur.version, next) {
                                Ok(v) => {
                                    assert_eq!(v, cur.version + 1);
                                    break;
                                }
                                Err(Error::StateVersionMismatch {
                                    current_version, ..
                                }) => {
                                    assert!(current_version > cur.version);
                                    mismatches += 1;
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    mismatches
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let now = db.state(NS).read_state("counter").unwrap();
    assert_eq!(now.value, Value::Int(2 * PER_THREAD));
    assert_eq!(now.version, 1 + 2 * PER_THREAD as u64);
    // Not asserted (scheduling decides), but worth seeing when it fails.
    eprintln!("cas mismatches retried by callers: {mismatches}");
}
