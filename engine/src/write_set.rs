//! [`WriteSet`]: a transaction's buffered writes, in key order.
//!
//! Each write is buffered as the version it will install, built when the
//! write is made ([`BuiltVersion`], a tombstone for a delete; its commit is
//! set at install), beside the key's chain as the write found it
//! ([`KeyChain`]). The index probe, the allocations and the copy of the
//! value happen outside the commit lock; a value given borrowed
//! (`Transaction::put_ref`) is copied once, straight into its version; and
//! a new key's chain is made right before its first version, so a point
//! read of a key written once touches two adjacent allocations.
//!
//! A write names its key through its chain (a chain's key never changes),
//! not with a key of its own: a put need not clone the caller's key (an
//! increment, then a decrement, of its family's count, one line every
//! thread writing that family shares), and the small set's entries are
//! half the size to move. So reading a write's key needs the store the
//! chain came from ([`Write::key`]).
//!
//! Most agent transactions write one to a few keys, so the set starts as a
//! sorted `Vec` (one small allocation, binary search, no tree nodes) and
//! turns into a `BTreeMap` only past [`SMALL_MAX`] keys, where insertion
//! into a sorted vector would cost O(n) moves per write (the map keeps a
//! key of its own per write).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};
use smallvec::SmallVec;

use crate::chain::{BuiltVersion, ChainRef};
use crate::store::{IndexedChain, Store};
use crate::types::Key;
use crate::value::ValueRef;

/// Keys a write set holds before it switches to a tree.
const SMALL_MAX: usize = 16;

/// A buffered write.
pub(crate) struct Write {
    /// The version it will install (a tombstone for a delete).
    pub(crate) version: BuiltVersion,
    /// The key's chain, which also holds the key.
    pub(crate) chain: KeyChain,
}

impl Write {
    /// The written key: its chain's. `store` is the transaction's (whose
    /// index a found chain came from).
    #[inline]
    pub(crate) fn key<'s>(&'s self, store: &'s Store) -> &'s Key {
        match &self.chain {
            KeyChain::Found(chain) => chain.get(store).key(),
            KeyChain::Made { chain, .. } => chain.key(),
        }
    }
}

/// A written key's chain, as the transaction knows it.
pub(crate) enum KeyChain {
    /// In the index (chains are never removed, so it stays the key's),
    /// held without a count (see [`IndexedChain`]).
    Found(IndexedChain),
    /// Made for a key the index did not hold when it was written; not in
    /// the index. The commit looks again (another commit may have created
    /// the key since) and inserts it if still needed.
    Made {
        chain: ChainRef,
        /// The key's digest in the point index, for the insert.
        digest: u64,
    },
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let made = matches!(self.chain, KeyChain::Made { .. });
        f.debug_struct("Write")
            .field("value", &self.version.value())
            .field("new_key", &made)
            .finish()
    }
}

/// The small representation: up to two writes live inside the transaction,
/// no heap allocation (a read-modify-write plus one new key, such as an
/// event append with its log head, is the common shape of a transaction).
type Small = SmallVec<[Write; 2]>;

/// Buffered writes, iterated in key order. Every method that reads keys
/// takes the store the set's chains came from.
#[derive(Debug)]
pub(crate) enum WriteSet {
    /// Sorted by key, keys unique; at most `SMALL_MAX` writes.
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

    /// True once the set is a tree (past [`SMALL_MAX`] keys): a search of
    /// it takes long enough to hide an index probe's cache miss behind
    /// (see `Transaction::write`).
    pub(crate) fn is_large(&self) -> bool {
        matches!(self, WriteSet::Large(_))
    }

    /// The buffered write of `key`, if any: `Some(None)` is a delete.
    pub(crate) fn get(&self, store: &Store, key: &Key) -> Option<Option<ValueRef<'_>>> {
        self.find(store, key).map(|w| w.version.value())
    }

    #[inline]
    fn find(&self, store: &Store, key: &Key) -> Option<&Write> {
        match self {
            WriteSet::Small(v) => v
                .binary_search_by(|w| w.key(store).cmp(key))
                .ok()
                .map(|i| &v[i]),
            WriteSet::Large(m) => m.get(key),
        }
    }

    pub(crate) fn contains_key(&self, store: &Store, key: &Key) -> bool {
        self.find(store, key).is_some()
    }

    /// Buffer a write of `key` with one search of the set: if it holds
    /// one, `build()` replaces its version; else `chain(key)` (which must
    /// be a chain of `store`'s, or one made, holding a key equal to
    /// `key`), then `build()`, make a new write (in that order: a new
    /// key's chain is made right before its version, see the module docs).
    pub(crate) fn write(
        &mut self,
        store: &Store,
        key: &Key,
        chain: impl FnOnce(&Key) -> KeyChain,
        build: impl FnOnce() -> BuiltVersion,
    ) {
        match self {
            WriteSet::Small(v) => match v.binary_search_by(|w| w.key(store).cmp(key)) {
                Ok(i) => v[i].version = build(),
                Err(i) => {
                    let chain = chain(key);
                    let write = Write {
                        version: build(),
                        chain,
                    };
                    debug_assert!(write.key(store) == key, "a chain of another key");
                    if v.len() < SMALL_MAX {
                        v.insert(i, write);
                    } else {
                        let mut map: BTreeMap<Key, Write> = std::mem::take(v)
                            .into_iter()
                            .map(|w| (w.key(store).clone(), w))
                            .collect();
                        map.insert(key.clone(), write);
                        *self = WriteSet::Large(map);
                    }
                }
            },
            // One search with a key of the map's own (a count increment):
            // a lookup, then an insert, would search a large set twice.
            WriteSet::Large(m) => match m.entry(key.clone()) {
                Entry::Occupied(mut o) => o.get_mut().version = build(),
                Entry::Vacant(e) => {
                    let chain = chain(e.key());
                    let version = build();
                    e.insert(Write { version, chain });
                }
            },
        }
    }

    pub(crate) fn clear(&mut self) {
        *self = WriteSet::default();
    }

    /// The writes in key order, each as its value (`None`: a delete).
    pub(crate) fn iter<'s>(
        &'s self,
        store: &'s Store,
    ) -> impl Iterator<Item = (&'s Key, Option<ValueRef<'s>>)> {
        let (small, large) = match self {
            WriteSet::Small(v) => (Some(v.iter().map(move |w| (w.key(store), w))), None),
            WriteSet::Large(m) => (None, Some(m.iter())),
        };
        let writes = small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten());
        writes.map(|(k, w)| (k, w.version.value()))
    }

    /// Visit each write in key order until `f` fails. A callback rather
    /// than an iterator like [`WriteSet::iter`]'s: chaining the two representations'
    /// iterators costs more than a one-key commit's validation.
    #[inline]
    pub(crate) fn try_for_each<'s, E>(
        &'s self,
        store: &'s Store,
        mut f: impl FnMut(&'s Key, &'s Write) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        match self {
            WriteSet::Small(v) => v.iter().try_for_each(|w| f(w.key(store), w)),
            WriteSet::Large(m) => m.iter().try_for_each(|(k, w)| f(k, w)),
        }
    }

    /// Visit each write in key order, to change it in place (its chain
    /// only for one equal key's, as [`WriteSet::write`] requires).
    pub(crate) fn for_each_mut(&mut self, f: impl FnMut(&mut Write)) {
        match self {
            WriteSet::Small(v) => v.iter_mut().for_each(f),
            WriteSet::Large(m) => m.values_mut().for_each(f),
        }
    }

    /// Hand each write to `f` in key order, moved out, leaving the set
    /// empty (install). A callback rather than an iterator: chaining the
    /// two representations' iterators cost more instructions than the
    /// rest of a one-key install (callgrind, `profile_ops put_random`).
    #[inline]
    pub(crate) fn drain(&mut self, f: impl FnMut(Write)) {
        match self {
            WriteSet::Small(v) => v.drain(..).for_each(f),
            WriteSet::Large(m) => std::mem::take(m).into_values().for_each(f),
        }
        *self = WriteSet::default();
    }

    /// The set as the WAL record's `writes` field serialises it.
    pub(crate) fn serialized<'s>(&'s self, store: &'s Store) -> SerializedWrites<'s> {
        SerializedWrites { set: self, store }
    }
}

/// A [`WriteSet`] with its store, serialised as a sequence of `(key,
/// write)` pairs in key order: the WAL record's `writes` field
/// (docs/format.md).
pub(crate) struct SerializedWrites<'s> {
    set: &'s WriteSet,
    store: &'s Store,
}

impl Serialize for SerializedWrites<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        // `(Key, Option<ValueRef>)` serialises as the `(Key, Option<Value>)`
        // of the equal value does (see `ValueRef`'s `Serialize`).
        let mut seq = s.serialize_seq(Some(self.set.len()))?;
        for pair in self.set.iter(self.store) {
            seq.serialize_element(&pair)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod test {
    use std::collections::BTreeMap;

    use super::{KeyChain, SMALL_MAX, WriteSet};
    use crate::chain::{BuiltVersion, ChainRef, VersionChain};
    use crate::store::Store;
    use crate::types::{Key, Namespace, RunId, Scope, TypeTag};
    use crate::value::{Value, ValueRef};

    fn key(i: u8) -> Key {
        Key::new(
            Namespace::new("t").unwrap(),
            Scope::Shared,
            TypeTag::Kv,
            [i],
        )
    }

    /// Buffer `version` for `key` in `set` (whose chains are `store`'s), as
    /// a transaction does, with a made chain for a key the set does not
    /// hold; counts those in `made`.
    fn put(store: &Store, set: &mut WriteSet, key: Key, version: BuiltVersion, made: &mut usize) {
        let chain = |key: &Key| {
            *made += 1;
            KeyChain::Made {
                chain: ChainRef::new(VersionChain::new(key.clone())),
                digest: 0,
            }
        };
        set.write(store, &key, chain, || version);
    }

    /// Random writes (with overwrites and deletes, values given owned and
    /// borrowed) agree with a `BTreeMap` model on every lookup, on length,
    /// on ordered iteration and on what install takes out, across the
    /// switch from the small to the large representation; and a key's
    /// chain is asked for once, at its first write.
    #[test]
    fn write_set_matches_a_btreemap_model() {
        let mut rng = fastrand::Rng::with_seed(11);
        let same =
            |got: Option<Option<ValueRef<'_>>>, want: Option<&Option<Value>>| match (got, want) {
                (Some(Some(g)), Some(Some(w))) => g == *w,
                (Some(None), Some(None)) | (None, None) => true,
                _ => false,
            };
        let store = Store::default();
        for round in 0..200 {
            let mut set = WriteSet::default();
            let mut model = BTreeMap::new();
            let keys = rng.u8(1..=(2 * SMALL_MAX as u8 + 4));
            let mut made = 0;
            for _ in 0..rng.usize(0..60) {
                let k = key(rng.u8(0..keys));
                let byte = rng.u8(..);
                let (w, built) = match rng.u8(0..4) {
                    0 => (None, BuiltVersion::new(0, RunId::NIL, None)),
                    1 => (
                        Some(Value::from(&[byte; 3][..])),
                        BuiltVersion::copied(0, RunId::NIL, ValueRef::Bytes(&[byte; 3])),
                    ),
                    _ => {
                        let v = Value::from(i64::from(byte));
                        (Some(v.clone()), BuiltVersion::new(0, RunId::NIL, Some(v)))
                    }
                };
                put(&store, &mut set, k.clone(), built, &mut made);
                model.insert(k, w);
                assert_eq!(set.len(), model.len(), "round {round}");
                assert_eq!(made, model.len(), "round {round}: chains asked for");
            }
            for i in 0..keys {
                assert!(
                    same(set.get(&store, &key(i)), model.get(&key(i))),
                    "round {round} key {i}"
                );
            }
            let got: Vec<_> = set
                .iter(&store)
                .map(|(k, w)| (k.clone(), w.map(ValueRef::to_value)))
                .collect();
            let want: Vec<_> = model.clone().into_iter().collect();
            assert_eq!(got, want, "round {round}");
            let mut taken = Vec::new();
            set.drain(|w| {
                let value = w.version.value().map(ValueRef::to_value);
                taken.push((w.key(&store).clone(), value));
            });
            assert_eq!(taken, want, "round {round} taken out");
            assert_eq!(set.len(), 0, "round {round} drained");
        }
    }

    /// A write set serialises (the WAL record's `writes`) to the same bytes
    /// whether its versions were built from owned values or copied from
    /// borrowed ones.
    #[test]
    fn borrowed_and_owned_writes_serialise_alike() {
        let values = [
            Value::from("text"),
            Value::from(vec![3u8; 100]),
            Value::from(vec![4u8; crate::INLINE_VALUE_BYTES_MAX + 1]),
            Value::Int(9),
        ];
        let store = Store::default();
        let (mut owned, mut lent) = (WriteSet::default(), WriteSet::default());
        for (i, v) in values.iter().enumerate() {
            let i = i as u8;
            let owned_version = BuiltVersion::new(0, RunId::NIL, Some(v.clone()));
            put(&store, &mut owned, key(i), owned_version, &mut 0);
            let r = match v {
                Value::String(s) => ValueRef::String(s),
                Value::Bytes(b) => ValueRef::Bytes(b),
                other => ValueRef::Value(other),
            };
            put(
                &store,
                &mut lent,
                key(i),
                BuiltVersion::copied(0, RunId::NIL, r),
                &mut 0,
            );
        }
        put(
            &store,
            &mut owned,
            key(9),
            BuiltVersion::new(0, RunId::NIL, None),
            &mut 0,
        );
        put(
            &store,
            &mut lent,
            key(9),
            BuiltVersion::new(0, RunId::NIL, None),
            &mut 0,
        );
        let pairs: Vec<(Key, Option<Value>)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (key(i as u8), Some(v.clone())))
            .chain([(key(9), None)])
            .collect();
        let want = postcard::to_allocvec(&pairs).unwrap();
        let encode = |set: &WriteSet| postcard::to_allocvec(&set.serialized(&store)).unwrap();
        assert_eq!(encode(&owned), want);
        assert_eq!(encode(&lent), want);
    }
}
