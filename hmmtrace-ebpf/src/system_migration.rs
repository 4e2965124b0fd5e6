//! System-RAM migration context: the `migrate:mm_migrate_pages` tracepoint, fired once at the end
//! of every `migrate_pages()` (compaction, NUMA balancing, hotplug, mbind, ...).
//!
//! The record's field offsets differ between kernels (6.12 has `large_folio_split`, 6.1 not), so they
//! come from the tracepoint's tracefs `format` file via the `MIGRATE_PAGES_OFFSETS` global.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use aya_log_ebpf::warn;
use hmmtrace_common::{offsets::TracepointOffsets, EventKind, ProbeId, Record, SystemMigration};

use crate::emit;
use crate::kread::{now, tp_u32, tp_u64};

#[unsafe(no_mangle)]
static MIGRATE_PAGES_OFFSETS: TracepointOffsets = TracepointOffsets::UNKNOWN;

#[tracepoint(category = "migrate", name = "mm_migrate_pages")]
pub fn tracepoint_mm_migrate_pages(ctx: TracePointContext) -> u32 {
    if emit::wanted() {
        record(&ctx);
    }
    0
}

#[inline(always)]
fn record(ctx: &TracePointContext) {
    let ts = now();
    // Each offset is its own 4-byte load from the frozen .rodata map, so the verifier knows
    // its value (a copy of the whole struct through the stack would lose it) and walks only
    // the matching arm of tp_u64/tp_u32.
    macro_rules! off {
        ($f:ident) => {
            // SAFETY: a plain read of a static; volatile because userspace patches it into
            // .rodata at load time.
            unsafe { core::ptr::read_volatile(core::ptr::addr_of!(MIGRATE_PAGES_OFFSETS.$f)) }
        };
    }
    let mut unknown = 0;
    let mut read_u64 = |offset: u32, bit: u32| -> u64 {
        tp_u64(ctx, offset).unwrap_or_else(|| {
            unknown |= bit;
            0
        })
    };
    let succeeded = read_u64(off!(succeeded), SystemMigration::FIELD_SUCCEEDED);
    let failed = read_u64(off!(failed), SystemMigration::FIELD_FAILED);
    let thp_succeeded = read_u64(off!(thp_succeeded), SystemMigration::FIELD_THP_SUCCEEDED);
    let thp_failed = read_u64(off!(thp_failed), SystemMigration::FIELD_THP_FAILED);
    let thp_split = read_u64(off!(thp_split), SystemMigration::FIELD_THP_SPLIT);
    let large_folio_split = read_u64(
        off!(large_folio_split),
        SystemMigration::FIELD_LARGE_FOLIO_SPLIT,
    );
    let mut read_u32 = |offset: u32, bit: u32| -> u32 {
        tp_u32(ctx, offset).unwrap_or_else(|| {
            unknown |= bit;
            0
        })
    };
    let mode = read_u32(off!(mode), SystemMigration::FIELD_MODE);
    let reason = read_u32(off!(reason), SystemMigration::FIELD_REASON);
    if unknown != 0 {
        warn!(
            ctx,
            "mm_migrate_pages fields unreadable (unknown mask {:x})", unknown
        );
    }
    let payload = SystemMigration {
        succeeded,
        failed,
        thp_succeeded,
        thp_failed,
        thp_split,
        large_folio_split,
        mode,
        reason,
    };
    let header = emit::header(EventKind::SystemMigration, ts, None, unknown);
    emit::submit(ProbeId::SystemMigration, Record { header, payload });
}
