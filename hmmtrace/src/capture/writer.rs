//! The capture writer: a sink that encodes events into blocks and writes each complete block
//! with a single `write`, so a killed writer loses at most the block it was filling.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;

use super::codec::{encode, State};
use super::{CaptureHeader, BLOCK_MAGIC, BLOCK_TARGET, FORMAT_VERSION, MAGIC};
use crate::event::{Event, Sink};

pub struct Writer<W: Write> {
    out: W,
    state: State,
    payload: Vec<u8>,
    block_events: u32,
    seq: u64,
    events: u64,
    bytes: u64,
}

impl Writer<std::fs::File> {
    /// Creates (or truncates) `path`, readable by its owner only: captures can reveal what other
    /// processes do.
    pub fn create(path: &Path, header: &CaptureHeader) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create capture file {}", path.display()))?;
        Writer::new(file, header)
    }
}

impl<W: Write> Writer<W> {
    /// Writes the file header.
    pub fn new(mut out: W, header: &CaptureHeader) -> anyhow::Result<Self> {
        let json = serde_json::to_vec(header)?;
        let mut head = Vec::with_capacity(json.len() + 20);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        head.extend_from_slice(&0u16.to_le_bytes());
        head.extend_from_slice(&(json.len() as u32).to_le_bytes());
        head.extend_from_slice(&json);
        let crc = crc32fast::hash(&head);
        head.extend_from_slice(&crc.to_le_bytes());
        out.write_all(&head)
            .context("cannot write capture header")?;
        let bytes = head.len() as u64;
        Ok(Writer {
            out,
            state: State::new(),
            payload: Vec::with_capacity(BLOCK_TARGET + 256),
            block_events: 0,
            seq: 0,
            events: 0,
            bytes,
        })
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
        let mut block = Vec::with_capacity(self.payload.len() + super::BLOCK_HEADER_LEN);
        block.extend_from_slice(BLOCK_MAGIC);
        block.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        block.extend_from_slice(&self.seq.to_le_bytes());
        block.extend_from_slice(&self.block_events.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&block[4..20]);
        h.update(&self.payload);
        block.extend_from_slice(&h.finalize().to_le_bytes());
        block.extend_from_slice(&self.payload);
        self.out
            .write_all(&block)
            .context("cannot write capture block")?;
        self.out.flush()?;
        self.bytes += block.len() as u64;
        self.seq += 1;
        self.payload.clear();
        self.block_events = 0;
        self.state = State::new();
        Ok(())
    }

    /// Flushes the last block; returns (events, bytes written).
    pub fn finish(mut self) -> anyhow::Result<(u64, u64)> {
        self.flush_block()?;
        self.out.flush()?;
        Ok((self.events, self.bytes))
    }

    /// Flushes the last block and returns the output (for writers into memory).
    pub fn into_inner(mut self) -> anyhow::Result<W> {
        self.flush_block()?;
        Ok(self.out)
    }
}

impl<W: Write> Sink for Writer<W> {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.write_event(event)
    }
}
