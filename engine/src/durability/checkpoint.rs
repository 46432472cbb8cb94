//! Checkpoint files: the retained history at one version (see docs/format.md).
//!
//! ```text
//! header (48 B):  magic "RWDBCKPT" | format u32 (3) | reserved u32 (0) | version u64
//!                 | wal_through u64 | 12 zero bytes | header_crc32 u32
//! body:           postcard: times [(version u64, ms u64)],
//!                 { true, ChainImage } per chain, false, floor u64, runs [RunImage]
//! trailer (24 B): body_len u64 | chains u64 | body_crc32 u32 | trailer_crc32 u32
//! ```
//!
//! The body's length, its number of chains and its checksum come last so a
//! checkpoint can be streamed to its file. The chain count (format 3) lets
//! recovery size its index and report progress before it has decoded the
//! chains, so it installs them while decoding. Format 2 (still read) had
//! no chain count (a 16-byte trailer). Format 1 (still read) kept the
//! body's length and checksum in the header (bytes 32..44), had no
//! trailer, wrote the chains as one counted sequence and had no run index:
//! it is rebuilt from the `run` of each retained version.
//!
//! A checkpoint is written from an MVCC snapshot without holding the commit
//! lock (writers do not stall), to `NAME.tmp`, fsynced, renamed to `NAME`,
//! and the directory fsynced.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::durability::body_window::{BodyWindow, StreamError};
use crate::durability::codec::{
    self, ChainImage, DecodeError, RunImage, StoredRunCommit, StoredVersion, TopValue,
};
use crate::durability::io::{StorageFile, StorageReader};
use crate::durability::wal::{le_u32, le_u64};
use crate::time_index::TimeIndex;
use crate::types::{Key, RunId, Version};

/// First bytes of every checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"RWDBCKPT";
/// Format version of the checkpoint files this build writes. 2 added the
/// run index (per run, its commits and their keys), so the index survives
/// GC unlinking the versions it names; format 1 files are still read.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 3;
/// Size of the checkpoint header.
pub const CHECKPOINT_HEADER_SIZE: usize = 48;
/// Checkpoints kept on disk: the newest, and the one before as a fallback
/// if the newest turns out damaged (the WAL is kept back to the older one).
pub const CHECKPOINTS_KEPT: usize = 2;

const _: () = assert!(CHECKPOINT_HEADER_SIZE == 8 + 4 + 4 + 8 + 8 + 8 + 4 + 4);
const _: () = assert!(CHECKPOINTS_KEPT >= 2, "a fallback checkpoint must exist");

/// File name of the checkpoint at `version`.
pub fn checkpoint_name(version: Version) -> String {
    format!("checkpoint-{version:020}.ckpt")
}

/// The version encoded in a checkpoint file name.
pub fn parse_checkpoint_name(name: &str) -> Option<Version> {
    let digits = name.strip_prefix("checkpoint-")?.strip_suffix(".ckpt")?;
    if digits.len() != 20 {
        return None;
    }
    digits.parse().ok()
}

/// Everything a checkpoint holds, its versions as [`StoredVersion`]s or
/// as whatever [`decode_checkpoint_with`] builds them into.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointImage<V = StoredVersion> {
    /// The checkpoint's version: every commit `<= version` is in it.
    pub version: Version,
    /// WAL records with versions `<= wal_through` are covered (== version).
    pub wal_through: Version,
    /// Reads below this version are refused after recovery (GC horizon).
    pub floor: Version,
    /// The time index: `(first version of a millisecond, ms)`.
    pub times: Vec<(Version, u64)>,
    /// Every retained chain, in key order.
    pub chains: Vec<ChainImage<V>>,
    /// The per-run commit index through `version`, in run order (runs
    /// with at least one commit; never `RunId::NIL`).
    pub runs: Vec<RunImage>,
}

/// What checking a checkpoint needs of a version: its commit and run.
pub trait VersionImage {
    /// The commit version.
    fn commit(&self) -> Version;
    /// The run that wrote it.
    fn run(&self) -> RunId;
}

impl VersionImage for StoredVersion {
    fn commit(&self) -> Version {
        self.0
    }

    fn run(&self) -> RunId {
        self.1
    }
}

impl Serialize for ChainImage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.key, self.pruned_max, &self.versions).serialize(s)
    }
}

impl Serialize for RunImage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.run, &self.commits).serialize(s)
    }
}

/// Size of the trailer of a format 3 checkpoint.
pub const CHECKPOINT_TRAILER_SIZE: usize = 24;
/// Size of the trailer of a format 2 checkpoint (no chain count).
pub const CHECKPOINT_TRAILER_SIZE_V2: usize = 16;
/// Fewer body bytes than any chain takes (format 2 on: its flag, a key of
/// at least 4, its pruned mark, a versions count and at least one version
/// of at least 3), to bound a trailer's chain count.
const CHAIN_SIZE_MIN: u64 = 8;
/// Chains handed over at a time by [`CheckedCheckpoint::decode_streaming`].
pub const CHAIN_BATCH: usize = 4096;
/// Encoded body bytes buffered before they are handed to the file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

const _: () = assert!(CHECKPOINT_TRAILER_SIZE == 8 + 8 + 4 + 4);
const _: () = assert!(CHECKPOINT_TRAILER_SIZE_V2 == 8 + 4 + 4);

/// The size of the trailer of a checkpoint of `format` (0: none).
pub fn trailer_size(format: u32) -> usize {
    match format {
        0 | 1 => 0,
        2 => CHECKPOINT_TRAILER_SIZE_V2,
        _ => CHECKPOINT_TRAILER_SIZE,
    }
}

/// Where a checkpoint is written: a file, or memory (tests, fuzzing).
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

impl Sink for &dyn StorageFile {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.append(bytes)
    }
}

/// Writes a format 2 checkpoint front to back, one chain at a time, so
/// the checkpoint never exists whole in memory (the body's length and
/// checksum go into the trailer, known only at the end).
pub(crate) struct CheckpointWriter<S: Sink> {
    sink: S,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    body_len: u64,
    chains: u64,
}

/// Why writing a checkpoint failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    Io(std::io::Error),
    Encode(postcard::Error),
}

impl WriteError {
    /// As the engine's error, naming the file.
    pub(crate) fn into_error(self, file: String) -> crate::error::Error {
        match self {
            WriteError::Io(source) => crate::error::Error::Io {
                context: format!("writing checkpoint {file}"),
                source,
            },
            WriteError::Encode(e) => crate::error::Error::InvalidArgument(format!(
                "cannot encode checkpoint {file}: {e}"
            )),
        }
    }
}

impl<S: Sink> CheckpointWriter<S> {
    /// Write the header (`wal_through` is `version` for the engine's own
    /// checkpoints); the body starts with `times`.
    pub(crate) fn begin(
        mut sink: S,
        version: Version,
        wal_through: Version,
        times: &[(Version, u64)],
    ) -> Result<CheckpointWriter<S>, WriteError> {
        let mut h = Vec::with_capacity(CHECKPOINT_HEADER_SIZE);
        h.extend_from_slice(&CHECKPOINT_MAGIC);
        h.extend_from_slice(&CHECKPOINT_FORMAT_VERSION.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&version.to_le_bytes());
        h.extend_from_slice(&wal_through.to_le_bytes());
        h.extend_from_slice(&[0u8; 12]); // format 1's body length and CRC
        let header_crc = crc32fast::hash(&h);
        h.extend_from_slice(&header_crc.to_le_bytes());
        sink.put(&h).map_err(WriteError::Io)?;
        let mut w = CheckpointWriter {
            sink,
            buf: Vec::with_capacity(WRITE_BUFFER_BYTES + (WRITE_BUFFER_BYTES >> 2)),
            crc: crc32fast::Hasher::new(),
            body_len: 0,
            chains: 0,
        };
        w.encode(times)?;
        Ok(w)
    }

    fn encode<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WriteError> {
        let buf = std::mem::take(&mut self.buf);
        self.buf = postcard::to_extend(value, buf).map_err(WriteError::Encode)?;
        if self.buf.len() >= WRITE_BUFFER_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WriteError> {
        self.crc.update(&self.buf);
        self.body_len += self.buf.len() as u64;
        self.sink.put(&self.buf).map_err(WriteError::Io)?;
        self.buf.clear();
        Ok(())
    }

    /// One chain: its key, `pruned_max` and retained versions, newest first.
    pub(crate) fn chain<V: Serialize>(
        &mut self,
        key: &Key,
        pruned_max: Version,
        versions: &[V],
    ) -> Result<(), WriteError> {
        self.chains += 1;
        self.encode(&(true, key, pruned_max, versions))
    }

    /// End the chains, write the floor (read after the chains: GC may
    /// raise it meanwhile), the run index and the trailer.
    pub(crate) fn finish(mut self, floor: Version, runs: &[RunImage]) -> Result<S, WriteError> {
        self.encode(&(false, floor, runs))?;
        self.flush()?;
        let mut t = Vec::with_capacity(CHECKPOINT_TRAILER_SIZE);
        t.extend_from_slice(&self.body_len.to_le_bytes());
        t.extend_from_slice(&self.chains.to_le_bytes());
        t.extend_from_slice(&self.crc.clone().finalize().to_le_bytes());
        let trailer_crc = crc32fast::hash(&t);
        t.extend_from_slice(&trailer_crc.to_le_bytes());
        self.sink.put(&t).map_err(WriteError::Io)?;
        Ok(self.sink)
    }
}

/// Encode a checkpoint file in memory (tests, fuzzing; the engine streams
/// its checkpoints with the same writer).
pub fn encode_checkpoint(image: &CheckpointImage) -> Result<Vec<u8>, postcard::Error> {
    let encode = || {
        let mut w =
            CheckpointWriter::begin(Vec::new(), image.version, image.wal_through, &image.times)?;
        for c in &image.chains {
            w.chain(&c.key, c.pruned_max, &c.versions)?;
        }
        w.finish(image.floor, &image.runs)
    };
    encode().map_err(|e| match e {
        WriteError::Encode(e) => e,
        // Writing to a Vec cannot fail.
        WriteError::Io(_) => postcard::Error::SerializeBufferFull,
    })
}

/// Why a checkpoint file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointError {
    /// Damaged: truncated, bad magic, checksum mismatch or bad body.
    Damaged(String),
    /// Written by a newer format version.
    NewerFormat(u32),
}

/// Decode and verify a checkpoint file.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<CheckpointImage, CheckpointError> {
    decode_checkpoint_with(bytes, codec::stored_version)
}

/// [`decode_checkpoint`] with each version made by `build` from its
/// commit, run and value (text and bytes as slices of `bytes`). Accepts
/// exactly the files [`decode_checkpoint`] accepts.
pub fn decode_checkpoint_with<V: VersionImage>(
    bytes: &[u8],
    build: impl FnMut(Version, RunId, Option<TopValue<'_>>) -> V,
) -> Result<CheckpointImage<V>, CheckpointError> {
    let mut chains = Vec::new();
    let mut image =
        check_checkpoint(bytes)?.decode_streaming(build, |batch| chains.extend(batch))?;
    image.chains = chains;
    Ok(image)
}

/// A checkpoint file whose header, trailer and body checksum are valid
/// (from [`check_checkpoint`]): its body is yet to be decoded.
#[derive(Debug)]
pub struct CheckedCheckpoint<'b> {
    /// Its header and trailer (read through `Deref`: `checked.version`).
    frame: CheckpointFrame,
    body: &'b [u8],
}

impl std::ops::Deref for CheckedCheckpoint<'_> {
    type Target = CheckpointFrame;

    fn deref(&self) -> &CheckpointFrame {
        &self.frame
    }
}

/// A checkpoint file's header and trailer, checked (from [`check_frame`]):
/// where its body is, how long, and its checksum, the body not yet read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointFrame {
    /// Its format version.
    pub format: u32,
    /// Its version (from the header).
    pub version: Version,
    /// Its `wal_through` (from the header).
    pub wal_through: Version,
    /// Its number of chains (format 3 on; `None` before), at most what
    /// the body's length can hold.
    pub chains: Option<u64>,
    /// Bytes of body, which starts right after the header.
    pub body_len: u64,
    /// The body's checksum.
    pub body_crc: u32,
}

/// Check a checkpoint file's header and trailer, for a file of `size`
/// bytes read with `read(offset, buf)`: magic, checksums, format, and a
/// body length that fills the file between them. The body is not read.
/// The outer error is `read`'s.
pub fn check_frame(
    size: u64,
    mut read: impl FnMut(u64, &mut [u8]) -> std::io::Result<()>,
) -> std::io::Result<Result<CheckpointFrame, CheckpointError>> {
    let damaged = |s: &str| Ok(Err(CheckpointError::Damaged(s.to_string())));
    let mut h = [0u8; CHECKPOINT_HEADER_SIZE];
    if size < h.len() as u64 {
        return damaged("shorter than a checkpoint header");
    }
    read(0, &mut h)?;
    if h[0..8] != CHECKPOINT_MAGIC {
        return damaged("bad magic");
    }
    if crc32fast::hash(&h[..44]) != le_u32(&h[44..48]) {
        return damaged("header checksum mismatch");
    }
    let format = le_u32(&h[8..12]);
    if format > CHECKPOINT_FORMAT_VERSION {
        return Ok(Err(CheckpointError::NewerFormat(format)));
    }
    let (body_len, chains, body_crc) = match trailer_size(format) {
        0 => (le_u64(&h[32..40]), None, le_u32(&h[40..44])),
        size_t => {
            let Some(t_at) = (size.checked_sub(size_t as u64)).filter(|&at| at >= h.len() as u64)
            else {
                return damaged("shorter than a checkpoint header and trailer");
            };
            let mut t = [0u8; CHECKPOINT_TRAILER_SIZE];
            let t = &mut t[..size_t];
            read(t_at, t)?;
            if crc32fast::hash(&t[..size_t - 4]) != le_u32(&t[size_t - 4..]) {
                return damaged("trailer checksum mismatch");
            }
            let chains = (size_t == CHECKPOINT_TRAILER_SIZE).then(|| le_u64(&t[8..16]));
            (le_u64(&t[0..8]), chains, le_u32(&t[size_t - 8..size_t - 4]))
        }
    };
    let room = size - (CHECKPOINT_HEADER_SIZE + trailer_size(format)) as u64;
    if body_len != room {
        return damaged("body length does not match the header");
    }
    // Recovery sizes its index by the count: bound it by what the body
    // can hold, whatever a crafted trailer says.
    if chains.is_some_and(|n| n > body_len / CHAIN_SIZE_MIN) {
        return damaged("chain count larger than the body can hold");
    }
    Ok(Ok(CheckpointFrame {
        format,
        version: le_u64(&h[16..24]),
        wal_through: le_u64(&h[24..32]),
        chains,
        body_len,
        body_crc,
    }))
}

/// Check a checkpoint file's header, trailer and body checksum, without
/// decoding the body.
pub fn check_checkpoint(bytes: &[u8]) -> Result<CheckedCheckpoint<'_>, CheckpointError> {
    let read = |at: u64, buf: &mut [u8]| {
        // In bounds: `check_frame` reads only inside the size it is given.
        buf.copy_from_slice(&bytes[at as usize..at as usize + buf.len()]);
        Ok(())
    };
    // `read` never fails: `check_frame` reads only inside the size given.
    let frame = check_frame(bytes.len() as u64, read).map_err(unreadable)??;
    let body = &bytes[CHECKPOINT_HEADER_SIZE..CHECKPOINT_HEADER_SIZE + frame.body_len as usize];
    frame.check_body_crc(crc32fast::hash(body))?;
    Ok(CheckedCheckpoint { frame, body })
}

impl CheckedCheckpoint<'_> {
    /// Decode the body, building each version with `build` and handing
    /// the chains to `sink` in batches of [`CHAIN_BATCH`], in key order,
    /// each batch checked as [`check_image`] checks chains (a format 1
    /// body, whose run index is rebuilt from all its chains, in one batch
    /// at the end). Returns the rest of the image (`chains` empty), all of
    /// it checked. On an error, some batches may have been handed over
    /// already: the caller discards them.
    pub fn decode_streaming<V: VersionImage>(
        self,
        build: impl FnMut(Version, RunId, Option<TopValue<'_>>) -> V,
        sink: impl FnMut(Vec<ChainImage<V>>),
    ) -> Result<CheckpointImage<V>, CheckpointError> {
        let mut chains = ChainSink::new(self.frame, sink);
        let decoded =
            codec::decode_checkpoint_body_with(self.body, self.format, build, |c| chains.take(c));
        let rest = decoded.map_err(|e| chains.damage(&e))?;
        chains.finish(rest)
    }
}

impl CheckpointFrame {
    /// [`CheckedCheckpoint::decode_streaming`] of this frame's body, read
    /// from `file` as it is decoded, `chunk` bytes at a time into one
    /// buffer (see `body_window.rs`), instead of from memory. The body's
    /// checksum is checked at the end, so chains of a body that then fails
    /// it were handed over already: the caller discards them, as on any
    /// error. A format 1 body (its chains are one unit, which a window
    /// cannot retry) is read whole first. The outer error is `file`'s.
    pub fn decode_streamed<V: VersionImage>(
        &self,
        file: &dyn StorageReader,
        chunk: usize,
        build: impl FnMut(Version, RunId, Option<TopValue<'_>>) -> V,
        sink: impl FnMut(Vec<ChainImage<V>>),
    ) -> std::io::Result<Result<CheckpointImage<V>, CheckpointError>> {
        let start = CHECKPOINT_HEADER_SIZE as u64;
        if self.format < 2 {
            let Ok(len) = usize::try_from(self.body_len) else {
                return Ok(Err(CheckpointError::Damaged("body too long".into())));
            };
            let mut body = vec![0; len];
            file.read_exact_at(start, &mut body)?;
            if let Err(e) = self.check_body_crc(crc32fast::hash(&body)) {
                return Ok(Err(e));
            }
            let checked = CheckedCheckpoint {
                frame: *self,
                body: &body,
            };
            return Ok(checked.decode_streaming(build, sink));
        }
        let mut window = BodyWindow::new(file, start, self.body_len, chunk);
        let mut chains = ChainSink::new(*self, sink);
        let decoded = codec::decode_body(&mut window, self.format, build, |c| chains.take(c));
        let rest = match decoded {
            Ok(rest) => Ok(rest),
            Err(StreamError::Decode(e)) => Err(chains.damage(&e)),
            Err(StreamError::Io(e)) => return Err(e),
        };
        // Damaged bytes that happen to decode, or that do not: the
        // checksum names them first, as when the file is read whole.
        let crc = window.read_rest_crc()?;
        Ok(self
            .check_body_crc(crc)
            .and(rest)
            .and_then(|rest| chains.finish(rest)))
    }

    /// Damage unless `crc`, the checksum of the whole body as read, is the
    /// trailer's.
    fn check_body_crc(&self, crc: u32) -> Result<(), CheckpointError> {
        match crc == self.body_crc {
            true => Ok(()),
            false => Err(CheckpointError::Damaged("body checksum mismatch".into())),
        }
    }
}

/// [`decode_checkpoint`] through [`CheckpointFrame::decode_streamed`],
/// reading `bytes` `chunk` bytes at a time: the same answer for every
/// input (tests and fuzzing compare the two).
pub fn decode_checkpoint_streamed(
    bytes: &[u8],
    chunk: usize,
) -> Result<CheckpointImage, CheckpointError> {
    let file: &dyn StorageReader = &bytes;
    // Reads never fail: only inside the size the frame was checked against.
    let frame = check_frame(file.size(), |at, buf| file.read_exact_at(at, buf));
    let frame = frame.map_err(unreadable)??;
    let mut chains = Vec::new();
    let decoded = frame.decode_streamed(file, chunk, codec::stored_version, |batch| {
        chains.extend(batch)
    });
    let mut image = decoded.map_err(unreadable)??;
    image.chains = chains;
    Ok(image)
}

/// A read of a checkpoint held in memory that failed (it cannot: every
/// read is inside the bytes), as damage rather than a panic.
fn unreadable(e: std::io::Error) -> CheckpointError {
    CheckpointError::Damaged(format!("unreadable: {e}"))
}

/// Where a checkpoint's decoder puts each chain: checked as
/// [`check_image`] checks chains, then handed to `sink` in batches of
/// [`CHAIN_BATCH`] (format 2 on), or in one at the end (format 1).
struct ChainSink<V, S> {
    /// The checkpoint's header and trailer.
    frame: CheckpointFrame,
    checked: ChainCheck,
    batch: Vec<ChainImage<V>>,
    sink: S,
    /// Why a chain was refused, if one was.
    refused: Option<String>,
}

impl<V: VersionImage, S: FnMut(Vec<ChainImage<V>>)> ChainSink<V, S> {
    fn new(frame: CheckpointFrame, sink: S) -> ChainSink<V, S> {
        ChainSink {
            frame,
            checked: ChainCheck::new(frame.version),
            batch: Vec::with_capacity(CHAIN_BATCH),
            sink,
            refused: None,
        }
    }

    /// Take the next decoded chain; false if it is refused.
    fn take(&mut self, chain: ChainImage<V>) -> bool {
        if let Err(reason) = self.checked.next(&chain) {
            self.refused = Some(reason);
            return false;
        }
        self.batch.push(chain);
        // Format 1 rebuilds its run index from all its chains at the end.
        let streamed = self.frame.format >= 2;
        if streamed && self.batch.len() == CHAIN_BATCH {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(CHAIN_BATCH));
            (self.sink)(full);
        }
        true
    }

    /// The damage a decoding error `e` names: a refused chain's reason, or
    /// where the body stopped decoding.
    fn damage(&mut self, e: &DecodeError) -> CheckpointError {
        CheckpointError::Damaged(
            (self.refused.take()).unwrap_or_else(|| format!("body does not decode: {e}")),
        )
    }

    /// After the whole body decoded into `rest`: check the chain count
    /// against the trailer's, hand over the last batch, and return the
    /// rest of the image, checked.
    fn finish(
        mut self,
        (floor, times, runs): codec::CheckpointBodyRest,
    ) -> Result<CheckpointImage<V>, CheckpointError> {
        if self.frame.chains.is_some_and(|n| n != self.checked.count) {
            return Err(CheckpointError::Damaged(
                "chain count does not match the trailer".into(),
            ));
        }
        let runs = runs.unwrap_or_else(|| runs_from_chains(&self.batch, &times));
        if !self.batch.is_empty() {
            (self.sink)(self.batch);
        }
        let image = CheckpointImage {
            version: self.frame.version,
            wal_through: self.frame.wal_through,
            floor,
            times,
            chains: Vec::new(),
            runs,
        };
        check_image(&image).map_err(CheckpointError::Damaged)?;
        Ok(image)
    }
}

/// The checks [`check_image`] makes of each chain, one chain at a time.
struct ChainCheck {
    version: Version,
    last: Option<Key>,
    count: u64,
}

impl ChainCheck {
    fn new(version: Version) -> ChainCheck {
        ChainCheck {
            version,
            last: None,
            count: 0,
        }
    }

    /// `chain`, the next one: after the previous in key order, its history
    /// newest first, inside `1..=version` and above its pruned mark.
    fn next<V: VersionImage>(&mut self, chain: &ChainImage<V>) -> Result<(), String> {
        if self.last.as_ref().is_some_and(|last| *last >= chain.key) {
            return Err("chains are not in strictly increasing key order".into());
        }
        let ordered = (chain.versions.windows(2)).all(|w| w[0].commit() > w[1].commit());
        let in_range = (chain.versions.first()).is_some_and(|v| v.commit() <= self.version)
            && (chain.versions.last())
                .is_some_and(|v| v.commit() >= 1 && v.commit() > chain.pruned_max);
        if !ordered || !in_range {
            return Err(format!("history of {} is out of order or range", chain.key));
        }
        self.last = Some(chain.key.clone());
        self.count += 1;
        Ok(())
    }
}

/// Relations a checkpoint written by this engine always satisfies; checked
/// after reading (and before writing, in debug builds).
pub fn check_image<V: VersionImage>(image: &CheckpointImage<V>) -> Result<(), String> {
    if image.wal_through != image.version || image.floor > image.version {
        return Err("header versions are inconsistent".into());
    }
    if !image
        .times
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1)
    {
        return Err("time index is not strictly increasing".into());
    }
    if image.times.last().is_some_and(|t| t.0 > image.version) {
        return Err("time index reaches past the checkpoint version".into());
    }
    let mut checked = ChainCheck::new(image.version);
    for chain in &image.chains {
        checked.next(chain)?;
    }
    check_runs(image)
}

fn check_runs<V>(image: &CheckpointImage<V>) -> Result<(), String> {
    if !image.runs.windows(2).all(|w| w[0].run < w[1].run) {
        return Err("runs are not in strictly increasing order".into());
    }
    for r in &image.runs {
        let ordered = r.commits.windows(2).all(|w| w[0].0 < w[1].0);
        let in_range = r.commits.first().is_some_and(|c| c.0 >= 1)
            && r.commits.last().is_some_and(|c| c.0 <= image.version);
        if r.run.is_nil() || !ordered || !in_range {
            return Err(format!(
                "commit index of run {} is out of order or range",
                r.run
            ));
        }
    }
    Ok(())
}

/// The run index of a format 1 checkpoint, which does not store it: from
/// the `run` of each retained version (commits whose versions GC had
/// unlinked are missing, which format 2 fixed).
fn runs_from_chains<V: VersionImage>(
    chains: &[ChainImage<V>],
    times: &[(Version, u64)],
) -> Vec<RunImage> {
    let times = TimeIndex::from_entries(times.to_vec());
    // (version, run) -> keys, gathered in key order.
    let mut by_commit: BTreeMap<(Version, RunId), Vec<Key>> = BTreeMap::new();
    for chain in chains {
        for v in chain.versions.iter().filter(|v| !v.run().is_nil()) {
            by_commit
                .entry((v.commit(), v.run()))
                .or_default()
                .push(chain.key.clone());
        }
    }
    let mut runs: BTreeMap<RunId, Vec<StoredRunCommit>> = BTreeMap::new();
    for ((version, run), keys) in by_commit {
        let commit = (version, times.time_of(version), keys);
        runs.entry(run).or_default().push(commit);
    }
    runs.into_iter()
        .map(|(run, commits)| RunImage { run, commits })
        .collect()
}
