//! System-RAM migration context: the `migrate:mm_migrate_pages` tracepoint, fired once at the end
//! of every `migrate_pages()` (compaction, NUMA balancing, hotplug, mbind, ...).
//!
//! The record's field offsets differ between kernels (6.12 has `large_folio_split`, 6.1 not), so they
//! come from the tracepoint's tracefs `format` file via the `MIGRATE_PAGES_OFFSETS` global.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use aya_log_ebpf::warn;
use hmmtrace_common::{
    offsets::{TracepointOffsets, UNKNOWN},
    EventKind, ProbeId, Record, SystemMigration,
};

use crate::emit;
use crate::kread::now;

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
    // SAFETY: a plain read of a static; volatile because userspace patches it into .rodata
    // at load time.
    let off = unsafe { core::ptr::read_volatile(&MIGRATE_PAGES_OFFSETS) };
    let mut unknown = 0;
    let mut read_u64 = |offset: u32, bit: u32| -> u64 {
        if offset != UNKNOWN {
            // SAFETY: read_at copies with bpf_probe_read at an offset tracefs gave for this
            // tracepoint's record; a bad offset is an error, never a fault.
            if let Ok(v) = unsafe { ctx.read_at::<u64>(offset as usize) } {
                return v;
            }
        }
        unknown |= bit;
        0
    };
    let succeeded = read_u64(off.succeeded, SystemMigration::FIELD_SUCCEEDED);
    let failed = read_u64(off.failed, SystemMigration::FIELD_FAILED);
    let thp_succeeded = read_u64(off.thp_succeeded, SystemMigration::FIELD_THP_SUCCEEDED);
    let thp_failed = read_u64(off.thp_failed, SystemMigration::FIELD_THP_FAILED);
    let thp_split = read_u64(off.thp_split, SystemMigration::FIELD_THP_SPLIT);
    let large_folio_split = read_u64(
        off.large_folio_split,
        SystemMigration::FIELD_LARGE_FOLIO_SPLIT,
    );
    let mut read_u32 = |offset: u32, bit: u32| -> u32 {
        if offset != UNKNOWN {
            // SAFETY: as for the u64 fields above.
            if let Ok(v) = unsafe { ctx.read_at::<u32>(offset as usize) } {
                return v;
            }
        }
        unknown |= bit;
        0
    };
    let mode = read_u32(off.mode, SystemMigration::FIELD_MODE);
    let reason = read_u32(off.reason, SystemMigration::FIELD_REASON);
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
