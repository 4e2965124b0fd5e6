//! A live tracing session: the loaded object, its attached programs, and the reader of its ring
//! buffer and drop counters. Dropping the session detaches and unloads everything (aya closes
//! the links, programs and maps with their file descriptors).
//!
//! The kernel's facts (kallsyms, tracefs, BTF) are read once, by [`KernelFacts::from_system`],
//! and everything here takes them from there. An EPERM or EACCES anywhere on the way (tracefs,
//! map creation, program load, attach) becomes a [`crate::error::NoPrivilege`] that names the
//! capabilities this process lacks.

use anyhow::{bail, Context as _};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::TracePoint;
use aya::{Ebpf, EbpfLoader};
use hmmtrace_common::agg::{
    AggCounts, AggKey, CountSlot, HistKey, HistSlot, Histogram, COUNT_SLOTS, HIST_SLOTS,
};
use hmmtrace_common::offsets::{
    ForkOffsets, KernelOffsets, MigrateVmaOffsets, RenameOffsets, Settings, UNKNOWN,
};
use hmmtrace_common::{Invalidation, Lost, ProbeId, PROBE_COUNT};

use super::btf::Btf;
use super::plan::{self, ExtraAttach, KernelFacts, MechanismChoice, PlanEntry, Status};
use super::{attach, diagnostics, monotonic_ns, privilege, tracefs, EBPF_OBJECT};
use crate::event::{Body, Comm, Event};
use crate::pipeline::ProgramCost;

/// What to trace and how.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Ring buffer size in bytes: a power of two, a multiple of the page size.
    pub ring_bytes: u32,
    /// Only these processes and their descendants (empty: all).
    pub tgids: Vec<u32>,
    /// Only tasks with this `comm` (at most 15 bytes).
    pub comm: Option<String>,
    /// Wake the reader once this many bytes wait (see `Settings::wakeup_bytes`).
    pub wakeup_bytes: u64,
    /// `--mechanism`.
    pub mechanism: MechanismChoice,
    /// `--attach FUNC=ROLE`.
    pub extra: Vec<ExtraAttach>,
    /// `--ebpf-log`: the programs' own diagnostics (compiled out by the verifier when off).
    pub ebpf_log: bool,
    /// Benchmarks only: attach nothing but the ring-buffer stress program on
    /// `syscalls:sys_enter_getppid` (see hmmtrace-ebpf's `stress` module).
    pub stress: bool,
    /// `--aggregate`: per-CPU counts and histograms in the kernel instead of a record per
    /// event (see `hmmtrace_common::agg`); read with [`Session::aggregates`].
    pub aggregate: bool,
    /// Plan the known drivers' callbacks from the table (`--no-driver-table` clears it: then
    /// only discovery and `--attach` find them).
    pub driver_table: bool,
    /// `hmmtrace census`: count calls to these functions per caller (see `crate::census`).
    pub census: Vec<String>,
    /// Tests only: name tasks as on a kernel whose fork or rename tracepoint lacks the fields
    /// (`Settings::comm_in_records`), so that path is checked on kernels that have them.
    pub comm_per_event: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            ring_bytes: 4 << 20,
            tgids: Vec::new(),
            comm: None,
            wakeup_bytes: Settings::DEFAULT.wakeup_bytes,
            mechanism: MechanismChoice::Auto,
            extra: Vec::new(),
            ebpf_log: false,
            stress: false,
            aggregate: false,
            driver_table: true,
            census: Vec::new(),
            comm_per_event: false,
        }
    }
}

pub struct Session {
    // Kept alive: dropping it detaches the programs.
    ebpf: Ebpf,
    ring: RingBuf<MapData>,
    drops: PerCpuArray<MapData, u64>,
    /// Drop counts already reported, per probe.
    reported: [u64; PROBE_COUNT as usize],
    /// Records that did not decode (unknown kind or size): a bug, counted not hidden.
    pub malformed: u64,
    /// The attach plan, with each row's outcome.
    pub plan: Vec<PlanEntry>,
    /// What the kernel said about itself.
    pub facts: KernelFacts,
    /// This kernel's `MMU_NOTIFY_*` values (from BTF) → hmmtrace's (`hmmtrace_common`).
    notify: Vec<(u32, u32)>,
    /// The programs' diagnostics, with `--ebpf-log`.
    logs: Option<diagnostics::Reader>,
    /// Task names: records carry none (see [`super::names`]).
    names: super::names::Names,
    /// With `--aggregate`: the programs' aggregate maps.
    aggregates: Option<Aggregates>,
    /// The kprobe links of each plan row attached by kprobe, by (role, function): what
    /// detaching one module's callbacks takes.
    links: std::collections::HashMap<(plan::Role, String), Vec<attach::Link>>,
    /// aya's copy of the kernel's BTF, for fentry; parsed when a row first needs it.
    aya_btf: Option<aya::Btf>,
    /// The modules loaded when last looked ([`Session::watch_modules`]).
    modules: super::modules::Loaded,
    /// `--mechanism` and `--attach`, for rows planned later.
    choice: MechanismChoice,
    extra: Vec<ExtraAttach>,
    /// `--no-driver-table`: drivers' callbacks only as discovered.
    driver_table: bool,
    /// Pagemap ops the programs reported (`OPS_RECORD`) and [`Session::discover`] has yet to
    /// look at.
    pending_ops: Vec<hmmtrace_common::PagemapOpsSeen>,
    /// Census functions the kernel would not let the census probe attach to, and why.
    pub census_refused: Vec<String>,
}

struct Aggregates {
    counts: aya::maps::PerCpuHashMap<MapData, AggKey, AggCounts>,
    hists: aya::maps::PerCpuHashMap<MapData, HistKey, Histogram>,
    /// The direct-mapped slots in front of the two maps (`hmmtrace_common::agg`).
    count_slots: PerCpuArray<MapData, CountSlot>,
    hist_slots: PerCpuArray<MapData, HistSlot>,
}

impl Session {
    /// Reads the kernel's facts, loads the object with its globals filled and attaches every
    /// row of the plan it can.
    pub fn start(opts: &SessionOptions) -> anyhow::Result<Session> {
        if !opts.ring_bytes.is_power_of_two() || opts.ring_bytes < 4096 {
            bail!(
                "the ring buffer size must be a power of two of at least 4096 bytes, not {}",
                opts.ring_bytes
            );
        }
        if EBPF_OBJECT.is_empty() {
            bail!(
                "this hmmtrace was built without its `ebpf` feature: it has no eBPF programs to load"
            );
        }
        let tracefs = tracefs::root().map_err(|e| privilege::classify("reading tracefs", e))?;
        // Before kallsyms: a module loaded in between is then seen as new, never missed.
        let modules = super::modules::Loaded::read();
        let facts = KernelFacts::from_system(&tracefs)?;
        let mut plan = plan::resolve(&facts, opts.mechanism, &opts.extra);
        if !opts.driver_table {
            plan.retain(|r| !(r.role.is_driver_callback() && r.found.is_table()));
        }
        let (mut ebpf, missing, named_by_records) = load(opts, &tracefs, &facts)?;
        let logs = if opts.ebpf_log {
            Some(diagnostics::Reader::init(&mut ebpf)?)
        } else {
            None
        };
        if opts.stress {
            plan.clear();
        }
        // aya parses BTF again for itself; only fentry needs it, so only then.
        let aya_btf = plan
            .iter()
            .any(|r| r.mechanisms.contains(&plan::Mechanism::Fentry))
            .then(|| aya::Btf::from_sys_fs().ok())
            .flatten();
        let mut links = std::collections::HashMap::new();
        for row in &mut plan {
            let made = attach::attach_row(&mut ebpf, aya_btf.as_ref(), row, None);
            if !made.is_empty() {
                links.insert((row.role, row.symbol.clone()), made);
            }
            if let Status::Denied(refusals) = &row.status {
                // Refused for lack of a capability we could have: say so, exit 3. (Root can be
                // refused too, e.g. fentry under lockdown: then the row just says denied.)
                let doing = format!("attaching {} to {}", row.role.name(), row.symbol);
                if let Some(e) = refusals
                    .iter()
                    .find_map(|r| privilege::classify_errno(&doing, r.errno))
                {
                    return Err(e);
                }
            }
            let lacking: Vec<String> = missing
                .iter()
                .filter(|f| reads(row.role, f))
                .cloned()
                .collect();
            if let (Status::Attached(mechanism), false) = (&row.status, lacking.is_empty()) {
                row.status = Status::OffsetsUnknown {
                    mechanism: Some(*mechanism),
                    fields: lacking,
                };
            }
        }
        if !opts.tgids.is_empty() {
            follow_children(&mut ebpf, &opts.tgids)
                .map_err(|e| privilege::classify("following the traced processes' children", e))?;
        }
        if named_by_records {
            name_tasks(&mut ebpf, opts.tgids.is_empty())
                .map_err(|e| privilege::classify("naming tasks (fork and rename)", e))?;
        }
        if opts.stress {
            let tp: &mut TracePoint = ebpf
                .program_mut("ring_stress")
                .context("the eBPF object has no ring_stress program")?
                .try_into()?;
            tp.load()
                .and_then(|()| tp.attach("syscalls", "sys_enter_getppid").map(drop))
                .map_err(|e| privilege::classify("attaching the ring stress program", e.into()))?;
        }
        let census_refused = attach_census(&mut ebpf, &opts.census)?;
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("no EVENTS map")?)?;
        let drops = PerCpuArray::try_from(ebpf.take_map("DROPS").context("no DROPS map")?)?;
        let notify = notify_map(facts.btf.as_deref());
        let aggregates = match opts.aggregate {
            true => Some(Aggregates {
                counts: aya::maps::PerCpuHashMap::try_from(
                    ebpf.take_map("AGG_COUNTS").context("no AGG_COUNTS map")?,
                )?,
                hists: aya::maps::PerCpuHashMap::try_from(
                    ebpf.take_map("AGG_HIST").context("no AGG_HIST map")?,
                )?,
                count_slots: PerCpuArray::try_from(
                    ebpf.take_map("AGG_COUNT_SLOTS")
                        .context("no AGG_COUNT_SLOTS map")?,
                )?,
                hist_slots: PerCpuArray::try_from(
                    ebpf.take_map("AGG_HIST_SLOTS")
                        .context("no AGG_HIST_SLOTS map")?,
                )?,
            }),
            false => None,
        };
        Ok(Session {
            ebpf,
            ring,
            drops,
            reported: [0; PROBE_COUNT as usize],
            malformed: 0,
            plan,
            facts,
            notify,
            logs,
            aggregates,
            links,
            aya_btf,
            modules,
            choice: opts.mechanism,
            extra: opts.extra.clone(),
            driver_table: opts.driver_table,
            pending_ops: Vec::new(),
            census_refused,
            names: {
                let mut names = super::names::Names::default();
                // After the announcing programs are attached: nothing falls between. Without
                // them the programs name each task before its first record on a cpu.
                if named_by_records {
                    names.scan();
                }
                names
            },
        })
    }

    /// Hands every record waiting in the ring to `f`, then a `Lost` event per probe whose drop
    /// counter grew. Returns how many events were delivered.
    pub fn drain(
        &mut self,
        f: &mut dyn FnMut(&Event) -> anyhow::Result<()>,
    ) -> anyhow::Result<u64> {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            if let Some(seen) = ops_seen(&item) {
                self.pending_ops.push(seen);
                continue;
            }
            if let Some(task) = task_name(&item) {
                self.names.set(task.pid, Comm(task.comm));
                continue;
            }
            match Event::from_wire(&item) {
                Some(mut e) => {
                    e.comm = self.names.name(e.tgid, e.pid);
                    if let Body::Invalidation(inv) = &mut e.body {
                        // Records carry the kernel's own enum value; events carry hmmtrace's.
                        match self.notify.iter().find(|(k, _)| *k == inv.event) {
                            Some((_, ours)) => inv.event = *ours,
                            None if !self.notify.is_empty() => {
                                e.unknown |= Invalidation::FIELD_EVENT
                            }
                            None => {}
                        }
                    }
                    n += 1;
                    f(&e)?;
                }
                None => self.malformed += 1,
            }
        }
        for probe in ProbeId::ALL {
            let total: u64 = self.drops.get(&(probe as u32), 0)?.iter().sum();
            let new = total - self.reported[probe as usize];
            if new > 0 {
                self.reported[probe as usize] = total;
                n += 1;
                f(&lost_event(probe, new))?;
            }
        }
        Ok(n)
    }

    /// Whether the programs aggregate (`--aggregate`) rather than send each event.
    pub fn aggregating(&self) -> bool {
        self.aggregates.is_some()
    }

    /// With `--aggregate`: the aggregates as of now (summed over CPUs, cumulative since the
    /// start), on the events' clock; `None` without.
    pub fn aggregates(&mut self) -> anyhow::Result<Option<crate::aggregate::Snapshot>> {
        use crate::aggregate::{Group, Hist, Snapshot};
        let Some(a) = &self.aggregates else {
            return Ok(None);
        };
        let mut snap = Snapshot {
            at_ns: super::monotonic_ns(),
            ..Snapshot::default()
        };
        // A group's figures are in its slot on the CPUs where it had the slot, and in the
        // hash map on the others: summed by key.
        let mut counts: std::collections::BTreeMap<AggKey, Vec<AggCounts>> = Default::default();
        for item in a.counts.iter() {
            let (k, per_cpu) = item.context("cannot read the aggregate counts")?;
            counts.entry(k).or_default().extend(per_cpu.iter().copied());
        }
        for i in 0..a.count_slots.len() {
            let per_cpu = a
                .count_slots
                .get(&i, 0)
                .context("cannot read the aggregate count slots")?;
            for s in per_cpu.iter().filter(|s| s.counts.count > 0) {
                counts.entry(s.key).or_default().push(s.counts);
            }
        }
        for (k, per_cpu) in counts {
            let Some(class) = agg_class(k.class) else {
                continue;
            };
            let comm = self.names.name(k.tgid, k.tgid).to_string();
            let mut g = Group::new(class, k.owner, k.tgid, comm, k.direction, k.api);
            for c in &per_cpu {
                g.add(c);
            }
            snap.groups.push(g);
        }
        let mut hists: std::collections::BTreeMap<HistKey, Vec<u64>> = Default::default();
        let mut add_hist = |k: HistKey, h: &Histogram| {
            let sum = hists
                .entry(k)
                .or_insert_with(|| vec![0u64; hmmtrace_common::agg::BUCKETS]);
            for (s, n) in sum.iter_mut().zip(h.iter()) {
                *s += u64::from(*n);
            }
        };
        for item in a.hists.iter() {
            let (k, per_cpu) = item.context("cannot read the aggregate histograms")?;
            for h in per_cpu.iter() {
                add_hist(k, h);
            }
        }
        for i in 0..a.hist_slots.len() {
            let per_cpu = a
                .hist_slots
                .get(&i, 0)
                .context("cannot read the aggregate histogram slots")?;
            for s in per_cpu.iter().filter(|s| s.used != 0) {
                add_hist(s.key, &s.hist);
            }
        }
        for (k, sum) in hists {
            let Some(class) = agg_class(k.class) else {
                continue;
            };
            let buckets = sum
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (i as u32, *n))
                .collect();
            snap.histograms.push(Hist {
                class,
                owner: k.owner,
                buckets,
            });
        }
        // A stable order, whatever the map's.
        snap.groups
            .sort_by_key(|g| (g.class, g.owner, g.tgid, g.direction, g.api));
        snap.histograms.sort_by_key(|h| (h.class, h.owner));
        Ok(Some(snap))
    }

    /// The programs' diagnostics since the last call (empty without `--ebpf-log`).
    pub fn diagnostics(&mut self) -> Vec<diagnostics::Diagnostic> {
        self.logs
            .as_mut()
            .map(diagnostics::Reader::drain)
            .unwrap_or_default()
    }

    /// The ring buffer's file descriptor, for waiting on it with epoll.
    pub fn ring_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd as _;
        self.ring.as_fd()
    }

    /// Follows module loads and unloads since the last call: detaches the rows of modules that
    /// went (their status becomes `Unloaded`), plans and attaches the callbacks of modules that
    /// came (the known drivers' and `--attach` ones). Returns what changed, one line each;
    /// empty when nothing did.
    pub fn watch_modules(&mut self) -> anyhow::Result<Vec<String>> {
        let now = super::modules::Loaded::read();
        let (gone, came) = self.modules.diff(&now);
        if gone.is_empty() && came.is_empty() {
            return Ok(Vec::new());
        }
        self.modules = now;
        let mut changes = Vec::new();
        let mut forget = Vec::new();
        for module in &gone {
            for row in &mut self.plan {
                if &row.module != module {
                    continue;
                }
                // Found again if the module comes back, whether it was attached or refused.
                if let crate::probe::Found::Discovered { ops, .. } = row.found {
                    forget.push(ops);
                }
                if !row.status.is_attached() {
                    continue;
                }
                if let Some(links) = self.links.remove(&(row.role, row.symbol.clone())) {
                    attach::detach(&mut self.ebpf, links);
                }
                row.status = Status::Unloaded;
                changes.push(format!(
                    "{module} unloaded: {} ({}) detached",
                    row.symbol,
                    row.role.name()
                ));
            }
            self.facts.functions.retain(|_, m| m != module);
        }
        self.forget_ops(&forget);
        if came.is_empty() {
            return Ok(changes);
        }
        let kallsyms =
            std::fs::read_to_string("/proc/kallsyms").context("cannot read /proc/kallsyms")?;
        for (name, module) in KernelFacts::parse_kallsyms(&kallsyms) {
            if came.contains(&module) {
                self.facts.functions.insert(name, module);
            }
        }
        for module in &came {
            for row in plan::resolve_module(&self.facts, self.choice, &self.extra, module) {
                if self.driver_table || !row.found.is_table() {
                    let line = self.add_row(row, None);
                    changes.push(format!("{module} loaded: {line}"));
                }
            }
        }
        Ok(changes)
    }

    /// Plans and attaches the callbacks of the pagemap ops the programs reported since the
    /// last call (callback discovery, see hmmtrace-ebpf's `discover`), where no row of the same
    /// role and function is attached yet. Returns what changed, one line each.
    pub fn discover(&mut self) -> anyhow::Result<Vec<String>> {
        if self.pending_ops.is_empty() {
            return Ok(Vec::new());
        }
        let pending = std::mem::take(&mut self.pending_ops);
        let kallsyms =
            std::fs::read_to_string("/proc/kallsyms").context("cannot read /proc/kallsyms")?;
        // Modules live now: the page that sent the ops may be from a module unloaded since.
        let live = super::modules::Loaded::read();
        let mut changes = Vec::new();
        let mut forget = Vec::new();
        for seen in pending {
            let ops_symbol = KernelFacts::symbol_at(&kallsyms, seen.ops, false)
                .map(|(name, _)| name)
                .unwrap_or_default();
            let found = crate::probe::Found::Discovered {
                ops: seen.ops,
                ops_symbol,
            };
            for (role, addr) in [
                (plan::Role::MigrateToRam, seen.migrate_to_ram),
                (plan::Role::PageFree, seen.page_free),
            ] {
                if addr == 0 {
                    continue;
                }
                let Some((name, module)) = KernelFacts::symbol_at(&kallsyms, addr, true) else {
                    changes.push(format!(
                        "{}: the {} callback at {addr:#x} is not in kallsyms: not attached",
                        found,
                        role.name()
                    ));
                    continue;
                };
                if self
                    .plan
                    .iter()
                    .any(|p| p.role == role && p.symbol == name && p.status.is_attached())
                {
                    continue;
                }
                // A module on its way out refuses new kprobes (ENOENT: the kernel cannot take
                // a reference on it), and the page that sent the ops may be from a module
                // unloaded since. Its ops are forgotten, so that a page freed after a reload
                // sends them again.
                let unloaded = |changes: &mut Vec<String>| {
                    changes.push(format!(
                        "{found}: {name} ({}) not attached: {module} was unloaded",
                        role.name()
                    ))
                };
                if !module.is_empty() && !live.contains(&module) {
                    forget.push(seen.ops);
                    unloaded(&mut changes);
                    continue;
                }
                self.facts
                    .functions
                    .entry(name.clone())
                    .or_insert(module.clone());
                let row = plan::discovered(&self.facts, self.choice, role, &name, found.clone());
                let place = if row.module.is_empty() {
                    "vmlinux".to_string()
                } else {
                    row.module.clone()
                };
                let line = self.add_row(row, Some(addr));
                let refused = self
                    .plan
                    .iter()
                    .any(|p| p.role == role && p.symbol == name && p.status.is_refused());
                if refused
                    && !module.is_empty()
                    && !super::modules::Loaded::read().contains(&module)
                {
                    // Unloaded while attaching: the row would blame the kernel for a race.
                    self.plan.retain(|p| !(p.role == role && p.symbol == name));
                    forget.push(seen.ops);
                    unloaded(&mut changes);
                    continue;
                }
                changes.push(format!("{found}: {line} [{place}]"));
            }
        }
        self.forget_ops(&forget);
        Ok(changes)
    }

    /// Lets the programs send these pagemap ops again: a module loaded again (often at the
    /// same address) has its callbacks discovered again, as the first time.
    fn forget_ops(&mut self, ops: &[u64]) {
        if ops.is_empty() {
            return;
        }
        if let Some(Ok(mut seen)) = self
            .ebpf
            .map_mut("OPS_SEEN")
            .map(aya::maps::HashMap::<_, u64, u8>::try_from)
        {
            for o in ops {
                // Absent already: a ring that was full let it go.
                let _ = seen.remove(o);
            }
        }
        if let Some(Ok(mut last)) = self
            .ebpf
            .map_mut("LAST_OPS")
            .map(aya::maps::Array::<_, u64>::try_from)
        {
            let _ = last.set(0, 0, 0);
        }
    }

    /// Attaches a row planned during the session: in place of an earlier row of the same role
    /// and function (a module loaded again), else added; says what happened (`FUNC (ROLE)
    /// STATUS`).
    fn add_row(&mut self, mut row: PlanEntry, at: Option<u64>) -> String {
        if self.aya_btf.is_none() && row.mechanisms.contains(&plan::Mechanism::Fentry) {
            self.aya_btf = aya::Btf::from_sys_fs().ok();
        }
        let made = attach::attach_row(&mut self.ebpf, self.aya_btf.as_ref(), &mut row, at);
        let line = format!("{} ({}) {}", row.symbol, row.role.name(), row.status);
        // The placeholder that said no driver of this role was loaded goes.
        self.plan.retain(|p| {
            !(p.role == row.role && p.status == Status::NotInKernel && p.symbol.starts_with('('))
        });
        if !made.is_empty() {
            self.links.insert((row.role, row.symbol.clone()), made);
        }
        match self
            .plan
            .iter_mut()
            .find(|p| p.role == row.role && p.symbol == row.symbol)
        {
            Some(p) => *p = row,
            None => self.plan.push(row),
        }
        line
    }

    /// The census probe's counts so far: (function address, return address, calls), summed
    /// over CPUs, and the calls it could not count.
    pub fn census_calls(&mut self) -> anyhow::Result<(crate::census::Calls, u64)> {
        use hmmtrace_common::CensusKey;
        let Some(map) = self.ebpf.map("CENSUS_CALLS") else {
            return Ok((Vec::new(), 0));
        };
        let calls: aya::maps::PerCpuHashMap<_, CensusKey, u64> =
            aya::maps::PerCpuHashMap::try_from(map)?;
        let mut out = Vec::new();
        for item in calls.iter() {
            let (k, per_cpu) = item.context("cannot read the census counts")?;
            out.push((k.func, k.caller, per_cpu.iter().sum()));
        }
        let uncounted = match self.ebpf.map("CENSUS_UNCOUNTED") {
            Some(m) => {
                let a: PerCpuArray<_, u64> = PerCpuArray::try_from(m)?;
                a.get(&0, 0)?.iter().sum()
            }
            None => 0,
        };
        Ok((out, uncounted))
    }

    /// Each loaded program's run count and run time so far (counted only while statistics are
    /// enabled, see [`enable_run_time_stats`]).
    pub fn program_costs(&self) -> Vec<ProgramCost> {
        let mut out: Vec<ProgramCost> = self
            .ebpf
            .programs()
            .filter_map(|(name, p)| {
                let info = p.info().ok()?;
                Some(ProgramCost {
                    name: name.to_string(),
                    run_cnt: info.run_count(),
                    run_time_ns: info.run_time().as_nanos() as u64,
                })
            })
            .collect();
        out.sort_by(|a, b| b.run_time_ns.cmp(&a.run_time_ns).then(a.name.cmp(&b.name)));
        out
    }
}

/// `hmmtrace_common::agg::CLASS_*` → the class.
fn agg_class(code: u8) -> Option<crate::event::Class> {
    use crate::event::Class;
    use hmmtrace_common::agg::*;
    Some(match code {
        CLASS_MIGRATION => Class::Migration,
        CLASS_DEVICE_FAULT => Class::DeviceFault,
        CLASS_PAGE_FREE => Class::PageFree,
        CLASS_INVALIDATION => Class::Invalidation,
        CLASS_INTERVAL_INVALIDATE => Class::IntervalInvalidate,
        CLASS_RANGE_FAULT => Class::RangeFault,
        CLASS_SYSTEM_MIGRATION => Class::SystemMigration,
        _ => return None,
    })
}

/// Attaches the census probe to each of `functions`; returns those refused, with why.
fn attach_census(ebpf: &mut Ebpf, functions: &[String]) -> anyhow::Result<Vec<String>> {
    if functions.is_empty() {
        return Ok(Vec::new());
    }
    if !std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        return Ok(vec![
            "all exports: the kernel has no kprobes (CONFIG_KPROBES)".to_string(),
        ]);
    }
    let p: &mut aya::programs::KProbe = ebpf
        .program_mut("kprobe_census")
        .context("the eBPF object has no kprobe_census program")?
        .try_into()?;
    p.load()
        .map_err(|e| privilege::classify("loading the census probe", e.into()))?;
    let mut refused = Vec::new();
    for f in functions {
        if let Err(e) = p.attach(f, 0) {
            refused.push(format!(
                "{f}: {}",
                std::io::Error::from_raw_os_error(attach::errno(&e))
            ));
        }
    }
    Ok(refused)
}

/// A pagemap-ops record's payload; `None` for any other record.
fn ops_seen(item: &[u8]) -> Option<hmmtrace_common::PagemapOpsSeen> {
    use hmmtrace_common::{EventHeader, PagemapOpsSeen, Record, OPS_RECORD};
    let kind = *item.get(std::mem::offset_of!(EventHeader, kind))?;
    if kind != OPS_RECORD || item.len() != std::mem::size_of::<Record<PagemapOpsSeen>>() {
        return None;
    }
    let p = &item[std::mem::size_of::<EventHeader>()..];
    let word = |i: usize| u64::from_ne_bytes(p[i * 8..i * 8 + 8].try_into().unwrap());
    Some(PagemapOpsSeen {
        ops: word(0),
        page_free: word(1),
        migrate_to_ram: word(2),
    })
}

/// A task-name record's payload; `None` for any other record.
fn task_name(item: &[u8]) -> Option<hmmtrace_common::TaskName> {
    use hmmtrace_common::{EventHeader, Record, TaskName, TASK_RECORD};
    let header_size = std::mem::size_of::<EventHeader>();

    let kind = *item.get(std::mem::offset_of!(EventHeader, kind))?;
    if kind != TASK_RECORD || item.len() != std::mem::size_of::<Record<TaskName>>() {
        return None;
    }
    let p = &item[header_size..];
    let mut comm = [0u8; 16];
    comm.copy_from_slice(&p[8..24]);
    Some(TaskName {
        pid: u32::from_ne_bytes(p[0..4].try_into().ok()?),
        _pad: 0,
        comm,
    })
}

/// Attaches the programs that name tasks: `task:task_rename`, and `sched:sched_process_fork`
/// unless following children attached it already.
fn name_tasks(ebpf: &mut Ebpf, attach_fork: bool) -> anyhow::Result<()> {
    if attach_fork {
        attach_fork_program(ebpf)?;
    }
    let rename: &mut TracePoint = ebpf
        .program_mut("task_rename")
        .context("the eBPF object has no task_rename program")?
        .try_into()?;
    rename
        .load()
        .context("the kernel rejected the task_rename program")?;
    rename
        .attach("task", "task_rename")
        .context("cannot attach to tracepoint task:task_rename")?;
    Ok(())
}

/// Adds `tgids` to the kernel's filter and attaches `sched:sched_process_fork`, which adds each
/// traced process's children.
fn follow_children(ebpf: &mut Ebpf, tgids: &[u32]) -> anyhow::Result<()> {
    let mut map: aya::maps::HashMap<_, u32, u8> =
        aya::maps::HashMap::try_from(ebpf.map_mut("TGIDS").context("no TGIDS map")?)?;
    for &t in tgids {
        map.insert(t, 1, 0)?;
    }
    attach_fork_program(ebpf)
}

fn attach_fork_program(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    let fork: &mut TracePoint = ebpf
        .program_mut("sched_process_fork")
        .context("the eBPF object has no sched_process_fork program")?
        .try_into()?;
    fork.load()
        .context("the kernel rejected the sched_process_fork program")?;
    fork.attach("sched", "sched_process_fork")
        .context("cannot attach to tracepoint sched:sched_process_fork")?;
    Ok(())
}

/// `MMU_NOTIFY_*` as this kernel numbers them → as `hmmtrace_common` does. Empty without
/// BTF (the values are then taken as they come: they have been stable since 5.x).
fn notify_map(btf: Option<&Btf>) -> Vec<(u32, u32)> {
    use hmmtrace_common::*;
    let names = [
        ("MMU_NOTIFY_UNMAP", MMU_NOTIFY_UNMAP),
        ("MMU_NOTIFY_CLEAR", MMU_NOTIFY_CLEAR),
        ("MMU_NOTIFY_PROTECTION_VMA", MMU_NOTIFY_PROTECTION_VMA),
        ("MMU_NOTIFY_PROTECTION_PAGE", MMU_NOTIFY_PROTECTION_PAGE),
        ("MMU_NOTIFY_SOFT_DIRTY", MMU_NOTIFY_SOFT_DIRTY),
        ("MMU_NOTIFY_RELEASE", MMU_NOTIFY_RELEASE),
        ("MMU_NOTIFY_MIGRATE", MMU_NOTIFY_MIGRATE),
        ("MMU_NOTIFY_EXCLUSIVE", MMU_NOTIFY_EXCLUSIVE),
    ];
    let Some(btf) = btf else { return Vec::new() };
    names
        .iter()
        .filter_map(|(n, ours)| Some((btf.enum_value(n)? as u32, *ours)))
        .collect()
}

/// Whether the programs of `role` read the struct field `field` (`type.member`).
fn reads(role: plan::Role, field: &str) -> bool {
    use plan::Role::*;
    let ty = field.split('.').next().unwrap_or("");
    match role {
        MigrateVmaSetup | MigrateVmaFinalize => ty == "migrate_vma",
        MigrateToRam => matches!(ty, "vm_fault" | "dev_pagemap" | "folio" | "page"),
        FreeZoneDevice => matches!(ty, "dev_pagemap" | "folio" | "page"),
        InvalidateRangeStart | IntervalInvalidate => ty == "mmu_notifier_range",
        HmmRangeFault => ty == "hmm_range",
        _ => false,
    }
}

/// Offsets for the fault, free, invalidation and range-fault paths, and what is missing.
fn kernel_offsets(facts: &KernelFacts) -> (KernelOffsets, Vec<String>) {
    let btf = facts.btf.as_deref();
    let mut missing = Vec::new();
    let mut get = |ty: &str, field: &str| match btf.and_then(|b| b.member_offset(ty, field)) {
        Some(o) => o,
        None => {
            missing.push(format!("{ty}.{field}"));
            UNKNOWN
        }
    };
    // 6.18 keeps pgmap in struct folio, earlier kernels in struct page.
    let page_pgmap = match btf.and_then(|b| b.member_offset("page", "pgmap")) {
        Some(o) => o,
        None => get("folio", "pgmap"),
    };
    let enum_u32 = |name: &str| {
        btf.and_then(|b| b.enum_value(name))
            .map_or(UNKNOWN, |v| v as u32)
    };
    let o = KernelOffsets {
        page_pgmap,
        page_flags: get("page", "flags"),
        pg_head_bit: enum_u32("PG_head"),
        page_struct_size: btf.and_then(|b| b.struct_size("page")).unwrap_or(UNKNOWN),
        pgmap_ops: get("dev_pagemap", "ops"),
        pgmap_owner: get("dev_pagemap", "owner"),
        pgmap_type: get("dev_pagemap", "type"),
        memory_device_private: enum_u32("MEMORY_DEVICE_PRIVATE"),
        memory_device_coherent: enum_u32("MEMORY_DEVICE_COHERENT"),
        vmf_address: get("vm_fault", "address"),
        vmf_page: get("vm_fault", "page"),
        range_start: get("mmu_notifier_range", "start"),
        range_end: get("mmu_notifier_range", "end"),
        range_event: get("mmu_notifier_range", "event"),
        range_flags: get("mmu_notifier_range", "flags"),
        range_owner: get("mmu_notifier_range", "owner"),
        hmm_start: get("hmm_range", "start"),
        hmm_end: get("hmm_range", "end"),
        hmm_owner: get("hmm_range", "dev_private_owner"),
        // Not counted missing: discovery is an extra, and the table still names callbacks.
        ops_page_free: btf
            .and_then(|b| {
                b.member_offset("dev_pagemap_ops", "page_free")
                    .or_else(|| b.member_offset("dev_pagemap_ops", "folio_free"))
            })
            .unwrap_or(UNKNOWN),
        ops_migrate_to_ram: btf
            .and_then(|b| b.member_offset("dev_pagemap_ops", "migrate_to_ram"))
            .unwrap_or(UNKNOWN),
        _pad: 0,
        vmemmap_base_addr: facts.variable_address("vmemmap_base").unwrap_or(0),
    };
    (o, missing)
}

/// `struct migrate_vma` offsets from BTF, and the fields it lacks.
fn migrate_vma_offsets(btf: Option<&Btf>) -> (MigrateVmaOffsets, Vec<String>) {
    let mut missing = Vec::new();
    let mut get = |field: &str| match btf.and_then(|b| b.member_offset("migrate_vma", field)) {
        Some(o) => o,
        None => {
            missing.push(format!("migrate_vma.{field}"));
            UNKNOWN
        }
    };
    let o = MigrateVmaOffsets {
        src: get("src"),
        cpages: get("cpages"),
        npages: get("npages"),
        start: get("start"),
        end: get("end"),
        pgmap_owner: get("pgmap_owner"),
        flags: get("flags"),
        _pad: 0,
    };
    (o, missing)
}

/// Loads the object with its globals filled (nothing attached yet). Also returns the struct
/// fields (`type.member`) this kernel lacks.
/// Also says whether task-name records name the tasks (else every record carries its comm).
fn load(
    opts: &SessionOptions,
    tracefs: &std::path::Path,
    facts: &KernelFacts,
) -> anyhow::Result<(Ebpf, Vec<String>, bool)> {
    let offsets = tracefs::migrate_pages_offsets(
        &tracefs::read_format(tracefs, "migrate", "mm_migrate_pages")
            .map_err(|e| privilege::classify("reading tracefs", e))?,
    );
    let mut settings = Settings {
        wakeup_bytes: opts.wakeup_bytes,
        filter_tgids: !opts.tgids.is_empty() as u32,
        filter_comm: opts.comm.is_some() as u32,
        comm: [0; 16],
        comm_in_records: 1,
        aggregate: u32::from(opts.aggregate),
    };
    if let Some(comm) = &opts.comm {
        if comm.is_empty() || comm.len() > 15 {
            bail!("a comm filter must be 1 to 15 bytes (the kernel's TASK_COMM_LEN - 1): '{comm}'");
        }
        settings.comm[..comm.len()].copy_from_slice(comm.as_bytes());
    }
    let fork = tracefs::read_format(tracefs, "sched", "sched_process_fork")
        .map(|f| tracefs::fork_offsets(&f))
        .unwrap_or(ForkOffsets::UNKNOWN);
    let rename = tracefs::read_format(tracefs, "task", "task_rename")
        .map(|f| tracefs::rename_offsets(&f))
        .unwrap_or(RenameOffsets::UNKNOWN);
    // Both tracepoints with the fields the programs read: names travel as task-name records,
    // not in every record.
    let named_by_records =
        !opts.comm_per_event && fork.child_pid != UNKNOWN && rename.newcomm != UNKNOWN;
    settings.comm_in_records = u32::from(!named_by_records);
    // Without BTF nothing has offsets; the rows that need them say so.
    let (migrate_vma, mut missing) = migrate_vma_offsets(facts.btf.as_deref());
    let (kernel_offsets, kernel_missing) = kernel_offsets(facts);
    missing.extend(kernel_missing);
    let ebpf = EbpfLoader::new()
        .override_global("SETTINGS", &settings, true)
        .override_global("MIGRATE_PAGES_OFFSETS", &offsets, true)
        .override_global("MIGRATE_VMA_OFFSETS", &migrate_vma, true)
        .override_global("KERNEL_OFFSETS", &kernel_offsets, true)
        .override_global("FORK_OFFSETS", &fork, true)
        .override_global("RENAME_OFFSETS", &rename, true)
        .override_global("AYA_LOG_LEVEL", &diagnostics::level(opts.ebpf_log), true)
        .map_max_entries("EVENTS", opts.ring_bytes)
        // Arrays are allocated whole at load, per CPU (the histogram slots 9.3 KiB each):
        // one entry each when nothing aggregates.
        .map_max_entries("AGG_COUNT_SLOTS", agg_slots(opts.aggregate, COUNT_SLOTS))
        .map_max_entries("AGG_HIST_SLOTS", agg_slots(opts.aggregate, HIST_SLOTS))
        .load(EBPF_OBJECT)
        .map_err(|e| {
            privilege::classify(
                "loading the eBPF object",
                anyhow::Error::new(e).context("cannot load hmmtrace's eBPF object"),
            )
        })?;
    Ok((ebpf, missing, named_by_records))
}

/// Entries of an aggregation slot array: all `slots` when aggregating, else one. The VM
/// check sets `HMMTRACE_AGG_SLOTS=1` to send most groups down the hash maps' path (a slot
/// index past the array finds nothing), proving both paths count alike.
fn agg_slots(aggregate: bool, slots: u32) -> u32 {
    if !aggregate {
        return 1;
    }
    std::env::var("HMMTRACE_AGG_SLOTS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| (1..=slots).contains(n))
        .unwrap_or(slots)
}

/// Loads the object as a session would and runs every kprobe-type program through the
/// verifier without attaching it: for kernels, like this project's host, that lack kprobes but
/// accept the programs. Returns each program's verdict: its translated size, or the error.
pub fn verify_kprobe_programs(
    opts: &SessionOptions,
) -> anyhow::Result<Vec<(String, Result<u32, String>)>> {
    let tracefs = tracefs::root()?;
    let facts = KernelFacts::from_system(&tracefs)?;
    let (mut ebpf, _, _) = load(opts, &tracefs, &facts)?;
    Ok(attach::verify_kprobe_programs(&mut ebpf))
}

fn lost_event(probe: ProbeId, count: u64) -> Event {
    Event {
        ts_ns: monotonic_ns(),
        duration_ns: None,
        cpu: 0,
        tgid: 0,
        pid: 0,
        comm: Comm::new("hmmtrace"),
        unknown: 0,
        body: Body::Lost(Lost {
            count,
            probe: probe as u32,
            _pad: 0,
        }),
    }
}

/// Turns on the kernel's BPF run-time statistics (`BPF_ENABLE_STATS`, as
/// `kernel.bpf_stats_enabled` does) for as long as the returned descriptor is open: closing it,
/// however the process ends, turns them off again unless someone else holds them on.
pub fn enable_run_time_stats() -> anyhow::Result<std::os::fd::OwnedFd> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| anyhow::anyhow!("cannot enable BPF run-time statistics: {e}"))
}
