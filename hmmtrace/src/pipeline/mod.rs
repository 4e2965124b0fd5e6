//! The one flow every command uses: a [`Source`] yields events and typed [`Status`] into a
//! [`Sink`] (usually a [`Tee`] of several), optionally while a [`View`] (the TUI, the metrics
//! server) holds the foreground. Threads, signal handling and the end of a run live here, once;
//! a command only picks a source, its sinks and a view.
//!
//! # One event's path
//! A page migrated to a device, traced by `hmmtrace live -o run.hmt`:
//! 1. `hmmtrace-ebpf/src/migration.rs` pairs `migrate_vma_setup` … `migrate_vma_finalize` on
//!    the task and submits one `Migration` record to the `EVENTS` ring buffer
//!    (`hmmtrace-ebpf/src/emit.rs`).
//! 2. [`source::kernel`] waits on the ring with epoll; `kernel/session.rs` decodes the record
//!    into an [`Event`](crate::event::Event) (`event.rs`, `Event::from_wire`).
//! 3. [`run`] has called `begin` on the sink with the source's header; the source now calls
//!    `event` on the [`Tee`] ([`sink`]), which hands it to each sink in turn:
//!    - the TUI's sink (`tui/mod.rs`, `TuiSink`) buffers it and hands batches to the state
//!      (`tui/app.rs`, `App::ingest`), where it lands in the migration latency histogram that
//!      `tui/render/latency.rs` draws;
//!    - the capture writer (`capture/writer.rs`) encodes it into the current block
//!      (`capture/codec.rs`) and writes the block once full, or on the next `tick` a second
//!      later.
//! 4. When the viewer quits, [`run`] stops the source, sends `Status::Finished` and `finish`
//!    (the writer writes its last block), and drops the source, which detaches the programs.
//!
//! [`Status`]: status::Status

pub mod detect;
pub mod handoff;
pub mod reorder;
pub mod sink;
pub mod source;
pub mod status;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub use sink::{from_fn, Sink, Tee};
pub use source::Source;
pub use status::{Diagnostic, Finished, PlanChange, ProgramCost, ReplayPosition, Status};

/// What stops a run: SIGINT/SIGTERM (registered by [`Control::new`]), the viewer quitting, or
/// the duration passing. Sources poll it; views wait on it.
pub struct Control {
    sigint: Arc<AtomicBool>,
    sigterm: Arc<AtomicBool>,
    viewer: AtomicBool,
    duration: Option<Duration>,
    started: OnceLock<Instant>,
    registered: Vec<signal_hook::SigId>,
}

impl Control {
    /// A control that SIGINT and SIGTERM stop (the handlers only set flags). Create it before
    /// anything slow, such as attaching probes, so a signal that arrives meanwhile still stops
    /// the run cleanly. `duration` counts from the start of [`run`].
    pub fn new(duration: Option<Duration>) -> anyhow::Result<Control> {
        let mut c = Control::without_signals(duration);
        for (sig, flag) in [
            (signal_hook::consts::SIGINT, &c.sigint),
            (signal_hook::consts::SIGTERM, &c.sigterm),
        ] {
            let id = signal_hook::flag::register(sig, Arc::clone(flag))
                .map_err(|e| anyhow::anyhow!("cannot handle signal {sig}: {e}"))?;
            c.registered.push(id);
        }
        Ok(c)
    }

    /// A control that only [`Control::quit`] and the duration stop (for tests and embedding).
    pub fn without_signals(duration: Option<Duration>) -> Control {
        Control {
            sigint: Arc::new(AtomicBool::new(false)),
            sigterm: Arc::new(AtomicBool::new(false)),
            viewer: AtomicBool::new(false),
            duration,
            started: OnceLock::new(),
            registered: Vec::new(),
        }
    }

    /// The viewer is done: the source stops.
    pub fn quit(&self) {
        self.viewer.store(true, Ordering::Relaxed);
    }

    /// A signal arrived or the viewer quit: views stop too.
    pub fn interrupted(&self) -> Option<Finished> {
        if self.sigint.load(Ordering::Relaxed) {
            Some(Finished::Signal("SIGINT"))
        } else if self.sigterm.load(Ordering::Relaxed) {
            Some(Finished::Signal("SIGTERM"))
        } else if self.viewer.load(Ordering::Relaxed) {
            Some(Finished::Viewer)
        } else {
            None
        }
    }

    /// Whether the source should stop, and why: [`Control::interrupted`], or the duration.
    pub fn should_stop(&self) -> Option<Finished> {
        self.interrupted().or_else(|| {
            let started = self.started.get()?;
            (started.elapsed() >= self.duration?).then_some(Finished::Duration)
        })
    }

    /// Time since the run started (zero before).
    pub fn elapsed(&self) -> Duration {
        self.started.get().map_or(Duration::ZERO, Instant::elapsed)
    }

    fn start(&self) {
        let _ = self.started.set(Instant::now());
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        for id in self.registered.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Something that holds the foreground while the source runs: the TUI, the metrics server.
pub trait View {
    /// Runs until the viewer is done ([`Control::quit`]) or [`Control::interrupted`].
    fn run(&mut self, ctl: &Control) -> anyhow::Result<()>;
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    pub finished: Finished,
    /// Time from the start of the run until the source stopped.
    pub elapsed: Duration,
    /// The traced command's exit status, when the source ran one.
    pub command: Option<std::process::ExitStatus>,
}

/// Runs `source` into `sink` until the source ends or `ctl` stops it: `begin` with the
/// source's header, events, status and ticks, then `Status::Finished` and `finish`. The
/// source is dropped before this returns (a kernel source detaches its programs).
///
/// With a `view`, the source runs on its own thread while the view holds this one; the run
/// ends when the view returns (the source is then stopped, if it has not ended already). The
/// first error of the source, a sink or the view is returned.
pub fn run<S: Source, K: Sink + Send>(
    source: S,
    sink: K,
    view: Option<&mut dyn View>,
    ctl: &Control,
) -> anyhow::Result<Outcome> {
    ctl.start();
    match view {
        None if source.hand_off() => std::thread::scope(|scope| {
            let sinks = handoff::Handoff::spawn(scope, sink)?;
            drive(source, sinks, ctl)
        }),
        None => drive(source, sink, ctl),
        Some(view) => std::thread::scope(|scope| {
            let driver = std::thread::Builder::new()
                .name("source".into())
                .spawn_scoped(scope, || drive(source, sink, ctl))
                .map_err(|e| anyhow::anyhow!("cannot start the source's thread: {e}"))?;
            let shown = view.run(ctl);
            ctl.quit();
            let driven = driver
                .join()
                .map_err(|_| anyhow::anyhow!("the source's thread panicked"))?;
            shown?;
            driven
        }),
    }
}

fn drive<S: Source, K: Sink>(mut source: S, mut sink: K, ctl: &Control) -> anyhow::Result<Outcome> {
    sink.begin(source.header())?;
    let ran = source.run(&mut sink, ctl);
    let elapsed = ctl.elapsed();
    let finished = match &ran {
        Ok(f) => f.clone(),
        Err(e) => Finished::Failed(format!("{e:#}")),
    };
    let told = sink.status(&Status::Finished(finished.clone()));
    let done = sink.finish();
    let command = source.command_status();
    drop(source);
    ran?;
    told?;
    done?;
    Ok(Outcome {
        finished,
        elapsed,
        command,
    })
}
