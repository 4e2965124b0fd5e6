//! Pairing a function's entry with its exit on the same task, for the per-page and per-range
//! paths (page free, invalidations, device faults), which fire tens of thousands of times in a
//! run.
//!
//! Why not a hash map keyed by thread id (as the migration state machine uses): an insert at
//! entry and a lookup and a delete at exit are three helper calls, each taking the bucket's
//! lock; in the VM they were about half of these programs' cost (the per-probe table of
//! BENCHMARKS.md). Instead each function has a direct-mapped table of `SLOTS` slots, the slot
//! being the thread id modulo `SLOTS`: an array lookup the verifier inlines to a few
//! instructions, no lock, no helper, and a stale slot (an exit that never ran) is simply
//! overwritten by the next entry.
//!
//! What it costs in accuracy, all of it counted, never guessed: two tasks whose thread ids are
//! equal modulo `SLOTS` and that are inside the same function at once share a slot. The second
//! entry takes it and counts the first task's event as dropped for its probe (userspace reports
//! drops as lost events); the first task's exit then finds another thread id and records
//! nothing. A slot written by two CPUs at once could mix their fields: a check word over the
//! fields catches that at exit (short of a window of a few instructions at entry), and that
//! event is counted as dropped too.

use aya_ebpf::maps::Array;
use hmmtrace_common::ProbeId;

use crate::kread::{now, tid};

/// Slots per function: a power of two. 16,384 slots of 48 bytes are 768 KiB per function.
pub(crate) const SLOTS: u32 = 16384;

/// What an entry leaves for its exit.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    /// The thread id that owns the slot; 0 when free.
    pub tid: u32,
    _pad: u32,
    /// `ts ^ arg ^ tid × a constant`: a mix of two tasks' writes fails it.
    check: u64,
    /// Entry time (`kread::now`).
    pub ts: u64,
    /// The argument the exit needs.
    pub arg: u64,
    /// For `page_free`: the driver's callback, timed inside the core free path.
    pub callback_entry: u64,
    pub callback_ns: u64,
}

pub(crate) type Slots = Array<Slot>;

/// Declares one function's slot table.
macro_rules! slots {
    ($name:ident) => {
        #[aya_ebpf::macros::map]
        static $name: $crate::pairing::Slots =
            aya_ebpf::maps::Array::with_max_entries($crate::pairing::SLOTS, 0);
    };
}
pub(crate) use slots;

#[inline(always)]
fn check(tid: u32, ts: u64, arg: u64) -> u64 {
    ts ^ arg ^ (tid as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[inline(always)]
fn slot_of(slots: &Slots, tid: u32) -> Option<*mut Slot> {
    slots.get_ptr_mut(tid & (SLOTS - 1))
}

/// At a function's entry: takes this task's slot. An occupied slot of another task is that
/// task's event lost, counted for `probe`.
#[inline(always)]
pub(crate) fn begin(slots: &Slots, probe: ProbeId, arg: u64) {
    let me = tid();
    let Some(s) = slot_of(slots, me) else { return };
    let ts = now();
    // SAFETY: a pointer into an array map's value, valid for the program's run; another CPU
    // may write the same slot meanwhile, which the check word detects at exit.
    unsafe {
        let held = (*s).tid;
        if held != 0 && held != me {
            crate::emit::dropped(probe);
        }
        (*s).ts = ts;
        (*s).arg = arg;
        // Read back: to the verifier an fentry argument is a typed kernel pointer, which it
        // lets no arithmetic touch; what comes back from the map is a plain number.
        let arg = core::ptr::read_volatile(&(*s).arg);
        (*s).callback_entry = 0;
        (*s).callback_ns = 0;
        (*s).check = check(me, ts, arg);
        (*s).tid = me;
    }
}

/// This task's slot while it is inside the function (for the callback it calls), if held.
#[inline(always)]
pub(crate) fn mine(slots: &Slots) -> Option<*mut Slot> {
    let me = tid();
    let s = slot_of(slots, me)?;
    // SAFETY: a pointer into an array map's value, valid for the program's run.
    (unsafe { (*s).tid } == me).then_some(s)
}

/// At the function's exit: this task's entry, and frees the slot. `None` when this task has no
/// entry here (it entered before the probes attached, a filter left it out, or another task took
/// the slot, which that task's entry counted); a mixed slot is counted as dropped for `probe`.
#[inline(always)]
pub(crate) fn end(slots: &Slots, probe: ProbeId) -> Option<Slot> {
    let me = tid();
    let s = slot_of(slots, me)?;
    // SAFETY: a pointer into an array map's value, valid for the program's run; copied out at
    // once and validated by its check word.
    let copy = unsafe { *s };
    if copy.tid != me {
        return None;
    }
    // SAFETY: as above; only this task frees its own slot.
    unsafe { (*s).tid = 0 };
    if copy.check != check(me, copy.ts, copy.arg) {
        crate::emit::dropped(probe);
        return None;
    }
    Some(copy)
}
