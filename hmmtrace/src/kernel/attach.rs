//! Attaching the programs the plan chose: one entry/exit pair per function row (one program
//! per tracepoint row), trying the row's mechanisms in order and recording each refusal
//! (mechanism, errno) when none works.

use aya::programs::kprobe::KProbeLinkId;
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

/// One kprobe attachment of a shared program: what detaches one row without touching the
/// program's other functions (a module's callbacks when the module goes).
#[derive(Debug)]
pub struct Link {
    program: String,
    id: KProbeLinkId,
}

/// Attaches one program to `symbol` (a kprobe at `at` instead, where given). Kprobe programs
/// are shared by every function of their role (two drivers' callbacks), so they come back as a
/// [`Link`]; an fentry or tracepoint program serves one function and is detached by unloading
/// it.
fn attach_one(
    ebpf: &mut Ebpf,
    btf: Option<&Btf>,
    name: &str,
    mechanism: Mechanism,
    symbol: &str,
    at: Option<u64>,
    exit: bool,
) -> Result<Option<Link>, i32> {
    let prog = ebpf.program_mut(name).ok_or(libc::ENOENT)?;
    let result = match mechanism {
        // The plan only offers fentry for functions in the kernel's BTF.
        Mechanism::Fentry => {
            let btf = btf.ok_or(libc::ENOENT)?;
            if exit {
                let p: &mut FExit = prog.try_into().map_err(|e| errno(&e))?;
                p.load(symbol, btf).and_then(|()| p.attach().map(|_| None))
            } else {
                let p: &mut FEntry = prog.try_into().map_err(|e| errno(&e))?;
                p.load(symbol, btf).and_then(|()| p.attach().map(|_| None))
            }
        }
        Mechanism::Kprobe => {
            let p: &mut KProbe = prog.try_into().map_err(|e| errno(&e))?;
            let loaded = if p.fd().is_ok() { Ok(()) } else { p.load() };
            // An empty name makes perf_event_open take the address (`kprobe_addr`, aya passes
            // it in the offset's place).
            let (target, offset) = match at {
                Some(a) => ("", a),
                None => (symbol, 0),
            };
            loaded.and_then(|()| p.attach(target, offset)).map(|id| {
                Some(Link {
                    program: name.to_string(),
                    id,
                })
            })
        }
        Mechanism::Tracepoint => {
            let (category, name) = symbol.split_once(':').ok_or(libc::EINVAL)?;
            let p: &mut TracePoint = prog.try_into().map_err(|e| errno(&e))?;
            p.load()
                .and_then(|()| p.attach(category, name).map(|_| None))
        }
    };
    result.map_err(|e| errno(&e))
}

/// Detaches what attaching one program left: its link (a kprobe) or the program itself.
fn undo(ebpf: &mut Ebpf, name: &str, link: Option<Link>) {
    match link {
        Some(l) => detach(ebpf, vec![l]),
        None => unload(ebpf, name),
    }
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

/// Detaches kprobe links, leaving their programs attached to their other functions.
pub fn detach(ebpf: &mut Ebpf, links: Vec<Link>) {
    for l in links {
        if let Some(Program::KProbe(p)) = ebpf.program_mut(&l.program) {
            // An error means it is detached already.
            let _ = p.detach(l.id);
        }
    }
}

/// Attaches the row's entry and exit programs, updating its status; returns the kprobe links
/// made (for [`detach`]). With `at`, kprobes go on that address rather than the row's name:
/// a callback discovered through its function pointer is exactly there, whatever its name
/// (static functions of one name in two modules are refused by name: EADDRNOTAVAIL).
pub fn attach_row(
    ebpf: &mut Ebpf,
    btf: Option<&Btf>,
    row: &mut PlanEntry,
    at: Option<u64>,
) -> Vec<Link> {
    if row.status != Status::Planned {
        return Vec::new();
    }
    let mut tries = Vec::new();
    for &mechanism in &row.mechanisms {
        let (entry, exit) = programs(row.role, mechanism);
        let entry_link = match attach_one(ebpf, btf, &entry, mechanism, &row.symbol, at, false) {
            Ok(l) => l,
            Err(errno) => {
                // A kprobe program that failed here may serve other functions: only an
                // fentry program (one function each) is unloaded.
                if mechanism != Mechanism::Kprobe {
                    unload(ebpf, &entry);
                }
                tries.push(Refusal { mechanism, errno });
                continue;
            }
        };
        let exit_link = match &exit {
            None => Ok(None),
            Some(x) => attach_one(ebpf, btf, x, mechanism, &row.symbol, at, true),
        };
        match exit_link {
            Ok(exit_link) => {
                row.status = Status::Attached(mechanism);
                return entry_link.into_iter().chain(exit_link).collect();
            }
            Err(errno) => {
                // Detach the half-attached pair so the fallback starts clean.
                undo(ebpf, &entry, entry_link);
                if let (Some(x), true) = (&exit, mechanism != Mechanism::Kprobe) {
                    unload(ebpf, x);
                }
                tries.push(Refusal { mechanism, errno });
            }
        }
    }
    row.status = Status::Denied(tries);
    Vec::new()
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
