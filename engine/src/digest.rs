//! [`Digester`]: the point index's key digests.
//!
//! Every point read, every first write of a key in a transaction and every
//! insert digests a key. A key's user bytes are nearly always inline (at
//! most [`KeyBytes::INLINE_MAX`](crate::KeyBytes::INLINE_MAX), zero-padded,
//! so one string has one form): they are read as three words and folded
//! with the family's hash in two multiplications, about 13 instructions
//! inlined, where `foldhash` through `Hash` spent about 27 on its length
//! dispatch and state. Longer keys go through a seeded `foldhash`, out of
//! line.
//!
//! The digest is per store (random seeds) and never persisted: the WAL and
//! checkpoints hold keys, and recovery digests them again.

use std::hash::BuildHasher;

use crate::point_index::digest_for_index;
use crate::types::Key;

/// Digests keys for one store's point index (randomly seeded).
pub(crate) struct Digester {
    seeds: [u64; 4],
    /// For user bytes too long to be inline.
    long: foldhash::fast::FixedState,
}

impl Default for Digester {
    fn default() -> Digester {
        // Fixed under loom: a model must take the same path (the same
        // slots probed) in every execution it explores.
        #[cfg(loom)]
        let seed = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        #[cfg(not(loom))]
        let seed = {
            let random = foldhash::fast::RandomState::default();
            move |i: u64| random.hash_one(i)
        };
        Digester {
            seeds: [seed(0), seed(1), seed(2), seed(3)],
            long: foldhash::fast::FixedState::with_seed(seed(4)),
        }
    }
}

impl Digester {
    /// The digest the point index files `key` under (never 0). Equal keys
    /// have equal digests: the family's hash is equal for equal families,
    /// and equal user bytes have one representation.
    #[inline]
    pub(crate) fn digest(&self, key: &Key) -> u64 {
        let [s0, s1, s2, s3] = self.seeds;
        let user = match key.user().inline_words() {
            Some([w0, w1, w2]) => fold(w0 ^ s0, w1 ^ s1) ^ w2,
            None => self.long_user(key),
        };
        digest_for_index(fold(user ^ s2, key.family().hash_value() ^ s3))
    }

    /// The hash of user bytes too long to be inline: out of line, so that
    /// the inline case, nearly every key, stays small enough to inline
    /// into its callers.
    #[inline(never)]
    fn long_user(&self, key: &Key) -> u64 {
        self.long.hash_one(key.user().as_slice())
    }
}

/// The 128-bit product of `a` and `b`, its halves xor-ed: every bit of the
/// result depends on every bit of both (as `foldhash` mixes).
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod test {
    use std::collections::HashSet;

    use super::Digester;
    use crate::types::{Family, Key, Namespace, Scope, TypeTag};

    fn family(ns: &str, tag: TypeTag) -> Family {
        Family::new(Namespace::new(ns).unwrap(), Scope::Shared, tag)
    }

    /// Equal keys digest alike whatever allocation their family is in, and
    /// keys differing anywhere (a byte in each word, the length, the
    /// family, inline or long) get distinct digests.
    #[test]
    fn equal_keys_agree_and_near_keys_differ() {
        let d = Digester::default();
        let (a, b) = (family("a", TypeTag::Kv), family("a", TypeTag::Kv));
        for user in [&b""[..], b"x", &[7; 16], &[7; 22], &[7; 23], &[9; 200]] {
            assert_eq!(d.digest(&a.key(user)), d.digest(&b.key(user)));
        }
        let mut keys: Vec<Key> = Vec::new();
        let base = [3u8; 22];
        for len in 0..=40 {
            let user: Vec<u8> = (0..len).map(|i| i as u8).collect();
            keys.push(a.key(&user));
            keys.push(family("a", TypeTag::Event).key(&user));
            keys.push(family("b", TypeTag::Kv).key(&user));
        }
        for at in 0..22 {
            let mut user = base;
            user[at] ^= 1;
            keys.push(a.key(user));
        }
        keys.push(a.key(base));
        keys.push(a.key(&base[..21]));
        keys.push(a.key([&base[..21], &[0][..]].concat()));
        let digests: HashSet<u64> = keys.iter().map(|k| d.digest(k)).collect();
        assert_eq!(digests.len(), keys.len());
        assert!(!digests.contains(&0));
    }

    /// The low bits (the ones a table of 2^20 slots uses) spread 1M
    /// sequential keys about as a random function would: no slot index
    /// gets more than a few of them.
    #[test]
    fn low_bits_spread_sequential_keys() {
        let d = Digester::default();
        let f = family("spread", TypeTag::Kv);
        let slots = 1usize << 20;
        let mut counts = vec![0u8; slots];
        for i in 0u64..1 << 20 {
            let at = d.digest(&f.key(i.to_be_bytes())) as usize & (slots - 1);
            counts[at] = counts[at].saturating_add(1);
        }
        let empty = counts.iter().filter(|&&c| c == 0).count() as f64 / slots as f64;
        let most = counts.iter().copied().max().unwrap_or(0);
        // A random function leaves e^-1 = 36.8% empty; the fullest of 2^20
        // slots holds about 9.
        assert!((0.35..0.39).contains(&empty), "{empty}");
        assert!(most <= 14, "{most}");
    }
}
