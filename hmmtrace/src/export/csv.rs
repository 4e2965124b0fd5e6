//! CSV: a header row, then one row per event with every column of [`super::Row`]; a field that
//! does not apply to the event's kind, or is unknown, is empty.

use std::io::Write;

use super::{Flattener, COLUMNS};
use crate::event::Event;
use crate::pipeline::Sink;

pub struct CsvWriter<W: Write> {
    out: ::csv::Writer<W>,
    flat: Flattener,
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header row at once, so an export of no events is still a valid table.
    pub fn new(out: W, flat: Flattener) -> anyhow::Result<Self> {
        let mut out = ::csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(out);
        out.write_record(COLUMNS)?;
        Ok(CsvWriter { out, flat })
    }
}

/// Keeps an I/O error (a closed pipe) recognisable as one, which `csv::Error` hides.
fn io_first(e: ::csv::Error) -> anyhow::Error {
    match e.into_kind() {
        ::csv::ErrorKind::Io(io) => io.into(),
        other => anyhow::anyhow!("CSV: {other:?}"),
    }
}

impl<W: Write> Sink for CsvWriter<W> {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.out.serialize(self.flat.row(event)).map_err(io_first)
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}
