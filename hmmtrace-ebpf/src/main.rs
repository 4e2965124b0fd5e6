//! hmmtrace's eBPF programs, one module per kernel path, and the pieces they share: the ring
//! buffer, the per-probe drop counters and the settings userspace writes before load.
//!
//! Built for `bpfel-unknown-none` by `hmmtrace/build.rs` (nightly, bpf-linker) and embedded in the
//! `hmmtrace` binary.
#![no_std]
#![no_main]
// Direct tracepoint-record loads at load-time offsets (kread::tp_u64) need one load
// instruction per offset, which only assembly guarantees.
#![feature(asm_experimental_arch)]

mod aggregate;
mod census;
mod device_fault;
mod discover;
mod emit;
mod fork;
mod invalidation;
mod kread;
mod migration;
mod page_free;
mod pairing;
mod range_fault;
mod rename;
mod stress;
mod system_migration;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this; it exists only to satisfy no_std.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
