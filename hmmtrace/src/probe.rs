//! The attach plan's vocabulary: what a probe does ([`Role`]), how it is attached
//! ([`Mechanism`]), and where each row of a plan stands ([`Status`], [`PlanEntry`]).
//!
//! The kernel source resolves and attaches a plan (`kernel::plan`, `kernel::attach`); the
//! capture header stores it as it is (serde), and sinks read it typed, so nothing parses a
//! status back out of a sentence. Captures written before the plan was typed stored four
//! strings per row; [`PlanEntry`]'s deserializer still reads them (see [`legacy`]).

use std::fmt;

use hmmtrace_common::ProbeId;
use serde::{Deserialize, Serialize};

/// What a program does with the function (or tracepoint) it is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    MigrateVmaSetup,
    MigrateVmaPages,
    MigrateVmaFinalize,
    MigrateDeviceRange,
    MigrateDevicePages,
    MigrateDeviceFinalize,
    /// A driver's `dev_pagemap_ops.migrate_to_ram(struct vm_fault *)`.
    MigrateToRam,
    /// The core free path of a ZONE_DEVICE page, which calls `pgmap->ops->page_free`.
    FreeZoneDevice,
    /// A driver's `dev_pagemap_ops.page_free(struct page *)` (or `folio_free`).
    PageFree,
    /// `__mmu_notifier_invalidate_range_start(struct mmu_notifier_range *)`.
    InvalidateRangeStart,
    /// A driver's `mmu_interval_notifier_ops.invalidate(mni, range, cur_seq)`.
    IntervalInvalidate,
    HmmRangeFault,
    /// The `migrate:mm_migrate_pages` tracepoint (system-RAM migrations).
    MmMigratePages,
}

impl Role {
    pub const ALL: [Role; 13] = [
        Role::MigrateVmaSetup,
        Role::MigrateVmaPages,
        Role::MigrateVmaFinalize,
        Role::MigrateDeviceRange,
        Role::MigrateDevicePages,
        Role::MigrateDeviceFinalize,
        Role::MigrateToRam,
        Role::FreeZoneDevice,
        Role::PageFree,
        Role::InvalidateRangeStart,
        Role::IntervalInvalidate,
        Role::HmmRangeFault,
        Role::MmMigratePages,
    ];

    /// The name used on the command line (`--attach FUNC=ROLE`), in the plan table and in
    /// program names (`fentry_<role>`).
    pub const fn name(self) -> &'static str {
        match self {
            Role::MigrateVmaSetup => "migrate_vma_setup",
            Role::MigrateVmaPages => "migrate_vma_pages",
            Role::MigrateVmaFinalize => "migrate_vma_finalize",
            Role::MigrateDeviceRange => "migrate_device_range",
            Role::MigrateDevicePages => "migrate_device_pages",
            Role::MigrateDeviceFinalize => "migrate_device_finalize",
            Role::MigrateToRam => "migrate_to_ram",
            Role::FreeZoneDevice => "free_zone_device",
            Role::PageFree => "page_free",
            Role::InvalidateRangeStart => "invalidate_range_start",
            Role::IntervalInvalidate => "interval_invalidate",
            Role::HmmRangeFault => "hmm_range_fault",
            Role::MmMigratePages => "mm_migrate_pages",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The logical probe whose events this role contributes to.
    pub const fn probe(self) -> ProbeId {
        match self {
            Role::MigrateVmaSetup
            | Role::MigrateVmaPages
            | Role::MigrateVmaFinalize
            | Role::MigrateDeviceRange
            | Role::MigrateDevicePages
            | Role::MigrateDeviceFinalize => ProbeId::Migration,
            Role::MigrateToRam => ProbeId::DeviceFault,
            Role::FreeZoneDevice | Role::PageFree => ProbeId::PageFree,
            Role::InvalidateRangeStart | Role::IntervalInvalidate => ProbeId::Invalidation,
            Role::HmmRangeFault => ProbeId::RangeFault,
            Role::MmMigratePages => ProbeId::SystemMigration,
        }
    }

    /// Driver callbacks are hooked once per driver that the kernel has; core functions once.
    pub const fn is_driver_callback(self) -> bool {
        matches!(
            self,
            Role::MigrateToRam | Role::PageFree | Role::IntervalInvalidate
        )
    }

    /// Roles `--attach FUNC=ROLE` accepts: every function role (a tracepoint is no function).
    pub fn attachable() -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(|r| *r != Role::MmMigratePages)
    }
}

/// How a program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// fentry/fexit (BPF trampolines): cheapest, needs BTF and an ftrace-hookable function.
    Fentry,
    /// kprobe/kretprobe: works on any non-blacklisted function when CONFIG_KPROBES is set.
    Kprobe,
    /// A static tracepoint.
    Tracepoint,
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mechanism::Fentry => "fentry",
            Mechanism::Kprobe => "kprobe",
            Mechanism::Tracepoint => "tracepoint",
        })
    }
}

impl Mechanism {
    fn from_name(s: &str) -> Option<Mechanism> {
        [Mechanism::Fentry, Mechanism::Kprobe, Mechanism::Tracepoint]
            .into_iter()
            .find(|m| m.to_string() == s)
    }
}

/// One refused attempt to attach: the mechanism and the errno the kernel gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub mechanism: Mechanism,
    pub errno: i32,
}

/// Where a plan row stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Resolved; not attached yet.
    Planned,
    /// No candidate function exists in this kernel.
    NotInKernel,
    /// The function exists but no allowed mechanism can reach it; says why.
    Unreachable(String),
    /// Attached with this mechanism.
    Attached(Mechanism),
    /// Every mechanism tried was refused.
    Denied(Vec<Refusal>),
    /// Attached, but these struct fields have no offset in this kernel's BTF: the events mark
    /// them unknown.
    OffsetsUnknown {
        /// `None` only in captures of older versions, which did not record it.
        mechanism: Option<Mechanism>,
        fields: Vec<String>,
    },
    /// Was attached; its module was unloaded during the session, and its programs detached.
    Unloaded,
}

impl Status {
    pub fn is_attached(&self) -> bool {
        matches!(self, Status::Attached(_) | Status::OffsetsUnknown { .. })
    }

    /// The mechanism the row is attached with, where it is attached and that is known.
    pub fn attached(&self) -> Option<Mechanism> {
        match self {
            Status::Attached(m) => Some(*m),
            Status::OffsetsUnknown { mechanism, .. } => *mechanism,
            _ => None,
        }
    }

    /// A row the kernel has but that could not be attached: worth a warning.
    pub fn is_refused(&self) -> bool {
        matches!(self, Status::Denied(_) | Status::Unreachable(_))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Planned => f.write_str("planned"),
            Status::NotInKernel => f.write_str("not in this kernel"),
            Status::Unreachable(why) => write!(f, "unreachable: {why}"),
            Status::Attached(m) => write!(f, "attached ({m})"),
            Status::Denied(tries) => {
                f.write_str("denied:")?;
                for t in tries {
                    write!(
                        f,
                        " {} {}",
                        t.mechanism,
                        std::io::Error::from_raw_os_error(t.errno)
                    )?;
                }
                Ok(())
            }
            Status::OffsetsUnknown { fields, .. } => {
                write!(f, "field offsets unknown: {}", fields.join(", "))
            }
            Status::Unloaded => f.write_str("module unloaded: detached"),
        }
    }
}

/// How a plan row's function was found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "how")]
pub enum Found {
    /// hmmtrace's tables: the core functions, the known drivers' callbacks, the tracepoints.
    #[default]
    Table,
    /// `--attach FUNC=ROLE`.
    Attach,
    /// Read at run time from a device page's `struct dev_pagemap_ops`: the ops' address and
    /// its symbol, where kallsyms names it.
    Discovered { ops: u64, ops_symbol: String },
}

impl Found {
    pub fn is_table(&self) -> bool {
        *self == Found::Table
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Table => f.write_str("table"),
            Found::Attach => f.write_str("--attach"),
            Found::Discovered { ops, ops_symbol } if ops_symbol.is_empty() => {
                write!(f, "discovered in dev_pagemap_ops at {ops:#x}")
            }
            Found::Discovered { ops_symbol, .. } => {
                write!(f, "discovered in {ops_symbol}")
            }
        }
    }
}

/// One row of an attach plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanEntry {
    pub role: Role,
    /// The function (or `category:name` of a tracepoint), or the first candidate when none
    /// exists.
    pub symbol: String,
    /// Module that defines it (empty: vmlinux).
    #[serde(default)]
    pub module: String,
    /// Mechanisms to try, in order; empty when none can work.
    #[serde(default)]
    pub mechanisms: Vec<Mechanism>,
    pub status: Status,
    /// How the function was found (absent: from the tables).
    #[serde(default, skip_serializing_if = "Found::is_table")]
    pub found: Found,
}

impl PlanEntry {
    /// The logical probe the row feeds.
    pub fn probe(&self) -> ProbeId {
        self.role.probe()
    }
}

impl<'de> Deserialize<'de> for PlanEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PlanEntry, D::Error> {
        #[derive(Deserialize)]
        struct Current {
            role: Role,
            symbol: String,
            #[serde(default)]
            module: String,
            #[serde(default)]
            mechanisms: Vec<Mechanism>,
            status: Status,
            #[serde(default)]
            found: Found,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            Current(Current),
            Legacy(legacy::Row),
        }
        Ok(match Any::deserialize(d)? {
            Any::Current(c) => PlanEntry {
                role: c.role,
                symbol: c.symbol,
                module: c.module,
                mechanisms: c.mechanisms,
                status: c.status,
                found: c.found,
            },
            Any::Legacy(row) => row.into_entry(),
        })
    }
}

/// Plan rows as captures stored them before the plan was typed (`{probe, symbol, mechanism,
/// status}`, four strings). Read only; the strings came from this crate's own `Display`, so
/// they parse back exactly, and a text this crate never wrote is kept as an unreachable
/// reason rather than dropped.
pub mod legacy {
    use super::*;

    #[derive(Deserialize)]
    pub struct Row {
        probe: String,
        symbol: String,
        mechanism: String,
        status: String,
    }

    impl Row {
        pub fn into_entry(self) -> PlanEntry {
            let role = role_of(&self.probe, &self.symbol);
            let status = parse_status(&self.status);
            let mechanisms = match (status.attached(), Mechanism::from_name(&self.mechanism)) {
                (Some(m), _) => vec![m],
                (None, Some(m)) => vec![m],
                (None, None) => Vec::new(),
            };
            PlanEntry {
                role,
                symbol: self.symbol,
                module: String::new(),
                mechanisms,
                status,
                found: Found::Table,
            }
        }
    }

    /// The role a legacy row played: probes with one role say it; the others are told apart by
    /// the core functions' names, which the legacy writer used as they are.
    fn role_of(probe: &str, symbol: &str) -> Role {
        match probe {
            "system_migration" => Role::MmMigratePages,
            "device_fault" => Role::MigrateToRam,
            "range_fault" => Role::HmmRangeFault,
            "page_free"
                if symbol.starts_with("free_zone_device")
                    || symbol == "free_devmap_managed_page" =>
            {
                Role::FreeZoneDevice
            }
            "page_free" => Role::PageFree,
            "invalidation" if symbol == "__mmu_notifier_invalidate_range_start" => {
                Role::InvalidateRangeStart
            }
            "invalidation" => Role::IntervalInvalidate,
            _ => Role::from_name(symbol).unwrap_or(Role::MigrateVmaSetup),
        }
    }

    fn parse_status(s: &str) -> Status {
        if s == "planned" {
            return Status::Planned;
        }
        if s == "not in this kernel" {
            return Status::NotInKernel;
        }
        if let Some(m) = s
            .strip_prefix("attached (")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(Mechanism::from_name)
        {
            return Status::Attached(m);
        }
        if let Some(why) = s.strip_prefix("unreachable: ") {
            return Status::Unreachable(why.to_string());
        }
        if let Some(fields) = s.strip_prefix("field offsets unknown: ") {
            // The legacy writer did not record the mechanism of such a row.
            return Status::OffsetsUnknown {
                mechanism: None,
                fields: fields.split(", ").map(str::to_string).collect(),
            };
        }
        if let Some(rest) = s.strip_prefix("denied:") {
            // " fentry <strerror> (os error N) kprobe <strerror> (os error M)"
            let mut tries = Vec::new();
            let mut mechanism = None;
            for word in rest.split_whitespace() {
                if let Some(m) = Mechanism::from_name(word) {
                    mechanism = Some(m);
                } else if let (Some(m), Some(n)) = (
                    mechanism,
                    word.strip_suffix(')').and_then(|n| n.parse().ok()),
                ) {
                    tries.push(Refusal {
                        mechanism: m,
                        errno: n,
                    });
                    mechanism = None;
                }
            }
            return Status::Denied(tries);
        }
        Status::Unreachable(s.to_string())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_status_this_crate_wrote_parses_back() {
            let all = [
                Status::Planned,
                Status::NotInKernel,
                Status::Unreachable(
                    "fentry: not in BTF; kprobe: kernel built without CONFIG_KPROBES".into(),
                ),
                Status::Attached(Mechanism::Fentry),
                Status::Attached(Mechanism::Tracepoint),
                Status::Denied(vec![
                    Refusal {
                        mechanism: Mechanism::Fentry,
                        errno: libc::EPERM,
                    },
                    Refusal {
                        mechanism: Mechanism::Kprobe,
                        errno: libc::ENOENT,
                    },
                ]),
                Status::OffsetsUnknown {
                    mechanism: None,
                    fields: vec!["page.pgmap".into(), "vm_fault.page".into()],
                },
            ];
            for s in all {
                assert_eq!(parse_status(&s.to_string()), s, "{s}");
            }
        }

        #[test]
        fn a_legacy_header_row_reads_as_a_typed_entry() {
            let rows = r#"[
                {"probe":"page_free","symbol":"free_zone_device_folio","mechanism":"fentry","status":"attached (fentry)"},
                {"probe":"page_free","symbol":"dmirror_devmem_free","mechanism":"-","status":"denied: fentry Operation not permitted (os error 1)"},
                {"probe":"system_migration","symbol":"migrate:mm_migrate_pages","mechanism":"tracepoint","status":"attached (tracepoint)"},
                {"probe":"migration","symbol":"migrate_device_pages","mechanism":"-","status":"not in this kernel"}
            ]"#;
            let plan: Vec<PlanEntry> = serde_json::from_str(rows).unwrap();
            assert_eq!(plan[0].role, Role::FreeZoneDevice);
            assert_eq!(plan[0].status, Status::Attached(Mechanism::Fentry));
            assert_eq!(plan[1].role, Role::PageFree);
            assert_eq!(
                plan[1].status,
                Status::Denied(vec![Refusal {
                    mechanism: Mechanism::Fentry,
                    errno: 1
                }])
            );
            assert_eq!(plan[2].role, Role::MmMigratePages);
            assert_eq!(plan[2].status.attached(), Some(Mechanism::Tracepoint));
            assert_eq!(plan[3].role, Role::MigrateDevicePages);
            assert_eq!(plan[3].status, Status::NotInKernel);
            // And the typed form round-trips.
            let json = serde_json::to_string(&plan).unwrap();
            assert_eq!(serde_json::from_str::<Vec<PlanEntry>>(&json).unwrap(), plan);
        }
    }
}
