//! [`KeyBytes`]: a key's user bytes, inline when short.
//!
//! Nearly every key the primitives build is short (a name, a sequence
//! number, a span id), so up to [`KeyBytes::INLINE_MAX`] bytes live inside
//! the key itself: building a key allocates nothing, and comparing a probe
//! with a key stored in an index entry reads no other cache line. Longer
//! keys share one heap copy, so a clone is a reference-count increment
//! either way.
//!
//! Equality, order, hashing and serde all act on the byte slice, exactly as
//! for an `Arc<[u8]>`: the WAL and checkpoint formats do not see the
//! difference.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A key's user bytes (see the module docs).
#[derive(Clone)]
pub struct KeyBytes(Repr);

#[derive(Clone)]
enum Repr {
    /// `bytes[..len]`, `len <= INLINE_MAX`.
    Inline {
        len: u8,
        bytes: [u8; KeyBytes::INLINE_MAX],
    },
    /// Longer than `INLINE_MAX`.
    Heap(Arc<[u8]>),
}

impl KeyBytes {
    /// Longest byte string kept inline (the largest that keeps
    /// `KeyBytes` at 24 bytes).
    pub const INLINE_MAX: usize = 22;

    /// The bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }
}

impl KeyBytes {
    /// Inline bytes as three words (the last holding the length in its top
    /// byte): equal strings give equal words, as the form is canonical (see
    /// `PartialEq`). None for a long string.
    #[inline]
    pub(crate) fn inline_words(&self) -> Option<[u64; 3]> {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let word = |at: usize| {
                    let mut w = [0u8; 8];
                    let end = (at + 8).min(KeyBytes::INLINE_MAX);
                    w[..end - at].copy_from_slice(&bytes[at..end]);
                    u64::from_le_bytes(w)
                };
                Some([word(0), word(8), word(16) | u64::from(*len) << 56])
            }
            Repr::Heap(_) => None,
        }
    }
}

impl From<&[u8]> for KeyBytes {
    fn from(b: &[u8]) -> KeyBytes {
        match u8::try_from(b.len()) {
            Ok(len) if b.len() <= KeyBytes::INLINE_MAX => {
                let mut bytes = [0; KeyBytes::INLINE_MAX];
                bytes[..b.len()].copy_from_slice(b);
                KeyBytes(Repr::Inline { len, bytes })
            }
            _ => KeyBytes(Repr::Heap(Arc::from(b))),
        }
    }
}

impl From<Vec<u8>> for KeyBytes {
    fn from(b: Vec<u8>) -> KeyBytes {
        if b.len() <= KeyBytes::INLINE_MAX {
            KeyBytes::from(b.as_slice())
        } else {
            KeyBytes(Repr::Heap(Arc::from(b)))
        }
    }
}

impl Deref for KeyBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for KeyBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// Two inline strings compare as their fixed-size fields, without a call to
/// `memcmp` for a slice of unknown length: every point read compares the
/// key it is given with the key of the chain it found (`store.rs`). Sound
/// because the inline form is canonical: a string of at most `INLINE_MAX`
/// bytes is always inline, and the bytes past `len` are always zero (both
/// set by `From<&[u8]>`, the only constructor; nothing mutates a
/// `KeyBytes`).
impl PartialEq for KeyBytes {
    #[inline]
    fn eq(&self, other: &KeyBytes) -> bool {
        match (&self.0, &other.0) {
            (Repr::Inline { len: a, bytes: x }, Repr::Inline { len: b, bytes: y }) => {
                a == b && x == y
            }
            _ => self.as_slice() == other.as_slice(),
        }
    }
}

impl Eq for KeyBytes {}

impl PartialOrd for KeyBytes {
    fn partial_cmp(&self, other: &KeyBytes) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Two inline strings compare as their zero-padded arrays, then by length:
/// the same order as the slices (where the arrays first differ inside both
/// strings, so do the slices; past the end of the shorter one its padding
/// is 0 and the longer's byte is not, and the shorter is a prefix, so
/// smaller; equal arrays mean one is the other plus zero bytes, so the
/// shorter is smaller). A fixed-size compare, no `memcmp` call: skip-list
/// walks, write-set searches and key-ordered merges compare keys often.
impl Ord for KeyBytes {
    #[inline]
    fn cmp(&self, other: &KeyBytes) -> std::cmp::Ordering {
        match (&self.0, &other.0) {
            (Repr::Inline { len: a, bytes: x }, Repr::Inline { len: b, bytes: y }) => {
                big_endian_words(x).cmp(&big_endian_words(y)).then(a.cmp(b))
            }
            _ => self.as_slice().cmp(other.as_slice()),
        }
    }
}

/// An inline string's padded bytes as two big-endian integers, which
/// order as the bytes do: two loads and byte swaps instead of a byte-wise
/// loop over 22 bytes (what comparing the arrays compiles to).
#[inline]
fn big_endian_words(bytes: &[u8; KeyBytes::INLINE_MAX]) -> (u128, u64) {
    let (mut hi, mut lo) = ([0u8; 16], [0u8; 8]);
    hi.copy_from_slice(&bytes[..16]);
    lo[..KeyBytes::INLINE_MAX - 16].copy_from_slice(&bytes[16..]);
    (u128::from_be_bytes(hi), u64::from_be_bytes(lo))
}

impl Hash for KeyBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl Serialize for KeyBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for KeyBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Vec::<u8>::deserialize(d).map(KeyBytes::from)
    }
}

#[cfg(test)]
mod test {
    use std::sync::Arc;

    use super::KeyBytes;

    /// Inline and heap byte strings compare, order, hash and serialise
    /// exactly like the `Arc<[u8]>` they replace, on both sides of the
    /// inline limit.
    #[test]
    fn key_bytes_behave_like_a_byte_slice() {
        let lens = [0, 1, 21, 22, 23, 64];
        let mut samples: Vec<Vec<u8>> = lens
            .iter()
            .flat_map(|&n| [vec![0u8; n], vec![0xff; n], (0..n as u8).collect()])
            .collect();
        // Equal but for trailing zeros, and prefixes of each other: where
        // the inline form's zero padding could blur the order.
        samples.extend([
            b"a".to_vec(),
            b"a\0".to_vec(),
            b"a\0\0".to_vec(),
            b"a\x01".to_vec(),
            b"ab".to_vec(),
            b"b".to_vec(),
        ]);
        let hash = |b: &dyn Fn(&mut std::hash::DefaultHasher)| {
            let mut h = std::hash::DefaultHasher::new();
            b(&mut h);
            std::hash::Hasher::finish(&h)
        };
        for a in &samples {
            let ka = KeyBytes::from(a.as_slice());
            let arc: Arc<[u8]> = Arc::from(a.as_slice());
            assert_eq!(&*ka, a.as_slice());
            assert_eq!(KeyBytes::from(a.clone()), ka);
            assert_eq!(
                postcard::to_allocvec(&ka).unwrap(),
                postcard::to_allocvec(&arc).unwrap()
            );
            let back: KeyBytes =
                postcard::from_bytes(&postcard::to_allocvec(&ka).unwrap()).unwrap();
            assert_eq!(back, ka);
            assert_eq!(
                hash(&|h| std::hash::Hash::hash(&ka, h)),
                hash(&|h| std::hash::Hash::hash(&arc, h))
            );
            for b in &samples {
                let kb = KeyBytes::from(b.as_slice());
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(ka == kb, a == b);
            }
        }
        assert_eq!(std::mem::size_of::<KeyBytes>(), 24);
    }
}
