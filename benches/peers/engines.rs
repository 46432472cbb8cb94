//! Every engine of the comparison behind one trait, [`Contender`].
//!
//! Each contender is built over the same key table (16-byte keys generated
//! before timing) and converts it into its own key type once, at open, so a
//! timed operation only indexes into that table. Values are 100 bytes whose
//! first 8 bytes carry a stamp (a counter), which the snapshot and
//! read-modify-write workloads check.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rewinddb_engine as rw;

use crate::{Key16, Res};

/// Durability of the commits a contender makes. The mapping per engine:
/// strict = redb `Immediate` / fjall `SyncData` / surrealkv `Immediate`;
/// async = redb `None` / fjall no persist (`None`) / surrealkv `Eventual`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No fsync promise (the in-memory engines have none at all).
    Async,
    /// Acknowledged only after fsync.
    Strict,
}

/// One engine under test.
pub trait Contender: Send + Sync {
    /// Display name, including its configuration.
    fn name(&self) -> String;
    /// True for engines with transactions and snapshots; false for the
    /// non-transactional ceilings.
    fn transactional(&self) -> bool;
    /// Write `keys[range]` with `value` in one transaction (bulk load).
    fn load(&self, range: std::ops::Range<usize>, value: &[u8]) -> Res<()>;
    /// A read view: a snapshot for transactional engines, the live map for
    /// the ceilings.
    fn reader(&self) -> Res<Box<dyn Reader + '_>>;
    /// One single-key read transaction: the stamp of `keys[i]`.
    fn get_txn(&self, i: usize) -> Res<Option<u64>> {
        self.reader()?.get(i)
    }
    /// One transaction reading `reads` and writing `value` to `writes`.
    /// `Ok(false)` is a conflict (nothing written).
    fn txn(&self, reads: &[usize], writes: &[usize], value: &[u8]) -> Res<bool>;
    /// One transaction incrementing the stamp of `keys[i]`. `Ok(false)` is a
    /// conflict.
    fn rmw(&self, i: usize) -> Res<bool>;
    /// Make every commit so far durable (W8's batched emulation for the
    /// peers, which have no batched mode; see `durable.rs`).
    fn sync(&self) -> Res<()> {
        Err(format!("{} has no explicit sync", self.name()).into())
    }
    /// The rewinddb contender, for its GC (W10).
    fn as_rewind(&self) -> Option<&Rewind> {
        None
    }
}

/// Point reads at one consistent view.
pub trait Reader {
    /// The stamp of `keys[i]`, or `None` if absent.
    fn get(&self, i: usize) -> Res<Option<u64>>;
}

/// The stamp carried by a value.
pub fn stamp_of(value: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = value.len().min(8);
    b[..n].copy_from_slice(&value[..n]);
    u64::from_le_bytes(b)
}

/// `value` with its first 8 bytes replaced by `stamp`.
pub fn with_stamp(value: &[u8], stamp: u64) -> Vec<u8> {
    let mut v = value.to_vec();
    v[..8].copy_from_slice(&stamp.to_le_bytes());
    v
}

// ---------------------------------------------------------------- rewinddb

/// rewinddb, in memory (default config: snapshot isolation, keep all history).
pub struct Rewind {
    engine: rw::Engine,
    keys: Vec<rw::Key>,
    label: &'static str,
    /// W10: build each loaded key afresh (as a caller would) instead of
    /// sharing the pre-built table's key bytes, so the heap count is honest.
    fresh_from: Option<Arc<[Key16]>>,
}

impl Rewind {
    /// An in-memory engine over `keys`.
    pub fn in_memory(keys: &[Key16], config: rw::EngineConfig) -> Res<Rewind> {
        Rewind::over(rw::Engine::open_in_memory(config)?, keys, "rewinddb")
    }

    /// Wrap an opened engine.
    pub fn over(engine: rw::Engine, keys: &[Key16], label: &'static str) -> Res<Rewind> {
        // Keys made from the engine's family, as its primitives make theirs
        // (`Engine::family`): one shared allocation for the family of all.
        let ns = rw::Namespace::new("bench")?;
        let family = engine.family(ns, rw::Scope::Shared, rw::TypeTag::Kv);
        let keys = keys.iter().map(|k| family.key(k)).collect();
        Ok(Rewind {
            engine,
            keys,
            label,
            fresh_from: None,
        })
    }

    /// An in-memory engine whose `load` builds every key afresh (W10).
    pub fn fresh_keys(keys: Arc<[Key16]>, config: rw::EngineConfig) -> Res<Rewind> {
        let mut this = Rewind::in_memory(&keys, config)?;
        this.fresh_from = Some(keys);
        Ok(this)
    }

    /// The engine.
    pub fn engine(&self) -> &rw::Engine {
        &self.engine
    }

    fn begin(&self) -> rw::Transaction {
        self.engine.begin(rw::RunId::NIL, rw::Isolation::Snapshot)
    }
}

/// The stamp of a value read borrowed (`get_with`), as redb's
/// `AccessGuard` and scc's `peek_with` are read.
fn rw_stamp(v: Option<rw::ValueRef<'_>>) -> Option<u64> {
    v.map(|v| v.as_bytes().map_or(0, stamp_of))
}

/// `Ok(false)` for a conflict, the error otherwise.
fn rw_committed(r: rw::Result<rw::Version>) -> Res<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.is_conflict() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

struct RewindReader<'a> {
    snap: rw::Snapshot,
    keys: &'a [rw::Key],
}

impl Reader for RewindReader<'_> {
    fn get(&self, i: usize) -> Res<Option<u64>> {
        Ok(self.snap.get_with(&self.keys[i], rw_stamp)?)
    }
}

impl Contender for Rewind {
    fn name(&self) -> String {
        self.label.to_string()
    }
    fn as_rewind(&self) -> Option<&Rewind> {
        Some(self)
    }
    fn transactional(&self) -> bool {
        true
    }
    fn load(&self, range: std::ops::Range<usize>, value: &[u8]) -> Res<()> {
        let mut txn = self.begin();
        for i in range {
            let key = match &self.fresh_from {
                Some(raw) => self.keys[i].family().key(raw[i]),
                None => self.keys[i].clone(),
            };
            txn.put_ref(key, rw::ValueRef::Bytes(value))?;
        }
        txn.commit()?;
        Ok(())
    }
    fn reader(&self) -> Res<Box<dyn Reader + '_>> {
        Ok(Box::new(RewindReader {
            snap: self.engine.snapshot(),
            keys: &self.keys,
        }))
    }
    fn get_txn(&self, i: usize) -> Res<Option<u64>> {
        let mut txn = self.begin();
        let stamp = txn.get_with(&self.keys[i], rw_stamp)?;
        txn.commit()?;
        Ok(stamp)
    }
    fn txn(&self, reads: &[usize], writes: &[usize], value: &[u8]) -> Res<bool> {
        let mut txn = self.begin();
        for &i in reads {
            std::hint::black_box(txn.get_with(&self.keys[i], rw_stamp)?);
        }
        for &i in writes {
            txn.put_ref(&self.keys[i], rw::ValueRef::Bytes(value))?;
        }
        rw_committed(txn.commit())
    }
    fn rmw(&self, i: usize) -> Res<bool> {
        let mut txn = self.begin();
        let key = &self.keys[i];
        // The old value borrowed, the new one built from it (one copy, as
        // every engine here makes).
        let next = txn.get_with(key, |old| {
            let bytes = old.and_then(|v| v.as_bytes()).unwrap_or(&[0; 100]);
            with_stamp(bytes, stamp_of(bytes) + 1)
        })?;
        txn.put_ref(key, rw::ValueRef::Bytes(&next))?;
        rw_committed(txn.commit())
    }
}

// ---------------------------------------------------------------- redb

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("kv");

/// redb, on its in-memory backend or a file. redb has one writer at a time,
/// so its write transactions never conflict; they queue.
pub struct Redb {
    db: redb::Database,
    keys: Arc<[Key16]>,
    durability: redb::Durability,
    label: String,
}

impl Redb {
    /// redb on `redb::backends::InMemoryBackend`.
    pub fn in_memory(keys: Arc<[Key16]>) -> Res<Redb> {
        let db =
            redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Redb::init(db, keys, Mode::Async, "redb (in-memory)".into())
    }

    /// redb in a file under `dir`, with a page cache of `cache_bytes`.
    pub fn file(keys: Arc<[Key16]>, dir: &Path, mode: Mode, cache_bytes: usize) -> Res<Redb> {
        let db = redb::Database::builder()
            .set_cache_size(cache_bytes)
            .create(dir.join("redb.db"))?;
        Redb::init(db, keys, mode, format!("redb (file, {})", mode_name(mode)))
    }

    fn init(db: redb::Database, keys: Arc<[Key16]>, mode: Mode, label: String) -> Res<Redb> {
        let durability = match mode {
            Mode::Async => redb::Durability::None,
            Mode::Strict => redb::Durability::Immediate,
        };
        let this = Redb {
            db,
            keys,
            durability,
            label,
        };
        // Create the table so readers can open it before the first load.
        this.write(|_| Ok(()))?;
        Ok(this)
    }

    fn write(&self, f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>) -> Res<()>) -> Res<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(self.durability)?;
        {
            let mut table = tx.open_table(REDB_TABLE)?;
            f(&mut table)?;
        }
        tx.commit()?;
        Ok(())
    }
}

struct RedbReader<'a> {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    keys: &'a [Key16],
}

impl Reader for RedbReader<'_> {
    fn get(&self, i: usize) -> Res<Option<u64>> {
        Ok(self
            .table
            .get(&self.keys[i][..])?
            .map(|v| stamp_of(v.value())))
    }
}

impl Contender for Redb {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn sync(&self) -> Res<()> {
        // redb persists every earlier `Durability::None` commit with the
        // next `Immediate` one; an empty one is the cheapest.
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?;
        tx.commit()?;
        Ok(())
    }
    fn transactional(&self) -> bool {
        true
    }
    fn load(&self, range: std::ops::Range<usize>, value: &[u8]) -> Res<()> {
        self.write(|t| {
            for k in &self.keys[range] {
                t.insert(&k[..], value)?;
            }
            Ok(())
        })
    }
    fn reader(&self) -> Res<Box<dyn Reader + '_>> {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read()?;
        Ok(Box::new(RedbReader {
            table: tx.open_table(REDB_TABLE)?,
            keys: &self.keys,
        }))
    }
    fn txn(&self, reads: &[usize], writes: &[usize], value: &[u8]) -> Res<bool> {
        use redb::ReadableTable;
        self.write(|t| {
            for &i in reads {
                std::hint::black_box(t.get(&self.keys[i][..])?.map(|v| stamp_of(v.value())));
            }
            for &i in writes {
                t.insert(&self.keys[i][..], value)?;
            }
            Ok(())
        })?;
        Ok(true)
    }
    fn rmw(&self, i: usize) -> Res<bool> {
        use redb::ReadableTable;
        self.write(|t| {
            let k = &self.keys[i][..];
            let next = match t.get(k)? {
                Some(v) => with_stamp(v.value(), stamp_of(v.value()) + 1),
                None => with_stamp(&[0; 100], 1),
            };
            t.insert(k, &next[..])?;
            Ok(())
        })?;
        Ok(true)
    }
}

// ---------------------------------------------------------------- fjall

/// fjall with optimistic transactions.
pub struct Fjall {
    db: fjall::OptimisticTxDatabase,
    ks: fjall::OptimisticTxKeyspace,
    keys: Arc<[Key16]>,
    persist: Option<fjall::PersistMode>,
    label: String,
}

impl Fjall {
    /// fjall in `dir`; `cache_bytes = None` keeps fjall's default cache.
    pub fn open(
        keys: Arc<[Key16]>,
        dir: &Path,
        mode: Mode,
        cache_bytes: Option<u64>,
    ) -> Res<Fjall> {
        let mut builder = fjall::OptimisticTxDatabase::builder(dir.join("fjall"));
        let cache = match cache_bytes {
            Some(b) => {
                builder = builder.cache_size(b);
                "cache = data"
            }
            None => "default cache",
        };
        let db = builder.open()?;
        let ks = db.keyspace("kv", fjall::KeyspaceCreateOptions::default)?;
        let persist = match mode {
            Mode::Async => None,
            Mode::Strict => Some(fjall::PersistMode::SyncData),
        };
        Ok(Fjall {
            db,
            ks,
            keys,
            persist,
            label: format!("fjall ({cache}, {})", mode_name(mode)),
        })
    }

    fn commit(&self, tx: fjall::OptimisticWriteTx) -> Res<bool> {
        Ok(tx.commit()?.is_ok())
    }
}

struct FjallReader<'a> {
    snap: fjall::Snapshot,
    f: &'a Fjall,
}

impl Reader for FjallReader<'_> {
    fn get(&self, i: usize) -> Res<Option<u64>> {
        use fjall::Readable;
        Ok(self
            .snap
            .get(&self.f.ks, self.f.keys[i])?
            .map(|v| stamp_of(&v)))
    }
}

impl Contender for Fjall {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn sync(&self) -> Res<()> {
        self.db.persist(fjall::PersistMode::SyncData)?;
        Ok(())
    }
    fn transactional(&self) -> bool {
        true
    }
    fn load(&self, range: std::ops::Range<usize>, value: &[u8]) -> Res<()> {
        let mut tx = self.db.write_tx()?.durability(self.persist);
        for k in &self.keys[range] {
            tx.insert(&self.ks, &k[..], value);
        }
        self.commit(tx)?;
        Ok(())
    }
    fn reader(&self) -> Res<Box<dyn Reader + '_>> {
        Ok(Box::new(FjallReader {
            snap: self.db.read_tx(),
            f: self,
        }))
    }
    fn txn(&self, reads: &[usize], writes: &[usize], value: &[u8]) -> Res<bool> {
        use fjall::Readable;
        let mut tx = self.db.write_tx()?.durability(self.persist);
        for &i in reads {
            std::hint::black_box(tx.get(&self.ks, self.keys[i])?);
        }
        for &i in writes {
            tx.insert(&self.ks, &self.keys[i][..], value);
        }
        self.commit(tx)
    }
    fn rmw(&self, i: usize) -> Res<bool> {
        use fjall::Readable;
        let mut tx = self.db.write_tx()?.durability(self.persist);
        let k = &self.keys[i][..];
        let next = match tx.get(&self.ks, k)? {
            Some(v) => with_stamp(&v, stamp_of(&v) + 1),
            None => with_stamp(&[0; 100], 1),
        };
        tx.insert(&self.ks, k, next);
        self.commit(tx)
    }
}

// ---------------------------------------------------------------- surrealkv

/// surrealkv, its async commit driven by a tokio runtime.
pub struct SurrealKv {
    tree: Option<surrealkv::Tree>,
    rt: tokio::runtime::Runtime,
    keys: Arc<[Key16]>,
    durability: surrealkv::Durability,
    label: String,
}

impl SurrealKv {
    /// surrealkv in `dir` with a block cache of `cache_bytes`.
    pub fn open(keys: Arc<[Key16]>, dir: &Path, mode: Mode, cache_bytes: u64) -> Res<SurrealKv> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let tree = {
            let _in_rt = rt.enter();
            surrealkv::TreeBuilder::new()
                .with_path(dir.join("surrealkv"))
                .with_block_cache_capacity(cache_bytes)
                .build()?
        };
        let durability = match mode {
            Mode::Async => surrealkv::Durability::Eventual,
            Mode::Strict => surrealkv::Durability::Immediate,
        };
        Ok(SurrealKv {
            tree: Some(tree),
            rt,
            keys,
            durability,
            label: format!("surrealkv ({})", mode_name(mode)),
        })
    }

    fn tree(&self) -> Res<&surrealkv::Tree> {
        self.tree.as_ref().ok_or_else(|| "surrealkv closed".into())
    }

    fn begin(&self) -> Res<surrealkv::Transaction> {
        let mut tx = self.tree()?.begin()?;
        tx.set_durability(self.durability);
        Ok(tx)
    }

    fn commit(&self, mut tx: surrealkv::Transaction) -> Res<bool> {
        match self.rt.block_on(tx.commit()) {
            Ok(()) => Ok(true),
            Err(surrealkv::Error::TransactionWriteConflict) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// How long dropping a surrealkv instance waits for its `close`.
const SURREAL_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Drop for SurrealKv {
    fn drop(&mut self) {
        if let Some(tree) = self.tree.take() {
            // Bounded: one close in a session-17 `--only W6` run never
            // returned (every thread parked, the main one in `close`), and
            // a hung close would stop the whole run.
            // (The timer must be made inside the runtime.)
            let close = async { tokio::time::timeout(SURREAL_CLOSE_TIMEOUT, tree.close()).await };
            match self.rt.block_on(close) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("surrealkv close: {e}"),
                Err(_) => eprintln!(
                    "surrealkv close: no answer in {SURREAL_CLOSE_TIMEOUT:?}; left unclosed"
                ),
            }
        }
    }
}

struct SurrealReader<'a> {
    tx: surrealkv::Transaction,
    keys: &'a [Key16],
}

impl Reader for SurrealReader<'_> {
    fn get(&self, i: usize) -> Res<Option<u64>> {
        Ok(self.tx.get(&self.keys[i][..])?.map(|v| stamp_of(&v)))
    }
}

impl Contender for SurrealKv {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn sync(&self) -> Res<()> {
        // "Safe to call concurrently with ongoing transactions."
        self.tree()?.flush_wal(true)?;
        Ok(())
    }
    fn transactional(&self) -> bool {
        true
    }
    fn load(&self, range: std::ops::Range<usize>, value: &[u8]) -> Res<()> {
        let mut tx = self.begin()?;
        for k in &self.keys[range] {
            tx.set(&k[..], value)?;
        }
        self.commit(tx)?;
        Ok(())
    }
    fn reader(&self) -> Res<Box<dyn Reader + '_>> {
        Ok(Box::new(SurrealReader {
            tx: self.tree()?.begin_with_mode(surrealkv::Mode::ReadOnly)?,
            keys: &self.keys,
        }))
    }
    fn txn(&self, reads: &[usize], writes: &[usize], value: &[u8]) -> Res<bool> {
        let mut tx = self.begin()?;
        for &i in reads {
            std::hint::black_box(tx.get(&self.keys[i][..])?);
        }
        for &i in writes {
            tx.set(&self.keys[i][..], value)?;
        }
        self.commit(tx)
    }
    fn rmw(&self, i: usize) -> Res<bool> {
        let mut tx = self.begin()?;
        let k = &self.keys[i][..];
        let next = match tx.get(k)? {
            Some(v) => with_stamp(&v, stamp_of(&v) + 1),
            None => with_stamp(&[0; 100], 1),
        };
        tx.set(k, &next[..])?;
        self.commit(tx)
    }
}

// ---------------------------------------------------------------- ceilings

type SccIndex = scc::HashIndex<Key16, Arc<[u8]>, foldhash::fast::RandomState>;

/// Ceiling: a bare `scc::HashIndex` (no transactions, no versions).
pub struct Scc {
    map: SccIndex,
    keys: Arc<[Key16]>,
}

impl Scc {
    /// An empty index.
    pub fn new(keys: Arc<[Key16]>) -> Scc {
        Scc {
            map: scc::HashIndex::with_hasher(foldhash::fast::RandomState::default()),
            keys,
        }
    }

    fn put(&self, i: usize, value: Arc<[u8]>) {
        match self.map.entry_sync(self.keys[i]) {
            scc::hash_index::Entry::Occupied(mut o) => o.update(value),
            scc::hash_index::Entry::Vacant(v) => {
                v.insert_entry(value);
            }
        }
    }
}

impl Reader for Scc {
    fn get(&self, i: usize) -> Res<Option<u64>> {
        Ok(self.map.peek_with(&self.keys[i], |_, v| stamp_of(v)))
    }
}

impl Contender for Scc {
    fn name(&self) -> String {
        "scc::HashIndex (ceiling)".into()
    }
    fn transactional(&self) -> bool {
        false
    }
    fn load(&self, range: std::ops::Range<usize>, value: &[u8]) -> Res<()> {
        for i in range {
            self.put(i, Arc::from(value));
        }
        Ok(())
    }
    fn reader(&self) -> Res<Box<dyn Reader + '_>> {
        Ok(Box::new(SccView(self)))
    }
    fn txn(&self, reads: &[usize], writes: &[usize], value: &[u8]) -> Res<bool> {
        for &i in reads {
            std::hint::black_box(Reader::get(self, i)?);
        }
        for &i in writes {
            self.put(i, Arc::from(value));
        }
        Ok(true)
    }
    fn rmw(&self, i: usize) -> Res<bool> {
        // The entry holds the bucket lock: an atomic increment, no aborts.
        if let scc::hash_index::Entry::Occupied(mut o) = self.map.entry_sync(self.keys[i]) {
            let next = with_stamp(o.get(), stamp_of(o.get()) + 1);
            o.update(Arc::from(next));
        }
        Ok(true)
    }
}

struct SccView<'a>(&'a Scc);

impl Reader for SccView<'_> {
    fn get(&self, i: usize) -> Res<Option<u64>> {
        Reader::get(self.0, i)
    }
}

/// Ceiling: `std::collections::HashMap` behind a `RwLock`.
pub struct LockedMap {
    map: RwLock<HashMap<Key16, Box<[u8]>, foldhash::fast::RandomState>>,
    keys: Arc<[Key16]>,
}

impl LockedMap {
    /// An empty map.
    pub fn new(keys: Arc<[Key16]>) -> LockedMap {
        LockedMap {
            map: RwLock::new(HashMap::default()),
            keys,
        }
    }
}

struct MapView<'a>(&'a LockedMap);

impl Reader for MapView<'_> {
    fn get(&self, i: usize) -> Res<Option<u64>> {
        let map = self.0.map.read();
        Ok(map.get(&self.0.keys[i]).map(|v| stamp_of(v)))
    }
}

impl Contender for LockedMap {
    fn name(&self) -> String {
        "RwLock<HashMap> (ceiling)".into()
    }
    fn transactional(&self) -> bool {
        false
    }
    fn load(&self, range: std::ops::Range<usize>, value: &[u8]) -> Res<()> {
        let mut map = self.map.write();
        for i in range {
            map.insert(self.keys[i], Box::from(value));
        }
        Ok(())
    }
    fn reader(&self) -> Res<Box<dyn Reader + '_>> {
        Ok(Box::new(MapView(self)))
    }
    fn txn(&self, reads: &[usize], writes: &[usize], value: &[u8]) -> Res<bool> {
        // Held for the whole operation: this ceiling is serial, not torn.
        let mut map = self.map.write();
        for &i in reads {
            std::hint::black_box(map.get(&self.keys[i]).map(|v| stamp_of(v)));
        }
        for &i in writes {
            map.insert(self.keys[i], Box::from(value));
        }
        Ok(true)
    }
    fn rmw(&self, i: usize) -> Res<bool> {
        let mut map = self.map.write();
        if let Some(v) = map.get_mut(&self.keys[i]) {
            let next = stamp_of(v) + 1;
            v[..8].copy_from_slice(&next.to_le_bytes());
        }
        Ok(true)
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Async => "async",
        Mode::Strict => "strict",
    }
}

/// A fresh directory for one engine instance; removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// Create `base/name-<counter>`.
    pub fn new(base: &Path, name: &str) -> Res<Scratch> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = base.join(format!("{name}-{n}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("cleanup {}: {e}", self.0.display());
        }
    }
}
