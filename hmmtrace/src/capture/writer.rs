//! The capture writer: a sink that encodes events into blocks and writes each complete block
//! with a single `write`, so a killed writer loses at most the block it was filling. As a
//! pipeline sink it writes the file header at `begin`, and on a tick writes out a partly
//! filled block that has waited a second, so a killed recorder loses at most about a second.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::codec::{encode, State};
use super::{CaptureHeader, BLOCK_MAGIC, BLOCK_TARGET, FORMAT_VERSION, MAGIC};
use crate::event::Event;
use crate::pipeline::Sink;

/// How long a partly filled block may wait before a tick writes it out.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

pub struct Writer<W: Write> {
    out: W,
    /// Where `out` goes, for messages (a file's path).
    name: String,
    header_written: bool,
    state: State,
    payload: Vec<u8>,
    block_events: u32,
    seq: u64,
    events: u64,
    /// Events in blocks written out (the rest are in the block being filled).
    flushed: u64,
    bytes: u64,
    last_flush: Instant,
}

impl Writer<std::fs::File> {
    /// Creates (or truncates) `path`, readable by its owner only: captures can reveal what other
    /// processes do. The header is written at `begin`.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create capture file {}", path.display()))?;
        Ok(Writer::unstarted(file, path.display().to_string()))
    }
}

impl<W: Write> Writer<W> {
    /// Writes the file header at once.
    pub fn new(out: W, header: &CaptureHeader) -> anyhow::Result<Self> {
        let mut w = Writer::unstarted(out, "the capture".into());
        w.write_header(header)?;
        Ok(w)
    }

    fn unstarted(out: W, name: String) -> Self {
        Writer {
            out,
            name,
            header_written: false,
            state: State::new(),
            payload: Vec::with_capacity(BLOCK_TARGET + 256),
            block_events: 0,
            seq: 0,
            events: 0,
            flushed: 0,
            bytes: 0,
            last_flush: Instant::now(),
        }
    }

    /// Events written so far (including those of the block being filled).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Events in complete blocks written out: what a reader recovers if nothing more is.
    pub fn events_in_blocks(&self) -> u64 {
        self.flushed
    }

    /// Bytes written to the output so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn write_header(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        let json = serde_json::to_vec(header)?;
        let mut head = Vec::with_capacity(json.len() + 20);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        head.extend_from_slice(&0u16.to_le_bytes());
        head.extend_from_slice(&(json.len() as u32).to_le_bytes());
        head.extend_from_slice(&json);
        let crc = crc32fast::hash(&head);
        head.extend_from_slice(&crc.to_le_bytes());
        self.out
            .write_all(&head)
            .with_context(|| format!("cannot write the header of {}", self.name))?;
        self.bytes += head.len() as u64;
        self.header_written = true;
        Ok(())
    }

    pub fn write_event(&mut self, e: &Event) -> anyhow::Result<()> {
        encode(&mut self.state, e, &mut self.payload);
        self.block_events += 1;
        self.events += 1;
        if self.payload.len() >= BLOCK_TARGET {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Closes the current block, if it has events, and writes it out.
    pub fn flush_block(&mut self) -> anyhow::Result<()> {
        if self.block_events == 0 {
            return Ok(());
        }
        let payload = std::mem::take(&mut self.payload);
        let written = self.write_block(BLOCK_MAGIC, self.block_events, &payload);
        self.payload = payload;
        written?;
        self.last_flush = Instant::now();
        self.flushed += u64::from(self.block_events);
        self.payload.clear();
        self.block_events = 0;
        self.state = State::new();
        Ok(())
    }

    /// One block, written with one call (see the module doc).
    fn write_block(&mut self, magic: &[u8; 4], count: u32, payload: &[u8]) -> anyhow::Result<()> {
        let mut block = Vec::with_capacity(payload.len() + super::BLOCK_HEADER_LEN);
        block.extend_from_slice(magic);
        block.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        block.extend_from_slice(&self.seq.to_le_bytes());
        block.extend_from_slice(&count.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&block[4..20]);
        h.update(payload);
        block.extend_from_slice(&h.finalize().to_le_bytes());
        block.extend_from_slice(payload);
        self.out
            .write_all(&block)
            .and_then(|()| self.out.flush())
            .with_context(|| format!("cannot write a block to {}", self.name))?;
        self.bytes += block.len() as u64;
        self.seq += 1;
        Ok(())
    }

    /// Writes an aggregate block, after the events before it.
    pub fn write_aggregate(&mut self, snap: &crate::aggregate::Snapshot) -> anyhow::Result<()> {
        self.flush_block()?;
        let json = serde_json::to_vec(snap)?;
        self.write_block(super::AGGREGATE_MAGIC, 0, &json)
    }

    /// Writes a plan-change block, after the events before it.
    pub fn write_plan(&mut self, change: &crate::pipeline::PlanChange) -> anyhow::Result<()> {
        self.flush_block()?;
        let json = serde_json::to_vec(change)?;
        self.write_block(super::PLAN_MAGIC, 0, &json)
    }

    /// Flushes the last block; returns (events, bytes written).
    pub fn close(mut self) -> anyhow::Result<(u64, u64)> {
        Sink::finish(&mut self)?;
        Ok((self.events, self.bytes))
    }

    /// Flushes the last block and returns the output (for writers into memory).
    pub fn into_inner(mut self) -> anyhow::Result<W> {
        self.flush_block()?;
        Ok(self.out)
    }
}

impl<W: Write> Sink for Writer<W> {
    /// Writes the file header, unless [`Writer::new`] did.
    fn begin(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        if self.header_written {
            return Ok(());
        }
        self.write_header(header)
    }

    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.write_event(event)
    }

    fn status(&mut self, status: &crate::pipeline::Status) -> anyhow::Result<()> {
        match status {
            crate::pipeline::Status::Aggregate(snap) => self.write_aggregate(snap),
            crate::pipeline::Status::Plan(change) => self.write_plan(change),
            crate::pipeline::Status::Census(census) => {
                self.flush_block()?;
                let json = serde_json::to_vec(&**census)?;
                self.write_block(super::CENSUS_MAGIC, 0, &json)
            }
            _ => Ok(()),
        }
    }

    fn tick(&mut self, _now_ns: u64) -> anyhow::Result<()> {
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush_block()?;
            self.last_flush = Instant::now();
        }
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.flush_block()?;
        self.out
            .flush()
            .with_context(|| format!("cannot write to {}", self.name))
    }
}
