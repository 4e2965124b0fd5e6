//! A text summary redrawn twice a second on a terminal while a source runs: what the demo
//! shows without a TUI. Off a terminal it only counts (the final report is printed by the
//! command).

use std::io::Write as _;
use std::time::{Duration, Instant};

use super::{text, Summary};
use crate::capture::CaptureHeader;
use crate::event::Event;
use crate::findings::Finding;
use crate::pipeline::{Sink, Status};

/// How often the summary is redrawn.
const REDRAW: Duration = Duration::from_millis(500);

pub struct Refreshing {
    summary: Summary,
    title: String,
    tty: bool,
    started: Instant,
    drawn: Instant,
}

impl Refreshing {
    pub fn new(title: String) -> Refreshing {
        Refreshing {
            summary: Summary::default(),
            title,
            tty: std::io::IsTerminal::is_terminal(&std::io::stdout()),
            started: Instant::now(),
            drawn: Instant::now(),
        }
    }

    fn draw(&self) {
        let mut out = std::io::stdout().lock();
        let _ = write!(
            out,
            "\x1b[H\x1b[2Jhmmtrace demo: {}\nelapsed {:.1}s (Ctrl-C stops)\n\n{}",
            self.title,
            self.started.elapsed().as_secs_f64(),
            text::render(&self.summary, "so far (simulated time)")
        );
        let _ = out.flush();
    }
}

impl Sink for Refreshing {
    fn begin(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        self.summary.begin(header)
    }

    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.summary.add(event);
        Ok(())
    }

    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        self.summary.status(status)
    }

    fn finding(&mut self, finding: &Finding) -> anyhow::Result<()> {
        self.summary.finding(finding)
    }

    fn tick(&mut self, _now_ns: u64) -> anyhow::Result<()> {
        if self.tty && self.drawn.elapsed() >= REDRAW {
            self.drawn = Instant::now();
            self.draw();
        }
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        if self.tty {
            print!("\x1b[H\x1b[2J");
        }
        Ok(())
    }
}
