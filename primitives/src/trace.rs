//! [`TraceStore`]: a run's spans — tool calls, decisions, queries and
//! custom kinds — linked into a tree.
//!
//! ## Encoding (TypeTag::Trace, scope `Run(run)`)
//! - head record, user key `b"h"`: `Value::Bytes` of 8 bytes, the number
//!   of spans as a `u64` LE (span numbers are dense from 0, like event
//!   sequence numbers, so reading a span is a point lookup; concurrent
//!   recorders conflict on the head and one retries);
//! - span `seq`, user key `b"s"` + `seq` as a big-endian `u64`; value a
//!   `Value::Object` with `kind` (String), `parent` (Int seq or Null),
//!   `depth` (Int, 0 for a root), `start_ms` (Int), `end_ms` (Int or
//!   Null), `attrs` (Object) and `data` (Object, by kind: `tool_call`
//!   `{tool, arguments, result | error}`, `decision` `{options, choice,
//!   rationale}`, `query` `{query, results}`, custom `{data}`). The
//!   replay crate's digest relies on the `start_ms` and `end_ms` names;
//! - child link, user key `b"c"` + parent seq (BE u64) + child seq (BE
//!   u64), value `Null`: `children(parent)` is one ordered prefix scan.

use std::collections::BTreeMap;
use std::sync::Arc;

use rewinddb_engine::{
    Family, Key, Namespace, RunId, Scope, Transaction, TypeTag, Value, wall_clock_ms,
};

use crate::access::Reader;
use crate::error::{Error, Result, check_name};

/// Most attributes one span may carry.
pub const SPAN_ATTRIBUTES_COUNT_MAX: usize = 256;
/// Deepest a span may sit below its root (a root is at depth 0).
pub const SPAN_DEPTH_MAX: u64 = 256;

const HEAD_KEY: &[u8] = b"h";
const SPAN_PREFIX: u8 = b's';
const CHILD_PREFIX: u8 = b'c';
const RESERVED_KINDS: [&str; 3] = ["tool_call", "decision", "query"];

/// A span's id: its run and its number within the run's trace store of
/// one namespace (each namespace numbers its spans from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpanId {
    /// The run that recorded it.
    pub run: RunId,
    /// Its number (dense from 0 within the run).
    pub seq: u64,
}

/// What a span records.
#[derive(Clone, Debug, PartialEq)]
pub enum SpanKind {
    /// A tool call and, once known, its result or error.
    ToolCall {
        /// The tool's name.
        tool: String,
        /// Its arguments.
        arguments: Value,
        /// `Ok(result)`, `Err(message)`, or None while unknown.
        outcome: Option<std::result::Result<Value, String>>,
    },
    /// A decision among options.
    Decision {
        /// The options considered.
        options: Vec<Value>,
        /// The one chosen.
        choice: Value,
        /// Why.
        rationale: String,
    },
    /// A query (retrieval, search ...) and its results.
    Query {
        /// The query.
        query: String,
        /// What it returned.
        results: Vec<Value>,
    },
    /// Anything else, under a kind name of the caller's choosing.
    Custom {
        /// The kind's name (not `tool_call`, `decision` or `query`).
        kind: String,
        /// Its data.
        data: Value,
    },
}

impl SpanKind {
    /// The kind's name: `tool_call`, `decision`, `query` or the custom name.
    pub fn name(&self) -> &str {
        match self {
            SpanKind::ToolCall { .. } => "tool_call",
            SpanKind::Decision { .. } => "decision",
            SpanKind::Query { .. } => "query",
            SpanKind::Custom { kind, .. } => kind,
        }
    }
}

/// What [`TraceStore::record`] is given.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanSpec {
    /// What it records.
    pub kind: SpanKind,
    /// Its parent span (same run).
    pub parent: Option<SpanId>,
    /// Start time in wall-clock ms (None: now).
    pub start_ms: Option<u64>,
    /// End time in wall-clock ms (None: still open).
    pub end_ms: Option<u64>,
    /// Free-form attributes.
    pub attributes: BTreeMap<String, Value>,
}

impl SpanSpec {
    /// A span of `kind`, a root, starting now, open, no attributes.
    pub fn new(kind: SpanKind) -> SpanSpec {
        SpanSpec {
            kind,
            parent: None,
            start_ms: None,
            end_ms: None,
            attributes: BTreeMap::new(),
        }
    }

    /// A tool call with no outcome yet.
    pub fn tool_call(tool: impl Into<String>, arguments: impl Into<Value>) -> SpanSpec {
        SpanSpec::new(SpanKind::ToolCall {
            tool: tool.into(),
            arguments: arguments.into(),
            outcome: None,
        })
    }

    /// A decision.
    pub fn decision(
        options: Vec<Value>,
        choice: impl Into<Value>,
        rationale: impl Into<String>,
    ) -> SpanSpec {
        SpanSpec::new(SpanKind::Decision {
            options,
            choice: choice.into(),
            rationale: rationale.into(),
        })
    }

    /// A query and its results.
    pub fn query(query: impl Into<String>, results: Vec<Value>) -> SpanSpec {
        SpanSpec::new(SpanKind::Query {
            query: query.into(),
            results,
        })
    }

    /// A custom kind.
    pub fn custom(kind: impl Into<String>, data: impl Into<Value>) -> SpanSpec {
        SpanSpec::new(SpanKind::Custom {
            kind: kind.into(),
            data: data.into(),
        })
    }

    /// Set the parent.
    #[must_use]
    pub fn parent(mut self, parent: SpanId) -> SpanSpec {
        self.parent = Some(parent);
        self
    }

    /// Set the start time.
    #[must_use]
    pub fn start_ms(mut self, ms: u64) -> SpanSpec {
        self.start_ms = Some(ms);
        self
    }

    /// Set the end time (the span is recorded already ended).
    #[must_use]
    pub fn end_ms(mut self, ms: u64) -> SpanSpec {
        self.end_ms = Some(ms);
        self
    }

    /// Add an attribute.
    #[must_use]
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<Value>) -> SpanSpec {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// A recorded span.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// Its id.
    pub id: SpanId,
    /// Its parent.
    pub parent: Option<SpanId>,
    /// Distance from its root (0 for a root).
    pub depth: u64,
    /// What it records.
    pub kind: SpanKind,
    /// Start time, wall-clock ms.
    pub start_ms: u64,
    /// End time, wall-clock ms (None: still open).
    pub end_ms: Option<u64>,
    /// Attributes.
    pub attributes: BTreeMap<String, Value>,
}

/// A span with its subtree.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanTree {
    /// The span.
    pub span: Span,
    /// Its children, in recording order.
    pub children: Vec<SpanTree>,
}

/// The trace store of one run in one namespace. Holds no state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceStore {
    /// Its keys' family (namespace, the run's scope, `TypeTag::Trace`).
    family: Family,
    run: RunId,
}

impl TraceStore {
    /// The spans of `run` in `ns`.
    pub fn new(ns: Namespace, run: RunId) -> TraceStore {
        TraceStore {
            family: Family::new(ns, Scope::Run(run), TypeTag::Trace),
            run,
        }
    }

    fn key(&self, user: &[u8]) -> Key {
        self.family.key(user)
    }

    fn span_key(&self, seq: u64) -> Key {
        let mut user = [0u8; 9];
        user[0] = SPAN_PREFIX;
        user[1..].copy_from_slice(&seq.to_be_bytes());
        self.key(&user)
    }

    fn child_key(&self, parent: u64, child: Option<u64>) -> Key {
        let mut user = Vec::with_capacity(17);
        user.push(CHILD_PREFIX);
        user.extend_from_slice(&parent.to_be_bytes());
        if let Some(c) = child {
            user.extend_from_slice(&c.to_be_bytes());
        }
        self.key(&user)
    }

    /// Number of spans recorded.
    pub fn len<R: Reader + ?Sized>(&self, r: &mut R) -> Result<u64> {
        let key = self.key(HEAD_KEY);
        match r.read(&key)? {
            None => Ok(0),
            Some(v) => v
                .as_bytes()
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or_else(|| Error::malformed("trace head", &key, "not 8 bytes")),
        }
    }

    /// Record a span; returns its id. Its parent must be a span of the
    /// same run ([`Error::ParentInOtherRun`], [`Error::UnknownSpan`]).
    pub fn record(&self, txn: &mut Transaction, spec: SpanSpec) -> Result<SpanId> {
        check_spec(&spec)?;
        let depth = match spec.parent {
            None => 0,
            Some(p) => self.parent_depth(txn, p)? + 1,
        };
        if depth > SPAN_DEPTH_MAX {
            return Err(Error::InvalidArgument(format!(
                "span depth {depth} exceeds SPAN_DEPTH_MAX = {SPAN_DEPTH_MAX}"
            )));
        }
        let seq = self.len(txn)?;
        let span = Span {
            id: SpanId { run: self.run, seq },
            parent: spec.parent,
            depth,
            kind: spec.kind,
            start_ms: spec.start_ms.unwrap_or_else(wall_clock_ms),
            end_ms: spec.end_ms,
            attributes: spec.attributes,
        };
        // The span first: if it is too large nothing at all is buffered.
        txn.put(self.span_key(seq), encode(&span))?;
        if let Some(p) = spec.parent {
            txn.put(self.child_key(p.seq, Some(seq)), Value::Null)?;
        }
        txn.put(
            self.key(HEAD_KEY),
            Value::from(&(seq + 1).to_le_bytes()[..]),
        )?;
        Ok(span.id)
    }

    fn parent_depth(&self, txn: &mut Transaction, parent: SpanId) -> Result<u64> {
        if parent.run != self.run {
            return Err(Error::ParentInOtherRun {
                run: self.run,
                parent_run: parent.run,
                parent_seq: parent.seq,
            });
        }
        // Only the depth is needed: skip decoding the whole span.
        let key = self.span_key(parent.seq);
        let value = txn.get(&key)?.ok_or(Error::UnknownSpan {
            run: self.run,
            seq: parent.seq,
        })?;
        value
            .get("depth")
            .and_then(Value::as_i64)
            .and_then(|d| u64::try_from(d).ok())
            .ok_or_else(|| Error::malformed("span", &key, "no depth"))
    }

    fn require<R: Reader + ?Sized>(&self, r: &mut R, seq: u64) -> Result<Span> {
        self.get(r, seq)?
            .ok_or(Error::UnknownSpan { run: self.run, seq })
    }

    /// End span `seq` at `end_ms` (None: now). For a tool call, `outcome`
    /// records its result or error; other kinds take no outcome.
    pub fn end(
        &self,
        txn: &mut Transaction,
        seq: u64,
        end_ms: Option<u64>,
        outcome: Option<std::result::Result<Value, String>>,
    ) -> Result<Span> {
        let mut span = self.require(txn, seq)?;
        match (&mut span.kind, outcome) {
            (_, None) => {}
            (SpanKind::ToolCall { outcome, .. }, Some(o)) => *outcome = Some(o),
            (kind, Some(_)) => {
                return Err(Error::InvalidArgument(format!(
                    "span {seq} is a {} span: only tool calls take an outcome",
                    kind.name()
                )));
            }
        }
        span.end_ms = Some(end_ms.unwrap_or_else(wall_clock_ms));
        txn.put(self.span_key(seq), encode(&span))?;
        Ok(span)
    }

    /// Span `seq`, if recorded.
    pub fn get<R: Reader + ?Sized>(&self, r: &mut R, seq: u64) -> Result<Option<Span>> {
        let key = self.span_key(seq);
        match r.read(&key)? {
            None => Ok(None),
            Some(v) => decode(SpanId { run: self.run, seq }, &v)
                .map(Some)
                .ok_or_else(|| Error::malformed("span", &key, "unexpected fields")),
        }
    }

    /// Every span of the run, in recording order.
    pub fn spans<R: Reader + ?Sized>(&self, r: &mut R) -> Result<Vec<Span>> {
        let len = self.len(r)?;
        (0..len).map(|seq| self.require(r, seq)).collect()
    }

    /// The run's spans of kind `kind` (see [`SpanKind::name`]).
    pub fn by_kind<R: Reader + ?Sized>(&self, r: &mut R, kind: &str) -> Result<Vec<Span>> {
        let mut spans = self.spans(r)?;
        spans.retain(|s| s.kind.name() == kind);
        Ok(spans)
    }

    /// The children of span `parent`, in recording order.
    pub fn children<R: Reader + ?Sized>(&self, r: &mut R, parent: u64) -> Result<Vec<Span>> {
        self.require(r, parent)?;
        let prefix = self.child_key(parent, None);
        let links = r.scan(&prefix, None, usize::MAX)?;
        let mut spans = Vec::with_capacity(links.len());
        for (key, _) in links {
            let child: [u8; 8] = key
                .user()
                .get(9..17)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| Error::malformed("span link", &key, "not c + parent + child"))?;
            spans.push(self.require(r, u64::from_be_bytes(child))?);
        }
        Ok(spans)
    }

    /// The whole tree of the run: its root spans with their subtrees.
    pub fn tree<R: Reader + ?Sized>(&self, r: &mut R) -> Result<Vec<SpanTree>> {
        let spans = self.spans(r)?;
        // A child always has a larger number than its parent, so building
        // from the last span back finishes every subtree before its parent.
        let mut pending: BTreeMap<u64, Vec<SpanTree>> = BTreeMap::new();
        let mut roots = Vec::new();
        for span in spans.into_iter().rev() {
            let mut children = pending.remove(&span.id.seq).unwrap_or_default();
            children.reverse();
            let parent = span.parent;
            let node = SpanTree { span, children };
            match parent {
                Some(p) => pending.entry(p.seq).or_default().push(node),
                None => roots.push(node),
            }
        }
        roots.reverse();
        Ok(roots)
    }
}

fn check_spec(spec: &SpanSpec) -> Result<()> {
    match &spec.kind {
        SpanKind::ToolCall { tool, .. } => check_name("tool name", tool)?,
        SpanKind::Custom { kind, .. } => {
            check_name("span kind", kind)?;
            if RESERVED_KINDS.contains(&kind.as_str()) {
                return Err(Error::invalid_name(
                    "span kind",
                    kind,
                    "reserved for a built-in kind",
                ));
            }
        }
        SpanKind::Decision { .. } | SpanKind::Query { .. } => {}
    }
    if spec.attributes.len() > SPAN_ATTRIBUTES_COUNT_MAX {
        return Err(Error::InvalidArgument(format!(
            "{} attributes exceeds SPAN_ATTRIBUTES_COUNT_MAX = {SPAN_ATTRIBUTES_COUNT_MAX}",
            spec.attributes.len()
        )));
    }
    spec.attributes
        .keys()
        .try_for_each(|k| check_name("span attribute", k))
}

fn obj(fields: Vec<(&str, Value)>) -> Value {
    Value::Object(Arc::new(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    ))
}

fn opt_int(v: Option<u64>) -> Value {
    v.map_or(Value::Null, |x| Value::Int(x as i64))
}

fn encode_kind(kind: &SpanKind) -> Value {
    match kind {
        SpanKind::ToolCall {
            tool,
            arguments,
            outcome,
        } => {
            let mut f = vec![
                ("tool", Value::from(tool)),
                ("arguments", arguments.clone()),
            ];
            match outcome {
                Some(Ok(v)) => f.push(("result", v.clone())),
                Some(Err(e)) => f.push(("error", Value::from(e))),
                None => {}
            }
            obj(f)
        }
        SpanKind::Decision {
            options,
            choice,
            rationale,
        } => obj(vec![
            ("options", Value::from(options.clone())),
            ("choice", choice.clone()),
            ("rationale", Value::from(rationale)),
        ]),
        SpanKind::Query { query, results } => obj(vec![
            ("query", Value::from(query)),
            ("results", Value::from(results.clone())),
        ]),
        SpanKind::Custom { data, .. } => obj(vec![("data", data.clone())]),
    }
}

fn encode(span: &Span) -> Value {
    obj(vec![
        ("kind", Value::from(span.kind.name())),
        ("parent", opt_int(span.parent.map(|p| p.seq))),
        ("depth", Value::Int(span.depth as i64)),
        ("start_ms", Value::Int(span.start_ms as i64)),
        ("end_ms", opt_int(span.end_ms)),
        ("attrs", Value::from(span.attributes.clone())),
        ("data", encode_kind(&span.kind)),
    ])
}

fn decode_kind(name: &str, d: &Value) -> Option<SpanKind> {
    let text = |f: &str| d.get(f).and_then(Value::as_str).map(str::to_string);
    let list = |f: &str| d.get(f).and_then(Value::as_array).map(<[Value]>::to_vec);
    Some(match name {
        "tool_call" => SpanKind::ToolCall {
            tool: text("tool")?,
            arguments: d.get("arguments")?.clone(),
            outcome: match (d.get("result"), text("error")) {
                (Some(v), _) => Some(Ok(v.clone())),
                (None, Some(e)) => Some(Err(e)),
                (None, None) => None,
            },
        },
        "decision" => SpanKind::Decision {
            options: list("options")?,
            choice: d.get("choice")?.clone(),
            rationale: text("rationale")?,
        },
        "query" => SpanKind::Query {
            query: text("query")?,
            results: list("results")?,
        },
        custom => SpanKind::Custom {
            kind: custom.to_string(),
            data: d.get("data")?.clone(),
        },
    })
}

fn decode(id: SpanId, v: &Value) -> Option<Span> {
    let opt = |f: &str| -> Option<Option<u64>> {
        match v.get(f)? {
            Value::Null => Some(None),
            x => Some(Some(x.as_i64()? as u64)),
        }
    };
    Some(Span {
        id,
        parent: opt("parent")?.map(|seq| SpanId { run: id.run, seq }),
        depth: v.get("depth")?.as_i64()? as u64,
        kind: decode_kind(v.get("kind")?.as_str()?, v.get("data")?)?,
        start_ms: v.get("start_ms")?.as_i64()? as u64,
        end_ms: opt("end_ms")?,
        attributes: v.get("attrs")?.as_object()?.clone(),
    })
}
