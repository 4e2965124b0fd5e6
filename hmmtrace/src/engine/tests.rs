//! One test per engine rule; each would fail if the rule broke.

use hmmtrace_common::*;

use super::*;
use crate::event::{Body, Event};

const PS: u64 = 4096;

fn engine() -> Engine<'static> {
    Engine::new(CostModel::default(), 7)
}

fn take(e: &mut Engine) -> Vec<Event> {
    e.drain().collect()
}

fn migrations(ev: &[Event]) -> Vec<Migration> {
    ev.iter()
        .filter_map(|e| {
            if let Body::Migration(m) = e.body {
                Some(m)
            } else {
                None
            }
        })
        .collect()
}

fn range_faults(ev: &[Event]) -> Vec<RangeFault> {
    ev.iter()
        .filter_map(|e| {
            if let Body::RangeFault(r) = e.body {
                Some(r)
            } else {
                None
            }
        })
        .collect()
}

fn invalidations(ev: &[Event], path: u8) -> Vec<Invalidation> {
    ev.iter()
        .filter_map(|e| {
            if let Body::Invalidation(i) = e.body {
                Some(i)
            } else {
                None
            }
        })
        .filter(|i| i.path == path)
        .collect()
}

/// Migration entries left in any page table: must be none once an operation returns.
fn migration_entries(e: &Engine) -> usize {
    e.procs
        .values()
        .flat_map(|p| p.ptes.iter())
        .filter(|(_, p)| matches!(p, mm::Pte::Migration { .. }))
        .count()
}

fn count(ev: &[Event], kind: EventKind) -> usize {
    ev.iter().filter(|e| e.kind() == kind).count()
}

/// A process with `n` pages written by the CPU, opened by a device of `dev_pages` pages.
fn setup(n: u64, dev_pages: u64) -> (Engine<'static>, DevId, Tgid, u64) {
    let mut e = engine();
    let dev = e.add_device("dmirror0", DeviceKind::Private, dev_pages, 16);
    let t = e.spawn("hmm-tests");
    let addr = e.mmap(t, n, Prot::RW, false).unwrap();
    e.open(dev, t).unwrap();
    e.cpu_access(t, addr, n, true).unwrap();
    take(&mut e);
    (e, dev, t, addr)
}

#[test]
fn mmap_populates_nothing_and_writes_fault_pages_in() {
    let mut e = engine();
    let t = e.spawn("p");
    let addr = e.mmap(t, 10, Prot::RW, false).unwrap();
    assert_eq!(e.live_pages().system_pages, 0);
    e.cpu_access(t, addr, 4, true).unwrap();
    assert_eq!(e.live_pages().system_pages, 4);
    // No notifier on this mm: demand faults produce no events at all.
    assert!(take(&mut e).is_empty());
}

#[test]
fn migrate_to_device_collects_present_pages_and_holes() {
    let (mut e, dev, t, addr) = setup(8, 64);
    // Four more pages that were never touched: holes in an anonymous VMA are collected too.
    let out = e.migrate_to_device(dev, t, addr, 8, &[]).unwrap();
    assert_eq!(
        out,
        MigrateOutcome {
            cpages: 8,
            migrated: 8
        }
    );
    let ev = take(&mut e);
    let m = migrations(&ev);
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].start, m[0].end, m[0].npages),
        (addr, addr + 8 * PS, 8)
    );
    assert_eq!(m[0].direction, DIRECTION_TO_DEVICE);
    assert_eq!(m[0].select, MIGRATE_VMA_SELECT_SYSTEM);
    assert_eq!(m[0].pgmap_owner, 1);
    assert!(m[0].setup_ns > 0 && m[0].pages_ns > 0 && m[0].finalize_ns > 0);
    assert_eq!(e.device_free_pages(dev), 56);
    // The source system pages were freed.
    assert_eq!(
        e.live_pages(),
        Totals {
            system_pages: 0,
            device_pages: 8
        }
    );
}

#[test]
fn hole_pages_get_a_second_migrate_invalidation_in_migrate_vma_pages() {
    let mut e = engine();
    let dev = e.add_device("d", DeviceKind::Private, 64, 16);
    let t = e.spawn("p");
    let addr = e.mmap(t, 8, Prot::RW, false).unwrap();
    e.open(dev, t).unwrap();
    e.cpu_access(t, addr, 4, true).unwrap();
    e.migrate_to_device(dev, t, addr, 8, &[]).unwrap();
    let starts = invalidations(&take(&mut e), INVALIDATE_RANGE_START);
    assert_eq!(starts.len(), 2, "collect + insert of the holes");
    assert!(starts
        .iter()
        .all(|i| i.event == MMU_NOTIFY_MIGRATE && i.owner == 1));
    assert_eq!(
        starts[1].start,
        addr + 4 * PS,
        "from the first hole to the end"
    );
}

#[test]
fn own_migrate_invalidation_is_skipped_but_others_bump_the_sequence() {
    let (mut e, d0, t, addr) = setup(4, 64);
    let d1 = e.add_device("dmirror1", DeviceKind::Private, 64, 16);
    e.open(d1, t).unwrap();
    let (s0, s1) = (
        e.notifier_seq(d0, t).unwrap(),
        e.notifier_seq(d1, t).unwrap(),
    );
    e.migrate_to_device(d0, t, addr, 4, &[]).unwrap();
    assert_eq!(
        e.notifier_seq(d0, t).unwrap(),
        s0,
        "dmirror skips MIGRATE it owns"
    );
    assert_eq!(
        e.notifier_seq(d1, t).unwrap(),
        s1 + 1,
        "the other device must invalidate"
    );
    // One callback per notifier, then the range_start record.
    let ev = take(&mut e);
    assert_eq!(invalidations(&ev, INVALIDATE_CALLBACK).len(), 2);
    assert_eq!(invalidations(&ev, INVALIDATE_RANGE_START).len(), 1);
}

#[test]
fn pinned_and_racing_pages_are_not_migrated() {
    let (mut e, dev, t, addr) = setup(16, 64);
    e.pin(t, addr, 3).unwrap();
    let out = e.migrate_to_device(dev, t, addr, 16, &[5, 6]).unwrap();
    // 16 pages: 3 pinned fail the ref-count check in migrate_device_unmap, 2 lose the folio lock.
    assert_eq!(
        out,
        MigrateOutcome {
            cpages: 11,
            migrated: 11
        }
    );
    assert_eq!(
        migration_entries(&e),
        0,
        "finalize replaced every migration entry"
    );
    e.unpin(t, addr, 3).unwrap();
    let m = migrations(&take(&mut e));
    assert_eq!((m[0].npages, m[0].cpages, m[0].migrated), (16, 11, 11));
    assert_eq!(
        e.live_pages(),
        Totals {
            system_pages: 5,
            device_pages: 11
        }
    );
}

#[test]
fn pages_not_migrated_when_the_device_is_full_and_nothing_can_be_evicted() {
    let (mut e, dev, t, addr) = setup(8, 4);
    let out = e.migrate_to_device(dev, t, addr, 4, &[]).unwrap();
    assert_eq!(out.migrated, 4);
    // Pin the pages on the device so that eviction cannot move them.
    e.pages
        .live_mut()
        .filter(|p| matches!(p.frame(), super::pages::Frame::Device { .. }))
        .for_each(|p| p.pins += 1);
    let out = e.migrate_to_device(dev, t, addr + 4 * PS, 4, &[]).unwrap();
    assert_eq!(
        out,
        MigrateOutcome {
            cpages: 4,
            migrated: 0
        }
    );
    assert_eq!(e.live_pages().system_pages, 4, "sources restored");
}

#[test]
fn cpu_access_to_device_private_page_faults_into_migrate_to_ram() {
    let (mut e, dev, t, addr) = setup(4, 64);
    e.migrate_to_device(dev, t, addr, 4, &[]).unwrap();
    take(&mut e);
    e.cpu_access(t, addr + PS, 1, false).unwrap();
    let ev = take(&mut e);
    let kinds: Vec<EventKind> = ev.iter().map(|e| e.kind()).collect();
    // Exit order: invalidation callback and range_start, the old device page's page_free in
    // finalize, the migration, then the callback's own record.
    assert_eq!(
        kinds,
        [
            EventKind::Invalidation,
            EventKind::Invalidation,
            EventKind::PageFree,
            EventKind::Migration,
            EventKind::DeviceFault
        ]
    );
    let m = migrations(&ev)[0];
    assert_eq!(
        (m.npages, m.cpages, m.migrated, m.direction),
        (1, 1, 1, DIRECTION_TO_RAM)
    );
    assert_eq!(m.select, MIGRATE_VMA_SELECT_DEVICE_PRIVATE);
    let Body::DeviceFault(f) = ev[4].body else {
        panic!()
    };
    assert_eq!((f.address, f.pgmap_owner, f.result), (addr + PS, 1, 0));
    // The fault's duration covers its nested migration.
    assert!(ev[4].duration_ns.unwrap() > ev[3].duration_ns.unwrap());
    assert_eq!(
        e.live_pages(),
        Totals {
            system_pages: 1,
            device_pages: 3
        }
    );
    // A second access finds a present page: no more events.
    e.cpu_access(t, addr + PS, 1, true).unwrap();
    assert!(take(&mut e).is_empty());
}

#[test]
fn page_free_runs_only_when_the_last_reference_drops() {
    let (mut e, dev, t, addr) = setup(4, 64);
    e.migrate_to_device(dev, t, addr, 4, &[]).unwrap();
    let child = e.fork(t, "child").unwrap();
    take(&mut e);
    e.exit(child).unwrap();
    assert_eq!(
        count(&take(&mut e), EventKind::PageFree),
        0,
        "the parent still maps them"
    );
    e.munmap(t, addr, 4).unwrap();
    let ev = take(&mut e);
    assert_eq!(count(&ev, EventKind::PageFree), 4);
    let frees: Vec<u64> = ev
        .iter()
        .filter_map(|e| {
            if let Body::PageFree(p) = e.body {
                Some(p.pfn)
            } else {
                None
            }
        })
        .collect();
    let mut unique = frees.clone();
    unique.dedup();
    assert_eq!(unique.len(), 4, "each device page freed once");
    assert_eq!(e.device_free_pages(dev), 64);
    assert_eq!(e.live_pages(), Totals::default());
}

#[test]
fn fork_makes_pages_copy_on_write() {
    let (mut e, _dev, t, addr) = setup(4, 64);
    let child = e.fork(t, "child").unwrap();
    let ev = take(&mut e);
    let starts = invalidations(&ev, INVALIDATE_RANGE_START);
    assert_eq!(starts.len(), 1);
    assert_eq!(
        (starts[0].event, starts[0].start, starts[0].end),
        (MMU_NOTIFY_PROTECTION_PAGE, addr, addr + 4 * PS)
    );
    assert_eq!(e.live_pages().system_pages, 4, "shared, not copied");
    // The child has no notifier: its COW break is silent but copies a page.
    e.cpu_access(child, addr, 1, true).unwrap();
    assert!(take(&mut e).is_empty());
    assert_eq!(e.live_pages().system_pages, 5);
    // The parent's write to a still-shared page copies it under MMU_NOTIFY_CLEAR.
    e.cpu_access(t, addr + PS, 1, true).unwrap();
    let starts = invalidations(&take(&mut e), INVALIDATE_RANGE_START);
    assert_eq!((starts.len(), starts[0].event), (1, MMU_NOTIFY_CLEAR));
    // The parent's write to the page the child already copied reuses it: no copy, no event.
    e.cpu_access(t, addr, 1, true).unwrap();
    assert!(take(&mut e).is_empty());
    assert_eq!(e.live_pages().system_pages, 6);
}

#[test]
fn device_private_pages_are_shared_read_only_across_fork() {
    let (mut e, dev, t, addr) = setup(2, 64);
    e.migrate_to_device(dev, t, addr, 2, &[]).unwrap();
    let child = e.fork(t, "child").unwrap();
    take(&mut e);
    // The child faults the shared device page back: both mms now map the new system page, the
    // parent's mapping is unmapped with try_to_migrate (MMU_NOTIFY_CLEAR in the parent's mm).
    e.cpu_access(child, addr, 1, false).unwrap();
    let ev = take(&mut e);
    assert_eq!(count(&ev, EventKind::DeviceFault), 1);
    assert!(invalidations(&ev, INVALIDATE_RANGE_START)
        .iter()
        .any(|i| i.event == MMU_NOTIFY_CLEAR));
    assert_eq!(
        e.live_pages(),
        Totals {
            system_pages: 1,
            device_pages: 1
        }
    );
    // The parent reads the same page without a fault now.
    e.cpu_access(t, addr, 1, false).unwrap();
    assert_eq!(count(&take(&mut e), EventKind::DeviceFault), 0);
}

#[test]
fn munmap_invalidates_the_range_and_clears_the_mirror() {
    let (mut e, dev, t, addr) = setup(16, 64);
    e.range_fault(dev, t, addr, 16, false, Race::default())
        .unwrap();
    assert_eq!(e.mirrored_pages(dev, t), 16);
    take(&mut e);
    e.munmap(t, addr, 8).unwrap();
    let ev = take(&mut e);
    let starts = invalidations(&ev, INVALIDATE_RANGE_START);
    assert_eq!(
        (starts[0].event, starts[0].start, starts[0].end),
        (MMU_NOTIFY_UNMAP, addr, addr + 8 * PS)
    );
    assert_eq!(e.mirrored_pages(dev, t), 8);
    assert_eq!(e.live_pages().system_pages, 8);
    assert!(matches!(
        e.cpu_access(t, addr, 1, false),
        Err(EngineError::Segv { .. })
    ));
}

#[test]
fn mprotect_invalidates_and_forbids_writes() {
    let (mut e, _dev, t, addr) = setup(4, 64);
    e.mprotect(t, addr, 4, Prot::R).unwrap();
    let starts = invalidations(&take(&mut e), INVALIDATE_RANGE_START);
    assert_eq!(starts[0].event, MMU_NOTIFY_PROTECTION_VMA);
    assert!(matches!(
        e.cpu_access(t, addr, 1, true),
        Err(EngineError::Segv { .. })
    ));
    e.cpu_access(t, addr, 1, false).unwrap();
}

#[test]
fn every_non_skipped_invalidation_bumps_the_sequence() {
    let (mut e, dev, t, addr) = setup(4, 64);
    let s = e.notifier_seq(dev, t).unwrap();
    e.mprotect(t, addr, 4, Prot::R).unwrap();
    e.munmap(t, addr, 2).unwrap();
    assert_eq!(e.notifier_seq(dev, t).unwrap(), s + 2);
}

#[test]
fn range_fault_retries_on_ebusy_and_on_read_retry() {
    let (mut e, dev, t, addr) = setup(8, 64);
    e.range_fault(
        dev,
        t,
        addr,
        8,
        false,
        Race {
            during: 2,
            after: 0,
        },
    )
    .unwrap();
    let ev = take(&mut e);
    let rf: Vec<&Event> = ev
        .iter()
        .filter(|e| e.kind() == EventKind::RangeFault)
        .collect();
    assert_eq!(rf.len(), 1, "-EBUSY returns are folded into the next call");
    let Body::RangeFault(r) = rf[0].body else {
        panic!()
    };
    assert_eq!(
        (r.retries, r.result, r.npages, r.dev_private_owner),
        (2, 0, 8, 1)
    );
    // Two concurrent zaps: MMU_NOTIFY_CLEAR each.
    assert_eq!(
        invalidations(&ev, INVALIDATE_RANGE_START)
            .iter()
            .filter(|i| i.event == MMU_NOTIFY_CLEAR)
            .count(),
        2
    );
    // The zapped pages were faulted in again by the retried walk.
    assert_eq!(e.mirrored_pages(dev, t), 8);

    e.range_fault(
        dev,
        t,
        addr,
        8,
        false,
        Race {
            during: 0,
            after: 1,
        },
    )
    .unwrap();
    let ev = take(&mut e);
    let rf = range_faults(&ev);
    assert_eq!(
        rf.len(),
        2,
        "mmu_interval_read_retry failed once: hmm_range_fault called twice"
    );
    assert!(rf.iter().all(|r| r.retries == 0 && r.result == 0));
}

#[test]
fn range_fault_leaves_own_device_pages_and_migrates_others() {
    let (mut e, d0, t, addr) = setup(4, 64);
    let d1 = e.add_device("d1", DeviceKind::Private, 64, 16);
    e.open(d1, t).unwrap();
    e.migrate_to_device(d0, t, addr, 4, &[]).unwrap();
    take(&mut e);
    e.range_fault(d0, t, addr, 4, false, Race::default())
        .unwrap();
    assert_eq!(
        count(&take(&mut e), EventKind::DeviceFault),
        0,
        "its own pages come back as they are"
    );
    e.range_fault(d1, t, addr, 4, false, Race::default())
        .unwrap();
    let ev = take(&mut e);
    assert_eq!(
        count(&ev, EventKind::DeviceFault),
        4,
        "another device's pages are faulted to RAM"
    );
    let rf = range_faults(&ev);
    assert_eq!(rf.len(), 1);
    assert_eq!(
        rf[0].retries, 1,
        "the faults' invalidations changed the sequence mid-walk"
    );
}

#[test]
fn exclusive_access_and_its_restore() {
    let (mut e, dev, t, addr) = setup(2, 64);
    e.make_exclusive(dev, t, addr, 2).unwrap();
    let starts = invalidations(&take(&mut e), INVALIDATE_RANGE_START);
    assert_eq!(starts.len(), 2);
    assert!(starts
        .iter()
        .all(|i| i.event == MMU_NOTIFY_EXCLUSIVE && i.owner == 1));
    e.cpu_access(t, addr, 1, false).unwrap();
    let starts = invalidations(&take(&mut e), INVALIDATE_RANGE_START);
    assert_eq!(starts.len(), 1);
    assert_eq!(
        (starts[0].event, starts[0].owner),
        (MMU_NOTIFY_EXCLUSIVE, 0)
    );
    e.cpu_access(t, addr, 1, false).unwrap();
    assert!(take(&mut e).is_empty(), "restored: no second invalidation");
}

#[test]
fn exit_releases_notifiers_then_unmaps_everything() {
    let (mut e, dev, t, addr) = setup(4, 64);
    e.migrate_to_device(dev, t, addr, 2, &[]).unwrap();
    take(&mut e);
    e.exit(t).unwrap();
    let ev = take(&mut e);
    let cbs = invalidations(&ev, INVALIDATE_CALLBACK);
    assert_eq!(cbs[0].event, MMU_NOTIFY_RELEASE);
    assert_eq!((cbs[0].start, cbs[0].end), (0, u64::MAX));
    assert!(
        invalidations(&ev, INVALIDATE_RANGE_START)
            .iter()
            .all(|i| i.event != MMU_NOTIFY_RELEASE),
        "RELEASE does not go through range_start"
    );
    assert_eq!(count(&ev, EventKind::PageFree), 2);
    assert_eq!(e.live_pages(), Totals::default());
    assert!(e.notifier_seq(dev, t).is_none());
}

#[test]
fn a_full_device_evicts_its_coldest_chunk_with_migrate_device_range() {
    let (mut e, dev, t, addr) = setup(48, 32);
    e.migrate_to_device(dev, t, addr, 32, &[]).unwrap();
    take(&mut e);
    e.migrate_to_device(dev, t, addr + 32 * PS, 16, &[])
        .unwrap();
    let ev = take(&mut e);
    let m = migrations(&ev);
    assert_eq!(m.len(), 2);
    let evict = m[0];
    assert_eq!(
        (
            evict.api,
            evict.direction,
            evict.npages,
            evict.cpages,
            evict.migrated
        ),
        (API_MIGRATE_DEVICE, DIRECTION_TO_RAM, 16, 16, 16)
    );
    assert_eq!(m[1].migrated, 16);
    // The coldest chunk held the first 16 pages migrated: those are back in RAM.
    assert_eq!(count(&ev, EventKind::PageFree), 16);
    let mut e2 = e;
    e2.cpu_access(t, addr, 16, false).unwrap();
    assert_eq!(
        count(&take(&mut e2), EventKind::DeviceFault),
        0,
        "evicted pages are system pages again"
    );
    e2.cpu_access(t, addr + 16 * PS, 1, false).unwrap();
    assert_eq!(
        count(&take(&mut e2), EventKind::DeviceFault),
        1,
        "the warmer pages are still on the device"
    );
}

#[test]
fn device_coherent_pages_are_mapped_and_need_no_fault() {
    let mut e = engine();
    let dev = e.add_device("c", DeviceKind::Coherent, 16, 16);
    let t = e.spawn("p");
    let addr = e.mmap(t, 4, Prot::RW, false).unwrap();
    e.open(dev, t).unwrap();
    e.cpu_access(t, addr, 4, true).unwrap();
    e.migrate_to_device(dev, t, addr, 4, &[]).unwrap();
    take(&mut e);
    e.cpu_access(t, addr, 4, true).unwrap();
    assert!(
        take(&mut e).is_empty(),
        "coherent memory is CPU addressable"
    );
    let out = e.migrate_to_system(dev, t, addr, 4).unwrap();
    assert_eq!(out.migrated, 4);
    let ev = take(&mut e);
    assert!(ev
        .iter()
        .any(|e| matches!(e.body, Body::PageFree(p) if p.memory_type == MEMORY_DEVICE_COHERENT)));
}

#[test]
fn same_seed_same_events_other_seed_same_counts() {
    let run = |seed| {
        let mut e = Engine::new(CostModel::default(), seed);
        let dev = e.add_device("d", DeviceKind::Private, 64, 16);
        let t = e.spawn("p");
        let addr = e.mmap(t, 32, Prot::RW, false).unwrap();
        e.open(dev, t).unwrap();
        e.cpu_access(t, addr, 32, true).unwrap();
        e.migrate_to_device(dev, t, addr, 32, &[]).unwrap();
        e.cpu_access(t, addr, 8, false).unwrap();
        take(&mut e)
    };
    assert_eq!(run(1), run(1));
    let (a, b) = (run(1), run(2));
    assert_ne!(a, b, "jitter depends on the seed");
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(&b).all(|(x, y)| x.kind() == y.kind()));
}

#[test]
fn timestamps_are_entry_times_and_durations_fit_inside_the_run() {
    let (mut e, dev, t, addr) = setup(16, 64);
    e.migrate_to_device(dev, t, addr, 16, &[]).unwrap();
    e.cpu_access(t, addr, 4, false).unwrap();
    let end = e.now_ns();
    for ev in take(&mut e) {
        let d = ev
            .duration_ns
            .expect("every engine event pairs entry and exit");
        assert!(d > 0);
        assert!(ev.ts_ns + d <= end);
    }
}

#[test]
fn errors_for_what_the_kernel_would_refuse() {
    let (mut e, dev, t, addr) = setup(4, 64);
    assert!(matches!(
        e.migrate_to_device(dev, t, addr, 100, &[]),
        Err(EngineError::BadRange { .. })
    ));
    let other = e.spawn("other");
    let a2 = e.mmap(other, 1, Prot::RW, false).unwrap();
    assert!(matches!(
        e.range_fault(dev, other, a2, 1, false, Race::default()),
        Err(EngineError::NotOpened { .. })
    ));
    assert!(matches!(
        e.cpu_access(999, addr, 1, false),
        Err(EngineError::NoSuchProcess(999))
    ));
}

#[test]
fn a_write_to_a_read_file_page_copies_it_with_one_clear() {
    let (mut e, dev, t, _) = setup(1, 64);
    let data = e.mmap(t, 2, Prot::RW, true).unwrap();
    // Page 0 read first (page cache mapped read-only), page 1 written at once (do_cow_fault).
    e.cpu_access(t, data, 1, false).unwrap();
    e.cpu_access(t, data + PS, 1, true).unwrap();
    assert!(
        take(&mut e).is_empty(),
        "faults on empty PTEs invalidate nothing"
    );
    e.cpu_access(t, data, 2, true).unwrap();
    let ev = take(&mut e);
    let clears = invalidations(&ev, INVALIDATE_RANGE_START);
    assert_eq!(clears.len(), 1, "only the page-cache page is copied");
    assert_eq!(clears[0].event, MMU_NOTIFY_CLEAR);
    assert_eq!((clears[0].start, clears[0].end), (data, data + PS));
    // The same on an anonymous mapping reuses the page: no invalidation.
    let anon = e.mmap(t, 1, Prot::RW, false).unwrap();
    e.cpu_access(t, anon, 1, false).unwrap();
    e.cpu_access(t, anon, 1, true).unwrap();
    assert!(take(&mut e).is_empty());
    // A page-cache page is not migrated to the device.
    let ro = e.mmap(t, 1, Prot::RW, true).unwrap();
    e.cpu_access(t, ro, 1, false).unwrap();
    let out = e.migrate_to_device(dev, t, ro, 1, &[]).unwrap();
    assert_eq!(out.migrated, 0);
}

#[test]
fn exit_evicts_a_releasing_drivers_memory_after_the_unmap() {
    let (mut e, dev, t, addr) = setup(8, 64);
    e.set_evict_on_release(dev, true);
    e.migrate_to_device(dev, t, addr, 8, &[]).unwrap();
    take(&mut e);
    e.exit(t).unwrap();
    let ev = take(&mut e);
    let m = migrations(&ev);
    assert_eq!(m.len(), 1, "one migrate_device_range over the whole device");
    assert_eq!((m[0].api, m[0].npages), (API_MIGRATE_DEVICE, 64));
    assert_eq!(m[0].cpages, 0, "exit_mmap already freed the device pages");
    assert_eq!(count(&ev, EventKind::PageFree), 8);
    let last_free = ev
        .iter()
        .rposition(|e| e.kind() == EventKind::PageFree)
        .unwrap();
    let evict = ev
        .iter()
        .position(|e| e.kind() == EventKind::Migration)
        .unwrap();
    assert!(
        evict > last_free,
        "the files close after the address space is gone"
    );
}

/// Touching more pages than may be live is refused (a scenario error), never an abort: at
/// once when one operation asks for more, part-way when the total grows past the limit. What
/// was touched before stays consistent (and is freed at exit).
#[test]
fn touching_past_the_page_limit_is_refused() {
    let mut e = engine();
    e.set_page_limit(100);
    let t = e.spawn("big");
    let addr = e.mmap(t, 1 << 36, Prot::RW, false).unwrap();
    assert_eq!(
        e.cpu_access(t, addr, 101, true),
        Err(EngineError::TooManyPages { limit: 100 })
    );
    assert_eq!(e.live_pages().system_pages, 0, "refused before any work");
    e.cpu_access(t, addr, 60, true).unwrap();
    assert_eq!(
        e.cpu_access(t, addr + 60 * PS, 60, true),
        Err(EngineError::TooManyPages { limit: 100 })
    );
    assert_eq!(e.live_pages().system_pages, 100);
    e.exit(t).unwrap();
    assert_eq!(e.live_pages(), Totals::default());
}

/// A device of 2^32 pages costs nothing until used, and its pfns do not overlap the next
/// device's.
#[test]
fn a_device_of_2_to_the_32_pages_is_cheap_and_apart() {
    let mut e = engine();
    let big = e.add_device("big", DeviceKind::Private, 1 << 32, 64);
    let next = e.add_device("next", DeviceKind::Private, 16, 16);
    assert_eq!(e.device_free_pages(big), 1 << 32);
    assert!(e.devices[next].base_pfn >= e.devices[big].base_pfn + (1 << 32));
    let t = e.spawn("p");
    let addr = e.mmap(t, 64, Prot::RW, false).unwrap();
    e.cpu_access(t, addr, 64, true).unwrap();
    e.migrate_to_device(big, t, addr, 64, &[]).unwrap();
    assert_eq!(e.device_free_pages(big), (1 << 32) - 64);
}
