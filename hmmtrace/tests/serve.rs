//! `hmmtrace serve` as Prometheus sees it: `promtool check metrics` accepts the exposition,
//! and a real Prometheus server on loopback scrapes `serve --source sim:gpu-stream` and answers
//! every query of the Grafana dashboards with data. Needs Debian's `prometheus` package
//! (`cargo xtask setup` installs it as root); without it these tests fail and say so.

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the process when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `hmmtrace serve` on a free loopback port; returns it and its address.
fn serve(source: &str) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hmmtrace"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--refresh",
            "200ms",
            "--source",
            source,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("serve did not say where it listens: {line}"))
        .to_string();
    // Keep reading stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
    });
    (Running(child), addr)
}

fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

/// Polls until `f` returns Some, or fails after `limit` with `what`.
fn wait<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn need(program: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "this test needs {program} (Debian package prometheus; cargo xtask setup installs it as root)");
}

fn metrics_with_events(addr: &str) -> String {
    wait("events in the exposition", Duration::from_secs(20), || {
        let (_, body) = get(addr, "/metrics");
        body.contains("hmmtrace_events_total{kind=\"migration\"} ")
            .then_some(body)
            .filter(|b| !b.contains("hmmtrace_events_total{kind=\"migration\"} 0\n"))
    })
}

#[test]
fn the_exposition_is_text_format_that_promtool_accepts() {
    need("promtool");
    let (_serve, addr) = serve("sim:gpu-stream");
    let (head, _) = get(&addr, "/metrics");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let body = metrics_with_events(&addr);
    for name in [
        "hmmtrace_events_total",
        "hmmtrace_pages_total",
        "hmmtrace_range_fault_retries_total",
        "hmmtrace_latency_seconds_bucket",
        "hmmtrace_device_events_total",
        "hmmtrace_process_events_total",
        "hmmtrace_lost_events_total",
        "hmmtrace_build_info",
    ] {
        assert!(body.contains(name), "{name} missing:\n{body}");
    }
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let o = check.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The PromQL of every panel of the Grafana dashboards, with Grafana's variables bound as
/// "everything" and a rate window a 1 s scrape fills.
fn dashboard_queries() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards/grafana");
    let mut out = Vec::new();
    for f in std::fs::read_dir(dir).unwrap().flatten() {
        if f.path().extension().is_none_or(|e| e != "json") {
            continue;
        }
        let d: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f.path()).unwrap()).unwrap();
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().unwrap() {
                let expr = t["expr"].as_str().unwrap();
                let bound = expr
                    .replace("$__rate_interval", "10s")
                    .replace("$instance", ".*")
                    .replace("$kind", ".*");
                out.push((p["title"].as_str().unwrap().to_string(), bound));
            }
        }
    }
    assert!(out.len() >= 7, "{out:?}");
    out
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_real_prometheus_scrapes_serve_and_answers_every_dashboard_query() {
    need("prometheus");
    let (_serve, addr) = serve("sim:gpu-stream");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: hmmtrace\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let web = format!("127.0.0.1:{port}");
    let _prom = Running(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let query = |q: &str| -> Option<serde_json::Value> {
        let s = TcpStream::connect(&web).ok()?;
        drop(s);
        let (_, body) = get(&web, &format!("/api/v1/query?query={}", urlencode(q)));
        serde_json::from_str(&body).ok()
    };
    wait(
        "Prometheus to scrape hmmtrace",
        Duration::from_secs(60),
        || {
            let v = query("up{job=\"hmmtrace\"} == 1")?;
            (!v["data"]["result"].as_array()?.is_empty()).then_some(())
        },
    );
    for (title, expr) in dashboard_queries() {
        let result = wait(
            &format!("data for '{title}': {expr}"),
            Duration::from_secs(30),
            || {
                let v = query(&expr)?;
                assert_eq!(v["status"], "success", "{expr}: {v}");
                let r = v["data"]["result"].as_array()?.clone();
                (!r.is_empty()).then_some(r)
            },
        );
        assert!(!result.is_empty(), "{title}");
    }
}

#[test]
fn a_bad_source_is_bad_input() {
    let o = Command::new(env!("CARGO_BIN_EXE_hmmtrace"))
        .args(["serve", "--source", "gpu"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("kernel, sim:SCENARIO or replay:FILE"));
}
