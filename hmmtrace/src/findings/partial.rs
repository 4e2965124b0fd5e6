//! Partial migrations: a migration that collected fewer pages than it could (`cpages <
//! npages`: pages pinned, locked by someone else, or on another device) or moved fewer than it
//! collected (`migrated < cpages`: the driver could not allocate or copy, or a page's
//! references changed). Pages that are already where the migration would put them are not
//! missing: a migration to a device does not count the range's pages already on that device,
//! and one to RAM counts only the pages that were on its device (residency as
//! [`super::pages`] follows it). HMM allows partial migrations, so these are `info`; a driver
//! that relies on all-or-nothing learns here that it should not. The kernel gives no reason
//! per page, so the finding gives the counts.
//!
//! One finding per process, device and direction per episode; bounds: 1024 keys open, and the
//! residency bounds of [`super::pages`].

use super::episodes::{Episode, Episodes};
use super::pages::Pages;
use super::{Context, Draft, FindingKind};
use crate::event::{Body, Event};
use hmmtrace_common::{Migration, DIRECTION_TO_DEVICE};

type Key = (u32, u64, u8);

pub struct Partial {
    open: Episodes<Key>,
    closed: Vec<(Key, Episode)>,
    residency: Pages,
}

impl Default for Partial {
    fn default() -> Partial {
        Partial {
            open: Episodes::new(1024),
            closed: Vec::new(),
            residency: Pages::new(4096),
        }
    }
}

impl Partial {
    pub(super) fn event(&mut self, cx: &Context, e: &Event, out: &mut Vec<Draft>) {
        if self.residency.page_size() != cx.page_size {
            self.residency = Pages::new(cx.page_size);
        }
        let Body::Migration(m) = &e.body else {
            self.residency.event(e);
            return;
        };
        let known = e.unknown
            & (Migration::FIELD_CPAGES | Migration::FIELD_MIGRATED | Migration::FIELD_FINALIZE)
            == 0;
        // What the migration could have collected: to a device, the range less what is on
        // that device already; to RAM (by address), what was on its device.
        let could = if m.api == hmmtrace_common::API_MIGRATE_DEVICE {
            m.npages
        } else if m.direction == DIRECTION_TO_DEVICE {
            m.npages.saturating_sub(self.residency.resident_pages(
                e.tgid,
                m.start,
                m.end,
                m.pgmap_owner,
            ))
        } else {
            self.residency
                .resident_pages(e.tgid, m.start, m.end, m.pgmap_owner)
                .max(m.cpages)
        };
        self.residency.event(e);
        if !known || (m.cpages >= could && m.migrated >= m.cpages) {
            return;
        }
        let ep = self.open.add(
            (e.tgid, m.pgmap_owner, m.direction),
            e,
            cx.config.episode_gap_ns,
            &mut self.closed,
        );
        ep.sums[0] += m.npages;
        ep.sums[1] += m.cpages;
        ep.sums[2] += m.migrated;
        ep.sums[3] += could;
        self.conclude(out);
    }

    pub(super) fn expire(&mut self, cx: &Context, now: u64, out: &mut Vec<Draft>) {
        self.open
            .expire(now, cx.config.episode_gap_ns, &mut self.closed);
        self.conclude(out);
    }

    fn conclude(&mut self, out: &mut Vec<Draft>) {
        for ((tgid, owner, direction), ep) in self.closed.drain(..) {
            let [asked, collected, migrated, could] = ep.sums;
            let to = if direction == DIRECTION_TO_DEVICE {
                "to the device"
            } else {
                "to RAM"
            };
            out.push(Draft {
                kind: FindingKind::PartialMigration,
                tgid,
                comm: ep.comm,
                owner,
                symbol: None,
                range: ep.range,
                first_ns: ep.first_ns,
                last_ns: ep.last_ns,
                counts: vec![
                    ("migrations", ep.count),
                    ("npages", asked),
                    ("movable", could),
                    ("cpages", collected),
                    ("migrated", migrated),
                ],
                message: format!(
                    "{} migration(s) {to} moved {migrated} of the {could} pages they could \
                     have ({asked} in their ranges): {} were not collected (pinned, busy, or on \
                     another device) and {} collected ones were not migrated",
                    ep.count,
                    could.saturating_sub(collected),
                    collected.saturating_sub(migrated)
                ),
                events: ep.events,
            });
        }
    }
}
