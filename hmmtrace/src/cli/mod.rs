//! Subcommands and their arguments. Each subcommand parses its arguments, picks a source, its
//! sinks and a view, and hands them to `pipeline::run`; threads, signals and the end
//! of a run are the pipeline's.

mod census;
mod demo;
mod export;
mod live;
mod probes;
mod record;
mod replay;
mod report;
mod serve;
mod sim;

use std::process::ExitCode;

pub use crate::error::bad_input;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "hmmtrace",
    version,
    about = "Shows what the kernel's Heterogeneous Memory Management (HMM) does while GPU workloads run",
    long_about = "Shows what the kernel's Heterogeneous Memory Management (HMM) does while GPU and \
accelerator workloads run: device migrations, CPU faults on device pages, device page frees and \
mirror invalidations, with their latencies.\n\nWithout an HMM kernel, `demo` and `sim` run the \
built-in reference HMM engine, which produces the same events from scenario files.",
    after_help = "Examples:\n  hmmtrace demo                          watch the engine stream gpu-stream (q quits)\n  \
hmmtrace sim --list                    list the built-in scenarios\n  \
hmmtrace sim --scenario migrate -o m.hmt   run one scenario into a capture file\n  \
hmmtrace report m.hmt --format json    latency percentiles of a capture",
    after_long_help = "Examples:\n  hmmtrace demo                          watch the engine stream gpu-stream (q quits)\n  \
hmmtrace sim --list                    list the built-in scenarios\n  \
hmmtrace sim --scenario migrate -o m.hmt   run one scenario into a capture file\n  \
hmmtrace report m.hmt --format json    latency percentiles of a capture\n\n\
Clocks: events from the kernel (record, live) are stamped with the traced machine's \
CLOCK_MONOTONIC, which stops while it is suspended; events from the engine (demo, sim) with its \
simulated clock, which runs far faster than wall time. A capture's header names its clock (and \
the boot it belongs to); every figure is on that clock, and `report` refuses captures on \
different clocks rather than merge them.\n\n\
Rates: events per second of the source's clock. A report divides each kind's count by the span \
from the first event to the last. The TUI counts each event in the bin its own timestamp falls \
in (a second of the clock; a fraction of one when the demo plays it slower than real time) and \
shows the last complete bin's count per second, then, once the source has ended, the same \
average a report shows. The demo paces the engine (--speed, default 1/32 simulated second \
per wall second), and a replay plays the capture at its recorded pace."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Watch the reference HMM engine run a scenario live in the TUI, written to a capture
    /// file. Needs no root and no GPU.
    #[command(
        after_help = "Examples:\n  hmmtrace demo\n  hmmtrace demo --scenario migrate_fault --dashboard migration -o demo.hmt\n  hmmtrace demo --no-tui --duration 5s"
    )]
    Demo(demo::Args),
    /// Run a scenario on the reference engine once (as fast as it goes), optionally into a
    /// capture file, and print its report.
    #[command(
        after_help = "Examples:\n  hmmtrace sim --list\n  hmmtrace sim --scenario gpu-stream --seed 7 -o stream.hmt\n  hmmtrace sim --scenario ./my-workload.toml --format json"
    )]
    Sim(sim::Args),
    /// Show how hmmtrace attaches to this kernel: for each HMM probe, the function, the
    /// mechanism and whether it attached (needs root, or CAP_BPF, CAP_PERFMON and
    /// CAP_DAC_READ_SEARCH).
    #[command(
        after_help = "Examples:\n  sudo hmmtrace probes\n  sudo hmmtrace probes --mechanism kprobe\n  sudo hmmtrace probes --attach my_drv_devmem_fault=migrate_to_ram"
    )]
    Probes(probes::Args),
    /// Record the kernel's HMM events into a capture file, system-wide, for some processes, or
    /// for a command and its children (needs root, or CAP_BPF, CAP_PERFMON and
    /// CAP_DAC_READ_SEARCH).
    #[command(
        after_help = "Examples:\n  sudo hmmtrace record -o run.hmt -- ./hmm-tests\n  sudo hmmtrace record -o all.hmt --duration 30s\n  sudo hmmtrace record -o p.hmt --pid 4242 --comm python3\n  hmmtrace report run.hmt"
    )]
    Record(record::Args),
    /// Watch the kernel's HMM events live in the TUI: rates, latency histograms, top
    /// processes, devices and symbols, the event log, and each probe's state and cost (needs
    /// root, or CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH).
    #[command(
        after_help = "Examples:\n  sudo hmmtrace live\n  sudo hmmtrace live --pid 4242 --dashboard migration\n  sudo hmmtrace live -o run.hmt --duration 1m\n\nKeys: ? shows them all; q quits."
    )]
    Live(live::Args),
    /// Summarise capture files: per event kind (and --by process, comm, device, symbol,
    /// migration direction or API),
    /// count, rate, and latency percentiles from HdrHistogram (3 significant digits), as text,
    /// JSON, HdrHistogram's hgrm or a self-contained HTML page, with the device pages and the
    /// findings (thrashing, contract breaks, retry storms, slow callbacks: docs/findings.md);
    /// optionally against a baseline.
    #[command(
        after_help = "Examples:\n  hmmtrace report stream.hmt\n  hmmtrace report stream.hmt --by pid --format json\n  hmmtrace report stream.hmt --format html -o stream.html\n  hmmtrace report stream.hmt --hdr-log stream.hlog --hdr-interval 1s\n  hmmtrace report new.hmt --compare old.hmt --fail-if 'p99>+10%' --fail-if 'count<-5%'\n  hmmtrace report run.hmt --check --fail-on error\n\nExit codes: 0 ok, 2 bad input, 4 a --fail-if threshold was crossed, 5 --check found findings at --fail-on or above."
    )]
    Report(report::Args),
    /// Write every event of a capture as JSON Lines or CSV for tools of your own (schema:
    /// docs/export.md), or as a Perfetto trace for ui.perfetto.dev.
    #[command(
        after_help = "Examples:\n  hmmtrace export run.hmt > run.jsonl\n  hmmtrace export run.hmt --format csv -o run.csv\n  hmmtrace export run.hmt --format perfetto -o run.pftrace\n  hmmtrace export run.hmt | jq 'select(.kind == \"device_fault\")'"
    )]
    Export(export::Args),
    /// Replay a capture file in the TUI at the recorded pace (or faster), with pause and seek.
    #[command(
        after_help = "Examples:\n  hmmtrace replay run.hmt\n  hmmtrace replay run.hmt --speed 10 --dashboard migration\n\nKeys: space pauses, + and - change the speed, ← and → seek 10 s, ? shows all keys."
    )]
    Replay(replay::Args),
    /// Serve the metrics of a source (the kernel, the engine or a capture) to Prometheus at
    /// /metrics (Prometheus text format), on loopback unless told otherwise.
    #[command(
        after_help = "Examples:\n  sudo hmmtrace serve\n  hmmtrace serve --source sim:gpu-stream\n  hmmtrace serve --source replay:run.hmt --listen 127.0.0.1:9500\n  sudo hmmtrace serve --listen 0.0.0.0:9435   # reachable from the network: an explicit choice\n\nGrafana dashboards for these metrics: dashboards/grafana/."
    )]
    Serve(serve::Args),
    /// Take the census of HMM's and ZONE_DEVICE's exports in this kernel: each one's export
    /// type (from Module.symvers), the loaded modules that import it (with their license and
    /// taint), who calls it at run time and how often, and the exports nothing consumes
    /// (needs root, or CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH).
    #[command(after_help = "Examples:
  sudo hmmtrace census --duration 30s
  sudo hmmtrace census --format json -- ./my-gpu-app
  sudo hmmtrace census -o census.hmt --duration 1m && hmmtrace report census.hmt
  sudo hmmtrace census --symvers /usr/src/linux/Module.symvers --modules-dir /opt/drivers")]
    Census(census::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Sim(a) => sim::run(a),
        Command::Report(a) => report::run(a),
        Command::Export(a) => export::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Live(a) => live::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Probes(a) => probes::run(a),
        Command::Record(a) => record::run(a),
        Command::Census(a) => census::run(a),
    }
}

/// Parses `--attach FUNC=ROLE` arguments; a bad one is bad input.
pub fn parse_attach(args: &[String]) -> anyhow::Result<Vec<crate::kernel::plan::ExtraAttach>> {
    args.iter()
        .map(|s| {
            s.parse()
                .map_err(|e: anyhow::Error| bad_input(e.context(format!("--attach {s}"))))
        })
        .collect()
}

/// Which scenario the engine runs, and with which seed: shared by `demo` and `sim`.
#[derive(clap::Args)]
pub struct ScenarioArgs {
    /// A built-in scenario's name (see `hmmtrace sim --list`) or a scenario file (TOML).
    #[arg(long, short, default_value = "gpu-stream")]
    pub scenario: String,
    /// Seed for the engine's jitter (default: the scenario's own).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl ScenarioArgs {
    /// Loads the scenario (bad input is exit code 2) and picks the seed.
    pub fn load(&self) -> anyhow::Result<(crate::scenario::Scenario, u64)> {
        let scenario = crate::scenario::Scenario::load(&self.scenario).map_err(bad_input)?;
        let seed = self.seed.unwrap_or(scenario.seed);
        Ok((scenario, seed))
    }
}

/// Parses durations like `10s`, `500ms`, `2m`, `1h 30m` (humantime's syntax), or plain
/// seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let d = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse()
            .map(std::time::Duration::from_secs)
            .map_err(|_| format!("'{s}' is out of range"))?
    } else {
        humantime::parse_duration(s)
            .map_err(|e| format!("'{s}' is not a duration ({e}; try 10s, 500ms, 2m)"))?
    };
    if d > std::time::Duration::from_secs(10_000_000) {
        return Err(format!("'{s}' is out of range (at most 10000000s)"));
    }
    Ok(d)
}

/// Like [`parse_duration`], for a duration that must be longer than 0 (an interval).
pub fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("'{s}': an interval must be longer than 0"));
    }
    Ok(d)
}

/// How the TUI looks: shared by `live`, `demo`, `sim --tui` and `replay`.
#[derive(clap::Args)]
pub struct ViewArgs {
    /// Dashboard layout: a built-in (overview, migration, mirror) or a TOML file (see
    /// dashboards/README.md).
    #[arg(long, default_value = "overview")]
    pub dashboard: String,
    /// Show pgmap owners as kernel addresses instead of dev1, dev2, ...
    #[arg(long)]
    pub kernel_pointers: bool,
    #[command(flatten)]
    pub findings: FindingArgs,
}

/// The detectors' thresholds (docs/findings.md says what each finding is).
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Findings")]
pub struct FindingArgs {
    /// Thrashing: round trips (device -> RAM -> device, or the reverse) of the same pages
    /// before it is a finding (1 to 1000000).
    #[arg(long, default_value_t = 3, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub thrash_round_trips: u32,
    /// Thrashing: the most time between a page's migration and its migration back for them to
    /// count as a bounce (on the source's clock).
    #[arg(long, default_value = "20ms", value_parser = parse_interval, value_name = "TIME")]
    pub thrash_lapse: Duration,
    /// Retry storms: -EBUSY and mmu_interval_read_retry retries of one range in a row (1 to
    /// 1000000).
    #[arg(long, default_value_t = 8, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub retry_storm: u64,
    /// Slow callbacks: an interval notifier's invalidate callback longer than this.
    #[arg(long, default_value = "1ms", value_parser = parse_interval, value_name = "TIME")]
    pub slow_invalidate: Duration,
    /// Slow callbacks: a migrate_to_ram longer than this.
    #[arg(long, default_value = "10ms", value_parser = parse_interval, value_name = "TIME")]
    pub slow_fault: Duration,
    /// Leaks: how long after a process exited its device pages may still be held.
    #[arg(long, default_value = "2s", value_parser = parse_interval, value_name = "TIME")]
    pub leak_grace: Duration,
}

impl FindingArgs {
    pub fn config(&self) -> crate::findings::Config {
        let ns = |d: Duration| d.as_nanos().min(u128::from(u64::MAX)) as u64;
        crate::findings::Config {
            thrash_round_trips: self.thrash_round_trips,
            thrash_lapse_ns: ns(self.thrash_lapse),
            retry_storm: self.retry_storm,
            slow_invalidate_ns: ns(self.slow_invalidate),
            slow_fault_ns: ns(self.slow_fault),
            leak_grace_ns: ns(self.leak_grace),
            ..crate::findings::Config::default()
        }
    }
}

impl ViewArgs {
    /// The dashboard; a bad one is bad input, named with file, line and reason.
    pub fn dashboard(&self) -> anyhow::Result<crate::tui::dashboard::Dashboard> {
        crate::tui::dashboard::Dashboard::load(&self.dashboard).map_err(bad_input)
    }

    /// A TUI titled `title`, with replay controls for a replay, whose source's clock runs at
    /// `speed` × wall time (a rate bin is then `speed` seconds of it, at most one).
    pub fn tui(
        &self,
        title: String,
        replay: Option<std::sync::Arc<crate::pipeline::source::replay::ReplayControl>>,
        speed: f64,
    ) -> anyhow::Result<(crate::tui::TuiSink, crate::tui::TuiView)> {
        let bin_ns = (crate::tui::app::SECOND as f64 * speed.min(1.0)).max(1.0) as u64;
        Ok(crate::tui::new(
            title,
            self.dashboard()?,
            self.kernel_pointers,
            replay,
            bin_ns,
        ))
    }
}

/// Whether standard output is a terminal the TUI can take over.
pub fn is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
}

/// A capture file a command writes. If the run fails on bad input (a scenario that fails
/// halfway) the file is removed again: it would only hold a fragment of a bad run. If it fails
/// otherwise (a full disk) the file stays, every complete block readable, and the error says
/// how many events those hold.
pub struct OutputFile {
    path: std::path::PathBuf,
    writer: crate::capture::Writer<std::fs::File>,
}

impl OutputFile {
    pub fn create(path: &std::path::Path) -> anyhow::Result<OutputFile> {
        Ok(OutputFile {
            path: path.to_path_buf(),
            writer: crate::capture::Writer::create(path)?,
        })
    }

    pub fn writer(&mut self) -> &mut crate::capture::Writer<std::fs::File> {
        &mut self.writer
    }

    /// What becomes of the file, given how the run went.
    pub fn settle<T>(self, ran: anyhow::Result<T>) -> anyhow::Result<T> {
        match ran {
            Ok(v) => Ok(v),
            Err(e) if crate::error::exit_code(&e) == crate::error::EXIT_BAD_INPUT => {
                drop(self.writer);
                let _ = std::fs::remove_file(&self.path);
                Err(e)
            }
            Err(e) => {
                let kept = self.writer.events_in_blocks();
                Err(e.context(format!(
                    "{} keeps the {kept} events of its complete blocks",
                    self.path.display()
                )))
            }
        }
    }
}

/// Creates `path` for an output (mode 0600: outputs can reveal what other processes do), or
/// standard output when there is none.
pub fn output(path: Option<&std::path::Path>) -> anyhow::Result<Box<dyn std::io::Write + Send>> {
    use anyhow::Context as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    Ok(match path {
        Some(p) => Box::new(Named {
            name: p.display().to_string(),
            out: std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(p)
                .with_context(|| format!("cannot create {}", p.display()))?,
        }),
        None => Box::new(Named {
            name: "standard output".into(),
            out: std::io::stdout(),
        }),
    })
}

/// A writer whose errors name what it writes to (`cannot write run.jsonl: No space left on
/// device`), whoever reports them: an I/O error is the output's, never the input's.
struct Named<W> {
    name: String,
    out: W,
}

impl<W: std::io::Write> Named<W> {
    fn named(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(e.kind(), format!("cannot write {}: {e}", self.name))
    }
}

impl<W: std::io::Write> std::io::Write for Named<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf).map_err(|e| self.named(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush().map_err(|e| self.named(e))
    }
}
