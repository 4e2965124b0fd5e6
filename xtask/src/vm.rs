//! The QEMU test bed: `vm-kernel` builds an HMM-capable kernel from a Debian
//! `linux-source-X.Y` package and `vm/kernel.config`, cached outside the repository under a key
//! of the package version and the fragment's contents.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::run_cmd;
use crate::setup::cache_dir;

/// The config fragment merged onto tinyconfig.
const FRAGMENT: &str = include_str!("../vm/kernel.config");

/// The fragment for one source version: `kernel.config` plus that version's own additions,
/// where its Kconfig dependencies differ.
fn fragment(version: &str) -> String {
    let extra = match version {
        "6.1" => include_str!("../vm/kernel-6.1.config"),
        _ => "",
    };
    format!("{FRAGMENT}{extra}")
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

fn say(msg: &str) {
    eprintln!("vm: {msg}");
}

use crate::{have_on_path as have, is_root};

/// Installs Debian packages that are missing (as root), or says which are.
pub fn ensure_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg")
                .args(["-s", p])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "these Debian packages are missing and only root can install them: {}",
            missing.join(" ")
        );
    }
    say(&format!("installing {}", missing.join(" ")));
    let install = |pkgs: &[&str]| {
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(pkgs)
            .status()
    };
    if !install(&missing).is_ok_and(|s| s.success()) {
        run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
        run_cmd(
            Command::new("apt-get")
                .args(["install", "-y", "-qq"])
                .args(&missing),
        )?;
    }
    Ok(())
}

/// The version of an installed Debian package.
fn package_version(package: &str) -> anyhow::Result<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()?;
    anyhow::ensure!(out.status.success(), "{package} is not installed");
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Where a built kernel lives: its build directory (bzImage, headers, vmlinux).
pub struct Kernel {
    pub source: PathBuf,
    pub build: PathBuf,
    pub bzimage: PathBuf,
}

/// Builds (or finds in the cache) the kernel for Debian's `linux-source-<version>`.
pub fn kernel(version: &str) -> anyhow::Result<Kernel> {
    if !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        bail!("--source takes a kernel version such as 6.12 or 6.1, not '{version}'");
    }
    let package = format!("linux-source-{version}");
    let mut packages: Vec<&str> = BUILD_TOOLS.iter().map(|(_, p)| *p).collect();
    packages.extend(["libelf-dev", "libssl-dev", "xz-utils", package.as_str()]);
    ensure_packages(&packages)?;
    for (tool, pkg) in BUILD_TOOLS {
        anyhow::ensure!(have(tool), "{tool} is missing after installing {pkg}");
    }
    let pkg_version = package_version(&package)?;
    let fragment_text = fragment(version);
    let key = format!(
        "{:08x}",
        crc32fast::hash(format!("{pkg_version}\n{fragment_text}").as_bytes())
    );
    let vm = cache_dir().join("vm");
    let source = vm.join(format!("src-{pkg_version}")).join(&package);
    let build = vm.join(format!("build-{version}-{key}"));
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
    logged(make(&["-j", &jobs, "bzImage"]), &log, "make bzImage")?;
    std::fs::write(&done, &pkg_version)?;
    say(&format!("kernel built: {}", bzimage.display()));
    Ok(Kernel {
        source,
        build,
        bzimage,
    })
}

/// Every option the fragment sets must have survived olddefconfig (a dependency missing from
/// the fragment silently drops an option otherwise).
fn check_config(config: &Path, fragment: &str) -> anyhow::Result<()> {
    let have = std::fs::read_to_string(config)?;
    let lost: Vec<&str> = fragment
        .lines()
        .filter(|l| l.starts_with("CONFIG_"))
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

/// `cargo xtask vm-test`: boots the test kernel with an initramfs holding busybox, the kernel's
/// own `hmm-tests` selftest (built statically from the same source) and hmmtrace, runs
/// `xtask/vm/init`, and checks what it printed.
pub fn test(version: &str, limit: Duration) -> anyhow::Result<()> {
    let k = kernel(version)?;
    ensure_packages(&[
        "qemu-system-x86",
        "busybox-static",
        "cpio",
        "gzip",
        "libc6-dev",
    ])?;
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
    let workload_c = work.join("workload.c");
    std::fs::write(&workload_c, include_str!("../vm/workload.c"))?;
    let mut gcc = Command::new("gcc");
    gcc.args(["-static", "-O2", "-o"])
        .arg(root.join("workload"));
    gcc.arg("-I")
        .arg(&k.source)
        .arg("-isystem")
        .arg(headers.join("include"))
        .arg(&workload_c);
    logged(gcc, &log, "gcc workload.c")?;
    say("building hmmtrace (release)");
    let bin = crate::build_release_hmmtrace()?;
    std::fs::copy(&bin, root.join("hmmtrace"))?;
    copy_libraries(&bin, &root)?;
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))?;
    let init = root.join("init");
    std::fs::write(&init, include_str!("../vm/init"))?;
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let cpio = work.join("initramfs.cpio.gz");
    run_cmd(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
        root.display(),
        cpio.display()
    )))?;

    let serial = work.join("serial.log");
    say(&format!(
        "booting under TCG (limit {}s); serial console: {}",
        limit.as_secs(),
        serial.display()
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
        .arg(&cpio);
    // Two device-coherent dmirror devices over 512 MiB of RAM the kernel leaves alone; `quiet`
    // keeps the drivers' informational messages out of the console output that is parsed
    // (the kernel log is checked separately).
    qemu.args([
        "-append",
        "console=ttyS0 quiet panic=-1 memmap=512M$0x40000000 test_hmm.spm_addr_dev0=0x40000000 test_hmm.spm_addr_dev1=0x50000000",
    ]);
    qemu.stdin(Stdio::null());
    // Check 2's other side: the reference engine on workload.c's twin scenario.
    let twin = work.join("workload.toml");
    std::fs::write(&twin, include_str!("../vm/workload.toml"))?;
    let engine_capture = work.join("engine-workload.hmt");
    run_cmd(
        Command::new(&bin)
            .args(["sim", "--format", "json", "--scenario"])
            .arg(&twin)
            .arg("-o")
            .arg(&engine_capture)
            .stdout(Stdio::null()),
    )?;
    let engine_rows = Command::new(&bin)
        .arg("export")
        .arg(&engine_capture)
        .output()?;
    anyhow::ensure!(
        engine_rows.status.success(),
        "hmmtrace export of the engine's capture failed"
    );
    let engine_rows = String::from_utf8(engine_rows.stdout)?;
    let started = Instant::now();
    logged(qemu, &serial, "qemu")?;
    let out = std::fs::read_to_string(&serial)?.replace('\r', "");
    say(&format!(
        "guest ran {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    check(&out, &engine_rows)
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

/// The text between `=== name` and the next `===` marker.
fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let marker = format!("=== {name}");
    let Some(start) = out.find(&marker) else {
        return "";
    };
    let rest = &out[start + marker.len()..];
    let rest = rest.split_once('\n').map_or("", |(_, r)| r);
    // An empty section is followed at once by the next marker.
    if rest.starts_with("=== ") {
        return "";
    }
    rest.find("\n=== ").map_or(rest, |end| &rest[..end])
}

/// kselftest results: test name → "ok", "not ok" or "skip".
fn outcomes(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    for line in text.lines() {
        let (verdict, rest) = if let Some(r) = line.strip_prefix("not ok ") {
            ("not ok", r)
        } else if let Some(r) = line.strip_prefix("ok ") {
            ("ok", r)
        } else {
            continue;
        };
        let mut it = rest.splitn(2, ' ');
        let (_num, name) = (it.next(), it.next().unwrap_or(""));
        let (name, skip) = match name.split_once(" # SKIP") {
            Some((n, _)) => (n, true),
            None => (name, false),
        };
        m.insert(
            name.trim().to_string(),
            if skip { "skip".into() } else { verdict.into() },
        );
    }
    m
}

/// The first JSON value of a section (a kernel message may still follow it on the console).
fn first_json(text: &str) -> anyhow::Result<serde_json::Value> {
    let start = text
        .find('{')
        .ok_or_else(|| anyhow::anyhow!("no JSON in:\n{text}"))?;
    serde_json::Deserializer::from_str(&text[start..])
        .into_iter::<serde_json::Value>()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no JSON in:\n{text}"))?
        .map_err(|e| anyhow::anyhow!("not JSON ({e}):\n{text}"))
}

/// The rows of a JSONL export (`hmmtrace export`); lines that are not JSON objects (a kernel
/// message on the console) are skipped.
fn jsonl(text: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let rows: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("a line of the export is not JSON")?;
    anyhow::ensure!(!rows.is_empty(), "the export has no events");
    Ok(rows)
}

/// Per-kind counts of an export, as check 2 compares them: records per kind (invalidations
/// per `MMU_NOTIFY_*` event and path), and pages for the kinds that move or fault pages.
fn tally(rows: &[serde_json::Value]) -> std::collections::BTreeMap<String, u64> {
    let mut t = std::collections::BTreeMap::new();
    for r in rows {
        let kind = r["kind"].as_str().unwrap_or("?");
        let key = match kind {
            "invalidation" => format!(
                "invalidation.{}.{}",
                r["event"].as_str().unwrap_or("?"),
                r["path"].as_str().unwrap_or("?")
            ),
            k => k.to_string(),
        };
        *t.entry(key).or_default() += 1;
        let pages = match kind {
            "migration" => r["migrated"].as_u64(),
            "range_fault" => r["npages"].as_u64(),
            _ => None,
        };
        if let Some(p) = pages {
            *t.entry(format!("{kind}.pages")).or_default() += p;
        }
    }
    t
}

/// The checks, printed one per line; an error names every failed one.
fn check(out: &str, engine_rows: &str) -> anyhow::Result<()> {
    if !out.contains("=== end") {
        let tail: Vec<&str> = out.lines().rev().take(20).collect();
        bail!(
            "the guest did not finish; last lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let mut failed = Vec::new();
    let mut report = |name: &str, ok: bool, detail: String| {
        println!("{} {name}: {detail}", if ok { "PASS" } else { "FAIL" });
        if !ok {
            failed.push(name.to_string());
        }
    };
    println!("{}", section(out, "probes").trim_end());
    let base = outcomes(section(out, "baseline"));
    let traced = outcomes(section(out, "traced"));
    let passed = base.values().filter(|v| *v == "ok").count();
    let diff: Vec<String> = base
        .iter()
        .filter(|(k, v)| traced.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "{k}: {v} -> {}",
                traced.get(k).map_or("missing", String::as_str)
            )
        })
        .collect();
    report(
        "hmm-tests outcomes are the same traced and untraced",
        !base.is_empty() && diff.is_empty(),
        if diff.is_empty() {
            format!("{} tests, {passed} ok untraced", base.len())
        } else {
            diff.join("; ")
        },
    );
    let json: serde_json::Value =
        serde_json::from_str(section(out, "report").trim()).map_err(|e| {
            anyhow::anyhow!(
                "the guest's report is not JSON ({e}):\n{}",
                section(out, "report")
            )
        })?;
    let count = |kind: &str| {
        json["kinds"]
            .as_array()
            .and_then(|ks| ks.iter().find(|k| k["kind"] == kind))
            .and_then(|k| k["count"].as_u64())
            .unwrap_or(0)
    };
    let kinds = [
        "migration",
        "device_fault",
        "page_free",
        "invalidation",
        "range_fault",
    ];
    let counts: Vec<String> = kinds.iter().map(|k| format!("{k}={}", count(k))).collect();
    report(
        "the capture shows every HMM path",
        kinds.iter().all(|k| count(k) > 0),
        counts.join(" "),
    );
    let lost = json["lost"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum::<u64>());
    report("no lost events", lost == 0, format!("{lost} lost"));
    // Per mechanism: migrations and page frees are the same in every run of hmm-tests (the
    // invalidation and range-fault counts vary with timing, see docs/kernel-facts.md).
    let stable = |text: &str| -> anyhow::Result<(u64, u64)> {
        let v = first_json(text)?;
        let get = |kind: &str| {
            v["kinds"]
                .as_array()
                .and_then(|ks| ks.iter().find(|k| k["kind"] == kind))
                .and_then(|k| k["count"].as_u64())
                .unwrap_or(0)
        };
        Ok((get("migration"), get("page_free")))
    };
    let fentry = stable(section(out, "report-fentry"))?;
    let kprobe = stable(section(out, "report-kprobe"))?;
    let auto = (count("migration"), count("page_free"));
    report(
        "fentry and kprobe count the same migrations and page frees",
        fentry == kprobe && kprobe == auto && auto.0 > 0,
        format!("(migration, page_free): auto {auto:?}, fentry {fentry:?}, kprobe {kprobe:?}"),
    );
    // Check 1: the deterministic workload, against the numbers worked out in workload.c.
    let w = first_json(section(out, "report-workload"))?;
    let kind = |k: &str, field: &str| {
        w["kinds"]
            .as_array()
            .and_then(|ks| ks.iter().find(|x| x["kind"] == k))
            .and_then(|x| x[field].as_u64())
            .unwrap_or(0)
    };
    let (n, m, k) = (64, 16, 32);
    // (kind, field, expected): see workload.c for where each number comes from.
    let want = [
        ("migration", "pages", n + m),
        ("migration", "count", 1 + m + 1),
        ("device_fault", "count", m),
        ("page_free", "count", n),
        ("range_fault", "count", 1),
        ("range_fault", "pages", k),
    ];
    let mut wrong: Vec<String> = want
        .iter()
        .filter(|(kd, f, v)| kind(kd, f) != *v)
        .map(|(kd, f, v)| format!("{kd} {f}: {} (want {v})", kind(kd, f)))
        .collect();
    for kd in ["migration", "device_fault", "page_free", "range_fault"] {
        let min = w["kinds"]
            .as_array()
            .and_then(|ks| ks.iter().find(|x| x["kind"] == kd))
            .and_then(|x| x["latency_ns"]["min"].as_u64());
        if min.unwrap_or(0) == 0 {
            wrong.push(format!("{kd}: no non-zero latency"));
        }
    }
    let lost_w = w["lost"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum::<u64>());
    report(
        "the deterministic workload matches the numbers worked out from test_hmm",
        wrong.is_empty() && lost_w == 0,
        if wrong.is_empty() {
            format!(
                "{} pages migrated in {} migrations (one is the release's eviction), {m} faults, {n} frees, 1 range fault of {k} pages",
                n + m,
                1 + m + 1
            )
        } else {
            wrong.join("; ")
        },
    );
    // Check 1, continued: the munmap's MMU_NOTIFY_UNMAP covers the workload's region.
    let rows = jsonl(section(out, "export-workload"))?;
    let region = section(out, "workload").lines().find_map(|l| {
        let rest = l.strip_prefix("workload: region 0x")?;
        let (addr, pages) = rest.split_once(" pages ")?;
        Some((
            u64::from_str_radix(addr, 16).ok()?,
            pages.trim().parse::<u64>().ok()?,
        ))
    });
    let covering = region.map_or(0, |(addr, pages)| {
        rows.iter()
            .filter(|r| r["kind"] == "invalidation" && r["event"] == "UNMAP")
            .filter(|r| {
                r["start"].as_u64() == Some(addr) && r["end"].as_u64() == Some(addr + pages * 4096)
            })
            .count()
    });
    // Exactly the region: the exit's UNMAP of the whole address space covers it too and must
    // not be what passes this. Two records: the range start and test_hmm's callback.
    report(
        "the munmap's MMU_NOTIFY_UNMAP covers exactly the workload's region",
        region.is_some() && covering == 2,
        match region {
            Some((addr, pages)) => format!(
                "{covering} UNMAP records (want 2: range start and callback) for {addr:#x} + {pages} pages"
            ),
            None => "the workload did not print its region".into(),
        },
    );
    // Check 2: the reference engine on the twin scenario (vm/workload.toml) counts the same.
    let kernel = tally(&rows);
    let engine = tally(&jsonl(engine_rows)?);
    let differ: Vec<String> = kernel
        .iter()
        .chain(engine.iter())
        .map(|(k, _)| k.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| kernel.get(k) != engine.get(k))
        .map(|k| {
            format!(
                "{k}: kernel {} engine {}",
                kernel.get(&k).copied().unwrap_or(0),
                engine.get(&k).copied().unwrap_or(0)
            )
        })
        .collect();
    report(
        "the reference engine's twin scenario gives the kernel's per-kind counts",
        differ.is_empty() && !kernel.is_empty(),
        if differ.is_empty() {
            kernel
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            differ.join("; ")
        },
    );
    let problems: Vec<&str> = section(out, "dmesg")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    report(
        "no oops, BUG, WARNING or verifier message in the kernel log",
        problems.is_empty(),
        problems.join(" | "),
    );
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("{} VM check(s) failed: {}", failed.len(), failed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_outcomes_of_a_guest_log() {
        let log = "noise\n=== baseline\nok 1 hmm.a\nnot ok 2 hmm.b\nok 3 hmm.c # SKIP no hugetlbfs\n=== dmesg\n=== end\nreboot: Power down\n";
        assert_eq!(
            section(log, "dmesg"),
            "",
            "an empty section ends at the next marker"
        );
        let o = outcomes(section(log, "baseline"));
        assert_eq!(o["hmm.a"], "ok");
        assert_eq!(o["hmm.b"], "not ok");
        assert_eq!(o["hmm.c"], "skip");
        assert_eq!(section(log, "missing"), "");
        let v = first_json("{\"a\": 1}\nadded new 256 MB chunk\n").unwrap();
        assert_eq!(v["a"], 1, "a kernel message after the JSON is ignored");
        assert!(first_json("no json here").is_err());
    }

    #[test]
    fn tally_counts_kinds_events_and_pages() {
        let rows = jsonl(concat!(
            "{\"kind\":\"migration\",\"migrated\":64}\n",
            "a kernel message\n",
            "{\"kind\":\"migration\",\"api\":\"migrate_device\"}\n",
            "{\"kind\":\"invalidation\",\"event\":\"UNMAP\",\"path\":\"callback\"}\n",
            "{\"kind\":\"range_fault\",\"npages\":32}\n",
        ))
        .unwrap();
        let t = tally(&rows);
        assert_eq!(t["migration"], 2);
        assert_eq!(
            t["migration.pages"], 64,
            "an unknown `migrated` adds nothing"
        );
        assert_eq!(t["invalidation.UNMAP.callback"], 1);
        assert_eq!(t["range_fault.pages"], 32);
        assert!(jsonl("no events\n").is_err());
    }
}
