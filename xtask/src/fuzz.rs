//! `cargo xtask fuzz [--seconds N]`: the cargo-fuzz targets in `fuzz/` (capture reader,
//! scenario parser, dashboard parser), each run for N seconds on a corpus seeded from the
//! repository's own scenarios, dashboards and a real capture. cargo-fuzz is built once into the
//! cache. CI runs a short pass in `cargo xtask test`; `cargo xtask soak` a long one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context as _;

use crate::setup::cache_dir;
use crate::{run_cmd, workspace_root};

const CARGO_FUZZ_VERSION: &str = "0.12.0";
pub const TARGETS: [&str; 3] = ["capture_reader", "scenario_parser", "dashboard_parser"];

fn say(msg: &str) {
    eprintln!("fuzz: {msg}");
}

/// cargo-fuzz's `bin/` directory, building it into the cache the first time.
fn cargo_fuzz() -> anyhow::Result<PathBuf> {
    let dir = cache_dir().join("cargo-fuzz").join(CARGO_FUZZ_VERSION);
    let bin = dir.join("bin");
    if bin.join("cargo-fuzz").exists() {
        say(&format!(
            "cargo-fuzz {CARGO_FUZZ_VERSION}: cached in {}",
            dir.display()
        ));
        return Ok(bin);
    }
    say(&format!(
        "cargo-fuzz {CARGO_FUZZ_VERSION}: building into {}",
        dir.display()
    ));
    run_cmd(
        Command::new("cargo")
            .args([
                "install",
                "cargo-fuzz",
                "--locked",
                "--version",
                CARGO_FUZZ_VERSION,
                "--root",
            ])
            .arg(&dir),
    )?;
    Ok(bin)
}

/// A corpus directory per target, outside the repository, seeded from its files.
fn corpus(target: &str, capture: &Path) -> anyhow::Result<PathBuf> {
    let dir = cache_dir().join("fuzz-corpus").join(target);
    std::fs::create_dir_all(&dir)?;
    let seeds: Vec<PathBuf> = match target {
        "capture_reader" => vec![capture.to_path_buf()],
        "scenario_parser" => std::fs::read_dir(workspace_root().join("hmmtrace/scenarios"))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect(),
        _ => std::fs::read_dir(workspace_root().join("dashboards"))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect(),
    };
    for s in seeds {
        std::fs::copy(
            &s,
            dir.join(format!("seed-{}", s.file_name().unwrap().to_string_lossy())),
        )?;
    }
    Ok(dir)
}

/// Runs every target for `seconds`; a crash fails naming the target and its artifact.
pub fn run(seconds: u64) -> anyhow::Result<()> {
    let bin = cargo_fuzz()?;
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    // A small real capture for the reader's corpus.
    let hmmtrace = crate::build_release_hmmtrace()?;
    let capture =
        std::env::temp_dir().join(format!("hmmtrace-fuzz-seed-{}.hmt", std::process::id()));
    run_cmd(
        Command::new(&hmmtrace)
            .args(["sim", "-s", "migrate_fault", "-o"])
            .arg(&capture)
            .stdout(std::process::Stdio::null()),
    )?;
    let mut failed = Vec::new();
    for target in TARGETS {
        let corpus = corpus(target, &capture)?;
        say(&format!("{target}: {seconds} s"));
        let started = Instant::now();
        let status = Command::new("cargo")
            .current_dir(workspace_root())
            .env("PATH", &path)
            // Instrumented builds kept across runs (and clean clones), like the kernel's.
            .env("CARGO_TARGET_DIR", cache_dir().join("fuzz-target"))
            .args(["+nightly", "fuzz", "run", target])
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(["-rss_limit_mb=2048", "-print_final_stats=1"])
            .status()
            .with_context(|| format!("cannot run cargo fuzz for {target}"))?;
        say(&format!(
            "{target}: {} after {:.0} s",
            if status.success() {
                "no crash"
            } else {
                "FAILED"
            },
            started.elapsed().as_secs_f64()
        ));
        if !status.success() {
            failed.push(target);
        }
    }
    let _ = std::fs::remove_file(&capture);
    anyhow::ensure!(
        failed.is_empty(),
        "fuzz targets found crashes (artifacts under fuzz/artifacts/): {}",
        failed.join(", ")
    );
    Ok(())
}
