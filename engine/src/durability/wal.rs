//! WAL byte format: segment headers and record frames (see docs/format.md).
//!
//! ```text
//! segment header (24 B): magic "RWDBWAL\0" | format u32 | first_version u64 | crc32 u32
//! record frame:          len u32 | crc32(len_le ++ payload) u32 | payload (len bytes)
//! payload:               postcard CommitRecord { version, run, wall_ms, writes }
//! ```
//!
//! Decoding never panics and never allocates more than the bytes it is
//! given justify: a length field is trusted only after it fits the input.

use crate::durability::codec;
use crate::error::{Error, Result};
use crate::record::CommitRecord;
use crate::types::{Family, Key, RunId, Version};
use crate::value::Value;
use crate::write_set::SerializedWrites;

/// First bytes of every WAL segment.
pub const WAL_MAGIC: [u8; 8] = *b"RWDBWAL\0";
/// Format version written into segment headers (checkpoints have their
/// own: `checkpoint::CHECKPOINT_FORMAT_VERSION`).
pub const FORMAT_VERSION: u32 = 1;
/// Size of a segment header.
pub const SEGMENT_HEADER_SIZE: usize = 24;
/// Size of a record frame header (len + crc).
pub const RECORD_HEADER_SIZE: usize = 8;
/// Largest record payload accepted on write and on read.
pub const WAL_RECORD_SIZE_BYTES_MAX: usize = 1 << 30;
/// Largest encoding of `(version, run, wall_ms)`: 10 + 19 + 10 varint bytes.
const RECORD_PREFIX_SIZE_MAX: usize = 39;

const _: () = assert!(WAL_RECORD_SIZE_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(SEGMENT_HEADER_SIZE == 8 + 4 + 8 + 4);

/// File name of the segment whose first record has version `first`.
pub fn segment_name(first: Version) -> String {
    format!("wal-{first:020}.log")
}

/// The first version encoded in a segment file name.
pub fn parse_segment_name(name: &str) -> Option<Version> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 {
        return None;
    }
    digits.parse().ok()
}

/// The 24-byte header of a segment starting at `first`.
pub fn segment_header(first: Version) -> [u8; SEGMENT_HEADER_SIZE] {
    let mut h = [0u8; SEGMENT_HEADER_SIZE];
    h[0..8].copy_from_slice(&WAL_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first.to_le_bytes());
    let crc = crc32fast::hash(&h[0..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a header could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than a header.
    Short,
    /// Wrong magic or checksum: not (or no longer) a header.
    Damaged(&'static str),
    /// A valid header of a format newer than this build reads.
    NewerFormat(u32),
}

/// Parse a segment header; returns its first version.
pub fn parse_segment_header(bytes: &[u8]) -> std::result::Result<Version, HeaderError> {
    let h = bytes.get(..SEGMENT_HEADER_SIZE).ok_or(HeaderError::Short)?;
    if h[0..8] != WAL_MAGIC {
        return Err(HeaderError::Damaged("bad magic"));
    }
    if crc32fast::hash(&h[0..20]) != le_u32(&h[20..24]) {
        return Err(HeaderError::Damaged("header checksum mismatch"));
    }
    let format = le_u32(&h[8..12]);
    if format > FORMAT_VERSION {
        return Err(HeaderError::NewerFormat(format));
    }
    Ok(le_u64(&h[12..20]))
}

pub(crate) fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

pub(crate) fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

// ---------------------------------------------------------------- encode

/// Encode the writes part of a record payload: a transaction's writes,
/// serialised exactly like `CommitRecord::writes` (a sequence of `(Key,
/// Option<Value>)`). Done outside the commit lock; [`append_frame`] adds
/// the version, run and time under it.
pub(crate) fn encode_writes(writes: &SerializedWrites<'_>) -> Result<Vec<u8>> {
    encode_pairs(writes)
}

/// [`encode_writes`] of anything serialised as that sequence.
fn encode_pairs(writes: &impl serde::Serialize) -> Result<Vec<u8>> {
    let body = postcard::to_allocvec(writes)
        .map_err(|e| Error::InvalidArgument(format!("cannot encode commit record: {e}")))?;
    if body.len() + RECORD_PREFIX_SIZE_MAX > WAL_RECORD_SIZE_BYTES_MAX {
        return Err(Error::InvalidArgument(format!(
            "commit record of {} bytes exceeds WAL_RECORD_SIZE_BYTES_MAX = {WAL_RECORD_SIZE_BYTES_MAX}",
            body.len()
        )));
    }
    Ok(body)
}

/// Append one framed record to `out`. `writes` comes from `encode_writes`,
/// which checked the size.
pub fn append_frame(out: &mut Vec<u8>, version: Version, run: RunId, wall_ms: u64, writes: &[u8]) {
    let mut prefix_buf = [0u8; RECORD_PREFIX_SIZE_MAX];
    let prefix_len = match postcard::to_slice(&(version, run, wall_ms), &mut prefix_buf) {
        Ok(p) => p.len(),
        // Unreachable: the buffer fits the largest varints.
        Err(_) => RECORD_PREFIX_SIZE_MAX,
    };
    let prefix = &prefix_buf[..prefix_len];
    let len = (prefix.len() + writes.len()) as u32;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len.to_le_bytes());
    crc.update(prefix);
    crc.update(writes);
    out.reserve(RECORD_HEADER_SIZE + len as usize);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(prefix);
    out.extend_from_slice(writes);
}

/// Encode a whole record (tests, fuzz seeds, benches).
pub fn encode_record(record: &CommitRecord) -> Result<Vec<u8>> {
    // In key order, the last write of a key kept, as a transaction's
    // write set holds them.
    let writes: std::collections::BTreeMap<&Key, &Option<Value>> =
        record.writes.iter().map(|(k, w)| (k, w)).collect();
    let body = encode_pairs(&writes.into_iter().collect::<Vec<_>>())?;
    let mut out = Vec::new();
    append_frame(&mut out, record.version, record.run, record.wall_ms, &body);
    Ok(out)
}

// ---------------------------------------------------------------- decode

/// How decoding a run of records ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The records end cleanly at `valid_end`: the input ends there, or
    /// only zeros follow, starting with at least a whole frame header of
    /// them (preallocated space not written yet).
    End,
    /// From `offset` on the bytes are a partial or damaged record (or a
    /// zero frame header with nonzero bytes after it) with no valid record
    /// after it: a crash artefact, safe to truncate.
    Torn {
        /// Where the torn record starts.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
    /// The record at `offset` (which should have held `version`) is damaged
    /// (or its frame header is all zeros with nonzero bytes after it) and a
    /// valid record follows, or its checksum is fine but its content is
    /// not: corruption, never a crash artefact.
    Corrupt {
        /// Where the damaged record starts.
        offset: usize,
        /// The version it should have held.
        version: Version,
        /// What was wrong.
        reason: String,
    },
}

/// Result of [`decode_records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// End of the last valid record (where a truncation would cut).
    pub valid_end: usize,
    /// Version of the last valid record (`last` given if none).
    pub last_version: Version,
    /// How it ended.
    pub stop: Stop,
}

/// Decode the records of `bytes` from `start`, each expected to carry the
/// version after the previous one (`last + 1` first), calling `visit` with
/// each record's offset. Stops at the first record that is not valid.
///
/// Decoding is a pure, forward-only function of `(bytes[start..], last)`,
/// so decoding from a record boundary gives the same answer as decoding
/// from the start of the segment (the exhaustive damage test relies on it).
pub fn decode_records(
    bytes: &[u8],
    start: usize,
    last: Version,
    visit: impl FnMut(usize, CommitRecord),
) -> Decoded {
    decode_records_with(bytes, start, last, decode_payload, visit)
}

/// [`decode_records`] with each checksummed payload decoded by `decode`
/// (given the payload, the version it must hold and the family cache)
/// into a record of the caller's type and its version: recovery builds
/// its versions straight from the payloads. `decode` must accept and
/// refuse exactly what `decode_payload` does, so both stop alike.
pub(crate) fn decode_records_with<R>(
    bytes: &[u8],
    start: usize,
    mut last: Version,
    mut decode: impl FnMut(
        &[u8],
        Version,
        &mut Option<Family>,
    ) -> std::result::Result<(Version, R), String>,
    mut visit: impl FnMut(usize, R),
) -> Decoded {
    let mut pos = start;
    // Keys of one family share one allocation across records.
    let mut family = None;
    loop {
        if pos >= bytes.len() {
            return stop_at(pos, last, Stop::End);
        }
        if let Some(stop) = zero_header_at(bytes, pos, last) {
            return stop_at(pos, last, stop);
        }
        let damaged = match frame_at(bytes, pos) {
            Ok(payload) => match decode(payload, last, &mut family) {
                Ok((version, record)) => {
                    last = version;
                    visit(pos, record);
                    pos += RECORD_HEADER_SIZE + payload.len();
                    continue;
                }
                // The checksum matched, so this record was written whole:
                // bad content is corruption, not a torn write.
                Err(reason) => {
                    let version = last.saturating_add(1);
                    return stop_at(
                        pos,
                        last,
                        Stop::Corrupt {
                            offset: pos,
                            version,
                            reason,
                        },
                    );
                }
            },
            Err(reason) => reason,
        };
        return stop_at(pos, last, damaged_frame_stop(bytes, pos, last, damaged));
    }
}

/// If a whole frame header of zeros sits at `pos`: the end of the records
/// when only zeros follow (preallocated space); else, like any damaged
/// frame, corruption if a valid record follows and a torn tail if not (the
/// sectors of one write can reach the disk out of order, the header's lost
/// and a later one kept). A record never has a zero header (its length is
/// at least 1, and a zero length's CRC-32 is not 0), so this never hides
/// one. Fewer than a header's bytes left are a partial record header, as
/// without preallocation.
fn zero_header_at(bytes: &[u8], pos: usize, last: Version) -> Option<Stop> {
    let header = bytes.get(pos..pos + RECORD_HEADER_SIZE)?;
    if header.iter().any(|&b| b != 0) {
        return None;
    }
    let rest = &bytes[pos + RECORD_HEADER_SIZE..];
    let Some(i) = rest.iter().position(|&b| b != 0) else {
        return Some(Stop::End);
    };
    let nonzero = pos + RECORD_HEADER_SIZE + i;
    let damaged = format!("a zero frame header, but the byte at offset {nonzero} is not zero");
    Some(damaged_frame_stop(bytes, pos, last, &damaged))
}

/// How decoding stops at the damaged frame at `pos`: corruption if a valid
/// record follows, else a torn tail.
fn damaged_frame_stop(bytes: &[u8], pos: usize, last: Version, damaged: &str) -> Stop {
    match valid_frame_after(bytes, pos, last) {
        Some(next) => Stop::Corrupt {
            offset: pos,
            version: last.saturating_add(1),
            reason: format!("{damaged}, and a valid record follows at offset {next}"),
        },
        None => Stop::Torn {
            offset: pos,
            reason: damaged.to_string(),
        },
    }
}

/// Length of `bytes` without its trailing zeros.
pub fn len_without_zero_tail(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

fn stop_at(pos: usize, last: Version, stop: Stop) -> Decoded {
    Decoded {
        valid_end: pos,
        last_version: last,
        stop,
    }
}

/// The payload of the frame at `pos` if its length fits and its checksum
/// matches.
fn frame_at(bytes: &[u8], pos: usize) -> std::result::Result<&[u8], &'static str> {
    let rest = &bytes[pos.min(bytes.len())..];
    if rest.len() < RECORD_HEADER_SIZE {
        return Err("partial record header");
    }
    let len = le_u32(&rest[0..4]) as usize;
    if len > WAL_RECORD_SIZE_BYTES_MAX {
        return Err("record length exceeds WAL_RECORD_SIZE_BYTES_MAX");
    }
    let Some(payload) = rest.get(RECORD_HEADER_SIZE..RECORD_HEADER_SIZE + len) else {
        return Err("record extends past the end of the segment");
    };
    let mut crc = crc32fast::Hasher::new();
    crc.update(&rest[0..4]);
    crc.update(payload);
    if crc.finalize() != le_u32(&rest[4..8]) {
        return Err("record checksum mismatch");
    }
    Ok(payload)
}

/// Decode a checksummed payload that must hold version `last + 1`.
fn decode_payload(
    payload: &[u8],
    last: Version,
    family: &mut Option<Family>,
) -> std::result::Result<(Version, CommitRecord), String> {
    let record = codec::decode_commit_record_reusing(payload, family).map_err(payload_error)?;
    let version = check_next_version(record.version, last)?;
    Ok((version, record))
}

/// A payload's decode error, as [`decode_records`] reports it.
pub(crate) fn payload_error(e: codec::DecodeError) -> String {
    format!("record payload does not decode: {e}")
}

/// `version` if it is the one after `last`, else the error
/// [`decode_records`] reports.
pub(crate) fn check_next_version(
    version: Version,
    last: Version,
) -> std::result::Result<Version, String> {
    let expected = last.saturating_add(1);
    if version != expected {
        return Err(format!(
            "record holds version {version} where version {expected} was expected"
        ));
    }
    Ok(version)
}

/// Offset of the first valid frame after the damaged record at `pos`, if
/// any. "Valid" means: its checksum matches and its payload starts with a
/// version newer than `last` (the full payload is not decoded: a matching
/// CRC-32 is already a 1 in 2^32 accident). The damaged frame's own
/// length is tried first (damage inside a payload), then every later
/// offset (damage to the length itself).
fn valid_frame_after(bytes: &[u8], pos: usize, last: Version) -> Option<usize> {
    let is_valid = |p: usize| {
        frame_at(bytes, p)
            .is_ok_and(|payload| codec::record_version(payload).is_some_and(|v| v > last))
    };
    if let Some(h) = bytes.get(pos..pos + 4) {
        let claimed = pos + RECORD_HEADER_SIZE + le_u32(h) as usize;
        if claimed < bytes.len() && is_valid(claimed) {
            return Some(claimed);
        }
    }
    // A frame's length is not 0, so no frame starts in the zero tail
    // (preallocated space: scanning it would test every offset).
    let end = len_without_zero_tail(bytes).min(bytes.len().saturating_sub(RECORD_HEADER_SIZE - 1));
    let mut p = pos + 1;
    while p < end {
        let remaining = bytes.len() - p - RECORD_HEADER_SIZE;
        if remaining < 1 << 24 {
            // A length that fits below 16 MiB has a zero top byte: skip to
            // the next candidate whose byte 3 is zero (most random bytes are
            // not), instead of testing every offset.
            p += bytes[p + 3..end + 3].iter().position(|&b| b == 0)?;
        }
        let len = le_u32(&bytes[p..p + 4]) as usize;
        if len <= bytes.len() - p - RECORD_HEADER_SIZE && is_valid(p) {
            return Some(p);
        }
        p += 1;
    }
    None
}
