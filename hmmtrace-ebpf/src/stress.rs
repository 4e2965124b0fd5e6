//! Benchmark only (`cargo xtask bench`): a program on `syscalls:sys_enter_getppid`, which a
//! benchmark can fire millions of times a second from userspace, that sends a full
//! system-migration record through the same filter, ring buffer, wake-up policy and drop
//! counters as the real probes. Never attached by `record`, `live` or `probes`; it lets the
//! ring buffer's end-to-end rate and losses be measured where no HMM path fires that fast.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use hmmtrace_common::{EventKind, ProbeId, Record, SystemMigration};

use crate::emit;
use crate::kread::now;

#[tracepoint(category = "syscalls", name = "sys_enter_getppid")]
pub fn ring_stress(_ctx: TracePointContext) -> u32 {
    if emit::wanted() {
        let ts = now();
        let header = emit::header(EventKind::SystemMigration, ts, None, 0);
        let payload = SystemMigration {
            succeeded: ts,
            ..SystemMigration::default()
        };
        emit::submit(ProbeId::SystemMigration, Record { header, payload });
    }
    0
}
