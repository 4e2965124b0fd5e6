//! A plan change (a driver module loaded or unloaded during a recording, a callback
//! discovered) travels from the kernel source through a capture into every report format (the
//! TUI's status panel: `tui::render::tests`). The kernel side is the VM's modules variant
//! (`cargo xtask vm-test --source 6.12+modules`) and its discovery check.

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use std::process::Command;
use std::sync::Arc;

use hmmtrace::capture::Writer;
use hmmtrace::pipeline::{PlanChange, Sink, Status};
use hmmtrace::probe::{Found, Mechanism, PlanEntry, Role};
use hmmtrace::scenario::Scenario;

/// `hmmtrace report --format FORMAT PATH`'s output; it must succeed.
fn report(path: &std::path::Path, format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hmmtrace"))
        .args(["report", "--format", format])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_capture_with_plan_changes_reports_them_in_text_json_and_html() {
    let s = Scenario::load("migrate_fault").unwrap();
    let mut events = Vec::new();
    s.run(s.seed, &mut |e| {
        events.push(*e);
        Ok(())
    })
    .unwrap();
    let header = hmmtrace::pipeline::source::engine::header(&s, s.seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.hmt");
    let mut w = Writer::create(&path).unwrap();
    w.begin(&header).unwrap();
    let half = events.len() / 2;
    let at = events[half].ts_ns;
    events[..half].iter().for_each(|e| w.event(e).unwrap());
    let row = PlanEntry {
        role: Role::MigrateToRam,
        symbol: "mydrv_fault".into(),
        module: "mydrv".into(),
        mechanisms: vec![Mechanism::Kprobe],
        status: hmmtrace::probe::Status::Attached(Mechanism::Kprobe),
        found: Found::Discovered {
            ops: 0xffffffffc0a01000,
            ops_symbol: "mydrv_pagemap_ops".into(),
        },
    };
    let change =
        "discovered in mydrv_pagemap_ops: mydrv_fault (migrate_to_ram) attached (kprobe) [mydrv]";
    w.status(&Status::Plan(Arc::new(PlanChange {
        at_ns: at,
        changes: vec![change.into()],
        plan: vec![row],
    })))
    .unwrap();
    events[half..].iter().for_each(|e| w.event(e).unwrap());
    w.close().unwrap();

    let report = |format: &str| report(&path, format);
    let offset = (at - events[0].ts_ns) as f64 / 1e9;
    let text = report("text");
    assert!(text.contains(&format!("+{offset:.3}s {change}")), "{text}");
    let json: serde_json::Value = serde_json::from_str(&report("json")).unwrap();
    assert_eq!(json["plan_changes"][0]["at_ns"], at);
    assert_eq!(json["plan_changes"][0]["changes"][0], change);
    // Every event is still counted, the block between them notwithstanding.
    assert_eq!(json["events"], events.len() as u64);
    let html = report("html");
    assert!(html.contains("Attach plan changes") && html.contains("mydrv_pagemap_ops"));
}

#[test]
fn a_census_in_a_capture_is_reported_again_in_every_format() {
    use hmmtrace::census::{Caller, Census, Export, ExportType, Module};
    let s = Scenario::load("migrate").unwrap();
    let header = hmmtrace::pipeline::source::engine::header(&s, s.seed);
    let census = Census {
        release: "6.12.117".into(),
        symvers: Some("/lib/modules/6.12.117/build/Module.symvers".into()),
        exports: vec![
            Export {
                name: "hmm_range_fault".into(),
                export_type: ExportType::Plain,
                defined_in: "vmlinux".into(),
                importers: vec!["mydrv".into()],
                callers: vec![Caller {
                    function: "mydrv_fault".into(),
                    module: "mydrv".into(),
                    calls: 12,
                }],
            },
            Export {
                name: "devm_memremap_pages".into(),
                export_type: ExportType::Gpl,
                defined_in: "vmlinux".into(),
                importers: Vec::new(),
                callers: Vec::new(),
            },
        ],
        modules: vec![Module {
            name: "mydrv".into(),
            file: Some("/lib/modules/6.12.117/extra/mydrv.ko".into()),
            license: Some("Dual MIT/GPL".into()),
            taint: "OE".into(),
            imports: vec!["hmm_range_fault".into()],
        }],
        watched_ns: 30_000_000_000,
        uncounted_calls: 0,
        not_counted: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("census.hmt");
    let mut w = Writer::create(&path).unwrap();
    w.begin(&header).unwrap();
    w.status(&Status::Census(Arc::new(census.clone()))).unwrap();
    w.close().unwrap();
    let report = |format: &str| report(&path, format);
    let text = report("text");
    assert!(
        text.contains("mydrv [Dual MIT/GPL; taint OE (out of tree, unsigned)"),
        "{text}"
    );
    assert!(text.contains("mydrv_fault [mydrv] 12"), "{text}");
    assert!(
        text.contains("no call seen): devm_memremap_pages"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&report("json")).unwrap();
    let back: Census = serde_json::from_value(json["census"].clone()).unwrap();
    assert_eq!(back, census);
    assert!(report("html").contains(r#"<h2 id="census">"#));
}
