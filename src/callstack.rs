//! Pairs raw entry/exit events into calls, per thread, with a shadow stack.
//!
//! BPF sends each event with the depth it happened at, so the pairing
//! resynchronises on every event: frames deeper than an incoming event were
//! left without a return (longjmp, exception unwinding, a lost event) and are
//! closed as `End::Unwound` at that event's time. Exits whose entry was never
//! seen (lost, or entered before attach) are counted as orphans, not shown.

use std::collections::BTreeSet;

use crate::model::{Call, End, Event, EventKind, FuncId};
use crate::util::idmap::IdMap;
use crate::values::Values;

struct Open {
    func: FuncId,
    entry_ts: u64,
    child_ns: u64,
}

/// Values that arrived before the event they belong to, with its depth and
/// time stamp.
struct Held {
    depth: u32,
    ts: u64,
    values: Values,
}

#[derive(Default)]
struct Thread {
    pid: u32,
    frames: Vec<Open>,
    /// `-A`: arguments of entries still to come, by increasing depth. With a
    /// time filter BPF holds entries back until the call proves long, and
    /// never sends a short call's, so an entry at depth d makes everything
    /// held at a lower depth stale, and new arguments at depth d everything
    /// held at d and deeper.
    args: Vec<Held>,
    /// `-R`: the return value of the exit that comes next.
    ret: Option<Held>,
}

impl Thread {
    fn take_args(&mut self, depth: u32, ts: u64) -> Option<Values> {
        let i = self.args.iter().position(|h| h.depth >= depth)?;
        self.args.drain(..i);
        let held = self.args.first()?;
        (held.depth == depth && held.ts == ts).then(|| self.args.remove(0).values)
    }

    fn hold(&mut self, ev: &Event) {
        let Some(values) = ev.values.clone() else {
            return;
        };
        let held = Held {
            depth: ev.depth,
            ts: ev.ts,
            values,
        };
        if ev.kind == EventKind::Retval {
            self.ret = Some(held);
        } else {
            self.args.retain(|h| h.depth < ev.depth);
            self.args.push(held);
        }
    }
}

#[derive(Default)]
pub struct CallStacks {
    /// Keyed by TID with an identity hash: the map is hit on every event.
    threads: IdMap<u32, Thread>,
    /// Exits that matched no open call.
    pub orphan_exits: u64,
    /// Calls closed without their own return.
    pub unwound: u64,
    /// Threads that lost events: their stacks have holes there.
    pub lossy_threads: BTreeSet<u32>,
}

impl CallStacks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one raw event; paired calls go to `out` in order.
    pub fn push(&mut self, ev: &Event, out: &mut impl FnMut(&Call)) {
        let thread = self.threads.entry(ev.tid).or_default();
        thread.pid = ev.pid;
        if ev.after_loss {
            self.lossy_threads.insert(ev.tid);
        }
        let depth = ev.depth as usize;
        match ev.kind {
            EventKind::Entry => {
                self.unwound += close_above(thread, ev.tid, depth, ev.ts, End::NotSeen, out);
                let args = thread.take_args(ev.depth, ev.ts);
                let depth = thread.frames.len() as u32;
                thread.frames.push(Open {
                    func: ev.func,
                    entry_ts: ev.ts,
                    child_ns: 0,
                });
                out(&Call::Enter {
                    pid: ev.pid,
                    tid: ev.tid,
                    func: ev.func,
                    depth,
                    ts: ev.ts,
                    args,
                });
            }
            EventKind::Exit => {
                self.unwound += close_above(thread, ev.tid, depth + 1, ev.ts, End::NotSeen, out);
                let ret = (thread.ret.take())
                    .filter(|h| h.depth == ev.depth && h.ts == ev.ts)
                    .map(|h| h.values);
                if thread.frames.len() == depth + 1 && thread.frames[depth].func == ev.func {
                    close_top(thread, ev.tid, ev.ts, End::Returned, ret, out);
                } else {
                    self.orphan_exits += 1;
                }
            }
            EventKind::Unwind => {
                self.unwound += close_above(thread, ev.tid, depth, ev.ts, End::Unwound, out);
            }
            EventKind::Gone => {
                close_above(thread, ev.tid, 0, ev.ts, End::ThreadEnded, out);
            }
            // Calls deeper than a system call's caller were left without a
            // return BPF saw.
            EventKind::Syscall => {
                self.unwound += close_above(thread, ev.tid, depth, ev.ts, End::NotSeen, out);
            }
            EventKind::Args | EventKind::Retval => thread.hold(ev),
        }
    }

    /// Where a system call of thread `tid` sits, after [`CallStacks::push`]
    /// placed it: its depth in the tree and the call open around it.
    pub fn placement(&self, tid: u32) -> (u32, Option<FuncId>) {
        match self.threads.get(&tid) {
            Some(t) => (t.frames.len() as u32, t.frames.last().map(|f| f.func)),
            None => (0, None),
        }
    }

    /// Ends the trace at `ts`: every call still open is closed as `End::Open`.
    pub fn finish(&mut self, ts: u64, out: &mut impl FnMut(&Call)) {
        let mut tids: Vec<u32> = self.threads.keys().copied().collect();
        tids.sort_unstable();
        for tid in tids {
            if let Some(thread) = self.threads.get_mut(&tid) {
                close_above(thread, tid, 0, ts, End::Open, out);
            }
        }
        self.threads.clear();
    }

    /// The line that names the threads whose call stacks lost events.
    pub fn loss_note(&self) -> Option<String> {
        if self.lossy_threads.is_empty() {
            return None;
        }
        let tids: Vec<String> = self.lossy_threads.iter().map(u32::to_string).collect();
        Some(format!(
            "utrace: events were lost on thread{} {}: calls around the loss are incomplete \
             (those closed without their return are marked /* return not seen */)",
            if tids.len() == 1 { "" } else { "s" },
            tids.join(", ")
        ))
    }
}

/// Closes frames until at most `keep` remain; returns how many it closed.
fn close_above(
    thread: &mut Thread,
    tid: u32,
    keep: usize,
    ts: u64,
    end: End,
    out: &mut impl FnMut(&Call),
) -> u64 {
    let mut closed = 0;
    while thread.frames.len() > keep {
        close_top(thread, tid, ts, end, None, out);
        closed += 1;
    }
    closed
}

fn close_top(
    thread: &mut Thread,
    tid: u32,
    ts: u64,
    end: End,
    ret: Option<Values>,
    out: &mut impl FnMut(&Call),
) {
    let Some(open) = thread.frames.pop() else {
        return;
    };
    // An unwound frame may be closed by an event stamped before its own
    // entry on another CPU's clock; never let a duration go negative.
    let ts = ts.max(open.entry_ts);
    let total = ts - open.entry_ts;
    if let Some(parent) = thread.frames.last_mut() {
        parent.child_ns += total;
    }
    out(&Call::Leave {
        pid: thread.pid,
        tid,
        func: open.func,
        depth: thread.frames.len() as u32,
        entry_ts: open.entry_ts,
        ts,
        child_ns: open.child_ns.min(total),
        end,
        ret,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, func: u32, depth: u32, ts: u64) -> Event {
        Event {
            kind,
            pid: 1,
            tid: 1,
            func: FuncId(func),
            depth,
            ts,
            after_loss: false,
            nested: false,
            sys: None,
            values: None,
        }
    }

    fn run(events: &[Event]) -> (Vec<Call>, CallStacks) {
        let mut stacks = CallStacks::new();
        let mut calls = Vec::new();
        for e in events {
            stacks.push(e, &mut |c| calls.push(c.clone()));
        }
        stacks.finish(1000, &mut |c| calls.push(c.clone()));
        (calls, stacks)
    }

    #[test]
    fn nested_calls_pair_with_self_time() {
        use EventKind::*;
        let (calls, stacks) = run(&[
            ev(Entry, 0, 0, 10),
            ev(Entry, 1, 1, 20),
            ev(Exit, 1, 1, 25),
            ev(Exit, 0, 0, 40),
        ]);
        assert_eq!(calls.len(), 4);
        assert_eq!(
            calls[3],
            Call::Leave {
                pid: 1,
                tid: 1,
                func: FuncId(0),
                depth: 0,
                entry_ts: 10,
                ts: 40,
                child_ns: 5,
                end: End::Returned,
                ret: None,
            }
        );
        assert_eq!(stacks.orphan_exits, 0);
    }

    /// (function, how, when) of each call that ended, in order.
    fn ends(calls: &[Call]) -> Vec<(u32, End, u64)> {
        calls
            .iter()
            .filter_map(|c| match c {
                Call::Leave {
                    func: FuncId(f),
                    end,
                    ts,
                    ..
                } => Some((*f, *end, *ts)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn frames_skipped_by_longjmp_are_closed_as_not_seen() {
        use EventKind::*;
        // main → a → b → c, longjmp back into main, then main calls d; no
        // EV_UNWIND said why a, b and c ended.
        let (calls, stacks) = run(&[
            ev(Entry, 0, 0, 1),
            ev(Entry, 1, 1, 2),
            ev(Entry, 2, 2, 3),
            ev(Entry, 3, 3, 4),
            ev(Entry, 4, 1, 9),
            ev(Exit, 4, 1, 10),
            ev(Exit, 0, 0, 11),
        ]);
        let not_seen: Vec<u32> = (ends(&calls).into_iter())
            .filter(|&(_, end, _)| end == End::NotSeen)
            .map(|(func, _, _)| func)
            .collect();
        assert_eq!(not_seen, vec![3, 2, 1]);
        assert_eq!(stacks.unwound, 3);
        assert!(matches!(
            calls.last(),
            Some(Call::Leave {
                func: FuncId(0),
                end: End::Returned,
                ..
            })
        ));
    }

    #[test]
    fn frames_an_unwind_event_names_are_unwound_at_its_time() {
        use EventKind::*;
        // main → a → b; an exception leaves a and b at 6 (EV_UNWIND to
        // depth 1), caught in main, which returns at 9.
        let (calls, _) = run(&[
            ev(Entry, 0, 0, 1),
            ev(Entry, 1, 1, 2),
            ev(Entry, 2, 2, 3),
            ev(Unwind, 0, 1, 6),
            ev(Exit, 0, 0, 9),
        ]);
        assert_eq!(
            ends(&calls),
            [
                (2, End::Unwound, 6),
                (1, End::Unwound, 6),
                (0, End::Returned, 9)
            ]
        );
    }

    #[test]
    fn exit_without_entry_is_an_orphan() {
        use EventKind::*;
        let (calls, stacks) = run(&[ev(Exit, 7, 0, 5)]);
        assert!(calls.is_empty());
        assert_eq!(stacks.orphan_exits, 1);
    }

    #[test]
    fn open_calls_close_at_finish() {
        use EventKind::*;
        let (calls, _) = run(&[ev(Entry, 0, 0, 10)]);
        assert!(matches!(
            calls[1],
            Call::Leave {
                end: End::Open,
                ts: 1000,
                ..
            }
        ));
    }
}
