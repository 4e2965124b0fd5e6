//! `hmmtrace demo`: the reference engine, paced to wall-clock time, feeding a capture file and
//! the TUI (or, when standard output is not a terminal or with `--no-tui`, a refreshing text
//! summary).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmmtrace::capture::{CaptureHeader, Reader, Writer};
use hmmtrace::event::{Event, Sink};
use hmmtrace::report::{self, Summary};
use hmmtrace::scenario::Scenario;
use hmmtrace::tui::app::{App, SourceInfo};
use hmmtrace::tui::ui::Ui;
use hmmtrace::tui::{self, Feed};

use super::{bad_input, is_terminal, parse_duration, stop_on_signals, ScenarioArgs, ViewArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// How long to run (e.g. 10s, 2m). Default: until you quit the TUI, or 10s without it.
    #[arg(long, short, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Capture file to write.
    #[arg(long, short, default_value = "hmmtrace-demo.hmt")]
    output: PathBuf,
    /// Events per second to release (the engine is much faster than real time).
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Print a refreshing text summary instead of the TUI.
    #[arg(long)]
    no_tui: bool,
    #[command(flatten)]
    view: ViewArgs,
}

/// Ends a scenario run early (time is up, or a stop was asked for).
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stop {}

/// Where the paced engine's events go: the capture and a view, told the time every 64 events.
pub(super) trait Out {
    fn event(&mut self, e: &Event) -> anyhow::Result<()>;
    fn tick(&mut self, elapsed: Duration, runs: u64);
}

/// Runs `scenario` again and again (seeds `seed0`, `seed0 + 1`, ...) into `out`, releasing
/// `rate` events per second, until `stop` or `deadline`. Returns the number of completed runs.
pub(super) fn paced(
    scenario: &Scenario,
    seed0: u64,
    rate: u64,
    stop: &AtomicBool,
    deadline: Option<Duration>,
    out: &mut dyn Out,
) -> anyhow::Result<u64> {
    let start = Instant::now();
    let (mut released, mut offset, mut runs) = (0u64, 0u64, 0u64);
    let over = |start: Instant| {
        stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| start.elapsed() >= d)
    };
    loop {
        let result = scenario.run(seed0 + runs, &mut |e: &Event| {
            let mut e = *e;
            // Each run continues the previous one's clock.
            e.ts_ns += offset;
            out.event(&e)?;
            released += 1;
            if released.is_multiple_of(64) {
                let due = Duration::from_secs_f64(released as f64 / rate as f64);
                let elapsed = start.elapsed();
                if due > elapsed {
                    std::thread::sleep(due - elapsed);
                }
                out.tick(start.elapsed(), runs);
                if over(start) {
                    return Err(Stop.into());
                }
            }
            Ok(())
        });
        match result {
            Ok(stats) => offset += stats.sim_ns + 1_000_000,
            Err(e) if e.downcast_ref::<Stop>().is_some() => return Ok(runs),
            Err(e) => return Err(bad_input(e)),
        }
        runs += 1;
        if over(start) {
            return Ok(runs);
        }
    }
}

/// To the capture and the TUI; the TUI's timeline is wall-clock time since the start.
struct TuiOut {
    writer: Writer<std::fs::File>,
    feed: Feed,
}

impl Out for TuiOut {
    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        self.writer.write_event(e)?;
        self.feed.event(e)
    }

    fn tick(&mut self, elapsed: Duration, _runs: u64) {
        self.feed.set_timeline(elapsed.as_nanos() as u64);
        self.feed.flush(false);
    }
}

/// To the capture and a text summary redrawn twice a second on a terminal.
struct TextOut<'a> {
    writer: Writer<std::fs::File>,
    summary: Summary,
    title: &'a str,
    tty: bool,
    last_draw: Instant,
}

impl Out for TextOut<'_> {
    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        self.writer.write_event(e)?;
        self.summary.add(e);
        Ok(())
    }

    fn tick(&mut self, elapsed: Duration, runs: u64) {
        if self.tty && self.last_draw.elapsed() >= Duration::from_millis(500) {
            self.last_draw = Instant::now();
            draw_text(&self.summary, self.title, elapsed, runs);
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.rate == 0 {
        return Err(bad_input(anyhow::anyhow!(
            "--rate must be at least 1 event per second"
        )));
    }
    let (scenario, seed0) = a.scenario.load()?;
    let use_tui = !a.no_tui && is_terminal();
    // Checked even without the TUI: a bad --dashboard is a mistake worth hearing about.
    let dashboard = a.view.dashboard()?;
    let dashboard = use_tui.then_some(dashboard);
    let stop = stop_on_signals()?;
    let header = CaptureHeader::for_engine(&scenario, seed0);
    let writer = Writer::create(&a.output, &header)?;
    let title = format!(
        "engine running '{}' at {} events/s → {}",
        scenario.name,
        a.rate,
        a.output.display()
    );
    let (runs, writer) = match dashboard {
        Some(dashboard) => {
            let source = SourceInfo {
                title: format!("demo: {title}"),
                probes: Vec::new(),
            };
            let app = Arc::new(Mutex::new(App::new(
                source,
                &header,
                a.view.kernel_pointers,
            )));
            let feeder = {
                let (app, stop) = (Arc::clone(&app), Arc::clone(&stop));
                let (scenario, rate, deadline) = (scenario.clone(), a.rate, a.duration);
                std::thread::Builder::new()
                    .name("engine".into())
                    .spawn(move || {
                        let mut out = TuiOut {
                            writer,
                            feed: Feed::new(app),
                        };
                        let runs = paced(&scenario, seed0, rate, &stop, deadline, &mut out);
                        out.feed.flush(true);
                        let why = match &runs {
                            Ok(_) if stop.load(Ordering::Relaxed) => "stopped".to_string(),
                            Ok(_) => "--duration reached".to_string(),
                            Err(e) => format!("error: {e:#}"),
                        };
                        out.feed.with_app(|a| a.finished = Some(why));
                        (runs, out.writer)
                    })?
            };
            let shown = tui::run(
                Arc::clone(&app),
                Ui::new(dashboard, None),
                Arc::clone(&stop),
            );
            stop.store(true, Ordering::Relaxed);
            let (runs, w) = feeder
                .join()
                .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
            shown?;
            (runs?, w)
        }
        None => {
            let mut out = TextOut {
                writer,
                summary: Summary::default(),
                title: &title,
                tty: is_terminal(),
                last_draw: Instant::now(),
            };
            let deadline = Some(a.duration.unwrap_or(Duration::from_secs(10)));
            let runs = paced(&scenario, seed0, a.rate, &stop, deadline, &mut out)?;
            if out.tty {
                print!("\x1b[H\x1b[2J");
            }
            (runs, out.writer)
        }
    };
    let (events, bytes) = writer.finish()?;
    // The final report is read back from the capture: what is shown is what was written.
    let reader = Reader::open(&a.output)?;
    let mut from_file = Summary::default();
    reader.for_each(|e| {
        from_file.add(e);
        Ok(())
    })?;
    println!(
        "{}",
        report::text::render(
            &from_file,
            &format!(
                "engine:{} ({} runs from seed {seed0})",
                scenario.name,
                runs + 1
            )
        )
    );
    println!(
        "capture: {} ({events} events, {bytes} bytes); summarise it again with `hmmtrace report {}`",
        a.output.display(),
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn draw_text(summary: &Summary, title: &str, elapsed: Duration, runs: u64) {
    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "\x1b[H\x1b[2Jhmmtrace demo: {title}\nelapsed {:.1}s, scenario runs completed: {runs} (Ctrl-C stops)\n\n",
        elapsed.as_secs_f64()
    );
    let _ = write!(
        out,
        "{}",
        report::text::render(summary, "so far (simulated time)")
    );
    let _ = out.flush();
}
