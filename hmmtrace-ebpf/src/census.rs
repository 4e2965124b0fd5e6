//! `hmmtrace census`: which code calls HMM's exports at run time. One kprobe program attached
//! to every export function the census covers counts calls per (function, caller), the caller
//! being the return address on the stack at the function's entry; userspace names both
//! through kallsyms and reads the counts once, at the end.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_func_ip, bpf_probe_read_kernel},
    macros::{kprobe, map},
    maps::{PerCpuArray, PerCpuHashMap},
    programs::ProbeContext,
    EbpfContext,
};
use hmmtrace_common::{CensusKey, CENSUS_MAX_CALLERS};

#[map]
static CENSUS_CALLS: PerCpuHashMap<CensusKey, u64> =
    PerCpuHashMap::with_max_entries(CENSUS_MAX_CALLERS, 0);

/// Calls not counted because `CENSUS_CALLS` was full: userspace says so, never drops them
/// silently.
#[map]
static CENSUS_UNCOUNTED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[kprobe]
pub fn kprobe_census(ctx: ProbeContext) -> u32 {
    // SAFETY: bpf_get_func_ip takes the program's own context; for a kprobe it is the probed
    // function's address.
    let func = unsafe { bpf_get_func_ip(ctx.as_ptr()) };
    // SAFETY: the context of a kprobe is the probed task's pt_regs, which the program may
    // read; at a function's entry the stack pointer points at the return address, copied
    // through the fault-handling accessor (a bad address reads as 0).
    let caller = unsafe {
        let sp = (*ctx.regs).rsp;
        bpf_probe_read_kernel(sp as *const u64).unwrap_or(0)
    };
    let key = CensusKey { func, caller };
    match CENSUS_CALLS.get_ptr_mut(key) {
        // SAFETY: this CPU's value of a per-CPU map entry, valid for the program's run.
        Some(n) => unsafe { *n += 1 },
        None => {
            if CENSUS_CALLS.insert(key, 1, BPF_NOEXIST as u64).is_err() {
                // The map is full (or another CPU created the key first, which a per-CPU map
                // does not make an error): counted, so userspace says calls went uncounted.
                if let Some(n) = CENSUS_UNCOUNTED.get_ptr_mut(0) {
                    // SAFETY: this CPU's slot of a per-CPU array, valid for the program's run.
                    unsafe { *n += 1 };
                }
            }
        }
    }
    0
}
