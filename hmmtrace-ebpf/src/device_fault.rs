//! CPU faults on device-private pages: the driver's `dev_pagemap_ops.migrate_to_ram(vmf)`
//! callback (which function is the plan's business: test_hmm's, nouveau's, amdkfd's, ...).

use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
    EbpfContext,
};
use aya_log_ebpf::{debug, warn};
use hmmtrace_common::{DeviceFault, EventKind, ProbeId, Record};

use crate::emit;
use crate::kread::{field, now, offsets, pgmap_of, pgmap_owner_of, Base};
use crate::pairing::{self, slots};

slots!(FAULT_SLOTS);

#[inline(always)]
fn entry(vmf: u64) {
    if emit::wanted() {
        pairing::begin(&FAULT_SLOTS, ProbeId::DeviceFault, vmf);
    }
}

#[inline(always)]
fn exit<C: EbpfContext>(ctx: &C, result: u32) {
    let Some(e) = pairing::end(&FAULT_SLOTS, ProbeId::DeviceFault) else {
        debug!(
            ctx,
            "migrate_to_ram returned without its entry on this task"
        );
        return;
    };
    let end = now();
    let off = offsets();
    let mut unknown = 0;
    let page = field::<u64>(e.arg, off.vmf_page).unwrap_or(0);
    // A group keeps the owner only: three helper calls fewer with --aggregate (the address
    // and ops unread, so unknown; no record says so, the aggregates keep neither).
    let (address, owner, ops) = if emit::aggregating() {
        (0, pgmap_owner_of(page), None)
    } else {
        let address = field::<u64>(e.arg, off.vmf_address).unwrap_or_else(|| {
            unknown |= DeviceFault::FIELD_ADDRESS;
            0
        });
        let (owner, ops, _) = pgmap_of(Base::Probe(page));
        (address, owner, ops)
    };
    if owner.is_none() {
        unknown |= DeviceFault::FIELD_PGMAP_OWNER;
    }
    if ops.is_none() {
        unknown |= DeviceFault::FIELD_PGMAP_OPS;
    }
    let payload = DeviceFault {
        address,
        pgmap_owner: owner.unwrap_or(0),
        pgmap_ops: ops.unwrap_or(0),
        result,
        _pad: 0,
    };
    let header = emit::header(EventKind::DeviceFault, e.ts, Some(end - e.ts), unknown);
    emit::submit(ProbeId::DeviceFault, Record { header, payload });
    // Logged last, with nothing but integers live: an `Option` kept across the log call gets
    // its undefined payload spilled, which the verifier rejects.
    if unknown & DeviceFault::FIELD_PGMAP_OWNER != 0 {
        warn!(
            ctx,
            "cannot read the faulting page's dev_pagemap: owner unknown"
        );
    }
}

#[fentry(function = "dmirror_devmem_fault")]
pub fn fentry_migrate_to_ram(ctx: FEntryContext) -> u32 {
    entry(ctx.arg::<u64>(0));
    0
}

#[fexit(function = "dmirror_devmem_fault")]
pub fn fexit_migrate_to_ram(ctx: FExitContext) -> u32 {
    // vm_fault_t migrate_to_ram(struct vm_fault *): the return value follows the argument.
    exit(&ctx, ctx.arg::<u32>(1));
    0
}

#[kprobe]
pub fn kprobe_migrate_to_ram(ctx: ProbeContext) -> u32 {
    entry(ctx.arg::<u64>(0).unwrap_or(0));
    0
}

#[kretprobe]
pub fn kretprobe_migrate_to_ram(ctx: RetProbeContext) -> u32 {
    exit(&ctx, ctx.ret::<u32>());
    0
}
