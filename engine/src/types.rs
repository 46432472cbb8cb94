//! Core types: [`RunId`], [`TypeTag`], [`Namespace`], [`Scope`], [`Family`], [`Key`], [`Version`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

pub use crate::key_bytes::KeyBytes;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A commit version. Dense and strictly increasing; 0 is the empty database.
pub type Version = u64;

/// Longest namespace accepted, in bytes.
pub const NAMESPACE_SIZE_BYTES_MAX: usize = 256;

/// A run's id: 128 bits, time-ordered (UUIDv7 layout), printed like a UUID.
///
/// Held as four `u32` words, most significant first (so the derived order
/// is the numeric order), for 4-byte alignment: a `u128` would be 16-byte
/// aligned and two `u64` halves 8-byte aligned, and either pads a
/// [`Scope`] holding a run id to 24 bytes (and, when a key held its scope
/// inline, the key to 64 bytes instead of 56). With 4 it is a 20-byte
/// scope, held once per [`Family`] (`Scope`'s size is checked by a test).
/// Serialised as the `u128` it stands for (the WAL and checkpoint format).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "u128", into = "u128")]
pub struct RunId {
    words: [u32; 4],
}

impl From<u128> for RunId {
    fn from(v: u128) -> RunId {
        RunId::from_u128(v)
    }
}

impl From<RunId> for u128 {
    fn from(id: RunId) -> u128 {
        id.as_u128()
    }
}

impl RunId {
    /// Writes made outside any run (administration).
    pub const NIL: RunId = RunId::from_u128(0);

    /// A fresh id: 48-bit milliseconds since the epoch, the version nibble 7,
    /// the variant bits, and random bits. Ids made by one process strictly
    /// increase, even within one millisecond.
    pub fn new() -> RunId {
        static LAST: AtomicU64 = AtomicU64::new(0);
        let now_ms = crate::clock::wall_clock_ms() & ((1 << 48) - 1);
        // 48 bits of time + 12 bits of counter in rand_a, monotonic per process.
        let mut prev = LAST.load(Ordering::Relaxed);
        let stamp = loop {
            let candidate = (now_ms << 12).max(prev + 1);
            match LAST.compare_exchange_weak(prev, candidate, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break candidate,
                Err(seen) => prev = seen,
            }
        };
        let ms = (stamp >> 12) as u128;
        let rand_a = (stamp & 0xfff) as u128;
        let rand_b = (fastrand::u64(..) & ((1 << 62) - 1)) as u128;
        RunId::from_u128((ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b)
    }

    /// The id from its 128-bit value.
    pub const fn from_u128(v: u128) -> RunId {
        RunId {
            words: [
                (v >> 96) as u32,
                (v >> 64) as u32,
                (v >> 32) as u32,
                v as u32,
            ],
        }
    }

    /// The 128-bit value.
    pub const fn as_u128(self) -> u128 {
        ((self.hi() as u128) << 64) | self.lo() as u128
    }

    /// The high 64 bits.
    const fn hi(self) -> u64 {
        ((self.words[0] as u64) << 32) | self.words[1] as u64
    }

    /// The low 64 bits.
    const fn lo(self) -> u64 {
        ((self.words[2] as u64) << 32) | self.words[3] as u64
    }

    /// Milliseconds since the Unix epoch encoded in the id.
    pub fn timestamp_ms(self) -> u64 {
        self.hi() >> 16
    }

    /// True for [`RunId::NIL`].
    pub fn is_nil(self) -> bool {
        self.as_u128() == 0
    }
}

impl Default for RunId {
    fn default() -> Self {
        RunId::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.as_u128();
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            v & 0xffff_ffff_ffff
        )
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({self})")
    }
}

impl FromStr for RunId {
    type Err = Error;

    /// Parses the canonical form only: 8-4-4-4-12 hex digits (either case)
    /// separated by dashes, as `Display` prints it.
    fn from_str(s: &str) -> Result<RunId> {
        let bad = || Error::InvalidArgument(format!("not a run id: {s:?}"));
        const DASHES: [usize; 4] = [8, 13, 18, 23];
        let bytes = s.as_bytes();
        if bytes.len() != 36 {
            return Err(bad());
        }
        let mut v: u128 = 0;
        for (i, b) in bytes.iter().enumerate() {
            if DASHES.contains(&i) {
                if *b != b'-' {
                    return Err(bad());
                }
                continue;
            }
            // `to_digit` rather than `from_str_radix`, which would accept a sign.
            let digit = char::from(*b).to_digit(16).ok_or_else(bad)?;
            v = (v << 4) | u128::from(digit);
        }
        Ok(RunId::from_u128(v))
    }
}

/// Which primitive owns a key. Stable forever on disk.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[repr(u8)]
pub enum TypeTag {
    /// Key-value memory.
    Kv = 1,
    /// Event log entries.
    Event = 2,
    /// State machines.
    State = 3,
    /// Trace spans.
    Trace = 4,
    /// Run index records.
    Run = 5,
}

impl TypeTag {
    /// The on-disk byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Parse the on-disk byte.
    pub fn from_u8(b: u8) -> Option<TypeTag> {
        Some(match b {
            1 => TypeTag::Kv,
            2 => TypeTag::Event,
            3 => TypeTag::State,
            4 => TypeTag::Trace,
            5 => TypeTag::Run,
            _ => return None,
        })
    }
}

/// A validated namespace such as `"acme/support-bot"`: non-empty, at most
/// [`NAMESPACE_SIZE_BYTES_MAX`] bytes, no NUL. Cheap to clone.
///
/// Compared by text, but two clones of one namespace compare equal without
/// reading it: every key of an agent usually shares one allocation, and
/// index lookups and ordered inserts compare keys all the time.
///
/// One pointer wide (an `Arc` of the text and its hash, not an
/// `Arc<str>`, whose pointer carries the length too). Keys hold it through
/// their [`Family`], once per family. The text is two hops away, read
/// only to compare different allocations.
///
/// Hashed by a 64-bit hash of its text computed once, when it is created
/// (`NamespaceText`): every key lookup hashes its key, and hashing the
/// text again each time was about a quarter of a point read's
/// instructions.
#[derive(Clone)]
pub struct Namespace(Arc<NamespaceText>);

/// The shared part of a [`Namespace`]: its text and a hash of it.
struct NamespaceText {
    /// `text_hash(&text)`: a function of the text alone, so equal
    /// namespaces hash alike whichever allocation they are in.
    hash: u64,
    text: Box<str>,
}

/// The hash a namespace carries: fixed (not seeded per process or per
/// map), as it is computed before any map sees it; a map's own seeded
/// hasher still mixes it with its seed.
fn text_hash(text: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x6e61_6d65_7370_6163).hash_one(text)
}

impl std::hash::Hash for Namespace {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // A function of the text, as equality is: equal namespaces hash alike.
        state.write_u64(self.text_hash());
    }
}

impl Serialize for Namespace {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        // As the derived form over its text was: the form every WAL and
        // checkpoint holds.
        s.serialize_newtype_struct("Namespace", self.as_str())
    }
}

impl PartialEq for Namespace {
    fn eq(&self, other: &Namespace) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.as_str() == other.as_str()
    }
}

impl Eq for Namespace {}

impl Ord for Namespace {
    fn cmp(&self, other: &Namespace) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Namespace {
    fn partial_cmp(&self, other: &Namespace) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Namespace {
    /// Validate and wrap a namespace.
    pub fn new(s: &str) -> Result<Namespace> {
        let reason = if s.is_empty() {
            Some("empty")
        } else if s.len() > NAMESPACE_SIZE_BYTES_MAX {
            Some("longer than NAMESPACE_SIZE_BYTES_MAX = 256 bytes")
        } else if s.contains('\0') {
            Some("contains NUL")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidNamespace {
                namespace: s.chars().take(64).collect(),
                reason,
            }),
            None => Ok(Namespace(Arc::new(NamespaceText {
                hash: text_hash(s),
                text: Box::from(s),
            }))),
        }
    }

    /// The namespace as text.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The hash of its text, computed when it was created.
    pub(crate) fn text_hash(&self) -> u64 {
        self.0.hash
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Namespace::new(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Whether data outlives runs (`Shared`) or belongs to one run.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Scope {
    /// Memory shared across runs.
    Shared,
    /// A run's own working state, events and traces.
    Run(RunId),
}

/// A key family: namespace, scope and tag, the part shared by every key
/// of one primitive in one namespace and scope (a run's events, an agent's
/// memory). One pointer wide: an `Arc` of the three fields and their hash.
///
/// Compared, ordered and hashed by its fields, never by its allocation, so
/// two families built apart from the same fields are equal. Two clones of
/// one allocation compare equal without reading it. The store keeps one
/// allocation per family for every key it holds (`Store`'s family table),
/// so a stored key costs its family one pointer, not a copy of the fields.
#[derive(Clone)]
pub struct Family(Arc<FamilyFields>);

/// The shared part of a [`Family`].
struct FamilyFields {
    ns: Namespace,
    scope: Scope,
    tag: TypeTag,
    /// A function of the three fields alone (see [`family_hash`]).
    hash: u64,
    /// Made by a store's family table (`Families`), which keeps it for its
    /// keys: a key already holding such an allocation is stored as it is.
    shared: bool,
    /// For any other allocation: the shared one a store first found equal
    /// to it, so that keys made from one handle's family (a primitive's)
    /// find it again without a table lookup.
    shared_as: std::sync::OnceLock<Family>,
}

/// The hash a family carries: the namespace's text hash with scope kind and
/// tag folded in, and the run id for a run scope. Fixed, not seeded, as the
/// namespace's is; the index's seeded hasher still mixes it.
fn family_hash(ns: &Namespace, scope: Scope, tag: TypeTag) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let tag = u64::from(tag.as_u8());
    match scope {
        Scope::Shared => ns.text_hash() ^ tag,
        Scope::Run(run) => {
            let mut h = foldhash::fast::FixedState::with_seed(0x6661_6d69_6c79_0001).build_hasher();
            h.write_u64(ns.text_hash() ^ (1 << 8 | tag));
            h.write_u64(run.hi());
            h.write_u64(run.lo());
            h.finish()
        }
    }
}

impl Family {
    /// The family of keys in `ns`, `scope`, owned by the primitive `tag`.
    pub fn new(ns: Namespace, scope: Scope, tag: TypeTag) -> Family {
        let hash = family_hash(&ns, scope, tag);
        Family(Arc::new(FamilyFields {
            ns,
            scope,
            tag,
            hash,
            shared: false,
            shared_as: std::sync::OnceLock::new(),
        }))
    }

    /// The family of `ns`, `scope`, `tag`: this thread's last one made by
    /// [`Key::new`] if it is equal, else a new one, remembered in its
    /// place.
    fn recent(ns: Namespace, scope: Scope, tag: TypeTag) -> Family {
        let last = LAST_FAMILY.try_with(std::cell::Cell::take).ok().flatten();
        // A replaced family is dropped here, outside the cell.
        let family = Family::reuse_or_new(last, ns, scope, tag);
        // Fails only while the thread's locals are torn down: then the
        // family is simply not remembered.
        let _ = LAST_FAMILY.try_with(|cell| cell.set(Some(family.clone())));
        family
    }

    /// `last` if it is the family of `ns`, `scope`, `tag`, else a new one:
    /// how a run of keys of one family comes to share one allocation
    /// (`Key::new`, and the WAL and checkpoint decoders).
    pub(crate) fn reuse_or_new(
        last: Option<Family>,
        ns: Namespace,
        scope: Scope,
        tag: TypeTag,
    ) -> Family {
        match last {
            Some(f) if f.0.scope == scope && f.0.tag == tag && f.0.ns == ns => f,
            _ => Family::new(ns, scope, tag),
        }
    }

    /// A copy of this family in an allocation of its own, marked as a
    /// store's shared one.
    pub(crate) fn shared_copy(&self) -> Family {
        Family(Arc::new(FamilyFields {
            ns: self.0.ns.clone(),
            scope: self.0.scope,
            tag: self.0.tag,
            hash: self.0.hash,
            shared: true,
            shared_as: std::sync::OnceLock::new(),
        }))
    }

    /// The shared allocation to store keys of this family with, if known
    /// without a lookup: itself if a store's family table made it, else the
    /// one remembered by [`Family::remember_shared`].
    pub(crate) fn known_shared(&self) -> Option<&Family> {
        if self.0.shared {
            return Some(self);
        }
        self.0.shared_as.get()
    }

    /// Remember `shared` (equal to `self`, made by a family table) as the
    /// allocation to store this family's keys with.
    pub(crate) fn remember_shared(&self, shared: &Family) {
        debug_assert!(shared.0.shared && shared == self);
        // Set once: a second store's table may offer another, equally good.
        let _ = self.0.shared_as.set(shared.clone());
    }

    /// A key of this family (no allocation for the family: it is shared).
    pub fn key(&self, user: impl AsRef<[u8]>) -> Key {
        Key {
            family: self.clone(),
            user: KeyBytes::from(user.as_ref()),
        }
    }

    /// The namespace.
    pub fn ns(&self) -> &Namespace {
        &self.0.ns
    }

    /// The scope.
    pub fn scope(&self) -> Scope {
        self.0.scope
    }

    /// The primitive that owns the family's keys.
    pub fn tag(&self) -> TypeTag {
        self.0.tag
    }

    /// True if both are one allocation (then they are equal).
    pub(crate) fn same_allocation(&self, other: &Family) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The hash of namespace, scope and tag (equal families have equal
    /// hashes), computed when the family was made.
    #[inline]
    pub(crate) fn hash_value(&self) -> u64 {
        self.0.hash
    }

    /// The address of this allocation (for comparisons only).
    pub(crate) fn address(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// Tests only: how many keys and families share this allocation.
    #[cfg(test)]
    pub(crate) fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

impl PartialEq for Family {
    fn eq(&self, other: &Family) -> bool {
        self.same_allocation(other)
            || (self.0.hash == other.0.hash
                && self.0.tag == other.0.tag
                && self.0.scope == other.0.scope
                && self.0.ns == other.0.ns)
    }
}

impl Eq for Family {}

impl Ord for Family {
    /// By namespace, then scope, then tag.
    fn cmp(&self, other: &Family) -> std::cmp::Ordering {
        if self.same_allocation(other) {
            return std::cmp::Ordering::Equal;
        }
        (&self.0.ns, self.0.scope, self.0.tag).cmp(&(&other.0.ns, other.0.scope, other.0.tag))
    }
}

impl PartialOrd for Family {
    fn partial_cmp(&self, other: &Family) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Family {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

/// `namespace/scope/tag`, as a key prints before its user bytes.
impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{:?}",
            self.ns(),
            ScopeText(self.scope()),
            self.tag()
        )
    }
}

impl fmt::Debug for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Family({self})")
    }
}

/// A scope as keys print it: `shared` or `run:<id>`.
struct ScopeText(Scope);

impl fmt::Display for ScopeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Scope::Shared => f.write_str("shared"),
            Scope::Run(r) => write!(f, "run:{r}"),
        }
    }
}

/// A key: ordered by (namespace, scope, tag, user bytes), so one
/// namespace + scope + tag is one contiguous range. Cheap to clone.
///
/// Held as its [`Family`] (one pointer) and its user bytes: 32 bytes, where
/// the four fields side by side took 56. Every key ever written is kept in
/// its version chain, so this is 24 bytes less per key (ARCHITECTURE.md,
/// "Memory per key"). Serialised as the four fields in order (the form
/// every WAL and checkpoint holds).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    family: Family,
    user: KeyBytes,
}

/// Hashed by the family's hash and the user bytes (without a length
/// prefix, as the last field): two hasher calls. For callers' maps of
/// keys; the point index digests keys its own way (`digest.rs`).
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.family.0.hash);
        state.write(&self.user);
    }
}

/// The serialised form: the four fields in order, as the derived form of
/// the struct that held them side by side wrote them.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Key")]
struct KeyFields {
    ns: Namespace,
    scope: Scope,
    tag: TypeTag,
    user: KeyBytes,
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Key", 4)?;
        st.serialize_field("ns", self.ns())?;
        st.serialize_field("scope", &self.scope())?;
        st.serialize_field("tag", &self.tag())?;
        st.serialize_field("user", &self.user)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let f = KeyFields::deserialize(d)?;
        // Decoded keys come in runs of one family too (see `Key::new`).
        Ok(Family::recent(f.ns, f.scope, f.tag).key_from(f.user))
    }
}

impl Family {
    /// A key of this family over bytes already held (no copy).
    pub fn key_from(&self, user: KeyBytes) -> Key {
        Key {
            family: self.clone(),
            user,
        }
    }
}

thread_local! {
    /// The family [`Key::new`] made last on this thread: the next key of
    /// the same namespace, scope and tag shares it instead of allocating
    /// its own. Keys are mostly built in runs of one family (a loop over
    /// one namespace), and a shared family is also what a clone of the key
    /// touches and what a store recognises without a table lookup. At 1M
    /// keys built with `Key::new` (`examples/key_building`): a bulk
    /// load 500 -> 398-401 ns per key and a random single-key put
    /// transaction 822-888 -> 611-657 ns, against 386-424 and 611-647
    /// with `Family::key`; building a key costs the same as before (35 ns,
    /// 16 with `Family::key`).
    static LAST_FAMILY: std::cell::Cell<Option<Family>> = const { std::cell::Cell::new(None) };
}

impl Key {
    /// Build a key. Its family (namespace, scope and tag) is the one the
    /// last `Key::new` on this thread made, if equal, else a new
    /// allocation (which the next keys then share); [`Family::key`] shares
    /// one explicitly.
    pub fn new(ns: Namespace, scope: Scope, tag: TypeTag, user: impl AsRef<[u8]>) -> Key {
        Family::recent(ns, scope, tag).key(user)
    }

    /// The family: namespace, scope and tag.
    pub fn family(&self) -> &Family {
        &self.family
    }

    /// The namespace.
    pub fn ns(&self) -> &Namespace {
        self.family.ns()
    }

    /// The scope.
    pub fn scope(&self) -> Scope {
        self.family.scope()
    }

    /// The primitive that owns the key.
    pub fn tag(&self) -> TypeTag {
        self.family.tag()
    }

    /// The primitive's own key bytes.
    pub fn user(&self) -> &KeyBytes {
        &self.user
    }

    /// The same key with its family held in `family`, which must be equal
    /// to its own (the store's shared allocation).
    pub(crate) fn with_family(self, family: Family) -> Key {
        debug_assert!(family == self.family);
        Key {
            family,
            user: self.user,
        }
    }

    /// The size this key counts against `key_size_bytes_max`: its user bytes.
    #[inline]
    pub fn size_bytes(&self) -> usize {
        self.user.len()
    }

    /// True if `self` lies in the range of `prefix`: same namespace, scope
    /// and tag, and user bytes starting with `prefix.user`.
    pub fn has_prefix(&self, prefix: &Key) -> bool {
        self.family == prefix.family && self.user.starts_with(&prefix.user)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.family, String::from_utf8_lossy(&self.user))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

#[cfg(test)]
mod test {
    use super::{Key, Namespace, RunId, Scope, TypeTag};

    /// `Key::new` on one thread shares a family between consecutive keys
    /// of one namespace, scope and tag, and makes a new one when any of
    /// them changes; keys compare, order and hash by their fields either
    /// way. Fails if a key takes another family's allocation.
    #[test]
    fn consecutive_keys_of_one_family_share_its_allocation() {
        let (a, b) = (Namespace::new("a").unwrap(), Namespace::new("b").unwrap());
        let key = |ns: &Namespace, scope, tag, user: &str| Key::new(ns.clone(), scope, tag, user);
        let k1 = key(&a, Scope::Shared, TypeTag::Kv, "1");
        let k2 = key(&a, Scope::Shared, TypeTag::Kv, "2");
        assert!(k1.family().same_allocation(k2.family()));
        // An equal namespace in another allocation is the same family.
        let a_again = Namespace::new("a").unwrap();
        let k3 = key(&a_again, Scope::Shared, TypeTag::Kv, "3");
        assert!(k3.family().same_allocation(k1.family()));
        let others = [
            key(&b, Scope::Shared, TypeTag::Kv, "1"),
            key(&a, Scope::Run(RunId::from_u128(7)), TypeTag::Kv, "1"),
            key(&a, Scope::Shared, TypeTag::Event, "1"),
        ];
        for other in &others {
            assert!(!other.family().same_allocation(k1.family()), "{other}");
            assert_ne!(other, &k1);
        }
        // Back to the first family: equal to it, in a new allocation.
        let k4 = key(&a, Scope::Shared, TypeTag::Kv, "1");
        assert_eq!(k4, k1);
        assert_eq!(k4.cmp(&k1), std::cmp::Ordering::Equal);
        assert_eq!(k4.family().hash_value(), k1.family().hash_value());
        assert_eq!(k4.family().ns(), &a);
        assert_eq!(k4.family().scope(), Scope::Shared);
        assert_eq!(k4.family().tag(), TypeTag::Kv);
        // Another thread has its own.
        let there = std::thread::spawn(move || Key::new(a, Scope::Shared, TypeTag::Kv, "5"))
            .join()
            .unwrap();
        assert!(!there.family().same_allocation(k4.family()));
        assert_eq!(there.family(), k4.family());
    }
}
