//! The kernel source: a [`Session`]'s ring buffer, read by one reader that waits on it with
//! epoll, optionally tracing a command it starts itself.
//!
//! The ring is read when the kernel wakes the reader (records past the wake-up threshold, see
//! `hmmtrace-ebpf/src/emit.rs`) and at least every 100 ms (records below it are submitted
//! without a wake-up, which is what keeps the per-event cost low). Each wait ends with a tick on
//! `CLOCK_MONOTONIC`, the clock of the events' timestamps.
//!
//! A command is traced from its first instruction: it starts behind a gate (a shell that waits
//! on a pipe and then execs it, keeping its pid), its pid goes into the kernel's filter while
//! the probes attach, and the gate opens when the run begins.

use std::io::Write as _;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::capture::{CaptureHeader, ClockKind, PagemapOpsInfo};
use crate::error::bad_input;
use crate::kernel::session::enable_run_time_stats;
use crate::kernel::{monotonic_ns, Session, SessionOptions};
use crate::pipeline::{Control, Finished, Sink, Source, Status};

/// Longest wait on the ring between ticks.
const WAIT: Duration = Duration::from_millis(100);
/// How often `/proc/modules` is compared with what the session saw: a driver loaded during a
/// session is attached within this (plus the attach itself), well within a second.
const MODULES_EVERY: Duration = Duration::from_millis(250);
/// How often program costs are sent.
const COSTS_EVERY: Duration = Duration::from_secs(1);
/// How often the in-kernel aggregates are read (`--aggregate`).
const AGGREGATE_EVERY: Duration = Duration::from_secs(1);

pub struct KernelSource {
    session: Session,
    header: CaptureHeader,
    epoll: OwnedFd,
    command: Option<Command>,
    /// Holds BPF run-time statistics on while open (`with_program_costs`).
    stats: Option<anyhow::Result<OwnedFd>>,
    malformed_sent: u64,
    /// `hmmtrace census`: the exports, completed with the loaded modules (from files under
    /// the directory) and the run-time calls at the end.
    census: Option<(crate::census::Census, std::path::PathBuf)>,
}

/// A command traced from its first instruction.
struct Command {
    child: Child,
    /// Written to once the run begins; the command then execs.
    gate: Option<std::io::PipeWriter>,
    /// Set once it exited (and was reaped).
    status: Option<ExitStatus>,
}

impl KernelSource {
    /// Attaches the plan for `opts`. With a `command` (program and arguments), starts it behind
    /// its gate first and traces it and its children; it runs once [`Source::run`] begins.
    pub fn start(mut opts: SessionOptions, command: &[String]) -> anyhow::Result<KernelSource> {
        let command = match command.split_first() {
            Some((program, _)) => Some(Command::spawn(program, command)?),
            None => None,
        };
        if let Some(c) = &command {
            opts.tgids.push(c.child.id());
        }
        let started = Session::start(&opts).and_then(|session| {
            let epoll = epoll_on(&session)?;
            Ok((session, epoll))
        });
        // On an error, dropping the command kills it before its gate opens.
        let (session, epoll) = started?;
        let header = header(&session);
        Ok(KernelSource {
            session,
            header,
            epoll,
            command,
            stats: None,
            malformed_sent: 0,
            census: None,
        })
    }

    /// Also measure each program's own cost and send it about once a second (the kernel's
    /// BPF run-time statistics stay on while the source lives; they cost a little per run,
    /// so `record` does without).
    pub fn with_program_costs(mut self) -> KernelSource {
        self.stats = Some(enable_run_time_stats());
        self
    }

    /// Complete the census of `survey` (whose functions the session's options named) with the
    /// loaded modules and the calls counted, and send it at the end.
    pub fn with_census(mut self, survey: crate::census::Survey) -> KernelSource {
        self.census = Some((survey.census, survey.modules_dir));
        self
    }

    /// Census functions the census probe could not attach to, and why.
    pub fn census_refused(&self) -> &[String] {
        &self.session.census_refused
    }

    /// The attach plan, with each row's outcome.
    pub fn plan(&self) -> &[crate::probe::PlanEntry] {
        &self.session.plan
    }

    fn drain(&mut self, sink: &mut dyn Sink) -> anyhow::Result<()> {
        self.session.drain(&mut |e| sink.event(e))?;
        let found = self.session.discover()?;
        self.plan_changed(sink, found)?;
        for d in self.session.diagnostics() {
            sink.status(&Status::Diagnostic(d))?;
        }
        if self.session.malformed != self.malformed_sent {
            self.malformed_sent = self.session.malformed;
            sink.status(&Status::Malformed(self.malformed_sent))?;
        }
        Ok(())
    }

    /// With program costs on: each program's run count and time so far.
    fn send_costs(&mut self, sink: &mut dyn Sink) -> anyhow::Result<()> {
        if matches!(self.stats, Some(Ok(_))) {
            let costs = self.session.program_costs();
            sink.status(&Status::ProgramCosts(
                costs.into_iter().filter(|c| c.run_cnt > 0).collect(),
            ))?;
        }
        Ok(())
    }

    /// Follows driver modules loaded or unloaded since the last look (see `kernel::modules`).
    fn watch_modules(&mut self, sink: &mut dyn Sink) -> anyhow::Result<()> {
        let changes = self.session.watch_modules()?;
        if !changes.is_empty() {
            // What the ring holds was recorded under the plan before the change.
            self.drain(sink)?;
        }
        self.plan_changed(sink, changes)
    }

    /// Tells the sinks the plan changed, and how (nothing when `changes` is empty).
    fn plan_changed(&mut self, sink: &mut dyn Sink, changes: Vec<String>) -> anyhow::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        sink.status(&Status::Plan(std::sync::Arc::new(
            crate::pipeline::PlanChange {
                at_ns: monotonic_ns(),
                changes,
                plan: self.session.plan.clone(),
            },
        )))
    }

    fn send_aggregates(&mut self, sink: &mut dyn Sink) -> anyhow::Result<()> {
        if let Some(snap) = self.session.aggregates()? {
            sink.status(&Status::Aggregate(std::sync::Arc::new(snap)))?;
        }
        Ok(())
    }

    fn wait(&self) -> anyhow::Result<()> {
        let mut ready = [libc::epoll_event { events: 0, u64: 0 }];
        // SAFETY: epoll_wait writes at most `ready.len()` entries into `ready`, which lives
        // across the call; the epoll fd is owned by `self`.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                ready.as_mut_ptr(),
                ready.len() as i32,
                WAIT.as_millis() as i32,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            // A signal (SIGINT, SIGTERM) ends the wait early: the caller checks why.
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(anyhow::Error::new(e).context("cannot wait on the ring buffer"));
            }
        }
        Ok(())
    }
}

impl Source for KernelSource {
    fn header(&self) -> &CaptureHeader {
        &self.header
    }

    fn run(&mut self, sink: &mut dyn Sink, ctl: &Control) -> anyhow::Result<Finished> {
        if let Some(Err(e)) = &self.stats {
            sink.status(&Status::NoProgramCosts(format!("{e:#}")))?;
        }
        if let Some(c) = &mut self.command {
            c.release()?;
        }
        let mut costs_sent = Instant::now();
        let mut aggregated = Instant::now();
        let mut modules_seen = Instant::now();
        let census_from = monotonic_ns();
        let finished = loop {
            self.wait()?;
            self.drain(sink)?;
            if modules_seen.elapsed() >= MODULES_EVERY {
                modules_seen = Instant::now();
                self.watch_modules(sink)?;
            }
            if aggregated.elapsed() >= AGGREGATE_EVERY {
                aggregated = Instant::now();
                self.send_aggregates(sink)?;
            }
            if costs_sent.elapsed() >= COSTS_EVERY {
                costs_sent = Instant::now();
                self.send_costs(sink)?;
            }
            sink.tick(monotonic_ns())?;
            if let Some(why) = ctl.should_stop() {
                if why == Finished::Signal("SIGTERM") {
                    if let Some(c) = &self.command {
                        c.terminate();
                    }
                }
                break why;
            }
            if let Some(status) = self.command.as_mut().and_then(Command::exited) {
                break Finished::CommandExited(status.to_string());
            }
        };
        // Whatever the kernel wrote before we stopped is still in the ring (and the maps).
        self.drain(sink)?;
        self.send_aggregates(sink)?;
        self.send_costs(sink)?;
        if let Some((mut census, modules_dir)) = self.census.take() {
            crate::census::add_modules(&mut census, &modules_dir);
            let (calls, uncounted) = self.session.census_calls()?;
            let kallsyms = std::fs::read_to_string("/proc/kallsyms")
                .map_err(|e| anyhow::anyhow!("cannot read /proc/kallsyms: {e}"))?;
            let modules = crate::kernel::modules::Loaded::read();
            crate::census::add_calls(&mut census, &kallsyms, &modules, &calls);
            census.watched_ns = monotonic_ns() - census_from;
            census.uncounted_calls = uncounted;
            census.not_counted = self.session.census_refused.clone();
            sink.status(&Status::Census(std::sync::Arc::new(census)))?;
        }
        sink.tick(monotonic_ns())?;
        Ok(finished)
    }

    fn command_status(&mut self) -> Option<ExitStatus> {
        let c = self.command.as_mut()?;
        // Stopped by a signal or the duration: the command's status is still its own.
        c.status.or_else(|| c.child.wait().ok())
    }
}

impl Command {
    fn spawn(program: &str, argv: &[String]) -> anyhow::Result<Command> {
        let (rd, wr) = std::io::pipe()?;
        let rd_fd = rd.as_raw_fd();
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("read -r _ <&3; exec 3<&-; exec \"$0\" \"$@\"")
            .args(argv);
        // SAFETY: between fork and exec only dup2(2) and fcntl(2), which are
        // async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                // dup2 onto itself keeps close-on-exec set: then clear it instead.
                let rc = if rd_fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(rd_fd, 3)
                };
                if rc < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| bad_input(anyhow::anyhow!("cannot run '{program}': {e}")))?;
        drop(rd);
        Ok(Command {
            child,
            gate: Some(wr),
            status: None,
        })
    }

    /// Opens the gate: the command execs.
    fn release(&mut self) -> anyhow::Result<()> {
        if let Some(mut gate) = self.gate.take() {
            gate.write_all(b"go\n")
                .context("cannot release the command")?;
        }
        Ok(())
    }

    fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet (so not reused).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }
}

impl Drop for Command {
    fn drop(&mut self) {
        // Never released (the run did not begin): it must not exec untraced.
        if self.gate.take().is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An epoll instance watching the session's ring for data.
fn epoll_on(session: &Session) -> anyhow::Result<OwnedFd> {
    // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new fd we own.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(anyhow::Error::new(std::io::Error::last_os_error()).context("epoll_create1"));
    }
    // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
    let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
    let ring = session.ring_fd().as_raw_fd();
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 0,
    };
    // SAFETY: both fds are open for the call; `ev` is a valid epoll_event the kernel copies.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, ring, &mut ev) } < 0 {
        return Err(anyhow::Error::new(std::io::Error::last_os_error())
            .context("cannot watch the ring buffer"));
    }
    Ok(epoll)
}

/// The capture header of a session: the plan as it is, the system's page size, the kernel's
/// `dev_pagemap_ops` symbols.
fn header(session: &Session) -> CaptureHeader {
    CaptureHeader {
        wire_version: hmmtrace_common::WIRE_VERSION,
        source: "kernel".into(),
        host: crate::capture::hostname(),
        kernel_release: session.facts.release.clone(),
        clock: ClockKind::Monotonic,
        start_unix_ns: crate::capture::unix_now_ns(),
        seed: None,
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|b| b.trim().to_string()),
        pace: None,
        value_names: value_names(),
        page_size: crate::capture::system_page_size(),
        probe_plan: session.plan.clone(),
        devices: Vec::new(),
        pagemap_ops: session
            .facts
            .pagemap_ops
            .iter()
            .map(|o| PagemapOpsInfo {
                addr: o.addr,
                symbol: o.symbol.clone(),
                module: o.module.clone(),
            })
            .collect(),
        aggregate: session.aggregating(),
    }
}

/// The names `migrate:mm_migrate_pages`'s print format gives its mode and reason values.
fn value_names() -> std::collections::BTreeMap<String, Vec<(u64, String)>> {
    use crate::kernel::tracefs;
    let Ok(text) = tracefs::root()
        .and_then(|root| tracefs::read_format_text(&root, "migrate", "mm_migrate_pages"))
    else {
        return Default::default();
    };
    ["mode", "reason"]
        .into_iter()
        .map(|f| (format!("mm_migrate_pages.{f}"), tracefs::symbolic(&text, f)))
        .filter(|(_, names)| !names.is_empty())
        .collect()
}
