//! Fuzz target: arbitrary bytes as a WAL segment. The decoder must not
//! panic nor allocate from untrusted lengths, and must accept exactly a
//! valid prefix: consecutive versions from the header's first version,
//! each record re-encoding to exactly the bytes it was read from, and a
//! clean end only at the end of the input or before a zero tail.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewinddb_engine::durability::wal::{self, SEGMENT_HEADER_SIZE, Stop};

fuzz_target!(|data: &[u8]| {
    let first = wal::parse_segment_header(data).unwrap_or(1);
    let start = SEGMENT_HEADER_SIZE.min(data.len());
    let mut next = first;
    let mut pos = start;
    let d = wal::decode_records(data, start, first.saturating_sub(1), |offset, record| {
        assert_eq!(offset, pos, "records are back to back");
        assert_eq!(record.version, next, "versions are consecutive");
        let frame = wal::encode_record(&record).expect("a decoded record re-encodes");
        let reread = &data[offset..offset + frame.len()];
        assert_eq!(frame, reread, "only canonical encodings are accepted");
        let mut again = None;
        wal::decode_records(reread, 0, next - 1, |_, r| again = Some(r));
        assert_eq!(again.as_ref(), Some(&record), "re-encoding decodes to the same record");
        pos += frame.len();
        next += 1;
    });
    assert_eq!(d.valid_end, pos);
    assert!(d.valid_end <= data.len());
    if d.stop == Stop::End {
        // The input ends there, or only zeros follow, a frame header of
        // them at least (a preallocated segment's tail).
        let tail = &data[d.valid_end..];
        assert!(tail.is_empty() || (tail.len() >= 8 && tail.iter().all(|&b| b == 0)));
    }
});
