//! Fuzz target (soak, not in the CI loop): a checkpoint file whose
//! checksums are repaired before use, so mutations of the body reach the
//! body decoder, `check_image` and recovery instead of stopping at a CRC
//! (checkpoint_decode mostly does). Whatever decodes must round-trip, and
//! an engine recovered from it must answer reads without panicking, take a
//! commit, checkpoint and reopen. Seeds: seeds/checkpoint_decode.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rewinddb_engine::durability::MemStorage;
use rewinddb_engine::durability::checkpoint::{
    CHECKPOINT_HEADER_SIZE, CHECKPOINT_TRAILER_SIZE, check_image, checkpoint_name,
    decode_checkpoint, encode_checkpoint, trailer_size,
};
use rewinddb_engine::durability::codec::decode_checkpoint_body;
use rewinddb_engine::{Engine, Key};

#[path = "common/recovered.rs"]
mod recovered;
use recovered::{commit_checkpoint_reopen, config, read_keys};

/// Rewrite the body length and every checksum to match the bytes present
/// (header layout in engine/src/durability/checkpoint.rs).
fn repair(bytes: &mut [u8]) {
    if bytes.len() < CHECKPOINT_HEADER_SIZE {
        return;
    }
    let format = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let size = trailer_size(format);
    if size > 0 {
        let Some(t_at) = bytes
            .len()
            .checked_sub(size)
            .filter(|&at| at >= CHECKPOINT_HEADER_SIZE)
        else {
            return;
        };
        let body = &bytes[CHECKPOINT_HEADER_SIZE..t_at];
        let (body_len, body_crc) = (body.len() as u64, crc32fast::hash(body));
        if size == CHECKPOINT_TRAILER_SIZE {
            // Format 3 counts its chains: the count of what decodes.
            let chains = decode_checkpoint_body(body, format).map_or(0, |b| b.2.len() as u64);
            bytes[t_at + 8..t_at + 16].copy_from_slice(&chains.to_le_bytes());
        }
        bytes[t_at..t_at + 8].copy_from_slice(&body_len.to_le_bytes());
        bytes[t_at + size - 8..t_at + size - 4].copy_from_slice(&body_crc.to_le_bytes());
        let t_crc = crc32fast::hash(&bytes[t_at..t_at + size - 4]);
        bytes[t_at + size - 4..t_at + size].copy_from_slice(&t_crc.to_le_bytes());
    } else {
        let body_len = (bytes.len() - CHECKPOINT_HEADER_SIZE) as u64;
        let body_crc = crc32fast::hash(&bytes[CHECKPOINT_HEADER_SIZE..]);
        bytes[32..40].copy_from_slice(&body_len.to_le_bytes());
        bytes[40..44].copy_from_slice(&body_crc.to_le_bytes());
    }
    let h_crc = crc32fast::hash(&bytes[..44]);
    bytes[44..48].copy_from_slice(&h_crc.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    repair(&mut bytes);
    let Ok(image) = decode_checkpoint(&bytes) else {
        return;
    };
    assert_eq!(check_image(&image), Ok(()));
    let again = encode_checkpoint(&image).expect("a decoded checkpoint re-encodes");
    // Compared as encodings, bit for bit.
    let twice = decode_checkpoint(&again).expect("a re-encoded checkpoint decodes");
    assert_eq!(encode_checkpoint(&twice).expect("re-encodes"), again);
    // Open only what a small database could hold: reads below loop over
    // versions.
    if image.version > 1 << 16 {
        return;
    }
    let storage = MemStorage::new();
    storage.put_file(&checkpoint_name(image.version), &bytes);
    let Ok(engine) = Engine::open_with_storage(config(), Arc::new(storage.clone())) else {
        return;
    };
    let v = engine.visible_version();
    let keys: Vec<Key> = image.chains.iter().map(|c| c.key.clone()).collect();
    read_keys(&engine, &keys, [0, image.floor, v / 2, v]);
    for k in &keys {
        for at in 0..=v.min(64) {
            let _ = engine.version_of(k, at);
        }
    }
    for r in &image.runs {
        if let Ok(commits) = engine.run_commits(r.run) {
            let _ = engine.versions_written(&commits);
            for c in &commits {
                let _ = engine.run_span(r.run, c.version);
            }
        }
    }
    let _ = (engine.version_at_time(0), engine.version_at_time(u64::MAX));
    for at in 0..=v.min(64) {
        let _ = engine.commit_time(at);
    }
    commit_checkpoint_reopen(engine, storage, keys.first());
});
