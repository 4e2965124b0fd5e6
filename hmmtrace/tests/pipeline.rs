//! The pipeline from outside the crate: a sink written here, and nowhere else, sees the whole
//! lifecycle of every kind of source (begin with the header, events, status, ticks on the
//! source's clock, the end and why, finish), and a replay shows what a report computes.

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hmmtrace::capture::{CaptureHeader, ClockKind, Writer};
use hmmtrace::event::Event;
use hmmtrace::pipeline::source::capture::CaptureSource;
use hmmtrace::pipeline::source::engine::{EngineSource, Pace};
use hmmtrace::pipeline::source::replay::{ReplayControl, ReplaySource};
use hmmtrace::pipeline::{self, Control, Finished, Sink, Source, Status};
use hmmtrace::report::Summary;
use hmmtrace::scenario::Scenario;

/// Everything a sink is told, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    Begin(String),
    Event(Event),
    Status(Status),
    Tick(u64),
    Finish,
}

#[derive(Default)]
struct Recorder(Vec<Seen>);

impl Sink for Recorder {
    fn begin(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        self.0.push(Seen::Begin(header.source.clone()));
        Ok(())
    }
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.0.push(Seen::Event(*event));
        Ok(())
    }
    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        self.0.push(Seen::Status(status.clone()));
        Ok(())
    }
    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        self.0.push(Seen::Tick(now_ns));
        Ok(())
    }
    fn finish(&mut self) -> anyhow::Result<()> {
        self.0.push(Seen::Finish);
        Ok(())
    }
}

impl Recorder {
    fn events(&self) -> Vec<Event> {
        self.0
            .iter()
            .filter_map(|s| match s {
                Seen::Event(e) => Some(*e),
                _ => None,
            })
            .collect()
    }

    fn ticks(&self) -> Vec<u64> {
        self.0
            .iter()
            .filter_map(|s| match s {
                Seen::Tick(t) => Some(*t),
                _ => None,
            })
            .collect()
    }

    /// The lifecycle's frame: begin first, then the end and why, then finish, once each.
    fn check_frame(&self, source: &str, why: &Finished) {
        assert_eq!(self.0.first(), Some(&Seen::Begin(source.into())));
        let n = self.0.len();
        assert!(n >= 3, "{:?}", self.0);
        assert_eq!(self.0[n - 2], Seen::Status(Status::Finished(why.clone())));
        assert_eq!(self.0[n - 1], Seen::Finish);
        let begins = self
            .0
            .iter()
            .filter(|s| matches!(s, Seen::Begin(_)))
            .count();
        let finishes = self.0.iter().filter(|s| **s == Seen::Finish).count();
        assert_eq!((begins, finishes), (1, 1));
    }
}

fn scenario(name: &str) -> Scenario {
    Scenario::load(name).unwrap()
}

/// The events of one fast run of `name`, as the engine yields them.
fn engine_events(name: &str) -> Vec<Event> {
    let mut r = Recorder::default();
    let s = scenario(name);
    let seed = s.seed;
    pipeline::run(
        EngineSource::new(s, seed, Pace::Fast),
        &mut r,
        None,
        &Control::without_signals(None),
    )
    .unwrap();
    r.events()
}

fn capture_of(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, Vec<Event>) {
    let path = dir.join(format!("{name}.hmt"));
    let s = scenario(name);
    let seed = s.seed;
    let mut w = Writer::create(&path).unwrap();
    let mut r = Recorder::default();
    pipeline::run(
        EngineSource::new(s, seed, Pace::Fast),
        pipeline::Tee::new().with(&mut w).with(&mut r),
        None,
        &Control::without_signals(None),
    )
    .unwrap();
    (path, r.events())
}

#[test]
fn an_engine_source_yields_its_run_with_ticks_on_the_simulated_clock() {
    let s = scenario("gpu-stream");
    let seed = s.seed;
    let mut r = Recorder::default();
    let out = pipeline::run(
        EngineSource::new(s, seed, Pace::Fast),
        &mut r,
        None,
        &Control::without_signals(None),
    )
    .unwrap();
    assert_eq!(out.finished, Finished::Exhausted);
    r.check_frame("engine:gpu-stream", &Finished::Exhausted);
    let events = r.events();
    assert!(events.len() > 1000, "{}", events.len());
    let ticks = r.ticks();
    assert!(ticks.len() >= events.len() / 64, "a tick every 64 events");
    assert!(ticks.windows(2).all(|w| w[0] <= w[1]), "ticks move forward");
    // On the simulated clock: within the events' time, not the wall clock's.
    let last_ts = events.iter().map(|e| e.ts_ns).max().unwrap();
    assert!(ticks.iter().all(|t| *t <= last_ts + 2_000_000), "{ticks:?}");
    assert!(*ticks.last().unwrap() >= last_ts);
}

#[test]
fn a_paced_engine_source_repeats_its_scenario_until_stopped() {
    let s = scenario("migrate");
    let seed = s.seed;
    let one_run = engine_events("migrate").len();
    let mut r = Recorder::default();
    // 200k events/s for 300 ms: far more than one run of `migrate`.
    let out = pipeline::run(
        EngineSource::new(s, seed, Pace::Rate(200_000)),
        &mut r,
        None,
        &Control::without_signals(Some(Duration::from_millis(300))),
    )
    .unwrap();
    assert_eq!(out.finished, Finished::Duration);
    r.check_frame("engine:migrate", &Finished::Duration);
    let events = r.events();
    assert!(events.len() > 2 * one_run, "{} vs {one_run}", events.len());
    // Each run continues the previous one's clock.
    assert!(events
        .windows(2)
        .all(|w| w[0].ts_ns <= w[1].ts_ns + 1_000_000_000));
    assert!(events[events.len() - 1].ts_ns > events[one_run - 1].ts_ns);
}

#[test]
fn a_capture_source_yields_the_captured_events_and_says_when_a_file_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (path, written) = capture_of(dir.path(), "migrate_fault");
    let mut r = Recorder::default();
    let source = CaptureSource::open(std::slice::from_ref(&path))
        .unwrap()
        .quiet();
    assert_eq!(source.header().clock, ClockKind::Simulated);
    pipeline::run(source, &mut r, None, &Control::without_signals(None)).unwrap();
    r.check_frame("engine:migrate_fault", &Finished::Exhausted);
    assert_eq!(r.events(), written);
    assert_eq!(r.ticks().last(), written.last().map(|e| e.ts_ns).as_ref());
    // A writer killed mid-block: the complete blocks are read and a status says the rest.
    let (big, _) = capture_of(dir.path(), "gpu-stream");
    let bytes = std::fs::read(&big).unwrap();
    let cut = dir.path().join("cut.hmt");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let mut r = Recorder::default();
    let source = CaptureSource::open(std::slice::from_ref(&cut))
        .unwrap()
        .quiet();
    pipeline::run(source, &mut r, None, &Control::without_signals(None)).unwrap();
    let truncated = r.0.iter().find_map(|s| match s {
        Seen::Status(Status::Truncated {
            file,
            dropped_bytes,
            ..
        }) => Some((file.clone(), *dropped_bytes)),
        _ => None,
    });
    let (file, dropped) = truncated.expect("a Truncated status");
    assert_eq!(file, cut);
    assert!(dropped > 0);
}

#[test]
fn a_replay_source_yields_positions_restarts_and_the_capture() {
    let dir = tempfile::tempdir().unwrap();
    let (path, written) = capture_of(dir.path(), "gpu-stream");
    let ctrl = Arc::new(ReplayControl::new(1.0));
    // A seek back before the first event: the replay starts over once, after a Restart.
    ctrl.seek_ns.store(-1, Ordering::Relaxed);
    let mut r = Recorder::default();
    let source = ReplaySource::open(path, Arc::clone(&ctrl))
        .unwrap()
        .unpaced();
    pipeline::run(source, &mut r, None, &Control::without_signals(None)).unwrap();
    r.check_frame("engine:gpu-stream", &Finished::Exhausted);
    let restart =
        r.0.iter()
            .position(|s| *s == Seen::Status(Status::Restart))
            .expect("a Restart");
    let after: Vec<Event> = r.0[restart..]
        .iter()
        .filter_map(|s| match s {
            Seen::Event(e) => Some(*e),
            _ => None,
        })
        .collect();
    assert_eq!(
        after, written,
        "after the restart, every event once, in order"
    );
    let last = r.0.iter().rev().find_map(|s| match s {
        Seen::Status(Status::Replay(p)) => Some(*p),
        _ => None,
    });
    let last = last.expect("a Replay status");
    // Positions run from the first event to the latest timestamp (events come in the order
    // their calls ended, so the last one is not always the latest).
    let span = written.iter().map(|e| e.ts_ns).max().unwrap() - written[0].ts_ns;
    assert_eq!(last.length_ns, Some(span));
    assert_eq!(last.position_ns, span);
    let ticks = r.ticks();
    assert!(ticks
        .iter()
        .all(|t| *t >= written[0].ts_ns && *t <= written[0].ts_ns + span));
}

#[test]
fn a_replay_shows_the_totals_a_report_computes_even_after_seeking_back() {
    let dir = tempfile::tempdir().unwrap();
    let (path, written) = capture_of(dir.path(), "gpu-stream");
    let mut summary = Summary::default();
    for e in &written {
        summary.add(e);
    }
    for seek in [0, -10_000_000_000] {
        let ctrl = Arc::new(ReplayControl::new(1.0));
        ctrl.seek_ns.store(seek, Ordering::Relaxed);
        let dashboard = hmmtrace::tui::dashboard::Dashboard::load("overview").unwrap();
        let (tui, view) = hmmtrace::tui::new("t", dashboard, false, None, 1_000_000_000);
        let source = ReplaySource::open(path.clone(), ctrl).unwrap().unpaced();
        pipeline::run(source, tui, None, &Control::without_signals(None)).unwrap();
        let app = view.app();
        let app = hmmtrace::tui::lock(&app);
        assert_eq!(app.events, summary.events, "seek {seek}");
        for (kind, k) in &summary.kinds {
            assert_eq!(app.total(*kind), k.count, "{kind:?}");
            assert_eq!(app.pages[kind.index()], k.pages, "{kind:?}");
            let tui = &app.latency[kind].since_start;
            for q in [0.0, 0.5, 0.99, 1.0] {
                assert_eq!(tui.quantile(q), k.latency.quantile(q), "{kind:?} q={q}");
            }
        }
        assert_eq!(app.finished.as_deref(), Some("no more events"));
    }
}

#[test]
fn a_stopped_source_says_why_and_still_finishes_its_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = capture_of(dir.path(), "gpu-stream");
    let ctl = Control::without_signals(None);
    ctl.quit();
    let mut r = Recorder::default();
    let source = ReplaySource::open(path, Arc::new(ReplayControl::new(1.0))).unwrap();
    let out = pipeline::run(source, &mut r, None, &ctl).unwrap();
    assert_eq!(out.finished, Finished::Viewer);
    r.check_frame("engine:gpu-stream", &Finished::Viewer);
}

#[test]
fn a_failing_sink_ends_the_run_with_its_error_and_every_sink_finishes() {
    struct Full;
    impl Sink for Full {
        fn event(&mut self, _: &Event) -> anyhow::Result<()> {
            Err(std::io::Error::from_raw_os_error(libc::ENOSPC).into())
        }
    }
    let s = scenario("migrate");
    let seed = s.seed;
    let mut r = Recorder::default();
    let err = pipeline::run(
        EngineSource::new(s, seed, Pace::Fast),
        pipeline::Tee::new().with(&mut r).with(Full),
        None,
        &Control::without_signals(None),
    )
    .unwrap_err();
    // The sink's own error, not blamed on the scenario (not bad input).
    assert_eq!(
        hmmtrace::error::exit_code(&err),
        hmmtrace::error::EXIT_FAILURE
    );
    assert!(format!("{err:#}").contains("No space left"), "{err:#}");
    assert_eq!(r.0.last(), Some(&Seen::Finish));
    assert!(matches!(
        &r.0[r.0.len() - 2],
        Seen::Status(Status::Finished(Finished::Failed(e))) if e.contains("No space left")
    ));
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn a_kernel_source_yields_events_costs_and_ticks_on_the_monotonic_clock() {
    use hmmtrace::pipeline::source::kernel::KernelSource;
    let before = hmmtrace::kernel::monotonic_ns();
    let source = KernelSource::start(Default::default(), &[])
        .unwrap()
        .with_program_costs();
    let header = source.header().clone();
    assert_eq!(header.clock, ClockKind::Monotonic);
    assert!(header
        .probe_plan
        .iter()
        .any(|p| p.symbol == "migrate:mm_migrate_pages" && p.status.is_attached()));
    // Compaction fires migrate:mm_migrate_pages.
    let compact = std::thread::spawn(|| {
        for _ in 0..10 {
            let _ = std::fs::write("/proc/sys/vm/compact_memory", "1");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut r = Recorder::default();
    let out = pipeline::run(
        source,
        &mut r,
        None,
        &Control::without_signals(Some(Duration::from_millis(2500))),
    )
    .unwrap();
    compact.join().unwrap();
    let after = hmmtrace::kernel::monotonic_ns();
    assert_eq!(out.finished, Finished::Duration);
    r.check_frame("kernel", &Finished::Duration);
    assert!(!r.events().is_empty(), "compaction produced no event");
    let ticks = r.ticks();
    assert!(
        ticks.len() >= 20,
        "a tick at least every 100 ms: {}",
        ticks.len()
    );
    assert!(
        ticks.iter().all(|t| (before..=after).contains(t)),
        "CLOCK_MONOTONIC"
    );
    let costs = r.0.iter().find_map(|s| match s {
        Seen::Status(Status::ProgramCosts(c)) => Some(c.clone()),
        _ => None,
    });
    let costs = costs.expect("program costs about once a second");
    assert!(costs
        .iter()
        .any(|c| c.name == "tracepoint_mm_migrate_pages" && c.run_cnt > 0));
}

/// Seeks back once when the replay is held at its end, quits the second time.
struct SeekBackAtTheEnd<'a> {
    ctrl: Arc<ReplayControl>,
    ctl: &'a Control,
    ends: u32,
    events: u64,
    restarts: u32,
}

impl Sink for SeekBackAtTheEnd<'_> {
    fn event(&mut self, _: &Event) -> anyhow::Result<()> {
        self.events += 1;
        Ok(())
    }
    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        match status {
            Status::Restart => self.restarts += 1,
            Status::Replay(p) if p.length_ns.is_some_and(|l| p.position_ns >= l) => {
                self.ends += 1;
                if self.ends == 1 {
                    self.ctrl.seek_ns.store(-10_000_000_000, Ordering::Relaxed);
                } else {
                    self.ctl.quit();
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[test]
fn a_replay_knows_its_length_at_open_and_seeks_back_after_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let (path, written) = capture_of(dir.path(), "migrate_fault");
    let span = written.iter().map(|e| e.ts_ns).max().unwrap() - written[0].ts_ns;
    let ctrl = Arc::new(ReplayControl::new(1.0));
    let source = ReplaySource::open(path, Arc::clone(&ctrl))
        .unwrap()
        .unpaced()
        .hold_at_end();
    assert_eq!(source.length_ns(), Some(span), "before anything is read");
    let ctl = Control::without_signals(Some(Duration::from_secs(60)));
    let mut sink = SeekBackAtTheEnd {
        ctrl,
        ctl: &ctl,
        ends: 0,
        events: 0,
        restarts: 0,
    };
    let out = pipeline::run(source, &mut sink, None, &ctl).unwrap();
    assert_eq!(
        out.finished,
        Finished::Viewer,
        "held at the end until the viewer quit"
    );
    assert_eq!(sink.restarts, 1, "the seek back after the end started over");
    assert_eq!(sink.events, 2 * written.len() as u64, "every event, twice");
}
