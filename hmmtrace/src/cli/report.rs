//! `hmmtrace report`: summarise capture files, streaming them (memory does not grow with the
//! number of events), in the format asked for; optionally against a baseline.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::ValueEnum;
use hmmtrace::capture::{CaptureHeader, Reader};
use hmmtrace::event::{Event, Sink};
use hmmtrace::report::compare::{self, Threshold};
use hmmtrace::report::hdrlog::HdrLog;
use hmmtrace::report::{self, GroupBy, Summary};

use super::{bad_input, parse_duration, stream_capture};

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
}

/// Exit code when a --fail-if threshold is crossed.
pub const EXIT_THRESHOLD: u8 = 4;

#[derive(clap::Args)]
pub struct Args {
    /// Capture files; several are reported together, as one.
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
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
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
}

/// Feeds the summary and, if asked, the HdrHistogram log.
struct Sinks<'a> {
    summary: &'a mut Summary,
    hdr: Option<HdrLog<std::io::BufWriter<std::fs::File>>>,
}

impl Sink for Sinks<'_> {
    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        self.summary.add(e);
        if let Some(h) = self.hdr.as_mut() {
            h.event(e)?;
        }
        Ok(())
    }
}

fn by(b: By) -> GroupBy {
    match b {
        By::Kind => GroupBy::Kind,
        By::Pid => GroupBy::Pid,
        By::Comm => GroupBy::Comm,
        By::Device => GroupBy::Device,
        By::Symbol => GroupBy::Symbol,
    }
}

/// The header of the first file (all are checked to open before anything is read).
fn first_header(files: &[PathBuf]) -> anyhow::Result<CaptureHeader> {
    let mut header = None;
    for f in files {
        let h = Reader::open(f).map_err(bad_input)?.header;
        header.get_or_insert(h);
    }
    header.ok_or_else(|| bad_input(anyhow::anyhow!("no capture file given")))
}

type Log = HdrLog<std::io::BufWriter<std::fs::File>>;

/// Summarises `files` into one summary: it, the first file's header, the bytes of incomplete
/// blocks dropped, and the HdrHistogram log fed on the way.
#[allow(clippy::type_complexity)]
fn summarise(
    files: &[PathBuf],
    by_: GroupBy,
    pointers: bool,
    hdr: Option<Log>,
) -> anyhow::Result<(
    Summary,
    CaptureHeader,
    u64,
    Option<HdrLog<std::io::BufWriter<std::fs::File>>>,
)> {
    let header = first_header(files)?;
    let mut summary = Summary::grouped(by_, &header, pointers);
    let mut sinks = Sinks {
        summary: &mut summary,
        hdr,
    };
    let mut dropped = 0;
    for f in files {
        dropped += stream_capture(f, &mut sinks)?.dropped_bytes;
    }
    let hdr = sinks.hdr.take();
    Ok((summary, header, dropped, hdr))
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
    let header = first_header(&a.files)?;
    let hdr = match &a.hdr_log {
        Some(p) => Some(HdrLog::new(
            std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            ),
            a.hdr_interval,
            header.start_unix_ns,
            &header.source,
        )?),
        None => None,
    };
    let (summary, header, dropped, hdr) = summarise(&a.files, by(a.by), a.kernel_pointers, hdr)?;
    if let Some(h) = hdr {
        let n = h.finish()?;
        eprintln!(
            "hmmtrace: wrote {n} interval histograms to {}",
            a.hdr_log
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string())
        );
    }
    let source = source_of(&header, &a.files);
    let mut text = match a.format {
        ReportFormat::Text => report::text::render(&summary, &source),
        ReportFormat::Json => report::json::render(&summary, &source, dropped) + "\n",
        ReportFormat::Hgrm => report::hgrm::render(&summary),
        ReportFormat::Html => report::html::render(&summary, &header, &source, dropped),
    };
    let mut code = ExitCode::SUCCESS;
    if let Some(base_path) = &a.compare {
        let (base, base_header, ..) = summarise(
            std::slice::from_ref(base_path),
            GroupBy::Kind,
            a.kernel_pointers,
            None,
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
    Ok(code)
}
