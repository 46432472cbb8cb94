//! Shared by checkpoint_decode and checkpoint_open (included with
//! `#[path]`): a checkpoint file's checksums repaired, so that mutations of
//! its body reach the body decoder instead of stopping at a CRC.

use rewinddb_engine::durability::checkpoint::{
    CHECKPOINT_HEADER_SIZE, CHECKPOINT_TRAILER_SIZE, trailer_size,
};
use rewinddb_engine::durability::codec::decode_checkpoint_body;

/// Rewrite the body length and every checksum to match the bytes present
/// (header layout in engine/src/durability/checkpoint.rs).
pub fn repair(bytes: &mut [u8]) {
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

