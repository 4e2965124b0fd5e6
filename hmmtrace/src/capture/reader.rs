//! The capture reader: a source that yields the events of every complete block, streaming (one
//! block in memory at a time), and says how many bytes of a partial last block it dropped.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context as _};

use super::codec::{decode, Cursor, State};
use super::{CaptureHeader, BLOCK_HEADER_LEN, BLOCK_MAGIC, BLOCK_MAX, FORMAT_VERSION, MAGIC};
use crate::event::Event;

pub struct Reader<R: Read> {
    input: R,
    name: String,
    pub header: CaptureHeader,
    offset: u64,
    seq: u64,
    /// What the aggregate or plan-change block just read holds (it has no events).
    status: Option<crate::pipeline::Status>,
}

/// What reading a whole capture found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadSummary {
    pub events: u64,
    pub blocks: u64,
    /// Bytes of an incomplete last block (a writer killed mid-block), not decoded.
    pub dropped_bytes: u64,
}

impl Reader<BufReader<File>> {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path)
            .with_context(|| format!("cannot open capture file {}", path.display()))?;
        Reader::new(
            BufReader::with_capacity(256 * 1024, file),
            &path.display().to_string(),
        )
    }
}

/// Reads as much of `buf` as the input has; returns how many bytes that was.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> Reader<R> {
    /// Reads and checks the file header. `name` is used in error messages.
    pub fn new(mut input: R, name: &str) -> anyhow::Result<Self> {
        let mut fixed = [0u8; 16];
        let n = read_full(&mut input, &mut fixed)?;
        if n < 8 || &fixed[..8] != MAGIC {
            bail!("{name}: not an hmmtrace capture (it does not start with \"HMMTRACE\")");
        }
        if n < 16 {
            bail!("{name}: the capture header is truncated ({n} of at least 20 bytes)");
        }
        let version = u16::from_le_bytes([fixed[8], fixed[9]]);
        if version != FORMAT_VERSION {
            bail!("{name}: capture format version {version} is not supported (this hmmtrace reads version {FORMAT_VERSION})");
        }
        let len = u32::from_le_bytes(fixed[12..16].try_into().unwrap()) as usize;
        if len > 1 << 24 {
            bail!("{name}: the capture header claims {len} bytes, which is not plausible (corrupted?)");
        }
        let mut rest = vec![0u8; len + 4];
        let got = read_full(&mut input, &mut rest)?;
        if got < rest.len() {
            bail!(
                "{name}: the capture header is truncated ({} of {} bytes)",
                16 + got,
                20 + len
            );
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&fixed);
        h.update(&rest[..len]);
        let want = u32::from_le_bytes(rest[len..].try_into().unwrap());
        if h.finalize() != want {
            bail!("{name}: the capture header's CRC does not match (corrupted header)");
        }
        let header: CaptureHeader = serde_json::from_slice(&rest[..len])
            .with_context(|| format!("{name}: the capture header is not valid"))?;
        if header.wire_version != hmmtrace_common::WIRE_VERSION {
            bail!(
                "{name}: events of wire version {} are not supported (this hmmtrace reads version {})",
                header.wire_version,
                hmmtrace_common::WIRE_VERSION
            );
        }
        Ok(Reader {
            input,
            name: name.to_string(),
            header,
            offset: (20 + len) as u64,
            seq: 0,
            status: None,
        })
    }

    /// After [`Reader::next_block`] read an aggregate or plan-change block: what it holds, as
    /// the status a source passes on (once).
    pub fn take_status(&mut self) -> Option<crate::pipeline::Status> {
        self.status.take()
    }

    /// The next complete block's events; `Ok(None)` at the end, with `dropped` set to the size of
    /// an incomplete tail.
    pub fn next_block(
        &mut self,
        events: &mut Vec<Event>,
        dropped: &mut u64,
    ) -> anyhow::Result<bool> {
        events.clear();
        let name = &self.name;
        let at = self.offset;
        let mut head = [0u8; BLOCK_HEADER_LEN];
        let n = read_full(&mut self.input, &mut head)?;
        if n == 0 {
            return Ok(false);
        }
        let aggregate = n >= 4 && &head[..4] == super::AGGREGATE_MAGIC;
        let plan = n >= 4 && &head[..4] == super::PLAN_MAGIC;
        let census = n >= 4 && &head[..4] == super::CENSUS_MAGIC;
        if n >= 4 && &head[..4] != BLOCK_MAGIC && !aggregate && !plan && !census {
            bail!("{name}: no block starts at byte {at} (bad block magic): the file is corrupted");
        }
        if n < BLOCK_HEADER_LEN {
            *dropped = n as u64;
            return Ok(false);
        }
        let len = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
        let seq = u64::from_le_bytes(head[8..16].try_into().unwrap());
        let count = u32::from_le_bytes(head[16..20].try_into().unwrap());
        let crc = u32::from_le_bytes(head[20..24].try_into().unwrap());
        if len > BLOCK_MAX {
            bail!("{name}: block at byte {at} claims {len} bytes (more than {BLOCK_MAX}): the file is corrupted");
        }
        let mut payload = vec![0u8; len];
        let got = read_full(&mut self.input, &mut payload)?;
        if got < len {
            // A writer killed mid-block: everything before this block is intact.
            *dropped = (BLOCK_HEADER_LEN + got) as u64;
            return Ok(false);
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&head[4..20]);
        h.update(&payload);
        if h.finalize() != crc {
            bail!("{name}: block {seq} at byte {at} fails its CRC check: the file is corrupted");
        }
        if seq != self.seq {
            bail!("{name}: block at byte {at} has sequence number {seq}, expected {}: blocks are missing or reordered", self.seq);
        }
        if aggregate || plan || census {
            use crate::pipeline::Status;
            use std::sync::Arc;
            let status = if aggregate {
                Status::Aggregate(Arc::new(serde_json::from_slice(&payload).map_err(|e| {
                    anyhow::anyhow!(
                        "{name}: aggregate block {seq} at byte {at} is not a snapshot: {e}"
                    )
                })?))
            } else if plan {
                Status::Plan(Arc::new(serde_json::from_slice(&payload).map_err(|e| {
                    anyhow::anyhow!(
                        "{name}: plan block {seq} at byte {at} is not a plan change: {e}"
                    )
                })?))
            } else {
                Status::Census(Arc::new(serde_json::from_slice(&payload).map_err(|e| {
                    anyhow::anyhow!("{name}: census block {seq} at byte {at} is not a census: {e}")
                })?))
            };
            self.status = Some(status);
            self.offset += (BLOCK_HEADER_LEN + len) as u64;
            self.seq += 1;
            return Ok(true);
        }
        let mut st = State::new();
        let mut c = Cursor::new(&payload);
        for _ in 0..count {
            let e = decode(&mut st, &mut c).map_err(|e| {
                anyhow::anyhow!(
                    "{name}: block {seq} at byte {at}: {} (payload offset {})",
                    e.what,
                    e.offset
                )
            })?;
            events.push(e);
        }
        if !c.at_end() {
            bail!("{name}: block {seq} at byte {at} has bytes after its {count} events");
        }
        self.offset += (BLOCK_HEADER_LEN + len) as u64;
        self.seq += 1;
        Ok(true)
    }

    /// Streams every event to `f` (aggregate and plan blocks hold none: they are skipped).
    pub fn for_each(
        mut self,
        mut f: impl FnMut(&Event) -> anyhow::Result<()>,
    ) -> anyhow::Result<ReadSummary> {
        let mut sum = ReadSummary::default();
        let mut buf = Vec::new();
        while self.next_block(&mut buf, &mut sum.dropped_bytes)? {
            sum.blocks += 1;
            for e in &buf {
                sum.events += 1;
                f(e)?;
            }
        }
        Ok(sum)
    }
}

/// The latest timestamp in the last complete block of the capture at `path`, found by
/// scanning back from its end (a capture is read forward only; this spares reading it all to
/// learn how long it lasts). `None` when no complete block is found in its last
/// [`BLOCK_MAX`] bytes.
pub fn last_timestamp(path: &Path) -> anyhow::Result<Option<u64>> {
    use std::io::{Seek as _, SeekFrom};
    let mut file =
        File::open(path).with_context(|| format!("cannot open capture file {}", path.display()))?;
    let len = file.seek(SeekFrom::End(0))?;
    let tail_len = len.min((BLOCK_MAX + BLOCK_HEADER_LEN) as u64);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    read_full(&mut file, &mut tail)?;
    let mut end = tail.len();
    // Candidates from the end: a block magic whose block fits and passes its CRC.
    while let Some(at) = tail[..end].windows(4).rposition(|w| w == BLOCK_MAGIC) {
        end = at;
        let head = &tail[at..];
        if head.len() < BLOCK_HEADER_LEN {
            continue;
        }
        let plen = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
        let count = u32::from_le_bytes(head[16..20].try_into().unwrap());
        let crc = u32::from_le_bytes(head[20..24].try_into().unwrap());
        let Some(payload) = head.get(BLOCK_HEADER_LEN..BLOCK_HEADER_LEN + plen) else {
            continue;
        };
        let mut h = crc32fast::Hasher::new();
        h.update(&head[4..20]);
        h.update(payload);
        if h.finalize() != crc {
            continue;
        }
        let (mut st, mut c) = (State::new(), Cursor::new(payload));
        let mut latest = None;
        for _ in 0..count {
            match decode(&mut st, &mut c) {
                Ok(e) => latest = latest.max(Some(e.ts_ns)),
                Err(_) => break,
            }
        }
        if latest.is_some() {
            return Ok(latest);
        }
    }
    Ok(None)
}

impl<R: Read> Reader<R> {
    /// Bytes consumed so far (the end of the last complete block).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Complete blocks read so far.
    pub fn blocks(&self) -> u64 {
        self.seq
    }
}
