//! Counting mode's output: the summary of what BPF counted per function,
//! plus the calls nested too deep for BPF's per-thread frames (MAX_FRAMES in
//! bpf/utrace.h). Those come as events and go through the report's own
//! pairing, `-t` filter and aggregator here, then join BPF's counts, so the
//! table is exact at any depth.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use anyhow::Result;

use crate::aggregate::{Stats, StatsByFunction};
use crate::bpf::abi::MAX_FRAMES;
use crate::model::{Call, Event, EventKind, FuncId, FuncTable, RunInfo, Sink, SyscallCall};
use crate::options::CallFilter;
use crate::replay::Replay;
use crate::report::summary::Summary;
use crate::report::syscalls::SyscallTotals;

pub struct Counted {
    summary: Box<Summary>,
    /// The deep calls, paired and filtered into `deep`.
    replay: Replay,
    deep: Rc<RefCell<StatsByFunction>>,
    /// Per thread: functions open in BPF's frames below its deep calls.
    held: HashMap<u32, Vec<FuncId>>,
    /// What BPF counted, once read.
    counted: Vec<Stats>,
    syscalls: SyscallTotals,
    events: u64,
}

impl Counted {
    /// `min_duration_ns`: `-t`, which BPF applies to the calls it counts.
    pub fn new(summary: Summary, min_duration_ns: u64) -> Result<Self> {
        let deep = Rc::new(RefCell::new(StatsByFunction::new()));
        let filter = CallFilter {
            min_duration_ns,
            ..CallFilter::default()
        };
        let sink = crate::report::filter::apply(Box::new(Tap(deep.clone())), &filter)?;
        Ok(Counted {
            summary: Box::new(summary),
            replay: Replay::new(sink),
            deep,
            held: HashMap::new(),
            counted: Vec::new(),
            syscalls: SyscallTotals::default(),
            events: 0,
        })
    }

    /// Events of calls deeper than MAX_FRAMES: depths count from there.
    pub fn events(&mut self, events: &[Event], table: &FuncTable) -> Result<()> {
        for ev in events {
            self.events += 1;
            let ev = Event {
                depth: ev.depth.saturating_sub(MAX_FRAMES),
                sys: None,
                values: None,
                ..ev.clone()
            };
            let held = self.held.entry(ev.tid).or_default();
            if ev.kind == EventKind::Entry && ev.nested && !held.contains(&ev.func) {
                self.deep.borrow_mut().hold(ev.tid, ev.func);
                held.push(ev.func);
            }
            self.replay.event(&ev, table)?;
            // Back in BPF's frames: what was open there may have returned.
            if self.replay.open_calls(ev.tid) == 0 {
                for func in held.drain(..) {
                    self.deep.borrow_mut().release(ev.tid, func);
                }
            }
        }
        Ok(())
    }

    /// What BPF counted, per function id, and its system calls.
    pub fn load(&mut self, counted: Vec<Stats>, syscalls: SyscallTotals) {
        self.counted = counted;
        self.syscalls = syscalls;
    }

    /// Ends the deep calls still open with the run, as the report does, and
    /// writes the table of both.
    pub fn finish(self, table: &FuncTable, run: &RunInfo) -> Result<()> {
        let Counted {
            mut summary,
            replay,
            deep,
            mut counted,
            syscalls,
            events,
            ..
        } = self;
        replay.finish(table, run)?;
        let deep = deep.borrow();
        let deep = deep.stats();
        if counted.len() < deep.len() {
            counted.resize(deep.len(), Stats::default());
        }
        for (all, d) in counted.iter_mut().zip(deep) {
            all.merge(d);
        }
        summary.load_counted(counted, syscalls, (events, MAX_FRAMES));
        summary.finish(table, run)
    }
}

/// Feeds the deep calls to the aggregator the summary reads at the end.
struct Tap(Rc<RefCell<StatsByFunction>>);

impl Sink for Tap {
    fn call(&mut self, call: &Call, _table: &FuncTable) -> Result<()> {
        self.0.borrow_mut().call(call);
        Ok(())
    }

    fn syscall(&mut self, _sys: &SyscallCall, _table: &FuncTable) -> Result<()> {
        Ok(())
    }

    fn finish(&mut self, _table: &FuncTable, _run: &RunInfo) -> Result<()> {
        Ok(())
    }
}
