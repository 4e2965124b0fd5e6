//! The live terminal UI: one [`App`] state, fed through a [`TuiSink`] like any other sink,
//! and a draw loop ([`TuiView`], the pipeline's view) that only reads it, at most [`MAX_FPS`]
//! times a second, half that under load, and only when the state (its `generation`) or the
//! viewer's choices changed. Frames are drawn on their own thread while the view's loop reads
//! keys, so `q` and Ctrl-C quit at once even while a frame is being drawn.
//!
//! Ingestion never waits for drawing: the sink hands events over only when the state's lock is
//! free (`try_lock`), keeping them in its own buffer while a frame is being drawn, so a source
//! at 100k events/s is never slowed by the terminal. The state itself is bounded (see
//! [`app`]), so memory stays flat however long the TUI runs. The terminal is restored on quit,
//! on SIGTERM/SIGINT, on error and on panic (ratatui's panic hook).
//!
//! Nothing here knows where events come from: `live`, `demo`, `sim --tui` and `replay` differ
//! only in the source the pipeline runs.

pub mod app;
pub mod dashboard;
pub mod filter;
pub mod layout;
pub mod render;
pub mod ui;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossterm::event::{Event as TermEvent, KeyEventKind};

pub use app::App;
use dashboard::Dashboard;
use ui::Ui;

use crate::capture::CaptureHeader;
use crate::event::Event;
use crate::pipeline::source::replay::ReplayControl;
use crate::pipeline::{Control, Sink, Status, View};

/// Frames per second, at most.
pub const MAX_FPS: u64 = 30;

/// Events the sink buffers before it tries to hand them over.
const FEED_BATCH: usize = 4096;
/// Events the sink buffers before it insists on the lock.
const FEED_FORCE: usize = 1 << 20;

/// Locks the state, taking it over from a thread that panicked while holding it (the state is
/// a set of counters: still worth showing).
pub fn lock(app: &Mutex<App>) -> MutexGuard<'_, App> {
    app.lock().unwrap_or_else(|p| p.into_inner())
}

/// A TUI for one run: its sink goes into the pipeline's tee, its view holds the terminal.
/// `bin_ns` is the width of a rate bin on the source's clock (one second, or less for a source
/// slower than its clock: see [`app`]).
pub fn new(
    title: impl Into<String>,
    dashboard: Dashboard,
    show_pointers: bool,
    replay: Option<Arc<ReplayControl>>,
    bin_ns: u64,
) -> (TuiSink, TuiView) {
    let app = Arc::new(Mutex::new(
        App::new(title.into(), show_pointers).with_bin(bin_ns),
    ));
    (
        TuiSink::new(Arc::clone(&app)),
        TuiView {
            app,
            ui: Some(Ui::new(dashboard, replay)),
        },
    )
}

/// The state's sink: buffers events and hands them over without waiting for the draw loop
/// (see the module doc); status messages are applied in order with the events.
pub struct TuiSink {
    app: Arc<Mutex<App>>,
    pending: Vec<Event>,
    timeline_ns: u64,
}

impl TuiSink {
    pub fn new(app: Arc<Mutex<App>>) -> TuiSink {
        TuiSink {
            app,
            pending: Vec::with_capacity(FEED_BATCH),
            timeline_ns: 0,
        }
    }

    /// Hands the buffered events over if the state is free; with `wait`, waits for it (at the
    /// end of a source, or when the buffer is very large).
    fn flush(&mut self, wait: bool) {
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
}

impl Sink for TuiSink {
    fn begin(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        lock(&self.app).begin(header);
        Ok(())
    }

    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.pending.push(*event);
        if self.pending.len() >= FEED_BATCH {
            self.flush(false);
        }
        Ok(())
    }

    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        if *status == Status::Restart {
            // What is buffered belongs to the pass being forgotten.
            self.pending.clear();
        } else {
            self.flush(true);
        }
        lock(&self.app).status(status);
        Ok(())
    }

    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        // Also when nothing arrived: the timeline still moves (rates fall to 0 in quiet seconds).
        self.timeline_ns = now_ns;
        self.flush(false);
        Ok(())
    }

    fn finding(&mut self, finding: &crate::findings::Finding) -> anyhow::Result<()> {
        // After the events it was made of.
        self.flush(true);
        lock(&self.app).finding(finding);
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.flush(true);
        Ok(())
    }
}

/// The draw loop, as the pipeline's view.
pub struct TuiView {
    app: Arc<Mutex<App>>,
    ui: Option<Ui>,
}

impl TuiView {
    /// The state it shows (for tests).
    pub fn app(&self) -> Arc<Mutex<App>> {
        Arc::clone(&self.app)
    }
}

impl View for TuiView {
    fn run(&mut self, ctl: &Control) -> anyhow::Result<()> {
        let ui = self
            .ui
            .take()
            .ok_or_else(|| anyhow::anyhow!("the TUI ran already"))?;
        run(Arc::clone(&self.app), ui, ctl)
    }
}

/// Restores the terminal when dropped, whatever ends the loop.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the TUI until `q`, Ctrl-C (both quit the control, so the source stops too), SIGINT or
/// SIGTERM.
fn run(app: Arc<Mutex<App>>, ui: Ui, ctl: &Control) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let terminal =
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
    // Frames are drawn on their own thread, so that quitting never waits for one: this loop
    // reads keys and the control while a frame draws, and a quit key is acted on at once
    // (q, unless a filter is being typed; Ctrl-C always).
    let ui = Arc::new(Mutex::new(ui));
    let dirty = Arc::new(AtomicBool::new(true));
    let editing = Arc::new(AtomicBool::new(false));
    let (frame_tx, frame_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let (drawn_tx, drawn_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    {
        let (app, ui, dirty) = (Arc::clone(&app), Arc::clone(&ui), Arc::clone(&dirty));
        std::thread::Builder::new()
            .name("tui-draw".into())
            .spawn(move || {
                let result = draw_loop(terminal, &app, &ui, &dirty, &frame_rx);
                let _ = drawn_tx.send(result);
            })?;
    }
    let result = rt.block_on(async {
        let mut frame = tokio::time::interval(Duration::from_millis(1000 / MAX_FPS));
        frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = frame.tick() => {
                    if ctl.interrupted().is_some() {
                        break;
                    }
                    if let Ok(failed) = drawn_rx.try_recv() {
                        // The draw thread ended on its own: a terminal error.
                        failed?;
                        break;
                    }
                    // A frame still drawing skips this one (the channel holds one).
                    let _ = frame_tx.try_send(());
                }
                Some(ev) = rx.recv() => {
                    if let TermEvent::Key(k) = ev {
                        use crossterm::event::{KeyCode, KeyModifiers};
                        let ctrl_c = k.modifiers.contains(KeyModifiers::CONTROL)
                            && k.code == KeyCode::Char('c');
                        let q = k.code == KeyCode::Char('q') && !editing.load(Ordering::Relaxed);
                        if k.kind != KeyEventKind::Release && (ctrl_c || q) {
                            ctl.quit();
                            break;
                        }
                        if k.kind != KeyEventKind::Release {
                            let mut ui = ui.lock().unwrap_or_else(|p| p.into_inner());
                            ui.key(k, &lock(&app));
                            editing.store(ui.editing.is_some(), Ordering::Relaxed);
                            if ui.quit {
                                ctl.quit();
                                break;
                            }
                        }
                    }
                    // A key, a resize, a paste: the next frame draws whatever the state.
                    dirty.store(true, Ordering::Relaxed);
                }
            }
        }
        anyhow::Ok(())
    });
    // Stop the draw thread and give a frame in progress a moment to end, so that it does not
    // write over the restored terminal; one that takes longer is left behind.
    drop(frame_tx);
    let _ = drawn_rx.recv_timeout(Duration::from_millis(500));
    result
}

/// Draws a frame each time the loop asks, when the state or the viewer's choices changed;
/// ends when the loop stops asking.
fn draw_loop(
    mut terminal: ratatui::DefaultTerminal,
    app: &Mutex<App>,
    ui: &Mutex<Ui>,
    dirty: &std::sync::atomic::AtomicBool,
    frames: &std::sync::mpsc::Receiver<()>,
) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering;
    // What the last frame showed.
    let mut drawn: Option<(u64, u64)> = None;
    let mut skip = 0u32;
    while frames.recv().is_ok() {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        let app = lock(app);
        let now = (app.generation, app.events);
        // Draw only what changed: an idle TUI wakes at the frame rate but draws about once a
        // second (when a rate bin closes).
        if !dirty.load(Ordering::Relaxed) && drawn.map(|(g, _)| g) == Some(now.0) {
            continue;
        }
        dirty.store(false, Ordering::Relaxed);
        let ui = ui.lock().unwrap_or_else(|p| p.into_inner());
        terminal.draw(|f| render::draw(f, &app, &ui))?;
        // Under load (more than a thousand events since the last frame) draw at half the
        // rate: the numbers are no less current to the eye.
        if drawn.is_some_and(|(_, events)| now.1.saturating_sub(events) > 1000) {
            skip = 1;
        }
        drawn = Some(now);
    }
    Ok(())
}
