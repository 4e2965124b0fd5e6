//! `hmmtrace probes`: resolve the attach plan for this kernel, attach it, and print what
//! attached, what the kernel lacks and what it refused.

use std::process::ExitCode;

use crate::kernel::plan::{Mechanism, MechanismChoice};
use crate::kernel::{Session, SessionOptions};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum MechanismArg {
    Auto,
    Fentry,
    Kprobe,
}

impl From<MechanismArg> for MechanismChoice {
    fn from(m: MechanismArg) -> MechanismChoice {
        match m {
            MechanismArg::Auto => MechanismChoice::Auto,
            MechanismArg::Fentry => MechanismChoice::Only(Mechanism::Fentry),
            MechanismArg::Kprobe => MechanismChoice::Only(Mechanism::Kprobe),
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Attach mechanism: fentry/fexit first then kprobe/kretprobe (auto), or only one.
    #[arg(long, value_enum, default_value = "auto")]
    mechanism: MechanismArg,
    /// Also hook a driver callback the built-in table does not know: FUNC=ROLE, where ROLE is
    /// migrate_to_ram, page_free or interval_invalidate (or any core role). Repeatable.
    #[arg(long = "attach", value_name = "FUNC=ROLE")]
    extra: Vec<String>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let extra = super::parse_attach(&a.extra)?;
    let session = Session::start(&SessionOptions {
        mechanism: a.mechanism.into(),
        extra,
        ..Default::default()
    })?;
    println!(
        "{:<17} {:<26} {:<40} {:<10} status",
        "probe", "role", "symbol", "module"
    );
    let mut attached = 0;
    for row in &session.plan {
        let module = if row.module.is_empty() {
            "vmlinux"
        } else {
            &row.module
        };
        println!(
            "{:<17} {:<26} {:<40} {:<10} {}",
            row.probe().name(),
            row.role.name(),
            row.symbol,
            module,
            row.status
        );
        attached += row.status.is_attached() as usize;
    }
    eprintln!("{attached} attached; detached again on exit");
    if session.plan.iter().any(|r| !r.module.is_empty()) {
        // The plan's kprobe rows in modules are not a fallback taken by accident.
        eprintln!(
            "functions in modules are attached with kprobes: aya cannot attach fentry to module \
             functions yet (no module BTF: aya-rs/aya#300); record, live and serve also attach to \
             driver modules loaded while they run, and detach from those unloaded"
        );
    }
    Ok(if attached > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
