//! The kernel source: loads hmmtrace's eBPF object into the running kernel, fills in what the
//! programs cannot know at compile time (field offsets, settings), attaches them, and turns the
//! ring buffer's records into `Event`s.
//!
//! Parsing the kernel's self-description ([`tracefs`]) is kept apart from the syscalls
//! ([`session`]), so the former is unit-tested against recorded files of several kernels.
//! For now only the system-migration tracepoint is attached; the HMM paths' fentry/kprobe plan
//! comes next.

pub mod attach;
pub mod btf;
pub mod plan;
pub mod session;
pub mod tracefs;

pub use session::{Session, SessionOptions};

/// The eBPF object built by `build.rs` from `hmmtrace-ebpf`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/hmmtrace"));
