//! Mirror invalidations: `__mmu_notifier_invalidate_range_start(range)`, once per invalidation
//! of an mm with notifiers, and the drivers' interval `invalidate(mni, range, cur_seq)`
//! callbacks it runs. The callback nests inside range_start on the same task, so each has its
//! own pairing map.

use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe, map},
    maps::HashMap,
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
    EbpfContext,
};
use aya_log_ebpf::warn;
use hmmtrace_common::{
    EventKind, Invalidation, ProbeId, Record, INVALIDATE_CALLBACK, INVALIDATE_RANGE_START,
};

use crate::emit;
use crate::kread::{field, now, offsets, tid, Entry};

#[map]
static RANGE_START_INFLIGHT: HashMap<u32, Entry> = HashMap::with_max_entries(16384, 0);

#[map]
static CALLBACK_INFLIGHT: HashMap<u32, Entry> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
fn entry<C: EbpfContext>(ctx: &C, map: &HashMap<u32, Entry>, range: u64) {
    if emit::wanted() {
        let e = Entry {
            ts: now(),
            arg: range,
        };
        if map.insert(tid(), e, 0).is_err() {
            warn!(
                ctx,
                "in-flight map full: an invalidation on this task is not traced"
            );
        }
    }
}

#[inline(always)]
fn exit(map: &HashMap<u32, Entry>, path: u8) {
    let key = tid();
    // SAFETY: copied out at once; only this task's programs touch its entry.
    let Some(e) = (unsafe { map.get(key) }).copied() else {
        return;
    };
    let _ = map.remove(key);
    let end = now();
    let off = offsets();
    let mut unknown = 0;
    let (start, stop) = match (
        field::<u64>(e.arg, off.range_start),
        field::<u64>(e.arg, off.range_end),
    ) {
        (Some(s), Some(t)) => (s, t),
        _ => {
            unknown |= Invalidation::FIELD_RANGE;
            (0, 0)
        }
    };
    let event = field::<u32>(e.arg, off.range_event).unwrap_or_else(|| {
        unknown |= Invalidation::FIELD_EVENT;
        0
    });
    let owner = field::<u64>(e.arg, off.range_owner).unwrap_or_else(|| {
        unknown |= Invalidation::FIELD_OWNER;
        0
    });
    let range_flags = field::<u32>(e.arg, off.range_flags).unwrap_or(0) as u16;
    let payload = Invalidation {
        start,
        end: stop,
        owner,
        event,
        range_flags,
        path,
        _pad: 0,
    };
    let header = emit::header(EventKind::Invalidation, e.ts, Some(end - e.ts), unknown);
    emit::submit(ProbeId::Invalidation, Record { header, payload });
}

#[fentry(function = "__mmu_notifier_invalidate_range_start")]
pub fn fentry_invalidate_range_start(ctx: FEntryContext) -> u32 {
    entry(&ctx, &RANGE_START_INFLIGHT, ctx.arg::<u64>(0));
    0
}

#[fexit(function = "__mmu_notifier_invalidate_range_start")]
pub fn fexit_invalidate_range_start(_ctx: FExitContext) -> u32 {
    exit(&RANGE_START_INFLIGHT, INVALIDATE_RANGE_START);
    0
}

#[kprobe]
pub fn kprobe_invalidate_range_start(ctx: ProbeContext) -> u32 {
    entry(&ctx, &RANGE_START_INFLIGHT, ctx.arg::<u64>(0).unwrap_or(0));
    0
}

#[kretprobe]
pub fn kretprobe_invalidate_range_start(_ctx: RetProbeContext) -> u32 {
    exit(&RANGE_START_INFLIGHT, INVALIDATE_RANGE_START);
    0
}

// bool invalidate(struct mmu_interval_notifier *mni, const struct mmu_notifier_range *range,
//                 unsigned long cur_seq): the range is the second argument.

#[fentry(function = "dmirror_interval_invalidate")]
pub fn fentry_interval_invalidate(ctx: FEntryContext) -> u32 {
    entry(&ctx, &CALLBACK_INFLIGHT, ctx.arg::<u64>(1));
    0
}

#[fexit(function = "dmirror_interval_invalidate")]
pub fn fexit_interval_invalidate(_ctx: FExitContext) -> u32 {
    exit(&CALLBACK_INFLIGHT, INVALIDATE_CALLBACK);
    0
}

#[kprobe]
pub fn kprobe_interval_invalidate(ctx: ProbeContext) -> u32 {
    entry(&ctx, &CALLBACK_INFLIGHT, ctx.arg::<u64>(1).unwrap_or(0));
    0
}

#[kretprobe]
pub fn kretprobe_interval_invalidate(_ctx: RetProbeContext) -> u32 {
    exit(&CALLBACK_INFLIGHT, INVALIDATE_CALLBACK);
    0
}
