//! T1, exhaustive WAL damage: a segment of 256 records (0-4 KiB payloads)
//! truncated at every byte offset and with every bit flipped. Exactly the
//! records wholly before the damage are recovered (0 lost, 0 extra, 0
//! corrupt accepted, 0 panics); damage in front of valid records is
//! reported as corruption naming file, offset and version.
//!
//! The exhaustive loops decode from the damaged record's offset: decoding
//! is a pure forward function of (bytes from a record boundary, previous
//! version), which the sampled full decodes from offset 0 check. Damage
//! through the whole stack (in-memory backend, `Engine::open_with_storage`)
//! is checked at sampled points.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use rewinddb_engine::durability::MemStorage;
use rewinddb_engine::durability::wal::{self, SEGMENT_HEADER_SIZE, Stop};
use rewinddb_engine::{
    CommitRecord, Engine, EngineConfig, Error, Key, Namespace, RecoveryMode, RunId, Scope, TypeTag,
    Value,
};

const RECORDS: usize = 256;

struct Log {
    bytes: Vec<u8>,
    /// Start offset of record i (version i + 1); the last entry is the end.
    offsets: Vec<usize>,
    records: Vec<CommitRecord>,
}

fn key(i: usize) -> Key {
    let ns = Namespace::new("t1/damage").unwrap();
    Key::new(ns, Scope::Shared, TypeTag::Kv, format!("k{}", i % 17))
}

fn build_log() -> Log {
    build_log_of(RECORDS, 4000)
}

/// A segment of `count` records with payloads of `0..max_payload` bytes.
fn build_log_of(count: usize, max_payload: usize) -> Log {
    let mut rng = fastrand::Rng::with_seed(0x7e1);
    let mut bytes = wal::segment_header(1).to_vec();
    let mut offsets = Vec::new();
    let mut records = Vec::new();
    for i in 0..count {
        let len = rng.usize(0..max_payload);
        let payload: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let value = if i % 31 == 7 {
            None
        } else {
            Some(Value::from(payload))
        };
        let run = if i % 3 == 0 {
            RunId::NIL
        } else {
            RunId::from_u128(1 + (i % 5) as u128)
        };
        let record = CommitRecord {
            version: i as u64 + 1,
            run,
            wall_ms: 1_000 + i as u64,
            writes: vec![(key(i), value)],
        };
        offsets.push(bytes.len());
        bytes.extend(wal::encode_record(&record).unwrap());
        records.push(record);
    }
    offsets.push(bytes.len());
    Log {
        bytes,
        offsets,
        records,
    }
}

/// Decode everything from the first record; return the versions seen.
fn full_decode(bytes: &[u8]) -> (Vec<u64>, wal::Decoded) {
    let mut seen = Vec::new();
    let d = wal::decode_records(bytes, SEGMENT_HEADER_SIZE, 0, |_, r| seen.push(r.version));
    (seen, d)
}

/// What decoding must report for damage inside record `k`.
fn expected_stop(log: &Log, k: usize, damage_before_valid: bool) -> Stop {
    if damage_before_valid {
        Stop::Corrupt {
            offset: log.offsets[k],
            version: k as u64 + 1,
            reason: String::new(),
        }
    } else {
        Stop::Torn {
            offset: log.offsets[k],
            reason: String::new(),
        }
    }
}

fn same_kind(a: &Stop, b: &Stop) -> bool {
    match (a, b) {
        (Stop::End, Stop::End) => true,
        (Stop::Torn { offset: x, .. }, Stop::Torn { offset: y, .. }) => x == y,
        (
            Stop::Corrupt {
                offset: x,
                version: v,
                ..
            },
            Stop::Corrupt {
                offset: y,
                version: w,
                ..
            },
        ) => x == y && v == w,
        _ => false,
    }
}

#[test]
fn the_intact_log_decodes_every_record() {
    let log = build_log();
    let mut seen = Vec::new();
    let d = wal::decode_records(&log.bytes, SEGMENT_HEADER_SIZE, 0, |_, r| seen.push(r));
    assert_eq!(seen, log.records);
    assert_eq!(d.stop, Stop::End);
    assert_eq!(d.valid_end, log.bytes.len());
    assert!(log.bytes.len() > 400_000, "payloads should average ~2 KiB");
}

#[test]
fn truncation_at_every_offset_keeps_exactly_the_whole_records_before_it() {
    let log = build_log();
    // k = number of records wholly before the cut.
    let mut k = 0;
    for t in SEGMENT_HEADER_SIZE..=log.bytes.len() {
        while k < RECORDS && log.offsets[k + 1] <= t {
            k += 1;
        }
        let cut = &log.bytes[..t];
        let mut extra = 0;
        let d = wal::decode_records(cut, log.offsets[k], k as u64, |_, _| extra += 1);
        assert_eq!(extra, 0, "cut at {t}: a partial record was accepted");
        assert_eq!(d.last_version, k as u64, "cut at {t}");
        assert_eq!(d.valid_end, log.offsets[k], "cut at {t}");
        let whole = t == log.offsets[k];
        let want = if whole {
            Stop::End
        } else {
            expected_stop(&log, k, false)
        };
        assert!(same_kind(&d.stop, &want), "cut at {t}: {:?}", d.stop);
        if t % 1009 == 0 {
            let (seen, full) = full_decode(cut);
            assert_eq!(seen, (1..=k as u64).collect::<Vec<_>>(), "cut at {t}");
            assert!(same_kind(&full.stop, &d.stop), "cut at {t}");
        }
    }
    assert_eq!(k, RECORDS);
}

#[test]
fn every_bit_flip_is_detected_and_reported_as_corruption_before_valid_records() {
    let mut log = build_log();
    let mut flips = 0u64;
    for k in 0..RECORDS {
        let (start, end) = (log.offsets[k], log.offsets[k + 1]);
        let want = expected_stop(&log, k, k + 1 < RECORDS);
        for byte in start..end {
            for bit in 0..8 {
                log.bytes[byte] ^= 1 << bit;
                let mut accepted = 0;
                let d = wal::decode_records(&log.bytes, start, k as u64, |_, _| accepted += 1);
                assert_eq!(accepted, 0, "flip {byte}.{bit}: damaged record accepted");
                assert_eq!(d.valid_end, start);
                assert!(same_kind(&d.stop, &want), "flip {byte}.{bit}: {:?}", d.stop);
                flips += 1;
                if flips % 4093 == 0 {
                    let (seen, full) = full_decode(&log.bytes);
                    assert_eq!(seen, (1..=k as u64).collect::<Vec<_>>());
                    assert!(same_kind(&full.stop, &want));
                }
                log.bytes[byte] ^= 1 << bit;
            }
        }
    }
    assert_eq!(flips as usize, (log.bytes.len() - SEGMENT_HEADER_SIZE) * 8);
}

fn open(storage: &MemStorage, recovery: RecoveryMode) -> Result<Engine, Error> {
    let config = EngineConfig::default()
        .recovery(recovery)
        .background_threads(false);
    Engine::open_with_storage(config, Arc::new(storage.clone()))
}

/// The engine holds exactly records `..k`: each key's history, the
/// per-run index and the commit times.
fn assert_state_is_prefix(engine: &Engine, log: &Log, k: usize) {
    assert_eq!(engine.visible_version(), k as u64);
    for i in 0..17 {
        let want: Vec<_> = log.records[..k]
            .iter()
            .rev()
            .filter(|r| r.writes[0].0 == key(i))
            .map(|r| (r.version, r.run, r.writes[0].1.clone()))
            .collect();
        assert_eq!(engine.history(&key(i), u64::MAX), want, "key {i}");
    }
    for run in 1..=5u128 {
        let got: Vec<u64> = engine
            .run_commits(RunId::from_u128(run))
            .unwrap()
            .iter()
            .map(|c| c.version)
            .collect();
        let want: Vec<u64> = log.records[..k]
            .iter()
            .filter(|r| r.run == RunId::from_u128(run))
            .map(|r| r.version)
            .collect();
        assert_eq!(got, want);
    }
    if k > 0 {
        assert_eq!(engine.commit_time(k as u64).unwrap(), 1_000 + k as u64 - 1);
    }
}

/// Flip a bit in the middle of record `k` of `log` (as segment 1), then:
/// a default open must refuse with the file, offset and version of record
/// `k` and change no file, unless `k` is the last record (a torn tail, so
/// it opens with records `..k`); a salvaging open must keep exactly
/// records `..k` and truncate the file there. Returns the storage as the
/// salvage left it.
fn flip_in_record_then_open_and_salvage(log: &Log, k: usize, bit: u8) -> MemStorage {
    let name = wal::segment_name(1);
    let last = log.records.len() - 1;
    let mid = (log.offsets[k] + log.offsets[k + 1]) / 2;
    let mut flipped = log.bytes.clone();
    flipped[mid] ^= bit;
    let storage = MemStorage::new();
    storage.put_file(&name, &flipped);
    let before = storage.files();
    match open(&storage, RecoveryMode::TruncateTornTail) {
        Err(Error::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert!(k < last, "damage in the last record is a torn tail");
            assert!(file.contains(&name), "{file}");
            assert_eq!(offset, log.offsets[k] as u64);
            assert!(reason.contains(&format!("version {}", k + 1)), "{reason}");
            assert_eq!(storage.files(), before, "a refused open changed files");
        }
        Ok(engine) => {
            assert_eq!(k, last, "mid-log damage accepted");
            assert_state_is_prefix(&engine, log, k);
        }
        Err(e) => panic!("unexpected error {e}"),
    }
    let engine = open(&storage, RecoveryMode::SalvagePrefix).unwrap();
    assert_state_is_prefix(&engine, log, k);
    drop(engine);
    assert_eq!(
        storage.files()[&name].len(),
        log.offsets[k],
        "salvage truncates"
    );
    storage
}

#[test]
fn damage_through_the_whole_stack_at_sampled_points() {
    let log = build_log();
    let name = wal::segment_name(1);
    for k in [0, 1, 2, 100, 254, 255] {
        let storage = flip_in_record_then_open_and_salvage(&log, k, 0x10);
        // The salvaged database opens again in the default mode.
        assert_state_is_prefix(&open(&storage, RecoveryMode::default()).unwrap(), &log, k);

        // A truncation inside record k.
        let mid = (log.offsets[k] + log.offsets[k + 1]) / 2;
        let storage = MemStorage::new();
        storage.put_file(&name, &log.bytes[..mid]);
        let engine = open(&storage, RecoveryMode::TruncateTornTail).unwrap();
        assert_state_is_prefix(&engine, &log, k);
    }
}

#[test]
fn a_damaged_segment_header_in_front_of_records_is_corruption() {
    let log = build_log();
    let name = wal::segment_name(1);
    for byte in 0..SEGMENT_HEADER_SIZE {
        let mut b = log.bytes.clone();
        b[byte] ^= 1;
        let storage = MemStorage::new();
        storage.put_file(&name, &b);
        let err = open(&storage, RecoveryMode::TruncateTornTail)
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Corruption { offset: 0, .. } | Error::UnsupportedFormat { .. }
            ),
            "byte {byte}: {err}"
        );
    }
}

/// Recovery decodes the WAL on one thread while another installs the
/// records decoded so far (in bounded batches). Damage far into a long
/// log, after the installer has been handed (and blocked on) many
/// batches, must still be refused with the same file, offset and version
/// and no file changed, and salvaged to exactly the prefix.
#[test]
fn damage_after_many_pipelined_batches_is_reported_as_without_them() {
    let count = 5000;
    let log = build_log_of(count, 64);
    let name = wal::segment_name(1);
    for k in [1500, 4000, count - 1] {
        flip_in_record_then_open_and_salvage(&log, k, 0x01);
    }
    // And the undamaged log recovers whole.
    let storage = MemStorage::new();
    storage.put_file(&name, &log.bytes);
    let engine = open(&storage, RecoveryMode::TruncateTornTail).unwrap();
    assert_state_is_prefix(&engine, &log, count);
}
