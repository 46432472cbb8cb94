//! Fuzz target: a WAL of valid records built from the input (sometimes
//! followed by preallocated zeros), then damaged
//! by truncation, bit flips and splices also chosen by the input. What
//! decodes is always a prefix of the original records, and every record
//! wholly before the first damaged byte is recovered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewinddb_engine::durability::wal::{self, SEGMENT_HEADER_SIZE};
use rewinddb_engine::{CommitRecord, Key, Namespace, RunId, Scope, TypeTag, Value};

/// Reads bytes off the input, zeros when it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> usize {
        usize::from(self.byte()) | usize::from(self.byte()) << 8
    }
}

fn records(input: &mut Input<'_>) -> Vec<CommitRecord> {
    let ns = Namespace::new("fuzz").expect("valid namespace");
    let count = 1 + usize::from(input.byte() % 24);
    (0..count)
        .map(|i| {
            let writes = (0..1 + input.byte() % 3)
                .map(|w| {
                    let key = Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, [w, input.byte()]);
                    let len = usize::from(input.byte()) * 4;
                    let value = match input.byte() % 4 {
                        0 => None,
                        1 => Some(Value::Int(i64::from(input.byte()))),
                        2 => Some(Value::from(vec![input.byte(); len])),
                        _ => Some(Value::from("s".repeat(len))),
                    };
                    (key, value)
                })
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect();
            CommitRecord {
                version: i as u64 + 1,
                run: RunId::from_u128(u128::from(input.byte())),
                wall_ms: i as u64,
                writes,
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let originals = records(&mut input);
    let mut bytes = wal::segment_header(1).to_vec();
    let mut ends = Vec::new();
    for r in &originals {
        bytes.extend(wal::encode_record(r).expect("encodes"));
        ends.push(bytes.len());
    }
    // Sometimes a zero tail, as a preallocated segment has: damage may
    // land in it too.
    let zeros = usize::from(input.byte() % 4) * 40;
    bytes.resize(bytes.len() + zeros, 0);
    let mut first_damage = bytes.len();
    for _ in 0..1 + input.byte() % 4 {
        let len = bytes.len();
        if len <= SEGMENT_HEADER_SIZE {
            break;
        }
        let at = SEGMENT_HEADER_SIZE + input.u16() * 7 % (len - SEGMENT_HEADER_SIZE);
        match input.byte() % 3 {
            0 => bytes.truncate(at),
            1 => bytes[at] ^= 1 << (input.byte() % 8),
            _ => {
                // Splice: overwrite with a copy of bytes from elsewhere.
                let from = input.u16() % len;
                let n = (input.byte() as usize).min(len - at).min(len - from);
                let chunk = bytes[from..from + n].to_vec();
                if chunk == bytes[at..at + n] {
                    continue;
                }
                bytes[at..at + n].copy_from_slice(&chunk);
            }
        }
        first_damage = first_damage.min(at);
    }
    let mut seen = Vec::new();
    wal::decode_records(&bytes, SEGMENT_HEADER_SIZE, 0, |_, r| seen.push(r));
    assert!(seen.len() <= originals.len());
    assert_eq!(seen[..], originals[..seen.len()], "recovered records are a prefix");
    let intact = ends.iter().filter(|&&e| e <= first_damage).count();
    assert!(seen.len() >= intact, "lost a record wholly before the damage");
});
