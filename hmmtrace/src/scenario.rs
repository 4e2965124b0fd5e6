//! Scenario files: TOML descriptions of a workload (devices, processes, and the steps they take)
//! that the reference engine runs, plus the built-in scenarios embedded from
//! `hmmtrace/scenarios/`.
//!
//! The schema is documented in `hmmtrace/scenarios/README.md`. A bad file fails with its name,
//! line and column and a sentence saying what is wrong; nothing here panics on input.

use std::collections::HashMap;

use serde::Deserialize;
use toml::Spanned;

use crate::engine::{CostModel, DevId, DeviceKind, Engine, Prot, Race, Tgid};
use crate::event::Event;

/// The built-in scenarios: (name, TOML text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("migrate", include_str!("../scenarios/migrate.toml")),
    (
        "migrate_fault",
        include_str!("../scenarios/migrate_fault.toml"),
    ),
    (
        "migrate_release",
        include_str!("../scenarios/migrate_release.toml"),
    ),
    (
        "migrate_pinned",
        include_str!("../scenarios/migrate_pinned.toml"),
    ),
    ("mirror_read", include_str!("../scenarios/mirror_read.toml")),
    (
        "mirror_write",
        include_str!("../scenarios/mirror_write.toml"),
    ),
    ("mirror_busy", include_str!("../scenarios/mirror_busy.toml")),
    (
        "munmap_mirrored",
        include_str!("../scenarios/munmap_mirrored.toml"),
    ),
    ("fork_cow", include_str!("../scenarios/fork_cow.toml")),
    ("exclusive", include_str!("../scenarios/exclusive.toml")),
    (
        "multiple_devices",
        include_str!("../scenarios/multiple_devices.toml"),
    ),
    ("gpu-stream", include_str!("../scenarios/gpu-stream.toml")),
    // What the detectors find (docs/findings.md): one workload that thrashes, one that storms
    // hmm_range_fault with retries, one whose mirror fails, and drivers that break HMM's
    // contract by fault injection.
    ("pingpong", include_str!("../scenarios/pingpong.toml")),
    ("retry_storm", include_str!("../scenarios/retry_storm.toml")),
    (
        "mirror_fault_error",
        include_str!("../scenarios/mirror_fault_error.toml"),
    ),
    (
        "driver_sigbus",
        include_str!("../scenarios/driver_sigbus.toml"),
    ),
    ("driver_leak", include_str!("../scenarios/driver_leak.toml")),
    (
        "slow_invalidate",
        include_str!("../scenarios/slow_invalidate.toml"),
    ),
    (
        "unfinished_migration",
        include_str!("../scenarios/unfinished_migration.toml"),
    ),
];

/// A scenario file problem, with its position.
pub use crate::textfile::FileError as ScenarioError;

use crate::textfile::Node;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default)]
    cost: CostModel,
    #[serde(default, rename = "device")]
    devices: Vec<Spanned<DeviceDef>>,
    #[serde(default, rename = "process")]
    processes: Vec<Spanned<ProcessDef>>,
    /// Read with every position kept, then each as a [`StepDef`]: see [`Node`].
    #[serde(default, rename = "step")]
    steps: Vec<Spanned<Node>>,
}

fn default_seed() -> u64 {
    1
}

/// A `[[device]]`: device memory the engine manages.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceDef {
    pub name: String,
    /// `private` (MEMORY_DEVICE_PRIVATE) or `coherent`.
    pub kind: DeviceKind,
    /// Device memory, in pages.
    pub pages: u64,
    /// Pages evicted together when the device is full.
    #[serde(default = "default_chunk")]
    pub evict_chunk: u64,
    /// Closing the device file (at exit) evicts all its memory, as test_hmm's release does.
    #[serde(default)]
    pub evict_on_release: bool,
    /// Fault injection, a driver that breaks HMM's contract: its `migrate_to_ram` returns this
    /// instead of migrating (`sigbus`, `oom`, `hwpoison`, `sigsegv`).
    #[serde(default)]
    pub fault_result: Option<FaultResult>,
    /// Fault injection: the driver keeps a reference to every page it receives, so its pages
    /// are never freed (`page_free` never runs).
    #[serde(default)]
    pub leaks_pages: bool,
    /// Fault injection: the driver's `invalidate` callback takes this much longer (ns).
    #[serde(default)]
    pub invalidate_ns: u64,
    /// Fault injection: the driver calls `migrate_vma_setup` and never `migrate_vma_pages` or
    /// `migrate_vma_finalize` for its migrations to the device.
    #[serde(default)]
    pub abandons_migrations: bool,
}

/// `fault_result = ...` of a `[[device]]`: a `VM_FAULT_*` error.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FaultResult {
    Sigbus,
    Oom,
    Hwpoison,
    Sigsegv,
}

impl FaultResult {
    pub fn vm_fault(self) -> u32 {
        match self {
            FaultResult::Sigbus => hmmtrace_common::VM_FAULT_SIGBUS,
            FaultResult::Oom => hmmtrace_common::VM_FAULT_OOM,
            FaultResult::Hwpoison => hmmtrace_common::VM_FAULT_HWPOISON,
            FaultResult::Sigsegv => hmmtrace_common::VM_FAULT_SIGSEGV,
        }
    }
}

fn default_chunk() -> u64 {
    64
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessDef {
    name: String,
}

/// `prot = ...` of `mmap` and `mprotect`.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ProtDef {
    #[default]
    #[serde(rename = "rw")]
    ReadWrite,
    #[serde(rename = "r")]
    Read,
    #[serde(rename = "none")]
    None,
}

impl ProtDef {
    fn prot(self) -> Prot {
        match self {
            ProtDef::ReadWrite => Prot::RW,
            ProtDef::Read => Prot::R,
            ProtDef::None => Prot::NONE,
        }
    }
}

/// `to = ...` of `migrate`.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Destination {
    #[default]
    Device,
    Ram,
}

/// One `[[step]]` (or one step of a `repeat`), as the file says it: each op takes exactly its
/// own fields, so a field an op does not take (`pages` on `munmap`) is an error, not ignored.
/// Every step may name the `process` that takes it (default: the first).
#[derive(Deserialize, Debug)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum StepDef {
    Mmap {
        process: Option<String>,
        region: String,
        pages: u64,
        #[serde(default)]
        prot: ProtDef,
        #[serde(default)]
        file: bool,
    },
    Munmap {
        process: Option<String>,
        region: String,
        first: Option<u64>,
        count: Option<u64>,
    },
    Mprotect {
        process: Option<String>,
        region: String,
        first: Option<u64>,
        count: Option<u64>,
        prot: ProtDef,
    },
    Read {
        process: Option<String>,
        region: String,
        first: Option<u64>,
        count: Option<u64>,
    },
    Write {
        process: Option<String>,
        region: String,
        first: Option<u64>,
        count: Option<u64>,
    },
    Open {
        process: Option<String>,
        device: String,
    },
    Migrate {
        process: Option<String>,
        region: String,
        device: String,
        first: Option<u64>,
        count: Option<u64>,
        #[serde(default)]
        to: Destination,
        /// Page indices whose folio lock a racing thread holds: skipped.
        #[serde(default)]
        racing: Vec<u64>,
    },
    MirrorRead {
        process: Option<String>,
        region: String,
        device: String,
        first: Option<u64>,
        count: Option<u64>,
        /// Invalidations that land mid-walk (`-EBUSY`).
        #[serde(default)]
        busy: u32,
        /// Invalidations after it returned (`mmu_interval_read_retry`).
        #[serde(default)]
        retry: u32,
    },
    MirrorWrite {
        process: Option<String>,
        region: String,
        device: String,
        first: Option<u64>,
        count: Option<u64>,
        #[serde(default)]
        busy: u32,
        #[serde(default)]
        retry: u32,
    },
    Exclusive {
        process: Option<String>,
        region: String,
        device: String,
        first: Option<u64>,
        count: Option<u64>,
    },
    Pin {
        process: Option<String>,
        region: String,
        first: Option<u64>,
        count: Option<u64>,
    },
    Unpin {
        process: Option<String>,
        region: String,
        first: Option<u64>,
        count: Option<u64>,
    },
    Fork {
        process: Option<String>,
        /// The new process's name.
        child: String,
    },
    Exit {
        process: Option<String>,
    },
    Idle {
        process: Option<String>,
        ns: u64,
    },
    Repeat {
        times: u64,
        /// Pages every inner `first` shifts by per iteration.
        #[serde(default)]
        advance: u64,
        /// Read again from the [`Node`], with their positions.
        #[serde(rename = "steps")]
        _steps: serde::de::IgnoredAny,
    },
}

/// The ops, for messages.
const OPS: &str = "mmap, munmap, mprotect, read, write, open, migrate, mirror_read, mirror_write, \
                   exclusive, pin, unpin, fork, exit, idle, repeat";

/// A validated step. Names are resolved when the scenario runs.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Mmap {
        region: String,
        pages: u64,
        prot: Prot,
        file: bool,
    },
    Munmap,
    Mprotect {
        prot: Prot,
    },
    Access {
        write: bool,
    },
    Open,
    MigrateToDevice {
        racing: Vec<u64>,
    },
    MigrateToRam,
    Mirror {
        write: bool,
        race: Race,
    },
    Exclusive,
    Pin,
    Unpin,
    Fork {
        child: String,
    },
    Exit,
    Idle {
        ns: u64,
    },
    Repeat {
        times: u64,
        advance: u64,
        steps: Vec<Step>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Step {
    op: Op,
    process: Option<String>,
    device: Option<String>,
    region: Option<String>,
    first: u64,
    count: Option<u64>,
    /// Byte offset of the step in the file, for errors while running.
    at: usize,
}

/// At most this many steps run (a `repeat` counts its inner steps `times` over): a scenario
/// ends, it does not run for days.
pub const MAX_STEPS_RUN: u64 = 100_000_000;
/// At most this much idle time in all, in ns (2^62: the simulated clock cannot overflow).
pub const MAX_IDLE_NS: u64 = 1 << 62;

impl Step {
    /// (steps it runs, ns it idles), repeats counted; saturating.
    fn size(&self) -> (u64, u64) {
        match &self.op {
            Op::Idle { ns } => (1, *ns),
            Op::Repeat { times, steps, .. } => {
                let (r, i) = steps.iter().fold((0u64, 0u64), |(r, i), s| {
                    let (sr, si) = s.size();
                    (r.saturating_add(sr), i.saturating_add(si))
                });
                (r.saturating_mul(*times), i.saturating_mul(*times))
            }
            _ => (1, 0),
        }
    }
}

/// A parsed, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub cost: CostModel,
    devices: Vec<DeviceDef>,
    processes: Vec<String>,
    steps: Vec<Step>,
    file: String,
    text: String,
}

impl Scenario {
    /// A built-in scenario by name, or a file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, anyhow::Error> {
        let (file, text) = crate::textfile::builtin_or_file("scenario", BUILTIN, name_or_path)?;
        Ok(Scenario::parse(&file, &text)?)
    }

    /// Parses and validates scenario text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let err = |offset: usize, message: String| ScenarioError::at(file, text, offset, message);
        let raw: Raw = toml::from_str(text).map_err(|e| ScenarioError::toml(file, text, &e))?;
        raw.cost.validate().map_err(|m| err(0, m))?;
        let mut devices: Vec<DeviceDef> = Vec::new();
        for d in &raw.devices {
            let at = d.span().start;
            let d = d.get_ref();
            if d.pages == 0 || d.pages > 1 << 32 {
                return Err(err(
                    at,
                    format!("device '{}': pages must be within 1..=2^32", d.name),
                ));
            }
            if devices.iter().any(|x| x.name == d.name) {
                return Err(err(at, format!("device '{}' is defined twice", d.name)));
            }
            devices.push(DeviceDef {
                evict_chunk: d.evict_chunk.max(1),
                ..d.clone()
            });
        }
        let mut processes = Vec::new();
        for p in &raw.processes {
            let name = p.get_ref().name.clone();
            if processes.contains(&name) {
                return Err(err(
                    p.span().start,
                    format!("process '{name}' is defined twice"),
                ));
            }
            processes.push(name);
        }
        if processes.is_empty() {
            return Err(err(0, "a scenario needs at least one [[process]]".into()));
        }
        let steps: Vec<Step> = raw
            .steps
            .iter()
            .map(|s| validate_step(s, &devices).map_err(|(at, m)| err(at, m)))
            .collect::<Result<_, _>>()?;
        // What the whole scenario runs, summed step by step: the first step that takes it past
        // a limit is the one named.
        let (mut run, mut idle) = (0u64, 0u64);
        for s in &steps {
            let (r, i) = s.size();
            run = run.saturating_add(r);
            idle = idle.saturating_add(i);
            if run > MAX_STEPS_RUN {
                return Err(err(
                    s.at,
                    format!("with this step the scenario runs more than {MAX_STEPS_RUN} steps (repeats counted)"),
                ));
            }
            if idle > MAX_IDLE_NS {
                return Err(err(
                    s.at,
                    format!("with this step the scenario idles more than {MAX_IDLE_NS} ns in all (about 146 years of its clock)"),
                ));
            }
        }
        Ok(Scenario {
            name: raw.name,
            description: raw.description,
            seed: raw.seed,
            cost: raw.cost,
            devices,
            processes,
            steps,
            file: file.to_string(),
            text: text.to_string(),
        })
    }

    /// Device table (owner cookie, name, kind), as the engine will number them.
    pub fn device_table(&self) -> Vec<(u64, String, DeviceKind)> {
        self.devices
            .iter()
            .enumerate()
            .map(|(i, d)| (i as u64 + 1, d.name.clone(), d.kind))
            .collect()
    }

    /// Runs the scenario on a fresh engine, handing every event to `sink` in order.
    pub fn run(
        &self,
        seed: u64,
        sink: &mut dyn FnMut(&Event) -> anyhow::Result<()>,
    ) -> anyhow::Result<RunStats> {
        let mut run = Run {
            engine: Engine::with_sink(self.cost.clone(), seed, sink),
            devices: HashMap::new(),
            procs: HashMap::new(),
            regions: HashMap::new(),
            stats: RunStats::default(),
        };
        for d in &self.devices {
            let id = run
                .engine
                .add_device(&d.name, d.kind, d.pages, d.evict_chunk);
            run.engine.set_evict_on_release(id, d.evict_on_release);
            run.engine.set_bugs(
                id,
                crate::engine::DriverBugs {
                    fault_result: d.fault_result.map_or(0, FaultResult::vm_fault),
                    leaks_pages: d.leaks_pages,
                    invalidate_ns: d.invalidate_ns,
                    abandons_migrations: d.abandons_migrations,
                },
            );
            run.devices.insert(d.name.clone(), id);
        }
        for name in &self.processes {
            let tgid = run.engine.spawn(name);
            run.procs.insert(name.clone(), tgid);
        }
        for step in &self.steps {
            let stepped = run.step(step, 0);
            // What a sink returned (a full disk, an interrupted run) is no fault of the step:
            // passed on as it is.
            if let Some(e) = run.engine.sink_error() {
                return Err(e);
            }
            stepped.map_err(|e| {
                let (line, column) = crate::textfile::line_col(&self.text, step.at);
                e.context(format!("{}:{}:{}: step failed", self.file, line, column))
            })?;
        }
        run.stats.sim_ns = run.engine.now_ns();
        run.stats.events = run.engine.emitted();
        Ok(run.stats)
    }
}

/// What a run did, beyond its events.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunStats {
    pub events: u64,
    /// Simulated time at the end.
    pub sim_ns: u64,
}

/// A step from its node: the serde enum, then the checks serde cannot make. Errors carry the
/// byte offset of what they are about.
fn validate_step(node: &Spanned<Node>, devices: &[DeviceDef]) -> Result<Step, (usize, String)> {
    let at = node.span().start;
    let table = node.get_ref();
    if !matches!(table, Node::Table(_)) {
        return Err((at, "a step is a table: { op = \"...\", ... }".into()));
    }
    let def = StepDef::deserialize(table.to_value()).map_err(|e| {
        // toml adds the key on a line of its own ("\nin `op`"): the position says it better.
        let message = e.to_string();
        let message = message.lines().next().unwrap_or_default().to_string();
        let where_ = table.locate(&message).map_or(at, |span| span.start);
        let op = table.get("op").and_then(|op| match op.get_ref() {
            Node::Value(toml::Value::String(s)) => Some(s.clone()),
            _ => None,
        });
        let message = match op {
            None if message.contains("missing field `op`") => {
                format!("a step needs `op` (one of: {OPS})")
            }
            Some(op) if message.starts_with(&format!("unknown variant `{op}`")) => {
                format!("unknown op '{op}' (one of: {OPS})")
            }
            Some(op) => format!("{op}: {message}"),
            None => message,
        };
        (where_, message)
    })?;
    let device = |name: &str, op: &str| -> Result<Option<String>, (usize, String)> {
        if devices.iter().any(|d| d.name == name) {
            Ok(Some(name.to_string()))
        } else {
            let span = table.get("device").map_or(at, |d| d.span().start);
            Err((span, format!("step '{op}': no [[device]] named '{name}'")))
        }
    };
    let field_at = |key: &str| table.get(key).map_or(at, |v| v.span().start);
    let mut step = Step {
        op: Op::Exit,
        process: None,
        device: None,
        region: None,
        first: 0,
        count: None,
        at,
    };
    let memory = |step: &mut Step,
                  process: Option<String>,
                  region: String,
                  first: Option<u64>,
                  count: Option<u64>| {
        step.process = process;
        step.region = Some(region);
        step.first = first.unwrap_or(0);
        step.count = count;
    };
    // Reads and writes, by the CPU or mirrored, take the same fields.
    let write = matches!(def, StepDef::Write { .. } | StepDef::MirrorWrite { .. });
    let mirror = if write { "mirror_write" } else { "mirror_read" };
    step.op = match def {
        StepDef::Mmap {
            process,
            region,
            pages,
            prot,
            file,
        } => {
            if pages == 0 || pages > 1 << 36 {
                return Err((
                    field_at("pages"),
                    "mmap: pages must be within 1..=2^36".into(),
                ));
            }
            memory(&mut step, process, region.clone(), None, None);
            Op::Mmap {
                region,
                pages,
                prot: prot.prot(),
                file,
            }
        }
        StepDef::Munmap {
            process,
            region,
            first,
            count,
        } => {
            memory(&mut step, process, region, first, count);
            Op::Munmap
        }
        StepDef::Mprotect {
            process,
            region,
            first,
            count,
            prot,
        } => {
            memory(&mut step, process, region, first, count);
            Op::Mprotect { prot: prot.prot() }
        }
        StepDef::Read {
            process,
            region,
            first,
            count,
        }
        | StepDef::Write {
            process,
            region,
            first,
            count,
        } => {
            memory(&mut step, process, region, first, count);
            Op::Access { write }
        }
        StepDef::Open { process, device: d } => {
            step.process = process;
            step.device = device(&d, "open")?;
            Op::Open
        }
        StepDef::Migrate {
            process,
            region,
            device: d,
            first,
            count,
            to,
            racing,
        } => {
            memory(&mut step, process, region, first, count);
            step.device = device(&d, "migrate")?;
            match to {
                Destination::Device => Op::MigrateToDevice { racing },
                Destination::Ram if !racing.is_empty() => {
                    return Err((
                        field_at("racing"),
                        "migrate: `racing` applies to a migration to the device only".into(),
                    ))
                }
                Destination::Ram => Op::MigrateToRam,
            }
        }
        StepDef::MirrorRead {
            process,
            region,
            device: d,
            first,
            count,
            busy,
            retry,
        }
        | StepDef::MirrorWrite {
            process,
            region,
            device: d,
            first,
            count,
            busy,
            retry,
        } => {
            memory(&mut step, process, region, first, count);
            step.device = device(&d, mirror)?;
            Op::Mirror {
                write,
                race: Race {
                    during: busy,
                    after: retry,
                },
            }
        }
        StepDef::Exclusive {
            process,
            region,
            device: d,
            first,
            count,
        } => {
            memory(&mut step, process, region, first, count);
            step.device = device(&d, "exclusive")?;
            Op::Exclusive
        }
        StepDef::Pin {
            process,
            region,
            first,
            count,
        } => {
            memory(&mut step, process, region, first, count);
            Op::Pin
        }
        StepDef::Unpin {
            process,
            region,
            first,
            count,
        } => {
            memory(&mut step, process, region, first, count);
            Op::Unpin
        }
        StepDef::Fork { process, child } => {
            step.process = process;
            if child.is_empty() {
                return Err((field_at("child"), "fork: `child` must not be empty".into()));
            }
            Op::Fork { child }
        }
        StepDef::Exit { process } => {
            step.process = process;
            Op::Exit
        }
        StepDef::Idle { process, ns } => {
            step.process = process;
            Op::Idle { ns }
        }
        StepDef::Repeat { times, advance, .. } => {
            let Some(Node::Array(inner)) = table.get("steps").map(Spanned::get_ref) else {
                return Err((
                    field_at("steps"),
                    "repeat: `steps` must be an array of steps".into(),
                ));
            };
            let steps = inner
                .iter()
                .map(|s| validate_step(s, devices))
                .collect::<Result<Vec<_>, _>>()?;
            Op::Repeat {
                times,
                advance,
                steps,
            }
        }
    };
    if step.process.as_deref() == Some("") {
        return Err((field_at("process"), "`process` must not be empty".into()));
    }
    if step.count == Some(0) {
        return Err((field_at("count"), "`count` must be at least 1".into()));
    }
    Ok(step)
}

struct Run<'s> {
    engine: Engine<'s>,
    devices: HashMap<String, DevId>,
    procs: HashMap<String, Tgid>,
    /// (process, region) → (address, pages).
    regions: HashMap<(Tgid, String), (u64, u64)>,
    stats: RunStats,
}

impl Run<'_> {
    /// One step; its events go to the engine's sink as they happen.
    fn step(&mut self, step: &Step, shift: u64) -> anyhow::Result<()> {
        let pname = step.process.clone().unwrap_or_else(|| {
            self.procs
                .keys()
                .min_by_key(|k| self.procs[*k])
                .cloned()
                .unwrap_or_default()
        });
        let tgid = *self.procs.get(&pname).ok_or_else(|| {
            anyhow::anyhow!("no process named '{pname}' (exited, or never created)")
        })?;
        let dev = step.device.as_ref().map(|d| self.devices[d]);
        // The pages a step applies to: `first` (+ the repeat shift, wrapping) and `count`.
        let range = |this: &Run| -> anyhow::Result<(u64, u64)> {
            let region = step.region.as_ref().expect("validated");
            let &(addr, pages) = this
                .regions
                .get(&(tgid, region.clone()))
                .ok_or_else(|| anyhow::anyhow!("process '{pname}' has no region '{region}'"))?;
            let count = step.count.unwrap_or(pages);
            let first = (step.first + shift) % pages;
            if first + count > pages {
                anyhow::bail!(
                    "pages {first}..{} are outside region '{region}' ({pages} pages)",
                    first + count
                );
            }
            Ok((addr + first * this.engine.page_size(), count))
        };
        let e = &mut self.engine;
        match &step.op {
            Op::Mmap {
                region,
                pages,
                prot,
                file,
            } => {
                let addr = e.mmap(tgid, *pages, *prot, *file)?;
                self.regions.insert((tgid, region.clone()), (addr, *pages));
            }
            Op::Munmap => {
                let (addr, n) = range(self)?;
                self.engine.munmap(tgid, addr, n)?;
            }
            Op::Mprotect { prot } => {
                let (addr, n) = range(self)?;
                self.engine.mprotect(tgid, addr, n, *prot)?;
            }
            Op::Access { write } => {
                let (addr, n) = range(self)?;
                self.engine.cpu_access(tgid, addr, n, *write)?;
            }
            Op::Open => e.open(dev.unwrap(), tgid)?,
            Op::MigrateToDevice { racing } => {
                let (addr, n) = range(self)?;
                self.engine
                    .migrate_to_device(dev.unwrap(), tgid, addr, n, racing)?;
            }
            Op::MigrateToRam => {
                let (addr, n) = range(self)?;
                self.engine.migrate_to_system(dev.unwrap(), tgid, addr, n)?;
            }
            Op::Mirror { write, race } => {
                let (addr, n) = range(self)?;
                self.engine
                    .range_fault(dev.unwrap(), tgid, addr, n, *write, *race)?;
            }
            Op::Exclusive => {
                let (addr, n) = range(self)?;
                self.engine.make_exclusive(dev.unwrap(), tgid, addr, n)?;
            }
            Op::Pin => {
                let (addr, n) = range(self)?;
                self.engine.pin(tgid, addr, n)?;
            }
            Op::Unpin => {
                let (addr, n) = range(self)?;
                self.engine.unpin(tgid, addr, n)?;
            }
            Op::Fork { child } => {
                if self.procs.contains_key(child) {
                    anyhow::bail!("a process named '{child}' already exists");
                }
                let c = e.fork(tgid, child)?;
                self.procs.insert(child.clone(), c);
                let inherited: Vec<_> = self
                    .regions
                    .iter()
                    .filter(|((t, _), _)| *t == tgid)
                    .map(|((_, r), v)| (r.clone(), *v))
                    .collect();
                for (r, v) in inherited {
                    self.regions.insert((c, r), v);
                }
            }
            Op::Exit => {
                e.exit(tgid)?;
                self.procs.remove(&pname);
                self.regions.retain(|(t, _), _| *t != tgid);
            }
            Op::Idle { ns } => e.idle(*ns),
            Op::Repeat {
                times,
                advance,
                steps,
            } => {
                for i in 0..*times {
                    for s in steps {
                        self.step(s, shift + i * advance)?;
                        if self.engine.sink_failed() {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
