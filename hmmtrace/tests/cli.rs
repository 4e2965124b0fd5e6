//! The `hmmtrace` binary as a user runs it: exit codes, messages, files.

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use std::process::Command;

fn hmmtrace() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hmmtrace"))
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn sim_writes_a_capture_that_report_reads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.hmt");
    let (code, sim_out, err) = run(hmmtrace()
        .args(["sim", "-s", "migrate_fault", "--format", "json", "-o"])
        .arg(&path));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("wrote 152 events"), "{err}");
    let (code, rep_out, err) = run(hmmtrace()
        .arg("report")
        .arg(&path)
        .args(["--format", "json"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        sim_out, rep_out,
        "the report of the capture equals the report of the run"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn bad_inputs_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\n[[process]]\nname = 3\n").unwrap();
    let (code, _, err) = run(hmmtrace().args(["sim", "-s"]).arg(&bad));
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.toml:3:") && !err.contains("panicked"),
        "{err}"
    );

    let junk = dir.path().join("junk.hmt");
    std::fs::write(&junk, b"definitely not a capture").unwrap();
    let (code, _, err) = run(hmmtrace().arg("report").arg(&junk));
    assert_eq!(code, 2);
    assert!(err.contains("not an hmmtrace capture"), "{err}");

    let (code, _, err) = run(hmmtrace().args(["report", "/nonexistent/x.hmt"]));
    assert_eq!(code, 2);
    assert!(err.contains("cannot open capture file"), "{err}");

    let (code, _, err) = run(hmmtrace().args(["demo", "--duration", "ten"]));
    assert_eq!(code, 2);
    assert!(err.contains("not a duration"), "{err}");

    let dash = dir.path().join("dash.toml");
    std::fs::write(
        &dash,
        "name = \"d\"\n[[row]]\n[[row.panel]]\ntype = \"pie\"\n",
    )
    .unwrap();
    let (code, _, err) = run(hmmtrace()
        .args(["demo", "--no-tui", "--duration", "1s", "--dashboard"])
        .arg(&dash)
        .arg("-o")
        .arg(dir.path().join("never.hmt")));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("dash.toml:3:1: unknown panel type 'pie'") && !err.contains("panicked"),
        "{err}"
    );
    assert!(
        !dir.path().join("never.hmt").exists(),
        "nothing is created for bad input"
    );
}

#[test]
fn truncated_capture_reports_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.hmt");
    let (code, _, err) = run(hmmtrace()
        .args(["sim", "-s", "gpu-stream", "-o"])
        .arg(&path));
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1000]).unwrap();
    let (code, out, err) = run(hmmtrace().arg("report").arg(&path));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("dropped") && err.contains("recovered"),
        "{err}"
    );
    assert!(out.contains("migration"), "{out}");
}

#[test]
fn demo_runs_headless_and_leaves_a_capture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.hmt");
    let (code, out, err) = run(hmmtrace()
        .args([
            "demo",
            "-s",
            "migrate_fault",
            "--duration",
            "1s",
            "--rate",
            "5000",
            "-o",
        ])
        .arg(&path));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("device_fault") && out.contains("p99"), "{out}");
    // Paced to 5000 events/s for 1 s: the engine ran the scenario many times over.
    let (code, rep, _) = run(hmmtrace()
        .arg("report")
        .arg(&path)
        .args(["--format", "json"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&rep).unwrap();
    let events = v["events"].as_u64().unwrap();
    assert!(events > 1000 && events < 10_000, "{events}");
}

#[test]
fn help_explains_with_examples() {
    let (code, out, _) = run(hmmtrace().arg("--help"));
    assert_eq!(code, 0);
    assert!(out.contains("Examples:") && out.contains("hmmtrace demo"));
    let (_, out, _) = run(hmmtrace().args(["sim", "--list"]));
    assert!(out.lines().count() >= 12 && out.contains("gpu-stream"));
}

#[test]
fn export_writes_every_event_and_stops_quietly_on_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.hmt");
    let (code, _, err) = run(hmmtrace()
        .args(["sim", "-s", "migrate_fault", "-o"])
        .arg(&path));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(hmmtrace().arg("export").arg(&path));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 152, "one line per event");
    let csv = dir.path().join("m.csv");
    let (code, _, err) = run(hmmtrace()
        .arg("export")
        .arg(&path)
        .args(["--format", "csv", "-o"])
        .arg(&csv));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap().lines().count(),
        153,
        "a header and one row per event"
    );
    // A reader that goes away early (`| head -1`) is not an error; gpu-stream's export is
    // far larger than a pipe's buffer, so the writer does meet the closed pipe.
    let big = dir.path().join("g.hmt");
    let (code, _, err) = run(hmmtrace().args(["sim", "-s", "gpu-stream", "-o"]).arg(&big));
    assert_eq!(code, 0, "{err}");
    let sh = format!(
        "{} export {} | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}",
        env!("CARGO_BIN_EXE_hmmtrace"),
        big.display()
    );
    let (_, out, err) = run(Command::new("bash").args(["-c", &sh]));
    assert_eq!(out.trim(), "0", "{err}");
    assert!(err.is_empty(), "{err}");
    let (code, _, err) = run(hmmtrace().args(["export", "/nonexistent/x.hmt"]));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn compare_and_fail_if_gate_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let sim = |seed: &str| {
        let p = dir.path().join(format!("g{seed}.hmt"));
        let (code, _, err) = run(hmmtrace()
            .args(["sim", "-s", "gpu-stream", "--seed", seed, "-o"])
            .arg(&p));
        assert_eq!(code, 0, "{err}");
        p
    };
    let (a, b) = (sim("1"), sim("9"));
    // Against itself nothing changes: the strictest thresholds pass.
    let (code, out, err) = run(hmmtrace()
        .arg("report")
        .arg(&a)
        .arg("--compare")
        .arg(&a)
        .args(["--fail-if", "p99>+0%", "--fail-if", "count<-0%"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("against baseline") && out.contains("+0.0%"),
        "{out}"
    );
    // Another seed moves range_fault's p99 far more than 10%.
    let (code, _, err) = run(hmmtrace()
        .arg("report")
        .arg(&a)
        .arg("--compare")
        .arg(&b)
        .args(["--fail-if", "range_fault.p99>+10%"]));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("range_fault p99 went from"), "{err}");
    // The same change is within a generous absolute threshold.
    let (code, _, err) = run(hmmtrace()
        .arg("report")
        .arg(&a)
        .arg("--compare")
        .arg(&b)
        .args(["--fail-if", "range_fault.p99>+1s", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(hmmtrace()
        .arg("report")
        .arg(&a)
        .arg("--compare")
        .arg(&b)
        .args(["--fail-if", "p99>>1"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--fail-if"), "{err}");
    let (code, _, err) = run(hmmtrace()
        .arg("report")
        .arg(&a)
        .args(["--fail-if", "p99>+1%"]));
    assert_eq!(code, 2, "--fail-if needs --compare: {err}");
}

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn sim_to(dir: &std::path::Path, scenario: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{scenario}.hmt"));
    let (code, _, err) = run(hmmtrace().args(["sim", "-s", scenario, "-o"]).arg(&p));
    assert_eq!(code, 0, "{err}");
    p
}

#[test]
fn a_report_never_merges_captures_on_different_clocks() {
    let dir = tempfile::tempdir().unwrap();
    let engine = sim_to(dir.path(), "migrate");
    let kernel = data("host-compaction.hmt");
    let (code, out, err) = run(hmmtrace().arg("report").arg(&kernel).arg(&engine));
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("clock") && err.contains("host-compaction.hmt") && out.is_empty(),
        "{err}"
    );
    // Each engine run has a clock of its own, starting at 0.
    let (code, _, err) = run(hmmtrace().arg("report").arg(&engine).arg(&engine));
    assert_eq!(code, 2, "{err}");
    // Two kernel captures of one boot share its clock: one report, which names the clock.
    let (code, out, err) = run(hmmtrace().arg("report").arg(&kernel).arg(&kernel));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CLOCK_MONOTONIC"), "{out}");
    let (_, out, _) = run(hmmtrace().arg("report").arg(&engine));
    assert!(out.contains("simulated"), "{out}");
}

#[test]
fn out_of_range_options_are_bad_input_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.hmt");
    // Checked before privileges and before any file: exit 2 as root and as anyone else.
    let (code, _, err) = run(hmmtrace()
        .args(["record", "--comm", "a-name-of-16-byt", "-o"])
        .arg(&out)
        .args(["--", "true"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("1 to 15 bytes"), "{err}");
    assert!(!out.exists());
    let cap = sim_to(dir.path(), "migrate");
    let (code, _, err) = run(hmmtrace()
        .arg("report")
        .arg(&cap)
        .args(["--hdr-interval", "0s", "--hdr-log"])
        .arg(dir.path().join("h.hlog")));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("longer than 0"), "{err}");
    assert!(!dir.path().join("h.hlog").exists());
}

#[test]
fn a_scenario_that_fails_while_running_leaves_no_capture() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[[process]]\nname = \"p\"\n[[step]]\nop = \"write\"\nregion = \"nope\"\n",
    )
    .unwrap();
    let out = dir.path().join("x.hmt");
    let (code, _, err) = run(hmmtrace().args(["sim", "-s"]).arg(&bad).arg("-o").arg(&out));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.toml:4:") && err.contains("no region 'nope'"),
        "{err}"
    );
    assert!(!out.exists(), "a half-made capture is removed");
}

#[test]
fn demo_numbers_its_capture_rather_than_replace_one() {
    let dir = tempfile::tempdir().unwrap();
    let demo = || {
        let (code, out, err) = run(hmmtrace().current_dir(dir.path()).args([
            "demo",
            "--no-tui",
            "-s",
            "migrate",
            "--duration",
            "200ms",
        ]));
        assert_eq!(code, 0, "{err}");
        out
    };
    std::fs::write(dir.path().join("hmmtrace-demo.hmt"), b"precious").unwrap();
    let out = demo();
    assert!(
        out.contains("hmmtrace-demo-2.hmt"),
        "says where it wrote: {out}"
    );
    demo();
    assert_eq!(
        std::fs::read(dir.path().join("hmmtrace-demo.hmt")).unwrap(),
        b"precious"
    );
    for n in [2, 3] {
        let p = dir.path().join(format!("hmmtrace-demo-{n}.hmt"));
        let (code, _, err) = run(hmmtrace().arg("report").arg(&p));
        assert_eq!(code, 0, "{}: {err}", p.display());
    }
}

#[test]
fn report_options_are_honoured_or_refused_never_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cap = sim_to(dir.path(), "multiple_devices");
    let report = |args: &[&str]| run(hmmtrace().arg("report").arg(&cap).args(args));
    // --by device in HTML: a table per device.
    let html = dir.path().join("r.html");
    let (code, _, err) = report(&[
        "--by",
        "device",
        "--format",
        "html",
        "-o",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("dmirror0") && page.contains("dmirror1"),
        "no devices in the page"
    );
    // --by pid in hgrm: a section per group and kind.
    let (code, out, err) = report(&["--by", "pid", "--format", "hgrm"]);
    assert_eq!(code, 0, "{err}");
    let (_, json, _) = report(&["--by", "pid", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for g in v["groups"].as_array().unwrap() {
        let group = g["group"].as_str().unwrap();
        assert!(out.contains(group), "hgrm lacks group {group}:\n{out}");
    }
    // Nothing timed: hgrm has nothing to print, and says so.
    let kernel = data("host-compaction.hmt");
    let (code, out, err) = run(hmmtrace()
        .arg("report")
        .arg(&kernel)
        .args(["--format", "hgrm"]));
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("no event has a latency"), "{err}");
}

#[test]
fn by_direction_and_api_part_migrations_as_the_export_does() {
    let dir = tempfile::tempdir().unwrap();
    // Migrating to a device that evicts its pages when the process exits (test_hmm's
    // release): one migrate_vma, one migrate_device.
    let evict = dir.path().join("evict.toml");
    std::fs::write(
        &evict,
        "name = \"evict\"\n[[device]]\nname = \"d\"\nkind = \"private\"\npages = 64\n\
         evict_on_release = true\n[[process]]\nname = \"p\"\n\
         [[step]]\nop = \"mmap\"\nregion = \"buf\"\npages = 8\n\
         [[step]]\nop = \"open\"\ndevice = \"d\"\n[[step]]\nop = \"write\"\nregion = \"buf\"\n\
         [[step]]\nop = \"migrate\"\nregion = \"buf\"\ndevice = \"d\"\n[[step]]\nop = \"exit\"\n",
    )
    .unwrap();
    for (by, field, scenario) in [
        ("direction", "direction", "migrate_fault"),
        ("api", "api", evict.to_str().unwrap()),
    ] {
        let cap = dir.path().join(format!("{by}.hmt"));
        let (code, _, err) = run(hmmtrace().args(["sim", "-s", scenario, "-o"]).arg(&cap));
        assert_eq!(code, 0, "{err}");
        let (_, export, _) = run(hmmtrace().arg("export").arg(&cap));
        let mut want: std::collections::BTreeMap<String, u64> = Default::default();
        for line in export.lines() {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            if r["kind"] == "migration" {
                *want
                    .entry(r[field].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
        let (code, json, err) = run(hmmtrace()
            .arg("report")
            .arg(&cap)
            .args(["--by", by, "--format", "json"]));
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let got: std::collections::BTreeMap<String, u64> = v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| {
                let m = g["kinds"]
                    .as_array()?
                    .iter()
                    .find(|k| k["kind"] == "migration")?;
                Some((g["group"].as_str()?.to_string(), m["count"].as_u64()?))
            })
            .collect();
        assert_eq!(got, want, "--by {by}");
        assert!(want.len() >= 2, "{scenario} has two {by}s: {want:?}");
    }
}

#[test]
fn retries_have_a_report_column() {
    let dir = tempfile::tempdir().unwrap();
    let cap = sim_to(dir.path(), "mirror_busy");
    let (_, text, _) = run(hmmtrace().arg("report").arg(&cap));
    let (_, json, _) = run(hmmtrace()
        .arg("report")
        .arg(&cap)
        .args(["--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rf = v["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "range_fault")
        .unwrap();
    let retries = rf["retries"].as_u64().unwrap();
    assert!(retries > 0, "mirror_busy retries on -EBUSY");
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("range_fault "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(text.contains(" retries "), "{text}");
    assert_eq!(row[4], retries.to_string(), "{text}");
}

#[test]
fn report_check_gates_a_ci_on_findings_with_exit_5() {
    let dir = tempfile::tempdir().unwrap();
    let thrash = sim_to(dir.path(), "pingpong");
    let (code, out, err) = run(hmmtrace().arg("report").arg(&thrash).arg("--check"));
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("check failed: 1 finding(s) at warn or above"),
        "{err}"
    );
    assert!(out.contains("WARN  thrashing"), "{out}");
    // Only errors fail: a warning passes.
    let (code, _, err) =
        run(hmmtrace()
            .arg("report")
            .arg(&thrash)
            .args(["--check", "--fail-on", "error"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("check passed"), "{err}");
    // A partial migration is information: it fails only --fail-on info.
    let pinned = sim_to(dir.path(), "migrate_pinned");
    let (code, _, _) = run(hmmtrace().arg("report").arg(&pinned).arg("--check"));
    assert_eq!(code, 0);
    let (code, _, _) =
        run(hmmtrace()
            .arg("report")
            .arg(&pinned)
            .args(["--check", "--fail-on", "info"]));
    assert_eq!(code, 5);
    // The thresholds are options: 8 round trips are needed, 7 were made.
    let (code, _, _) =
        run(hmmtrace()
            .arg("report")
            .arg(&thrash)
            .args(["--check", "--thrash-round-trips", "8"]));
    assert_eq!(code, 0);
    // JSON carries the finding with its evidence.
    let (_, json, _) = run(hmmtrace()
        .arg("report")
        .arg(&thrash)
        .args(["--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let f = &v["findings"]["list"][0];
    assert_eq!(f["kind"], "thrashing");
    assert_eq!(f["severity"], "warn");
    assert_eq!(f["counts"]["round_trips"], 7);
    assert_eq!(f["range"][0], 0x1000_0000u64);
    assert_eq!(v["findings"]["warn"], 1);
    assert_eq!(v["devices"][0]["device"], "dmirror0");
    // A clean workload says so.
    let clean = sim_to(dir.path(), "migrate");
    let (code, out, _) = run(hmmtrace().arg("report").arg(&clean).arg("--check"));
    assert_eq!(code, 0);
    assert!(out.contains("findings: none"), "{out}");
}

/// Every size the scenario validator accepts runs or is refused with exit 2 and the step's
/// position, never an abort: a device of 2^32 pages and a mapping of 2^36 cost what is
/// touched, and touching all of such a mapping is refused at once.
#[test]
fn scenarios_at_the_validators_limits_run_or_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = |touch: &str| {
        format!(
            "name = \"limits\"\n[[device]]\nname = \"huge\"\nkind = \"private\"\npages = 4294967296\n\
             [[process]]\nname = \"p\"\n\
             [[step]]\nop = \"mmap\"\nregion = \"r\"\npages = 68719476736\n\
             [[step]]\nop = \"open\"\ndevice = \"huge\"\n\
             [[step]]\nop = \"write\"\nregion = \"r\"\n{touch}\n\
             [[step]]\nop = \"migrate\"\nregion = \"r\"\ndevice = \"huge\"\ncount = 256\n\
             [[step]]\nop = \"munmap\"\nregion = \"r\"\n"
        )
    };
    let small = dir.path().join("small.toml");
    std::fs::write(&small, scenario("count = 256")).unwrap();
    let (code, out, err) = run(hmmtrace()
        .args(["sim", "--format", "json", "-s"])
        .arg(&small));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let migrated = v["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "migration")
        .map(|k| k["pages"].as_u64().unwrap());
    assert_eq!(migrated, Some(256));
    let all = dir.path().join("all.toml");
    std::fs::write(&all, scenario("")).unwrap();
    let (code, _, err) = run(hmmtrace().args(["sim", "-s"]).arg(&all));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("all.toml:15:") && err.contains("touches more than 33554432 pages"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn census_with_a_missing_symvers_is_bad_input_naming_the_path() {
    let (code, _, err) = run(hmmtrace().args([
        "census",
        "--duration",
        "1s",
        "--symvers",
        "/nonexistent/Module.symvers",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--symvers /nonexistent/Module.symvers"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Unmounts the tmpfs it holds when dropped, whatever the test did.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root to mount a small tmpfs; cargo xtask test runs it as root"]
fn sim_onto_a_full_disk_is_an_io_error_on_the_file_not_the_scenarios_and_keeps_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success(), "mount failed");
    let _mounted = Mounted(dir.path().to_path_buf());
    let path = dir.path().join("stream.hmt");
    let (code, _, err) = run(hmmtrace()
        .args(["sim", "--scenario", "gpu-stream", "-o"])
        .arg(&path));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    // Not blamed on the scenario: no step position, no 'bad input'.
    assert!(
        !err.contains("step failed") && !err.contains("<builtin"),
        "{err}"
    );
    let kept: u64 = err
        .split("keeps the ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of the events kept in: {err}"));
    assert!(kept > 0, "{err}");
    let (code, out, err) = run(hmmtrace().args(["report", "--format", "json"]).arg(&path));
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        json["events"], kept,
        "the file reads back with every event it said it kept"
    );
}

#[test]
fn an_output_that_fills_up_is_named_in_the_error_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.hmt");
    let (code, _, err) = run(hmmtrace()
        .args(["sim", "--scenario", "migrate_fault", "-o"])
        .arg(&path));
    assert_eq!(code, 0, "{err}");
    // /dev/full: every write fails with ENOSPC.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let (code, _, err) = run(hmmtrace().arg("export").arg(&path).stdout(full));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot write standard output: No space left on device"),
        "{err}"
    );
    let (code, _, err) =
        run(hmmtrace()
            .arg("export")
            .arg(&path)
            .args(["--format", "csv", "-o", "/dev/full"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot write /dev/full: No space left on device"),
        "{err}"
    );
}
