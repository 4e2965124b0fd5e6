//! The TUI in a real terminal: `hmmtrace demo` under tmux, driven with send-keys, read back
//! with capture-pane. Waits poll for what the screen must show, with a deadline; a test that
//! cannot run (no tmux) fails and says so.

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(tag: &str) -> Tmux {
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "this test needs tmux (Debian package tmux) to drive a real terminal"
        );
        Tmux {
            socket: format!("hmmtrace-test-{tag}-{}", std::process::id()),
        }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs `cmd` in a `w` × `h` terminal whose pane stays after the command exits.
    fn start(&self, w: u16, h: u16, cmd: &str) {
        let (w, h) = (w.to_string(), h.to_string());
        self.tmux(&["new-session", "-d", "-s", "t", "-x", &w, "-y", &h, cmd]);
        self.tmux(&["set-option", "-t", "t", "remain-on-exit", "on"]);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Polls the screen until `pred` holds; fails with the last screen after `limit`.
    fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The event count in the title bar.
fn events(screen: &str) -> u64 {
    let first = screen.lines().next().unwrap_or("");
    let words: Vec<&str> = first.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == "events")
        .and_then(|i| words[i - 1].parse().ok())
        .unwrap_or(0)
}

#[test]
fn demo_tui_shows_moving_panels_takes_keys_and_restores_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("demo.hmt");
    let t = Tmux::new("demo");
    // After hmmtrace exits, the shell prints its status and the terminal's modes.
    let cmd = format!(
        "{} demo --rate 5000 -o {}; echo EXIT=$?; stty -a",
        env!("CARGO_BIN_EXE_hmmtrace"),
        capture.display()
    );
    t.start(120, 40, &cmd);
    let long = Duration::from_secs(20);
    let first = t.wait_for("the panels", long, |s| {
        s.contains("events per second") && s.contains("latency") && events(s) > 0
    });
    for panel in [
        "status",
        "findings",
        "top by process",
        "migrate → device",
        "M:p50",
        "q  quit",
    ] {
        assert!(first.contains(panel), "{panel} missing:\n{first}");
    }
    assert_eq!(
        t.tmux(&["display", "-p", "-t", "t", "#{alternate_on}"])
            .trim(),
        "1"
    );
    let n = events(&first);
    t.wait_for("the numbers to move", long, |s| events(s) > n);

    t.keys(&["?"]);
    t.wait_for("the help", long, |s| {
        s.contains(" help ") && s.contains("scroll the log")
    });
    t.keys(&["Escape"]);
    t.wait_for("the help to close", long, |s| !s.contains("scroll the log"));

    t.keys(&["/"]);
    t.wait_for("the filter editor", long, |s| s.contains(" filter  /"));
    t.keys(&["-l", "kind:page_free"]);
    t.keys(&["Enter"]);
    let s = t.wait_for("the filtered log", long, |s| {
        s.contains("matching 'kind:page_free'")
    });
    let log: Vec<&str> = s
        .lines()
        .skip_while(|l| !l.contains("matching 'kind:page_free'"))
        .skip(1)
        // The log panel's own cell (a panel may sit to its right), its event lines.
        .map(|l| l.split("││").next().unwrap_or(l))
        .filter(|l| l.contains("s ") && l.contains('[') && !l.contains("process[tid]"))
        .collect();
    assert!(!log.is_empty(), "{s}");
    assert!(log.iter().all(|l| l.contains("page_free")), "{s}");

    t.keys(&["Space"]);
    t.wait_for("the paused log", long, |s| s.contains("PAUSED"));
    t.keys(&["Space"]);
    t.wait_for("the log to resume", long, |s| !s.contains("PAUSED"));

    t.keys(&["q"]);
    let s = t.wait_for("the final report", long, |s| s.contains("capture:"));
    assert!(s.contains("kind") && s.contains("p99"), "{s}");
    assert_eq!(
        t.tmux(&["display", "-p", "-t", "t", "#{alternate_on}"])
            .trim(),
        "0",
        "the alternate screen was left"
    );
    // The terminal is back in cooked mode with echo: stty, run after hmmtrace, says so.
    let s = t.wait_for("the exit status", long, |s| s.contains("EXIT="));
    assert!(s.contains("EXIT=0"), "{s}");
    let s = t.wait_for("stty", long, |s| s.contains("speed"));
    assert!(
        s.contains(" icanon") && s.contains(" echo ") && !s.contains("-icanon"),
        "{s}"
    );
    assert!(capture.exists());
}

#[test]
fn sigterm_restores_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::new("term");
    let cmd = format!(
        "{} demo -o {}",
        env!("CARGO_BIN_EXE_hmmtrace"),
        dir.path().join("d.hmt").display()
    );
    t.start(80, 24, &cmd);
    let long = Duration::from_secs(20);
    t.wait_for("the panels at 80x24", long, |s| {
        s.contains("events per second")
    });
    let pid = t.tmux(&["display", "-p", "-t", "t", "#{pane_pid}"]);
    let killed = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    t.wait_for("the final report", long, |s| s.contains("capture:"));
    assert_eq!(
        t.tmux(&["display", "-p", "-t", "t", "#{alternate_on}"])
            .trim(),
        "0"
    );
}

/// Ids of the BPF programs that process `pid` holds (its fdinfo), as the kernel reports them.
fn programs_of(pid: u32) -> Vec<u64> {
    let mut ids = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for fd in dir.flatten() {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        if let Some(id) = info.lines().find_map(|l| l.strip_prefix("prog_id:")) {
            ids.push(id.trim().parse().unwrap());
        }
    }
    ids
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn live_shows_kernel_events_and_program_costs_and_unloads_on_quit() {
    let t = Tmux::new("live");
    let cmd = format!("exec {} live", env!("CARGO_BIN_EXE_hmmtrace"));
    t.start(160, 48, &cmd);
    let long = Duration::from_secs(30);
    t.wait_for("the probe status", long, |s| {
        s.contains("system_migration 1/1 via tracepoint")
    });
    let pid: u32 = t
        .tmux(&["display", "-p", "-t", "t", "#{pane_pid}"])
        .trim()
        .parse()
        .unwrap();
    let ours = programs_of(pid);
    assert!(!ours.is_empty(), "live holds its programs");
    // Compaction fires migrate:mm_migrate_pages; keep asking until the events show.
    let start = Instant::now();
    let s = loop {
        std::fs::write("/proc/sys/vm/compact_memory", "1").unwrap();
        let s = t.screen();
        if events(&s) > 0 && s.contains("runs") {
            break s;
        }
        assert!(start.elapsed() < long, "no events or costs shown:\n{s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(s.contains("eBPF program cost"), "{s}");
    let cost = s
        .lines()
        .find(|l| l.contains("mm_migrate_pages") && l.contains("runs"))
        .unwrap();
    assert!(
        cost.contains("ns each") || cost.contains("us each"),
        "{cost}"
    );
    t.keys(&["q"]);
    let start = Instant::now();
    while t.tmux(&["display", "-p", "-t", "t", "#{pane_dead}"]).trim() != "1" {
        assert!(start.elapsed() < long, "live did not exit after q");
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .unwrap();
    let loaded: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let left: Vec<u64> = loaded
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .filter(|id| ours.contains(id))
        .collect();
    assert!(
        left.is_empty(),
        "programs still loaded after live exited: {left:?}"
    );
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn live_killed_by_sigterm_or_sigkill_leaves_nothing_loaded() {
    for signal in ["TERM", "KILL"] {
        let t = Tmux::new(&format!("live-{signal}"));
        let cmd = format!("exec {} live", env!("CARGO_BIN_EXE_hmmtrace"));
        t.start(120, 40, &cmd);
        let long = Duration::from_secs(30);
        t.wait_for("the probe status", long, |s| {
            s.contains("system_migration 1/1 via tracepoint")
        });
        let pid = t.tmux(&["display", "-p", "-t", "t", "#{pane_pid}"]);
        let ours = programs_of(pid.trim().parse().unwrap());
        assert!(!ours.is_empty());
        let killed = Command::new("kill")
            .args([&format!("-{signal}"), pid.trim()])
            .status()
            .unwrap();
        assert!(killed.success());
        let start = Instant::now();
        loop {
            let o = Command::new("bpftool")
                .args(["-j", "prog", "show"])
                .output()
                .unwrap();
            let loaded: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
            let left = loaded
                .iter()
                .filter_map(|p| p["id"].as_u64())
                .filter(|id| ours.contains(id))
                .count();
            if left == 0 {
                break;
            }
            assert!(
                start.elapsed() < long,
                "SIG{signal}: {left} programs still loaded"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        if signal == "TERM" {
            // A clean exit on SIGTERM gives the terminal back.
            t.wait_for("the alternate screen to be left", long, |_| {
                t.tmux(&["display", "-p", "-t", "t", "#{alternate_on}"])
                    .trim()
                    == "0"
            });
        }
    }
}
