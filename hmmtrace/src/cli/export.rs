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
use hmmtrace::export::Flattener;

use super::{bad_input, stream_capture};

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line (schema: docs/export.md).
    Jsonl,
    /// A header row, then one row per event.
    Csv,
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
    let reader = Reader::open(&a.file).map_err(bad_input)?;
    let flat = Flattener::new(&reader.header, a.kernel_pointers);
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
    let read = match a.format {
        ExportFormat::Jsonl => {
            let mut w = JsonlWriter::new(out, flat);
            let r = stream_capture(reader, &mut w)?;
            w.finish()?;
            r
        }
        ExportFormat::Csv => {
            let mut w = CsvWriter::new(out, flat)?;
            let r = stream_capture(reader, &mut w)?;
            w.finish()?;
            r
        }
    };
    if read.dropped_bytes > 0 {
        eprintln!(
            "hmmtrace: {}: the last block is incomplete; exported {} complete blocks, dropped {} bytes",
            a.file.display(),
            read.blocks,
            read.dropped_bytes
        );
    }
    Ok(ExitCode::SUCCESS)
}
