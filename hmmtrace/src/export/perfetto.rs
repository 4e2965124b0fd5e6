//! Perfetto's native trace format (protobuf `Trace` of `TracePacket`s with `TrackEvent`s), which
//! ui.perfetto.dev and trace_processor open: a track per process, one per thread under it and,
//! under each thread, one per event kind holding a slice for each event with a duration (an
//! instant for the others, with the event's fields as arguments); and counter tracks of events
//! per second per kind and per device.
//!
//! Kept small the way Perfetto's own SDK does: event names, categories, argument names and
//! string values are interned on the packet sequence (`InternedData`, emitted in the packet that
//! first uses each; the first packet clears the sequence's incremental state), tracks have small
//! ids, and fields an event does not have are left out.
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

use std::collections::HashMap;
use std::io::Write;

use super::{Flattener, Row};
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
        #[prost(message, optional, tag = "12")]
        pub interned_data: Option<InternedData>,
        #[prost(uint32, optional, tag = "13")]
        pub sequence_flags: Option<u32>,
        #[prost(message, optional, tag = "60")]
        pub track_descriptor: Option<TrackDescriptor>,
    }

    /// `TracePacket.SequenceFlags`.
    pub const SEQ_INCREMENTAL_STATE_CLEARED: u32 = 1;
    pub const SEQ_NEEDS_INCREMENTAL_STATE: u32 = 2;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InternedData {
        #[prost(message, repeated, tag = "1")]
        pub event_categories: Vec<Interned>,
        #[prost(message, repeated, tag = "2")]
        pub event_names: Vec<Interned>,
        #[prost(message, repeated, tag = "3")]
        pub debug_annotation_names: Vec<Interned>,
        #[prost(message, repeated, tag = "29")]
        pub debug_annotation_string_values: Vec<InternedBytes>,
    }

    /// `EventCategory`, `EventName`, `DebugAnnotationName`: an iid and a string.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Interned {
        #[prost(uint64, optional, tag = "1")]
        pub iid: Option<u64>,
        #[prost(string, optional, tag = "2")]
        pub name: Option<String>,
    }

    /// `InternedString`: an iid and bytes.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InternedBytes {
        #[prost(uint64, optional, tag = "1")]
        pub iid: Option<u64>,
        #[prost(bytes = "vec", optional, tag = "2")]
        pub str: Option<Vec<u8>>,
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
        #[prost(uint64, repeated, packed = "false", tag = "3")]
        pub category_iids: Vec<u64>,
        #[prost(message, repeated, tag = "4")]
        pub debug_annotations: Vec<DebugAnnotation>,
        #[prost(uint64, optional, tag = "10")]
        pub name_iid: Option<u64>,
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
        #[prost(uint64, optional, tag = "1")]
        pub name_iid: Option<u64>,
        #[prost(uint64, optional, tag = "17")]
        pub string_value_iid: Option<u64>,
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
    /// Track ids: by process, by thread, by (thread, kind), by counter name.
    processes: HashMap<u32, u64>,
    threads: HashMap<(u32, u32), u64>,
    slices: HashMap<(u32, u32, &'static str), u64>,
    counter_tracks: HashMap<String, u64>,
    next_track: u64,
    /// Interned strings, per table: their iids.
    names: HashMap<String, u64>,
    argument_names: HashMap<&'static str, u64>,
    strings: HashMap<String, u64>,
    next_iid: u64,
    /// Interned data not yet written: it goes in the next packet.
    pending: InternedData,
    /// Counter tracks (per kind, per device) and their counts in the open bin.
    counts: HashMap<u64, u64>,
    bin: Option<u64>,
    buf: Vec<u8>,
    pub packets: u64,
}

/// The category of every event.
const CATEGORY_IID: u64 = 1;

/// An argument's value.
enum Value<'a> {
    U(u64),
    I(i64),
    S(&'a str),
}

/// The row's fields as arguments: all but those its track and slice name already say (kind,
/// times, process, thread, invalidation event, migration direction).
fn arguments(r: &Row) -> impl Iterator<Item = (&'static str, Value<'_>)> {
    let u = |n: &'static str, v: Option<u64>| v.map(|v| (n, Value::U(v)));
    let s = |n: &'static str, v: Option<&'static str>| v.map(|v| (n, Value::S(v)));
    [
        Some(("cpu", Value::U(u64::from(r.cpu)))),
        r.device.as_deref().map(|d| ("device", Value::S(d))),
        r.pgmap_ops.as_deref().map(|d| ("pgmap_ops", Value::S(d))),
        u("start", r.start),
        u("end", r.end),
        u("npages", r.npages),
        u("cpages", r.cpages),
        u("migrated", r.migrated),
        s("api", r.api),
        u("select", r.select.map(u64::from)),
        u("setup_ns", r.setup_ns),
        u("pages_ns", r.pages_ns),
        u("finalize_ns", r.finalize_ns),
        u("address", r.address),
        r.result.map(|v| ("result", Value::I(v))),
        u("pfn", r.pfn),
        u("order", r.order.map(u64::from)),
        s("memory_type", r.memory_type),
        u("callback_ns", r.callback_ns),
        s("path", r.path),
        u("range_flags", r.range_flags.map(u64::from)),
        u("retries", r.retries.map(u64::from)),
        u("succeeded", r.succeeded),
        u("failed", r.failed),
        u("thp_succeeded", r.thp_succeeded),
        u("thp_failed", r.thp_failed),
        u("thp_split", r.thp_split),
        u("large_folio_split", r.large_folio_split),
        r.mode.as_deref().map(|v| ("mode", Value::S(v))),
        r.reason.as_deref().map(|v| ("reason", Value::S(v))),
        s("probe", r.probe),
        u("count", r.count),
    ]
    .into_iter()
    .flatten()
}

impl<W: Write> PerfettoWriter<W> {
    pub fn new(out: W, flat: Flattener) -> Self {
        PerfettoWriter {
            out,
            flat,
            processes: HashMap::new(),
            threads: HashMap::new(),
            slices: HashMap::new(),
            counter_tracks: HashMap::new(),
            next_track: 1,
            names: HashMap::new(),
            argument_names: HashMap::new(),
            strings: HashMap::new(),
            next_iid: CATEGORY_IID + 1,
            pending: InternedData::default(),
            counts: HashMap::new(),
            bin: None,
            buf: Vec::new(),
            packets: 0,
        }
    }

    /// Writes `p` on the sequence, with its flags and the interned data not yet written.
    fn packet(&mut self, mut p: TracePacket) -> anyhow::Result<()> {
        p.trusted_packet_sequence_id = Some(SEQUENCE);
        p.sequence_flags = Some(if self.packets == 0 {
            // The first packet clears the sequence's incremental state and interns the one
            // category.
            self.pending.event_categories.push(Interned {
                iid: Some(CATEGORY_IID),
                name: Some("hmm".into()),
            });
            SEQ_INCREMENTAL_STATE_CLEARED | SEQ_NEEDS_INCREMENTAL_STATE
        } else {
            SEQ_NEEDS_INCREMENTAL_STATE
        });
        if self.pending != InternedData::default() {
            p.interned_data = Some(std::mem::take(&mut self.pending));
        }
        // A `Trace` is its packets as repeated field 1: tag, length, bytes, for each.
        self.buf.clear();
        prost::encoding::message::encode(1, &p, &mut self.buf);
        self.out.write_all(&self.buf)?;
        self.packets += 1;
        Ok(())
    }

    fn iid(&mut self) -> u64 {
        let id = self.next_iid;
        self.next_iid += 1;
        id
    }

    fn name_iid(&mut self, name: &str) -> u64 {
        if let Some(id) = self.names.get(name) {
            return *id;
        }
        let id = self.iid();
        self.names.insert(name.to_string(), id);
        self.pending.event_names.push(Interned {
            iid: Some(id),
            name: Some(name.to_string()),
        });
        id
    }

    fn argument_iid(&mut self, name: &'static str) -> u64 {
        if let Some(id) = self.argument_names.get(name) {
            return *id;
        }
        let id = self.iid();
        self.argument_names.insert(name, id);
        self.pending.debug_annotation_names.push(Interned {
            iid: Some(id),
            name: Some(name.to_string()),
        });
        id
    }

    fn string_iid(&mut self, value: &str) -> u64 {
        if let Some(id) = self.strings.get(value) {
            return *id;
        }
        let id = self.iid();
        self.strings.insert(value.to_string(), id);
        self.pending
            .debug_annotation_string_values
            .push(InternedBytes {
                iid: Some(id),
                str: Some(value.as_bytes().to_vec()),
            });
        id
    }

    fn track(&mut self) -> u64 {
        let id = self.next_track;
        self.next_track += 1;
        id
    }

    fn describe(&mut self, d: TrackDescriptor) -> anyhow::Result<()> {
        self.packet(TracePacket {
            track_descriptor: Some(d),
            ..Default::default()
        })
    }

    fn process_track(&mut self, tgid: u32, comm: &str) -> anyhow::Result<u64> {
        if let Some(id) = self.processes.get(&tgid) {
            return Ok(*id);
        }
        let id = self.track();
        self.processes.insert(tgid, id);
        self.describe(TrackDescriptor {
            uuid: Some(id),
            process: Some(ProcessDescriptor {
                pid: Some(tgid as i32),
                process_name: Some(comm.to_string()),
            }),
            ..Default::default()
        })?;
        Ok(id)
    }

    fn thread_track(&mut self, tgid: u32, tid: u32, comm: &str) -> anyhow::Result<u64> {
        if let Some(id) = self.threads.get(&(tgid, tid)) {
            return Ok(*id);
        }
        let parent = self.process_track(tgid, comm)?;
        let id = self.track();
        self.threads.insert((tgid, tid), id);
        self.describe(TrackDescriptor {
            uuid: Some(id),
            parent_uuid: Some(parent),
            thread: Some(ThreadDescriptor {
                pid: Some(tgid as i32),
                tid: Some(tid as i32),
                thread_name: Some(comm.to_string()),
            }),
            ..Default::default()
        })?;
        Ok(id)
    }

    /// The track of one kind's slices under a thread: slices of different kinds can start at
    /// the same instant (a migration and the invalidation it causes), which on a single track
    /// would not nest reliably.
    fn slice_track(&mut self, e: &Event, kind: &'static str, comm: &str) -> anyhow::Result<u64> {
        if let Some(id) = self.slices.get(&(e.tgid, e.pid, kind)) {
            return Ok(*id);
        }
        let parent = self.thread_track(e.tgid, e.pid, comm)?;
        let id = self.track();
        self.slices.insert((e.tgid, e.pid, kind), id);
        self.describe(TrackDescriptor {
            uuid: Some(id),
            parent_uuid: Some(parent),
            name: Some(kind.to_string()),
            ..Default::default()
        })?;
        Ok(id)
    }

    fn counter_track(&mut self, name: &str) -> anyhow::Result<u64> {
        if let Some(id) = self.counter_tracks.get(name) {
            return Ok(*id);
        }
        let id = self.track();
        self.counter_tracks.insert(name.to_string(), id);
        self.describe(TrackDescriptor {
            uuid: Some(id),
            name: Some(name.to_string()),
            counter: Some(CounterDescriptor {
                unit_name: Some("events/s".into()),
            }),
            ..Default::default()
        })?;
        Ok(id)
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
        let track = self.slice_track(e, row.kind, &row.comm)?;
        let name = match (&row.event, &row.direction) {
            (Some(ev), _) => self.name_iid(&format!("{} {ev}", row.kind)),
            (_, Some(dir)) => self.name_iid(&format!("{} {dir}", row.kind)),
            _ => self.name_iid(row.kind),
        };
        let mut annotations = Vec::new();
        for (n, v) in arguments(&row) {
            let mut a = DebugAnnotation {
                name_iid: Some(self.argument_iid(n)),
                ..Default::default()
            };
            match v {
                Value::U(v) => a.uint_value = Some(v),
                Value::I(v) => a.int_value = Some(v),
                Value::S(v) => a.string_value_iid = Some(self.string_iid(v)),
            }
            annotations.push(a);
        }
        let begin = TrackEvent {
            debug_annotations: annotations,
            r#type: Some(if e.duration_ns.is_some() {
                TYPE_SLICE_BEGIN
            } else {
                TYPE_INSTANT
            }),
            track_uuid: Some(track),
            category_iids: vec![CATEGORY_IID],
            name_iid: Some(name),
            ..Default::default()
        };
        self.packet(TracePacket {
            timestamp: Some(e.ts_ns),
            track_event: Some(begin),
            ..Default::default()
        })?;
        if let Some(d) = e.duration_ns {
            self.packet(TracePacket {
                timestamp: Some(e.ts_ns + d),
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
