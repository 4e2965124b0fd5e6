//! The live terminal UI: one [`App`] state fed by any source through a [`Feed`], and a draw
//! loop that only reads it, at most [`MAX_FPS`] times a second.
//!
//! Ingestion never waits for drawing: a source's [`Feed`] hands events over only when the
//! state's lock is free (`try_lock`), keeping them in its own buffer while a frame is being
//! drawn, so a source at 100k events/s is never slowed by the terminal. The state itself is
//! bounded (see [`app`]), so memory stays flat however long the TUI runs. The terminal is
//! restored on quit, on SIGTERM/SIGINT, on error and on panic (ratatui's panic hook).
//!
//! Nothing here knows where events come from: `live`, `demo`, `sim --tui` and `replay` differ
//! only in the thread that feeds the [`Feed`].

pub mod app;
pub mod dashboard;
pub mod filter;
pub mod render;
pub mod replay;
pub mod ui;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossterm::event::{Event as TermEvent, KeyEventKind};

pub use app::App;
use ui::Ui;

use crate::event::{Event, Sink};

/// Frames per second, at most.
pub const MAX_FPS: u64 = 30;

/// Events a [`Feed`] buffers before it insists on the lock.
const FEED_FORCE: usize = 1 << 20;

/// Locks the state, taking it over from a thread that panicked while holding it (the state is
/// a set of counters: still worth showing).
pub fn lock(app: &Mutex<App>) -> MutexGuard<'_, App> {
    app.lock().unwrap_or_else(|p| p.into_inner())
}

/// A source's handle on the state. Buffers events and hands them over without waiting for the
/// draw loop (see the module doc).
pub struct Feed {
    app: Arc<Mutex<App>>,
    pending: Vec<Event>,
    timeline_ns: u64,
}

impl Feed {
    pub fn new(app: Arc<Mutex<App>>) -> Feed {
        Feed {
            app,
            pending: Vec::with_capacity(4096),
            timeline_ns: 0,
        }
    }

    /// Where the source's timeline is now (see [`App::ingest`]).
    pub fn set_timeline(&mut self, ns: u64) {
        self.timeline_ns = ns;
    }

    /// Hands the buffered events over if the state is free; with `wait`, waits for it (at the
    /// end of a source, or when the buffer is very large).
    pub fn flush(&mut self, wait: bool) {
        let guard = if wait || self.pending.len() >= FEED_FORCE {
            Some(lock(&self.app))
        } else {
            match self.app.try_lock() {
                Ok(g) => Some(g),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        };
        if let Some(mut app) = guard {
            app.ingest(&self.pending, self.timeline_ns);
            self.pending.clear();
        }
    }

    /// Runs `f` on the state (to set what is not an event: finished, costs, replay position).
    pub fn with_app<R>(&self, f: impl FnOnce(&mut App) -> R) -> R {
        f(&mut lock(&self.app))
    }
}

impl Sink for Feed {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.pending.push(*event);
        if self.pending.len() >= 4096 {
            self.flush(false);
        }
        Ok(())
    }
}

/// Restores the terminal when dropped, whatever ends the loop.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the TUI until `q`, Ctrl-C, SIGINT or SIGTERM (`stop` is set by the signal handlers the
/// caller registered, and set here on quit so the source stops too).
pub fn run(app: Arc<Mutex<App>>, mut ui: Ui, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let mut terminal =
        ratatui::try_init().map_err(|e| anyhow::anyhow!("cannot set up the terminal: {e}"))?;
    let _restore = Restore;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    // crossterm's reader blocks, so it gets its own thread; the loop selects on its channel
    // and the frame timer.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("tui-input".into())
        .spawn(move || {
            while let Ok(ev) = crossterm::event::read() {
                if tx.send(ev).is_err() {
                    break;
                }
            }
        })?;
    rt.block_on(async {
        let mut frame = tokio::time::interval(Duration::from_millis(1000 / MAX_FPS));
        frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = frame.tick() => {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    terminal.draw(|f| render::draw(f, &lock(&app), &ui))?;
                }
                Some(ev) = rx.recv() => {
                    if let TermEvent::Key(k) = ev {
                        if k.kind != KeyEventKind::Release {
                            ui.key(k, &lock(&app));
                        }
                    }
                    if ui.quit {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
        anyhow::Ok(())
    })
}
