//! The kernel cache: an HMM-capable kernel built from a Debian `linux-source-X.Y` package and
//! `vm/kernel.config` (plus a per-version fragment), cached outside the repository under a key
//! of the package version and the fragment's contents.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;

use super::packages::{ensure_packages, package_version};
use super::{logged, say};
use crate::have_on_path as have;
use crate::run_cmd;
use crate::setup::cache_dir;

/// The config fragment merged onto tinyconfig.
const FRAGMENT: &str = include_str!("../../vm/kernel.config");

/// The fragment for one source version: `kernel.config` plus that version's own additions,
/// where its Kconfig dependencies differ, plus the modules variant's (later lines win).
fn fragment(version: &str, modules: bool) -> String {
    let extra = match version {
        "6.1" => include_str!("../../vm/kernel-6.1.config"),
        _ => "",
    };
    let modules = if modules {
        include_str!("../../vm/kernel-modules.config")
    } else {
        ""
    };
    format!("{FRAGMENT}{extra}{modules}")
}

/// `--source`: a Debian source version (`6.12`, `6.1`), and `+modules` for the variant with
/// test_hmm as a loadable module.
pub fn parse_variant(source: &str) -> anyhow::Result<(&str, bool)> {
    let (version, modules) = match source.split_once('+') {
        Some((v, "modules")) => (v, true),
        Some((_, other)) => bail!("unknown kernel variant '+{other}' (the one there is: +modules)"),
        None => (source, false),
    };
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        bail!("--source takes a kernel version such as 6.12 or 6.1 (optionally +modules), not '{source}'");
    }
    Ok((version, modules))
}

/// Debian packages the kernel build needs, by the command that shows each is there.
const BUILD_TOOLS: &[(&str, &str)] = &[
    ("flex", "flex"),
    ("bison", "bison"),
    ("bc", "bc"),
    ("pahole", "dwarves"),
    ("make", "make"),
    ("gcc", "gcc"),
];

/// Where a built kernel lives: its build directory (bzImage, headers, vmlinux).
pub struct Kernel {
    pub source: PathBuf,
    pub build: PathBuf,
    pub bzimage: PathBuf,
    /// test_hmm is a module (`lib/test_hmm.ko` in the build directory), not built in.
    pub modules: bool,
}

/// Builds (or finds in the cache) the kernel for Debian's `linux-source-<version>`, or its
/// modules variant (`6.12+modules`).
pub fn kernel(source_arg: &str) -> anyhow::Result<Kernel> {
    let (version, modules) = parse_variant(source_arg)?;
    let package = format!("linux-source-{version}");
    let mut packages: Vec<&str> = BUILD_TOOLS.iter().map(|(_, p)| *p).collect();
    packages.extend(["libelf-dev", "libssl-dev", "xz-utils", package.as_str()]);
    ensure_packages(&packages)?;
    for (tool, pkg) in BUILD_TOOLS {
        anyhow::ensure!(have(tool), "{tool} is missing after installing {pkg}");
    }
    let pkg_version = package_version(&package)?;
    let fragment_text = fragment(version, modules);
    let key = format!(
        "{:08x}",
        crc32fast::hash(format!("{pkg_version}\n{fragment_text}").as_bytes())
    );
    let vm = cache_dir().join("vm");
    let source = vm.join(format!("src-{pkg_version}")).join(&package);
    let build = vm.join(format!("build-{}-{key}", source_arg.replace('+', "-")));
    let bzimage = build.join("arch/x86/boot/bzImage");
    let done = build.join(".hmmtrace-built");
    if done.exists() && bzimage.exists() {
        say(&format!(
            "kernel {pkg_version} (config {key}): cached in {}",
            build.display()
        ));
        return Ok(Kernel {
            source,
            build,
            bzimage,
            modules,
        });
    }
    if !source.join("Makefile").exists() {
        let tarball = PathBuf::from(format!("/usr/src/{package}.tar.xz"));
        anyhow::ensure!(
            tarball.exists(),
            "{} is missing although {package} is installed",
            tarball.display()
        );
        let parent = source.parent().unwrap();
        std::fs::create_dir_all(parent)?;
        say(&format!("unpacking {}", tarball.display()));
        run_cmd(
            Command::new("tar")
                .arg("xf")
                .arg(&tarball)
                .arg("-C")
                .arg(parent),
        )?;
    }
    std::fs::create_dir_all(&build)?;
    let fragment = build.join("hmmtrace.config");
    std::fs::write(&fragment, &fragment_text)?;
    let make = |args: &[&str]| {
        let mut c = Command::new("make");
        c.arg("-C")
            .arg(&source)
            .arg(format!("O={}", build.display()))
            .args(args);
        c
    };
    let log = build.join("build.log");
    say(&format!(
        "configuring (tinyconfig + {})",
        "xtask/vm/kernel.config"
    ));
    logged(make(&["tinyconfig"]), &log, "make tinyconfig")?;
    logged(
        {
            let mut c = Command::new(source.join("scripts/kconfig/merge_config.sh"));
            c.current_dir(&build).args(["-m", ".config"]).arg(&fragment);
            c
        },
        &log,
        "merge_config.sh",
    )?;
    logged(make(&["olddefconfig"]), &log, "make olddefconfig")?;
    check_config(&build.join(".config"), &fragment_text)?;
    let jobs = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .to_string();
    say(&format!(
        "building bzImage with {jobs} jobs (about 4 minutes on 2 cores); log: {}",
        log.display()
    ));
    let targets: &[&str] = if modules {
        &["bzImage", "modules"]
    } else {
        &["bzImage"]
    };
    logged(
        make(&[&["-j", jobs.as_str()][..], targets].concat()),
        &log,
        "make bzImage",
    )?;
    std::fs::write(&done, &pkg_version)?;
    say(&format!("kernel built: {}", bzimage.display()));
    Ok(Kernel {
        source,
        build,
        bzimage,
        modules,
    })
}

/// Every option the fragment sets must have survived olddefconfig (a dependency missing from
/// the fragment silently drops an option otherwise). Where the fragment sets one twice, the
/// later line is the one merged.
fn check_config(config: &Path, fragment: &str) -> anyhow::Result<()> {
    let have = std::fs::read_to_string(config)?;
    let set: Vec<&str> = fragment
        .lines()
        .filter(|l| l.starts_with("CONFIG_"))
        .collect();
    let option = |l: &str| l.split('=').next().unwrap_or(l).to_string();
    let lost: Vec<&str> = set
        .iter()
        .enumerate()
        .filter(|(i, l)| !set[i + 1..].iter().any(|later| option(later) == option(l)))
        .map(|(_, l)| *l)
        .filter(|l| !have.lines().any(|h| h == *l))
        .collect();
    if !lost.is_empty() {
        bail!(
            "the kernel config dropped options the fragment sets (a dependency is missing): {}",
            lost.join(" ")
        );
    }
    Ok(())
}
