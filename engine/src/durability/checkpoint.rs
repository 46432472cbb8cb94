//! Checkpoint files: the retained history at one version (see docs/format.md).
//!
//! ```text
//! header (48 B): magic "RWDBCKPT" | format u32 | reserved u32 (0) | version u64
//!                | wal_through u64 | body_len u64 | body_crc32 u32 | header_crc32 u32
//! body:          postcard (floor u64, times [(version u64, ms u64)], chains [ChainImage])
//! ```
//!
//! A checkpoint is written from an MVCC snapshot without holding the commit
//! lock (writers do not stall), to `NAME.tmp`, fsynced, renamed to `NAME`,
//! and the directory fsynced.

use serde::Serialize;

use crate::durability::codec::{self, ChainImage};
use crate::durability::wal::{FORMAT_VERSION, le_u32, le_u64};
use crate::types::Version;

/// First bytes of every checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"RWDBCKPT";
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

/// Everything a checkpoint holds.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointImage {
    /// The checkpoint's version: every commit `<= version` is in it.
    pub version: Version,
    /// WAL records with versions `<= wal_through` are covered (== version).
    pub wal_through: Version,
    /// Reads below this version are refused after recovery (GC horizon).
    pub floor: Version,
    /// The time index: `(first version of a millisecond, ms)`.
    pub times: Vec<(Version, u64)>,
    /// Every retained chain, in key order.
    pub chains: Vec<ChainImage>,
}

impl Serialize for ChainImage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.key, self.pruned_max, &self.versions).serialize(s)
    }
}

/// Encode a checkpoint file.
pub fn encode_checkpoint(image: &CheckpointImage) -> Result<Vec<u8>, postcard::Error> {
    let body = postcard::to_allocvec(&(image.floor, &image.times, &image.chains))?;
    let mut out = Vec::with_capacity(CHECKPOINT_HEADER_SIZE + body.len());
    out.extend_from_slice(&CHECKPOINT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&image.version.to_le_bytes());
    out.extend_from_slice(&image.wal_through.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    let header_crc = crc32fast::hash(&out);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
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
    let damaged = |s: &str| CheckpointError::Damaged(s.to_string());
    let h = bytes
        .get(..CHECKPOINT_HEADER_SIZE)
        .ok_or_else(|| damaged("shorter than a checkpoint header"))?;
    if h[0..8] != CHECKPOINT_MAGIC {
        return Err(damaged("bad magic"));
    }
    if crc32fast::hash(&h[..44]) != le_u32(&h[44..48]) {
        return Err(damaged("header checksum mismatch"));
    }
    let format = le_u32(&h[8..12]);
    if format > FORMAT_VERSION {
        return Err(CheckpointError::NewerFormat(format));
    }
    let version = le_u64(&h[16..24]);
    let wal_through = le_u64(&h[24..32]);
    let body_len = le_u64(&h[32..40]);
    let body = &bytes[CHECKPOINT_HEADER_SIZE..];
    if body.len() as u64 != body_len {
        return Err(damaged("body length does not match the header"));
    }
    if crc32fast::hash(body) != le_u32(&h[40..44]) {
        return Err(damaged("body checksum mismatch"));
    }
    let (floor, times, chains) = codec::decode_checkpoint_body(body)
        .map_err(|e| CheckpointError::Damaged(format!("body does not decode: {e}")))?;
    let image = CheckpointImage {
        version,
        wal_through,
        floor,
        times,
        chains,
    };
    check_image(&image).map_err(CheckpointError::Damaged)?;
    Ok(image)
}

/// Relations a checkpoint written by this engine always satisfies; checked
/// after reading (and before writing, in debug builds).
pub fn check_image(image: &CheckpointImage) -> Result<(), String> {
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
    if !image.chains.windows(2).all(|w| w[0].key < w[1].key) {
        return Err("chains are not in strictly increasing key order".into());
    }
    for chain in &image.chains {
        let ordered = chain.versions.windows(2).all(|w| w[0].0 > w[1].0);
        let in_range = chain.versions.first().is_some_and(|v| v.0 <= image.version)
            && chain
                .versions
                .last()
                .is_some_and(|v| v.0 >= 1 && v.0 > chain.pruned_max);
        if !ordered || !in_range {
            return Err(format!("history of {} is out of order or range", chain.key));
        }
    }
    Ok(())
}
