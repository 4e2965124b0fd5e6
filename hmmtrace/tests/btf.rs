//! hmmtrace's BTF reader against the running kernel's own BTF, checked with bpftool's dump of
//! the same file (an independent parser). Needs no root: /sys/kernel/btf/vmlinux is readable.

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use std::collections::HashMap;
use std::process::Command;

use hmmtrace::kernel::btf::Btf;

/// bpftool's raw dump: struct name → member → bit offset, and enum constant → value.
fn bpftool_dump() -> (HashMap<String, HashMap<String, u32>>, HashMap<String, i64>) {
    let o = Command::new("bpftool")
        .args([
            "btf",
            "dump",
            "file",
            "/sys/kernel/btf/vmlinux",
            "format",
            "raw",
        ])
        .output()
        .expect("bpftool is installed (cargo xtask setup installs it as root)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let (mut structs, mut enums) = (HashMap::new(), HashMap::new());
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('[') {
            current = line
                .split_once("STRUCT '")
                .and_then(|(_, r)| r.split_once('\''))
                .map(|(n, _)| n.to_string());
            if let Some(n) = &current {
                structs.entry(n.clone()).or_insert_with(HashMap::new);
            }
        } else if let (Some(s), Some(rest)) = (&current, line.trim().strip_prefix('\'')) {
            let (name, rest) = rest.split_once('\'').unwrap();
            if let Some(bits) = rest.split("bits_offset=").nth(1) {
                let bits: u32 = bits.split_whitespace().next().unwrap().parse().unwrap();
                structs.get_mut(s).unwrap().insert(name.to_string(), bits);
            }
        }
        if let Some(rest) = line.trim().strip_prefix("'MMU_NOTIFY_") {
            let (name, val) = rest.split_once("' val=").unwrap();
            enums.insert(format!("MMU_NOTIFY_{name}"), val.parse().unwrap());
        }
    }
    (structs, enums)
}

#[test]
fn member_offsets_and_enum_values_match_bpftool() {
    let btf = Btf::from_sysfs().unwrap();
    let (structs, enums) = bpftool_dump();
    // The structs the probes read.
    for name in [
        "migrate_vma",
        "hmm_range",
        "mmu_notifier_range",
        "dev_pagemap",
        "vm_fault",
    ] {
        // hmm_range exists only with CONFIG_HMM_MIRROR (not on this project's host kernel).
        let Some(members) = structs.get(name) else {
            assert_eq!(
                btf.member_offset(name, "start"),
                None,
                "{name} is not in this kernel"
            );
            continue;
        };
        assert!(!members.is_empty(), "{name} has members");
        for (member, bits) in members {
            if member != "(anon)" && bits % 8 == 0 {
                assert_eq!(
                    btf.member_offset(name, member),
                    Some(bits / 8),
                    "{name}.{member}"
                );
            }
        }
    }
    assert_eq!(enums.len(), 8, "{enums:?}");
    for (name, value) in &enums {
        assert_eq!(btf.enum_value(name), Some(*value), "{name}");
    }
    assert!(btf.has_function("migrate_pages"));
    assert!(!btf.has_function("no_such_function_in_any_kernel"));
}

#[test]
fn nested_members_the_probes_need() {
    let btf = Btf::from_sysfs().unwrap();
    // The device page's pgmap sits in anonymous structs and unions: of struct page in 6.12
    // (include/linux/mm_types.h), of struct folio in 6.18, which has no page->pgmap.
    let page = btf.member_offset("page", "pgmap");
    let folio = btf.member_offset("folio", "pgmap");
    assert!(
        page.is_some() != folio.is_some(),
        "exactly one of page.pgmap ({page:?}), folio.pgmap ({folio:?})"
    );
    let pgmap = page.or(folio).unwrap();
    assert!(
        pgmap > 0 && pgmap < 64 && pgmap.is_multiple_of(8),
        "{pgmap}"
    );
    // vm_fault's address is inside an anonymous const struct.
    assert!(btf.member_offset("vm_fault", "address").is_some());
    assert_eq!(
        btf.member_offset("dev_pagemap", "owner").is_some(),
        btf.member_offset("dev_pagemap", "ops").is_some()
    );
}

#[test]
#[ignore = "needs root (tracefs, kallsyms); cargo xtask test runs it as root"]
fn the_plan_for_this_kernel_agrees_with_its_kallsyms_and_pmus() {
    use hmmtrace::kernel::plan::{resolve, KernelFacts, Mechanism, MechanismChoice, Status};
    let tracefs = hmmtrace::kernel::tracefs::root().unwrap();
    let facts = KernelFacts::from_system(&tracefs).unwrap();
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
    // Functions are in kallsyms, tracepoints (`category:name`) in tracefs.
    let has = |f: &str| {
        if f.contains(':') {
            hmmtrace::kernel::tracefs::has_event(&tracefs, f)
        } else {
            kallsyms
                .lines()
                .any(|l| l.split_whitespace().nth(2) == Some(f))
        }
    };
    let kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
    for row in resolve(&facts, MechanismChoice::Auto, &[]) {
        if row.role.is_driver_callback() && row.status == Status::NotInKernel {
            continue;
        }
        assert_eq!(
            row.status == Status::NotInKernel,
            !has(&row.symbol),
            "{row:?}"
        );
        if row.status == Status::Planned && row.mechanisms != [Mechanism::Tracepoint] {
            assert_eq!(
                row.mechanisms.contains(&Mechanism::Kprobe),
                kprobes,
                "{row:?}"
            );
        }
    }
}
