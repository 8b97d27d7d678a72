//! The one replay engine: raw events in, paired calls out to a sink. A live
//! session feeds it batches as the ring buffer delivers them, `--report`
//! feeds it a trace file; both get the same pairing, the same end of the
//! trace and the same handling of a failing output, so a live run and the
//! report of its recording print the same.

use anyhow::Result;

use crate::callstack::CallStacks;
use crate::model::{Call, Event, FuncTable, RunInfo, Sink, SyscallCall};
use crate::util::diag::is_broken_pipe;

pub struct Replay {
    stacks: CallStacks,
    sink: Box<dyn Sink>,
    /// The newest event timestamp seen.
    last_ts: u64,
    /// The output went away (`utrace … | head`): nothing more is written,
    /// and it is no error.
    closed: bool,
}

impl Replay {
    pub fn new(sink: Box<dyn Sink>) -> Self {
        Replay {
            stacks: CallStacks::new(),
            sink,
            last_ts: 0,
            closed: false,
        }
    }

    /// Whether the output was closed: feeding more is wasted work.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Pairs `events` (in order per thread) into calls for the sink. The
    /// first error the sink returns ends the feed and is returned.
    pub fn feed<'e>(
        &mut self,
        events: impl IntoIterator<Item = &'e Event>,
        table: &FuncTable,
    ) -> Result<()> {
        for ev in events {
            if self.closed {
                break;
            }
            self.event(ev, table)?;
        }
        Ok(())
    }

    /// [`Replay::feed`] for one event.
    #[inline]
    pub fn event(&mut self, ev: &Event, table: &FuncTable) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.last_ts = self.last_ts.max(ev.ts);
        let (sink, mut result) = (&mut self.sink, Ok(()));
        self.stacks.push(ev, &mut |call: &Call| {
            if result.is_ok() {
                result = sink.call(call, table);
            }
        });
        if let (Some(sys), Ok(())) = (&ev.sys, &result) {
            let (depth, caller) = self.stacks.placement(ev.tid);
            let call = SyscallCall {
                pid: ev.pid,
                tid: ev.tid,
                depth,
                caller,
                ts: ev.ts,
                sys,
            };
            result = self.sink.syscall(&call, table);
        }
        self.check(result)
    }

    /// The calls open on thread `tid`.
    pub fn open_calls(&self, tid: u32) -> u32 {
        self.stacks.placement(tid).0
    }

    /// No event came for a while (live): the sink may show what is running.
    pub fn idle(&mut self, now: u64, table: &FuncTable) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.sink.idle(now, table);
        self.check(result)
    }

    /// Ends the trace: calls still open are closed as open at the end of
    /// the run (or the last event, if later), then the sink finishes. The
    /// threads that lost events are named on stderr.
    pub fn finish(mut self, table: &FuncTable, run: &RunInfo) -> Result<()> {
        let mut run = run.clone();
        run.end_mono_ns = run.end_mono_ns.max(self.last_ts).max(run.start_mono_ns);
        if !self.closed {
            let (sink, mut result) = (&mut self.sink, Ok(()));
            self.stacks.finish(run.end_mono_ns, &mut |call: &Call| {
                if result.is_ok() {
                    result = sink.call(call, table);
                }
            });
            let finished = result.and_then(|()| self.sink.finish(table, &run));
            self.check(finished)?;
        }
        if let Some(note) = self.stacks.loss_note() {
            eprintln!("{note}");
        }
        Ok(())
    }

    /// A closed output ends the output quietly; any other error is real.
    fn check(&mut self, result: Result<()>) -> Result<()> {
        match result {
            Err(e) if is_broken_pipe(&e) => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}
