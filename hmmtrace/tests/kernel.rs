//! The whole chain against the running kernel: the embedded object (built by hmmtrace/build.rs
//! with nightly and bpf-linker) loads, the system-migration tracepoint attaches, compaction
//! produces events with sane fields, and nothing of hmmtrace's stays loaded afterwards. Needs root: `cargo xtask
//! test` runs these when it is root (they are #[ignore]d otherwise, and listed as skipped).

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use std::process::Command;
use std::time::{Duration, Instant};

use hmmtrace::event::{Body, Event};
use hmmtrace::kernel::{Session, SessionOptions};

/// Ids of the BPF programs this process holds a file descriptor of (`prog_id:` in
/// /proc/self/fdinfo), so that tests running beside this one do not count.
fn our_program_ids() -> Vec<u64> {
    let mut ids = Vec::new();
    for fd in std::fs::read_dir("/proc/self/fdinfo").unwrap().flatten() {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        if let Some(id) = info.lines().find_map(|l| l.strip_prefix("prog_id:")) {
            ids.push(id.trim().parse().unwrap());
        }
    }
    ids
}

/// Program ids and names the kernel has loaded, from bpftool, not from hmmtrace itself, so a
/// leak could not hide behind our own bookkeeping.
fn loaded_programs() -> Vec<(u64, String)> {
    let o = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .expect("bpftool is installed (apt-get install bpftool)");
    assert!(
        o.status.success(),
        "bpftool prog show failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let progs: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    progs
        .iter()
        .map(|p| {
            (
                p["id"].as_u64().unwrap(),
                p["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn system_migration_events_from_compaction() {
    let me = std::process::id();
    let mut session = Session::start(&SessionOptions::default()).expect("start a session");
    let our_ids = our_program_ids();
    let named: Vec<String> = loaded_programs()
        .into_iter()
        .filter(|(id, _)| our_ids.contains(id))
        .map(|(_, name)| name)
        .collect();
    // The tracepoint's program, and the two that name tasks (fork, rename) in place of a
    // comm read per event.
    let mut named = named;
    named.sort();
    assert_eq!(
        named,
        [
            "sched_process_fork",
            "task_rename",
            "tracepoint_mm_migrate_pages"
        ],
        "bpftool sees our programs while the session lives"
    );
    let events = compact_until_mine(&mut session);
    assert_eq!(session.malformed, 0);
    let ours: Vec<_> = events.iter().filter(|e| e.tgid == me).collect();
    for e in &ours {
        let Body::SystemMigration(m) = e.body else {
            panic!("unexpected event {e:?}")
        };
        assert_eq!(e.unknown, 0, "every field's offset is known on this kernel");
        assert_eq!(m.reason, hmmtrace_common::MR_COMPACTION, "{m:?}");
        assert!(m.mode <= 2, "enum migrate_mode has three values: {m:?}");
        // Counts of pages from one migrate_pages() call: far below the machine's page count.
        assert!(m.succeeded < 1 << 32 && m.failed < 1 << 32, "{m:?}");
        assert!(e.ts_ns > 0 && e.duration_ns.is_none());
        // SAFETY: gettid has no preconditions.
        assert_eq!(
            e.pid as i32,
            unsafe { libc::gettid() },
            "the thread that wrote compact_memory"
        );
    }
    drop(session);
    assert!(our_program_ids().is_empty(), "no program fd left open");
    let left: Vec<_> = loaded_programs()
        .into_iter()
        .filter(|(id, _)| our_ids.contains(id))
        .collect();
    assert!(
        left.is_empty(),
        "bpftool still shows {left:?} after the session ended"
    );
}

/// This thread's name, as the kernel has it.
fn thread_comm() -> String {
    let c = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
    c.trim_end_matches('\n').to_string()
}

/// Compacts memory from this thread until the session has delivered an event of it; returns
/// every event delivered meanwhile. Compaction runs in the writer's context, so some events
/// carry our thread; each write is a full compaction of every zone, for up to 60 s.
fn compact_until_mine(session: &mut Session) -> Vec<Event> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    let mut events: Vec<Event> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !events.iter().any(|e| e.pid == tid) {
        assert!(
            Instant::now() < deadline,
            "no migrate:mm_migrate_pages event from our compactions within 60 s"
        );
        std::fs::write("/proc/sys/vm/compact_memory", "1").unwrap();
        session
            .drain(&mut |e| {
                events.push(*e);
                Ok(())
            })
            .unwrap();
    }
    events
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn tasks_are_named_per_event_where_the_kernel_cannot_announce_them() {
    // As on a kernel whose fork or rename tracepoint lacks the fields: records carry no name,
    // so the programs name a task before its record when their cpu has not named it so.
    let mut session = Session::start(&SessionOptions {
        comm_per_event: true,
        ..Default::default()
    })
    .unwrap();
    let ours = our_program_ids();
    let mut named: Vec<String> = loaded_programs()
        .into_iter()
        .filter(|(id, _)| ours.contains(id))
        .map(|(_, name)| name)
        .collect();
    named.sort();
    assert_eq!(
        named,
        ["tracepoint_mm_migrate_pages"],
        "no fork or rename program"
    );
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    let before = thread_comm();
    let first = compact_until_mine(&mut session);
    // A rename the kernel announces nowhere in this mode: seen on the next record.
    let renamed = "hmmtrace-rn";
    let name = std::ffi::CString::new(renamed).unwrap();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) }, 0);
    let second = compact_until_mine(&mut session);
    assert_eq!(session.malformed, 0);
    for (events, want) in [(&first, before.as_str()), (&second, renamed)] {
        for e in events.iter() {
            assert!(!e.comm.to_string().is_empty(), "every task named: {e:?}");
            if e.pid == tid {
                assert_eq!(e.comm.to_string(), want, "{e:?}");
            }
        }
    }
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn a_tgid_filter_is_applied_in_the_kernel() {
    // Filter on a process that does nothing: our compactions must not come through.
    let idle = Command::new("sleep").arg("30").spawn().unwrap();
    let mut session = Session::start(&SessionOptions {
        tgids: vec![idle.id()],
        ..Default::default()
    })
    .unwrap();
    let mut seen = 0u64;
    for _ in 0..3 {
        std::fs::write("/proc/sys/vm/compact_memory", "1").unwrap();
    }
    session
        .drain(&mut |e| {
            assert_eq!(e.tgid, idle.id(), "{e:?}");
            seen += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, 0);
    let mut idle = idle;
    idle.kill().unwrap();
    idle.wait().unwrap();
}

#[test]
fn a_ring_size_that_is_not_a_power_of_two_is_refused() {
    let e = Session::start(&SessionOptions {
        ring_bytes: 5000,
        ..Default::default()
    })
    .err()
    .expect("refused");
    assert!(e.to_string().contains("power of two"), "{e}");
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn every_kprobe_program_passes_the_verifier() {
    // Loaded with this kernel's real offsets, so the verifier walks the field-reading code
    // (read-only globals are constants to it: unknown offsets would prune those paths).
    let verdicts =
        hmmtrace::kernel::session::verify_kprobe_programs(&SessionOptions::default()).unwrap();
    let names: Vec<&str> = verdicts.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "kprobe_migrate_vma_setup",
        "kretprobe_migrate_vma_finalize",
        "kprobe_migrate_to_ram",
        "kretprobe_free_zone_device",
        "kretprobe_invalidate_range_start",
        "kretprobe_interval_invalidate",
        "kretprobe_hmm_range_fault",
        "kretprobe_migrate_device_range",
        "kretprobe_migrate_device_finalize",
        "kretprobe_page_free",
        "kprobe_census",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    assert_eq!(
        verdicts.len(),
        25,
        "an entry and an exit program for each of 12 roles, and the census's: {names:?}"
    );
    for (name, verdict) in &verdicts {
        assert!(verdict.is_ok(), "{name}: {}", verdict.as_ref().unwrap_err());
    }
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn ebpf_diagnostics_pass_the_verifier_and_cost_nothing_when_off() {
    let sizes = |ebpf_log: bool| -> std::collections::BTreeMap<String, u32> {
        let opts = SessionOptions {
            ebpf_log,
            ..SessionOptions::default()
        };
        hmmtrace::kernel::session::verify_kprobe_programs(&opts)
            .unwrap()
            .into_iter()
            .map(|(name, verdict)| match verdict {
                Ok(size) => (name, size),
                Err(e) => panic!("--ebpf-log {ebpf_log}: {name}: {e}"),
            })
            .collect()
    };
    let (off, on) = (sizes(false), sizes(true));
    for (name, size) in &off {
        eprintln!(
            "{name:<36} {size:>6} bytes without --ebpf-log, {:>6} with",
            on[name]
        );
    }
    // A program that logs keeps its logging code only with --ebpf-log: without it the verifier
    // saw AYA_LOG_LEVEL = 0 and removed the code. One that never logs is the same either way.
    for logs in [
        "kretprobe_migrate_vma_setup",
        "kretprobe_migrate_to_ram",
        "kretprobe_hmm_range_fault",
    ] {
        assert!(
            off[logs] < on[logs],
            "{logs}: {} off, {} on",
            off[logs],
            on[logs]
        );
    }
    // The per-page entries pair through slots that cannot be full: nothing to log.
    for silent in [
        "kprobe_migrate_vma_pages",
        "kretprobe_page_free",
        "kprobe_migrate_to_ram",
    ] {
        assert_eq!(off[silent], on[silent], "{silent}");
    }
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn the_plan_reports_what_attached_and_why_not() {
    use hmmtrace::kernel::plan::Status;
    let session = Session::start(&SessionOptions::default()).unwrap();
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let tracefs = hmmtrace::kernel::tracefs::root().unwrap();
    for row in &session.plan {
        eprintln!("{:<24} {:<40} {}", row.role.name(), row.symbol, row.status);
        // Functions are in kallsyms, tracepoints in tracefs.
        let in_kernel = if row.symbol.contains(':') {
            hmmtrace::kernel::tracefs::has_event(&tracefs, &row.symbol)
        } else {
            kallsyms
                .lines()
                .any(|l| l.split_whitespace().nth(2) == Some(row.symbol.as_str()))
        };
        match &row.status {
            Status::NotInKernel => assert!(!in_kernel, "{row:?}"),
            Status::Attached(_) | Status::OffsetsUnknown { .. } => assert!(in_kernel),
            // A refusal names a real errno for every mechanism tried.
            Status::Denied(tries) => assert!(
                !tries.is_empty() && tries.iter().all(|r| r.errno > 0),
                "{row:?}"
            ),
            Status::Unreachable(why) => assert!(!why.is_empty()),
            Status::Planned => panic!("every planned row was tried: {row:?}"),
            // Only a module unloaded during a session leaves a row so.
            Status::Unloaded => panic!("nothing was unloaded at start: {row:?}"),
        }
    }
}

#[test]
#[ignore = "needs root to load eBPF programs and to switch to an unprivileged user"]
fn probes_command_as_root_and_unprivileged() {
    let bin = env!("CARGO_BIN_EXE_hmmtrace");
    let o = Command::new(bin).arg("probes").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("migrate:mm_migrate_pages") && out.contains("attached (tracepoint)"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("migration") && l.contains("migrate_vma_setup")),
        "{out}"
    );
    // As nobody: one clear message, exit 3, nothing loaded.
    let o = as_nobody(bin, "").arg("probes").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("lacks CAP_BPF and CAP_PERFMON") && !err.contains("panicked"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    // record likewise, and it creates no capture file.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.hmt");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let o = as_nobody(bin, "")
        .args(["record", "--duration", "1s", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.exists(), "an unprivileged record creates nothing");
}

#[test]
#[ignore = "needs root to hand out capabilities to an unprivileged user"]
fn missing_privileges_are_exit_3_wherever_the_kernel_refuses() {
    let bin = env!("CARGO_BIN_EXE_hmmtrace");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let record = |caps: &str| {
        let out = dir
            .path()
            .join(format!("{}.hmt", caps.replace(['+', ','], "")));
        let o = as_nobody(bin, caps)
            .args(["record", "--duration", "1s", "-o"])
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        (o.status.code(), err, out.exists())
    };
    // CAP_BPF only: refused at tracefs, before anything is loaded.
    let (code, err, created) = record("+bpf");
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("reading tracefs")
            && err.contains("lacks CAP_PERFMON and CAP_DAC_READ_SEARCH"),
        "{err}"
    );
    assert!(!created && !err.contains("panicked"));
    // tracefs readable but no CAP_PERFMON: the maps load, the programs do not attach.
    let (code, err, created) = record("+bpf,+dac_read_search");
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("not privileged enough for attaching")
            && err.contains("lacks CAP_PERFMON")
            && err.contains("Operation not permitted"),
        "{err}"
    );
    assert!(!created);
    // The capabilities the README names are enough.
    let (code, err, created) = record("+bpf,+perfmon,+dac_read_search");
    assert_eq!(code, Some(0), "{err}");
    assert!(created && err.contains("probes detached"), "{err}");
}

/// `bin` run as user nobody with no capabilities but `caps` (setpriv's syntax, e.g. "+bpf";
/// empty for none), kept across exec as ambient capabilities.
fn as_nobody(bin: &str, caps: &str) -> Command {
    let set = if caps.is_empty() {
        "-all".to_string()
    } else {
        format!("-all,{caps}")
    };
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(format!("--inh-caps={set}"))
        .arg(format!("--ambient-caps={set}"))
        .arg(bin);
    c
}

fn capture_events(path: &std::path::Path) -> (hmmtrace::capture::CaptureHeader, Vec<Event>) {
    let r = hmmtrace::capture::Reader::open(path).unwrap();
    let header = r.header.clone();
    let mut v = Vec::new();
    let sum = r
        .for_each(|e| {
            v.push(*e);
            Ok(())
        })
        .unwrap();
    assert_eq!(sum.dropped_bytes, 0);
    (header, v)
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn record_a_command_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.hmt");
    // The compaction happens in a subshell: a child of the traced command.
    let o = Command::new(env!("CARGO_BIN_EXE_hmmtrace"))
        .args(["record", "-o"])
        .arg(&out)
        .args([
            "--",
            "sh",
            "-c",
            "(echo 1 > /proc/sys/vm/compact_memory); exit 7",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "the command's exit status: {err}");
    assert!(
        err.contains("stopped by the command exited") && err.contains("probes detached"),
        "{err}"
    );
    let (header, events) = capture_events(&out);
    assert_eq!(header.source, "kernel");
    assert!(header
        .probe_plan
        .iter()
        .any(|p| p.symbol == "migrate:mm_migrate_pages" && p.status.is_attached()));
    assert!(
        !events.is_empty(),
        "the subshell's compaction was traced (forks are followed)"
    );
    let me = std::process::id();
    for e in &events {
        assert!(matches!(e.body, Body::SystemMigration(_)), "{e:?}");
        assert_ne!(e.tgid, me, "only the command's tasks");
        assert_eq!(e.comm.to_string(), "sh");
    }
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn record_stops_cleanly_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.hmt");
    let child = start_record(&out, std::process::Stdio::piped());
    std::fs::write("/proc/sys/vm/compact_memory", "1").unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("stopped by SIGINT"), "{err}");
    let (_, events) = capture_events(&out);
    assert!(
        events.iter().any(|e| e.tgid == std::process::id()),
        "our compaction, drained before exit"
    );
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn a_full_ring_becomes_lost_events_per_probe() {
    // One page of ring holds ~40 records; undrained compactions overflow it (fewer events
    // each when memory is already compact: ten between drains).
    let mut session = Session::start(&SessionOptions {
        ring_bytes: 4096,
        ..Default::default()
    })
    .unwrap();
    let (mut delivered, mut lost) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(60);
    while lost == 0 {
        assert!(
            Instant::now() < deadline,
            "no drops within 60 s ({delivered} delivered)"
        );
        for _ in 0..10 {
            std::fs::write("/proc/sys/vm/compact_memory", "1").unwrap();
        }
        session
            .drain(&mut |e| {
                match e.body {
                    // Task names of the machine's forks may be dropped too, counted apart.
                    Body::Lost(l) if l.probe == hmmtrace_common::ProbeId::Task as u32 => {}
                    Body::Lost(l) => {
                        assert_eq!(l.probe, hmmtrace_common::ProbeId::SystemMigration as u32);
                        lost += l.count;
                    }
                    _ => delivered += 1,
                }
                Ok(())
            })
            .unwrap();
    }
    assert!(delivered > 0, "records that fit were still delivered");
}

/// `hmmtrace record` of the whole system into `out`, returned once it has attached (the
/// capture's header is written then).
fn start_record(out: &std::path::Path, stderr: std::process::Stdio) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_hmmtrace"))
        .args(["record", "--duration", "120s", "-o"])
        .arg(out)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(out).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < deadline, "record did not start");
        std::thread::yield_now();
    }
    child
}

/// Program and map ids a process holds (its fdinfo): what the kernel must drop when it dies.
fn bpf_objects_of(pid: u32) -> (Vec<u64>, Vec<u64>) {
    let (mut progs, mut maps) = (Vec::new(), Vec::new());
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
    {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        for l in info.lines() {
            if let Some(id) = l.strip_prefix("prog_id:") {
                progs.push(id.trim().parse().unwrap());
            }
            if let Some(id) = l.strip_prefix("map_id:") {
                maps.push(id.trim().parse().unwrap());
            }
        }
    }
    (progs, maps)
}

fn bpftool_ids(what: &str) -> Vec<u64> {
    let o = Command::new("bpftool")
        .args(["-j", what, "show"])
        .output()
        .unwrap();
    let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v.iter().filter_map(|p| p["id"].as_u64()).collect()
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn record_killed_by_any_signal_leaves_its_capture_readable_and_nothing_loaded() {
    for signal in [libc::SIGKILL, libc::SIGTERM, libc::SIGINT] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("k.hmt");
        let mut child = start_record(&out, std::process::Stdio::null());
        let deadline = Instant::now() + Duration::from_secs(30);
        let header_len = std::fs::metadata(&out).unwrap().len();
        let (progs, maps) = bpf_objects_of(child.id());
        assert!(!progs.is_empty() && !maps.is_empty());
        // Events, then a block on disk (record writes one at least every second).
        while std::fs::metadata(&out).unwrap().len() == header_len {
            std::fs::write("/proc/sys/vm/compact_memory", "1").unwrap();
            assert!(Instant::now() < deadline, "no block was written");
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait().unwrap();
        // Every complete block reads back; a SIGKILL may leave a partial one, which the
        // reader reports as dropped bytes instead of failing.
        let r = hmmtrace::capture::Reader::open(&out).unwrap();
        let mut events = 0;
        let sum = r
            .for_each(|_| {
                events += 1;
                Ok(())
            })
            .unwrap();
        assert!(events > 0 && sum.blocks > 0, "signal {signal}: {sum:?}");
        let o = Command::new(env!("CARGO_BIN_EXE_hmmtrace"))
            .arg("report")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        // The kernel frees programs and maps once their last descriptor closes (after an RCU
        // grace period): wait for it, then nothing of hmmtrace's is left.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (p, m) = (bpftool_ids("prog"), bpftool_ids("map"));
            let left: Vec<u64> = progs
                .iter()
                .chain(&maps)
                .filter(|id| p.contains(id) || m.contains(id))
                .copied()
                .collect();
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "signal {signal}: still loaded after exit: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
#[ignore = "needs root to load eBPF programs; cargo xtask test runs it as root"]
fn census_runs_system_wide_and_says_what_it_could_not_count() {
    let out = Command::new(env!("CARGO_BIN_EXE_hmmtrace"))
        .args(["census", "--duration", "1s", "--format", "json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let c: hmmtrace::census::Census = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!c.exports.is_empty(), "{c:?}");
    assert!(c.watched_ns >= 1_000_000_000, "{c:?}");
    let kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
    // Without kprobes (this project's host) the census says so instead of counting nothing
    // silently; with them every export present is counted.
    if kprobes {
        assert!(c.not_counted.is_empty(), "{:?}", c.not_counted);
    } else {
        assert_eq!(c.not_counted.len(), 1, "{:?}", c.not_counted);
        assert!(c.not_counted[0].contains("no kprobes"));
    }
    // Every loaded module is listed with its taint; no export appears twice.
    let loaded = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    assert_eq!(c.modules.len(), loaded.lines().count());
    let mut names: Vec<&str> = c.exports.iter().map(|e| e.name.as_str()).collect();
    names.dedup();
    assert_eq!(names.len(), c.exports.len());
}
