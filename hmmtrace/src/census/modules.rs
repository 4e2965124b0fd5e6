//! Loaded modules as the census reads them: each one's `.ko` file (found by name under the
//! modules directory), its undefined symbols (what it imports) and `.modinfo` license, read
//! with the `object` crate, and the kernel's taint letters for it from sysfs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

use super::Module;

/// A module name as the kernel and file names may spell it: `-` and `_` are the same.
pub fn key(name: &str) -> String {
    name.replace('-', "_")
}

/// Every uncompressed `.ko` under `dir` (recursively), by [`key`]. Compressed modules
/// (`.ko.xz`, `.ko.zst`, `.ko.gz`) are not read: their consumers show as unknown.
pub fn index(dir: &Path) -> HashMap<String, PathBuf> {
    let mut out = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    // Bounded: a modules tree is a few thousand entries; a symlink loop must not hang.
    let mut budget = 200_000usize;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return out;
            }
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                // `build` and `source` point into the build tree, not at modules.
                if !matches!(
                    path.file_name().and_then(|n| n.to_str()),
                    Some("build" | "source")
                ) {
                    stack.push(path);
                }
            } else if let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            {
                out.entry(key(stem)).or_insert(path);
            }
        }
    }
    out
}

/// A loaded module: its taint from sysfs, and what its file says when `file` is given.
pub fn read(name: &str, file: Option<&Path>) -> Module {
    let taint = std::fs::read_to_string(format!("/sys/module/{name}/taint"))
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let mut m = Module {
        name: name.to_string(),
        file: None,
        license: None,
        taint,
        imports: Vec::new(),
    };
    if let Some(path) = file {
        if let Some((imports, license)) = std::fs::read(path).ok().and_then(|b| elf_facts(&b)) {
            m.file = Some(path.display().to_string());
            m.imports = imports;
            m.license = license;
        }
    }
    m
}

/// A `.ko`'s undefined symbols (sorted) and its `.modinfo` license; `None` when it is not an
/// ELF object.
pub fn elf_facts(bytes: &[u8]) -> Option<(Vec<String>, Option<String>)> {
    let file = object::File::parse(bytes).ok()?;
    let mut imports: Vec<String> = file
        .symbols()
        .filter(|s| s.is_undefined())
        .filter_map(|s| s.name().ok())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    imports.sort();
    imports.dedup();
    let license = file
        .section_by_name(".modinfo")
        .and_then(|s| s.data().ok())
        .and_then(|d| {
            d.split(|b| *b == 0)
                .filter_map(|kv| std::str::from_utf8(kv).ok())
                .find_map(|kv| kv.strip_prefix("license=").map(str::to_string))
        });
    Some((imports, license))
}
