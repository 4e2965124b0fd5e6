//! HMM's contract, as its author put it when it was merged: the driver gets a callback when the
//! CPU touches a device page so the page migrates back under the driver's control
//! (`migrate_to_ram`); the driver is told when a device page is freed (`page_free`); and a
//! migration is `migrate_vma_setup`, `_pages`, `_finalize` in that order. Breaks of it, each a
//! finding:
//!
//! - **unfinished_migration** (error): a migration whose `pages` and `finalize` never ran (the
//!   task began another first; the probe marks it with `Migration::FIELD_FINALIZE`).
//! - **fault_error** (error): `migrate_to_ram` returned `VM_FAULT_SIGBUS`, `_OOM`,
//!   `_HWPOISON` or `_SIGSEGV`: the faulting access fails and the process gets the signal.
//! - **range_fault_error** (warn): `hmm_range_fault` returned an error other than `-EBUSY`
//!   (`-EFAULT`, `-EPERM`: the driver asked to mirror what the process cannot access).
//! - **leaked_device_pages** (error): pages a process migrated to a device were not freed
//!   (`page_free`, which ends every device page's life: unmapped, migrated back or evicted)
//!   [`Config::leak_grace_ns`] after the process exited (its `MMU_NOTIFY_RELEASE`). Pages are attributed to the process whose context the migration,
//!   eviction or `page_free` ran in: the exit's own unmap and the device file's release run in
//!   the exiting process. A process whose address space has no notifier gives no
//!   `MMU_NOTIFY_RELEASE`, so its pages are never judged.
//!
//! Bounds: episodes of at most 1024 keys each; leak accounting for at most [`MAX_PROCESSES`]
//! processes (least recently active dropped first, unjudged) and 16 devices each.
//!
//! [`Config::leak_grace_ns`]: super::Config::leak_grace_ns

use hashlink::LinkedHashMap;
use rustc_hash::FxBuildHasher;

use super::episodes::{Episode, Episodes};
use super::{Context, Draft, FindingKind};
use crate::event::{Body, Comm, Event};
use hmmtrace_common::{
    Migration, API_MIGRATE_DEVICE, DIRECTION_TO_DEVICE, MMU_NOTIFY_RELEASE, VM_FAULT_SIGNALS,
};

/// Processes whose device pages are accounted at once.
pub const MAX_PROCESSES: usize = 4096;
const MAX_DEVICES: usize = 16;
const EPISODE_KEYS: usize = 1024;

/// One process's device pages on one device.
#[derive(Clone, Copy, Default)]
struct Held {
    owner: u64,
    to_device: u64,
    back: u64,
    freed: u64,
}

#[derive(Clone, Default)]
struct Process {
    comm: Comm,
    devices: Vec<Held>,
    /// When it exited (`MMU_NOTIFY_RELEASE`), if it has.
    exited_ns: Option<u64>,
    last_ns: u64,
}

impl Process {
    fn held(&mut self, owner: u64) -> Option<&mut Held> {
        if let Some(i) = self.devices.iter().position(|h| h.owner == owner) {
            return Some(&mut self.devices[i]);
        }
        if self.devices.len() >= MAX_DEVICES {
            return None;
        }
        self.devices.push(Held {
            owner,
            ..Held::default()
        });
        self.devices.last_mut()
    }
}

pub struct Contract {
    unfinished: Episodes<(u32, u64)>,
    fault_errors: Episodes<(u32, u64, u32)>,
    range_errors: Episodes<(u32, i32)>,
    processes: LinkedHashMap<u32, Process, FxBuildHasher>,
    /// The process of the last event that needed one (it is at the back of `processes`).
    last: Option<u32>,
    closed_unfinished: Vec<((u32, u64), Episode)>,
    closed_faults: Vec<((u32, u64, u32), Episode)>,
    closed_ranges: Vec<((u32, i32), Episode)>,
}

impl Default for Contract {
    fn default() -> Contract {
        Contract {
            unfinished: Episodes::new(EPISODE_KEYS),
            fault_errors: Episodes::new(EPISODE_KEYS),
            range_errors: Episodes::new(EPISODE_KEYS),
            processes: LinkedHashMap::with_hasher(FxBuildHasher),
            last: None,
            closed_unfinished: Vec::new(),
            closed_faults: Vec::new(),
            closed_ranges: Vec::new(),
        }
    }
}

impl Contract {
    fn process(&mut self, e: &Event) -> &mut Process {
        // Events come in runs of one process: the last one is already at the back.
        if self.last != Some(e.tgid) || !self.processes.contains_key(&e.tgid) {
            self.last = Some(e.tgid);
            if self.processes.to_back(&e.tgid).is_none() {
                if self.processes.len() >= MAX_PROCESSES {
                    self.processes.pop_front();
                }
                self.processes.insert(
                    e.tgid,
                    Process {
                        comm: e.comm,
                        ..Process::default()
                    },
                );
            }
        }
        let p = self.processes.get_mut(&e.tgid).expect("present");
        p.last_ns = p.last_ns.max(e.ts_ns);
        p
    }

    pub(super) fn event(&mut self, cx: &Context, e: &Event, out: &mut Vec<Draft>) {
        let gap = cx.config.episode_gap_ns;
        match &e.body {
            Body::Migration(m) => {
                if e.unknown & Migration::FIELD_FINALIZE != 0 {
                    let ep = self.unfinished.add(
                        (e.tgid, m.pgmap_owner),
                        e,
                        gap,
                        &mut self.closed_unfinished,
                    );
                    ep.sums[0] += m.npages;
                    ep.sums[1] = m.pgmap_owner;
                    return;
                }
                if m.migrated == 0 || m.pgmap_owner == 0 {
                    return;
                }
                let to_device = m.direction == DIRECTION_TO_DEVICE;
                // Evictions by pfn run in whatever task the driver runs them in: they still
                // give pages back, to the process they run in (at exit, the exiting one).
                if let Some(h) = self.process(e).held(m.pgmap_owner) {
                    if to_device && m.api != API_MIGRATE_DEVICE {
                        h.to_device += m.migrated;
                    } else if !to_device {
                        h.back += m.migrated;
                    }
                }
            }
            Body::PageFree(p) if p.pgmap_owner != 0 => {
                let pages = e.pages();
                if let Some(h) = self.process(e).held(p.pgmap_owner) {
                    h.freed += pages;
                }
            }
            Body::DeviceFault(f) if f.result & VM_FAULT_SIGNALS != 0 => {
                let ep = self.fault_errors.add(
                    (e.tgid, f.pgmap_owner, f.result & VM_FAULT_SIGNALS),
                    e,
                    gap,
                    &mut self.closed_faults,
                );
                ep.sums[0] = f.pgmap_ops;
            }
            Body::RangeFault(r) if r.result != 0 => {
                let ep = self
                    .range_errors
                    .add((e.tgid, r.result), e, gap, &mut self.closed_ranges);
                ep.sums[0] += r.npages;
                ep.sums[1] = r.dev_private_owner;
            }
            Body::Invalidation(i) if i.event == MMU_NOTIFY_RELEASE => {
                let p = self.process(e);
                p.exited_ns.get_or_insert(e.ts_ns);
            }
            _ => {}
        }
        if !(self.closed_unfinished.is_empty()
            && self.closed_faults.is_empty()
            && self.closed_ranges.is_empty())
        {
            self.conclude(cx, out);
        }
    }

    pub(super) fn expire(&mut self, cx: &Context, now: u64, out: &mut Vec<Draft>) {
        let gap = cx.config.episode_gap_ns;
        self.unfinished
            .expire(now, gap, &mut self.closed_unfinished);
        self.fault_errors.expire(now, gap, &mut self.closed_faults);
        self.range_errors.expire(now, gap, &mut self.closed_ranges);
        // Processes that exited long enough ago are judged.
        let grace = cx.config.leak_grace_ns;
        let due: Vec<u32> = self
            .processes
            .iter()
            .filter(|(_, p)| p.exited_ns.is_some_and(|t| t.saturating_add(grace) <= now))
            .map(|(t, _)| *t)
            .collect();
        for tgid in due {
            if let Some(p) = self.processes.remove(&tgid) {
                judge(cx, tgid, &p, out);
            }
        }
        self.conclude(cx, out);
    }

    /// The end of the stream: every exited process is judged, whatever the grace left.
    pub(super) fn finish(&mut self, cx: &Context, out: &mut Vec<Draft>) {
        self.expire(cx, u64::MAX, out);
    }

    fn conclude(&mut self, cx: &Context, out: &mut Vec<Draft>) {
        for ((tgid, owner), ep) in self.closed_unfinished.drain(..) {
            out.push(Draft {
                kind: FindingKind::UnfinishedMigration,
                tgid,
                comm: ep.comm,
                owner,
                symbol: Some("migrate_vma_setup".into()),
                range: ep.range,
                first_ns: ep.first_ns,
                last_ns: ep.last_ns,
                counts: vec![("migrations", ep.count), ("pages", ep.sums[0])],
                message: format!(
                    "{} migration(s) of {} pages set up with migrate_vma_setup never reached \
                     migrate_vma_pages and migrate_vma_finalize (the task started another): \
                     the collected pages stay locked and isolated with migration entries in \
                     their place",
                    ep.count, ep.sums[0]
                ),
                events: ep.events,
            });
        }
        for ((tgid, owner, result), ep) in self.closed_faults.drain(..) {
            let signals: Vec<&str> = hmmtrace_common::vm_fault_signals(result).collect();
            let symbol = cx.symbols.of_ops(ep.sums[0]).to_string();
            out.push(Draft {
                kind: FindingKind::FaultError,
                tgid,
                comm: ep.comm,
                owner,
                symbol: Some(symbol.clone()),
                range: ep.range,
                first_ns: ep.first_ns,
                last_ns: ep.last_ns,
                counts: vec![("faults", ep.count), ("vm_fault_t", u64::from(result))],
                message: format!(
                    "{symbol} returned VM_FAULT_{} to {} CPU fault(s) on device pages: the \
                     faulting access fails and the process gets {}",
                    signals.join("|VM_FAULT_"),
                    ep.count,
                    if result & hmmtrace_common::VM_FAULT_OOM != 0 {
                        "the OOM killer"
                    } else {
                        "a signal"
                    }
                ),
                events: ep.events,
            });
        }
        for ((tgid, result), ep) in self.closed_ranges.drain(..) {
            let errno = errno_name(result);
            out.push(Draft {
                kind: FindingKind::RangeFaultError,
                tgid,
                comm: ep.comm,
                owner: ep.sums[1],
                symbol: Some("hmm_range_fault".into()),
                range: ep.range,
                first_ns: ep.first_ns,
                last_ns: ep.last_ns,
                counts: vec![
                    ("calls", ep.count),
                    ("pages", ep.sums[0]),
                    ("errno", u64::from(result.unsigned_abs())),
                ],
                message: format!(
                    "hmm_range_fault returned {errno} {} time(s): the device could not mirror \
                     the range ({})",
                    ep.count,
                    match result {
                        -14 => "an address with no mapping, or a fault the process would get SIGSEGV for",
                        -1 => "the mapping does not allow the access asked for",
                        _ => "see the kernel's mm/hmm.c for what returns it",
                    }
                ),
                events: ep.events,
            });
        }
    }
}

/// A process that exited: its device pages not given back are leaked.
fn judge(cx: &Context, tgid: u32, p: &Process, out: &mut Vec<Draft>) {
    for h in &p.devices {
        // Every device page ends in page_free, also one migrated back (the copy in RAM
        // replaces it) or evicted: what is not freed is held.
        let held = h.to_device.saturating_sub(h.freed);
        if held == 0 {
            continue;
        }
        let exited = p.exited_ns.unwrap_or(p.last_ns);
        out.push(Draft {
            kind: FindingKind::LeakedDevicePages,
            tgid,
            comm: p.comm,
            owner: h.owner,
            symbol: None,
            range: None,
            first_ns: exited,
            last_ns: p.last_ns.max(exited),
            counts: vec![
                ("held", held),
                ("to_device", h.to_device),
                ("back", h.back),
                ("freed", h.freed),
            ],
            events: vec![exited],
            message: format!(
                "{held} device pages the process migrated to the device were not freed \
                 (page_free) {} after it exited ({} in, {} migrated back, {} freed): a \
                 reference keeps them",
                crate::report::text::fmt_ns(cx.config.leak_grace_ns),
                h.to_device,
                h.back,
                h.freed
            ),
        });
    }
}

/// `-14` → `-EFAULT`, as the kernel's headers name it.
pub fn errno_name(result: i32) -> String {
    let name = match -result {
        1 => "EPERM",
        11 => "EAGAIN",
        12 => "ENOMEM",
        14 => "EFAULT",
        16 => "EBUSY",
        22 => "EINVAL",
        _ => return format!("{result}"),
    };
    format!("-{name}")
}
