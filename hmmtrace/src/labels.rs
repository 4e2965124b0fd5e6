//! How sinks name things for people: devices by their pgmap owner, without printing kernel
//! pointers unless asked, and events by the kernel function they were seen at ([`Symbols`]). A kernel capture's owners are kernel addresses (a driver's cookie),
//! which must not leak into reports by default, so they become `dev1`, `dev2`, ... in order of
//! first appearance; the engine's owners come with names in the capture header.

use std::collections::HashMap;

use hmmtrace_common::{API_MIGRATE_DEVICE, INVALIDATE_RANGE_START};

use crate::capture::CaptureHeader;
use crate::event::{Body, Event};
use crate::probe::Role;

/// Names pgmap owners. Cheap to query per event; grows by one entry per distinct device.
#[derive(Clone, Debug, Default)]
pub struct DeviceNames {
    known: HashMap<u64, String>,
    seen: HashMap<u64, String>,
    show_pointers: bool,
}

impl DeviceNames {
    /// No names known yet: every owner is numbered as it appears (or shown as hex).
    pub fn empty(show_pointers: bool) -> DeviceNames {
        DeviceNames {
            show_pointers,
            ..DeviceNames::default()
        }
    }

    pub fn shows_pointers(&self) -> bool {
        self.show_pointers
    }

    /// Names from `header` (the engine's device table); others are numbered as they appear, or
    /// shown as hex when `show_pointers`.
    pub fn new(header: &CaptureHeader, show_pointers: bool) -> DeviceNames {
        DeviceNames {
            known: header
                .devices
                .iter()
                .map(|d| (d.owner, d.name.clone()))
                .collect(),
            seen: HashMap::new(),
            show_pointers,
        }
    }

    /// The label of `owner`; `None` for 0 (no device).
    pub fn name(&mut self, owner: u64) -> Option<&str> {
        if owner == 0 {
            return None;
        }
        if let Some(n) = self.known.get(&owner) {
            return Some(n);
        }
        let next = self.seen.len() + 1;
        let show = self.show_pointers;
        Some(self.seen.entry(owner).or_insert_with(|| {
            if show {
                format!("{owner:#x}")
            } else {
                format!("dev{next}")
            }
        }))
    }
}

/// Names the kernel function (or driver callback) each event was seen at, for tables by
/// symbol: the core function for core paths, the driver's callback (from the capture's probe
/// plan, or its `dev_pagemap_ops` symbol) for driver paths.
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    /// `<dev_pagemap_ops symbol>.migrate_to_ram` by ops address (kernel captures).
    ops: HashMap<u64, String>,
    /// The driver callbacks the plan hooked, by probe.
    device_fault: Option<String>,
    invalidate: Option<String>,
}

impl Symbols {
    pub fn new(header: &CaptureHeader) -> Symbols {
        let attached = |role: Role| {
            header
                .probe_plan
                .iter()
                .find(|p| p.role == role && p.status.is_attached())
                .map(|p| p.symbol.clone())
        };
        Symbols {
            ops: header
                .pagemap_ops
                .iter()
                .map(|o| (o.addr, format!("{}.migrate_to_ram", o.symbol)))
                .collect(),
            device_fault: attached(Role::MigrateToRam),
            invalidate: attached(Role::IntervalInvalidate),
        }
    }

    /// The `migrate_to_ram` callback of the `dev_pagemap_ops` at `ops`.
    pub fn of_ops(&self, ops: u64) -> &str {
        match self.ops.get(&ops) {
            Some(name) => name,
            None => self.device_fault.as_deref().unwrap_or("migrate_to_ram"),
        }
    }

    /// The name, borrowed: sinks call this per event, so it allocates nothing.
    pub fn of(&self, e: &Event) -> &str {
        match &e.body {
            Body::Migration(m) if m.api == API_MIGRATE_DEVICE => "migrate_device_range",
            Body::Migration(_) => "migrate_vma_setup",
            Body::DeviceFault(f) => self.of_ops(f.pgmap_ops),
            Body::PageFree(_) => "free_zone_device_folio",
            Body::Invalidation(i) if i.path == INVALIDATE_RANGE_START => {
                "__mmu_notifier_invalidate_range_start"
            }
            Body::Invalidation(_) => self
                .invalidate
                .as_deref()
                .unwrap_or("mmu_interval_notifier invalidate"),
            Body::RangeFault(_) => "hmm_range_fault",
            Body::SystemMigration(_) => "migrate:mm_migrate_pages",
            Body::Lost(_) => "(ring buffer full)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{ClockKind, DeviceInfo};

    fn header(devices: Vec<DeviceInfo>) -> CaptureHeader {
        CaptureHeader {
            wire_version: 1,
            source: "kernel".into(),
            host: String::new(),
            kernel_release: String::new(),
            clock: ClockKind::Monotonic,
            start_unix_ns: 0,
            seed: None,
            boot_id: None,
            pace: None,
            value_names: Default::default(),
            page_size: 4096,
            probe_plan: vec![],
            devices,
            pagemap_ops: vec![],
            aggregate: false,
        }
    }

    #[test]
    fn kernel_owners_are_numbered_not_printed() {
        let mut n = DeviceNames::new(&header(vec![]), false);
        assert_eq!(n.name(0), None);
        assert_eq!(n.name(0xffff_8880_1234_0000), Some("dev1"));
        assert_eq!(n.name(0xffff_8880_5678_0000), Some("dev2"));
        assert_eq!(
            n.name(0xffff_8880_1234_0000),
            Some("dev1"),
            "stable per owner"
        );
        let mut p = DeviceNames::new(&header(vec![]), true);
        assert_eq!(p.name(0xffff_8880_1234_0000), Some("0xffff888012340000"));
    }

    #[test]
    fn header_names_win() {
        let d = DeviceInfo {
            owner: 7,
            name: "gpu0".into(),
            driver: "x".into(),
            memory: "private".into(),
        };
        let mut n = DeviceNames::new(&header(vec![d]), false);
        assert_eq!(n.name(7), Some("gpu0"));
        assert_eq!(n.name(8), Some("dev1"));
    }
}
