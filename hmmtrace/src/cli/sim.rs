//! `hmmtrace sim`: one run of a scenario on the reference engine.

use std::path::PathBuf;
use std::process::ExitCode;

use hmmtrace::capture::{CaptureHeader, Writer};
use hmmtrace::report::{self, Summary};
use hmmtrace::scenario::{Scenario, BUILTIN};

use super::{bad_input, Format, ScenarioArgs};

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
    match a.format {
        Format::Text => print!("{}", report::text::render(&summary, &source)),
        Format::Json => println!("{}", report::json::render(&summary, &source, 0)),
    }
    Ok(ExitCode::SUCCESS)
}
