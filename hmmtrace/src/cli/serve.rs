//! `hmmtrace serve`: the metrics of a source (the kernel, the engine, a capture) at
//! `/metrics` in the Prometheus text format, for Prometheus to scrape.
//!
//! The source runs on its own thread and owns the metrics; it renders the exposition every
//! `--refresh` and publishes it by swapping a pointer. A scrape only clones that pointer, so
//! scrapes never wait for ingestion and ingestion never waits for a scrape.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmmtrace::capture::{CaptureHeader, Reader};
use hmmtrace::event::{Event, Sink};
use hmmtrace::kernel::session::enable_run_time_stats;
use hmmtrace::kernel::Session;
use hmmtrace::metrics::Metrics;

use super::demo::{paced, Out};
use super::record::{header, TraceArgs};
use super::{bad_input, parse_duration, require_privileges, stop_on_signals};

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
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    refresh: Duration,
    #[command(flatten)]
    trace: TraceArgs,
}

/// The latest exposition, shared with the HTTP handler.
type Published = Arc<Mutex<Arc<String>>>;

enum Source {
    Kernel,
    Sim(String),
    Replay(PathBuf),
}

fn parse_source(s: &str) -> anyhow::Result<Source> {
    Ok(match s.split_once(':') {
        None if s == "kernel" => Source::Kernel,
        Some(("sim", scenario)) if !scenario.is_empty() => Source::Sim(scenario.to_string()),
        Some(("replay", file)) if !file.is_empty() => Source::Replay(PathBuf::from(file)),
        _ => {
            return Err(bad_input(anyhow::anyhow!(
                "--source {s}: use kernel, sim:SCENARIO or replay:FILE"
            )))
        }
    })
}

/// The metrics, republished every `refresh`.
struct Publisher {
    metrics: Metrics,
    published: Published,
    refresh: Duration,
    last: Instant,
}

impl Publisher {
    fn publish(&mut self) {
        let text = Arc::new(self.metrics.encode());
        *self.published.lock().unwrap_or_else(|p| p.into_inner()) = text;
        self.last = Instant::now();
    }

    fn maybe_publish(&mut self) {
        if self.last.elapsed() >= self.refresh {
            self.publish();
        }
    }
}

impl Out for Publisher {
    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        self.metrics.event(e)
    }

    fn tick(&mut self, _elapsed: Duration, _runs: u64) {
        self.maybe_publish();
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let source = parse_source(&a.source)?;
    if a.rate == 0 {
        return Err(bad_input(anyhow::anyhow!("--rate must be at least 1")));
    }
    // Check what can be checked before binding the port.
    let (header, name) = match &source {
        Source::Kernel => {
            if let Some(code) = require_privileges() {
                return Ok(code);
            }
            (None, "kernel".to_string())
        }
        Source::Sim(s) => {
            let scenario = hmmtrace::scenario::Scenario::load(s).map_err(bad_input)?;
            (
                Some(CaptureHeader::for_engine(&scenario, scenario.seed)),
                format!("engine:{}", scenario.name),
            )
        }
        Source::Replay(f) => {
            let h = Reader::open(f).map_err(bad_input)?.header;
            let n = format!("replay:{}", h.source);
            (Some(h), n)
        }
    };
    let opts = a.trace.options(&[])?;
    let stop = stop_on_signals()?;
    let published: Published = Arc::new(Mutex::new(Arc::new(String::new())));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(a.listen))
        .map_err(|e| bad_input(anyhow::anyhow!("cannot listen on {}: {e}", a.listen)))?;
    if !a.listen.ip().is_loopback() {
        eprintln!(
            "hmmtrace: serving on {}: reachable from the network, not only this machine",
            a.listen
        );
    }
    eprintln!(
        "hmmtrace: metrics of {name} at http://{}/metrics",
        listener.local_addr()?
    );
    // The source, on its own thread: it owns the metrics.
    let feeder = {
        let (published, stop, refresh, rate) =
            (Arc::clone(&published), Arc::clone(&stop), a.refresh, a.rate);
        std::thread::Builder::new()
            .name("source".into())
            .spawn(move || -> anyhow::Result<()> {
                let make = |h: &CaptureHeader, n: &str| Publisher {
                    metrics: Metrics::new(h, n),
                    published: Arc::clone(&published),
                    refresh,
                    last: Instant::now(),
                };
                match source {
                    Source::Kernel => serve_kernel(&opts, &stop, make),
                    Source::Sim(s) => {
                        let scenario = hmmtrace::scenario::Scenario::load(&s)?;
                        let mut p = make(header.as_ref().expect("set above"), &name);
                        p.publish();
                        paced(&scenario, scenario.seed, rate, &stop, None, &mut p)?;
                        Ok(())
                    }
                    Source::Replay(f) => {
                        let mut p = make(header.as_ref().expect("set above"), &name);
                        Reader::open(&f)?.for_each(|e| p.metrics.event(e))?;
                        p.publish();
                        Ok(())
                    }
                }
            })?
    };
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get({
                let published = Arc::clone(&published);
                move || {
                    let text = Arc::clone(&published.lock().unwrap_or_else(|p| p.into_inner()));
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                hmmtrace::metrics::CONTENT_TYPE,
                            )],
                            text.as_str().to_owned(),
                        )
                    }
                }
            }),
        )
        .route(
            "/",
            axum::routing::get(|| async { "hmmtrace: metrics at /metrics\n" }),
        );
    let shutdown = {
        let stop = Arc::clone(&stop);
        async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let served = rt.block_on(async {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    stop.store(true, Ordering::Relaxed);
    let fed = feeder
        .join()
        .map_err(|_| anyhow::anyhow!("the source thread panicked"))?;
    served?;
    fed?;
    Ok(ExitCode::SUCCESS)
}

fn serve_kernel(
    opts: &hmmtrace::kernel::SessionOptions,
    stop: &AtomicBool,
    make: impl Fn(&CaptureHeader, &str) -> Publisher,
) -> anyhow::Result<()> {
    let mut session = Session::start(opts)?;
    let stats = enable_run_time_stats();
    let h = header(&session);
    let mut p = make(&h, "kernel");
    p.metrics.set_probes(&h.probe_plan);
    if let Err(e) = &stats {
        eprintln!("hmmtrace: no eBPF program costs: {e:#}");
    }
    p.publish();
    while !stop.load(Ordering::Relaxed) {
        session.drain(&mut |e| p.metrics.event(e))?;
        if p.last.elapsed() >= p.refresh {
            p.metrics.set_costs(&session.program_costs());
            p.publish();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stats);
    Ok(())
}
