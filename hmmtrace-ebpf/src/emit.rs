//! The path from a probe to userspace: filters, the ring buffer, wake-up policy and the per-probe
//! drop counters that turn a full ring into `Lost` events instead of silence.
//!
//! Diagnostics (`--ebpf-log`) go through aya-log's own ring, not this one: the modules log
//! with aya-log-ebpf's macros; userspace patches `AYA_LOG_LEVEL` to 0 without `--ebpf-log`,
//! and the verifier then removes the logging code (it sees the constant).

use aya_ebpf::{
    bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id},
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use hmmtrace_common::{
    offsets::Settings, EventHeader, EventKind, PagemapOpsSeen, ProbeId, Record, TaskName,
    OPS_RECORD, PROBE_COUNT, TASK_RECORD,
};

/// Default ring size; userspace resizes it (`--ring-size`) before load.
const DEFAULT_RING_BYTES: u32 = 1 << 22;

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

/// Records dropped because `EVENTS` was full, indexed by `ProbeId`. Per-CPU so counting a drop
/// needs no atomic; userspace sums the CPUs.
#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(PROBE_COUNT, 0);

/// Written by userspace before load (read-only global).
#[unsafe(no_mangle)]
static SETTINGS: Settings = Settings::DEFAULT;

#[inline(always)]
pub(crate) fn settings() -> Settings {
    // SAFETY: a plain read of a static; volatile because the value is patched into .rodata at
    // load time, so the compiler must not fold the default above into the code.
    unsafe { core::ptr::read_volatile(&SETTINGS) }
}

/// Whether events go to the per-CPU aggregates (`--aggregate`) rather than the ring: then a
/// probe need read only what a group keeps (`crate::aggregate::Facts`).
#[inline(always)]
pub(crate) fn aggregating() -> bool {
    settings().aggregate != 0
}

/// Tgids to trace when `Settings::filter_tgids` is set (value unused).
#[map]
pub(crate) static TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

/// Whether the current task passes the userspace filters.
#[inline(always)]
pub(crate) fn wanted() -> bool {
    let s = settings();
    if s.filter_tgids != 0 {
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        // SAFETY: the value is only tested for presence, never read through.
        if unsafe { TGIDS.get(tgid) }.is_none() {
            return false;
        }
    }
    if s.filter_comm != 0 {
        let comm = bpf_get_current_comm().unwrap_or([0; 16]);
        #[expect(
            clippy::needless_range_loop,
            reason = "two arrays in lockstep with a constant bound: a loop the verifier unrolls"
        )]
        for i in 0..16 {
            if comm[i] != s.comm[i] {
                return false;
            }
        }
    }
    true
}

/// A header for the current task. `ts_ns` is the entry time of the traced call.
#[inline(always)]
pub(crate) fn header(
    kind: EventKind,
    ts_ns: u64,
    duration_ns: Option<u64>,
    unknown: u32,
) -> EventHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    EventHeader {
        ts_ns,
        duration_ns: duration_ns.unwrap_or(0),
        tgid: (pid_tgid >> 32) as u32,
        pid: pid_tgid as u32,
        unknown,
        // SAFETY: bpf_get_smp_processor_id takes no arguments and has no preconditions.
        // Below NR_CPUS (at most 8192): the cast keeps every value.
        cpu: unsafe { bpf_get_smp_processor_id() } as u16,
        kind: kind as u8,
        flags: if duration_ns.is_some() {
            hmmtrace_common::FLAG_HAS_DURATION
        } else {
            0
        },
    }
}

/// Names task `pid` from now on (see `hmmtrace_common::TASK_RECORD`); false when the ring was
/// full.
#[inline(always)]
pub(crate) fn submit_task_name(pid: u32, comm: [u8; 16]) -> bool {
    // A task-name record is not an EventKind: the header is built as any, then re-kinded.
    let mut header = header(EventKind::Migration, crate::kread::now(), None, 0);
    header.kind = TASK_RECORD;
    let payload = TaskName { pid, _pad: 0, comm };
    to_ring(ProbeId::Task, Record { header, payload })
}

/// The task this cpu last named with `Settings::comm_in_records`.
#[repr(C)]
struct Named {
    pid: u32,
    /// 0 until the first name is sent (pid 0, the idle task, is a real pid).
    valid: u32,
    comm: [u8; 16],
}

#[map]
static LAST_NAMED: PerCpuArray<Named> = PerCpuArray::with_max_entries(1, 0);

/// With `Settings::comm_in_records` (no fork and rename tracepoints to name tasks): names the
/// current task before its record, unless it is the task this cpu named last under the same
/// name. Records reach the ring in the order they are reserved on a cpu, so the name always
/// precedes the event it names.
#[inline(always)]
fn name_current_task() {
    let pid = bpf_get_current_pid_tgid() as u32;
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    let Some(last) = LAST_NAMED.get_ptr_mut(0) else {
        submit_task_name(pid, comm);
        return;
    };
    // SAFETY: this cpu's value of a one-entry per-CPU array, valid for the program's run.
    // Only a program nested in an interrupt on this cpu could write it meanwhile; the worst
    // that does is a name sent twice (userspace keeps names per pid), never one skipped, as
    // the slot names only what reached the ring.
    unsafe {
        if (*last).valid != 0 && (*last).pid == pid && (*last).comm == comm {
            return;
        }
        // Remembered only once the name is in the ring: a dropped one is sent again.
        if submit_task_name(pid, comm) {
            (*last).pid = pid;
            (*last).comm = comm;
            (*last).valid = 1;
        }
    }
}

/// Sends a pagemap-ops record (see `crate::discover`); false when the ring was full.
#[inline(always)]
pub(crate) fn submit_ops(seen: PagemapOpsSeen) -> bool {
    let mut header = header(EventKind::PageFree, crate::kread::now(), None, 0);
    header.kind = OPS_RECORD;
    match EVENTS.reserve::<Record<PagemapOpsSeen>>(0) {
        Some(mut entry) => {
            entry.write(Record {
                header,
                payload: seen,
            });
            // Rare: wake the reader now, so the callbacks are attached soon.
            entry.submit(BPF_RB_FORCE_WAKEUP as u64);
            true
        }
        None => false,
    }
}

/// Delivers one event: into the ring, or with `--aggregate` into the per-CPU aggregates.
#[inline(always)]
pub(crate) fn submit<P: crate::aggregate::Aggregated + 'static>(probe: ProbeId, record: Record<P>) {
    if aggregating() {
        if !crate::aggregate::add(&record.header, record.payload.facts()) {
            dropped(probe);
        }
        return;
    }
    if settings().comm_in_records != 0 {
        name_current_task();
    }
    to_ring(probe, record);
}

/// Counts one event of `probe` that could not be delivered.
pub(crate) fn dropped(probe: ProbeId) {
    if let Some(count) = DROPS.get_ptr_mut(probe as u32) {
        // SAFETY: the pointer is this CPU's slot of a per-CPU array, valid for the
        // program's run, and no other program runs on this CPU meanwhile.
        unsafe { *count += 1 };
    }
}

/// Writes one record, or counts it as dropped for `probe` when the ring is full (false).
#[inline(always)]
fn to_ring<P: 'static>(probe: ProbeId, record: Record<P>) -> bool {
    match EVENTS.reserve::<Record<P>>(0) {
        Some(mut entry) => {
            entry.write(record);
            // Wake the reader only when enough has piled up: a wake-up per record costs an
            // irq_work each, far more than the record itself.
            let avail = EVENTS.query(aya_ebpf::bindings::BPF_RB_AVAIL_DATA as u64);
            let flags = if avail >= settings().wakeup_bytes {
                BPF_RB_FORCE_WAKEUP
            } else {
                BPF_RB_NO_WAKEUP
            };
            entry.submit(flags as u64);
            true
        }
        None => {
            dropped(probe);
            false
        }
    }
}
