//! The one decoded `Event` type: every source (kernel probes, the reference engine, a capture
//! being replayed) yields it and every sink (capture writer, reports, the TUI) consumes it,
//! through the pipeline (`crate::pipeline`).
//!
//! Payloads are the wire structs of `hmmtrace-common` themselves, so a field is defined, and
//! documented, in exactly one place.

use std::fmt;

pub use hmmtrace_common::{
    DeviceFault, EventKind, Invalidation, Lost, Migration, PageFree, RangeFault, SystemMigration,
};
use hmmtrace_common::{EventHeader, Record, COMM_LEN, FLAG_HAS_DURATION};

/// A task's `comm`, NUL-padded as the kernel keeps it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Comm(pub [u8; COMM_LEN]);

impl Comm {
    /// Truncates to `COMM_LEN - 1` bytes, like the kernel's `set_task_comm`.
    pub fn new(name: &str) -> Comm {
        let mut b = [0u8; COMM_LEN];
        let n = name.len().min(COMM_LEN - 1);
        b[..n].copy_from_slice(&name.as_bytes()[..n]);
        Comm(b)
    }

    pub fn as_bytes(&self) -> &[u8] {
        let end = self.0.iter().position(|&c| c == 0).unwrap_or(COMM_LEN);
        &self.0[..end]
    }
}

impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// The kind-specific part of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Migration(Migration),
    DeviceFault(DeviceFault),
    PageFree(PageFree),
    Invalidation(Invalidation),
    RangeFault(RangeFault),
    SystemMigration(SystemMigration),
    Lost(Lost),
}

impl Body {
    pub fn kind(&self) -> EventKind {
        match self {
            Body::Migration(_) => EventKind::Migration,
            Body::DeviceFault(_) => EventKind::DeviceFault,
            Body::PageFree(_) => EventKind::PageFree,
            Body::Invalidation(_) => EventKind::Invalidation,
            Body::RangeFault(_) => EventKind::RangeFault,
            Body::SystemMigration(_) => EventKind::SystemMigration,
            Body::Lost(_) => EventKind::Lost,
        }
    }

    /// The device (pgmap owner cookie) the event concerns, where it has one.
    pub fn device(&self) -> Option<u64> {
        let owner = match self {
            Body::Migration(m) => m.pgmap_owner,
            Body::DeviceFault(f) => f.pgmap_owner,
            Body::PageFree(p) => p.pgmap_owner,
            Body::Invalidation(i) => i.owner,
            Body::RangeFault(r) => r.dev_private_owner,
            Body::SystemMigration(_) | Body::Lost(_) => 0,
        };
        (owner != 0).then_some(owner)
    }

    /// The user address range `[start, end)` the event concerns, where it has one known: a
    /// `migrate_vma` migration's, a faulting page's (4 KiB from the address), an invalidation's
    /// or a range fault's. (`migrate_device` ranges are device pfns, not addresses.)
    pub fn range(&self) -> Option<(u64, u64)> {
        match self {
            Body::Migration(m) if m.api != hmmtrace_common::API_MIGRATE_DEVICE => {
                Some((m.start, m.end))
            }
            Body::DeviceFault(f) => Some((f.address, f.address.saturating_add(4096))),
            Body::Invalidation(i) => Some((i.start, i.end)),
            Body::RangeFault(r) => Some((r.start, r.end)),
            _ => None,
        }
    }
}

/// What every view counts as one thing: the event's kind, with an interval notifier's callback
/// apart from the invalidation that ran it. One `__mmu_notifier_invalidate_range_start` runs
/// the `invalidate` callback of each mirror of the range, so counting both as invalidations
/// counted each invalidation twice (or more).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Migration,
    DeviceFault,
    PageFree,
    /// `__mmu_notifier_invalidate_range_start`: one per invalidation of an address range.
    Invalidation,
    /// A driver's `mmu_interval_notifier_ops.invalidate` callback, run by an invalidation.
    IntervalInvalidate,
    RangeFault,
    SystemMigration,
    Lost,
}

impl Class {
    pub const COUNT: usize = 8;
    pub const ALL: [Class; Class::COUNT] = [
        Class::Migration,
        Class::DeviceFault,
        Class::PageFree,
        Class::Invalidation,
        Class::IntervalInvalidate,
        Class::RangeFault,
        Class::SystemMigration,
        Class::Lost,
    ];

    /// The name every view and file uses.
    pub const fn name(self) -> &'static str {
        match self {
            Class::Migration => "migration",
            Class::DeviceFault => "device_fault",
            Class::PageFree => "page_free",
            Class::Invalidation => "invalidation",
            Class::IntervalInvalidate => "interval_invalidate",
            Class::RangeFault => "range_fault",
            Class::SystemMigration => "system_migration",
            Class::Lost => "lost",
        }
    }

    pub fn from_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Its position in [`Class::ALL`], for arrays indexed by class.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The classes whose events have durations.
    pub const TIMED: [Class; 6] = [
        Class::Migration,
        Class::DeviceFault,
        Class::PageFree,
        Class::Invalidation,
        Class::IntervalInvalidate,
        Class::RangeFault,
    ];
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing HMM did, from any source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Entry time of the traced call in ns (CLOCK_MONOTONIC for the kernel; the engine's
    /// simulated clock for the engine). The capture header names the clock.
    pub ts_ns: u64,
    /// Entry-to-exit time in ns, for events that pair an entry with an exit.
    pub duration_ns: Option<u64>,
    pub cpu: u32,
    pub tgid: u32,
    pub pid: u32,
    pub comm: Comm,
    /// Payload fields the source could not know (the payload's `FIELD_*` bits).
    pub unknown: u32,
    pub body: Body,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }

    /// What views count it as.
    pub fn class(&self) -> Class {
        match &self.body {
            Body::Migration(_) => Class::Migration,
            Body::DeviceFault(_) => Class::DeviceFault,
            Body::PageFree(_) => Class::PageFree,
            Body::Invalidation(i) if i.path == hmmtrace_common::INVALIDATE_CALLBACK => {
                Class::IntervalInvalidate
            }
            Body::Invalidation(_) => Class::Invalidation,
            Body::RangeFault(_) => Class::RangeFault,
            Body::SystemMigration(_) => Class::SystemMigration,
            Body::Lost(_) => Class::Lost,
        }
    }

    /// The pages the event concerns, as every view counts them: pages migrated (device
    /// migrations: `migrated`; system migrations: `nr_succeeded`, in base pages), pages
    /// range-faulted, pages freed, one per fault, records dropped for `Lost`; none for an
    /// invalidation (its range can be a whole address space).
    pub fn pages(&self) -> u64 {
        match &self.body {
            Body::Migration(m) => m.migrated,
            Body::SystemMigration(s) => s.succeeded,
            Body::RangeFault(r) => r.npages,
            Body::PageFree(p) => 1u64 << p.order.min(20),
            Body::DeviceFault(_) => 1,
            Body::Lost(l) => l.count,
            Body::Invalidation(_) => 0,
        }
    }

    /// `-EBUSY` retries before the call, for a range fault; 0 otherwise.
    pub fn retries(&self) -> u64 {
        match &self.body {
            Body::RangeFault(r) => u64::from(r.retries),
            _ => 0,
        }
    }

    /// Decodes one ring-buffer record. `None` for a record of unknown kind or wrong length,
    /// which a caller must count, not ignore.
    pub fn from_wire(bytes: &[u8]) -> Option<Event> {
        let header: EventHeader = read(bytes)?;
        let kind = EventKind::from_u16(u16::from(header.kind))?;
        if bytes.len() != hmmtrace_common::record_size(kind) {
            return None;
        }
        let body = match kind {
            EventKind::Migration => Body::Migration(payload(bytes)?),
            EventKind::DeviceFault => Body::DeviceFault(payload(bytes)?),
            EventKind::PageFree => Body::PageFree(payload(bytes)?),
            EventKind::Invalidation => Body::Invalidation(payload(bytes)?),
            EventKind::RangeFault => Body::RangeFault(payload(bytes)?),
            EventKind::SystemMigration => Body::SystemMigration(payload(bytes)?),
            EventKind::Lost => Body::Lost(payload(bytes)?),
        };
        Some(Event {
            ts_ns: header.ts_ns,
            duration_ns: (header.flags & FLAG_HAS_DURATION != 0).then_some(header.duration_ns),
            cpu: u32::from(header.cpu),
            tgid: header.tgid,
            pid: header.pid,
            // Records carry no name: the kernel session names the task (`kernel::names`).
            comm: Comm::default(),
            unknown: header.unknown,
            body,
        })
    }

    /// Encodes the event as the kernel side would write it.
    pub fn to_wire(&self) -> Vec<u8> {
        let header = EventHeader {
            ts_ns: self.ts_ns,
            duration_ns: self.duration_ns.unwrap_or(0),
            tgid: self.tgid,
            pid: self.pid,
            unknown: self.unknown,
            // The kernel's cpus fit 16 bits (`EventHeader::cpu`).
            cpu: self.cpu as u16,
            kind: self.kind() as u8,
            flags: if self.duration_ns.is_some() {
                FLAG_HAS_DURATION
            } else {
                0
            },
        };
        match self.body {
            Body::Migration(p) => bytes_of(&Record { header, payload: p }),
            Body::DeviceFault(p) => bytes_of(&Record { header, payload: p }),
            Body::PageFree(p) => bytes_of(&Record { header, payload: p }),
            Body::Invalidation(p) => bytes_of(&Record { header, payload: p }),
            Body::RangeFault(p) => bytes_of(&Record { header, payload: p }),
            Body::SystemMigration(p) => bytes_of(&Record { header, payload: p }),
            Body::Lost(p) => bytes_of(&Record { header, payload: p }),
        }
    }
}

/// Reads a `T` from the start of `bytes`. Only used with the wire structs, which are
/// `repr(C)` integers with explicit padding, so any bit pattern is a valid value.
fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked above; read_unaligned copes with the ring's 8-byte alignment or
    // none; T is one of the plain-integer wire structs (see above).
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

fn payload<P: Copy>(bytes: &[u8]) -> Option<P> {
    read(&bytes[std::mem::size_of::<EventHeader>()..])
}

fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: the wire structs have no implicit padding (their sizes are pinned in
    // hmmtrace-common), so every byte is initialised.
    unsafe {
        std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>())
    }
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_every_kind() {
        let bodies = [
            Body::Migration(Migration {
                start: 0x1000,
                end: 0x9000,
                npages: 8,
                cpages: 7,
                migrated: 6,
                select: 1,
                direction: 1,
                api: 1,
                ..Default::default()
            }),
            Body::DeviceFault(DeviceFault {
                address: 0x7f00_0000,
                result: 0x2,
                ..Default::default()
            }),
            Body::PageFree(PageFree {
                pfn: 12345,
                order: 0,
                memory_type: 1,
                ..Default::default()
            }),
            Body::Invalidation(Invalidation {
                start: 1,
                end: 2,
                owner: 3,
                event: 6,
                range_flags: 1,
                path: 1,
                _pad: 0,
            }),
            Body::RangeFault(RangeFault {
                start: 1,
                end: 2,
                npages: 1,
                retries: 3,
                result: -16,
                ..Default::default()
            }),
            Body::SystemMigration(SystemMigration {
                succeeded: 9,
                reason: 3,
                ..Default::default()
            }),
            Body::Lost(Lost {
                count: 7,
                probe: 2,
                _pad: 0,
            }),
        ];
        for body in bodies {
            let e = Event {
                ts_ns: 42,
                duration_ns: Some(7),
                cpu: 1,
                tgid: 10,
                pid: 11,
                comm: Comm::new("hmm-tests"),
                unknown: 0,
                body,
            };
            let wire = e.to_wire();
            assert_eq!(wire.len(), hmmtrace_common::record_size(e.kind()));
            // Records carry no task name: the kernel session names the task.
            let unnamed = Event {
                comm: Comm::default(),
                ..e
            };
            assert_eq!(Event::from_wire(&wire), Some(unnamed));
        }
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        let e = Event {
            ts_ns: 1,
            duration_ns: None,
            cpu: 0,
            tgid: 1,
            pid: 1,
            comm: Comm::new("x"),
            unknown: 0,
            body: Body::Lost(Lost::default()),
        };
        let mut wire = e.to_wire();
        assert!(Event::from_wire(&wire[..wire.len() - 1]).is_none());
        wire[std::mem::offset_of!(EventHeader, kind)] = 99;
        assert!(Event::from_wire(&wire).is_none());
    }

    #[test]
    fn comm_truncates_like_the_kernel() {
        assert_eq!(
            Comm::new("a-very-long-process-name").to_string(),
            "a-very-long-pro"
        );
    }
}
