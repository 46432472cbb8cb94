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
//! Production pays one virtual call per WAL flush (not per commit): the
//! storage is a trait object chosen once at open, and commits only touch
//! an in-memory buffer.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Create `name` empty (truncating an existing file), open for appending.
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// Open the existing `name` for appending at its end.
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

/// One open file, appended to at its end.
pub trait StorageFile: Send + Sync {
    /// Append `buf` at the end.
    fn append(&self, buf: &[u8]) -> io::Result<()>;
    /// Make the appended bytes durable (fdatasync).
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

struct FsFile(File);

impl StorageFile for FsFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        (&self.0).write_all(buf)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
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
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let f = OpenOptions::new()
            .append(true)
            .create(true)
            .truncate(false)
            .open(self.path(name))?;
        f.set_len(0)?;
        Ok(Box::new(FsFile(f)))
    }
    fn open_append(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let f = OpenOptions::new().append(true).open(self.path(name))?;
        Ok(Box::new(FsFile(f)))
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
    data: Vec<u8>,
    synced: Vec<u8>,
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

/// The bytes of one file that survive a power loss.
fn survivor(ino: &Inode, data: DataLoss, rng: &mut fastrand::Rng) -> Vec<u8> {
    let appended = ino.data.len() > ino.synced.len() && ino.data.starts_with(&ino.synced);
    if !appended {
        // Not a pure append (a truncation, or nothing unsynced): either the
        // change happened or it did not.
        return match data {
            DataLoss::Kept => ino.data.clone(),
            _ => ino.synced.clone(),
        };
    }
    let tail = &ino.data[ino.synced.len()..];
    let mut out = ino.synced.clone();
    match data {
        DataLoss::Kept => out.extend_from_slice(tail),
        DataLoss::Dropped => {}
        DataLoss::Torn => {
            let sectors = tail.len().div_ceil(512);
            let keep = (rng.usize(0..=sectors) * 512).min(tail.len());
            out.extend_from_slice(&tail[..keep]);
        }
        DataLoss::Garbage => out.extend((0..tail.len()).map(|_| rng.u8(..))),
    }
    out
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
        self.with("append", |ino| ino.data.extend_from_slice(buf))
    }
    fn sync(&self) -> io::Result<()> {
        self.with("sync", |ino| ino.synced = ino.data.clone())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.with("set_len", |ino| ino.data.resize(len, 0))
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
        s.inodes.entry(id).or_default().data.clear();
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
