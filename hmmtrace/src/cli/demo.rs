//! `hmmtrace demo`: the engine source, paced to wall-clock time, into a capture file and the
//! TUI (or, when standard output is not a terminal or with `--no-tui`, a refreshing text
//! summary); then the report of what the capture holds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::capture::{Reader, Writer};
use crate::pipeline::source::engine::{EngineSource, Pace};
use crate::pipeline::{self, Control, Tee};
use crate::report::{self, live::Refreshing, Summary};

use super::{bad_input, is_terminal, parse_duration, ScenarioArgs, ViewArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// How long to run (e.g. 10s, 2m). Default: until you quit the TUI, or 10s without it.
    #[arg(long, short, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Capture file to write.
    #[arg(long, short, default_value = "hmmtrace-demo.hmt")]
    output: PathBuf,
    /// Events per second to release (the engine is much faster than real time).
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Print a refreshing text summary instead of the TUI.
    #[arg(long)]
    no_tui: bool,
    #[command(flatten)]
    view: ViewArgs,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.rate == 0 {
        return Err(bad_input(anyhow::anyhow!(
            "--rate must be at least 1 event per second"
        )));
    }
    let (scenario, seed) = a.scenario.load()?;
    let use_tui = !a.no_tui && is_terminal();
    // Checked even without the TUI: a bad --dashboard is a mistake worth hearing about.
    let dashboard = a.view.dashboard()?;
    let title = format!(
        "engine running '{}' at {} events/s → {}",
        scenario.name,
        a.rate,
        a.output.display()
    );
    let name = scenario.name.clone();
    let source = EngineSource::new(scenario, seed, Pace::Rate(a.rate));
    let mut writer = Writer::create(&a.output)?;
    if use_tui {
        let ctl = Control::new(a.duration)?;
        let (tui, mut view) = crate::tui::new(
            format!("demo: {title}"),
            dashboard,
            a.view.kernel_pointers,
            None,
        );
        pipeline::run(
            source,
            Tee::new().with(&mut writer).with(tui),
            Some(&mut view),
            &ctl,
        )?;
    } else {
        let ctl = Control::new(Some(a.duration.unwrap_or(Duration::from_secs(10))))?;
        let text = Refreshing::new(title);
        pipeline::run(source, Tee::new().with(&mut writer).with(text), None, &ctl)?;
    }
    // The final report is read back from the capture: what is shown is what was written.
    let mut from_file = Summary::default();
    Reader::open(&a.output)?.for_each(|e| {
        from_file.add(e);
        Ok(())
    })?;
    println!(
        "{}",
        report::text::render(&from_file, &format!("engine:{name} (from seed {seed})"))
    );
    println!(
        "capture: {} ({} events, {} bytes); summarise it again with `hmmtrace report {}`",
        a.output.display(),
        writer.events(),
        writer.bytes(),
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
