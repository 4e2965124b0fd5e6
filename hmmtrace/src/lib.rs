//! hmmtrace: shows what the kernel's Heterogeneous Memory Management does while GPU and
//! accelerator workloads run.
//!
//! The crate is split by concern. [`event`] defines the one `Event` type; sources produce it
//! ([`engine`] via [`scenario`], [`capture`] replay, and the kernel probes in [`kernel`]) and
//! sinks consume it ([`capture`] writer, [`report`], [`export`], [`metrics`], the [`tui`]). No source knows
//! about any sink.

pub mod capture;
pub mod engine;
pub mod event;
pub mod export;
pub mod kernel;
pub mod labels;
pub mod metrics;
pub mod report;
pub mod scenario;
pub mod textfile;
pub mod tui;
