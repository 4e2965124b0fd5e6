//! `cargo xtask bench`: figures that are targets, not tests. For now: capture bytes per event
//! and engine speed on the gpu-stream scenario (target: at most 24 bytes per event).

use std::process::Command;
use std::time::Instant;

use anyhow::Context as _;

pub fn run(quick: bool) -> anyhow::Result<()> {
    let bin = crate::build_release_hmmtrace()?;
    let dir = std::env::temp_dir().join(format!("hmmtrace-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("gpu-stream.hmt");
    let runs = if quick { 1 } else { 5 };
    let mut best = f64::MAX;
    let mut stderr = String::new();
    for _ in 0..runs {
        let started = Instant::now();
        let o = Command::new(&bin)
            .args(["sim", "--scenario", "gpu-stream", "--format", "json", "-o"])
            .arg(&out)
            .output()
            .context("cannot run hmmtrace sim")?;
        anyhow::ensure!(
            o.status.success(),
            "hmmtrace sim failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        best = best.min(started.elapsed().as_secs_f64());
        stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    }
    let report: serde_json::Value = serde_json::from_slice(
        &Command::new(&bin)
            .arg("report")
            .arg(&out)
            .args(["--format", "json"])
            .output()?
            .stdout,
    )?;
    let events = report["events"]
        .as_u64()
        .context("report has no event count")?;
    let bytes = std::fs::metadata(&out)?.len();
    let per_event = bytes as f64 / events as f64;
    println!("capture size, gpu-stream: {events} events, {bytes} bytes, {per_event:.2} bytes/event (target <= 24)");
    println!(
        "engine, gpu-stream: best of {runs}: {best:.3} s for {events} events ({:.0} events/s, whole process incl. capture)",
        events as f64 / best
    );
    eprint!("{stderr}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
