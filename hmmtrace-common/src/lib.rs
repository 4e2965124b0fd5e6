//! hmmtrace's wire format: the fixed-layout records that the eBPF programs write into the ring
//! buffer and that userspace decodes into its one `Event` type.
//!
//! Every record is a [`Record`]: an [`EventHeader`] followed by one payload struct. All structs are
//! `#[repr(C)]`, contain only fixed-width integers, and are padded explicitly so that the eBPF side
//! (`bpfel`) and the userspace side (x86-64, aarch64) agree byte for byte without any compiler
//! help. Field docs name the kernel source of each value; "unknown" fields (the running kernel
//! lacks them, or their offset could not be found in its BTF) are flagged in
//! [`EventHeader::unknown`] and hold zero, never a guess.
//!
//! The format is versioned by [`WIRE_VERSION`]; a change to any struct below bumps it.
#![no_std]

pub mod agg;
pub mod offsets;

/// Version of the record layouts in this crate. Capture files store it; readers refuse others.
pub const WIRE_VERSION: u16 = 1;

/// Length of `task_struct.comm` (`TASK_COMM_LEN` in `include/linux/sched.h`).
pub const COMM_LEN: usize = 16;

/// What a record describes. The discriminants are the on-wire `EventHeader::kind` values.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A device migration: `migrate_vma_setup` → `migrate_vma_pages` → `migrate_vma_finalize`,
    /// or the `migrate_device_range/pages/finalize` family used for eviction.
    Migration = 1,
    /// A CPU fault on a device-private page, serviced by the driver's
    /// `dev_pagemap_ops.migrate_to_ram` callback.
    DeviceFault = 2,
    /// A device page whose last reference dropped: `free_zone_device_folio` (6.7+) or
    /// `free_zone_device_page` (older), which calls the driver's `dev_pagemap_ops.page_free`.
    PageFree = 3,
    /// An mmu notifier invalidation (`__mmu_notifier_invalidate_range_start`) and the interval
    /// notifiers' `invalidate` callbacks it runs.
    Invalidation = 4,
    /// One `hmm_range_fault` call by a mirroring driver, with the `-EBUSY` retries before it.
    RangeFault = 5,
    /// System-RAM migration context from the `migrate:mm_migrate_pages` tracepoint.
    SystemMigration = 6,
    /// Records the kernel side could not deliver because the ring buffer was full.
    Lost = 7,
}

impl EventKind {
    /// Every kind, in discriminant order.
    pub const ALL: [EventKind; 7] = [
        EventKind::Migration,
        EventKind::DeviceFault,
        EventKind::PageFree,
        EventKind::Invalidation,
        EventKind::RangeFault,
        EventKind::SystemMigration,
        EventKind::Lost,
    ];

    /// The kind with this wire discriminant, if any.
    pub const fn from_u16(v: u16) -> Option<EventKind> {
        match v {
            1 => Some(EventKind::Migration),
            2 => Some(EventKind::DeviceFault),
            3 => Some(EventKind::PageFree),
            4 => Some(EventKind::Invalidation),
            5 => Some(EventKind::RangeFault),
            6 => Some(EventKind::SystemMigration),
            7 => Some(EventKind::Lost),
            _ => None,
        }
    }

    /// Stable lower-case name, used in reports, JSON and scenario files.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Migration => "migration",
            EventKind::DeviceFault => "device_fault",
            EventKind::PageFree => "page_free",
            EventKind::Invalidation => "invalidation",
            EventKind::RangeFault => "range_fault",
            EventKind::SystemMigration => "system_migration",
            EventKind::Lost => "lost",
        }
    }
}

/// `EventHeader::flags`: the record pairs an entry with an exit and `duration_ns` is meaningful.
pub const FLAG_HAS_DURATION: u8 = 1 << 0;

/// The header every record starts with. 32 bytes: nothing userspace can derive travels in it.
/// The task's name (`comm`) comes from task-name records ([`TASK_RECORD`]) and `/proc` instead
/// (`Settings::comm_in_records`), and the kind, flags and cpu are packed into one word.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// `bpf_ktime_get_ns()` at the entry of the traced call: CLOCK_MONOTONIC, in nanoseconds.
    pub ts_ns: u64,
    /// Exit minus entry of the traced call, in nanoseconds; valid when `FLAG_HAS_DURATION` is set.
    pub duration_ns: u64,
    /// `bpf_get_current_pid_tgid() >> 32`: the process (thread group) id.
    pub tgid: u32,
    /// `bpf_get_current_pid_tgid() as u32`: the thread id.
    pub pid: u32,
    /// Bit `i` set: payload field `i` (the payload's `FIELD_*` constants) is unknown on this kernel.
    pub unknown: u32,
    /// `bpf_get_smp_processor_id()` at exit (or at the event, when it has no exit). The
    /// kernel's `NR_CPUS` is at most 8192, so 16 bits hold every cpu.
    pub cpu: u16,
    /// An [`EventKind`] discriminant, or [`TASK_RECORD`] / [`OPS_RECORD`].
    pub kind: u8,
    /// `FLAG_*` bits.
    pub flags: u8,
}

/// `EventHeader::kind` of a task-name record (payload [`TaskName`]): not an [`EventKind`]. The
/// kernel session consumes these to name the tasks of the records that follow (see
/// `Settings::comm_in_records`); they never become events, so captures never hold one.
pub const TASK_RECORD: u8 = 0xf0;

/// A task's name as of now: at fork (the child's, which is its parent's) and at every rename
/// (`exec`, `prctl(PR_SET_NAME)`, a write to `/proc/PID/comm`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskName {
    /// The thread id named.
    pub pid: u32,
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
}

/// `EventHeader::kind` of a pagemap-ops record (payload [`PagemapOpsSeen`]): not an
/// [`EventKind`]. Sent once per `struct dev_pagemap_ops` the page-free path first meets; the
/// kernel session names its callbacks through kallsyms and attaches to them (callback
/// discovery). Never an event.
pub const OPS_RECORD: u8 = 0xf1;

/// A driver's `struct dev_pagemap_ops` seen on a freed device page, and its callbacks.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagemapOpsSeen {
    /// The ops' address (`page->pgmap->ops`).
    pub ops: u64,
    /// `ops->page_free` (or `folio_free`), 0 when unset or unreadable.
    pub page_free: u64,
    /// `ops->migrate_to_ram`, 0 when unset or unreadable.
    pub migrate_to_ram: u64,
}

/// `hmmtrace census`: a key of the run-time call counts, per export function and caller.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CensusKey {
    /// The called function's address (`bpf_get_func_ip`).
    pub func: u64,
    /// The return address at its entry: an address in the calling function.
    pub caller: u64,
}

/// (function, caller) pairs the census map holds; more are counted as uncounted calls.
pub const CENSUS_MAX_CALLERS: u32 = 16384;

/// A whole ring-buffer record: header, then the payload `P` of the header's kind.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Record<P> {
    pub header: EventHeader,
    pub payload: P,
}

/// `Migration::direction`: system RAM → device memory (`MIGRATE_VMA_SELECT_SYSTEM`).
pub const DIRECTION_TO_DEVICE: u8 = 1;
/// `Migration::direction`: device memory → system RAM (`MIGRATE_VMA_SELECT_DEVICE_PRIVATE` or
/// `_COHERENT`, and every `migrate_device_range` eviction).
pub const DIRECTION_TO_RAM: u8 = 2;

/// `Migration::api`: the `migrate_vma_*` family (a range of a process's address space).
pub const API_MIGRATE_VMA: u8 = 1;
/// `Migration::api`: the `migrate_device_*` family (a range of device pfns, no address space).
pub const API_MIGRATE_DEVICE: u8 = 2;

/// `struct migrate_vma.flags` bits (`include/linux/migrate.h`, `enum migrate_vma_direction`).
pub const MIGRATE_VMA_SELECT_SYSTEM: u32 = 1 << 0;
pub const MIGRATE_VMA_SELECT_DEVICE_PRIVATE: u32 = 1 << 1;
pub const MIGRATE_VMA_SELECT_DEVICE_COHERENT: u32 = 1 << 2;

/// One device migration, setup to finalize. Header duration: setup entry to finalize exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Migration {
    /// `migrate_vma.start` (virtual address); for `migrate_device_range`, its `start` pfn.
    pub start: u64,
    /// `migrate_vma.end` (exclusive); for `migrate_device_range`, `start + npages`.
    pub end: u64,
    /// `migrate_vma.pgmap_owner`: the driver's owner cookie, the device's identity.
    pub pgmap_owner: u64,
    /// Pages in the range: `(end - start) >> PAGE_SHIFT`, or `migrate_device_range`'s `npages`.
    pub npages: u64,
    /// `migrate_vma.cpages` after `migrate_vma_setup` returns: pages collected and isolated.
    pub cpages: u64,
    /// Entries of `migrate_vma.src` with `MIGRATE_PFN_MIGRATE` still set at finalize: migrated.
    pub migrated: u64,
    /// Entry-to-exit of `migrate_vma_setup` (or `migrate_device_range`).
    pub setup_ns: u64,
    /// Entry-to-exit of `migrate_vma_pages` (or `migrate_device_pages`).
    pub pages_ns: u64,
    /// Entry-to-exit of `migrate_vma_finalize` (or `migrate_device_finalize`).
    pub finalize_ns: u64,
    /// `migrate_vma.flags`: `MIGRATE_VMA_SELECT_*` bits.
    pub select: u32,
    /// `DIRECTION_*`, derived from `select`.
    pub direction: u8,
    /// `API_*`.
    pub api: u8,
    pub _pad: [u8; 2],
}

impl Migration {
    pub const FIELD_CPAGES: u32 = 1 << 0;
    pub const FIELD_MIGRATED: u32 = 1 << 1;
    pub const FIELD_PGMAP_OWNER: u32 = 1 << 2;
    /// The migration never finished: the task began another migration of the same family
    /// before this one's finalize, so its pages and finalize steps never ran (their times and
    /// `migrated` are unknown). A driver must call `pages` and `finalize` after a successful
    /// setup: this is a contract break.
    pub const FIELD_FINALIZE: u32 = 1 << 3;
}

/// `vm_fault_t` bits (`include/linux/mm_types.h`) a `migrate_to_ram` returns on failure: each
/// makes the faulting access fail, with a signal to the process (OOM: the OOM killer).
pub const VM_FAULT_OOM: u32 = 0x0001;
pub const VM_FAULT_SIGBUS: u32 = 0x0002;
pub const VM_FAULT_HWPOISON: u32 = 0x0010;
pub const VM_FAULT_HWPOISON_LARGE: u32 = 0x0020;
pub const VM_FAULT_SIGSEGV: u32 = 0x0040;
/// The bits above together.
pub const VM_FAULT_SIGNALS: u32 =
    VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE | VM_FAULT_SIGSEGV;

/// The names of the [`VM_FAULT_SIGNALS`] bits set in `result`, `|`-joined ("SIGBUS").
pub fn vm_fault_signals(result: u32) -> impl Iterator<Item = &'static str> {
    [
        (VM_FAULT_OOM, "OOM"),
        (VM_FAULT_SIGBUS, "SIGBUS"),
        (VM_FAULT_HWPOISON, "HWPOISON"),
        (VM_FAULT_HWPOISON_LARGE, "HWPOISON_LARGE"),
        (VM_FAULT_SIGSEGV, "SIGSEGV"),
    ]
    .into_iter()
    .filter(move |(bit, _)| result & bit != 0)
    .map(|(_, name)| name)
}

/// A CPU fault on a device-private page: the driver's `migrate_to_ram(struct vm_fault *vmf)`.
/// Header duration: the callback's entry to exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceFault {
    /// `vmf->address`: the faulting user address, page aligned.
    pub address: u64,
    /// `vmf->page->pgmap->owner`.
    pub pgmap_owner: u64,
    /// `vmf->page->pgmap->ops`: resolved through kallsyms to name the driver.
    pub pgmap_ops: u64,
    /// The callback's `vm_fault_t` return (`VM_FAULT_*` bits; 0 on success).
    pub result: u32,
    pub _pad: u32,
}

impl DeviceFault {
    pub const FIELD_PGMAP_OWNER: u32 = 1 << 0;
    pub const FIELD_PGMAP_OPS: u32 = 1 << 1;
    pub const FIELD_ADDRESS: u32 = 1 << 2;
}

/// `enum memory_type` (`include/linux/memremap.h`) values of `dev_pagemap.type`.
pub const MEMORY_DEVICE_PRIVATE: u32 = 1;
pub const MEMORY_DEVICE_COHERENT: u32 = 2;

/// The last reference to a device page dropped: `free_zone_device_folio(folio)` (or
/// `free_zone_device_page(page)`), which calls `pgmap->ops->page_free`. Only device-private and
/// device-coherent pgmaps are reported. Header duration: the free path's entry to exit;
/// `callback_ns`: the driver's `page_free` within it, when that callback is hooked.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageFree {
    /// `page_to_pfn(page)`: the device page's pfn.
    pub pfn: u64,
    /// `page->pgmap->owner`.
    pub pgmap_owner: u64,
    /// `page->pgmap->ops`.
    pub pgmap_ops: u64,
    /// `folio_order(folio)`; 0 for a single page.
    pub order: u32,
    /// `page->pgmap->type`: `MEMORY_DEVICE_*`.
    pub memory_type: u32,
    /// Entry-to-exit of the driver's `page_free` callback; flagged unknown when not hooked.
    pub callback_ns: u64,
}

impl PageFree {
    pub const FIELD_PGMAP_OWNER: u32 = 1 << 0;
    pub const FIELD_PGMAP_OPS: u32 = 1 << 1;
    pub const FIELD_ORDER: u32 = 1 << 2;
    pub const FIELD_PFN: u32 = 1 << 3;
    pub const FIELD_CALLBACK: u32 = 1 << 4;
}

/// `enum mmu_notifier_event` (`include/linux/mmu_notifier.h`), as of 6.12. The kernel's own
/// values are read from BTF at load time; these are the reference engine's and the fallback.
pub const MMU_NOTIFY_UNMAP: u32 = 0;
pub const MMU_NOTIFY_CLEAR: u32 = 1;
pub const MMU_NOTIFY_PROTECTION_VMA: u32 = 2;
pub const MMU_NOTIFY_PROTECTION_PAGE: u32 = 3;
pub const MMU_NOTIFY_SOFT_DIRTY: u32 = 4;
pub const MMU_NOTIFY_RELEASE: u32 = 5;
pub const MMU_NOTIFY_MIGRATE: u32 = 6;
pub const MMU_NOTIFY_EXCLUSIVE: u32 = 7;

/// Name of an `MMU_NOTIFY_*` value, without the prefix.
pub const fn mmu_notify_name(event: u32) -> &'static str {
    match event {
        MMU_NOTIFY_UNMAP => "UNMAP",
        MMU_NOTIFY_CLEAR => "CLEAR",
        MMU_NOTIFY_PROTECTION_VMA => "PROTECTION_VMA",
        MMU_NOTIFY_PROTECTION_PAGE => "PROTECTION_PAGE",
        MMU_NOTIFY_SOFT_DIRTY => "SOFT_DIRTY",
        MMU_NOTIFY_RELEASE => "RELEASE",
        MMU_NOTIFY_MIGRATE => "MIGRATE",
        MMU_NOTIFY_EXCLUSIVE => "EXCLUSIVE",
        _ => "UNKNOWN",
    }
}

/// `Invalidation::path`: `__mmu_notifier_invalidate_range_start`, once per invalidation of an
/// address space that has notifiers; its duration covers every callback.
pub const INVALIDATE_RANGE_START: u8 = 1;
/// `Invalidation::path`: one interval notifier's `invalidate` callback (a mirroring driver's),
/// once per overlapping notifier. `MMU_NOTIFY_RELEASE` arrives only on this path (from
/// `mmu_notifier_release` at exit, which does not go through `..._range_start`).
pub const INVALIDATE_CALLBACK: u8 = 2;

/// An invalidation of a range of an address space, seen at one of two functions (`path`):
/// `__mmu_notifier_invalidate_range_start(range)`, which runs every overlapping interval
/// notifier's `invalidate` callback, or one such callback. Header duration: that function's
/// entry to exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Invalidation {
    /// `range->start`.
    pub start: u64,
    /// `range->end` (exclusive).
    pub end: u64,
    /// `range->owner`: set by `migrate_vma_setup` and `make_device_exclusive` to the initiating
    /// driver's pgmap owner, so that driver can skip its own invalidation; 0 otherwise.
    pub owner: u64,
    /// `range->event`: an `MMU_NOTIFY_*` value.
    pub event: u32,
    /// `range->flags` (`MMU_NOTIFIER_RANGE_BLOCKABLE` = 1; no other bit is defined).
    pub range_flags: u16,
    /// `INVALIDATE_*`: which function of the invalidate path this record times.
    pub path: u8,
    pub _pad: u8,
}

impl Invalidation {
    pub const FIELD_OWNER: u32 = 1 << 0;
    pub const FIELD_EVENT: u32 = 1 << 1;
    pub const FIELD_RANGE: u32 = 1 << 2;
}

/// `-EBUSY` as `hmm_range_fault` returns it.
pub const EBUSY: i32 = -16;

/// One `hmm_range_fault(range)` that did not return `-EBUSY`. Consecutive `-EBUSY` returns of the
/// same task on the same range before it are counted in `retries`. Header duration: entry of the
/// first attempt to exit of this one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeFault {
    /// `range->start`.
    pub start: u64,
    /// `range->end` (exclusive).
    pub end: u64,
    /// `range->dev_private_owner`: device-private pages of this owner are returned, not faulted.
    pub dev_private_owner: u64,
    /// `(end - start) >> PAGE_SHIFT`.
    pub npages: u64,
    /// `-EBUSY` returns just before this call, same task and range.
    pub retries: u32,
    /// The return value: 0, or a negative errno.
    pub result: i32,
}

impl RangeFault {
    pub const FIELD_DEV_PRIVATE_OWNER: u32 = 1 << 0;
    pub const FIELD_RANGE: u32 = 1 << 1;
}

/// `enum migrate_reason` values the `migrate:mm_migrate_pages` tracepoint prints (6.12).
pub const MR_COMPACTION: u32 = 0;

/// `migrate:mm_migrate_pages`: one `migrate_pages()` call of system RAM (compaction, NUMA,
/// hotplug, ...). Context for the device paths. No duration: the tracepoint fires once, at the end.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemMigration {
    /// Tracepoint field `succeeded`.
    pub succeeded: u64,
    /// `failed`.
    pub failed: u64,
    /// `thp_succeeded`.
    pub thp_succeeded: u64,
    /// `thp_failed`.
    pub thp_failed: u64,
    /// `thp_split`.
    pub thp_split: u64,
    /// `large_folio_split` (6.12 has it, 6.1 does not).
    pub large_folio_split: u64,
    /// `mode`: `enum migrate_mode`.
    pub mode: u32,
    /// `reason`: `enum migrate_reason`.
    pub reason: u32,
}

impl SystemMigration {
    pub const FIELD_SUCCEEDED: u32 = 1 << 0;
    pub const FIELD_FAILED: u32 = 1 << 1;
    pub const FIELD_THP_SUCCEEDED: u32 = 1 << 2;
    pub const FIELD_THP_FAILED: u32 = 1 << 3;
    pub const FIELD_THP_SPLIT: u32 = 1 << 4;
    pub const FIELD_LARGE_FOLIO_SPLIT: u32 = 1 << 5;
    pub const FIELD_MODE: u32 = 1 << 6;
    pub const FIELD_REASON: u32 = 1 << 7;
}

/// Records dropped because the ring buffer was full, per logical probe. Produced by userspace from
/// the per-CPU drop counters the programs increment when `bpf_ringbuf_reserve` fails.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// Records dropped since the previous `Lost` record for this probe.
    pub count: u64,
    /// The [`ProbeId`] whose records were dropped.
    pub probe: u32,
    pub _pad: u32,
}

/// The logical probes. Index of the per-probe drop counters and of `Lost::probe`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeId {
    Migration = 0,
    DeviceFault = 1,
    PageFree = 2,
    Invalidation = 3,
    RangeFault = 4,
    SystemMigration = 5,
    /// Task-name records ([`TASK_RECORD`]).
    Task = 6,
}

/// Number of [`ProbeId`] values: the length of the drop-counter array.
pub const PROBE_COUNT: u32 = 7;

impl ProbeId {
    pub const ALL: [ProbeId; PROBE_COUNT as usize] = [
        ProbeId::Migration,
        ProbeId::DeviceFault,
        ProbeId::PageFree,
        ProbeId::Invalidation,
        ProbeId::RangeFault,
        ProbeId::SystemMigration,
        ProbeId::Task,
    ];

    pub const fn from_u32(v: u32) -> Option<ProbeId> {
        if v < PROBE_COUNT {
            Some(Self::ALL[v as usize])
        } else {
            None
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            ProbeId::Migration => "migration",
            ProbeId::DeviceFault => "device_fault",
            ProbeId::PageFree => "page_free",
            ProbeId::Invalidation => "invalidation",
            ProbeId::RangeFault => "range_fault",
            ProbeId::SystemMigration => "system_migration",
            ProbeId::Task => "task",
        }
    }
}

/// Size in bytes of the whole record of `kind`: header plus payload.
pub const fn record_size(kind: EventKind) -> usize {
    use core::mem::size_of;
    size_of::<EventHeader>()
        + match kind {
            EventKind::Migration => size_of::<Migration>(),
            EventKind::DeviceFault => size_of::<DeviceFault>(),
            EventKind::PageFree => size_of::<PageFree>(),
            EventKind::Invalidation => size_of::<Invalidation>(),
            EventKind::RangeFault => size_of::<RangeFault>(),
            EventKind::SystemMigration => size_of::<SystemMigration>(),
            EventKind::Lost => size_of::<Lost>(),
        }
}

// The layouts are the contract with the kernel side: pin their sizes so a careless edit fails to
// compile instead of producing records the other side misreads.
const _: () = {
    use core::mem::size_of;
    assert!(size_of::<EventHeader>() == 32);
    assert!(size_of::<Migration>() == 80);
    assert!(size_of::<DeviceFault>() == 32);
    assert!(size_of::<PageFree>() == 40);
    assert!(size_of::<Invalidation>() == 32);
    assert!(size_of::<RangeFault>() == 40);
    assert!(size_of::<SystemMigration>() == 56);
    assert!(size_of::<Lost>() == 16);
};

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C) structs of integers with explicit padding fields, so every
    // bit pattern is a valid value and there are no implicit padding bytes.
    unsafe impl aya::Pod for super::EventHeader {}
    unsafe impl aya::Pod for super::offsets::TracepointOffsets {}
    unsafe impl aya::Pod for super::offsets::Settings {}
    unsafe impl aya::Pod for super::offsets::MigrateVmaOffsets {}
    unsafe impl aya::Pod for super::offsets::KernelOffsets {}
    // SAFETY: repr(C), two u64s, no padding.
    unsafe impl aya::Pod for super::CensusKey {}
    unsafe impl aya::Pod for super::offsets::ForkOffsets {}
    // SAFETY: as for ForkOffsets: two u32s, no padding.
    unsafe impl aya::Pod for super::offsets::RenameOffsets {}
    // SAFETY: repr(C) integers with explicit padding fields (see agg.rs).
    unsafe impl aya::Pod for super::agg::AggKey {}
    unsafe impl aya::Pod for super::agg::AggCounts {}
    unsafe impl aya::Pod for super::agg::HistKey {}
    // SAFETY: repr(C) of the Pod types above and u64s/u32s, sizes multiples of 8: no implicit
    // padding.
    unsafe impl aya::Pod for super::agg::CountSlot {}
    unsafe impl aya::Pod for super::agg::HistSlot {}
}
