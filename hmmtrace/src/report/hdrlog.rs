//! `--hdr-log FILE`: interval histograms as an HdrHistogram V2 interval log (each histogram
//! DEFLATE-compressed and base64-encoded, one line per kind and interval, tagged with the
//! kind's name, the same kinds a report counts), the format HdrHistogram's Java, Python, Go and C implementations read.
//!
//! Intervals are cut on the capture's own clock, from its first event. Events are written as
//! their interval closes, so memory holds one open interval per kind. An event stamped before
//! the open interval (CPUs' records interleave slightly in a kernel capture) is counted in it.

use std::io::Write;
use std::time::Duration;

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use super::{MAX_TRACKABLE_NS, SIGNIFICANT_DIGITS};
use crate::event::{Class, Event};
use crate::pipeline::Sink;

pub struct HdrLog<W: Write> {
    out: W,
    serializer: V2DeflateSerializer,
    interval_ns: u64,
    /// Start of the open interval, ns on the capture's clock; `None` before the first event.
    open: Option<u64>,
    /// The first event's time: interval timestamps are offsets from it.
    origin: u64,
    current: Vec<(Class, Histogram<u64>)>,
    /// Interval histograms written.
    pub written: u64,
}

impl<W: Write> HdrLog<W> {
    /// Writes the log's header. `start_unix_ns` is the capture's wall-clock start (StartTime).
    pub fn new(
        mut out: W,
        interval: Duration,
        start_unix_ns: u64,
        source: &str,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!interval.is_zero(), "the interval must be longer than 0");
        writeln!(
            out,
            "#[hmmtrace {}: entry-to-exit latency per event kind, ns; tag = kind]",
            source
        )?;
        writeln!(out, "#[Histogram log format version 1.3]")?;
        writeln!(
            out,
            "#[StartTime: {:.3} (seconds since epoch)]",
            start_unix_ns as f64 / 1e9
        )?;
        writeln!(
            out,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )?;
        Ok(HdrLog {
            out,
            serializer: V2DeflateSerializer::new(),
            interval_ns: interval.as_nanos().max(1) as u64,
            open: None,
            origin: 0,
            current: Vec::new(),
            written: 0,
        })
    }

    fn close_interval(&mut self) -> anyhow::Result<()> {
        let Some(start) = self.open else {
            return Ok(());
        };
        let offset = Duration::from_nanos(start - self.origin);
        let length = Duration::from_nanos(self.interval_ns);
        for (kind, h) in &mut self.current {
            if h.is_empty() {
                continue;
            }
            // A writer with no headers configured writes only the interval line.
            let mut log = IntervalLogWriterBuilder::new()
                .begin_log_with(&mut self.out, &mut self.serializer)?;
            log.write_histogram(h, offset, length, Tag::new(kind.name()))
                .map_err(|e| anyhow::anyhow!("cannot write an interval histogram: {e:?}"))?;
            h.reset();
            self.written += 1;
        }
        Ok(())
    }
}

impl<W: Write> Sink for HdrLog<W> {
    /// Writes the open interval and flushes.
    fn finish(&mut self) -> anyhow::Result<()> {
        self.close_interval()?;
        self.out.flush()?;
        Ok(())
    }

    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        let Some(d) = e.duration_ns else {
            return Ok(());
        };
        let open = match self.open {
            Some(open) => open,
            None => {
                self.origin = e.ts_ns;
                self.open = Some(e.ts_ns);
                e.ts_ns
            }
        };
        if e.ts_ns >= open + self.interval_ns {
            self.close_interval()?;
            let skipped = (e.ts_ns - open) / self.interval_ns;
            self.open = Some(open + skipped * self.interval_ns);
        }
        let h = match self.current.iter_mut().find(|(k, _)| *k == e.class()) {
            Some((_, h)) => h,
            None => {
                let h = Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, SIGNIFICANT_DIGITS)
                    .expect("valid bounds");
                self.current.push((e.class(), h));
                &mut self.current.last_mut().expect("just pushed").1
            }
        };
        h.saturating_record(d.clamp(1, MAX_TRACKABLE_NS));
        Ok(())
    }
}
