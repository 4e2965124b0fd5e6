//! A sink for commands without a TUI: prints to stderr what a source says about itself that
//! a person should see as it happens (eBPF diagnostics with `--ebpf-log`, ring records that did
//! not decode, probes attached or detached as driver modules come and go). Events pass by
//! untouched.

use crate::event::Event;
use crate::pipeline::{Sink, Status};

#[derive(Default)]
pub struct Notices;

impl Sink for Notices {
    fn event(&mut self, _: &Event) -> anyhow::Result<()> {
        Ok(())
    }

    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        match status {
            Status::Diagnostic(d) => {
                eprintln!("hmmtrace: ebpf [{}] {}: {}", d.probe, d.level, d.message)
            }
            Status::Plan(p) => {
                for c in &p.changes {
                    eprintln!("hmmtrace: {c}");
                }
            }
            Status::Malformed(n) => {
                eprintln!("hmmtrace: {n} ring-buffer records so far did not decode (a bug: please report it)")
            }
            _ => {}
        }
        Ok(())
    }
}
