//! The replay source: a capture file at its recorded pace times a speed, with pause and seek
//! through a shared [`ReplayControl`] (the TUI's keys set it). Seeking forward reads ahead
//! without waiting; seeking back starts over from the first block (captures are read forward
//! only), after a `Status::Restart`, and reads ahead to the new position.
//!
//! Ticks are on the capture's clock (the first event's timestamp plus the position), also
//! while paused, and a `Status::Replay` says where the replay stands and, from the start, how
//! long the capture lasts (its last block is read first). Held at the end
//! ([`ReplaySource::hold_at_end`]), a replay waits there for a seek back instead of ending.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capture::{CaptureHeader, Reader};
use crate::error::bad_input;
use crate::event::Event;
use crate::pipeline::{Control, Finished, ReplayPosition, Sink, Source, Status};

/// Replay controls, shared between a viewer's keys and the replay source.
#[derive(Debug)]
pub struct ReplayControl {
    pub paused: AtomicBool,
    /// The speed's f64 bits (1.0 = as recorded): exact for a demo's 1/32.
    speed_bits: AtomicU64,
    /// A pending relative seek, in ns of capture time (the source takes it).
    pub seek_ns: AtomicI64,
}

/// Slowest and fastest replay speeds.
pub const MIN_SPEED: f64 = 1.0 / 64.0;
pub const MAX_SPEED: f64 = 1024.0;

impl ReplayControl {
    pub fn new(speed: f64) -> ReplayControl {
        let c = ReplayControl {
            paused: AtomicBool::new(false),
            speed_bits: AtomicU64::new(1f64.to_bits()),
            seek_ns: AtomicI64::new(0),
        };
        c.set_speed(speed);
        c
    }

    pub fn speed(&self) -> f64 {
        f64::from_bits(self.speed_bits.load(Ordering::Relaxed))
    }

    /// Sets the speed, within [`MIN_SPEED`] and [`MAX_SPEED`].
    pub fn set_speed(&self, speed: f64) {
        let speed = if speed.is_finite() { speed } else { 1.0 };
        self.speed_bits.store(
            speed.clamp(MIN_SPEED, MAX_SPEED).to_bits(),
            Ordering::Relaxed,
        );
    }
}

/// How often, at most, a waiting replay wakes to check its controls.
const POLL: Duration = Duration::from_millis(5);
/// How often a waiting replay tells its sinks where it is.
const PUBLISH: Duration = Duration::from_millis(50);

pub struct ReplaySource {
    path: PathBuf,
    header: CaptureHeader,
    ctrl: Arc<ReplayControl>,
    unpaced: bool,
    hold: bool,
    /// From the first event to the latest timestamp of the last block, read at open.
    length_hint: Option<u64>,
}

impl ReplaySource {
    /// Opens the file's header now (a bad file is bad input before anything runs).
    pub fn open(path: PathBuf, ctrl: Arc<ReplayControl>) -> anyhow::Result<ReplaySource> {
        let mut reader = Reader::open(&path).map_err(bad_input)?;
        let (mut first, mut dropped) = (Vec::new(), 0);
        reader
            .next_block(&mut first, &mut dropped)
            .map_err(bad_input)?;
        let length_hint = match (first.first(), crate::capture::last_timestamp(&path)?) {
            (Some(e), Some(last)) => Some(last.saturating_sub(e.ts_ns)),
            _ => None,
        };
        Ok(ReplaySource {
            path,
            header: reader.header,
            ctrl,
            unpaced: false,
            hold: false,
            length_hint,
        })
    }

    /// The capture's length on its clock, from its first event to its latest timestamp, as
    /// read at open (the viewer shows it from the start).
    pub fn length_ns(&self) -> Option<u64> {
        self.length_hint
    }

    /// At the end, wait for a seek back (or the stop) instead of ending: for a viewer.
    pub fn hold_at_end(mut self) -> ReplaySource {
        self.hold = true;
        self
    }

    /// Ignore the recorded pace: as fast as it reads (seeks still work). For tests.
    pub fn unpaced(mut self) -> ReplaySource {
        self.unpaced = true;
        self
    }

    fn position(&self, position_ns: u64, length_ns: Option<u64>) -> Status {
        Status::Replay(ReplayPosition {
            speed: self.ctrl.speed(),
            paused: self.ctrl.paused.load(Ordering::Relaxed),
            position_ns,
            length_ns,
        })
    }
}

impl Source for ReplaySource {
    fn header(&self) -> &CaptureHeader {
        &self.header
    }

    fn run(&mut self, sink: &mut dyn Sink, ctl: &Control) -> anyhow::Result<Finished> {
        let ctrl = Arc::clone(&self.ctrl);
        // The replay's position on the capture's clock, in ns from its first event.
        let mut position: u64 = 0;
        let mut target: Option<u64> = None;
        let mut length: Option<u64> = self.length_hint;
        'restart: loop {
            let mut reader = Reader::open(&self.path).map_err(bad_input)?;
            let mut first: Option<u64> = None;
            let mut clock = Instant::now();
            let mut published = Instant::now();
            let mut buf: Vec<Event> = Vec::new();
            let mut dropped = 0u64;
            // The latest event's offset: the capture's length once all are read.
            let mut latest = 0u64;
            while reader
                .next_block(&mut buf, &mut dropped)
                .map_err(bad_input)?
            {
                for e in &buf {
                    let t0 = *first.get_or_insert(e.ts_ns);
                    let at = e.ts_ns.saturating_sub(t0);
                    // Wait until the replay clock reaches this event, unless reading ahead to
                    // a seek target or unpaced.
                    loop {
                        if let Some(why) = ctl.should_stop() {
                            return Ok(why);
                        }
                        let seek = ctrl.seek_ns.swap(0, Ordering::Relaxed);
                        if seek < 0 {
                            target = Some(position.saturating_sub(seek.unsigned_abs()));
                            position = 0;
                            sink.status(&Status::Restart)?;
                            continue 'restart;
                        }
                        if seek > 0 {
                            target = Some(position.max(target.unwrap_or(0)) + seek as u64);
                        }
                        let now = Instant::now();
                        // Unpaced, the position is the events' own: no wall time in it.
                        let running = !ctrl.paused.load(Ordering::Relaxed) && !self.unpaced;
                        if running && target.is_none() {
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
                        if self.unpaced || at <= position {
                            break;
                        }
                        if published.elapsed() >= PUBLISH {
                            published = now;
                            sink.tick(t0 + position)?;
                            sink.status(&self.position(position, length))?;
                        }
                        std::thread::sleep(POLL);
                    }
                    position = position.max(at);
                    latest = latest.max(at);
                    sink.event(e)?;
                }
                if let Some(t0) = first {
                    sink.tick(t0 + position)?;
                }
                // Aggregate blocks (`record --aggregate`) and plan changes are passed on as they
                // come: they are not paced (a known limit; events are).
                if let Some(s) = reader.take_status() {
                    sink.status(&s)?;
                }
                if published.elapsed() >= PUBLISH {
                    published = Instant::now();
                    sink.status(&self.position(position, length))?;
                }
            }
            // The replay clock may have run past the last event while it waited.
            position = latest;
            length = Some(latest);
            if dropped > 0 {
                sink.status(&Status::Truncated {
                    file: self.path.clone(),
                    blocks: reader.blocks(),
                    dropped_bytes: dropped,
                })?;
            }
            sink.status(&self.position(position, length))?;
            if !self.hold {
                return Ok(Finished::Exhausted);
            }
            // Held at the end: a seek back starts over; anything else waits.
            loop {
                if let Some(why) = ctl.should_stop() {
                    return Ok(why);
                }
                let seek = ctrl.seek_ns.swap(0, Ordering::Relaxed);
                if seek < 0 {
                    target = Some(position.saturating_sub(seek.unsigned_abs()));
                    position = 0;
                    sink.status(&Status::Restart)?;
                    continue 'restart;
                }
                sink.status(&self.position(position, length))?;
                std::thread::sleep(PUBLISH);
            }
        }
    }
}
