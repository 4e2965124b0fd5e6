//! Capture files: a header that says where the events came from, then self-delimiting,
//! checksummed blocks of compactly encoded events. A sink ([`Writer`]) and a reader
//! ([`Reader`], which `pipeline::source::capture` and `replay` drive).
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
//! aggregates    "HMAG"              4 bytes magic; then as a block, event count 0
//!               payload             P bytes of JSON: an `aggregate::Snapshot`
//! plan change   "HMPL"              4 bytes magic; then as a block, event count 0
//!               payload             P bytes of JSON: a `pipeline::PlanChange`
//! census        "HMCN"              4 bytes magic; then as a block, event count 0
//!               payload             P bytes of JSON: a `census::Census`
//! ```
//!
//! Aggregate blocks (`record --aggregate`) hold the in-kernel aggregates as read once a
//! second, cumulative; they share the blocks' sequence numbers, so order and loss are checked
//! the same way. A reader from before them stops at the first one with "bad block magic".
//! Plan-change blocks record what the session attached or detached after the header was
//! written (a driver module loaded or unloaded, a callback discovered), with the whole plan.
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

pub use reader::{last_timestamp, ReadSummary, Reader};
pub use writer::Writer;

pub const MAGIC: &[u8; 8] = b"HMMTRACE";
pub const BLOCK_MAGIC: &[u8; 4] = b"HMBK";
pub const AGGREGATE_MAGIC: &[u8; 4] = b"HMAG";
pub const PLAN_MAGIC: &[u8; 4] = b"HMPL";
pub const CENSUS_MAGIC: &[u8; 4] = b"HMCN";
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

impl ClockKind {
    /// A name for a panel title.
    pub fn short(self) -> &'static str {
        match self {
            ClockKind::Monotonic => "the kernel's clock",
            ClockKind::Simulated => "simulated time",
        }
    }

    /// What the clock is, in a few words, for reports and titles.
    pub fn describe(self) -> &'static str {
        match self {
            ClockKind::Monotonic => "the traced machine's CLOCK_MONOTONIC",
            ClockKind::Simulated => "the engine's simulated clock",
        }
    }
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

/// What a capture file says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// The traced machine's boot (`/proc/sys/kernel/random/boot_id`): kernel captures of the
    /// same boot share a clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// Simulated seconds per wall second the source ran at, when it was paced so (the demo):
    /// the speed a replay plays it at by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace: Option<f64>,
    /// Names of fields' values, by `tracepoint.field` (`mm_migrate_pages.mode`): the kernel's,
    /// from the tracepoint's print format, so exports say `MIGRATE_SYNC`, not 2.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub value_names: std::collections::BTreeMap<String, Vec<(u64, String)>>,
    /// The traced system's page size (the engine's is 4096).
    pub page_size: u64,
    /// The attach plan that produced a kernel capture, each row with its outcome (captures of
    /// older versions stored rows as four strings; they read as typed rows).
    #[serde(default)]
    pub probe_plan: Vec<crate::probe::PlanEntry>,
    #[serde(default)]
    pub devices: Vec<DeviceInfo>,
    /// For kernel captures: the `dev_pagemap_ops` instances of the traced kernel, so events'
    /// `pgmap_ops` values can be named (`dmirror_devmem_ops` of `test_hmm`) without showing
    /// kernel pointers.
    #[serde(default)]
    pub pagemap_ops: Vec<PagemapOpsInfo>,
    /// `record --aggregate`: the kernel counted and timed the HMM events itself; the capture
    /// holds its snapshots (aggregate blocks) instead of them.
    #[serde(default)]
    pub aggregate: bool,
}

/// A `dev_pagemap_ops` symbol of the traced kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagemapOpsInfo {
    pub addr: u64,
    pub symbol: String,
    pub module: String,
}

impl CaptureHeader {
    /// Whether events of `a` and `b` are on one clock, so they can be summed into one report;
    /// else why not.
    pub fn same_clock(a: &CaptureHeader, b: &CaptureHeader) -> Result<(), String> {
        match (a.clock, b.clock) {
            (ClockKind::Simulated, _) | (_, ClockKind::Simulated) => {
                Err("each engine capture has a simulated clock of its own, starting at 0".into())
            }
            (ClockKind::Monotonic, ClockKind::Monotonic) => match (&a.boot_id, &b.boot_id) {
                (Some(x), Some(y)) if x == y => Ok(()),
                (Some(_), Some(_)) => Err(
                    "they come from different boots, whose CLOCK_MONOTONIC are unrelated".into(),
                ),
                _ => Err(
                    "one does not record its boot (an older capture), so whether they \
                     share CLOCK_MONOTONIC cannot be told"
                        .into(),
                ),
            },
        }
    }

    /// The name of `value` of `field` (`mm_migrate_pages.mode`), or the number as text.
    pub fn value_name(&self, field: &str, value: u64) -> String {
        self.value_names
            .get(field)
            .and_then(|names| names.iter().find(|(v, _)| *v == value))
            .map_or_else(|| value.to_string(), |(_, n)| n.clone())
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

/// This system's page size (`sysconf(_SC_PAGESIZE)`).
pub fn system_page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).unwrap_or(4096)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
