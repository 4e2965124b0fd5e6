//! `hmmtrace record`: attach the plan, stream the kernel's events into a capture file until
//! the command exits, the duration passes, or SIGINT/SIGTERM; then drain, flush and detach.
//!
//! The ring is read when the kernel wakes us (past the wake-up threshold) and on a 100 ms
//! timer (records below it are submitted without a wake-up); a partly filled block is written
//! out every second, so a killed recorder loses at most about a second of events.

use std::os::fd::AsRawFd as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hmmtrace::capture::{CaptureHeader, ClockKind, PagemapOpsInfo, ProbeStatus, Writer};
use hmmtrace::kernel::plan::Status;
use hmmtrace::kernel::{Session, SessionOptions};
use hmmtrace::report::{self, Summary};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;

use super::probes::MechanismArg;
use super::{bad_input, parse_duration, require_privileges};

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
    /// A command to run and trace, with its children; recording stops when it exits and
    /// hmmtrace exits with its status.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// What to trace and how: shared by `record` and `live`.
#[derive(clap::Args)]
pub struct TraceArgs {
    /// Trace only this process and its descendants (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// Trace only tasks with this command name (at most 15 bytes).
    #[arg(long)]
    comm: Option<String>,
    /// Ring buffer size: a power of two, e.g. 4M, 64M.
    #[arg(long, default_value = "4M", value_parser = parse_size)]
    ring_size: u32,
    #[arg(long, value_enum, default_value = "auto")]
    mechanism: MechanismArg,
    /// Also hook a driver callback: FUNC=ROLE (see `hmmtrace probes --help`). Repeatable.
    #[arg(long = "attach", value_name = "FUNC=ROLE")]
    extra: Vec<String>,
}

impl TraceArgs {
    /// The session options these arguments ask for, tracing `more_tgids` too. A pid that does
    /// not exist or a bad --attach is bad input (checked before anything is loaded).
    pub fn options(&self, more_tgids: &[u32]) -> anyhow::Result<SessionOptions> {
        let extra = super::parse_attach(&self.extra)?;
        for pid in &self.pids {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(bad_input(anyhow::anyhow!("--pid {pid}: no such process")));
            }
        }
        Ok(SessionOptions {
            ring_bytes: self.ring_size,
            tgids: self.pids.iter().chain(more_tgids).copied().collect(),
            comm: self.comm.clone(),
            mechanism: self.mechanism.into(),
            extra,
            ..Default::default()
        })
    }
}

fn parse_size(s: &str) -> Result<u32, String> {
    let (num, mult) = match s.trim().to_ascii_uppercase() {
        t if t.ends_with('K') => (t.trim_end_matches('K').to_string(), 1u64 << 10),
        t if t.ends_with('M') => (t.trim_end_matches('M').to_string(), 1 << 20),
        t if t.ends_with('G') => (t.trim_end_matches('G').to_string(), 1 << 30),
        t => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (try 4M, 64M)"))?;
    let bytes = n * mult;
    if !bytes.is_power_of_two() || !(4096..=1 << 30).contains(&bytes) {
        return Err(format!(
            "'{s}': the ring size must be a power of two between 4K and 1G"
        ));
    }
    Ok(bytes as u32)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let opts = a.trace.options(&[])?;
    if let Some(code) = require_privileges() {
        return Ok(code);
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(record(a, opts))
}

async fn record(a: Args, mut opts: SessionOptions) -> anyhow::Result<ExitCode> {
    // Signals only set flags, checked on the timer: no signal driver (tokio's needs AF_UNIX
    // sockets, which minimal kernels lack) and nothing to do in a handler. Registered first,
    // so a signal that arrives while the probes attach still stops the recording cleanly.
    let (sigint, sigterm) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&sigint))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&sigterm))?;
    // The command must be traced from its first instruction, so it starts behind a gate: a
    // shell that waits on a pipe (fd 3) and then execs the command, keeping its pid. Its pid
    // goes into the kernel's filter before the gate opens. (Blocking in pre_exec instead would
    // deadlock: spawn waits for the exec.)
    let mut gate = None;
    let mut child = None;
    if let Some((prog, _)) = a.command.split_first() {
        let (rd, wr) = std::io::pipe()?;
        let rd_fd = rd.as_raw_fd();
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("read -r _ <&3; exec 3<&-; exec \"$0\" \"$@\"")
            .args(&a.command);
        // SAFETY: between fork and exec only dup2(2), which is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                if libc::dup2(rd_fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let spawned = cmd
            .spawn()
            .map_err(|e| bad_input(anyhow::anyhow!("cannot run '{prog}': {e}")))?;
        drop(rd);
        gate = Some(wr);
        child = Some(spawned);
    }
    if let Some(c) = &child {
        opts.tgids.push(c.id());
    }
    let mut session = match Session::start(&opts) {
        Ok(s) => s,
        Err(e) => {
            if let Some(c) = &mut child {
                let _ = c.kill();
            }
            return Err(e);
        }
    };
    let refused: Vec<String> = session
        .plan
        .iter()
        .filter(|r| matches!(r.status, Status::Denied(_) | Status::Unreachable(_)))
        .map(|r| format!("{} ({}): {}", r.role.name(), r.symbol, r.status))
        .collect();
    if !refused.is_empty() {
        if a.strict {
            if let Some(c) = &mut child {
                let _ = c.kill();
            }
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
    let mut writer = Writer::create(&a.output, &header(&session))?;
    if let Some(mut w) = gate.take() {
        use std::io::Write as _;
        w.write_all(b"go\n").context("cannot release the command")?;
    }
    // SAFETY: the ring's fd stays open as long as `session`, and `ring_fd` is dropped first.
    let ring_fd = unsafe { AsyncFd::register(session.ring_fd().as_raw_fd()) }
        .map_err(|e| anyhow::anyhow!("cannot watch the ring buffer: {e}"))?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let started = Instant::now();
    let deadline = a.duration.map(|d| started + d);
    let mut summary = Summary::default();
    let mut last_flush = Instant::now();
    let mut exit = ExitCode::SUCCESS;
    let stopped_by;
    loop {
        let mut drain = |session: &mut Session| -> anyhow::Result<()> {
            session.drain(&mut |e| {
                summary.add(e);
                writer.write_event(e)
            })?;
            Ok(())
        };
        tokio::select! {
            guard = ring_fd.readable() => {
                let mut guard = guard?;
                drain(&mut session)?;
                guard.clear_ready();
            }
            _ = tick.tick() => {
                drain(&mut session)?;
                if last_flush.elapsed() >= Duration::from_secs(1) {
                    writer.flush_block()?;
                    last_flush = Instant::now();
                }
                if sigint.load(Ordering::Relaxed) {
                    stopped_by = "SIGINT";
                    break;
                }
                if sigterm.load(Ordering::Relaxed) {
                    stopped_by = "SIGTERM";
                    if let Some(c) = &child {
                        // SAFETY: kill(2) on our own child's pid.
                        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
                    }
                    break;
                }
                if let Some(status) = child.as_mut().map(|c| c.try_wait()).transpose()?.flatten() {
                    exit = exit_code(status);
                    child = None;
                    stopped_by = "the command exited";
                    break;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    stopped_by = "--duration";
                    break;
                }
            }
        }
    }
    // Whatever the kernel wrote before we stopped is still in the ring.
    session.drain(&mut |e| {
        summary.add(e);
        writer.write_event(e)
    })?;
    let (events, bytes) = writer.finish()?;
    drop(ring_fd);
    drop(session);
    if let Some(mut c) = child {
        // Stopped by a signal or the duration: the command's status is still its own.
        exit = exit_code(c.wait()?);
    }
    eprintln!(
        "hmmtrace: recorded {events} events ({bytes} bytes) in {:.1}s to {}; stopped by {stopped_by}; probes detached",
        started.elapsed().as_secs_f64(),
        a.output.display()
    );
    eprint!("{}", report::text::render(&summary, "recorded"));
    Ok(exit)
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from(128 + sig as u8),
        _ => ExitCode::FAILURE,
    }
}

pub(super) fn header(session: &Session) -> CaptureHeader {
    let mut plan: Vec<ProbeStatus> = session
        .plan
        .iter()
        .map(|r| ProbeStatus {
            probe: r.probe.name().into(),
            symbol: r.symbol.clone(),
            mechanism: match &r.status {
                Status::Attached(m) => m.to_string(),
                _ => "-".into(),
            },
            status: r.status.to_string(),
        })
        .collect();
    plan.push(ProbeStatus {
        probe: "system_migration".into(),
        symbol: "migrate:mm_migrate_pages".into(),
        mechanism: "tracepoint".into(),
        status: "attached (tracepoint)".into(),
    });
    CaptureHeader {
        wire_version: hmmtrace_common::WIRE_VERSION,
        source: "kernel".into(),
        host: hmmtrace::capture::hostname(),
        kernel_release: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        clock: ClockKind::Monotonic,
        start_unix_ns: hmmtrace::capture::unix_now_ns(),
        seed: None,
        page_size: 4096,
        probe_plan: plan,
        devices: Vec::new(),
        pagemap_ops: session
            .pagemap_ops
            .iter()
            .map(|o| PagemapOpsInfo {
                addr: o.addr,
                symbol: o.symbol.clone(),
                module: o.module.clone(),
            })
            .collect(),
    }
}
