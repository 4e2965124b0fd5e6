//! `hmmtrace replay`: the replay source (a capture at the recorded pace times a speed, with
//! pause and seek) in the TUI.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::pipeline::detect::Detect;
use crate::pipeline::source::replay::{ReplayControl, ReplaySource};
use crate::pipeline::{self, Control, Source as _};

use super::{bad_input, is_terminal, ViewArgs};

#[derive(clap::Args)]
pub struct Args {
    /// The capture file.
    file: PathBuf,
    /// Replay speed against the capture's own clock: 1 is as recorded, 10 ten times faster,
    /// 0.5 half as fast [default: 1, or the pace a demo ran at, for its capture].
    #[arg(long)]
    speed: Option<f64>,
    #[command(flatten)]
    view: ViewArgs,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if let Some(speed) = a.speed {
        if !(1.0 / 64.0..=1024.0).contains(&speed) {
            return Err(bad_input(anyhow::anyhow!(
                "--speed must be between 1/64 and 1024, not {speed}"
            )));
        }
    }
    let ctrl = Arc::new(ReplayControl::new(1.0));
    // Opened now: a bad file is reported before the terminal is taken over.
    let source = ReplaySource::open(a.file.clone(), Arc::clone(&ctrl))?.hold_at_end();
    ctrl.set_speed(a.speed.or(source.header().pace).unwrap_or(1.0));
    let speed = ctrl.speed();
    if !is_terminal() {
        return Err(bad_input(anyhow::anyhow!(
            "replay needs a terminal; for a summary of {} use `hmmtrace report`",
            a.file.display()
        )));
    }
    let title = format!("replay {} ({})", a.file.display(), source.header().source);
    let (tui, mut view) = a.view.tui(title, Some(ctrl), speed)?;
    pipeline::run(
        source,
        Detect::new(tui, a.view.findings.config()),
        Some(&mut view),
        &Control::new(None)?,
    )?;
    Ok(ExitCode::SUCCESS)
}
