//! `hmmtrace report`: summarise a capture file, streaming it.

use std::path::PathBuf;
use std::process::ExitCode;

use hmmtrace::capture::Reader;
use hmmtrace::report::{self, Summary};

use super::{bad_input, Format};

#[derive(clap::Args)]
pub struct Args {
    /// The capture file.
    file: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let reader = Reader::open(&a.file).map_err(bad_input)?;
    let header = reader.header.clone();
    let mut summary = Summary::default();
    let read = reader
        .for_each(|e| {
            summary.add(e);
            Ok(())
        })
        .map_err(bad_input)?;
    if read.dropped_bytes > 0 {
        eprintln!(
            "hmmtrace: {}: the last block is incomplete (the writer stopped mid-block); \
             recovered {} complete blocks, dropped {} bytes",
            a.file.display(),
            read.blocks,
            read.dropped_bytes
        );
    }
    let source = match header.seed {
        Some(seed) => format!("{} seed={seed}", header.source),
        None => header.source.clone(),
    };
    match a.format {
        Format::Text => print!("{}", report::text::render(&summary, &source)),
        Format::Json => println!(
            "{}",
            report::json::render(&summary, &source, read.dropped_bytes)
        ),
    }
    Ok(ExitCode::SUCCESS)
}
