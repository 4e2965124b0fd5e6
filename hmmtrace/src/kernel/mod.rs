//! The kernel side of the kernel source: reads what the running kernel says about itself
//! (kallsyms, tracefs, BTF: [`plan::KernelFacts`], once per run), resolves the attach plan
//! (fentry/fexit first, kprobe/kretprobe as the fallback, the `migrate:mm_migrate_pages`
//! tracepoint), loads hmmtrace's eBPF object with the offsets and settings the programs cannot
//! know at compile time, attaches it, and turns ring-buffer records into `Event`s
//! ([`Session`]), following drivers' modules as they load and unload ([`modules`]).
//! `pipeline::source::kernel` drives a session; nothing here knows of sinks.
//!
//! Parsing the kernel's self-description ([`tracefs`], [`btf`], [`plan`]) is kept apart from
//! the syscalls ([`session`], [`attach`]), so the former is unit-tested against recorded files
//! of several kernels.

pub mod attach;
pub mod btf;
pub mod diagnostics;
pub mod kallsyms;
pub mod modules;
pub mod names;
pub mod plan;
pub mod privilege;
pub mod session;
pub mod tracefs;

pub use session::{Session, SessionOptions};

/// The eBPF object built by `build.rs` from `hmmtrace-ebpf`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/hmmtrace"));

/// `CLOCK_MONOTONIC` in ns: the clock of the kernel's event timestamps (`bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
