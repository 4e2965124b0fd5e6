//! `sched:sched_process_fork`, in the parent: names the child (its comm is the parent's) when
//! task-name records replace the per-event comm, and follows a traced command's children (adds
//! the child to `TGIDS` when its parent is traced, before the child can run anything).

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::tracepoint,
    programs::TracePointContext,
};
use hmmtrace_common::offsets::ForkOffsets;

use crate::emit::{settings, submit_task_name, TGIDS};
use crate::kread::tp_u32;

#[unsafe(no_mangle)]
static FORK_OFFSETS: ForkOffsets = ForkOffsets::UNKNOWN;

#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    // SAFETY: a plain read of a static's field; volatile because userspace patches it into
    // .rodata at load time (one 4-byte load, so the verifier knows the value).
    let child_pid =
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!(FORK_OFFSETS.child_pid)) };
    let Some(child) = tp_u32(&ctx, child_pid) else {
        return 0;
    };
    let s = settings();
    if s.comm_in_records == 0 {
        submit_task_name(child, bpf_get_current_comm().unwrap_or([0; 16]));
    }
    if s.filter_tgids != 0 {
        let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
        // SAFETY: the value is only tested for presence, never read through.
        if unsafe { TGIDS.get(parent) }.is_some() {
            // A new thread's pid is not a tgid; adding it is harmless, the filter looks up
            // tgids.
            let _ = TGIDS.insert(child, 1, 0);
        }
    }
    0
}
