//! [`Engine`]: the store, the visible-version watermark, the commit path,
//! snapshots and GC.
//!
//! ## Commit protocol (in-memory path)
//! Under the commit lock, in this order:
//! 1. validate the transaction against the newest *installed* versions;
//! 2. take the next commit version `v = last + 1`;
//! 3. (durable engines) append the commit record to the WAL buffer;
//! 4. install every write as the new head of its key's chain;
//! 5. record the commit in the per-run index and the time index;
//! 6. publish: `visible = v` (release).
//!
//! A reader loads `visible` (acquire) and reads each chain at that version,
//! so it sees all of a commit or none of it: every version `<= visible` was
//! fully installed before `visible` was raised past it.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::{EngineConfig, Isolation, Retention};
use crate::error::{Error, Result};
use crate::record::RunCommit;
use crate::snapshot::SnapshotTracker;
use crate::store::{Store, Versioned};
use crate::sync::{AtomicU64, Ordering};
use crate::time_index::TimeIndex;
use crate::txn::Transaction;
use crate::types::{Key, RunId, Version};
use crate::value::Value;

/// A handle to an engine; cheap to clone, shared by threads.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

/// State guarded by the commit lock.
#[derive(Default)]
pub(crate) struct CommitState {
    /// Last commit version taken (installed, maybe not yet visible).
    pub(crate) last: Version,
    /// Per run: its commits, in order (derived data).
    pub(crate) runs: HashMap<RunId, Vec<RunCommit>>,
    /// Commit times.
    pub(crate) times: TimeIndex,
    /// Planted bug for tests: commit without validating.
    #[cfg(feature = "test-hooks")]
    pub(crate) skip_validation: bool,
}

impl CommitState {
    /// True if commit validation was switched off by a test hook. A
    /// constant `false` without the `test-hooks` feature.
    #[inline(always)]
    pub(crate) fn skips_validation(&self) -> bool {
        #[cfg(feature = "test-hooks")]
        return self.skip_validation;
        #[cfg(not(feature = "test-hooks"))]
        false
    }
}

pub(crate) struct EngineInner {
    pub(crate) config: EngineConfig,
    pub(crate) store: Store,
    /// Newest version readers may see.
    pub(crate) visible: AtomicU64,
    pub(crate) snapshots: SnapshotTracker,
    pub(crate) commit: Mutex<CommitState>,
    gc_lock: Mutex<()>,
    /// Versions linked into chains (decremented when GC unlinks).
    pub(crate) linked_versions: AtomicU64,
}

/// Counters describing an engine, for tests and monitoring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineStats {
    /// Keys ever written (tombstoned keys included).
    pub keys: usize,
    /// Versions linked in chains.
    pub versions: u64,
    /// Newest visible version.
    pub visible: Version,
    /// Live snapshots and transactions.
    pub live_snapshots: usize,
    /// Oldest version `snapshot_at` accepts.
    pub retention_floor: Version,
}

/// What one GC pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Chains visited.
    pub chains: usize,
    /// Versions unlinked and handed to epoch reclamation.
    pub unlinked: usize,
    /// Oldest version a live reader held during the pass.
    pub oldest_reader: Version,
    /// Retention floor after the pass.
    pub floor: Version,
}

impl Engine {
    /// An engine with no files at all.
    pub fn open_in_memory(config: EngineConfig) -> Result<Engine> {
        if let Retention::Versions(0) = config.retention {
            return Err(Error::InvalidArgument(
                "Retention::Versions(n) needs n >= 1".into(),
            ));
        }
        if config.retry.attempts == 0 {
            return Err(Error::InvalidArgument(
                "RetryPolicy::attempts must be >= 1".into(),
            ));
        }
        Ok(Engine {
            inner: Arc::new(EngineInner {
                config,
                store: Store::default(),
                visible: AtomicU64::new(0),
                snapshots: SnapshotTracker::default(),
                commit: Mutex::new(CommitState::default()),
                gc_lock: Mutex::new(()),
                linked_versions: AtomicU64::new(0),
            }),
        })
    }

    /// Test hook: switch commit validation off (`true`) or back on, so
    /// tests can show that their checkers catch a broken engine.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn set_skip_commit_validation(&self, skip: bool) {
        self.inner.commit.lock().skip_validation = skip;
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Newest version readers can see.
    pub fn visible_version(&self) -> Version {
        self.inner.visible.load(Ordering::Acquire)
    }

    /// A snapshot of the newest visible state. O(1): one atomic load and a
    /// registration; nothing is copied.
    pub fn snapshot(&self) -> Snapshot {
        let version = self.inner.snapshots.register_visible(&self.inner.visible);
        Snapshot {
            inner: Arc::clone(&self.inner),
            version,
        }
    }

    /// A snapshot of the past state at `version`: an error if `version` is
    /// in the future or behind the retention floor.
    pub fn snapshot_at(&self, version: Version) -> Result<Snapshot> {
        self.inner
            .snapshots
            .register_at(version, &self.inner.visible)?;
        Ok(Snapshot {
            inner: Arc::clone(&self.inner),
            version,
        })
    }

    /// Begin an explicit transaction on behalf of `run`.
    pub fn begin(&self, run: RunId, isolation: Isolation) -> Transaction {
        Transaction::new(self.snapshot(), run, isolation)
    }

    /// Run `f` in a transaction and commit it, retrying on conflict with
    /// bounded exponential backoff (`EngineConfig::retry`). `f` must be
    /// re-runnable. Returns `f`'s result and the commit version.
    pub fn transaction<T>(
        &self,
        run: RunId,
        isolation: Isolation,
        mut f: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<(T, Version)> {
        let policy = self.inner.config.retry;
        let mut backoff = policy.backoff_min;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut txn = self.begin(run, isolation);
            let outcome = f(&mut txn).and_then(|t| txn.commit().map(|v| (t, v)));
            match outcome {
                Err(e) if e.is_conflict() => {
                    if attempt >= policy.attempts {
                        return Err(Error::RetriesExhausted {
                            attempts: attempt,
                            last: Box::new(e),
                        });
                    }
                    let jitter = fastrand::u64(0..=backoff.as_nanos() as u64);
                    std::thread::sleep(std::time::Duration::from_nanos(jitter));
                    backoff = (backoff * 2).min(policy.backoff_max);
                }
                other => return other,
            }
        }
    }

    /// One GC pass: unlink versions no live reader and no retention rule
    /// needs, and hand them to epoch reclamation.
    pub fn gc(&self) -> GcStats {
        let inner = &*self.inner;
        let _gc = inner.gc_lock.lock();
        let retention_floor = match inner.config.retention {
            Retention::KeepAll | Retention::Versions(_) => 0,
            Retention::Window(w) => {
                let now = crate::clock::wall_clock_ms();
                let cutoff = now.saturating_sub(w.as_millis() as u64);
                inner
                    .commit
                    .lock()
                    .times
                    .version_at(cutoff, self.visible_version())
            }
        };
        let (oldest_reader, floor) = inner.snapshots.horizons(&inner.visible, retention_floor);
        let mut stats = GcStats {
            oldest_reader,
            floor,
            ..GcStats::default()
        };
        if inner.config.retention == Retention::KeepAll {
            return stats;
        }
        let guard = crossbeam_epoch::pin();
        inner.store.for_each_chain(|_, chain| {
            stats.chains += 1;
            // Keep every version down to the one answering reads at
            // `keep_from`. Named by commit version, not by position, so a
            // concurrent push cannot shift the cut past a pinned version.
            let keep_from = match inner.config.retention {
                Retention::KeepAll => None,
                Retention::Window(_) => Some(floor),
                // The n-th newest, or older if the oldest reader needs it. A
                // key with fewer than n versions keeps them all.
                Retention::Versions(n) => chain
                    .iter(&guard)
                    .nth(n.saturating_sub(1))
                    .map(|nth| nth.commit.min(oldest_reader)),
            };
            if let Some(at) = keep_from {
                stats.unlinked += chain.truncate_older_than(at, &guard);
            }
        });
        inner
            .linked_versions
            .fetch_sub(stats.unlinked as u64, Ordering::AcqRel);
        guard.flush();
        stats
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            keys: self.inner.store.key_count(),
            versions: self.inner.linked_versions.load(Ordering::Acquire),
            visible: self.visible_version(),
            live_snapshots: self.inner.snapshots.count(),
            retention_floor: self.inner.snapshots.floor(),
        }
    }

    /// The commits of `run` visible now, in order (derived per-run index).
    /// Empty if the run never committed.
    pub fn run_commits(&self, run: RunId) -> Vec<RunCommit> {
        let visible = self.visible_version();
        let state = self.inner.commit.lock();
        state
            .runs
            .get(&run)
            .map(|c| {
                c.iter()
                    .take_while(|c| c.version <= visible)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Newest visible version committed at or before wall-clock `ms`.
    pub fn version_at_time(&self, ms: u64) -> Version {
        let visible = self.visible_version();
        self.inner.commit.lock().times.version_at(ms, visible)
    }

    /// Wall-clock milliseconds at which `version` committed (0 if unknown:
    /// version 0, or a version not visible yet).
    pub fn commit_time(&self, version: Version) -> u64 {
        if version > self.visible_version() {
            return 0;
        }
        self.inner.commit.lock().times.time_of(version)
    }

    /// Every linked version of `key` with `commit <= at`, newest first,
    /// as (commit, run, value). For replay and checkpoints.
    pub fn history(&self, key: &Key, at: Version) -> Vec<(Version, RunId, Option<Value>)> {
        let Some(chain) = self.inner.store.chain(key) else {
            return Vec::new();
        };
        let guard = crossbeam_epoch::pin();
        chain
            .iter(&guard)
            .filter(|n| n.commit <= at)
            .map(|n| (n.commit, n.run, n.value.clone()))
            .collect()
    }

    /// The version of `key` written by exactly commit `version`, if any:
    /// `Some(value)` (None inside = tombstone).
    pub fn version_of(&self, key: &Key, version: Version) -> Option<Option<Value>> {
        let chain = self.inner.store.chain(key)?;
        let guard = crossbeam_epoch::pin();
        chain
            .iter(&guard)
            .find(|n| n.commit <= version)
            .filter(|n| n.commit == version)
            .map(|n| n.value.clone())
    }
}

/// A consistent view of the database at one version. O(1) to create;
/// holds its version against GC until dropped.
pub struct Snapshot {
    pub(crate) inner: Arc<EngineInner>,
    version: Version,
}

impl Snapshot {
    /// The version this snapshot reads at.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The value of `key` at this snapshot.
    pub fn get(&self, key: &Key) -> Result<Option<Value>> {
        self.get_versioned(key).map(|(v, _)| v)
    }

    /// The value of `key` and the commit version that wrote it (0 = never).
    pub fn get_versioned(&self, key: &Key) -> Result<Versioned> {
        check_key(&self.inner.config, key)?;
        self.inner.store.read_at(key, self.version)
    }

    /// Live keys with `prefix`, after `after`, in key order, at most `limit`.
    pub fn scan(
        &self,
        prefix: &Key,
        after: Option<&Key>,
        limit: usize,
    ) -> Result<Vec<(Key, Value)>> {
        check_key(&self.inner.config, prefix)?;
        Ok(self
            .inner
            .store
            .scan_at(prefix, after, self.version, limit)?
            .into_iter()
            .map(|(k, v, _)| (k, v))
            .collect())
    }
}

impl Clone for Snapshot {
    fn clone(&self) -> Snapshot {
        self.inner.snapshots.register(self.version);
        Snapshot {
            inner: Arc::clone(&self.inner),
            version: self.version,
        }
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.inner.snapshots.release(self.version);
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({})", self.version)
    }
}

pub(crate) fn check_key(config: &EngineConfig, key: &Key) -> Result<()> {
    let max = config.limits.key_size_bytes_max;
    if key.size_bytes() > max {
        return Err(Error::KeyTooLarge {
            size: key.size_bytes(),
            max,
        });
    }
    Ok(())
}

pub(crate) fn check_value(config: &EngineConfig, value: &Value) -> Result<()> {
    let max = config.limits.value_size_bytes_max;
    let size = value.size_bytes();
    if size > max {
        return Err(Error::ValueTooLarge { size, max });
    }
    let depth = value.depth();
    if depth > config.limits.value_depth_max {
        return Err(Error::ValueTooDeep {
            depth,
            max: config.limits.value_depth_max,
        });
    }
    Ok(())
}
