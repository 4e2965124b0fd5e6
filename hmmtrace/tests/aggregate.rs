//! In-kernel aggregates (`--aggregate`) stand for the events they count: a snapshot made from
//! a stream of events exactly as the programs make it (`aggregate::Aggregator`, the same
//! buckets) gives, in the report, the metrics and the TUI, the figures the events themselves
//! give: counts, pages, retries, min, max and sums exactly, percentiles within the stated
//! 0.8 % (plus the histograms' own 0.1 %), no standard deviation. And a capture keeps the
//! snapshots. The kernel side of the same claim is a VM check (aggregated and recorded counts
//! of the deterministic workload agree).

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use std::sync::Arc;

use hmmtrace::aggregate::Aggregator;
use hmmtrace::capture::{Reader, Writer};
use hmmtrace::event::{Class, Event};
use hmmtrace::metrics::Metrics;
use hmmtrace::pipeline::{Sink, Status};
use hmmtrace::report::Summary;
use hmmtrace::scenario::{Scenario, BUILTIN};
use hmmtrace::tui::app::App;

fn events(name: &str) -> (hmmtrace::capture::CaptureHeader, Vec<Event>) {
    let s = Scenario::load(name).unwrap();
    let mut v = Vec::new();
    s.run(s.seed, &mut |e| {
        v.push(*e);
        Ok(())
    })
    .unwrap();
    (hmmtrace::pipeline::source::engine::header(&s, s.seed), v)
}

/// The snapshot of `events`, cut in two: one part way, one at the end (a stream of snapshots
/// is cumulative).
fn snapshots(events: &[Event]) -> [Arc<hmmtrace::aggregate::Snapshot>; 2] {
    let mut a = Aggregator::default();
    let half = events.len() / 2;
    events[..half].iter().for_each(|e| a.add(e));
    let first = Arc::new(a.snapshot());
    events[half..].iter().for_each(|e| a.add(e));
    [first, Arc::new(a.snapshot())]
}

fn feed(
    sink: &mut dyn Sink,
    header: &hmmtrace::capture::CaptureHeader,
    s: &[Arc<hmmtrace::aggregate::Snapshot>],
) {
    sink.begin(header).unwrap();
    for snap in s {
        sink.status(&Status::Aggregate(Arc::clone(snap))).unwrap();
    }
    sink.finish().unwrap();
}

#[test]
fn the_report_reads_aggregates_as_the_events_they_count() {
    for (name, _) in BUILTIN {
        let (header, ev) = events(name);
        let mut direct = Summary::default();
        direct.begin(&header).unwrap();
        ev.iter().for_each(|e| direct.add(e));
        let mut agg = Summary::default();
        feed(&mut agg, &header, &snapshots(&ev));
        assert_eq!(agg.events, direct.events, "{name}");
        for class in Class::ALL {
            let (Some(d), Some(a)) = (direct.kinds.get(&class), agg.kinds.get(&class)) else {
                assert_eq!(direct.count(class), agg.count(class), "{name} {class:?}");
                continue;
            };
            let what = format!("{name} {}", class.name());
            assert_eq!(
                (a.count, a.pages, a.retries),
                (d.count, d.pages, d.retries),
                "{what}"
            );
            let (dl, al) = (&d.latency, &a.latency);
            assert_eq!(al.count(), dl.count(), "{what}");
            assert_eq!(al.sum(), dl.sum(), "{what}");
            assert_eq!((al.min(), al.max()), (dl.min(), dl.max()), "{what}");
            assert_eq!(al.stddev(), None, "{what}: no spread is kept");
            for q in [0.5, 0.9, 0.99] {
                let (x, y) = (dl.quantile(q), al.quantile(q));
                assert_eq!(x.is_some(), y.is_some(), "{what} p{}", q * 100.0);
                if let (Some(x), Some(y)) = (x, y) {
                    let tolerance = (x as f64 * (0.008 + 0.002)).max(1.0);
                    assert!(
                        (x as f64 - y as f64).abs() <= tolerance,
                        "{what} p{}: events {x}, aggregates {y}",
                        q * 100.0
                    );
                }
            }
        }
    }
}

/// The lines of an exposition that count (not the latency histogram, whose factor-of-two
/// buckets a midpoint may straddle).
fn counters(m: &Metrics) -> Vec<String> {
    m.encode()
        .lines()
        .filter(|l| {
            !l.starts_with('#')
                && [
                    "hmmtrace_events_total",
                    "hmmtrace_pages_total",
                    "hmmtrace_range_fault_retries_total",
                    "hmmtrace_device_events_total",
                    "hmmtrace_process_events_total",
                    "hmmtrace_latency_seconds_count",
                ]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(String::from)
        .collect()
}

#[test]
fn metrics_and_the_tui_count_aggregates_as_the_events() {
    for name in ["gpu-stream", "mirror_busy", "multiple_devices", "fork_cow"] {
        let (header, ev) = events(name);
        let snaps = snapshots(&ev);
        let mut direct = Metrics::new("t");
        direct.begin(&header).unwrap();
        ev.iter().for_each(|e| direct.event(e).unwrap());
        let mut agg = Metrics::new("t");
        feed(&mut agg, &header, &snaps);
        assert_eq!(counters(&agg), counters(&direct), "{name}");

        let mut app = App::new("t".into(), false);
        app.begin(&header);
        app.ingest(&ev, ev.last().map_or(0, |e| e.ts_ns));
        let mut from_snaps = App::new("t".into(), false);
        from_snaps.begin(&header);
        for s in &snaps {
            from_snaps.status(&Status::Aggregate(Arc::clone(s)));
        }
        assert_eq!(from_snaps.totals, app.totals, "{name}");
        assert_eq!(from_snaps.pages, app.pages, "{name}");
        let rows = |a: &App| {
            let mut r: Vec<(String, u64, u64)> = a
                .by_process
                .rows
                .iter()
                .map(|(k, v)| (k.clone(), v.events, v.pages))
                .collect();
            r.sort();
            r
        };
        assert_eq!(rows(&from_snaps), rows(&app), "{name}");
        let rate_total = |a: &App| -> u64 { a.rates.values().map(|r| r.total).sum() };
        assert_eq!(rate_total(&from_snaps), rate_total(&app), "{name}");
    }
}

#[test]
fn a_capture_keeps_its_snapshots_in_order_with_its_events() {
    let (header, ev) = events("migrate_fault");
    let snaps = snapshots(&ev);
    let mut w = Writer::new(Vec::new(), &header).unwrap();
    let half = ev.len() / 2;
    ev[..half].iter().for_each(|e| w.write_event(e).unwrap());
    w.status(&Status::Aggregate(Arc::clone(&snaps[0]))).unwrap();
    ev[half..].iter().for_each(|e| w.write_event(e).unwrap());
    w.status(&Status::Aggregate(Arc::clone(&snaps[1]))).unwrap();
    let bytes = w.into_inner().unwrap();
    let mut r = Reader::new(&bytes[..], "mem").unwrap();
    let (mut buf, mut dropped) = (Vec::new(), 0);
    let (mut seen, mut got) = (Vec::new(), Vec::new());
    while r.next_block(&mut buf, &mut dropped).unwrap() {
        seen.extend_from_slice(&buf);
        if let Some(Status::Aggregate(s)) = r.take_status() {
            got.push((seen.len(), s));
        }
    }
    assert_eq!(seen, ev);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0, &got[0].1), (half, &snaps[0]));
    assert_eq!((got[1].0, &got[1].1), (ev.len(), &snaps[1]));
    assert_eq!(dropped, 0);
}
