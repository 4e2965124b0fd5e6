//! Round trips, recovery of a killed writer's file, and corrupted input.

use proptest::prelude::*;

use super::*;
use crate::event::*;

fn header() -> CaptureHeader {
    CaptureHeader {
        wire_version: hmmtrace_common::WIRE_VERSION,
        source: "test".into(),
        host: "h".into(),
        kernel_release: "6.12.0".into(),
        clock: ClockKind::Monotonic,
        start_unix_ns: 1,
        seed: None,
        boot_id: None,
        pace: None,
        value_names: Default::default(),
        page_size: 4096,
        probe_plan: vec![crate::probe::PlanEntry {
            role: crate::probe::Role::MigrateVmaSetup,
            symbol: "migrate_vma_setup".into(),
            module: String::new(),
            mechanisms: vec![crate::probe::Mechanism::Fentry],
            status: crate::probe::Status::Attached(crate::probe::Mechanism::Fentry),
            found: crate::probe::Found::Table,
        }],
        devices: vec![DeviceInfo {
            owner: 0xffff_8880_1234_0000,
            name: "dmirror_devmem_ops".into(),
            driver: "test_hmm".into(),
            memory: "private".into(),
        }],
        pagemap_ops: vec![PagemapOpsInfo {
            addr: 0xffffffffc0a01000,
            symbol: "dmirror_devmem_ops".into(),
            module: "test_hmm".into(),
        }],
        aggregate: false,
    }
}

fn write_all(events: &[Event]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    for e in events {
        w.write_event(e).unwrap();
    }
    w.into_inner().unwrap()
}

fn read_all(bytes: &[u8]) -> anyhow::Result<(Vec<Event>, ReadSummary)> {
    let r = Reader::new(bytes, "test.hmt")?;
    let mut out = Vec::new();
    let sum = r.for_each(|e| {
        out.push(*e);
        Ok(())
    })?;
    Ok((out, sum))
}

/// Events from the engine: realistic values, every kind but the kernel-only ones.
fn engine_events(scenario: &str) -> Vec<Event> {
    let s = crate::scenario::Scenario::load(scenario).unwrap();
    let mut v = Vec::new();
    s.run(3, &mut |e| {
        v.push(*e);
        Ok(())
    })
    .unwrap();
    v
}

fn arb_event() -> impl Strategy<Value = Event> {
    let body = prop_oneof![
        (any::<[u64; 9]>(), any::<u32>(), any::<u8>(), any::<u8>()).prop_map(
            |(v, select, direction, api)| Body::Migration(Migration {
                start: v[0],
                end: v[1],
                pgmap_owner: v[2],
                npages: v[3],
                cpages: v[4],
                migrated: v[5],
                setup_ns: v[6],
                pages_ns: v[7],
                finalize_ns: v[8],
                select,
                direction,
                api,
                _pad: [0; 2]
            })
        ),
        (any::<[u64; 3]>(), any::<u32>()).prop_map(|(v, result)| Body::DeviceFault(DeviceFault {
            address: v[0],
            pgmap_owner: v[1],
            pgmap_ops: v[2],
            result,
            _pad: 0
        })),
        (any::<[u64; 4]>(), any::<[u32; 2]>()).prop_map(|(v, w)| Body::PageFree(PageFree {
            pfn: v[0],
            pgmap_owner: v[1],
            pgmap_ops: v[2],
            order: w[0],
            memory_type: w[1],
            callback_ns: v[3],
        })),
        (any::<[u64; 3]>(), any::<u32>(), any::<u16>(), any::<u8>()).prop_map(
            |(v, event, range_flags, path)| Body::Invalidation(Invalidation {
                start: v[0],
                end: v[1],
                owner: v[2],
                event,
                range_flags,
                path,
                _pad: 0
            })
        ),
        (any::<[u64; 4]>(), any::<u32>(), any::<i32>()).prop_map(|(v, retries, result)| {
            Body::RangeFault(RangeFault {
                start: v[0],
                end: v[1],
                dev_private_owner: v[2],
                npages: v[3],
                retries,
                result,
            })
        }),
        (any::<[u64; 6]>(), any::<[u32; 2]>()).prop_map(|(v, w)| Body::SystemMigration(
            SystemMigration {
                succeeded: v[0],
                failed: v[1],
                thp_succeeded: v[2],
                thp_failed: v[3],
                thp_split: v[4],
                large_folio_split: v[5],
                mode: w[0],
                reason: w[1]
            }
        )),
        (any::<u64>(), any::<u32>()).prop_map(|(count, probe)| Body::Lost(Lost {
            count,
            probe,
            _pad: 0
        })),
    ];
    (
        any::<u64>(),
        proptest::option::of(any::<u64>()),
        any::<[u32; 4]>(),
        "[a-z0-9_-]{0,15}",
        body,
    )
        .prop_map(|(ts_ns, duration_ns, w, comm, body)| Event {
            ts_ns,
            duration_ns,
            cpu: w[0],
            tgid: w[1],
            pid: w[2],
            comm: Comm::new(&comm),
            unknown: w[3],
            body,
        })
}

proptest! {
    #[test]
    fn any_events_round_trip(events in proptest::collection::vec(arb_event(), 0..300)) {
        let bytes = write_all(&events);
        let (back, sum) = read_all(&bytes).unwrap();
        prop_assert_eq!(&back, &events);
        prop_assert_eq!(sum.dropped_bytes, 0);
    }

    #[test]
    fn any_truncation_recovers_every_complete_block(cut in 0usize..200_000) {
        let events = engine_events("migrate_fault");
        let mut w = Writer::new(Vec::new(), &header()).unwrap();
        // Small blocks, so that a cut lands among many of them.
        let mut block_ends = Vec::new();
        for (i, e) in events.iter().enumerate() {
            w.write_event(e).unwrap();
            if i % 10 == 9 {
                w.flush_block().unwrap();
                block_ends.push(i + 1);
            }
        }
        let bytes = w.into_inner().unwrap();
        let cut = cut % (bytes.len() + 1);
        match read_all(&bytes[..cut]) {
            Ok((back, sum)) => {
                // Exactly the events of the complete blocks, in order, and the rest is counted.
                prop_assert_eq!(&back[..], &events[..back.len()]);
                prop_assert!(back.len() == events.len() || block_ends.contains(&back.len()) || back.is_empty());
                prop_assert!(sum.dropped_bytes < 64 * 1024);
            }
            // Only a cut inside the file header is an error.
            Err(e) => prop_assert!(e.to_string().contains("header") || e.to_string().contains("HMMTRACE"), "{e}"),
        }
    }

    #[test]
    fn bit_flips_are_detected_never_a_panic(pos in 0usize..100_000, bit in 0u8..8) {
        let events = engine_events("migrate");
        let mut bytes = write_all(&events);
        let pos = pos % bytes.len();
        bytes[pos] ^= 1 << bit;
        match read_all(&bytes) {
            // A flip in a block's length can make it look truncated: fewer events, never wrong ones.
            Ok((back, sum)) => {
                prop_assert!(sum.dropped_bytes > 0, "a flipped byte went unnoticed at {pos}");
                prop_assert_eq!(&back[..], &events[..back.len()]);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn random_bytes_are_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(read_all(&bytes).is_err());
    }
}

#[test]
fn header_round_trips() {
    let bytes = write_all(&[]);
    let r = Reader::new(&bytes[..], "x").unwrap();
    assert_eq!(r.header, header());
    assert_eq!(
        r.header.ops_name(0xffffffffc0a01000).as_deref(),
        Some("dmirror_devmem_ops [test_hmm]")
    );
    assert_eq!(r.header.ops_name(1), None);
}

#[test]
fn killed_writer_file_keeps_every_complete_block() {
    let events = engine_events("gpu-stream");
    let bytes = write_all(&events);
    // Cut in the middle of the last block, as SIGKILL during its write would.
    let (all, _) = read_all(&bytes).unwrap();
    assert_eq!(all.len(), events.len());
    let cut = bytes.len() - 100;
    let mut r = Reader::new(&bytes[..cut], "killed.hmt").unwrap();
    let (mut back, mut buf, mut dropped) = (Vec::new(), Vec::new(), 0u64);
    while r.next_block(&mut buf, &mut dropped).unwrap() {
        back.extend_from_slice(&buf);
    }
    assert!(back.len() < events.len() && !back.is_empty());
    assert_eq!(
        &back[..],
        &events[..back.len()],
        "nothing before the last complete block is lost"
    );
    // Every byte after the last complete block is reported as dropped.
    assert_eq!(r.offset() + dropped, cut as u64);
    assert!(dropped > 0);
}

#[test]
fn wrong_magic_version_and_crc_are_clear_errors() {
    let bytes = write_all(&engine_events("migrate"));
    let err = |b: &[u8]| read_all(b).unwrap_err().to_string();
    let mut b = bytes.clone();
    b[0] = b'X';
    assert!(err(&b).contains("not an hmmtrace capture"), "{}", err(&b));
    let mut b = bytes.clone();
    b[8] = 9;
    assert!(
        err(&b).contains("format version 9 is not supported"),
        "{}",
        err(&b)
    );
    let mut b = bytes.clone();
    b[20] ^= 0x20; // inside the JSON header
    assert!(err(&b).contains("header's CRC"), "{}", err(&b));
    let mut b = bytes.clone();
    let n = b.len();
    b[n - 3] ^= 0xff; // inside the last block's payload
    let e = err(&b);
    assert!(
        e.contains("fails its CRC check") && e.contains("at byte"),
        "{e}"
    );
}

#[test]
fn gpu_stream_is_compact() {
    // The benchmark reports the figure; this guards the encoding against a gross regression.
    let events = engine_events("gpu-stream");
    let bytes = write_all(&events);
    let per_event = bytes.len() as f64 / events.len() as f64;
    assert!(per_event <= 24.0, "{per_event:.1} bytes/event");
}

#[test]
fn a_plan_change_comes_back_where_it_was_written_among_the_events() {
    use crate::pipeline::{PlanChange, Sink as _, Status};
    use crate::probe::{Found, Mechanism, PlanEntry, Role};
    let events = engine_events("migrate_fault");
    let mut plan = header().probe_plan;
    plan.push(PlanEntry {
        role: Role::MigrateToRam,
        symbol: "dmirror_devmem_fault".into(),
        module: "test_hmm".into(),
        mechanisms: vec![Mechanism::Kprobe],
        status: crate::probe::Status::Attached(Mechanism::Kprobe),
        found: Found::Discovered {
            ops: 0xffffffffc0a01000,
            ops_symbol: "dmirror_devmem_ops".into(),
        },
    });
    let change = std::sync::Arc::new(PlanChange {
        at_ns: 42,
        changes: vec![
            "test_hmm loaded: dmirror_devmem_fault (migrate_to_ram) attached (kprobe)".into(),
        ],
        plan,
    });
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    let half = events.len() / 2;
    events[..half]
        .iter()
        .for_each(|e| w.write_event(e).unwrap());
    w.status(&Status::Plan(std::sync::Arc::clone(&change)))
        .unwrap();
    events[half..]
        .iter()
        .for_each(|e| w.write_event(e).unwrap());
    let bytes = w.into_inner().unwrap();
    let mut r = Reader::new(&bytes[..], "mem").unwrap();
    let (mut buf, mut dropped, mut seen, mut got) = (Vec::new(), 0, Vec::new(), Vec::new());
    while r.next_block(&mut buf, &mut dropped).unwrap() {
        seen.extend_from_slice(&buf);
        if let Some(s) = r.take_status() {
            got.push((seen.len(), s));
        }
    }
    assert_eq!(seen, events);
    assert_eq!(got, vec![(half, Status::Plan(change))]);
    // A reader that only streams events skips it.
    let (again, _) = read_all(&bytes).unwrap();
    assert_eq!(again, events);
}
