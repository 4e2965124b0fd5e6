//! The QEMU test bed, one module per job: [`packages`] (Debian packages), [`kernel`] (the
//! kernel cache), [`image`] (the guest image), [`checks`] (what the guest printed, checked).
//! `vm-kernel` builds (or finds) the kernel; `vm-test` builds the image, boots it under TCG and
//! checks the output.

pub mod checks;
mod image;
mod kernel;
mod packages;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

pub use kernel::kernel;
pub use packages::ensure_packages;

fn say(msg: &str) {
    eprintln!("vm: {msg}");
}

/// `cargo xtask vm-test`: boots the test kernel with its image, runs `xtask/vm/init`, and
/// checks what it printed. Returns where it saved the guest's capture of the deterministic
/// workload, which `tests/consistency.rs` checks on the host (`HMMTRACE_VM_CAPTURE`); the
/// modules variant (`6.12+modules`) runs `vm/init-modules` instead, which saves none.
pub fn test(version: &str, limit: Duration) -> anyhow::Result<Option<PathBuf>> {
    run(version, limit, false)
}

/// As [`test`], and the guest also times hmm-tests untraced, recorded and aggregated (three
/// runs each, `=== timing` in the serial log): for `cargo xtask bench`.
pub fn test_and_time(version: &str, limit: Duration) -> anyhow::Result<PathBuf> {
    run(version, limit, true)?.context("the modules variant has no timing run")
}

fn run(version: &str, limit: Duration, timing: bool) -> anyhow::Result<Option<PathBuf>> {
    let k = kernel(version)?;
    let image = image::build(&k, timing)?;
    say(&format!(
        "booting under TCG (limit {}s); serial console: {}",
        limit.as_secs(),
        image.serial.display()
    ));
    let mut qemu = Command::new("timeout");
    qemu.arg(limit.as_secs().to_string())
        .arg("qemu-system-x86_64");
    qemu.args([
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        "2G",
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
    ]);
    qemu.arg("-kernel")
        .arg(&k.bzimage)
        .arg("-initrd")
        .arg(&image.initramfs);
    // Two device-coherent dmirror devices over 512 MiB of RAM the kernel leaves alone; `quiet`
    // keeps the drivers' informational messages out of the console output that is parsed
    // (the kernel log is checked separately).
    qemu.args([
        "-append",
        &format!(
            "console=ttyS0 quiet panic=-1 memmap=512M$0x40000000 test_hmm.spm_addr_dev0=0x40000000 test_hmm.spm_addr_dev1=0x50000000{}",
            if timing { " hmmtrace_timing=1" } else { "" }
        ),
    ]);
    qemu.stdin(Stdio::null());
    let started = Instant::now();
    logged(qemu, &image.serial, "qemu")?;
    let out = std::fs::read_to_string(&image.serial)?.replace('\r', "");
    say(&format!(
        "guest ran {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    if k.modules {
        checks::check_modules(&out, &k.source)?;
        return Ok(None);
    }
    checks::check(&out, &image.engine_rows)?;
    let capture = image.serial.with_file_name("workload.hmt");
    std::fs::write(&capture, checks::workload_capture(&out)?)?;
    say(&format!(
        "the guest's workload capture: {}",
        capture.display()
    ));
    Ok(Some(capture))
}

/// Runs `cmd` with its output appended to `log`, printing progress every 20 s; on failure the
/// log's last lines are part of the error.
fn logged(mut cmd: Command, log: &Path, what: &str) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut child = cmd
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("cannot run {what}"))?;
    let started = Instant::now();
    let mut next = Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= next {
            let lines = std::fs::read_to_string(log).map_or(0, |t| t.lines().count());
            say(&format!(
                "{what}: {}s, {lines} lines of log",
                started.elapsed().as_secs()
            ));
            next += Duration::from_secs(20);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{what} failed ({status}); last lines of {}:\n{}",
            log.display(),
            tail.join("\n")
        );
    }
    Ok(())
}
