//! Attaching the programs the plan chose: one entry/exit pair per plan row, trying the row's
//! mechanisms in order and recording each refusal (mechanism, errno) when none works.

use aya::programs::{FEntry, FExit, KProbe, Program, ProgramError};
use aya::{Btf, Ebpf};

use super::plan::{Mechanism, PlanEntry, Role, Status};

/// The (entry, exit) program names for a role and mechanism; `None` when this hmmtrace has no
/// program for the role yet.
pub fn programs(role: Role, mechanism: Mechanism) -> Option<(&'static str, &'static str)> {
    // One stem per role; the eBPF object names its programs `<mechanism>_<stem>`.
    let stem = match role {
        Role::MigrateVmaSetup => "migrate_vma_setup",
        Role::MigrateVmaPages => "migrate_vma_pages",
        Role::MigrateVmaFinalize => "migrate_vma_finalize",
        Role::MigrateToRam => "migrate_to_ram",
        Role::FreeZoneDevice => "free_zone_device",
        Role::InvalidateRangeStart => "invalidate_range_start",
        Role::IntervalInvalidate => "interval_invalidate",
        Role::HmmRangeFault => "hmm_range_fault",
        Role::MigrateDeviceRange => "migrate_device_range",
        Role::MigrateDevicePages => "migrate_device_pages",
        Role::MigrateDeviceFinalize => "migrate_device_finalize",
        Role::PageFree => "page_free",
    };
    PROGRAMS
        .iter()
        .find(|(m, s, _, _)| *m == mechanism && *s == stem)
        .map(|(_, _, e, x)| (*e, *x))
}

/// (mechanism, stem, entry program, exit program), as `hmmtrace-ebpf` defines them.
const PROGRAMS: &[(Mechanism, &str, &str, &str)] = &[
    (
        Mechanism::Fentry,
        "page_free",
        "fentry_page_free",
        "fexit_page_free",
    ),
    (
        Mechanism::Kprobe,
        "page_free",
        "kprobe_page_free",
        "kretprobe_page_free",
    ),
    (
        Mechanism::Fentry,
        "migrate_device_finalize",
        "fentry_migrate_device_finalize",
        "fexit_migrate_device_finalize",
    ),
    (
        Mechanism::Kprobe,
        "migrate_device_finalize",
        "kprobe_migrate_device_finalize",
        "kretprobe_migrate_device_finalize",
    ),
    (
        Mechanism::Fentry,
        "migrate_device_pages",
        "fentry_migrate_device_pages",
        "fexit_migrate_device_pages",
    ),
    (
        Mechanism::Kprobe,
        "migrate_device_pages",
        "kprobe_migrate_device_pages",
        "kretprobe_migrate_device_pages",
    ),
    (
        Mechanism::Fentry,
        "migrate_device_range",
        "fentry_migrate_device_range",
        "fexit_migrate_device_range",
    ),
    (
        Mechanism::Kprobe,
        "migrate_device_range",
        "kprobe_migrate_device_range",
        "kretprobe_migrate_device_range",
    ),
    (
        Mechanism::Fentry,
        "migrate_vma_setup",
        "fentry_migrate_vma_setup",
        "fexit_migrate_vma_setup",
    ),
    (
        Mechanism::Fentry,
        "migrate_vma_pages",
        "fentry_migrate_vma_pages",
        "fexit_migrate_vma_pages",
    ),
    (
        Mechanism::Fentry,
        "migrate_vma_finalize",
        "fentry_migrate_vma_finalize",
        "fexit_migrate_vma_finalize",
    ),
    (
        Mechanism::Fentry,
        "migrate_to_ram",
        "fentry_migrate_to_ram",
        "fexit_migrate_to_ram",
    ),
    (
        Mechanism::Fentry,
        "free_zone_device",
        "fentry_free_zone_device",
        "fexit_free_zone_device",
    ),
    (
        Mechanism::Fentry,
        "invalidate_range_start",
        "fentry_invalidate_range_start",
        "fexit_invalidate_range_start",
    ),
    (
        Mechanism::Fentry,
        "interval_invalidate",
        "fentry_interval_invalidate",
        "fexit_interval_invalidate",
    ),
    (
        Mechanism::Fentry,
        "hmm_range_fault",
        "fentry_hmm_range_fault",
        "fexit_hmm_range_fault",
    ),
    (
        Mechanism::Kprobe,
        "migrate_vma_setup",
        "kprobe_migrate_vma_setup",
        "kretprobe_migrate_vma_setup",
    ),
    (
        Mechanism::Kprobe,
        "migrate_vma_pages",
        "kprobe_migrate_vma_pages",
        "kretprobe_migrate_vma_pages",
    ),
    (
        Mechanism::Kprobe,
        "migrate_vma_finalize",
        "kprobe_migrate_vma_finalize",
        "kretprobe_migrate_vma_finalize",
    ),
    (
        Mechanism::Kprobe,
        "migrate_to_ram",
        "kprobe_migrate_to_ram",
        "kretprobe_migrate_to_ram",
    ),
    (
        Mechanism::Kprobe,
        "free_zone_device",
        "kprobe_free_zone_device",
        "kretprobe_free_zone_device",
    ),
    (
        Mechanism::Kprobe,
        "invalidate_range_start",
        "kprobe_invalidate_range_start",
        "kretprobe_invalidate_range_start",
    ),
    (
        Mechanism::Kprobe,
        "interval_invalidate",
        "kprobe_interval_invalidate",
        "kretprobe_interval_invalidate",
    ),
    (
        Mechanism::Kprobe,
        "hmm_range_fault",
        "kprobe_hmm_range_fault",
        "kretprobe_hmm_range_fault",
    ),
];

/// The errno behind an aya program error (EINVAL when it carries none).
pub fn errno(e: &ProgramError) -> i32 {
    // An fentry program is bound to one function at load: a second callback of the same role
    // cannot have it.
    if matches!(e, ProgramError::AlreadyLoaded) {
        return libc::EBUSY;
    }
    if let ProgramError::LoadError { io_error, .. } = e {
        if let Some(n) = io_error.raw_os_error() {
            return n;
        }
    }
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(n) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return n;
        }
        source = err.source();
    }
    libc::EINVAL
}

fn attach_one(
    ebpf: &mut Ebpf,
    btf: Option<&Btf>,
    name: &str,
    mechanism: Mechanism,
    symbol: &str,
    exit: bool,
) -> Result<(), i32> {
    let prog = ebpf.program_mut(name).ok_or(libc::ENOENT)?;
    let result = match mechanism {
        // The plan only offers fentry for functions in the kernel's BTF.
        Mechanism::Fentry => {
            let btf = btf.ok_or(libc::ENOENT)?;
            if exit {
                let p: &mut FExit = prog.try_into().map_err(|e| errno(&e))?;
                p.load(symbol, btf).and_then(|()| p.attach().map(drop))
            } else {
                let p: &mut FEntry = prog.try_into().map_err(|e| errno(&e))?;
                p.load(symbol, btf).and_then(|()| p.attach().map(drop))
            }
        }
        Mechanism::Kprobe => {
            let p: &mut KProbe = prog.try_into().map_err(|e| errno(&e))?;
            // One kprobe program can serve several functions (two drivers' callbacks).
            let loaded = if p.fd().is_ok() { Ok(()) } else { p.load() };
            loaded.and_then(|()| p.attach(symbol, 0).map(drop))
        }
    };
    result.map_err(|e| errno(&e))
}

/// Unloads (and so detaches) a program, if it was loaded.
fn unload(ebpf: &mut Ebpf, name: &str) {
    match ebpf.program_mut(name) {
        Some(Program::FEntry(p)) => drop(p.unload()),
        Some(Program::FExit(p)) => drop(p.unload()),
        Some(Program::KProbe(p)) => drop(p.unload()),
        _ => {}
    }
}

/// Attaches the row's entry and exit programs, updating its status.
pub fn attach_row(ebpf: &mut Ebpf, btf: Option<&Btf>, row: &mut PlanEntry) {
    if row.status != Status::Planned {
        return;
    }
    let mut tries = Vec::new();
    for &mechanism in &row.mechanisms {
        let Some((entry, exit)) = programs(row.role, mechanism) else {
            row.status = Status::NoProgram;
            return;
        };
        let result = attach_one(ebpf, btf, entry, mechanism, &row.symbol, false)
            .and_then(|()| attach_one(ebpf, btf, exit, mechanism, &row.symbol, true));
        match result {
            Ok(()) => {
                row.status = Status::Attached(mechanism);
                return;
            }
            Err(e) => {
                // Detach a half-attached pair so the fallback starts clean.
                unload(ebpf, entry);
                unload(ebpf, exit);
                tries.push((mechanism, e));
            }
        }
    }
    row.status = Status::Denied(tries);
}

/// Loads every kprobe-type program without attaching it: the verifier's verdict on each, for
/// kernels (like this project's host) where they cannot attach but can load.
pub fn verify_kprobe_programs(ebpf: &mut Ebpf) -> Vec<(String, Result<(), String>)> {
    let names: Vec<String> = ebpf
        .programs()
        .filter(|(_, p)| matches!(p, aya::programs::Program::KProbe(_)))
        .map(|(n, _)| n.to_string())
        .collect();
    names
        .into_iter()
        .map(|name| {
            let p: &mut KProbe = ebpf.program_mut(&name).unwrap().try_into().unwrap();
            let r = p.load().map_err(|e| format!("{e}"));
            (name, r)
        })
        .collect()
}
