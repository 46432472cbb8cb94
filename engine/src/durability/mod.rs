//! Durability: the write-ahead log, group commit, checkpoints and recovery.
//!
//! - [`io`]: the [`Storage`] trait, the real directory and the in-memory
//!   one used by crash and fault tests;
//! - [`wal`]: segment and record byte format, encoder and decoder;
//! - [`checkpoint`]: checkpoint file format;
//! - `recovery`: open = newest valid checkpoint + WAL after it;
//! - this file: the [`Durability`] modes and the WAL writer (`Durable`)
//!   with group commit, rotation, checkpoint writing and background threads.
//!
//! docs/format.md has the byte layouts, the commit protocol step by step and
//! what a crash between any two steps leaves.

mod body_window;
pub mod checkpoint;
pub mod codec;
pub(crate) mod group;
pub mod io;
mod prealloc;
mod recovery;
pub mod wal;

#[cfg(test)]
mod test;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::chain::VersionNode;
use crate::durability::checkpoint::{
    CHECKPOINTS_KEPT, CheckpointWriter, WriteError, checkpoint_name,
};
use crate::durability::codec::RunImage;
use crate::durability::group::GroupCommit;
use crate::durability::io::{Storage, StorageFile};
use crate::engine::{Engine, EngineInner, snapshot_of};
use crate::error::{Error, Result};
use crate::progress::{Progress, ProgressCounter};
use crate::types::{RunId, Version};

pub use io::{DataLoss, DirLoss, FsStorage, MemStorage, SyncHook, SyncHooked};
pub(crate) use prealloc::Prealloc;
pub(crate) use recovery::recover;

/// When a commit is acknowledged, and what a crash may take back.
///
/// Every mode keeps the same order: the WAL is written in commit-version
/// order, so whatever survives a crash is a prefix of the commit order.
/// A database has a default mode (`EngineConfig::durability`); a
/// transaction may override it (`Transaction::set_durability`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// `commit` returns only after the commit's WAL record is on disk
    /// (fdatasync). Concurrent committers share one fdatasync (group
    /// commit). Readers never see a commit before it is durable, so a
    /// crash never takes back anything that was acknowledged or read.
    #[default]
    Strict,
    /// `commit` returns once the record is buffered; the WAL is synced at
    /// least every `interval` and whenever `bytes` are buffered. A crash
    /// loses at most the commits of that window (never a gap: the loss is
    /// a suffix of the commit order). Commits are visible before durable.
    Batched {
        /// Longest time a buffered record waits for its fdatasync.
        interval: Duration,
        /// Buffered bytes that trigger an fdatasync by the committer.
        bytes: u64,
    },
    /// `commit` returns once the record is buffered; a background thread
    /// hands buffered records to the OS every [`ASYNC_FLUSH_INTERVAL`],
    /// without fsync. No promise beyond this: a crash of the process loses
    /// at most that interval, a power loss whatever the OS had not written;
    /// what survives is a prefix of the commit order.
    Async,
    /// No files at all: everything is lost when the engine is dropped.
    InMemory,
}

/// How often `Durability::Async` hands buffered records to the OS.
pub const ASYNC_FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// Buffered bytes at which an `Async` committer writes the buffer itself.
pub const ASYNC_BUFFER_BYTES_MAX: usize = 1 << 20;
/// How often a strict database syncs records of weaker per-transaction
/// overrides that no strict commit has carried along yet.
pub const STRICT_BACKGROUND_SYNC_INTERVAL: Duration = Duration::from_millis(10);
/// How often the checkpoint thread checks its triggers.
const CHECKPOINT_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What recovery does with a damaged record that valid records follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Truncate a torn record at the very end of the WAL (a crash
    /// artefact); refuse to open (`Error::Corruption`, naming file, offset
    /// and version) if a damaged record is followed by valid ones.
    #[default]
    TruncateTornTail,
    /// Recover the valid prefix up to the first damaged record and discard
    /// everything after it (the WAL is truncated there). Loses data: use it
    /// to rescue a damaged database, not as a default.
    SalvagePrefix,
}

/// When checkpoints are written in the background.
///
/// ## Defaults
/// every 5 minutes, or after 64 MiB of WAL since the last checkpoint,
/// whichever comes first (and only if something was committed since).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Time between checkpoints (`None`: no time trigger).
    pub interval: Option<Duration>,
    /// WAL bytes written since the last checkpoint (`None`: no size trigger).
    pub wal_bytes: Option<u64>,
}

impl Default for CheckpointPolicy {
    fn default() -> CheckpointPolicy {
        CheckpointPolicy {
            interval: Some(Duration::from_secs(300)),
            wal_bytes: Some(64 << 20),
        }
    }
}

impl CheckpointPolicy {
    /// No background checkpoints (only `Engine::checkpoint`).
    pub const MANUAL: CheckpointPolicy = CheckpointPolicy {
        interval: None,
        wal_bytes: None,
    };
}

/// The WAL file being appended to, guarded by `Durable::writer`. Whoever
/// holds that lock is the one flusher: it writes the buffer and syncs.
pub(crate) struct WalWriter {
    pub(crate) file: Box<dyn StorageFile>,
    /// `(first version, file name)` of every segment on disk, oldest first;
    /// the last is `file`.
    pub(crate) segments: Vec<(Version, String)>,
    /// Bytes in the current segment: its header and records. The next
    /// record is written at this offset.
    pub(crate) segment_len: u64,
    /// Size of the current segment file (`>= segment_len`): past the
    /// records it is preallocated zeros (see [`Prealloc`]).
    pub(crate) allocated: u64,
    /// Newest version whose record was handed to the file.
    pub(crate) written: Version,
    /// Newest version whose record was synced.
    pub(crate) synced: Version,
    /// The buffer swapped with the commit buffer at each flush.
    pub(crate) spare: Vec<u8>,
}

/// Background thread control.
#[derive(Default)]
struct Signal {
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Signal {
    /// Sleep up to `d`; false once stop was requested.
    fn sleep(&self, d: Duration) -> bool {
        let mut stop = self.stop.lock();
        if !*stop {
            self.wake.wait_for(&mut stop, d);
        }
        !*stop
    }
}

/// The durable half of an engine with files.
pub(crate) struct Durable {
    pub(crate) storage: Arc<dyn Storage>,
    /// The database's default mode (never `InMemory` here).
    pub(crate) mode: Durability,
    policy: CheckpointPolicy,
    segment_size_max: u64,
    prealloc: Prealloc,
    writer: Mutex<WalWriter>,
    /// Strict committers sharing syncs; holds the durable version.
    group: GroupCommit,
    poisoned: AtomicBool,
    poison_reason: Mutex<String>,
    /// Versions of the checkpoints on disk, oldest first; held while one is
    /// written (one checkpoint at a time).
    checkpoints: Mutex<Vec<Version>>,
    wal_bytes_since_checkpoint: AtomicU64,
    last_checkpoint: Mutex<Instant>,
    signal: Arc<Signal>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Durable {
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        config: &crate::config::EngineConfig,
        writer: WalWriter,
        checkpoints: Vec<Version>,
    ) -> Durable {
        let synced = writer.synced;
        Durable {
            storage,
            mode: config.durability,
            policy: config.checkpoint,
            segment_size_max: config.wal_segment_size_bytes_max,
            prealloc: Prealloc::new(
                config.wal_preallocate_step_bytes,
                config.wal_segment_size_bytes_max,
            ),
            writer: Mutex::new(writer),
            group: GroupCommit::new(synced),
            poisoned: AtomicBool::new(false),
            poison_reason: Mutex::new(String::new()),
            checkpoints: Mutex::new(checkpoints),
            wal_bytes_since_checkpoint: AtomicU64::new(0),
            last_checkpoint: Mutex::new(Instant::now()),
            signal: Arc::default(),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Newest version whose record is on disk.
    pub(crate) fn durable_version(&self) -> Version {
        self.group.durable()
    }

    /// `Err(Poisoned)` once a WAL write or sync has failed.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned(self.poison_reason.lock().clone()));
        }
        Ok(())
    }

    fn poison(&self, what: &str, e: std::io::Error) -> Error {
        let reason = format!("WAL {what} failed: {e}");
        *self.poison_reason.lock() = reason.clone();
        self.poisoned.store(true, Ordering::Release);
        Error::Io {
            context: format!("WAL {what} (the database now refuses commits)"),
            source: e,
        }
    }

    /// The committer's part after its record is buffered and its versions
    /// installed: wait for durability (strict) or trigger a flush.
    pub(crate) fn after_commit(
        &self,
        inner: &EngineInner,
        version: Version,
        mode: Durability,
        buffered: usize,
    ) -> Result<()> {
        match mode {
            Durability::Strict => self.sync_through(inner, version),
            Durability::Batched { bytes, .. } if buffered as u64 >= bytes => {
                self.flush(inner, true)
            }
            Durability::Async if buffered >= ASYNC_BUFFER_BYTES_MAX => self.flush(inner, false),
            _ => Ok(()),
        }
    }

    /// Group commit: return once `version` is synced (see [`group`]).
    fn sync_through(&self, inner: &EngineInner, version: Version) -> Result<()> {
        self.group.sync_through(version, || self.flush(inner, true))
    }

    /// Write everything buffered to the WAL file, and sync it if `sync`.
    pub(crate) fn flush(&self, inner: &EngineInner, sync: bool) -> Result<()> {
        let mut w = self.writer.lock();
        self.check_open()?;
        self.flush_locked(&mut w, inner, sync)
    }

    fn flush_locked(&self, w: &mut WalWriter, inner: &EngineInner, sync: bool) -> Result<()> {
        let upto = {
            let mut state = inner.commit.lock();
            std::mem::swap(&mut state.wal_buf, &mut w.spare);
            state.last
        };
        if !w.spare.is_empty() {
            let result = (self.prealloc).write(&*w.file, w.segment_len, &mut w.allocated, &w.spare);
            let n = w.spare.len() as u64;
            w.spare.clear();
            result.map_err(|e| self.poison("append", e))?;
            w.segment_len += n;
            w.written = upto;
            self.wal_bytes_since_checkpoint
                .fetch_add(n, Ordering::Relaxed);
        }
        if sync && w.synced < w.written {
            w.file.sync().map_err(|e| self.poison("fdatasync", e))?;
            w.synced = w.written;
            // Publish before announcing durability: a committer that sees
            // `durable >= v` returns, and must then read its own write.
            inner.publish_durable(w.synced);
            self.group.advance(w.synced);
        }
        if w.segment_len >= self.segment_size_max {
            self.rotate_locked(w)?;
        }
        Ok(())
    }

    /// Start a new segment at `written + 1` (syncing the current one first),
    /// unless the current one holds no record yet.
    fn rotate_locked(&self, w: &mut WalWriter) -> Result<()> {
        if w.segment_len <= wal::SEGMENT_HEADER_SIZE as u64 {
            return Ok(());
        }
        if w.synced < w.written {
            w.file.sync().map_err(|e| self.poison("fdatasync", e))?;
            w.synced = w.written;
        }
        let first = w.written + 1;
        let (file, allocated) = create_segment(&*self.storage, first, self.prealloc)
            .map_err(|e| self.poison("rotation", e))?;
        w.file = file;
        w.segments.push((first, wal::segment_name(first)));
        w.segment_len = wal::SEGMENT_HEADER_SIZE as u64;
        w.allocated = allocated;
        Ok(())
    }

    /// Write a checkpoint of the newest visible state (see `checkpoint.rs`),
    /// then delete what it makes unnecessary. Returns its version.
    pub(crate) fn checkpoint(&self, engine: &Arc<EngineInner>) -> Result<Version> {
        let mut on_disk = self.checkpoints.lock();
        let inner = &**engine;
        {
            // Rotate first, so the segments before this point can be deleted
            // once a later checkpoint covers them.
            let mut w = self.writer.lock();
            self.check_open()?;
            self.flush_locked(&mut w, inner, true)?;
            self.rotate_locked(&mut w)?;
        }
        let snap = snapshot_of(engine);
        let version = snap.version();
        if on_disk.last() == Some(&version) || version == 0 {
            return Ok(version);
        }
        // The snapshot holds GC back from what the checkpoint reads.
        self.write_checkpoint(inner, version)?;
        drop(snap);
        on_disk.push(version);
        self.wal_bytes_since_checkpoint.store(0, Ordering::Relaxed);
        *self.last_checkpoint.lock() = Instant::now();
        self.prune(&mut on_disk)?;
        Ok(version)
    }

    /// Stream the checkpoint at `version` to `NAME.tmp`, fsync, rename
    /// to `NAME`, fsync the directory.
    fn write_checkpoint(&self, inner: &EngineInner, version: Version) -> Result<()> {
        let name = checkpoint_name(version);
        let tmp = format!("{name}.tmp");
        let io = |what: &str, e: std::io::Error| Error::Io {
            context: format!("{what} {}", self.storage.describe(&name)),
            source: e,
        };
        let file = self
            .storage
            .create(&tmp)
            .map_err(|e| io("creating checkpoint", e))?;
        inner
            .stream_checkpoint(&*file, version)
            .map_err(|e| e.into_error(self.storage.describe(&tmp)))?;
        file.sync().map_err(|e| io("syncing checkpoint", e))?;
        drop(file);
        self.storage
            .rename(&tmp, &name)
            .map_err(|e| io("renaming checkpoint", e))?;
        self.storage
            .sync_dir()
            .map_err(|e| io("syncing the directory after checkpoint", e))
    }

    /// Keep the newest [`CHECKPOINTS_KEPT`] checkpoints, and the WAL back to
    /// the oldest of them: delete older checkpoints and every segment whose
    /// records all precede it.
    fn prune(&self, on_disk: &mut Vec<Version>) -> Result<()> {
        let io = |name: &str, e: std::io::Error| Error::Io {
            context: format!("removing {}", self.storage.describe(name)),
            source: e,
        };
        while on_disk.len() > CHECKPOINTS_KEPT {
            let old = on_disk.remove(0);
            let name = checkpoint_name(old);
            self.storage.remove(&name).map_err(|e| io(&name, e))?;
        }
        let Some(&oldest_kept) = on_disk
            .first()
            .filter(|_| on_disk.len() >= CHECKPOINTS_KEPT)
        else {
            return Ok(());
        };
        let doomed: Vec<String> = {
            let mut w = self.writer.lock();
            // Segment i is wholly covered if segment i+1 starts at or below
            // oldest_kept + 1; the current segment is never deleted.
            let covered = w
                .segments
                .windows(2)
                .take_while(|s| s[1].0 <= oldest_kept + 1)
                .count();
            w.segments.drain(..covered).map(|(_, n)| n).collect()
        };
        for name in &doomed {
            self.storage.remove(name).map_err(|e| io(name, e))?;
        }
        self.storage
            .sync_dir()
            .map_err(|e| io("(directory sync after pruning)", e))
    }

    /// Should the background thread checkpoint now?
    fn checkpoint_due(&self) -> bool {
        let bytes = self.wal_bytes_since_checkpoint.load(Ordering::Relaxed);
        let by_bytes = self.policy.wal_bytes.is_some_and(|b| bytes >= b);
        let by_time = self
            .policy
            .interval
            .is_some_and(|i| bytes > 0 && self.last_checkpoint.lock().elapsed() >= i);
        by_bytes || by_time
    }

    /// Start the flusher and checkpoint threads. They hold only a weak
    /// reference, so dropping the last `Engine` handle stops them.
    pub(crate) fn start_background(&self, engine: &Engine) -> Result<()> {
        let tick = match self.mode {
            Durability::Batched { interval, .. } => interval,
            Durability::Async => ASYNC_FLUSH_INTERVAL,
            _ => STRICT_BACKGROUND_SYNC_INTERVAL,
        };
        let sync = !matches!(self.mode, Durability::Async);
        let weak = Arc::downgrade(&engine.inner);
        let signal = Arc::clone(&self.signal);
        let flusher = std::thread::Builder::new()
            .name("rewinddb-wal-flusher".into())
            .spawn(move || {
                while signal.sleep(tick) {
                    let Some(inner) = weak.upgrade() else { break };
                    if let Some(d) = &inner.durable {
                        // A failure poisons the engine; committers report it.
                        let _ = d.flush(&inner, sync);
                    }
                }
            });
        let weak = Arc::downgrade(&engine.inner);
        let signal = Arc::clone(&self.signal);
        let checkpointer = std::thread::Builder::new()
            .name("rewinddb-checkpointer".into())
            .spawn(move || {
                while signal.sleep(CHECKPOINT_POLL_INTERVAL) {
                    let Some(inner) = weak.upgrade() else { break };
                    if let Some(d) = inner.durable.as_ref().filter(|d| d.checkpoint_due()) {
                        // A failed checkpoint leaves the WAL intact; retried later.
                        let _ = d.checkpoint(&inner);
                    }
                }
            });
        let spawn_err = |e| Error::Io {
            context: "starting a background thread".into(),
            source: e,
        };
        let mut threads = self.threads.lock();
        threads.push(flusher.map_err(spawn_err)?);
        threads.push(checkpointer.map_err(spawn_err)?);
        Ok(())
    }

    /// `Engine::close` and the drop of the last handle: shut down, refuse
    /// further commits (a transaction may outlive the handles), release the
    /// directory lock.
    pub(crate) fn close(&self, inner: &EngineInner) -> Result<()> {
        let result = self.shutdown(inner);
        {
            let mut reason = self.poison_reason.lock();
            if !self.poisoned.load(Ordering::Acquire) {
                *reason = "the engine was closed".into();
            }
            self.poisoned.store(true, Ordering::Release);
        }
        self.storage.unlock();
        result
    }

    /// Stop the background threads (joining them unless called from one)
    /// and sync what is buffered. Used by `Engine::close` and on drop.
    pub(crate) fn shutdown(&self, inner: &EngineInner) -> Result<()> {
        *self.signal.stop.lock() = true;
        self.signal.wake.notify_all();
        let me = std::thread::current().id();
        for t in self.threads.lock().drain(..) {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        if self.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        self.flush(inner, true)
    }
}

/// Create the segment starting at `first`: header, preallocation of its
/// first step, fdatasync, directory fsync (so the segment cannot vanish
/// after records in it were acked). Returns the file and its size.
pub(crate) fn create_segment(
    storage: &dyn Storage,
    first: Version,
    prealloc: Prealloc,
) -> std::io::Result<(Box<dyn StorageFile>, u64)> {
    let file = storage.create(&wal::segment_name(first))?;
    let header = wal::SEGMENT_HEADER_SIZE as u64;
    file.write_at(0, &wal::segment_header(first))?;
    let allocated = prealloc.target(header);
    file.allocate(allocated)?;
    file.sync()?;
    storage.sync_dir()?;
    Ok((file, allocated))
}

/// Run commits copied per hold of the commit lock.
const RUN_COMMITS_PER_LOCK: usize = 4096;

impl EngineInner {
    /// The per-run commit index through `version`, in run order. Copied a
    /// slice at a time so the commit lock is never held for long: the
    /// lists only grow at their end, so a slice read later is unchanged.
    fn run_index_through(&self, version: Version) -> Vec<RunImage> {
        let mut runs: Vec<RunId> = self.commit.lock().runs.keys().copied().collect();
        runs.sort_unstable();
        let mut out = Vec::with_capacity(runs.len());
        for run in runs {
            let mut commits = Vec::new();
            loop {
                let state = self.commit.lock();
                let all = state.runs.get(&run).map_or(&[][..], Vec::as_slice);
                let slice = all.iter().skip(commits.len()).take(RUN_COMMITS_PER_LOCK);
                let before = commits.len();
                commits.extend(
                    slice
                        .take_while(|c| c.version <= version)
                        .map(|c| (c.version, c.wall_ms, c.keys().cloned().collect())),
                );
                if commits.len() - before < RUN_COMMITS_PER_LOCK {
                    break;
                }
            }
            if !commits.is_empty() {
                out.push(RunImage { run, commits });
            }
        }
        out
    }

    /// Write the retained history at `version` to `file`, chain by chain,
    /// read without the commit lock (writers keep going) and never held
    /// in memory whole: per chain, only references to its versions.
    fn stream_checkpoint(
        &self,
        file: &dyn StorageFile,
        version: Version,
    ) -> std::result::Result<(), WriteError> {
        let times = self.commit.lock().times.entries_through(version);
        let mut w = CheckpointWriter::begin(file, version, version, &times)?;
        let mut failed = None;
        let mut chains = 0usize;
        let observer = self.config.progress.as_ref();
        let keys_total = observer.map_or(0, |_| self.store.key_count() as u64);
        let mut progress = ProgressCounter::new(observer, |keys_done| Progress::Checkpoint {
            version,
            keys_done,
            keys_total,
        });
        self.store.for_each_chain(|key, chain| {
            chains += 1;
            progress.tick();
            if failed.is_some() {
                return;
            }
            if chains % 1024 == 0 {
                // Let writers run on a busy machine: this walk may take a while.
                std::thread::yield_now();
            }
            let guard = crossbeam_epoch::pin();
            // One walk gives the versions and whether older ones were
            // unlinked, consistent with each other however GC cuts the
            // chain meanwhile.
            let (linked, pruned) = chain.versions_and_pruned(&guard);
            let versions: Vec<NodeRef<'_>> = linked
                .into_iter()
                .filter(|n| n.commit <= version)
                .map(NodeRef)
                .collect();
            if let Some(oldest) = versions.last() {
                failed = w.chain(key, pruned_max(pruned, oldest.0), &versions).err();
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let floor = self.snapshots.floor().min(version);
        w.finish(floor, &self.run_index_through(version))?;
        progress.finish();
        Ok(())
    }
}

/// A version as a checkpoint stores it: `(commit, run, value)`, encoded
/// straight from the chain (no clone of the value).
struct NodeRef<'g>(&'g VersionNode);

/// A checkpoint's `pruned_max` for a chain whose oldest linked version is
/// `oldest`: 0 if nothing older was unlinked, else a version below it
/// (docs/format.md: only zero or not matters to a reader). Unlinked
/// versions are older than `oldest` and at least 1, so a pruned chain's
/// oldest is at least 2 and the answer is not 0.
fn pruned_max(pruned: bool, oldest: &VersionNode) -> Version {
    debug_assert!(!pruned || oldest.commit >= 2, "pruned below version 1");
    if pruned {
        oldest.commit.saturating_sub(1)
    } else {
        0
    }
}

impl serde::Serialize for NodeRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (self.0.commit, self.0.run, self.0.value()).serialize(s)
    }
}
