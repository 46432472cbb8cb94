//! Results, BENCHMARKS.md and the SVG chart.

use std::fmt::Write as _;

use crate::{Opts, Res};

/// The engine every ratio is taken against.
pub const SUBJECT: &str = "rewinddb";

/// One measured quantity of one engine over the repetitions.
pub struct Row {
    /// "W1" .. "W10".
    pub workload: &'static str,
    /// What exactly was measured.
    pub case: String,
    /// Unit; ending in "/s" means throughput (higher is better).
    pub unit: &'static str,
    /// Engine label.
    pub engine: String,
    /// One value per repetition.
    pub values: Vec<f64>,
}

impl Row {
    /// Median over the repetitions.
    pub fn median(&self) -> f64 {
        median(&self.values)
    }
}

/// All measurements of a run, in the order first recorded.
#[derive(Default)]
pub struct Results {
    rows: Vec<Row>,
}

impl Results {
    /// Add one repetition's `value`.
    pub fn record(
        &mut self,
        workload: &'static str,
        case: &str,
        unit: &'static str,
        engine: &str,
        value: f64,
    ) {
        let found = self
            .rows
            .iter_mut()
            .find(|r| r.workload == workload && r.case == case && r.engine == engine);
        match found {
            Some(r) => r.values.push(value),
            None => self.rows.push(Row {
                workload,
                case: case.to_string(),
                unit,
                engine: engine.to_string(),
                values: vec![value],
            }),
        }
    }

    /// Median of one row, if measured.
    pub fn median(&self, workload: &str, case: &str, engine: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.workload == workload && r.case == case && r.engine.starts_with(engine))
            .map(Row::median)
    }

    /// Best median of a case among engines whose label starts with one of
    /// `prefixes`, with the engine label.
    fn best(&self, workload: &str, case: &str, prefixes: &[&str]) -> Option<(f64, String)> {
        self.rows
            .iter()
            .filter(|r| r.workload == workload && r.case == case)
            .filter(|r| prefixes.iter().any(|p| r.engine.starts_with(p)))
            .map(|r| (r.median(), r.engine.clone()))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// 1234567 -> "1.23M".
pub fn human(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        "n/a".into()
    } else if a >= 1e9 {
        format!("{:.2}G", x / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}K", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

const WORKLOADS: [(&str, &str); 10] = [
    ("W1", "bulk load (transactions of 10K writes)"),
    ("W2", "point get on a snapshot (refreshed every 1024 reads)"),
    (
        "W3",
        "YCSB, 2 threads, zipf 0.99, one single-key transaction per operation",
    ),
    ("W4", "single-key put transactions, 1 thread, no durability"),
    (
        "W5",
        "snapshot reader beside a writer (pairs checked for torn views)",
    ),
    (
        "W6",
        "read-modify-write of hot keys, 2 threads, retried on conflict",
    ),
    ("W7", "transactions reading 4 keys and writing 2, 2 threads"),
    ("W8", "durable commits"),
    (
        "W9",
        "recovery: reopen until the first read answers, each reopen in a fresh process (after a sync of what was written)",
    ),
    (
        "W10",
        "heap bytes per key (counting allocator; at most 250K keys) and RSS",
    ),
];

/// A target and whether the run met it.
struct Target {
    what: &'static str,
    figure: String,
    met: Option<bool>,
}

/// Everything after this line in an existing BENCHMARKS.md (the analysis of
/// missed targets, written by people) is kept when the file is regenerated.
pub const NOTES_MARKER: &str = "<!-- notes: kept when this file is regenerated -->";

/// The hand-written notes of an existing report, marker included.
fn kept_notes(path: &std::path::Path) -> String {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    match old.find(NOTES_MARKER) {
        Some(i) => old[i..].to_string(),
        None => format!("{NOTES_MARKER}\n"),
    }
}

/// Write BENCHMARKS.md and the chart.
pub fn write(opts: &Opts, results: &Results, elapsed: f64) -> Res<()> {
    let notes = kept_notes(&opts.out);
    let mut md = String::new();
    header(&mut md, opts, elapsed)?;
    targets_section(&mut md, opts, results)?;
    for (w, title) in WORKLOADS {
        workload_table(&mut md, results, w, title)?;
    }
    md.push_str(&notes);
    std::fs::write(&opts.out, md)?;
    std::fs::write(&opts.svg, chart(results))?;
    Ok(())
}

fn header(md: &mut String, opts: &Opts, elapsed: f64) -> Res<()> {
    let svg_name = opts
        .svg
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cmd = if opts.quick {
        "cargo bench --bench peers -- --quick"
    } else {
        "cargo bench --bench peers"
    };
    writeln!(
        md,
        "# rewinddb benchmarks: beside redb, fjall and surrealkv\n"
    )?;
    writeln!(
        md,
        "Generated by the peer harness (`benches/peers/`), {} UTC, in {elapsed:.0} s.\n",
        utc_now()
    )?;
    writeln!(
        md,
        "- Regenerate: `{cmd}` (writes this file and `{svg_name}`)."
    )?;
    writeln!(
        md,
        "- Engine micro-benchmarks: `cargo bench --bench engine`."
    )?;
    writeln!(md, "- Machine: {}.", machine())?;
    writeln!(
        md,
        "- Peers as built (from `Cargo.lock`): {}.",
        peer_versions()
    )?;
    writeln!(
        md,
        "- Load average when the run ended (1, 5, 15 min): {}. Other processes share these \
         cores; figures from a loaded machine are lower and noisier for every engine alike.",
        load_average()
    )?;
    writeln!(
        md,
        "- Size: {} keys of 16 bytes, values of 100 bytes; {} repetitions (W9: at least {}), \
         engines interleaved (A B C .. A B C ..), {:.1} s per timed measurement; medians shown, \
         spread = min..max.",
        opts.keys,
        opts.reps,
        crate::durable::W9_REPS_MIN,
        opts.secs
    )?;
    writeln!(
        md,
        "- Modes: W1-W7 run every engine in its **async** mode (redb `Durability::None`, fjall \
         no persist (`durability(None)`), surrealkv `Durability::Eventual`; rewinddb and the \
         ceilings are in memory). Each engine reads and writes through its borrowing API \
         where it has one: rewinddb `get_with` and `put_ref` (the value is copied once, into \
         its version), redb `&[u8]` keys and values, scc `peek_with`. W8 uses **strict** \
         (redb `Immediate`, fjall \
         `PersistMode::SyncData`, surrealkv `Immediate`), and for its batched case rewinddb's \
         `Durability::Batched` (a sync at least every 10 ms or 1 MiB, from its flusher \
         thread) beside the peers' async mode with a second thread making every commit so far \
         durable every 10 ms (they have no batched mode: redb an empty `Immediate` commit, fjall \
         `persist(SyncData)`, surrealkv `flush_wal(true)`). fjall runs with optimistic \
         transactions, once with its block cache sized to twice the data set and once with its \
         defaults; surrealkv's cache is sized likewise, its async commit driven by a tokio \
         runtime; redb on its in-memory backend and on a file."
    )?;
    writeln!(
        md,
        "- Ceilings (`scc::HashIndex`, `RwLock<HashMap>`) have no transactions and no \
         snapshots: W5 does not apply to them, and their W6/W7 \"transactions\" are plain \
         updates under their own locks."
    )?;
    writeln!(
        md,
        "- Ratio column: rewinddb's median ÷ this engine's median, from the same run (for \
         throughput, > 1 means rewinddb is faster; for bytes, µs and s/GB, < 1 means rewinddb \
         is better).\n"
    )?;
    writeln!(md, "![throughput per workload and engine]({svg_name})\n")?;
    Ok(())
}

fn targets(opts: &Opts, r: &Results) -> Vec<Target> {
    let mut t = Vec::new();
    let pct = |x: f64| format!("{x:.2}x");
    let size = format!("{} keys", opts.keys);
    for case in [
        "1 thread(s), uniform",
        "2 thread(s), uniform",
        "1 thread(s), zipf 0.99",
        "2 thread(s), zipf 0.99",
    ] {
        let rw = r.median("W2", case, SUBJECT);
        let scc = r.median("W2", case, "scc::HashIndex");
        let redb = r.median("W2", case, "redb (in-memory)");
        if let (Some(rw), Some(scc), Some(redb)) = (rw, scc, redb) {
            t.push(Target {
                what: "W2 point get >= 0.8x scc::HashIndex and >= 8x redb in-memory",
                figure: format!(
                    "{case}, {size}: {} gets/s = {} of scc, {} of redb",
                    human(rw),
                    pct(rw / scc),
                    pct(rw / redb)
                ),
                met: Some(rw >= 0.8 * scc && rw >= 8.0 * redb),
            });
        }
    }
    let w4 = "single-key put txn, 1 thread";
    if let (Some(rw), Some((skv, _)), Some((redb, redb_name))) = (
        r.median("W4", w4, SUBJECT),
        r.best("W4", w4, &["surrealkv"]),
        r.best("W4", w4, &["redb"]),
    ) {
        t.push(Target {
            what: "W4 put txn >= 1.5M/s, >= 10x surrealkv, >= 25x redb",
            figure: format!(
                "{} txn/s; {} of surrealkv; {} of the faster redb ({redb_name})",
                human(rw),
                pct(rw / skv),
                pct(rw / redb)
            ),
            met: Some(rw >= 1.5e6 && rw >= 10.0 * skv && rw >= 25.0 * redb),
        });
    }
    for hot in ["1 hot key(s), 2 threads", "16 hot key(s), 2 threads"] {
        let aborts = format!("{hot}: aborts");
        let share = format!("{hot}: slower thread's share");
        if let (Some(rw), Some(ab), Some((peer, peer_name))) = (
            r.median("W6", hot, SUBJECT),
            r.median("W6", &aborts, SUBJECT),
            r.best("W6", hot, &["redb", "fjall", "surrealkv"]),
        ) {
            let share = r.median("W6", &share, SUBJECT).map_or(String::new(), |s| {
                format!("; slower thread's share {s:.1}%")
            });
            t.push(Target {
                what: "W6 hot-key RMW >= 10x the best transactional peer, aborts <= 50%",
                figure: format!(
                    "{hot}: {} commits/s = {} of {peer_name}; aborts {ab:.1}%{share}",
                    human(rw),
                    pct(rw / peer)
                ),
                met: Some(rw >= 10.0 * peer && ab <= 50.0),
            });
        }
    }
    if let (Some(kept), Some(writer)) = (
        r.median("W5", "reader kept (beside/alone)", SUBJECT),
        r.median("W5", "writer beside reader", SUBJECT),
    ) {
        let torn = r
            .median("W5", "torn pairs seen", SUBJECT)
            .unwrap_or(f64::NAN);
        t.push(Target {
            what: "W5 reader keeps >= 0.7x solo rate while the writer keeps >= 0.5M/s",
            figure: format!(
                "reader kept {}; writer {} txn/s (2-key txns); torn pairs: {torn:.0}",
                pct(kept),
                human(writer)
            ),
            met: Some(kept >= 0.7 && writer >= 0.5e6 && torn == 0.0),
        });
    }
    durable_targets(r, &mut t);
    if let (Some(rw), Some(map), Some(rw_gc)) = (
        r.median("W10", "heap bytes/key, 1 version", SUBJECT),
        r.median("W10", "heap bytes/key, 1 version", "RwLock<HashMap>"),
        r.median("W10", "heap bytes/key, 10 overwrites + GC", SUBJECT),
    ) {
        t.push(Target {
            what: "W10 heap/key <= 1.5x HashMap with one version, and back to that after GC",
            figure: format!(
                "{rw:.0} B/key vs HashMap {map:.0} B/key = {}; after 10 overwrites + GC {rw_gc:.0} B/key",
                pct(rw / map)
            ),
            met: Some(rw <= 1.5 * map && rw_gc <= 1.5 * map),
        });
    }
    t
}

fn durable_targets(r: &Results, t: &mut Vec<Target>) {
    let raw = r.median("W8", "strict, 1 thread", "raw append");
    match (r.median("W8", "strict, 1 thread", SUBJECT), raw) {
        (Some(rw), Some(raw)) => {
            let many = r
                .median("W8", "strict, 64 committers", SUBJECT)
                .unwrap_or(f64::NAN);
            t.push(Target {
                what: "W8 strict 1 thread >= 1.0x raw fdatasync loop; 64 committers >= 50x 1 thread",
                figure: format!(
                    "1 thread {} commits/s = {:.2}x raw; 64 committers {} = {:.1}x 1 thread",
                    human(rw),
                    rw / raw,
                    human(many),
                    many / rw
                ),
                met: Some(rw >= raw && many >= 50.0 * rw),
            });
        }
        _ => t.push(Target {
            what: "W8 strict 1 thread >= 1.0x raw fdatasync loop; 64 committers >= 50x 1 thread",
            figure: "not measured for rewinddb: no durable rewinddb engine in this build \
                     (peers and raw ceilings are in the W8 table)"
                .into(),
            met: None,
        }),
    }
    let case = r
        .rows
        .iter()
        .find(|x| x.workload == "W9" && x.case.starts_with("reopen to first read"))
        .map(|x| x.case.clone())
        .unwrap_or_default();
    let case = case.as_str();
    match r.median("W9", case, SUBJECT) {
        Some(rw) => {
            let fj = r.median("W9", case, "fjall").unwrap_or(f64::NAN);
            let skv = r.median("W9", case, "surrealkv").unwrap_or(f64::NAN);
            t.push(Target {
                what: "W9 recovery <= 3 s/GB and faster than fjall and surrealkv",
                figure: format!("{rw:.2} s/GB; fjall {fj:.2}, surrealkv {skv:.2}"),
                met: Some(rw <= 3.0 && rw < fj && rw < skv),
            });
        }
        None => t.push(Target {
            what: "W9 recovery <= 3 s/GB and faster than fjall and surrealkv",
            figure: "not measured for rewinddb: no durable rewinddb engine in this build".into(),
            met: None,
        }),
    }
}

fn targets_section(md: &mut String, opts: &Opts, r: &Results) -> Res<()> {
    writeln!(md, "## Targets (issue 6)\n")?;
    if opts.quick {
        writeln!(
            md,
            "Quick run: sizes are far below the targets' 1M keys; figures are a smoke test.\n"
        )?;
    }
    writeln!(md, "| Target | Figure (medians, same run) | Met |")?;
    writeln!(md, "|---|---|---|")?;
    for t in targets(opts, r) {
        let met = match t.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        };
        writeln!(md, "| {} | {} | {met} |", t.what, t.figure)?;
    }
    writeln!(md)?;
    Ok(())
}

fn workload_table(md: &mut String, r: &Results, w: &str, title: &str) -> Res<()> {
    let rows: Vec<&Row> = r.rows.iter().filter(|x| x.workload == w).collect();
    writeln!(md, "## {w}: {title}\n")?;
    if rows.is_empty() {
        writeln!(md, "Not run.\n")?;
        return Ok(());
    }
    writeln!(md, "| Case | Engine | Median | Spread | rewinddb ÷ this |")?;
    writeln!(md, "|---|---|---:|---:|---:|")?;
    let mut cases: Vec<&str> = Vec::new();
    for row in &rows {
        if !cases.contains(&row.case.as_str()) {
            cases.push(&row.case);
        }
    }
    for case in cases {
        let subject = rows
            .iter()
            .find(|x| x.case == case && x.engine.starts_with(SUBJECT))
            .map(|x| x.median());
        for row in rows.iter().filter(|x| x.case == case) {
            let min = row.values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = row.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let ratio = match subject {
                Some(s) if !row.engine.starts_with(SUBJECT) && row.median() != 0.0 => {
                    format!("{:.2}", s / row.median())
                }
                _ => String::new(),
            };
            writeln!(
                md,
                "| {case} | {} | {} {} | {}..{} | {ratio} |",
                row.engine,
                human(row.median()),
                row.unit,
                human(min),
                human(max)
            )?;
        }
    }
    writeln!(md)?;
    Ok(())
}

const PALETTE: [&str; 10] = [
    "#d62728", "#1f77b4", "#aec7e8", "#2ca02c", "#98df8a", "#9467bd", "#7f7f7f", "#bcbd22",
    "#ff7f0e", "#17becf",
];

/// Horizontal grouped bars of every throughput row, log scale.
fn chart(r: &Results) -> String {
    let rows: Vec<&Row> = r.rows.iter().filter(|x| x.unit.ends_with("/s")).collect();
    let mut engines: Vec<&str> = Vec::new();
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for row in &rows {
        if !engines.contains(&row.engine.as_str()) {
            engines.push(&row.engine);
        }
        if !groups.contains(&(row.workload, row.case.as_str())) {
            groups.push((row.workload, &row.case));
        }
    }
    let (label_w, plot_w, bar_h, gap) = (300.0, 640.0, 7.0, 10.0);
    let (lo, hi) = (1.0_f64, 1e9_f64);
    let x =
        |v: f64| label_w + plot_w * (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10());
    let legend_h = 16.0 * engines.len() as f64 + 10.0;
    let mut svg = String::new();
    let mut y = 40.0;
    let mut body = String::new();
    for (w, case) in &groups {
        let members: Vec<&&Row> = rows
            .iter()
            .filter(|x| x.workload == *w && x.case == *case)
            .collect();
        let group_h = bar_h * members.len() as f64;
        let _ = writeln!(
            body,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{w} {}</text>"#,
            label_w - 6.0,
            y + group_h / 2.0 + 4.0,
            xml(case)
        );
        for row in members {
            let color =
                PALETTE[engines.iter().position(|e| *e == row.engine).unwrap_or(0) % PALETTE.len()];
            let _ = writeln!(
                body,
                r#"<rect x="{label_w}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}: {}</title></rect>"#,
                x(row.median()) - label_w,
                bar_h - 1.0,
                xml(&row.engine),
                human(row.median())
            );
            y += bar_h;
        }
        y += gap;
    }
    let height = y + legend_h + 30.0;
    let width = label_w + plot_w + 30.0;
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0}" font-family="sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="20" font-size="14">Throughput per workload and engine (operations/s, log scale, medians)</text>"#
    );
    for p in 0..=9 {
        let v = 10f64.powi(p);
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="30" x2="{0:.1}" y2="{1:.1}" stroke="#ddd"/><text x="{0:.1}" y="{2:.1}" font-size="10" text-anchor="middle">1e{p}</text>"##,
            x(v),
            y,
            y + 12.0
        );
    }
    svg.push_str(&body);
    for (i, e) in engines.iter().enumerate() {
        let ly = y + 30.0 + 16.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{label_w}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{}" y="{:.1}" font-size="11">{}</text>"#,
            ly,
            PALETTE[i % PALETTE.len()],
            label_w + 18.0,
            ly + 10.0,
            xml(e)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {mem_gb:.0} GB RAM, Linux {}, {rustc}, release profile",
        kernel.trim()
    )
}

/// The version of each peer crate (and the tokio that drives surrealkv) that
/// this binary was built with, read from the workspace's `Cargo.lock` at
/// compile time: the lock, not `Cargo.toml`, says what was measured.
fn peer_versions() -> String {
    const LOCK: &str = include_str!("../../Cargo.lock");
    ["redb", "fjall", "surrealkv", "scc", "tokio"]
        .iter()
        .map(|name| format!("{name} {}", locked_versions(LOCK, name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every version of package `name` in the lock file `lock`, joined by "/"
/// ("?" if none): a package entry is a `name = ".."` line followed by its
/// `version = ".."` line.
fn locked_versions(lock: &str, name: &str) -> String {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    let mut found = Vec::new();
    while let Some(line) = lines.next() {
        if line.trim() == wanted
            && let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
        {
            found.push(v.trim_matches('"').to_string());
        }
    }
    if found.is_empty() {
        "?".into()
    } else {
        found.join("/")
    }
}

/// `/proc/loadavg`'s three averages, or "unknown".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// "YYYY-MM-DD HH:MM" now, UTC.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}
