//! JSON Lines: one object per event, fields that do not apply (or are unknown) left out.

use std::io::Write;

use super::Flattener;
use crate::event::Event;
use crate::pipeline::Sink;

pub struct JsonlWriter<W: Write> {
    out: W,
    flat: Flattener,
    line: Vec<u8>,
}

impl<W: Write> JsonlWriter<W> {
    pub fn new(out: W, flat: Flattener) -> Self {
        JsonlWriter {
            out,
            flat,
            line: Vec::new(),
        }
    }

    /// Flushes and returns the output.
    pub fn into_inner(mut self) -> anyhow::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Sink for JsonlWriter<W> {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        let mut v = serde_json::to_value(self.flat.row(event))?;
        if let Some(obj) = v.as_object_mut() {
            obj.retain(|_, v| !v.is_null());
        }
        // Serialised apart from the write, so an I/O error (a closed pipe) reaches the caller
        // as itself.
        self.line.clear();
        serde_json::to_writer(&mut self.line, &v)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}
