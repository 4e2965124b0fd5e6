//! The state's arithmetic: rates per second of the source's timeline, the rolling window,
//! bounded tables and log.

use super::*;
use hmmtrace_common::{DeviceFault, Lost, Migration, DIRECTION_TO_RAM};

const S: u64 = 1_000_000_000;

fn app() -> App {
    let (header, _) = crate::fixtures::scenario("migrate", 1);
    let mut app = App::new(String::new(), false);
    app.begin(&header);
    app
}

fn fault(ts: u64, dur: u64, tgid: u32) -> Event {
    let body = Body::DeviceFault(DeviceFault {
        address: 0x1000,
        pgmap_owner: 1,
        pgmap_ops: 1,
        result: 0,
        _pad: 0,
    });
    crate::fixtures::event(ts, Some(dur), tgid, body)
}

#[test]
fn rates_count_per_second_of_each_events_own_time() {
    let mut a = app();
    a.ingest(&[fault(0, 10, 1), fault(1, 10, 1)], 0);
    a.ingest(&[fault(S / 2, 10, 1)], S / 2);
    // Arrives after the clock moved on, but happened in the first second: counted there.
    a.ingest(&[fault(S + 1, 10, 1), fault(S - 1, 10, 1)], S + 1);
    let r = &a.rates[&Series::DeviceFault];
    assert_eq!(r.bins, [4, 1]);
    assert_eq!(r.current(), 4, "the last complete second");
    assert_eq!(a.current_rate(Series::DeviceFault), 4.0);
    // Three empty seconds pass: zeros, and the peak stays.
    a.advance(4 * S);
    let r = &a.rates[&Series::DeviceFault];
    assert_eq!(r.bins, [4, 1, 0, 0, 0]);
    assert_eq!((r.peak, r.total), (4, 5));
    assert_eq!(a.rates[&Series::ToDevice].total, 0);
    // The average over everything is what a report computes: 5 events over S + 1 ns.
    assert!((a.average_rate(Series::DeviceFault) - 5e9 / (S + 1) as f64).abs() < 1e-6);
}

#[test]
fn bins_can_be_shorter_than_a_second_and_rates_stay_per_second() {
    let mut a = app().with_bin(S / 20);
    a.ingest(&[fault(0, 10, 1), fault(1, 10, 1)], S / 20);
    assert_eq!(a.rates[&Series::DeviceFault].current(), 2);
    assert_eq!(
        a.current_rate(Series::DeviceFault),
        40.0,
        "2 in 50 ms is 40/s"
    );
}

#[test]
fn the_rolling_window_forgets_what_is_older_than_its_length_and_keeps_exact_extremes() {
    let mut a = app();
    a.ingest(&[fault(0, 1_000_000, 1)], 0);
    a.ingest(
        &[fault((WINDOW_BINS as u64 - 1) * S, 1_403, 1)],
        (WINDOW_BINS as u64 - 1) * S,
    );
    let l = &a.latency[&Class::DeviceFault];
    assert_eq!((l.window().count, l.since_start().count), (2, 2));
    assert_eq!(
        l.window().max,
        1_000_000,
        "exact, not the histogram's bucket edge"
    );
    a.advance(WINDOW_BINS as u64 * S);
    let l = &a.latency[&Class::DeviceFault];
    assert_eq!(l.window().count, 1, "the first second left the window");
    assert_eq!((l.window().min, l.window().max), (1_403, 1_403));
    assert_eq!(l.window().quantile(0.5), 1_403);
    assert_eq!(l.since_start().count, 2);
    // A long gap empties the window without looping once per second.
    a.advance(1_000_000 * S);
    assert_eq!(a.latency[&Class::DeviceFault].window().count, 0);
    assert_eq!(a.rates[&Series::DeviceFault].bins.len(), RATE_HISTORY);
}

#[test]
fn tables_and_log_are_bounded() {
    let mut a = app();
    let events: Vec<Event> = (0..TOP_CAPACITY as u32 + 10)
        .map(|t| fault(u64::from(t), 5, t + 1))
        .collect();
    a.ingest(&events, 0);
    assert_eq!(a.by_process.rows.len(), TOP_CAPACITY);
    assert_eq!(
        a.by_process.other.events, 10,
        "new keys past the cap fold into other"
    );
    let more: Vec<Event> = (0..LOG_CAPACITY as u64)
        .map(|t| fault(5_000 + t, 5, 1))
        .collect();
    a.ingest(&more, 0);
    assert_eq!(a.log.len(), LOG_CAPACITY);
    assert_eq!(a.log.back().unwrap().seq, a.events);
    assert_eq!(a.events, (TOP_CAPACITY + 10 + LOG_CAPACITY) as u64);
}

#[test]
fn the_log_is_in_timestamp_order_whatever_the_arrival_order() {
    let mut a = app();
    // A migration's fault-path record ends (and arrives) after the migration it ran.
    a.ingest(
        &[
            fault(30, 5, 1),
            fault(10, 50, 1),
            fault(20, 5, 1),
            fault(40, 5, 1),
        ],
        40,
    );
    let ts: Vec<u64> = a.log.iter().map(|e| e.event.ts_ns).collect();
    assert_eq!(ts, [10, 20, 30, 40]);
}

#[test]
fn migrations_split_by_direction_and_lost_counts_per_probe() {
    let mut a = app();
    let mut m = fault(0, 5, 1);
    m.body = Body::Migration(Migration {
        direction: DIRECTION_TO_RAM,
        migrated: 3,
        ..Default::default()
    });
    let mut l = fault(0, 5, 1);
    l.duration_ns = None;
    l.body = Body::Lost(Lost {
        count: 7,
        probe: 2,
        _pad: 0,
    });
    a.ingest(&[m, l], 0);
    assert_eq!(a.rates[&Series::ToRam].total, 1);
    assert_eq!(a.pages[Class::Migration.index()], 3);
    assert_eq!(a.lost["page_free"], 7);
    assert_eq!(a.total_lost(), 7);
    assert_eq!(a.by_device.rows.len(), 0, "neither names a device");
    a.clear();
    assert_eq!((a.events, a.total_lost(), a.log.len()), (0, 0, 0));
}

#[test]
fn callbacks_count_apart_from_invalidations_and_retries_have_a_series() {
    let mut a = app();
    let inv = |path| {
        let mut e = fault(0, 5, 1);
        e.body = Body::Invalidation(hmmtrace_common::Invalidation {
            path,
            ..Default::default()
        });
        e
    };
    let mut rf = fault(0, 5, 1);
    rf.body = Body::RangeFault(hmmtrace_common::RangeFault {
        retries: 3,
        npages: 8,
        ..Default::default()
    });
    a.ingest(
        &[
            inv(hmmtrace_common::INVALIDATE_RANGE_START),
            inv(hmmtrace_common::INVALIDATE_CALLBACK),
            inv(hmmtrace_common::INVALIDATE_CALLBACK),
            rf,
        ],
        0,
    );
    assert_eq!(a.total(Class::Invalidation), 1, "one invalidation");
    assert_eq!(
        a.total(Class::IntervalInvalidate),
        2,
        "that ran two callbacks"
    );
    assert_eq!(a.rates[&Series::Retries].total, 3);
    assert_eq!(a.rates[&Series::RangeFault].total, 1);
}

#[test]
fn the_generation_moves_only_when_what_is_shown_changes() {
    let mut a = app();
    a.ingest(&[], 0);
    let g = a.generation;
    // Ticks within a bin, with nothing new: nothing to redraw (an idle TUI draws nothing).
    a.ingest(&[], S / 4);
    a.ingest(&[], S / 2);
    assert_eq!(a.generation, g);
    a.ingest(&[fault(S / 2, 10, 1)], S / 2);
    assert!(a.generation > g, "events");
    let g = a.generation;
    a.ingest(&[], S + 1);
    assert!(a.generation > g, "a rate bin closed");
    let g = a.generation;
    a.status(&Status::Malformed(1));
    assert!(a.generation > g, "a status");
}
