//! The reader thread: drains the BPF ring buffer and hands what it read to
//! the session through crossbeam channels: events, and the processes BPF
//! stopped for a late attach.
//!
//! BPF sends each thread's events in records of up to 32 (`struct batch`)
//! and without a wakeup per record (that would cost the traced thread); it
//! forces one only when a backlog builds. So the reader polls with a short
//! timeout and then consumes whatever is there.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use libbpf_rs::{MapHandle, RingBufferBuilder};

use crate::bpf::abi::{
    RawEvent, RawFlags, RawHead, RawKind, RawRecord, RawSyscall, RawValues, SysFlags, read_plain,
};
use crate::model::{ArgCopy, Event, EventKind, FuncId, Syscall, SyscallIo};
use crate::target::Stopped;

/// What one drain of the ring buffer delivered: the events of every thread
/// that sent a record (BPF's `struct batch` holds one thread's), in order
/// per thread. One channel operation per drain, not per event.
pub type Drained = Vec<Event>;

const POLL: Duration = Duration::from_millis(20);
const BATCH_LIMIT: usize = 64 * 1024;

pub struct Reader {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<u64>>>,
    /// The events channel, so stopping can drain it: the thread blocks on
    /// a full channel, and would never see the stop flag.
    events: Receiver<Drained>,
}

/// The channels the reader feeds.
pub struct Streams {
    /// Drained events; closes after [`Reader::stop`] once everything
    /// pending was drained.
    pub events: Receiver<Drained>,
    /// Processes BPF stopped until something is attached, waiting to be
    /// resumed (dropping one resumes it).
    pub stops: Receiver<Stop>,
}

/// Starts the reader thread on `ring`.
pub fn spawn(ring: MapHandle) -> Result<(Reader, Streams)> {
    let (tx, events) = crossbeam_channel::bounded(256);
    let (stop_tx, stops) = crossbeam_channel::unbounded();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = std::thread::Builder::new()
        .name("utrace-reader".into())
        .spawn(move || read_loop(ring, tx, stop_tx, &flag))
        .context("starting the reader thread")?;
    let reader = Reader {
        stop,
        handle: Some(handle),
        events: events.clone(),
    };
    Ok((reader, Streams { events, stops }))
}

impl Reader {
    /// Asks the thread to drain what is left and end, handing every batch
    /// still coming to `each` meanwhile; returns the events it could not
    /// decode (always 0 unless the layouts disagree).
    pub fn stop(mut self, mut each: impl FnMut(Drained)) -> Result<u64> {
        self.stop.store(true, Ordering::Release);
        let Some(handle) = self.handle.take() else {
            return Ok(0);
        };
        while !handle.is_finished() {
            if let Ok(batch) = self.events.recv_timeout(Duration::from_millis(5)) {
                each(batch);
            }
        }
        self.events.try_iter().for_each(each);
        match handle.join() {
            Ok(result) => result,
            Err(_) => anyhow::bail!("the reader thread panicked"),
        }
    }
}

impl Drop for Reader {
    /// A reader never outlives its session: left running, it would keep
    /// adopting processes BPF stops that nobody resumes.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            // Nobody takes its batches any more: drop them so it can end.
            while !handle.is_finished() {
                let _ = self.events.recv_timeout(Duration::from_millis(5));
            }
            let _ = handle.join();
        }
    }
}

fn read_loop(
    ring: MapHandle,
    tx: Sender<Drained>,
    stops: Sender<Stop>,
    stop: &AtomicBool,
) -> Result<u64> {
    let batch: Rc<RefCell<Drained>> = Rc::default();
    let bad = Rc::new(RefCell::new(0u64));
    let mut builder = RingBufferBuilder::new();
    {
        let (batch, bad) = (Rc::clone(&batch), Rc::clone(&bad));
        builder
            .add(&ring, move |data: &[u8]| {
                let mut batch = batch.borrow_mut();
                *bad.borrow_mut() += decode(data, |item| match item {
                    Decoded::Event(ev) => batch.push(ev),
                    Decoded::Stop(pid, why) => {
                        // Unsent (no session to take it), it resumes at once.
                        let stopped = Stopped::adopt(pid);
                        let _ = stops.send(Stop { why, stopped });
                    }
                });
                // A positive return stops this consume() early so a batch stays bounded.
                i32::from(batch.len() >= BATCH_LIMIT)
            })
            .context("registering the ring buffer")?;
    }
    let rb = builder.build().context("creating the ring buffer reader")?;
    loop {
        // Read the flag first: after it is seen, one more full drain follows.
        let last = stop.load(Ordering::Acquire);
        if !last {
            let _ = rb.poll(POLL);
        }
        loop {
            rb.consume().context("reading the ring buffer")?;
            let full = std::mem::take(&mut *batch.borrow_mut());
            let n = full.len();
            if n > 0 && tx.send(full).is_err() {
                return Ok(*bad.borrow()); // consumer gone: nothing left to do
            }
            if n < BATCH_LIMIT {
                break;
            }
        }
        if last {
            return Ok(*bad.borrow());
        }
    }
}

/// Why BPF stopped a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Its mappings changed (dlopen, dlclose, exec): attach what was mapped.
    Mapped,
    /// A call of this function went deeper than returns can be hijacked:
    /// attach its ret sites.
    NeedExits(FuncId),
    /// A call of this function returning into its epilogue could not end
    /// its frame with the callee's: attach the `ret`s such calls stood for.
    NeedRets(FuncId),
}

/// A process BPF stopped, and why.
pub struct Stop {
    pub why: StopReason,
    pub stopped: Stopped,
}

pub enum Decoded {
    Event(Event),
    /// Process `pid` stopped until what `why` names is attached.
    Stop(u32, StopReason),
}

const HEAD: usize = std::mem::size_of::<RawHead>();

/// Decodes one ring-buffer record: a head naming the thread and what
/// follows (bpf/utrace.h: `struct batch` or `struct syscall_record`).
/// Returns how many events it could not decode (a record of the wrong size
/// counts one).
pub fn decode(data: &[u8], each: impl FnMut(Decoded)) -> u64 {
    let Some(head) = read_plain::<RawHead>(data) else {
        return 1;
    };
    match RawRecord(head.kind) {
        RawRecord::REC_BATCH => decode_batch(&head, data, each),
        RawRecord::REC_SYSCALL => decode_syscall(&head, data, each),
        RawRecord::REC_VALUES => decode_values(&head, data, each),
        _ => 1,
    }
}

/// A call's arguments or return value (`-A`/`-R`), then their strings.
fn decode_values(head: &RawHead, data: &[u8], mut each: impl FnMut(Decoded)) -> u64 {
    const FIXED: usize = std::mem::size_of::<RawValues>();
    let Some(raw) = read_plain::<RawValues>(&data[HEAD..]) else {
        return 1;
    };
    let values = crate::bpf::values::decode(&raw, &data[HEAD + FIXED..]);
    each(Decoded::Event(Event {
        kind: match raw.at_exit {
            0 => EventKind::Args,
            _ => EventKind::Retval,
        },
        pid: head.pid,
        tid: head.tid,
        func: FuncId(raw.func),
        depth: u32::from(raw.depth),
        ts: raw.ts,
        after_loss: false,
        nested: false,
        sys: None,
        values: Some(values.into()),
    }));
    0
}

/// One system call: the call, then the bytes its arguments pointed to.
fn decode_syscall(head: &RawHead, data: &[u8], mut each: impl FnMut(Decoded)) -> u64 {
    const SYS: usize = std::mem::size_of::<RawSyscall>();
    let Some(raw) = read_plain::<RawSyscall>(&data[HEAD..]) else {
        return 1;
    };
    let copied = &data[HEAD + SYS..];
    let lens = [raw.len[0] as usize, raw.len[1] as usize];
    if lens[0] + lens[1] > copied.len() {
        return 1;
    }
    let flag = |f: SysFlags| raw.flags & f.0 as u8 != 0;
    let copy = |i: usize, got: SysFlags, cut: SysFlags| {
        flag(got).then_some(ArgCopy {
            len: lens[i] as u16,
            cut: flag(cut),
        })
    };
    let sys = Syscall {
        nr: raw.nr,
        end_ts: raw.end_ts,
        ret: (!flag(SysFlags::SYSF_NO_RETURN)).then_some(raw.ret),
        args: raw.args,
        copies: [
            copy(0, SysFlags::SYSF_GOT0, SysFlags::SYSF_CUT0),
            copy(1, SysFlags::SYSF_GOT1, SysFlags::SYSF_CUT1),
        ],
        data: copied[..lens[0] + lens[1]].to_vec(),
        io: flag(SysFlags::SYSF_IO).then_some(SyscallIo {
            cache_pages: raw.io.cache_pages,
            cache_added: raw.io.cache_added,
            dirtied: raw.io.dirtied,
            requests: raw.io.requests,
            read_bytes: raw.io.read_bytes,
            write_bytes: raw.io.write_bytes,
            device_ns: raw.io.device_ns,
        }),
    };
    each(Decoded::Event(Event {
        kind: EventKind::Syscall,
        pid: head.pid,
        tid: head.tid,
        func: FuncId(raw.caller),
        depth: u32::from(raw.depth),
        ts: raw.ts,
        after_loss: flag(SysFlags::SYSF_AFTER_LOSS),
        nested: false,
        sys: Some(Box::new(sys)),
        values: None,
    }));
    0
}

/// A thread's queued events.
fn decode_batch(head: &RawHead, data: &[u8], mut each: impl FnMut(Decoded)) -> u64 {
    const EVENT: usize = std::mem::size_of::<RawEvent>();
    if data.len() < HEAD + EVENT || !(data.len() - HEAD).is_multiple_of(EVENT) {
        return 1;
    }
    let mut bad = 0;
    for bytes in data[HEAD..].chunks_exact(EVENT) {
        let Some(raw) = read_plain::<RawEvent>(bytes) else {
            bad += 1; // not reached: chunks_exact gives EVENT bytes
            continue;
        };
        let kind = match RawKind(u32::from(raw.kind)) {
            RawKind::EV_ENTRY => EventKind::Entry,
            RawKind::EV_EXIT => EventKind::Exit,
            RawKind::EV_UNWIND => EventKind::Unwind,
            RawKind::EV_GONE => EventKind::Gone,
            RawKind::EV_LOAD => {
                each(Decoded::Stop(head.pid, StopReason::Mapped));
                continue;
            }
            RawKind::EV_NEED_EXITS => {
                let why = StopReason::NeedExits(FuncId(raw.func));
                each(Decoded::Stop(head.pid, why));
                continue;
            }
            RawKind::EV_NEED_RETS => {
                let why = StopReason::NeedRets(FuncId(raw.func));
                each(Decoded::Stop(head.pid, why));
                continue;
            }
            _ => {
                bad += 1;
                continue;
            }
        };
        each(Decoded::Event(Event {
            kind,
            pid: head.pid,
            tid: head.tid,
            func: FuncId(raw.func),
            depth: u32::from(raw.depth),
            ts: raw.ts,
            after_loss: raw.flags & RawFlags::EVF_AFTER_LOSS.0 as u8 != 0,
            nested: raw.flags & RawFlags::EVF_NESTED.0 as u8 != 0,
            sys: None,
            values: None,
        }));
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pid: u32, tid: u32, events: &[(u8, u32, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&pid.to_ne_bytes());
        out.extend_from_slice(&tid.to_ne_bytes());
        out.extend_from_slice(&RawRecord::REC_BATCH.0.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        for &(kind, func, ts) in events {
            out.extend_from_slice(&ts.to_ne_bytes());
            out.extend_from_slice(&func.to_ne_bytes());
            out.extend_from_slice(&3u16.to_ne_bytes()); // depth
            out.push(kind);
            out.push(0); // flags
        }
        out
    }

    fn decoded(data: &[u8]) -> (Vec<String>, u64) {
        let mut seen = Vec::new();
        let bad = decode(data, |d| {
            seen.push(match d {
                Decoded::Event(e) => format!(
                    "{:?} {}/{} f{} d{} t{}",
                    e.kind, e.pid, e.tid, e.func, e.depth, e.ts
                ),
                Decoded::Stop(pid, StopReason::Mapped) => format!("load {pid}"),
                Decoded::Stop(pid, StopReason::NeedExits(f)) => format!("exits {pid} f{f}"),
                Decoded::Stop(pid, StopReason::NeedRets(f)) => format!("rets {pid} f{f}"),
            })
        });
        (seen, bad)
    }

    #[test]
    fn a_batch_is_its_threads_events_in_order() {
        let entry = RawKind::EV_ENTRY.0 as u8;
        let exit = RawKind::EV_EXIT.0 as u8;
        let data = record(7, 9, &[(entry, 1, 100), (exit, 1, 150)]);
        assert_eq!(
            decoded(&data),
            (
                vec![
                    "Entry 7/9 f1 d3 t100".to_string(),
                    "Exit 7/9 f1 d3 t150".to_string()
                ],
                0
            )
        );
        let load = record(7, 9, &[(RawKind::EV_LOAD.0 as u8, 0, 5)]);
        assert_eq!(decoded(&load), (vec!["load 7".to_string()], 0));
    }

    #[test]
    fn what_is_not_a_batch_is_counted_not_guessed() {
        let data = record(7, 9, &[(1, 1, 100)]);
        assert_eq!(decoded(&data[..data.len() - 1]), (vec![], 1));
        assert_eq!(decoded(&data[..16]), (vec![], 1));
        let unknown = record(7, 9, &[(99, 1, 100), (1, 2, 200)]);
        assert_eq!(
            decoded(&unknown),
            (vec!["Entry 7/9 f2 d3 t200".to_string()], 1)
        );
    }
}
