//! The consuming side of the pipeline: [`Sink`] with its whole lifecycle, its impls for
//! `&mut S` and `Box<S>` (so a command keeps ownership of a sink and reads it afterwards), a
//! [`Tee`] over several sinks, and [`from_fn`] for a closure.

use crate::capture::CaptureHeader;
use crate::event::Event;
use crate::findings::Finding;

use super::status::Status;

/// Consumes what a source yields, in this order: [`begin`](Sink::begin) once with the source's
/// header; then events, status messages and ticks, interleaved in the order they happened;
/// then [`finish`](Sink::finish) once when no more will come (the source ended, failed or was
/// stopped; a `Status::Finished` says which just before).
///
/// Every method but `event` has a default that ignores it, so a sink implements what it uses.
/// An error from any method ends the run: the source stops, every sink still gets `finish`
/// (a capture writer flushes what it has), and the run returns the first error.
pub trait Sink {
    /// The source's self-description, before anything else.
    fn begin(&mut self, _header: &CaptureHeader) -> anyhow::Result<()> {
        Ok(())
    }

    fn event(&mut self, event: &Event) -> anyhow::Result<()>;

    /// Something about the source that is not an event: program costs, undecodable records,
    /// a replay's position, the end and why.
    fn status(&mut self, _status: &Status) -> anyhow::Result<()> {
        Ok(())
    }

    /// The source's clock reached `now_ns` (the clock the header names): every event up to it
    /// has been delivered. Sources tick at least every 100 ms of wall time while running, also
    /// when nothing happens, so sinks do periodic work (redraw, flush, publish) here.
    fn tick(&mut self, _now_ns: u64) -> anyhow::Result<()> {
        Ok(())
    }

    /// A finding the detectors made of the events so far (see [`super::detect`]): sinks
    /// that show findings take them here, in the order they were concluded.
    fn finding(&mut self, _finding: &Finding) -> anyhow::Result<()> {
        Ok(())
    }

    /// No more events will come.
    fn finish(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn begin(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        (**self).begin(header)
    }
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        (**self).event(event)
    }
    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        (**self).status(status)
    }
    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        (**self).tick(now_ns)
    }
    fn finding(&mut self, finding: &Finding) -> anyhow::Result<()> {
        (**self).finding(finding)
    }
    fn finish(&mut self) -> anyhow::Result<()> {
        (**self).finish()
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn begin(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        (**self).begin(header)
    }
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        (**self).event(event)
    }
    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        (**self).status(status)
    }
    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        (**self).tick(now_ns)
    }
    fn finding(&mut self, finding: &Finding) -> anyhow::Result<()> {
        (**self).finding(finding)
    }
    fn finish(&mut self) -> anyhow::Result<()> {
        (**self).finish()
    }
}

/// Several sinks as one, each called in the order added. `finish` reaches every sink even
/// when an earlier one fails (so each can flush what it has); the first error is returned.
#[derive(Default)]
pub struct Tee<'a> {
    sinks: Vec<Box<dyn Sink + Send + 'a>>,
}

impl<'a> Tee<'a> {
    pub fn new() -> Tee<'a> {
        Tee { sinks: Vec::new() }
    }

    /// Adds a sink (a `&mut S` keeps it the caller's).
    pub fn with(mut self, sink: impl Sink + Send + 'a) -> Tee<'a> {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Adds a sink if there is one.
    pub fn with_opt(self, sink: Option<impl Sink + Send + 'a>) -> Tee<'a> {
        match sink {
            Some(s) => self.with(s),
            None => self,
        }
    }

    pub fn push(&mut self, sink: impl Sink + Send + 'a) {
        self.sinks.push(Box::new(sink));
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

impl Sink for Tee<'_> {
    fn begin(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.begin(header))
    }
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.event(event))
    }
    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.status(status))
    }
    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.tick(now_ns))
    }
    fn finding(&mut self, finding: &Finding) -> anyhow::Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.finding(finding))
    }
    fn finish(&mut self) -> anyhow::Result<()> {
        let mut first = None;
        for s in &mut self.sinks {
            if let Err(e) = s.finish() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// A sink of events only, from a closure.
pub fn from_fn<F: FnMut(&Event) -> anyhow::Result<()>>(f: F) -> FnSink<F> {
    FnSink(f)
}

/// See [`from_fn`].
pub struct FnSink<F>(F);

impl<F: FnMut(&Event) -> anyhow::Result<()>> Sink for FnSink<F> {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        (self.0)(event)
    }
}
