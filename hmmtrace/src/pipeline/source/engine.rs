//! The engine source: the reference HMM engine running a scenario, once as fast as it goes
//! ([`Pace::Fast`]), or again and again, each run continuing the previous one's clock, either
//! with its simulated clock running at a fraction of wall time ([`Pace::Speed`], the demo's
//! default: what is shown per second is per simulated second, as in a report) or releasing a
//! set number of events per wall second ([`Pace::Rate`]). Ticks are on the simulated clock.
//!
//! A scenario that fails while running is bad input; an error a sink returns is passed on as
//! it is (a full disk is no fault of the scenario).

use std::time::{Duration, Instant};

use crate::capture::{CaptureHeader, ClockKind, DeviceInfo};
use crate::error::bad_input;
use crate::event::Event;
use crate::pipeline::{Control, Finished, Sink, Source};
use crate::scenario::Scenario;

/// How fast the engine's events are released.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// One run, as fast as it goes.
    Fast,
    /// Simulated seconds per wall second, run after run until stopped.
    Speed(f64),
    /// This many events per second of wall time, run after run until stopped.
    Rate(u64),
}

pub struct EngineSource {
    scenario: Scenario,
    seed: u64,
    pace: Pace,
    header: CaptureHeader,
}

/// Ends a run early: the source was told to stop, or a sink failed (kept aside).
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Events between ticks, checks of the pace and of the control.
const CHECK_EVERY: u64 = 64;

impl EngineSource {
    pub fn new(scenario: Scenario, seed: u64, pace: Pace) -> EngineSource {
        let mut header = header(&scenario, seed);
        if let Pace::Speed(speed) = pace {
            header.pace = Some(speed);
        }
        EngineSource {
            scenario,
            seed,
            pace,
            header,
        }
    }
}

impl Source for EngineSource {
    fn header(&self) -> &CaptureHeader {
        &self.header
    }

    fn hand_off(&self) -> bool {
        self.pace == Pace::Fast
    }

    fn run(&mut self, sink: &mut dyn Sink, ctl: &Control) -> anyhow::Result<Finished> {
        let start = Instant::now();
        let (mut released, mut offset, mut runs, mut now) = (0u64, 0u64, 0u64, 0u64);
        let mut stopped: Option<Finished> = None;
        let mut failed: Option<anyhow::Error> = None;
        loop {
            let seed = self.seed + runs;
            let result = self.scenario.run(seed, &mut |e: &Event| {
                // Each run continues the previous one's clock (the first, without a copy).
                let shifted;
                let e = if offset == 0 {
                    e
                } else {
                    shifted = Event {
                        ts_ns: e.ts_ns + offset,
                        ..*e
                    };
                    &shifted
                };
                now = now.max(e.ts_ns);
                let mut step = || -> anyhow::Result<()> {
                    let due = match self.pace {
                        Pace::Fast => None,
                        Pace::Rate(rate) => (released.is_multiple_of(CHECK_EVERY))
                            .then(|| Duration::from_secs_f64(released as f64 / rate as f64)),
                        // Released when the simulated clock, run at `speed`, reaches it.
                        Pace::Speed(speed) => {
                            Some(Duration::from_secs_f64(e.ts_ns as f64 / 1e9 / speed))
                        }
                    };
                    if let Some(due) = due {
                        let elapsed = start.elapsed();
                        // What is due within a millisecond goes now: fewer, longer sleeps.
                        if due > elapsed + Duration::from_millis(1) {
                            // Waiting: tell the sinks where the clock is (a quiet stretch of
                            // simulated time still passes on screen).
                            sink.tick(now.min(e.ts_ns))?;
                            std::thread::sleep(due - elapsed);
                        }
                    }
                    sink.event(e)?;
                    released += 1;
                    if released.is_multiple_of(CHECK_EVERY) {
                        sink.tick(now)?;
                    }
                    Ok(())
                };
                if let Err(err) = step() {
                    failed = Some(err);
                    return Err(Interrupted.into());
                }
                if released.is_multiple_of(CHECK_EVERY) {
                    if let Some(why) = ctl.should_stop() {
                        stopped = Some(why);
                        return Err(Interrupted.into());
                    }
                }
                Ok(())
            });
            if let Some(err) = failed {
                return Err(err);
            }
            if let Some(why) = stopped {
                sink.tick(now)?;
                return Ok(why);
            }
            let stats = result.map_err(bad_input)?;
            offset += stats.sim_ns + 1_000_000;
            now = now.max(offset);
            sink.tick(now)?;
            runs += 1;
            if self.pace == Pace::Fast {
                return Ok(Finished::Exhausted);
            }
            if let Some(why) = ctl.should_stop() {
                return Ok(why);
            }
        }
    }
}

/// The header of a capture of the engine running `scenario` with `seed`.
pub fn header(scenario: &Scenario, seed: u64) -> CaptureHeader {
    CaptureHeader {
        wire_version: hmmtrace_common::WIRE_VERSION,
        source: format!("engine:{}", scenario.name),
        host: crate::capture::hostname(),
        kernel_release: String::new(),
        clock: ClockKind::Simulated,
        start_unix_ns: crate::capture::unix_now_ns(),
        seed: Some(seed),
        page_size: crate::engine::PAGE_SIZE,
        probe_plan: Vec::new(),
        boot_id: None,
        pace: None,
        value_names: Default::default(),
        devices: scenario
            .device_table()
            .into_iter()
            .map(|(owner, name, kind)| DeviceInfo {
                owner,
                name,
                driver: "hmmtrace-engine".into(),
                memory: format!("{kind:?}").to_lowercase(),
            })
            .collect(),
        pagemap_ops: Vec::new(),
        aggregate: false,
    }
}
