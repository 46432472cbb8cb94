//! Fuzz target: arbitrary bytes as a checkpoint file. Decoding must not
//! panic nor allocate from untrusted lengths; whatever it accepts satisfies
//! the checkpoint invariants and survives an encode/decode round trip.
//! Streamed from a file through a window of a few bytes (as recovery
//! reads checkpoints), the same bytes, and the same bytes with their
//! checksums repaired (so mutations reach the body decoder), get the
//! answer they get when decoded whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewinddb_engine::durability::checkpoint::{
    check_image, decode_checkpoint, decode_checkpoint_streamed, encode_checkpoint,
};

#[path = "common/repair.rs"]
mod repair;

fuzz_target!(|data: &[u8]| {
    // A window of 1 to 64 bytes: every unit outgrows it at some refill.
    let chunk = 1 + data.first().map_or(0, |b| usize::from(b & 63));
    assert_eq!(decode_checkpoint_streamed(data, chunk), decode_checkpoint(data));
    let mut repaired = data.to_vec();
    repair::repair(&mut repaired);
    assert_eq!(
        decode_checkpoint_streamed(&repaired, chunk),
        decode_checkpoint(&repaired)
    );
    if let Ok(image) = decode_checkpoint(data) {
        assert_eq!(check_image(&image), Ok(()));
        let bytes = encode_checkpoint(&image).expect("a decoded checkpoint re-encodes");
        // Compared as encodings, bit for bit (the NaN regression input
        // broke an `==` on images before `Value` compared floats by bits).
        let again = decode_checkpoint(&bytes).expect("a re-encoded checkpoint decodes");
        assert_eq!(encode_checkpoint(&again).expect("re-encodes"), bytes);
    }
});
