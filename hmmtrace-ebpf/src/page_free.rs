//! Device page frees: the core free path of a ZONE_DEVICE page (`free_zone_device_folio`,
//! `free_zone_device_page` or `free_devmap_managed_page`, as the plan resolved), which calls
//! the driver's `page_free`. Only device-private and device-coherent pgmaps are reported.

use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe, map},
    maps::HashMap,
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use hmmtrace_common::{offsets::UNKNOWN, EventKind, PageFree, ProbeId, Record};

use crate::emit;
use crate::kread::{field, now, offsets, pgmap_of, tid, Entry};

#[map]
static FREE_INFLIGHT: HashMap<u32, Entry> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
fn entry(page: u64) {
    if emit::wanted() {
        let _ = FREE_INFLIGHT.insert(
            tid(),
            Entry {
                ts: now(),
                arg: page,
            },
            0,
        );
    }
}

#[inline(always)]
fn exit() {
    let key = tid();
    let Some(e) = (unsafe { FREE_INFLIGHT.get(key) }).copied() else {
        return;
    };
    let _ = FREE_INFLIGHT.remove(key);
    let end = now();
    let off = offsets();
    let (owner, ops, kind) = pgmap_of(e.arg);
    // Other ZONE_DEVICE memory (fsdax, pci p2pdma) takes this path too: not HMM.
    let Some(kind) = kind else { return };
    if kind != off.memory_device_private && kind != off.memory_device_coherent {
        return;
    }
    let mut unknown = 0;
    if owner.is_none() {
        unknown |= PageFree::FIELD_PGMAP_OWNER;
    }
    if ops.is_none() {
        unknown |= PageFree::FIELD_PGMAP_OPS;
    }
    let pfn = match (field::<u64>(off.vmemmap_base_addr, 0), off.page_struct_size) {
        (Some(base), size) if size != UNKNOWN && size != 0 && e.arg >= base => {
            (e.arg - base) / size as u64
        }
        _ => {
            unknown |= PageFree::FIELD_PFN;
            0
        }
    };
    // A large folio's order is in its second page; single pages are order 0.
    let order = match field::<u64>(e.arg, off.page_flags) {
        Some(flags) if off.pg_head_bit < 64 && flags & (1 << off.pg_head_bit) == 0 => 0,
        _ => {
            unknown |= PageFree::FIELD_ORDER;
            0
        }
    };
    let payload = PageFree {
        pfn,
        pgmap_owner: owner.unwrap_or(0),
        pgmap_ops: ops.unwrap_or(0),
        order,
        memory_type: kind,
    };
    let header = emit::header(EventKind::PageFree, e.ts, Some(end - e.ts), unknown);
    emit::submit(ProbeId::PageFree, Record { header, payload });
}

#[fentry(function = "free_zone_device_folio")]
pub fn fentry_free_zone_device(ctx: FEntryContext) -> u32 {
    entry(ctx.arg::<u64>(0));
    0
}

#[fexit(function = "free_zone_device_folio")]
pub fn fexit_free_zone_device(_ctx: FExitContext) -> u32 {
    exit();
    0
}

#[kprobe]
pub fn kprobe_free_zone_device(ctx: ProbeContext) -> u32 {
    entry(ctx.arg::<u64>(0).unwrap_or(0));
    0
}

#[kretprobe]
pub fn kretprobe_free_zone_device(_ctx: RetProbeContext) -> u32 {
    exit();
    0
}
