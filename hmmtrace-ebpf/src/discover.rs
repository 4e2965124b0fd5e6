//! Callback discovery: the first time the page-free path meets a device page of a given
//! `struct dev_pagemap_ops`, the ops' `page_free` and `migrate_to_ram` function pointers are
//! read and sent as an ops record; userspace names them through kallsyms and attaches to them.
//! A driver the table does not know (out of tree, a renamed callback) is then timed without
//! `--attach`.
//!
//! Cost on the per-page path: one array load and compare while the ops are the last ones seen
//! (one driver at a time, the common case); a hash lookup when they change.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::map,
    maps::{Array, HashMap},
};
use hmmtrace_common::PagemapOpsSeen;

use crate::emit;
use crate::kread::{field, offsets};

/// Ops already sent (value unused): a machine has a handful of HMM drivers.
#[map]
static OPS_SEEN: HashMap<u64, u8> = HashMap::with_max_entries(256, 0);

/// The ops the page-free path saw last, to skip the hash lookup while they stay the same.
#[map]
static LAST_OPS: Array<u64> = Array::with_max_entries(1, 0);

#[inline(always)]
pub(crate) fn ops_seen(ops: u64) {
    let Some(last) = LAST_OPS.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the one value of an array map, valid for the program's run; a race between
    // CPUs costs at most a hash lookup below.
    unsafe {
        if *last == ops {
            return;
        }
        *last = ops;
    }
    // SAFETY: the value is only tested for presence.
    if unsafe { OPS_SEEN.get(ops) }.is_some() {
        return;
    }
    // Another CPU inserting the same ops first, or a full map: nothing to send from here.
    if OPS_SEEN.insert(ops, 1, BPF_NOEXIST as u64).is_err() {
        return;
    }
    let off = offsets();
    let seen = PagemapOpsSeen {
        ops,
        page_free: field::<u64>(ops, off.ops_page_free).unwrap_or(0),
        migrate_to_ram: field::<u64>(ops, off.ops_migrate_to_ram).unwrap_or(0),
    };
    if !emit::submit_ops(seen) {
        // The ring was full: let a later free try again.
        let _ = OPS_SEEN.remove(ops);
        // SAFETY: as above.
        if let Some(last) = LAST_OPS.get_ptr_mut(0) {
            unsafe { *last = 0 };
        }
    }
}
