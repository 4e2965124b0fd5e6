//! Device migration: `migrate_vma_setup` → `migrate_vma_pages` → `migrate_vma_finalize` (and
//! the `migrate_device_*` family that evicts device pfns, below), paired
//! per task in the kernel so userspace gets one `Migration` record with the duration of each
//! step and of the whole.
//!
//! Each step has an entry and an exit program in two mechanisms (fentry/fexit and
//! kprobe/kretprobe); userspace loads the pair its attach plan chose, against the function the
//! plan resolved. `struct migrate_vma` offsets come from BTF through `MIGRATE_VMA_OFFSETS`.
//! A driver runs the three steps from one task, one migration at a time (test_hmm, nouveau,
//! amdkfd, drm_pagemap all do), so the task id is the pairing key.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel_buf},
    macros::{fentry, fexit, kprobe, kretprobe, map},
    maps::{HashMap, PerCpuArray},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use hmmtrace_common::{
    offsets::{MigrateVmaOffsets, MAX_SRC_ENTRIES, MIGRATE_PFN_MIGRATE, SRC_CHUNK},
    EventKind, Migration, ProbeId, Record, API_MIGRATE_DEVICE, API_MIGRATE_VMA,
    DIRECTION_TO_DEVICE, DIRECTION_TO_RAM, MIGRATE_VMA_SELECT_SYSTEM,
};

use crate::emit;
use crate::kread::{field, tid};

#[unsafe(no_mangle)]
static MIGRATE_VMA_OFFSETS: MigrateVmaOffsets = MigrateVmaOffsets::UNKNOWN;

/// A migration in progress on one task.
#[repr(C)]
#[derive(Clone, Copy)]
struct InFlight {
    entry_ns: u64,
    /// The `struct migrate_vma *` of the call.
    args: u64,
    setup_ns: u64,
    pages_entry_ns: u64,
    pages_ns: u64,
    finalize_entry_ns: u64,
    migrated: u64,
    unknown: u32,
    _pad: u32,
}

#[map]
static MIGRATE_VMA_INFLIGHT: HashMap<u32, InFlight> = HashMap::with_max_entries(16384, 0);

/// Scratch space for a chunk of `migrate_vma.src`: too big for the 512-byte BPF stack.
#[map]
static SRC_SCRATCH: PerCpuArray<[u64; SRC_CHUNK]> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn offsets() -> MigrateVmaOffsets {
    unsafe { core::ptr::read_volatile(&MIGRATE_VMA_OFFSETS) }
}

#[inline(always)]
fn setup_entry(args: u64) {
    if !emit::wanted() {
        return;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    let s = InFlight {
        entry_ns: now,
        args,
        setup_ns: 0,
        pages_entry_ns: 0,
        pages_ns: 0,
        finalize_entry_ns: 0,
        migrated: 0,
        unknown: 0,
        _pad: 0,
    };
    let _ = MIGRATE_VMA_INFLIGHT.insert(tid(), s, 0);
}

#[inline(always)]
fn setup_exit(ret: i64) {
    let key = tid();
    let Some(s) = MIGRATE_VMA_INFLIGHT.get_ptr_mut(key) else {
        return;
    };
    if ret != 0 {
        // migrate_vma_setup failed: the driver calls neither pages nor finalize.
        let _ = MIGRATE_VMA_INFLIGHT.remove(key);
        return;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    unsafe { (*s).setup_ns = now - (*s).entry_ns };
}

#[inline(always)]
fn pages_entry() {
    if let Some(s) = MIGRATE_VMA_INFLIGHT.get_ptr_mut(tid()) {
        unsafe { (*s).pages_entry_ns = bpf_ktime_get_ns() };
    }
}

#[inline(always)]
fn pages_exit() {
    if let Some(s) = MIGRATE_VMA_INFLIGHT.get_ptr_mut(tid()) {
        unsafe { (*s).pages_ns = bpf_ktime_get_ns() - (*s).pages_entry_ns };
    }
}

/// At finalize entry `src` still says which pages migrated; finalize then clears it.
#[inline(always)]
fn finalize_entry() {
    let Some(s) = MIGRATE_VMA_INFLIGHT.get_ptr_mut(tid()) else {
        return;
    };
    let now = unsafe { bpf_ktime_get_ns() };
    let args = unsafe { (*s).args };
    let off = offsets();
    let (migrated, known) = match (field::<u64>(args, off.src), field::<u64>(args, off.npages)) {
        (Some(src), Some(npages)) if npages <= MAX_SRC_ENTRIES => {
            (count_migrated(src, npages), true)
        }
        _ => (0, false),
    };
    unsafe {
        (*s).finalize_entry_ns = now;
        (*s).migrated = migrated;
        if !known {
            (*s).unknown |= Migration::FIELD_MIGRATED;
        }
    }
}

/// Entries of `src[0..npages]` with `MIGRATE_PFN_MIGRATE`, read a chunk at a time.
#[inline(always)]
fn count_migrated(src: u64, npages: u64) -> u64 {
    let Some(buf) = SRC_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let buf = unsafe { &mut *buf };
    let mut migrated = 0u64;
    let chunks = (MAX_SRC_ENTRIES as usize) / SRC_CHUNK;
    for c in 0..chunks {
        let first = (c * SRC_CHUNK) as u64;
        if first >= npages {
            break;
        }
        let n = core::cmp::min(SRC_CHUNK as u64, npages - first) as usize;
        let bytes = unsafe {
            core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), SRC_CHUNK * 8)
        };
        let len = n * 8;
        if len > bytes.len() {
            break;
        }
        if unsafe { bpf_probe_read_kernel_buf((src + first * 8) as *const u8, &mut bytes[..len]) }
            .is_err()
        {
            break;
        }
        for (i, entry) in buf.iter().enumerate() {
            if i >= n {
                break;
            }
            if entry & MIGRATE_PFN_MIGRATE != 0 {
                migrated += 1;
            }
        }
    }
    migrated
}

#[inline(always)]
fn finalize_exit() {
    let key = tid();
    let Some(s) = MIGRATE_VMA_INFLIGHT.get_ptr_mut(key) else {
        return;
    };
    let s = unsafe { *s };
    let _ = MIGRATE_VMA_INFLIGHT.remove(key);
    let now = unsafe { bpf_ktime_get_ns() };
    let off = offsets();
    let mut unknown = s.unknown;
    let start = field::<u64>(s.args, off.start).unwrap_or(0);
    let end = field::<u64>(s.args, off.end).unwrap_or(0);
    let npages = field::<u64>(s.args, off.npages).unwrap_or(0);
    // cpages is what setup collected; finalize leaves it as it was.
    let cpages = match field::<u64>(s.args, off.cpages) {
        Some(v) => v,
        None => {
            unknown |= Migration::FIELD_CPAGES;
            0
        }
    };
    let pgmap_owner = match field::<u64>(s.args, off.pgmap_owner) {
        Some(v) => v,
        None => {
            unknown |= Migration::FIELD_PGMAP_OWNER;
            0
        }
    };
    let select = field::<u64>(s.args, off.flags).unwrap_or(0) as u32;
    let payload = Migration {
        start,
        end,
        pgmap_owner,
        npages,
        cpages,
        migrated: s.migrated,
        setup_ns: s.setup_ns,
        pages_ns: s.pages_ns,
        finalize_ns: now - s.finalize_entry_ns,
        select,
        direction: if select & MIGRATE_VMA_SELECT_SYSTEM != 0 {
            DIRECTION_TO_DEVICE
        } else {
            DIRECTION_TO_RAM
        },
        api: API_MIGRATE_VMA,
        _pad: [0; 2],
    };
    let header = emit::header(
        EventKind::Migration,
        s.entry_ns,
        Some(now - s.entry_ns),
        unknown,
    );
    emit::submit(ProbeId::Migration, Record { header, payload });
}

// fentry/fexit: the arguments, then (fexit) the return value, as 64-bit slots.

#[fentry(function = "migrate_vma_setup")]
pub fn fentry_migrate_vma_setup(ctx: FEntryContext) -> u32 {
    setup_entry(ctx.arg::<u64>(0));
    0
}

#[fexit(function = "migrate_vma_setup")]
pub fn fexit_migrate_vma_setup(ctx: FExitContext) -> u32 {
    setup_exit(ctx.arg::<i32>(1) as i64);
    0
}

#[fentry(function = "migrate_vma_pages")]
pub fn fentry_migrate_vma_pages(_ctx: FEntryContext) -> u32 {
    pages_entry();
    0
}

#[fexit(function = "migrate_vma_pages")]
pub fn fexit_migrate_vma_pages(_ctx: FExitContext) -> u32 {
    pages_exit();
    0
}

#[fentry(function = "migrate_vma_finalize")]
pub fn fentry_migrate_vma_finalize(_ctx: FEntryContext) -> u32 {
    finalize_entry();
    0
}

#[fexit(function = "migrate_vma_finalize")]
pub fn fexit_migrate_vma_finalize(_ctx: FExitContext) -> u32 {
    finalize_exit();
    0
}

// kprobe/kretprobe: the same, where fentry cannot attach.

#[kprobe]
pub fn kprobe_migrate_vma_setup(ctx: ProbeContext) -> u32 {
    setup_entry(ctx.arg::<u64>(0).unwrap_or(0));
    0
}

#[kretprobe]
pub fn kretprobe_migrate_vma_setup(ctx: RetProbeContext) -> u32 {
    setup_exit(ctx.ret::<i32>() as i64);
    0
}

#[kprobe]
pub fn kprobe_migrate_vma_pages(_ctx: ProbeContext) -> u32 {
    pages_entry();
    0
}

#[kretprobe]
pub fn kretprobe_migrate_vma_pages(_ctx: RetProbeContext) -> u32 {
    pages_exit();
    0
}

#[kprobe]
pub fn kprobe_migrate_vma_finalize(_ctx: ProbeContext) -> u32 {
    finalize_entry();
    0
}

#[kretprobe]
pub fn kretprobe_migrate_vma_finalize(_ctx: RetProbeContext) -> u32 {
    finalize_exit();
    0
}

// migrate_device_range(src_pfns, start, npages) → migrate_device_pages(src, dst, npages) →
// migrate_device_finalize(src, dst, npages): eviction of device pfns back to RAM, with no
// address space and no migrate_vma. cpages is what the range call collected.

#[repr(C)]
#[derive(Clone, Copy)]
struct DeviceInFlight {
    entry_ns: u64,
    src: u64,
    start: u64,
    npages: u64,
    setup_ns: u64,
    cpages: u64,
    pages_entry_ns: u64,
    pages_ns: u64,
    finalize_entry_ns: u64,
    migrated: u64,
    unknown: u32,
    _pad: u32,
}

#[map]
static MIGRATE_DEVICE_INFLIGHT: HashMap<u32, DeviceInFlight> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
fn device_range_entry(src: u64, start: u64, npages: u64) {
    if !emit::wanted() {
        return;
    }
    let s = DeviceInFlight {
        entry_ns: unsafe { bpf_ktime_get_ns() },
        src,
        start,
        npages,
        setup_ns: 0,
        cpages: 0,
        pages_entry_ns: 0,
        pages_ns: 0,
        finalize_entry_ns: 0,
        migrated: 0,
        unknown: 0,
        _pad: 0,
    };
    let _ = MIGRATE_DEVICE_INFLIGHT.insert(tid(), s, 0);
}

#[inline(always)]
fn device_range_exit(ret: i64) {
    let key = tid();
    let Some(s) = MIGRATE_DEVICE_INFLIGHT.get_ptr_mut(key) else {
        return;
    };
    if ret != 0 {
        let _ = MIGRATE_DEVICE_INFLIGHT.remove(key);
        return;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    unsafe {
        (*s).setup_ns = now - (*s).entry_ns;
        if (*s).npages <= MAX_SRC_ENTRIES {
            (*s).cpages = count_migrated((*s).src, (*s).npages);
        } else {
            (*s).unknown |= Migration::FIELD_CPAGES | Migration::FIELD_MIGRATED;
        }
    }
}

#[inline(always)]
fn device_pages_entry() {
    if let Some(s) = MIGRATE_DEVICE_INFLIGHT.get_ptr_mut(tid()) {
        unsafe { (*s).pages_entry_ns = bpf_ktime_get_ns() };
    }
}

#[inline(always)]
fn device_pages_exit() {
    if let Some(s) = MIGRATE_DEVICE_INFLIGHT.get_ptr_mut(tid()) {
        unsafe { (*s).pages_ns = bpf_ktime_get_ns() - (*s).pages_entry_ns };
    }
}

#[inline(always)]
fn device_finalize_entry() {
    if let Some(s) = MIGRATE_DEVICE_INFLIGHT.get_ptr_mut(tid()) {
        unsafe {
            (*s).finalize_entry_ns = bpf_ktime_get_ns();
            if (*s).npages <= MAX_SRC_ENTRIES {
                (*s).migrated = count_migrated((*s).src, (*s).npages);
            }
        }
    }
}

#[inline(always)]
fn device_finalize_exit() {
    let key = tid();
    let Some(s) = MIGRATE_DEVICE_INFLIGHT.get_ptr_mut(key) else {
        return;
    };
    let s = unsafe { *s };
    let _ = MIGRATE_DEVICE_INFLIGHT.remove(key);
    let now = unsafe { bpf_ktime_get_ns() };
    let payload = Migration {
        start: s.start,
        end: s.start + s.npages,
        // The range names pfns, not a driver: the owner is not an argument.
        pgmap_owner: 0,
        npages: s.npages,
        cpages: s.cpages,
        migrated: s.migrated,
        setup_ns: s.setup_ns,
        pages_ns: s.pages_ns,
        finalize_ns: now - s.finalize_entry_ns,
        select: 0,
        direction: DIRECTION_TO_RAM,
        api: API_MIGRATE_DEVICE,
        _pad: [0; 2],
    };
    let unknown = s.unknown | Migration::FIELD_PGMAP_OWNER;
    let header = emit::header(
        EventKind::Migration,
        s.entry_ns,
        Some(now - s.entry_ns),
        unknown,
    );
    emit::submit(ProbeId::Migration, Record { header, payload });
}

#[fentry(function = "migrate_device_range")]
pub fn fentry_migrate_device_range(ctx: FEntryContext) -> u32 {
    device_range_entry(ctx.arg::<u64>(0), ctx.arg::<u64>(1), ctx.arg::<u64>(2));
    0
}

#[fexit(function = "migrate_device_range")]
pub fn fexit_migrate_device_range(ctx: FExitContext) -> u32 {
    device_range_exit(ctx.arg::<i32>(3) as i64);
    0
}

#[fentry(function = "migrate_device_pages")]
pub fn fentry_migrate_device_pages(_ctx: FEntryContext) -> u32 {
    device_pages_entry();
    0
}

#[fexit(function = "migrate_device_pages")]
pub fn fexit_migrate_device_pages(_ctx: FExitContext) -> u32 {
    device_pages_exit();
    0
}

#[fentry(function = "migrate_device_finalize")]
pub fn fentry_migrate_device_finalize(_ctx: FEntryContext) -> u32 {
    device_finalize_entry();
    0
}

#[fexit(function = "migrate_device_finalize")]
pub fn fexit_migrate_device_finalize(_ctx: FExitContext) -> u32 {
    device_finalize_exit();
    0
}

#[kprobe]
pub fn kprobe_migrate_device_range(ctx: ProbeContext) -> u32 {
    device_range_entry(
        ctx.arg::<u64>(0).unwrap_or(0),
        ctx.arg::<u64>(1).unwrap_or(0),
        ctx.arg::<u64>(2).unwrap_or(0),
    );
    0
}

#[kretprobe]
pub fn kretprobe_migrate_device_range(ctx: RetProbeContext) -> u32 {
    device_range_exit(ctx.ret::<i32>() as i64);
    0
}

#[kprobe]
pub fn kprobe_migrate_device_pages(_ctx: ProbeContext) -> u32 {
    device_pages_entry();
    0
}

#[kretprobe]
pub fn kretprobe_migrate_device_pages(_ctx: RetProbeContext) -> u32 {
    device_pages_exit();
    0
}

#[kprobe]
pub fn kprobe_migrate_device_finalize(_ctx: ProbeContext) -> u32 {
    device_finalize_entry();
    0
}

#[kretprobe]
pub fn kretprobe_migrate_device_finalize(_ctx: RetProbeContext) -> u32 {
    device_finalize_exit();
    0
}
