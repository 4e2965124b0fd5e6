//! A sparse array indexed by page number: the engine's page tables (vpn → PTE), a device's pfn →
//! page map and its mirror of a process (vpn → present).
//!
//! Like the kernel's page tables, it is dense where it is used and absent elsewhere: 512-entry
//! leaves (one PTE page's worth) allocated on first touch and dropped when their last entry
//! goes, under 512-leaf directories kept in a sorted vector. So memory grows with the pages a
//! scenario touches, not the pages it declares, and a range is walked in address order leaf by
//! leaf. A lookup first tries the directory the last change used (the engine works through
//! ranges, so nearly always the one it wants), then a binary search. Hand-written because the crates that
//! come close are either dense (`Vec`, `bitvec`: memory by declared size) or hash maps
//! (memory and time per entry, no ordered ranges).

/// Entries per leaf, and leaves per directory.
const LEAF: u64 = 512;
const DIR: u64 = 512;

struct Leaf<T> {
    slots: [Option<T>; LEAF as usize],
    used: u32,
}

/// 512 leaves (2^18 keys): 64 directories cover 16 M pages, so the ordered map that finds them
/// stays shallow.
struct Dir<T> {
    leaves: [Option<Box<Leaf<T>>>; DIR as usize],
    used: u32,
}

/// See the module doc. Keys are page numbers (any `u64`).
pub(crate) struct Sparse<T> {
    /// Directories by number, in order.
    dirs: Vec<(u64, Box<Dir<T>>)>,
    /// Index in `dirs` of the directory the last change used (may be stale: checked).
    hint: usize,
    len: u64,
}

impl<T> Default for Sparse<T> {
    fn default() -> Self {
        Sparse {
            dirs: Vec::new(),
            hint: 0,
            len: 0,
        }
    }
}

/// Directory, leaf within it, slot within that.
fn split(key: u64) -> (u64, usize, usize) {
    (
        key / (LEAF * DIR),
        ((key / LEAF) % DIR) as usize,
        (key % LEAF) as usize,
    )
}

impl<T: Copy> Sparse<T> {
    /// Entries present.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Where directory `dir` is in `dirs`, or where it would go.
    #[inline]
    fn find(&self, dir: u64) -> Result<usize, usize> {
        match self.dirs.get(self.hint) {
            Some((d, _)) if *d == dir => Ok(self.hint),
            _ => self.dirs.binary_search_by_key(&dir, |(d, _)| *d),
        }
    }

    /// Directory `dir`, remembered for the next lookup.
    #[inline]
    fn dir_mut(&mut self, dir: u64) -> Option<&mut Dir<T>> {
        let i = self.find(dir).ok()?;
        self.hint = i;
        Some(&mut self.dirs[i].1)
    }

    /// Drops the directory at `i` (its last leaf went).
    fn drop_dir(&mut self, i: usize) {
        self.dirs.remove(i);
    }

    fn leaf(&self, key: u64) -> Option<&Leaf<T>> {
        let (dir, leaf, _) = split(key);
        let i = self.find(dir).ok()?;
        self.dirs[i].1.leaves[leaf].as_deref()
    }

    fn leaf_mut(&mut self, key: u64) -> Option<&mut Leaf<T>> {
        let (dir, leaf, _) = split(key);
        self.dir_mut(dir)?.leaves[leaf].as_deref_mut()
    }

    pub fn get(&self, key: u64) -> Option<T> {
        self.leaf(key).and_then(|l| l.slots[split(key).2])
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut T> {
        self.leaf_mut(key)
            .and_then(|l| l.slots[split(key).2].as_mut())
    }

    /// Sets `key`; returns what it held.
    pub fn insert(&mut self, key: u64, value: T) -> Option<T> {
        let (dir, leaf, slot) = split(key);
        let i = match self.find(dir) {
            Ok(i) => i,
            Err(i) => {
                let d = Box::new(Dir {
                    leaves: [const { None }; DIR as usize],
                    used: 0,
                });
                self.dirs.insert(i, (dir, d));
                i
            }
        };
        self.hint = i;
        let d = &mut self.dirs[i].1;
        let l = d.leaves[leaf].get_or_insert_with(|| {
            Box::new(Leaf {
                slots: [None; LEAF as usize],
                used: 0,
            })
        });
        if l.used == 0 {
            d.used += 1;
        }
        let old = l.slots[slot].replace(value);
        if old.is_none() {
            l.used += 1;
            self.len += 1;
        } else if l.used == 0 {
            unreachable!("a present entry counts");
        }
        old
    }

    /// Clears `key`; returns what it held.
    pub fn remove(&mut self, key: u64) -> Option<T> {
        let (dir, leaf, slot) = split(key);
        let i = self.find(dir).ok()?;
        self.hint = i;
        let d = &mut self.dirs[i].1;
        let l = d.leaves[leaf].as_mut()?;
        let old = l.slots[slot].take();
        if old.is_some() {
            l.used -= 1;
            self.len -= 1;
            if l.used == 0 {
                d.leaves[leaf] = None;
                d.used -= 1;
                if d.used == 0 {
                    self.drop_dir(i);
                }
            }
        }
        old
    }

    /// The leaves that may hold keys in `[start, end)`, in order, with their first key.
    fn leaves(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, &Leaf<T>)> + '_ {
        let last = (end > start).then(|| end - 1);
        let dirs = last.map(|last| {
            let (lo, hi) = (start / (LEAF * DIR), last / (LEAF * DIR));
            let from = self.dirs.partition_point(|(d, _)| *d < lo);
            self.dirs[from..].iter().take_while(move |(d, _)| *d <= hi)
        });
        dirs.into_iter().flatten().flat_map(move |(dir, d)| {
            let dir = *dir;
            // The leaves of this directory that overlap the range.
            let first_leaf = dir * DIR;
            let from = (start / LEAF).saturating_sub(first_leaf).min(DIR) as usize;
            let to = ((end - 1) / LEAF + 1 - first_leaf).min(DIR) as usize;
            d.leaves[from..to]
                .iter()
                .enumerate()
                .filter_map(move |(i, l)| {
                    let base = (first_leaf + (from + i) as u64) * LEAF;
                    l.as_deref().map(|l| (base, l))
                })
        })
    }

    /// The first key of the first leaf that may hold keys in `[start, end)`.
    fn first_leaf(&self, start: u64, end: u64) -> Option<u64> {
        self.leaves(start, end).next().map(|(base, _)| base)
    }

    /// The entries with keys in `[start, end)`, in key order.
    pub fn range(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, T)> + '_ {
        self.leaves(start, end).flat_map(move |(base, l)| {
            let from = start.saturating_sub(base).min(LEAF) as usize;
            let to = (end - base).min(LEAF) as usize;
            l.slots[from..to]
                .iter()
                .enumerate()
                .filter_map(move |(i, s)| s.map(|v| (base + (from + i) as u64, v)))
        })
    }

    /// Whether any key in `[start, end)` is present.
    pub fn any_in(&self, start: u64, end: u64) -> bool {
        self.range(start, end).next().is_some()
    }

    /// Clears every key in `[start, end)`; returns how many were present.
    pub fn remove_range(&mut self, start: u64, end: u64) -> u64 {
        // Within one leaf (a page's invalidation, mostly): straight to it.
        if end > start && start / LEAF == (end - 1) / LEAF {
            let (dir, leaf, from) = split(start);
            let Ok(i) = self.find(dir) else { return 0 };
            self.hint = i;
            return self.clear_slots(i, leaf, from, from + (end - start) as usize);
        }
        let mut removed = 0;
        let mut cursor = start;
        // One leaf at a time, found afresh: no list of leaves to allocate (this runs on every
        // invalidation callback).
        while let Some(base) = self.first_leaf(cursor, end) {
            cursor = base.saturating_add(LEAF);
            let (dir, leaf, _) = split(base);
            let i = self.find(dir).expect("listed above");
            let from = start.saturating_sub(base).min(LEAF) as usize;
            let to = (end - base).min(LEAF) as usize;
            removed += self.clear_slots(i, leaf, from, to);
            if cursor >= end || base.checked_add(LEAF).is_none() {
                break;
            }
        }
        removed
    }

    /// Clears slots `[from, to)` of leaf `leaf` of the directory at `i`, dropping the leaf (and
    /// the directory) when it empties; returns how many were present.
    fn clear_slots(&mut self, i: usize, leaf: usize, from: usize, to: usize) -> u64 {
        let d = &mut self.dirs[i].1;
        let Some(l) = d.leaves[leaf].as_mut() else {
            return 0;
        };
        let mut removed = 0;
        for s in &mut l.slots[from..to] {
            if s.take().is_some() {
                l.used -= 1;
                removed += 1;
            }
        }
        if l.used == 0 {
            d.leaves[leaf] = None;
            d.used -= 1;
            if d.used == 0 {
                self.drop_dir(i);
            }
        }
        self.len -= removed;
        removed
    }

    /// Sets every key in `[start, end)` to `value`.
    pub fn fill(&mut self, start: u64, end: u64, value: T) {
        // A leaf at a time: one directory and leaf lookup per 512 keys, not per key.
        let mut k = start;
        while k < end {
            self.insert(k, value);
            let (dir, leaf, slot) = split(k);
            let to = (end - k).min(LEAF - slot as u64) as usize + slot;
            let i = self.find(dir).expect("inserted above");
            let l = self.dirs[i].1.leaves[leaf]
                .as_mut()
                .expect("inserted above");
            let mut added = 0;
            for s in &mut l.slots[slot + 1..to] {
                if s.replace(value).is_none() {
                    added += 1;
                }
            }
            l.used += added;
            self.len += u64::from(added);
            k = match k.checked_add((to - slot) as u64) {
                Some(next) => next,
                None => break,
            };
        }
    }

    /// Every entry, in key order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (u64, T)> + '_ {
        self.range(0, u64::MAX)
            .chain(self.get(u64::MAX).map(|v| (u64::MAX, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap as Model;

    /// Random operations against a `BTreeMap` doing the same: every answer agrees, and leaves
    /// are freed when emptied (memory follows the entries).
    #[test]
    fn agrees_with_an_ordered_map() {
        let mut s = Sparse::<u32>::default();
        let mut m = Model::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000u32 {
            let r = next();
            let key = (r >> 8) % 5_000 + if r & 1 == 0 { 0 } else { u64::MAX - 6_000 };
            match r % 6 {
                0 | 1 => assert_eq!(s.insert(key, i), m.insert(key, i)),
                5 => {
                    let end = key.saturating_add(next() % 1_200);
                    s.fill(key, end, i);
                    for k in key..end {
                        m.insert(k, i);
                    }
                }
                2 => assert_eq!(s.remove(key), m.remove(&key)),
                3 => {
                    let end = key.saturating_add(next() % 1_500);
                    let want: Vec<_> = m.range(key..end).map(|(k, v)| (*k, *v)).collect();
                    assert_eq!(s.range(key, end).collect::<Vec<_>>(), want);
                    assert_eq!(s.any_in(key, end), !want.is_empty());
                }
                _ => {
                    let end = key.saturating_add(next() % 700);
                    let gone = m.range(key..end).count() as u64;
                    m.retain(|k, _| !(key..end).contains(k));
                    assert_eq!(s.remove_range(key, end), gone);
                }
            }
            assert_eq!(s.len(), m.len() as u64);
            assert_eq!(s.get(key), m.get(&key).copied());
        }
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            m.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>()
        );
        let n = m.len() as u64;
        assert_eq!(
            s.remove_range(0, u64::MAX) + s.remove(u64::MAX).map_or(0, |_| 1),
            n
        );
        assert!(
            s.dirs.is_empty(),
            "emptied leaves and directories are freed"
        );
    }
}
