//! Mirror invalidations: `__mmu_notifier_invalidate_range_start(range)`, once per invalidation
//! of an mm with notifiers, and the drivers' interval `invalidate(mni, range, cur_seq)`
//! callbacks it runs. The callback nests inside range_start on the same task, so each has its
//! own pairing map.

use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use hmmtrace_common::{
    EventKind, Invalidation, ProbeId, Record, INVALIDATE_CALLBACK, INVALIDATE_RANGE_START,
};

use crate::emit;
use crate::kread::{now, offsets, Base};
use crate::pairing::{self, slots, Slots};

slots!(RANGE_START_SLOTS);
slots!(CALLBACK_SLOTS);

#[inline(always)]
fn entry(slots: &Slots, range: u64) {
    if emit::wanted() {
        pairing::begin(slots, ProbeId::Invalidation, range);
    }
}

/// `typed`: the range as the fexit program's argument, read with plain loads; else the
/// address saved at entry, read with the helper.
#[inline(always)]
fn exit(slots: &Slots, path: u8, typed: Option<u64>) {
    let Some(e) = pairing::end(slots, ProbeId::Invalidation) else {
        return;
    };
    let range = Base::of(typed, e.arg);
    let end = now();
    let off = offsets();
    let mut unknown = 0;
    let owner = range.get::<u64>(off.range_owner).unwrap_or_else(|| {
        unknown |= Invalidation::FIELD_OWNER;
        0
    });
    // A group keeps the owner and the path only: four helper calls fewer with --aggregate.
    let (start, stop, event, range_flags) = if emit::aggregating() {
        (0, 0, 0, 0)
    } else {
        let (start, stop) = match (
            range.get::<u64>(off.range_start),
            range.get::<u64>(off.range_end),
        ) {
            (Some(s), Some(t)) => (s, t),
            _ => {
                unknown |= Invalidation::FIELD_RANGE;
                (0, 0)
            }
        };
        let event = range.get::<u32>(off.range_event).unwrap_or_else(|| {
            unknown |= Invalidation::FIELD_EVENT;
            0
        });
        let range_flags = range.get::<u32>(off.range_flags).unwrap_or(0) as u16;
        (start, stop, event, range_flags)
    };
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
    entry(&RANGE_START_SLOTS, ctx.arg::<u64>(0));
    0
}

#[fexit(function = "__mmu_notifier_invalidate_range_start")]
pub fn fexit_invalidate_range_start(ctx: FExitContext) -> u32 {
    exit(
        &RANGE_START_SLOTS,
        INVALIDATE_RANGE_START,
        Some(ctx.arg::<u64>(0)),
    );
    0
}

#[kprobe]
pub fn kprobe_invalidate_range_start(ctx: ProbeContext) -> u32 {
    entry(&RANGE_START_SLOTS, ctx.arg::<u64>(0).unwrap_or(0));
    0
}

#[kretprobe]
pub fn kretprobe_invalidate_range_start(_ctx: RetProbeContext) -> u32 {
    exit(&RANGE_START_SLOTS, INVALIDATE_RANGE_START, None);
    0
}

// bool invalidate(struct mmu_interval_notifier *mni, const struct mmu_notifier_range *range,
//                 unsigned long cur_seq): the range is the second argument.

#[fentry(function = "dmirror_interval_invalidate")]
pub fn fentry_interval_invalidate(ctx: FEntryContext) -> u32 {
    entry(&CALLBACK_SLOTS, ctx.arg::<u64>(1));
    0
}

#[fexit(function = "dmirror_interval_invalidate")]
pub fn fexit_interval_invalidate(_ctx: FExitContext) -> u32 {
    exit(&CALLBACK_SLOTS, INVALIDATE_CALLBACK, None);
    0
}

#[kprobe]
pub fn kprobe_interval_invalidate(ctx: ProbeContext) -> u32 {
    entry(&CALLBACK_SLOTS, ctx.arg::<u64>(1).unwrap_or(0));
    0
}

#[kretprobe]
pub fn kretprobe_interval_invalidate(_ctx: RetProbeContext) -> u32 {
    exit(&CALLBACK_SLOTS, INVALIDATE_CALLBACK, None);
    0
}
