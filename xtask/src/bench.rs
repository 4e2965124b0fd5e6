//! `cargo xtask bench`: every figure of the benchmark issue, measured side by side in one run,
//! written to `BENCHMARKS.md` with its target and ratio (`--quick`: smaller sizes, printed
//! only, to check in CI that the figures still run). Whole-process figures use
//! `/usr/bin/time` (elapsed, CPU, peak RSS); in-process ones the `figures` bench of the
//! hmmtrace crate. Figures that need root (kernel cost, ring buffer) say so when not root.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

fn say(msg: &str) {
    eprintln!("bench: {msg}");
}

/// One row of BENCHMARKS.md.
struct Figure {
    name: &'static str,
    how: String,
    measured: String,
    target: &'static str,
    /// measured / target, in the direction that makes < 1 good (None: not comparable).
    ratio: Option<f64>,
    met: Option<bool>,
    notes: String,
}

impl Figure {
    fn missing(name: &'static str, target: &'static str, why: String) -> Figure {
        Figure {
            name,
            how: String::new(),
            measured: format!("not measured: {why}"),
            target,
            ratio: None,
            met: None,
            notes: String::new(),
        }
    }
}

/// What `/usr/bin/time` says of a process.
struct Usage {
    elapsed: f64,
    cpu: f64,
    max_rss_kb: u64,
}

fn timed(cmd: &mut Command, dir: &Path) -> anyhow::Result<(Usage, std::process::Output)> {
    // The previous figures' files are written back first, not while this one runs (the
    // report's gigabyte of captures was still being flushed when the engine's run began).
    Command::new("sync").status().context("cannot run sync")?;
    let out = dir.join("time.txt");
    let mut t = Command::new("/usr/bin/time");
    t.args(["-f", "%e %U %S %M", "-o"]).arg(&out);
    t.arg(cmd.get_program()).args(cmd.get_args());
    let o = t
        .output()
        .context("cannot run /usr/bin/time (Debian package time)")?;
    anyhow::ensure!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok((parse_usage(&std::fs::read_to_string(&out)?)?, o))
}

fn parse_usage(text: &str) -> anyhow::Result<Usage> {
    let f: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    anyhow::ensure!(f.len() == 4, "unexpected /usr/bin/time output: {text}");
    Ok(Usage {
        elapsed: f[0],
        cpu: f[1] + f[2],
        max_rss_kb: f[3] as u64,
    })
}

use crate::{have_on_path as have, is_root};

/// Runs the hmmtrace crate's `figures` bench with `args`; returns its JSON line.
fn figures(args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let root = crate::workspace_root();
    let o = Command::new("cargo")
        .current_dir(root)
        .args(["bench", "-q", "-p", "hmmtrace", "--bench", "figures", "--"])
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(o.status.success(), "figures {args:?} failed");
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("figures {args:?} printed no result: {text}"))?;
    Ok(serde_json::from_str(line)?)
}

fn report_json(bin: &Path, capture: &Path) -> anyhow::Result<serde_json::Value> {
    let o = Command::new(bin)
        .arg("report")
        .arg(capture)
        .args(["--format", "json"])
        .output()?;
    anyhow::ensure!(o.status.success(), "hmmtrace report failed");
    Ok(serde_json::from_slice(&o.stdout)?)
}

fn kind_field(report: &serde_json::Value, kind: &str, field: &str) -> u64 {
    report["kinds"]
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["kind"] == kind))
        .and_then(|k| k[field].as_u64())
        .unwrap_or(0)
}

fn capture_size(bin: &Path, dir: &Path) -> anyhow::Result<Figure> {
    let out = dir.join("gpu-stream.hmt");
    let o = Command::new(bin)
        .args(["sim", "--scenario", "gpu-stream", "-o"])
        .arg(&out)
        .output()?;
    anyhow::ensure!(o.status.success(), "hmmtrace sim failed");
    let events = report_json(bin, &out)?["events"].as_u64().unwrap_or(1);
    let bytes = std::fs::metadata(&out)?.len();
    let per = bytes as f64 / events as f64;
    Ok(Figure {
        name: "capture size",
        how: "`hmmtrace sim -s gpu-stream -o`: file bytes / events".into(),
        measured: format!("{per:.2} bytes/event ({events} events, {bytes} bytes)"),
        target: "≤ 24 bytes/event",
        ratio: Some(per / 24.0),
        met: Some(per <= 24.0),
        notes: String::new(),
    })
}

fn pipeline(quick: bool) -> anyhow::Result<Figure> {
    let n = if quick { 2_000_000 } else { 50_000_000 };
    let mut best = 0.0f64;
    for _ in 0..if quick { 1 } else { 3 } {
        let v = figures(&["pipeline", &n.to_string()])?;
        best = best.max(v["events_per_s"].as_f64().unwrap_or(0.0));
    }
    Ok(Figure {
        name: "userspace pipeline",
        how: format!(
            "`figures pipeline {n}`: gpu-stream's records as the ring holds them → `Event::from_wire` → `Summary::add` → capture `Writer` (to a sink), one thread; best of {}",
            if quick { 1 } else { 3 }
        ),
        measured: format!("{:.1} M events/s", best / 1e6),
        target: "≥ 25 M events/s",
        ratio: Some(25e6 / best),
        met: Some(best >= 25e6),
        notes: String::new(),
    })
}

fn detectors(quick: bool) -> anyhow::Result<Figure> {
    let n = if quick { 2_000_000 } else { 20_000_000 };
    let v = figures(&["detectors", &n.to_string()])?;
    let with = v["with_per_s"].as_f64().unwrap_or(0.0);
    let without = v["without_per_s"].as_f64().unwrap_or(0.0);
    Ok(Figure {
        name: "detectors",
        how: format!(
            "`figures detectors {n}`: the userspace pipeline above without, then with every \
             detector (and a tick per 4096 events), in one run, one thread"
        ),
        measured: format!(
            "{:.1} M events/s with every detector, {:.1} M without ({:.0} % of it)",
            with / 1e6,
            without / 1e6,
            100.0 * with / without.max(1.0)
        ),
        target: "≥ 10 M events/s with every detector on",
        ratio: Some(10e6 / with.max(1.0)),
        met: Some(with >= 10e6),
        notes: String::new(),
    })
}

fn report(bin: &Path, dir: &Path, quick: bool) -> anyhow::Result<Figure> {
    let sizes: [u64; 2] = if quick {
        [200_000, 2_000_000]
    } else {
        [10_000_000, 100_000_000]
    };
    let mut rows = Vec::new();
    for n in sizes {
        let cap = dir.join(format!("r{n}.hmt"));
        say(&format!("report: writing a capture of {n} events"));
        figures(&["make-capture", &n.to_string(), cap.to_str().unwrap()])?;
        let bytes = std::fs::metadata(&cap)?.len();
        let (u, o) = timed(
            Command::new(bin)
                .arg("report")
                .arg(&cap)
                .args(["--format", "json"]),
            dir,
        )?;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
        anyhow::ensure!(
            v["events"].as_u64() == Some(n),
            "report counted {}",
            v["events"]
        );
        rows.push((n, bytes, u));
        std::fs::remove_file(&cap)?;
    }
    let (n, _, big) = &rows[1];
    let rate = *n as f64 / big.elapsed.max(1e-3);
    let rss_growth = rows[1].2.max_rss_kb as f64 / rows[0].2.max_rss_kb.max(1) as f64;
    Ok(Figure {
        name: "report",
        how: "`hmmtrace report --format json` on captures of gpu-stream's events repeated (`figures make-capture`), whole process".into(),
        measured: format!(
            "{:.1} M events/s on {} M events; peak RSS {} MB at {} M events, {} MB at {} M",
            rate / 1e6,
            n / 1_000_000,
            rows[0].2.max_rss_kb / 1024,
            rows[0].0 as f64 / 1e6,
            rows[1].2.max_rss_kb / 1024,
            rows[1].0 as f64 / 1e6
        ),
        target: "≥ 20 M events/s; peak RSS independent of event count",
        ratio: Some(20e6 / rate),
        met: Some(rate >= 20e6 && rss_growth < 1.2),
        notes: format!(
            "{}× the events, {rss_growth:.2}× the peak RSS; files of {} and {} MB",
            rows[1].0 / rows[0].0,
            rows[0].1 >> 20,
            rows[1].1 >> 20
        ),
    })
}

/// gpu-stream's shape over `pages` pages (a quarter of them of device memory), one pass.
fn big_stream(pages: u64) -> String {
    format!(
        r#"name = "gpu-stream-{pages}"
description = "gpu-stream over {pages} pages, one pass"

[[device]]
name = "gpu0"
kind = "private"
pages = {dev}
evict_chunk = 64

[[process]]
name = "train"

[[step]]
op = "mmap"
region = "ws"
pages = {pages}

[[step]]
op = "open"
device = "gpu0"

[[step]]
op = "write"
region = "ws"

[[step]]
op = "repeat"
times = {times}
advance = 256
steps = [
  {{ op = "migrate", region = "ws", device = "gpu0", count = 256 }},
  {{ op = "mirror_read", region = "ws", device = "gpu0", count = 256 }},
  {{ op = "read", region = "ws", first = 7, count = 4 }},
]

[[step]]
op = "munmap"
region = "ws"
"#,
        dev = pages / 4,
        times = pages / 256
    )
}

fn engine(bin: &Path, dir: &Path, quick: bool) -> anyhow::Result<Figure> {
    let pages: u64 = if quick { 1 << 20 } else { 1 << 24 };
    let file = dir.join("big-stream.toml");
    std::fs::write(&file, big_stream(pages))?;
    let cap = dir.join("big-stream.hmt");
    // The median of three runs (one under --quick): single runs here moved by a tenth.
    let runs = if quick { 1 } else { 3 };
    let mut usages = Vec::new();
    let mut r = serde_json::Value::Null;
    for _ in 0..runs {
        let (u, _) = timed(
            Command::new(bin)
                .args(["sim", "--format", "json", "-s"])
                .arg(&file)
                .arg("-o")
                .arg(&cap),
            dir,
        )?;
        r = report_json(bin, &cap)?;
        std::fs::remove_file(&cap)?;
        usages.push(u);
    }
    usages.sort_by(|a, b| a.elapsed.total_cmp(&b.elapsed));
    let all: Vec<String> = usages.iter().map(|u| format!("{:.2}", u.elapsed)).collect();
    let u = &usages[usages.len() / 2];
    // Page operations: every page the engine migrated, mirrored, freed or faulted back, and the
    // CPU's first writes (one demand fault per page).
    let ops = ["migration", "range_fault", "page_free", "device_fault"]
        .iter()
        .map(|k| kind_field(&r, k, "pages"))
        .sum::<u64>()
        + pages;
    let rate = ops as f64 / u.elapsed.max(1e-3);
    Ok(Figure {
        name: "engine",
        how: format!(
            "`hmmtrace sim` of gpu-stream's steps over {} M pages (device of a quarter of them), one pass, with a capture file, median of {runs}; page operations = pages migrated + range-faulted + freed + faulted back + the CPU's first writes",
            pages >> 20
        ),
        measured: format!(
            "{:.1} M page-ops/s; {:.2} s for {} M pages ({} events, peak RSS {} MB)",
            rate / 1e6,
            u.elapsed,
            pages >> 20,
            r["events"],
            u.max_rss_kb / 1024
        ),
        target: "≥ 5 M page-ops/s; < 4 s over 16 M pages",
        ratio: Some(5e6 / rate),
        met: Some(rate >= 5e6 && (quick || u.elapsed < 4.0)),
        notes: if quick {
            "quick: 1 M pages".into()
        } else {
            format!("every run, s: {}", all.join(", "))
        },
    })
}

fn tmux(args: &[&str]) -> anyhow::Result<String> {
    crate::tmux("hmmtrace-bench", args)
}

fn tui(bin: &Path, dir: &Path, quick: bool) -> anyhow::Result<Figure> {
    if !have("tmux") {
        return Ok(Figure::missing(
            "TUI",
            "≤ 5 % of one core, ≤ 64 MB RSS",
            "tmux is missing".into(),
        ));
    }
    let secs = if quick { 5 } else { 60 };
    let rate = "100000";
    // Without the TUI: the engine and the capture writer alone.
    let (headless, _) = timed(
        Command::new(bin).args([
            "demo",
            "--no-tui",
            "--rate",
            rate,
            "--duration",
            &format!("{secs}s"),
            "-o",
            dir.join("h.hmt").to_str().unwrap(),
        ]),
        dir,
    )?;
    // The same with the TUI, in a real terminal.
    let usage = dir.join("tui-time.txt");
    let cmd = format!(
        "/usr/bin/time -f '%e %U %S %M' -o {} {} demo --rate {rate} --duration {secs}s -o {}",
        usage.display(),
        bin.display(),
        dir.join("t.hmt").display()
    );
    let _ = tmux(&["kill-server"]);
    crate::tmux_session("hmmtrace-bench", "b", 160, 48, &cmd)?;
    let started = Instant::now();
    // The demo stops feeding at --duration and says so; then the viewer quits.
    loop {
        let screen = tmux(&["capture-pane", "-p", "-t", "b"]).unwrap_or_default();
        if screen.contains("ended:") {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(secs + 60),
            "the TUI demo did not end:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Idle: the feed has ended and the viewer stays up with nothing new to show.
    let idle_secs = if quick { 3 } else { 20 };
    let idle = idle_cpu(Duration::from_secs(idle_secs))?;
    tmux(&["send-keys", "-t", "b", "q"])?;
    while std::fs::read_to_string(&usage).map_or(true, |t| t.trim().is_empty()) {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(secs + 90),
            "no usage written"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = tmux(&["kill-server"]);
    let with = parse_usage(&std::fs::read_to_string(&usage)?)?;
    // The TUI's share: the difference in CPU over the same feeding time.
    let core = (with.cpu - headless.cpu).max(0.0) / secs as f64 * 100.0;
    let rss_mb = with.max_rss_kb / 1024;
    Ok(Figure {
        name: "TUI",
        how: format!(
            "`hmmtrace demo --rate {rate} --duration {secs}s` in tmux (160×48) against the same with `--no-tui`; TUI cost = CPU difference / {secs} s"
        ),
        measured: format!(
            "{core:.1} % of one core at 100k events/s, {idle:.2} % idle ({idle_secs} s after the feed ended); peak RSS {rss_mb} MB (whole process; {} MB without the TUI)",
            headless.max_rss_kb / 1024
        ),
        target: "≤ 5 % of one core at 100k events/s, ≤ 1 % idle, ≤ 64 MB RSS",
        ratio: Some((core / 5.0).max(idle)),
        met: Some(core <= 5.0 && idle <= 1.0 && rss_mb <= 64),
        notes: format!(
            "CPU with TUI {:.2} s, without {:.2} s (both include the engine at 100k events/s and the capture)",
            with.cpu, headless.cpu
        ),
    })
}

/// The CPU the running `hmmtrace` process takes over `over`, in % of one core (from its
/// /proc stat ticks).
fn idle_cpu(over: Duration) -> anyhow::Result<f64> {
    let pid = std::fs::read_dir("/proc")?
        .flatten()
        .filter_map(|d| d.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "hmmtrace")
        })
        .context("no hmmtrace process to measure")?;
    let ticks = || -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces): utime and stime are the
        // 12th and 13th of them.
        let rest = stat.rsplit_once(')').context("a stat line")?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
    };
    let t0 = ticks()?;
    std::thread::sleep(over);
    let t1 = ticks()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((t1 - t0) as f64 / hz / over.as_secs_f64() * 100.0)
}

/// From one VM run: each HMM probe's program cost per run, recorded and aggregated, over one
/// hmm-tests run each (the VM checks' table); and hmm-tests' wall time in the guest untraced,
/// recorded and aggregated (median of 3). `--quick` leaves both out: `cargo xtask test` runs
/// the same VM checks, which print the table.
fn vm_figures(quick: bool) -> anyhow::Result<[Figure; 2]> {
    const COSTS: &str = "kernel cost per HMM probe (VM)";
    const COSTS_TARGET: &str = "a table per probe, recorded and aggregated";
    const SLOWDOWN: &str = "traced-workload slowdown (VM)";
    const SLOWDOWN_TARGET: &str = "recorded ≤ bpftrace's slowdown; aggregated ≤ 0.5 × bpftrace's";
    if quick {
        let why = || "left to the VM checks under --quick".to_string();
        return Ok([
            Figure::missing(COSTS, COSTS_TARGET, why()),
            Figure::missing(SLOWDOWN, SLOWDOWN_TARGET, why()),
        ]);
    }
    let capture = crate::vm::test_and_time("6.12", Duration::from_secs(1500))?;
    let out = std::fs::read_to_string(capture.with_file_name("serial.log"))?.replace('\r', "");
    let table = crate::vm::checks::cost_table(&out);
    anyhow::ensure!(!table.is_empty(), "the guest printed no program costs");
    let rows: Vec<String> = table
        .iter()
        .map(|(name, (runs, ns), agg)| match agg {
            Some((_, a)) => format!("{name} {ns:.0} → {a:.0} ns ({runs} runs)"),
            None => format!("{name} {ns:.0} ns ({runs} runs; aggregated: did not run)"),
        })
        .collect();
    let costs = Figure {
        name: COSTS,
        how: "`hmmtrace record --program-costs -- /hmm-tests` and the same with `--aggregate` in the 6.12 guest (TCG: the guest's clock is emulated, so the two modes compare and the nanoseconds are not the host's); run_time_ns / run_cnt per program".into(),
        measured: format!("recorded → aggregated, ns per run: {}", rows.join("; ")),
        target: COSTS_TARGET,
        ratio: None,
        met: None,
        notes: String::new(),
    };
    let t = crate::vm::checks::timings(&out);
    const RUNS: usize = 5;
    let median = |mode: &str| -> anyhow::Result<f64> {
        let mut v = t.get(mode).cloned().unwrap_or_default();
        anyhow::ensure!(
            v.len() == RUNS,
            "{mode}: {} timed runs, want {RUNS}",
            v.len()
        );
        v.sort_by(f64::total_cmp);
        Ok(v[RUNS / 2])
    };
    let (bare, rec, agg) = (median("untraced")?, median("record")?, median("aggregate")?);
    let slow = |x: f64| (x / bare - 1.0) * 100.0;
    let bt = median("bpftrace").ok();
    let against = match bt {
        Some(b) => format!("; bpftrace {b:.2} s ({:+.1} %)", slow(b)),
        None => "; bpftrace not measured (it did not run in the guest: see the serial log)".into(),
    };
    let slowdown = Figure {
        name: SLOWDOWN,
        how: "hmm-tests' wall time in the 6.12 guest (TCG), untraced and while a system-wide `hmmtrace record`, `record --aggregate` or bpftrace runs, attached before the workload starts; the modes interleaved, five runs each; guest clock (/proc/uptime, 10 ms); medians".into(),
        measured: format!(
            "untraced {bare:.2} s, recorded {rec:.2} s ({:+.1} %), aggregated {agg:.2} s ({:+.1} %){against}",
            slow(rec),
            slow(agg)
        ),
        target: SLOWDOWN_TARGET,
        ratio: bt.map(|b| {
            let theirs = slow(b).max(0.01);
            (slow(rec) / theirs).max(slow(agg) / (0.5 * theirs))
        }),
        met: bt.map(|b| slow(rec) <= slow(b) && slow(agg) <= 0.5 * slow(b)),
        notes: format!(
            "every run, s: {}. bpftrace (Debian's, and its libraries, copied into the guest image for this figure only) runs a script that times the same functions with kprobes and keeps a histogram per function, as one would write it by hand",
            t.iter()
                .map(|(m, v)| format!("{m} {v:.2?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Ok([costs, slowdown])
}

/// Program ids a process holds (its fdinfo).
fn programs_of(pid: u32) -> Vec<u64> {
    let mut ids = Vec::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) {
        for fd in dir.flatten() {
            let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
            if let Some(id) = info.lines().find_map(|l| l.strip_prefix("prog_id:")) {
                ids.extend(id.trim().parse::<u64>().ok());
            }
        }
    }
    // A program and its link are two descriptors of the same program id.
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// run_time_ns and run_cnt summed over the programs `ids` of type `kind` whose name starts
/// with `name` ("" for any).
fn prog_stats(ids: &[u64], kind: &str, name: &str) -> anyhow::Result<(u64, u64)> {
    let (mut ns, mut cnt) = (0, 0);
    for id in ids {
        let o = Command::new("bpftool")
            .args(["-j", "prog", "show", "id", &id.to_string()])
            .output()?;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        let named = v["name"].as_str().unwrap_or_default().starts_with(name);
        if v["type"].as_str() != Some(kind) || !named {
            continue;
        }
        ns += v["run_time_ns"].as_u64().unwrap_or(0);
        cnt += v["run_cnt"].as_u64().unwrap_or(0);
    }
    Ok((ns, cnt))
}

/// Restores `kernel.bpf_stats_enabled` when dropped.
struct StatsSysctl(String);

impl Drop for StatsSysctl {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", &self.0);
    }
}

/// The kernel cost per event of `hmmtrace record` and of `hmmtrace record --aggregate`, each
/// beside bpftrace's `count()`, all three attached to the same tracepoint at once so that they
/// run on the same events (ratios taken in one run: compaction's events come in cold bursts,
/// and a second round of compactions right after the first has little left to move).
fn kernel_costs(bin: &Path, dir: &Path, quick: bool) -> anyhow::Result<[Figure; 2]> {
    let names = [
        (
            "kernel cost per event",
            "hmmtrace full event ≤ 1.0 × bpftrace count()",
            1.0,
        ),
        (
            "kernel cost per event, --aggregate",
            "hmmtrace --aggregate ≤ 0.5 × bpftrace count()",
            0.5,
        ),
    ];
    if !is_root() {
        return Ok(names.map(|(n, t, _)| Figure::missing(n, t, "needs root".into())));
    }
    if !have("bpftrace") {
        crate::vm::ensure_packages(&["bpftrace"])?;
    }
    let _restore = StatsSysctl(
        std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")?
            .trim()
            .to_string(),
    );
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1")?;
    let caps = [dir.join("k.hmt"), dir.join("ka.hmt")];
    let spawn = |cap: &Path, aggregate: bool| {
        Command::new(bin)
            .args(["record", "--duration", "600s", "-o"])
            .arg(cap)
            .args(aggregate.then_some("--aggregate"))
            .stderr(Stdio::null())
            .spawn()
    };
    let mut recs = [spawn(&caps[0], false)?, spawn(&caps[1], true)?];
    let bpftrace = |script: &str| {
        Command::new("bpftrace")
            .args(["-e", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
    };
    let mut bt = bpftrace("tracepoint:migrate:mm_migrate_pages { @ = count(); }")?;
    // The floor: a program that does nothing, so the call and bpf_stats' own clock reads. What
    // any program costs above it is its work; the targets are read against it in the notes.
    let mut empty = bpftrace("tracepoint:migrate:mm_migrate_pages { }")?;
    let started = Instant::now();
    // All attached: each holds a program that has the tracepoint.
    let (ours, theirs, floor) = loop {
        let ours = [programs_of(recs[0].id()), programs_of(recs[1].id())];
        let theirs = programs_of(bt.id());
        let floor = programs_of(empty.id());
        let written = caps
            .iter()
            .all(|c| std::fs::metadata(c).is_ok_and(|m| m.len() > 0));
        if written && !theirs.is_empty() && !floor.is_empty() {
            break (ours, theirs, floor);
        }
        if started.elapsed() > Duration::from_secs(60) {
            for r in &mut recs {
                let _ = r.kill();
            }
            let _ = bt.kill();
            let _ = empty.kill();
            bail!("hmmtrace record or bpftrace did not attach within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // bpftrace reports its probes attached a moment after loading.
    std::thread::sleep(Duration::from_secs(1));
    // Only the program on the tracepoint: hmmtrace's task-naming programs (fork, rename) run
    // on other events and are reported apart.
    let stats = || -> anyhow::Result<_> {
        Ok((
            [
                prog_stats(&ours[0], "tracepoint", "tracepoint_mm_m")?,
                prog_stats(&ours[1], "tracepoint", "tracepoint_mm_m")?,
            ],
            prog_stats(&theirs, "tracepoint", "")?,
            prog_stats(&floor, "tracepoint", "")?,
            prog_stats(&ours[0], "tracepoint", "sched_process_f")?,
            prog_stats(&ours[0], "tracepoint", "task_rename")?,
        ))
    };
    let (ours0, theirs0, floor0, fork0, rename0) = stats()?;
    let rounds = if quick { 20 } else { 300 };
    for _ in 0..rounds {
        std::fs::write("/proc/sys/vm/compact_memory", "1")?;
    }
    let (ours1, theirs1, floor1, fork1, rename1) = stats()?;
    for r in &recs {
        // SAFETY: kill(2) on our own children.
        unsafe { libc::kill(r.id() as i32, libc::SIGINT) };
    }
    for b in [&bt, &empty] {
        // SAFETY: as above.
        unsafe { libc::kill(b.id() as i32, libc::SIGINT) };
    }
    for r in &mut recs {
        r.wait()?;
    }
    bt.wait()?;
    empty.wait()?;
    let per = |a: (u64, u64), b: (u64, u64)| {
        let cnt = b.1 - a.1;
        ((b.0 - a.0) as f64 / cnt.max(1) as f64, cnt)
    };
    let (their_ns, their_cnt) = per(theirs0, theirs1);
    let (floor_ns, _) = per(floor0, floor1);
    let (fork_ns, fork_cnt) = per(fork0, fork1);
    let (rename_ns, rename_cnt) = per(rename0, rename1);
    let mut out = Vec::new();
    for (i, (name, target, limit)) in names.into_iter().enumerate() {
        let (our_ns, our_cnt) = per(ours0[i], ours1[i]);
        anyhow::ensure!(
            our_cnt > 0 && their_cnt > 0,
            "no events: compaction moved nothing"
        );
        let ratio = our_ns / their_ns;
        out.push(Figure {
            name,
            how: format!(
                "`hmmtrace record`, `hmmtrace record --aggregate` (both system-wide) and `bpftrace -e 'tracepoint:migrate:mm_migrate_pages {{ @ = count(); }}'` attached together, kernel.bpf_stats_enabled=1, {rounds} compactions; run_time_ns / run_cnt of each program on the tracepoint from bpftool"
            ),
            measured: format!(
                "hmmtrace {our_ns:.0} ns/event ({our_cnt} events), bpftrace {their_ns:.0} ns/event ({their_cnt}): {ratio:.2}×"
            ),
            target,
            ratio: Some(ratio / limit),
            met: Some(ratio <= limit),
            notes: {
                // Above the floor: each program's own work, the part a program can change.
                let net = (our_ns - floor_ns) / (their_ns - floor_ns).max(1.0);
                let floor = format!(
                    "an empty program on the same events (`{{ }}`, the call and bpf_stats' clock reads): {floor_ns:.0} ns/event, {:.2}× count(); above it, hmmtrace {:.0} ns against count()'s {:.0} ns: {net:.2}×",
                    floor_ns / their_ns,
                    our_ns - floor_ns,
                    their_ns - floor_ns,
                );
                if i == 0 {
                    format!(
                        "{floor}\n  hmmtrace's task-naming programs meanwhile (they replace a comm read per event): sched_process_fork {fork_cnt} runs at {fork_ns:.0} ns, task_rename {rename_cnt} at {rename_ns:.0} ns"
                    )
                } else {
                    floor
                }
            },
        });
    }
    let aggregate = out.pop().expect("two figures");
    let full = out.pop().expect("two figures");
    Ok([full, aggregate])
}

fn ring(quick: bool) -> anyhow::Result<Figure> {
    const TARGET: &str = "0 lost at the largest sustained rate; losses counted above it";
    if !is_root() {
        return Ok(Figure::missing(
            "ring buffer end to end",
            TARGET,
            "needs root".into(),
        ));
    }
    let secs = if quick { "1" } else { "5" };
    let mut lines = Vec::new();
    let mut best_clean = 0.0f64;
    for rate in ["100000", "250000", "500000", "0"] {
        let v = figures(&["ring", rate, secs])?;
        let fired = v["fired_per_s"].as_f64().unwrap_or(0.0);
        let lost = v["lost"].as_u64().unwrap_or(0);
        if lost == 0 {
            best_clean = best_clean.max(fired);
        }
        lines.push(format!(
            "{} → {:.0}k/s fired, {} delivered, {lost} lost",
            if rate == "0" {
                "max".to_string()
            } else {
                format!("{}k/s", rate.parse::<u64>()? / 1000)
            },
            fired / 1e3,
            v["delivered"]
        ));
    }
    // A 64 KiB ring at full speed shows the losses are counted, not silent.
    let v = figures(&["ring", "0", secs, "65536"])?;
    let (delivered, lost) = (
        v["delivered"].as_u64().unwrap_or(0),
        v["lost"].as_u64().unwrap_or(0),
    );
    let fired = v["fired"].as_u64().unwrap_or(0);
    let record_bytes = v["record_bytes"].as_u64().unwrap_or(0);
    Ok(Figure {
        name: "ring buffer end to end",
        how: format!(
            "`figures ring`: the stress program (a full {record_bytes}-byte record per `getppid`, hmmtrace-ebpf `stress`) fired by one thread at each rate for {secs} s, 4 MiB ring, drained by the session on another thread"
        ),
        measured: format!(
            "0 lost up to {:.0}k events/s, the most one thread fires here ({}); with a 64 KiB ring at full speed: {lost} lost of {fired} fired, {delivered} delivered, every one accounted for: {}",
            best_clean / 1e3,
            lines.join("; "),
            delivered + lost == fired
        ),
        target: TARGET,
        ratio: None,
        met: Some(delivered + lost == fired && best_clean > 0.0),
        notes: "the firing thread, not the ring, is the limit on 2 cores".into(),
    })
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|m| m.trim().to_string()))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} × {cpu}, {mem} memory, kernel {}", kernel.trim())
}

fn date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn run(quick: bool, only: Option<&str>) -> anyhow::Result<()> {
    let bin: PathBuf = crate::build_release_hmmtrace()?;
    let dir = std::env::temp_dir().join(format!("hmmtrace-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    type Run<'a> = Box<dyn Fn() -> anyhow::Result<Figure> + 'a>;
    // Measured together with the full events' figure (one run, see kernel_costs).
    let kernel_aggregate = std::cell::RefCell::new(None::<Figure>);
    let vm_slowdown = std::cell::RefCell::new(None::<Figure>);
    let runs: Vec<(&str, Run)> = vec![
        (
            "kernel cost per event",
            Box::new(|| {
                let [full, aggregate] = kernel_costs(&bin, &dir, quick)?;
                *kernel_aggregate.borrow_mut() = Some(aggregate);
                Ok(full)
            }),
        ),
        (
            "kernel cost per event, --aggregate",
            Box::new(|| match kernel_aggregate.borrow_mut().take() {
                Some(f) => Ok(f),
                None => {
                    let [_, aggregate] = kernel_costs(&bin, &dir, quick)?;
                    Ok(aggregate)
                }
            }),
        ),
        (
            "kernel cost per HMM probe (VM)",
            Box::new(|| {
                let [costs, slowdown] = vm_figures(quick)?;
                *vm_slowdown.borrow_mut() = Some(slowdown);
                Ok(costs)
            }),
        ),
        (
            "traced-workload slowdown (VM)",
            Box::new(|| match vm_slowdown.borrow_mut().take() {
                Some(f) => Ok(f),
                None => {
                    let [_, slowdown] = vm_figures(quick)?;
                    Ok(slowdown)
                }
            }),
        ),
        ("userspace pipeline", Box::new(|| pipeline(quick))),
        ("detectors", Box::new(|| detectors(quick))),
        ("ring buffer end to end", Box::new(|| ring(quick))),
        ("capture size", Box::new(|| capture_size(&bin, &dir))),
        ("report", Box::new(|| report(&bin, &dir, quick))),
        ("engine", Box::new(|| engine(&bin, &dir, quick))),
        ("TUI", Box::new(|| tui(&bin, &dir, quick))),
    ];
    let mut figures = Vec::new();
    let mut failed = Vec::new();
    for (name, f) in runs {
        if only.is_some_and(|o| !name.contains(o)) {
            continue;
        }
        say(&format!("{name}…"));
        match f() {
            Ok(fig) => {
                println!(
                    "{}: {} (target {}){}",
                    fig.name,
                    fig.measured,
                    fig.target,
                    match fig.met {
                        Some(true) => " met",
                        Some(false) => " MISSED",
                        None => "",
                    }
                );
                if !fig.notes.is_empty() {
                    println!("  {}", fig.notes);
                }
                figures.push(fig);
            }
            Err(e) => {
                println!("{name}: FAILED to measure: {e:#}");
                failed.push(name);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if !quick && only.is_none() {
        let path = crate::workspace_root().join("BENCHMARKS.md");
        // The hand-written analysis of the misses is kept as it is.
        let kept = std::fs::read_to_string(&path)
            .ok()
            .and_then(|old| old.find(MISSES).map(|at| old[at..].to_string()))
            .unwrap_or_default();
        std::fs::write(&path, markdown(&figures) + "\n" + &kept)?;
        say("wrote BENCHMARKS.md (its misses section kept: update it by hand)");
    }
    if !failed.is_empty() {
        bail!("these figures could not be measured: {}", failed.join(", "));
    }
    Ok(())
}

/// The heading of BENCHMARKS.md's hand-written section, kept across runs.
const MISSES: &str = "## Where a target is missed";

fn markdown(figures: &[Figure]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "Written by `cargo xtask bench` on {}.\n\nMachine: {}.\n",
        date(),
        machine()
    );
    let _ = writeln!(
        o,
        "| figure | measured | target | ratio | |\n|---|---|---|---|---|"
    );
    for f in figures {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            f.name,
            f.measured,
            f.target,
            f.ratio.map_or("-".into(), |r| format!("{r:.2}")),
            match f.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "-",
            }
        );
    }
    let _ = writeln!(
        o,
        "\nRatio: measured against the target, in the direction where below 1 is better.\n\n## How each figure is taken\n"
    );
    for f in figures {
        let _ = writeln!(o, "- **{}**: {}", f.name, f.how);
        if !f.notes.is_empty() {
            let _ = writeln!(o, "  {}", f.notes);
        }
    }
    o
}
