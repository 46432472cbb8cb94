//! [`EngineConfig`], [`Limits`] and [`Retention`], with documented defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::durability::{CheckpointPolicy, Durability, RecoveryMode};
use crate::progress::{Progress, ProgressObserver};

/// A limit for everything a caller can make large.
///
/// ## Defaults
/// - `key_size_bytes_max`: 1 KiB (user bytes of a key)
/// - `value_size_bytes_max`: 1 MiB (as measured by `Value::size_bytes`)
/// - `value_depth_max`: 64 levels of nesting
/// - `txn_writes_count_max`: 100 000 keys written by one transaction
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest key (user bytes).
    pub key_size_bytes_max: usize,
    /// Largest value.
    pub value_size_bytes_max: usize,
    /// Deepest nesting of arrays and objects in a value.
    pub value_depth_max: usize,
    /// Most keys one transaction may write.
    pub txn_writes_count_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            key_size_bytes_max: 1024,
            value_size_bytes_max: 1 << 20,
            value_depth_max: 64,
            txn_writes_count_max: 100_000,
        }
    }
}

/// How much history to keep for point-in-time reads and replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Retention {
    /// Keep every version forever (default; GC only runs for snapshots' sake).
    #[default]
    KeepAll,
    /// Keep the newest `n` versions of each key (`n >= 1`).
    Versions(usize),
    /// Keep every version committed within this window of wall-clock time,
    /// plus the version current at the window's start.
    Window(Duration),
}

/// Isolation level of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Snapshot isolation: reads see the start snapshot; commit aborts if a
    /// key written was committed by someone else after the start
    /// (first committer wins). Allows write skew.
    #[default]
    Snapshot,
    /// Serializable: additionally aborts if any key read or any range
    /// scanned changed after the start.
    Serializable,
}

/// What a thread does after its commit loses a conflict, and how often
/// [`crate::Engine::transaction`] retries.
///
/// The backoff applies to every transaction, explicit ones too:
/// `Transaction::commit` returns the conflict at once, and the same
/// thread's next [`crate::Engine::begin`] waits until the backoff has
/// passed since the conflict (not at all if it comes later). The backoff
/// is `backoff_min` doubled with each further consecutive conflict of the
/// thread, at most `backoff_max`, drawn uniformly from its upper half; a
/// successful commit resets it. Waits under 50 µs spin, longer ones
/// sleep. On a hot key this lets the winner commit a streak instead of the
/// two threads aborting each other every other commit (ARCHITECTURE.md,
/// "Commits on two cores"). A thread whose last 3 commits all lost takes
/// the engine's priority for its next transaction: until it ends, other
/// threads' begins wait (at most `backoff_max`, after which the priority is
/// cleared), so a loser cannot keep losing to a winner that never pauses.
/// `backoff_min: Duration::ZERO` turns the backoff off (not the priority).
///
/// ## Defaults
/// 32 attempts; backoff starts at 1 µs, doubles, capped at 1 ms. (Two
/// threads read-modify-writing one key lose about half their retries each;
/// 32 attempts make giving up a one-in-billions event where 16 gave up
/// about once per 65,000 transactions.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before giving up (>= 1).
    pub attempts: u32,
    /// First backoff.
    pub backoff_min: Duration,
    /// Largest backoff.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 32,
            backoff_min: Duration::from_micros(1),
            backoff_max: Duration::from_millis(1),
        }
    }
}

/// Engine configuration.
///
/// ## Defaults
/// `Limits::default()`, `Retention::KeepAll`, `RetryPolicy::default()`;
/// no directory (`Engine::open` then refuses; `Engine::open_in_memory`
/// ignores every durability setting); `Durability::Strict`;
/// `RecoveryMode::TruncateTornTail`; `CheckpointPolicy::default()` (every
/// 5 min or 64 MiB of WAL); WAL segments of 64 MiB; background threads on;
/// no progress observer.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Size limits.
    pub limits: Limits,
    /// History retention.
    pub retention: Retention,
    /// Retry policy for `Engine::transaction`.
    pub retry: RetryPolicy,
    /// Data directory of a durable engine (`Engine::open`).
    pub dir: Option<PathBuf>,
    /// Default durability of commits (a transaction may override it).
    pub durability: Durability,
    /// What recovery does with damaged WAL records.
    pub recovery: RecoveryMode,
    /// When background checkpoints are written.
    pub checkpoint: CheckpointPolicy,
    /// A WAL segment is closed and a new one started past this size.
    pub wal_segment_size_bytes_max: u64,
    /// WAL segment files grow ahead of their records in steps of this many
    /// bytes (at most the segment size), so that most fdatasyncs need not
    /// write a size change (docs/format.md, "Preallocated segments").
    pub wal_preallocate_step_bytes: u64,
    /// Run the WAL flusher and checkpoint threads. Without them `Batched`
    /// syncs only on its byte trigger, `Async` writes only when its buffer
    /// fills, and checkpoints happen only on demand: for deterministic
    /// crash tests.
    pub background_threads: bool,
    /// Receives progress reports of long work: opening, checkpoints, GC,
    /// and the replays and event-log verifications of the layers above
    /// ([`Progress`]).
    pub progress: Option<ProgressObserver>,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            limits: Limits::default(),
            retention: Retention::default(),
            retry: RetryPolicy::default(),
            dir: None,
            durability: Durability::default(),
            recovery: RecoveryMode::default(),
            checkpoint: CheckpointPolicy::default(),
            wal_segment_size_bytes_max: 64 << 20,
            wal_preallocate_step_bytes: 4 << 20,
            background_threads: true,
            progress: None,
        }
    }
}

impl EngineConfig {
    /// Set the limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Set the retention.
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Set the retry policy.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Set the data directory (for `Engine::open`).
    #[must_use]
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Set the default durability.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Set the recovery mode.
    #[must_use]
    pub fn recovery(mut self, recovery: RecoveryMode) -> Self {
        self.recovery = recovery;
        self
    }

    /// Set the checkpoint triggers.
    #[must_use]
    pub fn checkpoint(mut self, checkpoint: CheckpointPolicy) -> Self {
        self.checkpoint = checkpoint;
        self
    }

    /// Set the WAL segment size.
    #[must_use]
    pub fn wal_segment_size_bytes_max(mut self, bytes: u64) -> Self {
        self.wal_segment_size_bytes_max = bytes;
        self
    }

    /// Set the WAL preallocation step (1 byte: grow with each write).
    #[must_use]
    pub fn wal_preallocate_step_bytes(mut self, bytes: u64) -> Self {
        self.wal_preallocate_step_bytes = bytes;
        self
    }

    /// Turn the background threads on or off.
    #[must_use]
    pub fn background_threads(mut self, on: bool) -> Self {
        self.background_threads = on;
        self
    }

    /// Report the progress of long work (opening a durable database,
    /// checkpoints, GC passes; replays and event-log verifications, which
    /// the layers above report through this engine's observer) to
    /// `observer`, on the thread doing the
    /// work: it must return quickly and not call into the engine; a panic
    /// in it is caught and ignored (see [`Progress`]).
    #[must_use]
    pub fn progress(mut self, observer: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(ProgressObserver::new(observer));
        self
    }
}
