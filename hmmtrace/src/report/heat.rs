//! The address-space heat map's data: for the processes that migrate or fault pages, where in
//! their address space and when, and which way (to the device, to RAM, a CPU fault on a device
//! page). Thrashing shows in it at a glance: the same band of addresses lit again and again in
//! alternating colours.
//!
//! Bounded: the first [`MAX_PROCESSES`] such processes, each at most [`MAX_POINTS`] points;
//! when a process's points fill up, every other one is dropped and from then on only every
//! second (then fourth, ...) event is kept, so the map covers the whole run evenly.

use crate::event::{Body, Event};
use hmmtrace_common::{API_MIGRATE_DEVICE, DIRECTION_TO_DEVICE};

pub const MAX_PROCESSES: usize = 8;
pub const MAX_POINTS: usize = 8192;

/// Which way a point went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    ToDevice,
    ToRam,
    Fault,
}

#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub ts_ns: u64,
    pub start: u64,
    pub end: u64,
    pub what: Move,
}

#[derive(Clone, Debug)]
pub struct Track {
    pub tgid: u32,
    pub comm: String,
    /// Events of this process that qualify, all of them (the points are a sample).
    pub events: u64,
    pub points: Vec<Point>,
    stride: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Heat {
    pub tracks: Vec<Track>,
}

impl Heat {
    pub fn add(&mut self, e: &Event) {
        let (start, end, what) = match &e.body {
            Body::Migration(m) if m.api != API_MIGRATE_DEVICE && m.end > m.start => (
                m.start,
                m.end,
                if m.direction == DIRECTION_TO_DEVICE {
                    Move::ToDevice
                } else {
                    Move::ToRam
                },
            ),
            Body::DeviceFault(f) => (f.address, f.address + 4096, Move::Fault),
            _ => return,
        };
        let i = match self.tracks.iter().position(|t| t.tgid == e.tgid) {
            Some(i) => i,
            None if self.tracks.len() < MAX_PROCESSES => {
                self.tracks.push(Track {
                    tgid: e.tgid,
                    comm: e.comm.to_string(),
                    events: 0,
                    points: Vec::new(),
                    stride: 1,
                });
                self.tracks.len() - 1
            }
            None => return,
        };
        let t = &mut self.tracks[i];
        t.events += 1;
        if !t.events.is_multiple_of(t.stride) {
            return;
        }
        if t.points.len() >= MAX_POINTS {
            let mut keep = false;
            t.points.retain(|_| {
                keep = !keep;
                keep
            });
            t.stride *= 2;
            if !t.events.is_multiple_of(t.stride) {
                return;
            }
        }
        t.points.push(Point {
            ts_ns: e.ts_ns,
            start,
            end,
            what,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmmtrace_common::DeviceFault;

    #[test]
    fn points_stay_bounded_and_cover_the_whole_run() {
        let mut h = Heat::default();
        let n = (MAX_POINTS * 5) as u64;
        for i in 0..n {
            h.add(&crate::fixtures::event(
                i,
                None,
                1,
                Body::DeviceFault(DeviceFault {
                    address: 0x1000 * i,
                    ..DeviceFault::default()
                }),
            ));
        }
        let t = &h.tracks[0];
        assert!(t.points.len() <= MAX_POINTS && t.points.len() >= MAX_POINTS / 4);
        assert_eq!(t.events, n);
        assert!(
            t.points.last().unwrap().ts_ns >= n - 16,
            "the end of the run is in it"
        );
        assert!(t.points[0].ts_ns < 16, "and the start");
    }
}
