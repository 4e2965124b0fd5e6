//! `hmmtrace export`: every event of a capture (the capture source), one per line (JSONL) or
//! row (CSV), or as a Perfetto trace, streaming, in timestamp order (`pipeline::reorder`: a
//! window of 10 s of the capture's clock).

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::export::csv::CsvWriter;
use crate::export::jsonl::JsonlWriter;
use crate::export::perfetto::PerfettoWriter;
use crate::export::Flattener;
use crate::pipeline::reorder::Reorder;
use crate::pipeline::source::capture::CaptureSource;
use crate::pipeline::{self, Control, Sink, Source as _};
use clap::ValueEnum;

use super::output;

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line (schema: docs/export.md).
    Jsonl,
    /// A header row, then one row per event.
    Csv,
    /// Perfetto's protobuf trace: open it in ui.perfetto.dev.
    Perfetto,
}

#[derive(clap::Args)]
pub struct Args {
    /// The capture file.
    file: PathBuf,
    #[arg(long, value_enum, default_value = "jsonl")]
    format: ExportFormat,
    /// Write here instead of standard output (created 0600, like captures).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Show pgmap owners and ops as kernel addresses instead of names (dev1, symbol names).
    #[arg(long)]
    kernel_pointers: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let source = CaptureSource::open(std::slice::from_ref(&a.file))?;
    let flat = Flattener::new(source.header(), a.kernel_pointers);
    let out = BufWriter::with_capacity(256 * 1024, output(a.output.as_deref())?);
    let sink: Box<dyn Sink + Send> = match a.format {
        ExportFormat::Jsonl => Box::new(JsonlWriter::new(out, flat)),
        ExportFormat::Perfetto => Box::new(PerfettoWriter::new(out, flat)),
        ExportFormat::Csv => Box::new(CsvWriter::new(out, flat)?),
    };
    let mut ordered = Reorder::new(sink);
    // No signal handling: an interrupted export ends the process, not the file quietly early.
    pipeline::run(source, &mut ordered, None, &Control::without_signals(None))?;
    if ordered.late() > 0 {
        eprintln!(
            "hmmtrace: {} events began more than {} before events already written, and are \
             written where they came, out of timestamp order",
            ordered.late(),
            crate::report::text::fmt_ns(ordered.window_ns())
        );
    }
    Ok(ExitCode::SUCCESS)
}
