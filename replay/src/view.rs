//! [`RunView`]: a replayed state read back through the primitives, one
//! section per primitive, without wall-clock times.
//!
//! The primitives read through their `Reader` trait; [`StateReader`]
//! implements it over a [`RunState`], so the views decode records with the
//! primitives' own code (no second copy of their encodings). Views leave
//! out wall-clock times, so the same workload gives equal views in any
//! database and two runs can be compared item by item.

use std::collections::BTreeSet;
use std::ops::Bound;

use rewinddb_engine::{Key, Namespace, RunId, TypeTag, Value};
use rewinddb_primitives::{EventLog, Reader, SpanKind, StateMachines, TraceStore};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::key::{RunKey, RunScope};
use crate::replay::RunState;

/// A `Reader` over a replayed state: what the run left, nothing else.
pub struct StateReader<'a> {
    state: &'a RunState,
    run: RunId,
}

impl<'a> StateReader<'a> {
    /// Read `state`, the replay of `run`.
    pub fn new(state: &'a RunState, run: RunId) -> StateReader<'a> {
        StateReader { state, run }
    }
}

impl Reader for StateReader<'_> {
    fn read(&mut self, key: &Key) -> rewinddb_primitives::Result<Option<Value>> {
        Ok(self.state.get(&RunKey::relative_to(key, self.run)).cloned())
    }

    fn scan(
        &mut self,
        prefix: &Key,
        after: Option<&Key>,
        limit: usize,
    ) -> rewinddb_primitives::Result<Vec<(Key, Value)>> {
        let prefix = RunKey::relative_to(prefix, self.run);
        let after = after.map(|a| RunKey::relative_to(a, self.run));
        let start = match &after {
            Some(a) if *a > prefix => Bound::Excluded(a),
            _ => Bound::Included(&prefix),
        };
        Ok(self
            .state
            .starting_at(start)
            .take_while(|(k, _)| {
                k.tag == prefix.tag
                    && k.ns == prefix.ns
                    && k.scope == prefix.scope
                    && k.user.starts_with(&prefix.user)
            })
            .take(limit)
            .map(|(k, v)| (k.to_key(self.run), v.clone()))
            .collect())
    }
}

/// A KV entry the run left.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KvItem {
    /// Namespace.
    pub ns: Namespace,
    /// Scope, relative to the run.
    pub scope: RunScope,
    /// The key (lossy UTF-8).
    pub key: String,
    /// The value.
    pub value: Value,
}

/// An event, without its wall-clock time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventItem {
    /// Sequence number.
    pub seq: u64,
    /// Type.
    pub event_type: String,
    /// Payload.
    pub payload: Value,
}

/// The run's own event log in one namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventLogView {
    /// Namespace.
    pub ns: Namespace,
    /// Its events, in sequence order.
    pub events: Vec<EventItem>,
}

/// A state machine record the run left.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineItem {
    /// Namespace.
    pub ns: Namespace,
    /// Scope, relative to the run.
    pub scope: RunScope,
    /// Machine name.
    pub name: String,
    /// Its state.
    pub state: Value,
    /// Its version (1 at define, +1 per change).
    pub version: u64,
}

/// A span, without its times. `kind`, `name` and `arguments` say what
/// the agent did; trace diffs compare exactly those and the tree shape.
///
/// | kind | name | arguments | outcome |
/// |---|---|---|---|
/// | `tool_call` | tool | arguments | result, `{"error": msg}`, or Null |
/// | `decision` | `decision` | `{"options", "choice"}` | rationale |
/// | `query` | `query` | the query | results |
/// | custom kind | the kind | data | Null |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanItem {
    /// Span number within the run.
    pub seq: u64,
    /// Parent's number.
    pub parent: Option<u64>,
    /// Depth (0 for a root).
    pub depth: u64,
    /// Kind name.
    pub kind: String,
    /// Name (see the table).
    pub name: String,
    /// Arguments (see the table).
    pub arguments: Value,
    /// Outcome (see the table).
    pub outcome: Value,
    /// Attributes.
    pub attributes: std::collections::BTreeMap<String, Value>,
}

/// The run's own spans in one namespace, in tree pre-order (each span
/// followed by its subtree, children in recording order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceView {
    /// Namespace.
    pub ns: Namespace,
    /// Spans in pre-order.
    pub spans: Vec<SpanItem>,
}

/// Everything a run left, per primitive, without wall-clock times.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    /// KV entries, in key order.
    pub kv: Vec<KvItem>,
    /// The run's own event logs, by namespace.
    pub events: Vec<EventLogView>,
    /// State machines, in key order.
    pub state_machines: Vec<MachineItem>,
    /// The run's own trace trees, by namespace.
    pub traces: Vec<TraceView>,
}

impl RunView {
    /// Read `state`, the replay of `run`, through the primitives.
    pub fn of(state: &RunState, run: RunId) -> Result<RunView> {
        let mut reader = StateReader::new(state, run);
        Ok(RunView {
            kv: kv_items(state),
            events: event_logs(state, run, &mut reader)?,
            state_machines: machines(state, run, &mut reader)?,
            traces: traces(state, run, &mut reader)?,
        })
    }
}

/// True if a view covers this key (everything but event and trace
/// records outside the run's own scope, and run index records).
pub fn covered_by_view(key: &RunKey) -> bool {
    match key.tag {
        TypeTag::Kv | TypeTag::State => true,
        TypeTag::Event | TypeTag::Trace => key.scope == RunScope::Own,
        TypeTag::Run => false,
    }
}

fn kv_items(state: &RunState) -> Vec<KvItem> {
    state
        .of_tag(TypeTag::Kv)
        .map(|(k, v)| KvItem {
            ns: k.ns.clone(),
            scope: k.scope,
            key: String::from_utf8_lossy(&k.user).into_owned(),
            value: v.clone(),
        })
        .collect()
}

/// Namespaces where the run has own-scope keys of `tag`, in order.
fn own_namespaces(state: &RunState, tag: TypeTag) -> BTreeSet<Namespace> {
    state
        .of_tag(tag)
        .filter(|(k, _)| k.scope == RunScope::Own)
        .map(|(k, _)| k.ns.clone())
        .collect()
}

fn event_logs(state: &RunState, run: RunId, r: &mut StateReader<'_>) -> Result<Vec<EventLogView>> {
    let mut logs = Vec::new();
    for ns in own_namespaces(state, TypeTag::Event) {
        let events = EventLog::new(ns.clone(), run)
            .read(r, ..)?
            .into_iter()
            .map(|e| EventItem {
                seq: e.seq,
                event_type: e.event_type.to_string(),
                payload: e.payload,
            })
            .collect();
        logs.push(EventLogView { ns, events });
    }
    Ok(logs)
}

fn machines(state: &RunState, run: RunId, r: &mut StateReader<'_>) -> Result<Vec<MachineItem>> {
    let mut out = Vec::new();
    for (k, _) in state.of_tag(TypeTag::State) {
        let name = String::from_utf8_lossy(&k.user).into_owned();
        let machines = match k.scope {
            RunScope::Shared => StateMachines::shared(k.ns.clone()),
            RunScope::Own => StateMachines::run(k.ns.clone(), run),
            RunScope::Run(other) => StateMachines::run(k.ns.clone(), other),
        };
        let read = machines.read_state(r, &name)?;
        out.push(MachineItem {
            ns: k.ns.clone(),
            scope: k.scope,
            name,
            state: read.value,
            version: read.version,
        });
    }
    Ok(out)
}

fn traces(state: &RunState, run: RunId, r: &mut StateReader<'_>) -> Result<Vec<TraceView>> {
    let mut out = Vec::new();
    for ns in own_namespaces(state, TypeTag::Trace) {
        let mut spans = Vec::new();
        let mut stack: Vec<_> = TraceStore::new(ns.clone(), run).tree(r)?;
        stack.reverse();
        while let Some(node) = stack.pop() {
            stack.extend(node.children.into_iter().rev());
            spans.push(span_item(node.span));
        }
        out.push(TraceView { ns, spans });
    }
    Ok(out)
}

fn span_item(span: rewinddb_primitives::Span) -> SpanItem {
    let kind = span.kind.name().to_string();
    let (name, arguments, outcome) = match span.kind {
        SpanKind::ToolCall {
            tool,
            arguments,
            outcome,
        } => {
            let outcome = match outcome {
                Some(Ok(v)) => v,
                Some(Err(e)) => object([("error", Value::from(e))]),
                None => Value::Null,
            };
            (tool, arguments, outcome)
        }
        SpanKind::Decision {
            options,
            choice,
            rationale,
        } => {
            let args = object([("options", Value::from(options)), ("choice", choice)]);
            ("decision".to_string(), args, Value::from(rationale))
        }
        SpanKind::Query { query, results } => (
            "query".to_string(),
            Value::from(query),
            Value::from(results),
        ),
        SpanKind::Custom { kind, data } => (kind, data, Value::Null),
    };
    SpanItem {
        seq: span.id.seq,
        parent: span.parent.map(|p| p.seq),
        depth: span.depth,
        kind,
        name,
        arguments,
        outcome,
        attributes: span.attributes,
    }
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::from(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
}

/// One line saying what a write did, per the primitives' encodings, or
/// None for their internal records (log and trace heads, child links).
/// For reports and tools that list a run's steps.
pub fn describe_write(w: &crate::replay::Write) -> Option<String> {
    let user = &w.key.user;
    let seq = || {
        let bytes: [u8; 8] = user.get(1..9)?.try_into().ok()?;
        Some(u64::from_be_bytes(bytes))
    };
    let text = String::from_utf8_lossy(user);
    let Some(value) = &w.value else {
        return Some(format!("{:?} {text} deleted", w.key.tag));
    };
    let json = |v: &Value| v.to_json().to_string();
    Some(match w.key.tag {
        TypeTag::Kv => format!("kv {}/{text} = {}", scope_name(w.key.scope), json(value)),
        TypeTag::State => match value.as_array() {
            Some([state, version, _]) => {
                format!("state {text} = {} (v{})", json(state), json(version))
            }
            _ => format!("state {text}"),
        },
        TypeTag::Event if user.len() == 9 && user[0] == b'e' => match value.as_array() {
            Some([t, payload, _, _]) => format!(
                "event #{} {} {}",
                seq()?,
                t.as_str().unwrap_or("?"),
                json(payload)
            ),
            _ => format!("event #{}", seq()?),
        },
        TypeTag::Trace if user.len() == 9 && user[0] == b's' => {
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or("?");
            let data = value.get("data").map(json).unwrap_or_default();
            let ended = value.get("end_ms").is_some_and(|v| !v.is_null());
            let end = if ended { " (ended)" } else { "" };
            format!("span #{} {kind} {data}{end}", seq()?)
        }
        TypeTag::Run => "run record".to_string(),
        TypeTag::Event | TypeTag::Trace => return None,
    })
}

fn scope_name(scope: RunScope) -> String {
    match scope {
        RunScope::Shared => "shared".into(),
        RunScope::Own => "run".into(),
        RunScope::Run(r) => format!("run:{r}"),
    }
}
