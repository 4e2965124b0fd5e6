//! `struct page`s: where each page's memory lives, its reverse map (who maps it), pins, and the
//! pool of page ids.
//!
//! A page is 32 bytes here (the kernel's is 64): a scenario over 16 M pages keeps 16 M of
//! them. Almost every page has exactly one mapping (a fork's copy-on-write shares a few), so
//! the first mapping lives in the page and the rest in an overflow list shared by all pages;
//! no page allocates on its own.

use std::ops::{Index, IndexMut};

use super::{DevId, Tgid};

/// Index into [`Pages`].
pub(crate) type PageId = u32;

/// One mapping of a page: the process and the virtual page number.
pub(crate) type Mapping = (Tgid, u64);

/// Where a page's memory lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    System,
    /// `pfn` is the offset from the device's `base_pfn`.
    Device {
        dev: DevId,
        pfn: u64,
    },
}

/// `dev` of a system page.
const SYSTEM: u16 = u16::MAX;
/// `map_tgid` of a page with no mapping.
const NO_MAP: Tgid = Tgid::MAX;

/// The most devices the engine models (device numbers are 16 bits in a page).
pub const MAX_DEVICES: usize = SYSTEM as usize;

/// One page. The reverse map behaves as a `Vec<(Tgid, vpn)>` (push, swap-remove, take in
/// order): its first element is `map_*`, the rest `Pages::more[more - 1]`.
pub(crate) struct Page {
    map_vpn: u64,
    map_tgid: Tgid,
    more: u32,
    pfn: u32,
    /// LRU stamp, for device pages (wraps; see `Device::lru`).
    pub stamp: u32,
    pub pins: u32,
    dev: u16,
    /// A page-cache page: the cache holds a reference, so a write through a private mapping
    /// copies it rather than reusing it.
    pub cache: bool,
    pub live: bool,
}

impl Page {
    pub fn frame(&self) -> Frame {
        if self.dev == SYSTEM {
            Frame::System
        } else {
            Frame::Device {
                dev: self.dev as DevId,
                pfn: self.pfn as u64,
            }
        }
    }
}

/// Pages per block of [`Pages`]: 2 MiB.
const BLOCK_BITS: u32 = 16;
const BLOCK: usize = 1 << BLOCK_BITS;

/// Every page the engine made, live or free for reuse. Kept in blocks of [`BLOCK`] pages
/// rather than one `Vec`: a `Vec` of 2^26 pages doubles to a 4 GiB allocation on its next push,
/// which a machine (or an address-space limit) may refuse, and that aborts; blocks grow by 2
/// MiB at a time.
#[derive(Default)]
pub(crate) struct Pages {
    blocks: Vec<Vec<Page>>,
    /// Pages live now.
    live: u64,
    free: Vec<PageId>,
    more: Vec<Vec<Mapping>>,
    more_free: Vec<u32>,
}

impl Index<PageId> for Pages {
    type Output = Page;
    fn index(&self, id: PageId) -> &Page {
        &self.blocks[(id >> BLOCK_BITS) as usize][id as usize & (BLOCK - 1)]
    }
}

impl IndexMut<PageId> for Pages {
    fn index_mut(&mut self, id: PageId) -> &mut Page {
        &mut self.blocks[(id >> BLOCK_BITS) as usize][id as usize & (BLOCK - 1)]
    }
}

impl Pages {
    /// A live page with no mapping; the id of the most recently freed page is reused first.
    /// Device pfns are below 2^32 (devices are at most 2^32 pages).
    pub fn alloc(&mut self, frame: Frame) -> PageId {
        let (dev, pfn) = match frame {
            Frame::System => (SYSTEM, 0),
            Frame::Device { dev, pfn } => (dev as u16, pfn as u32),
        };
        let page = Page {
            map_vpn: 0,
            map_tgid: NO_MAP,
            more: 0,
            pfn,
            stamp: 0,
            pins: 0,
            dev,
            cache: false,
            live: true,
        };
        self.live += 1;
        match self.free.pop() {
            Some(id) => {
                self[id] = page;
                id
            }
            None => {
                if self.blocks.last().is_none_or(|b| b.len() == BLOCK) {
                    self.blocks.push(Vec::with_capacity(BLOCK));
                }
                let n = self.blocks.len() - 1;
                let block = &mut self.blocks[n];
                block.push(page);
                ((n << BLOCK_BITS) + block.len() - 1) as PageId
            }
        }
    }

    /// Marks a page free (it has no mapping) and its id reusable.
    pub fn release(&mut self, id: PageId) {
        self.live -= 1;
        self[id].live = false;
        self.free.push(id);
    }

    /// How many pages are live.
    pub fn live_count(&self) -> u64 {
        self.live
    }

    pub fn live(&self) -> impl Iterator<Item = &Page> {
        self.blocks.iter().flatten().filter(|p| p.live)
    }

    #[cfg(test)]
    pub fn live_mut(&mut self) -> impl Iterator<Item = &mut Page> {
        self.blocks.iter_mut().flatten().filter(|p| p.live)
    }

    /// How many mappings the page has.
    pub fn map_count(&self, id: PageId) -> usize {
        let p = &self[id];
        match (p.map_tgid, p.more) {
            (NO_MAP, _) => 0,
            (_, 0) => 1,
            (_, more) => 1 + self.more[more as usize - 1].len(),
        }
    }

    /// Adds a mapping at the end of the page's reverse map.
    pub fn add_map(&mut self, id: PageId, (tgid, vpn): Mapping) {
        let p = &mut self.blocks[(id >> BLOCK_BITS) as usize][id as usize & (BLOCK - 1)];
        if p.map_tgid == NO_MAP {
            p.map_tgid = tgid;
            p.map_vpn = vpn;
            return;
        }
        if p.more == 0 {
            p.more = match self.more_free.pop() {
                Some(i) => i + 1,
                None => {
                    self.more.push(Vec::new());
                    self.more.len() as u32
                }
            };
        }
        self.more[p.more as usize - 1].push((tgid, vpn));
    }

    /// Removes one mapping, as `Vec::swap_remove` at its position would; nothing if absent.
    pub fn remove_map(&mut self, id: PageId, m: Mapping) {
        let p = &mut self.blocks[(id >> BLOCK_BITS) as usize][id as usize & (BLOCK - 1)];
        if p.map_tgid == NO_MAP {
            return;
        }
        let first = (p.map_tgid, p.map_vpn);
        if p.more == 0 {
            if first == m {
                p.map_tgid = NO_MAP;
            }
            return;
        }
        let slot = p.more as usize - 1;
        let more = &mut self.more[slot];
        if first == m {
            // The last element takes the first's place.
            let (t, v) = more.pop().expect("an overflow list is never empty");
            p.map_tgid = t;
            p.map_vpn = v;
        } else if let Some(i) = more.iter().position(|x| *x == m) {
            more.swap_remove(i);
        }
        if more.is_empty() {
            p.more = 0;
            self.more_free.push(slot as u32);
        }
    }

    /// Takes every mapping, in reverse-map order, leaving none.
    #[cfg(test)]
    pub fn take_maps(&mut self, id: PageId) -> impl Iterator<Item = Mapping> {
        let (first, more) = self.take_map_parts(id);
        first.into_iter().chain(more)
    }

    /// Takes every mapping, leaving none: the first, and the rest in reverse-map order (a
    /// vector that allocates only when there are more, after a fork).
    pub fn take_map_parts(&mut self, id: PageId) -> (Option<Mapping>, Vec<Mapping>) {
        let p = &mut self.blocks[(id >> BLOCK_BITS) as usize][id as usize & (BLOCK - 1)];
        let first = (p.map_tgid != NO_MAP).then_some((p.map_tgid, p.map_vpn));
        p.map_tgid = NO_MAP;
        let more = match std::mem::take(&mut p.more) {
            0 => Vec::new(),
            i => {
                self.more_free.push(i - 1);
                std::mem::take(&mut self.more[i as usize - 1])
            }
        };
        (first, more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reverse map behaves exactly as the `Vec` with swap-remove it replaced, through
    /// random pushes, removes (present and absent) and takes over a few pages.
    #[test]
    fn reverse_maps_behave_as_vectors() {
        let mut pages = Pages::default();
        let ids: Vec<PageId> = (0..4).map(|_| pages.alloc(Frame::System)).collect();
        let mut model: Vec<Vec<(Tgid, u64)>> = vec![Vec::new(); ids.len()];
        let mut x: u64 = 88172645463325252;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = (x % 4) as usize;
            let m = (((x >> 8) % 3) as Tgid, (x >> 16) % 4);
            match (x >> 32) % 7 {
                0..=2 => {
                    pages.add_map(ids[p], m);
                    model[p].push(m);
                }
                3..=5 => {
                    pages.remove_map(ids[p], m);
                    if let Some(i) = model[p].iter().position(|y| *y == m) {
                        model[p].swap_remove(i);
                    }
                }
                _ => {
                    let got: Vec<_> = pages.take_maps(ids[p]).collect();
                    assert_eq!(got, std::mem::take(&mut model[p]));
                }
            }
            assert_eq!(pages.map_count(ids[p]), model[p].len());
        }
        for (p, want) in ids.iter().zip(model) {
            assert_eq!(pages.take_maps(*p).collect::<Vec<_>>(), want);
        }
        assert!(
            pages.more.iter().all(Vec::is_empty),
            "overflow lists are given back"
        );
    }

    #[test]
    fn frames_round_trip_and_ids_are_reused_last_freed_first() {
        let mut pages = Pages::default();
        let a = pages.alloc(Frame::System);
        let b = pages.alloc(Frame::Device {
            dev: 3,
            pfn: (1 << 32) - 1,
        });
        assert_eq!(pages[a].frame(), Frame::System);
        assert_eq!(
            pages[b].frame(),
            Frame::Device {
                dev: 3,
                pfn: (1 << 32) - 1
            }
        );
        pages.release(a);
        pages.release(b);
        assert_eq!(pages.alloc(Frame::System), b);
        assert_eq!(pages.alloc(Frame::System), a);
        assert_eq!(std::mem::size_of::<Page>(), 32);
    }
}
