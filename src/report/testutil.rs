//! Hand-made traces and plumbing for the report tests: events in, a
//! format's output out, through a real trace file.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::callstack::CallStacks;
use crate::model::{Call, Event, EventKind, FuncId, RunInfo};
use crate::options::{Format, ReportOptions};
use crate::tracefile::TraceWriter;
use crate::tracefile::tests::{run_info, table};

pub(crate) use crate::tracefile::tests::synthetic_events;

pub fn ev(kind: EventKind, tid: u32, func: u32, depth: u32, ts: u64) -> Event {
    Event {
        kind,
        pid: 4242,
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

/// main (0) 0..100 → fib (4) 10..90 → fib 20..70 → fib 30..50.
pub fn recursive_events() -> Vec<Event> {
    use EventKind::*;
    vec![
        ev(Entry, 1, 0, 0, 0),
        ev(Entry, 1, 4, 1, 10),
        ev(Entry, 1, 4, 2, 20),
        ev(Entry, 1, 4, 3, 30),
        ev(Exit, 1, 4, 3, 50),
        ev(Exit, 1, 4, 2, 70),
        ev(Exit, 1, 4, 1, 90),
        ev(Exit, 1, 0, 0, 100),
    ]
}

pub fn calls_of(events: &[Event]) -> Vec<Call> {
    let mut stacks = CallStacks::new();
    let mut calls = Vec::new();
    for e in events {
        stacks.push(e, &mut |c| calls.push(c.clone()));
    }
    stacks.finish(events.iter().map(|e| e.ts).max().unwrap_or(0), &mut |c| {
        calls.push(c.clone())
    });
    calls
}

pub fn options(format: Format) -> ReportOptions {
    ReportOptions::new(format)
}

/// A writer the test keeps a handle on after giving it to a sink.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Writes `events` to a trace file in `dir` (lost = 3, ends 1 ns after the
/// last event) and returns its path.
pub fn trace_file(dir: &Path, events: &[Event]) -> std::path::PathBuf {
    let path = dir.join("utrace.data");
    let mut w = TraceWriter::create(&path, &run_info(), &table()).unwrap();
    for e in events {
        w.write(e).unwrap();
    }
    let end = events.iter().map(|e| e.ts).max().unwrap_or(0) + 1;
    w.finish(&RunInfo {
        end_mono_ns: end,
        lost_events: 3,
        ..run_info()
    })
    .unwrap();
    path
}

/// The report of `events` in `opts.format`, through a real trace file.
pub fn report(events: &[Event], opts: &ReportOptions) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = trace_file(dir.path(), events);
    let reader = crate::tracefile::TraceReader::open(&path).unwrap();
    let buf = SharedBuf::default();
    let sink = super::sink_for(opts.format, opts, Box::new(buf.clone()));
    let status = super::replay_file(&reader, sink).unwrap();
    assert!(status.is_clean(), "{:?}", status.warnings());
    buf.text()
}
