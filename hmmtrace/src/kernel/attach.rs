//! Attaching the programs the plan chose: one entry/exit pair per function row (one program
//! per tracepoint row), trying the row's mechanisms in order and recording each refusal
//! (mechanism, errno) when none works.

use aya::programs::{FEntry, FExit, KProbe, Program, ProgramError, TracePoint};
use aya::{Btf, Ebpf};

use super::plan::{Mechanism, PlanEntry, Refusal, Role, Status};

/// The program names of a role: `hmmtrace-ebpf` names them `fentry_<role>`/`fexit_<role>`,
/// `kprobe_<role>`/`kretprobe_<role>` and `tracepoint_<role>` (no exit), after `Role::name`.
pub fn programs(role: Role, mechanism: Mechanism) -> (String, Option<String>) {
    let (entry, exit) = match mechanism {
        Mechanism::Fentry => ("fentry", Some("fexit")),
        Mechanism::Kprobe => ("kprobe", Some("kretprobe")),
        Mechanism::Tracepoint => ("tracepoint", None),
    };
    (
        format!("{entry}_{}", role.name()),
        exit.map(|x| format!("{x}_{}", role.name())),
    )
}

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
        Mechanism::Tracepoint => {
            let (category, name) = symbol.split_once(':').ok_or(libc::EINVAL)?;
            let p: &mut TracePoint = prog.try_into().map_err(|e| errno(&e))?;
            p.load().and_then(|()| p.attach(category, name).map(drop))
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
        Some(Program::TracePoint(p)) => drop(p.unload()),
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
        let (entry, exit) = programs(row.role, mechanism);
        let result = attach_one(ebpf, btf, &entry, mechanism, &row.symbol, false).and_then(|()| {
            exit.as_deref().map_or(Ok(()), |x| {
                attach_one(ebpf, btf, x, mechanism, &row.symbol, true)
            })
        });
        match result {
            Ok(()) => {
                row.status = Status::Attached(mechanism);
                return;
            }
            Err(errno) => {
                // Detach a half-attached pair so the fallback starts clean.
                unload(ebpf, &entry);
                if let Some(x) = &exit {
                    unload(ebpf, x);
                }
                tries.push(Refusal { mechanism, errno });
            }
        }
    }
    row.status = Status::Denied(tries);
}

/// Loads every kprobe-type program without attaching it: the verifier's verdict on each (the
/// size of the program the kernel kept, in bytes of translated instructions, or the error),
/// for kernels (like this project's host) where they cannot attach but can load.
pub fn verify_kprobe_programs(ebpf: &mut Ebpf) -> Vec<(String, Result<u32, String>)> {
    let names: Vec<String> = ebpf
        .programs()
        .filter(|(_, p)| matches!(p, aya::programs::Program::KProbe(_)))
        .map(|(n, _)| n.to_string())
        .collect();
    names
        .into_iter()
        .map(|name| {
            let p: &mut KProbe = ebpf.program_mut(&name).unwrap().try_into().unwrap();
            let r = p.load().map_err(|e| format!("{e}")).and_then(|()| {
                let info = p.info().map_err(|e| format!("{e}"))?;
                Ok(info.size_translated().unwrap_or(0))
            });
            (name, r)
        })
        .collect()
}
