//! `cargo xtask setup`: the nightly toolchain's `rust-src`, and bpf-linker built against the
//! nightly's own LLVM (its `libLLVM.so.*`, through a prefix directory of symlinks), installed
//! into `<cache>/bpf-linker/<version>-llvm<major>-<nightly commit>/` and linked as
//! `<cache>/bin/bpf-linker`, where `hmmtrace/build.rs` looks for it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};

use crate::run_cmd;

/// The bpf-linker release hmmtrace builds with (0.13 supports LLVM 21 to 23).
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_MAJORS: [u32; 3] = [21, 22, 23];

/// `$HMMTRACE_CACHE`, `$XDG_CACHE_HOME/hmmtrace` or `~/.cache/hmmtrace`.
/// Kept in step with `hmmtrace/build.rs`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HMMTRACE_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("hmmtrace");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache/hmmtrace"),
        None => PathBuf::from("/tmp/hmmtrace-cache"),
    }
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Returns the directory holding `bpf-linker`.
pub fn run() -> anyhow::Result<PathBuf> {
    if !have("rustup") {
        bail!("rustup is missing: it is needed to install the nightly toolchain that builds the eBPF programs");
    }
    if !have("cc") {
        bail!(
            "a C compiler (cc) is missing: it is needed to build bpf-linker (apt-get install gcc)"
        );
    }
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if toolchains.lines().any(|l| l.starts_with("nightly-")) {
        say("nightly toolchain: present");
    } else {
        say("nightly toolchain: installing (rustup toolchain install nightly --profile minimal)");
        run_cmd(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let components = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if components.lines().any(|l| l.starts_with("rust-src")) {
        say("nightly rust-src: present");
    } else {
        say("nightly rust-src: installing");
        run_cmd(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }

    let vv = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let field = |name: &str| {
        vv.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let llvm =
        field("LLVM version:").context("`rustc +nightly -vV` does not state its LLVM version")?;
    let major: u32 = llvm
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .with_context(|| format!("cannot read LLVM version '{llvm}'"))?;
    if !LLVM_MAJORS.contains(&major) {
        bail!("the nightly toolchain uses LLVM {major}, but bpf-linker {BPF_LINKER_VERSION} supports LLVM {LLVM_MAJORS:?} only");
    }
    let commit = field("commit-hash:").unwrap_or_else(|| "unknown".into());
    let sysroot = PathBuf::from(
        output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?.trim(),
    );
    let libllvm = find_libllvm(&sysroot.join("lib"))?;

    let cache = cache_dir();
    let key = format!(
        "{BPF_LINKER_VERSION}-llvm{major}-{}",
        &commit[..commit.len().min(12)]
    );
    let root = cache.join("bpf-linker").join(&key);
    let linker = root.join("bin/bpf-linker");
    let works = Command::new(&linker)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        say(&format!(
            "bpf-linker {BPF_LINKER_VERSION} (llvm-{major}): cached in {}",
            root.display()
        ));
    } else {
        say(&format!(
            "bpf-linker {BPF_LINKER_VERSION} (llvm-{major}): building against {} (takes a minute or two)",
            libllvm.display()
        ));
        let started = Instant::now();
        // bpf-linker's build looks for libLLVM under $LLVM_PREFIX/lib, and the binary's RUNPATH
        // points there: link the nightly's library under both names it is looked up by.
        let prefix = root.join("llvm");
        let lib = prefix.join("lib");
        std::fs::create_dir_all(&lib)
            .with_context(|| format!("cannot create {}", lib.display()))?;
        for name in [
            "libLLVM.so".into(),
            libllvm.file_name().unwrap().to_os_string(),
        ] {
            let link = lib.join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&libllvm, &link)
                .with_context(|| format!("cannot link {}", link.display()))?;
        }
        run_cmd(
            Command::new("cargo")
                .args([
                    "install",
                    "bpf-linker",
                    "--locked",
                    "--force",
                    "--no-default-features",
                ])
                .args([
                    "--version",
                    BPF_LINKER_VERSION,
                    "--features",
                    &format!("llvm-{major}"),
                ])
                .arg("--root")
                .arg(&root)
                .env("LLVM_PREFIX", &prefix),
        )?;
        say(&format!(
            "bpf-linker: built in {:.0}s into {}",
            started.elapsed().as_secs_f64(),
            root.display()
        ));
    }
    ensure_tool("bpftool", "bpftool")?;
    ensure_tool("tmux", "tmux")?;
    ensure_tool("chromium", "chromium")?;
    ensure_tool("promtool", "prometheus")?;
    let bin = cache.join("bin");
    std::fs::create_dir_all(&bin)?;
    let link = bin.join("bpf-linker");
    if std::fs::read_link(&link).ok().as_deref() != Some(linker.as_path()) {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&linker, &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
        say(&format!(
            "linked {} -> {}",
            link.display(),
            linker.display()
        ));
    }
    Ok(bin)
}

/// Test tools from Debian's packages: bpftool is how the kernel tests check, independently
/// of hmmtrace, what is loaded; tmux is the real terminal the TUI tests drive; chromium draws
/// the HTML report for its screenshot test; prometheus (and promtool) check `serve`. As root a
/// missing one is installed; otherwise its absence is reported (the tests that need it fail
/// and say so).
fn ensure_tool(program: &str, package: &str) -> anyhow::Result<()> {
    // On the PATH, not `--version`: tmux answers that with an error.
    if crate::have_on_path(program) {
        say(&format!("{program}: present"));
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !have("apt-get") {
        say(&format!(
            "{program}: missing (apt-get install {package}); the tests that need it will fail"
        ));
        return Ok(());
    }
    say(&format!("{program}: installing {package} with apt-get"));
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .status()
    };
    if !install().is_ok_and(|s| s.success()) {
        run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
        run_cmd(Command::new("apt-get").args(["install", "-y", "-qq", package]))?;
    }
    Ok(())
}

/// The nightly's LLVM shared library, `libLLVM.so.<ver>-rust-<ver>` or `libLLVM-<ver>-rust-*.so`.
fn find_libllvm(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.ends_with(".so"))
        })
        .filter(|p| !p.is_symlink())
        .collect();
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no libLLVM shared library in {}: the nightly toolchain looks incomplete",
            dir.display()
        )
    })
}

fn say(msg: &str) {
    eprintln!("setup: {msg}");
}
