//! `hmmtrace serve`: the metrics of a source (the kernel, the engine, a capture) at
//! `/metrics` in the Prometheus text format, for Prometheus to scrape. The metrics server is
//! the pipeline's view; see `crate::metrics::server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::metrics::server::{Published, Publisher, Server};
use crate::metrics::Metrics;
use crate::pipeline::detect::Detect;
use crate::pipeline::source::capture::CaptureSource;
use crate::pipeline::source::engine::{EngineSource, Pace};
use crate::pipeline::source::kernel::KernelSource;
use crate::pipeline::{self, Control, Source};

use super::record::TraceArgs;
use super::{bad_input, parse_interval};

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on. The default is loopback only; another address exposes the
    /// endpoint to the network (hmmtrace says so when it starts).
    #[arg(long, default_value = "127.0.0.1:9435")]
    listen: SocketAddr,
    /// Where events come from: `kernel` (needs root), `sim:SCENARIO` (the reference engine,
    /// paced by --rate, running the scenario again and again) or `replay:FILE` (a capture,
    /// loaded at once).
    #[arg(long, default_value = "kernel")]
    source: String,
    /// Events per second the engine releases with `--source sim:...`.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// How often the exposition is re-rendered.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    refresh: Duration,
    #[command(flatten)]
    trace: TraceArgs,
    /// With `--source kernel`: send every event from the kernel (the metrics then include
    /// findings) instead of the default in-kernel aggregation (`--aggregate`).
    #[arg(long, conflicts_with = "aggregate")]
    events: bool,
    #[command(flatten)]
    findings: super::FindingArgs,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.rate == 0 {
        return Err(bad_input(anyhow::anyhow!("--rate must be at least 1")));
    }
    let ctl = Control::new(None)?;
    // The source first: what can fail (a bad file, no privileges) fails before the port is
    // bound.
    let (source, name): (Box<dyn Source>, String) = match a.source.split_once(':') {
        None if a.source == "kernel" => {
            let mut opts = a.trace.options()?;
            opts.aggregate = !a.events;
            (
                Box::new(KernelSource::start(opts, &[])?.with_program_costs()),
                "kernel".into(),
            )
        }
        Some(("sim", scenario)) if !scenario.is_empty() => {
            let s = crate::scenario::Scenario::load(scenario).map_err(bad_input)?;
            let name = format!("engine:{}", s.name);
            let seed = s.seed;
            (
                Box::new(EngineSource::new(s, seed, Pace::Rate(a.rate))),
                name,
            )
        }
        Some(("replay", file)) if !file.is_empty() => {
            let source = CaptureSource::open(&[PathBuf::from(file)])?.quiet();
            let name = format!("replay:{}", source.header().source);
            (Box::new(source), name)
        }
        _ => {
            return Err(bad_input(anyhow::anyhow!(
                "--source {}: use kernel, sim:SCENARIO or replay:FILE",
                a.source
            )))
        }
    };
    let published = Published::default();
    let mut server = Server::bind(a.listen, published.clone()).map_err(bad_input)?;
    if !a.listen.ip().is_loopback() {
        eprintln!(
            "hmmtrace: serving on {}: reachable from the network, not only this machine",
            a.listen
        );
    }
    eprintln!(
        "hmmtrace: metrics of {name} at http://{}/metrics",
        server.local_addr()?
    );
    let publisher = Publisher::new(Metrics::new(&name), published, a.refresh);
    pipeline::run(
        source,
        Detect::new(publisher, a.findings.config()),
        Some(&mut server),
        &ctl,
    )?;
    Ok(ExitCode::SUCCESS)
}
