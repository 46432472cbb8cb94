//! [`WriteSet`]: a transaction's buffered writes, in key order.
//!
//! Most agent transactions write one to a few keys, so the set starts as a
//! sorted `Vec` (one small allocation, binary search, no tree nodes) and
//! turns into a `BTreeMap` only past [`SMALL_MAX`] keys, where insertion
//! into a sorted vector would cost O(n) moves per write.

use std::collections::BTreeMap;

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};
use smallvec::SmallVec;

use crate::types::Key;
use crate::value::Value;

/// Keys a write set holds before it switches to a tree.
const SMALL_MAX: usize = 16;

/// A write: the value, or `None` for a delete.
pub(crate) type Write = Option<Value>;

/// The small representation: up to two writes live inside the transaction,
/// no heap allocation (a read-modify-write plus one new key, such as an
/// event append with its log head, is the common shape of a transaction).
type Small = SmallVec<[(Key, Write); 2]>;

/// Buffered writes keyed by [`Key`], iterated in key order.
#[derive(Debug, Clone)]
pub(crate) enum WriteSet {
    /// Sorted by key, keys unique; at most `SMALL_MAX` writes, except
    /// after `as_mut_slice` turned a large set into one vector.
    Small(Small),
    /// More.
    Large(BTreeMap<Key, Write>),
}

impl Default for WriteSet {
    fn default() -> WriteSet {
        WriteSet::Small(Small::new())
    }
}

impl WriteSet {
    pub(crate) fn len(&self) -> usize {
        match self {
            WriteSet::Small(v) => v.len(),
            WriteSet::Large(m) => m.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffered write of `key`, if any.
    pub(crate) fn get(&self, key: &Key) -> Option<&Write> {
        match self {
            WriteSet::Small(v) => v
                .binary_search_by(|(k, _)| k.cmp(key))
                .ok()
                .map(|i| &v[i].1),
            WriteSet::Large(m) => m.get(key),
        }
    }

    pub(crate) fn contains_key(&self, key: &Key) -> bool {
        self.get(key).is_some()
    }

    /// Buffer `write` for `key`, replacing an earlier write of it.
    pub(crate) fn insert(&mut self, key: Key, write: Write) {
        match self {
            WriteSet::Small(v) => match v.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(i) => v[i].1 = write,
                Err(i) if v.len() < SMALL_MAX => v.insert(i, (key, write)),
                Err(_) => {
                    let mut map: BTreeMap<Key, Write> = std::mem::take(v).into_iter().collect();
                    map.insert(key, write);
                    *self = WriteSet::Large(map);
                }
            },
            WriteSet::Large(m) => {
                m.insert(key, write);
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        *self = WriteSet::default();
    }

    /// The writes in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &Write)> {
        let (small, large) = match self {
            WriteSet::Small(v) => (Some(v.iter().map(|(k, w)| (k, w))), None),
            WriteSet::Large(m) => (None, Some(m.iter())),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
    }

    /// The keys in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Key> {
        self.iter().map(|(k, _)| k)
    }

    /// The writes in key order, as one slice to change in place (a large
    /// set becomes one sorted vector first).
    pub(crate) fn as_mut_slice(&mut self) -> &mut [(Key, Write)] {
        if let WriteSet::Large(m) = self {
            let v: Small = std::mem::take(m).into_iter().collect();
            *self = WriteSet::Small(v);
        }
        match self {
            WriteSet::Small(v) => v.as_mut_slice(),
            WriteSet::Large(_) => &mut [],
        }
    }
}

/// Serialised as a sequence of `(key, write)` pairs in key order: the WAL
/// record's `writes` field (docs/format.md).
impl Serialize for WriteSet {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for pair in self.iter() {
            seq.serialize_element(&pair)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod test {
    use std::collections::BTreeMap;

    use super::{SMALL_MAX, WriteSet};
    use crate::types::{Key, Namespace, Scope, TypeTag};
    use crate::value::Value;

    fn key(i: u8) -> Key {
        Key::new(
            Namespace::new("t").unwrap(),
            Scope::Shared,
            TypeTag::Kv,
            [i],
        )
    }

    /// Random inserts (with overwrites and deletes) agree with a `BTreeMap`
    /// model on every lookup, on length and on ordered iteration, across
    /// the switch from the small to the large representation.
    #[test]
    fn write_set_matches_a_btreemap_model() {
        let mut rng = fastrand::Rng::with_seed(11);
        for round in 0..200 {
            let mut set = WriteSet::default();
            let mut model = BTreeMap::new();
            let keys = rng.u8(1..=(2 * SMALL_MAX as u8 + 4));
            for _ in 0..rng.usize(0..60) {
                let k = key(rng.u8(0..keys));
                let w = if rng.u8(0..4) == 0 {
                    None
                } else {
                    Some(Value::from(i64::from(rng.u8(..))))
                };
                set.insert(k.clone(), w.clone());
                model.insert(k, w);
                assert_eq!(set.len(), model.len(), "round {round}");
            }
            for i in 0..keys {
                assert_eq!(set.get(&key(i)), model.get(&key(i)), "round {round}");
            }
            let got: Vec<_> = set.iter().map(|(k, w)| (k.clone(), w.clone())).collect();
            let want: Vec<_> = model.clone().into_iter().collect();
            assert_eq!(got, want, "round {round}");
            assert_eq!(set.as_mut_slice().to_vec(), want, "round {round}");
            for i in 0..keys {
                assert_eq!(
                    set.get(&key(i)),
                    model.get(&key(i)),
                    "round {round} as one slice"
                );
            }
        }
    }
}
