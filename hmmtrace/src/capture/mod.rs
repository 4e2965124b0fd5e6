//! Capture files: a header that says where the events came from, then self-delimiting,
//! checksummed blocks of compactly encoded events. A sink ([`Writer`]) and a source ([`Reader`]).
//!
//! # Layout (format version 1; all integers little-endian)
//!
//! ```text
//! file header   "HMMTRACE"          8 bytes magic
//!               format version      u16 (= 1)
//!               reserved            u16 (= 0)
//!               header length N     u32
//!               header              N bytes of JSON: `CaptureHeader`
//!               header CRC          u32, CRC-32 (IEEE) of every byte before it
//! block         "HMBK"              4 bytes magic (lets a reader tell a block from garbage)
//!               payload length P    u32
//!               sequence number     u64, 0 for the first block, then +1
//!               event count         u32
//!               CRC                 u32, CRC-32 of payload length, sequence, count and payload
//!               payload             P bytes: events, see `codec`
//! ```
//!
//! A block is written with one `write` call once complete, so a writer killed at any moment
//! leaves every earlier block intact and at most one partial block at the end. [`Reader`]
//! returns every complete block and reports the partial tail's size as dropped bytes. A bad
//! magic, an unknown version or a CRC mismatch is an error that names the offset.
//!
//! Events are encoded per block against the previous event of the block (deltas, varints, a
//! small table of task names), so every block decodes on its own.

mod codec;
mod reader;
mod writer;

use serde::{Deserialize, Serialize};

pub use reader::{ReadSummary, Reader};
pub use writer::Writer;

pub const MAGIC: &[u8; 8] = b"HMMTRACE";
pub const BLOCK_MAGIC: &[u8; 4] = b"HMBK";
pub const FORMAT_VERSION: u16 = 1;
/// Size of a block's fixed part before its payload.
pub const BLOCK_HEADER_LEN: usize = 24;
/// A block is closed once its payload reaches this size.
pub const BLOCK_TARGET: usize = 64 * 1024;
/// Largest payload a reader accepts (a corrupt length must not make it allocate gigabytes).
pub const BLOCK_MAX: usize = 16 * 1024 * 1024;

/// Which clock `Event::ts_ns` is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    /// `CLOCK_MONOTONIC` of the traced machine (`bpf_ktime_get_ns`).
    Monotonic,
    /// The reference engine's simulated clock, starting at 0.
    Simulated,
}

/// A device the capture's events refer to by pgmap owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The pgmap owner value in the events.
    pub owner: u64,
    /// A human name (`dmirror0`, or the `pgmap->ops` symbol for a kernel capture).
    pub name: String,
    /// The driver (module) that owns it.
    pub driver: String,
    /// "private" or "coherent".
    pub memory: String,
}

/// One logical probe's state in the attach plan that produced a capture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeStatus {
    pub probe: String,
    pub symbol: String,
    pub mechanism: String,
    pub status: String,
}

/// What a capture file says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureHeader {
    /// `hmmtrace_common::WIRE_VERSION` of the producer.
    pub wire_version: u16,
    /// `kernel`, or `engine:<scenario>` for the reference engine.
    pub source: String,
    pub host: String,
    /// `uname -r` of the traced kernel; empty for the engine.
    pub kernel_release: String,
    pub clock: ClockKind,
    /// Wall-clock time (ns since the Unix epoch) when the capture started.
    pub start_unix_ns: u64,
    /// The engine's seed, when the source is the engine.
    #[serde(default)]
    pub seed: Option<u64>,
    pub page_size: u64,
    #[serde(default)]
    pub probe_plan: Vec<ProbeStatus>,
    #[serde(default)]
    pub devices: Vec<DeviceInfo>,
    /// For kernel captures: the `dev_pagemap_ops` instances of the traced kernel, so events'
    /// `pgmap_ops` values can be named (`dmirror_devmem_ops` of `test_hmm`) without showing
    /// kernel pointers.
    #[serde(default)]
    pub pagemap_ops: Vec<PagemapOpsInfo>,
}

/// A `dev_pagemap_ops` symbol of the traced kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagemapOpsInfo {
    pub addr: u64,
    pub symbol: String,
    pub module: String,
}

impl CaptureHeader {
    /// A header for a capture of the reference engine running `scenario`.
    pub fn for_engine(scenario: &crate::scenario::Scenario, seed: u64) -> CaptureHeader {
        CaptureHeader {
            wire_version: hmmtrace_common::WIRE_VERSION,
            source: format!("engine:{}", scenario.name),
            host: hostname(),
            kernel_release: String::new(),
            clock: ClockKind::Simulated,
            start_unix_ns: unix_now_ns(),
            seed: Some(seed),
            page_size: 4096,
            probe_plan: Vec::new(),
            devices: scenario
                .device_table()
                .into_iter()
                .map(|(owner, name, kind)| DeviceInfo {
                    owner,
                    name,
                    driver: "hmmtrace-engine".into(),
                    memory: format!("{kind:?}").to_lowercase(),
                })
                .collect(),
            pagemap_ops: Vec::new(),
        }
    }

    /// Names a `pgmap_ops` value: `symbol [module]`.
    pub fn ops_name(&self, addr: u64) -> Option<String> {
        self.pagemap_ops.iter().find(|o| o.addr == addr).map(|o| {
            if o.module.is_empty() {
                o.symbol.clone()
            } else {
                format!("{} [{}]", o.symbol, o.module)
            }
        })
    }
}

pub fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
