//! `hmmtrace export`: every event of a capture, one per line (JSONL) or row (CSV), streaming.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use std::os::unix::fs::OpenOptionsExt as _;

use anyhow::Context as _;
use clap::ValueEnum;
use hmmtrace::capture::Reader;
use hmmtrace::export::csv::CsvWriter;
use hmmtrace::export::jsonl::JsonlWriter;
use hmmtrace::export::perfetto::PerfettoWriter;
use hmmtrace::export::Flattener;

use super::{bad_input, stream_capture};

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
    let header = Reader::open(&a.file).map_err(bad_input)?.header;
    let flat = Flattener::new(&header, a.kernel_pointers);
    let out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(p)
                .with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let out = BufWriter::with_capacity(256 * 1024, out);
    match a.format {
        ExportFormat::Jsonl => {
            let mut w = JsonlWriter::new(out, flat);
            stream_capture(&a.file, &mut w)?;
            w.finish()?;
        }
        ExportFormat::Perfetto => {
            let mut w = PerfettoWriter::new(out, flat);
            stream_capture(&a.file, &mut w)?;
            w.finish()?;
        }
        ExportFormat::Csv => {
            let mut w = CsvWriter::new(out, flat)?;
            stream_capture(&a.file, &mut w)?;
            w.finish()?;
        }
    };
    Ok(ExitCode::SUCCESS)
}
