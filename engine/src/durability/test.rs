//! Unit tests of the durability formats: record, segment header and
//! checkpoint round trips, damage detection, and bounded decoding.

use std::sync::Arc;

use super::checkpoint::{
    CHAIN_BATCH, CHECKPOINT_FORMAT_VERSION, CheckpointError, CheckpointImage, check_checkpoint,
    decode_checkpoint, encode_checkpoint,
};
use super::codec::{ChainImage, RunImage, VALUE_DECODE_DEPTH_MAX, decode_commit_record};
use super::wal::{self, HeaderError, Stop};
use crate::record::CommitRecord;
use crate::types::{Key, Namespace, RunId, Scope, TypeTag};
use crate::value::Value;

fn key(user: &str) -> Key {
    Key::new(
        Namespace::new("t/ns").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        user,
    )
}

fn record(version: u64) -> CommitRecord {
    let nested = Value::from(vec![Value::from("x"), Value::Float(1.5), Value::Null]);
    CommitRecord {
        version,
        run: RunId::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
        wall_ms: 1_700_000_000_000 + version,
        writes: vec![
            (key("a"), Some(Value::Int(-(version as i64)))),
            (key("b"), None),
            (key("c"), Some(nested)),
            (key("d"), Some(Value::from(vec![7u8; 40]))),
        ],
    }
}

#[test]
fn record_payload_is_the_postcard_commit_record() {
    let r = record(42);
    let frame = wal::encode_record(&r).unwrap();
    let payload = &frame[wal::RECORD_HEADER_SIZE..];
    // The split encoding (writes outside the lock, prefix under it) gives
    // exactly the derived serde encoding of the whole record.
    assert_eq!(payload, postcard::to_allocvec(&r).unwrap().as_slice());
    assert_eq!(decode_commit_record(payload).unwrap(), r);
    assert_eq!(wal::le_u32(&frame[0..4]) as usize, payload.len());
}

#[test]
fn records_decode_in_order_and_stop_at_a_version_gap() {
    let mut bytes = wal::segment_header(1).to_vec();
    for v in [1, 2, 4] {
        bytes.extend(wal::encode_record(&record(v)).unwrap());
    }
    let mut seen = Vec::new();
    let d = wal::decode_records(&bytes, wal::SEGMENT_HEADER_SIZE, 0, |_, r| {
        seen.push(r.version)
    });
    assert_eq!(seen, vec![1, 2]);
    assert_eq!(d.last_version, 2);
    // A whole, checksummed record with the wrong version is corruption.
    assert!(
        matches!(d.stop, Stop::Corrupt { version: 3, .. }),
        "{:?}",
        d.stop
    );
}

#[test]
fn trailing_bytes_after_a_payload_are_refused() {
    let mut payload = postcard::to_allocvec(&record(1)).unwrap();
    payload.push(0);
    assert!(decode_commit_record(&payload).is_err());
}

#[test]
fn deep_nesting_is_refused_without_recursing_off_the_stack() {
    // Value::Array(vec![Value::Array(vec![...])]) is variant 6, length 1,
    // repeated: two bytes per level. A million levels would overflow any
    // stack with a recursive decoder.
    let mut payload = postcard::to_allocvec(&(1u64, RunId::NIL, 0u64)).unwrap();
    payload.push(1); // one write
    payload.extend(postcard::to_allocvec(&key("deep")).unwrap());
    payload.push(1); // Some
    for _ in 0..1_000_000 {
        payload.extend([6, 1]);
    }
    payload.push(0); // Null
    let err = decode_commit_record(&payload).unwrap_err();
    assert!(err.reason.contains("VALUE_DECODE_DEPTH_MAX"), "{err:?}");
    // Just inside the limit still decodes.
    let mut v = Value::Null;
    for _ in 1..VALUE_DECODE_DEPTH_MAX {
        v = Value::from(vec![v]);
    }
    let r = CommitRecord {
        version: 1,
        run: RunId::NIL,
        wall_ms: 0,
        writes: vec![(key("deep"), Some(v))],
    };
    let frame = wal::encode_record(&r).unwrap();
    assert_eq!(decode_commit_record(&frame[8..]).unwrap(), r);
}

#[test]
fn a_huge_length_prefix_does_not_allocate_it() {
    // writes: a claimed 2^63 elements, then nothing.
    let mut payload = postcard::to_allocvec(&(1u64, RunId::NIL, 0u64)).unwrap();
    payload.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert!(decode_commit_record(&payload).is_err());
}

#[test]
fn segment_header_round_trips_and_rejects_damage_and_newer_formats() {
    let h = wal::segment_header(77);
    assert_eq!(wal::parse_segment_header(&h), Ok(77));
    assert_eq!(wal::parse_segment_header(&h[..10]), Err(HeaderError::Short));
    let mut bad = h;
    bad[13] ^= 1;
    assert!(matches!(
        wal::parse_segment_header(&bad),
        Err(HeaderError::Damaged(_))
    ));
    let mut newer = h;
    newer[8..12].copy_from_slice(&(wal::FORMAT_VERSION + 1).to_le_bytes());
    let crc = crc32fast::hash(&newer[0..20]);
    newer[20..24].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        wal::parse_segment_header(&newer),
        Err(HeaderError::NewerFormat(wal::FORMAT_VERSION + 1))
    );
    assert_eq!(wal::parse_segment_name(&wal::segment_name(77)), Some(77));
    assert_eq!(wal::parse_segment_name("wal-12.log"), None);
}

fn image() -> CheckpointImage {
    CheckpointImage {
        version: 9,
        wal_through: 9,
        floor: 2,
        times: vec![(1, 100), (5, 200)],
        chains: vec![
            ChainImage {
                key: key("a"),
                pruned_max: 0,
                versions: vec![
                    (9, RunId::NIL, None),
                    (3, RunId::from_u128(5), Some(Value::Int(1))),
                ],
            },
            ChainImage {
                key: key("b"),
                pruned_max: 4,
                versions: vec![(
                    7,
                    RunId::NIL,
                    Some(Value::from(Arc::<str>::from("s").as_ref())),
                )],
            },
        ],
        runs: vec![RunImage {
            run: RunId::from_u128(5),
            // Version 2 of key "c" was unlinked by GC: only the index
            // still names it.
            commits: vec![(2, 100, vec![key("c")]), (3, 100, vec![key("a")])],
        }],
    }
}

#[test]
fn checkpoint_round_trips_and_every_bit_flip_is_detected() {
    let img = image();
    let bytes = encode_checkpoint(&img).unwrap();
    assert_eq!(decode_checkpoint(&bytes).unwrap(), img);
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(decode_checkpoint(&b).is_err(), "flip of bit {bit} accepted");
    }
    for len in 0..bytes.len() {
        assert!(
            decode_checkpoint(&bytes[..len]).is_err(),
            "truncation at {len} accepted"
        );
    }
}

#[test]
fn checkpoint_of_a_newer_format_is_reported_as_such() {
    let mut bytes = encode_checkpoint(&image()).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..44]);
    bytes[44..48].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        decode_checkpoint(&bytes),
        Err(CheckpointError::NewerFormat(7))
    );
}

#[test]
fn checkpoint_with_out_of_order_history_is_damaged() {
    let mut img = image();
    img.chains[0].versions.reverse();
    let bytes = encode_checkpoint(&img).unwrap();
    assert!(matches!(
        decode_checkpoint(&bytes),
        Err(CheckpointError::Damaged(_))
    ));
}

#[test]
fn checkpoint_with_a_disordered_run_index_is_damaged() {
    let mut img = image();
    img.runs[0].commits.reverse();
    let bytes = encode_checkpoint(&img).unwrap();
    assert!(matches!(
        decode_checkpoint(&bytes),
        Err(CheckpointError::Damaged(_))
    ));
    let mut img = image();
    img.runs[0].commits[1].0 = 10; // past the checkpoint's version 9
    let bytes = encode_checkpoint(&img).unwrap();
    assert!(matches!(
        decode_checkpoint(&bytes),
        Err(CheckpointError::Damaged(_))
    ));
}

/// A format 1 checkpoint: the header of today's with format 1, and a body
/// without the run index.
fn format_1_checkpoint(img: &CheckpointImage) -> Vec<u8> {
    let body = postcard::to_allocvec(&(img.floor, &img.times, &img.chains)).unwrap();
    let mut out = encode_checkpoint(img).unwrap()[..48].to_vec();
    out[8..12].copy_from_slice(&1u32.to_le_bytes());
    out[32..40].copy_from_slice(&(body.len() as u64).to_le_bytes());
    out[40..44].copy_from_slice(&crc32fast::hash(&body).to_le_bytes());
    let crc = crc32fast::hash(&out[..44]);
    out[44..48].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn a_format_1_checkpoint_is_read_with_its_run_index_rebuilt_from_the_chains() {
    assert_eq!(CHECKPOINT_FORMAT_VERSION, 3);
    let img = image();
    let decoded = decode_checkpoint(&format_1_checkpoint(&img)).unwrap();
    assert_eq!(decoded.chains, img.chains);
    // Only the commit whose version is still linked (a@3 of run 5) is
    // known to a format 1 file; the time comes from the time index.
    let expected = vec![RunImage {
        run: RunId::from_u128(5),
        commits: vec![(3, 100, vec![key("a")])],
    }];
    assert_eq!(decoded.runs, expected);
    // Re-encoded, it is a format 3 file holding the same.
    let again = encode_checkpoint(&decoded).unwrap();
    assert_eq!(&again[8..12], &3u32.to_le_bytes());
    assert_eq!(decode_checkpoint(&again).unwrap(), decoded);
}

/// A format 2 checkpoint: today's with format 2 in its header and a
/// trailer without the chain count.
fn format_2_checkpoint(img: &CheckpointImage) -> Vec<u8> {
    let bytes = encode_checkpoint(img).unwrap();
    let (head, trailer) = bytes.split_at(bytes.len() - 24);
    let mut out = head.to_vec();
    out[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32fast::hash(&out[..44]);
    out[44..48].copy_from_slice(&crc.to_le_bytes());
    let mut t = trailer[..8].to_vec(); // body length
    t.extend_from_slice(&trailer[16..20]); // body CRC
    let crc = crc32fast::hash(&t);
    t.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&t);
    out
}

#[test]
fn a_format_2_checkpoint_without_a_chain_count_is_read() {
    let img = image();
    let bytes = format_2_checkpoint(&img);
    let checked = check_checkpoint(&bytes).unwrap();
    assert_eq!((checked.format, checked.chains), (2, None));
    assert_eq!(decode_checkpoint(&bytes).unwrap(), img);
    let bytes = encode_checkpoint(&img).unwrap();
    let checked = check_checkpoint(&bytes).unwrap();
    assert_eq!((checked.format, checked.chains), (3, Some(2)));
}

/// Replace the chain count in a format 3 checkpoint's trailer (and the
/// trailer's CRC, so only the count is wrong).
fn with_chain_count(mut bytes: Vec<u8>, chains: u64) -> Vec<u8> {
    let t = bytes.len() - 24;
    bytes[t + 8..t + 16].copy_from_slice(&chains.to_le_bytes());
    let crc = crc32fast::hash(&bytes[t..t + 20]);
    bytes[t + 20..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn a_chain_count_that_disagrees_with_the_body_is_damage() {
    let bytes = encode_checkpoint(&image()).unwrap();
    for (count, reason) in [
        (1, "chain count does not match the trailer"),
        (3, "chain count does not match the trailer"),
        (u64::MAX, "chain count larger than the body can hold"),
    ] {
        assert_eq!(
            decode_checkpoint(&with_chain_count(bytes.clone(), count)),
            Err(CheckpointError::Damaged(reason.into())),
            "count {count}"
        );
    }
}

/// Chains come out in batches of `CHAIN_BATCH`, in key order, each chain
/// once, and together they are the image's.
#[test]
fn a_streamed_decode_hands_over_every_chain_in_batches() {
    let ns = crate::types::Namespace::new("t").unwrap();
    let mut img = image();
    img.runs.clear();
    img.chains = (0..CHAIN_BATCH as u32 * 2 + 5)
        .map(|i| ChainImage {
            key: Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, i.to_be_bytes()),
            pruned_max: 0,
            versions: vec![(1, RunId::NIL, Some(Value::from(i64::from(i))))],
        })
        .collect();
    img.times = vec![(1, 100)];
    let bytes = encode_checkpoint(&img).unwrap();
    let mut batches = Vec::new();
    let rest = check_checkpoint(&bytes)
        .unwrap()
        .decode_streaming(crate::durability::codec::stored_version, |b| {
            batches.push(b)
        })
        .unwrap();
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![CHAIN_BATCH, CHAIN_BATCH, 5]);
    assert!(rest.chains.is_empty());
    assert_eq!(batches.concat(), img.chains);
}
