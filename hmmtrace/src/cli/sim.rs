//! `hmmtrace sim`: one run of a scenario on the engine source, as fast as it goes, into its
//! report (and optionally a capture file and the TUI).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::pipeline::detect::Detect;
use crate::pipeline::source::engine::{EngineSource, Pace};
use crate::pipeline::{self, Control, Tee};
use crate::report::{self, Summary};
use crate::scenario::{Scenario, BUILTIN};

use super::{bad_input, is_terminal, Format, OutputFile, ScenarioArgs, ViewArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Write the events to this capture file.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// List the built-in scenarios and exit.
    #[arg(long)]
    list: bool,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Show the run in the TUI (it runs at full speed; the TUI stays up to explore it).
    #[arg(long)]
    tui: bool,
    #[command(flatten)]
    view: ViewArgs,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.list {
        for (name, text) in BUILTIN {
            let s = Scenario::parse(name, text).expect("built-in scenarios are valid");
            println!("{name:<18} {}", s.description);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (scenario, seed) = a.scenario.load()?;
    if a.tui && !is_terminal() {
        return Err(bad_input(anyhow::anyhow!("--tui needs a terminal")));
    }
    let source_name = format!("engine:{} seed={seed}", scenario.name);
    let title = format!(
        "engine: {} seed={seed} (full speed, simulated time)",
        scenario.name
    );
    let source = EngineSource::new(scenario, seed, Pace::Fast);
    let mut summary = Summary::default();
    let mut output = a.output.as_deref().map(OutputFile::create).transpose()?;
    // Not under the TUI, which shows the run itself.
    let progress =
        (!a.tui && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(Progress::default);
    let sinks = Tee::new()
        .with(&mut summary)
        .with_opt(output.as_mut().map(OutputFile::writer))
        .with_opt(progress);
    let config = a.view.findings.config();
    let ran = if a.tui {
        let (tui, mut view) = a.view.tui(title, None, 1.0)?;
        pipeline::run(
            source,
            Detect::new(sinks.with(tui), config),
            Some(&mut view),
            &Control::new(None)?,
        )
    } else {
        // No signal handling: an interrupted run ends the process, not the report quietly
        // early.
        pipeline::run(
            source,
            Detect::new(sinks, config),
            None,
            &Control::without_signals(None),
        )
    };
    match (output, &a.output) {
        (Some(mut out), Some(path)) => {
            let (events, bytes) = (out.writer().events(), out.writer().bytes());
            out.settle(ran)?;
            eprintln!(
                "wrote {events} events to {} ({bytes} bytes, {:.1} bytes/event)",
                path.display(),
                bytes as f64 / events.max(1) as f64
            );
        }
        _ => {
            ran?;
        }
    }
    match a.format {
        Format::Text => print!("{}", report::text::render(&summary, &source_name)),
        Format::Json => println!("{}", report::json::render(&summary, &source_name)),
    }
    Ok(ExitCode::SUCCESS)
}

/// A line on a terminal's stderr saying how far a run has got, once it has taken a second:
/// events so far and the simulated time they reach. Cleared when the run ends.
struct Progress {
    started: std::time::Instant,
    bar: Option<indicatif::ProgressBar>,
    events: u64,
    sim_ns: u64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            started: std::time::Instant::now(),
            bar: None,
            events: 0,
            sim_ns: 0,
        }
    }
}

impl Progress {
    fn update(&mut self) {
        if self.bar.is_none() && self.started.elapsed() >= std::time::Duration::from_secs(1) {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} events, {} of simulated time",
                self.events,
                report::text::fmt_ns(self.sim_ns)
            ));
        }
    }
}

impl crate::pipeline::Sink for Progress {
    fn event(&mut self, e: &crate::event::Event) -> anyhow::Result<()> {
        self.events += 1;
        self.sim_ns = self.sim_ns.max(e.ts_ns);
        if self.events.is_multiple_of(1 << 16) {
            self.update();
        }
        Ok(())
    }

    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        self.sim_ns = self.sim_ns.max(now_ns);
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        Ok(())
    }
}
