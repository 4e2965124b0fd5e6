//! Every size a scenario file may declare, at the validator's limits, either runs or is
//! refused with exit 2 (and its position) under an address-space limit of 4 GiB (`ulimit -v`):
//! never an abort, a panic or a backtrace. The release binary runs them (the debug one takes
//! minutes at these sizes): `cargo xtask test` passes it in `HMMTRACE_RELEASE_BIN`.

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use std::process::Command;

/// A scenario with one device of `device_pages` and one process running `steps` (TOML).
fn scenario(device_pages: u64, steps: &str) -> String {
    format!(
        "name = \"limits\"\n\
         [[device]]\nname = \"d\"\nkind = \"private\"\npages = {device_pages}\n\
         [[process]]\nname = \"p\"\n\
         {steps}"
    )
}

fn step(op: &str, rest: &str) -> String {
    format!("[[step]]\nop = \"{op}\"\n{rest}\n")
}

/// Runs `sim` on `text` under `ulimit -v 4 GiB`: (exit code, stderr).
fn sim_limited(bin: &str, name: &str, text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"ulimit -v 4194304 && exec "$0" sim --format json --scenario "$1" >/dev/null"#)
        .arg(bin)
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // A signal (an abort: SIGABRT) has no exit code.
    (out.status.code().unwrap_or(-1), err)
}

#[test]
#[ignore = "needs the release binary in HMMTRACE_RELEASE_BIN; cargo xtask test passes it"]
fn every_scenario_limit_runs_or_is_refused_within_4_gib() {
    let bin = std::env::var("HMMTRACE_RELEASE_BIN")
        .expect("HMMTRACE_RELEASE_BIN: the release hmmtrace (cargo xtask test sets it)");
    let max_live = 1u64 << 25;
    let region = |pages: u64| step("mmap", &format!("region = \"r\"\npages = {pages}"));
    let cases: Vec<(&str, String, i32, &str)> = vec![
        // The largest device and mapping declared, barely touched: memory follows the touch.
        (
            "declared",
            scenario(
                1 << 32,
                &[
                    region(1 << 36),
                    step("write", "region = \"r\"\ncount = 1024"),
                    step("munmap", "region = \"r\""),
                ]
                .concat(),
            ),
            0,
            "",
        ),
        // Every page the engine models, written, migrated to the device and read back.
        (
            "touched",
            scenario(
                1 << 32,
                &[
                    region(max_live / 2),
                    step("write", "region = \"r\""),
                    step("open", "device = \"d\""),
                    step("migrate", "region = \"r\"\ndevice = \"d\""),
                    step("read", "region = \"r\""),
                ]
                .concat(),
            ),
            0,
            "",
        ),
        // One page more than it models: refused at the step, before it runs.
        (
            "too_many",
            scenario(
                1 << 32,
                &[region(max_live + 1), step("write", "region = \"r\"")].concat(),
            ),
            2,
            "touches more than 33554432 pages",
        ),
        (
            "device_too_big",
            scenario((1 << 32) + 1, ""),
            2,
            "pages must be within 1..=2^32",
        ),
        (
            "mapping_too_big",
            scenario(1, &region((1 << 36) + 1)),
            2,
            "pages must be within 1..=2^36",
        ),
        // The most steps a scenario may run, and one more.
        (
            "steps",
            scenario(
                1,
                &step(
                    "repeat",
                    "times = 100000000\nsteps = [{ op = \"idle\", ns = 1 }]",
                ),
            ),
            0,
            "",
        ),
        (
            "too_many_steps",
            scenario(
                1,
                &step(
                    "repeat",
                    "times = 100000001\nsteps = [{ op = \"idle\", ns = 1 }]",
                ),
            ),
            2,
            "more than 100000000 steps",
        ),
        // The most idle time, and past it (the simulated clock cannot overflow).
        (
            "idle",
            scenario(1, &step("idle", &format!("ns = {}", 1u64 << 62))),
            0,
            "",
        ),
        (
            "too_much_idle",
            scenario(
                1,
                &[
                    step("idle", &format!("ns = {}", 1u64 << 62)),
                    step("idle", "ns = 1"),
                ]
                .concat(),
            ),
            2,
            "idles more than",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, text, want, says) in &cases {
        let (code, err) = sim_limited(&bin, name, text);
        let clean = !err.contains("panicked")
            && !err.contains("backtrace")
            && !err.contains("memory allocation");
        eprintln!("{name}: exit {code}: {}", err.lines().next().unwrap_or(""));
        if code != *want || !clean || !err.contains(says) {
            wrong.push(format!("{name}: exit {code} (want {want}), stderr: {err}"));
        }
        if *want == 2 && !err.contains(&format!("{name}.toml:")) {
            wrong.push(format!("{name}: the refusal names no position: {err}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
