//! Exports agree with the events and with each other, hide kernel pointers, omit unknowns.

use super::csv::CsvWriter;
use super::jsonl::JsonlWriter;
use super::*;
use crate::capture::{ClockKind, PagemapOpsInfo};
use crate::event::{Comm, EventKind};
use crate::pipeline::Sink;

fn engine(scenario: &str) -> (CaptureHeader, Vec<Event>) {
    crate::fixtures::scenario(scenario, 1)
}

fn jsonl(header: &CaptureHeader, events: &[Event], pointers: bool) -> Vec<serde_json::Value> {
    let mut w = JsonlWriter::new(Vec::new(), Flattener::new(header, pointers));
    for e in events {
        w.event(e).unwrap();
    }
    let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
    out.lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect()
}

#[test]
fn jsonl_has_one_object_per_event_with_the_events_values() {
    let (header, events) = engine("mirror_busy");
    let rows = jsonl(&header, &events, false);
    assert_eq!(rows.len(), events.len());
    for (row, e) in rows.iter().zip(&events) {
        assert_eq!(row["kind"], e.class().name());
        assert_eq!(row["ts_ns"].as_u64(), Some(e.ts_ns));
        assert_eq!(row["duration_ns"].as_u64(), e.duration_ns);
        assert_eq!(row["tgid"].as_u64(), Some(u64::from(e.tgid)));
        for (k, v) in row.as_object().unwrap() {
            assert!(!v.is_null(), "{k} is null: absent fields are left out");
            assert!(
                COLUMNS.contains(&k.as_str()),
                "{k} is not a documented column"
            );
        }
        match e.body {
            Body::RangeFault(f) => {
                assert_eq!(row["retries"].as_u64(), Some(u64::from(f.retries)));
                assert_eq!(row["npages"].as_u64(), Some(f.npages));
                assert!(
                    row.get("event").is_none(),
                    "no invalidation field on a range fault"
                );
            }
            Body::Invalidation(i) => {
                assert_eq!(row["event"], mmu_notify_name(i.event));
                assert_eq!(row["start"].as_u64(), Some(i.start));
            }
            _ => {}
        }
    }
    let retried = rows
        .iter()
        .filter(|r| r["retries"].as_u64() > Some(0))
        .count();
    assert!(retried > 0, "mirror_busy has -EBUSY retries");
    assert!(
        rows.iter().any(|r| r["device"] == "dmirror0"),
        "engine devices keep their names"
    );
}

#[test]
fn csv_columns_match_the_row_and_every_event_is_a_row() {
    let (header, events) = engine("migrate_fault");
    // The csv crate's own header for Row must equal COLUMNS (field order is the column order).
    let mut own = ::csv::Writer::from_writer(Vec::new());
    own.serialize(Row::default()).unwrap();
    let own = String::from_utf8(own.into_inner().unwrap()).unwrap();
    assert_eq!(own.lines().next().unwrap(), COLUMNS.join(","));

    let mut bytes = Vec::new();
    let mut w = CsvWriter::new(&mut bytes, Flattener::new(&header, false)).unwrap();
    for e in &events {
        w.event(e).unwrap();
    }
    Sink::finish(&mut w).unwrap();
    drop(w);
    let mut r = ::csv::Reader::from_reader(&bytes[..]);
    assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), COLUMNS);
    let rows: Vec<::csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), events.len());
    let faults = rows.iter().filter(|r| &r[0] == "device_fault").count();
    let want = events
        .iter()
        .filter(|e| e.kind() == EventKind::DeviceFault)
        .count();
    assert!(want > 0);
    assert_eq!(faults, want);
}

#[test]
fn an_empty_csv_export_still_has_its_header() {
    let (header, _) = engine("migrate");
    let mut v = Vec::new();
    let mut w = CsvWriter::new(&mut v, Flattener::new(&header, false)).unwrap();
    Sink::finish(&mut w).unwrap();
    drop(w);
    assert_eq!(String::from_utf8(v).unwrap().trim_end(), COLUMNS.join(","));
}

fn kernel_header() -> CaptureHeader {
    CaptureHeader {
        wire_version: 1,
        source: "kernel".into(),
        host: String::new(),
        kernel_release: "6.12.0".into(),
        clock: ClockKind::Monotonic,
        start_unix_ns: 0,
        seed: None,
        boot_id: None,
        pace: None,
        value_names: Default::default(),
        page_size: 4096,
        probe_plan: vec![],
        devices: vec![],
        pagemap_ops: vec![PagemapOpsInfo {
            addr: 0xffff_ffff_c0a0_1000,
            symbol: "dmirror_devmem_ops".into(),
            module: "test_hmm".into(),
        }],
        aggregate: false,
    }
}

fn fault(owner: u64, ops: u64, unknown: u32) -> Event {
    Event {
        ts_ns: 10,
        duration_ns: Some(5),
        cpu: 0,
        tgid: 1,
        pid: 1,
        comm: Comm::new("w"),
        unknown,
        body: Body::DeviceFault(DeviceFault {
            address: 0x7f00_0000_0000,
            pgmap_owner: owner,
            pgmap_ops: ops,
            result: 0,
            _pad: 0,
        }),
    }
}

#[test]
fn kernel_pointers_are_hidden_unless_asked() {
    let owner = 0xffff_8880_0abc_d000;
    let events = [
        fault(owner, 0xffff_ffff_c0a0_1000, 0),
        fault(owner, 0xffff_ffff_c0ff_0000, 0),
    ];
    let rows = jsonl(&kernel_header(), &events, false);
    assert_eq!(rows[0]["device"], "dev1");
    assert_eq!(rows[0]["pgmap_ops"], "dmirror_devmem_ops [test_hmm]");
    assert!(
        rows[1].get("pgmap_ops").is_none(),
        "an unresolved ops pointer is not printed"
    );
    let text = rows.iter().map(|r| r.to_string()).collect::<String>();
    assert!(!text.contains(&owner.to_string()) && !text.contains("ffff8880"));
    let rows = jsonl(&kernel_header(), &events, true);
    assert_eq!(rows[0]["device"], "0xffff88800abcd000");
    assert_eq!(rows[1]["pgmap_ops"], "0xffffffffc0ff0000");
}

#[test]
fn unknown_fields_are_left_out_not_zero() {
    let e = fault(
        0x1000,
        0,
        DeviceFault::FIELD_PGMAP_OWNER | DeviceFault::FIELD_ADDRESS,
    );
    let rows = jsonl(&kernel_header(), &[e], false);
    assert!(rows[0].get("device").is_none());
    assert!(rows[0].get("address").is_none());
    assert_eq!(rows[0]["result"], 0);
}
