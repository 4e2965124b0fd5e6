//! `hmm_range_fault(range)`: one record per call that does not return `-EBUSY`; the `-EBUSY`
//! returns of the same task on the same range before it are counted in `retries`, and the
//! duration runs from the first attempt's entry.

use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe, map},
    maps::HashMap,
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
    EbpfContext,
};
use aya_log_ebpf::{info, warn};
use hmmtrace_common::{EventKind, ProbeId, RangeFault, Record, EBUSY};

use crate::emit;
use crate::kread::{field, now, offsets, tid};

#[repr(C)]
#[derive(Clone, Copy)]
struct Attempts {
    first_ts: u64,
    range: u64,
    start: u64,
    retries: u32,
    _pad: u32,
}

#[map]
static RANGE_FAULT_INFLIGHT: HashMap<u32, Attempts> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
fn entry<C: EbpfContext>(ctx: &C, range: u64) {
    if !emit::wanted() {
        return;
    }
    let key = tid();
    let start = field::<u64>(range, offsets().hmm_start).unwrap_or(0);
    if let Some(a) = RANGE_FAULT_INFLIGHT.get_ptr_mut(key) {
        // A retry of the same range after -EBUSY keeps its first entry time and count.
        // SAFETY: this task's entry of a per-task map; only this task's programs touch it.
        if unsafe { (*a).range == range && (*a).start == start && (*a).retries > 0 } {
            return;
        }
    }
    let a = Attempts {
        first_ts: now(),
        range,
        start,
        retries: 0,
        _pad: 0,
    };
    if RANGE_FAULT_INFLIGHT.insert(key, a, 0).is_err() {
        warn!(
            ctx,
            "in-flight map full: a range fault on this task is not traced"
        );
    }
}

#[inline(always)]
fn exit<C: EbpfContext>(ctx: &C, ret: i32) {
    let key = tid();
    let Some(a) = RANGE_FAULT_INFLIGHT.get_ptr_mut(key) else {
        return;
    };
    if ret == EBUSY {
        // SAFETY: this task's entry (see `entry`).
        unsafe { (*a).retries += 1 };
        return;
    }
    if ret != 0 {
        info!(ctx, "hmm_range_fault returned {} (not -EBUSY)", ret);
    }
    // SAFETY: this task's entry (see `entry`), copied out before it is removed.
    let a = unsafe { *a };
    let _ = RANGE_FAULT_INFLIGHT.remove(key);
    let end = now();
    let off = offsets();
    let mut unknown = 0;
    let (start, stop) = match (
        field::<u64>(a.range, off.hmm_start),
        field::<u64>(a.range, off.hmm_end),
    ) {
        (Some(s), Some(t)) => (s, t),
        _ => {
            unknown |= RangeFault::FIELD_RANGE;
            (0, 0)
        }
    };
    let owner = field::<u64>(a.range, off.hmm_owner).unwrap_or_else(|| {
        unknown |= RangeFault::FIELD_DEV_PRIVATE_OWNER;
        0
    });
    let payload = RangeFault {
        start,
        end: stop,
        dev_private_owner: owner,
        // PAGE_SHIFT is 12 on every architecture hmmtrace targets (x86-64, arm64 4K).
        npages: stop.saturating_sub(start) >> 12,
        retries: a.retries,
        result: ret,
    };
    let header = emit::header(
        EventKind::RangeFault,
        a.first_ts,
        Some(end - a.first_ts),
        unknown,
    );
    emit::submit(ProbeId::RangeFault, Record { header, payload });
}

#[fentry(function = "hmm_range_fault")]
pub fn fentry_hmm_range_fault(ctx: FEntryContext) -> u32 {
    entry(&ctx, ctx.arg::<u64>(0));
    0
}

#[fexit(function = "hmm_range_fault")]
pub fn fexit_hmm_range_fault(ctx: FExitContext) -> u32 {
    exit(&ctx, ctx.arg::<i32>(1));
    0
}

#[kprobe]
pub fn kprobe_hmm_range_fault(ctx: ProbeContext) -> u32 {
    entry(&ctx, ctx.arg::<u64>(0).unwrap_or(0));
    0
}

#[kretprobe]
pub fn kretprobe_hmm_range_fault(ctx: RetProbeContext) -> u32 {
    exit(&ctx, ctx.ret::<i32>());
    0
}
