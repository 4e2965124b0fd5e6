//! Reading kernel memory at offsets userspace found in BTF, the clock, and the per-task
//! pairing helpers every entry/exit pair uses.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel};
use hmmtrace_common::offsets::{KernelOffsets, UNKNOWN};

#[unsafe(no_mangle)]
static KERNEL_OFFSETS: KernelOffsets = KernelOffsets::UNKNOWN;

#[inline(always)]
pub(crate) fn offsets() -> KernelOffsets {
    // SAFETY: a plain read of a static; volatile because userspace patches the value into
    // .rodata at load time, so the compiler must not fold the default into the code.
    unsafe { core::ptr::read_volatile(&KERNEL_OFFSETS) }
}

/// The current thread id: the key that pairs an entry with its exit.
#[inline(always)]
pub(crate) fn tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

/// `CLOCK_MONOTONIC` in ns: every timestamp and duration hmmtrace records.
#[inline(always)]
pub(crate) fn now() -> u64 {
    // SAFETY: bpf_ktime_get_ns takes no arguments and has no preconditions.
    unsafe { bpf_ktime_get_ns() }
}

/// Reads a `T` at `base + offset`; `None` when the offset is unknown, the base is NULL or the
/// read faults. Never a guess.
#[inline(always)]
pub(crate) fn field<T>(base: u64, offset: u32) -> Option<T> {
    if offset == UNKNOWN || base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel copies through the kernel's fault-handling accessor: a bad
    // address returns an error (→ None), it never faults the program.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T).ok() }
}

/// A device page's `dev_pagemap`: (owner, ops, type), each `None` if unreadable.
#[inline(always)]
pub(crate) fn pgmap_of(page: u64) -> (Option<u64>, Option<u64>, Option<u32>) {
    let off = offsets();
    match field::<u64>(page, off.page_pgmap) {
        Some(pgmap) => (
            field::<u64>(pgmap, off.pgmap_owner),
            field::<u64>(pgmap, off.pgmap_ops),
            field::<u32>(pgmap, off.pgmap_type),
        ),
        None => (None, None, None),
    }
}

/// An entry time and the argument the exit needs.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    pub ts: u64,
    pub arg: u64,
}
