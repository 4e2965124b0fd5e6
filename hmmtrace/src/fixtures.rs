//! Test fixtures: events and headers of the built-in scenarios, for the tests of sinks, which
//! themselves know nothing of the engine.

use crate::capture::CaptureHeader;
use crate::event::{Body, Comm, Event};
use crate::pipeline::source::engine::{self, EngineSource, Pace};
use crate::pipeline::{self, Control};

/// One event of process and thread `tgid` (comm "t") at `ts_ns`, for sinks' and detectors'
/// tests that build their own sequences.
pub fn event(ts_ns: u64, duration_ns: Option<u64>, tgid: u32, body: Body) -> Event {
    Event {
        ts_ns,
        duration_ns,
        cpu: 0,
        tgid,
        pid: tgid,
        comm: Comm::new("t"),
        unknown: 0,
        body,
    }
}

/// A migration of `pages` pages at `start` on device 1, every page moved, in `direction`
/// through `api` (`hmmtrace_common::DIRECTION_*`, `API_*`).
pub fn migration(start: u64, pages: u64, direction: u8, api: u8) -> Body {
    Body::Migration(hmmtrace_common::Migration {
        start,
        end: start + pages * 4096,
        pgmap_owner: 1,
        npages: pages,
        cpages: pages,
        migrated: pages,
        direction,
        api,
        ..hmmtrace_common::Migration::default()
    })
}

/// The header and events of one run of built-in `scenario` with `seed`.
pub fn scenario(name: &str, seed: u64) -> (CaptureHeader, Vec<Event>) {
    let s = crate::scenario::Scenario::load(name).expect("a built-in scenario");
    let header = engine::header(&s, seed);
    let mut events = Vec::new();
    pipeline::run(
        EngineSource::new(s, seed, Pace::Fast),
        pipeline::from_fn(|e| {
            events.push(*e);
            Ok(())
        }),
        None,
        &Control::without_signals(None),
    )
    .expect("a built-in scenario runs");
    (header, events)
}
