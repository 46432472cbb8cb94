//! T4, real crashes: a child process (this test binary re-invoked with
//! `REWINDDB_CRASH_CHILD` set) commits as fast as it can, checkpointing
//! often, and is SIGKILLed at a random moment (during open, commits and
//! checkpoints alike), 100 times per durability mode on one directory.
//! After each kill the directory must open, hold a gap-free prefix of the
//! child's commits (nothing invented, nothing twice), and, in strict mode,
//! every commit the child acknowledged; in every mode every version the
//! child saw reported durable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rewinddb_engine::{
    CheckpointPolicy, Durability, Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope,
    TypeTag, Value,
};

const CHILD_ENV: &str = "REWINDDB_CRASH_CHILD";
const KILLS_PER_MODE: usize = 100;

fn key(name: &str) -> Key {
    Key::new(
        Namespace::new("t4").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        name,
    )
}

fn mode_named(name: &str) -> Durability {
    match name {
        "strict" => Durability::Strict,
        "batched" => Durability::Batched {
            interval: Duration::from_millis(2),
            bytes: 4096,
        },
        _ => Durability::Async,
    }
}

fn config(dir: &Path, mode: Durability) -> EngineConfig {
    EngineConfig::default()
        .dir(dir)
        .durability(mode)
        .wal_segment_size_bytes_max(16 << 10)
        .checkpoint(CheckpointPolicy {
            interval: Some(Duration::from_millis(20)),
            wal_bytes: Some(32 << 10),
        })
}

/// The child: commit `n = n + 1` (plus a rotating key) forever, printing
/// `ack <version> <durable version>` after each acknowledged commit.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // Not a child: nothing to do.
    };
    let (mode, dir) = spec.split_once(':').unwrap();
    let engine = match Engine::open(config(Path::new(dir), mode_named(mode))) {
        Ok(e) => e,
        Err(e) => {
            println!("open-error {e}");
            std::process::exit(3);
        }
    };
    let out = std::io::stdout();
    writeln!(out.lock(), "ready").unwrap();
    let run = RunId::new();
    for i in 0u64.. {
        let mut txn = engine.begin(run, Isolation::Snapshot);
        let n = txn
            .get(&key("n"))
            .unwrap()
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        txn.put(key("n"), n + 1).unwrap();
        txn.put(key(&format!("k{}", n % 50)), "x".repeat((n % 200) as usize))
            .unwrap();
        let v = txn.commit().unwrap();
        writeln!(out.lock(), "ack {v} {}", engine.durable_version()).unwrap();
        if i % 40 == 39 {
            writeln!(out.lock(), "ckpt").unwrap();
            engine.checkpoint().unwrap();
            writeln!(out.lock(), "ckpt-done").unwrap();
        }
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the parent read from a child.
#[derive(Clone, Default)]
struct Seen {
    acked: u64,
    durable: u64,
    open_error: String,
    last_line: String,
    ready: bool,
}

fn read_acks(stdout: std::process::ChildStdout, seen: Arc<Mutex<Seen>>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut s = seen.lock().unwrap();
        if let Some(rest) = line.strip_prefix("ack ") {
            let mut parts = rest.split(' ').map(|p| p.parse::<u64>().unwrap());
            s.acked = s.acked.max(parts.next().unwrap());
            s.durable = s.durable.max(parts.next().unwrap());
        } else if line.starts_with("open-error") {
            s.open_error = line.clone();
        }
        // libtest prints "test crash_child ... " without a newline first.
        s.ready |= line.ends_with("ready");
        s.last_line = line;
    }
}

/// The directory holds exactly `n = 1..=V`, one per version.
fn verify(dir: &Path, mode: Durability) -> u64 {
    let engine = Engine::open(config(dir, mode).background_threads(false)).unwrap();
    let v = engine.visible_version();
    let history = engine.history(&key("n"), u64::MAX);
    let want: Vec<(u64, Option<Value>)> = (1..=v)
        .rev()
        .map(|i| (i, Some(Value::Int(i as i64))))
        .collect();
    let got: Vec<(u64, Option<Value>)> = history.into_iter().map(|(c, _, val)| (c, val)).collect();
    assert_eq!(got, want, "the recovered history of n is not 1..={v}");
    v
}

fn kill_repeatedly(mode_name: &str) {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = TempDir(std::env::temp_dir().join(format!(
        "rewinddb-sigkill-{mode_name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )));
    let mode = mode_named(mode_name);
    let exe = std::env::current_exe().unwrap();
    let mut rng = fastrand::Rng::with_seed(0x5161 + mode_name.len() as u64);
    let mut recovered = 0;
    let (mut during_open, mut during_checkpoint) = (0, 0);
    let started = Instant::now();
    for kill in 0..KILLS_PER_MODE {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{mode_name}:{}", dir.0.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let reader = {
            let stdout = child.stdout.take().unwrap();
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || read_acks(stdout, seen))
        };
        // From 0 ms (during exec and open) to 60 ms (well into commits and
        // checkpoints).
        std::thread::sleep(Duration::from_micros(rng.u64(0..60_000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let Seen {
            acked,
            durable,
            open_error,
            last_line,
            ready,
        } = seen.lock().unwrap().clone();
        assert!(
            open_error.is_empty(),
            "kill {kill}: child could not open: {open_error}"
        );
        // Killed before "ready": during exec or open (recovery).
        during_open += usize::from(!ready);
        during_checkpoint += usize::from(last_line == "ckpt");
        let v = verify(&dir.0, mode);
        assert!(
            v >= durable,
            "kill {kill} ({mode_name}): durable {durable} but recovered {v}"
        );
        if mode == Durability::Strict {
            assert!(
                v >= acked,
                "kill {kill}: acknowledged {acked} but recovered {v}"
            );
        }
        assert!(
            v >= recovered,
            "kill {kill}: went back from {recovered} to {v}"
        );
        recovered = v;
    }
    assert!(recovered > 0, "the children never committed");
    assert!(during_open > 0, "no kill landed before the child was ready");
    eprintln!(
        "{mode_name}: {KILLS_PER_MODE} kills ({during_open} before ready, {during_checkpoint} \
         inside an explicit checkpoint), {recovered} commits recovered, {:?}",
        started.elapsed()
    );
}

/// One test, modes in sequence: a `flock` belongs to the open file
/// description, which a process forked by a parallel test (between fork
/// and exec) would briefly share, holding the lock past our drop.
#[test]
fn sigkills_keep_acknowledged_commits_in_every_mode() {
    // Strict: every acknowledged commit; batched: every commit reported
    // durable; async: a prefix.
    for mode in ["strict", "batched", "async"] {
        kill_repeatedly(mode);
    }
}
