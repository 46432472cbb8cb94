//! Inputs kept in fuzz/regressions/<target>/ (hostile lengths, newer
//! formats, frames after valid records; and every crash a fuzzer finds,
//! once minimized) go through the same properties as the fuzz targets on
//! every `cargo test`, not only when cargo-fuzz runs: the decoders do not
//! panic or allocate from untrusted lengths, accept exactly a valid prefix,
//! and what they accept re-encodes to itself. Known files also have their
//! exact outcome pinned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use rewinddb_engine::Value;
use rewinddb_engine::durability::checkpoint::{
    CheckpointError, check_image, decode_checkpoint, encode_checkpoint,
};
use rewinddb_engine::durability::wal::{self, HeaderError, SEGMENT_HEADER_SIZE, Stop};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
}

/// The `wal_decode` target's property; returns (records, valid_end, stop).
fn wal_decode(data: &[u8]) -> (u64, usize, Stop) {
    let first = wal::parse_segment_header(data).unwrap_or(1);
    let start = SEGMENT_HEADER_SIZE.min(data.len());
    let (mut next, mut pos) = (first, start);
    let d = wal::decode_records(data, start, first.saturating_sub(1), |offset, record| {
        assert_eq!(offset, pos, "records are back to back");
        assert_eq!(record.version, next, "versions are consecutive");
        let frame = wal::encode_record(&record).unwrap();
        assert_eq!(
            &data[offset..offset + frame.len()],
            &frame[..],
            "re-encodes to itself"
        );
        pos += frame.len();
        next += 1;
    });
    assert_eq!(d.valid_end, pos);
    if d.stop == Stop::End {
        // The input ends there, or a zero tail (preallocated space) does.
        let tail = &data[d.valid_end..];
        assert!(tail.is_empty() || (tail.len() >= 8 && tail.iter().all(|&b| b == 0)));
    }
    (next - first, d.valid_end, d.stop)
}

#[test]
fn wal_decode_regressions_keep_the_targets_properties() {
    for (name, data) in inputs("wal_decode") {
        let (records, valid_end, stop) = wal_decode(&data);
        match name.as_str() {
            "huge-record-length" | "record-length-just-over-max" => {
                assert_eq!((records, valid_end), (0, SEGMENT_HEADER_SIZE), "{name}");
                assert_ne!(stop, Stop::End, "{name}");
            }
            "newer-format-header" => {
                assert_eq!(
                    wal::parse_segment_header(&data),
                    Err(HeaderError::NewerFormat(2))
                );
            }
            "valid-records-then-zero-length-frame" => {
                assert!(records > 0, "{name}");
                assert_eq!(
                    valid_end,
                    data.len() - 8,
                    "{name}: the frame is not a record"
                );
            }
            _ => {}
        }
    }
}

fn holds_nan(v: &Value) -> bool {
    match v {
        Value::Float(f) => f.is_nan(),
        Value::Array(a) => a.iter().any(holds_nan),
        Value::Object(o) => o.values().any(holds_nan),
        _ => false,
    }
}

#[test]
fn checkpoint_decode_regressions_keep_the_targets_properties() {
    for (name, data) in inputs("checkpoint_decode") {
        let decoded = decode_checkpoint(&data);
        if let Ok(image) = &decoded {
            assert_eq!(check_image(image), Ok(()), "{name}");
            // Compared as encodings, bit for bit (the NaN regression input
            // broke an `==` on images before `Value` compared floats by
            // bits).
            let bytes = encode_checkpoint(image).unwrap();
            let again = decode_checkpoint(&bytes).unwrap();
            assert_eq!(encode_checkpoint(&again).unwrap(), bytes, "{name}");
        }
        match name.as_str() {
            "huge-body-length" | "body-one-byte-short" => {
                assert!(
                    matches!(decoded, Err(CheckpointError::Damaged(_))),
                    "{name}: {decoded:?}"
                );
            }
            "nan-float-value" => {
                let image = decoded.unwrap();
                assert!(
                    image.chains.iter().any(|c| c
                        .versions
                        .iter()
                        .any(|(_, _, v)| v.as_ref().is_some_and(holds_nan))),
                    "{name}"
                );
            }
            "empty-body-valid-crcs" => {
                let image = decoded.unwrap();
                assert_eq!((image.version, image.chains.len()), (5, 0));
            }
            _ => {}
        }
    }
}
