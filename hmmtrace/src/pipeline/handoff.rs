//! A sink on a thread of its own: the source's thread hands events over in batches and goes
//! on producing while the sinks (summary, detectors, capture writer) consume. On two cores a
//! source that computes its events (the engine at full speed) and sinks that are as busy run
//! side by side instead of taking turns.
//!
//! Order is kept: events and ticks travel in one batch, in the order they came; status
//! messages and the lifecycle go through the same channel. The lifecycle is the one a sink
//! gets without a handoff: when a sink fails on an event, no more events reach it, the next
//! call on the source's side returns that error (so the source stops), and the sink still
//! gets the run's end (`Finished::Failed` with the error) and `finish`. Memory is bounded by
//! the channel: at most [`DEPTH`] batches of [`BATCH`] items in flight.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

use crate::capture::CaptureHeader;
use crate::event::Event;
use crate::findings::Finding;

use super::{Finished, Sink, Status};

/// Items per batch, and batches in flight.
const BATCH: usize = 4096;
const DEPTH: usize = 4;

enum Item {
    Event(Event),
    Tick(u64),
}

enum Msg {
    Begin(Box<CaptureHeader>),
    Items(Vec<Item>),
    Status(Status),
    Finding(Box<Finding>),
    Finish,
}

/// The source's side: a [`Sink`] that forwards to the sink running on the thread it started.
pub struct Handoff<'scope> {
    tx: Option<SyncSender<Msg>>,
    /// Emptied batches coming back, so that none is allocated per batch.
    spare: Receiver<Vec<Item>>,
    batch: Vec<Item>,
    /// A sink's error on an event or tick, until the source's side returns it.
    failed: Arc<Mutex<Option<anyhow::Error>>>,
    thread: Option<ScopedJoinHandle<'scope, anyhow::Result<()>>>,
}

impl<'scope> Handoff<'scope> {
    /// Starts `sink` on a thread of `scope`.
    pub fn spawn<'env, K: Sink + Send + 'scope>(
        scope: &'scope Scope<'scope, 'env>,
        sink: K,
    ) -> anyhow::Result<Handoff<'scope>> {
        let (tx, rx) = sync_channel(DEPTH);
        let (spare_tx, spare) = sync_channel(DEPTH + 1);
        let failed = Arc::new(Mutex::new(None));
        let told = Arc::clone(&failed);
        let thread = std::thread::Builder::new()
            .name("sinks".into())
            .spawn_scoped(scope, move || serve(sink, rx, spare_tx, &told))
            .map_err(|e| anyhow::anyhow!("cannot start the sinks' thread: {e}"))?;
        Ok(Handoff {
            tx: Some(tx),
            spare,
            batch: Vec::with_capacity(BATCH),
            failed,
            thread: Some(thread),
        })
    }

    /// The sink's error, once, if one failed on an event.
    fn failure(&self) -> anyhow::Result<()> {
        match self.failed.lock().map(|mut f| f.take()) {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    fn send(&mut self, msg: Msg) -> anyhow::Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(msg).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The sinks' thread ended early: its error says why.
        self.tx = None;
        match self.join() {
            Err(e) => Err(e),
            Ok(()) => Err(anyhow::anyhow!("the sinks stopped")),
        }
    }

    fn push(&mut self, item: Item) -> anyhow::Result<()> {
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            self.failure()?;
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let full = std::mem::replace(&mut self.batch, next);
        self.send(Msg::Items(full))
    }

    fn join(&mut self) -> anyhow::Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the sinks' thread panicked"))?,
            None => Ok(()),
        }
    }
}

fn serve<K: Sink>(
    mut sink: K,
    rx: Receiver<Msg>,
    spare: SyncSender<Vec<Item>>,
    failed: &Mutex<Option<anyhow::Error>>,
) -> anyhow::Result<()> {
    // The message of a sink's error on an event, once there was one.
    let mut failure: Option<String> = None;
    for msg in rx {
        match msg {
            Msg::Begin(h) => sink.begin(&h)?,
            Msg::Items(mut items) if failure.is_none() => {
                let delivered = items.iter().try_for_each(|item| match item {
                    Item::Event(e) => sink.event(e),
                    Item::Tick(t) => sink.tick(*t),
                });
                if let Err(e) = delivered {
                    failure = Some(format!("{e:#}"));
                    if let Ok(mut f) = failed.lock() {
                        *f = Some(e);
                    }
                }
                items.clear();
                let _ = spare.try_send(items);
            }
            Msg::Items(_) => {}
            // The source may have finished before the failure reached it: the run failed.
            Msg::Status(Status::Finished(_)) if failure.is_some() => sink.status(
                &Status::Finished(Finished::Failed(failure.clone().unwrap_or_default())),
            )?,
            Msg::Status(s) => sink.status(&s)?,
            Msg::Finding(f) => sink.finding(&f)?,
            Msg::Finish => {
                sink.finish()?;
                // Not yet returned on the source's side: returned now.
                return match failed.lock().map(|mut f| f.take()) {
                    Ok(Some(e)) => Err(e),
                    _ => Ok(()),
                };
            }
        }
    }
    // The source's side went away without finishing (it failed): nothing more to do.
    Ok(())
}

impl Sink for Handoff<'_> {
    fn begin(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        self.send(Msg::Begin(Box::new(header.clone())))
    }

    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.push(Item::Event(*event))
    }

    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        self.flush()?;
        self.send(Msg::Status(status.clone()))
    }

    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        self.push(Item::Tick(now_ns))
    }

    fn finding(&mut self, finding: &Finding) -> anyhow::Result<()> {
        self.flush()?;
        self.send(Msg::Finding(Box::new(finding.clone())))
    }

    /// Hands over what is left, then waits for the sinks to finish.
    fn finish(&mut self) -> anyhow::Result<()> {
        self.flush()?;
        self.send(Msg::Finish)?;
        self.tx = None;
        self.join()
    }
}

impl Drop for Handoff<'_> {
    fn drop(&mut self) {
        // Closing the channel ends the sinks' thread; the scope joins it.
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::event;
    use hmmtrace_common::PageFree;

    /// Records the calls it gets, in order; fails on the event whose timestamp is `fail_at`.
    #[derive(Default)]
    struct Log {
        calls: Vec<String>,
        fail_at: Option<u64>,
    }

    impl Sink for &std::sync::Mutex<Log> {
        fn begin(&mut self, _: &CaptureHeader) -> anyhow::Result<()> {
            self.lock().unwrap().calls.push("begin".into());
            Ok(())
        }
        fn event(&mut self, e: &Event) -> anyhow::Result<()> {
            let mut l = self.lock().unwrap();
            if l.fail_at == Some(e.ts_ns) {
                anyhow::bail!("disk full at {}", e.ts_ns);
            }
            l.calls.push(format!("e{}", e.ts_ns));
            Ok(())
        }
        fn status(&mut self, s: &Status) -> anyhow::Result<()> {
            self.lock().unwrap().calls.push(format!("{s:?}"));
            Ok(())
        }
        fn tick(&mut self, t: u64) -> anyhow::Result<()> {
            self.lock().unwrap().calls.push(format!("t{t}"));
            Ok(())
        }
        fn finish(&mut self) -> anyhow::Result<()> {
            self.lock().unwrap().calls.push("finish".into());
            Ok(())
        }
    }

    fn free(ts: u64) -> Event {
        event(
            ts,
            None,
            1,
            crate::event::Body::PageFree(PageFree::default()),
        )
    }

    /// Everything arrives, in the order it was sent, across several batches.
    #[test]
    fn calls_arrive_in_order() {
        let log = std::sync::Mutex::new(Log::default());
        let mut want = vec!["begin".to_string()];
        std::thread::scope(|scope| {
            let mut h = Handoff::spawn(scope, &log).unwrap();
            let s = crate::scenario::Scenario::load("migrate").unwrap();
            h.begin(&crate::pipeline::source::engine::header(&s, 1))
                .unwrap();
            for i in 0..(3 * BATCH as u64 + 7) {
                h.event(&free(i)).unwrap();
                want.push(format!("e{i}"));
                if i % 100 == 0 {
                    h.tick(i).unwrap();
                    want.push(format!("t{i}"));
                }
                if i == 5000 {
                    let s = Status::Finished(super::super::Finished::Exhausted);
                    h.status(&s).unwrap();
                    want.push(format!("{s:?}"));
                }
            }
            h.finish().unwrap();
            want.push("finish".into());
        });
        assert_eq!(log.lock().unwrap().calls, want);
    }

    /// A sink's error comes back to the source's side, as it was, and stops the handoff.
    #[test]
    fn a_sinks_error_comes_back() {
        let log = std::sync::Mutex::new(Log {
            fail_at: Some(10),
            ..Log::default()
        });
        let err = std::thread::scope(|scope| {
            let mut h = Handoff::spawn(scope, &log).unwrap();
            for i in 0..(10 * BATCH as u64) {
                if let Err(e) = h.event(&free(i)) {
                    return e;
                }
            }
            h.finish().unwrap_err()
        });
        assert_eq!(err.to_string(), "disk full at 10");
        assert_eq!(
            log.lock().unwrap().calls.len(),
            10,
            "nothing after the error"
        );
    }
}
