//! The census's parsing and naming, against recorded text of the VM's 6.12 kernel (the
//! kallsyms and Module.symvers lines are copied from it, with test_hmm as a module).

use super::*;
use crate::kernel::modules::Loaded;

const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff81200000 T hmm_range_fault
ffffffff81200400 t hmm_vma_walk_pmd
ffffffff81210000 T migrate_vma_setup
ffffffff81210800 T migrate_vma_pages
ffffffff81211000 T migrate_vma_finalize
ffffffff81220000 T mmu_interval_notifier_insert
ffffffff81220400 T mmu_interval_notifier_remove
ffffffff81230000 T memremap_pages
ffffffff81230800 D dmirror_devmem_ops_not_text
ffffffff81400000 T _etext
ffffffffc0000000 t dmirror_fops_unlocked_ioctl\t[test_hmm]
ffffffffc0000800 t dmirror_range_fault\t[test_hmm]
";

const SYMVERS: &str = "\
0x1a2b3c4d\thmm_range_fault\tvmlinux\tEXPORT_SYMBOL_GPL\t
0x1a2b3c4e\tmigrate_vma_setup\tvmlinux\tEXPORT_SYMBOL\t
0x1a2b3c4f\tmigrate_vma_pages\tvmlinux\tEXPORT_SYMBOL\t
0x1a2b3c50\tmmu_interval_notifier_insert\tvmlinux\tEXPORT_SYMBOL_GPL\t
0x1a2b3c51\tprintk\tvmlinux\tEXPORT_SYMBOL\t
garbage line
";

#[test]
fn symvers_gives_each_export_its_type_and_skips_what_is_not_an_export_line() {
    let v = symbols::parse_symvers(SYMVERS);
    assert_eq!(v.len(), 5);
    assert_eq!(v[0], ("hmm_range_fault".into(), ExportType::Gpl));
    assert_eq!(v[1].1, ExportType::Plain);
    let covered_names: Vec<&str> = v
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| covered(n))
        .collect();
    assert_eq!(
        covered_names,
        [
            "hmm_range_fault",
            "migrate_vma_setup",
            "migrate_vma_pages",
            "mmu_interval_notifier_insert"
        ]
    );
}

#[test]
fn kallsyms_names_the_function_an_address_falls_in_and_its_module() {
    let s = symbols::Symbols::parse(KALLSYMS).with_modules(&Loaded::parse(
        "test_hmm 45056 0 - Live 0xffffffffc0000000 (O)\n",
    ));
    assert_eq!(s.module_of("hmm_range_fault").as_deref(), Some("vmlinux"));
    assert_eq!(
        s.module_of("dmirror_range_fault").as_deref(),
        Some("test_hmm")
    );
    assert!(!s.is_function("dmirror_devmem_ops_not_text"));
    assert_eq!(
        s.containing(0xffffffffc0000812),
        Some(("dmirror_range_fault", "test_hmm"))
    );
    assert_eq!(
        s.containing(0xffffffff81200004),
        Some(("hmm_range_fault", ""))
    );
    assert_eq!(s.containing(0x1000), None);
    // Far past the last symbol is no function.
    assert_eq!(s.containing(0xffffffffc0000800 + (2 << 20)), None);
    // An address past a module's core is no function of it.
    let s = symbols::Symbols::parse(KALLSYMS).with_modules(&Loaded::parse(
        "test_hmm 2048 0 - Live 0xffffffffc0000000 (O)\n",
    ));
    assert_eq!(s.containing(0xffffffffc0000812), None);
    assert_eq!(
        s.containing(0xffffffffc0000012),
        Some(("dmirror_fops_unlocked_ioctl", "test_hmm"))
    );
    assert_eq!(
        s.containing(0xffffffff81200004),
        Some(("hmm_range_fault", ""))
    );
}

fn census() -> Census {
    let ex = |name: &str, ty, importers: &[&str]| Export {
        name: name.into(),
        export_type: ty,
        defined_in: "vmlinux".into(),
        importers: importers.iter().map(|s| s.to_string()).collect(),
        callers: Vec::new(),
    };
    Census {
        release: "6.12.117".into(),
        symvers: Some("/lib/modules/6.12.117/build/Module.symvers".into()),
        exports: vec![
            ex("hmm_range_fault", ExportType::Gpl, &["test_hmm"]),
            ex("migrate_vma_pages", ExportType::Plain, &[]),
            ex("migrate_vma_setup", ExportType::Plain, &[]),
            ex(
                "mmu_interval_notifier_insert",
                ExportType::Gpl,
                &["census_probe"],
            ),
        ],
        modules: vec![
            Module {
                name: "census_probe".into(),
                file: Some("/lib/modules/6.12.117/extra/census_probe.ko".into()),
                license: Some("GPL".into()),
                taint: "O".into(),
                imports: vec!["mmu_interval_notifier_insert".into()],
            },
            Module {
                name: "mystery".into(),
                file: None,
                license: None,
                taint: "PE".into(),
                imports: Vec::new(),
            },
        ],
        watched_ns: 2_000_000_000,
        uncounted_calls: 0,
        not_counted: Vec::new(),
    }
}

#[test]
fn run_time_calls_are_named_by_caller_and_what_nothing_consumes_is_dangling() {
    let mut c = census();
    add_calls(
        &mut c,
        KALLSYMS,
        &Loaded::parse("test_hmm 45056 0 - Live 0xffffffffc0000000 (O)\n"),
        &[
            // migrate_vma_setup called twice from test_hmm's ioctl, at two return addresses.
            (0xffffffff81210000, 0xffffffffc0000010, 3),
            (0xffffffff81210000, 0xffffffffc0000020, 2),
            // hmm_range_fault from dmirror_range_fault.
            (0xffffffff81200000, 0xffffffffc0000840, 7),
            // A return address no symbol holds.
            (0xffffffff81200000, 0x10, 1),
            // One in a module's freed init code, past its core: not the preceding symbol's.
            (0xffffffff81200000, 0xffffffffc0100000, 1),
            // A function the census does not cover: ignored.
            (0xffffffff81230000, 0xffffffffc0000010, 4),
        ],
    );
    let setup = &c.exports[2];
    assert_eq!(setup.callers.len(), 1);
    assert_eq!(
        (
            setup.callers[0].function.as_str(),
            setup.callers[0].module.as_str(),
            setup.calls()
        ),
        ("dmirror_fops_unlocked_ioctl", "test_hmm", 5)
    );
    let fault = &c.exports[0];
    assert_eq!(fault.callers[0].calls, 7);
    assert_eq!(fault.callers.len(), 3);
    assert!(fault.callers[1..]
        .iter()
        .all(|c| c.module == "?" && c.function.contains("no symbol")));
    let dangling: Vec<&str> = c.dangling().map(|e| e.name.as_str()).collect();
    assert_eq!(dangling, ["migrate_vma_pages"]);
    let text = render::text(&c);
    assert!(
        text.contains("census_probe [GPL; taint O (out of tree)"),
        "{text}"
    );
    assert!(
        text.contains(
            "mystery [taint PE (proprietary, unsigned); no .ko file found: imports unknown]"
        ),
        "{text}"
    );
    assert!(text.contains("1 module file(s) not read could"), "{text}");
    assert!(text.contains("no call seen): migrate_vma_pages"), "{text}");
    assert!(text.contains("EXPORT_SYMBOL_GPL"), "{text}");
    let html = render::html(&c);
    assert!(
        html.contains(r#"<tr class="dangling"><td class="l">migrate_vma_pages"#),
        "{html}"
    );
    // JSON round trip: what a capture keeps.
    let back: Census = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn a_ko_file_gives_its_imports_and_license() {
    // This test binary is an ELF object with undefined symbols too (libc's); a .ko is read
    // the same way. No .modinfo here: no license.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let (imports, license) = modules::elf_facts(&me).unwrap();
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("malloc") || i.starts_with("free")),
        "{imports:?}"
    );
    assert_eq!(license, None);
    assert!(modules::elf_facts(b"not an elf").is_none());
    assert_eq!(modules::key("nvidia-uvm"), "nvidia_uvm");
}
