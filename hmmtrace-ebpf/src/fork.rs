//! Following a traced command's children: `sched:sched_process_fork` adds the child to
//! `TGIDS` when its parent is traced, before the child can run anything.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use hmmtrace_common::offsets::{ForkOffsets, UNKNOWN};

use crate::emit::{settings, TGIDS};

#[unsafe(no_mangle)]
static FORK_OFFSETS: ForkOffsets = ForkOffsets::UNKNOWN;

#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    if settings().filter_tgids == 0 {
        return 0;
    }
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the value is only tested for presence, never read through.
    if unsafe { TGIDS.get(parent) }.is_none() {
        return 0;
    }
    // SAFETY: a plain read of a static; volatile because userspace patches it into .rodata
    // at load time.
    let off = unsafe { core::ptr::read_volatile(&FORK_OFFSETS) };
    if off.child_pid == UNKNOWN {
        return 0;
    }
    // A new thread's pid is not a tgid; adding it is harmless, the filter looks up tgids.
    // SAFETY: read_at copies with bpf_probe_read at the offset tracefs gave; a bad offset is
    // an error, never a fault.
    if let Ok(child) = unsafe { ctx.read_at::<u32>(off.child_pid as usize) } {
        let _ = TGIDS.insert(child, 1, 0);
    }
    0
}
