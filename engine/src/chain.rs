//! [`VersionChain`]: the lock-free, newest-first list of a key's versions.
//!
//! Invariants (checked by `debug_assert!`, loom and proptest):
//! - commit versions strictly decrease along a chain;
//! - a node becomes reachable only fully initialised: it is built in an
//!   `Owned`, then published by a release CAS on `head`;
//! - a node is unlinked only by GC (one at a time, under the GC lock) and is
//!   freed by an epoch-deferred destructor (one per unlinked tail), never
//!   while a reader may hold it.
//!
//! Writers only ever touch `head`; GC only ever touches the `next` of a node
//! it keeps. The two never race on the same word.
//!
//! ## The pruned mark
//! A read that walks past the oldest linked node must tell "the key did not
//! exist then" (`Absent`) from "GC unlinked the versions that would answer"
//! (`Pruned`). The chain's last link says which: GC cuts a tail by swapping
//! the kept node's `next` to a null pointer tagged [`PRUNED`], in the same
//! atomic step as the cut, so a reader that reaches the cut sees the mark
//! with no second word to order against it. Only null links carry the tag.
//! A chain with no node (recovery's chain named by a run index whose
//! versions a checkpoint no longer holds) carries it on `head`, and a push
//! copies it into its node's `next`, so it stays at the end. Nothing else
//! in the chain records pruning: the field this replaced cost 8 bytes per
//! key (ARCHITECTURE.md, "Memory per key").

use crossbeam_epoch::{Atomic, Guard, Owned, Pointer, Shared};

use crate::sync::{AtomicU64, Ordering};
use crate::types::{Key, RunId, Version};
use crate::value::{Value, ValueRef};

/// Tag of a null link past which GC unlinked versions (see the module docs).
/// Version nodes are 8-byte aligned, so the low bits are free.
const PRUNED: usize = 1;

/// A shared handle to a chain: an `Arc` without a weak count (8 bytes of
/// header, not 16), since nothing ever holds a chain weakly. Every key's
/// chain is one of these (ARCHITECTURE.md, "Memory per key").
pub type ChainRef = triomphe::Arc<VersionChain>;

/// Longest text or byte string a version holds inline, after its header,
/// in its own allocation. Longer ones stay behind their `Arc`: an owned
/// read of an inline value copies it (see [`VersionNode::value_owned`]),
/// and above this size a reference-count bump is the cheaper hand-out
/// while the `Arc`'s 16-byte header no longer matters.
pub const INLINE_VALUE_BYTES_MAX: usize = 512;

/// One version of one key: a header ([`NodeHead`]: commit, run, link, what
/// the payload holds) and, in the same allocation, its value's payload:
/// the bytes of inline text or bytes, or a [`Value`] for anything else.
/// A tombstone has no payload. Read the fields through `Deref` (`node.commit`,
/// `node.run`) and the value through [`VersionNode::value`].
///
/// Layout (`repr(C)`): the header, then `payload` at offset
/// `size_of::<NodeHead>()` (40 bytes; a multiple of 8, so a `Value` stored
/// there is aligned). A 100-byte value makes one 140-byte allocation where
/// a node and the value's `Arc<[u8]>` took 56 + 116.
#[repr(C)]
pub struct VersionNode {
    head: NodeHead,
    payload: [u8],
}

/// The fixed part of a [`VersionNode`].
///
/// `repr(C)`, in this order, so that what a point read touches (`commit`,
/// `kind`, `len` and the payload after them) is one run of bytes at the end
/// of the head: with the chain's `key` and `head` at the end of the chain's
/// block (`VersionChain`), a read of a key written once (chain and version
/// allocated back to back) spans two cache lines more often than three.
#[repr(C)]
pub struct NodeHead {
    /// Run that wrote it.
    pub run: RunId,
    next: Atomic<VersionNode>,
    /// Commit version that wrote it.
    pub commit: Version,
    /// What `payload` holds.
    kind: Payload,
    /// Bytes of payload.
    len: u32,
    /// Loom's stand-in for the node's memory: written when the node is
    /// created and when it is destroyed, read on every access through the
    /// chain. Loom reports a read not ordered after the creation (an
    /// unsafely published node) or not ordered before the destruction (a
    /// use after free) as a causality violation.
    #[cfg(loom)]
    shadow: Shadow,
}

/// What a node's payload holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Payload {
    /// Nothing: a delete.
    Tombstone,
    /// UTF-8 text, inline.
    String,
    /// Bytes, inline.
    Bytes,
    /// A `Value`, moved in.
    Value,
}

/// The loom cell behind `NodeHead::shadow`.
#[cfg(loom)]
#[derive(Debug)]
struct Shadow(loom::cell::UnsafeCell<Version>);

// SAFETY: every access goes through loom's `with`/`with_mut`, which report
// any access not ordered with a write; sharing the cell across threads is
// exactly what loom is asked to check.
#[cfg(loom)]
unsafe impl Sync for Shadow {}

impl std::ops::Deref for VersionNode {
    type Target = NodeHead;

    fn deref(&self) -> &NodeHead {
        &self.head
    }
}

impl std::fmt::Debug for VersionNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionNode")
            .field("commit", &self.commit)
            .field("run", &self.run)
            .field("value", &self.value())
            .finish()
    }
}

/// What a node is built from (`Owned::<VersionNode>::init`); made only by
/// the chain.
pub struct NodeInit {
    commit: Version,
    run: RunId,
    value: InitValue,
}

/// The value a node is built from.
enum InitValue {
    /// An owned value (None: a delete), moved in or copied inline.
    Owned(Option<Value>),
    /// Inline text or bytes (`Payload::String` or `Payload::Bytes`, at most
    /// `INLINE_VALUE_BYTES_MAX`) to copy from memory that outlives the
    /// `Owned::init` call (see [`BuiltVersion::copied`], the only maker).
    Copied(Payload, *const u8, usize),
}

impl NodeInit {
    /// The payload kind and length `value` takes.
    fn payload(&self) -> (Payload, usize) {
        match &self.value {
            InitValue::Owned(None) => (Payload::Tombstone, 0),
            InitValue::Owned(Some(Value::String(s))) if s.len() <= INLINE_VALUE_BYTES_MAX => {
                (Payload::String, s.len())
            }
            InitValue::Owned(Some(Value::Bytes(b))) if b.len() <= INLINE_VALUE_BYTES_MAX => {
                (Payload::Bytes, b.len())
            }
            InitValue::Owned(Some(_)) => (Payload::Value, std::mem::size_of::<Value>()),
            InitValue::Copied(kind, _, len) => (*kind, *len),
        }
    }
}

/// The allocation of a node with `len` payload bytes.
fn node_layout(len: usize) -> std::alloc::Layout {
    let size = std::mem::size_of::<NodeHead>() + len;
    // Cannot fail: at most a header plus `INLINE_VALUE_BYTES_MAX` or a
    // `Value`, far below `isize::MAX`, and the alignment is a power of two.
    match std::alloc::Layout::from_size_align(size, std::mem::align_of::<NodeHead>()) {
        Ok(layout) => layout.pad_to_align(),
        Err(_) => unreachable!("node layout of {size} bytes"),
    }
}

/// A version built and not yet in a chain: the node's allocation, its
/// payload copied in. Building is the costly part of a push (an allocation
/// and a copy), so recovery does it on its decoding thread and the
/// installer only links ([`VersionChain::push_built`]).
pub(crate) struct BuiltVersion(Owned<VersionNode>);

impl BuiltVersion {
    /// The version `commit` of `run`, holding `value` (None: a delete).
    #[inline]
    pub(crate) fn new(commit: Version, run: RunId, value: Option<Value>) -> BuiltVersion {
        BuiltVersion(Owned::<VersionNode>::init(VersionNode::init(
            commit, run, value,
        )))
    }

    /// The version `commit` of `run`, holding a copy of `value`: inline
    /// text and bytes are copied straight into the version (recovery
    /// hands slices of the WAL payload), without an allocation of their
    /// own; anything else is made owned first.
    pub(crate) fn copied(commit: Version, run: RunId, value: ValueRef<'_>) -> BuiltVersion {
        let (kind, bytes) = match value {
            ValueRef::String(s) if s.len() <= INLINE_VALUE_BYTES_MAX => {
                (Payload::String, s.as_bytes())
            }
            ValueRef::Bytes(b) if b.len() <= INLINE_VALUE_BYTES_MAX => (Payload::Bytes, b),
            other => return BuiltVersion::new(commit, run, Some(other.to_value())),
        };
        let init = NodeInit {
            commit,
            run,
            value: InitValue::Copied(kind, bytes.as_ptr(), bytes.len()),
        };
        // `init` copies from `bytes`, which this borrow keeps alive until
        // `Owned::init` returns; text came from a `&str`.
        BuiltVersion(Owned::<VersionNode>::init(init))
    }

    /// The version's commit.
    pub(crate) fn commit(&self) -> Version {
        self.0.commit
    }

    /// Give a version built before its commit was known (a transaction's
    /// buffered write, see `write_set.rs`) the commit that installs it.
    /// It is not in any chain yet, so no reader can see the change.
    #[inline]
    pub(crate) fn set_commit(&mut self, commit: Version) {
        self.0.head.commit = commit;
        // Loom's shadow holds the commit a live node reads back.
        // SAFETY: `&mut self` over a node in no chain: no other access.
        #[cfg(loom)]
        self.0.head.shadow.0.with_mut(|p| unsafe { *p = commit });
    }

    /// The value, borrowed; `None` for a tombstone.
    #[inline]
    pub(crate) fn value(&self) -> Option<ValueRef<'_>> {
        self.0.value()
    }

    /// The run that wrote the version.
    pub(crate) fn run(&self) -> RunId {
        self.0.run
    }
}

/// Nodes live in allocations of their own, sized to their payload, so
/// `Atomic<VersionNode>` points at the header (a thin pointer, as any
/// `Atomic`) and `deref` rebuilds the wide reference from the length the
/// header holds.
impl crossbeam_epoch::Pointable for VersionNode {
    const ALIGN: usize = std::mem::align_of::<NodeHead>();
    type Init = NodeInit;

    unsafe fn init(init: NodeInit) -> usize {
        let (kind, len) = init.payload();
        let layout = node_layout(len);
        // SAFETY: the layout has a non-zero size (the header).
        let raw = unsafe { std::alloc::alloc(layout) };
        if raw.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        let head = NodeHead {
            commit: init.commit,
            run: init.run,
            next: Atomic::null(),
            kind,
            len: len as u32,
            #[cfg(loom)]
            shadow: Shadow(loom::cell::UnsafeCell::new(init.commit)),
        };
        // SAFETY: `raw` is a fresh allocation of `layout`: the header at
        // its start (aligned: the layout's alignment is the header's), then
        // `len` payload bytes at offset `size_of::<NodeHead>()`, a multiple
        // of 8 that a `Value` may occupy.
        unsafe {
            raw.cast::<NodeHead>().write(head);
            let payload = raw.add(std::mem::size_of::<NodeHead>());
            match init.value {
                InitValue::Owned(Some(Value::String(s))) if kind == Payload::String => {
                    payload.copy_from_nonoverlapping(s.as_ptr(), len)
                }
                InitValue::Owned(Some(Value::Bytes(b))) if kind == Payload::Bytes => {
                    payload.copy_from_nonoverlapping(b.as_ptr(), len)
                }
                InitValue::Owned(Some(value)) => payload.cast::<Value>().write(value),
                InitValue::Owned(None) => {}
                // `BuiltVersion::copied`'s contract: `len` readable bytes
                // at `from`, valid text if the kind is `String`.
                InitValue::Copied(_, from, _) => payload.copy_from_nonoverlapping(from, len),
            }
        }
        raw as usize
    }

    unsafe fn deref<'a>(ptr: usize) -> &'a VersionNode {
        // SAFETY: the caller's contract: `ptr` came from `init` and is not
        // freed, so a whole header is there, and `len` payload bytes after
        // it. The wide pointer covers exactly the allocation's used part.
        unsafe {
            let len = (*(ptr as *const NodeHead)).len as usize;
            &*(std::ptr::slice_from_raw_parts(ptr as *const u8, len) as *const VersionNode)
        }
    }

    unsafe fn deref_mut<'a>(ptr: usize) -> &'a mut VersionNode {
        // SAFETY: as `deref`, and the caller's contract excludes any other
        // reference to the node.
        unsafe {
            let len = (*(ptr as *const NodeHead)).len as usize;
            &mut *(std::ptr::slice_from_raw_parts_mut(ptr as *mut u8, len) as *mut VersionNode)
        }
    }

    unsafe fn drop(ptr: usize) {
        // SAFETY: the caller's contract: `ptr` came from `init`, nothing
        // else references the node, and it is dropped once. A `Value`
        // payload was written by `init` and is dropped here once; the
        // header is dropped in place (loom poisons its shadow there); then
        // the allocation goes with the layout `init` made it with.
        unsafe {
            let head = ptr as *mut NodeHead;
            let len = (*head).len as usize;
            if (*head).kind == Payload::Value {
                let payload = (ptr as *mut u8).add(std::mem::size_of::<NodeHead>());
                std::ptr::drop_in_place(payload.cast::<Value>());
            }
            std::ptr::drop_in_place(head);
            std::alloc::dealloc(ptr as *mut u8, node_layout(len));
        }
    }
}

impl VersionNode {
    /// The next older version, if any.
    pub fn next<'g>(&self, guard: &'g Guard) -> Option<&'g VersionNode> {
        // SAFETY: nodes are freed only by an epoch-deferred destructor after
        // being unlinked, and `guard` keeps this epoch pinned, so any node reachable
        // while pinned stays allocated for the guard's lifetime.
        let next = unsafe { self.head.next.load(Ordering::Acquire, guard).as_ref() };
        next.map(VersionNode::touched)
    }

    /// What a node is built from.
    pub(crate) fn init(commit: Version, run: RunId, value: Option<Value>) -> NodeInit {
        NodeInit {
            commit,
            run,
            value: InitValue::Owned(value),
        }
    }

    /// The value, borrowed; `None` for a tombstone.
    pub fn value(&self) -> Option<ValueRef<'_>> {
        let bytes = &self.payload;
        match self.head.kind {
            Payload::Tombstone => None,
            // SAFETY: `init` copied these bytes from a `str`.
            Payload::String => Some(ValueRef::String(unsafe {
                std::str::from_utf8_unchecked(bytes)
            })),
            Payload::Bytes => Some(ValueRef::Bytes(bytes)),
            // SAFETY: `init` moved a `Value` to the payload's start (8-byte
            // aligned, see the layout), and only `drop` takes it out.
            Payload::Value => Some(ValueRef::Value(unsafe { &*bytes.as_ptr().cast::<Value>() })),
        }
    }

    /// The value, owned; `None` for a tombstone. Inline text and bytes are
    /// copied into an allocation of their own (at most
    /// [`INLINE_VALUE_BYTES_MAX`] bytes); other values are cloned (a
    /// reference-count bump).
    pub fn value_owned(&self) -> Option<Value> {
        self.value().map(ValueRef::to_value)
    }

    /// Record a read of this node for loom (a no-op otherwise) and return it.
    #[inline(always)]
    fn touched(&self) -> &VersionNode {
        #[cfg(loom)]
        self.check_alive();
        self
    }

    /// Loom only: read the node's shadow cell, as a reader using the node
    /// would read its memory. Panics if the node was already destroyed.
    #[cfg(loom)]
    pub(crate) fn check_alive(&self) {
        // SAFETY: the shadow is only written by `poison` through
        // `with_mut`; loom itself checks that this read is ordered with it.
        let shadow = self.head.shadow.0.with(|p| unsafe { *p });
        assert_eq!(shadow, self.commit, "read a destroyed version node");
    }

    /// Loom tests only: mark the node's memory as gone, as freeing it
    /// would (the planted bug of `truncate_older_than_freeing_at_once`).
    #[cfg(all(test, loom))]
    fn poison(&self) {
        self.head.poison();
    }
}

#[cfg(loom)]
impl NodeHead {
    /// Loom only: mark the node's memory as gone, as freeing it would.
    fn poison(&self) {
        // SAFETY: loom checks that no access to the shadow is concurrent
        // with this write; that check is the point of the shadow.
        self.shadow.0.with_mut(|p| unsafe { *p = Version::MAX });
    }
}

#[cfg(loom)]
impl Drop for NodeHead {
    fn drop(&mut self) {
        // While a loom failure unwinds, loom's cell state is mid-access;
        // touching it again would turn the report into an abort.
        if !std::thread::panicking() {
            self.poison();
        }
    }
}

/// What a read at a version found.
#[derive(Debug, Clone, Copy)]
pub enum ReadAt<'g> {
    /// The newest version at or below the read version.
    Found(&'g VersionNode),
    /// No version at or below: the key did not exist then.
    Absent,
    /// The versions that would answer were unlinked by GC.
    Pruned,
}

/// How [`VersionChain::walk`] ended.
enum Walked<'g> {
    /// At the first node the caller's test accepted.
    Stopped(&'g VersionNode),
    /// Past the oldest linked node; `pruned` if GC unlinked older ones.
    End { pruned: bool },
}

/// A key's versions, newest first.
///
/// `repr(C)`, `newest` first: a point read touches `key` and `head`, and
/// then the head node's last bytes (`NodeHead`); placed last in the block,
/// they sit nearest the node allocated right after the chain.
#[derive(Debug)]
#[repr(C)]
pub struct VersionChain {
    /// Commit version of the newest pushed node (0 = none), kept beside
    /// `head` so commit validation reads it without touching the node (one
    /// cache miss fewer per written key) and without pinning an epoch.
    newest: AtomicU64,
    /// The key whose versions these are. Kept here so the per-run commit
    /// index can name a commit's keys through its chains alone (one
    /// pointer per written key, no key copies, no allocation per commit).
    key: Key,
    /// The newest node; null (tagged [`PRUNED`] if versions were unlinked)
    /// when the chain has none.
    head: Atomic<VersionNode>,
}

impl VersionChain {
    /// An empty chain of `key`.
    pub fn new(key: Key) -> VersionChain {
        VersionChain {
            key,
            head: Atomic::null(),
            newest: AtomicU64::new(0),
        }
    }

    /// The key whose versions these are.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The newest version, whatever its commit.
    pub fn head<'g>(&self, guard: &'g Guard) -> Option<&'g VersionNode> {
        // SAFETY: see `VersionNode::next`: reachable nodes outlive the guard.
        let head = unsafe { self.head.load(Ordering::Acquire, guard).as_ref() };
        head.map(VersionNode::touched)
    }

    /// Commit version of the newest version (0 if empty), read through the
    /// head node as a pinned reader sees it.
    pub fn head_commit(&self, guard: &Guard) -> Version {
        self.head(guard).map_or(0, |n| n.commit)
    }

    /// Commit version of the newest pushed version (0 if none), without
    /// touching any node. Exact for callers that exclude concurrent pushes
    /// (committers under the commit lock, recovery); otherwise it may lag a
    /// push in progress.
    pub fn newest_commit(&self) -> Version {
        self.newest.load(Ordering::Acquire)
    }

    /// Install a new newest version. `commit` must exceed the current head's.
    /// Lock-free: a CAS loop on `head`.
    pub fn push(&self, commit: Version, run: RunId, value: Option<Value>, guard: &Guard) {
        self.push_built(BuiltVersion::new(commit, run, value), guard);
    }

    /// [`VersionChain::push`] of a version built beforehand, possibly on
    /// another thread (recovery builds them while decoding).
    pub(crate) fn push_built(&self, built: BuiltVersion, guard: &Guard) {
        let mut node = built.0;
        let commit = node.commit;
        let mut head = self.head.load(Ordering::Acquire, guard);
        loop {
            // SAFETY: pinned by `guard`; see `VersionNode::next`.
            if let Some(h) = unsafe { head.as_ref() } {
                debug_assert!(h.commit < commit, "chain commits must strictly decrease");
            }
            node.next.store(head, Ordering::Relaxed);
            match self
                .head
                .compare_exchange(head, node, Ordering::AcqRel, Ordering::Acquire, guard)
            {
                Ok(_) => {
                    // Not a read-modify-write: every caller serialises pushes
                    // to a chain (commit lock, recovery), and only they read
                    // `newest`, so a load and a store keep it exact.
                    if commit > self.newest.load(Ordering::Relaxed) {
                        self.newest.store(commit, Ordering::Release);
                    }
                    return;
                }
                Err(e) => {
                    head = e.current;
                    node = e.new;
                }
            }
        }
    }

    /// Loom tests only, a planted bug: `push` without the CAS (load the head,
    /// link to it, store the new head). Two concurrent pushers can both
    /// link to the same head and one version is lost; the loom tests show
    /// that they catch it.
    #[cfg(all(test, loom))]
    pub(crate) fn push_without_cas(
        &self,
        commit: Version,
        run: RunId,
        value: Option<Value>,
        guard: &Guard,
    ) {
        let node = Owned::<VersionNode>::init(VersionNode::init(commit, run, value));
        let head = self.head.load(Ordering::Acquire, guard);
        node.next.store(head, Ordering::Relaxed);
        self.head.store(node, Ordering::Release);
    }

    /// The newest version with `commit <= at`.
    #[inline]
    pub fn read_at<'g>(&self, at: Version, guard: &'g Guard) -> ReadAt<'g> {
        match self.walk(guard, |node| node.commit <= at) {
            Walked::Stopped(node) => ReadAt::Found(node),
            Walked::End { pruned: false } => ReadAt::Absent,
            Walked::End { pruned: true } => ReadAt::Pruned,
        }
    }

    /// Walk the linked versions newest first until `stop` accepts one, or
    /// to the end, reporting the [`PRUNED`] mark on the link that ended it.
    /// The one place that follows links and reads their tag.
    #[inline(always)]
    fn walk<'g>(
        &self,
        guard: &'g Guard,
        mut stop: impl FnMut(&'g VersionNode) -> bool,
    ) -> Walked<'g> {
        let mut link = self.head.load(Ordering::Acquire, guard);
        // SAFETY: pinned by `guard`; see `VersionNode::next`.
        while let Some(node) = unsafe { link.as_ref() }.map(VersionNode::touched) {
            if stop(node) {
                return Walked::Stopped(node);
            }
            link = node.next.load(Ordering::Acquire, guard);
        }
        Walked::End {
            pruned: link.tag() & PRUNED != 0,
        }
    }

    /// The version written by exactly commit `version`: `Some(value)`
    /// (None inside = tombstone), or None if no such version is linked.
    pub fn written_by(&self, version: Version, guard: &Guard) -> Option<Option<Value>> {
        self.iter(guard)
            .find(|n| n.commit <= version)
            .filter(|n| n.commit == version)
            .map(|n| n.value_owned())
    }

    /// Iterate all linked versions, newest first.
    pub fn iter<'g>(&self, guard: &'g Guard) -> impl Iterator<Item = &'g VersionNode> + 'g {
        std::iter::successors(self.head(guard), move |n| n.next(guard))
    }

    /// Every linked version, newest first, and whether versions older than
    /// the last were unlinked (the [`PRUNED`] mark on the link that ended
    /// the walk: one walk, so the answer matches the versions returned even
    /// while GC cuts the chain).
    pub(crate) fn versions_and_pruned<'g>(&self, guard: &'g Guard) -> (Vec<&'g VersionNode>, bool) {
        let mut versions = Vec::new();
        let walked = self.walk(guard, |node| {
            versions.push(node);
            false
        });
        (versions, matches!(walked, Walked::End { pruned: true }))
    }

    /// Recovery only, after the chain's retained versions are pushed and
    /// before any reader sees it: record that older versions were unlinked
    /// (`pruned` is a checkpoint's `pruned_max`, 0 = none), so reads below
    /// the retained ones report `Pruned`.
    pub(crate) fn mark_pruned(&self, pruned: Version, guard: &Guard) {
        if pruned == 0 {
            return;
        }
        let marked = Shared::null().with_tag(PRUNED);
        match self.iter(guard).last() {
            Some(oldest) => oldest.next.store(marked, Ordering::Release),
            None => self.head.store(marked, Ordering::Release),
        }
    }

    /// Unlink every version older than the `keep`-th newest (`keep >= 1`)
    /// and hand them to epoch reclamation. Returns how many were unlinked.
    ///
    /// Only GC calls this, one caller at a time (the GC lock).
    pub fn truncate_after(&self, keep: usize, guard: &Guard) -> usize {
        debug_assert!(keep >= 1);
        match self.iter(guard).nth(keep - 1) {
            Some(last_kept) => self.unlink_tail(last_kept, guard, |_| {}),
            None => 0,
        }
    }

    /// Unlink every version older than the one that answers reads at `at`
    /// (the newest with `commit <= at`), and hand them to epoch
    /// reclamation. Returns how many were unlinked; none if no version is
    /// that old.
    ///
    /// Unlike a position, a commit version names the kept node however many
    /// versions committers push meanwhile, so GC uses this to keep what a
    /// pinned reader needs. Only GC calls this, one caller at a time.
    pub fn truncate_older_than(&self, at: Version, guard: &Guard) -> usize {
        self.truncate_older_than_with(at, guard, |_| {})
    }

    /// Loom tests only, a planted bug: `truncate_older_than` that treats
    /// each unlinked node as freed at once (it poisons the node's shadow
    /// cell at unlink time, as a plain `drop` would free it) instead of
    /// after every pinned reader has left. The loom tests show that they
    /// catch it.
    #[cfg(all(test, loom))]
    pub(crate) fn truncate_older_than_freeing_at_once(&self, at: Version, guard: &Guard) -> usize {
        self.truncate_older_than_with(at, guard, VersionNode::poison)
    }

    /// `truncate_older_than`, calling `on_unlink` on each node it unlinks.
    fn truncate_older_than_with(
        &self,
        at: Version,
        guard: &Guard,
        on_unlink: impl Fn(&VersionNode),
    ) -> usize {
        match self.iter(guard).find(|n| n.commit <= at) {
            Some(last_kept) => self.unlink_tail(last_kept, guard, on_unlink),
            None => 0,
        }
    }

    /// Unlink every node after `last_kept` (a node of this chain), calling
    /// `on_unlink` on each.
    fn unlink_tail(
        &self,
        last_kept: &VersionNode,
        guard: &Guard,
        on_unlink: impl Fn(&VersionNode),
    ) -> usize {
        // Only GC writes a kept node's `next`, so the tail cannot change
        // between this load and the swap below.
        if last_kept.next.load(Ordering::Acquire, guard).is_null() {
            return 0;
        }
        // The cut and the mark in one step: a reader that reaches the cut
        // reports `Pruned`, never `Absent` for a key that had a value.
        let tail = last_kept
            .next
            .swap(Shared::null().with_tag(PRUNED), Ordering::AcqRel, guard);
        let mut unlinked = 0;
        let mut cur = tail;
        // SAFETY: pinned by `guard`; see `VersionNode::next`.
        while let Some(node) = unsafe { cur.as_ref() } {
            on_unlink(node);
            unlinked += 1;
            cur = node.next.load(Ordering::Acquire, guard);
        }
        let tail = tail.with_tag(0).into_usize();
        // One deferred destructor for the whole unlinked tail, not one per
        // version: crossbeam-epoch runs a bounded number of deferred
        // functions per collection, so per-version deferral left millions
        // of nodes waiting after a large GC pass.
        // SAFETY: the tail was just made unreachable from `head`, and only
        // GC writes a `next`, never one of an unlinked node, so the list
        // stays intact until the closure frees it. Readers that still hold
        // a node of it are pinned, and the closure runs only after every
        // such guard is gone. The tail is deferred once: only GC unlinks,
        // one caller at a time. The closure owns the list and touches
        // nothing else, so running it on another thread is sound.
        unsafe {
            guard.defer_unchecked(move || free_list(tail));
        }
        unlinked
    }
}

/// Free a detached list of nodes, following `next`.
///
/// # Safety
/// `head` (a pointer as `Pointer::into_usize` gives it, untagged) is null
/// or the first node of a list no thread can reach any more, whose nodes
/// were allocated by `Owned` and are freed only here.
unsafe fn free_list(head: usize) {
    // SAFETY: the caller's contract: nobody else reads or frees the list.
    unsafe {
        let guard = crossbeam_epoch::unprotected();
        let mut cur = Shared::<VersionNode>::from_usize(head);
        while !cur.is_null() {
            let next = cur.deref().next.load(Ordering::Relaxed, guard);
            drop(cur.into_owned());
            cur = next;
        }
    }
}

impl Drop for VersionChain {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no other thread can reach this chain, so
        // no reader holds any of its nodes and they can be freed at once.
        unsafe {
            let head = self
                .head
                .load(Ordering::Relaxed, crossbeam_epoch::unprotected());
            free_list(head.with_tag(0).into_usize());
        }
    }
}

/// Reclamation, as Miri checks it: these run the chain's unsafe code
/// (publication, the deferred `free_list`, `Drop`) and check that every
/// value is dropped exactly once and only after pinned readers left. Under
/// Miri they also catch a use after free, a double free or a leak:
/// `MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-permissive-provenance" cargo +nightly miri test -p rewinddb-engine --lib chain::tests`
/// (Stacked Borrows flags crossbeam-epoch's own internals, hence Tree
/// Borrows). Each test uses its own epoch `Collector`, so nothing is left
/// in a global one for Miri to report as leaked.
#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used)] // test helpers, not #[test] fns
mod tests {
    use std::sync::Arc;

    use crossbeam_epoch::{Collector, LocalHandle};

    use super::*;
    use crate::types::{Namespace, Scope, TypeTag};

    const RUN: RunId = RunId::from_u128(7);

    fn chain() -> VersionChain {
        let ns = Namespace::new("t").unwrap();
        VersionChain::new(Key::new(ns, Scope::Shared, TypeTag::Kv, "k"))
    }

    /// A value whose references the test can count: longer than
    /// `INLINE_VALUE_BYTES_MAX`, so versions keep it behind its `Arc`.
    fn text(v: Version) -> Arc<str> {
        Arc::from(format!("v{v}{}", "-".repeat(INLINE_VALUE_BYTES_MAX)))
    }

    /// Run every destructor deferred through `handle` that no pinned
    /// reader holds back: garbage is freed two epochs on.
    fn reclaim(handle: &LocalHandle) {
        for _ in 0..4 {
            handle.pin().flush();
        }
    }

    fn commits(chain: &VersionChain, guard: &Guard) -> Vec<Version> {
        chain.iter(guard).map(|n| n.commit).collect()
    }

    #[test]
    fn dropping_a_chain_drops_each_value_once() {
        let (collector, chain) = (Collector::new(), chain());
        let values: Vec<Arc<str>> = (1..=3).map(text).collect();
        let guard = collector.register().pin();
        for (v, value) in (1..=3).zip(&values) {
            chain.push(v, RUN, Some(Value::String(Arc::clone(value))), &guard);
        }
        assert!(values.iter().all(|v| Arc::strong_count(v) == 2));
        drop(chain);
        assert!(values.iter().all(|v| Arc::strong_count(v) == 1));
    }

    #[test]
    fn gc_drops_unlinked_values_only_after_their_readers_leave() {
        let (collector, chain) = (Collector::new(), chain());
        let values: Vec<Arc<str>> = (1..=3).map(text).collect();
        let handle = collector.register();
        for (v, value) in (1..=3).zip(&values) {
            chain.push(
                v,
                RUN,
                Some(Value::String(Arc::clone(value))),
                &handle.pin(),
            );
        }
        let reader = collector.register();
        let pinned = reader.pin();
        let ReadAt::Found(oldest) = chain.read_at(1, &pinned) else {
            panic!("version 1 is linked");
        };
        assert_eq!(chain.truncate_older_than(3, &handle.pin()), 2);
        reclaim(&handle);
        // Still pinned: the unlinked node is whole.
        assert_eq!(oldest.value().and_then(ValueRef::as_str), Some(&*values[0]));
        assert_eq!(Arc::strong_count(&values[0]), 2);
        drop(pinned);
        reclaim(&handle);
        assert_eq!(Arc::strong_count(&values[0]), 1, "version 1 is dropped");
        assert_eq!(Arc::strong_count(&values[1]), 1, "version 2 is dropped");
        assert_eq!(Arc::strong_count(&values[2]), 2, "version 3 is kept");
        let guard = handle.pin();
        chain.push(4, RUN, Some(Value::Int(4)), &guard);
        assert_eq!(commits(&chain, &guard), vec![4, 3]);
        assert!(matches!(chain.read_at(2, &guard), ReadAt::Pruned));
    }

    /// The per-key budget in ARCHITECTURE.md ("Memory per key"): a chain
    /// is its 32-byte key, `head` and `newest` (48, 64 with its `Arc`
    /// counts); a version's header 40, then its payload.
    #[test]
    fn chains_and_versions_keep_their_size() {
        assert_eq!(std::mem::size_of::<VersionChain>(), 48);
        assert_eq!(std::mem::size_of::<NodeHead>(), 40);
        assert_eq!(super::node_layout(100).size(), 144);
        assert_eq!(super::node_layout(0).size(), 40);
    }

    /// Every kind of value reads back equal from its version, borrowed and
    /// owned, at the inline boundary and past it: text and bytes of up to
    /// `INLINE_VALUE_BYTES_MAX` inline, longer ones and everything else as
    /// a `Value`, a delete as none. Under Miri this also checks that each
    /// node's allocation and payload are freed once (the chain's drop).
    #[test]
    fn every_kind_of_value_reads_back_from_its_version() {
        let (collector, chain) = (Collector::new(), chain());
        let max = INLINE_VALUE_BYTES_MAX;
        let values = [
            Some(Value::Bytes(Arc::from(&b""[..]))),
            Some(Value::from("")),
            Some(Value::Bytes(Arc::from(vec![7u8; max]))),
            Some(Value::Bytes(Arc::from(vec![8u8; max + 1]))),
            Some(Value::from("é".repeat(max / 2).as_str())),
            Some(Value::from("x".repeat(max + 1).as_str())),
            None,
            Some(Value::Null),
            Some(Value::Int(-3)),
            Some(Value::Float(f64::NAN)),
            Some(Value::from(vec![Value::from("a"), Value::Int(1)])),
            Some(Value::from(std::collections::BTreeMap::from([(
                "k".to_string(),
                Value::Bool(true),
            )]))),
        ];
        let guard = collector.register().pin();
        for (v, value) in (1..).zip(&values) {
            chain.push(v, RUN, value.clone(), &guard);
        }
        for (v, want) in (1..).zip(&values) {
            let ReadAt::Found(node) = chain.read_at(v, &guard) else {
                panic!("version {v} is linked");
            };
            assert_eq!(node.commit, v);
            assert_eq!(node.run, RUN);
            assert_eq!(&node.value_owned(), want, "version {v}");
            match (node.value(), want) {
                (None, None) => {}
                (Some(got), Some(want)) => {
                    assert_eq!(got, *want, "version {v}");
                    assert_eq!(got.to_value(), *want);
                    let inline = matches!(want, Value::Bytes(b) if b.len() <= max)
                        || matches!(want, Value::String(s) if s.len() <= max);
                    assert_eq!(got.as_value().is_none(), inline, "version {v}");
                }
                (got, want) => panic!("version {v}: {got:?} for {want:?}"),
            }
        }
        drop(guard);
        drop(chain);
    }

    /// Versions built from borrowed text and bytes (recovery's path, from
    /// WAL payload slices) read back as the owned values, inline up to
    /// the boundary and behind an `Arc` past it; the slices they were
    /// copied from may go at once. Under Miri this also checks the copy.
    #[test]
    fn versions_built_from_borrowed_slices_read_back_equal() {
        let (collector, chain) = (Collector::new(), chain());
        let max = INLINE_VALUE_BYTES_MAX;
        let texts = [String::new(), "é".repeat(max / 2), "x".repeat(max + 1)];
        let bytes = [vec![], vec![3u8; max], vec![4u8; max + 1]];
        let mut want = Vec::new();
        let guard = collector.register().pin();
        let mut commit = 0;
        for (text, bytes) in texts.iter().zip(&bytes) {
            for view in [ValueRef::String(text), ValueRef::Bytes(bytes)] {
                commit += 1;
                chain.push_built(BuiltVersion::copied(commit, RUN, view), &guard);
                want.push(view.to_value());
            }
        }
        drop((texts, bytes));
        for (v, want) in (1..).zip(&want) {
            let ReadAt::Found(node) = chain.read_at(v, &guard) else {
                panic!("version {v} is linked");
            };
            assert_eq!(node.value_owned().as_ref(), Some(want), "version {v}");
        }
    }

    /// A version serialises its value exactly as the owned value does (the
    /// checkpoint's form), inline or not.
    #[test]
    fn a_version_serialises_its_value_as_the_owned_value_does() {
        let (collector, chain) = (Collector::new(), chain());
        let values = [
            Some(Value::from("text")),
            Some(Value::Bytes(Arc::from(&[0u8, 255, 7][..]))),
            Some(Value::Bytes(Arc::from(vec![
                1u8;
                INLINE_VALUE_BYTES_MAX + 9
            ]))),
            Some(Value::Int(5)),
            None,
        ];
        let guard = collector.register().pin();
        for (v, value) in (1..).zip(&values) {
            chain.push(v, RUN, value.clone(), &guard);
            let node = chain.head(&guard).unwrap();
            assert_eq!(
                postcard::to_allocvec(&node.value()).unwrap(),
                postcard::to_allocvec(value).unwrap(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn the_pruned_mark_ends_a_cut_chain_and_survives_pushes_and_later_cuts() {
        let (collector, chain) = (Collector::new(), chain());
        let handle = collector.register();
        let guard = handle.pin();
        for v in 2..=4 {
            chain.push(v, RUN, Some(Value::Int(v as i64)), &guard);
        }
        assert!(matches!(chain.read_at(1, &guard), ReadAt::Absent));
        assert!(!chain.versions_and_pruned(&guard).1);
        // Nothing older than the oldest: no cut, no mark.
        assert_eq!(chain.truncate_older_than(2, &guard), 0);
        assert!(matches!(chain.read_at(1, &guard), ReadAt::Absent));
        assert_eq!(chain.truncate_older_than(3, &guard), 1);
        assert!(matches!(chain.read_at(2, &guard), ReadAt::Pruned));
        assert!(matches!(chain.read_at(3, &guard), ReadAt::Found(n) if n.commit == 3));
        chain.push(5, RUN, None, &guard);
        assert_eq!(chain.truncate_after(1, &guard), 2);
        let (versions, pruned) = chain.versions_and_pruned(&guard);
        assert_eq!((versions.len(), pruned), (1, true));
        assert!(matches!(chain.read_at(4, &guard), ReadAt::Pruned));
        drop(guard);
        reclaim(&handle);
    }

    #[test]
    fn recovery_marks_an_empty_or_a_loaded_chain_pruned() {
        let collector = Collector::new();
        let handle = collector.register();
        let guard = handle.pin();
        let empty = chain();
        empty.mark_pruned(0, &guard);
        assert!(matches!(empty.read_at(9, &guard), ReadAt::Absent));
        // A chain named by a run index with no version left: marked on
        // `head`, and pushes keep the mark at the end.
        empty.mark_pruned(3, &guard);
        assert!(matches!(empty.read_at(9, &guard), ReadAt::Pruned));
        empty.push(7, RUN, Some(Value::Int(7)), &guard);
        assert!(matches!(empty.read_at(6, &guard), ReadAt::Pruned));
        assert!(matches!(empty.read_at(7, &guard), ReadAt::Found(_)));
        let loaded = chain();
        loaded.push(4, RUN, Some(Value::Int(4)), &guard);
        loaded.push(6, RUN, Some(Value::Int(6)), &guard);
        loaded.mark_pruned(2, &guard);
        assert!(matches!(loaded.read_at(3, &guard), ReadAt::Pruned));
        assert_eq!(loaded.versions_and_pruned(&guard).0.len(), 2);
        drop(guard);
        drop((empty, loaded));
        reclaim(&handle);
    }

    #[test]
    fn a_chain_dropped_while_its_tail_awaits_reclamation_frees_both_once() {
        let (collector, chain) = (Collector::new(), chain());
        let one = text(1);
        let handle = collector.register();
        let pinned = handle.pin();
        chain.push(1, RUN, Some(Value::String(Arc::clone(&one))), &pinned);
        chain.push(2, RUN, Some(Value::Int(2)), &pinned);
        assert_eq!(chain.truncate_after(1, &pinned), 1);
        // The chain goes while its unlinked tail still waits for the pin:
        // the tail is no longer the chain's to free.
        drop(chain);
        assert_eq!(Arc::strong_count(&one), 2);
        drop(pinned);
        reclaim(&handle);
        assert_eq!(Arc::strong_count(&one), 1);
    }
}
