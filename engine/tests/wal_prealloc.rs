//! Preallocated WAL segments (docs/format.md, "Preallocated segments"):
//! the zero tail past the last record is a clean end; nonzero bytes after
//! a zero frame header are a torn tail (cut) unless a valid record follows
//! (corruption, unless `SalvagePrefix`); a torn record followed by zeros
//! is cut; a crash while a segment grows loses
//! nothing acknowledged; reopening continues at the right offset, many
//! times; a segment written by the previous (appending) version still
//! opens; and `MemStorage` models unsynced in-place writes and allocations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rewinddb_engine::durability::io::Storage;
use rewinddb_engine::durability::wal::{self, SEGMENT_HEADER_SIZE, Stop};
use rewinddb_engine::durability::{DataLoss, DirLoss, FsStorage, MemStorage};
use rewinddb_engine::{
    CheckpointPolicy, CommitRecord, Durability, Engine, EngineConfig, Error, Isolation, Key,
    Namespace, RecoveryMode, RunId, Scope, TypeTag, Value,
};

const KEYS: u64 = 5;

fn key(i: u64) -> Key {
    let ns = Namespace::new("prealloc/t").unwrap();
    Key::new(ns, Scope::Shared, TypeTag::Kv, format!("k{}", i % KEYS))
}

/// What commit `v` (1-based) writes.
fn value(v: u64) -> Value {
    Value::from(format!("{v}:{}", "p".repeat((v % 50) as usize)))
}

fn config(step: u64, segment: u64) -> EngineConfig {
    EngineConfig::default()
        .durability(Durability::Strict)
        .checkpoint(CheckpointPolicy::MANUAL)
        .wal_segment_size_bytes_max(segment)
        .wal_preallocate_step_bytes(step)
        .background_threads(false)
}

fn open_mem(storage: &MemStorage, config: EngineConfig) -> Result<Engine, Error> {
    Engine::open_with_storage(config, Arc::new(storage.clone()))
}

/// Commit versions `from..=to`, each writing `value(v)` to `key(v)`.
fn commit_range(engine: &Engine, from: u64, to: u64) {
    for v in from..=to {
        let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
        txn.put(key(v), value(v)).unwrap();
        assert_eq!(txn.commit().unwrap(), v);
    }
}

/// The engine holds exactly commits `1..=n`.
fn assert_holds(engine: &Engine, n: u64) {
    assert_eq!(engine.visible_version(), n);
    for k in 0..KEYS {
        let want: Vec<_> = (1..=n)
            .rev()
            .filter(|v| v % KEYS == k)
            .map(|v| (v, RunId::NIL, Some(value(v))))
            .collect();
        assert_eq!(engine.history(&key(k), u64::MAX), want, "key {k}");
    }
}

/// Where the records of a segment end, and how decoding stopped.
fn records_end(bytes: &[u8]) -> (usize, Stop) {
    let first = wal::parse_segment_header(bytes).unwrap();
    let d = wal::decode_records(bytes, SEGMENT_HEADER_SIZE, first - 1, |_, _| {});
    (d.valid_end, d.stop)
}

/// A storage holding commits `1..=n` in one preallocated segment, as a
/// power loss right after the last acknowledgement leaves it.
fn one_segment(n: u64) -> (MemStorage, String) {
    let storage = MemStorage::new();
    let engine = open_mem(&storage, config(4096, 1 << 20)).unwrap();
    commit_range(&engine, 1, n);
    std::mem::forget(engine);
    let image = storage.crash_image(DataLoss::Dropped, DirLoss::Dropped, 1);
    (image, wal::segment_name(1))
}

#[test]
fn a_segment_is_preallocated_and_its_zero_tail_is_a_clean_end() {
    let (storage, name) = one_segment(40);
    let bytes = storage.files()[&name].clone();
    let (end, stop) = records_end(&bytes);
    assert_eq!(stop, Stop::End);
    assert_eq!(bytes.len() % 4096, 0, "grown by whole steps");
    assert!(
        end + 8 <= bytes.len(),
        "records end {end}, file {}",
        bytes.len()
    );
    assert!(bytes[end..].iter().all(|&b| b == 0));
    let engine = open_mem(&storage, config(4096, 1 << 20)).unwrap();
    assert_holds(&engine, 40);
    // Recovery changed nothing: the zero tail is where writing continues.
    assert_eq!(storage.files()[&name], bytes);
}

/// Sectors of one write can reach the disk out of order: the sector that
/// holds a record's frame header lost (zeros, as preallocated) while a
/// later one survived. Nothing valid follows, so it is a torn tail: cut,
/// and writing continues where the records end.
#[test]
fn nonzero_bytes_after_a_zero_frame_header_with_nothing_valid_after_are_a_torn_tail() {
    let (clean, name) = one_segment(30);
    let bytes = clean.files()[&name].clone();
    let (end, _) = records_end(&bytes);
    for at in [end + 8, end + 100, bytes.len() - 1] {
        let storage = MemStorage::new();
        let mut damaged = bytes.clone();
        damaged[at] = 0x01;
        storage.put_file(&name, &damaged);
        assert!(
            matches!(records_end(&damaged).1, Stop::Torn { .. }),
            "damage at {at}"
        );
        let engine = open_mem(&storage, config(4096, 1 << 20)).unwrap();
        assert_holds(&engine, 30);
        assert_eq!(storage.files()[&name].len(), end, "cut at the records end");
        commit_range(&engine, 31, 35);
        drop(engine);
        let engine = open_mem(&storage, config(4096, 1 << 20)).unwrap();
        assert_holds(&engine, 35);
    }
}

/// A zero frame header with a valid record somewhere after it is damage in
/// front of data, never a crash artefact: refused (naming file, offset and
/// version) with nothing changed, unless `SalvagePrefix`.
#[test]
fn a_zero_frame_header_in_front_of_a_valid_record_is_corruption_unless_salvaging() {
    let (clean, name) = one_segment(30);
    let bytes = clean.files()[&name].clone();
    let (end, _) = records_end(&bytes);
    // Record 30 starts where decoding all but its last byte stops. Zero
    // its frame header, and put an intact copy of it further on.
    let (start_30, _) = records_end(&bytes[..end - 1]);
    let rec30 = bytes[start_30..end].to_vec();
    let mut damaged = bytes.clone();
    damaged[start_30..start_30 + 8].fill(0);
    damaged[end + 64..end + 64 + rec30.len()].copy_from_slice(&rec30);
    let storage = MemStorage::new();
    storage.put_file(&name, &damaged);
    let before = storage.files();
    match open_mem(&storage, config(4096, 1 << 20)) {
        Err(Error::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert!(file.contains(&name), "{file}");
            assert_eq!(offset, start_30 as u64);
            assert!(reason.contains("version 30"), "{reason}");
            assert!(reason.contains(&format!("offset {}", end + 64)), "{reason}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(storage.files(), before, "a refused open changes nothing");
    let salvage = config(4096, 1 << 20).recovery(RecoveryMode::SalvagePrefix);
    let engine = open_mem(&storage, salvage).unwrap();
    assert_holds(&engine, 29);
    commit_range(&engine, 30, 35);
    drop(engine);
    let engine = open_mem(&storage, config(4096, 1 << 20)).unwrap();
    assert_holds(&engine, 35);
}

#[test]
fn a_torn_record_followed_by_zeros_is_cut_and_writing_continues_there() {
    let (clean, name) = one_segment(25);
    let bytes = clean.files()[&name].clone();
    let (end, _) = records_end(&bytes);
    let next = CommitRecord {
        version: 26,
        run: RunId::NIL,
        wall_ms: 1,
        writes: vec![(key(26), Some(value(26)))],
    };
    let frame = wal::encode_record(&next).unwrap();
    let garbage: Vec<u8> = (0..300u32).map(|i| (i % 251 + 1) as u8).collect();
    for torn in [&frame[..frame.len() - 1], &frame[..5], &garbage[..]] {
        let storage = MemStorage::new();
        let mut damaged = bytes.clone();
        damaged[end..end + torn.len()].copy_from_slice(torn);
        storage.put_file(&name, &damaged);
        let engine = open_mem(&storage, config(4096, 1 << 20)).unwrap();
        assert_holds(&engine, 25);
        // The torn bytes are gone; the next record goes where they were.
        assert_eq!(storage.files()[&name].len(), end);
        commit_range(&engine, 26, 30);
        drop(engine);
        let after = storage.files()[&name].clone();
        assert_eq!(records_end(&after).1, Stop::End);
        let engine = open_mem(&storage, config(4096, 1 << 20)).unwrap();
        assert_holds(&engine, 30);
    }
}

#[test]
fn a_crash_while_a_segment_grows_loses_no_acknowledged_commit() {
    let total = {
        let storage = MemStorage::new();
        let engine = open_mem(&storage, config(256, 4096)).unwrap();
        commit_range(&engine, 1, 60);
        std::mem::forget(engine);
        storage.ops()
    };
    let mut during_allocation = 0;
    for crash_at in 1..=total {
        let storage = MemStorage::new();
        storage.crash_at_op(crash_at);
        let mut acked = 0;
        let mut failed_op = String::new();
        if let Ok(engine) = open_mem(&storage, config(256, 4096)) {
            for v in 1..=60 {
                let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
                txn.put(key(v), value(v)).unwrap();
                match txn.commit() {
                    Ok(_) => acked = v,
                    Err(e) => {
                        failed_op = format!("{e:?}");
                        break;
                    }
                }
            }
            std::mem::forget(engine);
        }
        if failed_op.contains("(allocate)") {
            during_allocation += 1;
        }
        for data in [
            DataLoss::Dropped,
            DataLoss::Torn,
            DataLoss::Garbage,
            DataLoss::Kept,
        ] {
            let image = storage.crash_image(data, DirLoss::Dropped, crash_at);
            let ctx = format!("crash at op {crash_at}/{total} ({failed_op}), {data:?}");
            let engine = open_mem(&image, config(256, 4096))
                .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
            let v = engine.visible_version();
            assert!(v >= acked, "{ctx}: acknowledged {acked}, recovered {v}");
            assert!(v <= acked + 1, "{ctx}: recovered {v} of {acked} acked");
            assert_holds(&engine, v);
            commit_range(&engine, v + 1, v + 3);
            drop(engine);
            let engine = open_mem(&image, config(256, 4096)).unwrap();
            assert_holds(&engine, v + 3);
        }
    }
    assert!(
        during_allocation >= 10,
        "only {during_allocation} crashes hit an allocation"
    );
}

#[test]
fn reopening_continues_at_the_end_of_the_records_every_time() {
    let storage = MemStorage::new();
    let mut n = 0;
    for round in 0..8u64 {
        let engine = open_mem(&storage, config(1024, 8192)).unwrap();
        assert_holds(&engine, n);
        commit_range(&engine, n + 1, n + 23 + round);
        n += 23 + round;
        if round % 2 == 0 {
            drop(engine);
        } else {
            // A power loss instead of a clean close.
            std::mem::forget(engine);
            let image = storage.crash_image(DataLoss::Dropped, DirLoss::Dropped, round);
            for (name, bytes) in image.files() {
                storage.put_file(&name, &bytes);
            }
        }
        for (name, bytes) in storage.files() {
            if wal::parse_segment_name(&name).is_some() {
                assert_eq!(records_end(&bytes).1, Stop::End, "round {round}: {name}");
            }
        }
    }
    let engine = open_mem(&storage, config(1024, 8192)).unwrap();
    assert_holds(&engine, n);
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "rewinddb-prealloc-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn on_a_real_directory_segments_keep_their_size_and_reopen_many_times() {
    let dir = TempDir::new("reopen");
    let cfg = config(4096, 16 << 10).dir(&dir.0);
    let mut n = 0;
    for round in 0..6 {
        let engine = Engine::open(cfg.clone()).unwrap();
        assert_holds(&engine, n);
        commit_range(&engine, n + 1, n + 40);
        n += 40;
        drop(engine);
        let mut tails = 0;
        for entry in std::fs::read_dir(&dir.0).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if wal::parse_segment_name(&name).is_none() {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let (end, stop) = records_end(&bytes);
            assert_eq!(stop, Stop::End, "round {round}: {name}");
            tails += usize::from(end < bytes.len());
        }
        assert!(
            tails >= 1,
            "round {round}: the current segment is preallocated"
        );
    }
    let engine = Engine::open(cfg).unwrap();
    assert_holds(&engine, n);
}

/// A segment as the previous version wrote it: header and records, no
/// zero tail.
fn appended_segment(n: u64) -> Vec<u8> {
    let mut bytes = wal::segment_header(1).to_vec();
    for v in 1..=n {
        let record = CommitRecord {
            version: v,
            run: RunId::NIL,
            wall_ms: 1_000 + v,
            writes: vec![(key(v), Some(value(v)))],
        };
        bytes.extend(wal::encode_record(&record).unwrap());
    }
    bytes
}

#[test]
fn a_segment_of_the_appending_format_opens_and_continues() {
    let old = appended_segment(12);
    // In memory.
    let storage = MemStorage::new();
    storage.put_file(&wal::segment_name(1), &old);
    let engine = open_mem(&storage, config(4096, 1 << 20)).unwrap();
    assert_holds(&engine, 12);
    commit_range(&engine, 13, 20);
    drop(engine);
    let now = storage.files()[&wal::segment_name(1)].clone();
    assert_eq!(&now[..old.len()], &old[..], "old records untouched");
    assert!(now.len() % 4096 == 0, "now preallocated: {}", now.len());
    let engine = open_mem(&storage, config(4096, 1 << 20)).unwrap();
    assert_holds(&engine, 20);
    drop(engine);
    // On a real directory.
    let dir = TempDir::new("old");
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.0.join(wal::segment_name(1)), &old).unwrap();
    let cfg = config(4096, 1 << 20).dir(&dir.0);
    let engine = Engine::open(cfg.clone()).unwrap();
    assert_holds(&engine, 12);
    commit_range(&engine, 13, 20);
    drop(engine);
    let engine = Engine::open(cfg).unwrap();
    assert_holds(&engine, 20);
}

#[test]
fn mem_storage_models_unsynced_in_place_writes_and_allocations() {
    let storage = MemStorage::new();
    let f = storage.create("f").unwrap();
    f.append(&[0xAA; 1000]).unwrap();
    f.allocate(4096).unwrap();
    f.sync().unwrap();
    f.write_at(1000, &[0xBB; 600]).unwrap();
    f.allocate(8192).unwrap();
    let survivor = |data, seed| storage.crash_image(data, DirLoss::Kept, seed).files()["f"].clone();
    let synced_part_intact = |b: &[u8]| b[..1000].iter().all(|&x| x == 0xAA);

    let kept = survivor(DataLoss::Kept, 0);
    assert_eq!(kept.len(), 8192);
    assert!(synced_part_intact(&kept) && kept[1000..1600].iter().all(|&x| x == 0xBB));
    assert!(kept[1600..].iter().all(|&x| x == 0));

    let dropped = survivor(DataLoss::Dropped, 0);
    assert_eq!(dropped.len(), 4096, "the unsynced allocation is absent");
    assert!(synced_part_intact(&dropped) && dropped[1000..].iter().all(|&x| x == 0));

    let garbage = survivor(DataLoss::Garbage, 7);
    assert_eq!(garbage.len(), 8192);
    assert!(synced_part_intact(&garbage));
    assert!(
        garbage[1600..4096].iter().all(|&x| x == 0),
        "synced zeros stay"
    );
    assert!(garbage[1000..1600].iter().any(|&x| x != 0xBB));
    assert!(
        garbage[4096..].iter().any(|&x| x != 0),
        "allocated space reads garbage"
    );

    let mut cuts = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let torn = survivor(DataLoss::Torn, seed);
        assert!(synced_part_intact(&torn));
        // A prefix of the unsynced bytes, cut at a 512-byte step from 1000;
        // the allocation survives up to the cut.
        let kept = torn[1000..1600].iter().take_while(|&&x| x == 0xBB).count();
        assert!(kept == 600 || kept % 512 == 0, "kept {kept}");
        assert!(torn[1000 + kept..].iter().all(|&x| x == 0));
        let len = torn.len();
        assert!((4096..=8192).contains(&len), "{len}");
        assert!(
            len == 4096 || len == 8192 || (len - 1000) % 512 == 0,
            "{len}"
        );
        assert!(
            len == 4096 || kept == 600,
            "a cut past the writes kept them"
        );
        cuts.insert((kept, len));
    }
    assert!(cuts.len() > 3, "seeds cut at different points: {cuts:?}");

    f.sync().unwrap();
    let synced = survivor(DataLoss::Dropped, 0);
    assert_eq!(synced, kept, "after sync every variant keeps everything");
}

#[test]
fn fs_storage_allocates_and_writes_in_place() {
    let dir = TempDir::new("fs");
    let storage = FsStorage::open(&dir.0).unwrap();
    let f = storage.create("f").unwrap();
    f.append(b"abc").unwrap();
    f.allocate(8192).unwrap();
    let len = || std::fs::metadata(dir.0.join("f")).unwrap().len();
    assert_eq!(len(), 8192);
    f.write_at(3, b"def").unwrap();
    assert_eq!(len(), 8192, "a write inside allocated space keeps the size");
    f.append(b"zz").unwrap();
    f.sync().unwrap();
    let bytes = storage.read("f").unwrap();
    assert_eq!(bytes.len(), 8194);
    assert_eq!(&bytes[..6], b"abcdef");
    assert!(bytes[6..8192].iter().all(|&b| b == 0));
    assert_eq!(&bytes[8192..], b"zz");
    drop(f);
    // Reopened: appends go at the end, writes in place.
    let f = storage.open_append("f").unwrap();
    f.append(b"!").unwrap();
    f.write_at(0, b"A").unwrap();
    f.allocate(100).unwrap();
    let bytes = storage.read("f").unwrap();
    assert_eq!((bytes.len(), bytes[0], bytes[8194]), (8195, b'A', b'!'));
}
