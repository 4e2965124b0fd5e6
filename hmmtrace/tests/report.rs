//! Report figures checked against an independent computation over the same events.

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use hmmtrace::event::{Body, Class, Comm, Event, Migration};
use hmmtrace::report::Summary;

fn event(ts: u64, d: u64) -> Event {
    Event {
        ts_ns: ts,
        duration_ns: Some(d),
        cpu: 0,
        tgid: 1,
        pid: 1,
        comm: Comm::new("t"),
        unknown: 0,
        body: Body::Migration(Migration::default()),
    }
}

/// Nearest-rank percentile of sorted values.
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[test]
fn percentiles_match_a_sort_within_histogram_precision() {
    let s = hmmtrace::scenario::Scenario::load("gpu-stream").unwrap();
    let mut sum = Summary::default();
    let mut durations: std::collections::BTreeMap<Class, Vec<u64>> = Default::default();
    s.run(5, &mut |e| {
        sum.add(e);
        durations
            .entry(e.class())
            .or_default()
            .push(e.duration_ns.unwrap());
        Ok(())
    })
    .unwrap();
    for (kind, mut v) in durations {
        v.sort_unstable();
        let h = &sum.kinds[&kind].latency;
        assert_eq!(h.count(), v.len() as u64);
        for q in [0.5, 0.9, 0.99, 0.999] {
            let want = nearest_rank(&v, q) as f64;
            let got = h.quantile(q).unwrap() as f64;
            // 3 significant digits: a recorded value is within 0.1% of its bucket's value.
            assert!(
                (got - want).abs() <= want * 0.001 + 1.0,
                "{kind:?} q={q}: {got} vs {want}"
            );
        }
        // The extremes, the sum and the mean are exact.
        assert_eq!(h.min(), Some(v[0]), "{kind:?} min");
        assert_eq!(h.max(), v.last().copied(), "{kind:?} max");
        assert_eq!(h.quantile(1.0), v.last().copied());
        assert_eq!(h.sum(), v.iter().map(|x| u128::from(*x)).sum::<u128>());
        assert_eq!(sum.kinds[&kind].count, v.len() as u64);
    }
}

#[test]
fn rate_is_count_over_span() {
    let mut s = Summary::default();
    for i in 0..=10u64 {
        s.add(&event(i * 100_000_000, 10)); // one every 100 ms, for 1 s
    }
    assert_eq!(s.span_ns(), 1_000_000_010);
    let r = s.rate(Class::Migration);
    assert!((r - 11.0 / 1.00000001).abs() < 1e-6, "{r}");
}

#[test]
fn lost_records_are_counted_per_probe() {
    let mut s = Summary::default();
    let mut e = event(1, 1);
    e.duration_ns = None;
    e.body = Body::Lost(hmmtrace::event::Lost {
        count: 5,
        probe: hmmtrace_common::ProbeId::PageFree as u32,
        _pad: 0,
    });
    s.add(&e);
    s.add(&e);
    assert_eq!(s.total_lost(), 10);
    assert_eq!(s.lost["page_free"], 10);
    assert!(hmmtrace::report::text::render(&s, "t").contains("LOST EVENTS: 10"));
}

#[test]
fn groups_partition_the_events_of_each_kind() {
    use hmmtrace::report::GroupBy;
    let s = hmmtrace::scenario::Scenario::load("multiple_devices").unwrap();
    let header = hmmtrace::pipeline::source::engine::header(&s, 1);
    for by in [
        GroupBy::Pid,
        GroupBy::Comm,
        GroupBy::Device,
        GroupBy::Symbol,
    ] {
        let mut sum = Summary::grouped(by, &header, false);
        let mut durations: std::collections::BTreeMap<(String, Class), Vec<u64>> =
            Default::default();
        s.run(1, &mut |e| {
            sum.add(e);
            Ok(())
        })
        .unwrap();
        for (kind, k) in &sum.kinds {
            let in_groups: u64 = sum
                .groups
                .values()
                .filter_map(|g| g.get(kind))
                .map(|g| g.count)
                .sum();
            assert_eq!(in_groups, k.count, "{by:?} {kind:?}");
        }
        if by == GroupBy::Device {
            assert!(sum.groups.contains_key("dmirror0") && sum.groups.contains_key("dmirror1"));
            // A group's percentiles against a sort of its own events.
            let mut names = hmmtrace::labels::DeviceNames::new(&header, false);
            s.run(1, &mut |e| {
                let g = e
                    .body
                    .device()
                    .and_then(|o| names.name(o))
                    .unwrap_or("(none)")
                    .to_string();
                durations
                    .entry((g, e.class()))
                    .or_default()
                    .push(e.duration_ns.unwrap());
                Ok(())
            })
            .unwrap();
            for ((g, kind), mut v) in durations {
                v.sort_unstable();
                let h = &sum.groups[&g][&kind].latency;
                for q in [0.5, 0.99, 1.0] {
                    let want = nearest_rank(&v, q) as f64;
                    let got = h.quantile(q).unwrap() as f64;
                    assert!((got - want).abs() <= want * 0.001 + 1.0, "{g} {kind:?} {q}");
                }
            }
        }
    }
}

#[test]
fn hgrm_is_the_histograms_percentile_distribution() {
    let s = hmmtrace::scenario::Scenario::load("gpu-stream").unwrap();
    let mut sum = Summary::default();
    s.run(2, &mut |e| {
        sum.add(e);
        Ok(())
    })
    .unwrap();
    let text = hmmtrace::report::hgrm::render(&sum).unwrap();
    let d = &sum.kinds[&Class::Migration].latency;
    let h = d.histogram();
    let section: Vec<&str> = text
        .split("# ")
        .find(|s| s.starts_with("migration:"))
        .unwrap()
        .lines()
        .collect();
    assert!(section[1].trim_start().starts_with("Value"), "{section:?}");
    let rows: Vec<(f64, f64, u64)> = section
        .iter()
        .filter(|l| !l.starts_with('#') && l.split_whitespace().count() >= 3)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f[0].parse().ok()?, f[1].parse().ok()?, f[2].parse().ok()?))
        })
        .collect();
    let median = rows.iter().find(|r| r.1 >= 0.5).unwrap();
    assert_eq!((median.0 * 1000.0).round() as u64, h.value_at_quantile(0.5));
    let last = rows.last().unwrap();
    assert_eq!((last.1, last.2), (1.0, h.len()));
    assert_eq!((last.0 * 1000.0).round() as u64, h.max());
    assert!(
        rows.windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].2 <= w[1].2),
        "monotonic"
    );
    assert!(text.contains(&format!("Total count    = {:>12}", h.len())));
    assert!(text.contains("SubBuckets     =         2048"));
}
