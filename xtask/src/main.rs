//! Developer tasks: `setup` (toolchain bootstrap), `test` (the whole suite), `lint`, `demo`,
//! `bench`, `fuzz`, `soak`, `vm-kernel`, `vm-test`.
//!
//! Slow artefacts (bpf-linker) are built into a cache outside the repository, keyed by their
//! inputs, so a second run is fast and a fresh machine still builds them from nothing.

mod bench;
mod fuzz;
mod lint;
mod setup;
mod soak;
mod vm;

use std::process::{Command, ExitCode};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "hmmtrace's developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building the eBPF programs needs: the nightly toolchain's rust-src, and
    /// bpf-linker built against the nightly's own LLVM. Idempotent.
    Setup,
    /// Set up, then run every test: as root the VM checks and the kernel tests too, then
    /// cargo nextest.
    Test {
        /// Extra arguments for `cargo nextest run`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then run `hmmtrace demo` (release build) with these arguments.
    Demo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build (or find in the cache) the QEMU test kernel from Debian's linux-source package.
    VmKernel {
        /// Kernel version of the Debian source package (linux-source-VERSION), optionally
        /// `+modules` (test_hmm as a module).
        #[arg(long, default_value = "6.12")]
        source: String,
    },
    /// Boot the test kernel under QEMU with hmm-tests and hmmtrace, and check hmmtrace
    /// against the kernel's own HMM test driver.
    VmTest {
        /// Kernel version of the Debian source package, or `6.12+modules` for the variant with
        /// test_hmm as a loadable module (loaded and unloaded while a recording runs).
        #[arg(long, default_value = "6.12")]
        source: String,
        /// Hard limit for the guest, in seconds.
        #[arg(long, default_value_t = 900)]
        limit: u64,
    },
    /// Set up, then check every crate for its own target with the workspace lints (clippy,
    /// warnings as errors), formatting, and that builds print only real warnings.
    Lint,
    /// Set up, then measure every benchmark figure and write BENCHMARKS.md.
    Bench {
        /// A short pass that checks the benchmarks run (for CI); writes nothing.
        #[arg(long)]
        quick: bool,
        /// Only the figures whose name contains this (e.g. `kernel`, `engine`); writes nothing.
        #[arg(long)]
        only: Option<String>,
    },
    /// Run the cargo-fuzz targets (capture reader, scenario and dashboard parsers).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// The long checks: the engine at full rate through the TUI and the capture writer with
    /// its RSS sampled (must stay flat), then each fuzz target, for this many minutes each.
    Soak {
        #[arg(long, default_value_t = 10)]
        minutes: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run().map(|_| ()),
        Task::Test { args } => test(&args),
        Task::Demo { args } => demo(&args),
        Task::Bench { quick, only } => {
            setup::run().and_then(|_| bench::run(quick, only.as_deref()))
        }
        Task::Lint => setup::run().and_then(|_| lint::run()),
        Task::Fuzz { seconds } => setup::run().and_then(|_| fuzz::run(seconds)),
        Task::Soak { minutes } => setup::run().and_then(|_| soak::run(minutes)),
        Task::VmTest { source, limit } => setup::run()
            .and_then(|_| vm::test(&source, std::time::Duration::from_secs(limit)).map(drop)),
        Task::VmKernel { source } => {
            vm::kernel(&source).map(|k| println!("{}", k.bzimage.display()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `cmd`, failing with its description when it does not succeed.
pub fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// The workspace's root directory, whatever the directory `cargo xtask` was started from.
pub fn workspace_root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
}

/// Builds the `hmmtrace` binary in release mode; returns its path.
pub fn build_release_hmmtrace() -> anyhow::Result<std::path::PathBuf> {
    let root = workspace_root();
    run_cmd(Command::new("cargo").current_dir(root).args([
        "build",
        "--quiet",
        "--release",
        "--package",
        "hmmtrace",
    ]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from);
    Ok(target.join("release/hmmtrace"))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `program` is on the PATH.
pub fn have_on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts `cmd` in a detached `w` × `h` tmux session `name` on server `socket`.
pub fn tmux_session(socket: &str, name: &str, w: u16, h: u16, cmd: &str) -> anyhow::Result<()> {
    let (w, h) = (w.to_string(), h.to_string());
    tmux(
        socket,
        &["new-session", "-d", "-s", name, "-x", &w, "-y", &h, cmd],
    )
    .map(|_| ())
}

/// Runs tmux on its own server `socket` (so tests and benchmarks never touch a user's).
pub fn tmux(socket: &str, args: &[&str]) -> anyhow::Result<String> {
    let o = Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .output()
        .context("cannot run tmux (Debian package tmux)")?;
    anyhow::ensure!(
        o.status.success(),
        "tmux {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Seconds per fuzz target in `cargo xtask test`.
const FUZZ_SECONDS_IN_TEST: u64 = 20;

fn test(args: &[String]) -> anyhow::Result<()> {
    setup::run()?;
    let lint_failed = match lint::run() {
        Ok(()) => false,
        Err(e) => {
            eprintln!("xtask: lint FAILED: {e:#}");
            true
        }
    };
    // The VM checks first, so that nextest's summary is the run's last line; a failure is
    // reported now and fails the run after the unit tests have run too.
    let mut vm_capture = None;
    let vm_failed = if is_root() {
        let built_in = match vm::test("6.12", std::time::Duration::from_secs(900)) {
            Ok(capture) => {
                vm_capture = capture;
                false
            }
            Err(e) => {
                eprintln!("xtask: VM checks FAILED: {e:#}");
                true
            }
        };
        // test_hmm as a module, loaded and unloaded while a recording runs (issue 17).
        let modules = match vm::test("6.12+modules", std::time::Duration::from_secs(900)) {
            Ok(_) => false,
            Err(e) => {
                eprintln!("xtask: VM checks (modules variant) FAILED: {e:#}");
                true
            }
        };
        built_in || modules
    } else {
        eprintln!("xtask: not run: the VM checks (cargo xtask vm-test) need root to install qemu and the kernel source");
        false
    };
    // A short pass of every fuzz target (`cargo xtask soak` runs them long).
    let fuzz_failed = match fuzz::run(FUZZ_SECONDS_IN_TEST) {
        Ok(()) => false,
        Err(e) => {
            eprintln!("xtask: fuzzing FAILED: {e:#}");
            true
        }
    };
    // The benchmarks' short pass: they still run (figures come from `cargo xtask bench`).
    let bench_failed = match bench::run(true, None) {
        Ok(()) => false,
        Err(e) => {
            eprintln!("xtask: bench --quick FAILED: {e:#}");
            true
        }
    };
    let mut cmd = Command::new("cargo");
    // The default members: every crate but hmmtrace-ebpf, which only builds for BPF.
    cmd.args(["nextest", "run", "--no-fail-fast"]);
    if is_root() {
        // Tests that load eBPF programs are #[ignore]d by default because they need root.
        cmd.args(["--run-ignored", "all"]);
    } else {
        eprintln!(
            "xtask: not root, so the kernel tests (marked #[ignore = \"needs root...\"]) will be \
             listed as skipped; run `cargo xtask test` as root to include them"
        );
    }
    // The scenario-limit test runs the release binary (the debug one takes minutes there).
    cmd.env("HMMTRACE_RELEASE_BIN", crate::build_release_hmmtrace()?);
    if let Some(capture) = &vm_capture {
        // This run's kernel capture joins the committed ones in tests/consistency.rs.
        cmd.env("HMMTRACE_VM_CAPTURE", capture);
    }
    cmd.args(args);
    run_cmd(&mut cmd)?;
    if lint_failed || vm_failed || fuzz_failed || bench_failed {
        // Already reported above; keep nextest's summary as the last line.
        std::process::exit(1);
    }
    Ok(())
}

fn demo(args: &[String]) -> anyhow::Result<()> {
    setup::run()?;
    let mut cmd = Command::new("cargo");
    cmd.args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "hmmtrace",
        "--",
        "demo",
    ]);
    cmd.args(args);
    run_cmd(&mut cmd)
}
