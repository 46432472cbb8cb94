//! A simulated trip-planning agent with deterministic fake tools (no
//! network, no model). It runs the same task twice with one different
//! decision, using every primitive: KV memory, an event log, a state
//! machine for its plan, traces of tool calls and decisions, and the run
//! index. Then it replays and verifies both runs, diffs them, and reads
//! the past with time travel. Its database is `./rewinddb-data` with
//! `Strict` durability: each invocation adds two runs to the ones before.
//!
//! `cargo run --release --example agent`

use std::error::Error;

use rewinddb::{
    Config, Database, Durability, RunId, RunQuery, RunSpec, RunStatus, SpanSpec, Value,
    Verification, describe_write,
};

const NS: &str = "demo/trip-planner";
const DATA_DIR: &str = "rewinddb-data";

/// The fake tools: fixed answers, so every run is reproducible.
fn weather(city: &str) -> &'static str {
    if city == "Paris" { "rain" } else { "sun" }
}

fn search(query: &str) -> Vec<Value> {
    match query {
        "indoor Paris" => vec!["Musée d'Orsay".into(), "Louvre".into()],
        _ => vec![
            "Jardin du Luxembourg".into(),
            "Parc des Buttes-Chaumont".into(),
        ],
    }
}

/// How the agent decides where to go; the two runs differ only here.
#[derive(Clone, Copy)]
enum Policy {
    FollowWeather,
    IgnoreWeather,
}

/// The embedded default: a data directory in the working directory, every
/// commit acknowledged only once it is on disk.
fn open_database() -> Result<Database, Box<dyn Error>> {
    Ok(Database::open(
        Config::new(DATA_DIR).durability(Durability::Strict),
    )?)
}

/// One run of the task: plan a day in `city` for the user.
fn run_task(db: &Database, policy: Policy, variant: &str) -> Result<RunId, Box<dyn Error>> {
    let spec = RunSpec::new("trip-planner").tag("demo").tag(variant);
    let run = db.begin_run(spec)?;
    let (events, traces, plan) = (
        db.events(NS, run),
        db.traces(NS, run),
        db.state_run(NS, run),
    );
    let steps = ["idle", "researching", "deciding", "booking", "done"];
    let allowed = steps
        .windows(2)
        .map(|w| (w[0].into(), w[1].into()))
        .collect();
    plan.define(run, "plan", "idle", Some(allowed))?;

    let city = db
        .kv(NS)
        .get("user:city")?
        .and_then(|v| v.as_str().map(String::from));
    let city = city.unwrap_or_else(|| "Paris".into());
    events.append("task.started", format!("plan a day in {city}"))?;
    let task = traces.record(SpanSpec::custom("task", city.as_str()))?;
    plan.transition(run, "plan", |_| "researching")?;

    let forecast = weather(&city);
    let call = traces.record(SpanSpec::tool_call("weather", city.as_str()).parent(task))?;
    traces.end(call, Some(Ok(forecast.into())))?;
    events.append("tool.returned", format!("weather: {forecast}"))?;
    db.kv_run(NS, run).put(run, "forecast", forecast)?;

    plan.transition(run, "plan", |_| "deciding")?;
    let choice = match (policy, forecast) {
        (Policy::FollowWeather, "rain") => "indoor",
        _ => "outdoor",
    };
    let why = match policy {
        Policy::FollowWeather => "it will rain, stay dry",
        Policy::IgnoreWeather => "the user likes parks",
    };
    let options = vec!["indoor".into(), "outdoor".into()];
    traces.record(SpanSpec::decision(options, choice, why).parent(task))?;
    events.append("decision.made", choice)?;

    let query = format!("{choice} {city}");
    let places = search(&query);
    traces.record(SpanSpec::query(query.as_str(), places.clone()).parent(task))?;
    plan.transition(run, "plan", |_| "booking")?;
    let place = places.first().cloned().unwrap_or(Value::Null);
    // One transaction: the recommendation and its event commit together.
    db.transaction(run, |txn| {
        txn.kv(NS).put("last_recommendation", place.clone())?;
        txn.events(NS).append("task.finished", place.clone())?;
        Ok(())
    })?;
    plan.transition(run, "plan", |_| "done")?;
    traces.end(task, None)?;
    db.end_run(run, RunStatus::Completed)?;
    Ok(run)
}

fn print_run(db: &Database, label: &str, run: RunId) -> Result<(), Box<dyn Error>> {
    let replay = db.replay_run(run)?;
    let verified = match replay.verify()? {
        Verification::Matched(_) => "matches the digest recorded at end_run",
        Verification::InProgress => "in progress, nothing to check yet",
        _ => "no digest recorded",
    };
    println!(
        "run {label} {run}: {} steps, {} writes, digest {} ({verified})",
        replay.steps().len(),
        replay.write_count(),
        replay.digest()
    );
    for step in replay.steps() {
        let what: Vec<String> = step.writes.iter().filter_map(describe_write).collect();
        println!(
            "  {:>2} v{:<3} {}",
            step.index,
            step.version,
            shorten(&what.join("; "), 92)
        );
    }
    Ok(())
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max - 3).collect();
    format!("{cut}...")
}

fn main() -> Result<(), Box<dyn Error>> {
    let started = std::time::Instant::now();
    let db = open_database()?;
    let before = db.runs().query_runs(&RunQuery::all().tag("demo"))?.len();
    println!(
        "rewinddb agent demo: database in ./{DATA_DIR} (Strict durability), {before} earlier demo runs\n"
    );
    db.kv(NS).put(RunId::NIL, "user:city", "Paris")?; // shared memory, admin write

    let a = run_task(&db, Policy::FollowWeather, "follow-weather")?;
    let b = run_task(&db, Policy::IgnoreWeather, "ignore-weather")?;
    print_run(&db, "a", a)?;
    print_run(&db, "b", b)?;

    println!("\n{}", db.diff_runs(a, b)?);

    // Time travel: every primitive as it was right after step 3 of run b.
    let v = db.version_at_step(b, 3)?;
    let past = db.snapshot_at(v)?;
    let plan = past.state_run(NS, b).read_state("plan")?;
    let events = past.events(NS, b).len()?;
    println!(
        "time travel: right after step 3 of run b (version {v}) its plan was {} (v{}) \
         and its event log held {events} event(s)",
        plan.value.to_json(),
        plan.version
    );
    let now = rewinddb::engine::wall_clock_ms();
    println!(
        "version at wall-clock {now} ms: {}",
        db.version_at_time(now)?
    );

    let demo_runs = db.runs().query_runs(&RunQuery::all().tag("demo"))?;
    println!(
        "\nrun index: {} demo runs in this database; done in {} ms",
        demo_runs.len(),
        started.elapsed().as_millis()
    );
    Ok(())
}
