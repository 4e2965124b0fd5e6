//! The producing side of the pipeline: [`Source`], and one module per kind of source.
//!
//! | source | clock | pace |
//! |---|---|---|
//! | [`kernel`] | `CLOCK_MONOTONIC` of the traced machine | as the kernel's events happen |
//! | [`engine`] | the engine's simulated clock, from 0 | as fast as it goes, or a set number of events per second |
//! | [`capture`] | the capture's own | as fast as it reads |
//! | [`replay`] | the capture's own | as recorded, times a speed, with pause and seek |

pub mod capture;
pub mod engine;
pub mod kernel;
pub mod replay;

use crate::capture::CaptureHeader;

use super::{Control, Finished, Sink};

/// Yields events and status into a sink. [`super::run`] calls `begin` and `finish` on the
/// sink and sends the final `Status::Finished`; a source only calls `event`, `status` and
/// `tick`, ticking at least every 100 ms of wall time while it runs.
pub trait Source: Send {
    /// What the source is: the header of the capture it would write.
    fn header(&self) -> &CaptureHeader;

    /// Yields until there is nothing more or `ctl` says stop; returns why it stopped. A sink's
    /// error ends the run with that error.
    fn run(&mut self, sink: &mut dyn Sink, ctl: &Control) -> anyhow::Result<Finished>;

    /// After `run`: the exit status of a command the source ran, if any (waiting for it).
    fn command_status(&mut self) -> Option<std::process::ExitStatus> {
        None
    }

    /// Whether its sinks should run on a thread of their own when no view holds the
    /// foreground: true for a source that computes events as fast as it can, so that it and
    /// its sinks run side by side (see [`super::handoff`]).
    fn hand_off(&self) -> bool {
        false
    }
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn header(&self) -> &CaptureHeader {
        (**self).header()
    }

    fn run(&mut self, sink: &mut dyn Sink, ctl: &Control) -> anyhow::Result<Finished> {
        (**self).run(sink, ctl)
    }

    fn command_status(&mut self) -> Option<std::process::ExitStatus> {
        (**self).command_status()
    }

    fn hand_off(&self) -> bool {
        (**self).hand_off()
    }
}
