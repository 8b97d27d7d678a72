//! One chunk of events, encoded column by column so zstd sees long runs of
//! alike bytes: a flag byte per event, then the thread switches, the depths
//! and functions the model did not predict, and the timestamp deltas.
//!
//! The model is what makes events small: per thread it remembers the last
//! event and the functions open at each depth, so an exit's function and
//! nearly every depth are predicted and cost nothing but their flag bit.
//! Its state starts empty in every chunk, so each chunk decodes on its own.
//!
//! System calls (format 4) are markers with a function (their caller) and
//! a column of their own after the deltas, which older chunks lack.
//!
//! Arguments and return values (format 5) are markers too: their depth and
//! function are coded against the model like the entry or exit they precede,
//! without changing it, and what was read goes in a values column after the
//! syscall column. Neither column has a length (older chunks end after the
//! syscall column), so the values are decoded once every syscall record has
//! been: the bytes left then are the values column.

use std::collections::HashMap;

use super::values::{decode_values, encode_values};
use super::varint::{Cursor, put, unzigzag, zigzag};
use crate::model::{ArgCopy, Event, EventKind, FuncId, Syscall, SyscallIo};

/// Events per chunk: about 150 KB raw, a few hundred KB of memory for the
/// writer, and at most this many events lost to one damaged chunk.
pub const CHUNK_EVENTS: usize = 1 << 16;

/// A chunk is written early once its columns hold this many bytes: copied
/// strings (values, syscall arguments) can make events large, and the
/// reader takes chunks of up to twice this (reader.rs, `MAX_CHUNK_RAW`).
pub const CHUNK_BYTES: usize = 16 << 20;

const EXIT: u8 = 1;
const SWITCH: u8 = 2;
const DEPTH: u8 = 4;
const FUNC: u8 = 8;
/// The event's thread lost events just before it.
const AFTER_LOSS: u8 = 16;
/// An end marker (format 3): `Unwind`, or `Gone` with EXIT set. Its depth
/// is always stored, it has no function, and the model ignores it.
const MARK: u8 = 32;
/// Format 5: an `Args` marker, or with EXIT a `Retval`; never with MARK.
/// DEPTH and FUNC mean what they mean for an entry or exit.
const VALUES: u8 = 64;
/// Bits no format sets: a chunk with them is damaged.
const UNKNOWN: u8 = 128;
/// A marker with FUNC set is a system call (format 4); these say what its
/// record in the syscall column holds.
const SYS_NO_RETURN: u8 = 1;
const SYS_GOT: [u8; 2] = [2, 4];
const SYS_CUT: [u8; 2] = [8, 16];
/// `--io`: the call's I/O follows its copies.
const SYS_IO: u8 = 32;

/// What one thread's next event probably looks like.
#[derive(Default)]
struct ThreadModel {
    last: Option<(bool, u32)>,
    /// Functions open at depths `base..base + stack.len()`.
    base: u32,
    stack: Vec<u32>,
}

impl ThreadModel {
    fn predict_depth(&self, exit: bool) -> Option<u32> {
        let (last_exit, d) = self.last?;
        match (last_exit, exit) {
            (false, false) => d.checked_add(1),
            (true, true) => d.checked_sub(1),
            _ => Some(d),
        }
    }

    fn func_at(&self, depth: u32) -> Option<u32> {
        let i = depth.checked_sub(self.base)?;
        self.stack.get(i as usize).copied()
    }

    /// Memory is bounded by the entries seen in the chunk: the stack only
    /// grows by one per entry.
    fn update(&mut self, exit: bool, depth: u32, func: u32) {
        self.last = Some((exit, depth));
        let rel = depth.checked_sub(self.base).map(|r| r as usize);
        match (exit, rel) {
            (false, Some(r)) if r <= self.stack.len() => {
                self.stack.truncate(r);
                self.stack.push(func);
            }
            (false, _) => {
                self.base = depth;
                self.stack.clear();
                self.stack.push(func);
            }
            (true, Some(r)) => self.stack.truncate(r),
            (true, None) => {
                self.base = depth;
                self.stack.clear();
            }
        }
    }
}

/// Per-thread models of a chunk, with a fast path for the current thread.
#[derive(Default)]
struct Models {
    index: HashMap<u32, usize>,
    models: Vec<ThreadModel>,
}

impl Models {
    fn index_of(&mut self, tid: u32) -> usize {
        let next = self.models.len();
        let i = *self.index.entry(tid).or_insert(next);
        if i == next {
            self.models.push(ThreadModel::default());
        }
        i
    }

    fn clear(&mut self) {
        self.index.clear();
        self.models.clear();
    }
}

#[derive(Default)]
pub struct ChunkEncoder {
    flags: Vec<u8>,
    threads: Vec<u8>,
    depths: Vec<u8>,
    funcs: Vec<u8>,
    deltas: Vec<u8>,
    syscalls: Vec<u8>,
    values: Vec<u8>,
    base_ts: u64,
    prev_ts: u64,
    /// (tid, pid) of the previous event and its model's index.
    cur: Option<(u32, u32, usize)>,
    models: Models,
}

impl ChunkEncoder {
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// The bytes buffered, without the few of the chunk's head.
    pub fn bytes(&self) -> usize {
        let cols = [&self.flags, &self.threads, &self.depths, &self.funcs];
        let rest = [&self.deltas, &self.syscalls, &self.values];
        cols.into_iter().chain(rest).map(Vec::len).sum()
    }

    pub fn push(&mut self, ev: &Event) {
        if self.is_empty() {
            self.base_ts = ev.ts;
            self.prev_ts = ev.ts;
        }
        let exit = matches!(ev.kind, EventKind::Exit | EventKind::Retval);
        let mark = matches!(
            ev.kind,
            EventKind::Unwind | EventKind::Gone | EventKind::Syscall
        );
        let values = matches!(ev.kind, EventKind::Args | EventKind::Retval);
        let mut flags = match ev.kind {
            EventKind::Entry => 0,
            EventKind::Exit => EXIT,
            EventKind::Unwind => MARK,
            EventKind::Gone => MARK | EXIT,
            EventKind::Syscall => MARK | FUNC,
            EventKind::Args => VALUES,
            EventKind::Retval => VALUES | EXIT,
        };
        if ev.after_loss {
            flags |= AFTER_LOSS;
        }
        let idx = match self.cur {
            Some((tid, pid, idx)) if tid == ev.tid && pid == ev.pid => idx,
            _ => {
                flags |= SWITCH;
                put(&mut self.threads, ev.tid.into());
                put(&mut self.threads, ev.pid.into());
                self.models.index_of(ev.tid)
            }
        };
        self.cur = Some((ev.tid, ev.pid, idx));
        let model = &mut self.models.models[idx];
        // A marker's depth is always stored: it has no prediction.
        if mark || model.predict_depth(exit) != Some(ev.depth) {
            flags |= DEPTH;
            put(&mut self.depths, ev.depth.into());
        }
        if ev.kind == EventKind::Syscall {
            // Its flags promise a record: one without its call gets an empty one.
            put(&mut self.funcs, ev.func.0.into());
            let empty;
            let sys = match ev.sys.as_deref() {
                Some(sys) => sys,
                None => {
                    empty = Syscall::default();
                    &empty
                }
            };
            encode_syscall(&mut self.syscalls, ev.ts, sys);
        } else if !mark && (!exit || model.func_at(ev.depth) != Some(ev.func.0)) {
            flags |= FUNC;
            put(&mut self.funcs, ev.func.0.into());
        }
        if values {
            encode_values(&mut self.values, ev.values.as_deref());
        } else if !mark {
            model.update(exit, ev.depth, ev.func.0);
        }
        put(
            &mut self.deltas,
            zigzag(ev.ts.wrapping_sub(self.prev_ts) as i64),
        );
        self.prev_ts = ev.ts;
        self.flags.push(flags);
    }

    /// Appends the encoded chunk to `out` and starts a new, empty one.
    pub fn take(&mut self, out: &mut Vec<u8>) {
        put(out, self.flags.len() as u64);
        put(out, self.base_ts);
        for col in [&self.threads, &self.depths, &self.funcs, &self.deltas] {
            put(out, col.len() as u64);
        }
        // The syscall and values columns take the rest of the chunk: no
        // lengths of their own.
        for col in [
            &mut self.flags,
            &mut self.threads,
            &mut self.depths,
            &mut self.funcs,
            &mut self.deltas,
            &mut self.syscalls,
            &mut self.values,
        ] {
            out.extend_from_slice(col);
            col.clear();
        }
        self.cur = None;
        self.models.clear();
    }
}

/// Decodes chunks; keeps its allocations from one chunk to the next.
#[derive(Default)]
pub struct ChunkDecoder {
    models: Models,
}

impl ChunkDecoder {
    /// Decodes `raw`, which its frame says holds `count` events, into `out`
    /// (cleared first). `None` when the chunk is inconsistent; then `out`
    /// holds nothing usable.
    pub fn decode(&mut self, raw: &[u8], count: u32, out: &mut Vec<Event>) -> Option<()> {
        out.clear();
        self.models.clear();
        let mut head = Cursor::new(raw);
        let n = head.count()?;
        if n != count as usize {
            return None;
        }
        let mut ts = head.varint()?;
        let mut lens = [0usize; 4];
        for len in &mut lens {
            *len = head.count()?;
        }
        let mut flags = Cursor::new(head.bytes(n)?);
        let mut threads = Cursor::new(head.bytes(lens[0])?);
        let mut depths = Cursor::new(head.bytes(lens[1])?);
        let mut funcs = Cursor::new(head.bytes(lens[2])?);
        let mut deltas = Cursor::new(head.bytes(lens[3])?);
        let mut syscalls = head;
        let mut cur: Option<(u32, u32, usize)> = None;
        out.reserve(n);
        for _ in 0..n {
            let f = flags.u8()?;
            if f & UNKNOWN != 0 || f & (MARK | VALUES) == MARK | VALUES {
                return None;
            }
            if f & SWITCH != 0 {
                let (tid, pid) = (threads.varint_u32()?, threads.varint_u32()?);
                cur = Some((tid, pid, self.models.index_of(tid)));
            }
            let (tid, pid, idx) = cur?;
            let model = &mut self.models.models[idx];
            let exit = f & EXIT != 0;
            if f & MARK != 0 && f & FUNC != 0 {
                let depth = (f & DEPTH != 0).then(|| depths.varint_u32()).flatten()?;
                let func = FuncId(funcs.varint_u32()?);
                ts = ts.wrapping_add(unzigzag(deltas.varint()?) as u64);
                out.push(Event {
                    kind: EventKind::Syscall,
                    pid,
                    tid,
                    func,
                    depth,
                    ts,
                    after_loss: f & AFTER_LOSS != 0,
                    nested: false,
                    sys: Some(Box::new(decode_syscall(&mut syscalls, ts)?)),
                    values: None,
                });
                continue;
            }
            if f & MARK != 0 {
                ts = ts.wrapping_add(unzigzag(deltas.varint()?) as u64);
                out.push(Event {
                    kind: if exit {
                        EventKind::Gone
                    } else {
                        EventKind::Unwind
                    },
                    pid,
                    tid,
                    func: FuncId(0),
                    depth: (f & DEPTH != 0).then(|| depths.varint_u32()).flatten()?,
                    ts,
                    after_loss: f & AFTER_LOSS != 0,
                    nested: false,
                    sys: None,
                    values: None,
                });
                continue;
            }
            let depth = if f & DEPTH != 0 {
                depths.varint_u32()?
            } else {
                model.predict_depth(exit)?
            };
            let func = if f & FUNC != 0 {
                funcs.varint_u32()?
            } else {
                model.func_at(depth)?
            };
            if f & VALUES == 0 {
                model.update(exit, depth, func);
            }
            ts = ts.wrapping_add(unzigzag(deltas.varint()?) as u64);
            let kind = match (f & VALUES != 0, exit) {
                (false, false) => EventKind::Entry,
                (false, true) => EventKind::Exit,
                (true, false) => EventKind::Args,
                (true, true) => EventKind::Retval,
            };
            out.push(Event {
                kind,
                pid,
                tid,
                func: FuncId(func),
                depth,
                ts,
                after_loss: f & AFTER_LOSS != 0,
                nested: false,
                sys: None,
                values: None,
            });
        }
        // Every syscall record is read: the rest is the values column.
        let mut values = syscalls;
        for ev in out.iter_mut() {
            if matches!(ev.kind, EventKind::Args | EventKind::Retval) {
                ev.values = decode_values(&mut values)?;
            }
        }
        let used_all = values.is_empty() && threads.is_empty() && depths.is_empty();
        (used_all && funcs.is_empty() && deltas.is_empty()).then_some(())
    }
}

/// A system call's record in the syscall column: its number, duration,
/// what it returned, its arguments and the bytes copied from them.
fn encode_syscall(out: &mut Vec<u8>, ts: u64, sys: &Syscall) {
    let mut flags = if sys.ret.is_none() { SYS_NO_RETURN } else { 0 };
    if sys.io.is_some() {
        flags |= SYS_IO;
    }
    for (i, c) in sys.copies.iter().enumerate() {
        if let Some(c) = c {
            flags |= SYS_GOT[i] | if c.cut { SYS_CUT[i] } else { 0 };
        }
    }
    out.push(flags);
    put(out, sys.nr.into());
    put(out, sys.end_ts.wrapping_sub(ts));
    put(out, zigzag(sys.ret.unwrap_or(0)));
    for a in sys.args {
        put(out, a);
    }
    for c in sys.copies {
        put(out, c.map_or(0, |c| c.len.into()));
    }
    let len: usize = sys.copies.iter().flatten().map(|c| c.len as usize).sum();
    out.extend_from_slice(&sys.data[..len.min(sys.data.len())]);
    if let Some(io) = &sys.io {
        let small = [io.cache_pages, io.cache_added, io.dirtied, io.requests];
        for v in small {
            put(out, v.into());
        }
        for v in [io.read_bytes, io.write_bytes, io.device_ns] {
            put(out, v);
        }
    }
}

fn decode_syscall(col: &mut Cursor, ts: u64) -> Option<Syscall> {
    let flags = col.u8()?;
    let nr = col.varint_u32()?;
    let end_ts = ts.wrapping_add(col.varint()?);
    let ret = unzigzag(col.varint()?);
    let mut args = [0u64; 6];
    for a in &mut args {
        *a = col.varint()?;
    }
    let mut copies = [None; 2];
    let mut total = 0;
    for (i, c) in copies.iter_mut().enumerate() {
        let len = u16::try_from(col.varint()?).ok()?;
        total += len as usize;
        *c = (flags & SYS_GOT[i] != 0).then_some(ArgCopy {
            len,
            cut: flags & SYS_CUT[i] != 0,
        });
    }
    let data = col.bytes(total)?.to_vec();
    let io = if flags & SYS_IO != 0 {
        Some(SyscallIo {
            cache_pages: col.varint_u32()?,
            cache_added: col.varint_u32()?,
            dirtied: col.varint_u32()?,
            requests: col.varint_u32()?,
            read_bytes: col.varint()?,
            write_bytes: col.varint()?,
            device_ns: col.varint()?,
        })
    } else {
        None
    };
    Some(Syscall {
        nr,
        end_ts,
        ret: (flags & SYS_NO_RETURN == 0).then_some(ret),
        args,
        copies,
        data,
        io,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, tid: u32, func: u32, depth: u32, ts: u64) -> Event {
        Event {
            kind,
            pid: 7,
            tid,
            func: FuncId(func),
            depth,
            ts,
            after_loss: false,
            nested: false,
            sys: None,
            values: None,
        }
    }

    fn round_trip(events: &[Event]) -> Vec<u8> {
        let mut enc = ChunkEncoder::default();
        for e in events {
            enc.push(e);
        }
        let mut raw = Vec::new();
        enc.take(&mut raw);
        assert!(enc.is_empty());
        let mut out = Vec::new();
        ChunkDecoder::default()
            .decode(&raw, events.len() as u32, &mut out)
            .expect("decodes");
        assert_eq!(out, events);
        raw
    }

    #[test]
    fn nested_calls_on_two_threads_round_trip() {
        use EventKind::*;
        round_trip(&[
            ev(Entry, 1, 0, 0, 100),
            ev(Entry, 1, 1, 1, 110),
            ev(Entry, 2, 5, 0, 105),
            ev(Exit, 1, 1, 1, 120),
            ev(Exit, 2, 5, 0, 130),
            ev(Exit, 1, 0, 0, 140),
        ]);
    }

    #[test]
    fn end_markers_round_trip_and_leave_the_model_alone() {
        use EventKind::*;
        // An exception caught at depth 1, then a thread that ends inside a call;
        // the exit after the marker is still predicted from the entries.
        round_trip(&[
            ev(Entry, 1, 0, 0, 100),
            ev(Entry, 1, 1, 1, 110),
            ev(Entry, 1, 2, 2, 120),
            ev(Unwind, 1, 0, 2, 130),
            ev(Exit, 1, 1, 1, 140),
            ev(Entry, 1, 3, 1, 150),
            ev(Gone, 1, 0, 0, 160),
        ]);
    }

    #[test]
    fn surprises_round_trip() {
        use EventKind::*;
        // A chunk starting deep, a longjmp, an orphan exit, backwards time,
        // extreme values.
        round_trip(&[
            ev(Exit, 3, 9, 12, u64::MAX),
            ev(Entry, 3, 1, 40, 5),
            ev(Entry, 3, 2, 41, 6),
            ev(Entry, 3, 4, 38, 2),
            ev(Exit, 3, 4, 38, 3),
            ev(Exit, 3, 77, 37, 3),
            ev(Entry, u32::MAX, u32::MAX, u32::MAX, 0),
            ev(Exit, u32::MAX, u32::MAX, u32::MAX, 0),
        ]);
    }

    #[test]
    fn predictable_events_cost_little_before_compression() {
        use EventKind::*;
        let mut events = Vec::new();
        let mut ts = 0;
        for i in 0..1000u32 {
            for (kind, func, depth) in [
                (Entry, 0, 0),
                (Entry, 1 + i % 3, 1),
                (Exit, 1 + i % 3, 1),
                (Exit, 0, 0),
            ] {
                ts += 150;
                events.push(ev(kind, 1, func, depth, ts));
            }
        }
        let raw = round_trip(&events);
        // Flag + timestamp delta (2 bytes) per event, one function per entry.
        assert!(raw.len() < events.len() * 4, "{} bytes", raw.len());
    }

    #[test]
    fn garbage_never_panics() {
        let mut dec = ChunkDecoder::default();
        let mut out = Vec::new();
        for seed in 0..2000u32 {
            let bytes: Vec<u8> = (0..(seed % 64))
                .map(|i| (seed.wrapping_mul(2654435761) >> (i % 24)) as u8)
                .collect();
            let _ = dec.decode(&bytes, bytes.first().copied().unwrap_or(0).into(), &mut out);
        }
    }
}
