//! `hmmtrace record`: the kernel source into a capture file and a summary, until the command
//! exits, the duration passes, or SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::capture::Writer;
use crate::kernel::SessionOptions;
use crate::pipeline::source::kernel::KernelSource;
use crate::pipeline::{self, Control, Finished, Tee};
use crate::report::{self, Summary};

use super::probes::MechanismArg;
use super::{bad_input, parse_duration};

#[derive(clap::Args)]
pub struct Args {
    /// Capture file to write (created mode 0600).
    #[arg(long, short)]
    output: PathBuf,
    /// Stop after this long (e.g. 30s, 5m).
    #[arg(long, short, value_parser = parse_duration)]
    duration: Option<Duration>,
    #[command(flatten)]
    trace: TraceArgs,
    /// Fail if any probe the kernel has could not be attached.
    #[arg(long)]
    strict: bool,
    /// Measure each eBPF program's own cost (the kernel's BPF run-time statistics, on while
    /// recording; they cost a little per run) and print it at the end.
    #[arg(long)]
    program_costs: bool,
    /// A command to run and trace, with its children; recording stops when it exits and
    /// hmmtrace exits with its status.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// What to trace and how: shared by `record`, `live` and `serve`.
#[derive(clap::Args)]
pub struct TraceArgs {
    /// Trace only this process and its descendants (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// Trace only tasks with this command name (at most 15 bytes).
    #[arg(long)]
    comm: Option<String>,
    /// Ring buffer size: a power of two from 4K to 1G, e.g. 4M, 64M.
    #[arg(long, default_value = "4M", value_parser = parse_ring_size)]
    ring_size: u32,
    #[arg(long, value_enum, default_value = "auto")]
    mechanism: MechanismArg,
    /// Also hook a driver callback: FUNC=ROLE (see `hmmtrace probes --help`). Repeatable.
    #[arg(long = "attach", value_name = "FUNC=ROLE")]
    extra: Vec<String>,
    /// Time drivers' callbacks only once discovered (read from the `dev_pagemap_ops` of the
    /// first device page freed) or named by --attach, not from hmmtrace's table of known
    /// drivers: shows what discovery finds on its own.
    #[arg(long)]
    no_driver_table: bool,
    /// Show the eBPF programs' own diagnostics (unpaired calls, full maps, unreadable fields),
    /// per probe. Off by default, and then compiled out of the loaded programs.
    #[arg(long)]
    ebpf_log: bool,
    /// Count and time the events in the kernel (per-CPU maps read once a second) instead of
    /// sending each one: nothing lost at any rate, no userspace work per event and somewhat
    /// cheaper programs (about 0.75x of a recorded event's kernel time: BENCHMARKS.md), but
    /// no single event is kept
    /// (no log, findings, heat map or page lifetimes; percentiles within 0.8 %). The default
    /// of `serve` (`serve --events` for every event).
    #[arg(long)]
    pub aggregate: bool,
}

impl TraceArgs {
    /// The session options these arguments ask for. A pid that does not exist, a bad --attach
    /// or a bad --comm is bad input (checked before anything is loaded).
    pub fn options(&self) -> anyhow::Result<SessionOptions> {
        let extra = super::parse_attach(&self.extra)?;
        for pid in &self.pids {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(bad_input(anyhow::anyhow!("--pid {pid}: no such process")));
            }
        }
        if let Some(comm) = &self.comm {
            if comm.is_empty() || comm.len() > 15 {
                return Err(bad_input(anyhow::anyhow!(
                    "--comm '{comm}': a command name is 1 to 15 bytes (the kernel's TASK_COMM_LEN - 1)"
                )));
            }
        }
        Ok(SessionOptions {
            ring_bytes: self.ring_size,
            tgids: self.pids.clone(),
            comm: self.comm.clone(),
            mechanism: self.mechanism.into(),
            extra,
            ebpf_log: self.ebpf_log,
            aggregate: self.aggregate,
            driver_table: !self.no_driver_table,
            ..Default::default()
        })
    }
}

fn parse_ring_size(s: &str) -> Result<u32, String> {
    let bytes = parse_size::Config::new()
        .with_binary()
        .parse_size(s.trim())
        .map_err(|e| format!("'{s}' is not a size ({e}; try 4M, 64M)"))?;
    if !bytes.is_power_of_two() || !(4096..=1 << 30).contains(&bytes) {
        return Err(format!(
            "'{s}': the ring size must be a power of two between 4K and 1G"
        ));
    }
    Ok(bytes as u32)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let opts = a.trace.options()?;
    // Before attaching: a signal that arrives while the probes attach still stops the
    // recording cleanly.
    let ctl = Control::new(a.duration)?;
    let mut source = KernelSource::start(opts, &a.command)?;
    if a.program_costs {
        source = source.with_program_costs();
    }
    let refused: Vec<String> = source
        .plan()
        .iter()
        .filter(|r| r.status.is_refused())
        .map(|r| format!("{} ({}): {}", r.role.name(), r.symbol, r.status))
        .collect();
    if !refused.is_empty() {
        if a.strict {
            anyhow::bail!(
                "--strict: these probes could not attach:\n  {}",
                refused.join("\n  ")
            );
        }
        eprintln!(
            "hmmtrace: warning: recording without these probes:\n  {}",
            refused.join("\n  ")
        );
    }
    // Created only once the probes are attached: a failed start leaves no file behind.
    let mut writer = Writer::create(&a.output)?;
    let mut summary = Summary::default();
    let mut costs = Costs::default();
    let outcome = pipeline::run(
        source,
        Tee::new()
            .with(&mut writer)
            .with(&mut summary)
            .with(&mut costs)
            .with(crate::notices::Notices),
        None,
        &ctl,
    )?;
    let stopped_by = match &outcome.finished {
        Finished::CommandExited(_) => "the command exited".to_string(),
        Finished::Duration => "--duration".to_string(),
        other => other.to_string(),
    };
    eprintln!(
        "hmmtrace: recorded {} events ({} bytes) in {:.1}s to {}; stopped by {stopped_by}; probes detached",
        writer.events(),
        writer.bytes(),
        outcome.elapsed.as_secs_f64(),
        a.output.display()
    );
    eprint!("{}", report::text::render(&summary, "recorded"));
    if a.program_costs {
        eprint!("{}", costs.render());
    }
    Ok(outcome.command.map_or(ExitCode::SUCCESS, exit_code))
}

/// The programs' last run statistics (`--program-costs`), or why there are none.
#[derive(Default)]
struct Costs {
    last: Vec<crate::pipeline::ProgramCost>,
    none: Option<String>,
}

impl crate::pipeline::Sink for Costs {
    fn event(&mut self, _: &crate::event::Event) -> anyhow::Result<()> {
        Ok(())
    }

    fn status(&mut self, s: &crate::pipeline::Status) -> anyhow::Result<()> {
        match s {
            crate::pipeline::Status::ProgramCosts(c) => self.last = c.clone(),
            crate::pipeline::Status::NoProgramCosts(why) => self.none = Some(why.clone()),
            _ => {}
        }
        Ok(())
    }
}

impl Costs {
    fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::from("\nprogram costs (the kernel's BPF run-time statistics):\n");
        if let Some(why) = &self.none {
            let _ = writeln!(out, "  not measured: {why}");
            return out;
        }
        let _ = writeln!(out, "  {:<24} {:>12} {:>10}", "program", "runs", "ns/run");
        for c in &self.last {
            let _ = writeln!(
                out,
                "  {:<24} {:>12} {:>10.0}",
                c.name,
                c.run_cnt,
                c.run_time_ns as f64 / c.run_cnt.max(1) as f64
            );
        }
        out
    }
}

/// A command's exit status as ours: its code, or 128 + the signal that ended it.
pub(super) fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from(128 + sig as u8),
        _ => ExitCode::FAILURE,
    }
}
