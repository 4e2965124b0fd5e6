//! `cargo xtask soak [--minutes M]`: the long checks. The engine at full rate through the TUI
//! (in tmux) and the capture writer for M minutes, with the process's RSS sampled every 10 s:
//! it must stay flat (the curve is printed). Then each fuzz target for M minutes.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

fn tmux(args: &[&str]) -> anyhow::Result<String> {
    crate::tmux("hmmtrace-soak", args)
}

fn rss_kb(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn run(minutes: u64) -> anyhow::Result<()> {
    let bin = crate::build_release_hmmtrace()?;
    let _ = tmux(&["kill-server"]);
    // The capture goes to /dev/null: the writer does all its work, the disk does not fill.
    let cmd = format!("exec {} demo --rate 100000000 -o /dev/null", bin.display());
    crate::tmux_session("hmmtrace-soak", "s", 160, 48, &cmd)?;
    let pid: u32 = tmux(&["display", "-p", "-t", "s", "#{pane_pid}"])?
        .trim()
        .parse()
        .context("no pane pid")?;
    let started = Instant::now();
    let mut curve = Vec::new();
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        std::thread::sleep(Duration::from_secs(10));
        let Some(kb) = rss_kb(pid) else {
            let screen = tmux(&["capture-pane", "-p", "-t", "s"]).unwrap_or_default();
            bail!("the demo died after {:?}:\n{screen}", started.elapsed());
        };
        let t = started.elapsed().as_secs();
        println!("soak: {t:>5} s  RSS {:>7} kB", kb);
        curve.push((t, kb));
    }
    let screen = tmux(&["capture-pane", "-p", "-t", "s"])?;
    let _ = tmux(&["send-keys", "-t", "s", "q"]);
    std::thread::sleep(Duration::from_secs(2));
    let _ = tmux(&["kill-server"]);
    let events = screen
        .lines()
        .next()
        .and_then(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.iter()
                .position(|x| *x == "events")
                .map(|i| w[i - 1].to_string())
        })
        .unwrap_or_default();
    // Flat: after the first minute (tables and histograms filled), growth within 10 % + 4 MB.
    let base = curve
        .iter()
        .find(|(t, _)| *t >= 60)
        .or(curve.first())
        .map_or(0, |c| c.1);
    let last = curve.last().map_or(0, |c| c.1);
    println!(
        "soak: {minutes} min, {events} events through the TUI and the capture writer; RSS {base} kB at 1 min, {last} kB at the end"
    );
    anyhow::ensure!(
        last as f64 <= base as f64 * 1.10 + 4096.0,
        "RSS grew from {base} kB to {last} kB"
    );
    crate::fuzz::run(minutes * 60)
}
