//! Per-event exports: every event as one flat [`Row`] with the kernel's field names, written as
//! JSON Lines ([`jsonl`]) or CSV ([`csv`]). Fields a source could not know (the payload's
//! `FIELD_*` bits) are left out (JSONL) or empty (CSV) rather than shown as zeros; the schema is
//! documented in `docs/export.md`.

pub mod csv;
pub mod jsonl;
pub mod perfetto;

use serde::Serialize;

use hmmtrace_common::{
    mmu_notify_name, DeviceFault, Invalidation, Migration, PageFree, ProbeId, RangeFault,
    SystemMigration, API_MIGRATE_DEVICE, API_MIGRATE_VMA, DIRECTION_TO_DEVICE, DIRECTION_TO_RAM,
    INVALIDATE_CALLBACK, INVALIDATE_RANGE_START, MEMORY_DEVICE_COHERENT, MEMORY_DEVICE_PRIVATE,
};

use crate::capture::CaptureHeader;
use crate::event::{Body, Event};

use crate::labels::DeviceNames;

/// One event, flattened. Field order is the CSV column order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Row {
    pub kind: &'static str,
    pub ts_ns: u64,
    pub duration_ns: Option<u64>,
    pub cpu: u32,
    pub tgid: u32,
    pub pid: u32,
    pub comm: String,
    /// The pgmap owner, named (see `labels`).
    pub device: Option<String>,
    /// The `dev_pagemap_ops` symbol (kernel captures that resolved it).
    pub pgmap_ops: Option<String>,
    pub start: Option<u64>,
    pub end: Option<u64>,
    pub npages: Option<u64>,
    pub cpages: Option<u64>,
    pub migrated: Option<u64>,
    pub direction: Option<&'static str>,
    pub api: Option<&'static str>,
    pub select: Option<u32>,
    pub setup_ns: Option<u64>,
    pub pages_ns: Option<u64>,
    pub finalize_ns: Option<u64>,
    pub address: Option<u64>,
    pub result: Option<i64>,
    pub pfn: Option<u64>,
    pub order: Option<u32>,
    pub memory_type: Option<&'static str>,
    pub callback_ns: Option<u64>,
    pub event: Option<&'static str>,
    pub path: Option<&'static str>,
    pub range_flags: Option<u16>,
    pub retries: Option<u32>,
    pub succeeded: Option<u64>,
    pub failed: Option<u64>,
    pub thp_succeeded: Option<u64>,
    pub thp_failed: Option<u64>,
    pub thp_split: Option<u64>,
    pub large_folio_split: Option<u64>,
    /// `migrate_mode`, as the kernel names it (`MIGRATE_SYNC`).
    pub mode: Option<String>,
    /// `migrate_reason`, as the kernel's tracepoint names it (`compaction`).
    pub reason: Option<String>,
    pub probe: Option<&'static str>,
    pub count: Option<u64>,
}

/// The CSV columns: [`Row`]'s fields, in order.
pub const COLUMNS: [&str; 40] = [
    "kind",
    "ts_ns",
    "duration_ns",
    "cpu",
    "tgid",
    "pid",
    "comm",
    "device",
    "pgmap_ops",
    "start",
    "end",
    "npages",
    "cpages",
    "migrated",
    "direction",
    "api",
    "select",
    "setup_ns",
    "pages_ns",
    "finalize_ns",
    "address",
    "result",
    "pfn",
    "order",
    "memory_type",
    "callback_ns",
    "event",
    "path",
    "range_flags",
    "retries",
    "succeeded",
    "failed",
    "thp_succeeded",
    "thp_failed",
    "thp_split",
    "large_folio_split",
    "mode",
    "reason",
    "probe",
    "count",
];

/// Turns events into rows; holds what naming needs (the capture header's tables).
pub struct Flattener {
    devices: DeviceNames,
    header: CaptureHeader,
    show_pointers: bool,
}

/// `Some(v)` unless the event flags the field as unknown.
fn known<T>(unknown: u32, bit: u32, v: T) -> Option<T> {
    (unknown & bit == 0).then_some(v)
}

impl Flattener {
    pub fn new(header: &CaptureHeader, show_pointers: bool) -> Flattener {
        Flattener {
            devices: DeviceNames::new(header, show_pointers),
            header: header.clone(),
            show_pointers,
        }
    }

    fn device(&mut self, unknown: u32, bit: u32, owner: u64) -> Option<String> {
        known(unknown, bit, ())?;
        self.devices.name(owner).map(str::to_string)
    }

    fn ops(&self, unknown: u32, bit: u32, addr: u64) -> Option<String> {
        known(unknown, bit, ())?;
        if addr == 0 {
            return None;
        }
        self.header
            .ops_name(addr)
            .or_else(|| self.show_pointers.then(|| format!("{addr:#x}")))
    }

    pub fn row(&mut self, e: &Event) -> Row {
        let u = e.unknown;
        let mut r = Row {
            kind: e.class().name(),
            ts_ns: e.ts_ns,
            duration_ns: e.duration_ns,
            cpu: e.cpu,
            tgid: e.tgid,
            pid: e.pid,
            comm: e.comm.to_string(),
            ..Row::default()
        };
        match e.body {
            Body::Migration(m) => {
                r.device = self.device(u, Migration::FIELD_PGMAP_OWNER, m.pgmap_owner);
                r.start = Some(m.start);
                r.end = Some(m.end);
                r.npages = Some(m.npages);
                r.cpages = known(u, Migration::FIELD_CPAGES, m.cpages);
                r.migrated = known(u, Migration::FIELD_MIGRATED, m.migrated);
                r.direction = match m.direction {
                    DIRECTION_TO_DEVICE => Some("to_device"),
                    DIRECTION_TO_RAM => Some("to_ram"),
                    _ => None,
                };
                r.api = match m.api {
                    API_MIGRATE_VMA => Some("migrate_vma"),
                    API_MIGRATE_DEVICE => Some("migrate_device"),
                    _ => None,
                };
                r.select = Some(m.select);
                r.setup_ns = Some(m.setup_ns);
                r.pages_ns = Some(m.pages_ns);
                r.finalize_ns = Some(m.finalize_ns);
            }
            Body::DeviceFault(f) => {
                r.device = self.device(u, DeviceFault::FIELD_PGMAP_OWNER, f.pgmap_owner);
                r.pgmap_ops = self.ops(u, DeviceFault::FIELD_PGMAP_OPS, f.pgmap_ops);
                r.address = known(u, DeviceFault::FIELD_ADDRESS, f.address);
                r.result = Some(i64::from(f.result));
            }
            Body::PageFree(p) => {
                r.device = self.device(u, PageFree::FIELD_PGMAP_OWNER, p.pgmap_owner);
                r.pgmap_ops = self.ops(u, PageFree::FIELD_PGMAP_OPS, p.pgmap_ops);
                r.pfn = known(u, PageFree::FIELD_PFN, p.pfn);
                r.order = known(u, PageFree::FIELD_ORDER, p.order);
                r.memory_type = match p.memory_type {
                    MEMORY_DEVICE_PRIVATE => Some("private"),
                    MEMORY_DEVICE_COHERENT => Some("coherent"),
                    _ => None,
                };
                r.callback_ns = known(u, PageFree::FIELD_CALLBACK, p.callback_ns);
            }
            Body::Invalidation(i) => {
                r.device = self.device(u, Invalidation::FIELD_OWNER, i.owner);
                r.start = known(u, Invalidation::FIELD_RANGE, i.start);
                r.end = known(u, Invalidation::FIELD_RANGE, i.end);
                r.event = known(u, Invalidation::FIELD_EVENT, mmu_notify_name(i.event));
                r.range_flags = Some(i.range_flags);
                r.path = match i.path {
                    INVALIDATE_RANGE_START => Some("range_start"),
                    INVALIDATE_CALLBACK => Some("callback"),
                    _ => None,
                };
            }
            Body::RangeFault(f) => {
                r.device = self.device(u, RangeFault::FIELD_DEV_PRIVATE_OWNER, f.dev_private_owner);
                r.start = known(u, RangeFault::FIELD_RANGE, f.start);
                r.end = known(u, RangeFault::FIELD_RANGE, f.end);
                r.npages = known(u, RangeFault::FIELD_RANGE, f.npages);
                r.retries = Some(f.retries);
                r.result = Some(i64::from(f.result));
            }
            Body::SystemMigration(s) => {
                r.succeeded = known(u, SystemMigration::FIELD_SUCCEEDED, s.succeeded);
                r.failed = known(u, SystemMigration::FIELD_FAILED, s.failed);
                r.thp_succeeded = known(u, SystemMigration::FIELD_THP_SUCCEEDED, s.thp_succeeded);
                r.thp_failed = known(u, SystemMigration::FIELD_THP_FAILED, s.thp_failed);
                r.thp_split = known(u, SystemMigration::FIELD_THP_SPLIT, s.thp_split);
                r.large_folio_split = known(
                    u,
                    SystemMigration::FIELD_LARGE_FOLIO_SPLIT,
                    s.large_folio_split,
                );
                r.mode = known(u, SystemMigration::FIELD_MODE, s.mode).map(|v| {
                    self.header
                        .value_name("mm_migrate_pages.mode", u64::from(v))
                });
                r.reason = known(u, SystemMigration::FIELD_REASON, s.reason).map(|v| {
                    self.header
                        .value_name("mm_migrate_pages.reason", u64::from(v))
                });
            }
            Body::Lost(l) => {
                r.probe = Some(ProbeId::from_u32(l.probe).map_or("unknown", |p| p.name()));
                r.count = Some(l.count);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests;
