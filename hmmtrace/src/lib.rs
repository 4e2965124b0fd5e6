//! hmmtrace: shows what the kernel's Heterogeneous Memory Management does while GPU and
//! accelerator workloads run.
//!
//! The crate is split by concern. [`event`] defines the one `Event` type. Sources produce it:
//! the kernel probes ([`kernel`]), the reference engine ([`engine`], running a [`scenario`]),
//! capture files ([`capture`]). Sinks consume it: the [`capture`] writer, [`report`],
//! [`export`], [`metrics`], the [`tui`]. The [`pipeline`] connects one source to its sinks
//! (its `source` module wraps each source; the sinks implement its `Sink`), so no source knows
//! about any sink and no sink about any source. [`probe`] is the attach plan's vocabulary,
//! which kernel captures carry; [`error`] the errors that decide exit codes; [`cli`] the
//! command line that `main.rs` runs.

pub mod aggregate;
pub mod capture;
pub mod census;
pub mod cli;
pub mod engine;
pub mod error;
pub mod event;
pub mod export;
pub mod findings;
pub mod kernel;
pub mod labels;
pub mod metrics;
pub mod notices;
pub mod pipeline;
pub mod probe;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod textfile;
pub mod tui;

#[cfg(test)]
pub(crate) mod fixtures;

// Dev-dependencies only the integration tests use (the unit tests share their list).
#[cfg(test)]
use {png as _, tempfile as _};
