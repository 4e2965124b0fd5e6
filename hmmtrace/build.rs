//! Compiles `hmmtrace-ebpf` for the BPF target (nightly + bpf-linker, via aya-build) so the
//! binary can embed the object with `include_bytes_aligned!`.

use std::{env, path::PathBuf};

use anyhow::{anyhow, Context as _};

fn main() -> anyhow::Result<()> {
    if env::var_os("CARGO_FEATURE_EBPF").is_none() {
        // No object: an empty file where it would be (the kernel module says so at run time).
        let out = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR")?).join("hmmtrace");
        std::fs::write(out, [])?;
        return Ok(());
    }
    // `cargo xtask setup` installs bpf-linker into a cache outside the repository and links it
    // here; put that on PATH so a plain `cargo build` finds it too.
    let bin = linker_bin_dir();
    println!("cargo:rerun-if-changed={}", bin.display());
    if which_bpf_linker().is_none() {
        if bin.join("bpf-linker").exists() {
            let path = env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![bin.clone()];
            dirs.extend(env::split_paths(&path));
            env::set_var("PATH", env::join_paths(dirs)?);
        } else {
            return Err(anyhow!(
                "bpf-linker is not installed: run `cargo xtask setup` first (it builds bpf-linker \
                 against the nightly toolchain's LLVM into {})",
                bin.display()
            ));
        }
    }

    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "hmmtrace-ebpf")
        .ok_or_else(|| anyhow!("hmmtrace-ebpf package not found in the workspace"))?;
    let root = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("hmmtrace-ebpf manifest has no parent directory"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
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

fn which_bpf_linker() -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|d| d.join("bpf-linker"))
        .find(|p| p.is_file())
}
