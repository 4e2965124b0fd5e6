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
];

/// A scenario file problem, with its position.
pub use crate::textfile::FileError as ScenarioError;

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
    devices: Vec<Spanned<RawDevice>>,
    #[serde(default, rename = "process")]
    processes: Vec<Spanned<RawProcess>>,
    #[serde(default, rename = "step")]
    steps: Vec<Spanned<RawStep>>,
}

fn default_seed() -> u64 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: String,
    kind: DeviceKind,
    pages: u64,
    #[serde(default = "default_chunk")]
    evict_chunk: u64,
    #[serde(default)]
    evict_on_release: bool,
}

fn default_chunk() -> u64 {
    64
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    name: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawStep {
    op: String,
    process: Option<String>,
    device: Option<String>,
    region: Option<String>,
    pages: Option<u64>,
    first: Option<u64>,
    count: Option<u64>,
    prot: Option<String>,
    file: Option<bool>,
    to: Option<String>,
    child: Option<String>,
    racing: Option<Vec<u64>>,
    busy: Option<u32>,
    retry: Option<u32>,
    ns: Option<u64>,
    times: Option<u64>,
    advance: Option<u64>,
    steps: Option<Vec<RawStep>>,
}

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

/// A parsed, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub cost: CostModel,
    /// (name, kind, pages, evict_chunk, evict_on_release)
    devices: Vec<(String, DeviceKind, u64, u64, bool)>,
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
        let mut devices: Vec<(String, DeviceKind, u64, u64, bool)> = Vec::new();
        for d in &raw.devices {
            let at = d.span().start;
            let d = d.get_ref();
            if d.pages == 0 || d.pages > 1 << 32 {
                return Err(err(
                    at,
                    format!("device '{}': pages must be within 1..=2^32", d.name),
                ));
            }
            if devices.iter().any(|(n, ..)| n == &d.name) {
                return Err(err(at, format!("device '{}' is defined twice", d.name)));
            }
            devices.push((
                d.name.clone(),
                d.kind,
                d.pages,
                d.evict_chunk.max(1),
                d.evict_on_release,
            ));
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
        let mut steps = Vec::new();
        for s in &raw.steps {
            let at = s.span().start;
            steps.push(
                validate_step(s.get_ref(), at, &devices, &processes).map_err(|m| err(at, m))?,
            );
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
            .map(|(i, (n, k, ..))| (i as u64 + 1, n.clone(), *k))
            .collect()
    }

    /// Runs the scenario on a fresh engine, handing every event to `sink` in order.
    pub fn run(
        &self,
        seed: u64,
        sink: &mut dyn FnMut(&Event) -> anyhow::Result<()>,
    ) -> anyhow::Result<RunStats> {
        let mut run = Run {
            engine: Engine::new(self.cost.clone(), seed),
            devices: HashMap::new(),
            procs: HashMap::new(),
            regions: HashMap::new(),
            stats: RunStats::default(),
        };
        for (name, kind, pages, chunk, evict_on_release) in &self.devices {
            let id = run.engine.add_device(name, *kind, *pages, *chunk);
            run.engine.set_evict_on_release(id, *evict_on_release);
            run.devices.insert(name.clone(), id);
        }
        for name in &self.processes {
            let tgid = run.engine.spawn(name);
            run.procs.insert(name.clone(), tgid);
        }
        for step in &self.steps {
            run.step(step, 0, sink).map_err(|e| {
                // Context, not a new error: callers can still downcast what the sink returned.
                let (line, column) = crate::textfile::line_col(&self.text, step.at);
                e.context(format!("{}:{}:{}: step failed", self.file, line, column))
            })?;
        }
        run.stats.sim_ns = run.engine.now_ns();
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

fn parse_prot(s: &str) -> Result<Prot, String> {
    match s {
        "rw" => Ok(Prot::RW),
        "r" => Ok(Prot::R),
        "none" => Ok(Prot::NONE),
        other => Err(format!(
            "prot must be \"rw\", \"r\" or \"none\", not \"{other}\""
        )),
    }
}

fn validate_step(
    s: &RawStep,
    at: usize,
    devices: &[(String, DeviceKind, u64, u64, bool)],
    processes: &[String],
) -> Result<Step, String> {
    let need_region = || {
        s.region
            .clone()
            .ok_or_else(|| format!("step '{}' needs `region`", s.op))
    };
    let need_device = || -> Result<String, String> {
        let d = s
            .device
            .clone()
            .ok_or_else(|| format!("step '{}' needs `device`", s.op))?;
        if devices.iter().any(|(n, ..)| *n == d) {
            Ok(d)
        } else {
            Err(format!("step '{}': no [[device]] named '{d}'", s.op))
        }
    };
    if let Some(p) = &s.process {
        // A forked child is also a valid process name; it is checked when the step runs.
        let _ = processes;
        if p.is_empty() {
            return Err("`process` must not be empty".into());
        }
    }
    let mut device = None;
    let mut region = None;
    let op = match s.op.as_str() {
        "mmap" => {
            let pages = s.pages.ok_or("step 'mmap' needs `pages`")?;
            if pages == 0 || pages > 1 << 36 {
                return Err("mmap: pages must be within 1..=2^36".into());
            }
            let prot = parse_prot(s.prot.as_deref().unwrap_or("rw"))?;
            Op::Mmap { region: need_region()?, pages, prot, file: s.file.unwrap_or(false) }
        }
        "munmap" => {
            region = Some(need_region()?);
            Op::Munmap
        }
        "mprotect" => {
            region = Some(need_region()?);
            Op::Mprotect { prot: parse_prot(s.prot.as_deref().ok_or("step 'mprotect' needs `prot`")?)? }
        }
        "read" | "write" => {
            region = Some(need_region()?);
            Op::Access { write: s.op == "write" }
        }
        "open" => {
            device = Some(need_device()?);
            Op::Open
        }
        "migrate" => {
            region = Some(need_region()?);
            device = Some(need_device()?);
            match s.to.as_deref() {
                Some("device") | None => Op::MigrateToDevice { racing: s.racing.clone().unwrap_or_default() },
                Some("ram") => Op::MigrateToRam,
                Some(other) => return Err(format!("migrate: `to` must be \"device\" or \"ram\", not \"{other}\"")),
            }
        }
        "mirror_read" | "mirror_write" => {
            region = Some(need_region()?);
            device = Some(need_device()?);
            Op::Mirror {
                write: s.op == "mirror_write",
                race: Race { during: s.busy.unwrap_or(0), after: s.retry.unwrap_or(0) },
            }
        }
        "exclusive" => {
            region = Some(need_region()?);
            device = Some(need_device()?);
            Op::Exclusive
        }
        "pin" | "unpin" => {
            region = Some(need_region()?);
            if s.op == "pin" { Op::Pin } else { Op::Unpin }
        }
        "fork" => Op::Fork { child: s.child.clone().ok_or("step 'fork' needs `child` (the new process's name)")? },
        "exit" => Op::Exit,
        "idle" => Op::Idle { ns: s.ns.ok_or("step 'idle' needs `ns`")? },
        "repeat" => {
            let times = s.times.ok_or("step 'repeat' needs `times`")?;
            let inner = s.steps.as_ref().ok_or("step 'repeat' needs `steps = [...]`")?;
            let steps = inner
                .iter()
                .map(|i| validate_step(i, at, devices, processes))
                .collect::<Result<Vec<_>, _>>()?;
            Op::Repeat { times, advance: s.advance.unwrap_or(0), steps }
        }
        other => {
            return Err(format!(
                "unknown op '{other}' (expected one of: mmap, munmap, mprotect, read, write, open, migrate, \
                 mirror_read, mirror_write, exclusive, pin, unpin, fork, exit, idle, repeat)"
            ))
        }
    };
    if let Op::Mmap { region: r, .. } = &op {
        region = Some(r.clone());
    }
    if s.count == Some(0) {
        return Err("`count` must be at least 1".into());
    }
    Ok(Step {
        op,
        process: s.process.clone(),
        device,
        region,
        first: s.first.unwrap_or(0),
        count: s.count,
        at,
    })
}

struct Run {
    engine: Engine,
    devices: HashMap<String, DevId>,
    procs: HashMap<String, Tgid>,
    /// (process, region) → (address, pages).
    regions: HashMap<(Tgid, String), (u64, u64)>,
    stats: RunStats,
}

impl Run {
    fn step(
        &mut self,
        step: &Step,
        shift: u64,
        sink: &mut dyn FnMut(&Event) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
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
                        self.step(s, shift + i * advance, sink)?;
                    }
                }
                return Ok(());
            }
        }
        for ev in self.engine.drain() {
            self.stats.events += 1;
            sink(&ev)?;
        }
        Ok(())
    }
}
