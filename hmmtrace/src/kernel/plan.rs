//! The attach plan: for each logical probe, which kernel function carries it on *this* kernel
//! and by which mechanism, decided from what the kernel says about itself ([`KernelFacts`]).
//!
//! The kernel renames these paths between versions (`free_devmap_managed_page` →
//! `free_zone_device_page` → `free_zone_device_folio`) and drivers name their callbacks as they
//! like, so every candidate lives in the tables below, in one place. Mechanisms are tried in
//! the order fentry/fexit → kprobe/kretprobe; fentry needs the function in BTF and hookable by
//! ftrace (code built without ftrace flags, like `lib/test_hmm.c`, is not), a kprobe needs
//! `CONFIG_KPROBES`. Resolution is pure so it can be tested against recorded facts of several
//! kernels; attaching (and falling back when the kernel denies a mechanism) is the session's job.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{bail, Context as _};

pub use crate::probe::{Mechanism, PlanEntry, Refusal, Role, Status};

use super::btf::Btf;

/// Core kernel functions for each role, newest name first.
pub const CORE: &[(Role, &[&str])] = &[
    (Role::MigrateVmaSetup, &["migrate_vma_setup"]),
    (Role::MigrateVmaPages, &["migrate_vma_pages"]),
    (Role::MigrateVmaFinalize, &["migrate_vma_finalize"]),
    // The migrate_device_* family exists since 6.1 (mm/migrate_device.c).
    (Role::MigrateDeviceRange, &["migrate_device_range"]),
    (Role::MigrateDevicePages, &["migrate_device_pages"]),
    (Role::MigrateDeviceFinalize, &["migrate_device_finalize"]),
    // 6.12 and 6.18: free_zone_device_folio; 6.1: free_zone_device_page;
    // 5.x: free_devmap_managed_page (mm/memremap.c).
    (
        Role::FreeZoneDevice,
        &[
            "free_zone_device_folio",
            "free_zone_device_page",
            "free_devmap_managed_page",
        ],
    ),
    (
        Role::InvalidateRangeStart,
        &["__mmu_notifier_invalidate_range_start"],
    ),
    (Role::HmmRangeFault, &["hmm_range_fault"]),
];

/// Tracepoints, as `category:name`, and their roles. Every session attaches these.
pub const TRACEPOINTS: &[(Role, &str)] = &[(Role::MmMigratePages, "migrate:mm_migrate_pages")];

/// Known drivers' callbacks: (driver, function, role). Each name was checked against the
/// kernel source that defines it: test_hmm, nouveau and amdkfd in Linux 6.12
/// (`lib/test_hmm.c`, `drivers/gpu/drm/nouveau/nouveau_{dmem,svm}.c`,
/// `drivers/gpu/drm/amd/amdkfd/kfd_{migrate,svm}.c`), and drm_pagemap (xe) in the
/// `drivers/gpu/drm/drm_pagemap.c` that replaced `page_free` with `folio_free`.
pub const DRIVER_CALLBACKS: &[(&str, &str, Role)] = &[
    ("test_hmm", "dmirror_devmem_fault", Role::MigrateToRam),
    ("test_hmm", "dmirror_devmem_free", Role::PageFree),
    (
        "test_hmm",
        "dmirror_interval_invalidate",
        Role::IntervalInvalidate,
    ),
    ("nouveau", "nouveau_dmem_migrate_to_ram", Role::MigrateToRam),
    ("nouveau", "nouveau_dmem_page_free", Role::PageFree),
    (
        "nouveau",
        "nouveau_svm_range_invalidate",
        Role::IntervalInvalidate,
    ),
    ("amdgpu", "svm_migrate_to_ram", Role::MigrateToRam),
    ("amdgpu", "svm_migrate_page_free", Role::PageFree),
    (
        "amdgpu",
        "svm_range_cpu_invalidate_pagetables",
        Role::IntervalInvalidate,
    ),
    (
        "drm_pagemap",
        "drm_pagemap_migrate_to_ram",
        Role::MigrateToRam,
    ),
    ("drm_pagemap", "drm_pagemap_page_free", Role::PageFree),
    ("drm_pagemap", "drm_pagemap_folio_free", Role::PageFree),
];

/// Known drivers' `struct dev_pagemap_ops` instances: (driver, symbol), from the same sources
/// as [`DRIVER_CALLBACKS`]. A device is named by the ops its pgmap points to. Other instances
/// are recognised by name (`*pagemap_ops`, `*pgmap_ops`, `*devmem_ops`).
pub const PAGEMAP_OPS: &[(&str, &str)] = &[
    ("test_hmm", "dmirror_devmem_ops"),
    ("nouveau", "nouveau_dmem_pagemap_ops"),
    ("amdgpu", "svm_migrate_pgmap_ops"),
    ("drm_pagemap", "drm_pagemap_pagemap_ops"),
];

/// A `dev_pagemap_ops` instance in the running kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PagemapOps {
    pub addr: u64,
    pub symbol: String,
    /// Module that defines it (empty: vmlinux).
    pub module: String,
}

/// `--mechanism auto|fentry|kprobe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MechanismChoice {
    #[default]
    Auto,
    Only(Mechanism),
}

/// What the running kernel says about itself, as far as the plan and the probes need it. Read
/// once per run ([`KernelFacts::from_system`]): the BTF too, which the session then uses for
/// field offsets and enum values.
#[derive(Clone, Default)]
pub struct KernelFacts {
    /// `uname -r`.
    pub release: String,
    /// Text symbols from `/proc/kallsyms`: name → module (empty for vmlinux).
    pub functions: HashMap<String, String>,
    /// Functions described by a BTF `FUNC` (vmlinux or module BTF).
    pub btf_functions: HashSet<String>,
    /// `available_filter_functions`: what ftrace (and so fentry) can hook; `None` when the
    /// kernel would not say (the file is unreadable), in which case fentry is tried.
    pub traceable: Option<HashSet<String>>,
    /// Whether the kernel has kprobes (`/sys/bus/event_source/devices/kprobe`).
    pub kprobes: bool,
    /// Addresses of the kernel variables hmmtrace reads (`vmemmap_base`).
    pub variables: HashMap<String, u64>,
    /// `dev_pagemap_ops` instances (data symbols; kallsyms lists them with KALLSYMS_ALL).
    pub pagemap_ops: Vec<PagemapOps>,
    /// Tracepoints (`category:name`) of [`TRACEPOINTS`] that tracefs lists.
    pub tracepoints: HashSet<String>,
    /// The kernel's BTF, parsed once; `None` without CONFIG_DEBUG_INFO_BTF.
    pub btf: Option<Arc<Btf>>,
}

impl std::fmt::Debug for KernelFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelFacts")
            .field("release", &self.release)
            .field("functions", &self.functions.len())
            .field("btf", &self.btf.is_some())
            .field("kprobes", &self.kprobes)
            .finish_non_exhaustive()
    }
}

impl KernelFacts {
    /// Reads the running kernel's facts from `tracefs` (the root [`super::tracefs::root`]
    /// found), kallsyms and BTF. Module BTF (split BTF under /sys/kernel/btf/<module>) is not
    /// read, so functions of modules are planned as kprobe-only.
    pub fn from_system(tracefs: &std::path::Path) -> anyhow::Result<KernelFacts> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .context("cannot read /proc/sys/kernel/osrelease")?
            .trim()
            .to_string();
        let kallsyms =
            std::fs::read_to_string("/proc/kallsyms").context("cannot read /proc/kallsyms")?;
        // Without BTF there is no fentry and no field offset; the plan says so per row.
        let btf = Btf::from_sysfs().ok().map(Arc::new);
        let btf_functions = btf
            .as_ref()
            .map(|b| b.functions().map(str::to_string).collect())
            .unwrap_or_default();
        let traceable = std::fs::read_to_string(tracefs.join("available_filter_functions"))
            .ok()
            .map(|t| KernelFacts::parse_filter_functions(&t));
        let tracepoints = TRACEPOINTS
            .iter()
            .map(|(_, tp)| *tp)
            .filter(|tp| super::tracefs::has_event(tracefs, tp))
            .map(str::to_string)
            .collect();
        let variables = super::kallsyms::parse(&kallsyms)
            .filter(|s| s.name == "vmemmap_base")
            .map(|s| (s.name.to_string(), s.addr))
            .collect();
        Ok(KernelFacts {
            release,
            variables,
            pagemap_ops: KernelFacts::parse_pagemap_ops(&kallsyms),
            functions: KernelFacts::parse_kallsyms(&kallsyms),
            btf_functions,
            traceable,
            kprobes: std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists(),
            tracepoints,
            btf,
        })
    }

    /// Parses `/proc/kallsyms` text: text symbols (`t`/`T`, and weak `w`/`W`) only.
    pub fn parse_kallsyms(text: &str) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for s in super::kallsyms::parse(text).filter(|s| s.is_text()) {
            out.entry(s.name.to_string())
                .or_insert_with(|| s.module.to_string());
        }
        out
    }

    /// The `dev_pagemap_ops` instances in kallsyms text, with nonzero addresses.
    pub fn parse_pagemap_ops(text: &str) -> Vec<PagemapOps> {
        super::kallsyms::parse(text)
            .filter(|s| s.is_data() && s.addr != 0)
            .filter(|s| {
                PAGEMAP_OPS.iter().any(|(_, known)| *known == s.name)
                    || ["pagemap_ops", "pgmap_ops", "devmem_ops"]
                        .iter()
                        .any(|suffix| s.name.ends_with(suffix))
            })
            .map(|s| PagemapOps {
                addr: s.addr,
                symbol: s.name.to_string(),
                module: s.module.to_string(),
            })
            .collect()
    }

    /// The symbol at exactly `addr` in kallsyms text, and its module (empty: vmlinux): a text
    /// symbol when `function`, else a data one. How discovered callbacks and ops get names.
    pub fn symbol_at(text: &str, addr: u64, function: bool) -> Option<(String, String)> {
        super::kallsyms::parse(text)
            .find(|s| s.addr == addr && s.is_text() == function)
            .map(|s| (s.name.to_string(), s.module.to_string()))
    }

    /// Parses `available_filter_functions` (`name` or `name [module]` per line).
    pub fn parse_filter_functions(text: &str) -> HashSet<String> {
        text.lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }
}

impl KernelFacts {
    /// The address of a kernel variable, from `/proc/kallsyms` (readable as root; zeros
    /// otherwise, which count as absent).
    pub fn variable_address(&self, name: &str) -> Option<u64> {
        self.variables.get(name).copied().filter(|a| *a != 0)
    }
}

/// An extra callback from `--attach FUNC=ROLE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraAttach {
    pub function: String,
    pub role: Role,
}

impl std::str::FromStr for ExtraAttach {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<ExtraAttach> {
        let (function, role) = s
            .split_once('=')
            .context("expected FUNC=ROLE, e.g. my_drv_fault=migrate_to_ram")?;
        let roles: Vec<&str> = Role::attachable().map(|r| r.name()).collect();
        let role = Role::attachable()
            .find(|r| r.name() == role)
            .with_context(|| format!("unknown role '{role}' (one of: {})", roles.join(", ")))?;
        if function.is_empty()
            || !function
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            bail!("'{function}' is not a kernel function name");
        }
        Ok(ExtraAttach {
            function: function.to_string(),
            role,
        })
    }
}

/// Resolves every probe against `facts`: core functions, the known drivers' callbacks that the
/// kernel has, the user's extra ones, and the tracepoints.
pub fn resolve(
    facts: &KernelFacts,
    choice: MechanismChoice,
    extra: &[ExtraAttach],
) -> Vec<PlanEntry> {
    let mut plan = Vec::new();
    for (role, candidates) in CORE {
        match candidates
            .iter()
            .find(|c| facts.functions.contains_key(**c))
        {
            Some(symbol) => plan.push(entry(facts, choice, *role, symbol)),
            None => plan.push(PlanEntry {
                role: *role,
                symbol: candidates[0].to_string(),
                module: String::new(),
                mechanisms: Vec::new(),
                status: Status::NotInKernel,
                found: Default::default(),
            }),
        }
    }
    for (_driver, function, role) in DRIVER_CALLBACKS {
        if facts.functions.contains_key(*function) {
            plan.push(entry(facts, choice, *role, function));
        }
    }
    for e in extra {
        if plan
            .iter()
            .any(|p| p.symbol == e.function && p.role == e.role)
        {
            continue;
        }
        let mut row = entry(facts, choice, e.role, &e.function);
        row.found = crate::probe::Found::Attach;
        if !facts.functions.contains_key(&e.function) {
            row.status = Status::NotInKernel;
            row.mechanisms.clear();
        }
        plan.push(row);
    }
    // Every driver-callback role with no known driver in this kernel still gets a row, so the
    // table says what is missing.
    for role in Role::ALL.into_iter().filter(|r| r.is_driver_callback()) {
        if !plan.iter().any(|p| p.role == role) {
            plan.push(PlanEntry {
                role,
                symbol: "(no known driver loaded)".into(),
                module: String::new(),
                mechanisms: Vec::new(),
                status: Status::NotInKernel,
                found: Default::default(),
            });
        }
    }
    for (role, tracepoint) in TRACEPOINTS {
        plan.push(PlanEntry {
            role: *role,
            symbol: tracepoint.to_string(),
            module: String::new(),
            mechanisms: vec![Mechanism::Tracepoint],
            status: if facts.tracepoints.contains(*tracepoint) {
                Status::Planned
            } else {
                Status::NotInKernel
            },
            found: Default::default(),
        });
    }
    plan
}

fn entry(facts: &KernelFacts, choice: MechanismChoice, role: Role, symbol: &str) -> PlanEntry {
    let module = facts.functions.get(symbol).cloned().unwrap_or_default();
    let in_btf = facts.btf_functions.contains(symbol);
    let traceable = facts.traceable.as_ref().is_none_or(|t| t.contains(symbol));
    let fentry_ok = in_btf && traceable;
    let candidates: &[Mechanism] = match choice {
        MechanismChoice::Auto => &[Mechanism::Fentry, Mechanism::Kprobe],
        MechanismChoice::Only(Mechanism::Fentry) => &[Mechanism::Fentry],
        MechanismChoice::Only(Mechanism::Kprobe) => &[Mechanism::Kprobe],
        MechanismChoice::Only(Mechanism::Tracepoint) => &[],
    };
    let mechanisms: Vec<Mechanism> = candidates
        .iter()
        .copied()
        .filter(|m| match m {
            Mechanism::Fentry => fentry_ok,
            Mechanism::Kprobe => facts.kprobes,
            Mechanism::Tracepoint => false,
        })
        .collect();
    let status = if mechanisms.is_empty() {
        let mut why = Vec::new();
        if candidates.contains(&Mechanism::Fentry) {
            why.push(if !in_btf && !module.is_empty() {
                "fentry: in a module (aya cannot attach fentry to module functions yet: aya-rs/aya#300)"
            } else if !in_btf {
                "fentry: not in BTF"
            } else {
                "fentry: ftrace cannot hook it (built without ftrace flags?)"
            });
        }
        if candidates.contains(&Mechanism::Kprobe) {
            why.push("kprobe: kernel built without CONFIG_KPROBES");
        }
        Status::Unreachable(why.join("; "))
    } else {
        Status::Planned
    };
    PlanEntry {
        role,
        symbol: symbol.to_string(),
        module,
        mechanisms,
        status,
        found: Default::default(),
    }
}

/// The rows for functions of one module, as [`resolve`] makes them: the known drivers'
/// callbacks and the user's `--attach` functions that `module` defines (for a module loaded
/// during a session; `facts.functions` must already list its symbols).
pub fn resolve_module(
    facts: &KernelFacts,
    choice: MechanismChoice,
    extra: &[ExtraAttach],
    module: &str,
) -> Vec<PlanEntry> {
    let in_module = |f: &str| facts.functions.get(f).is_some_and(|m| m == module);
    let mut rows: Vec<PlanEntry> = DRIVER_CALLBACKS
        .iter()
        .filter(|(_, f, _)| in_module(f))
        .map(|(_, f, role)| entry(facts, choice, *role, f))
        .collect();
    for e in extra.iter().filter(|e| in_module(&e.function)) {
        if !rows
            .iter()
            .any(|r| r.symbol == e.function && r.role == e.role)
        {
            let mut row = entry(facts, choice, e.role, &e.function);
            row.found = crate::probe::Found::Attach;
            rows.push(row);
        }
    }
    rows
}

/// A row for a callback read from a device page's `dev_pagemap_ops` at run time.
pub fn discovered(
    facts: &KernelFacts,
    choice: MechanismChoice,
    role: Role,
    symbol: &str,
    found: crate::probe::Found,
) -> PlanEntry {
    let mut row = entry(facts, choice, role, symbol);
    row.found = found;
    row
}

#[cfg(test)]
mod tests;
