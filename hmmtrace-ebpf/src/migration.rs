//! Device migration: `migrate_vma_setup` → `migrate_vma_pages` → `migrate_vma_finalize`, and
//! the `migrate_device_range` → `migrate_device_pages` → `migrate_device_finalize` family that
//! evicts device pfns back to RAM. One state machine serves both: each task's migration in
//! progress is an [`InFlight`] in the family's map, advanced by each step's entry and exit, and
//! turned into one `Migration` record with the duration of each step and of the whole at the
//! finalize's exit.
//!
//! Each step has an entry and an exit program in two mechanisms (fentry/fexit and
//! kprobe/kretprobe); userspace loads the pair its attach plan chose, against the function the
//! plan resolved. `struct migrate_vma` offsets come from BTF through `MIGRATE_VMA_OFFSETS`.
//! A driver runs the three steps from one task, one migration at a time (test_hmm, nouveau,
//! amdkfd, drm_pagemap all do), so the task id is the pairing key.

use aya_ebpf::{
    helpers::bpf_probe_read_kernel_buf,
    macros::{fentry, fexit, kprobe, kretprobe, map},
    maps::{HashMap, PerCpuArray},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
    EbpfContext,
};
use aya_log_ebpf::{debug, warn};
use hmmtrace_common::{
    offsets::{MigrateVmaOffsets, MAX_SRC_ENTRIES, MIGRATE_PFN_MIGRATE, SRC_CHUNK},
    EventKind, Migration, ProbeId, Record, API_MIGRATE_DEVICE, API_MIGRATE_VMA,
    DIRECTION_TO_DEVICE, DIRECTION_TO_RAM, MIGRATE_VMA_SELECT_SYSTEM,
};

use crate::emit;
use crate::kread::{now, tid, Base};

#[unsafe(no_mangle)]
static MIGRATE_VMA_OFFSETS: MigrateVmaOffsets = MigrateVmaOffsets::UNKNOWN;

#[inline(always)]
fn offsets() -> MigrateVmaOffsets {
    // SAFETY: a plain read of a static; volatile because userspace patches it into .rodata at
    // load time.
    unsafe { core::ptr::read_volatile(&MIGRATE_VMA_OFFSETS) }
}

/// A migration in progress on one task, of either family.
#[repr(C)]
#[derive(Clone, Copy)]
struct InFlight {
    entry_ns: u64,
    /// `migrate_vma_*`: the `struct migrate_vma *`; `migrate_device_*`: the `src_pfns` array.
    arg: u64,
    /// The range: `migrate_device_*`'s arguments, or `migrate_vma_*`'s `args` read at the
    /// setup's exit (so a migration that never finishes can still be described).
    start: u64,
    end: u64,
    npages: u64,
    owner: u64,
    setup_ns: u64,
    cpages: u64,
    pages_entry_ns: u64,
    pages_ns: u64,
    finalize_entry_ns: u64,
    migrated: u64,
    unknown: u32,
    /// `migrate_vma.flags` (`MIGRATE_VMA_SELECT_*`).
    select: u32,
}

type InFlightMap = HashMap<u32, InFlight>;

#[map]
static MIGRATE_VMA_INFLIGHT: InFlightMap = HashMap::with_max_entries(16384, 0);

#[map]
static MIGRATE_DEVICE_INFLIGHT: InFlightMap = HashMap::with_max_entries(16384, 0);

/// Scratch space for a chunk of a `src` array: too big for the 512-byte BPF stack.
#[map]
static SRC_SCRATCH: PerCpuArray<[u64; SRC_CHUNK]> = PerCpuArray::with_max_entries(1, 0);

// The state machine: the same steps for both families.

#[inline(always)]
fn begin<C: EbpfContext>(
    ctx: &C,
    map: &InFlightMap,
    device_family: bool,
    arg: u64,
    start: u64,
    npages: u64,
) {
    if !emit::wanted() {
        return;
    }
    // The task's previous migration of this family set up and never finished: the driver
    // broke the contract. Record it before this one takes its place.
    if let Some(old) = map.get_ptr(tid()) {
        // SAFETY: this task's entry (see `setup_done`), copied out before it is replaced.
        let old = unsafe { *old };
        if old.setup_ns != 0 {
            abandoned(&old, device_family);
        }
    }
    let s = InFlight {
        entry_ns: now(),
        arg,
        start,
        end: start + npages,
        npages,
        owner: 0,
        setup_ns: 0,
        cpages: 0,
        pages_entry_ns: 0,
        pages_ns: 0,
        finalize_entry_ns: 0,
        migrated: 0,
        unknown: 0,
        select: 0,
    };
    if map.insert(tid(), s, 0).is_err() {
        warn!(
            ctx,
            "in-flight map full: a migration on this task is not traced"
        );
    }
}

/// The setup step returned `ret`; `collected` counts what it collected (the device family).
/// `typed`: `args` as the fexit program's argument (plain loads), else the saved address.
#[inline(always)]
fn setup_done<C: EbpfContext>(
    ctx: &C,
    map: &InFlightMap,
    ret: i64,
    collected: bool,
    typed: Option<u64>,
) {
    let key = tid();
    let Some(s) = map.get_ptr_mut(key) else {
        return;
    };
    if ret != 0 {
        // The setup failed: the driver calls neither pages nor finalize.
        let _ = map.remove(key);
        debug!(ctx, "migration setup returned {}: nothing migrated", ret);
        return;
    }
    let now = now();
    // SAFETY: `s` points at this task's entry of a per-task map; only this task's programs
    // touch it, and they do not run concurrently with themselves on one task.
    let s = unsafe { &mut *s };
    s.setup_ns = now - s.entry_ns;
    if !collected {
        // migrate_vma: the arguments now, while `args` surely holds them.
        let off = offsets();
        let args = Base::of(typed, s.arg);
        s.select = args.get::<u64>(off.flags).unwrap_or(0) as u32;
        match args.get::<u64>(off.pgmap_owner) {
            Some(o) => s.owner = o,
            None => s.unknown |= Migration::FIELD_PGMAP_OWNER,
        }
        // A group keeps the owner and the direction only (`vma_finalize_exit`).
        if !emit::aggregating() {
            s.start = args.get::<u64>(off.start).unwrap_or(0);
            s.end = args.get::<u64>(off.end).unwrap_or(0);
            s.npages = args.get::<u64>(off.npages).unwrap_or(0);
            match args.get::<u64>(off.cpages) {
                Some(c) => s.cpages = c,
                None => s.unknown |= Migration::FIELD_CPAGES,
            }
        }
    }
    if collected {
        match count_migrated(s.arg, s.npages) {
            Some(n) => s.cpages = n,
            None => {
                s.unknown |= Migration::FIELD_CPAGES | Migration::FIELD_MIGRATED;
                warn!(
                    ctx,
                    "{} pages exceed the {} this probe reads: counts unknown",
                    s.npages,
                    MAX_SRC_ENTRIES
                );
            }
        }
    }
}

#[inline(always)]
fn pages_entry(map: &InFlightMap) {
    if let Some(s) = map.get_ptr_mut(tid()) {
        // SAFETY: this task's entry (see `setup_done`).
        unsafe { (*s).pages_entry_ns = now() };
    }
}

#[inline(always)]
fn pages_exit(map: &InFlightMap) {
    if let Some(s) = map.get_ptr_mut(tid()) {
        // SAFETY: this task's entry (see `setup_done`).
        unsafe { (*s).pages_ns = now() - (*s).pages_entry_ns };
    }
}

/// At finalize entry `src` still says which pages migrated (finalize then clears it):
/// `src` and `npages` are where the family keeps them.
#[inline(always)]
fn finalize_entry<C: EbpfContext>(
    ctx: &C,
    map: &InFlightMap,
    device_family: bool,
    src: impl Fn(&InFlight) -> Option<(u64, u64)>,
) {
    let Some(s) = map.get_ptr_mut(tid()) else {
        if !(device_family && inside_migrate_vma()) {
            debug!(
                ctx,
                "a migration finalize without its setup on this task: not paired"
            );
        }
        return;
    };
    // SAFETY: this task's entry (see `setup_done`).
    let s = unsafe { &mut *s };
    s.finalize_entry_ns = now();
    match src(s).and_then(|(src, npages)| count_migrated(src, npages)) {
        Some(n) => s.migrated = n,
        None => s.unknown |= Migration::FIELD_MIGRATED,
    }
}

/// Whether an unpaired `migrate_device_*` step of this task runs inside a `migrate_vma_*`
/// migration: `migrate_vma_finalize` calls `migrate_device_finalize` itself (6.1 and later),
/// which is no migration of its own.
#[inline(always)]
fn inside_migrate_vma() -> bool {
    MIGRATE_VMA_INFLIGHT.get_ptr(tid()).is_some()
}

/// Takes the task's migration out of `map` at finalize exit: it, and the time.
#[inline(always)]
fn finish(map: &InFlightMap) -> Option<(InFlight, u64)> {
    let key = tid();
    let s = map.get_ptr_mut(key)?;
    // SAFETY: this task's entry (see `setup_done`); copied out before it is removed.
    let s = unsafe { *s };
    let _ = map.remove(key);
    Some((s, now()))
}

/// A migration that set up and never reached its pages and finalize steps: its record, with
/// what never ran marked unknown (`Migration::FIELD_FINALIZE`) and no duration.
#[inline(always)]
fn abandoned(s: &InFlight, device_family: bool) {
    let payload = Migration {
        start: s.start,
        end: s.end,
        pgmap_owner: s.owner,
        npages: s.npages,
        cpages: s.cpages,
        migrated: 0,
        setup_ns: s.setup_ns,
        pages_ns: 0,
        finalize_ns: 0,
        select: s.select,
        direction: if !device_family && s.select & MIGRATE_VMA_SELECT_SYSTEM != 0 {
            DIRECTION_TO_DEVICE
        } else {
            DIRECTION_TO_RAM
        },
        api: if device_family {
            API_MIGRATE_DEVICE
        } else {
            API_MIGRATE_VMA
        },
        _pad: [0; 2],
    };
    let mut unknown = s.unknown | Migration::FIELD_MIGRATED | Migration::FIELD_FINALIZE;
    if device_family {
        unknown |= Migration::FIELD_PGMAP_OWNER;
    }
    let header = emit::header(EventKind::Migration, s.entry_ns, None, unknown);
    emit::submit(ProbeId::Migration, Record { header, payload });
}

#[inline(always)]
fn submit(s: &InFlight, end: u64, unknown: u32, payload: Migration) {
    let header = emit::header(
        EventKind::Migration,
        s.entry_ns,
        Some(end - s.entry_ns),
        unknown,
    );
    emit::submit(ProbeId::Migration, Record { header, payload });
}

/// Entries of `src[0..npages]` with `MIGRATE_PFN_MIGRATE`, read a chunk at a time; `None`
/// when there are more than the probe reads or the array cannot be read.
#[inline(always)]
fn count_migrated(src: u64, npages: u64) -> Option<u64> {
    if npages > MAX_SRC_ENTRIES {
        return None;
    }
    let buf = SRC_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot of a per-CPU array, valid for the program's run and used by no
    // other program meanwhile.
    let buf = unsafe { &mut *buf };
    let mut migrated = 0u64;
    let chunks = (MAX_SRC_ENTRIES as usize) / SRC_CHUNK;
    for c in 0..chunks {
        let first = (c * SRC_CHUNK) as u64;
        if first >= npages {
            break;
        }
        let n = core::cmp::min(SRC_CHUNK as u64, npages - first) as usize;
        // SAFETY: views the u64 scratch array as its bytes: same memory, u8 has no alignment
        // or validity requirements.
        let bytes = unsafe {
            core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), SRC_CHUNK * 8)
        };
        let len = n * 8;
        if len > bytes.len() {
            break;
        }
        // SAFETY: bpf_probe_read_kernel_buf copies through the kernel's fault-handling
        // accessor into `bytes[..len]`, which is in bounds (checked above).
        if unsafe { bpf_probe_read_kernel_buf((src + first * 8) as *const u8, &mut bytes[..len]) }
            .is_err()
        {
            return None;
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
    Some(migrated)
}

// migrate_vma_setup(struct migrate_vma *args) → migrate_vma_pages(args) →
// migrate_vma_finalize(args): the fields are read from `args`.

/// `args`' `src` and `npages`; `typed` as for `setup_done`.
#[inline(always)]
fn vma_src(s: &InFlight, typed: Option<u64>) -> Option<(u64, u64)> {
    let off = offsets();
    let args = Base::of(typed, s.arg);
    Some((args.get::<u64>(off.src)?, args.get::<u64>(off.npages)?))
}

/// `typed` as for `setup_done`.
#[inline(always)]
fn vma_finalize_exit<C: EbpfContext>(ctx: &C, typed: Option<u64>) {
    let Some((s, end)) = finish(&MIGRATE_VMA_INFLIGHT) else {
        debug!(
            ctx,
            "migrate_vma_finalize returned without its setup on this task"
        );
        return;
    };
    let off = offsets();
    let args = Base::of(typed, s.arg);
    let mut unknown = s.unknown;
    let (cpages, pgmap_owner, start, stop, npages, select) = if emit::aggregating() {
        // A group keeps the owner, the pages migrated and the direction: the owner and the
        // flags as setup read them, no read of `args` here (six helper calls fewer).
        (0, s.owner, 0, 0, 0, s.select)
    } else {
        let mut read = |offset: u32, bit: u32| {
            args.get::<u64>(offset).unwrap_or_else(|| {
                unknown |= bit;
                0
            })
        };
        // cpages is what setup collected; finalize leaves it as it was.
        let cpages = read(off.cpages, Migration::FIELD_CPAGES);
        let pgmap_owner = read(off.pgmap_owner, Migration::FIELD_PGMAP_OWNER);
        (
            cpages,
            pgmap_owner,
            args.get::<u64>(off.start).unwrap_or(0),
            args.get::<u64>(off.end).unwrap_or(0),
            args.get::<u64>(off.npages).unwrap_or(0),
            args.get::<u64>(off.flags).unwrap_or(0) as u32,
        )
    };
    let payload = Migration {
        start,
        end: stop,
        pgmap_owner,
        npages,
        cpages,
        migrated: s.migrated,
        setup_ns: s.setup_ns,
        pages_ns: s.pages_ns,
        finalize_ns: end - s.finalize_entry_ns,
        select,
        direction: if select & MIGRATE_VMA_SELECT_SYSTEM != 0 {
            DIRECTION_TO_DEVICE
        } else {
            DIRECTION_TO_RAM
        },
        api: API_MIGRATE_VMA,
        _pad: [0; 2],
    };
    submit(&s, end, unknown, payload);
}

// migrate_device_range(src_pfns, start, npages) → migrate_device_pages(src, dst, npages) →
// migrate_device_finalize(src, dst, npages): device pfns evicted to RAM, with no address space
// and no migrate_vma. cpages is what the range call collected.

#[inline(always)]
fn device_src(s: &InFlight) -> Option<(u64, u64)> {
    Some((s.arg, s.npages))
}

#[inline(always)]
fn device_finalize_exit<C: EbpfContext>(ctx: &C) {
    let Some((s, end)) = finish(&MIGRATE_DEVICE_INFLIGHT) else {
        if !inside_migrate_vma() {
            debug!(
                ctx,
                "migrate_device_finalize returned without its range call on this task"
            );
        }
        return;
    };
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
        finalize_ns: end - s.finalize_entry_ns,
        select: 0,
        direction: DIRECTION_TO_RAM,
        api: API_MIGRATE_DEVICE,
        _pad: [0; 2],
    };
    submit(&s, end, s.unknown | Migration::FIELD_PGMAP_OWNER, payload);
}

// fentry/fexit: the arguments, then (fexit) the return value, as 64-bit slots.

#[fentry(function = "migrate_vma_setup")]
pub fn fentry_migrate_vma_setup(ctx: FEntryContext) -> u32 {
    begin(&ctx, &MIGRATE_VMA_INFLIGHT, false, ctx.arg::<u64>(0), 0, 0);
    0
}

#[fexit(function = "migrate_vma_setup")]
pub fn fexit_migrate_vma_setup(ctx: FExitContext) -> u32 {
    setup_done(
        &ctx,
        &MIGRATE_VMA_INFLIGHT,
        ctx.arg::<i32>(1) as i64,
        false,
        Some(ctx.arg::<u64>(0)),
    );
    0
}

#[fentry(function = "migrate_vma_pages")]
pub fn fentry_migrate_vma_pages(_ctx: FEntryContext) -> u32 {
    pages_entry(&MIGRATE_VMA_INFLIGHT);
    0
}

#[fexit(function = "migrate_vma_pages")]
pub fn fexit_migrate_vma_pages(_ctx: FExitContext) -> u32 {
    pages_exit(&MIGRATE_VMA_INFLIGHT);
    0
}

#[fentry(function = "migrate_vma_finalize")]
pub fn fentry_migrate_vma_finalize(ctx: FEntryContext) -> u32 {
    let args = ctx.arg::<u64>(0);
    finalize_entry(&ctx, &MIGRATE_VMA_INFLIGHT, false, |s| {
        vma_src(s, Some(args))
    });
    0
}

#[fexit(function = "migrate_vma_finalize")]
pub fn fexit_migrate_vma_finalize(ctx: FExitContext) -> u32 {
    vma_finalize_exit(&ctx, Some(ctx.arg::<u64>(0)));
    0
}

#[fentry(function = "migrate_device_range")]
pub fn fentry_migrate_device_range(ctx: FEntryContext) -> u32 {
    begin(
        &ctx,
        &MIGRATE_DEVICE_INFLIGHT,
        true,
        ctx.arg::<u64>(0),
        ctx.arg::<u64>(1),
        ctx.arg::<u64>(2),
    );
    0
}

#[fexit(function = "migrate_device_range")]
pub fn fexit_migrate_device_range(ctx: FExitContext) -> u32 {
    setup_done(
        &ctx,
        &MIGRATE_DEVICE_INFLIGHT,
        ctx.arg::<i32>(3) as i64,
        true,
        None,
    );
    0
}

#[fentry(function = "migrate_device_pages")]
pub fn fentry_migrate_device_pages(_ctx: FEntryContext) -> u32 {
    pages_entry(&MIGRATE_DEVICE_INFLIGHT);
    0
}

#[fexit(function = "migrate_device_pages")]
pub fn fexit_migrate_device_pages(_ctx: FExitContext) -> u32 {
    pages_exit(&MIGRATE_DEVICE_INFLIGHT);
    0
}

#[fentry(function = "migrate_device_finalize")]
pub fn fentry_migrate_device_finalize(ctx: FEntryContext) -> u32 {
    finalize_entry(&ctx, &MIGRATE_DEVICE_INFLIGHT, true, device_src);
    0
}

#[fexit(function = "migrate_device_finalize")]
pub fn fexit_migrate_device_finalize(ctx: FExitContext) -> u32 {
    device_finalize_exit(&ctx);
    0
}

// kprobe/kretprobe: the same, where fentry cannot attach.

#[kprobe]
pub fn kprobe_migrate_vma_setup(ctx: ProbeContext) -> u32 {
    begin(
        &ctx,
        &MIGRATE_VMA_INFLIGHT,
        false,
        ctx.arg::<u64>(0).unwrap_or(0),
        0,
        0,
    );
    0
}

#[kretprobe]
pub fn kretprobe_migrate_vma_setup(ctx: RetProbeContext) -> u32 {
    setup_done(
        &ctx,
        &MIGRATE_VMA_INFLIGHT,
        ctx.ret::<i32>() as i64,
        false,
        None,
    );
    0
}

#[kprobe]
pub fn kprobe_migrate_vma_pages(_ctx: ProbeContext) -> u32 {
    pages_entry(&MIGRATE_VMA_INFLIGHT);
    0
}

#[kretprobe]
pub fn kretprobe_migrate_vma_pages(_ctx: RetProbeContext) -> u32 {
    pages_exit(&MIGRATE_VMA_INFLIGHT);
    0
}

#[kprobe]
pub fn kprobe_migrate_vma_finalize(ctx: ProbeContext) -> u32 {
    finalize_entry(&ctx, &MIGRATE_VMA_INFLIGHT, false, |s| vma_src(s, None));
    0
}

#[kretprobe]
pub fn kretprobe_migrate_vma_finalize(ctx: RetProbeContext) -> u32 {
    vma_finalize_exit(&ctx, None);
    0
}

#[kprobe]
pub fn kprobe_migrate_device_range(ctx: ProbeContext) -> u32 {
    begin(
        &ctx,
        &MIGRATE_DEVICE_INFLIGHT,
        true,
        ctx.arg::<u64>(0).unwrap_or(0),
        ctx.arg::<u64>(1).unwrap_or(0),
        ctx.arg::<u64>(2).unwrap_or(0),
    );
    0
}

#[kretprobe]
pub fn kretprobe_migrate_device_range(ctx: RetProbeContext) -> u32 {
    setup_done(
        &ctx,
        &MIGRATE_DEVICE_INFLIGHT,
        ctx.ret::<i32>() as i64,
        true,
        None,
    );
    0
}

#[kprobe]
pub fn kprobe_migrate_device_pages(_ctx: ProbeContext) -> u32 {
    pages_entry(&MIGRATE_DEVICE_INFLIGHT);
    0
}

#[kretprobe]
pub fn kretprobe_migrate_device_pages(_ctx: RetProbeContext) -> u32 {
    pages_exit(&MIGRATE_DEVICE_INFLIGHT);
    0
}

#[kprobe]
pub fn kprobe_migrate_device_finalize(ctx: ProbeContext) -> u32 {
    finalize_entry(&ctx, &MIGRATE_DEVICE_INFLIGHT, true, device_src);
    0
}

#[kretprobe]
pub fn kretprobe_migrate_device_finalize(ctx: RetProbeContext) -> u32 {
    device_finalize_exit(&ctx);
    0
}
