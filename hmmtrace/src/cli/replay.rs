//! `hmmtrace replay`: a capture file in the TUI, at the recorded pace times a speed, with
//! pause and seek.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use hmmtrace::capture::Reader;
use hmmtrace::tui::app::{App, SourceInfo};
use hmmtrace::tui::ui::{ReplayControl, Ui};
use hmmtrace::tui::{self, Feed};

use super::{bad_input, is_terminal, stop_on_signals, ViewArgs};

#[derive(clap::Args)]
pub struct Args {
    /// The capture file.
    file: PathBuf,
    /// Replay speed: 1 is as recorded, 10 ten times faster, 0.5 half as fast.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    #[command(flatten)]
    view: ViewArgs,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if !(1.0 / 64.0..=1024.0).contains(&a.speed) {
        return Err(bad_input(anyhow::anyhow!(
            "--speed must be between 1/64 and 1024, not {}",
            a.speed
        )));
    }
    let dashboard = a.view.dashboard()?;
    // Read the header now: a bad file is reported before the terminal is taken over.
    let header = Reader::open(&a.file).map_err(bad_input)?.header;
    if !is_terminal() {
        return Err(bad_input(anyhow::anyhow!(
            "replay needs a terminal; for a summary of {} use `hmmtrace report`",
            a.file.display()
        )));
    }
    let source = SourceInfo {
        title: format!("replay {} ({})", a.file.display(), header.source),
        probes: header.probe_plan.clone(),
    };
    let app = Arc::new(Mutex::new(App::new(
        source,
        &header,
        a.view.kernel_pointers,
    )));
    let ctrl = Arc::new(ReplayControl::new(a.speed));
    let stop = stop_on_signals()?;
    let feeder = {
        let (app, ctrl, stop, path) = (
            Arc::clone(&app),
            Arc::clone(&ctrl),
            Arc::clone(&stop),
            a.file.clone(),
        );
        std::thread::Builder::new()
            .name("replay".into())
            .spawn(move || {
                let mut feed = Feed::new(app);
                let r = tui::replay::run(&path, &ctrl, &mut feed, &stop, false);
                if let Err(e) = &r {
                    feed.with_app(|a| a.finished = Some(format!("error: {e:#}")));
                }
                r
            })?
    };
    let shown = tui::run(app, Ui::new(dashboard, Some(ctrl)), Arc::clone(&stop));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let replayed = feeder
        .join()
        .map_err(|_| anyhow::anyhow!("the replay thread panicked"))?;
    shown?;
    replayed.map_err(bad_input)?;
    Ok(ExitCode::SUCCESS)
}
