//! Device page frees: the core free path of a ZONE_DEVICE page (`free_zone_device_folio`,
//! `free_zone_device_page` or `free_devmap_managed_page`, as the plan resolved), which calls
//! the driver's `page_free`. Only device-private and device-coherent pgmaps are reported. The
//! driver's callback, when hooked, is timed inside the core path's record (same task, nested).

use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use hmmtrace_common::{offsets::UNKNOWN, EventKind, PageFree, ProbeId, Record};

use crate::emit;
use crate::kread::{now, offsets, pgmap_of, vmemmap_base, Base};
use crate::pairing::{self, slots};

// A free in progress on a task: the `struct folio *` (or `struct page *`) in `arg`, and the
// driver's callback timed in the slot's callback fields.
slots!(FREE_SLOTS);

/// `callback_entry` once the callback has returned and `callback_ns` holds its time.
const CALLBACK_DONE: u64 = u64::MAX;

#[inline(always)]
fn entry(page: u64) {
    if emit::wanted() {
        pairing::begin(&FREE_SLOTS, ProbeId::PageFree, page);
    }
}

#[inline(always)]
fn callback_entry() {
    if let Some(f) = pairing::mine(&FREE_SLOTS) {
        // SAFETY: this task's slot (checked by `mine`); only this task writes it meanwhile.
        unsafe { (*f).callback_entry = now() };
    }
}

#[inline(always)]
fn callback_exit() {
    if let Some(f) = pairing::mine(&FREE_SLOTS) {
        // SAFETY: this task's slot (checked by `mine`); only this task writes it meanwhile.
        unsafe {
            let at = (*f).callback_entry;
            if at != 0 && at != CALLBACK_DONE {
                (*f).callback_ns = now() - at;
                (*f).callback_entry = CALLBACK_DONE;
            }
        }
    }
}

/// `typed`: the page (folio) as the fexit program's argument, read with plain loads; else
/// the address saved at entry, read with the helper.
#[inline(always)]
fn exit(typed: Option<u64>) {
    let Some(e) = pairing::end(&FREE_SLOTS, ProbeId::PageFree) else {
        return;
    };
    let page = Base::of(typed, e.arg);
    let end = now();
    let off = offsets();
    let (owner, ops, kind) = pgmap_of(page);
    // Other ZONE_DEVICE memory (fsdax, pci p2pdma) takes this path too: not HMM.
    let Some(kind) = kind else { return };
    if kind != off.memory_device_private && kind != off.memory_device_coherent {
        return;
    }
    if let Some(ops) = ops {
        crate::discover::ops_seen(ops);
    }
    let mut unknown = 0;
    if owner.is_none() {
        unknown |= PageFree::FIELD_PGMAP_OWNER;
    }
    if ops.is_none() {
        unknown |= PageFree::FIELD_PGMAP_OPS;
    }
    // A group keeps the owner and the pages (the order) only.
    let pfn = if emit::aggregating() {
        0
    } else {
        match (vmemmap_base(), off.page_struct_size) {
            (Some(base), size) if size != UNKNOWN && size != 0 && e.arg >= base => {
                (e.arg - base) / size as u64
            }
            _ => {
                unknown |= PageFree::FIELD_PFN;
                0
            }
        }
    };
    // A large folio's order is in its second page; single pages are order 0.
    let order = match page.get::<u64>(off.page_flags) {
        Some(flags) if off.pg_head_bit < 64 && flags & (1 << off.pg_head_bit) == 0 => 0,
        _ => {
            unknown |= PageFree::FIELD_ORDER;
            0
        }
    };
    if e.callback_entry != CALLBACK_DONE {
        unknown |= PageFree::FIELD_CALLBACK;
    }
    let payload = PageFree {
        pfn,
        pgmap_owner: owner.unwrap_or(0),
        pgmap_ops: ops.unwrap_or(0),
        order,
        memory_type: kind,
        callback_ns: e.callback_ns,
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
pub fn fexit_free_zone_device(ctx: FExitContext) -> u32 {
    exit(Some(ctx.arg::<u64>(0)));
    0
}

#[kprobe]
pub fn kprobe_free_zone_device(ctx: ProbeContext) -> u32 {
    entry(ctx.arg::<u64>(0).unwrap_or(0));
    0
}

#[kretprobe]
pub fn kretprobe_free_zone_device(_ctx: RetProbeContext) -> u32 {
    exit(None);
    0
}

// The driver's dev_pagemap_ops.page_free(struct page *): whichever the plan resolved.

#[fentry(function = "dmirror_devmem_free")]
pub fn fentry_page_free(_ctx: FEntryContext) -> u32 {
    callback_entry();
    0
}

#[fexit(function = "dmirror_devmem_free")]
pub fn fexit_page_free(_ctx: FExitContext) -> u32 {
    callback_exit();
    0
}

#[kprobe]
pub fn kprobe_page_free(_ctx: ProbeContext) -> u32 {
    callback_entry();
    0
}

#[kretprobe]
pub fn kretprobe_page_free(_ctx: RetProbeContext) -> u32 {
    callback_exit();
    0
}
