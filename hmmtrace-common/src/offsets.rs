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
    /// 1: only tasks whose tgid is in the `TGIDS` map (`record --pid`, `record -- CMD`); the
    /// fork tracepoint adds the children of those tasks.
    pub filter_tgids: u32,
    /// 1: only tasks whose `comm` equals `comm` (`record --comm`).
    pub filter_comm: u32,
    pub comm: [u8; 16],
    /// 0: [`crate::TASK_RECORD`]s name tasks when they fork or are renamed (userspace names
    /// the rest from /proc), no helper call per event. 1 (a kernel without those tracepoints'
    /// fields): the programs read `bpf_get_current_comm()` per event and send a task-name
    /// record before an event whenever the task's (pid, comm) differs from the last one this
    /// cpu named.
    pub comm_in_records: u32,
    /// 1: `--aggregate`: the HMM probes update per-CPU counts and histograms
    /// (`hmmtrace_common::agg`) instead of sending a record per event.
    pub aggregate: u32,
}

impl Settings {
    pub const DEFAULT: Settings = Settings {
        wakeup_bytes: 64 * 1024,
        filter_tgids: 0,
        filter_comm: 0,
        comm: [0; 16],
        comm_in_records: 1,
        aggregate: 0,
    };
}

/// Offsets in the `task:task_rename` record (from its tracefs `format`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenameOffsets {
    /// The renamed task (not always the current one: `/proc/PID/comm` renames another).
    pub pid: u32,
    /// `char newcomm[16]`.
    pub newcomm: u32,
}

impl RenameOffsets {
    pub const UNKNOWN: RenameOffsets = RenameOffsets {
        pid: UNKNOWN,
        newcomm: UNKNOWN,
    };
}

/// Offsets in the `sched:sched_process_fork` record (from its tracefs `format`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkOffsets {
    pub child_pid: u32,
    pub _pad: u32,
}

impl ForkOffsets {
    pub const UNKNOWN: ForkOffsets = ForkOffsets {
        child_pid: UNKNOWN,
        _pad: 0,
    };
}

/// Byte offsets in `struct migrate_vma` (`include/linux/migrate.h`), from the kernel's BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrateVmaOffsets {
    pub src: u32,
    pub cpages: u32,
    pub npages: u32,
    pub start: u32,
    pub end: u32,
    pub pgmap_owner: u32,
    pub flags: u32,
    pub _pad: u32,
}

impl MigrateVmaOffsets {
    pub const UNKNOWN: MigrateVmaOffsets = MigrateVmaOffsets {
        src: UNKNOWN,
        cpages: UNKNOWN,
        npages: UNKNOWN,
        start: UNKNOWN,
        end: UNKNOWN,
        pgmap_owner: UNKNOWN,
        flags: UNKNOWN,
        _pad: 0,
    };
}

/// `MIGRATE_PFN_MIGRATE` (`include/linux/migrate.h`): set in a `src` entry that is migrating;
/// cleared when the page could not be. The same bit from 5.x to 6.18.
pub const MIGRATE_PFN_MIGRATE: u64 = 1 << 1;

/// Most `src` entries the migration program inspects per migration (in chunks of
/// [`SRC_CHUNK`]): a bounded loop for the verifier. Larger migrations mark `migrated` unknown.
pub const MAX_SRC_ENTRIES: u64 = 4096;
/// `src` entries read at once into the per-CPU scratch buffer.
pub const SRC_CHUNK: usize = 64;

/// Offsets and constants for the fault, free, invalidation and range-fault paths, from BTF
/// (`UNKNOWN` where the kernel lacks the member) and kallsyms.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `struct page.pgmap` (to 6.14) or `struct folio.pgmap` (6.18): a folio starts with its
    /// head page, so either offset applies to the pointer the free path receives.
    pub page_pgmap: u32,
    /// `struct page.flags`.
    pub page_flags: u32,
    /// Bit of `PG_head` in `page.flags` (`enum pageflags`): a large folio.
    pub pg_head_bit: u32,
    /// `sizeof(struct page)`, to turn a `struct page *` into a pfn.
    pub page_struct_size: u32,
    /// `struct dev_pagemap.{ops, owner, type}`.
    pub pgmap_ops: u32,
    pub pgmap_owner: u32,
    pub pgmap_type: u32,
    /// `enum memory_type` values `MEMORY_DEVICE_PRIVATE` and `MEMORY_DEVICE_COHERENT`.
    pub memory_device_private: u32,
    pub memory_device_coherent: u32,
    /// `struct vm_fault.{address, page}`.
    pub vmf_address: u32,
    pub vmf_page: u32,
    /// `struct mmu_notifier_range.{start, end, event, flags, owner}`.
    pub range_start: u32,
    pub range_end: u32,
    pub range_event: u32,
    pub range_flags: u32,
    pub range_owner: u32,
    /// `struct hmm_range.{start, end, dev_private_owner}`.
    pub hmm_start: u32,
    pub hmm_end: u32,
    pub hmm_owner: u32,
    /// `struct dev_pagemap_ops.{page_free (folio_free where renamed), migrate_to_ram}`: what
    /// callback discovery reads.
    pub ops_page_free: u32,
    pub ops_migrate_to_ram: u32,
    pub _pad: u32,
    /// Address of the kernel variable `vmemmap_base` (x86-64), whose value is the
    /// `struct page` array's base; 0 when kallsyms does not show it.
    pub vmemmap_base_addr: u64,
}

impl KernelOffsets {
    pub const UNKNOWN: KernelOffsets = KernelOffsets {
        page_pgmap: UNKNOWN,
        page_flags: UNKNOWN,
        pg_head_bit: UNKNOWN,
        page_struct_size: UNKNOWN,
        pgmap_ops: UNKNOWN,
        pgmap_owner: UNKNOWN,
        pgmap_type: UNKNOWN,
        memory_device_private: UNKNOWN,
        memory_device_coherent: UNKNOWN,
        vmf_address: UNKNOWN,
        vmf_page: UNKNOWN,
        range_start: UNKNOWN,
        range_end: UNKNOWN,
        range_event: UNKNOWN,
        range_flags: UNKNOWN,
        range_owner: UNKNOWN,
        hmm_start: UNKNOWN,
        hmm_end: UNKNOWN,
        hmm_owner: UNKNOWN,
        ops_page_free: UNKNOWN,
        ops_migrate_to_ram: UNKNOWN,
        _pad: 0,
        vmemmap_base_addr: 0,
    };
}
