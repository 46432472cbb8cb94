//! Unit tests of the durability formats: record, segment header and
//! checkpoint round trips, damage detection, and bounded decoding.

use std::sync::Arc;

use super::checkpoint::{
    CHAIN_BATCH, CHECKPOINT_FORMAT_VERSION, CheckpointError, CheckpointImage, check_checkpoint,
    check_frame, decode_checkpoint, decode_checkpoint_streamed, encode_checkpoint,
};
use super::codec::{
    ChainImage, RunImage, VALUE_DECODE_DEPTH_MAX, decode_commit_record, stored_version,
};
use super::io::StorageReader;
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

/// An image with what a streamed window has to carry across its refills:
/// several families (a key's family is shared from the previous key's),
/// values of every kind, one longer than the window's first chunk, many
/// versions in one chain, and a long time index.
fn varied_image() -> CheckpointImage {
    let families = ["agent/a", "agent/b", "agent/b/sub"];
    let value = |i: u64| match i % 6 {
        0 => None,
        1 => Some(Value::Int(i as i64 - 40)),
        2 => Some(Value::from(format!("text {i}").as_str())),
        3 => Some(Value::from(vec![i as u8; (i as usize * 37) % 700])),
        4 => Some(Value::from(vec![Value::Float(0.5), Value::from("x")])),
        _ => Some(Value::from(std::collections::BTreeMap::from([(
            "k".to_string(),
            Value::Bool(i % 4 == 1),
        )]))),
    };
    let mut chains = Vec::new();
    for (f, ns) in families.iter().enumerate() {
        let ns = Namespace::new(ns).unwrap();
        for k in 0..40u64 {
            let versions = (0..1 + k % 5)
                .map(|n| {
                    let commit = 300 - n * 50 - k;
                    (
                        commit,
                        RunId::from_u128(u128::from(k % 3)),
                        value(k + n + f as u64),
                    )
                })
                .collect();
            let key = Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, k.to_be_bytes());
            chains.push(ChainImage {
                key,
                pruned_max: 0,
                versions,
            });
        }
    }
    let runs = (1..3)
        .map(|r| RunImage {
            run: RunId::from_u128(r),
            commits: vec![(7, 1_000, vec![key("c")])],
        })
        .collect();
    CheckpointImage {
        version: 300,
        wal_through: 300,
        floor: 2,
        times: (1..250).map(|v| (v, 1_000 + v)).collect(),
        chains,
        runs,
    }
}

/// Whatever size the window reads at a time, down to one byte (every
/// unit then outgrows it), a streamed body decodes to what the whole file
/// does, in every format.
#[test]
fn a_body_streamed_in_any_chunk_size_decodes_as_read_whole() {
    let img = varied_image();
    let files = [
        format_1_checkpoint(&img),
        format_2_checkpoint(&img),
        encode_checkpoint(&img).unwrap(),
    ];
    for bytes in &files {
        let whole = decode_checkpoint(bytes).unwrap();
        for chunk in [0, 1, 2, 3, 7, 64, 1000, 4096, 1 << 20] {
            let streamed = decode_checkpoint_streamed(bytes, chunk);
            assert_eq!(streamed.as_ref(), Ok(&whole), "chunk {chunk}");
        }
    }
    assert_eq!(decode_checkpoint(&files[2]).unwrap(), img);
}

/// Every bit flip of a file gets the same answer streamed as read whole:
/// the same damage named (the body's checksum first, although the window
/// decodes before it has seen the whole body), never a panic.
#[test]
fn every_bit_flip_is_the_same_damage_streamed_as_read_whole() {
    let bytes = encode_checkpoint(&image()).unwrap();
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let whole = decode_checkpoint(&b);
        assert!(whole.is_err(), "bit {bit}");
        assert_eq!(decode_checkpoint_streamed(&b, 3), whole, "bit {bit}");
    }
    for cut in 0..bytes.len() {
        let short = &bytes[..cut];
        assert_eq!(
            decode_checkpoint_streamed(short, 5),
            decode_checkpoint(short)
        );
    }
    for count in [1, 3, u64::MAX] {
        let b = with_chain_count(bytes.clone(), count);
        assert_eq!(decode_checkpoint_streamed(&b, 2), decode_checkpoint(&b));
    }
}

/// A body whose checksums match but that does not decode (only a broken
/// writer makes one) is damage streamed too, with the decoder's reason.
#[test]
fn a_body_that_passes_its_checksum_but_does_not_decode_is_damage() {
    let bytes = encode_checkpoint(&image()).unwrap();
    // The first chain's flag set to 7, neither true nor false. It follows
    // the header and the time index [(1, 100), (5, 200)]: a count byte,
    // then varints of 1, 1, 1 and 2 bytes (200 takes two).
    let mut b = bytes.clone();
    let flag = 48 + 1 + 1 + 1 + 1 + 2;
    assert_eq!(b[flag], 1, "the encoding this test assumes");
    b[flag] = 7;
    let t = b.len() - 24;
    let crc = crc32fast::hash(&b[48..t]);
    b[t + 16..t + 20].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&b[t..t + 20]);
    b[t + 20..].copy_from_slice(&crc.to_le_bytes());
    let whole = decode_checkpoint(&b);
    assert!(
        matches!(&whole, Err(CheckpointError::Damaged(r)) if r.contains("chain flag")),
        "{whole:?}"
    );
    for chunk in [1, 4, 1 << 20] {
        assert_eq!(decode_checkpoint_streamed(&b, chunk), whole);
    }
}

/// A file that cannot be read partway through its body is an I/O error,
/// not damage: recovery must not fall back to an older checkpoint (or
/// none) because a disk hiccuped.
#[test]
fn a_read_failing_inside_the_body_is_an_io_error_not_damage() {
    struct FailsAt(Vec<u8>, u64);
    impl StorageReader for FailsAt {
        fn size(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
            if offset + buf.len() as u64 > self.1 {
                return Err(std::io::Error::other("injected read failure"));
            }
            self.0.as_slice().read_exact_at(offset, buf)
        }
    }
    let bytes = encode_checkpoint(&varied_image()).unwrap();
    let file = FailsAt(bytes.clone(), bytes.len() as u64 / 2);
    let frame = check_frame(bytes.len() as u64, |at, buf| {
        bytes.as_slice().read_exact_at(at, buf)
    })
    .unwrap()
    .unwrap();
    let mut chains = 0;
    let out = frame.decode_streamed(&file, 64, stored_version, |b| chains += b.len());
    let e = out.expect_err("an I/O error");
    assert_eq!(e.to_string(), "injected read failure");
}
