//! `task:task_rename` (`__set_task_comm`: exec, `prctl(PR_SET_NAME)`, a write to
//! `/proc/PID/comm`): names the task anew, when task-name records replace the per-event comm.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use hmmtrace_common::offsets::{RenameOffsets, UNKNOWN};

use crate::emit::submit_task_name;
use crate::kread::tp_u32;

#[unsafe(no_mangle)]
static RENAME_OFFSETS: RenameOffsets = RenameOffsets::UNKNOWN;

#[tracepoint(category = "task", name = "task_rename")]
pub fn task_rename(ctx: TracePointContext) -> u32 {
    // SAFETY: plain reads of a static's fields; volatile because userspace patches them into
    // .rodata at load time.
    let (pid_at, newcomm_at) = unsafe {
        (
            core::ptr::read_volatile(core::ptr::addr_of!(RENAME_OFFSETS.pid)),
            core::ptr::read_volatile(core::ptr::addr_of!(RENAME_OFFSETS.newcomm)),
        )
    };
    if newcomm_at == UNKNOWN {
        return 0;
    }
    // Kernels that dropped the field rename only the current task that way.
    let pid = tp_u32(&ctx, pid_at).unwrap_or(bpf_get_current_pid_tgid() as u32);
    // SAFETY: read_at copies with bpf_probe_read at the offset tracefs gave for the 16-byte
    // array; a bad offset is an error, never a fault. Renames are rare: no direct load needed.
    if let Ok(comm) = unsafe { ctx.read_at::<[u8; 16]>(newcomm_at as usize) } {
        submit_task_name(pid, comm);
    }
    0
}
