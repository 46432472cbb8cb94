//! Decoding of on-disk payloads: postcard's wire format read by hand.
//!
//! The payloads are written with postcard through serde (`CommitRecord`,
//! the checkpoint body). Reading them back through serde costs a visitor
//! call per byte of every byte string and a copy per string; recovery
//! spent most of its time there. This decoder reads the same bytes
//! directly off a cursor:
//!
//! - byte strings and text are sliced, then copied once into their `Arc`;
//! - a key's family (namespace, scope, tag) is reused from the previous key
//!   when it is the same, and its namespace when that alone is (the keys
//!   of one agent share one allocation of each);
//! - nesting deeper than [`VALUE_DECODE_DEPTH_MAX`] is refused, so a crafted
//!   payload cannot overflow the stack;
//! - nothing is pre-allocated beyond what the remaining input could hold;
//! - only the canonical encoding is accepted (shortest varints, option and
//!   bool bytes 0 or 1), so every accepted payload is byte for byte what
//!   the encoder writes for the decoded value.
//!
//! Wire format (postcard 1.x, all integers LE): `u64`/`usize`/`u32`/enum
//! variant index = unsigned LEB128 varint; `u128` (a `RunId`) = varint of up
//! to 19 bytes; `i64` = zigzag varint; `f64` = 8 raw bytes; `bool`/`Option`
//! tag = one byte 0 or 1; `str` and `[u8]` = varint length + raw bytes; a
//! sequence or map = varint count + elements; tuples and structs = fields
//! in order, nothing between them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::record::CommitRecord;
use crate::types::{Family, Key, KeyBytes, Namespace, RunId, Scope, TypeTag, Version};
use crate::value::{Value, ValueRef};

/// Deepest nesting of a value accepted when decoding. `Limits::value_depth_max`
/// may not exceed it, so everything the engine accepts it can read back.
pub const VALUE_DECODE_DEPTH_MAX: usize = 256;

/// Why a payload does not decode, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset in the payload where decoding stopped.
    pub offset: usize,
    /// What was wrong.
    pub reason: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at payload offset {}", self.reason, self.offset)
    }
}

impl std::error::Error for DecodeError {}

type DResult<T> = std::result::Result<T, DecodeError>;

/// A top-level value as [`decode_commit_record_with`] hands it over: text
/// and bytes as slices of the payload (to be copied once, into whatever
/// keeps them), anything else decoded.
pub enum TopValue<'a> {
    /// Text or bytes, in the payload (`ValueRef::String` or
    /// `ValueRef::Bytes`).
    Slice(ValueRef<'a>),
    /// Any other value.
    Value(Value),
}

impl TopValue<'_> {
    /// The value, owned (text and bytes copied into their `Arc`).
    pub fn into_value(self) -> Value {
        match self {
            TopValue::Slice(slice) => slice.to_value(),
            TopValue::Value(v) => v,
        }
    }
}

/// [`decode_commit_record_reusing`] with the writes made by `write` from
/// the record's version and run, each key, and its value as a
/// [`TopValue`]: recovery builds each version straight from the payload,
/// without the value's own allocation. Returns version, run, wall-clock
/// milliseconds and the writes; accepts exactly the payloads
/// [`decode_commit_record`] accepts.
pub fn decode_commit_record_with<W>(
    payload: &[u8],
    family: &mut Option<Family>,
    key_of: impl Fn(&W) -> &Key,
    write: impl FnMut(Version, RunId, Key, Option<TopValue<'_>>) -> W,
) -> DResult<(Version, RunId, u64, Vec<W>)> {
    let mut c = Cursor::new(payload);
    c.last_family = family.take();
    let record = c.commit_record_with(key_of, write);
    *family = c.last_family.take();
    let record = record?;
    c.finish()?;
    Ok(record)
}

/// Decode a WAL record payload; trailing bytes are an error.
pub fn decode_commit_record(payload: &[u8]) -> DResult<CommitRecord> {
    decode_commit_record_reusing(payload, &mut None)
}

/// [`decode_commit_record`], reusing `family` (the family of the last key
/// decoded, updated) for keys of the same family (or namespace), across
/// records.
pub fn decode_commit_record_reusing(
    payload: &[u8],
    family: &mut Option<Family>,
) -> DResult<CommitRecord> {
    let mut c = Cursor::new(payload);
    c.last_family = family.take();
    let record = c.commit_record();
    *family = c.last_family.take();
    let record = record?;
    c.finish()?;
    Ok(record)
}

/// The version a record payload starts with (its first field), without
/// decoding the rest.
pub fn record_version(payload: &[u8]) -> Option<Version> {
    Cursor::new(payload).u64().ok()
}

/// One version of one key as a checkpoint stores it.
pub type StoredVersion = (Version, RunId, Option<Value>);

/// One key's retained history as a checkpoint stores it (newest first):
/// its versions as [`StoredVersion`]s, or as whatever the caller of
/// [`decode_checkpoint_body_with`] builds them into.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainImage<V = StoredVersion> {
    /// The key.
    pub key: Key,
    /// Largest version GC had unlinked from the chain (0 = none).
    pub pruned_max: Version,
    /// Retained versions, newest first.
    pub versions: Vec<V>,
}

/// One commit of a run as a checkpoint stores it: version, wall-clock
/// milliseconds, keys written (in key order).
pub type StoredRunCommit = (Version, u64, Vec<Key>);

/// One run's commit index as a checkpoint stores it (format 2 on).
#[derive(Debug, Clone, PartialEq)]
pub struct RunImage {
    /// The run (never `RunId::NIL`: writes outside runs are not indexed).
    pub run: RunId,
    /// Its commits, in version order.
    pub commits: Vec<StoredRunCommit>,
}

/// A decoded checkpoint body: floor, times, chains, and the run index
/// (`None` in a format 1 body, which does not hold it).
pub type CheckpointBody<V = StoredVersion> = (
    Version,
    Vec<(Version, u64)>,
    Vec<ChainImage<V>>,
    Option<Vec<RunImage>>,
);

/// What [`decode_checkpoint_body_with`] returns besides the chains it
/// hands over: floor, times and the run index (`None` in format 1).
pub type CheckpointBodyRest = (Version, Vec<(Version, u64)>, Option<Vec<RunImage>>);

/// Decode a checkpoint body of `format` (see `checkpoint.rs`: 1 = floor,
/// times, counted chains; 2 = times, flagged chains, floor, run index);
/// trailing bytes are an error.
pub fn decode_checkpoint_body(body: &[u8], format: u32) -> DResult<CheckpointBody> {
    let mut chains = Vec::new();
    let (floor, times, runs) = decode_checkpoint_body_with(body, format, stored_version, |c| {
        chains.push(c);
        true
    })?;
    Ok((floor, times, chains, runs))
}

/// [`decode_checkpoint_body`] with each version made by `build` from its
/// commit, run and value (text and bytes as slices of the body, as
/// [`decode_commit_record_with`] hands them), and each chain handed to
/// `chain` as soon as it is decoded, in the body's order (recovery
/// installs them while later ones are decoded). `chain` returning false
/// stops the decoding with an error. Returns the floor, the time index and
/// the run index (`None` in format 1). Accepts exactly the bodies
/// [`decode_checkpoint_body`] accepts.
pub fn decode_checkpoint_body_with<V>(
    body: &[u8],
    format: u32,
    build: impl FnMut(Version, RunId, Option<TopValue<'_>>) -> V,
    chain: impl FnMut(ChainImage<V>) -> bool,
) -> DResult<CheckpointBodyRest> {
    decode_body(&mut Cursor::new(body), format, build, chain)
}

/// A checkpoint body read one unit at a time (the time index, each
/// chain's flag, each chain, the tail): from one slice (a [`Cursor`]), or
/// streamed from its file through a window that a unit may outgrow
/// (`BodyWindow`). Both decode through [`decode_body`], so they accept
/// the same bodies.
pub(crate) trait BodyUnits {
    /// What a unit that does not decode (or cannot be read) is.
    type Error: From<DecodeError>;

    /// Decode the next unit with `unit`, from where the last one ended.
    fn unit<T>(
        &mut self,
        unit: impl FnMut(&mut Cursor<'_>) -> DResult<T>,
    ) -> Result<T, Self::Error>;

    /// Error unless the whole body was read.
    fn finish(&mut self) -> Result<(), Self::Error>;

    /// Offset in the body of the next unit.
    fn offset(&self) -> usize;
}

impl BodyUnits for Cursor<'_> {
    type Error = DecodeError;

    fn unit<T>(&mut self, mut unit: impl FnMut(&mut Cursor<'_>) -> DResult<T>) -> DResult<T> {
        unit(self)
    }

    fn finish(&mut self) -> DResult<()> {
        Cursor::finish(self)
    }

    fn offset(&self) -> usize {
        self.pos
    }
}

/// The one decoder of checkpoint bodies, over either kind of
/// [`BodyUnits`] (see [`decode_checkpoint_body_with`]).
pub(crate) fn decode_body<U: BodyUnits, V>(
    body: &mut U,
    format: u32,
    mut build: impl FnMut(Version, RunId, Option<TopValue<'_>>) -> V,
    mut chain: impl FnMut(ChainImage<V>) -> bool,
) -> Result<CheckpointBodyRest, U::Error> {
    let times = |c: &mut Cursor<'_>| c.seq(2, |c| Ok((c.u64()?, c.u64()?)));
    const REFUSED: &str = "a chain was refused";
    if format < 2 {
        // One unit holds every chain: a unit is retried when a streamed
        // window turns out too small, and a retry would hand chains over
        // twice, so format 1 is only ever decoded from one slice.
        let floor = body.unit(|c| c.u64())?;
        let times = body.unit(times)?;
        body.unit(|c| {
            c.seq(6, |c| {
                let image = c.chain_image(&mut build)?;
                if chain(image) { Ok(()) } else { c.err(REFUSED) }
            })
        })?;
        body.finish()?;
        return Ok((floor, times, None));
    }
    let times = body.unit(times)?;
    // Each chain flagged `true`, then `false` (a streamed sequence).
    while body.unit(|c| c.flag("chain flag is neither 0 nor 1"))? {
        let image = body.unit(|c| c.chain_image(&mut build))?;
        if !chain(image) {
            let offset = body.offset();
            return Err(DecodeError {
                offset,
                reason: REFUSED,
            }
            .into());
        }
    }
    let (floor, runs) = body.unit(|c| Ok((c.u64()?, c.seq(2, |c| c.run_image())?)))?;
    body.finish()?;
    Ok((floor, times, Some(runs)))
}

/// A version as a [`ChainImage`] stores it by default: its value owned.
pub fn stored_version(commit: Version, run: RunId, value: Option<TopValue<'_>>) -> StoredVersion {
    (commit, run, value.map(TopValue::into_value))
}

/// Smallest encodings, for bounding pre-allocation by the input left:
/// a write is at least a key (namespace 2, scope 1, tag 1, user 1) and an
/// option byte.
const WRITE_SIZE_MIN: usize = 6;
/// Elements pre-allocated from a length prefix, at most (a longer sequence
/// grows as it is read, so a crafted length costs at most this).
const PREALLOC_MAX: usize = 1 << 16;

/// A read position in a payload, plus the family of the last key read.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    last_family: Option<Family>,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor {
            bytes,
            pos: 0,
            last_family: None,
        }
    }

    /// A cursor over `bytes` that knows the family of the key read last
    /// (a streamed body's next unit, see `BodyWindow`).
    pub(crate) fn resume(bytes: &'a [u8], last_family: Option<Family>) -> Cursor<'a> {
        Cursor {
            bytes,
            pos: 0,
            last_family,
        }
    }

    /// Bytes read so far, and the family of the key read last.
    pub(crate) fn into_parts(self) -> (usize, Option<Family>) {
        (self.pos, self.last_family)
    }

    fn err<T>(&self, reason: &'static str) -> DResult<T> {
        Err(DecodeError {
            offset: self.pos,
            reason,
        })
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Error unless every byte was read.
    pub(crate) fn finish(&self) -> DResult<()> {
        if self.pos != self.bytes.len() {
            return self.err("trailing bytes after the payload");
        }
        Ok(())
    }

    fn byte(&mut self) -> DResult<u8> {
        match self.bytes.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.err("unexpected end of payload"),
        }
    }

    fn take(&mut self, n: usize) -> DResult<&'a [u8]> {
        if n > self.remaining() {
            return self.err("length exceeds the payload");
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// An unsigned LEB128 varint of at most `BITS` bits, canonical.
    fn varint<const BITS: u32>(&mut self) -> DResult<u128> {
        let max_len = BITS.div_ceil(7);
        let mut out: u128 = 0;
        for i in 0..max_len {
            let b = self.byte()?;
            out |= u128::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                let last_bits = BITS - 7 * i;
                if i + 1 == max_len && last_bits < 7 && u32::from(b) >> last_bits != 0 {
                    return self.err("varint overflows its type");
                }
                if b == 0 && i > 0 {
                    return self.err("varint is not in its shortest form");
                }
                return Ok(out);
            }
        }
        self.err("varint is too long")
    }

    pub(crate) fn u64(&mut self) -> DResult<u64> {
        Ok(self.varint::<64>()? as u64)
    }

    fn u32(&mut self) -> DResult<u32> {
        Ok(self.varint::<32>()? as u32)
    }

    fn run(&mut self) -> DResult<RunId> {
        Ok(RunId::from_u128(self.varint::<128>()?))
    }

    /// A sequence length, refused if even `size_min`-byte elements could
    /// not fit in what is left.
    fn len(&mut self, size_min: usize) -> DResult<usize> {
        let n = self.u64()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(size_min) <= self.remaining() => Ok(n),
            _ => self.err("sequence length exceeds the payload"),
        }
    }

    /// A sequence of elements of at least `size_min` bytes each.
    fn seq<T>(
        &mut self,
        size_min: usize,
        mut element: impl FnMut(&mut Self) -> DResult<T>,
    ) -> DResult<Vec<T>> {
        let n = self.len(size_min)?;
        let mut out = Vec::with_capacity(n.min(PREALLOC_MAX));
        for _ in 0..n {
            out.push(element(self)?);
        }
        Ok(out)
    }

    fn flag(&mut self, what: &'static str) -> DResult<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => {
                self.pos -= 1;
                self.err(what)
            }
        }
    }

    fn bytes(&mut self) -> DResult<&'a [u8]> {
        let n = self.len(1)?;
        self.take(n)
    }

    fn str(&mut self) -> DResult<&'a str> {
        let start = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b).or_else(|_| {
            self.pos = start;
            self.err("text is not UTF-8")
        })
    }

    pub(crate) fn commit_record(&mut self) -> DResult<CommitRecord> {
        let (version, run, wall_ms, writes) = self.commit_record_with(
            |(key, _)| key,
            |_, _, key, value| (key, value.map(TopValue::into_value)),
        )?;
        Ok(CommitRecord {
            version,
            run,
            wall_ms,
            writes,
        })
    }

    /// A commit record whose writes `write` makes from the record's
    /// version and run, each key, and its value as [`TopValue`] (text and
    /// bytes still in the payload). `key_of` names each write's key again,
    /// for the order check.
    fn commit_record_with<W>(
        &mut self,
        key_of: impl Fn(&W) -> &Key,
        mut write: impl FnMut(Version, RunId, Key, Option<TopValue<'a>>) -> W,
    ) -> DResult<(Version, RunId, u64, Vec<W>)> {
        let version = self.u64()?;
        let run = self.run()?;
        let wall_ms = self.u64()?;
        let start = self.pos;
        let writes = self.seq(WRITE_SIZE_MIN, |c| {
            let key = c.key()?;
            let value = c.option_top_value()?;
            Ok(write(version, run, key, value))
        })?;
        // The encoder writes a transaction's write set in key order, each
        // key once; recovery relies on it (one new version per key).
        if !writes.windows(2).all(|w| key_of(&w[0]) < key_of(&w[1])) {
            self.pos = start;
            return self.err("writes are not in strictly increasing key order");
        }
        Ok((version, run, wall_ms, writes))
    }

    fn chain_image<V>(
        &mut self,
        version: &mut impl FnMut(Version, RunId, Option<TopValue<'a>>) -> V,
    ) -> DResult<ChainImage<V>> {
        let key = self.key()?;
        let pruned_max = self.u64()?;
        let versions = self.seq(3, |c| {
            Ok(version(c.u64()?, c.run()?, c.option_top_value()?))
        })?;
        Ok(ChainImage {
            key,
            pruned_max,
            versions,
        })
    }

    fn run_image(&mut self) -> DResult<RunImage> {
        let run = self.run()?;
        let commits = self.seq(3, |c| Ok((c.u64()?, c.u64()?, c.seq(5, Cursor::key)?)))?;
        Ok(RunImage { run, commits })
    }

    fn namespace(&mut self) -> DResult<Namespace> {
        let start = self.pos;
        let s = self.str()?;
        if let Some(family) = self.last_family.as_ref().filter(|f| f.ns().as_str() == s) {
            return Ok(family.ns().clone());
        }
        let Ok(ns) = Namespace::new(s) else {
            self.pos = start;
            return self.err("invalid namespace");
        };
        Ok(ns)
    }

    fn key(&mut self) -> DResult<Key> {
        let ns = self.namespace()?;
        let scope = match self.u32()? {
            0 => Scope::Shared,
            1 => Scope::Run(self.run()?),
            _ => return self.err("unknown scope variant"),
        };
        // Serde writes a unit enum's variant index, counted from 0.
        let tag = match self.u32()? {
            0 => TypeTag::Kv,
            1 => TypeTag::Event,
            2 => TypeTag::State,
            3 => TypeTag::Trace,
            4 => TypeTag::Run,
            _ => return self.err("unknown type tag variant"),
        };
        let user = KeyBytes::from(self.bytes()?);
        let family = Family::reuse_or_new(self.last_family.take(), ns, scope, tag);
        // The store's shared allocation, once recovery's installer has
        // found it for this family (`Families::share_key`): the key is then
        // stored as it is, and the decoded family's reference count is not
        // touched per key on two threads (its cache line went back and
        // forth between the decoder and the installer for every key).
        let key = family.known_shared().unwrap_or(&family).key_from(user);
        self.last_family = Some(family);
        Ok(key)
    }

    /// An optional top-level value (a flag, then the value), text and bytes
    /// left in the payload; anything else decoded by `value`, which
    /// accepts text and bytes exactly as the two arms here do.
    fn option_top_value(&mut self) -> DResult<Option<TopValue<'a>>> {
        if !self.flag("option tag is neither 0 nor 1")? {
            return Ok(None);
        }
        let start = self.pos;
        Ok(Some(match self.u32()? {
            4 => TopValue::Slice(ValueRef::String(self.str()?)),
            5 => TopValue::Slice(ValueRef::Bytes(self.bytes()?)),
            _ => {
                self.pos = start;
                TopValue::Value(self.value(1)?)
            }
        }))
    }

    /// A value at nesting `depth` (a top-level value is at depth 1).
    fn value(&mut self, depth: usize) -> DResult<Value> {
        if depth > VALUE_DECODE_DEPTH_MAX {
            return self.err("value nested deeper than VALUE_DECODE_DEPTH_MAX = 256");
        }
        Ok(match self.u32()? {
            0 => Value::Null,
            1 => Value::Bool(self.flag("bool is neither 0 nor 1")?),
            2 => {
                let z = self.u64()?;
                Value::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            3 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(self.take(8)?);
                Value::Float(f64::from_le_bytes(b))
            }
            4 => Value::String(Arc::from(self.str()?)),
            5 => Value::Bytes(Arc::from(self.bytes()?)),
            6 => Value::Array(Arc::from(self.seq(1, |c| c.value(depth + 1))?)),
            7 => Value::Object(Arc::new(self.object(depth)?)),
            _ => return self.err("unknown value variant"),
        })
    }

    fn object(&mut self, depth: usize) -> DResult<BTreeMap<String, Value>> {
        let n = self.len(2)?;
        let mut out = BTreeMap::new();
        for _ in 0..n {
            let start = self.pos;
            let k = self.str()?.to_string();
            let v = self.value(depth + 1)?;
            // The encoder writes a BTreeMap: fields strictly in order.
            if out.last_key_value().is_some_and(|(last, _)| *last >= k) {
                self.pos = start;
                return self.err("object fields are not in strictly increasing order");
            }
            out.insert(k, v);
        }
        Ok(out)
    }
}
