//! Durable engines on a real directory: commits survive reopen with their
//! history, run index and times; group commit shares fdatasyncs; a
//! non-strict commit never makes an earlier unsynced strict one visible;
//! bad input (a file as directory, an unusable path, a second opener, files
//! of a newer format) is a clear error that changes nothing on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use rewinddb_engine::durability::io::Storage;
use rewinddb_engine::durability::{FsStorage, MemStorage, SyncHook, SyncHooked, wal};
use rewinddb_engine::{
    CheckpointPolicy, Durability, Engine, EngineConfig, Error, Isolation, Key, Namespace, RunId,
    Scope, TypeTag, Value,
};

/// A fresh, empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "rewinddb-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key(user: &str) -> Key {
    Key::new(
        Namespace::new("d/open").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        user,
    )
}

fn config(dir: &Path) -> EngineConfig {
    EngineConfig::default()
        .dir(dir)
        .checkpoint(CheckpointPolicy::MANUAL)
}

fn put(engine: &Engine, run: RunId, k: &str, v: impl Into<Value>) -> u64 {
    let mut txn = engine.begin(run, Isolation::Snapshot);
    txn.put(key(k), v).unwrap();
    txn.commit().unwrap()
}

fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn commits_history_runs_and_times_survive_reopen_in_every_mode() {
    let modes = [
        Durability::Strict,
        Durability::Batched {
            interval: std::time::Duration::from_millis(5),
            bytes: 1 << 20,
        },
        Durability::Async,
    ];
    for mode in modes {
        let dir = TempDir::new("reopen");
        let run = RunId::new();
        let engine = Engine::open(config(dir.path()).durability(mode)).unwrap();
        let v1 = put(&engine, run, "a", 1);
        let v2 = put(&engine, RunId::NIL, "a", "two");
        let mut txn = engine.begin(run, Isolation::Snapshot);
        txn.delete(key("a")).unwrap();
        txn.put(key("b"), vec![1u8, 2, 3]).unwrap();
        let v3 = txn.commit().unwrap();
        let t2 = engine.commit_time(v2).unwrap();
        drop(engine);

        let engine = Engine::open(config(dir.path()).durability(mode)).unwrap();
        assert_eq!(engine.visible_version(), v3, "{mode:?}");
        assert_eq!(
            engine.history(&key("a"), u64::MAX),
            vec![
                (v3, run, None),
                (v2, RunId::NIL, Some(Value::from("two"))),
                (v1, run, Some(Value::Int(1))),
            ]
        );
        assert_eq!(
            engine.snapshot_at(v1).unwrap().get(&key("a")).unwrap(),
            Some(Value::Int(1))
        );
        let commits: Vec<_> = engine
            .run_commits(run)
            .unwrap()
            .iter()
            .map(|c| c.version)
            .collect();
        assert_eq!(commits, vec![v1, v3]);
        assert_eq!(engine.commit_time(v2).unwrap(), t2);
        // New commits continue the version sequence.
        assert_eq!(put(&engine, run, "c", 3), v3 + 1);
    }
}

#[test]
fn checkpoints_keep_history_and_prune_the_wal() {
    let dir = TempDir::new("ckpt");
    let run = RunId::new();
    let cfg = config(dir.path()).wal_segment_size_bytes_max(4096);
    let engine = Engine::open(cfg.clone()).unwrap();
    for i in 0..200 {
        put(&engine, run, &format!("k{}", i % 10), i);
        if i == 80 || i == 160 {
            engine.checkpoint().unwrap();
        }
    }
    assert_eq!(engine.checkpoint().unwrap(), 200);
    let names: Vec<String> = listing(dir.path()).into_iter().map(|(n, _)| n).collect();
    let ckpts: Vec<_> = names.iter().filter(|n| n.ends_with(".ckpt")).collect();
    assert_eq!(ckpts.len(), 2, "{names:?}");
    // Checkpoints at 81, 161 and 200; the WAL is kept from the older kept
    // one (161) on and no further back: the oldest segment holds 162.
    let mut firsts: Vec<u64> = names
        .iter()
        .filter_map(|n| wal::parse_segment_name(n))
        .collect();
    firsts.sort_unstable();
    assert!(
        firsts[0] <= 162 && firsts.get(1).is_none_or(|&f| f > 162),
        "{firsts:?}"
    );
    drop(engine);

    let engine = Engine::open(cfg).unwrap();
    assert_eq!(engine.visible_version(), 200);
    let hist = engine.history(&key("k3"), u64::MAX);
    assert_eq!(hist.len(), 20);
    assert_eq!(hist.last().unwrap().2, Some(Value::Int(3)));
    assert_eq!(engine.run_commits(run).unwrap().len(), 200);
    assert_eq!(
        engine.snapshot_at(17).unwrap().get(&key("k6")).unwrap(),
        Some(Value::Int(16))
    );
}

/// Where a test holds the next sync: the sync waits at the barrier twice
/// (once to say it is in, once to be released).
type Gate = Arc<Mutex<Option<Arc<Barrier>>>>;

/// `inner` with counted syncs, and a gate that can hold one sync until
/// released.
fn instrumented(inner: Arc<dyn Storage>) -> (Arc<SyncHooked>, Arc<AtomicU64>, Gate) {
    let syncs = Arc::new(AtomicU64::new(0));
    let gate = Gate::default();
    let (counted, gated) = (Arc::clone(&syncs), Arc::clone(&gate));
    let hook: Arc<SyncHook> = Arc::new(move |sync| {
        counted.fetch_add(1, Ordering::Relaxed);
        let held = gated.lock().unwrap().take();
        if let Some(b) = held {
            b.wait(); // tell the test we are in sync
            b.wait(); // wait to be released
        }
        sync()
    });
    (Arc::new(SyncHooked::new(inner, hook)), syncs, gate)
}

#[test]
fn concurrent_strict_committers_share_fdatasyncs() {
    let dir = TempDir::new("group");
    let (storage, syncs, _) = instrumented(Arc::new(FsStorage::open(dir.path()).unwrap()));
    let cfg = config(dir.path()).background_threads(false);
    let engine = Engine::open_with_storage(cfg.clone(), storage).unwrap();
    let before = syncs.load(Ordering::Relaxed);
    let threads = 32;
    let per_thread = 20;
    std::thread::scope(|s| {
        for t in 0..threads {
            let engine = &engine;
            s.spawn(move || {
                for i in 0..per_thread {
                    let v = put(engine, RunId::NIL, &format!("t{t}"), i);
                    // Acknowledged means durable and visible.
                    assert!(engine.durable_version() >= v);
                    assert!(engine.visible_version() >= v);
                }
            });
        }
    });
    let commits = (threads * per_thread) as u64;
    let used = syncs.load(Ordering::Relaxed) - before;
    assert!(
        used < commits,
        "{used} fdatasyncs for {commits} strict commits: no grouping"
    );
    drop(engine);
    let engine = Engine::open(cfg).unwrap();
    assert_eq!(engine.visible_version(), commits);
}

#[test]
fn a_weaker_commit_never_publishes_an_earlier_unsynced_strict_one() {
    let (storage, _, gate) = instrumented(Arc::new(MemStorage::new()));
    let cfg = EngineConfig::default().background_threads(false);
    let engine = Engine::open_with_storage(cfg, storage).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    *gate.lock().unwrap() = Some(Arc::clone(&barrier));
    let strict = {
        let engine = engine.clone();
        std::thread::spawn(move || put(&engine, RunId::NIL, "strict", 1))
    };
    barrier.wait(); // the strict commit (version 1) is inside its fdatasync
    assert_eq!(engine.visible_version(), 0, "visible before durable");
    let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
    txn.set_durability(Durability::Async).unwrap();
    txn.put(key("async"), 2).unwrap();
    assert_eq!(txn.commit().unwrap(), 2);
    assert_eq!(
        engine.visible_version(),
        0,
        "the async commit published the strict one"
    );
    assert_eq!(engine.snapshot().get(&key("async")).unwrap(), None);
    barrier.wait();
    assert_eq!(strict.join().unwrap(), 1);
    assert!(engine.visible_version() >= 1);
    let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
    assert!(txn.set_durability(Durability::InMemory).is_err());
}

#[test]
fn a_second_opener_is_refused_until_the_first_is_dropped() {
    let dir = TempDir::new("lock");
    let engine = Engine::open(config(dir.path())).unwrap();
    put(&engine, RunId::NIL, "a", 1);
    let before = listing(dir.path());
    match Engine::open(config(dir.path())) {
        Err(Error::Locked(d)) => assert!(d.contains("rewinddb-lock"), "{d}"),
        other => panic!("second open: {:?}", other.map(|_| ())),
    }
    assert_eq!(listing(dir.path()), before);
    drop(engine);
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(engine.visible_version(), 1);
}

#[test]
fn a_file_or_an_unusable_path_is_a_clear_error() {
    let dir = TempDir::new("file");
    std::fs::create_dir_all(dir.path()).unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, b"not a database").unwrap();
    let err = Engine::open(config(&file)).map(|_| ()).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(ref m) if m.contains("not a directory")),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"not a database");
    // A directory below a file cannot be created.
    let err = Engine::open(config(&file.join("below")))
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let err = Engine::open(EngineConfig::default())
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn files_of_a_newer_format_are_refused_and_left_alone() {
    // A WAL segment.
    let dir = TempDir::new("newer-wal");
    drop(Engine::open(config(dir.path())).unwrap());
    let seg = dir.path().join(wal::segment_name(1));
    let mut h = std::fs::read(&seg).unwrap();
    h[8..12].copy_from_slice(&(wal::FORMAT_VERSION + 1).to_le_bytes());
    let crc = crc32(&h[0..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &h).unwrap();
    let before = listing(dir.path());
    let err = Engine::open(config(dir.path())).map(|_| ()).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedFormat { found: 2, .. }),
        "{err}"
    );
    assert_eq!(listing(dir.path()), before);

    // A checkpoint.
    let dir = TempDir::new("newer-ckpt");
    let engine = Engine::open(config(dir.path())).unwrap();
    put(&engine, RunId::NIL, "a", 1);
    let v = engine.checkpoint().unwrap();
    drop(engine);
    let path = dir.path().join(format!("checkpoint-{v:020}.ckpt"));
    let mut c = std::fs::read(&path).unwrap();
    c[8..12].copy_from_slice(&9u32.to_le_bytes());
    let crc = crc32(&c[..44]);
    c[44..48].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &c).unwrap();
    let before = listing(dir.path());
    let err = Engine::open(config(dir.path())).map(|_| ()).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedFormat { found: 9, .. }),
        "{err}"
    );
    assert_eq!(listing(dir.path()), before);
}

/// CRC-32 (IEEE), bitwise; the tests do not depend on crc32fast.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Polls until a checkpoint file exists (background thread) or 10 s pass.
fn wait_for_checkpoint(dir: &Path) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if listing(dir).iter().any(|(n, _)| n.ends_with(".ckpt")) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

#[test]
fn background_checkpoints_fire_on_wal_bytes_and_on_time() {
    let by_bytes = CheckpointPolicy {
        interval: None,
        wal_bytes: Some(2048),
    };
    let by_time = CheckpointPolicy {
        interval: Some(std::time::Duration::from_millis(50)),
        wal_bytes: None,
    };
    for (policy, commits) in [(by_bytes, 100), (by_time, 1)] {
        let dir = TempDir::new("trigger");
        let engine =
            Engine::open(EngineConfig::default().dir(dir.path()).checkpoint(policy)).unwrap();
        for i in 0..commits {
            put(&engine, RunId::NIL, &format!("k{i}"), i);
        }
        assert!(
            wait_for_checkpoint(dir.path()),
            "{policy:?}: no background checkpoint"
        );
        drop(engine);
        let engine = Engine::open(config(dir.path())).unwrap();
        assert_eq!(engine.visible_version(), commits as u64);
    }
    // Nothing committed: the time trigger writes nothing.
    let dir = TempDir::new("trigger-idle");
    let engine = Engine::open(EngineConfig::default().dir(dir.path()).checkpoint(by_time)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !listing(dir.path())
            .iter()
            .any(|(n, _)| n.ends_with(".ckpt"))
    );
    drop(engine);
}
