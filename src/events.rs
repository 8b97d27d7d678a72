//! The reader thread: drains the BPF ring buffer in batches and hands them
//! to the consumers through a crossbeam channel.
//!
//! BPF submits without a wakeup per event (that would double the cost of a
//! traced call); it forces one only when a backlog builds. So the reader
//! polls with a short timeout and then consumes whatever is there.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use libbpf_rs::{MapHandle, RingBufferBuilder};

use crate::model::{Event, EventKind};
use crate::probe::{RawEvent, RawFlags, RawKind};

/// Events are sent in batches: one channel operation per poll, not per event.
pub type Batch = Vec<Event>;

const POLL: Duration = Duration::from_millis(20);
const BATCH_LIMIT: usize = 64 * 1024;

pub struct Reader {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<u64>>>,
}

/// The channels the reader feeds.
pub struct Streams {
    /// Batches of events; closes after [`Reader::stop`] once everything
    /// pending was drained.
    pub batches: Receiver<Batch>,
    /// Pids stopped at the loader's breakpoint, waiting to be resumed.
    pub loads: Receiver<u32>,
}

/// Starts the reader thread on `ring`.
pub fn spawn(ring: MapHandle) -> Result<(Reader, Streams)> {
    let (tx, batches) = crossbeam_channel::bounded(256);
    let (load_tx, loads) = crossbeam_channel::unbounded();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = std::thread::Builder::new()
        .name("utrace-reader".into())
        .spawn(move || read_loop(ring, tx, load_tx, &flag))
        .context("starting the reader thread")?;
    let reader = Reader {
        stop,
        handle: Some(handle),
    };
    Ok((reader, Streams { batches, loads }))
}

impl Reader {
    /// Asks the thread to drain what is left and end; returns the events it
    /// could not decode (always 0 unless the layouts disagree).
    pub fn stop(mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Release);
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("the reader thread panicked"),
            None => Ok(0),
        }
    }
}

fn read_loop(
    ring: MapHandle,
    tx: Sender<Batch>,
    loads: Sender<u32>,
    stop: &AtomicBool,
) -> Result<u64> {
    let batch: Rc<RefCell<Batch>> = Rc::default();
    let bad = Rc::new(RefCell::new(0u64));
    let mut builder = RingBufferBuilder::new();
    {
        let (batch, bad) = (Rc::clone(&batch), Rc::clone(&bad));
        builder
            .add(&ring, move |data: &[u8]| {
                match decode(data) {
                    Some(Decoded::Event(ev)) => batch.borrow_mut().push(ev),
                    Some(Decoded::Load(pid)) => {
                        let _ = loads.send(pid);
                    }
                    None => *bad.borrow_mut() += 1,
                }
                // A positive return stops this consume() early so a batch stays bounded.
                i32::from(batch.borrow().len() >= BATCH_LIMIT)
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

pub enum Decoded {
    Event(Event),
    /// Process `pid` stopped at the loader's breakpoint.
    Load(u32),
}

/// Decodes one ring-buffer record laid out as `struct event` in bpf/utrace.h.
pub fn decode(data: &[u8]) -> Option<Decoded> {
    if data.len() < std::mem::size_of::<RawEvent>() {
        return None;
    }
    // SAFETY: the length was checked; RawEvent is a plain repr(C) struct of
    // integers (valid for any bit pattern), and read_unaligned needs no alignment.
    let raw: RawEvent = unsafe { std::ptr::read_unaligned(data.as_ptr().cast()) };
    let kind = match RawKind(u32::from(raw.kind)) {
        RawKind::EV_ENTRY => EventKind::Entry,
        RawKind::EV_EXIT => EventKind::Exit,
        RawKind::EV_LOAD => return Some(Decoded::Load(raw.pid)),
        _ => return None,
    };
    Some(Decoded::Event(Event {
        kind,
        pid: raw.pid,
        tid: raw.tid,
        func: raw.func,
        depth: u32::from(raw.depth),
        ts: raw.ts,
        after_loss: raw.flags & RawFlags::EVF_AFTER_LOSS.0 as u8 != 0,
    }))
}
