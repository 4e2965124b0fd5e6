//! The capture source: one or more capture files read as fast as they decode, one block in
//! memory at a time, with a progress bar on a terminal for large files. Ticks at each block's
//! last event, on the capture's clock. Several files are read one after the other, as one
//! stream, under the first file's header.
//!
//! A file that cannot be read (missing, corrupted) is bad input, named with its offset; an
//! incomplete last block is not an error: its complete blocks are read, and a
//! `Status::Truncated` (and a warning on stderr) says how much was left.

use std::path::{Path, PathBuf};

use crate::capture::{CaptureHeader, Reader};
use crate::error::bad_input;
use crate::event::Event;
use crate::pipeline::{Control, Finished, Sink, Source, Status};

/// Files at least this large get a progress bar (on a terminal).
const PROGRESS_FROM_BYTES: u64 = 64 << 20;

pub struct CaptureSource {
    files: Vec<PathBuf>,
    header: CaptureHeader,
    progress: bool,
}

impl CaptureSource {
    /// Opens every file's header now, so that a bad file is reported before anything runs.
    /// Several files are one stream only if they are on one clock (kernel captures of one
    /// boot); else that is bad input: summed, their times and rates would mean nothing.
    pub fn open(files: &[PathBuf]) -> anyhow::Result<CaptureSource> {
        let mut header: Option<CaptureHeader> = None;
        for f in files {
            let h = Reader::open(f).map_err(bad_input)?.header;
            if let Some(first) = &header {
                CaptureHeader::same_clock(first, &h).map_err(|why| {
                    bad_input(anyhow::anyhow!(
                        "{} and {} are not on one clock ({why}): report them one at a time, \
                         or side by side with --compare",
                        files[0].display(),
                        f.display()
                    ))
                })?;
            }
            header.get_or_insert(h);
        }
        let header = header.ok_or_else(|| bad_input(anyhow::anyhow!("no capture file given")))?;
        Ok(CaptureSource {
            files: files.to_vec(),
            header,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        })
    }

    /// Never show a progress bar.
    pub fn quiet(mut self) -> CaptureSource {
        self.progress = false;
        self
    }

    /// The headers of every file, in order (the first is the source's).
    pub fn headers(&self) -> anyhow::Result<Vec<CaptureHeader>> {
        self.files
            .iter()
            .map(|f| Ok(Reader::open(f).map_err(bad_input)?.header))
            .collect()
    }

    fn read(&self, path: &Path, sink: &mut dyn Sink, ctl: &Control) -> anyhow::Result<bool> {
        let mut reader = Reader::open(path).map_err(bad_input)?;
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        let bar = if self.progress && size >= PROGRESS_FROM_BYTES {
            let bar = indicatif::ProgressBar::new(size);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                )
                .expect("a valid template"),
            );
            bar.set_message(path.display().to_string());
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let mut events: Vec<Event> = Vec::new();
        let (mut blocks, mut dropped) = (0u64, 0u64);
        while reader
            .next_block(&mut events, &mut dropped)
            .map_err(bad_input)?
        {
            blocks += 1;
            for e in &events {
                sink.event(e)?;
            }
            if let Some(last) = events.last() {
                sink.tick(last.ts_ns)?;
            }
            bar.set_position(reader.offset());
            if ctl.should_stop().is_some() {
                bar.finish_and_clear();
                return Ok(false);
            }
        }
        bar.finish_and_clear();
        if dropped > 0 {
            eprintln!(
                "hmmtrace: {}: the last block is incomplete (the writer stopped mid-block); \
                 recovered {blocks} complete blocks, dropped {dropped} bytes",
                path.display(),
            );
            sink.status(&Status::Truncated {
                file: path.to_path_buf(),
                blocks,
                dropped_bytes: dropped,
            })?;
        }
        Ok(true)
    }
}

impl Source for CaptureSource {
    fn header(&self) -> &CaptureHeader {
        &self.header
    }

    fn run(&mut self, sink: &mut dyn Sink, ctl: &Control) -> anyhow::Result<Finished> {
        for f in &self.files {
            if !self.read(f, sink, ctl)? {
                return Ok(ctl.should_stop().unwrap_or(Finished::Viewer));
            }
        }
        Ok(Finished::Exhausted)
    }
}
