//! Which privileges tracing needs, and turning the kernel's EPERM/EACCES into a
//! [`NoPrivilege`] error that names what this process lacks.
//!
//! Tracing needs `CAP_BPF` (maps and programs), `CAP_PERFMON` (tracing programs, kprobe and
//! tracepoint perf events) and read access to tracefs, which is root's alone unless the process
//! has `CAP_DAC_READ_SEARCH`; `CAP_SYS_ADMIN` stands for the first two, and root has all.

use caps::{CapSet, Capability};

use crate::error::{privilege_refusal, NoPrivilege};

/// The capabilities tracing needs, each with the ones that also grant it.
const NEEDED: &[(Capability, &[Capability])] = &[
    (Capability::CAP_BPF, &[Capability::CAP_SYS_ADMIN]),
    (Capability::CAP_PERFMON, &[Capability::CAP_SYS_ADMIN]),
    (
        Capability::CAP_DAC_READ_SEARCH,
        &[Capability::CAP_DAC_OVERRIDE],
    ),
];

/// The needed capabilities this process lacks in its effective set, by kernel name.
pub fn missing_capabilities() -> Vec<&'static str> {
    let have = |c: Capability| caps::has_cap(None, CapSet::Effective, c).unwrap_or(false);
    NEEDED
        .iter()
        .filter(|(cap, also)| !have(*cap) && !also.iter().any(|a| have(*a)))
        .map(|(cap, _)| name(*cap))
        .collect()
}

fn name(c: Capability) -> &'static str {
    match c {
        Capability::CAP_BPF => "CAP_BPF",
        Capability::CAP_PERFMON => "CAP_PERFMON",
        Capability::CAP_DAC_READ_SEARCH => "CAP_DAC_READ_SEARCH",
        _ => "another capability",
    }
}

/// `e`, as a [`NoPrivilege`] error when the kernel refused it for lack of privilege (an EPERM
/// or EACCES anywhere in its chain) and this process lacks a needed capability; else `e` as it
/// is (root can be refused too, by a lockdown or a security module: that is a failure, not a
/// missing privilege).
pub fn classify(doing: &str, e: anyhow::Error) -> anyhow::Error {
    if privilege_refusal(&e).is_none() {
        return e;
    }
    let missing = missing_capabilities();
    if missing.is_empty() {
        return e;
    }
    anyhow::Error::new(NoPrivilege {
        doing: doing.to_string(),
        missing,
        source: e,
    })
}

/// Like [`classify`], for a bare OS error number.
pub fn classify_errno(doing: &str, errno: i32) -> Option<anyhow::Error> {
    let e = anyhow::Error::new(std::io::Error::from_raw_os_error(errno));
    let classified = classify(doing, e);
    classified.is::<NoPrivilege>().then_some(classified)
}
