//! `cargo xtask lint`: every crate checked for its own target with the workspace lints
//! (`[workspace.lints]` in Cargo.toml), warnings as errors, plus formatting, and a build that
//! prints nothing but real warnings:
//!
//! - the host crates (hmmtrace, hmmtrace-common, xtask), every target, with clippy;
//! - hmmtrace-ebpf for the BPF target (nightly, `-Z build-std=core`: the host build of a
//!   `no_std` program with its own panic handler cannot link, which is why it is not a default
//!   member);
//! - the fuzz targets (their own nightly workspace);
//! - no `warning: hmmtrace@...` from hmmtrace's build script: it forwards the nested eBPF
//!   build's compiler warnings only, so any such line is a real warning.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use crate::{run_cmd, workspace_root};

fn say(msg: &str) {
    eprintln!("lint: {msg}");
}

pub fn run() -> anyhow::Result<()> {
    let root = workspace_root();
    say("formatting");
    run_cmd(
        Command::new("cargo")
            .current_dir(root)
            .args(["fmt", "--all", "--check"]),
    )?;
    run_cmd(Command::new("cargo").current_dir(root).args([
        "fmt",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--check",
    ]))?;

    say("host crates, every target (clippy)");
    let forwarded = clippy_scanning(Command::new("cargo").current_dir(root).args([
        "clippy",
        "--workspace",
        "--exclude",
        "hmmtrace-ebpf",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    if !forwarded.is_empty() {
        bail!(
            "hmmtrace's build script forwarded {} warning line(s): the eBPF build warns:\n{}",
            forwarded.len(),
            forwarded.join("\n")
        );
    }

    say("hmmtrace-ebpf for the BPF target (clippy, nightly)");
    run_cmd(
        Command::new("cargo")
            .current_dir(root.join("hmmtrace-ebpf"))
            .args([
                "+nightly",
                "clippy",
                "--package",
                "hmmtrace-ebpf",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--locked",
                "--target-dir",
            ])
            .arg(root.join("target/lint-bpf"))
            .args(["--", "-D", "warnings"])
            // As hmmtrace's build script builds it (see hmmtrace/build.rs).
            .env(
                "CARGO_ENCODED_RUSTFLAGS",
                format!("--cfg=bpf_target_arch=\"{}\"", std::env::consts::ARCH),
            ),
    )?;

    say("fuzz targets (clippy, nightly)");
    run_cmd(
        Command::new("cargo")
            .current_dir(root)
            .args([
                "+nightly",
                "clippy",
                "--manifest-path",
                "fuzz/Cargo.toml",
                "--locked",
                "--target-dir",
            ])
            .arg(root.join("target/lint-fuzz"))
            .args(["--", "-D", "warnings"]),
    )?;
    say("clean");
    Ok(())
}

/// Runs `cmd` with its stderr passed through; fails if it fails; returns the lines hmmtrace's
/// build script forwarded as warnings.
fn clippy_scanning(cmd: &mut Command) -> anyhow::Result<Vec<String>> {
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let stderr = BufReader::new(child.stderr.take().context("stderr")?);
    let mut forwarded = Vec::new();
    for line in stderr.lines() {
        let line = line?;
        eprintln!("{line}");
        if line.starts_with("warning: hmmtrace@") {
            forwarded.push(line);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(forwarded)
}
