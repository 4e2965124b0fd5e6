//! Snapshots of in-kernel aggregates (`--aggregate`): what the kernel source reads from the
//! programs' per-CPU maps once per interval, summed over CPUs and cumulative since the session
//! started. They travel through the pipeline as a status (`Status::Aggregate`), captures store
//! them, and the report, the TUI and the metrics read them where they would read events.
//!
//! What a snapshot can and cannot answer: exact counts, pages, retries, and the exact sum,
//! minimum and maximum of durations per class, device and process; percentiles per class and
//! device from log-linear buckets (within 0.8 %, `hmmtrace_common::agg`); no single event, so
//! no findings, no heat map, no per-page lifetimes and no per-symbol rows.

use serde::{Deserialize, Serialize};

use hmmtrace_common::agg::{bucket, bucket_bounds, AggCounts};

use crate::event::{Body, Class, Event};
use crate::stats::Durations;

/// One interval's reading, cumulative since the session started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When it was read, on the events' clock.
    pub at_ns: u64,
    pub groups: Vec<Group>,
    pub histograms: Vec<Hist>,
}

/// The exact figures of one class of events of one device and process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub class: Class,
    /// pgmap owner; 0: none.
    pub owner: u64,
    pub tgid: u32,
    /// The process's name when the snapshot was read.
    pub comm: String,
    /// Migrations: `Migration::direction` and `::api`; 0 otherwise.
    pub direction: u8,
    pub api: u8,
    pub count: u64,
    pub pages: u64,
    pub retries: u64,
    /// Events with a duration, and their exact sum, minimum and maximum (ns).
    pub timed: u64,
    pub sum_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// Durations of one class of events of one device, as (bucket index, count), buckets with a
/// count only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hist {
    pub class: Class,
    pub owner: u64,
    pub buckets: Vec<(u32, u64)>,
}

impl Group {
    /// A group with nothing counted yet.
    pub fn new(class: Class, owner: u64, tgid: u32, comm: String, direction: u8, api: u8) -> Group {
        Group {
            class,
            owner,
            tgid,
            comm,
            direction,
            api,
            count: 0,
            pages: 0,
            retries: 0,
            timed: 0,
            sum_ns: 0,
            min_ns: 0,
            max_ns: 0,
            first_ns: 0,
            last_ns: 0,
        }
    }

    /// Adds one CPU's counts.
    pub fn add(&mut self, c: &AggCounts) {
        if c.count == 0 {
            return;
        }
        self.count += c.count;
        self.pages += c.pages;
        self.retries += c.retries;
        if c.timed > 0 {
            self.min_ns = if self.timed == 0 {
                c.min_ns
            } else {
                self.min_ns.min(c.min_ns)
            };
            self.max_ns = self.max_ns.max(c.max_ns);
            self.timed += c.timed;
            self.sum_ns += c.sum_ns;
        }
        self.first_ns = if self.first_ns == 0 {
            c.first_ns
        } else {
            self.first_ns.min(c.first_ns)
        };
        self.last_ns = self.last_ns.max(c.last_ns);
    }
}

/// A duration of bucket `i` as the aggregates' readers record it: the bucket's midpoint,
/// within the histograms' trackable range (so a percentile is within half a bucket).
pub fn bucket_mid(i: u32) -> u64 {
    let (low, high) = bucket_bounds(i as usize);
    let top = crate::stats::MAX_TRACKABLE_NS;
    (low / 2 + high.min(top) / 2).clamp(1, top)
}

/// What identifies a group across snapshots.
type GroupKey = (Class, u64, u32, u8, u8);

impl Group {
    fn key(&self) -> GroupKey {
        (self.class, self.owner, self.tgid, self.direction, self.api)
    }
}

/// What a group gained since the previous snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gained {
    pub count: u64,
    pub pages: u64,
    pub retries: u64,
}

impl Snapshot {
    /// What each group gained since `prev` (snapshots are cumulative; none: since the start).
    pub fn gained<'a>(&'a self, prev: Option<&Snapshot>) -> Vec<(&'a Group, Gained)> {
        let before: std::collections::HashMap<GroupKey, &Group> = prev
            .map(|p| p.groups.iter().map(|g| (g.key(), g)).collect())
            .unwrap_or_default();
        self.groups
            .iter()
            .map(|g| {
                let b = before.get(&g.key());
                let had = |f: fn(&Group) -> u64| b.map_or(0, |x| f(x));
                let gained = Gained {
                    count: g.count.saturating_sub(had(|x| x.count)),
                    pages: g.pages.saturating_sub(had(|x| x.pages)),
                    retries: g.retries.saturating_sub(had(|x| x.retries)),
                };
                (g, gained)
            })
            .collect()
    }

    /// The durations each histogram gained since `prev`: (class, bucket midpoint in ns, how
    /// many), buckets that gained nothing left out.
    pub fn durations_gained(&self, prev: Option<&Snapshot>) -> Vec<(Class, u64, u64)> {
        let before: std::collections::HashMap<(Class, u64, u32), u64> = prev
            .map(|p| {
                p.histograms
                    .iter()
                    .flat_map(|h| h.buckets.iter().map(|&(b, n)| ((h.class, h.owner, b), n)))
                    .collect()
            })
            .unwrap_or_default();
        self.histograms
            .iter()
            .flat_map(|h| {
                let before = &before;
                h.buckets.iter().filter_map(move |&(b, n)| {
                    let had = before.get(&(h.class, h.owner, b)).copied().unwrap_or(0);
                    (n > had).then(|| (h.class, bucket_mid(b), n - had))
                })
            })
            .collect()
    }

    /// The durations of the events `keep` selects: exact figures from the groups, the
    /// histogram from the buckets of the histograms `hist` selects (per class and device: a
    /// selection of processes gets no percentiles, only exact figures).
    pub fn durations(
        &self,
        keep: impl Fn(&Group) -> bool,
        hist: impl Fn(&Hist) -> bool,
    ) -> Durations {
        let (mut count, mut sum, mut min, mut max) = (0u64, 0u128, u64::MAX, 0u64);
        for g in self.groups.iter().filter(|g| keep(g) && g.timed > 0) {
            count += g.timed;
            sum += u128::from(g.sum_ns);
            min = min.min(g.min_ns);
            max = max.max(g.max_ns);
        }
        let buckets = self
            .histograms
            .iter()
            .filter(|h| hist(h))
            .flat_map(|h| h.buckets.iter().map(|&(i, n)| (bucket_mid(i), n)));
        Durations::from_aggregate(count, sum, min, max, buckets)
    }

    /// The class's events in all: count, pages, retries.
    pub fn totals(&self, class: Class) -> (u64, u64, u64) {
        self.groups
            .iter()
            .filter(|g| g.class == class)
            .fold((0, 0, 0), |(c, p, r), g| {
                (c + g.count, p + g.pages, r + g.retries)
            })
    }

    /// Events in all.
    pub fn events(&self) -> u64 {
        self.groups.iter().map(|g| g.count).sum()
    }
}

/// Aggregates events in userspace exactly as the programs do in the kernel: the reference the
/// tests hold the kernel's snapshots and the report's reading of them to.
#[derive(Default)]
pub struct Aggregator {
    snapshot: Snapshot,
}

impl Aggregator {
    pub fn add(&mut self, e: &Event) {
        let class = e.class();
        if class == Class::Lost {
            return;
        }
        let owner = e.body.device().unwrap_or(0);
        let (direction, api) = match &e.body {
            Body::Migration(m) => (m.direction, m.api),
            _ => (0, 0),
        };
        let s = &mut self.snapshot;
        let at = s.groups.iter().position(|g| {
            g.class == class
                && g.owner == owner
                && g.tgid == e.tgid
                && (g.direction, g.api) == (direction, api)
        });
        let g = match at {
            Some(i) => &mut s.groups[i],
            None => {
                s.groups.push(Group::new(
                    class,
                    owner,
                    e.tgid,
                    e.comm.to_string(),
                    direction,
                    api,
                ));
                s.groups.last_mut().expect("pushed")
            }
        };
        let d = e.duration_ns;
        g.add(&AggCounts {
            count: 1,
            pages: e.pages(),
            retries: e.retries(),
            timed: u64::from(d.is_some()),
            sum_ns: d.unwrap_or(0),
            min_ns: d.unwrap_or(u64::MAX),
            max_ns: d.unwrap_or(0),
            last_ns: e.ts_ns,
            first_ns: e.ts_ns,
        });
        s.at_ns = s.at_ns.max(e.ts_ns);
        if let Some(d) = d {
            let b = bucket(d) as u32;
            let h = match s
                .histograms
                .iter()
                .position(|h| h.class == class && h.owner == owner)
            {
                Some(i) => &mut s.histograms[i],
                None => {
                    s.histograms.push(Hist {
                        class,
                        owner,
                        buckets: Vec::new(),
                    });
                    s.histograms.last_mut().expect("pushed")
                }
            };
            match h.buckets.iter_mut().find(|(i, _)| *i == b) {
                Some((_, n)) => *n += 1,
                None => h.buckets.push((b, 1)),
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.clone()
    }
}
