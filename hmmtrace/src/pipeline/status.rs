//! What a source says about itself besides events, as typed values that travel through the
//! sinks in order with the events: [`Status`] (and one the pipeline adds: `Detecting`).

use std::fmt;
use std::path::PathBuf;

/// One eBPF program's own cost, from the kernel's run-time statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramCost {
    pub name: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

/// A message an eBPF program logged (`--ebpf-log`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The `hmmtrace-ebpf` module that emitted it, one per kernel path (`migration`,
    /// `page_free`, ...).
    pub probe: String,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: &'static str,
    pub message: String,
}

/// Where a replay stands, on the capture's own clock.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReplayPosition {
    pub speed: f64,
    pub paused: bool,
    /// Position from the capture's first event, in ns.
    pub position_ns: u64,
    /// Length from the first to the last event, in ns, once known (at the end of a first pass).
    pub length_ns: Option<u64>,
}

/// Why a source stopped yielding events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finished {
    /// It had no more: the end of a capture, of a scenario run.
    Exhausted,
    /// `--duration` passed.
    Duration,
    /// SIGINT or SIGTERM (the signal's name).
    Signal(&'static str),
    /// The viewer quit.
    Viewer,
    /// The traced command exited with this status (`ExitStatus` as text).
    CommandExited(String),
    /// It failed: the error, in one line (the run returns the error itself).
    Failed(String),
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finished::Exhausted => f.write_str("no more events"),
            Finished::Duration => f.write_str("--duration reached"),
            Finished::Signal(name) => f.write_str(name),
            Finished::Viewer => f.write_str("stopped"),
            Finished::CommandExited(status) => write!(f, "the command exited ({status})"),
            Finished::Failed(e) => write!(f, "error: {e}"),
        }
    }
}

/// A source's message that is not an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Each loaded eBPF program's run count and time so far (about once a second).
    ProgramCosts(Vec<ProgramCost>),
    /// Program costs cannot be measured, and why.
    NoProgramCosts(String),
    /// Ring-buffer records that did not decode so far (a bug: counted, not hidden).
    Malformed(u64),
    /// What an eBPF program logged, with `--ebpf-log`.
    Diagnostic(Diagnostic),
    /// A capture file ended in an incomplete block: its complete blocks were read, this many
    /// bytes after them were not.
    Truncated {
        file: PathBuf,
        blocks: u64,
        dropped_bytes: u64,
    },
    /// A replay's position.
    Replay(ReplayPosition),
    /// A replay seeked backwards and starts over from the first event: forget what was seen.
    Restart,
    /// The source yields no more events, and why. `finish` follows.
    Finished(Finished),
    /// Not the source's: the pipeline runs the detectors on this stream
    /// ([`super::detect`]), so a sink that shows findings can say "none" when none come.
    Detecting,
    /// `--aggregate`: the in-kernel aggregates as of now, cumulative since the start (about
    /// once a second, and once at the end). They stand for the events the kernel did not
    /// send.
    Aggregate(std::sync::Arc<crate::aggregate::Snapshot>),
    /// The attach plan changed during the session: a module loaded or unloaded, a callback
    /// discovered.
    Plan(std::sync::Arc<PlanChange>),
    /// `hmmtrace census`: who consumes HMM's exports (at the end of the session).
    Census(std::sync::Arc<crate::census::Census>),
}

/// A change of the attach plan during a session, and the whole plan after it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlanChange {
    /// When, on the events' clock.
    pub at_ns: u64,
    /// What changed, one line each (`test_hmm loaded: dmirror_devmem_fault (migrate_to_ram)
    /// attached (kprobe)`).
    pub changes: Vec<String>,
    pub plan: Vec<crate::probe::PlanEntry>,
}
