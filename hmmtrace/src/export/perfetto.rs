//! Perfetto's native trace format (protobuf `Trace` of `TracePacket`s with `TrackEvent`s), which
//! ui.perfetto.dev and trace_processor open: a track per process, one per thread under it and,
//! under each thread, one per event kind holding a slice for each event with a duration (an
//! instant for the others, with the event's fields as arguments); and counter tracks of events
//! per second per kind and per device.
//!
//! The few messages used are declared here with prost, with the field numbers of
//! `protos/perfetto/trace/` (trace_packet.proto, track_event/track_event.proto,
//! track_event/track_descriptor.proto, debug_annotation.proto). The trace is streamed: each
//! packet is written as one length-delimited `Trace.packet` field, which is how a `Trace`
//! message is laid out.
//!
//! Why not the `perfetto_protos` crate (0.51.1, Apache-2.0): it does build here without a
//! download of its own (`protoc-bin-vendored` ships protoc inside a crate), but it generates
//! Rust for the whole of Perfetto's trace schema with rust-protobuf: 14 MB of source and a
//! 428 MB debug rlib that took 55 s and 3 GB of memory to compile on this 2-core machine
//! (4 min 39 s for a release build beside another build), in every profile the tests, the
//! benchmarks and the fuzz targets build, for the seven messages used here, and a second
//! protobuf runtime beside prost. Measured 2026-11-30 in a scratch crate depending on it alone.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use super::Flattener;
use crate::event::Event;
use crate::pipeline::Sink;

pub mod proto {
    //! The subset of Perfetto's trace protos hmmtrace writes.

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TracePacket {
        #[prost(uint64, optional, tag = "8")]
        pub timestamp: Option<u64>,
        #[prost(uint32, optional, tag = "10")]
        pub trusted_packet_sequence_id: Option<u32>,
        #[prost(message, optional, tag = "11")]
        pub track_event: Option<TrackEvent>,
        #[prost(message, optional, tag = "60")]
        pub track_descriptor: Option<TrackDescriptor>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TrackDescriptor {
        #[prost(uint64, optional, tag = "1")]
        pub uuid: Option<u64>,
        #[prost(string, optional, tag = "2")]
        pub name: Option<String>,
        #[prost(message, optional, tag = "3")]
        pub process: Option<ProcessDescriptor>,
        #[prost(message, optional, tag = "4")]
        pub thread: Option<ThreadDescriptor>,
        #[prost(uint64, optional, tag = "5")]
        pub parent_uuid: Option<u64>,
        #[prost(message, optional, tag = "8")]
        pub counter: Option<CounterDescriptor>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ProcessDescriptor {
        #[prost(int32, optional, tag = "1")]
        pub pid: Option<i32>,
        #[prost(string, optional, tag = "6")]
        pub process_name: Option<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ThreadDescriptor {
        #[prost(int32, optional, tag = "1")]
        pub pid: Option<i32>,
        #[prost(int32, optional, tag = "2")]
        pub tid: Option<i32>,
        #[prost(string, optional, tag = "5")]
        pub thread_name: Option<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CounterDescriptor {
        #[prost(string, optional, tag = "6")]
        pub unit_name: Option<String>,
    }

    /// `TrackEvent.Type`.
    pub const TYPE_SLICE_BEGIN: i32 = 1;
    pub const TYPE_SLICE_END: i32 = 2;
    pub const TYPE_INSTANT: i32 = 3;
    pub const TYPE_COUNTER: i32 = 4;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TrackEvent {
        #[prost(message, repeated, tag = "4")]
        pub debug_annotations: Vec<DebugAnnotation>,
        #[prost(int32, optional, tag = "9")]
        pub r#type: Option<i32>,
        #[prost(uint64, optional, tag = "11")]
        pub track_uuid: Option<u64>,
        #[prost(string, repeated, tag = "22")]
        pub categories: Vec<String>,
        #[prost(string, optional, tag = "23")]
        pub name: Option<String>,
        #[prost(int64, optional, tag = "30")]
        pub counter_value: Option<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DebugAnnotation {
        #[prost(uint64, optional, tag = "3")]
        pub uint_value: Option<u64>,
        #[prost(int64, optional, tag = "4")]
        pub int_value: Option<i64>,
        #[prost(string, optional, tag = "6")]
        pub string_value: Option<String>,
        #[prost(string, optional, tag = "10")]
        pub name: Option<String>,
    }
}

use proto::*;

/// The one packet sequence this writer produces.
const SEQUENCE: u32 = 1;
/// Counter bins: events per this many ns.
const COUNTER_BIN_NS: u64 = 1_000_000_000;

/// Streams events as a Perfetto trace.
pub struct PerfettoWriter<W: Write> {
    out: W,
    flat: Flattener,
    tracks: HashSet<u64>,
    /// Counter tracks (per kind, per device) and their counts in the open bin.
    counts: HashMap<u64, u64>,
    bin: Option<u64>,
    buf: Vec<u8>,
    pub packets: u64,
}

/// A stable track id from a name (FNV-1a), away from the small ids of nothing else.
fn uuid(what: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in what.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h | 1
}

fn annotation(name: &str, v: &serde_json::Value) -> Option<DebugAnnotation> {
    let mut a = DebugAnnotation {
        name: Some(name.to_string()),
        ..Default::default()
    };
    match v {
        serde_json::Value::Number(n) if n.is_u64() => a.uint_value = n.as_u64(),
        serde_json::Value::Number(n) => a.int_value = n.as_i64(),
        serde_json::Value::String(s) => a.string_value = Some(s.clone()),
        _ => return None,
    }
    Some(a)
}

impl<W: Write> PerfettoWriter<W> {
    pub fn new(out: W, flat: Flattener) -> Self {
        PerfettoWriter {
            out,
            flat,
            tracks: HashSet::new(),
            counts: HashMap::new(),
            bin: None,
            buf: Vec::new(),
            packets: 0,
        }
    }

    fn packet(&mut self, p: TracePacket) -> anyhow::Result<()> {
        // A `Trace` is its packets as repeated field 1: tag, length, bytes, for each.
        self.buf.clear();
        prost::encoding::message::encode(1, &p, &mut self.buf);
        self.out.write_all(&self.buf)?;
        self.packets += 1;
        Ok(())
    }

    fn describe(&mut self, d: TrackDescriptor) -> anyhow::Result<u64> {
        let id = d.uuid.expect("descriptors carry their uuid");
        if self.tracks.insert(id) {
            self.packet(TracePacket {
                trusted_packet_sequence_id: Some(SEQUENCE),
                track_descriptor: Some(d),
                ..Default::default()
            })?;
        }
        Ok(id)
    }

    fn counter_track(&mut self, name: &str) -> anyhow::Result<u64> {
        self.describe(TrackDescriptor {
            uuid: Some(uuid(&format!("counter {name}"))),
            name: Some(name.to_string()),
            counter: Some(CounterDescriptor {
                unit_name: Some("events/s".into()),
            }),
            ..Default::default()
        })
    }

    /// Writes the open counter bin (every counter track, zeros included) at its start.
    fn close_bin(&mut self) -> anyhow::Result<()> {
        let Some(bin) = self.bin else {
            return Ok(());
        };
        let mut counts: Vec<(u64, u64)> = self.counts.iter().map(|(k, v)| (*k, *v)).collect();
        counts.sort_unstable();
        for (track, n) in counts {
            self.packet(TracePacket {
                timestamp: Some(bin),
                trusted_packet_sequence_id: Some(SEQUENCE),
                track_event: Some(TrackEvent {
                    r#type: Some(TYPE_COUNTER),
                    track_uuid: Some(track),
                    counter_value: Some((n * 1_000_000_000 / COUNTER_BIN_NS) as i64),
                    ..Default::default()
                }),
                ..Default::default()
            })?;
            self.counts.insert(track, 0);
        }
        Ok(())
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }
}

impl<W: Write> Sink for PerfettoWriter<W> {
    /// Writes the open counter bin and flushes.
    fn finish(&mut self) -> anyhow::Result<()> {
        self.close_bin()?;
        self.out.flush()?;
        Ok(())
    }

    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        let row = self.flat.row(e);
        // Counters: events per second per kind and per device.
        let bin = e.ts_ns - e.ts_ns % COUNTER_BIN_NS;
        match self.bin {
            Some(open) if bin > open => {
                self.close_bin()?;
                self.bin = Some(bin);
            }
            None => self.bin = Some(bin),
            _ => {}
        }
        let kind_track = self.counter_track(&format!("{} /s", row.kind))?;
        *self.counts.entry(kind_track).or_default() += 1;
        if let Some(dev) = &row.device {
            let t = self.counter_track(&format!("{dev} events /s"))?;
            *self.counts.entry(t).or_default() += 1;
        }
        // The process and thread tracks the event's slice goes on.
        let process = self.describe(TrackDescriptor {
            uuid: Some(uuid(&format!("process {}", e.tgid))),
            process: Some(ProcessDescriptor {
                pid: Some(e.tgid as i32),
                process_name: Some(row.comm.clone()),
            }),
            ..Default::default()
        })?;
        let thread = self.describe(TrackDescriptor {
            uuid: Some(uuid(&format!("thread {} {}", e.tgid, e.pid))),
            parent_uuid: Some(process),
            thread: Some(ThreadDescriptor {
                pid: Some(e.tgid as i32),
                tid: Some(e.pid as i32),
                thread_name: Some(row.comm.clone()),
            }),
            ..Default::default()
        })?;
        // One slice track per kind under the thread: slices of different kinds can start at
        // the same instant (a migration and the invalidation it causes), which on a single
        // track would not nest reliably.
        let track = self.describe(TrackDescriptor {
            uuid: Some(uuid(&format!("slices {} {} {}", e.tgid, e.pid, row.kind))),
            parent_uuid: Some(thread),
            name: Some(row.kind.to_string()),
            ..Default::default()
        })?;
        let fields = serde_json::to_value(&row)?;
        let annotations: Vec<DebugAnnotation> = fields
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "kind" | "ts_ns" | "duration_ns" | "comm" | "tgid" | "pid"
                )
            })
            .filter_map(|(k, v)| annotation(k, v))
            .collect();
        let name = match (&row.event, &row.direction) {
            (Some(ev), _) => format!("{} {ev}", row.kind),
            (_, Some(dir)) => format!("{} {dir}", row.kind),
            _ => row.kind.to_string(),
        };
        let begin = TrackEvent {
            debug_annotations: annotations,
            r#type: Some(if e.duration_ns.is_some() {
                TYPE_SLICE_BEGIN
            } else {
                TYPE_INSTANT
            }),
            track_uuid: Some(track),
            categories: vec!["hmm".into()],
            name: Some(name),
            counter_value: None,
        };
        self.packet(TracePacket {
            timestamp: Some(e.ts_ns),
            trusted_packet_sequence_id: Some(SEQUENCE),
            track_event: Some(begin),
            ..Default::default()
        })?;
        if let Some(d) = e.duration_ns {
            self.packet(TracePacket {
                timestamp: Some(e.ts_ns + d),
                trusted_packet_sequence_id: Some(SEQUENCE),
                track_event: Some(TrackEvent {
                    r#type: Some(TYPE_SLICE_END),
                    track_uuid: Some(track),
                    ..Default::default()
                }),
                ..Default::default()
            })?;
        }
        Ok(())
    }
}
