//! The guest image: an initramfs with busybox, the kernel's own `hmm-tests` selftest and
//! `vm/workload.c` (both built statically from the same source tree), hmmtrace and its
//! libraries, and `vm/init`; and the other side of check 2, the reference engine's export of
//! `vm/workload.toml`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;

use super::kernel::Kernel;
use super::logged;
use super::say;
use crate::run_cmd;

/// What a guest boots from, and what its output is checked against.
pub struct Image {
    pub initramfs: PathBuf,
    /// Where the guest's serial console is logged.
    pub serial: PathBuf,
    /// `hmmtrace export` (JSONL) of the engine running the workload's twin scenario.
    pub engine_rows: String,
}

/// Builds the image for kernel `k` in its build directory; `with_bpftrace` adds the host's
/// bpftrace and its libraries (about 200 MB: for `cargo xtask bench`'s timing only).
pub fn build(k: &Kernel, with_bpftrace: bool) -> anyhow::Result<Image> {
    let work = k.build.join("vm-test");
    let _ = std::fs::remove_dir_all(&work);
    let root = work.join("initramfs");
    for d in ["bin", "proc", "sys", "dev", "tmp", "lib", "lib64"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let log = work.join("build.log");
    let headers = k.build.join("usr-headers");
    if !headers.join("include/linux/mman.h").exists() {
        say("installing kernel headers for hmm-tests");
        let mut c = Command::new("make");
        c.arg("-C")
            .arg(&k.source)
            .arg(format!("O={}", k.build.display()));
        c.arg(format!("INSTALL_HDR_PATH={}", headers.display()))
            .arg("headers_install");
        logged(c, &log, "make headers_install")?;
    }
    say("building hmm-tests (static) from the same source tree");
    let selftests = k.source.join("tools/testing/selftests");
    let mut gcc = Command::new("gcc");
    gcc.args(["-static", "-O2", "-o"])
        .arg(root.join("hmm-tests"));
    gcc.arg("-I")
        .arg(&k.source)
        .arg("-I")
        .arg(&selftests)
        .arg("-isystem")
        .arg(headers.join("include"));
    gcc.arg("-I")
        .arg(k.source.join("tools/include"))
        // selftests/vm was renamed selftests/mm in 6.3.
        .arg(
            ["mm", "vm"]
                .iter()
                .map(|d| selftests.join(d).join("hmm-tests.c"))
                .find(|p| p.exists())
                .ok_or_else(|| anyhow::anyhow!("no hmm-tests.c in {}", selftests.display()))?,
        );
    gcc.args(["-lrt", "-lpthread", "-lm"]);
    logged(gcc, &log, "gcc hmm-tests.c")?;
    // The workloads the checks know the answers for: the deterministic one, and the two the
    // findings must find (thrashing, a retry storm).
    for (name, source) in [
        ("workload", include_str!("../../vm/workload.c")),
        ("pingpong", include_str!("../../vm/pingpong.c")),
        ("retry", include_str!("../../vm/retry.c")),
    ] {
        let c = work.join(format!("{name}.c"));
        std::fs::write(&c, source)?;
        let mut gcc = Command::new("gcc");
        gcc.args(["-static", "-O2", "-o"]).arg(root.join(name));
        gcc.arg("-I")
            .arg(&k.source)
            .arg("-isystem")
            .arg(headers.join("include"))
            .arg(&c)
            .arg("-lpthread");
        logged(gcc, &log, &format!("gcc {name}.c"))?;
    }
    say("building hmmtrace (release)");
    let bin = crate::build_release_hmmtrace()?;
    std::fs::copy(&bin, root.join("hmmtrace"))?;
    copy_libraries(&bin, &root)?;
    if with_bpftrace {
        if !Path::new("/usr/bin/bpftrace").exists() {
            super::ensure_packages(&["bpftrace"])?;
        }
        std::fs::copy("/usr/bin/bpftrace", root.join("bpftrace"))?;
        copy_libraries(Path::new("/usr/bin/bpftrace"), &root)?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))?;
    if k.modules {
        // test_hmm as the kernel built it, and the census check's out-of-tree module built
        // against the same tree (`make M=`), as a driver vendor builds theirs; where a
        // distribution puts them, with the build's Module.symvers (what the census reads).
        let release = std::fs::read_to_string(k.build.join("include/config/kernel.release"))
            .context("the modules variant's build has no kernel.release")?;
        let lib = root.join("lib/modules").join(release.trim());
        std::fs::create_dir_all(lib.join("extra"))?;
        std::fs::create_dir_all(lib.join("build"))?;
        std::fs::copy(
            k.build.join("lib/test_hmm.ko"),
            lib.join("extra/test_hmm.ko"),
        )
        .context("the modules variant's build has no lib/test_hmm.ko")?;
        std::fs::copy(
            k.build.join("Module.symvers"),
            lib.join("build/Module.symvers"),
        )?;
        let oot = work.join("census_probe");
        std::fs::create_dir_all(&oot)?;
        std::fs::write(
            oot.join("census_probe.c"),
            include_str!("../../vm/census_probe.c"),
        )?;
        std::fs::write(oot.join("Kbuild"), "obj-m := census_probe.o\n")?;
        let mut make = Command::new("make");
        make.arg("-C")
            .arg(&k.build)
            .arg(format!("M={}", oot.display()))
            .arg("modules");
        logged(make, &log, "make M=census_probe modules")?;
        std::fs::copy(
            oot.join("census_probe.ko"),
            lib.join("extra/census_probe.ko"),
        )?;
    }
    let init = root.join("init");
    std::fs::write(
        &init,
        if k.modules {
            include_str!("../../vm/init-modules")
        } else {
            include_str!("../../vm/init")
        },
    )?;
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let cpio = work.join("initramfs.cpio.gz");
    run_cmd(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
        root.display(),
        cpio.display()
    )))?;

    // Check 2's other side: the reference engine on workload.c's twin scenario.
    let twin = work.join("workload.toml");
    std::fs::write(&twin, include_str!("../../vm/workload.toml"))?;
    let engine_capture = work.join("engine-workload.hmt");
    run_cmd(
        Command::new(&bin)
            .args(["sim", "--format", "json", "--scenario"])
            .arg(&twin)
            .arg("-o")
            .arg(&engine_capture)
            .stdout(Stdio::null()),
    )?;
    let rows = Command::new(&bin)
        .arg("export")
        .arg(&engine_capture)
        .output()?;
    anyhow::ensure!(
        rows.status.success(),
        "hmmtrace export of the engine's capture failed"
    );
    let engine_rows = String::from_utf8(rows.stdout)?;
    Ok(Image {
        initramfs: cpio,
        serial: work.join("serial.log"),
        engine_rows,
    })
}

/// Copies the shared libraries `bin` needs (per ldd) into the initramfs.
fn copy_libraries(bin: &Path, root: &Path) -> anyhow::Result<()> {
    let out = Command::new("ldd").arg(bin).output()?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = line.split_whitespace().find(|w| w.starts_with('/'));
        if let Some(p) = path {
            let dst = root.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(dst.parent().unwrap())?;
            std::fs::copy(p, &dst).with_context(|| format!("cannot copy {p}"))?;
        }
    }
    Ok(())
}
