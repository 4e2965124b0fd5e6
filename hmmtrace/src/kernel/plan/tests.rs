//! Plan resolution against recorded facts of several kernels. Each fixture says where its
//! facts come from.

use super::*;

fn facts(
    release: &str,
    vmlinux: &[&str],
    modules: &[(&str, &str)],
    traceable: Option<&[&str]>,
    kprobes: bool,
) -> KernelFacts {
    let mut functions: HashMap<String, String> = vmlinux
        .iter()
        .map(|f| (f.to_string(), String::new()))
        .collect();
    functions.extend(modules.iter().map(|(f, m)| (f.to_string(), m.to_string())));
    KernelFacts {
        release: release.into(),
        btf_functions: functions.keys().cloned().collect(),
        functions,
        traceable: traceable.map(|t| t.iter().map(|s| s.to_string()).collect()),
        kprobes,
        variables: HashMap::new(),
        pagemap_ops: Vec::new(),
        tracepoints: TRACEPOINTS.iter().map(|(_, t)| t.to_string()).collect(),
        btf: None,
    }
}

const CORE_6_12: &[&str] = &[
    "migrate_vma_setup",
    "migrate_vma_pages",
    "migrate_vma_finalize",
    "migrate_device_range",
    "migrate_device_pages",
    "migrate_device_finalize",
    "free_zone_device_folio",
    "__mmu_notifier_invalidate_range_start",
    "hmm_range_fault",
];

/// The QEMU guest of issue 4: Debian linux-source-6.12 with TEST_HMM=y and KPROBES. Functions
/// from mm/migrate_device.c, mm/memremap.c, mm/hmm.c, mm/mmu_notifier.c, lib/test_hmm.c of
/// 6.12; lib/ is built without ftrace flags, so test_hmm's callbacks are not ftrace-hookable
/// (shared/FACTS.md: fentry attached to the core functions, a kprobe to dmirror_devmem_fault).
fn vm_6_12() -> KernelFacts {
    let callbacks = [
        "dmirror_devmem_fault",
        "dmirror_devmem_free",
        "dmirror_interval_invalidate",
    ];
    let mut all: Vec<&str> = CORE_6_12.to_vec();
    all.extend(callbacks);
    facts("6.12.57", &all, &[], Some(CORE_6_12), true)
}

/// The lent NVIDIA machine (docs/kernel-facts.md): 6.18 without DEVICE_PRIVATE or KPROBES,
/// ftrace's function list unreadable; nvidia_uvm is loaded but is no driver the table knows.
fn gpu_6_18() -> KernelFacts {
    let mut f = facts(
        "6.18.44-fc-v657-gpu",
        CORE_6_12,
        &[("nv_migrate_vma", "nvidia_uvm")],
        None,
        false,
    );
    f.functions
        .insert("migrate_device_pfns".into(), String::new());
    f
}

/// A row of a core kernel function (not a driver's callback, not the tracepoint).
fn is_core_function(r: &PlanEntry) -> bool {
    !r.role.is_driver_callback() && r.role != Role::MmMigratePages
}

#[test]
fn vm_6_12_uses_fentry_for_the_core_and_kprobes_for_test_hmm() {
    let plan = resolve(&vm_6_12(), MechanismChoice::Auto, &[]);
    for row in plan.iter().filter(|r| is_core_function(r)) {
        assert_eq!(row.status, Status::Planned, "{row:?}");
        assert_eq!(
            row.mechanisms,
            [Mechanism::Fentry, Mechanism::Kprobe],
            "{row:?}"
        );
    }
    let fault = plan
        .iter()
        .find(|r| r.symbol == "dmirror_devmem_fault")
        .unwrap();
    assert_eq!(
        (fault.role, fault.probe()),
        (Role::MigrateToRam, hmmtrace_common::ProbeId::DeviceFault)
    );
    assert_eq!(
        fault.mechanisms,
        [Mechanism::Kprobe],
        "not ftrace-hookable: kprobe only"
    );
    let free = plan
        .iter()
        .find(|r| r.role == Role::FreeZoneDevice)
        .unwrap();
    assert_eq!(free.symbol, "free_zone_device_folio");
    assert_eq!(
        plan.iter().filter(|r| r.role.is_driver_callback()).count(),
        3
    );
}

#[test]
fn forcing_fentry_leaves_test_hmm_callbacks_unreachable_and_says_why() {
    let plan = resolve(&vm_6_12(), MechanismChoice::Only(Mechanism::Fentry), &[]);
    let inv = plan
        .iter()
        .find(|r| r.symbol == "dmirror_interval_invalidate")
        .unwrap();
    match &inv.status {
        Status::Unreachable(why) => assert!(
            why.contains("ftrace cannot hook it") && !why.contains("kprobe"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    let plan = resolve(&vm_6_12(), MechanismChoice::Only(Mechanism::Kprobe), &[]);
    let functions = || {
        plan.iter()
            .filter(|r| r.status == Status::Planned && r.role != Role::MmMigratePages)
    };
    assert!(functions().all(|r| r.mechanisms == [Mechanism::Kprobe]));
    assert_eq!(functions().count(), 12);
    // --mechanism chooses among fentry and kprobe; the tracepoint is attached as one.
    let tp = plan
        .iter()
        .find(|r| r.role == Role::MmMigratePages)
        .unwrap();
    assert_eq!(
        (&tp.symbol[..], &tp.mechanisms[..], &tp.status),
        (
            "migrate:mm_migrate_pages",
            &[Mechanism::Tracepoint][..],
            &Status::Planned
        )
    );
}

#[test]
fn linux_6_1_frees_through_free_zone_device_page() {
    // Linux 6.1 (Debian linux-source-6.1): mm/memremap.c has free_zone_device_page; the
    // migrate_device_* family is already in mm/migrate_device.c.
    let mut core: Vec<&str> = CORE_6_12
        .iter()
        .copied()
        .filter(|f| *f != "free_zone_device_folio")
        .collect();
    core.push("free_zone_device_page");
    let plan = resolve(
        &facts("6.1.158", &core, &[], None, true),
        MechanismChoice::Auto,
        &[],
    );
    let free = plan
        .iter()
        .find(|r| r.role == Role::FreeZoneDevice)
        .unwrap();
    assert_eq!(
        (free.symbol.as_str(), &free.status),
        ("free_zone_device_page", &Status::Planned)
    );
    assert!(
        plan.iter()
            .find(|r| r.role == Role::MigrateDeviceRange)
            .unwrap()
            .status
            == Status::Planned
    );
}

#[test]
fn linux_5_x_has_no_migrate_device_family() {
    // Before 6.1: migrate_vma_* in mm/migrate.c, device pages freed by free_devmap_managed_page.
    let core = [
        "migrate_vma_setup",
        "migrate_vma_pages",
        "migrate_vma_finalize",
        "free_devmap_managed_page",
        "__mmu_notifier_invalidate_range_start",
        "hmm_range_fault",
    ];
    let plan = resolve(
        &facts("5.15.0", &core, &[], None, true),
        MechanismChoice::Auto,
        &[],
    );
    for role in [
        Role::MigrateDeviceRange,
        Role::MigrateDevicePages,
        Role::MigrateDeviceFinalize,
    ] {
        let row = plan.iter().find(|r| r.role == role).unwrap();
        assert_eq!(row.status, Status::NotInKernel, "{row:?}");
    }
    assert_eq!(
        plan.iter()
            .find(|r| r.role == Role::FreeZoneDevice)
            .unwrap()
            .symbol,
        "free_devmap_managed_page"
    );
}

#[test]
fn gpu_6_18_without_kprobes_or_device_drivers() {
    let plan = resolve(&gpu_6_18(), MechanismChoice::Auto, &[]);
    // ftrace would not say what it can hook: fentry is tried, and the session reports denials.
    for row in plan.iter().filter(|r| is_core_function(r)) {
        assert_eq!(row.mechanisms, [Mechanism::Fentry], "{row:?}");
    }
    let callbacks: Vec<_> = plan
        .iter()
        .filter(|r| r.role.is_driver_callback())
        .collect();
    assert_eq!(callbacks.len(), 3);
    assert!(callbacks
        .iter()
        .all(|r| r.status == Status::NotInKernel && r.symbol.contains("no known driver")));
    // Forcing kprobes on a kernel without them: every row says why.
    let plan = resolve(&gpu_6_18(), MechanismChoice::Only(Mechanism::Kprobe), &[]);
    assert!(plan
        .iter()
        .filter(|r| is_core_function(r))
        .all(|r| matches!(&r.status, Status::Unreachable(w) if w.contains("CONFIG_KPROBES"))));
}

#[test]
fn extra_attach_adds_unknown_drivers_callbacks() {
    let mut f = gpu_6_18();
    f.functions
        .insert("uvm_devmem_fault".into(), "nvidia_uvm".into());
    let unreachable = resolve(
        &f,
        MechanismChoice::Auto,
        &["uvm_devmem_fault=migrate_to_ram".parse().unwrap()],
    );
    let row = unreachable
        .iter()
        .find(|r| r.symbol == "uvm_devmem_fault")
        .unwrap();
    assert!(
        matches!(&row.status, Status::Unreachable(w) if w.contains("in a module") && w.contains("aya-rs/aya#300")),
        "{row:?}"
    );
    // With module BTF describing it, fentry can be tried.
    f.btf_functions.insert("uvm_devmem_fault".into());
    let extra = [
        "uvm_devmem_fault=migrate_to_ram".parse().unwrap(),
        "missing_fn=page_free".parse().unwrap(),
    ];
    let plan = resolve(&f, MechanismChoice::Auto, &extra);
    let row = plan
        .iter()
        .find(|r| r.symbol == "uvm_devmem_fault")
        .unwrap();
    assert_eq!(
        (row.role, row.module.as_str(), &row.status),
        (Role::MigrateToRam, "nvidia_uvm", &Status::Planned)
    );
    assert_eq!(
        plan.iter()
            .find(|r| r.symbol == "missing_fn")
            .unwrap()
            .status,
        Status::NotInKernel
    );
    // The placeholder row for migrate_to_ram is gone now that a callback fills the role.
    assert!(!plan
        .iter()
        .any(|r| r.role == Role::MigrateToRam && r.symbol.contains("no known driver")));
}

#[test]
fn extra_attach_syntax_errors_are_clear() {
    let e = "foo".parse::<ExtraAttach>().unwrap_err().to_string();
    assert!(e.contains("FUNC=ROLE"), "{e}");
    let e = "foo=teleport"
        .parse::<ExtraAttach>()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown role 'teleport'") && e.contains("migrate_to_ram"),
        "{e}"
    );
    let e = "f;rm=page_free"
        .parse::<ExtraAttach>()
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a kernel function name"), "{e}");
}

#[test]
fn kallsyms_and_filter_function_parsing() {
    let k = KernelFacts::parse_kallsyms(
        "ffffffff8168c340 T migrate_vma_setup\n0000000000000000 t dmirror_devmem_fault\t[test_hmm]\nffffffff81000000 D some_data\nbad line\n",
    );
    assert_eq!(k.get("migrate_vma_setup").map(String::as_str), Some(""));
    assert_eq!(
        k.get("dmirror_devmem_fault").map(String::as_str),
        Some("test_hmm")
    );
    assert!(
        !k.contains_key("some_data"),
        "data symbols are not functions"
    );
    let t = KernelFacts::parse_filter_functions("migrate_vma_setup\nnv_migrate_vma [nvidia_uvm]\n");
    assert!(t.contains("migrate_vma_setup") && t.contains("nv_migrate_vma"));
}

#[test]
fn status_texts_name_the_errno() {
    let s = Status::Denied(vec![
        Refusal {
            mechanism: Mechanism::Fentry,
            errno: libc::EPERM,
        },
        Refusal {
            mechanism: Mechanism::Kprobe,
            errno: libc::ENOENT,
        },
    ])
    .to_string();
    assert!(
        s.contains("fentry") && s.contains("Operation not permitted") && s.contains("kprobe"),
        "{s}"
    );
}

#[test]
fn pagemap_ops_are_found_by_table_and_by_name() {
    let text = "ffffffffc0a01000 r dmirror_devmem_ops\t[test_hmm]\n\
                ffffffff82000000 d my_gpu_pgmap_ops\t[mygpu]\n\
                ffffffff82000100 t dmirror_devmem_fault\t[test_hmm]\n\
                0000000000000000 r nouveau_dmem_pagemap_ops\t[nouveau]\n";
    let ops = KernelFacts::parse_pagemap_ops(text);
    assert_eq!(
        ops,
        [
            PagemapOps {
                addr: 0xffffffffc0a01000,
                symbol: "dmirror_devmem_ops".into(),
                module: "test_hmm".into()
            },
            PagemapOps {
                addr: 0xffffffff82000000,
                symbol: "my_gpu_pgmap_ops".into(),
                module: "mygpu".into()
            },
        ],
        "functions and hidden (zero) addresses are left out"
    );
}

/// The modules variant of the VM (issue 17): test_hmm loaded as a module while a session runs.
/// Its functions are in kallsyms under `[test_hmm]` and not in vmlinux's BTF.
fn vm_6_12_modules() -> KernelFacts {
    let mut f = facts(
        "6.12.117",
        CORE_6_12,
        &[
            ("dmirror_devmem_fault", "test_hmm"),
            ("dmirror_devmem_free", "test_hmm"),
            ("dmirror_interval_invalidate", "test_hmm"),
            ("dmirror_fops_open", "test_hmm"),
        ],
        None,
        true,
    );
    f.btf_functions.retain(|name| f.functions[name].is_empty());
    f
}

#[test]
fn a_module_loaded_later_gets_its_known_callbacks_and_attach_ones_by_kprobe() {
    let f = vm_6_12_modules();
    let extra = vec![
        "dmirror_fops_open=page_free"
            .parse::<ExtraAttach>()
            .unwrap(),
        "nouveau_dmem_page_free=page_free".parse().unwrap(),
    ];
    let rows = resolve_module(&f, MechanismChoice::Auto, &extra, "test_hmm");
    let got: Vec<(&str, Role, &[Mechanism], &str)> = rows
        .iter()
        .map(|r| {
            (
                r.symbol.as_str(),
                r.role,
                &r.mechanisms[..],
                r.module.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "dmirror_devmem_fault",
                Role::MigrateToRam,
                &[Mechanism::Kprobe][..],
                "test_hmm"
            ),
            (
                "dmirror_devmem_free",
                Role::PageFree,
                &[Mechanism::Kprobe][..],
                "test_hmm"
            ),
            (
                "dmirror_interval_invalidate",
                Role::IntervalInvalidate,
                &[Mechanism::Kprobe][..],
                "test_hmm"
            ),
            (
                "dmirror_fops_open",
                Role::PageFree,
                &[Mechanism::Kprobe][..],
                "test_hmm"
            ),
        ]
    );
    assert!(rows[..3].iter().all(|r| r.found.is_table()));
    assert_eq!(rows[3].found, crate::probe::Found::Attach);
    assert!(rows.iter().all(|r| r.status == Status::Planned));
    // Another module's load plans nothing of test_hmm's, and nothing it does not define.
    assert!(resolve_module(&f, MechanismChoice::Auto, &extra, "nouveau").is_empty());
    // With fentry only, the row says why a module function cannot have it.
    let only = resolve_module(
        &f,
        MechanismChoice::Only(Mechanism::Fentry),
        &[],
        "test_hmm",
    );
    match &only[0].status {
        Status::Unreachable(why) => assert!(why.contains("in a module"), "{why}"),
        other => panic!("{other:?}"),
    }
}
