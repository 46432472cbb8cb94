//! Recovery: newest valid checkpoint (an older one if the newest is
//! damaged), then the WAL records after it; derived indexes rebuilt.
//!
//! Two phases. The *read* phase validates everything and builds the state
//! in memory; any error leaves the directory untouched. Only then the
//! *repair* phase changes files: it removes leftover `*.tmp` files,
//! truncates a torn WAL tail (and, with `SalvagePrefix`, what follows the
//! damage), and opens the segment to append to.

use std::collections::BTreeMap;
use std::sync::mpsc::{SyncSender, sync_channel};

use crate::chain::{BuiltVersion, ChainRef};
use crate::config::EngineConfig;
use crate::durability::checkpoint::{
    CHECKPOINT_FORMAT_VERSION, CheckpointError, CheckpointFrame, CheckpointImage, VersionImage,
    check_frame, checkpoint_name, parse_checkpoint_name,
};
use crate::durability::codec::{self, ChainImage, TopValue};
use crate::durability::io::{Storage, StorageReader};
use crate::durability::wal::{self, Decoded, HeaderError, Stop};
use crate::durability::{Prealloc, RecoveryMode, WalWriter, create_segment};
use crate::engine::CommitState;
use crate::error::{Error, Result};
use crate::progress::{Progress, ProgressCounter, ProgressObserver};
use crate::record::{CommitChains, RunCommit};
use crate::snapshot::SnapshotTracker;
use crate::store::Store;
use crate::time_index::TimeIndex;
use crate::types::{Family, Key, RunId, Version};

/// What recovery rebuilt.
pub(crate) struct Recovered {
    pub(crate) store: Store,
    pub(crate) state: CommitState,
    pub(crate) snapshots: SnapshotTracker,
    pub(crate) linked_versions: u64,
    pub(crate) writer: WalWriter,
    pub(crate) checkpoints: Vec<Version>,
}

/// A segment found on disk.
struct Segment {
    first: Version,
    name: String,
}

/// Where the WAL ends after the read phase.
#[derive(Default)]
struct Tail {
    /// Segment (index in the list) to cut at a valid length: a torn tail,
    /// or the damage point under `SalvagePrefix`.
    truncate: Option<(usize, u64)>,
    /// Segment to keep appending to (None: start one at `last + 1`).
    append_to: Option<usize>,
    /// Length of that segment's file as read (before any truncation).
    segment_len: u64,
    /// Where its records end: the next record goes there (over the
    /// preallocated zeros, if any).
    records_end: u64,
    /// Segments after the tail to delete (empty, torn header, salvaged).
    doomed: Vec<String>,
}

/// Recover the state in `storage` (see the module docs).
pub(crate) fn recover(storage: &dyn Storage, config: &EngineConfig) -> Result<Recovered> {
    let names = storage
        .list()
        .map_err(|e| io_err(storage, "listing", "", e))?;
    let mut checkpoint_versions: Vec<Version> = names
        .iter()
        .filter_map(|n| parse_checkpoint_name(n))
        .collect();
    checkpoint_versions.sort_unstable();
    let mut segments: Vec<Segment> = names
        .iter()
        .filter_map(|n| {
            wal::parse_segment_name(n).map(|first| Segment {
                first,
                name: n.clone(),
            })
        })
        .collect();
    segments.sort_by_key(|s| s.first);

    let mut read = ReadState {
        progress: config.progress.clone(),
        ..ReadState::default()
    };
    let mut damaged = Vec::new();
    let (tail, rebuilt) = read_and_install(
        storage,
        &checkpoint_versions,
        &segments,
        config.recovery,
        &mut read,
        &mut damaged,
    )?;

    // Repair phase: nothing above changed a file.
    let prealloc = Prealloc::new(
        config.wal_preallocate_step_bytes,
        config.wal_segment_size_bytes_max,
    );
    let writer = repair(
        storage,
        &names,
        &segments,
        tail,
        &damaged,
        rebuilt.last,
        prealloc,
    )?;
    let kept_checkpoints = checkpoint_versions
        .into_iter()
        .filter(|&v| v <= rebuilt.last && !damaged.contains(&checkpoint_name(v)))
        .collect();
    Ok(rebuilt.finish(writer, kept_checkpoints))
}

fn io_err(storage: &dyn Storage, what: &str, name: &str, e: std::io::Error) -> Error {
    Error::Io {
        context: format!("{what} {}", storage.describe(name)),
        source: e,
    }
}

fn corruption(storage: &dyn Storage, name: &str, offset: u64, reason: String) -> Error {
    Error::Corruption {
        file: storage.describe(name),
        offset,
        reason,
    }
}

fn newer_format(storage: &dyn Storage, name: &str, found: u32, supported: u32) -> Error {
    Error::UnsupportedFormat {
        file: storage.describe(name),
        found,
        supported,
    }
}

/// What the read phase decoded, before it is installed.
#[derive(Default)]
struct ReadState {
    /// WAL records after the checkpoint, in version order, not yet handed
    /// to the installer.
    records: Vec<BuiltRecord>,
    /// The installer thread, when there is one: the checkpoint's chains
    /// and the records go to it in batches while later ones are still
    /// being decoded. Without it, everything waits in `held` until the
    /// read phase ends.
    sink: Option<SyncSender<Install>>,
    /// What the installer is to be handed, without an installer thread.
    held: Vec<Install>,
    /// Version of the last record (or of the checkpoint).
    last: Version,
    /// The file being read (one buffer for all of them).
    buf: Vec<u8>,
    /// Where the read phase reports its progress.
    progress: Option<ProgressObserver>,
}

impl ReadState {
    fn report(&self, report: impl FnOnce() -> Progress) {
        if let Some(observer) = &self.progress {
            observer.report(report());
        }
    }
}

/// A WAL record with its versions built: on the decoding thread, straight
/// from the payload (inline text and bytes copied once, into their
/// version, with no allocation of their own), so the installer thread only
/// links versions into chains and never frees what the other thread
/// allocated.
struct BuiltRecord {
    version: Version,
    run: RunId,
    wall_ms: u64,
    writes: Vec<(Key, BuiltVersion)>,
}

/// What the installer thread is handed, in this order: at most one
/// checkpoint (`CheckpointBegin`, its `Chains` batches, `CheckpointEnd`),
/// then the WAL records after it. A checkpoint that fails to decode ends
/// the stream early (no `CheckpointEnd`); what was installed is then
/// dropped.
enum Install {
    /// A checkpoint follows: its version and number of chains (which size
    /// the store's index and name the progress reports).
    CheckpointBegin { version: Version, chains: u64 },
    /// The checkpoint's next chains, in key order.
    Chains(BuiltChains),
    /// The rest of the checkpoint (time index, floor, run index), after
    /// all its chains.
    CheckpointEnd(CheckpointImage<BuiltVersion>),
    /// WAL records, in version order.
    Records(Vec<BuiltRecord>),
}

/// A batch of a checkpoint's chains with their versions built, for the
/// same reason as [`BuiltRecord`]: the thread that decodes the checkpoint
/// builds each version straight from the file (inline text and bytes
/// copied once, as for WAL records), the installer only links. The
/// versions of the batch's chains are in one vector, so the installer
/// frees no per-chain vector (a free of memory the other thread allocated
/// takes that thread's arena lock: it was the installer's largest cost
/// after its probes).
struct BuiltChains {
    /// Each chain's key, its number of versions in `versions`, and the
    /// largest version GC had unlinked from it, in key order.
    chains: Vec<(Key, usize, Version)>,
    /// The versions of every chain, chain after chain, each chain's oldest
    /// first (push order).
    versions: Vec<BuiltVersion>,
}

impl From<Vec<ChainImage<BuiltVersion>>> for BuiltChains {
    fn from(images: Vec<ChainImage<BuiltVersion>>) -> BuiltChains {
        // At least one version per chain (`check_image`).
        let mut versions = Vec::with_capacity(images.len());
        let chains = images
            .into_iter()
            .map(|chain| {
                let count = chain.versions.len();
                // A checkpoint lists them newest first.
                versions.extend(chain.versions.into_iter().rev());
                (chain.key, count, chain.pruned_max)
            })
            .collect();
        BuiltChains { chains, versions }
    }
}

impl VersionImage for BuiltVersion {
    fn commit(&self) -> Version {
        BuiltVersion::commit(self)
    }

    fn run(&self) -> RunId {
        BuiltVersion::run(self)
    }
}

/// How many keys ahead of the one it installs the installer prefetches
/// point-index slots: enough to overlap that many cache misses, few
/// enough that the lines are still cached when their turn comes.
/// (Prefetching the versions' headers too, which a push reads and
/// writes, measured no gain.)
const PREFETCH_AHEAD: usize = 16;

/// The most keys the installer sizes its index for up front, whatever a
/// checkpoint's trailer says (more than that, and the index grows as for
/// the WAL's keys).
const INDEX_PRESIZE_KEYS_MAX: u64 = 1 << 23;

/// Records handed to the installer thread at a time.
const RECORD_BATCH: usize = 64;
/// Batches decoded ahead of the installer (bounds the memory they hold).
const BATCHES_IN_FLIGHT: usize = 16;

impl ReadState {
    /// Keep `record`, the next one in version order.
    fn push(&mut self, record: BuiltRecord) {
        self.last = record.version;
        self.records.push(record);
        if self.records.len() >= RECORD_BATCH {
            self.hand_over();
        }
    }

    /// Hand the pending records to the installer.
    fn hand_over(&mut self) {
        if !self.records.is_empty() {
            let batch = std::mem::replace(&mut self.records, Vec::with_capacity(RECORD_BATCH));
            self.send(Install::Records(batch));
        }
    }

    /// Hand `what` to the installer thread, or hold it if there is none.
    fn send(&mut self, what: Install) {
        match &self.sink {
            // A send fails only if the installer is gone (it panicked):
            // what it was sent is dropped and the join reports the panic.
            Some(sink) => {
                if sink.send(what).is_err() {
                    self.sink = None;
                }
            }
            None => self.held.push(what),
        }
    }
}

/// Run `read` (a read phase: a checkpoint and the WAL after it, or the
/// WAL alone) with installing pipelined on a second thread: this thread
/// checks and decodes while the installer puts what was decoded so far
/// into a store, in order. Errors are the read phase's, exactly as without
/// the pipeline (the partly built state is then dropped: nothing on disk
/// changed). Without a second thread, everything is decoded first and
/// installed afterwards.
fn pipelined<T>(state: &mut ReadState, read: impl FnOnce(&mut ReadState) -> T) -> (T, Rebuilt) {
    let observer = state.progress.clone();
    let piped = std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Install>(BATCHES_IN_FLIGHT);
        let installer = std::thread::Builder::new()
            .name("rewinddb-recovery-install".into())
            .spawn_scoped(s, || install(rx.into_iter(), observer.as_ref()));
        let Ok(installer) = installer else {
            return Err(read);
        };
        state.sink = Some(tx);
        // A panic here must still close the channel, or the scope would
        // wait forever for an installer waiting for more.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let out = read(state);
            state.hand_over();
            out
        }));
        // Closing the channel lets the installer finish.
        state.sink = None;
        let installed = installer.join();
        match (out, installed) {
            (Ok(out), Ok(rebuilt)) => Ok((out, rebuilt)),
            (Err(panic), _) | (_, Err(panic)) => std::panic::resume_unwind(panic),
        }
    });
    match piped {
        Ok(done) => done,
        Err(read) => {
            let out = read(state);
            state.hand_over();
            let held = std::mem::take(&mut state.held);
            (out, install(held.into_iter(), observer.as_ref()))
        }
    }
}

/// The state rebuilt from a [`ReadState`].
struct Rebuilt {
    store: Store,
    times: TimeIndex,
    runs: BTreeMap<RunId, Vec<RunCommit>>,
    snapshots: SnapshotTracker,
    linked: u64,
    last: Version,
}

/// Install what `stream` hands over (see [`Install`]), as it arrives. The
/// store's point index is sized for the checkpoint's keys (it grows for
/// the keys the WAL creates, which are not known in advance while the WAL
/// is still being decoded). Every key goes on its family's pending list,
/// not into the ordered index: that is built lazily, by the first scan of
/// a family or the first walk of every key (`store.rs`, "Deferred ordered
/// inserts"), so reopening does not wait for it.
fn install(stream: impl Iterator<Item = Install>, observer: Option<&ProgressObserver>) -> Rebuilt {
    let mut stream = stream.peekable();
    let begin = match stream.peek() {
        Some(&Install::CheckpointBegin { version, chains }) => Some((version, chains)),
        _ => None,
    };
    // The count is the file's word, checked only once all chains are
    // decoded: a crafted one costs at most the cap's table (256 MiB).
    let keys = begin.map_or(0, |(_, chains)| chains.min(INDEX_PRESIZE_KEYS_MAX));
    let store = Store::with_capacity(keys as usize);
    let mut installer = Installer::new(&store);
    if let Some((version, keys_total)) = begin {
        stream.next();
        let mut progress =
            ProgressCounter::new(observer, |keys_done| Progress::OpenCheckpointKeys {
                version,
                keys_done,
                keys_total,
            });
        loop {
            match stream.next() {
                Some(Install::Chains(batch)) => installer.load_chains(batch, &mut progress),
                Some(Install::CheckpointEnd(image)) => {
                    progress.finish();
                    installer.load_rest(image);
                    break;
                }
                // The checkpoint did not decode: the read phase stopped
                // and drops what was installed.
                _ => break,
            }
        }
    }
    for what in stream {
        debug_assert!(matches!(what, Install::Records(_)), "records come last");
        if let Install::Records(records) = what {
            for record in records {
                installer.apply(record);
            }
        }
    }
    let (times, runs, snapshots, linked, last) = installer.finish();
    store.free_retired();
    Rebuilt {
        store,
        times,
        runs,
        snapshots,
        linked,
        last,
    }
}

/// Installs a checkpoint image and WAL records into a store.
struct Installer<'s> {
    store: &'s Store,
    times: TimeIndex,
    runs: BTreeMap<RunId, Vec<RunCommit>>,
    snapshots: SnapshotTracker,
    linked: u64,
    last: Version,
}

type Parts = (
    TimeIndex,
    BTreeMap<RunId, Vec<RunCommit>>,
    SnapshotTracker,
    u64,
    Version,
);

impl<'s> Installer<'s> {
    fn new(store: &'s Store) -> Installer<'s> {
        Installer {
            store,
            times: TimeIndex::default(),
            runs: BTreeMap::new(),
            snapshots: SnapshotTracker::default(),
            linked: 0,
            last: 0,
        }
    }

    /// Install a batch of a checkpoint's chains, ticking `progress` once
    /// per chain.
    fn load_chains<F: Fn(u64) -> Progress>(
        &mut self,
        batch: BuiltChains,
        progress: &mut ProgressCounter<'_, F>,
    ) {
        let guard = crossbeam_epoch::pin();
        let (mut chains, mut versions) = (batch.chains.into_iter(), batch.versions.into_iter());
        loop {
            if let Some((ahead, _, _)) = chains.as_slice().get(PREFETCH_AHEAD) {
                self.store.prefetch(ahead, &guard);
            }
            let Some((key, count, pruned_max)) = chains.next() else {
                break;
            };
            progress.tick();
            let (chain, created) = self.store.chain_or_create(key);
            debug_assert!(created, "a checkpoint holds each key once");
            for version in versions.by_ref().take(count) {
                chain.push_built(version, &guard);
                self.linked += 1;
            }
            chain.mark_pruned(pruned_max, &guard);
        }
    }

    /// Install the rest of a checkpoint, after its chains: the time index,
    /// the floor and the run index.
    fn load_rest(&mut self, image: CheckpointImage<BuiltVersion>) {
        self.times = TimeIndex::from_entries(image.times);
        self.snapshots.raise_floor(image.floor);
        for run in image.runs {
            let commits = run.commits.into_iter().map(|(version, wall_ms, keys)| {
                let chains = keys
                    .iter()
                    .map(|key| self.chain_named_by_index(key, version))
                    .collect();
                RunCommit::new(version, wall_ms, chains)
            });
            let commits = commits.collect();
            self.runs.insert(run.run, commits);
        }
        self.last = image.version;
    }

    /// The chain of `key`, which the checkpoint's run index says commit
    /// `version` wrote. A checkpoint always holds that chain (GC keeps a
    /// version of every key at or below the floor); should it lack it, the
    /// key gets an empty chain marked pruned through `version`, so reads
    /// and replay report the version as pruned rather than absent.
    fn chain_named_by_index(&mut self, key: &Key, version: Version) -> ChainRef {
        let (chain, created) = self.store.chain_or_create(key.clone());
        if created {
            chain.mark_pruned(version, &crossbeam_epoch::pin());
        }
        chain
    }

    fn apply(&mut self, record: BuiltRecord) {
        debug_assert_eq!(
            record.version,
            self.last + 1,
            "records apply in order, once"
        );
        let guard = crossbeam_epoch::pin();
        let wall_ms = self.times.record(record.version, record.wall_ms);
        let in_run = !record.run.is_nil();
        let mut written = CommitChains::new();
        let mut writes = record.writes.into_iter();
        loop {
            if let Some((ahead, _)) = writes.as_slice().get(PREFETCH_AHEAD) {
                self.store.prefetch(ahead, &guard);
            }
            let Some((key, version)) = writes.next() else {
                break;
            };
            let (chain, _) = self.store.chain_or_create(key);
            chain.push_built(version, &guard);
            self.linked += 1;
            if in_run {
                written.push(chain);
            }
        }
        if in_run {
            self.runs
                .entry(record.run)
                .or_default()
                .push(RunCommit::new(record.version, wall_ms, written));
        }
        self.last = record.version;
    }

    /// The rest of the state.
    fn finish(self) -> Parts {
        (
            self.times,
            self.runs,
            self.snapshots,
            self.linked,
            self.last,
        )
    }
}

impl Rebuilt {
    fn finish(self, writer: WalWriter, checkpoints: Vec<Version>) -> Recovered {
        let state = CommitState {
            last: self.last,
            runs: self.runs.into_iter().collect(),
            times: self.times,
            ..CommitState::default()
        };
        Recovered {
            store: self.store,
            state,
            snapshots: self.snapshots,
            linked_versions: self.linked,
            writer,
            checkpoints,
        }
    }
}

/// The read phase, installing as it decodes (see [`pipelined`]): the
/// newest valid checkpoint, its chains installed while later ones are
/// decoded, then the WAL records after it. A checkpoint that turns out
/// damaged, even halfway through its body, is named in `damaged` and the
/// next older one is tried, with a fresh store; with none valid, the WAL
/// alone, which must then start at version 1.
fn read_and_install(
    storage: &dyn Storage,
    checkpoints: &[Version],
    segments: &[Segment],
    mode: RecoveryMode,
    read: &mut ReadState,
    damaged: &mut Vec<String>,
) -> Result<(Tail, Rebuilt)> {
    let mut newest_damage = None;
    for &v in checkpoints.iter().rev() {
        let name = checkpoint_name(v);
        let io = |e| io_err(storage, "reading", &name, e);
        let file = storage.open_read(&name).map_err(io)?;
        let frame = check_frame(file.size(), |at, buf| file.read_exact_at(at, buf));
        let reason = match frame.map_err(io)? {
            Ok(frame) if frame.version == v => {
                read.report(|| Progress::OpenCheckpoint {
                    version: v,
                    bytes: file.size(),
                });
                match checkpoint_then_wal(storage, segments, mode, read, &frame, &*file, &name) {
                    Ok(done) => return Ok(done),
                    Err(Stopped::Failed(e)) => return Err(e),
                    Err(Stopped::Damaged(reason)) => reason,
                }
            }
            Ok(frame) => format!("file name says version {v}, header {}", frame.version),
            Err(CheckpointError::NewerFormat(found)) => {
                let supported = CHECKPOINT_FORMAT_VERSION;
                return Err(newer_format(storage, &name, found, supported));
            }
            Err(CheckpointError::Damaged(reason)) => reason,
        };
        damaged.push(name.clone());
        newest_damage.get_or_insert((name, reason));
    }
    if let Some((name, reason)) = newest_damage
        && segments.first().is_none_or(|s| s.first != 1)
    {
        return Err(corruption(
            storage,
            &name,
            0,
            format!("damaged checkpoint ({reason}) and no older one to fall back to"),
        ));
    }
    let (tail, rebuilt) = pipelined(read, |read| replay_wal(storage, segments, 0, mode, read));
    debug_assert_eq!(rebuilt.last, read.last);
    Ok((tail?, rebuilt))
}

/// Why a read phase that began with a checkpoint stopped.
enum Stopped {
    /// The checkpoint turned out damaged (the reason): what was installed
    /// of it is dropped, and the next older one is tried.
    Damaged(String),
    /// Recovery fails with this error.
    Failed(Error),
}

impl From<Error> for Stopped {
    fn from(e: Error) -> Stopped {
        Stopped::Failed(e)
    }
}

/// The read phase after a checkpoint whose header and trailer are intact
/// (`frame`, of `file` named `name`): its chains handed to the installer
/// as they are decoded, then the WAL after it, pipelined (see
/// [`pipelined`]).
fn checkpoint_then_wal(
    storage: &dyn Storage,
    segments: &[Segment],
    mode: RecoveryMode,
    read: &mut ReadState,
    frame: &CheckpointFrame,
    file: &dyn StorageReader,
    name: &str,
) -> std::result::Result<(Tail, Rebuilt), Stopped> {
    let v = frame.version;
    let (read_phase, rebuilt) = pipelined(read, |read| {
        let unreadable = |e| io_err(storage, "reading", name, e);
        stream_checkpoint(frame, file, read, unreadable)?;
        read.last = v;
        Ok::<_, Stopped>(replay_wal(storage, segments, v, mode, read)?)
    });
    let tail = read_phase?;
    debug_assert_eq!(rebuilt.last, read.last);
    Ok((tail, rebuilt))
}

/// Bytes of a checkpoint's body read at a time while it is decoded: small
/// enough that what is read is still in the cache when it is decoded.
const READ_CHUNK: usize = 1 << 20;

/// Hand the chains of the checkpoint `frame` of `file` to the installer
/// as they are decoded: in batches when the file says how many there are
/// (format 3 on), so the installer can size the index and report progress
/// from the start; else all at once, after the whole body. A failed read
/// of `file` is the error `unreadable` makes of it.
fn stream_checkpoint(
    frame: &CheckpointFrame,
    file: &dyn StorageReader,
    read: &mut ReadState,
    unreadable: impl FnOnce(std::io::Error) -> Error,
) -> std::result::Result<(), Stopped> {
    let version = frame.version;
    let decode = |sink: &mut dyn FnMut(Vec<ChainImage<BuiltVersion>>)| {
        frame.decode_streamed(file, READ_CHUNK, built_version, sink)
    };
    let decoded = match frame.chains {
        Some(chains) => {
            read.send(Install::CheckpointBegin { version, chains });
            decode(&mut |batch| read.send(Install::Chains(batch.into())))
        }
        None => {
            let mut all = Vec::new();
            let decoded = decode(&mut |batch| all.extend(batch));
            if let Ok(Ok(_)) = &decoded {
                let chains = all.len() as u64;
                read.send(Install::CheckpointBegin { version, chains });
                read.send(Install::Chains(all.into()));
            }
            decoded
        }
    };
    let image = decoded.map_err(unreadable)?;
    let image = image.map_err(|e| match e {
        CheckpointError::Damaged(reason) => Stopped::Damaged(reason),
        CheckpointError::NewerFormat(found) => Stopped::Damaged(format!("format {found}")),
    })?;
    read.send(Install::CheckpointEnd(image));
    Ok(())
}

/// Apply every WAL record after `base`; find where the WAL ends.
fn replay_wal(
    storage: &dyn Storage,
    segments: &[Segment],
    base: Version,
    mode: RecoveryMode,
    read: &mut ReadState,
) -> Result<Tail> {
    // The segment holding base + 1 is the last one starting at or below it.
    let start = segments
        .iter()
        .rposition(|s| s.first <= base + 1)
        .unwrap_or(0);
    let mut doomed = Vec::new();
    let mut bytes = std::mem::take(&mut read.buf);
    for i in start..segments.len() {
        let seg = &segments[i];
        storage
            .read_into(&seg.name, &mut bytes)
            .map_err(|e| io_err(storage, "reading", &seg.name, e))?;
        let later_records = || later_segments_hold_records(storage, &segments[i + 1..]);
        match wal::parse_segment_header(&bytes) {
            Ok(first) if first == seg.first => {}
            Err(HeaderError::NewerFormat(found)) => {
                let supported = wal::FORMAT_VERSION;
                return Err(newer_format(storage, &seg.name, found, supported));
            }
            Ok(_) | Err(HeaderError::Damaged(_)) | Err(HeaderError::Short) => {
                // A segment whose header never became durable can only be
                // the last one written, and empty: rotation syncs the header
                // and the directory before any record goes into it.
                if later_records()? || holds_records(&bytes, seg.first) {
                    let reason = "segment header is damaged".to_string();
                    return Err(corruption(storage, &seg.name, 0, reason));
                }
                doomed.extend(segments[i..].iter().map(|s| s.name.clone()));
                return Ok(Tail {
                    doomed,
                    ..Tail::default()
                });
            }
        }
        let holds_bytes = wal::len_without_zero_tail(&bytes) > wal::SEGMENT_HEADER_SIZE;
        if seg.first > read.last + 1 && holds_bytes {
            let reason = format!(
                "WAL is missing versions {}..{}: the segment starts at {}",
                read.last + 1,
                seg.first - 1,
                seg.first
            );
            return Err(corruption(storage, &seg.name, 0, reason));
        }
        let decoded = decode_segment(&bytes, seg.first, read);
        read.report(|| Progress::OpenWal {
            segments_done: i - start + 1,
            segments_total: segments.len() - start,
            version: read.last,
        });
        let valid_len = decoded.valid_end as u64;
        match decoded.stop {
            Stop::End if i + 1 < segments.len() => continue,
            Stop::End => {}
            Stop::Torn { .. } if !later_records()? => {}
            Stop::Torn { offset, reason } | Stop::Corrupt { offset, reason, .. }
                if mode == RecoveryMode::TruncateTornTail =>
            {
                let version = decoded.last_version + 1;
                let reason = format!("record for version {version}: {reason}");
                return Err(corruption(storage, &seg.name, offset as u64, reason));
            }
            Stop::Torn { .. } | Stop::Corrupt { .. } => {}
        }
        doomed.extend(segments[i + 1..].iter().map(|s| s.name.clone()));
        // Appending continues here only if this segment ends exactly at the
        // recovered state (not when a checkpoint is newer than its end).
        // A clean end keeps the file as it is (its zero tail is the
        // preallocated space the writer continues in); anything else is
        // cut at the last valid record.
        let clean = decoded.stop == Stop::End;
        return Ok(Tail {
            truncate: (!clean).then_some((i, valid_len)),
            append_to: (decoded.last_version == read.last).then_some(i),
            segment_len: bytes.len() as u64,
            records_end: valid_len,
            doomed,
        });
    }
    Ok(Tail {
        doomed,
        ..Tail::default()
    })
}

/// Decode one segment, keeping the records newer than what was read so far.
/// Each record's versions are built straight from the payload (inline text
/// and bytes copied once, into their version).
fn decode_segment(bytes: &[u8], first: Version, read: &mut ReadState) -> Decoded {
    wal::decode_records_with(
        bytes,
        wal::SEGMENT_HEADER_SIZE,
        first.saturating_sub(1),
        decode_built_record,
        |_, record| {
            // Versions are checked: a record is applied only if it is the
            // very next one, so nothing is ever applied twice.
            if record.version == read.last + 1 {
                read.push(record);
            }
        },
    )
}

/// A WAL payload decoded into a [`BuiltRecord`]: accepts and refuses what
/// `wal::decode_records` does (the same decoder, the same version check).
fn decode_built_record(
    payload: &[u8],
    last: Version,
    family: &mut Option<Family>,
) -> std::result::Result<(Version, BuiltRecord), String> {
    let (version, run, wall_ms, writes) = codec::decode_commit_record_with(
        payload,
        family,
        |(key, _): &(Key, BuiltVersion)| key,
        |version, run, key, value| (key, built_version(version, run, value)),
    )
    .map_err(wal::payload_error)?;
    let version = wal::check_next_version(version, last)?;
    let record = BuiltRecord {
        version,
        run,
        wall_ms,
        writes,
    };
    Ok((version, record))
}

/// The version `commit` of `run` holding a decoded value (None: a delete).
fn built_version(commit: Version, run: RunId, value: Option<TopValue<'_>>) -> BuiltVersion {
    match value {
        None => BuiltVersion::new(commit, run, None),
        Some(TopValue::Slice(slice)) => BuiltVersion::copied(commit, run, slice),
        Some(TopValue::Value(value)) => BuiltVersion::new(commit, run, Some(value)),
    }
}

/// True if `bytes` holds a valid record after where a header would end.
fn holds_records(bytes: &[u8], first: Version) -> bool {
    let mut any = false;
    let last = first.saturating_sub(1);
    let d = wal::decode_records(bytes, wal::SEGMENT_HEADER_SIZE, last, |_, _| any = true);
    any || matches!(d.stop, Stop::Corrupt { .. })
}

/// True if any of `later` holds at least one valid record.
fn later_segments_hold_records(storage: &dyn Storage, later: &[Segment]) -> Result<bool> {
    for seg in later {
        let bytes = storage
            .read(&seg.name)
            .map_err(|e| io_err(storage, "reading", &seg.name, e))?;
        if holds_records(&bytes, seg.first) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The repair phase: make the directory match the recovered state and open
/// the WAL for appending.
fn repair(
    storage: &dyn Storage,
    names: &[String],
    segments: &[Segment],
    mut tail: Tail,
    damaged_checkpoints: &[String],
    last: Version,
    prealloc: Prealloc,
) -> Result<WalWriter> {
    let io = |what: &str, name: &str, e| io_err(storage, what, name, e);
    let tmp: Vec<&String> = names.iter().filter(|n| n.ends_with(".tmp")).collect();
    for name in &tmp {
        storage.remove(name).map_err(|e| io("removing", name, e))?;
    }
    for name in damaged_checkpoints {
        let to = format!("{name}.damaged");
        storage
            .rename(name, &to)
            .map_err(|e| io("setting aside", name, e))?;
    }
    if tail.append_to.is_none() {
        // Segments that start past the recovered state hold nothing of it
        // (the one at `last + 1` is recreated below).
        let stale = segments.iter().filter(|s| s.first > last + 1);
        tail.doomed.extend(stale.map(|s| s.name.clone()));
    }
    for name in &tail.doomed {
        storage.remove(name).map_err(|e| io("removing", name, e))?;
    }
    if let Some((i, len)) = tail.truncate {
        let name = &segments[i].name;
        let file = storage
            .open_append(name)
            .map_err(|e| io("opening", name, e))?;
        file.set_len(len)
            .and_then(|()| file.sync())
            .map_err(|e| io("truncating the torn tail of", name, e))?;
    }
    let mut kept: Vec<(Version, String)> = segments
        .iter()
        .filter(|s| !tail.doomed.contains(&s.name) && s.first <= last)
        .map(|s| (s.first, s.name.clone()))
        .collect();
    let (file, segment_len, allocated) = match tail.append_to {
        Some(i) => {
            let name = &segments[i].name;
            let file = storage
                .open_append(name)
                .map_err(|e| io("opening", name, e))?;
            let size = tail.truncate.map_or(tail.segment_len, |(_, len)| len);
            (file, tail.records_end, size)
        }
        None => {
            let name = wal::segment_name(last + 1);
            let (file, size) = create_segment(storage, last + 1, prealloc)
                .map_err(|e| io("creating", &name, e))?;
            kept.push((last + 1, name));
            (file, wal::SEGMENT_HEADER_SIZE as u64, size)
        }
    };
    if !tail.doomed.is_empty() || !tmp.is_empty() || !damaged_checkpoints.is_empty() {
        storage
            .sync_dir()
            .map_err(|e| io("syncing directory", "", e))?;
    }
    Ok(WalWriter {
        file,
        segments: kept,
        segment_len,
        allocated,
        written: last,
        synced: last,
        spare: Vec::new(),
    })
}

#[cfg(test)]
mod test {
    use super::*;

    /// A panic in the read phase, while the installer waits for more of a
    /// checkpoint, reaches the caller: the channel is closed, the installer
    /// ends and is joined, and the panic resumes. Without the close, the
    /// thread scope would wait forever for the installer.
    #[test]
    fn a_panic_while_reading_reaches_the_caller_instead_of_hanging() {
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let caught = std::panic::catch_unwind(|| {
                let mut state = ReadState::default();
                pipelined(&mut state, |read| {
                    read.send(Install::CheckpointBegin {
                        version: 1,
                        chains: 10,
                    });
                    panic!("planted: the read phase panics");
                })
            });
            let _ = done.send(caught.is_err());
        });
        let panicked = outcome.recv_timeout(std::time::Duration::from_secs(60));
        assert_eq!(panicked, Ok(true), "the read phase's panic must come back");
    }
}
