//! Fuzz target (soak, not in the CI loop): a WAL segment whose header and
//! record checksums are repaired before use, so mutations of record
//! payloads reach the write-set decoder and recovery instead of stopping at
//! a CRC (wal_decode mostly does). Every decoded record re-encodes to its
//! own bytes, and an engine recovered from the segment must answer reads
//! without panicking, take a commit, checkpoint and reopen with the same
//! version. Seeds: seeds/wal_decode.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rewinddb_engine::durability::MemStorage;
use rewinddb_engine::durability::wal::{self, RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE};
use rewinddb_engine::{Engine, Key};

#[path = "common/recovered.rs"]
mod recovered;
use recovered::{commit_checkpoint_reopen, config, read_keys};

/// Rewrite the segment header's checksum and each record frame's, walking
/// the frames by their length fields (layout in engine/src/durability/wal.rs).
fn repair(bytes: &mut [u8]) {
    if bytes.len() < SEGMENT_HEADER_SIZE {
        return;
    }
    let h_crc = crc32fast::hash(&bytes[..20]);
    bytes[20..24].copy_from_slice(&h_crc.to_le_bytes());
    let mut at = SEGMENT_HEADER_SIZE;
    while at + RECORD_HEADER_SIZE <= bytes.len() {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let end = at + RECORD_HEADER_SIZE + len as usize;
        if len == 0 || end > bytes.len() {
            return;
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&bytes[at..at + 4]);
        crc.update(&bytes[at + RECORD_HEADER_SIZE..end]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.finalize().to_le_bytes());
        at = end;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut seg = data.to_vec();
    repair(&mut seg);
    let Ok(first) = wal::parse_segment_header(&seg) else {
        return;
    };
    let mut decoded = Vec::new();
    wal::decode_records(&seg, SEGMENT_HEADER_SIZE, first.saturating_sub(1), |_, r| {
        decoded.push(r)
    });
    for r in &decoded {
        let frame = wal::encode_record(r).expect("a decoded record re-encodes");
        let mut again = None;
        wal::decode_records(&frame, 0, r.version - 1, |_, r2| again = Some(r2));
        // Compared as bytes, bit for bit.
        let again = again.expect("a re-encoded record decodes");
        assert_eq!(wal::encode_record(&again).expect("re-encodes"), frame);
    }
    if first != 1 {
        return; // Recovery needs the WAL to start at version 1 here.
    }
    let storage = MemStorage::new();
    storage.put_file(&wal::segment_name(1), &seg);
    let Ok(engine) = Engine::open_with_storage(config(), Arc::new(storage.clone())) else {
        return;
    };
    let visible = engine.visible_version();
    assert!(visible as usize <= decoded.len(), "recovery invented commits");
    let mut keys: Vec<Key> = decoded
        .iter()
        .flat_map(|r| r.writes.iter().map(|w| w.0.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    keys.truncate(32);
    read_keys(&engine, &keys, 0..=visible.min(16));
    for r in decoded.iter().take(8) {
        if let Ok(commits) = engine.run_commits(r.run) {
            let _ = engine.versions_written(&commits);
        }
    }
    commit_checkpoint_reopen(engine, storage, keys.first());
});
