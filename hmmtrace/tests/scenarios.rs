//! Built-in scenarios: golden per-kind counts (worked out from the kernel's rules, noted per
//! scenario), and scenario-file errors with positions.

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use hmmtrace::event::Class;
use hmmtrace::report::Summary;
use hmmtrace::scenario::{Scenario, BUILTIN};

fn summary(name: &str, seed: u64) -> Summary {
    let s = Scenario::load(name).unwrap();
    let mut sum = Summary::default();
    s.run(seed, &mut |e| {
        sum.add(e);
        Ok(())
    })
    .unwrap();
    sum
}

/// (count, pages) per kind: migration, device_fault, page_free, invalidation, range_fault.
/// Invalidations count both records of each one: `range_start` and the one notifier's callback.
const GOLDEN: &[(&str, [(u64, u64); 5])] = &[
    // 1 migration of 64 pages; munmap frees 64 device pages; MIGRATE + UNMAP; 1 mirror read.
    ("migrate", [(1, 64), (0, 0), (64, 64), (4, 0), (1, 64)]),
    // 1 + 16 single-page fault migrations + 1 re-migration of the 16; 16 frees from the faults
    // and 64 at munmap; MIGRATE for each of the 18 migrations + UNMAP = 19 invalidations.
    (
        "migrate_fault",
        [(18, 96), (16, 16), (80, 80), (38, 0), (0, 0)],
    ),
    (
        "migrate_release",
        [(1, 64), (0, 0), (64, 64), (4, 0), (0, 0)],
    ),
    // 32 pages - 2 racing - 4 pinned = 26 (8 of them holes); holes add a second MIGRATE.
    (
        "migrate_pinned",
        [(1, 26), (0, 0), (26, 26), (6, 0), (0, 0)],
    ),
    ("mirror_read", [(0, 0), (0, 0), (0, 0), (2, 0), (4, 256)]),
    // PROTECTION_VMA + UNMAP; mirror_write and mirror_read of 128 pages.
    ("mirror_write", [(0, 0), (0, 0), (0, 0), (4, 0), (2, 256)]),
    // 2 -EBUSY zaps fold into one record, the read_retry zap forces a second call; 3 CLEAR + UNMAP.
    ("mirror_busy", [(0, 0), (0, 0), (0, 0), (8, 0), (2, 128)]),
    // UNMAP of half; at exit the RELEASE callback (no range_start) and UNMAP of everything.
    (
        "munmap_mirrored",
        [(0, 0), (0, 0), (0, 0), (5, 0), (1, 128)],
    ),
    // Child faults: CLEAR of the parent's mapping; parent faults: MIGRATE, then a COW CLEAR.
    ("fork_cow", [(17, 48), (16, 16), (32, 32), (54, 0), (0, 0)]),
    // 32 EXCLUSIVE owned by the device, 8 restores (EXCLUSIVE, no owner), UNMAP.
    ("exclusive", [(0, 0), (0, 0), (0, 0), (82, 0), (0, 0)]),
    // dmirror1's read faults 16 pages off dmirror0 (its own MIGRATE invalidations make the
    // walk return -EBUSY once); then 16 + 32 pages move to dmirror1 and 32 back to RAM.
    (
        "multiple_devices",
        [(19, 80), (16, 16), (32, 32), (57, 0), (1, 16)],
    ),
    // 256 chunk migrations, 1024 CPU faults (4 per chunk), the rest evictions of 64-page chunks;
    // every one of the 65536 device pages allocated is freed once.
    (
        "gpu-stream",
        [
            (2225, 127040),
            (1024, 1024),
            (65536, 65536),
            (123522, 0),
            (256, 65536),
        ],
    ),
    // 8 migrations of 16 pages to the device, each followed by 16 one-page faults back.
    (
        "pingpong",
        [(136, 256), (128, 128), (128, 128), (274, 0), (0, 0)],
    ),
    // One mirror read: 12 -EBUSY retries folded into its first call, then 4 read_retry calls;
    // each zap is a range start and a callback.
    ("retry_storm", [(0, 0), (0, 0), (0, 0), (34, 0), (5, 320)]),
    (
        "mirror_fault_error",
        [(0, 0), (0, 0), (0, 0), (0, 0), (1, 8)],
    ),
    // Two CPU faults the driver answers with VM_FAULT_SIGBUS (no migration back).
    ("driver_sigbus", [(1, 8), (2, 2), (0, 0), (2, 0), (0, 0)]),
    // 32 pages migrated, none freed.
    ("driver_leak", [(1, 32), (0, 0), (0, 0), (5, 0), (0, 0)]),
    ("slow_invalidate", [(0, 0), (0, 0), (0, 0), (4, 0), (1, 16)]),
    // Two migrations set up and abandoned: nothing migrated.
    (
        "unfinished_migration",
        [(2, 0), (0, 0), (0, 0), (4, 0), (0, 0)],
    ),
];

#[test]
fn every_builtin_has_golden_counts() {
    let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
    let golden: Vec<&str> = GOLDEN.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, golden);
}

#[test]
fn golden_counts_of_every_builtin() {
    // Records per wire kind: an invalidation's records are its range start and its callbacks.
    let kinds: [&[Class]; 5] = [
        &[Class::Migration],
        &[Class::DeviceFault],
        &[Class::PageFree],
        &[Class::Invalidation, Class::IntervalInvalidate],
        &[Class::RangeFault],
    ];
    for (name, want) in GOLDEN {
        let s = summary(name, 1);
        let got: Vec<(u64, u64)> = kinds
            .iter()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| s.kinds.get(c))
                    .fold((0, 0), |(n, p), k| (n + k.count, p + k.pages))
            })
            .collect();
        assert_eq!(&got[..], &want[..], "scenario {name}");
        assert_eq!(s.total_lost(), 0);
    }
}

#[test]
fn counts_do_not_depend_on_the_seed() {
    for (name, _) in BUILTIN.iter().filter(|(n, _)| *n != "gpu-stream") {
        let (a, b) = (summary(name, 1), summary(name, 99));
        for (k, sa) in &a.kinds {
            assert_eq!(sa.count, b.kinds[k].count, "{name} {k:?}");
        }
    }
}

#[test]
fn gpu_stream_pages_balance() {
    use hmmtrace::event::Body;
    let s = Scenario::load("gpu-stream").unwrap();
    let (mut to_device, mut to_ram, mut freed, mut evictions) = (0u64, 0u64, 0u64, 0u64);
    s.run(1, &mut |e| {
        match e.body {
            Body::Migration(m) if m.direction == hmmtrace_common::DIRECTION_TO_DEVICE => {
                to_device += m.migrated
            }
            Body::Migration(m) => {
                to_ram += m.migrated;
                evictions += (m.api == hmmtrace_common::API_MIGRATE_DEVICE) as u64;
            }
            Body::PageFree(_) => freed += 1,
            _ => {}
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(to_device, 256 * 256, "every chunk fits after eviction");
    // Device pages come back (evictions, faults) or die at munmap; each is freed exactly once.
    assert_eq!(freed, to_device);
    assert!(to_ram < to_device);
    // What the device cannot hold (4096 pages) and the CPU did not fault back (1024) was
    // evicted, 64 pages at a time.
    assert!(
        evictions * 64 >= to_device - 1024 - 4096,
        "{evictions} evictions"
    );
    assert!(evictions * 64 <= to_device - 1024, "{evictions} evictions");
}

fn err(text: &str) -> String {
    Scenario::parse("bad.toml", text).unwrap_err().to_string()
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let e = err("name = \"x\"\n[[process]]\nname = \"p\"\n[[step]]\nop = \n");
    assert!(e.starts_with("bad.toml:5:"), "{e}");
}

#[test]
fn unknown_fields_ops_and_devices_are_rejected_at_their_key_or_value() {
    let base = "name = \"x\"\n[[process]]\nname = \"p\"\n";
    let e = err(&format!("{base}[[step]]\nop = \"teleport\"\n"));
    assert!(
        e.starts_with("bad.toml:5:6:") && e.contains("unknown op 'teleport' (one of: mmap,"),
        "{e}"
    );
    let e = err(&format!(
        "{base}[[step]]\nop = \"migrate\"\nregion = \"r\"\ndevice = \"gpu9\"\n"
    ));
    assert!(
        e.starts_with("bad.toml:7:10:") && e.contains("no [[device]] named 'gpu9'"),
        "{e}"
    );
    let e = err(&format!(
        "{base}[[step]]\nop = \"mmap\"\nregion = \"r\"\npages = 4\nspeed = 3\n"
    ));
    assert!(
        e.starts_with("bad.toml:8:1:") && e.contains("mmap: unknown field `speed`"),
        "{e}"
    );
    let e = err("name = \"x\"\n");
    assert!(e.contains("at least one [[process]]"), "{e}");
    let e = err(&format!("{base}[cost]\njitter = -1.0\n"));
    assert!(e.contains("cost.jitter"), "{e}");
}

#[test]
fn a_field_an_op_does_not_take_is_an_error_not_ignored() {
    let base = "name = \"x\"\n[[process]]\nname = \"p\"\n";
    // `pages` belongs to mmap, not munmap.
    let e = err(&format!(
        "{base}[[step]]\nop = \"munmap\"\nregion = \"r\"\npages = 4\n"
    ));
    assert!(
        e.starts_with("bad.toml:7:1:") && e.contains("munmap: unknown field `pages`"),
        "{e}"
    );
    // `racing` only makes sense for a migration to the device.
    let e = err(&format!(
        "{base}[[device]]\nname = \"g\"\nkind = \"private\"\npages = 8\n[[step]]\nop = \"migrate\"\nregion = \"r\"\ndevice = \"g\"\nto = \"ram\"\nracing = [1]\n"
    ));
    assert!(
        e.starts_with("bad.toml:13:10:") && e.contains("racing"),
        "{e}"
    );
    // A wrong type points at the value.
    let e = err(&format!(
        "{base}[[step]]\nop = \"mmap\"\nregion = \"r\"\npages = \"many\"\n"
    ));
    assert!(
        e.starts_with("bad.toml:7:9:") && e.contains("invalid type: string \"many\""),
        "{e}"
    );
    let e = err(&format!(
        "{base}[[step]]\nop = \"mprotect\"\nregion = \"r\"\nprot = \"rx\"\n"
    ));
    assert!(
        e.starts_with("bad.toml:7:8:") && e.contains("unknown variant `rx`"),
        "{e}"
    );
}

#[test]
fn an_error_inside_a_repeat_points_at_the_inner_step() {
    let text = "name = \"x\"\n[[process]]\nname = \"p\"\n[[step]]\nop = \"repeat\"\ntimes = 2\nsteps = [\n  { op = \"read\", region = \"r\" },\n  { op = \"read\", regoin = \"r\" },\n]\n";
    let e = err(text);
    assert!(
        e.starts_with("bad.toml:9:18:") && e.contains("read: unknown field `regoin`"),
        "{e}"
    );
    // And one a repeat does not take.
    let e = err("name = \"x\"\n[[process]]\nname = \"p\"\n[[step]]\nop = \"repeat\"\ntimes = 2\nprocess = \"p\"\nsteps = []\n");
    assert!(
        e.starts_with("bad.toml:7:1:") && e.contains("repeat: unknown field `process`"),
        "{e}"
    );
}

#[test]
fn runtime_errors_point_at_the_failing_step() {
    let text =
        "name = \"x\"\n[[process]]\nname = \"p\"\n[[step]]\nop = \"write\"\nregion = \"nope\"\n";
    let s = Scenario::parse("bad.toml", text).unwrap();
    let e = format!("{:#}", s.run(1, &mut |_| Ok(())).unwrap_err());
    assert!(
        e.starts_with("bad.toml:4:") && e.contains("has no region 'nope'"),
        "{e}"
    );
    let text = "name = \"x\"\n[[process]]\nname = \"p\"\n[[step]]\nop = \"mmap\"\nregion = \"r\"\npages = 2\nprot = \"r\"\n[[step]]\nop = \"write\"\nregion = \"r\"\n";
    let s = Scenario::parse("bad.toml", text).unwrap();
    let e = format!("{:#}", s.run(1, &mut |_| Ok(())).unwrap_err());
    assert!(e.starts_with("bad.toml:9:") && e.contains("SIGSEGV"), "{e}");
}

#[test]
fn unknown_scenario_lists_the_builtins() {
    let e = Scenario::load("no-such-scenario").unwrap_err().to_string();
    assert!(
        e.contains("gpu-stream") && e.contains("migrate_fault"),
        "{e}"
    );
}

/// The engine's events for every built-in scenario are exactly those in
/// `tests/data/engine/NAME.hmt`, captured with `hmmtrace sim -s NAME -o` from the engine before
/// its page tables became dense (commit 7cdd331, see tests/data/README.md): a faster engine
/// must not change what it says. The first difference is named.
#[test]
fn every_built_in_scenario_yields_the_events_of_its_golden_capture() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/engine");
    for (name, _) in BUILTIN {
        let s = Scenario::load(name).unwrap();
        let mut ran = Vec::new();
        s.run(s.seed, &mut |e| {
            ran.push(*e);
            Ok(())
        })
        .unwrap();
        let path = dir.join(format!("{name}.hmt"));
        let mut golden = Vec::new();
        hmmtrace::capture::Reader::open(&path)
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
            .for_each(|e| {
                golden.push(*e);
                Ok(())
            })
            .unwrap();
        if let Some(i) = (0..ran.len().min(golden.len())).find(|&i| ran[i] != golden[i]) {
            panic!(
                "{name}: event {i} differs\n engine: {:?}\n golden: {:?}",
                ran[i], golden[i]
            );
        }
        assert_eq!(
            ran.len(),
            golden.len(),
            "{name}: the engine yields {} events, the golden capture holds {}",
            ran.len(),
            golden.len()
        );
    }
}
