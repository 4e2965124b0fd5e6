//! Field offsets the eBPF programs cannot know at compile time (Rust eBPF has no CO-RE).
//!
//! Userspace reads them from the running kernel (tracefs `format` files, `/sys/kernel/btf/vmlinux`)
//! before loading and writes them into the programs' read-only globals. [`UNKNOWN`] marks a field
//! the kernel does not have: the program then leaves the payload field zero and sets its bit in
//! `EventHeader::unknown`.

/// Offset value meaning "this kernel has no such field".
pub const UNKNOWN: u32 = u32::MAX;

/// Offsets, within the `migrate:mm_migrate_pages` tracepoint's record, of the fields it reads.
/// Source: `/sys/kernel/tracing/events/migrate/mm_migrate_pages/format`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracepointOffsets {
    pub succeeded: u32,
    pub failed: u32,
    pub thp_succeeded: u32,
    pub thp_failed: u32,
    pub thp_split: u32,
    pub large_folio_split: u32,
    pub mode: u32,
    pub reason: u32,
}

impl TracepointOffsets {
    /// Every field unknown: what a program sees if userspace never filled the global.
    pub const UNKNOWN: TracepointOffsets = TracepointOffsets {
        succeeded: UNKNOWN,
        failed: UNKNOWN,
        thp_succeeded: UNKNOWN,
        thp_failed: UNKNOWN,
        thp_split: UNKNOWN,
        large_folio_split: UNKNOWN,
        mode: UNKNOWN,
        reason: UNKNOWN,
    };
}

/// Settings userspace passes to every program.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Wake the reader only once this many bytes wait in the ring (`BPF_RB_FORCE_WAKEUP`);
    /// below it records are submitted with `BPF_RB_NO_WAKEUP` and the reader's timer collects
    /// them. Waking per record costs a trap per event (see shared/FACTS.md).
    pub wakeup_bytes: u64,
    /// Only trace this thread group (0: all). The `record -- CMD` filter.
    pub filter_tgid: u32,
    pub _pad: u32,
}

impl Settings {
    pub const DEFAULT: Settings = Settings {
        wakeup_bytes: 64 * 1024,
        filter_tgid: 0,
        _pad: 0,
    };
}
