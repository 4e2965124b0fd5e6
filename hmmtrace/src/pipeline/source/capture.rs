//! The capture source: one or more capture files read as fast as they decode (on a thread of
//! their own, a few blocks ahead of the sinks), with a progress bar on a terminal for large files. Ticks at each block's
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

/// Decoded blocks waiting for the sinks at most (a block is at most 1 MiB of events).
const READ_AHEAD: usize = 4;

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
        // Blocks are read and decoded on a second thread, a few ahead, while this one hands
        // the events to the sinks: decoding is about a quarter of a report's time, so the two
        // overlap on two cores. Event buffers go back to the reader to be reused.
        type Block = (Vec<Event>, Option<Status>, u64);
        let (tx, rx) = std::sync::mpsc::sync_channel::<anyhow::Result<Option<Block>>>(READ_AHEAD);
        let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<Event>>();
        let (blocks, dropped, stopped) = std::thread::scope(|scope| -> anyhow::Result<_> {
            let decoder = scope.spawn(move || -> (u64, u64) {
                let mut dropped = 0u64;
                loop {
                    let mut events = back_rx.try_recv().unwrap_or_default();
                    let msg = match reader.next_block(&mut events, &mut dropped) {
                        Ok(true) => Ok(Some((events, reader.take_status(), reader.offset()))),
                        Ok(false) => Ok(None),
                        Err(e) => Err(e),
                    };
                    let last = !matches!(msg, Ok(Some(_)));
                    // A closed channel: the sinks stopped reading.
                    if tx.send(msg).is_err() || last {
                        return (reader.blocks(), dropped);
                    }
                }
            });
            let mut stopped = false;
            for msg in &rx {
                let Some((events, status, offset)) = msg.map_err(bad_input)? else {
                    break;
                };
                for e in &events {
                    sink.event(e)?;
                }
                if let Some(s) = status {
                    if let Some(at) = status_time(&s) {
                        sink.tick(at)?;
                    }
                    sink.status(&s)?;
                }
                if let Some(last) = events.last() {
                    sink.tick(last.ts_ns)?;
                }
                let _ = back_tx.send(events);
                bar.set_position(offset);
                if ctl.should_stop().is_some() {
                    stopped = true;
                    break;
                }
            }
            drop(rx);
            let (blocks, dropped) = decoder.join().expect("the decoder thread does not panic");
            Ok((blocks, dropped, stopped))
        })?;
        if stopped {
            bar.finish_and_clear();
            return Ok(false);
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

/// The time on the events' clock an aggregate or plan block was written at.
pub(crate) fn status_time(s: &Status) -> Option<u64> {
    match s {
        Status::Aggregate(a) => Some(a.at_ns),
        Status::Plan(p) => Some(p.at_ns),
        _ => None,
    }
}
