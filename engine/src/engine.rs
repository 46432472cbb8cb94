//! [`Engine`]: the store, the visible-version watermark, the commit path,
//! snapshots and GC.
//!
//! ## Commit protocol
//! Under the commit lock, in this order:
//! 1. validate the transaction against the newest *installed* versions;
//! 2. take the next commit version `v = last + 1`;
//! 3. (durable engines) append the framed commit record to the WAL buffer
//!    (`CommitState::wal_buf`; the payload was encoded before the lock);
//! 4. install every write as the new head of its key's chain;
//! 5. record the commit in the per-run index and the time index;
//! 6. publish: in memory, `visible = v` (release, `publish`). Durable
//!    engines raise `visible` to the newest version below the oldest strict
//!    commit whose record is not yet synced (`EngineInner::publish_ready`).
//!
//! Then, outside the lock, a strict commit waits for its record to be
//! synced (group commit, `durability/mod.rs`); the syncing thread publishes
//! again. A reader loads `visible` (acquire) and reads each chain at that
//! version, so it sees all of a commit or none of it: every version
//! `<= visible` was fully installed before `visible` was raised past it,
//! and in strict mode its record was synced too. docs/format.md lists what
//! a crash between any two steps leaves.
//!
//! ## Locked transactions
//! [`Engine::transaction_locked`] takes the commit lock *before* its
//! closure reads, reads the newest installed versions (chain heads), and
//! runs steps 2-6 when the closure returns `Ok`, without step 1. Sound
//! because versions are installed only by commit-lock holders: between
//! its reads and its install nothing else was installed, so each key it
//! read still has the version it saw, exactly what step 1 would check.
//! An optimistic transaction that read a key it wrote fails its own step 1
//! later (that key's newest commit moved past its start), as after any
//! commit. It takes no snapshot registration (chain heads are never
//! unlinked by GC) and never retries. The price: every other committer
//! waits while the closure runs, so only short, bounded closures belong
//! there (the facade's single event append).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::{EngineConfig, Isolation, Retention};
use crate::durability::io::{FsStorage, Storage};
use crate::durability::{Durability, Durable};
use crate::error::{Error, Result};
use crate::progress::{Progress, ProgressCounter};
use crate::record::RunCommit;
use crate::reentry::ClosureThread;
use crate::snapshot::{Registration, SnapshotTracker};
use crate::store::{Store, Versioned};
use crate::sync::{AtomicU64, Ordering};
use crate::time_index::TimeIndex;
use crate::txn::Transaction;
use crate::types::{Family, Key, Namespace, RunId, Scope, TypeTag, Version};
use crate::value::{Value, ValueRef};

/// A handle to an engine; cheap to clone, shared by threads. When the
/// last handle is dropped a durable engine is closed: it stops its
/// background threads, syncs its WAL and releases its directory. Snapshots
/// that outlive it can still read; transactions can no longer commit.
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl Engine {
    fn from_inner(inner: EngineInner) -> Engine {
        inner.handles.store(1, Ordering::Relaxed);
        Engine {
            inner: Arc::new(inner),
        }
    }
}

impl Clone for Engine {
    fn clone(&self) -> Engine {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        Engine {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Background threads hold the engine only for a moment at a time;
        // stopping them here (joined) makes the drop of the last handle, on
        // this thread, release the directory lock before it returns.
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(d) = &self.inner.durable {
                let _ = d.close(&self.inner);
            }
        }
    }
}

/// State guarded by the commit lock.
#[derive(Default)]
pub(crate) struct CommitState {
    /// Last commit version taken (installed, maybe not yet visible).
    pub(crate) last: Version,
    /// Per run: its commits, in order (derived data).
    pub(crate) runs: HashMap<RunId, Vec<RunCommit>, foldhash::fast::RandomState>,
    /// Commit times.
    pub(crate) times: TimeIndex,
    /// Framed WAL records not yet handed to the file (durable engines).
    pub(crate) wal_buf: Vec<u8>,
    /// Strict commits whose records are not yet synced, oldest first.
    pub(crate) strict_pending: VecDeque<Version>,
    /// Planted bug for tests: commit without validating.
    #[cfg(feature = "test-hooks")]
    pub(crate) skip_validation: bool,
    /// Planted bug for tests: a locked transaction releases the commit
    /// lock while its closure runs (and takes it again to commit).
    #[cfg(feature = "test-hooks")]
    pub(crate) unlock_locked_closures: bool,
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
    /// The thread running a locked transaction's closure, if any: paths
    /// that take `commit` for a caller refuse it (`reentry.rs`).
    pub(crate) closure_thread: ClosureThread,
    gc_lock: Mutex<()>,
    /// Versions ever linked into chains (by commits and by recovery).
    /// Written only under the commit lock, by a load and a store: no
    /// locked instruction on the commit path (a `fetch_add` here cost W6
    /// with one hot key 2-3%: `examples/hot_commits`, fast mode, 2.87M
    /// against 2.93M commits/s, means of 10 alternated rounds).
    pub(crate) linked_versions: AtomicU64,
    /// Versions GC unlinked (under the GC lock). Linked now:
    /// `linked_versions - unlinked_versions`.
    unlinked_versions: AtomicU64,
    /// Held by the transaction of a thread that kept losing conflicts;
    /// other threads' begins wait for it (`backoff.rs`).
    pub(crate) priority: crate::backoff::PriorityFlag,
    /// WAL, checkpoints and their threads; `None` in memory.
    pub(crate) durable: Option<Durable>,
    /// Live `Engine` handles (background threads hold none).
    handles: AtomicU64,
}

impl EngineInner {
    /// Under the commit lock: raise `visible` to the newest installed
    /// version that is not behind a strict commit still waiting for its
    /// sync, so no reader sees a commit a crash could take back.
    pub(crate) fn publish_ready(&self, state: &CommitState) {
        let ready = state.strict_pending.front().map_or(state.last, |&v| v - 1);
        if ready > self.visible.load(Ordering::Relaxed) {
            publish(&self.visible, ready);
        }
    }

    /// After a sync through `synced`: release the strict commits it made
    /// durable and publish.
    pub(crate) fn publish_durable(&self, synced: Version) {
        let mut state = self.commit.lock();
        while state.strict_pending.front().is_some_and(|&v| v <= synced) {
            state.strict_pending.pop_front();
        }
        self.publish_ready(&state);
    }
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        if let Some(d) = &self.durable {
            // Best effort: a failure here was or will be reported by a commit.
            let _ = d.shutdown(self);
        }
    }
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
    /// Chains visited: one per key, though a key created during the pass
    /// may be missed and, if the key index grows meanwhile, some counted
    /// twice.
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
        check_config(&config)?;
        Ok(Engine::from_inner(EngineInner {
            config,
            store: Store::default(),
            visible: AtomicU64::new(0),
            snapshots: SnapshotTracker::default(),
            commit: Mutex::new(CommitState::default()),
            closure_thread: ClosureThread::default(),
            gc_lock: Mutex::new(()),
            linked_versions: AtomicU64::new(0),
            unlinked_versions: AtomicU64::new(0),
            priority: Default::default(),
            durable: None,
            handles: AtomicU64::new(1),
        }))
    }

    /// Test hook: switch commit validation off (`true`) or back on, so
    /// tests can show that their checkers catch a broken engine. Takes
    /// the commit lock: [`Error::ReentrantCommitLock`] inside a locked
    /// transaction's closure.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn set_skip_commit_validation(&self, skip: bool) -> Result<()> {
        let mut state = self
            .inner
            .lock_commit("Engine::set_skip_commit_validation")?;
        state.skip_validation = skip;
        Ok(())
    }

    /// Test hook: let locked transactions release the commit lock while
    /// their closure runs (`true`), so tests can show that their checkers
    /// catch a locked transaction that is not isolated. Takes the commit
    /// lock: [`Error::ReentrantCommitLock`] inside a locked transaction's
    /// closure.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn set_unlock_locked_closures(&self, unlock: bool) -> Result<()> {
        let mut state = self
            .inner
            .lock_commit("Engine::set_unlock_locked_closures")?;
        state.unlock_locked_closures = unlock;
        Ok(())
    }

    /// Open the durable engine in `config.dir` (created if missing),
    /// recovering what a previous engine left there. With
    /// `Durability::InMemory` this is `open_in_memory`.
    ///
    /// Errors: no `dir`; `dir` is a file or not writable; another engine
    /// has it open (`Error::Locked`); a file of a newer format
    /// (`Error::UnsupportedFormat`); damage recovery may not repair
    /// (`Error::Corruption`). On error nothing on disk was changed.
    pub fn open(config: EngineConfig) -> Result<Engine> {
        if config.durability == Durability::InMemory {
            return Engine::open_in_memory(config);
        }
        let Some(dir) = &config.dir else {
            return Err(Error::InvalidArgument(
                "Engine::open needs EngineConfig::dir (or Durability::InMemory)".into(),
            ));
        };
        check_config(&config)?;
        let storage = FsStorage::open(dir)?;
        Engine::open_with_storage(config, Arc::new(storage))
    }

    /// Open a durable engine on any [`Storage`] (the in-memory one for
    /// crash tests, or a custom backend). `config.dir` is ignored.
    pub fn open_with_storage(config: EngineConfig, storage: Arc<dyn Storage>) -> Result<Engine> {
        check_config(&config)?;
        if config.durability == Durability::InMemory {
            return Err(Error::InvalidArgument(
                "Durability::InMemory has no storage: use Engine::open_in_memory".into(),
            ));
        }
        let depth_max = crate::durability::codec::VALUE_DECODE_DEPTH_MAX;
        if config.limits.value_depth_max > depth_max {
            return Err(Error::InvalidArgument(format!(
                "value_depth_max = {} exceeds VALUE_DECODE_DEPTH_MAX = {depth_max} of durable engines",
                config.limits.value_depth_max
            )));
        }
        let recovered = crate::durability::recover(&*storage, &config)?;
        let last = recovered.state.last;
        let durable = Durable::new(storage, &config, recovered.writer, recovered.checkpoints);
        let background = config.background_threads;
        let engine = Engine::from_inner(EngineInner {
            config,
            store: recovered.store,
            visible: AtomicU64::new(last),
            snapshots: recovered.snapshots,
            commit: Mutex::new(recovered.state),
            closure_thread: ClosureThread::default(),
            gc_lock: Mutex::new(()),
            linked_versions: AtomicU64::new(recovered.linked_versions),
            unlinked_versions: AtomicU64::new(0),
            priority: Default::default(),
            durable: Some(durable),
            handles: AtomicU64::new(1),
        });
        if let (true, Some(d)) = (background, &engine.inner.durable) {
            d.start_background(&engine)?;
        }
        if let Some(observer) = &engine.inner.config.progress {
            observer.report(Progress::Opened {
                version: last,
                keys: engine.inner.store.key_count() as u64,
            });
        }
        Ok(engine)
    }

    /// Write a checkpoint of the newest visible state now and delete the
    /// WAL segments and checkpoints it makes unnecessary. Returns its
    /// version. Writers keep going meanwhile. In memory: a no-op.
    /// [`Error::ReentrantCommitLock`] inside a locked transaction's closure.
    pub fn checkpoint(&self) -> Result<Version> {
        match &self.inner.durable {
            Some(d) => {
                self.inner.refuse_reentry("Engine::checkpoint")?;
                d.checkpoint(&self.inner)
            }
            None => Ok(self.visible_version()),
        }
    }

    /// Newest version whose WAL record is on disk (in memory: the visible
    /// version). Everything at or below it survives a power loss.
    pub fn durable_version(&self) -> Version {
        match &self.inner.durable {
            Some(d) => d.durable_version(),
            None => self.visible_version(),
        }
    }

    /// Write and fdatasync every buffered WAL record (for `Batched` and
    /// `Async` callers who need a durability point). In memory: a no-op.
    /// [`Error::ReentrantCommitLock`] inside a locked transaction's closure.
    pub fn flush(&self) -> Result<()> {
        match &self.inner.durable {
            Some(d) => {
                self.inner.refuse_reentry("Engine::flush")?;
                d.flush(&self.inner, true)
            }
            None => Ok(()),
        }
    }

    /// Stop the background threads, sync the WAL and release the directory
    /// lock; later commits through any handle fail with `Error::Poisoned`.
    /// Dropping the last handle does the same, ignoring errors.
    /// [`Error::ReentrantCommitLock`] inside a locked transaction's closure
    /// (the engine stays open).
    pub fn close(self) -> Result<()> {
        match &self.inner.durable {
            Some(d) => {
                self.inner.refuse_reentry("Engine::close")?;
                d.close(&self.inner)
            }
            None => Ok(()),
        }
    }
}

fn check_config(config: &EngineConfig) -> Result<()> {
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
    Ok(())
}

impl Engine {
    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Newest version readers can see.
    pub fn visible_version(&self) -> Version {
        self.inner.visible.load(Ordering::Acquire)
    }

    /// The family of keys in `ns` and `scope` owned by the primitive `tag`,
    /// in the allocation this engine's stored keys share. Keys made from it
    /// ([`Family::key`]) allocate nothing for their family, now or when
    /// stored, and compare with stored keys without reading the fields.
    pub fn family(&self, ns: Namespace, scope: Scope, tag: TypeTag) -> Family {
        self.inner.store.family(&Family::new(ns, scope, tag))
    }

    /// A snapshot of the newest visible state. O(1): one atomic load and a
    /// registration; nothing is copied.
    pub fn snapshot(&self) -> Snapshot {
        snapshot_of(&self.inner)
    }

    /// A snapshot of the past state at `version`: an error if `version` is
    /// in the future or behind the retention floor.
    pub fn snapshot_at(&self, version: Version) -> Result<Snapshot> {
        let registration = self
            .inner
            .snapshots
            .register_at(version, &self.inner.visible)?;
        Ok(Snapshot {
            inner: Arc::clone(&self.inner),
            version,
            registration,
        })
    }

    /// Begin an explicit transaction on behalf of `run`.
    ///
    /// If this thread's last commit lost a conflict less than its backoff
    /// ago, waits out the rest first (`EngineConfig::retry`; see
    /// [`RetryPolicy`](crate::RetryPolicy)): a retry right after a conflict on a hot key would
    /// most likely conflict again. A thread that keeps losing takes the
    /// engine's priority for its next transaction, and other threads'
    /// begins wait until that transaction ends (at most
    /// `RetryPolicy::backoff_max`).
    pub fn begin(&self, run: RunId, isolation: Isolation) -> Transaction {
        let priority = crate::backoff::before_begin(&self.inner.priority, &self.inner.config.retry);
        Transaction::new(self.snapshot(), run, isolation, priority)
    }

    /// Run `f` in a transaction and commit it, retrying on conflict with
    /// bounded exponential backoff (`EngineConfig::retry`: each retry's
    /// `begin` waits out the backoff its conflict set), at most
    /// `RetryPolicy::attempts` times. `f` must be re-runnable. Returns
    /// `f`'s result and the commit version.
    pub fn transaction<T>(
        &self,
        run: RunId,
        isolation: Isolation,
        mut f: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<(T, Version)> {
        let policy = self.inner.config.retry;
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
                    // The next `begin` waits out the backoff the conflict set.
                }
                other => return other,
            }
        }
    }

    /// Run `f` as one transaction of `run` under the commit lock and commit
    /// what it wrote: a short read-modify-write that never conflicts, so it
    /// runs once, without retries. Returns `f`'s result and the commit
    /// version (the newest installed version if `f` wrote nothing).
    ///
    /// `f`'s reads see the newest *installed* state exactly (on a durable
    /// engine possibly a strict commit not yet synced, whose record is
    /// ahead of this one in the WAL). Nothing else can install while `f`
    /// runs, because only commit-lock holders install, so its reads are
    /// still current when its writes are installed: there is nothing to
    /// validate. An optimistic transaction that read a key `f` writes sees
    /// that key's commit version move and conflicts at its own validation,
    /// as with any other commit. If `f` returns `Err` (or the commit fails:
    /// a record too large, a closed durable engine), nothing is installed.
    /// Durable engines log the record as usual (encoded under the lock)
    /// and a strict commit waits for its sync after the lock is released.
    /// The record's time is read once, before `f` runs:
    /// [`Transaction::wall_clock_ms`] gives it to `f`.
    ///
    /// Every other committer waits while `f` runs: keep it short and
    /// bounded (the facade uses it for single event appends of bounded
    /// size). Inside `f`, whatever needs this engine's commit lock, which
    /// `f`'s thread holds, answers [`Error::ReentrantCommitLock`] and
    /// changes nothing: another commit on this engine (through
    /// [`Engine::transaction`] or an explicit transaction), a nested
    /// `transaction_locked`, [`Engine::run_commits`], [`Engine::run_span`],
    /// [`Engine::commit_time`], [`Engine::version_at_time`],
    /// [`Engine::flush`], [`Engine::checkpoint`], [`Engine::close`],
    /// [`Engine::gc`] (under every [`Retention`], though only
    /// [`Retention::Window`] takes the lock: see there why). `f` may
    /// handle that error and still return `Ok`, and its own writes are
    /// then committed as usual. `txn.commit()` itself is refused with
    /// [`Error::InvalidArgument`]. (A locked transaction on *another*
    /// engine inside `f` is allowed, but two threads nesting two engines'
    /// locked transactions in opposite orders deadlock, as with any two
    /// locks.)
    pub fn transaction_locked<T, E: From<Error>>(
        &self,
        run: RunId,
        f: impl FnOnce(&mut Transaction) -> std::result::Result<T, E>,
    ) -> std::result::Result<(T, Version), E> {
        crate::txn::run_locked(&self.inner, run, f)
    }

    /// One GC pass: unlink versions no live reader and no retention rule
    /// needs, and hand them to epoch reclamation.
    ///
    /// [`Error::ReentrantCommitLock`] inside a locked transaction's
    /// closure, before anything is unlinked, under every [`Retention`].
    /// Only [`Retention::Window`] takes the commit lock (to read the time
    /// index) and would wait for itself there, but one rule for all is
    /// simpler to state and to rely on: whether a call works inside a
    /// closure does not change with the configuration. It also keeps a
    /// whole pass over every chain out of the time every committer waits
    /// for the closure, and it is asked before `gc_lock` is taken: a GC
    /// on another thread may hold that while it waits for the closure's
    /// commit lock.
    pub fn gc(&self) -> Result<GcStats> {
        let inner = &*self.inner;
        inner.refuse_reentry("Engine::gc")?;
        let _gc = inner.gc_lock.lock();
        let retention_floor = match inner.config.retention {
            Retention::KeepAll | Retention::Versions(_) => 0,
            Retention::Window(w) => {
                let now = crate::clock::wall_clock_ms();
                let cutoff = now.saturating_sub(w.as_millis() as u64);
                inner
                    .lock_commit("Engine::gc")?
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
            return Ok(stats);
        }
        let guard = crossbeam_epoch::pin();
        let observer = inner.config.progress.as_ref();
        let keys_total = observer.map_or(0, |_| inner.store.key_count() as u64);
        let mut progress = ProgressCounter::new(observer, |keys_done| Progress::Gc {
            keys_done,
            keys_total,
        });
        inner.store.for_each_chain_unordered(|chain| {
            stats.chains += 1;
            progress.tick();
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
        progress.finish();
        // Release: a `stats` that reads this count then reads
        // `linked_versions` at least as new as it was when these versions
        // were linked (GC saw them through `visible`, published after).
        inner
            .unlinked_versions
            .fetch_add(stats.unlinked as u64, Ordering::AcqRel);
        guard.flush();
        Ok(stats)
    }

    /// Versions linked into chains now.
    fn versions_linked(&self) -> u64 {
        // The unlinked count first: see `Engine::gc`.
        let unlinked = self.inner.unlinked_versions.load(Ordering::Acquire);
        let linked = self.inner.linked_versions.load(Ordering::Acquire);
        linked.saturating_sub(unlinked)
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            keys: self.inner.store.key_count(),
            versions: self.versions_linked(),
            visible: self.visible_version(),
            live_snapshots: self.inner.snapshots.count(),
            retention_floor: self.inner.snapshots.floor(),
        }
    }

    /// The commits of `run` visible now, in order (derived per-run index).
    /// Empty if the run never committed. [`Error::ReentrantCommitLock`]
    /// inside a locked transaction's closure (so are the other queries of
    /// the commit index below).
    pub fn run_commits(&self, run: RunId) -> Result<Vec<RunCommit>> {
        let visible = self.visible_version();
        let state = self.inner.lock_commit("Engine::run_commits")?;
        Ok(state
            .runs
            .get(&run)
            .map(|c| {
                c.iter()
                    .take_while(|c| c.version <= visible)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The first and the last commit version of `run` at or below `at`
    /// (and visible now), or `None` if it has none there. O(log n) in the
    /// run's commits under the commit lock, where [`Engine::run_commits`]
    /// copies them all: for a status query on a long running run.
    pub fn run_span(&self, run: RunId, at: Version) -> Result<Option<(Version, Version)>> {
        let upto = at.min(self.visible_version());
        let state = self.inner.lock_commit("Engine::run_span")?;
        let Some(commits) = state.runs.get(&run) else {
            return Ok(None);
        };
        let Some(first) = commits.first().filter(|c| c.version <= upto) else {
            return Ok(None);
        };
        let end = commits.partition_point(|c| c.version <= upto);
        Ok(Some((first.version, commits[end - 1].version)))
    }

    /// Newest visible version committed at or before wall-clock `ms`.
    pub fn version_at_time(&self, ms: u64) -> Result<Version> {
        let visible = self.visible_version();
        let state = self.inner.lock_commit("Engine::version_at_time")?;
        Ok(state.times.version_at(ms, visible))
    }

    /// Wall-clock milliseconds at which `version` committed (0 if unknown:
    /// version 0, or a version not visible yet).
    pub fn commit_time(&self, version: Version) -> Result<u64> {
        if version > self.visible_version() {
            return Ok(0);
        }
        let state = self.inner.lock_commit("Engine::commit_time")?;
        Ok(state.times.time_of(version))
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
            .map(|n| (n.commit, n.run, n.value_owned()))
            .collect()
    }

    /// The version of `key` written by exactly commit `version`, if any:
    /// `Some(value)` (None inside = tombstone).
    pub fn version_of(&self, key: &Key, version: Version) -> Option<Option<Value>> {
        let chain = self.inner.store.chain(key)?;
        chain.written_by(version, &crossbeam_epoch::pin())
    }

    /// What each of `commits` (from the per-run index) wrote to each of
    /// its keys, in order: `Some(value)` (None inside = tombstone), or None
    /// if GC unlinked that version. The batched form of
    /// [`Engine::version_of`] for replay: one guard for the whole slice
    /// instead of a fence per key. The guards hold back memory reclamation
    /// while they live, so callers pass bounded slices (replay: about
    /// 1,024 keys at a time).
    pub fn versions_written(&self, commits: &[RunCommit]) -> Vec<Vec<Option<Option<Value>>>> {
        let mut flat = Vec::new();
        self.versions_written_into(commits, &mut flat);
        let mut flat = flat.into_iter();
        commits
            .iter()
            .map(|c| flat.by_ref().take(c.chains().len()).collect())
            .collect()
    }

    /// [`Engine::versions_written`] flattened (commit by commit, key by
    /// key) and appended to `out`, so a replay reuses one buffer instead of
    /// allocating a vector per commit. Same guard and batch-size advice as
    /// `versions_written`. (A two-pass read, every chain head first so a
    /// cold batch's misses overlap, was tried on the replay bench and was
    /// no faster.)
    pub fn versions_written_into(
        &self,
        commits: &[RunCommit],
        out: &mut Vec<Option<Option<Value>>>,
    ) {
        let guard = crossbeam_epoch::pin();
        let pairs = commits
            .iter()
            .flat_map(|c| c.chains().iter().map(move |ch| (ch, c.version)));
        out.extend(pairs.map(|(chain, version)| chain.written_by(version, &guard)));
    }
}

/// Step 6 of the commit protocol: make `version`, whose versions are all
/// installed, visible to readers. The release store pairs with the acquire
/// load of `visible` in `SnapshotTracker::register_visible` and
/// `Engine::visible_version`: a reader that sees `version` also sees every
/// version installed before this call, so it never sees part of a commit.
pub(crate) fn publish(visible: &AtomicU64, version: Version) {
    visible.store(version, Ordering::Release);
}

/// A consistent view of the database at one version. O(1) to create;
/// holds its version against GC until dropped.
pub struct Snapshot {
    pub(crate) inner: Arc<EngineInner>,
    version: Version,
    /// What to give back to the tracker; `None` once `release` gave it
    /// back (finished transactions), so `Drop` does not release it twice.
    registration: Registration,
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

    /// Read `key` at this snapshot and pass the value to `f` borrowed
    /// (`None` if absent or deleted) instead of returning a copy: no
    /// allocation and no reference-count write on the value, which matters
    /// when several threads read the same hot keys. Text and bytes of up to
    /// [`crate::INLINE_VALUE_BYTES_MAX`] bytes, which a version holds
    /// inline, come as slices ([`ValueRef`]); `ValueRef::to_value` makes
    /// an owned copy.
    pub fn get_with<R>(&self, key: &Key, f: impl FnOnce(Option<ValueRef<'_>>) -> R) -> Result<R> {
        check_key(&self.inner.config, key)?;
        self.inner.store.read_with(key, self.version, f)
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
        let registration = self.inner.snapshots.register(self.version);
        Snapshot {
            inner: Arc::clone(&self.inner),
            version: self.version,
            registration,
        }
    }
}

impl Snapshot {
    /// A snapshot at `version` that holds nothing against GC: only for a
    /// reader of chain heads under the commit lock (`txn::run_locked`).
    pub(crate) fn unregistered(inner: Arc<EngineInner>, version: Version) -> Snapshot {
        Snapshot {
            inner,
            version,
            registration: Registration::None,
        }
    }

    /// Give the registration back now, so GC no longer keeps this version
    /// for it. For a finished transaction, which reads nothing more.
    pub(crate) fn release(&mut self) {
        let registration = std::mem::replace(&mut self.registration, Registration::None);
        self.inner.snapshots.release(self.version, registration);
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.release();
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({})", self.version)
    }
}

/// A snapshot at the visible version of `inner` (for threads that hold no
/// `Engine` handle).
pub(crate) fn snapshot_of(inner: &Arc<EngineInner>) -> Snapshot {
    let (version, registration) = inner.snapshots.register_visible(&inner.visible);
    Snapshot {
        inner: Arc::clone(inner),
        version,
        registration,
    }
}

#[inline]
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
    let (size, depth) = value.measure();
    check_measured(config, size, depth)
}

/// The value limits, for a value of `size` bytes nested `depth` deep.
pub(crate) fn check_measured(config: &EngineConfig, size: usize, depth: usize) -> Result<()> {
    let max = config.limits.value_size_bytes_max;
    if size > max {
        return Err(Error::ValueTooLarge { size, max });
    }
    if depth > config.limits.value_depth_max {
        return Err(Error::ValueTooDeep {
            depth,
            max: config.limits.value_depth_max,
        });
    }
    Ok(())
}
