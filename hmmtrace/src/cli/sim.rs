//! `hmmtrace sim`: one run of a scenario on the reference engine.

use std::path::PathBuf;
use std::process::ExitCode;

use hmmtrace::capture::{CaptureHeader, Writer};
use hmmtrace::event::Sink as _;
use hmmtrace::report::{self, Summary};
use hmmtrace::scenario::{Scenario, BUILTIN};
use hmmtrace::tui::app::{App, SourceInfo};
use hmmtrace::tui::ui::Ui;
use hmmtrace::tui::Feed;
use std::sync::{Arc, Mutex};

use super::{bad_input, is_terminal, Format, ScenarioArgs, ViewArgs};

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
    let mut view = None;
    if a.tui {
        if !is_terminal() {
            return Err(bad_input(anyhow::anyhow!("--tui needs a terminal")));
        }
        let header = CaptureHeader::for_engine(&scenario, seed);
        let source = SourceInfo {
            title: format!(
                "engine: {} seed={seed} (full speed, simulated time)",
                scenario.name
            ),
            probes: Vec::new(),
        };
        let dashboard = a.view.dashboard()?;
        let app = Arc::new(Mutex::new(App::new(
            source,
            &header,
            a.view.kernel_pointers,
        )));
        view = Some((dashboard, Feed::new(Arc::clone(&app)), app));
    }
    let mut summary = Summary::default();
    let mut writer = match &a.output {
        Some(path) => Some(Writer::create(
            path,
            &CaptureHeader::for_engine(&scenario, seed),
        )?),
        None => None,
    };
    scenario
        .run(seed, &mut |e| {
            summary.add(e);
            if let Some(w) = writer.as_mut() {
                w.write_event(e)?;
            }
            if let Some((_, feed, _)) = view.as_mut() {
                feed.set_timeline(e.ts_ns);
                feed.event(e)?;
            }
            Ok(())
        })
        .map_err(bad_input)?;
    let source = format!("engine:{} seed={seed}", scenario.name);
    if let Some(w) = writer {
        let (events, bytes) = w.finish()?;
        eprintln!(
            "wrote {events} events to {} ({bytes} bytes, {:.1} bytes/event)",
            a.output.as_ref().unwrap().display(),
            bytes as f64 / events.max(1) as f64
        );
    }
    if let Some((dashboard, mut feed, app)) = view {
        feed.flush(true);
        feed.with_app(|a| a.finished = Some("scenario finished".into()));
        let stop = super::stop_on_signals()?;
        hmmtrace::tui::run(app, Ui::new(dashboard, None), stop)?;
    }
    match a.format {
        Format::Text => print!("{}", report::text::render(&summary, &source)),
        Format::Json => println!("{}", report::json::render(&summary, &source, 0)),
    }
    Ok(ExitCode::SUCCESS)
}
