//! `hmmtrace census`: who consumes HMM's and ZONE_DEVICE's exports, in this running kernel.
//! The question the kernel community asked when HMM was merged (exports "with no way ... to
//! validate that the interfaces are necessary or sufficient", "dangling unconsumed symbols",
//! `EXPORT_SYMBOL` against `EXPORT_SYMBOL_GPL`), answered with facts:
//!
//! - the exports, from `Module.symvers` where the kernel's build tree is present (which also
//!   gives each one's export type), else the functions of [`EXPORTED_IN_6_12`] that kallsyms
//!   has, their export type then "unknown", never a guess;
//! - which loaded modules import each one ([`modules`]: the undefined symbols of each loaded
//!   module's `.ko` file, its license and its taint flags);
//! - who calls each one at run time and how often (the census kprobe counts calls per caller's
//!   return address; named here through kallsyms);
//! - and the exports with no consumer: no importer among the loaded modules and no call seen.
//!
//! Built-in code that calls an export shows up only at run time (as `vmlinux` callers): a
//! static answer would need the build's object files.

pub mod modules;
pub mod render;
pub mod symbols;

use serde::{Deserialize, Serialize};

/// The families of exports the census covers, by name prefix (or whole name): HMM mirroring
/// (mm/hmm.c), device migration (mm/migrate_device.c), ZONE_DEVICE page maps
/// (mm/memremap.c), interval notifiers (mm/mmu_notifier.c) and device-exclusive entries.
pub const FAMILIES: &[&str] = &[
    "hmm_",
    "migrate_vma_",
    "migrate_device_",
    "mmu_interval_",
    "make_device_exclusive",
    "memremap_pages",
    "memunmap_pages",
    "devm_memremap_pages",
    "devm_memunmap_pages",
    "get_dev_pagemap",
    "zone_device_page_init",
    "folio_zone_device",
    "memremap_compat_align",
    "__put_devmap_managed_folio_refs",
];

/// The functions of the covered families that Linux 6.12 exports (`EXPORT_SYMBOL*` in
/// mm/hmm.c, mm/migrate_device.c, mm/memremap.c, mm/mmu_notifier.c, mm/rmap.c). Used only
/// where no `Module.symvers` says what this kernel exports: kallsyms cannot tell an export
/// from an internal function, so these names, where kallsyms has them, stand in (and their
/// export type is "unknown").
pub const EXPORTED_IN_6_12: &[&str] = &[
    "hmm_range_fault",
    "migrate_vma_setup",
    "migrate_vma_pages",
    "migrate_vma_finalize",
    "migrate_device_range",
    "migrate_device_pages",
    "migrate_device_finalize",
    "memremap_compat_align",
    "memremap_pages",
    "memunmap_pages",
    "devm_memremap_pages",
    "devm_memunmap_pages",
    "get_dev_pagemap",
    "zone_device_page_init",
    "__put_devmap_managed_folio_refs",
    "mmu_interval_read_begin",
    "mmu_interval_notifier_insert",
    "mmu_interval_notifier_insert_locked",
    "mmu_interval_notifier_remove",
    "make_device_exclusive_range",
];

/// Whether `name` belongs to a family the census covers.
pub fn covered(name: &str) -> bool {
    FAMILIES.iter().any(|f| name.starts_with(f))
}

/// How a symbol is exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportType {
    /// `EXPORT_SYMBOL_GPL`: modules must be GPL-compatible to link against it.
    Gpl,
    /// `EXPORT_SYMBOL`.
    Plain,
    /// No `Module.symvers` to say.
    Unknown,
}

impl std::fmt::Display for ExportType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExportType::Gpl => "EXPORT_SYMBOL_GPL",
            ExportType::Plain => "EXPORT_SYMBOL",
            ExportType::Unknown => "unknown",
        })
    }
}

/// Code that called an export at run time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The calling function (kallsyms), or the return address in hex when it names none.
    pub function: String,
    /// Its module; `vmlinux` for built-in code.
    pub module: String,
    pub calls: u64,
}

impl std::fmt::Display for Caller {
    /// `function [module] calls`, as every rendering lists callers.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}] {}", self.function, self.module, self.calls)
    }
}

/// One export and its consumers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    pub name: String,
    pub export_type: ExportType,
    /// Where it is defined now: `vmlinux`, a module, or empty when this kernel lacks it.
    pub defined_in: String,
    /// Loaded modules whose `.ko` file imports it.
    pub importers: Vec<String>,
    /// Callers seen at run time, most calls first.
    pub callers: Vec<Caller>,
}

impl Export {
    pub fn calls(&self) -> u64 {
        self.callers.iter().map(|c| c.calls).sum()
    }

    /// No loaded module imports it and nothing called it while the census watched.
    pub fn dangling(&self) -> bool {
        self.importers.is_empty() && self.callers.is_empty()
    }
}

/// A loaded module, as the census read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    pub name: String,
    /// Its `.ko` file, when found.
    pub file: Option<String>,
    /// `.modinfo`'s license, when the file was read.
    pub license: Option<String>,
    /// `/sys/module/NAME/taint`: the kernel's taint letters for it (`O` out of tree, `P`
    /// proprietary, `E` unsigned, ...), empty when none.
    pub taint: String,
    /// The covered exports it imports (empty also when its file was not read: see `file`).
    pub imports: Vec<String>,
}

/// A whole census.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Census {
    /// `uname -r`.
    pub release: String,
    /// The `Module.symvers` read, if any.
    pub symvers: Option<String>,
    pub exports: Vec<Export>,
    /// Every loaded module (importers or not: a module whose file was not found cannot be
    /// ruled out as a consumer, and says so).
    pub modules: Vec<Module>,
    /// How long calls were counted, in ns.
    pub watched_ns: u64,
    /// Calls the kernel could not count (its map full).
    pub uncounted_calls: u64,
    /// Exports whose calls were not counted, and why (no kprobes, a refused attach).
    #[serde(default)]
    pub not_counted: Vec<String>,
}

impl Census {
    /// Modules whose imports are unknown (their file was not found or not readable).
    pub fn unread_modules(&self) -> impl Iterator<Item = &Module> {
        self.modules.iter().filter(|m| m.file.is_none())
    }

    /// The exports nothing consumes.
    pub fn dangling(&self) -> impl Iterator<Item = &Export> {
        self.exports
            .iter()
            .filter(|e| e.dangling() && !e.defined_in.is_empty())
    }
}

/// What the census needs of the system, gathered before and after the calls are counted.
pub struct Survey {
    pub census: Census,
    /// Covered export functions in this kernel, for the run-time probe.
    pub functions: Vec<String>,
    /// Where the loaded modules' files are looked for ([`add_modules`]).
    pub modules_dir: std::path::PathBuf,
}

/// Reads the exports of the census and where each is defined; [`add_modules`] adds the
/// loaded modules and what they import, at the end (a module loaded meanwhile counts). `symvers` and `modules_dir` default to the running kernel's
/// (`/lib/modules/RELEASE/build/Module.symvers`, `/lib/modules/RELEASE`).
pub fn survey(
    symvers: Option<&std::path::Path>,
    modules_dir: Option<&std::path::Path>,
) -> anyhow::Result<Survey> {
    use anyhow::Context as _;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("cannot read /proc/sys/kernel/osrelease")?
        .trim()
        .to_string();
    let base = std::path::PathBuf::from("/lib/modules").join(&release);
    let symvers_path = symvers.map_or_else(|| base.join("build/Module.symvers"), Into::into);
    let kallsyms =
        std::fs::read_to_string("/proc/kallsyms").context("cannot read /proc/kallsyms")?;
    let syms = symbols::Symbols::parse(&kallsyms);
    let exported = match std::fs::read_to_string(&symvers_path) {
        Ok(text) => Some(symbols::parse_symvers(&text)),
        // Named by the user: that it is missing is an error; the default may just be absent.
        Err(e) if symvers.is_some() => {
            return Err(crate::error::bad_input(anyhow::anyhow!(
                "--symvers {}: {e}",
                symvers_path.display()
            )))
        }
        Err(_) => None,
    };
    let mut exports: Vec<Export> = match &exported {
        Some(list) => list
            .iter()
            .filter(|(name, _)| covered(name))
            .map(|(name, ty)| Export {
                name: name.clone(),
                export_type: *ty,
                defined_in: syms.module_of(name).unwrap_or_default(),
                importers: Vec::new(),
                callers: Vec::new(),
            })
            .collect(),
        None => syms
            .functions()
            .filter(|(name, _)| EXPORTED_IN_6_12.contains(name))
            .map(|(name, module)| Export {
                name: name.to_string(),
                export_type: ExportType::Unknown,
                defined_in: module.to_string(),
                importers: Vec::new(),
                callers: Vec::new(),
            })
            .collect(),
    };
    exports.sort_by(|a, b| a.name.cmp(&b.name));
    exports.dedup_by(|a, b| a.name == b.name);
    let functions = exports
        .iter()
        .filter(|e| syms.is_function(&e.name))
        .map(|e| e.name.clone())
        .collect();
    Ok(Survey {
        modules_dir: modules_dir.map_or(base, Into::into),
        census: Census {
            release,
            symvers: exported.map(|_| symvers_path.display().to_string()),
            exports,
            modules: Vec::new(),
            watched_ns: 0,
            uncounted_calls: 0,
            not_counted: Vec::new(),
        },
        functions,
    })
}

/// Run-time call counts: (function address, return address, calls).
pub type Calls = Vec<(u64, u64, u64)>;

/// Adds every loaded module (its file under `dir`, license, taint, the covered exports it
/// imports) and each export's importers.
pub fn add_modules(census: &mut Census, dir: &std::path::Path) {
    let loaded = crate::kernel::modules::Loaded::read();
    let files = modules::index(dir);
    census.modules.clear();
    for e in &mut census.exports {
        e.importers.clear();
    }
    for name in loaded.names() {
        let mut m = modules::read(name, files.get(&modules::key(name)).map(|p| p.as_path()));
        m.imports.retain(|i| covered(i));
        for i in &m.imports {
            if let Some(e) = census.exports.iter_mut().find(|e| &e.name == i) {
                e.importers.push(m.name.clone());
            }
        }
        census.modules.push(m);
    }
}

/// Adds the run-time counts, (function address, return address) → calls, naming both
/// through kallsyms text and the modules loaded, both read now.
pub fn add_calls(
    census: &mut Census,
    kallsyms: &str,
    modules: &crate::kernel::modules::Loaded,
    calls: &[(u64, u64, u64)],
) {
    let syms = symbols::Symbols::parse(kallsyms).with_modules(modules);
    for &(func, ret, n) in calls {
        let Some((fname, _)) = syms.containing(func) else {
            continue;
        };
        let Some(e) = census.exports.iter_mut().find(|e| e.name == fname) else {
            continue;
        };
        let (function, module) = match syms.containing(ret) {
            Some((f, m)) => (
                f.to_string(),
                if m.is_empty() { "vmlinux" } else { m }.to_string(),
            ),
            // Freed init code, most likely: a module's calls while it loaded.
            None => (
                format!("{ret:#x} (no symbol: freed init code?)"),
                "?".to_string(),
            ),
        };
        match e
            .callers
            .iter_mut()
            .find(|c| c.function == function && c.module == module)
        {
            Some(c) => c.calls += n,
            None => e.callers.push(Caller {
                function,
                module,
                calls: n,
            }),
        }
    }
    for e in &mut census.exports {
        e.callers
            .sort_by(|a, b| b.calls.cmp(&a.calls).then(a.function.cmp(&b.function)));
    }
}

#[cfg(test)]
mod tests;
