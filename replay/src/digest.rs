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
            Cow::Owned(Value::Array(Arc::new(vec![
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

/// One write in canonical form; field order is the wire order.
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

/// Serialise a byte slice as one length-prefixed blob, not a sequence.
mod bytes {
    pub(super) fn serialize<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }
}

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
            buf: Vec::with_capacity(256),
        }
    }

    /// Add one write of step `step`; skipped if its tag is not digested.
    pub(crate) fn write(&mut self, step: usize, key: &RunKey, value: Option<&Value>) -> Result<()> {
        if !is_digested(key.tag) {
            return Ok(());
        }
        let value = value.map(|v| canonical_value(key, v));
        let record = CanonicalWrite {
            step: step as u64,
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
        self.buf.clear();
        let buf = std::mem::take(&mut self.buf);
        self.buf = postcard::to_extend(&record, buf).map_err(|e| Error::Encode {
            run: self.run,
            reason: e.to_string(),
        })?;
        self.hasher.update(&self.buf);
        Ok(())
    }

    pub(crate) fn finish(&self) -> Digest {
        Digest(self.hasher.digest())
    }
}
