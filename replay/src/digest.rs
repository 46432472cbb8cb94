//! [`Digest`]: a stable fingerprint of what a run wrote.
//!
//! ## Canonical encoding (stable; changing it breaks recorded digests)
//! The digest is `xxh3_64` (seed 0) over the concatenation, for every step
//! of the run in commit order and every write of that step in [`RunKey`]
//! order, of the postcard encoding of
//!
//! | field | postcard encoding |
//! |-------|-------------------|
//! | step index (0-based, among the run's commits) | varint `u64` |
//! | type tag (`TypeTag::as_u8`) | one byte |
//! | namespace | varint length + UTF-8 |
//! | scope | varint 0 = shared, 1 = own, 2 = another run + varint `u128` id |
//! | user key bytes | varint length + bytes |
//! | value | `0` = delete, or `1` + the canonical value's serde/postcard encoding (as in the WAL) |
//!
//! The canonical value is the value written, except for the wall-clock
//! fields the primitives store (see [`canonical_value`]).
//!
//! Left out on purpose, so that the same workload gives the same digest in
//! two fresh databases (test T5):
//! - absolute commit versions and wall-clock times (they depend on what else
//!   the database did and when), hence the run-relative step index and the
//!   canonical values;
//! - the run's own id (its scope is encoded as "own", see [`crate::RunKey`]);
//! - writes to the run index (`TypeTag::Run`): they are bookkeeping *about*
//!   the run (name, timestamps, status, and the digest itself, written at
//!   `end_run`), not state the run produced.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use rewinddb_engine::{RunId, TypeTag, Value};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};
use crate::key::{RunKey, RunScope};

/// A run's digest: `xxh3_64` of its canonical write sequence. Printed as 16
/// hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(pub u64);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl From<u64> for Digest {
    fn from(v: u64) -> Digest {
        Digest(v)
    }
}

/// True if writes with `tag` count towards a run's digest.
pub fn is_digested(tag: TypeTag) -> bool {
    tag != TypeTag::Run
}

/// The value as the digest (and replay comparisons) see it: `value`
/// without the wall-clock times the primitives record, which differ
/// between two executions of the same workload. Per the primitives'
/// documented encodings:
/// - an event record (`TypeTag::Event`, user key `e` + 8 bytes, value
///   `[type, payload, wall_ms, hash]`) becomes `[type, payload, hash]`;
/// - a span record (`TypeTag::Trace`, user key `s` + 8 bytes, an object)
///   loses its `start_ms` and `end_ms` fields.
///
/// Every other value is returned as is.
pub fn canonical_value<'v>(key: &RunKey, value: &'v Value) -> Cow<'v, Value> {
    let record_of = |prefix: u8| key.user.len() == 9 && key.user[0] == prefix;
    match (key.tag, value) {
        (TypeTag::Event, Value::Array(a)) if record_of(b'e') && a.len() == 4 => {
            Cow::Owned(Value::Array(Arc::from([
                a[0].clone(),
                a[1].clone(),
                a[3].clone(),
            ])))
        }
        (TypeTag::Trace, Value::Object(o)) if record_of(b's') => {
            let mut o = (**o).clone();
            o.remove("start_ms");
            o.remove("end_ms");
            Cow::Owned(Value::Object(Arc::new(o)))
        }
        _ => Cow::Borrowed(value),
    }
}

/// Bytes of encoded writes gathered before they are handed to the hasher:
/// one `update` per few kilobytes instead of one per write (the stream,
/// and so the digest, is the same however it is cut).
const HASH_CHUNK_BYTES: usize = 4096;

/// Builds a [`Digest`] write by write.
pub(crate) struct DigestBuilder {
    run: RunId,
    hasher: Xxh3,
    buf: Vec<u8>,
}

impl DigestBuilder {
    pub(crate) fn new(run: RunId) -> DigestBuilder {
        DigestBuilder {
            run,
            hasher: Xxh3::new(),
            buf: Vec::with_capacity(HASH_CHUNK_BYTES + 256),
        }
    }

    /// Add one write of step `step`; skipped if its tag is not digested.
    pub(crate) fn write(&mut self, step: usize, key: &RunKey, value: Option<&Value>) -> Result<()> {
        if !is_digested(key.tag) {
            return Ok(());
        }
        encode_write(&mut self.buf, step as u64, key, value).map_err(|e| Error::Encode {
            run: self.run,
            reason: e.to_string(),
        })?;
        if self.buf.len() >= HASH_CHUNK_BYTES {
            self.hasher.update(&self.buf);
            self.buf.clear();
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Digest {
        self.hasher.update(&self.buf);
        Digest(self.hasher.digest())
    }
}

/// Append the canonical record of one write to `buf`. Everything but the
/// value is encoded by hand, exactly as postcard encodes the fields of
/// the table above (checked against postcard in this module's tests,
/// pinned by the `digest_stable` test); the value goes through postcard.
fn encode_write(
    buf: &mut Vec<u8>,
    step: u64,
    key: &RunKey,
    value: Option<&Value>,
) -> postcard::Result<()> {
    put_varint(buf, u128::from(step));
    buf.push(key.tag.as_u8());
    put_bytes(buf, key.ns.as_str().as_bytes());
    match key.scope {
        RunScope::Shared => buf.push(0),
        RunScope::Own => buf.push(1),
        RunScope::Run(r) => {
            buf.push(2);
            put_varint(buf, r.as_u128());
        }
    }
    put_bytes(buf, &key.user);
    match value {
        None => buf.push(0),
        Some(v) => {
            buf.push(1);
            postcard::to_extend(canonical_value(key, v).as_ref(), Sink(buf))?;
        }
    }
    Ok(())
}

/// Lets postcard append to the buffer in place: handing it the `Vec` by
/// value and taking it back moves three words through the stack per
/// write, which profiled as a store-forwarding stall.
struct Sink<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Sink<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
        self.0.extend(bytes);
    }
}

/// Postcard's unsigned varint: 7 bits a byte, low bits first, the high bit
/// set on every byte but the last.
fn put_varint(buf: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Postcard's byte string (and `str`): varint length, then the bytes.
fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(buf, bytes.len() as u128);
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
mod test {
    use proptest::prelude::*;
    use rewinddb_engine::Namespace;
    use serde::Serialize;

    use super::*;

    /// The canonical record as postcard encodes it: the reference the hand
    /// encoder must match byte for byte.
    #[derive(Serialize)]
    struct CanonicalWrite<'a> {
        step: u64,
        tag: u8,
        ns: &'a str,
        scope: CanonicalScope,
        #[serde(with = "bytes")]
        user: &'a [u8],
        value: Option<&'a Value>,
    }

    #[derive(Serialize)]
    enum CanonicalScope {
        Shared,
        Own,
        Run(u128),
    }

    mod bytes {
        pub(super) fn serialize<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }
    }

    fn reference(step: u64, key: &RunKey, value: Option<&Value>) -> Vec<u8> {
        let value = value.map(|v| canonical_value(key, v));
        let record = CanonicalWrite {
            step,
            tag: key.tag.as_u8(),
            ns: key.ns.as_str(),
            scope: match key.scope {
                RunScope::Shared => CanonicalScope::Shared,
                RunScope::Own => CanonicalScope::Own,
                RunScope::Run(r) => CanonicalScope::Run(r.as_u128()),
            },
            user: &key.user,
            value: value.as_deref(),
        };
        postcard::to_stdvec(&record).unwrap()
    }

    fn key() -> impl Strategy<Value = RunKey> {
        let tag = prop::sample::select(vec![
            TypeTag::Kv,
            TypeTag::Event,
            TypeTag::State,
            TypeTag::Trace,
        ]);
        let scope = prop_oneof![
            Just(RunScope::Shared),
            Just(RunScope::Own),
            any::<u128>().prop_map(|r| RunScope::Run(RunId::from_u128(r))),
        ];
        let ns = prop_oneof![Just(1usize), Just(127), Just(128), 1usize..200];
        // Lengths around the one-byte varint limit (127/128) and beyond.
        let user = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..12),
            prop::collection::vec(any::<u8>(), 126..130),
            prop::collection::vec(any::<u8>(), 300..400),
        ];
        (tag, ns, scope, user).prop_map(|(tag, ns_len, scope, user)| RunKey {
            tag,
            ns: Namespace::new(&"n".repeat(ns_len)).unwrap(),
            scope,
            user: rewinddb_engine::KeyBytes::from(user),
        })
    }

    fn value() -> impl Strategy<Value = Option<Value>> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::Int),
            any::<f64>().prop_map(Value::from),
            ".{0,20}".prop_map(Value::from),
            prop::collection::vec(any::<u8>(), 0..20).prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(2, 8, 4, |inner| {
            prop::collection::vec(inner, 0..4).prop_map(Value::from)
        });
        prop::option::weighted(0.9, value)
    }

    proptest! {
        #[test]
        fn hand_encoding_is_postcard(
            step in prop_oneof![0u64..300, any::<u64>()],
            key in key(),
            value in value(),
        ) {
            let mut buf = vec![0xAA];
            encode_write(&mut buf, step, &key, value.as_ref()).unwrap();
            prop_assert_eq!(&buf[1..], &reference(step, &key, value.as_ref())[..]);
        }
    }
}
