//! The detectors on hand-made event sequences: each fires on what it is for, stays silent on
//! what it is not, and keeps its state bounded.

use super::*;
use crate::event::Body;
use hmmtrace_common::{
    DeviceFault, Invalidation, RangeFault, API_MIGRATE_VMA, DIRECTION_TO_DEVICE, DIRECTION_TO_RAM,
    INVALIDATE_RANGE_START, MMU_NOTIFY_CLEAR, MMU_NOTIFY_UNMAP,
};

pub(crate) fn fault(ts: u64, result: u32, tgid: u32) -> Event {
    let body = Body::DeviceFault(DeviceFault {
        address: 0x7000_0000,
        pgmap_owner: 1,
        pgmap_ops: 0,
        result,
        _pad: 0,
    });
    crate::fixtures::event(ts, Some(10_000), tgid, body)
}

fn migration(ts: u64, start: u64, pages: u64, to_device: bool) -> Event {
    crate::fixtures::event(
        ts,
        Some(5_000),
        1,
        crate::fixtures::migration(
            start,
            pages,
            if to_device {
                DIRECTION_TO_DEVICE
            } else {
                DIRECTION_TO_RAM
            },
            API_MIGRATE_VMA,
        ),
    )
}

fn run(events: &[Event]) -> Vec<Finding> {
    let mut d = Detectors::new(Config::default());
    let mut out = Vec::new();
    for e in events {
        d.event(e, &mut out);
    }
    d.finish(&mut out);
    out
}

/// A loop that migrates `pages` pages to the device and faults each back, `k` times, a step
/// of `step` ns apart.
fn ping_pong(base: u64, pages: u64, k: u64, step: u64) -> Vec<Event> {
    let mut v = Vec::new();
    let mut t = 0;
    for _ in 0..k {
        v.push(migration(t, base, pages, true));
        t += step;
        for p in 0..pages {
            v.push(migration(t, base + p * 4096, 1, false));
            t += step;
        }
    }
    v
}

#[test]
fn ping_pong_is_thrashing_with_its_range_round_trips_and_bytes() {
    let base = 0x4000_0000;
    let f = run(&ping_pong(base, 16, 8, 10_000));
    assert_eq!(f.len(), 1, "{f:#?}");
    let t = &f[0];
    assert_eq!(t.kind, FindingKind::Thrashing);
    assert_eq!(t.range, Some((base, base + 16 * 4096)));
    // 8 trips to the device, each followed by 16 faults back: 15 bounces, 7 round trips.
    assert_eq!(t.count("round_trips"), 7);
    assert_eq!(t.count("bytes"), 8 * 2 * 16 * 4096);
    assert_eq!(t.count("pages"), 16);
}

#[test]
fn the_same_loop_slower_than_the_lapse_is_not_thrashing() {
    // 30 ms between moves: past the 20 ms lapse.
    assert!(run(&ping_pong(0x4000_0000, 4, 8, 30_000_000)).is_empty());
    // Different pages each way are no bounce either.
    let mut v = Vec::new();
    for i in 0..20 {
        v.push(migration(i * 1000, 0x1000_0000, 1, true));
        v.push(migration(i * 1000 + 500, 0x1000_0000 + 4096, 1, false));
    }
    assert!(
        run(&v).is_empty(),
        "page 0 goes to the device, page 1 back: no page bounced"
    );
}

#[test]
fn thrashing_state_is_bounded() {
    let mut d = Detectors::new(Config::default());
    let mut out = Vec::new();
    for g in 0..(thrashing::MAX_GRANULES as u64 * 3) {
        d.event(&migration(g, g * 2 * 1024 * 1024, 1, true), &mut out);
    }
    assert!(d.thrashing_granules() <= thrashing::MAX_GRANULES);
}

#[test]
fn a_fault_that_returns_sigbus_is_a_contract_break() {
    let f = run(&[
        fault(0, 0, 1),
        fault(10, hmmtrace_common::VM_FAULT_SIGBUS, 1),
    ]);
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].kind, f[0].severity),
        (FindingKind::FaultError, Severity::Error)
    );
    assert!(f[0].message.contains("VM_FAULT_SIGBUS"), "{}", f[0].message);
}

/// What each built-in scenario must make the detectors say, and nothing else: each detector
/// fires on the scenario made for it and stays silent on the others. (Partial migrations are
/// information, and two hmm-tests scenarios really have them: pinned pages stay, and pages on
/// another device are not collected by a migration to this one.)
const EXPECTED: &[(&str, &[FindingKind])] = &[
    ("migrate", &[]),
    ("migrate_fault", &[]),
    ("migrate_release", &[]),
    ("migrate_pinned", &[FindingKind::PartialMigration]),
    ("mirror_read", &[]),
    ("mirror_write", &[]),
    ("mirror_busy", &[]),
    ("munmap_mirrored", &[]),
    ("fork_cow", &[]),
    ("exclusive", &[]),
    ("multiple_devices", &[FindingKind::PartialMigration]),
    ("gpu-stream", &[]),
    ("pingpong", &[FindingKind::Thrashing]),
    ("retry_storm", &[FindingKind::RetryStorm]),
    ("mirror_fault_error", &[FindingKind::RangeFaultError]),
    ("driver_sigbus", &[FindingKind::FaultError]),
    ("driver_leak", &[FindingKind::LeakedDevicePages]),
    ("slow_invalidate", &[FindingKind::SlowCallback]),
    ("unfinished_migration", &[FindingKind::UnfinishedMigration]),
];

#[test]
fn each_detector_fires_on_its_scenario_and_is_silent_on_every_other() {
    let names: Vec<&str> = crate::scenario::BUILTIN.iter().map(|(n, _)| *n).collect();
    let listed: Vec<&str> = EXPECTED.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, listed, "every built-in scenario is in the table");
    let mut fired = std::collections::BTreeSet::new();
    for (name, want) in EXPECTED {
        let (header, events) = crate::fixtures::scenario(name, 1);
        let mut d = Detectors::new(Config::default());
        d.begin(&header);
        let mut out = Vec::new();
        for e in &events {
            d.event(e, &mut out);
        }
        d.finish(&mut out);
        let mut got: Vec<FindingKind> = out.iter().map(|f| f.kind).collect();
        got.dedup();
        assert_eq!(&got[..], *want, "{name}: {out:#?}");
        for f in &out {
            assert!(!f.events.is_empty() && f.first_ns <= f.last_ns, "{f:?}");
            fired.insert(f.kind);
        }
    }
    assert_eq!(
        fired.len(),
        FindingKind::ALL.len(),
        "every detector has a scenario it fires on"
    );
}

fn invalidation(ts: u64, start: u64, end: u64, event: u32) -> Event {
    Event {
        body: Body::Invalidation(Invalidation {
            start,
            end,
            event,
            path: INVALIDATE_RANGE_START,
            ..Invalidation::default()
        }),
        ..migration(ts, start, 1, true)
    }
}

fn range_fault(ts: u64, start: u64, pages: u64, retries: u32) -> Event {
    Event {
        body: Body::RangeFault(RangeFault {
            start,
            end: start + pages * 4096,
            dev_private_owner: 1,
            npages: pages,
            retries,
            result: 0,
        }),
        ..migration(ts, start, 1, true)
    }
}

/// hmm-tests' loops (migrate_multiple, anon_read_multiple): map a buffer, migrate or mirror it,
/// unmap it, and again, at the same address each time. Each buffer is new memory: no page
/// bounced, no call was a retry.
#[test]
fn new_mappings_at_the_same_address_are_not_thrashing_or_retries() {
    let base = 0x7000_0000_0000;
    let mut v = Vec::new();
    for c in 0..10u64 {
        let t = c * 100_000;
        v.push(migration(t, base, 64, true));
        v.push(migration(t + 10_000, base, 64, false));
        v.push(range_fault(t + 20_000, base, 64, 0));
        v.push(invalidation(
            t + 30_000,
            base,
            base + 64 * 4096,
            MMU_NOTIFY_UNMAP,
        ));
    }
    assert!(run(&v).is_empty(), "{:#?}", run(&v));
}

#[test]
fn calls_on_a_range_kept_invalidated_are_a_retry_storm() {
    let base = 0x7000_0000_0000;
    let mut v = Vec::new();
    for c in 0..10u64 {
        let t = c * 10_000;
        v.push(invalidation(t, base + 4096, base + 8192, MMU_NOTIFY_CLEAR));
        v.push(range_fault(t + 1_000, base, 64, 1));
    }
    let f = run(&v);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, FindingKind::RetryStorm);
    // 10 -EBUSY, and 9 calls after an invalidation that followed the call before.
    assert_eq!((f[0].count("ebusy"), f[0].count("read_retry")), (10, 9));
    // The invalidations between calls; the first came before the row began.
    assert_eq!(f[0].count("clear"), 9);
}

#[test]
fn retry_state_is_bounded() {
    let mut d = Detectors::new(Config::default());
    let mut out = Vec::new();
    for i in 0..(retry::MAX_RANGES as u64 * 2) {
        d.event(&range_fault(i, 0x1000_0000 + i * 0x10_0000, 1, 1), &mut out);
    }
    assert!(d.retry_rows() <= retry::MAX_RANGES);
}
