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
    check_image, checkpoint_name, decode_checkpoint, encode_checkpoint,
};
use rewinddb_engine::{Engine, Key};

#[path = "common/recovered.rs"]
mod recovered;
#[path = "common/repair.rs"]
mod repair;
use recovered::{commit_checkpoint_reopen, config, read_keys};
use repair::repair;

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
