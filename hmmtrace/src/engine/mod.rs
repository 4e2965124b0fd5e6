//! The reference userspace HMM engine: a model of the kernel's HMM semantics that yields the same
//! `Event` stream the kernel probes would for the same workload. It is the `demo` source (no root,
//! no GPU) and the oracle kernel captures are checked against.
//!
//! What it models, after `mm/migrate_device.c`, `mm/hmm.c`, `mm/mmu_notifier.c` and
//! `lib/test_hmm.c` of Linux 6.12:
//! - address spaces: VMAs and PTEs that hold a system page, a device-private entry or a
//!   device-exclusive entry; fork with copy-on-write, munmap, mprotect, exit ([`mm`]);
//! - devices with a finite pool of device-private (or device-coherent) pages and a pgmap owner;
//!   the driver's `page_free` runs when a device page's last reference drops;
//! - `migrate_vma_setup/pages/finalize` with collect, pin check, unmap and copy, and eviction
//!   through `migrate_device_range` when a device runs out of pages ([`migrate`]);
//! - CPU faults on device-private entries, serviced by the owning device's `migrate_to_ram`;
//! - mmu interval notifiers with sequence numbers, their invalidations, and `hmm_range_fault`
//!   with `-EBUSY` retries when an invalidation races with it ([`mirror`]).
//!
//! Migration entries exist only inside one `migrate_vma` call here: the engine is single
//! threaded, and races are explicit scenario inputs (`busy`, `racing`), not timing accidents.
//! Deterministic for a seed; durations come from [`cost`].

pub mod cost;
mod migrate;
mod mirror;
mod mm;
mod pages;
mod table;

use std::collections::VecDeque;

/// The engine's few maps are keyed by small integers it made up itself (tgids): no untrusted
/// keys, so a fast non-cryptographic hash (Fx) instead of SipHash. Per-page state lives in
/// [`table::Sparse`] arrays and [`pages::Pages`], not in hash maps.
pub(crate) type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;

use hmmtrace_common::{MEMORY_DEVICE_COHERENT, MEMORY_DEVICE_PRIVATE};

use crate::event::{Body, Comm, Event};
use cost::Clock;
pub use cost::CostModel;
pub use migrate::MigrateOutcome;
pub use mirror::Race;
use mm::Process;
pub use mm::Prot;
pub use pages::MAX_DEVICES;
use pages::{PageId, Pages};
use table::Sparse;

/// A process id in the engine (it is also the thread id: processes are single threaded).
pub type Tgid = u32;

/// Index of a device in the engine.
pub type DevId = usize;

/// `dev_pagemap.type` of a device's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// `MEMORY_DEVICE_PRIVATE`: not CPU addressable; CPU access faults to `migrate_to_ram`.
    Private,
    /// `MEMORY_DEVICE_COHERENT`: CPU addressable; mapped with ordinary PTEs.
    Coherent,
}

impl DeviceKind {
    pub fn memory_type(self) -> u32 {
        match self {
            DeviceKind::Private => MEMORY_DEVICE_PRIVATE,
            DeviceKind::Coherent => MEMORY_DEVICE_COHERENT,
        }
    }
}

/// An HMM device: a pool of device pages, its pgmap owner, and a mirror of the CPU page tables
/// of the processes that opened it (test_hmm's `dmirror` page table).
pub(crate) struct Device {
    pub name: String,
    pub kind: DeviceKind,
    /// The pgmap owner cookie. Engine devices use small numbers, documented in the capture
    /// header's device table; they are not kernel pointers.
    pub owner: u64,
    /// First pfn of the device's memory.
    pub base_pfn: u64,
    pub capacity: u64,
    /// Free device pfns, offsets from `base_pfn`.
    pub free: FreePfns,
    /// Pages in use, oldest use first; entries whose stamp no longer matches are stale (and
    /// dropped when they outnumber the live ones, so the queue stays within twice the pages
    /// in use).
    pub lru: VecDeque<(PageId, u32)>,
    /// Pages evicted together, aligned (like test_hmm's chunks).
    pub evict_chunk: u64,
    /// Mirrored virtual pages per process: what `hmm_range_fault` filled in and invalidations clear.
    pub mirror: HashMap<Tgid, Sparse<()>>,
    /// Device pfn offset → page, for `migrate_device_range`.
    pub by_pfn: Sparse<PageId>,
    /// The driver's file release evicts all of its memory with one `migrate_device_range`
    /// (test_hmm's `dmirror_fops_release` does, per chunk).
    pub evict_on_release: bool,
    /// Injected driver bugs.
    pub bugs: DriverBugs,
}

/// A device's free pfns (offsets from `base_pfn`), handed out as a stack that starts full with
/// the lowest pfn on top: freed pfns are reused last-freed first, then the never-used ones in
/// ascending order. Never-used pfns are a counter, not a list, so a device of 2^32 pages costs
/// nothing until it is used.
pub(crate) struct FreePfns {
    returned: Vec<u32>,
    fresh: u64,
    capacity: u64,
}

impl FreePfns {
    fn new(capacity: u64) -> FreePfns {
        FreePfns {
            returned: Vec::new(),
            fresh: 0,
            capacity,
        }
    }

    pub fn pop(&mut self) -> Option<u64> {
        if let Some(pfn) = self.returned.pop() {
            return Some(pfn as u64);
        }
        (self.fresh < self.capacity).then(|| {
            self.fresh += 1;
            self.fresh - 1
        })
    }

    pub fn push(&mut self, pfn: u64) {
        self.returned.push(pfn as u32);
    }

    pub fn len(&self) -> u64 {
        self.returned.len() as u64 + (self.capacity - self.fresh)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A driver that breaks HMM's contract, for the detectors to find (scenario files set these
/// per `[[device]]`). All off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverBugs {
    /// `migrate_to_ram` returns this `vm_fault_t` without migrating (0: it works). The engine
    /// carries on as if the process survived the signal.
    pub fault_result: u32,
    /// The driver keeps a reference to every page it receives: `page_free` never runs.
    pub leaks_pages: bool,
    /// Extra time the driver's `invalidate` callback takes, ns.
    pub invalidate_ns: u64,
    /// Migrations to the device stop after `migrate_vma_setup` (the collected pages are put
    /// back, which the kernel would not do: the engine keeps running).
    pub abandons_migrations: bool,
}

/// An `mmu_interval_notifier` a device registered on a process (all of its address space, as
/// test_hmm does).
pub(crate) struct Notifier {
    pub dev: DevId,
    pub tgid: Tgid,
    /// `invalidate_seq`: bumped by every invalidation the callback does not skip.
    pub seq: u64,
}

/// Why an operation could not run: the scenario asked for something the kernel would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    NoSuchProcess(Tgid),
    /// Access outside any VMA, or a write to a read-only one (SIGSEGV in the kernel).
    Segv {
        tgid: Tgid,
        addr: u64,
    },
    /// The device never opened this process (no notifier), so it cannot mirror it.
    NotOpened {
        device: String,
        tgid: Tgid,
    },
    /// The range is not inside one VMA (`migrate_vma_setup` returns -EINVAL).
    BadRange {
        tgid: Tgid,
        addr: u64,
        npages: u64,
    },
    /// `hmm_range_fault` kept returning -EBUSY past the driver's timeout.
    Busy,
    /// A CPU access would make more pages live than the engine models ([`MAX_LIVE_PAGES`]).
    TooManyPages {
        limit: u64,
    },
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::NoSuchProcess(t) => write!(f, "process {t} does not exist (exited?)"),
            EngineError::Segv { tgid, addr } => {
                write!(f, "process {tgid}: access at {addr:#x} is outside its mappings or not permitted (SIGSEGV)")
            }
            EngineError::NotOpened { device, tgid } => {
                write!(
                    f,
                    "device {device} has not opened process {tgid}: add an `open` step first"
                )
            }
            EngineError::BadRange { tgid, addr, npages } => {
                write!(f, "process {tgid}: {npages} pages at {addr:#x} are not inside one mapping (-EINVAL)")
            }
            EngineError::Busy => write!(f, "hmm_range_fault kept returning -EBUSY (timeout)"),
            EngineError::TooManyPages { limit } => write!(
                f,
                "the scenario touches more than {limit} pages at once, the most the engine models (about {:.1} GiB of its memory at ~60 bytes a page): touch fewer pages, or unmap some first",
                (limit * 60) as f64 / f64::from(1 << 30)
            ),
        }
    }
}

impl std::error::Error for EngineError {}

pub type Result<T> = std::result::Result<T, EngineError>;

/// The engine's page size: 4 KiB, as on x86-64 and 4K-page arm64.
pub const PAGE_SIZE: u64 = 4096;

/// The most pages (system and device) live at once: 2^25, 128 GiB of modelled memory, about
/// 2 GiB of the engine's own (measured: 2^26 pages written and migrated to a device took 3.8
/// GB, about 60 bytes a page), so that a scenario at every limit runs within a 4 GiB address
/// space (`tests/limits.rs`). Memory grows with the pages a scenario touches, not those it
/// declares, so a scenario may declare far more (devices of 2^32 pages, mappings of 2^36);
/// touching past this is refused ([`EngineError::TooManyPages`]) rather than left to abort
/// the process when memory runs out.
pub const MAX_LIVE_PAGES: u64 = 1 << 25;

/// Where the engine's events go: a queue the caller drains, or a sink called as each event
/// happens (so a step that frees millions of pages never holds millions of events).
enum Out<'s> {
    Queue(Vec<Event>),
    Sink {
        sink: &'s mut dyn FnMut(&Event) -> anyhow::Result<()>,
        /// The sink's first error; later events are dropped.
        failed: Option<anyhow::Error>,
    },
}

/// The engine. Operations append the events they cause to an internal queue (take them with
/// [`Engine::drain`]) or hand them to a sink ([`Engine::with_sink`]).
pub struct Engine<'s> {
    pub(crate) clock: Clock,
    pub(crate) page_size: u64,
    pub(crate) ncpus: u32,
    pub(crate) procs: HashMap<Tgid, Process>,
    pub(crate) next_tgid: Tgid,
    pub(crate) devices: Vec<Device>,
    pub(crate) notifiers: Vec<Notifier>,
    pub(crate) pages: Pages,
    pub(crate) next_stamp: u32,
    /// The task whose context an operation runs in (for event headers).
    pub(crate) current: Tgid,
    /// See [`MAX_LIVE_PAGES`].
    pub(crate) page_limit: u64,
    out: Out<'s>,
    emitted: u64,
    /// Vectors a migration fills and empties, kept between calls so that none allocates per
    /// call (taken while in use: a nested call finds them empty and makes its own).
    pub(crate) scratch: migrate::Scratch,
    /// The last task an event was emitted for, its name and its cpu, so that a run of events
    /// of one task looks its process up once (the lookup was 2.7 % of the engine's samples).
    /// Forgotten when a process is made or goes; a task's name never changes here.
    pub(crate) comm_of: Option<(Tgid, Comm, u32)>,
}

/// What was migrated and what was not, in total, since the engine started (for tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub system_pages: u64,
    pub device_pages: u64,
}

impl Engine<'static> {
    pub fn new(cost: CostModel, seed: u64) -> Engine<'static> {
        Engine::with_out(cost, seed, Out::Queue(Vec::new()))
    }
}

impl<'s> Engine<'s> {
    /// An engine that hands each event to `sink` as it happens. A sink's error stops the
    /// deliveries; [`Engine::sink_error`] takes it.
    pub fn with_sink(
        cost: CostModel,
        seed: u64,
        sink: &'s mut dyn FnMut(&Event) -> anyhow::Result<()>,
    ) -> Engine<'s> {
        Engine::with_out(cost, seed, Out::Sink { sink, failed: None })
    }

    fn with_out(cost: CostModel, seed: u64, out: Out<'s>) -> Engine<'s> {
        Engine {
            clock: Clock::new(cost, seed),
            page_size: PAGE_SIZE,
            ncpus: 2,
            procs: HashMap::default(),
            next_tgid: 1000,
            devices: Vec::new(),
            notifiers: Vec::new(),
            pages: Pages::default(),
            next_stamp: 1,
            current: 0,
            page_limit: MAX_LIVE_PAGES,
            out,
            emitted: 0,
            scratch: migrate::Scratch::default(),
            comm_of: None,
        }
    }

    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.now()
    }

    /// Lets simulated time pass with nothing happening.
    pub fn idle(&mut self, ns: u64) {
        self.clock.idle(ns);
    }

    /// Takes the events produced so far, in the order the kernel would submit them (exit
    /// order); none when they go to a sink.
    pub fn drain(&mut self) -> impl Iterator<Item = Event> + '_ {
        match &mut self.out {
            Out::Queue(q) => Some(q.drain(..)),
            Out::Sink { .. } => None,
        }
        .into_iter()
        .flatten()
    }

    /// The error a sink returned, once.
    pub fn sink_error(&mut self) -> Option<anyhow::Error> {
        match &mut self.out {
            Out::Queue(_) => None,
            Out::Sink { failed, .. } => failed.take(),
        }
    }

    /// Whether a sink has returned an error.
    pub fn sink_failed(&self) -> bool {
        matches!(
            self.out,
            Out::Sink {
                failed: Some(_),
                ..
            }
        )
    }

    /// Events emitted so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Adds a device with `pages` (at most 2^32) pages of memory. Its pgmap owner is
    /// `index + 1`. At most [`MAX_DEVICES`].
    pub fn add_device(
        &mut self,
        name: &str,
        kind: DeviceKind,
        pages: u64,
        evict_chunk: u64,
    ) -> DevId {
        let id = self.devices.len();
        assert!(
            id < MAX_DEVICES && pages <= 1 << 32,
            "the scenario validator bounds these"
        );
        // Device pfns sit far above any system pfn, as ZONE_DEVICE ranges do: 2^28-pfn slots,
        // as many as a device needs so that ranges never overlap.
        const SLOT: u64 = 0x1000_0000;
        let base_pfn = self.devices.last().map_or(0x1_0000_0000, |d| {
            d.base_pfn + d.capacity.div_ceil(SLOT).max(1) * SLOT
        });
        self.devices.push(Device {
            name: name.to_string(),
            kind,
            owner: id as u64 + 1,
            base_pfn,
            capacity: pages,
            free: FreePfns::new(pages),
            lru: VecDeque::new(),
            evict_chunk: evict_chunk.max(1),
            mirror: HashMap::default(),
            by_pfn: Sparse::default(),
            evict_on_release: false,
            bugs: DriverBugs::default(),
        });
        id
    }

    /// Refuses at once an operation on more pages than may ever be live (it would fail
    /// part-way, after seconds of work).
    pub(crate) fn within_limit(&self, npages: u64) -> Result<()> {
        if npages > self.page_limit {
            return Err(EngineError::TooManyPages {
                limit: self.page_limit,
            });
        }
        Ok(())
    }

    /// Lowers the live-page limit (tests: reaching [`MAX_LIVE_PAGES`] takes seconds).
    pub fn set_page_limit(&mut self, limit: u64) {
        self.page_limit = limit.min(MAX_LIVE_PAGES);
    }

    /// See [`DriverBugs`].
    pub fn set_bugs(&mut self, dev: DevId, bugs: DriverBugs) {
        self.devices[dev].bugs = bugs;
    }

    /// See [`Device::evict_on_release`].
    pub fn set_evict_on_release(&mut self, dev: DevId, on: bool) {
        self.devices[dev].evict_on_release = on;
    }

    /// Names and owners of the devices, for the capture header's device table.
    pub fn device_table(&self) -> Vec<(u64, String, DeviceKind)> {
        self.devices
            .iter()
            .map(|d| (d.owner, d.name.clone(), d.kind))
            .collect()
    }

    pub fn device_free_pages(&self, dev: DevId) -> u64 {
        self.devices[dev].free.len()
    }

    /// Pages the device currently mirrors for `tgid`.
    pub fn mirrored_pages(&self, dev: DevId, tgid: Tgid) -> usize {
        self.devices[dev]
            .mirror
            .get(&tgid)
            .map_or(0, |s| s.len() as usize)
    }

    /// The current `invalidate_seq` of the device's notifier on `tgid`.
    pub fn notifier_seq(&self, dev: DevId, tgid: Tgid) -> Option<u64> {
        self.notifiers
            .iter()
            .find(|n| n.dev == dev && n.tgid == tgid)
            .map(|n| n.seq)
    }

    /// Pages currently allocated (system and device): for leak checks in tests.
    pub fn live_pages(&self) -> Totals {
        let mut t = Totals::default();
        for p in self.pages.live() {
            match p.frame() {
                pages::Frame::System => t.system_pages += 1,
                pages::Frame::Device { .. } => t.device_pages += 1,
            }
        }
        t
    }

    /// Appends an event for the current task.
    #[inline(always)]
    pub(crate) fn emit(&mut self, ts_ns: u64, duration_ns: Option<u64>, body: Body) {
        self.emit_partial(ts_ns, duration_ns, body, 0);
    }

    /// Appends an event whose `unknown` fields the probe could not fill in.
    #[inline(always)]
    pub(crate) fn emit_partial(
        &mut self,
        ts_ns: u64,
        duration_ns: Option<u64>,
        body: Body,
        unknown: u32,
    ) {
        let tgid = self.current;
        let (comm, cpu) = match self.comm_of {
            Some((t, comm, cpu)) if t == tgid => (comm, cpu),
            _ => {
                let comm = self
                    .procs
                    .get(&tgid)
                    .map(|p| p.comm)
                    .unwrap_or_else(|| Comm::new("kworker"));
                let cpu = tgid % self.ncpus;
                self.comm_of = Some((tgid, comm, cpu));
                (comm, cpu)
            }
        };
        let e = Event {
            ts_ns,
            duration_ns,
            cpu,
            tgid,
            pid: tgid,
            comm,
            unknown,
            body,
        };
        self.emitted += 1;
        match &mut self.out {
            Out::Queue(q) => q.push(e),
            Out::Sink { sink, failed } => {
                if failed.is_none() {
                    if let Err(err) = sink(&e) {
                        *failed = Some(err);
                    }
                }
            }
        }
    }

    /// A new LRU stamp. Stamps wrap at 2^32 (never 0, the stamp of a page never queued): a
    /// stale queue entry could only match again after 2^32 stamps, and the queue is trimmed
    /// long before it holds that many.
    pub(crate) fn stamp(&mut self) -> u32 {
        self.next_stamp = self.next_stamp.wrapping_add(1).max(1);
        self.next_stamp
    }
}

#[cfg(test)]
mod tests;
