//! `hmmtrace live`: the kernel source in the TUI as it happens, optionally also into a
//! capture file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::capture::Writer;
use crate::pipeline::detect::Detect;
use crate::pipeline::source::kernel::KernelSource;
use crate::pipeline::{self, Control, Source as _, Tee};

use super::record::TraceArgs;
use super::{bad_input, is_terminal, parse_duration, ViewArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Also write the events to this capture file (created mode 0600).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Stop tracing after this long (e.g. 30s, 5m); the TUI stays up to look at the result.
    #[arg(long, short, value_parser = parse_duration)]
    duration: Option<Duration>,
    #[command(flatten)]
    trace: TraceArgs,
    #[command(flatten)]
    view: ViewArgs,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let opts = a.trace.options()?;
    if !is_terminal() {
        return Err(bad_input(anyhow::anyhow!(
            "live needs a terminal; to trace without one use `hmmtrace record`"
        )));
    }
    let ctl = Control::new(a.duration)?;
    let source = KernelSource::start(opts, &[])?.with_program_costs();
    let title = format!("kernel {} (live)", source.header().kernel_release);
    let (tui, mut view) = a.view.tui(title, None, 1.0)?;
    let mut writer = a.output.as_deref().map(Writer::create).transpose()?;
    pipeline::run(
        source,
        Detect::new(
            Tee::new().with(tui).with_opt(writer.as_mut()),
            a.view.findings.config(),
        ),
        Some(&mut view),
        &ctl,
    )?;
    if let (Some(w), Some(path)) = (&writer, &a.output) {
        eprintln!(
            "hmmtrace: wrote {} events ({} bytes) to {}",
            w.events(),
            w.bytes(),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
