//! The load the diagnostic drivers `w2_split` and `w4_split` share: `n`
//! random 16-byte user keys (seeded, so every driver and round sees the
//! same ones) made from an in-memory engine's family, as the peer harness
//! and the primitives make theirs, each written once with a 100-byte
//! value of 7s in transactions of 4,096 writes.

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, ValueRef,
};

/// The engine, the users' bytes, their keys and the seeded generator
/// (for the driver's own random indices).
pub struct Loaded {
    pub engine: Engine,
    pub users: Vec<[u8; 16]>,
    pub keys: Vec<Key>,
    pub rng: fastrand::Rng,
}

pub fn load(n: usize) -> Loaded {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let users: Vec<[u8; 16]> = (0..n)
        .map(|_| std::array::from_fn(|_| rng.u8(..)))
        .collect();
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    // One shared family allocation, in cache.
    let family = engine.family(Namespace::new("bench").unwrap(), Scope::Shared, TypeTag::Kv);
    let keys: Vec<Key> = users.iter().map(|u| family.key(u)).collect();
    for chunk in keys.chunks(4096) {
        let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
        for k in chunk {
            t.put_ref(k.clone(), ValueRef::Bytes(&[7u8; 100])).unwrap();
        }
        t.commit().unwrap();
    }
    Loaded {
        engine,
        users,
        keys,
        rng,
    }
}
