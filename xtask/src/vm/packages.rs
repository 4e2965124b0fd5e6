//! Debian packages the VM checks need: installed when missing (as root), else named.

use std::process::{Command, Stdio};

use anyhow::bail;

use super::say;
use crate::{is_root, run_cmd};

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
pub fn package_version(package: &str) -> anyhow::Result<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()?;
    anyhow::ensure!(out.status.success(), "{package} is not installed");
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
