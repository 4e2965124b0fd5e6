//! Findings in the pipeline: a sink adapter that passes everything on to the sink it wraps and
//! runs the [`Detectors`] on the events, handing each finding to the sink's
//! [`Sink::finding`] as it is concluded (on an event, on a tick of the source's clock when
//! state ages out, and at the end). A command wraps its sinks once; the sinks that show
//! findings (TUI, report, metrics) take them, the others ignore them. A replay that seeks back
//! (`Status::Restart`) starts the detectors over, as the sinks start over.

use crate::capture::CaptureHeader;
use crate::event::Event;
use crate::findings::{Config, Detectors, Finding};

use super::{Sink, Status};

pub struct Detect<S> {
    inner: S,
    config: Config,
    detectors: Detectors,
    header: Option<CaptureHeader>,
    found: Vec<Finding>,
}

impl<S: Sink> Detect<S> {
    pub fn new(inner: S, config: Config) -> Detect<S> {
        Detect {
            inner,
            detectors: Detectors::new(config.clone()),
            config,
            header: None,
            found: Vec::new(),
        }
    }

    fn deliver(&mut self) -> anyhow::Result<()> {
        if self.found.is_empty() {
            return Ok(());
        }
        for f in self.found.drain(..) {
            self.inner.finding(&f)?;
        }
        Ok(())
    }
}

impl<S: Sink> Sink for Detect<S> {
    fn begin(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        self.detectors.begin(header);
        self.header = Some(header.clone());
        self.inner.begin(header)?;
        self.inner.status(&Status::Detecting)
    }

    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.inner.event(event)?;
        self.detectors.event(event, &mut self.found);
        self.deliver()
    }

    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        self.inner.status(status)?;
        if *status == Status::Restart {
            self.detectors = Detectors::new(self.config.clone());
            if let Some(h) = &self.header {
                self.detectors.begin(h);
            }
            // The sinks forgot everything, this too.
            self.inner.status(&Status::Detecting)?;
        }
        Ok(())
    }

    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        self.inner.tick(now_ns)?;
        self.detectors.tick(now_ns, &mut self.found);
        self.deliver()
    }

    fn finding(&mut self, finding: &Finding) -> anyhow::Result<()> {
        self.inner.finding(finding)
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.detectors.finish(&mut self.found);
        let delivered = self.deliver();
        let finished = self.inner.finish();
        delivered.and(finished)
    }
}
