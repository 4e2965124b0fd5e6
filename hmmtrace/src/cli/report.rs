//! `hmmtrace report`: summarise capture files, streaming them (memory does not grow with the
//! number of events), in the format asked for; optionally against a baseline.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::capture::CaptureHeader;
use crate::findings::Severity;
use crate::pipeline::detect::Detect;
use crate::pipeline::source::capture::CaptureSource;
use crate::pipeline::{self, Control, Source as _, Tee};
use crate::report::compare::{self, Threshold};
use crate::report::hdrlog::HdrLog;
use crate::report::{self, GroupBy, Summary};
use anyhow::Context as _;
use clap::ValueEnum;

use super::{bad_input, parse_interval};

#[derive(Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    /// A table per kind (and per group with --by).
    Text,
    /// The same figures, machine-readable.
    Json,
    /// HdrHistogram's percentile distribution, per kind, in microseconds.
    Hgrm,
    /// One self-contained page with percentile and rate plots (write it with -o).
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum By {
    Kind,
    Pid,
    Comm,
    Device,
    Symbol,
    /// Migrations to the device apart from those to RAM.
    Direction,
    /// migrate_vma apart from migrate_device (evictions).
    Api,
}

/// Exit code when a --fail-if threshold is crossed.
pub const EXIT_THRESHOLD: u8 = 4;

#[derive(clap::Args)]
pub struct Args {
    /// Capture files; several are reported together, as one, when they share a clock (kernel
    /// captures of one boot of one machine); others are refused: an engine capture has a
    /// clock of its own (compare runs side by side with --compare).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: ReportFormat,
    /// Also break the figures down by this (always per kind within it).
    #[arg(long, value_enum, default_value = "kind")]
    by: By,
    /// Write the report here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Also write interval histograms, per kind, as an HdrHistogram V2 log.
    #[arg(long, value_name = "FILE")]
    hdr_log: Option<PathBuf>,
    /// Interval of --hdr-log, on the capture's clock.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    hdr_interval: Duration,
    /// A baseline capture: show its figures beside these, with the change.
    #[arg(long, value_name = "BASELINE")]
    compare: Option<PathBuf>,
    /// With --compare: exit with code 4 when a threshold is crossed, e.g. 'p99>+10%',
    /// 'migration.max>+2ms', 'count<-5%'. Repeatable.
    #[arg(long = "fail-if", value_name = "THRESHOLD", requires = "compare")]
    fail_if: Vec<String>,
    /// Show pgmap owners as kernel addresses in --by device.
    #[arg(long)]
    kernel_pointers: bool,
    /// Exit with code 5 when there are findings at --fail-on's severity or above (for a
    /// driver's CI: run its tests under `record`, then `report --check`).
    #[arg(long)]
    check: bool,
    /// With --check: the least severity that fails.
    #[arg(long, value_enum, default_value = "warn", requires = "check")]
    fail_on: FailOn,
    #[command(flatten)]
    findings: super::FindingArgs,
}

/// `--fail-on`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FailOn {
    Info,
    Warn,
    Error,
}

/// `report --check` found findings at `--fail-on` or above.
pub const EXIT_FINDINGS: u8 = 5;

fn by(b: By) -> GroupBy {
    match b {
        By::Kind => GroupBy::Kind,
        By::Pid => GroupBy::Pid,
        By::Comm => GroupBy::Comm,
        By::Device => GroupBy::Device,
        By::Symbol => GroupBy::Symbol,
        By::Direction => GroupBy::Direction,
        By::Api => GroupBy::Api,
    }
}

/// Summarises `source` with its findings (and feeds `hdr` on the way); returns the summary
/// and the header.
pub(crate) fn summarise(
    source: CaptureSource,
    by_: GroupBy,
    pointers: bool,
    hdr: Option<&mut HdrLog<std::io::BufWriter<std::fs::File>>>,
    findings: crate::findings::Config,
) -> anyhow::Result<(Summary, CaptureHeader)> {
    let header = source.header().clone();
    let mut summary = Summary::grouped(by_, &header, pointers);
    // No signal handling: an interrupted report ends the process, not the report quietly early.
    pipeline::run(
        source,
        Detect::new(Tee::new().with(&mut summary).with_opt(hdr), findings),
        None,
        &Control::without_signals(None),
    )?;
    Ok((summary, header))
}

fn source_of(header: &CaptureHeader, files: &[PathBuf]) -> String {
    let mut s = match header.seed {
        Some(seed) => format!("{} seed={seed}", header.source),
        None => header.source.clone(),
    };
    if files.len() > 1 {
        s.push_str(&format!(" ({} files)", files.len()));
    }
    s
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let thresholds: Vec<Threshold> = a
        .fail_if
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|e: String| bad_input(anyhow::anyhow!("--fail-if {e}")))
        })
        .collect::<anyhow::Result<_>>()?;
    let source = CaptureSource::open(&a.files)?;
    let mut hdr = match &a.hdr_log {
        Some(p) => Some(HdrLog::new(
            std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            ),
            a.hdr_interval,
            source.header().start_unix_ns,
            &source.header().source,
        )?),
        None => None,
    };
    let (summary, header) = summarise(
        source,
        by(a.by),
        a.kernel_pointers,
        hdr.as_mut(),
        a.findings.config(),
    )?;
    if let (Some(h), Some(p)) = (&hdr, &a.hdr_log) {
        eprintln!(
            "hmmtrace: wrote {} interval histograms to {}",
            h.written,
            p.display()
        );
    }
    let source = source_of(&header, &a.files);
    let mut text = match a.format {
        ReportFormat::Text => report::text::render(&summary, &source),
        ReportFormat::Json => report::json::render(&summary, &source) + "\n",
        ReportFormat::Hgrm => report::hgrm::render(&summary).map_err(bad_input)?,
        ReportFormat::Html => report::html::render(&summary, &header, &source),
    };
    let mut code = ExitCode::SUCCESS;
    if let Some(base_path) = &a.compare {
        let (base, base_header) = summarise(
            CaptureSource::open(std::slice::from_ref(base_path))?,
            GroupBy::Kind,
            a.kernel_pointers,
            None,
            a.findings.config(),
        )?;
        let table = compare::render(
            &summary,
            &base,
            &source,
            &format!("{} ({})", base_path.display(), base_header.source),
        );
        match a.format {
            ReportFormat::Text => text = format!("{text}\n{table}"),
            _ => eprint!("{table}"),
        }
        let crossed = compare::check(&thresholds, &summary, &base);
        if !crossed.is_empty() {
            eprintln!("hmmtrace: {} threshold(s) crossed:", crossed.len());
            for c in &crossed {
                eprintln!("  {c}");
            }
            code = ExitCode::from(EXIT_THRESHOLD);
        }
    }
    match &a.output {
        Some(p) => {
            std::fs::write(p, &text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    if a.check {
        let at = match a.fail_on {
            FailOn::Info => Severity::Info,
            FailOn::Warn => Severity::Warn,
            FailOn::Error => Severity::Error,
        };
        let failing = summary.findings.at_least(at);
        if failing > 0 {
            eprintln!(
                "hmmtrace: check failed: {failing} finding(s) at {at} or above (all findings: {})",
                summary.findings.summary()
            );
            // A crossed --fail-if threshold (4) and findings (5): findings say more.
            code = ExitCode::from(EXIT_FINDINGS);
        } else {
            eprintln!(
                "hmmtrace: check passed: no finding at {at} or above (all findings: {})",
                summary.findings.summary()
            );
        }
    }
    Ok(code)
}
