//! Decoding of on-disk payloads with bounded recursion and allocation.
//!
//! The derived `Deserialize` of [`Value`] recurses once per nesting level,
//! so a crafted payload of a few hundred kilobytes could overflow the stack.
//! These seeds decode the same postcard bytes as the derived impls but
//! refuse nesting deeper than [`VALUE_DECODE_DEPTH_MAX`], and never
//! pre-allocate more than a small bound from a length read off the disk.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

use crate::record::CommitRecord;
use crate::types::{Key, RunId, Version};
use crate::value::Value;

/// Deepest nesting of a value accepted when decoding. `Limits::value_depth_max`
/// may not exceed it, so everything the engine accepts it can read back.
pub const VALUE_DECODE_DEPTH_MAX: usize = 256;

/// Elements pre-allocated from a length prefix, at most.
const PREALLOC_MAX: usize = 1024;

type PResult<T> = std::result::Result<T, postcard::Error>;

/// Decode a WAL record payload; trailing bytes are an error.
pub fn decode_commit_record(payload: &[u8]) -> PResult<CommitRecord> {
    decode_all(payload, RecordSeed)
}

/// One version of one key as a checkpoint stores it.
pub type StoredVersion = (Version, RunId, Option<Value>);

/// One key's retained history as a checkpoint stores it (newest first).
#[derive(Debug, Clone, PartialEq)]
pub struct ChainImage {
    /// The key.
    pub key: Key,
    /// Largest version GC had unlinked from the chain (0 = none).
    pub pruned_max: Version,
    /// Retained versions, newest first.
    pub versions: Vec<StoredVersion>,
}

/// A decoded checkpoint body: `(floor, times, chains)`.
pub type CheckpointBody = (Version, Vec<(Version, u64)>, Vec<ChainImage>);

/// Decode a checkpoint body.
pub fn decode_checkpoint_body(body: &[u8]) -> PResult<CheckpointBody> {
    decode_all(body, BodySeed)
}

fn decode_all<'de, S: DeserializeSeed<'de>>(bytes: &'de [u8], seed: S) -> PResult<S::Value> {
    let mut de = postcard::Deserializer::from_bytes(bytes);
    let value = seed.deserialize(&mut de)?;
    if !de.finalize()?.is_empty() {
        return Err(postcard::Error::DeserializeBadEncoding);
    }
    Ok(value)
}

/// Visit a sequence of `n` fixed elements (a postcard tuple or struct).
macro_rules! tuple_visitor {
    ($name:ident, $out:ty, $expect:literal, |$seq:ident| $body:block) => {
        struct $name;
        impl<'de> Visitor<'de> for $name {
            type Value = $out;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($expect)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut $seq: A) -> Result<$out, A::Error> {
                $body
            }
        }
    };
}

fn need<T, E: de::Error>(v: Option<T>, what: &'static str) -> Result<T, E> {
    v.ok_or_else(|| E::custom(format_args!("missing {what}")))
}

struct RecordSeed;
tuple_visitor!(RecordVisitor, CommitRecord, "a commit record", |seq| {
    let version = need(seq.next_element()?, "version")?;
    let run = need(seq.next_element()?, "run")?;
    let wall_ms = need(seq.next_element()?, "wall_ms")?;
    let writes = need(seq.next_element_seed(WritesSeed)?, "writes")?;
    Ok(CommitRecord {
        version,
        run,
        wall_ms,
        writes,
    })
});
impl<'de> DeserializeSeed<'de> for RecordSeed {
    type Value = CommitRecord;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<CommitRecord, D::Error> {
        d.deserialize_tuple(4, RecordVisitor)
    }
}

struct WritesSeed;
impl<'de> DeserializeSeed<'de> for WritesSeed {
    type Value = Vec<(Key, Option<Value>)>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(SeqOf(|| WriteSeed))
    }
}

struct WriteSeed;
tuple_visitor!(WriteVisitor, (Key, Option<Value>), "a write", |seq| {
    let key = need(seq.next_element()?, "key")?;
    let value = need(seq.next_element_seed(OptionValueSeed)?, "value")?;
    Ok((key, value))
});
impl<'de> DeserializeSeed<'de> for WriteSeed {
    type Value = (Key, Option<Value>);
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_tuple(2, WriteVisitor)
    }
}

/// A sequence whose elements are decoded by the seeds `make` returns.
struct SeqOf<F>(F);
impl<'de, F, S> Visitor<'de> for SeqOf<F>
where
    F: Fn() -> S,
    S: DeserializeSeed<'de>,
{
    type Value = Vec<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(PREALLOC_MAX));
        while let Some(x) = seq.next_element_seed((self.0)())? {
            out.push(x);
        }
        Ok(out)
    }
}

struct OptionValueSeed;
impl<'de> Visitor<'de> for OptionValueSeed {
    type Value = Option<Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an optional value")
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<Value>, E> {
        Ok(None)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        ValueSeed { depth: 1 }.deserialize(d).map(Some)
    }
}
impl<'de> DeserializeSeed<'de> for OptionValueSeed {
    type Value = Option<Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_option(self)
    }
}

/// A [`Value`] at nesting `depth` (a top-level value is at depth 1).
#[derive(Clone, Copy)]
struct ValueSeed {
    depth: usize,
}

const VALUE_VARIANTS: &[&str] = &[
    "Null", "Bool", "Int", "Float", "String", "Bytes", "Array", "Object",
];

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.depth > VALUE_DECODE_DEPTH_MAX {
            return Err(de::Error::custom(format_args!(
                "value nested deeper than VALUE_DECODE_DEPTH_MAX = {VALUE_DECODE_DEPTH_MAX}"
            )));
        }
        d.deserialize_enum("Value", VALUE_VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (index, v): (u32, _) = data.variant()?;
        let inner = ValueSeed {
            depth: self.depth + 1,
        };
        Ok(match index {
            0 => {
                v.unit_variant()?;
                Value::Null
            }
            1 => Value::Bool(v.newtype_variant()?),
            2 => Value::Int(v.newtype_variant()?),
            3 => Value::Float(v.newtype_variant()?),
            4 => Value::String(Arc::from(v.newtype_variant::<String>()?)),
            5 => Value::Bytes(Arc::from(v.newtype_variant::<Vec<u8>>()?)),
            6 => Value::Array(Arc::new(v.newtype_variant_seed(ArraySeed(inner))?)),
            7 => Value::Object(Arc::new(v.newtype_variant_seed(ObjectSeed(inner))?)),
            other => {
                return Err(de::Error::invalid_value(
                    de::Unexpected::Unsigned(u64::from(other)),
                    &"a Value variant index 0..=7",
                ));
            }
        })
    }
}

struct ArraySeed(ValueSeed);
impl<'de> DeserializeSeed<'de> for ArraySeed {
    type Value = Vec<Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<Value>, D::Error> {
        let seed = self.0;
        d.deserialize_seq(SeqOf(move || seed))
    }
}

struct ObjectSeed(ValueSeed);
impl<'de> Visitor<'de> for ObjectSeed {
    type Value = BTreeMap<String, Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(self.0)?;
            out.insert(k, v);
        }
        Ok(out)
    }
}
impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = BTreeMap<String, Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

// ---------------------------------------------------------------- checkpoint body

struct BodySeed;
type Body = CheckpointBody;
tuple_visitor!(BodyVisitor, Body, "a checkpoint body", |seq| {
    let floor = need(seq.next_element()?, "floor")?;
    let times = need(seq.next_element()?, "times")?;
    let chains = need(seq.next_element_seed(ChainsSeed)?, "chains")?;
    Ok((floor, times, chains))
});
impl<'de> DeserializeSeed<'de> for BodySeed {
    type Value = Body;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Body, D::Error> {
        d.deserialize_tuple(3, BodyVisitor)
    }
}

struct ChainsSeed;
impl<'de> DeserializeSeed<'de> for ChainsSeed {
    type Value = Vec<ChainImage>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(SeqOf(|| ChainSeed))
    }
}

struct ChainSeed;
tuple_visitor!(ChainVisitor, ChainImage, "a chain", |seq| {
    let key = need(seq.next_element()?, "key")?;
    let pruned_max = need(seq.next_element()?, "pruned_max")?;
    let versions = need(seq.next_element_seed(VersionsSeed)?, "versions")?;
    Ok(ChainImage {
        key,
        pruned_max,
        versions,
    })
});
impl<'de> DeserializeSeed<'de> for ChainSeed {
    type Value = ChainImage;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<ChainImage, D::Error> {
        d.deserialize_tuple(3, ChainVisitor)
    }
}

struct VersionsSeed;
impl<'de> DeserializeSeed<'de> for VersionsSeed {
    type Value = Vec<StoredVersion>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(SeqOf(|| VersionSeed))
    }
}

struct VersionSeed;
tuple_visitor!(VersionVisitor, StoredVersion, "a version", |seq| {
    let commit = need(seq.next_element()?, "commit")?;
    let run = need(seq.next_element()?, "run")?;
    let value = need(seq.next_element_seed(OptionValueSeed)?, "value")?;
    Ok((commit, run, value))
});
impl<'de> DeserializeSeed<'de> for VersionSeed {
    type Value = StoredVersion;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<StoredVersion, D::Error> {
        d.deserialize_tuple(3, VersionVisitor)
    }
}
