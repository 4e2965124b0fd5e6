//! `hmm_range_fault(range)`: one record per call that does not return `-EBUSY`; the `-EBUSY`
//! returns of the same task on the same range before it are counted in `retries`, and the
//! duration runs from the first attempt's entry.

use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe, map},
    maps::HashMap,
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
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
fn entry(range: u64) {
    if !emit::wanted() {
        return;
    }
    let key = tid();
    let start = field::<u64>(range, offsets().hmm_start).unwrap_or(0);
    if let Some(a) = RANGE_FAULT_INFLIGHT.get_ptr_mut(key) {
        // A retry of the same range after -EBUSY keeps its first entry time and count.
        if unsafe { (*a).range == range && (*a).start == start && (*a).retries > 0 } {
            return;
        }
    }
    let _ = RANGE_FAULT_INFLIGHT.insert(
        key,
        Attempts {
            first_ts: now(),
            range,
            start,
            retries: 0,
            _pad: 0,
        },
        0,
    );
}

#[inline(always)]
fn exit(ret: i32) {
    let key = tid();
    let Some(a) = RANGE_FAULT_INFLIGHT.get_ptr_mut(key) else {
        return;
    };
    if ret == EBUSY {
        unsafe { (*a).retries += 1 };
        return;
    }
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
    entry(ctx.arg::<u64>(0));
    0
}

#[fexit(function = "hmm_range_fault")]
pub fn fexit_hmm_range_fault(ctx: FExitContext) -> u32 {
    exit(ctx.arg::<i32>(1));
    0
}

#[kprobe]
pub fn kprobe_hmm_range_fault(ctx: ProbeContext) -> u32 {
    entry(ctx.arg::<u64>(0).unwrap_or(0));
    0
}

#[kretprobe]
pub fn kretprobe_hmm_range_fault(ctx: RetProbeContext) -> u32 {
    exit(ctx.ret::<i32>());
    0
}
