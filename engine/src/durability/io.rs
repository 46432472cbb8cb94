//! I/O behind a small trait: [`Storage`] (one data directory) and
//! [`StorageFile`] (one open file).
//!
//! [`FsStorage`] is the real directory; [`MemStorage`] keeps everything in
//! memory for crash and fault tests. `MemStorage` keeps *written* bytes apart
//! from *synced* bytes and directory entries apart from *synced* directory
//! entries, so a test can build the image a power loss would leave
//! ([`MemStorage::crash_image`]); it can also fail the Nth operation or
//! "crash" (fail every operation from the Nth on).
//!
//! Production pays one virtual call per WAL flush (two when the segment
//! grows by a preallocation step), not per commit: the
//! storage is a trait object chosen once at open, and commits only touch
//! an in-memory buffer.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// One data directory: flat, named files.
pub trait Storage: Send + Sync + fmt::Debug {
    /// The whole content of `name`.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// The whole content of `name` into `buf`, replacing what it held.
    /// Recovery reads every segment into one buffer: a fresh buffer per
    /// 64 MiB segment costs a page fault per 4 KiB before a byte is read.
    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        *buf = self.read(name)?;
        Ok(())
    }
    /// Open `name` for reading at offsets (recovery streams a checkpoint's
    /// body through one, instead of reading the whole file into memory
    /// first). Default: the whole file, read at once and served from
    /// memory.
    fn open_read(&self, name: &str) -> io::Result<Box<dyn StorageReader>> {
        Ok(Box::new(self.read(name)?))
    }
    /// Create `name` empty (truncating an existing file), open for writing.
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// Open the existing `name` for writing: appends go at its end,
    /// `write_at` anywhere.
    fn open_append(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// Atomically replace `to` by `from`.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Remove `name`.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Names of all files, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Make creations, renames and removals durable (fsync the directory).
    fn sync_dir(&self) -> io::Result<()>;
    /// Where the files live, for error messages.
    fn describe(&self, name: &str) -> String;
    /// Release the directory lock (the engine is closed). Default: none held.
    fn unlock(&self) {}
}

/// One file open for reading at offsets.
pub trait StorageReader {
    /// The file's size when it was opened, in bytes.
    fn size(&self) -> u64;
    /// Fill `buf` with the bytes from `offset` on; an error
    /// (`UnexpectedEof`) if the file ends first.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// A file read whole into memory (the default [`Storage::open_read`]).
impl StorageReader for Vec<u8> {
    fn size(&self) -> u64 {
        self.as_slice().size()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.as_slice().read_exact_at(offset, buf)
    }
}

/// Bytes in memory, read as a file (tests, fuzzing).
impl StorageReader for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let from = usize::try_from(offset).unwrap_or(usize::MAX);
        let bytes = from
            .checked_add(buf.len())
            .and_then(|to| self.get(from..to))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// A real file open for reading.
struct FsReader {
    file: File,
    size: u64,
}

impl StorageReader for FsReader {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

/// One open file, written by one handle at a time.
pub trait StorageFile: Send + Sync {
    /// Append `buf` at the end of the file (its size, as far as this
    /// handle changed it: the only writer).
    fn append(&self, buf: &[u8]) -> io::Result<()>;
    /// Write `buf` at `offset`, over what is there; the file grows if it
    /// ended before `offset + buf.len()` (a gap reads back as zeros).
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Grow the file to `len` bytes if it is shorter (never shrinks). The
    /// new space reads back as zeros and is reserved on disk
    /// (`fallocate(2)`), so that writes inside it later change neither the
    /// file size nor its block count: their fdatasync then has no inode to
    /// write. Like any change, it is durable only after `sync`.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// Make the written bytes and the file size durable (fdatasync).
    fn sync(&self) -> io::Result<()>;
    /// Truncate (or extend with zeros) to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
}

// ---------------------------------------------------------------- files

/// The real data directory, locked against a second opener by `flock(2)`
/// on its `LOCK` file for as long as this value lives.
pub struct FsStorage {
    dir: PathBuf,
    /// The flocked `LOCK` file; closing it releases the lock.
    lock: Mutex<Option<File>>,
}

/// Name of the lock file inside a data directory.
pub const LOCK_FILE: &str = "LOCK";

impl FsStorage {
    /// Open (creating if missing) the directory `dir` and lock it.
    ///
    /// Errors: `dir` is a file, cannot be created or written, or another
    /// process (or another engine in this one) holds the lock. Nothing but
    /// the directory itself and its empty `LOCK` file is ever created here.
    pub fn open(dir: &Path) -> Result<FsStorage> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "data directory {} exists and is not a directory",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| io_err(e, "creating data directory", dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_err(e, "opening the lock file", &lock_path))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(Error::Locked(dir.display().to_string()));
            }
            Err(e) => return Err(io_err(e.into(), "locking", &lock_path)),
        }
        Ok(FsStorage {
            dir: dir.to_path_buf(),
            lock: Mutex::new(Some(lock)),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn io_err(source: io::Error, what: &str, path: &Path) -> Error {
    Error::Io {
        context: format!("{what} {}", path.display()),
        source,
    }
}

impl fmt::Debug for FsStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FsStorage({})", self.dir.display())
    }
}

/// A file opened without `O_APPEND` (with it, Linux `pwrite` ignores the
/// offset): appends are positioned writes at the size this handle tracks.
struct FsFile {
    file: File,
    /// The file's size: as opened, then as this handle (the only writer)
    /// changed it.
    end: AtomicU64,
}

impl FsFile {
    fn new(file: File) -> io::Result<FsFile> {
        let end = file.metadata()?.len();
        Ok(FsFile {
            file,
            end: AtomicU64::new(end),
        })
    }
}

impl StorageFile for FsFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.write_at(self.end.load(Ordering::Acquire), buf)
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)?;
        self.end
            .fetch_max(offset + buf.len() as u64, Ordering::AcqRel);
        Ok(())
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        let end = self.end.load(Ordering::Acquire);
        if len <= end {
            return Ok(());
        }
        reserve(&self.file, end, len)?;
        self.end.fetch_max(len, Ordering::AcqRel);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.end.store(len, Ordering::Release);
        Ok(())
    }
}

/// Grow `file` from `end` to `len` bytes with space reserved on disk:
/// `fallocate(2)` (its blocks read back as zeros, never as stale data, synced
/// or not). Where the filesystem cannot, a sparse extension (a hole, which
/// also reads as zeros): the size is still set ahead of the records.
fn reserve(file: &File, end: u64, len: u64) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let flags = rustix::fs::FallocateFlags::empty();
        match rustix::fs::fallocate(file, flags, end, len - end) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let _ = end;
    file.set_len(len)
}

impl Storage for FsStorage {
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_into(name, &mut out)?;
        Ok(out)
    }
    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        File::open(self.path(name))?.read_to_end(buf)?;
        Ok(())
    }
    fn open_read(&self, name: &str) -> io::Result<Box<dyn StorageReader>> {
        let file = File::open(self.path(name))?;
        let size = file.metadata()?.len();
        Ok(Box::new(FsReader { file, size }))
    }
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.path(name))?;
        f.set_len(0)?;
        Ok(Box::new(FsFile::new(f)?))
    }
    fn open_append(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let f = OpenOptions::new().write(true).open(self.path(name))?;
        Ok(Box::new(FsFile::new(f)?))
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path(from), self.path(to))
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(name))
    }
    fn list(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    out.push(name.to_string());
                }
            }
        }
        Ok(out)
    }
    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
    fn describe(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
    fn unlock(&self) {
        self.lock.lock().take();
    }
}

// ---------------------------------------------------------------- memory

/// What a simulated power loss does to bytes written but not synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataLoss {
    /// Unsynced bytes survive (the OS happened to write them back).
    Kept,
    /// Unsynced bytes are lost.
    Dropped,
    /// Only whole 512-byte sectors of the unsynced bytes survive, up to a
    /// seeded point.
    Torn,
    /// Unsynced bytes are replaced by seeded garbage of the same length.
    Garbage,
}

/// What a simulated power loss does to directory changes not synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirLoss {
    /// Creations, renames and removals survive.
    Kept,
    /// The directory reverts to its last `sync_dir`.
    Dropped,
}

#[derive(Clone, Debug, Default)]
struct Inode {
    /// What reads return: every write and size change so far.
    data: Vec<u8>,
    /// What survives any power loss: the content at the last `sync`.
    synced: Vec<u8>,
    /// Byte ranges written since the last `sync` (everything past
    /// `synced.len()` is unsynced too: appended, allocated or extended).
    written: Vec<Range<usize>>,
    /// Truncated below the synced size since the last `sync`: a power loss
    /// then keeps either all of the changes or none of them.
    shrunk: bool,
}

impl Inode {
    fn note_written(&mut self, range: Range<usize>) {
        match self.written.last_mut() {
            Some(last) if last.end == range.start => last.end = range.end,
            _ => self.written.push(range),
        }
    }

    fn write_at(&mut self, offset: usize, buf: &[u8]) {
        let end = offset + buf.len();
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[offset..end].copy_from_slice(buf);
        self.note_written(offset..end);
    }

    fn set_len(&mut self, len: usize) {
        self.shrunk |= len < self.synced.len();
        self.data.resize(len, 0);
    }

    fn sync(&mut self) {
        self.synced.clone_from(&self.data);
        self.written.clear();
        self.shrunk = false;
    }

    /// The unsynced byte ranges, sorted and merged.
    fn unsynced(&self) -> Vec<Range<usize>> {
        let len = self.data.len();
        let mut ranges: Vec<Range<usize>> = self
            .written
            .iter()
            .map(|r| r.start.min(len)..r.end.min(len))
            .chain(std::iter::once(self.synced.len().min(len)..len))
            .filter(|r| !r.is_empty())
            .collect();
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        merged
    }
}

#[derive(Debug, Default)]
struct MemState {
    next_inode: u64,
    inodes: HashMap<u64, Inode>,
    dir: BTreeMap<String, u64>,
    synced_dir: BTreeMap<String, u64>,
    ops: u64,
    fail_at: Option<u64>,
    crash_at: Option<u64>,
}

impl MemState {
    /// Count one operation and decide whether it fails.
    fn op(&mut self, what: &str) -> io::Result<()> {
        self.ops += 1;
        let n = self.ops;
        if self.crash_at.is_some_and(|c| n >= c) {
            return Err(io::Error::other(format!(
                "simulated crash at op {n} ({what})"
            )));
        }
        if self.fail_at == Some(n) {
            return Err(io::Error::other(format!(
                "injected failure of op {n} ({what})"
            )));
        }
        Ok(())
    }

    fn inode_of(&self, name: &str) -> io::Result<u64> {
        self.dir
            .get(name)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_string()))
    }
}

/// An in-memory data directory for tests. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct MemStorage {
    state: Arc<Mutex<MemState>>,
}

impl fmt::Debug for MemStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        write!(f, "MemStorage({} files, {} ops)", s.dir.len(), s.ops)
    }
}

impl MemStorage {
    /// An empty directory.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Operations performed so far (every trait call counts once).
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    /// Fail exactly the `n`th operation (1-based, counted from creation).
    pub fn fail_op(&self, n: u64) {
        self.state.lock().fail_at = Some(n);
    }

    /// Crash at the `n`th operation: it and every later one fail.
    pub fn crash_at_op(&self, n: u64) {
        self.state.lock().crash_at = Some(n);
    }

    /// Files and their written (not necessarily synced) bytes.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let s = self.state.lock();
        s.dir
            .iter()
            .filter_map(|(n, i)| s.inodes.get(i).map(|ino| (n.clone(), ino.data.clone())))
            .collect()
    }

    /// Replace the written bytes of `name` (creating it, synced), for
    /// damage tests.
    pub fn put_file(&self, name: &str, bytes: &[u8]) {
        let mut s = self.state.lock();
        s.next_inode += 1;
        let id = s.next_inode;
        let ino = Inode {
            data: bytes.to_vec(),
            synced: bytes.to_vec(),
            ..Inode::default()
        };
        s.inodes.insert(id, ino);
        s.dir.insert(name.to_string(), id);
        s.synced_dir.insert(name.to_string(), id);
    }

    /// The directory a power loss now would leave, as a fresh storage whose
    /// every byte is synced. `seed` drives `Torn` and `Garbage`.
    pub fn crash_image(&self, data: DataLoss, dir: DirLoss, seed: u64) -> MemStorage {
        let s = self.state.lock();
        let entries = match dir {
            DirLoss::Kept => &s.dir,
            DirLoss::Dropped => &s.synced_dir,
        };
        let mut rng = fastrand::Rng::with_seed(seed);
        let image = MemStorage::new();
        for (name, id) in entries {
            let Some(ino) = s.inodes.get(id) else {
                continue;
            };
            image.put_file(name, &survivor(ino, data, &mut rng));
        }
        image
    }
}

/// The bytes of one file that survive a power loss. Unsynced are the byte
/// ranges written since the last sync and the space past the synced size
/// (appended, allocated or extended): `Dropped` reverts them (the size
/// change is lost: allocated space is absent), `Torn` keeps them up to a
/// seeded cut at a 512-byte step from the first one (space allocated past
/// the cut is absent, bytes overwritten past it keep their synced value),
/// `Garbage` fills them with seeded bytes (allocated space too) and keeps
/// the new size. Synced bytes never change.
fn survivor(ino: &Inode, data: DataLoss, rng: &mut fastrand::Rng) -> Vec<u8> {
    let unsynced = ino.unsynced();
    if ino.shrunk || unsynced.is_empty() {
        // A truncation (or nothing unsynced): either it happened or it did not.
        return match data {
            DataLoss::Kept => ino.data.clone(),
            _ => ino.synced.clone(),
        };
    }
    match data {
        DataLoss::Kept => ino.data.clone(),
        DataLoss::Dropped => ino.synced.clone(),
        DataLoss::Torn => {
            let (first, end) = (unsynced[0].start, unsynced[unsynced.len() - 1].end);
            let sectors = (end - first).div_ceil(512);
            let cut = (first + rng.usize(0..=sectors) * 512).min(end);
            let mut out = ino.synced.clone();
            out.resize(out.len().max(cut.min(ino.data.len())), 0);
            for r in &unsynced {
                let kept = r.start..r.end.min(cut);
                if !kept.is_empty() {
                    out[kept.clone()].copy_from_slice(&ino.data[kept]);
                }
            }
            out
        }
        DataLoss::Garbage => {
            let mut out = ino.data.clone();
            for r in unsynced {
                out[r].iter_mut().for_each(|b| *b = rng.u8(..));
            }
            out
        }
    }
}

struct MemFile {
    state: Arc<Mutex<MemState>>,
    inode: u64,
}

impl MemFile {
    fn with<T>(&self, what: &str, f: impl FnOnce(&mut Inode) -> T) -> io::Result<T> {
        let mut s = self.state.lock();
        s.op(what)?;
        let ino = s
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| io::Error::other("inode vanished"))?;
        Ok(f(ino))
    }
}

impl StorageFile for MemFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.with("append", |ino| ino.write_at(ino.data.len(), buf))
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let offset = usize::try_from(offset).map_err(io::Error::other)?;
        self.with("write_at", |ino| ino.write_at(offset, buf))
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.with("allocate", |ino| {
            if len > ino.data.len() {
                ino.data.resize(len, 0);
            }
        })
    }
    fn sync(&self) -> io::Result<()> {
        self.with("sync", Inode::sync)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.with("set_len", |ino| ino.set_len(len))
    }
}

impl Storage for MemStorage {
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut s = self.state.lock();
        s.op("read")?;
        let id = s.inode_of(name)?;
        Ok(s.inodes
            .get(&id)
            .map(|i| i.data.clone())
            .unwrap_or_default())
    }
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let mut s = self.state.lock();
        s.op("create")?;
        let id = match s.dir.get(name) {
            Some(&id) => id,
            None => {
                s.next_inode += 1;
                let id = s.next_inode;
                s.dir.insert(name.to_string(), id);
                id
            }
        };
        s.inodes.entry(id).or_default().set_len(0);
        Ok(Box::new(MemFile {
            state: Arc::clone(&self.state),
            inode: id,
        }))
    }
    fn open_append(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let mut s = self.state.lock();
        s.op("open")?;
        let id = s.inode_of(name)?;
        Ok(Box::new(MemFile {
            state: Arc::clone(&self.state),
            inode: id,
        }))
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut s = self.state.lock();
        s.op("rename")?;
        let id = s.inode_of(from)?;
        s.dir.remove(from);
        s.dir.insert(to.to_string(), id);
        Ok(())
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        let mut s = self.state.lock();
        s.op("remove")?;
        s.inode_of(name)?;
        s.dir.remove(name);
        Ok(())
    }
    fn list(&self) -> io::Result<Vec<String>> {
        let mut s = self.state.lock();
        s.op("list")?;
        Ok(s.dir.keys().cloned().collect())
    }
    fn sync_dir(&self) -> io::Result<()> {
        let mut s = self.state.lock();
        s.op("sync_dir")?;
        s.synced_dir = s.dir.clone();
        Ok(())
    }
    fn describe(&self, name: &str) -> String {
        format!("mem:{name}")
    }
}

// ---------------------------------------------------------------- sync hooks

/// What [`SyncHooked`] runs in place of each file sync: given the real
/// sync, it decides when (and whether) to call it, and what to do around
/// it (count it, hold it at a barrier, follow it with a delay).
pub type SyncHook = dyn Fn(&dyn Fn() -> io::Result<()>) -> io::Result<()> + Send + Sync;

/// A [`Storage`] that passes every call through to `inner`, except that
/// each file sync goes through a hook: for tests and benchmarks that count
/// syncs, hold one, or emulate a slower device.
pub struct SyncHooked {
    inner: Arc<dyn Storage>,
    hook: Arc<SyncHook>,
}

impl SyncHooked {
    /// `inner`, with every file sync run through `hook`.
    pub fn new(inner: Arc<dyn Storage>, hook: Arc<SyncHook>) -> SyncHooked {
        SyncHooked { inner, hook }
    }

    fn wrap(&self, inner: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
        Box::new(SyncHookedFile {
            inner,
            hook: Arc::clone(&self.hook),
        })
    }
}

impl fmt::Debug for SyncHooked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SyncHooked({:?})", self.inner)
    }
}

impl Storage for SyncHooked {
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.inner.read(name)
    }
    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        self.inner.read_into(name, buf)
    }
    fn open_read(&self, name: &str) -> io::Result<Box<dyn StorageReader>> {
        self.inner.open_read(name)
    }
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.wrap(self.inner.create(name)?))
    }
    fn open_append(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.wrap(self.inner.open_append(name)?))
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.inner.sync_dir()
    }
    fn describe(&self, name: &str) -> String {
        self.inner.describe(name)
    }
    fn unlock(&self) {
        self.inner.unlock()
    }
}

/// A file of [`SyncHooked`].
struct SyncHookedFile {
    inner: Box<dyn StorageFile>,
    hook: Arc<SyncHook>,
}

impl StorageFile for SyncHookedFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.inner.append(buf)
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.inner.write_at(offset, buf)
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.inner.allocate(len)
    }
    fn sync(&self) -> io::Result<()> {
        (self.hook)(&|| self.inner.sync())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}
