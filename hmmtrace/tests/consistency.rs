//! Every view of a capture says the same: per kind, the count, pages, retries, min, max and
//! p50 read from `report` (text and JSON), the TUI's state, the Prometheus exposition and sums
//! over the JSONL export agree: exactly, except percentiles (within the histogram's stated
//! precision) and text (within its 4 printed significant digits).
//!
//! Captures: every built-in scenario (the engine), `tests/data/vm-workload-6.12.hmt` (the
//! kernel, test_hmm under the VM's deterministic workload), `tests/data/host-compaction.hmt`
//! (the kernel, system migrations while compacting), and the capture this run's VM check just
//! made, when `cargo xtask test` passes it in `HMMTRACE_VM_CAPTURE`.

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use hmmtrace::event::Class;
use hmmtrace::metrics::Metrics;
use hmmtrace::pipeline::source::capture::CaptureSource;
use hmmtrace::pipeline::{self, Control, Tee};
use hmmtrace::tui::app::App;
use hmmtrace::tui::TuiSink;

/// One kind's figures, as one view gives them; `None` where the view does not show it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Figures {
    count: u64,
    pages: u64,
    retries: u64,
    min: Option<u64>,
    max: Option<u64>,
    p50: Option<u64>,
}

type View = BTreeMap<String, Figures>;

fn hmmtrace(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_hmmtrace"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "hmmtrace {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn report_json(cap: &Path) -> View {
    let v: serde_json::Value = serde_json::from_str(&hmmtrace(&[
        "report",
        cap.to_str().unwrap(),
        "--format",
        "json",
    ]))
    .unwrap();
    let mut view = View::new();
    for k in v["kinds"].as_array().unwrap() {
        let l = &k["latency_ns"];
        let ns = |f: &str| l.get(f).and_then(serde_json::Value::as_u64);
        view.insert(
            k["kind"].as_str().unwrap().to_string(),
            Figures {
                count: k["count"].as_u64().unwrap(),
                pages: k["pages"].as_u64().unwrap(),
                retries: k["retries"].as_u64().unwrap_or(0),
                min: ns("min"),
                max: ns("max"),
                p50: ns("p50"),
            },
        );
    }
    view
}

/// A duration as the text report prints it ("1.234us") in ns, and how far from the exact
/// value 4 significant digits may be.
fn parse_ns(s: &str) -> Option<(f64, f64)> {
    if s == "-" {
        return None;
    }
    let (digits, scale) = [("ns", 1.0), ("us", 1e3), ("ms", 1e6), ("s", 1e9)]
        .iter()
        .find_map(|(unit, scale)| {
            let d = s.strip_suffix(unit)?;
            d.parse::<f64>().ok().map(|_| (d, *scale))
        })
        .unwrap_or_else(|| panic!("not a duration: {s}"));
    let decimals = digits.split_once('.').map_or(0, |(_, f)| f.len());
    let half_ulp = 0.5 * scale / 10f64.powi(decimals as i32);
    Some((digits.parse::<f64>().unwrap() * scale, half_ulp))
}

/// The text report's rows: `kind count rate/s pages retries min p50 p90 p99 p99.9 max ...`.
fn report_text(cap: &Path) -> BTreeMap<String, Vec<String>> {
    let text = hmmtrace(&["report", cap.to_str().unwrap()]);
    let header = text
        .lines()
        .find(|l| l.starts_with("kind "))
        .unwrap_or_else(|| panic!("no table:\n{text}"));
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        &columns[..7],
        ["kind", "count", "rate/s", "pages", "retries", "min", "p50"]
    );
    assert_eq!(columns[10], "max");
    text.lines()
        .filter_map(|l| {
            let f: Vec<String> = l.split_whitespace().map(String::from).collect();
            Class::from_name(f.first()?)?;
            Some((f[0].clone(), f))
        })
        .collect()
}

/// The TUI's state and the metrics' exposition, fed by one pass of the pipeline.
fn tui_and_metrics(cap: &Path) -> (View, String) {
    let app = Arc::new(Mutex::new(App::new("t".into(), false)));
    let mut metrics = Metrics::new("test");
    let source = CaptureSource::open(&[cap.to_path_buf()]).unwrap().quiet();
    pipeline::run(
        source,
        Tee::new()
            .with(TuiSink::new(Arc::clone(&app)))
            .with(&mut metrics),
        None,
        &Control::without_signals(None),
    )
    .unwrap();
    let app = hmmtrace::tui::lock(&app);
    let mut tui = View::new();
    for class in Class::ALL {
        let count = app.total(class);
        if count == 0 {
            continue;
        }
        let l = app.latency.get(&class).map(|l| l.since_start());
        let timed = l.filter(|l| !l.is_empty());
        // The top table's rows (by process) add up to the same.
        let rows = app.by_process.rows.values().chain([&app.by_process.other]);
        let top_count: u64 = rows.clone().map(|r| r.by_class[class.index()]).sum();
        assert_eq!(top_count, count, "{} top table", class.name());
        tui.insert(
            class.name().into(),
            Figures {
                count,
                pages: app.pages[class.index()],
                retries: if class == Class::RangeFault {
                    app.rates[&hmmtrace::tui::app::Series::Retries].total
                } else {
                    0
                },
                min: timed.map(|l| l.min),
                max: timed.map(|l| l.max),
                p50: timed.map(|l| l.quantile(0.5)),
            },
        );
    }
    let top_pages: u64 = app
        .by_process
        .rows
        .values()
        .chain([&app.by_process.other])
        .map(|r| r.pages)
        .sum();
    assert_eq!(top_pages, app.pages.iter().sum::<u64>(), "top table pages");
    (tui, metrics.encode())
}

/// `hmmtrace_events_total`, `_pages_total` and the retries counter; p50 is left out (the
/// buckets say only which power of two it is in: see [`p50_bucket`]).
fn exposition(text: &str) -> View {
    let mut view = View::new();
    let value = |line: &str| -> u64 { line.rsplit(' ').next().unwrap().parse().unwrap() };
    for line in text.lines() {
        for (metric, pages) in [
            ("hmmtrace_events_total", false),
            ("hmmtrace_pages_total", true),
        ] {
            let Some(rest) = line.strip_prefix(&format!("{metric}{{kind=\"")) else {
                continue;
            };
            let kind = rest.split('"').next().unwrap().to_string();
            let f = view.entry(kind).or_default();
            if pages {
                f.pages = value(line);
            } else {
                f.count = value(line);
            }
        }
    }
    view.retain(|_, f| f.count > 0);
    let retries = text
        .lines()
        .find(|l| l.starts_with("hmmtrace_range_fault_retries_total "))
        .map(value)
        .expect("the retries counter");
    if let Some(f) = view.get_mut("range_fault") {
        f.retries = retries;
    } else {
        assert_eq!(retries, 0);
    }
    view
}

/// The (lower, upper] bounds in seconds of the Prometheus bucket holding `kind`'s median.
fn p50_bucket(text: &str, kind: &str) -> (f64, f64) {
    let prefix = format!("hmmtrace_latency_seconds_bucket{{kind=\"{kind}\",le=\"");
    let buckets: Vec<(f64, u64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            Some((le.parse().unwrap(), count.parse().unwrap()))
        })
        .collect();
    let total = buckets.last().unwrap().1;
    let rank = total.div_ceil(2).max(1);
    let i = buckets.iter().position(|(_, c)| *c >= rank).unwrap();
    (if i == 0 { 0.0 } else { buckets[i - 1].0 }, buckets[i].0)
}

/// Sums over the JSONL export, and the exact p50 (nearest rank) of its durations.
fn jsonl(cap: &Path) -> View {
    let mut view = View::new();
    let mut durations: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut last_ts = 0;
    let mut backwards = 0;
    for line in hmmtrace(&["export", cap.to_str().unwrap()]).lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let kind = r["kind"].as_str().unwrap().to_string();
        let n = |f: &str| r.get(f).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let pages = match kind.as_str() {
            "migration" => n("migrated"),
            "range_fault" => n("npages"),
            "page_free" => 1 << n("order"),
            "device_fault" => 1,
            "system_migration" => n("succeeded"),
            "lost" => n("count"),
            _ => 0,
        };
        let ts = n("ts_ns");
        backwards += u64::from(ts < last_ts);
        last_ts = ts;
        let f = view.entry(kind.clone()).or_default();
        f.count += 1;
        f.pages += pages;
        f.retries += n("retries");
        if let Some(d) = r.get("duration_ns").and_then(serde_json::Value::as_u64) {
            durations.entry(kind).or_default().push(d);
        }
    }
    assert_eq!(backwards, 0, "the export is in timestamp order");
    for (kind, mut d) in durations {
        d.sort_unstable();
        let f = view.get_mut(&kind).unwrap();
        f.min = d.first().copied();
        f.max = d.last().copied();
        f.p50 = Some(d[d.len().div_ceil(2) - 1]);
    }
    view
}

/// Within the histogram's precision: 3 significant digits put a value within 0.1% of its
/// bucket's.
fn close(percentile: u64, exact: u64) -> bool {
    (percentile as f64 - exact as f64).abs() <= exact as f64 * 0.001 + 1.0
}

fn check(cap: &Path) {
    let name = cap.file_name().unwrap().to_string_lossy().to_string();
    let json = report_json(cap);
    let text = report_text(cap);
    let (tui, exposition_text) = tui_and_metrics(cap);
    let metrics = exposition(&exposition_text);
    let exported = jsonl(cap);
    assert!(!json.is_empty(), "{name}: no kinds");
    let kinds = |v: &View| v.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        kinds(&json),
        kinds(&exported),
        "{name}: report vs export kinds"
    );
    assert_eq!(kinds(&json), kinds(&tui), "{name}: report vs TUI kinds");
    assert_eq!(
        kinds(&json),
        kinds(&metrics),
        "{name}: report vs metrics kinds"
    );
    assert_eq!(
        kinds(&json),
        text.keys().cloned().collect::<Vec<_>>(),
        "{name}: JSON vs text kinds"
    );
    for (kind, j) in &json {
        let at = format!("{name} {kind}");
        let e = &exported[kind];
        // Exact figures: the same in the export's sums, the report, the TUI and the metrics.
        assert_eq!(
            (j.count, j.pages, j.retries, j.min, j.max),
            (e.count, e.pages, e.retries, e.min, e.max),
            "{at}: report JSON vs JSONL sums (count, pages, retries, min, max)"
        );
        let t = &tui[kind];
        assert_eq!(
            (t.count, t.pages, t.retries, t.min, t.max, t.p50),
            (j.count, j.pages, j.retries, j.min, j.max, j.p50),
            "{at}: TUI vs report (the same histogram, so p50 too)"
        );
        let m = &metrics[kind];
        assert_eq!(
            (m.count, m.pages, m.retries),
            (j.count, j.pages, j.retries),
            "{at}: /metrics vs report"
        );
        // Percentiles: within the histogram's precision of the exact nearest rank.
        if let (Some(p), Some(exact)) = (j.p50, e.p50) {
            assert!(close(p, exact), "{at}: p50 {p} vs exact {exact}");
            let (lo, hi) = p50_bucket(&exposition_text, kind);
            let s = exact as f64 / 1e9;
            assert!(
                lo < s && s <= hi,
                "{at}: /metrics puts the median in ({lo}, {hi}]; the exact one is {exact} ns"
            );
        } else {
            assert_eq!(j.p50, e.p50, "{at}: timed in one view only");
        }
        // The text: integers exactly, durations to their 4 printed significant digits.
        let row = &text[kind];
        let int = |i: usize| row[i].parse::<u64>().unwrap_or(0);
        assert_eq!(
            (int(1), int(3), int(4)),
            (j.count, j.pages, j.retries),
            "{at}: text {row:?}"
        );
        for (i, exact) in [(5, j.min), (6, j.p50), (10, j.max)] {
            match (parse_ns(&row[i]), exact) {
                (Some((shown, slack)), Some(exact)) => assert!(
                    (shown - exact as f64).abs() <= slack,
                    "{at}: text column {i} says {} for {exact} ns",
                    row[i]
                ),
                (None, None) => {}
                (shown, exact) => panic!("{at}: text column {i} {shown:?} vs {exact:?}"),
            }
        }
    }
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn every_view_of_every_built_in_scenario_agrees() {
    let dir = tempfile::tempdir().unwrap();
    for (name, _) in hmmtrace::scenario::BUILTIN {
        let cap = dir.path().join(format!("{name}.hmt"));
        hmmtrace(&[
            "sim",
            "-s",
            name,
            "--seed",
            "3",
            "-o",
            cap.to_str().unwrap(),
        ]);
        check(&cap);
    }
}

#[test]
fn every_view_of_the_vms_deterministic_workload_agrees() {
    check(&data("vm-workload-6.12.hmt"));
    match std::env::var_os("HMMTRACE_VM_CAPTURE") {
        Some(fresh) => check(Path::new(&fresh)),
        None => eprintln!(
            "HMMTRACE_VM_CAPTURE is not set (only `cargo xtask test` as root runs the VM): \
             the committed capture was checked, not a fresh one"
        ),
    }
}

#[test]
fn every_view_of_a_host_capture_with_system_migrations_agrees() {
    let cap = data("host-compaction.hmt");
    check(&cap);
    let json = report_json(&cap);
    assert!(
        json["system_migration"].pages > 0,
        "system migrations move pages, and every view counts them"
    );
}
