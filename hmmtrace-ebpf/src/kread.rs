//! Reading kernel memory at offsets userspace found in BTF, the clock, and the per-task
//! pairing helpers every entry/exit pair uses.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::map,
    maps::Array,
};
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

/// Where a probe reads a struct from: an address it saved (read with `bpf_probe_read_kernel`),
/// or an fentry/fexit argument the verifier knows by its BTF type, read with plain loads (the
/// verifier checks each against the struct's fields and makes it a load that cannot fault:
/// no helper call per field).
#[derive(Clone, Copy)]
pub(crate) enum Base {
    Probe(u64),
    Btf(u64),
}

impl Base {
    /// The fexit (or fentry) program's `typed` argument when it has one, else the address
    /// `saved` at entry.
    #[inline(always)]
    pub(crate) fn of(typed: Option<u64>, saved: u64) -> Base {
        typed.map_or(Base::Probe(saved), Base::Btf)
    }

    /// The `T` at `offset`; `None` when the offset is unknown or the base NULL.
    #[inline(always)]
    pub(crate) fn get<T: Copy>(self, offset: u32) -> Option<T> {
        match self {
            Base::Probe(base) => field(base, offset),
            Base::Btf(base) => {
                if offset == UNKNOWN || base == 0 {
                    return None;
                }
                // SAFETY: `base` is the traced function's argument, typed by BTF in the
                // verifier, and `offset` a field's offset from the same BTF (a constant the
                // verifier knows): it checks the load against the struct and marks it as one
                // whose fault reads zero.
                Some(unsafe { core::ptr::read_volatile((base + offset as u64) as *const T) })
            }
        }
    }
}

/// A device page's `dev_pagemap`: (owner, ops, type), each `None` if unreadable. The pgmap
/// itself is read with the helper whatever `page` is: BTF would type the loaded pointer by
/// the first union member at its offset (a `list_head`), not as a `dev_pagemap`.
#[inline(always)]
pub(crate) fn pgmap_of(page: Base) -> (Option<u64>, Option<u64>, Option<u32>) {
    let off = offsets();
    match page.get::<u64>(off.page_pgmap) {
        Some(pgmap) => (
            field::<u64>(pgmap, off.pgmap_owner),
            field::<u64>(pgmap, off.pgmap_ops),
            field::<u32>(pgmap, off.pgmap_type),
        ),
        None => (None, None, None),
    }
}

/// A device page's `dev_pagemap` owner alone (what an aggregate group keeps): two reads
/// instead of `pgmap_of`'s four.
#[inline(always)]
pub(crate) fn pgmap_owner_of(page: u64) -> Option<u64> {
    let off = offsets();
    field::<u64>(field::<u64>(page, off.page_pgmap)?, off.pgmap_owner)
}

/// The kernel's `vmemmap_base` (where `struct page`s start), read once and kept: set at boot
/// (KASLR) and never changed, and read for every freed page otherwise.
#[map]
static VMEMMAP_BASE: Array<u64> = Array::with_max_entries(1, 0);

#[inline(always)]
pub(crate) fn vmemmap_base() -> Option<u64> {
    let cache = VMEMMAP_BASE.get_ptr_mut(0)?;
    // SAFETY: the one value of an array map, valid for the program's run; CPUs racing here
    // all write the same value.
    unsafe {
        if *cache != 0 {
            return Some(*cache);
        }
        let base = field::<u64>(offsets().vmemmap_base_addr, 0)?;
        *cache = base;
        Some(base)
    }
}

// `tp_u64` and `tp_u32` read a field of a tracepoint's record at `offset`, which userspace
// found in tracefs and patched into a read-only global: a direct load from the context, not a
// `bpf_probe_read` helper call (the field reads were half of the program's cost on
// `mm_migrate_pages`).
//
// The verifier allows context loads only at offsets fixed in the instruction, so each offset
// the kernels have is its own arm with its own load instruction, written in assembly so that
// LLVM cannot fold the arms back into one load at `ctx + offset` (which the verifier rejects:
// "dereference of modified ctx ptr"). The verifier knows the patched value (a frozen read-only
// map), so it walks only the matching arm, and the context size it checks at attach is that
// arm's. An offset outside the arms reads as unknown, never as a guess.

/// One function per field size: a `match` of the offsets, each arm one load instruction.
macro_rules! tp_loads {
    ($name:ident, $ty:ty, $size:literal, [$($o:literal)*]) => {
        #[inline(always)]
        pub(crate) fn $name(
            ctx: &aya_ebpf::programs::TracePointContext,
            offset: u32,
        ) -> Option<$ty> {
            let base = aya_ebpf::EbpfContext::as_ptr(ctx);
            match offset {
                $($o => {
                    let v: u64;
                    // SAFETY: one load from the tracepoint's record at an offset tracefs gave
                    // for a field of this size (zero-extended); the verifier checks it against
                    // the context's bounds.
                    unsafe {
                        core::arch::asm!(
                            concat!("{v} = *(", $size, " *)({b} + ", stringify!($o), ")"),
                            v = out(reg) v, b = in(reg) base,
                            options(readonly, nostack, preserves_flags),
                        )
                    };
                    Some(v as $ty)
                })*
                _ => None,
            }
        }
    };
}

tp_loads!(tp_u64, u64, "u64", [8 16 24 32 40 48 56 64 72 80 88 96]);
tp_loads!(
    tp_u32,
    u32,
    "u32",
    [8 12 16 20 24 28 32 36 40 44 48 52 56 60 64 68 72 76 80 84 88 92 96 100]
);
