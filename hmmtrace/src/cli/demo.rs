//! `hmmtrace demo`: the reference engine, paced to wall-clock time, feeding a capture file and a
//! refreshing summary. Until the TUI exists, the summary is a text table redrawn in place.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmmtrace::capture::{CaptureHeader, Reader, Writer};
use hmmtrace::report::{self, Summary};

use super::{bad_input, parse_duration, ScenarioArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// How long to run (e.g. 10s, 2m; Ctrl-C stops earlier).
    #[arg(long, short, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Capture file to write.
    #[arg(long, short, default_value = "hmmtrace-demo.hmt")]
    output: PathBuf,
    /// Events per second to release (the engine is much faster than real time).
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
}

/// Ends a scenario run early (time is up, or Ctrl-C).
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stop {}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.rate == 0 {
        return Err(bad_input(anyhow::anyhow!(
            "--rate must be at least 1 event per second"
        )));
    }
    let (scenario, seed0) = a.scenario.load()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let mut writer = Writer::create(&a.output, &CaptureHeader::for_engine(&scenario, seed0))?;
    let tty = std::io::stdout().is_terminal();
    let mut summary = Summary::default();
    let start = Instant::now();
    let mut last_draw = start;
    let mut released = 0u64;
    let mut offset = 0u64;
    let mut runs = 0u64;
    let title = format!(
        "hmmtrace demo: engine running '{}' → {}",
        scenario.name,
        a.output.display()
    );
    'outer: loop {
        let seed = seed0 + runs;
        let result = scenario.run(seed, &mut |e| {
            let mut e = *e;
            e.ts_ns += offset;
            summary.add(&e);
            writer.write_event(&e)?;
            released += 1;
            if released.is_multiple_of(64) {
                // Pace to `rate` events per second of wall-clock time.
                let due = Duration::from_secs_f64(released as f64 / a.rate as f64);
                let elapsed = start.elapsed();
                if due > elapsed {
                    std::thread::sleep(due - elapsed);
                }
                if tty && last_draw.elapsed() >= Duration::from_millis(500) {
                    last_draw = Instant::now();
                    draw(&summary, &title, start.elapsed(), runs);
                }
                if stop.load(Ordering::Relaxed) || start.elapsed() >= a.duration {
                    return Err(Stop.into());
                }
            }
            Ok(())
        });
        match result {
            Ok(stats) => offset += stats.sim_ns + 1_000_000,
            Err(e) if e.downcast_ref::<Stop>().is_some() => break 'outer,
            Err(e) => return Err(bad_input(e)),
        }
        runs += 1;
        if stop.load(Ordering::Relaxed) || start.elapsed() >= a.duration {
            break;
        }
    }
    let (events, bytes) = writer.finish()?;
    if tty {
        print!("\x1b[H\x1b[2J");
    }
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
    println!("capture: {} ({events} events, {bytes} bytes); summarise it again with `hmmtrace report {}`", a.output.display(), a.output.display());
    Ok(ExitCode::SUCCESS)
}

fn draw(summary: &Summary, title: &str, elapsed: Duration, runs: u64) {
    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "\x1b[H\x1b[2J{title}\nelapsed {:.1}s, scenario runs completed: {runs} (Ctrl-C stops)\n\n",
        elapsed.as_secs_f64()
    );
    let _ = write!(
        out,
        "{}",
        report::text::render(summary, "so far (simulated time)")
    );
    let _ = out.flush();
}
