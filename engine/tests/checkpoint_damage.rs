//! Damaged checkpoints: a checkpoint whose body breaks one of the relations
//! the engine always writes (header versions, time index order, key order,
//! version order) is refused as damaged even with valid checksums;
//! recovery then falls back to the older checkpoint plus the WAL, losing
//! nothing, and sets the damaged file aside; a checkpoint filed under
//! another version's name counts as damaged; and with no usable checkpoint
//! and a WAL that no longer reaches version 1, open refuses with
//! `Error::Corruption` naming the file, changing nothing on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use rewinddb_engine::durability::MemStorage;
use rewinddb_engine::durability::checkpoint::{
    CheckpointError, checkpoint_name, decode_checkpoint, encode_checkpoint,
};
use rewinddb_engine::{
    CheckpointPolicy, Engine, EngineConfig, Error, Isolation, Key, Namespace, RunId, Scope,
    TypeTag, Value,
};

fn key(i: u64) -> Key {
    Key::new(
        Namespace::new("d/ckpt").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        format!("k{}", i % 7),
    )
}

fn open(storage: &MemStorage) -> Result<Engine, Error> {
    let config = EngineConfig::default()
        .checkpoint(CheckpointPolicy::MANUAL)
        .wal_segment_size_bytes_max(1024);
    Engine::open_with_storage(config, Arc::new(storage.clone()))
}

/// Commits `n` versions, each writing `i` (and 100 bytes of padding).
fn commit(engine: &Engine, n: u64) {
    for _ in 0..n {
        let i = engine.visible_version() + 1;
        let mut txn = engine.begin(RunId::new(), Isolation::Snapshot);
        txn.put(
            key(i),
            Value::from(vec![Value::Int(i as i64), Value::from("x".repeat(100))]),
        )
        .unwrap();
        assert_eq!(txn.commit().unwrap(), i);
    }
}

/// Every version 1..=last is readable as written, and nothing after it.
fn check_all(engine: &Engine, last: u64) {
    assert_eq!(engine.visible_version(), last);
    for v in 1..=last {
        let got = engine
            .snapshot_at(v)
            .unwrap()
            .get(&key(v))
            .unwrap()
            .unwrap();
        assert_eq!(
            got.as_array().unwrap()[0],
            Value::Int(v as i64),
            "version {v}"
        );
        assert_eq!(
            engine
                .run_commits(engine.history(&key(v), v)[0].1)
                .unwrap()
                .len(),
            1
        );
    }
}

/// A directory with two checkpoints (at 30 and 60) and WAL up to 90.
fn two_checkpoints() -> (MemStorage, u64, u64) {
    let storage = MemStorage::new();
    let engine = open(&storage).unwrap();
    commit(&engine, 30);
    let older = engine.checkpoint().unwrap();
    // The time index has one entry per millisecond that saw a commit; the relation tests need
    // at least two, and 60 commits can fit in one millisecond.
    std::thread::sleep(std::time::Duration::from_millis(3));
    commit(&engine, 30);
    let newer = engine.checkpoint().unwrap();
    commit(&engine, 30);
    engine.close().unwrap();
    (storage, older, newer)
}

fn damage(storage: &MemStorage, name: &str) {
    let mut bytes = storage.files()[name].clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    storage.put_file(name, &bytes);
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_older_one_and_is_set_aside() {
    let (storage, older, newer) = two_checkpoints();
    assert!(
        !storage.files().contains_key(&format!("wal-{:020}.log", 1)),
        "the WAL no longer starts at version 1"
    );
    damage(&storage, &checkpoint_name(newer));
    let engine = open(&storage).unwrap();
    check_all(&engine, 90);
    let files = storage.files();
    assert!(files.contains_key(&format!("{}.damaged", checkpoint_name(newer))));
    assert!(files.contains_key(&checkpoint_name(older)));
    // The recovered database takes commits and reopens cleanly.
    commit(&engine, 5);
    engine.close().unwrap();
    check_all(&open(&storage).unwrap(), 95);
}

#[test]
fn a_checkpoint_under_another_versions_name_counts_as_damaged() {
    let (storage, older, newer) = two_checkpoints();
    let older_bytes = storage.files()[&checkpoint_name(older)].clone();
    storage.put_file(&checkpoint_name(newer), &older_bytes);
    let engine = open(&storage).unwrap();
    check_all(&engine, 90);
    assert!(
        storage
            .files()
            .contains_key(&format!("{}.damaged", checkpoint_name(newer)))
    );
}

#[test]
fn with_no_usable_checkpoint_and_no_wal_from_version_1_open_refuses_naming_the_file() {
    let (storage, older, newer) = two_checkpoints();
    damage(&storage, &checkpoint_name(older));
    damage(&storage, &checkpoint_name(newer));
    let before = storage.files();
    match open(&storage) {
        Err(Error::Corruption { file, reason, .. }) => {
            assert!(file.contains(&checkpoint_name(newer)), "{file}");
            assert!(reason.contains("no older one"), "{reason}");
        }
        Err(e) => panic!("expected Corruption, got {e}"),
        Ok(_) => panic!("opened a database missing versions 1..={newer}"),
    }
    assert_eq!(storage.files(), before, "a refused open changes nothing");
}

#[test]
fn checkpoints_breaking_the_engines_own_relations_are_refused_as_damaged() {
    let (storage, _, newer) = two_checkpoints();
    let valid = decode_checkpoint(&storage.files()[&checkpoint_name(newer)]).unwrap();
    assert_eq!(
        decode_checkpoint(&encode_checkpoint(&valid).unwrap()),
        Ok(valid.clone())
    );
    assert!(valid.times.len() >= 2 && valid.chains.len() >= 2);

    let mut cases: Vec<(&str, _)> = Vec::new();
    let mut img = valid.clone();
    img.wal_through -= 1;
    cases.push(("header versions are inconsistent", img));
    let mut img = valid.clone();
    img.floor = img.version + 1;
    cases.push(("header versions are inconsistent", img));
    let mut img = valid.clone();
    img.times.swap(0, 1);
    cases.push(("time index is not strictly increasing", img));
    let mut img = valid.clone();
    img.times.last_mut().unwrap().0 = img.version + 1;
    cases.push(("time index reaches past the checkpoint version", img));
    let mut img = valid.clone();
    img.chains.swap(0, 1);
    cases.push(("chains are not in strictly increasing key order", img));
    let mut img = valid.clone();
    img.chains[0].versions.reverse();
    cases.push(("is out of order or range", img));
    let mut img = valid.clone();
    img.chains[0].pruned_max = img.chains[0].versions.last().unwrap().0;
    cases.push(("is out of order or range", img));
    assert!(valid.runs.len() >= 2, "the workload commits in runs");
    let mut img = valid.clone();
    img.runs.swap(0, 1);
    cases.push(("runs are not in strictly increasing order", img));
    let mut img = valid.clone();
    img.runs[0].commits[0].0 = img.version + 1;
    cases.push(("commit index of run", img));

    for (want, img) in cases {
        match decode_checkpoint(&encode_checkpoint(&img).unwrap()) {
            Err(CheckpointError::Damaged(reason)) => assert!(reason.contains(want), "{reason}"),
            other => panic!("expected Damaged({want}), got {other:?}"),
        }
    }
}

/// A database of `KEYS` keys (more than one batch of checkpoint chains)
/// with checkpoints at `older` and `newer` and WAL after both; every key
/// holds the version that last wrote it.
fn many_keys_two_checkpoints() -> (MemStorage, u64, u64) {
    const KEYS: u64 = 5_000;
    let storage = MemStorage::new();
    let config = EngineConfig::default().checkpoint(CheckpointPolicy::MANUAL);
    let engine = Engine::open_with_storage(config, Arc::new(storage.clone())).unwrap();
    let write = |from: u64, to: u64| {
        for start in (from..to).step_by(500) {
            let mut txn = engine.begin(RunId::new(), Isolation::Snapshot);
            let v = engine.visible_version() + 1;
            for i in start..(start + 500).min(to) {
                txn.put(many_key(i % KEYS), Value::Int(v as i64)).unwrap();
            }
            assert_eq!(txn.commit().unwrap(), v);
        }
    };
    write(0, KEYS);
    let older = engine.checkpoint().unwrap();
    write(0, 1_000);
    let newer = engine.checkpoint().unwrap();
    write(500, 2_000);
    engine.close().unwrap();
    (storage, older, newer)
}

fn many_key(i: u64) -> Key {
    Key::new(
        Namespace::new("d/many").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        i.to_be_bytes(),
    )
}

/// What `many_keys_two_checkpoints` wrote, read back: key `i` holds the
/// version of the last commit that wrote it (commits of 500 keys: 10 for
/// the load, 2 more before the newer checkpoint, 3 after it).
fn check_many(engine: &Engine) {
    assert_eq!(engine.visible_version(), 15);
    let snap = engine.snapshot();
    for i in 0..5_000u64 {
        let last = match i {
            0..500 => 11,
            500..2_000 => 13 + (i - 500) / 500,
            2_000.. => 1 + i / 500,
        };
        assert_eq!(
            snap.get(&many_key(i)).unwrap(),
            Some(Value::Int(last as i64)),
            "key {i}"
        );
    }
}

/// A checkpoint that passes its checksums but breaks a relation after
/// recovery has started installing it (past its first batch of 4,096
/// chains, or after all its chains, in the run index): recovery drops the
/// partly built store and falls back to the older checkpoint plus the WAL,
/// losing nothing, and sets the file aside.
#[test]
fn a_checkpoint_damaged_after_its_first_chains_is_dropped_whole() {
    let (storage, _, _) = many_keys_two_checkpoints();
    check_many(&open(&storage).unwrap());
    type Break = fn(&mut rewinddb_engine::durability::checkpoint::CheckpointImage);
    let breaks: [(&str, Break); 2] = [
        ("a chain past the first batch", |img| {
            img.chains.swap(4_500, 4_501)
        }),
        ("the run index", |img| img.runs.swap(0, 1)),
    ];
    for (what, broken) in breaks {
        let (storage, _, newer) = many_keys_two_checkpoints();
        let name = checkpoint_name(newer);
        let mut img = decode_checkpoint(&storage.files()[&name]).unwrap();
        assert!(img.chains.len() > 4_501 && img.runs.len() >= 2);
        broken(&mut img);
        storage.put_file(&name, &encode_checkpoint(&img).unwrap());
        let engine = open(&storage).unwrap_or_else(|e| panic!("{what}: {e}"));
        check_many(&engine);
        assert!(
            storage.files().contains_key(&format!("{name}.damaged")),
            "{what}"
        );
    }
}

/// A checkpoint is streamed from its file as it is decoded and its body's
/// checksum is checked only at the end, after every chain was installed:
/// a flip near the end of the body (a value of its last chains, or the run
/// index) is still damage, and recovery falls back to the older checkpoint
/// plus the WAL, losing nothing.
#[test]
fn a_checkpoint_whose_checksum_fails_after_its_chains_is_dropped_whole() {
    for from_end in [30, 200, 2_000] {
        let (storage, _, newer) = many_keys_two_checkpoints();
        let name = checkpoint_name(newer);
        let mut bytes = storage.files()[&name].clone();
        // Before the 24-byte trailer: inside the body.
        let at = bytes.len() - 24 - from_end;
        bytes[at] ^= 0x01;
        storage.put_file(&name, &bytes);
        let engine = open(&storage).unwrap_or_else(|e| panic!("{from_end}: {e}"));
        check_many(&engine);
        assert!(
            storage.files().contains_key(&format!("{name}.damaged")),
            "{from_end}"
        );
    }
}
