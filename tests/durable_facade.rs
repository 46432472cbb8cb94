//! A durable database (`Database::open(Config::new(dir))`) gives back every
//! primitive after it is closed and reopened: KV, event log (whose chain
//! still verifies), state machine, spans, the run index, and past versions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use rewinddb::{
    Config, Database, Durability, Error, RunId, RunQuery, RunSpec, RunStatus, SpanSpec, Value,
};

const NS: &str = "acme/bot";

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("rewinddb-{name}-{}-{nanos}", std::process::id()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_primitive_survives_close_and_reopen() {
    let dir = TempDir::new("facade-reopen");
    let (run, mid) = {
        let db = Database::open(Config::new(&dir.0)).unwrap();
        let run = db.begin_run(RunSpec::new("durable").tag("t")).unwrap();
        db.kv(NS).put(run, "k", "v").unwrap();
        db.events(NS, run).append("a", 1).unwrap();
        let mid = db.engine().visible_version();
        db.events(NS, run).append("b", 2).unwrap();
        db.state(NS).define(run, "m", "idle", None).unwrap();
        db.state(NS).cas(run, "m", 1, "busy").unwrap();
        let root = db
            .traces(NS, run)
            .record(SpanSpec::custom("step", 0))
            .unwrap();
        db.traces(NS, run)
            .record(SpanSpec::tool_call("search", "q").parent(root))
            .unwrap();
        db.end_run(run, RunStatus::Completed).unwrap();
        (run, mid)
    };
    let db = Database::open(Config::new(&dir.0).durability(Durability::Strict)).unwrap();
    assert_eq!(db.kv(NS).get("k").unwrap(), Some(Value::from("v")));
    let log = db.events(NS, run);
    assert_eq!(log.len().unwrap(), 2);
    log.verify().unwrap();
    let state = db.state(NS).read_state("m").unwrap();
    assert_eq!((state.value, state.version), (Value::from("busy"), 2));
    let tree = db.traces(NS, run).tree().unwrap();
    assert_eq!(tree[0].children.len(), 1);
    let info = db.runs().get_run(run).unwrap();
    assert_eq!(info.status, RunStatus::Completed);
    assert!(info.first_version.is_some() && info.last_version > info.first_version);
    let done = db.runs().query_runs(&RunQuery::all().tag("t")).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(
        db.snapshot_at(mid).unwrap().events(NS, run).len().unwrap(),
        1
    );
    // Still ended after reopening: the run accepts no writes.
    assert!(matches!(
        db.kv(NS).put(run, "k", "again"),
        Err(Error::RunEnded { .. })
    ));
    db.kv(NS).put(RunId::NIL, "k", "admin").unwrap();
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = TempDir::new("facade-locked");
    let _db = Database::open(Config::new(&dir.0)).unwrap();
    let err = Database::open(Config::new(&dir.0)).unwrap_err();
    assert!(matches!(err, Error::Engine(_)), "{err}");
}

/// `Config::progress` reaches the engine: reopening reports the WAL it
/// reads and ends with `Opened` at the recovered version.
#[test]
fn reopening_reports_its_progress() {
    use std::sync::{Arc, Mutex};
    let dir = TempDir::new("facade-progress");
    let last = {
        let db = Database::open(Config::new(&dir.0)).unwrap();
        let run = db.begin_run(RunSpec::new("progress")).unwrap();
        for i in 0..10 {
            db.kv(NS).put(run, &format!("k{i}"), i).unwrap();
        }
        db.engine().visible_version()
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let config = Config::new(&dir.0).progress(move |p| sink.lock().unwrap().push(p.clone()));
    let db = Database::open(config).unwrap();
    let log = log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|p| matches!(p, rewinddb::Progress::OpenWal { version, .. } if *version == last)),
        "{log:?}"
    );
    assert!(
        matches!(log.last(), Some(rewinddb::Progress::Opened { version, .. }) if *version == last),
        "{log:?}"
    );
    assert_eq!(db.engine().visible_version(), last);
}
