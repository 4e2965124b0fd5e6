//! Serving the metrics over HTTP: a [`Publisher`] sink that owns the [`Metrics`], renders
//! the exposition every `refresh` (on the source's ticks) and at the end, and publishes it by
//! swapping a pointer; and a [`Server`] view that answers `/metrics` with the last one. A
//! scrape only clones that pointer, so scrapes never wait for ingestion and ingestion never
//! waits for a scrape.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::capture::CaptureHeader;
use crate::event::Event;
use crate::pipeline::{Control, Sink, Status, View};

use super::{Metrics, CONTENT_TYPE};

/// The latest exposition, shared between the publisher and the server.
#[derive(Clone, Default)]
pub struct Published(Arc<Mutex<Arc<String>>>);

impl Published {
    fn set(&self, text: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(text);
    }

    /// The last exposition published.
    pub fn get(&self) -> Arc<String> {
        Arc::clone(&self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Feeds the metrics and republishes them every `refresh`.
pub struct Publisher {
    metrics: Metrics,
    published: Published,
    refresh: Duration,
    last: Instant,
}

impl Publisher {
    pub fn new(metrics: Metrics, published: Published, refresh: Duration) -> Publisher {
        Publisher {
            metrics,
            published,
            refresh,
            last: Instant::now(),
        }
    }

    fn publish(&mut self) {
        self.published.set(self.metrics.encode());
        self.last = Instant::now();
    }
}

impl Sink for Publisher {
    fn begin(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        self.metrics.begin(header)?;
        self.publish();
        Ok(())
    }

    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.metrics.event(event)
    }

    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        self.metrics.status(status)
    }

    fn finding(&mut self, finding: &crate::findings::Finding) -> anyhow::Result<()> {
        self.metrics.finding(finding)
    }

    fn tick(&mut self, _now_ns: u64) -> anyhow::Result<()> {
        if self.last.elapsed() >= self.refresh {
            self.publish();
        }
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.publish();
        Ok(())
    }
}

/// Answers `/metrics` with the last exposition until the run is interrupted.
pub struct Server {
    listener: Option<std::net::TcpListener>,
    published: Published,
}

impl Server {
    /// Binds `addr` now, so a port in use is reported before anything runs.
    pub fn bind(addr: SocketAddr, published: Published) -> anyhow::Result<Server> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener: Some(listener),
            published,
        })
    }

    /// The address it listens on (the port the kernel chose for port 0).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        let l = self
            .listener
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the server has run"))?;
        Ok(l.local_addr()?)
    }
}

impl View for Server {
    fn run(&mut self, ctl: &Control) -> anyhow::Result<()> {
        let listener = self
            .listener
            .take()
            .ok_or_else(|| anyhow::anyhow!("the server ran already"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let published = self.published.clone();
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let text = published.get();
                    async move {
                        (
                            [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                            text.as_str().to_owned(),
                        )
                    }
                }),
            )
            .route(
                "/",
                axum::routing::get(|| async { "hmmtrace: metrics at /metrics\n" }),
            );
        rt.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let interrupted = async {
                while ctl.interrupted().is_none() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            tokio::select! {
                served = std::future::IntoFuture::into_future(axum::serve(listener, app)) => served?,
                () = interrupted => {}
            }
            anyhow::Ok(())
        })
    }
}
