//! Compiles `hmmtrace-ebpf` for the BPF target (nightly + bpf-linker) so the binary can embed
//! the object with `include_bytes_aligned!`.
//!
//! Written here rather than with `aya_build::build_ebpf`: aya-build 0.2.0 forwards every line
//! the nested cargo prints as a `cargo:warning`, so each build of hmmtrace showed about 60
//! `Compiling ...` lines as warnings and real ones drowned in them. This runs the same nested
//! build (the flags aya-build uses) and forwards only the compiler's warnings and errors, and
//! everything when the build fails.

use std::io::{BufReader, Read as _};
use std::process::{Command, Stdio};
use std::{env, path::PathBuf};

use anyhow::{anyhow, bail, Context as _};
use cargo_metadata::{Artifact, Message};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR")?);
    if env::var_os("CARGO_FEATURE_EBPF").is_none() {
        // No object: an empty file where it would be (the kernel module says so at run time).
        std::fs::write(out_dir.join("hmmtrace"), [])?;
        return Ok(());
    }
    put_bpf_linker_on_path()?;
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let root = |name: &str| -> anyhow::Result<PathBuf> {
        let p = metadata
            .packages
            .iter()
            .find(|p| p.name.as_str() == name)
            .ok_or_else(|| anyhow!("{name} not found in the workspace"))?;
        Ok(p.manifest_path
            .parent()
            .ok_or_else(|| anyhow!("{name}'s manifest has no directory"))?
            .into())
    };
    let ebpf = root("hmmtrace-ebpf")?;
    // The object depends on the programs and on the wire format they share with us.
    println!("cargo:rerun-if-changed={}", ebpf.display());
    println!(
        "cargo:rerun-if-changed={}",
        root("hmmtrace-common")?.display()
    );

    let target = match env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
        Ok("little") => "bpfel-unknown-none",
        Ok("big") => "bpfeb-unknown-none",
        other => bail!("unsupported target endianness {other:?}"),
    };
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH")?;
    // aya-ebpf names riscv64 without its extension letters.
    let arch = if arch.starts_with("riscv64") {
        "riscv64".to_string()
    } else {
        arch
    };
    let mut cmd = match which("rustup") {
        Some(rustup) => {
            let mut c = Command::new(rustup);
            c.args(["run", "nightly", "cargo"]);
            c
        }
        None => Command::new("cargo"),
    };
    cmd.args([
        "build",
        "--package",
        "hmmtrace-ebpf",
        "--bins",
        "--message-format=json",
        "--release",
        "--target",
        target,
        "-Z",
        "build-std=core",
        "--target-dir",
    ])
    .arg(out_dir.join("ebpf-target"))
    .env(
        "CARGO_ENCODED_RUSTFLAGS",
        [
            format!("--cfg=bpf_target_arch=\"{arch}\""),
            "-Cdebuginfo=2".into(),
            "-Clink-arg=--btf".into(),
        ]
        .join("\x1f"),
    )
    // The nested build must use the nightly toolchain, not this build's.
    .env_remove("RUSTC")
    .env_remove("RUSTC_WORKSPACE_WRAPPER")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("cannot run {cmd:?}"))?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut object = None;
    let stdout = BufReader::new(child.stdout.take().context("stdout")?);
    for message in Message::parse_stream(stdout) {
        match message.context("the nested cargo's JSON")? {
            Message::CompilerArtifact(Artifact {
                executable: Some(exe),
                target,
                ..
            }) if target.name == "hmmtrace" => object = Some(exe.into_std_path_buf()),
            // Warnings and errors; notes and progress are not forwarded.
            Message::CompilerMessage(m) => {
                for line in m.message.rendered.unwrap_or_default().lines() {
                    println!("cargo:warning={line}");
                }
            }
            _ => {}
        }
    }
    let status = child.wait()?;
    let stderr = stderr
        .join()
        .map_err(|_| anyhow!("the stderr reader panicked"))?;
    for line in stderr.lines() {
        // On success, cargo's own warnings only; on failure, everything it said.
        if !status.success() || line.trim_start().starts_with("warning") {
            println!("cargo:warning={line}");
        }
    }
    if !status.success() {
        bail!("building the eBPF programs failed ({status}): {cmd:?}");
    }
    let object = object.context("the nested build produced no hmmtrace object")?;
    std::fs::copy(&object, out_dir.join("hmmtrace"))
        .with_context(|| format!("cannot copy {}", object.display()))?;
    Ok(())
}

/// `cargo xtask setup` installs bpf-linker into a cache outside the repository; put it on PATH
/// so a plain `cargo build` finds it too.
fn put_bpf_linker_on_path() -> anyhow::Result<()> {
    let bin = linker_bin_dir();
    println!("cargo:rerun-if-changed={}", bin.display());
    if which("bpf-linker").is_some() {
        return Ok(());
    }
    if !bin.join("bpf-linker").exists() {
        bail!(
            "bpf-linker is not installed: run `cargo xtask setup` first (it builds bpf-linker \
             against the nightly toolchain's LLVM into {})",
            bin.display()
        );
    }
    let path = env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin];
    dirs.extend(env::split_paths(&path));
    env::set_var("PATH", env::join_paths(dirs)?);
    Ok(())
}

/// `$HMMTRACE_CACHE` or `$XDG_CACHE_HOME/hmmtrace` or `~/.cache/hmmtrace`, then `bin/`.
/// Kept in step with `xtask::cache::dir`.
fn linker_bin_dir() -> PathBuf {
    println!("cargo:rerun-if-env-changed=HMMTRACE_CACHE");
    let base = env::var_os("HMMTRACE_CACHE")
        .map(PathBuf::from)
        .or_else(|| env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("hmmtrace")))
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hmmtrace")))
        .unwrap_or_else(|| PathBuf::from("/tmp/hmmtrace-cache"));
    base.join("bin")
}

/// `program` on the PATH.
fn which(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
