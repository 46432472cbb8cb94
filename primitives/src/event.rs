//! [`EventLog`]: a run's append-only, hash-chained event log.
//!
//! ## Encoding (TypeTag::Event, scope `Run(run)`)
//! - head record, user key `b"h"`: `Value::Bytes` of 16 bytes,
//!   `[len: u64 LE][last_hash: u64 LE]` (`last_hash` is 0 while empty);
//! - event `seq`, user key `b"e"` followed by `seq` as a big-endian `u64`,
//!   so events sort by sequence number and `read(range)` is a run of point
//!   lookups; value: `Value::Array([type: String, payload, wall_ms: Int,
//!   hash: Int])` (the hash's 64 bits stored as an `i64`).
//!
//! Every append reads and rewrites the head record. Two transactions
//! appending to one log therefore conflict on the head key and one retries,
//! so sequence numbers stay dense (0, 1, 2, ...) and unique.
//!
//! ## Hash chain
//! `hash_i = xxh3_64(prev_hash u64 LE || seq u64 LE || type || payload)`
//! with `prev_hash = 0` for seq 0, `type` as `[len: u64 LE][UTF-8 bytes]`
//! and `payload` in the canonical encoding of [`hash_value`]. xxh3 (the
//! `xxhash-rust` crate) is specified and stable across releases and
//! platforms, unlike `std`'s `DefaultHasher`. It detects accidental damage
//! and reordering, not a deliberate forgery.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use rewinddb_engine::{
    Family, Key, Measured, Namespace, Progress, ProgressCounter, ProgressObserver, RunId, Scope,
    Transaction, TypeTag, Value, ValueRef,
};
use xxhash_rust::xxh3::Xxh3;

use crate::access::Reader;
use crate::error::{Error, Result, check_name};

const HEAD_KEY: &[u8] = b"h";
const EVENT_PREFIX: u8 = b'e';

/// One event of a log.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Its sequence number (dense from 0 within the run's log).
    pub seq: u64,
    /// Its type, such as `"tool.called"`.
    pub event_type: Arc<str>,
    /// Its payload.
    pub payload: Value,
    /// Wall-clock milliseconds when it was appended.
    pub wall_ms: u64,
    /// Its chain hash.
    pub hash: u64,
}

/// Length and last hash of a log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHead {
    /// Number of events (the next sequence number).
    pub len: u64,
    /// Hash of the last event (0 while empty).
    pub last_hash: u64,
}

/// The event log of one run in one namespace. Holds no state (its head
/// key is built once, as every append reads and rewrites it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLog {
    /// Its keys' family (namespace, the run's scope, `TypeTag::Event`).
    family: Family,
    run: RunId,
    head_key: Key,
}

impl EventLog {
    /// The log of `run` in `ns`.
    pub fn new(ns: Namespace, run: RunId) -> EventLog {
        let family = Family::new(ns, Scope::Run(run), TypeTag::Event);
        let head_key = family.key(HEAD_KEY);
        EventLog {
            family,
            run,
            head_key,
        }
    }

    /// The run it belongs to.
    pub fn run_id(&self) -> RunId {
        self.run
    }

    fn event_key(&self, seq: u64) -> Key {
        let mut user = [0u8; 9];
        user[0] = EVENT_PREFIX;
        user[1..].copy_from_slice(&seq.to_be_bytes());
        self.family.key(user)
    }

    /// Length and last hash.
    pub fn head<R: Reader + ?Sized>(&self, r: &mut R) -> Result<EventHead> {
        // Borrowed: every append reads the head, and copying its 16 bytes
        // out of the version would cost an allocation each time.
        let mut head = None;
        r.read_with(&self.head_key, &mut |v| {
            head = Some(v.map(decode_head));
        })?;
        match head.flatten() {
            None => Ok(EventHead::default()),
            Some(decoded) => decoded
                .ok_or_else(|| Error::malformed("event head", &self.head_key, "not 16 bytes")),
        }
    }

    /// Number of events.
    pub fn len<R: Reader + ?Sized>(&self, r: &mut R) -> Result<u64> {
        Ok(self.head(r)?.len)
    }

    /// Append an event; returns its sequence number.
    pub fn append(
        &self,
        txn: &mut Transaction,
        event_type: &str,
        payload: impl Into<Value>,
    ) -> Result<u64> {
        self.append_measured(txn, event_type, Measured::new(payload.into()))
    }

    /// [`EventLog::append`] of a payload already measured (the facade
    /// measures it to pick the append's path): the record's size and depth
    /// limits are checked from the payload's figures plus the record's
    /// own fields, without walking the payload again.
    pub fn append_measured(
        &self,
        txn: &mut Transaction,
        event_type: &str,
        payload: Measured,
    ) -> Result<u64> {
        // Checked by name rules only if not a recently appended type.
        let shared = shared_type(event_type)?;
        let head = self.head(txn)?;
        let seq = head.len;
        let hash = chain_hash(head.last_hash, seq, event_type, payload.value());
        // Built from an array, not a `Vec`: one allocation for the record.
        let record = Measured::array([
            Measured::new(Value::String(shared)),
            payload,
            // Inside `Engine::transaction_locked`: exactly the commit's time.
            Measured::new(Value::Int(txn.wall_clock_ms() as i64)),
            Measured::new(Value::Int(hash as i64)),
        ]);
        // The event first: if it is too large nothing at all is buffered.
        txn.put_measured(self.event_key(seq), record)?;
        let next = EventHead {
            len: seq + 1,
            last_hash: hash,
        };
        txn.put(&self.head_key, encode_head(next))?;
        Ok(seq)
    }

    /// The event `seq`, if the log has it.
    pub fn get<R: Reader + ?Sized>(&self, r: &mut R, seq: u64) -> Result<Option<Event>> {
        let key = self.event_key(seq);
        match r.read(&key)? {
            None => Ok(None),
            Some(v) => decode_event(seq, &v).map(Some).ok_or_else(|| {
                Error::malformed("event", &key, "not [type, payload, wall_ms, hash]")
            }),
        }
    }

    /// The events whose sequence numbers fall in `range` (clipped to the
    /// log's length), in order. Each is a point lookup.
    pub fn read<R: Reader + ?Sized>(
        &self,
        r: &mut R,
        range: impl RangeBounds<u64>,
    ) -> Result<Vec<Event>> {
        let len = self.len(r)?;
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => len,
        }
        .min(len);
        let mut events = Vec::with_capacity(end.saturating_sub(start) as usize);
        for seq in start..end {
            let event = self.get(r, seq)?.ok_or_else(|| {
                Error::malformed(
                    "event",
                    &self.event_key(seq),
                    "missing below the head's length",
                )
            })?;
            events.push(event);
        }
        Ok(events)
    }

    /// The last event, if any.
    pub fn last<R: Reader + ?Sized>(&self, r: &mut R) -> Result<Option<Event>> {
        match self.len(r)? {
            0 => Ok(None),
            len => self.get(r, len - 1),
        }
    }

    /// Recompute the chain from seq 0: `Ok(())` if every stored hash and the
    /// head's last hash match, else [`Error::ChainBroken`] naming the first
    /// sequence number that does not.
    pub fn verify<R: Reader + ?Sized>(&self, r: &mut R) -> Result<()> {
        self.verify_observed(r, None)
    }

    /// [`EventLog::verify`], reporting [`Progress::VerifyEvents`] to
    /// `observer` every [`PROGRESS_STEP_KEYS`](rewinddb_engine::PROGRESS_STEP_KEYS)
    /// events and at the end (the facade passes the database's observer).
    pub fn verify_observed<R: Reader + ?Sized>(
        &self,
        r: &mut R,
        observer: Option<&ProgressObserver>,
    ) -> Result<()> {
        let head = self.head(r)?;
        let run = self.run;
        let mut progress = ProgressCounter::new(observer, |events_done| Progress::VerifyEvents {
            run,
            events_done,
            events_total: head.len,
        });
        let mut prev = 0u64;
        for seq in 0..head.len {
            let ok = match self.get(r, seq) {
                Ok(Some(e)) => {
                    let ok = chain_hash(prev, seq, &e.event_type, &e.payload) == e.hash;
                    prev = e.hash;
                    ok
                }
                Ok(None) | Err(Error::Malformed { .. }) => false,
                Err(e) => return Err(e),
            };
            if !ok {
                return Err(self.broken(seq));
            }
            progress.tick();
        }
        if prev != head.last_hash {
            return Err(self.broken(head.len.saturating_sub(1)));
        }
        progress.finish();
        Ok(())
    }

    fn broken(&self, seq: u64) -> Error {
        Error::ChainBroken {
            namespace: self.family.ns().to_string(),
            run: self.run,
            seq,
        }
    }
}

/// Event types this thread appended lately, kept to share: an agent's
/// events come from a small vocabulary ("tool.called", "tool.returned",
/// ...), so an append usually finds its type here and its record points at
/// the same string instead of allocating a copy (fewer instructions and
/// less memory per event). A type not found replaces the oldest entry.
const RECENT_TYPES: usize = 8;

struct RecentTypes {
    types: [Option<Arc<str>>; RECENT_TYPES],
    /// The slot the next type not found goes to.
    next: usize,
}

thread_local! {
    static RECENT_TYPES_SEEN: std::cell::RefCell<RecentTypes> = const {
        std::cell::RefCell::new(RecentTypes {
            types: [const { None }; RECENT_TYPES],
            next: 0,
        })
    };
}

/// `event_type` as a shared string: a recent one of this thread if equal
/// (it passed [`check_name`] when it was remembered), else a new one,
/// checked and remembered.
fn shared_type(event_type: &str) -> Result<Arc<str>> {
    RECENT_TYPES_SEEN.with(|recent| {
        let mut recent = recent.borrow_mut();
        let seen = recent.types.iter().flatten().find(|t| ***t == *event_type);
        if let Some(seen) = seen {
            return Ok(Arc::clone(seen));
        }
        check_name("event type", event_type)?;
        let new: Arc<str> = Arc::from(event_type);
        let slot = recent.next;
        if let Some(entry) = recent.types.get_mut(slot) {
            *entry = Some(Arc::clone(&new));
        }
        recent.next = (slot + 1) % RECENT_TYPES;
        Ok(new)
    })
}

/// `hash_i` from `hash_{i-1}` (see the module docs for the byte layout).
pub fn chain_hash(prev: u64, seq: u64, event_type: &str, payload: &Value) -> u64 {
    let mut h = HashInput::new();
    h.update(&prev.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(&(event_type.len() as u64).to_le_bytes());
    h.update(event_type.as_bytes());
    feed_value(&mut h, payload);
    h.digest()
}

/// Where the canonical encoding is fed: a streaming [`Xxh3`] or a
/// [`HashInput`].
trait HashSink {
    fn update(&mut self, bytes: &[u8]);
}

impl HashSink for Xxh3 {
    fn update(&mut self, bytes: &[u8]) {
        Xxh3::update(self, bytes);
    }
}

/// Bytes a [`HashInput`] keeps on the stack before it spills to a
/// streaming hasher: typical event encodings are well under this.
const HASH_INLINE_BYTES: usize = 256;

/// The input of one chain hash, gathered on the stack and hashed in one
/// shot. xxh3's one-shot and streaming forms give the same digest for the
/// same bytes (the round-trip tests check both sides of the spill), and
/// the one-shot form skips the streaming state's setup, which costs more
/// than hashing a short event.
struct HashInput {
    buf: [u8; HASH_INLINE_BYTES],
    len: usize,
    /// Set once the input outgrows `buf`; holds everything fed so far.
    stream: Option<Xxh3>,
}

impl HashInput {
    fn new() -> HashInput {
        HashInput {
            buf: [0; HASH_INLINE_BYTES],
            len: 0,
            stream: None,
        }
    }

    fn digest(&self) -> u64 {
        match &self.stream {
            Some(stream) => stream.digest(),
            None => xxhash_rust::xxh3::xxh3_64(&self.buf[..self.len]),
        }
    }
}

impl HashSink for HashInput {
    #[inline]
    fn update(&mut self, bytes: &[u8]) {
        if let Some(stream) = &mut self.stream {
            return stream.update(bytes);
        }
        let end = self.len + bytes.len();
        if let Some(room) = self.buf.get_mut(self.len..end) {
            room.copy_from_slice(bytes);
            self.len = end;
            return;
        }
        let mut stream = Xxh3::new();
        stream.update(&self.buf[..self.len]);
        stream.update(bytes);
        self.stream = Some(stream);
    }
}

/// Feed the canonical encoding of `value` to `h`: one tag byte, then
/// - `Null` 0x00; `Bool` 0x01 + one byte 0/1; `Int` 0x02 + i64 LE;
///   `Float` 0x03 + the f64's bits as u64 LE;
/// - `String` 0x04 / `Bytes` 0x05 + `[len: u64 LE]` + the bytes;
/// - `Array` 0x06 + `[count: u64 LE]` + each element;
/// - `Object` 0x07 + `[count: u64 LE]` + per field in key order
///   `[key len: u64 LE][key UTF-8][value]`.
///
/// Iterative, so a deeply nested payload cannot overflow the stack.
pub fn hash_value(h: &mut Xxh3, value: &Value) {
    feed_value(h, value);
}

/// [`hash_value`] into any sink.
fn feed_value(h: &mut impl HashSink, value: &Value) {
    if !matches!(value, Value::Array(_) | Value::Object(_)) {
        // No nesting: skip the work stack (and its allocation).
        return hash_scalar(h, value);
    }
    enum Item<'a> {
        Value(&'a Value),
        Field(&'a str),
    }
    let mut stack = vec![Item::Value(value)];
    while let Some(item) = stack.pop() {
        let v = match item {
            Item::Field(k) => {
                h.update(&(k.len() as u64).to_le_bytes());
                h.update(k.as_bytes());
                continue;
            }
            Item::Value(v) => v,
        };
        match v {
            Value::Array(a) => {
                h.update(&[0x06]);
                h.update(&(a.len() as u64).to_le_bytes());
                stack.extend(a.iter().rev().map(Item::Value));
            }
            Value::Object(o) => {
                h.update(&[0x07]);
                h.update(&(o.len() as u64).to_le_bytes());
                for (k, v) in o.iter().rev() {
                    stack.push(Item::Value(v));
                    stack.push(Item::Field(k));
                }
            }
            scalar => hash_scalar(h, scalar),
        }
    }
}

/// The encoding of a value that is neither an array nor an object.
fn hash_scalar(h: &mut impl HashSink, v: &Value) {
    match v {
        Value::Null => h.update(&[0x00]),
        Value::Bool(b) => h.update(&[0x01, u8::from(*b)]),
        Value::Int(i) => {
            h.update(&[0x02]);
            h.update(&i.to_le_bytes());
        }
        Value::Float(f) => {
            h.update(&[0x03]);
            h.update(&f.to_bits().to_le_bytes());
        }
        Value::String(s) => bytes(h, 0x04, s.as_bytes()),
        Value::Bytes(b) => bytes(h, 0x05, b),
        // Containers are walked by `hash_value`.
        Value::Array(_) | Value::Object(_) => {}
    }
}

fn bytes(h: &mut impl HashSink, tag: u8, b: &[u8]) {
    h.update(&[tag]);
    h.update(&(b.len() as u64).to_le_bytes());
    h.update(b);
}

fn encode_head(head: EventHead) -> Value {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&head.len.to_le_bytes());
    b[8..].copy_from_slice(&head.last_hash.to_le_bytes());
    Value::from(&b[..])
}

fn decode_head(v: ValueRef<'_>) -> Option<EventHead> {
    let b = v.as_bytes()?;
    let len = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let last_hash = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
    Some(EventHead { len, last_hash })
}

fn decode_event(seq: u64, v: &Value) -> Option<Event> {
    let [t, payload, ms, hash] = v.as_array()? else {
        return None;
    };
    Some(Event {
        seq,
        event_type: match t {
            Value::String(s) => Arc::clone(s),
            _ => return None,
        },
        payload: payload.clone(),
        wall_ms: ms.as_i64()? as u64,
        hash: hash.as_i64()? as u64,
    })
}
