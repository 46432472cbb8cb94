//! [`RunDiff`]: what two runs left differently, per primitive.
//!
//! Both runs are compared by their views ([`crate::RunView`]: the replayed
//! state read back through the primitives, without wall-clock times),
//! keys taken relative to each run ([`crate::RunKey`]), so run `a`'s own
//! event log lines up with run `b`'s. Run index records (`TypeTag::Run`)
//! are bookkeeping about the runs and are not compared. [`diff_states`]
//! compares raw keys, for engine-level use.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use rewinddb_engine::{Namespace, RunId, TypeTag, Value};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, is_digested};
use crate::error::Result;
use crate::key::{RunKey, RunScope};
use crate::replay::{ReplayedRun, RunState};
use crate::view::{
    EventItem, EventLogView, KvItem, MachineItem, SpanItem, TraceView, covered_by_view,
};

/// A key and the value one run left there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The key.
    pub key: RunKey,
    /// The value.
    pub value: Value,
}

/// A key both runs left, with different values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Changed {
    /// The key.
    pub key: RunKey,
    /// Run `a`'s value.
    pub a: Value,
    /// Run `b`'s value.
    pub b: Value,
}

/// Differences between two runs over the keys of one primitive.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyDiff {
    /// Keys only run `a` left.
    pub only_a: Vec<Entry>,
    /// Keys only run `b` left.
    pub only_b: Vec<Entry>,
    /// Keys both left, with different values.
    pub changed: Vec<Changed>,
}

impl KeyDiff {
    /// True if the runs left the same keys and values.
    pub fn is_empty(&self) -> bool {
        self.only_a.is_empty() && self.only_b.is_empty() && self.changed.is_empty()
    }

    /// Number of differences.
    pub fn len(&self) -> usize {
        self.only_a.len() + self.only_b.len() + self.changed.len()
    }
}

/// The differences of one primitive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TagDiff {
    /// The primitive.
    pub tag: TypeTag,
    /// Its differing keys.
    pub keys: KeyDiff,
}

/// One item both runs hold differently, or only one holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Change<T> {
    /// Only run `a` left it.
    OnlyA(T),
    /// Only run `b` left it.
    OnlyB(T),
    /// Both left it, differently.
    Changed {
        /// Run `a`'s.
        a: T,
        /// Run `b`'s.
        b: T,
    },
}

/// Where two runs' event logs in one namespace first diverge: the first
/// sequence number whose (type, payload) differ, or where one log ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventLogDiff {
    /// Namespace.
    pub ns: Namespace,
    /// First diverging sequence number.
    pub seq: u64,
    /// Run `a`'s event there (None: its log ends before).
    pub a: Option<EventItem>,
    /// Run `b`'s event there.
    pub b: Option<EventItem>,
    /// Length of `a`'s log.
    pub len_a: usize,
    /// Length of `b`'s log.
    pub len_b: usize,
}

/// Where two runs' trace trees in one namespace first diverge: the first
/// span, in tree pre-order, whose depth, kind, name or arguments differ,
/// or where one tree ends. Outcomes, attributes and times are not compared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceDiff {
    /// Namespace.
    pub ns: Namespace,
    /// Position in pre-order (0 = the first root).
    pub position: usize,
    /// Run `a`'s span there (None: its tree ends before).
    pub a: Option<SpanItem>,
    /// Run `b`'s span there.
    pub b: Option<SpanItem>,
    /// Spans of `a` in that namespace.
    pub len_a: usize,
    /// Spans of `b` in that namespace.
    pub len_b: usize,
}

/// Everything two runs left differently, per primitive. `Display` prints a
/// readable report; serde gives a machine-readable one. Run index records
/// are not compared (they describe the runs, not what they did).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunDiff {
    /// The first run.
    pub a: RunId,
    /// The second run.
    pub b: RunId,
    /// Digest of run `a`.
    pub digest_a: Digest,
    /// Digest of run `b`.
    pub digest_b: Digest,
    /// Steps of run `a`.
    pub steps_a: usize,
    /// Steps of run `b`.
    pub steps_b: usize,
    /// KV entries only in a, only in b, or changed.
    pub kv: Vec<Change<KvItem>>,
    /// Event logs that diverge, one entry per namespace.
    pub events: Vec<EventLogDiff>,
    /// State machines only in a, only in b, or changed (state or version).
    pub state_machines: Vec<Change<MachineItem>>,
    /// Trace trees that diverge, one entry per namespace.
    pub traces: Vec<TraceDiff>,
    /// Raw keys no view covers (event or trace records in another scope).
    pub other: Vec<TagDiff>,
}

impl RunDiff {
    /// Compare two replayed runs.
    pub fn between(a: &ReplayedRun, b: &ReplayedRun) -> Result<RunDiff> {
        let (va, vb) = (a.view()?, b.view()?);
        let mut other = diff_states(a.state(), b.state());
        for t in &mut other {
            t.keys.only_a.retain(|e| !covered_by_view(&e.key));
            t.keys.only_b.retain(|e| !covered_by_view(&e.key));
            t.keys.changed.retain(|c| !covered_by_view(&c.key));
        }
        other.retain(|t| !t.keys.is_empty());
        Ok(RunDiff {
            a: a.run(),
            b: b.run(),
            digest_a: a.digest(),
            digest_b: b.digest(),
            steps_a: a.steps().len(),
            steps_b: b.steps().len(),
            kv: changes(&va.kv, &vb.kv, |i| (i.ns.clone(), i.scope, i.key.clone())),
            events: event_diffs(&va.events, &vb.events),
            state_machines: changes(&va.state_machines, &vb.state_machines, |i| {
                (i.ns.clone(), i.scope, i.name.clone())
            }),
            traces: trace_diffs(&va.traces, &vb.traces),
            other,
        })
    }

    /// True if both runs left the same state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of differences reported (a diverging log or tree counts once).
    pub fn len(&self) -> usize {
        self.kv.len()
            + self.events.len()
            + self.state_machines.len()
            + self.traces.len()
            + self.other.iter().map(|t| t.keys.len()).sum::<usize>()
    }
}

/// Items keyed by `key` on both sides: only in a, only in b, or changed.
fn changes<T: Clone + PartialEq, K: Ord>(
    a: &[T],
    b: &[T],
    key: impl Fn(&T) -> K,
) -> Vec<Change<T>> {
    let mut both: BTreeMap<K, (Option<&T>, Option<&T>)> = BTreeMap::new();
    for x in a {
        both.entry(key(x)).or_default().0 = Some(x);
    }
    for x in b {
        both.entry(key(x)).or_default().1 = Some(x);
    }
    both.into_values()
        .filter_map(|pair| match pair {
            (Some(x), None) => Some(Change::OnlyA(x.clone())),
            (None, Some(y)) => Some(Change::OnlyB(y.clone())),
            (Some(x), Some(y)) if x != y => Some(Change::Changed {
                a: x.clone(),
                b: y.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// A namespace with run `a`'s and run `b`'s items there.
type Paired<'v, I> = (Namespace, &'v [I], &'v [I]);

/// Pair items by namespace: (ns, a's, b's), empty where one has none.
fn by_ns<'v, T, I>(
    a: &'v [T],
    b: &'v [T],
    ns: impl Fn(&T) -> &Namespace,
    items: impl Fn(&'v T) -> &'v [I],
) -> Vec<Paired<'v, I>> {
    let mut both: BTreeMap<Namespace, Paired<'v, I>> = BTreeMap::new();
    for x in a {
        let n = ns(x).clone();
        both.entry(n.clone()).or_insert((n, &[], &[])).1 = items(x);
    }
    for x in b {
        let n = ns(x).clone();
        both.entry(n.clone()).or_insert((n, &[], &[])).2 = items(x);
    }
    both.into_values().collect()
}

fn event_diffs(a: &[EventLogView], b: &[EventLogView]) -> Vec<EventLogDiff> {
    by_ns(a, b, |l| &l.ns, |l| &l.events)
        .into_iter()
        .filter_map(|(ns, ea, eb)| {
            let i = first_divergence(ea, eb, |x, y| x == y)?;
            Some(EventLogDiff {
                ns,
                seq: i as u64,
                a: ea.get(i).cloned(),
                b: eb.get(i).cloned(),
                len_a: ea.len(),
                len_b: eb.len(),
            })
        })
        .collect()
}

fn trace_diffs(a: &[TraceView], b: &[TraceView]) -> Vec<TraceDiff> {
    let same = |x: &SpanItem, y: &SpanItem| {
        (x.depth, &x.kind, &x.name, &x.arguments) == (y.depth, &y.kind, &y.name, &y.arguments)
    };
    by_ns(a, b, |t| &t.ns, |t| &t.spans)
        .into_iter()
        .filter_map(|(ns, sa, sb)| {
            let i = first_divergence(sa, sb, same)?;
            Some(TraceDiff {
                ns,
                position: i,
                a: sa.get(i).cloned(),
                b: sb.get(i).cloned(),
                len_a: sa.len(),
                len_b: sb.len(),
            })
        })
        .collect()
}

/// First index where `a` and `b` differ (by `same`) or one ends.
fn first_divergence<T>(a: &[T], b: &[T], same: impl Fn(&T, &T) -> bool) -> Option<usize> {
    let common = a.len().min(b.len());
    (0..common)
        .find(|&i| !same(&a[i], &b[i]))
        .or((a.len() != b.len()).then_some(common))
}

/// Merge-walk two states (both ordered by [`RunKey`]) into per-tag diffs.
pub fn diff_states(a: &RunState, b: &RunState) -> Vec<TagDiff> {
    let mut out: Vec<TagDiff> = Vec::new();
    let mut ia = a.iter().filter(|(k, _)| is_digested(k.tag)).peekable();
    let mut ib = b.iter().filter(|(k, _)| is_digested(k.tag)).peekable();
    loop {
        let order = match (ia.peek(), ib.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        match order {
            Ordering::Less => {
                if let Some((k, v)) = ia.next() {
                    section(&mut out, k.tag).only_a.push(entry(k, v));
                }
            }
            Ordering::Greater => {
                if let Some((k, v)) = ib.next() {
                    section(&mut out, k.tag).only_b.push(entry(k, v));
                }
            }
            Ordering::Equal => {
                if let (Some((k, va)), Some((_, vb))) = (ia.next(), ib.next()) {
                    if va != vb {
                        section(&mut out, k.tag).changed.push(Changed {
                            key: k.clone(),
                            a: va.clone(),
                            b: vb.clone(),
                        });
                    }
                }
            }
        }
    }
    out.retain(|t| !t.keys.is_empty());
    out
}

/// The diff of `tag`, appended if the last section is another tag's
/// (keys arrive in tag order, so each tag gets one section).
fn section(out: &mut Vec<TagDiff>, tag: TypeTag) -> &mut KeyDiff {
    if out.last().is_none_or(|t| t.tag != tag) {
        out.push(TagDiff {
            tag,
            keys: KeyDiff::default(),
        });
    }
    let last = out.len() - 1;
    &mut out[last].keys
}

fn entry(key: &RunKey, value: &Value) -> Entry {
    Entry {
        key: key.clone(),
        value: value.clone(),
    }
}

/// A value as compact JSON, for reports.
pub(crate) fn show(v: &Value) -> String {
    v.to_json().to_string()
}

impl fmt::Display for RunDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "diff of run a = {} and run b = {}", self.a, self.b)?;
        writeln!(
            f,
            "  a: {} steps, digest {};  b: {} steps, digest {}",
            self.steps_a, self.digest_a, self.steps_b, self.digest_b
        )?;
        if self.is_empty() {
            return writeln!(f, "  no differences");
        }
        for c in &self.kv {
            write_change(
                f,
                "kv",
                c,
                |i| format!("{}/{}/{}", i.ns, scope(i.scope), i.key),
                |i| show(&i.value),
            )?;
        }
        for e in &self.events {
            writeln!(
                f,
                "  events {}: diverge at seq {} (a has {}, b has {} events)",
                e.ns, e.seq, e.len_a, e.len_b
            )?;
            writeln!(
                f,
                "    a: {}",
                e.a.as_ref().map_or("(end of log)".into(), show_event)
            )?;
            writeln!(
                f,
                "    b: {}",
                e.b.as_ref().map_or("(end of log)".into(), show_event)
            )?;
        }
        for c in &self.state_machines {
            write_change(
                f,
                "state machine",
                c,
                |i| format!("{}/{}/{}", i.ns, scope(i.scope), i.name),
                |i| format!("{} (version {})", show(&i.state), i.version),
            )?;
        }
        for t in &self.traces {
            writeln!(
                f,
                "  trace {}: diverges at span #{} in tree order (a has {}, b has {} spans)",
                t.ns, t.position, t.len_a, t.len_b
            )?;
            writeln!(
                f,
                "    a: {}",
                t.a.as_ref().map_or("(end of tree)".into(), show_span)
            )?;
            writeln!(
                f,
                "    b: {}",
                t.b.as_ref().map_or("(end of tree)".into(), show_span)
            )?;
        }
        for t in &self.other {
            writeln!(
                f,
                "  other {:?} keys: {} difference(s)",
                t.tag,
                t.keys.len()
            )?;
        }
        Ok(())
    }
}

fn write_change<T>(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    change: &Change<T>,
    name: impl Fn(&T) -> String,
    value: impl Fn(&T) -> String,
) -> fmt::Result {
    match change {
        Change::Changed { a, b } => {
            writeln!(
                f,
                "  {what} changed  {}: {} -> {}",
                name(a),
                value(a),
                value(b)
            )
        }
        Change::OnlyA(a) => writeln!(f, "  {what} only a   {} = {}", name(a), value(a)),
        Change::OnlyB(b) => writeln!(f, "  {what} only b   {} = {}", name(b), value(b)),
    }
}

fn scope(s: RunScope) -> String {
    match s {
        RunScope::Shared => "shared".into(),
        RunScope::Own => "run".into(),
        RunScope::Run(r) => format!("run:{r}"),
    }
}

fn show_event(e: &EventItem) -> String {
    format!("#{} {} {}", e.seq, e.event_type, show(&e.payload))
}

fn show_span(s: &SpanItem) -> String {
    format!(
        "{} {} {} (depth {})",
        s.kind,
        s.name,
        show(&s.arguments),
        s.depth
    )
}
