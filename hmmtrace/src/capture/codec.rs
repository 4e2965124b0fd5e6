//! The per-block event encoding: one tag byte, then LEB128 varints of deltas against the
//! previous event of the same block. Decoding checks every bound and reports a malformed
//! payload as an error; it never panics.
//!
//! Tag byte: bits 0-2 the `EventKind`, bit 3 has duration, bit 4 same task (tgid, pid, comm)
//! as the previous event, bit 5 same CPU, bit 6 has unknown-field bits. Then: timestamp delta
//! (zigzag), duration, task (tgid, pid - tgid zigzag, comm table index; a new index is followed
//! by the name's length and bytes), CPU, unknown bits, and the payload's fields, addresses and
//! owners as zigzag deltas against the previous ones of any kind.

use crate::event::{
    Body, Comm, DeviceFault, Event, EventKind, Invalidation, Lost, Migration, PageFree, RangeFault,
    SystemMigration,
};

const HAS_DURATION: u8 = 1 << 3;
const SAME_TASK: u8 = 1 << 4;
const SAME_CPU: u8 = 1 << 5;
const HAS_UNKNOWN: u8 = 1 << 6;

/// Delta state shared by the encoder and decoder of one block.
#[derive(Default)]
pub(crate) struct State {
    ts: u64,
    tgid: u32,
    pid: u32,
    comm: Comm,
    cpu: u32,
    addr: u64,
    owner: u64,
    pfn: u64,
    comms: Vec<Comm>,
    first: bool,
}

impl State {
    pub fn new() -> State {
        State {
            first: true,
            ..Default::default()
        }
    }
}

fn zz(d: u64) -> u64 {
    let d = d as i64;
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzz(v: u64) -> u64 {
    ((v >> 1) as i64 ^ -((v & 1) as i64)) as u64
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_delta(out: &mut Vec<u8>, value: u64, prev: &mut u64) {
    put(out, zz(value.wrapping_sub(*prev)));
    *prev = value;
}

pub(crate) fn encode(st: &mut State, e: &Event, out: &mut Vec<u8>) {
    let same_task = !st.first && e.tgid == st.tgid && e.pid == st.pid && e.comm == st.comm;
    let same_cpu = !st.first && e.cpu == st.cpu;
    let mut tag = e.kind() as u8;
    if e.duration_ns.is_some() {
        tag |= HAS_DURATION;
    }
    if same_task {
        tag |= SAME_TASK;
    }
    if same_cpu {
        tag |= SAME_CPU;
    }
    if e.unknown != 0 {
        tag |= HAS_UNKNOWN;
    }
    out.push(tag);
    put_delta(out, e.ts_ns, &mut st.ts);
    if let Some(d) = e.duration_ns {
        put(out, d);
    }
    if !same_task {
        put(out, e.tgid as u64);
        put(out, zz((e.pid as u64).wrapping_sub(e.tgid as u64)));
        match st.comms.iter().position(|c| *c == e.comm) {
            Some(i) => put(out, i as u64),
            None => {
                put(out, st.comms.len() as u64);
                let b = e.comm.as_bytes();
                out.push(b.len() as u8);
                out.extend_from_slice(b);
                st.comms.push(e.comm);
            }
        }
        st.tgid = e.tgid;
        st.pid = e.pid;
        st.comm = e.comm;
    }
    if !same_cpu {
        put(out, e.cpu as u64);
        st.cpu = e.cpu;
    }
    if e.unknown != 0 {
        put(out, e.unknown as u64);
    }
    st.first = false;
    match &e.body {
        Body::Migration(m) => {
            put_delta(out, m.start, &mut st.addr);
            put(out, m.end.wrapping_sub(m.start));
            put_delta(out, m.pgmap_owner, &mut st.owner);
            put(out, m.npages);
            put(out, zz(m.npages.wrapping_sub(m.cpages)));
            put(out, zz(m.cpages.wrapping_sub(m.migrated)));
            put(out, m.setup_ns);
            put(out, m.pages_ns);
            put(out, m.finalize_ns);
            put(out, m.select as u64);
            out.push(m.direction);
            out.push(m.api);
        }
        Body::DeviceFault(f) => {
            put_delta(out, f.address, &mut st.addr);
            put_delta(out, f.pgmap_owner, &mut st.owner);
            put(out, zz(f.pgmap_ops.wrapping_sub(f.pgmap_owner)));
            put(out, f.result as u64);
        }
        Body::PageFree(p) => {
            put_delta(out, p.pfn, &mut st.pfn);
            put_delta(out, p.pgmap_owner, &mut st.owner);
            put(out, zz(p.pgmap_ops.wrapping_sub(p.pgmap_owner)));
            put(out, p.order as u64);
            put(out, p.memory_type as u64);
            put(out, p.callback_ns);
        }
        Body::Invalidation(i) => {
            put_delta(out, i.start, &mut st.addr);
            put(out, i.end.wrapping_sub(i.start));
            put_delta(out, i.owner, &mut st.owner);
            put(out, i.event as u64);
            put(out, i.range_flags as u64);
            out.push(i.path);
        }
        Body::RangeFault(r) => {
            put_delta(out, r.start, &mut st.addr);
            put(out, r.end.wrapping_sub(r.start));
            put_delta(out, r.dev_private_owner, &mut st.owner);
            put(out, r.npages);
            put(out, r.retries as u64);
            put(out, zz(r.result as i64 as u64));
        }
        Body::SystemMigration(s) => {
            for v in [
                s.succeeded,
                s.failed,
                s.thp_succeeded,
                s.thp_failed,
                s.thp_split,
                s.large_folio_split,
            ] {
                put(out, v);
            }
            put(out, s.mode as u64);
            put(out, s.reason as u64);
        }
        Body::Lost(l) => {
            put(out, l.count);
            put(out, l.probe as u64);
        }
    }
}

/// A malformed payload: where, and what.
#[derive(Debug)]
pub(crate) struct DecodeError {
    pub offset: usize,
    pub what: &'static str,
}

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError {
            offset: self.pos,
            what,
        }
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err("event runs past the end of its block"))?;
        self.pos += 1;
        Ok(b)
    }

    fn var(&mut self) -> Result<u64, DecodeError> {
        // Most values are small deltas: one byte, no loop.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn var32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.var()?).map_err(|_| self.err("value does not fit in 32 bits"))
    }

    fn delta(&mut self, prev: &mut u64) -> Result<u64, DecodeError> {
        let v = prev.wrapping_add(unzz(self.var()?));
        *prev = v;
        Ok(v)
    }
}

pub(crate) fn decode(st: &mut State, c: &mut Cursor<'_>) -> Result<Event, DecodeError> {
    let tag = c.byte()?;
    let kind = EventKind::from_u16((tag & 7) as u16).ok_or_else(|| c.err("unknown event kind"))?;
    let ts_ns = c.delta(&mut st.ts)?;
    let duration_ns = if tag & HAS_DURATION != 0 {
        Some(c.var()?)
    } else {
        None
    };
    if tag & SAME_TASK == 0 {
        st.tgid = c.var32()?;
        st.pid = (st.tgid as u64).wrapping_add(unzz(c.var()?)) as u32;
        let idx = c.var()? as usize;
        if idx == st.comms.len() {
            let len = c.byte()? as usize;
            if len >= hmmtrace_common::COMM_LEN {
                return Err(c.err("task name longer than TASK_COMM_LEN"));
            }
            let mut b = [0u8; hmmtrace_common::COMM_LEN];
            for slot in b.iter_mut().take(len) {
                *slot = c.byte()?;
            }
            st.comms.push(Comm(b));
        }
        st.comm = *st
            .comms
            .get(idx)
            .ok_or_else(|| c.err("task name index out of range"))?;
    } else if st.first {
        return Err(c.err("first event of a block refers to a previous task"));
    }
    if tag & SAME_CPU == 0 {
        st.cpu = c.var32()?;
    } else if st.first {
        return Err(c.err("first event of a block refers to a previous CPU"));
    }
    let unknown = if tag & HAS_UNKNOWN != 0 {
        c.var32()?
    } else {
        0
    };
    st.first = false;
    let body = match kind {
        EventKind::Migration => {
            let start = c.delta(&mut st.addr)?;
            let end = start.wrapping_add(c.var()?);
            let pgmap_owner = c.delta(&mut st.owner)?;
            let npages = c.var()?;
            let cpages = npages.wrapping_sub(unzz(c.var()?));
            let migrated = cpages.wrapping_sub(unzz(c.var()?));
            Body::Migration(Migration {
                start,
                end,
                pgmap_owner,
                npages,
                cpages,
                migrated,
                setup_ns: c.var()?,
                pages_ns: c.var()?,
                finalize_ns: c.var()?,
                select: c.var32()?,
                direction: c.byte()?,
                api: c.byte()?,
                _pad: [0; 2],
            })
        }
        EventKind::DeviceFault => {
            let address = c.delta(&mut st.addr)?;
            let pgmap_owner = c.delta(&mut st.owner)?;
            let pgmap_ops = pgmap_owner.wrapping_add(unzz(c.var()?));
            Body::DeviceFault(DeviceFault {
                address,
                pgmap_owner,
                pgmap_ops,
                result: c.var32()?,
                _pad: 0,
            })
        }
        EventKind::PageFree => {
            let pfn = c.delta(&mut st.pfn)?;
            let pgmap_owner = c.delta(&mut st.owner)?;
            let pgmap_ops = pgmap_owner.wrapping_add(unzz(c.var()?));
            Body::PageFree(PageFree {
                pfn,
                pgmap_owner,
                pgmap_ops,
                order: c.var32()?,
                memory_type: c.var32()?,
                callback_ns: c.var()?,
            })
        }
        EventKind::Invalidation => {
            let start = c.delta(&mut st.addr)?;
            let end = start.wrapping_add(c.var()?);
            let owner = c.delta(&mut st.owner)?;
            let event = c.var32()?;
            let range_flags =
                u16::try_from(c.var()?).map_err(|_| c.err("range flags do not fit in 16 bits"))?;
            Body::Invalidation(Invalidation {
                start,
                end,
                owner,
                event,
                range_flags,
                path: c.byte()?,
                _pad: 0,
            })
        }
        EventKind::RangeFault => {
            let start = c.delta(&mut st.addr)?;
            let end = start.wrapping_add(c.var()?);
            let dev_private_owner = c.delta(&mut st.owner)?;
            let npages = c.var()?;
            let retries = c.var32()?;
            let result = unzz(c.var()?) as i64;
            let result =
                i32::try_from(result).map_err(|_| c.err("result does not fit in 32 bits"))?;
            Body::RangeFault(RangeFault {
                start,
                end,
                dev_private_owner,
                npages,
                retries,
                result,
            })
        }
        EventKind::SystemMigration => Body::SystemMigration(SystemMigration {
            succeeded: c.var()?,
            failed: c.var()?,
            thp_succeeded: c.var()?,
            thp_failed: c.var()?,
            thp_split: c.var()?,
            large_folio_split: c.var()?,
            mode: c.var32()?,
            reason: c.var32()?,
        }),
        EventKind::Lost => Body::Lost(Lost {
            count: c.var()?,
            probe: c.var32()?,
            _pad: 0,
        }),
    };
    Ok(Event {
        ts_ns,
        duration_ns,
        cpu: st.cpu,
        tgid: st.tgid,
        pid: st.pid,
        comm: st.comm,
        unknown,
        body,
    })
}
