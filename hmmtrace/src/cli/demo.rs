//! `hmmtrace demo`: the engine source, its simulated clock run at a fraction of wall time,
//! into a capture file and the TUI (or, when standard output is not a terminal or with
//! `--no-tui`, a refreshing text summary); then the report of what the capture holds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::pipeline::detect::Detect;
use crate::pipeline::source::capture::CaptureSource;
use crate::pipeline::source::engine::{EngineSource, Pace};
use crate::pipeline::{self, Control, Tee};
use crate::report::{self, live::Refreshing, GroupBy};

use super::{bad_input, is_terminal, parse_duration, OutputFile, ScenarioArgs, ViewArgs};

/// The capture's name when `-o` does not give one (numbered when it exists).
const DEFAULT_OUTPUT: &str = "hmmtrace-demo.hmt";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// How long to run (e.g. 10s, 2m). Default: until you quit the TUI, or 10s without it.
    #[arg(long, short, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Capture file to write [default: hmmtrace-demo.hmt, or hmmtrace-demo-2.hmt, -3, ... if
    /// it exists: a file -o names is replaced].
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Simulated seconds per second of wall time: the engine is far faster than real time
    /// (gpu-stream does 670k events per simulated second). What the TUI shows per second is per
    /// simulated second, as in the report. A fraction like 1/32 or a number like 0.05.
    #[arg(long, default_value = "1/32", value_parser = parse_speed, conflicts_with = "rate")]
    speed: f64,
    /// Release this many events per wall second instead of pacing by --speed (the simulated
    /// clock then runs unevenly; rates shown are still per simulated second).
    #[arg(long)]
    rate: Option<u64>,
    /// Print a refreshing text summary instead of the TUI.
    #[arg(long)]
    no_tui: bool,
    #[command(flatten)]
    view: ViewArgs,
}

/// `0.05` or `1/32`: positive, at most 1000.
pub fn parse_speed(s: &str) -> Result<f64, String> {
    let v = match s.split_once('/') {
        Some((n, d)) => {
            let (n, d): (f64, f64) = (
                n.trim()
                    .parse()
                    .map_err(|_| format!("'{s}' is not a speed"))?,
                d.trim()
                    .parse()
                    .map_err(|_| format!("'{s}' is not a speed"))?,
            );
            n / d
        }
        None => s
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a speed"))?,
    };
    if !(v.is_finite() && v > 0.0 && v <= 1000.0) {
        return Err(format!("'{s}': a speed is more than 0 and at most 1000"));
    }
    Ok(v)
}

/// `hmmtrace-demo.hmt`, or the first of `hmmtrace-demo-2.hmt`, `-3`, ... that does not exist.
fn fresh_default() -> PathBuf {
    let mut path = PathBuf::from(DEFAULT_OUTPUT);
    let mut n = 2;
    while path.exists() {
        path = PathBuf::from(format!("hmmtrace-demo-{n}.hmt"));
        n += 1;
    }
    path
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.rate == Some(0) {
        return Err(bad_input(anyhow::anyhow!(
            "--rate must be at least 1 event per second"
        )));
    }
    let (scenario, seed) = a.scenario.load()?;
    let use_tui = !a.no_tui && is_terminal();
    // Checked even without the TUI: a bad --dashboard is a mistake worth hearing about.
    a.view.dashboard()?;
    let path = a.output.clone().unwrap_or_else(fresh_default);
    let (pace, how) = match a.rate {
        Some(rate) => (Pace::Rate(rate), format!("{rate} events/s")),
        None => (
            Pace::Speed(a.speed),
            format!("simulated time at {}×", a.speed),
        ),
    };
    let title = format!("engine '{}', {how} → {}", scenario.name, path.display());
    let name = scenario.name.clone();
    let source = EngineSource::new(scenario, seed, pace);
    let config = a.view.findings.config();
    let mut output = OutputFile::create(&path)?;
    let writer = output.writer();
    let ran = if use_tui {
        let ctl = Control::new(a.duration)?;
        let speed = if a.rate.is_some() { 1.0 } else { a.speed };
        let (tui, mut view) = a.view.tui(format!("demo: {title}"), None, speed)?;
        pipeline::run(
            source,
            Detect::new(Tee::new().with(&mut *writer).with(tui), config),
            Some(&mut view),
            &ctl,
        )
    } else {
        let ctl = Control::new(Some(a.duration.unwrap_or(Duration::from_secs(10))))?;
        let text = Refreshing::new(title);
        pipeline::run(
            source,
            Detect::new(Tee::new().with(&mut *writer).with(text), config),
            None,
            &ctl,
        )
    };
    let (events, bytes) = (writer.events(), writer.bytes());
    output.settle(ran)?;
    // The final report is read back from the capture: what is shown is what was written.
    let (from_file, _) = super::report::summarise(
        CaptureSource::open(std::slice::from_ref(&path))?.quiet(),
        GroupBy::Kind,
        false,
        None,
        a.view.findings.config(),
    )?;
    println!(
        "{}",
        report::text::render(&from_file, &format!("engine:{name} (from seed {seed})"))
    );
    println!(
        "capture: {} ({events} events, {bytes} bytes); summarise it again with `hmmtrace report {}`",
        path.display(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
