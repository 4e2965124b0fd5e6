//! `hmmtrace live`: the kernel's HMM events in the TUI as they happen, optionally also into a
//! capture file. The session is read on this thread; the TUI draws on its own.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmmtrace::capture::Writer;
use hmmtrace::event::Sink as _;
use hmmtrace::kernel::session::enable_run_time_stats;
use hmmtrace::kernel::Session;
use hmmtrace::tui::app::{App, SourceInfo};
use hmmtrace::tui::ui::Ui;
use hmmtrace::tui::{self, Feed};

use super::record::{header, TraceArgs};
use super::{
    bad_input, is_terminal, parse_duration, require_privileges, stop_on_signals, ViewArgs,
};

#[derive(clap::Args)]
pub struct Args {
    /// Also write the events to this capture file (created mode 0600).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Stop after this long (e.g. 30s, 5m); the TUI stays up to look at the result.
    #[arg(long, short, value_parser = parse_duration)]
    duration: Option<Duration>,
    #[command(flatten)]
    trace: TraceArgs,
    #[command(flatten)]
    view: ViewArgs,
}

/// `CLOCK_MONOTONIC` in ns: the clock of the kernel's event timestamps.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let opts = a.trace.options(&[])?;
    let dashboard = a.view.dashboard()?;
    if !is_terminal() {
        return Err(bad_input(anyhow::anyhow!(
            "live needs a terminal; to trace without one use `hmmtrace record`"
        )));
    }
    if let Some(code) = require_privileges() {
        return Ok(code);
    }
    let stop = stop_on_signals()?;
    let mut session = Session::start(&opts)?;
    // Program costs are counted only while this descriptor is open; closing it (at exit, or if
    // hmmtrace is killed) turns the statistics off again.
    let stats = enable_run_time_stats();
    let header = header(&session);
    let mut writer = match &a.output {
        Some(p) => Some(Writer::create(p, &header)?),
        None => None,
    };
    let release = header.kernel_release.clone();
    let source = SourceInfo {
        title: format!("kernel {release} (live)"),
        probes: header.probe_plan.clone(),
    };
    let app = Arc::new(Mutex::new(App::new(
        source,
        &header,
        a.view.kernel_pointers,
    )));
    if let Err(e) = &stats {
        tui::lock(&app).finished = Some(format!("no program costs: {e:#}"));
    }
    let view = {
        let (app, stop) = (Arc::clone(&app), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("tui".into())
            .spawn(move || tui::run(app, Ui::new(dashboard, None), stop))?
    };
    let mut feed = Feed::new(Arc::clone(&app));
    let started = Instant::now();
    let mut last_second = Instant::now();
    let result = (|| -> anyhow::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            if a.duration.is_some_and(|d| started.elapsed() >= d) {
                feed.with_app(|a| a.finished = Some("--duration reached".into()));
                break;
            }
            feed.set_timeline(monotonic_ns());
            session.drain(&mut |e| {
                if let Some(w) = writer.as_mut() {
                    w.write_event(e)?;
                }
                feed.event(e)
            })?;
            feed.flush(false);
            if last_second.elapsed() >= Duration::from_secs(1) {
                last_second = Instant::now();
                let costs = session.program_costs();
                feed.with_app(|a| a.costs = costs.into_iter().filter(|c| c.run_cnt > 0).collect());
                if let Some(w) = writer.as_mut() {
                    w.flush_block()?;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    })();
    if let Err(e) = &result {
        feed.with_app(|a| a.finished = Some(format!("error: {e:#}")));
    }
    // The viewer quits when done looking; the probes stay attached until then only if tracing
    // ended by --duration (then nothing more is read).
    let shown = view
        .join()
        .map_err(|_| anyhow::anyhow!("the TUI thread panicked"))?;
    session.drain(&mut |e| match writer.as_mut() {
        Some(w) => w.write_event(e),
        None => Ok(()),
    })?;
    drop(session);
    drop(stats);
    if let Some(w) = writer {
        let (events, bytes) = w.finish()?;
        eprintln!(
            "hmmtrace: wrote {events} events ({bytes} bytes) to {}",
            a.output
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string())
        );
    }
    shown?;
    result?;
    Ok(ExitCode::SUCCESS)
}
