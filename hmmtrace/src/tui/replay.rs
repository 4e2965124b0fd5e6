//! Replaying a capture into the TUI at the recorded pace (times a speed), with pause and seek:
//! the capture reader is the source, a [`Feed`] the sink. Seeking forward reads ahead without
//! waiting; seeking back starts over from the first block (captures are read forward only)
//! and reads ahead to the new position.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::app::ReplayState;
use super::ui::ReplayControl;
use super::Feed;
use crate::capture::Reader;
use crate::event::{Event, Sink};

/// How a replay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Every event was replayed (the TUI stays up to look at them).
    Done,
    /// `stop` was set (the viewer quit).
    Stopped,
}

/// Replays `path` into `feed` until its end or `stop`. With `unpaced`, as fast as it reads.
pub fn run(
    path: &Path,
    ctrl: &ReplayControl,
    feed: &mut Feed,
    stop: &AtomicBool,
    unpaced: bool,
) -> anyhow::Result<Ended> {
    // The replay's position on the capture's clock, in ns from its first event.
    let mut position: u64 = 0;
    let mut target: Option<u64> = None;
    'restart: loop {
        let mut reader = Reader::open(path)?;
        let mut first: Option<u64> = None;
        let mut clock = Instant::now();
        let mut buf: Vec<Event> = Vec::new();
        let mut dropped = 0u64;
        while reader.next_block(&mut buf, &mut dropped)? {
            for e in &buf {
                let t0 = *first.get_or_insert(e.ts_ns);
                let at = e.ts_ns.saturating_sub(t0);
                // Wait until the replay clock reaches this event, unless reading ahead to a
                // seek target or unpaced.
                loop {
                    if stop.load(Ordering::Relaxed) {
                        feed.flush(true);
                        return Ok(Ended::Stopped);
                    }
                    let seek = ctrl.seek_ns.swap(0, Ordering::Relaxed);
                    if seek < 0 {
                        let back = position.saturating_sub(seek.unsigned_abs());
                        feed.with_app(|a| a.clear());
                        position = 0;
                        target = Some(back);
                        continue 'restart;
                    }
                    if seek > 0 {
                        target = Some(position.max(target.unwrap_or(0)) + seek as u64);
                    }
                    let paused = ctrl.paused.load(Ordering::Relaxed);
                    let now = Instant::now();
                    if !paused && target.is_none() {
                        let step = now.duration_since(clock).as_nanos() as f64 * ctrl.speed();
                        position = position.saturating_add(step as u64);
                    }
                    clock = now;
                    if let Some(t) = target {
                        if at <= t {
                            break;
                        }
                        position = t;
                        target = None;
                    }
                    if unpaced || at <= position {
                        break;
                    }
                    publish(feed, t0 + position, position, ctrl, paused);
                    std::thread::sleep(Duration::from_millis(5));
                }
                position = position.max(at);
                feed.set_timeline(t0 + position);
                feed.event(e)?;
            }
            publish(
                feed,
                first.unwrap_or(0) + position,
                position,
                ctrl,
                ctrl.paused.load(Ordering::Relaxed),
            );
        }
        feed.flush(true);
        let length = position;
        feed.with_app(|a| {
            a.replay = Some(ReplayState {
                speed: ctrl.speed(),
                paused: false,
                position_ns: length,
                length_ns: length,
            });
            a.finished = Some(if dropped > 0 {
                format!("end of capture ({dropped} bytes of an incomplete last block dropped)")
            } else {
                "end of capture".into()
            });
        });
        return Ok(Ended::Done);
    }
}

/// Hands over what is buffered and updates the replay line of the status panel.
fn publish(feed: &mut Feed, timeline: u64, position: u64, ctrl: &ReplayControl, paused: bool) {
    feed.set_timeline(timeline);
    feed.flush(false);
    feed.with_app(|a| {
        a.advance(timeline);
        a.replay = Some(ReplayState {
            speed: ctrl.speed(),
            paused,
            position_ns: position,
            length_ns: 0,
        });
    });
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::capture::{CaptureHeader, Writer};
    use crate::report::Summary;
    use crate::tui::app::{App, SourceInfo};

    fn capture(dir: &Path) -> (std::path::PathBuf, CaptureHeader) {
        let s = crate::scenario::Scenario::load("gpu-stream").unwrap();
        let header = CaptureHeader::for_engine(&s, 3);
        let path = dir.join("g.hmt");
        let mut w = Writer::create(&path, &header).unwrap();
        s.run(3, &mut |e| w.write_event(e)).unwrap();
        w.finish().unwrap();
        (path, header)
    }

    fn replayed(path: &Path, header: &CaptureHeader, ctrl: &ReplayControl) -> App {
        let app = Arc::new(Mutex::new(App::new(SourceInfo::default(), header, false)));
        let mut feed = Feed::new(Arc::clone(&app));
        let ended = run(path, ctrl, &mut feed, &AtomicBool::new(false), true).unwrap();
        assert_eq!(ended, Ended::Done);
        drop(feed);
        Arc::try_unwrap(app).ok().unwrap().into_inner().unwrap()
    }

    #[test]
    fn a_replay_shows_the_totals_report_computes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, header) = capture(dir.path());
        let mut summary = Summary::default();
        Reader::open(&path)
            .unwrap()
            .for_each(|e| {
                summary.add(e);
                Ok(())
            })
            .unwrap();
        let check = |app: &App| {
            assert_eq!(app.events, summary.events);
            for (kind, k) in &summary.kinds {
                assert_eq!(app.total(*kind), k.count, "{kind:?}");
                assert_eq!(app.pages[*kind as usize - 1], k.pages, "{kind:?}");
                assert_eq!(
                    app.latency[kind].since_start.value_at_quantile(0.99),
                    k.latency.value_at_quantile(0.99),
                    "{kind:?} p99"
                );
            }
            assert_eq!(app.finished.as_deref(), Some("end of capture"));
        };
        check(&replayed(&path, &header, &ReplayControl::new(1.0)));
        // Seeking back starts over: nothing is counted twice.
        let ctrl = ReplayControl::new(1.0);
        ctrl.seek_ns.store(-SEEK_BACK_TEST_NS, Ordering::Relaxed);
        check(&replayed(&path, &header, &ctrl));
    }

    const SEEK_BACK_TEST_NS: i64 = 10_000_000_000;

    #[test]
    fn a_stopped_replay_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (path, header) = capture(dir.path());
        let app = Arc::new(Mutex::new(App::new(SourceInfo::default(), &header, false)));
        let mut feed = Feed::new(app);
        let stop = AtomicBool::new(true);
        let ctrl = ReplayControl::new(1.0);
        assert_eq!(
            run(&path, &ctrl, &mut feed, &stop, false).unwrap(),
            Ended::Stopped
        );
    }
}
