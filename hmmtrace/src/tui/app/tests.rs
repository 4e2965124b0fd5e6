//! The state's arithmetic: rates per second of the source's timeline, the rolling window,
//! bounded tables and log.

use super::*;
use crate::event::Comm;
use hmmtrace_common::{DeviceFault, Lost, Migration, DIRECTION_TO_RAM};

const S: u64 = 1_000_000_000;

fn app() -> App {
    let (header, _) = crate::fixtures::scenario("migrate", 1);
    let mut app = App::new(String::new(), false);
    app.begin(&header);
    app
}

fn fault(ts: u64, dur: u64, tgid: u32) -> Event {
    Event {
        ts_ns: ts,
        duration_ns: Some(dur),
        cpu: 0,
        tgid,
        pid: tgid,
        comm: Comm::new("w"),
        unknown: 0,
        body: Body::DeviceFault(DeviceFault {
            address: 0x1000,
            pgmap_owner: 1,
            pgmap_ops: 1,
            result: 0,
            _pad: 0,
        }),
    }
}

#[test]
fn rates_count_per_second_of_the_timeline() {
    let mut a = app();
    a.ingest(&[fault(0, 10, 1), fault(1, 10, 1)], 0);
    a.ingest(&[fault(2, 10, 1)], S / 2);
    a.ingest(&[fault(3, 10, 1)], S + 1);
    let r = &a.rates[&Series::DeviceFault];
    assert_eq!(r.seconds, [3, 1]);
    assert_eq!(r.current(), 3, "the last complete second");
    // Three empty seconds pass: zeros, and the peak stays.
    a.advance(4 * S);
    let r = &a.rates[&Series::DeviceFault];
    assert_eq!(r.seconds, [3, 1, 0, 0, 0]);
    assert_eq!((r.peak, r.total), (3, 4));
    assert_eq!(a.rates[&Series::ToDevice].total, 0);
}

#[test]
fn the_rolling_window_forgets_what_is_older_than_its_length() {
    let mut a = app();
    a.ingest(&[fault(0, 1_000_000, 1)], 0);
    a.ingest(&[fault(0, 1_000, 1)], (WINDOW_SECS as u64 - 1) * S);
    let l = &a.latency[&EventKind::DeviceFault];
    assert_eq!((l.window.len(), l.since_start.len()), (2, 2));
    a.advance(WINDOW_SECS as u64 * S);
    let l = &a.latency[&EventKind::DeviceFault];
    assert_eq!(l.window.len(), 1, "the first second left the window");
    assert!(l.window.max() < 2_000, "and with it the 1 ms event");
    assert_eq!(l.since_start.len(), 2);
    // A long gap empties the window without looping once per second.
    a.advance(1_000_000 * S);
    assert_eq!(a.latency[&EventKind::DeviceFault].window.len(), 0);
    assert_eq!(a.rates[&Series::DeviceFault].seconds.len(), RATE_HISTORY);
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
    let more: Vec<Event> = (0..LOG_CAPACITY as u64).map(|t| fault(t, 5, 1)).collect();
    a.ingest(&more, 0);
    assert_eq!(a.log.len(), LOG_CAPACITY);
    assert_eq!(a.log.back().unwrap().seq, a.events);
    assert_eq!(a.events, (TOP_CAPACITY + 10 + LOG_CAPACITY) as u64);
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
    assert_eq!(a.pages[EventKind::Migration as usize - 1], 3);
    assert_eq!(a.lost["page_free"], 7);
    assert_eq!(a.total_lost(), 7);
    assert_eq!(a.by_device.rows.len(), 0, "neither names a device");
    a.clear();
    assert_eq!((a.events, a.total_lost(), a.log.len()), (0, 0, 0));
}
