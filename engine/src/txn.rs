//! [`Transaction`]: optimistic, snapshot-isolated, with read-your-own-writes.
//!
//! A transaction reads at its start snapshot, buffers its writes, and at
//! commit is validated against the commit versions installed since its
//! start (see `engine.rs` for the commit protocol).

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crossbeam_epoch::Guard;
use parking_lot::MutexGuard;

use crate::chain::BuiltVersion;
use crate::config::Isolation;
use crate::durability::{Durability, wal};
use crate::engine::{CommitState, EngineInner};
use crate::engine::{Snapshot, check_key, check_measured, check_value};
use crate::error::{Error, Result};
use crate::record::{CommitChains, RunCommit};
use crate::store::IndexedChain;
use crate::sync::Ordering;
use crate::types::{Key, RunId, Version};
use crate::value::{Measured, Value, ValueRef};
use crate::write_set::{KeyChain, WriteSet};

/// A key a serializable transaction read from the store, for validation.
enum ReadKey {
    /// Its chain: the key's for as long as the store lives (chains are
    /// never removed), so its newest commit at validation is the key's.
    Found(IndexedChain),
    /// The key had no chain when read: validation looks it up again (a
    /// commit since may have created it).
    Absent(Key),
}

/// An explicit transaction. Dropping it without `commit` rolls it back.
pub struct Transaction {
    snap: Snapshot,
    run: RunId,
    isolation: Isolation,
    /// Keys read from the store (serializable), each by its chain where
    /// it had one, so that validation neither copies nor looks it up again.
    reads: Vec<ReadKey>,
    /// Prefixes scanned (serializable).
    scans: Vec<Key>,
    /// Buffered writes, each with the version it installs and its key's chain.
    writes: WriteSet,
    /// The chain of the first key read from the store: a write of that key
    /// takes it instead of hashing the key and probing the index again (a
    /// read-modify-write,
    /// such as an event append rewriting its log head, writes the key it
    /// read). Sound because a key's chain never changes once it exists:
    /// chains are never removed from the index, and only a committer
    /// holding the commit lock creates one, once per key. One chain, not a
    /// list: the common read-modify-write reads one key, and a list makes
    /// every transaction bigger to move and to drop.
    first_read_chain: Option<IndexedChain>,
    /// [`Store::chains_created`](crate::store::Store::chains_created) as
    /// read before the first probe that found a written key absent: if it
    /// reads the same at commit, no key was created since, and the commit
    /// need not look for the keys it made chains for again.
    absent_since: Option<u64>,
    finished: Option<&'static str>,
    /// Per-transaction override of the database's durability.
    durability: Option<Durability>,
    /// Inside [`Engine::transaction_locked`](crate::Engine::transaction_locked):
    /// the wall-clock time its commit will record. `None` for an optimistic
    /// transaction.
    locked_wall_ms: Option<u64>,
    /// The token this transaction holds the engine's priority with (its
    /// thread kept losing conflicts; `backoff.rs`), 0 if none. Released
    /// when the commit lock is, at rollback, or at drop.
    priority: u64,
}

impl Transaction {
    pub(crate) fn new(
        snap: Snapshot,
        run: RunId,
        isolation: Isolation,
        priority: u64,
    ) -> Transaction {
        Transaction {
            snap,
            run,
            isolation,
            reads: Vec::new(),
            scans: Vec::new(),
            writes: WriteSet::default(),
            first_read_chain: None,
            absent_since: None,
            finished: None,
            durability: None,
            locked_wall_ms: None,
            priority,
        }
    }

    /// Wall-clock milliseconds for a record this transaction writes (such
    /// as an event's time). Inside [`Engine::transaction_locked`](crate::Engine::transaction_locked)
    /// it is exactly the time its commit records (read once, before the
    /// closure ran); in an optimistic transaction it is the clock now (its
    /// commit reads the clock again, later).
    pub fn wall_clock_ms(&self) -> u64 {
        match self.locked_wall_ms {
            Some(ms) => ms,
            None => crate::clock::wall_clock_ms(),
        }
    }

    /// Override the database's durability for this commit: `Strict` waits
    /// for this record (and every one before it) to be synced; `Batched`
    /// and `Async` return once it is buffered and leave the syncing to the
    /// database's own schedule. A strict commit before this one is never
    /// made visible early by it. `InMemory` is refused on a durable engine
    /// (versions are dense: every commit must be in the WAL); on an
    /// in-memory engine every mode is accepted and means nothing.
    pub fn set_durability(&mut self, durability: Durability) -> Result<()> {
        if durability == Durability::InMemory && self.snap.inner.durable.is_some() {
            return Err(Error::InvalidArgument(
                "a commit on a durable engine cannot skip the WAL (Durability::InMemory)".into(),
            ));
        }
        self.durability = Some(durability);
        Ok(())
    }

    /// The version this transaction reads at.
    pub fn start_version(&self) -> Version {
        self.snap.version()
    }

    /// The run this transaction writes for.
    pub fn run(&self) -> RunId {
        self.run
    }

    /// The isolation level.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// True once committed or rolled back.
    pub fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// Number of buffered writes.
    pub fn write_count(&self) -> usize {
        self.writes.len()
    }

    fn active(&self) -> Result<()> {
        match self.finished {
            Some(how) => Err(Error::TransactionFinished(how)),
            None => Ok(()),
        }
    }

    /// The value of `key`: this transaction's own write, else the snapshot's.
    pub fn get(&mut self, key: &Key) -> Result<Option<Value>> {
        self.get_versioned(key).map(|(v, _)| v)
    }

    /// The value of `key` and the commit version it came from. A value this
    /// transaction wrote itself reports version `u64::MAX` (not committed).
    pub fn get_versioned(&mut self, key: &Key) -> Result<(Option<Value>, Version)> {
        self.get_versioned_with(key, |v| v.map(ValueRef::to_value))
    }

    /// Read `key` as [`Transaction::get`] does, and pass the value to `f`
    /// borrowed (`None` if absent or deleted) instead of returning a copy:
    /// see `Snapshot::get_with`. A value this transaction wrote itself is
    /// lent as the version it will install holds it (inline text and bytes
    /// as slices, as a committed one is).
    pub fn get_with<R>(
        &mut self,
        key: &Key,
        f: impl FnOnce(Option<ValueRef<'_>>) -> R,
    ) -> Result<R> {
        self.get_versioned_with(key, f).map(|(r, _)| r)
    }

    /// `f` of the value of `key`, borrowed, and the commit version it came
    /// from (`u64::MAX` for this transaction's own write). Records the read
    /// as every read is.
    fn get_versioned_with<R>(
        &mut self,
        key: &Key,
        f: impl FnOnce(Option<ValueRef<'_>>) -> R,
    ) -> Result<(R, Version)> {
        self.active()?;
        check_key(&self.snap.inner.config, key)?;
        let store = &self.snap.inner.store;
        if let Some(own) = self.writes.get(store, key) {
            return Ok((f(own), Version::MAX));
        }
        let serializable = self.isolation == Isolation::Serializable;
        let keep = serializable || self.first_read_chain.is_none();
        let (read, version, chain) =
            store.read_keeping_chain_with(key, self.snap.version(), keep, f)?;
        if self.first_read_chain.is_none() {
            self.first_read_chain = chain;
        }
        if serializable {
            self.reads.push(match chain {
                Some(chain) => ReadKey::Found(chain),
                None => ReadKey::Absent(key.clone()),
            });
        }
        Ok((read, version))
    }

    /// Live keys with `prefix`, strictly after `after`, in key order, at
    /// most `limit`, merged with this transaction's own writes.
    pub fn scan(
        &mut self,
        prefix: &Key,
        after: Option<&Key>,
        limit: usize,
    ) -> Result<Vec<(Key, Value)>> {
        self.active()?;
        check_key(&self.snap.inner.config, prefix)?;
        if self.isolation == Isolation::Serializable {
            self.scans.push(prefix.clone());
        }
        // Own writes may delete store keys, so over-fetch by their count.
        let store = &self.snap.inner.store;
        let own: Vec<(&Key, Option<ValueRef<'_>>)> = self
            .writes
            .iter(store)
            .filter(|(k, _)| k.has_prefix(prefix) && after.is_none_or(|a| *k > a))
            .collect();
        let fetch = limit.saturating_add(own.len());
        let stored = store.scan_at(prefix, after, self.snap.version(), fetch)?;
        let mut merged: BTreeMap<Key, Value> = stored
            .into_iter()
            .filter(|(k, _, _)| !self.writes.contains_key(store, k))
            .map(|(k, v, _)| (k, v))
            .collect();
        for (k, v) in own {
            if let Some(v) = v {
                merged.insert(k.clone(), v.to_value());
            }
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    /// Buffer a write of `value` to `key`. The key is given owned or
    /// borrowed: the transaction keeps no copy of it (its write names the
    /// key through the key's chain), so a borrowed key is not cloned.
    pub fn put(&mut self, key: impl Borrow<Key>, value: impl Into<Value>) -> Result<()> {
        self.put_measured(key, Measured::new(value.into()))
    }

    /// [`Transaction::put`] of a value measured before: its limits are
    /// checked from the figures it carries, without walking it again.
    #[inline]
    pub fn put_measured(&mut self, key: impl Borrow<Key>, value: Measured) -> Result<()> {
        self.active()?;
        check_measured(&self.snap.inner.config, value.size_bytes(), value.depth())?;
        self.write(key.borrow(), |run| {
            BuiltVersion::new(0, run, Some(value.into_value()))
        })
    }

    /// [`Transaction::put`] of a value lent for the call: text and bytes of
    /// up to [`INLINE_VALUE_BYTES_MAX`](crate::INLINE_VALUE_BYTES_MAX)
    /// are copied once, straight into the version the commit installs,
    /// where `put` of a `&[u8]` or `&str` first copies them into a `Value`
    /// of their own. Longer text and bytes are copied into a `Value` of
    /// their own; any other value is cloned (a reference-count increment).
    pub fn put_ref(&mut self, key: impl Borrow<Key>, value: ValueRef<'_>) -> Result<()> {
        self.active()?;
        let (size, depth) = value.measure();
        check_measured(&self.snap.inner.config, size, depth)?;
        self.write(key.borrow(), |run| BuiltVersion::copied(0, run, value))
    }

    /// Buffer a delete of `key`.
    pub fn delete(&mut self, key: impl Borrow<Key>) -> Result<()> {
        self.active()?;
        self.write(key.borrow(), |run| BuiltVersion::new(0, run, None))
    }

    /// Compare-and-set: write `value` (None deletes) if the commit version
    /// of `key` this transaction sees is `expected` (0 = the key never
    /// existed). A mismatch is `Error::CasMismatch`, nothing buffered. If
    /// another transaction then commits `key` first, this one's commit is
    /// a conflict (the key is in its write set).
    pub fn cas(
        &mut self,
        key: impl Borrow<Key>,
        expected: Version,
        value: Option<Value>,
    ) -> Result<()> {
        let key = key.borrow();
        let (_, current) = self.get_versioned(key)?;
        if current != expected {
            return Err(Error::CasMismatch {
                key: key.to_string(),
                expected,
                current,
            });
        }
        if let Some(v) = &value {
            check_value(&self.snap.inner.config, v)?;
        }
        self.write(key, |run| BuiltVersion::new(0, run, value))
    }

    /// Buffer the version `build` makes (given the run it is written for)
    /// as the write of `key`, once the key and the write count pass their
    /// limits. The first write of a key also finds its chain, or makes one
    /// (before building the version: see `write_set.rs`).
    fn write(&mut self, key: &Key, build: impl FnOnce(RunId) -> BuiltVersion) -> Result<()> {
        let config = &self.snap.inner.config;
        check_key(config, key)?;
        let store = &self.snap.inner.store;
        let max = config.limits.txn_writes_count_max;
        if self.writes.len() >= max && !self.writes.contains_key(store, key) {
            return Err(Error::TooManyWrites {
                count: self.writes.len() + 1,
                max,
            });
        }
        // In a large write set (a bulk load), the key's index slot is sent
        // for first, so that its cache miss overlaps the search of the set
        // instead of following it: W1 +8% to +27% (docs/next-layout.md,
        // session 21). A small set's search is too short to hide it, and
        // the extra instructions cost a put of a few keys more than they
        // save.
        let guard = self.writes.is_large().then(crossbeam_epoch::pin);
        let lookup = guard.as_ref().map(|guard| Lookup {
            digest: store.prefetch(key, guard),
            guard,
        });
        let (first_read, absent_since) = (&mut self.first_read_chain, &mut self.absent_since);
        let run = self.run;
        let chain = |key: &Key| chain_to_write(store, first_read, absent_since, key, lookup);
        self.writes.write(store, key, chain, || build(run));
        Ok(())
    }

    /// End this transaction's hold on the engine's priority, if it has one.
    fn release_priority(&mut self) {
        self.snap
            .inner
            .priority
            .release(std::mem::take(&mut self.priority));
    }

    /// Discard the transaction.
    pub fn rollback(&mut self) -> Result<()> {
        self.active()?;
        self.finished = Some("rolled back");
        self.writes.clear();
        self.release_priority();
        self.snap.release();
        Ok(())
    }

    /// Validate and commit. Returns the commit version, or the start version
    /// for a transaction that wrote nothing (read-only transactions never
    /// abort). On `Err` nothing was installed and the transaction is finished.
    /// Either way the transaction stops holding its start version against
    /// GC: it reads nothing more. Refused inside
    /// [`Engine::transaction_locked`](crate::Engine::transaction_locked):
    /// that transaction's own commit with `Error::InvalidArgument` (it
    /// commits when its closure returns), any other transaction's commit on
    /// the same engine with `Error::ReentrantCommitLock` (it would wait for
    /// the lock the closure holds).
    pub fn commit(&mut self) -> Result<Version> {
        self.active()?;
        if self.locked_wall_ms.is_some() {
            return Err(Error::InvalidArgument(
                "a transaction of Engine::transaction_locked commits when its closure returns"
                    .into(),
            ));
        }
        let outcome = self.try_commit();
        self.release_priority();
        match &outcome {
            Ok(_) => crate::backoff::committed(),
            Err(e) if e.is_conflict() => crate::backoff::conflicted(&self.snap.inner.config.retry),
            Err(_) => {}
        }
        self.snap.release();
        outcome
    }

    fn try_commit(&mut self) -> Result<Version> {
        self.finished = Some("aborted");
        if self.writes.is_empty() {
            self.finished = Some("committed");
            return Ok(self.snap.version());
        }
        // The engine borrowed from the snapshot, not an `Arc` clone: that
        // would be two more atomic writes per commit to a line every
        // committing thread writes (see ARCHITECTURE.md, "Commits on two
        // cores").
        let inner = &*self.snap.inner;
        // Durable engines encode the record before taking the lock.
        let body = encode_if_durable(inner, &self.writes)?;
        let state = inner.lock_commit("Transaction::commit")?;
        check_open(inner)?;
        // One pin for every probe and the install.
        let guard = crossbeam_epoch::pin();
        find_made_chains(&inner.store, self.absent_since, &mut self.writes, &guard);
        if !state.skips_validation() {
            self.validate()?;
        }
        let wall_ms = crate::clock::wall_clock_ms();
        let commit = Commit {
            writes: &mut self.writes,
            finished: &mut self.finished,
            run: self.run,
            durability: self.durability,
            priority: &mut self.priority,
        };
        commit.finish(inner, state, &body, wall_ms, guard)
    }

    /// The commit of a transaction that ran under the commit lock (see
    /// [`run_locked`]): nothing can have been installed since it read, so
    /// there is nothing to validate.
    fn commit_locked(
        &mut self,
        inner: &EngineInner,
        state: MutexGuard<'_, CommitState>,
        wall_ms: u64,
    ) -> Result<Version> {
        self.active()?;
        self.finished = Some("aborted");
        if self.writes.is_empty() {
            self.finished = Some("committed");
            return Ok(self.snap.version());
        }
        let body = encode_if_durable(inner, &self.writes)?;
        // The commit lock was held since the transaction began: no other
        // commit can have created a key it made a chain for.
        let guard = crossbeam_epoch::pin();
        let commit = Commit {
            writes: &mut self.writes,
            finished: &mut self.finished,
            run: self.run,
            durability: self.durability,
            priority: &mut self.priority,
        };
        commit.finish(inner, state, &body, wall_ms, guard)
    }

    /// Checks under the commit lock: no key written (snapshot) — or read or
    /// scanned (serializable) — changed after the start version.
    fn validate(&self) -> Result<()> {
        let start = self.snap.version();
        let store = &self.snap.inner.store;
        let conflict = |key: &Key, current: Version| Error::Conflict {
            key: key.to_string(),
            start,
            current,
        };
        self.writes.try_for_each(store, |key, write| {
            let current = match &write.chain {
                KeyChain::Found(chain) => chain.get(store).newest_commit(),
                KeyChain::Made { .. } => 0,
            };
            match current > start {
                true => Err(conflict(key, current)),
                false => Ok(()),
            }
        })?;
        if self.isolation == Isolation::Serializable {
            for read in &self.reads {
                let (current, key) = match read {
                    ReadKey::Found(chain) => {
                        let chain = chain.get(store);
                        (chain.newest_commit(), chain.key())
                    }
                    ReadKey::Absent(key) => (store.head_commit(key), key),
                };
                if current > start {
                    return Err(conflict(key, current));
                }
            }
            for prefix in &self.scans {
                let (current, key) = store.newest_commit_in(prefix);
                if current > start {
                    return Err(conflict(key.as_ref().unwrap_or(prefix), current));
                }
            }
        }
        Ok(())
    }
}

/// Under the commit lock: look again for the chain of each key a
/// transaction made one for (another commit may have created the key
/// since), so that validation sees it and install uses it. `absent_since`
/// is the transaction's field of that name.
fn find_made_chains(
    store: &crate::store::Store,
    absent_since: Option<u64>,
    writes: &mut WriteSet,
    guard: &Guard,
) {
    if absent_since.is_none_or(|c| c == store.chains_created()) {
        // No chain made, or no key created since they were made.
        return;
    }
    writes.for_each_mut(|write| {
        if let KeyChain::Made { chain, .. } = &write.chain
            && let Some(found) = store.chain_pinned(chain.key(), guard)
        {
            write.chain = KeyChain::Found(found);
        }
    });
}

/// What the commit protocol's locked steps change in a transaction,
/// borrowed apart from its snapshot, so that the engine can be borrowed
/// from the snapshot meanwhile.
struct Commit<'t> {
    writes: &'t mut WriteSet,
    finished: &'t mut Option<&'static str>,
    run: RunId,
    durability: Option<Durability>,
    /// The transaction's priority token (0: none), released once the
    /// commit lock is, before any wait for the disk: others need only not
    /// begin before this commit is installed.
    priority: &'t mut u64,
}

impl Commit<'_> {
    /// Steps 2-6 of the commit protocol, under the commit lock `state`
    /// (validated, or needing no validation): take the version, log
    /// `body` (durable engines), install, publish; then, outside the lock,
    /// wait for the sync (strict) or trigger a flush.
    fn finish(
        mut self,
        inner: &EngineInner,
        mut state: MutexGuard<'_, CommitState>,
        body: &[u8],
        wall_ms: u64,
        guard: Guard,
    ) -> Result<Version> {
        let version = state.last + 1;
        let wall_ms = state.times.record(version, wall_ms);
        let Some(durable) = &inner.durable else {
            self.install(inner, &mut state, version, wall_ms, &guard);
            crate::engine::publish(&inner.visible, version);
            drop(state);
            inner.priority.release(std::mem::take(self.priority));
            // Unpinned first, or the collector cannot advance past it.
            drop(guard);
            *self.finished = Some("committed");
            inner.store.free_retired();
            return Ok(version);
        };
        let mode = self.durability.unwrap_or(durable.mode);
        wal::append_frame(&mut state.wal_buf, version, self.run, wall_ms, body);
        self.install(inner, &mut state, version, wall_ms, &guard);
        // Unpinned before any wait for the disk: a pinned thread holds back
        // every thread's epoch-deferred frees.
        drop(guard);
        if mode == Durability::Strict {
            state.strict_pending.push_back(version);
        }
        inner.publish_ready(&state);
        let buffered = state.wal_buf.len();
        drop(state);
        inner.priority.release(std::mem::take(self.priority));
        inner.store.free_retired();
        // Installed and logged: from here the outcome is decided by the WAL.
        *self.finished = Some("committed");
        durable.after_commit(inner, version, mode, buffered)?;
        Ok(version)
    }

    /// Steps 4-5 of the commit protocol, under the commit lock: install the
    /// writes as chain heads (a chain made for a new key enters the index
    /// here) and index the commit.
    fn install(
        &mut self,
        inner: &EngineInner,
        state: &mut CommitState,
        version: Version,
        wall_ms: u64,
        guard: &Guard,
    ) {
        let count = self.writes.len();
        let indexed = !self.run.is_nil();
        let mut installed = CommitChains::with_capacity(if indexed { count } else { 0 });
        let store = &inner.store;
        self.writes.drain(|mut write| {
            let found = match write.chain {
                KeyChain::Found(chain) => chain,
                KeyChain::Made { chain, digest } => store.insert_made(chain, digest, guard),
            };
            let chain = found.get(store);
            write.version.set_commit(version);
            chain.push_built(write.version, guard);
            if indexed {
                installed.push(found.to_arc());
            }
        });
        // Only commit-lock holders write this count: a load and a store.
        let linked = inner.linked_versions.load(Ordering::Relaxed);
        inner
            .linked_versions
            .store(linked + count as u64, Ordering::Relaxed);
        if indexed {
            let commit = RunCommit::new(version, wall_ms, installed);
            state.runs.entry(self.run).or_default().push(commit);
        }
        state.last = version;
    }
}

/// How [`chain_to_write`] probes the index for a key whose slot
/// `Transaction::write` sent for: with the key's digest, under `guard`.
#[derive(Clone, Copy)]
struct Lookup<'g> {
    digest: u64,
    guard: &'g Guard,
}

/// The chain of `key`, which a transaction is about to write for the
/// first time: the chain its first read kept (`first_read`), or the one in
/// the index (probed with `lookup` if given), or a new one made for it
/// (with `absent_since` set if it is the transaction's first; see
/// [`Transaction`]'s field).
fn chain_to_write(
    store: &crate::store::Store,
    first_read: &mut Option<IndexedChain>,
    absent_since: &mut Option<u64>,
    key: &Key,
    lookup: Option<Lookup<'_>>,
) -> KeyChain {
    if let Some(chain) = first_read.take_if(|c| c.get(store).key() == key) {
        return KeyChain::Found(chain);
    }
    let created = store.chains_created();
    let found = match lookup {
        Some(lookup) => store.chain_or_digest_of(key, lookup.digest, lookup.guard),
        None => store.chain_or_digest(key, &crossbeam_epoch::pin()),
    };
    match found {
        Ok(chain) => KeyChain::Found(chain),
        Err(digest) => {
            absent_since.get_or_insert(created);
            KeyChain::Made {
                chain: store.make_chain(key.clone()),
                digest,
            }
        }
    }
}

/// The WAL payload of `writes` on a durable engine (checked against the
/// record size limit), nothing in memory.
fn encode_if_durable(inner: &EngineInner, writes: &WriteSet) -> Result<Vec<u8>> {
    match inner.durable {
        Some(_) => wal::encode_writes(&writes.serialized(&inner.store)),
        None => Ok(Vec::new()),
    }
}

/// A durable engine refuses commits once closed or poisoned.
fn check_open(inner: &EngineInner) -> Result<()> {
    match &inner.durable {
        Some(durable) => durable.check_open(),
        None => Ok(()),
    }
}

/// [`Engine::transaction_locked`](crate::Engine::transaction_locked): run
/// `f` on a transaction of `run` that reads the newest installed state,
/// holding the commit lock from before the first read until the commit is
/// installed. Only commit-lock holders install, so what `f` read is still
/// the newest state when its writes are installed: no validation, no
/// conflict, no retry. An `Err` from `f` (or from the commit) installs
/// nothing.
pub(crate) fn run_locked<T, E: From<Error>>(
    inner: &Arc<EngineInner>,
    run: RunId,
    f: impl FnOnce(&mut Transaction) -> std::result::Result<T, E>,
) -> std::result::Result<(T, Version), E> {
    let state = inner.lock_commit("Engine::transaction_locked")?;
    check_open(inner)?;
    // Read before `f` runs, so a record `f` writes can carry the exact time
    // its commit records (`Transaction::wall_clock_ms`).
    let wall_ms = state.times.clamped(crate::clock::wall_clock_ms());
    // Unregistered: it reads only chain heads (the newest installed
    // versions), which GC never unlinks, so it pins nothing.
    let snap = Snapshot::unregistered(Arc::clone(inner), state.last);
    let mut txn = Transaction::new(snap, run, Isolation::Snapshot, 0);
    txn.locked_wall_ms = Some(wall_ms);
    let (t, state) = call_locked(inner, state, &mut txn, f)?;
    let version = txn.commit_locked(inner, state, wall_ms)?;
    Ok((t, version))
}

/// `f(txn)` with the commit lock `state` held, which it hands back.
#[cfg(not(feature = "test-hooks"))]
fn call_locked<'a, T, E>(
    inner: &'a EngineInner,
    state: MutexGuard<'a, CommitState>,
    txn: &mut Transaction,
    f: impl FnOnce(&mut Transaction) -> std::result::Result<T, E>,
) -> std::result::Result<(T, MutexGuard<'a, CommitState>), E> {
    let in_closure = inner.closure_thread.enter();
    let t = f(txn)?;
    drop(in_closure);
    Ok((t, state))
}

/// `f(txn)` with the commit lock `state` held, which it hands back; with
/// the planted bug `unlock_locked_closures`, released while `f` runs.
#[cfg(feature = "test-hooks")]
fn call_locked<'a, T, E>(
    inner: &'a EngineInner,
    state: MutexGuard<'a, CommitState>,
    txn: &mut Transaction,
    f: impl FnOnce(&mut Transaction) -> std::result::Result<T, E>,
) -> std::result::Result<(T, MutexGuard<'a, CommitState>), E> {
    if !state.unlock_locked_closures {
        let in_closure = inner.closure_thread.enter();
        let t = f(txn)?;
        drop(in_closure);
        return Ok((t, state));
    }
    drop(state);
    // Widen the window the bug opens, so a test sees it within a few
    // thousand transactions.
    std::thread::yield_now();
    let t = f(txn)?;
    std::thread::yield_now();
    Ok((t, inner.commit.lock()))
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // A transaction dropped unfinished (or whose commit failed) must
        // not leave other threads' begins waiting for its priority.
        self.release_priority();
    }
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("start", &self.snap.version())
            .field("run", &self.run)
            .field("isolation", &self.isolation)
            .field("writes", &self.writes.len())
            .field("finished", &self.finished)
            .finish()
    }
}

#[cfg(test)]
mod test {
    use crate::types::{Key, Namespace, RunId, Scope, TypeTag};
    use crate::value::{Value, ValueRef};
    use crate::{Engine, EngineConfig, Isolation};

    fn key(user: &[u8]) -> Key {
        Key::new(
            Namespace::new("t").unwrap(),
            Scope::Shared,
            TypeTag::Kv,
            user,
        )
    }

    /// A write of a borrowed key keeps no copy of it: the key's family
    /// count is the same after the put, the read of it through the
    /// transaction and the commit as before (the write names the key
    /// through its chain); and what was written is what is read, owned
    /// keys and borrowed ones alike.
    #[test]
    fn a_borrowed_key_is_not_cloned() {
        let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
        let (a, b) = (key(b"a"), key(b"b"));
        let mut load = engine.begin(RunId::NIL, Isolation::Snapshot);
        load.put(a.clone(), 1).unwrap();
        load.put(&b, 2).unwrap();
        load.commit().unwrap();

        let holders = a.family().holders();
        let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
        txn.put_ref(&a, ValueRef::Bytes(b"x")).unwrap();
        txn.delete(&b).unwrap();
        assert_eq!(a.family().holders(), holders, "the put cloned the key");
        let own = txn.get_with(&a, |v| v.map(ValueRef::to_value)).unwrap();
        assert_eq!(own, Some(Value::from(&b"x"[..])));
        assert_eq!(txn.get(&b).unwrap(), None);
        txn.commit().unwrap();
        assert_eq!(a.family().holders(), holders);
        let snap = engine.snapshot();
        assert_eq!(snap.get(&a).unwrap(), Some(Value::from(&b"x"[..])));
        assert_eq!(snap.get(&b).unwrap(), None);
    }

    /// A write set past its small size probes the index with the digest
    /// it sent for the slot with (`Transaction::write`): in one
    /// transaction of 60 writes, the 30 keys that exist get a new version
    /// on their own chain, the 30 that do not get one chain each, and
    /// every key reads back its value as of either commit.
    #[test]
    fn a_large_write_set_finds_old_keys_and_makes_new_ones() {
        let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
        let keys: Vec<Key> = (0..60u32).map(|i| key(&i.to_be_bytes())).collect();
        let mut load = engine.begin(RunId::NIL, Isolation::Snapshot);
        for (i, k) in keys.iter().enumerate().step_by(2) {
            load.put(k, i as i64).unwrap();
        }
        let first = load.commit().unwrap();
        let store = &engine.inner.store;
        assert_eq!(store.chains_created(), 30);

        let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
        for (i, k) in keys.iter().enumerate().rev() {
            txn.put(k, 1000 + i as i64).unwrap();
        }
        assert!(txn.writes.is_large());
        let second = txn.commit().unwrap();
        assert_eq!(
            store.chains_created(),
            60,
            "a chain made for a key that had one"
        );
        let (before, after) = (engine.snapshot_at(first).unwrap(), engine.snapshot());
        for (i, k) in keys.iter().enumerate() {
            let old = (i % 2 == 0).then(|| Value::from(i as i64));
            assert_eq!(before.get(k).unwrap(), old, "key {i} at {first}");
            assert_eq!(
                after.get(k).unwrap(),
                Some(Value::from(1000 + i as i64)),
                "key {i} at {second}"
            );
        }
    }
}
