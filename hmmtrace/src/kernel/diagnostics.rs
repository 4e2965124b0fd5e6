//! `--ebpf-log`: the eBPF programs' own diagnostics (aya-log), read from their log ring and
//! named by the probe module that emitted them.
//!
//! Off by default at no cost: the programs test the `AYA_LOG_LEVEL` global before building a
//! record, and it is patched into read-only data at load (0 when off), so the verifier sees
//! the test's outcome and removes the logging code from the loaded program.

use std::sync::{Arc, Mutex};

use aya::Ebpf;
use aya_log::EbpfLogger;

pub use crate::pipeline::status::Diagnostic;

/// The value of `AYA_LOG_LEVEL` to load: every level with `--ebpf-log`, none without.
pub fn level(on: bool) -> u8 {
    if on {
        u8::MAX
    } else {
        0
    }
}

/// Collects what aya-log decodes, for [`Reader::drain`] to hand on.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Diagnostic>>>);

impl log::Log for Collector {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let module = record.module_path().unwrap_or(record.target());
        let probe = module.rsplit("::").next().unwrap_or(module).to_string();
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warn",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        let d = Diagnostic {
            probe,
            level,
            message: record.args().to_string(),
        };
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(d);
    }

    fn flush(&self) {}
}

/// Reads the programs' log ring.
pub struct Reader {
    logger: EbpfLogger<Collector>,
    collected: Collector,
}

impl Reader {
    /// Takes the object's log ring (before its programs run).
    pub fn init(ebpf: &mut Ebpf) -> anyhow::Result<Reader> {
        let collected = Collector::default();
        let logger = EbpfLogger::init_with_logger(ebpf, collected.clone())
            .map_err(|e| anyhow::anyhow!("cannot read the eBPF programs' log ring: {e}"))?;
        Ok(Reader { logger, collected })
    }

    /// The messages written since the last call.
    pub fn drain(&mut self) -> Vec<Diagnostic> {
        self.logger.flush();
        std::mem::take(&mut *self.collected.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
