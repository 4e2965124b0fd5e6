//! `hmmtrace census`: who consumes HMM's and ZONE_DEVICE's exports in this running kernel
//! (`crate::census`): the static survey, then the kernel source with the census probe on every
//! covered export while a duration passes or a command runs, then the census.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::capture::Writer;
use crate::kernel::SessionOptions;
use crate::pipeline::source::kernel::KernelSource;
use crate::pipeline::{self, Control, Tee};
use crate::report::Summary;

use super::{parse_duration, Format};

#[derive(clap::Args)]
pub struct Args {
    /// Count calls for this long (e.g. 30s, 5m); without it and without a command, until
    /// Ctrl-C.
    #[arg(long, short, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Also write a capture file (the HMM events of the same time, and the census: `hmmtrace
    /// report FILE` shows it again).
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// The kernel's Module.symvers (export types); default:
    /// /lib/modules/$(uname -r)/build/Module.symvers, where present.
    #[arg(long, value_name = "PATH")]
    symvers: Option<PathBuf>,
    /// Where the loaded modules' .ko files are looked for (recursively); default:
    /// /lib/modules/$(uname -r).
    #[arg(long, value_name = "DIR")]
    modules_dir: Option<PathBuf>,
    /// A command to run while the calls are counted (system-wide all the same); the census
    /// ends when it exits.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let survey = crate::census::survey(a.symvers.as_deref(), a.modules_dir.as_deref())?;
    let survey_had_no_symvers = survey.census.symvers.is_none();
    let opts = SessionOptions {
        census: survey.functions.clone(),
        ..Default::default()
    };
    let ctl = Control::new(a.duration)?;
    let source = KernelSource::start(opts, &a.command)?.with_census(survey);
    for r in source.census_refused() {
        eprintln!("hmmtrace: census: not counting calls to {r}");
    }
    if survey_had_no_symvers {
        eprintln!(
            "hmmtrace: census: no Module.symvers (--symvers): the exports are those Linux 6.12 \
             exports that this kernel has, their export types unknown"
        );
    }
    let mut writer = match &a.output {
        Some(p) => Some(Writer::create(p)?),
        None => None,
    };
    let mut summary = Summary::default();
    let mut sinks = Tee::new().with(&mut summary).with(crate::notices::Notices);
    if let Some(w) = &mut writer {
        sinks = sinks.with(w);
    }
    if a.duration.is_none() && a.command.is_empty() {
        eprintln!("hmmtrace: counting calls to HMM's exports until Ctrl-C");
    }
    let outcome = pipeline::run(source, sinks, None, &ctl)?;
    let census = summary
        .census
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("the session ended without its census"))?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(census)?),
        Format::Text => print!("{}", crate::census::render::text(census)),
    }
    if let (Some(w), Some(p)) = (writer, &a.output) {
        let (events, bytes) = w.close()?;
        eprintln!(
            "hmmtrace: wrote {events} events and the census ({bytes} bytes) to {}",
            p.display()
        );
    }
    Ok(outcome
        .command
        .map_or(ExitCode::SUCCESS, super::record::exit_code))
}
