//! The replay-time filters of `--report` (uftrace's `replay -F/-N/-D/-t`,
//! `--tid` and a time window): one stage between the pairing and the
//! format's sink, so every format gets them. Live, BPF filters at the source.
//!
//! As in uftrace: `-f` shows the matching calls and everything under them,
//! and the calls above them are hidden, so the matching calls rise to depth
//! 0; `--no-function` hides the matching calls and everything under them;
//! `--max-depth` and `-t` hide a call and its callees (they are deeper, and
//! shorter). `--since`/`--until` keep the calls running at some time in the
//! window (counted from the first call, as the `--timestamp` column is),
//! whole. Depths are renumbered so the tree stays well-formed, and a
//! shown call's self time includes the callees that were hidden. A system
//! call is shown where the call it was made in is (outside every call only
//! without `-f`), if `-t`, `--tid` and the window keep it too.
//!
//! A call's fate may be known only when it ends (`-t`, `--since`): its entry
//! waits on its thread's stack until then, and is passed on, after those of
//! its waiting callers, once it is known to be shown. Memory grows with the
//! depth of the stacks, never with the trace.

use anyhow::{Result, bail};

use crate::model::{Call, FuncId, FuncTable, RunInfo, Sink, SyscallCall};
use crate::options::{CallFilter, Filter};
use crate::symbols::Selector;
use crate::symbols::select::recorded_names;
use crate::util::idmap::IdMap;
use crate::values::Values;

/// `sink` behind the filters of `filter`, or `sink` itself when they keep
/// every call. The patterns were checked against the table ([`check`]).
pub fn apply(sink: Box<dyn Sink>, filter: &CallFilter) -> Result<Box<dyn Sink>> {
    if filter.keeps_all() {
        return Ok(sink);
    }
    let selector = Selector::new(&Filter {
        functions: filter.functions.clone(),
        no_functions: filter.no_functions.clone(),
        ..Filter::default()
    })?;
    Ok(Box::new(Filtered {
        inner: sink,
        selector,
        max_depth: filter.max_depth.unwrap_or(u32::MAX),
        min_ns: filter.min_duration_ns,
        tids: filter.tids.clone(),
        window: (
            filter.since_ns.unwrap_or(0),
            filter.until_ns.unwrap_or(u64::MAX),
        ),
        since: 0,
        until: u64::MAX,
        started: false,
        matches: Vec::new(),
        threads: IdMap::default(),
        narrowed: !filter.functions.is_empty(),
    }))
}

/// A `-f` or `--no-function` pattern that matches no function of `table`
/// is an error, as it is when tracing: the report would be empty, or
/// silently the whole trace.
pub fn check(filter: &CallFilter, table: &FuncTable) -> Result<()> {
    for (option, patterns) in [
        ("-f", &filter.functions),
        ("--no-function", &filter.no_functions),
    ] {
        for pattern in patterns {
            let one = Selector::new(&Filter {
                functions: vec![pattern.clone()],
                ..Filter::default()
            })?;
            if !table
                .functions
                .iter()
                .any(|f| one.includes(&recorded_names(f)))
            {
                bail!(
                    "no function of the trace matches {option} '{pattern}' (`utrace --report` lists the functions it holds)"
                );
            }
        }
    }
    Ok(())
}

/// What the name filters say of a function, cached per id.
#[derive(Clone, Copy, Default)]
struct Match {
    known: bool,
    included: bool,
    excluded: bool,
}

/// A call open on a thread, as the filters see it.
enum Frame {
    /// Hidden with everything under it.
    Pruned,
    /// Hidden, outside every `-f` match: its callees rise.
    Above,
    Shown(Shown),
}

struct Shown {
    pid: u32,
    func: FuncId,
    /// Its depth in the output.
    depth: u32,
    entry_ts: u64,
    /// Time in shown callees: hidden ones count as its own.
    child_ns: u64,
    /// Its entry was passed on.
    entered: bool,
    /// `-A`: its arguments, passed on with its entry.
    args: Option<Values>,
}

struct Filtered {
    inner: Box<dyn Sink>,
    selector: Selector,
    max_depth: u32,
    min_ns: u64,
    tids: Vec<u32>,
    /// The window in ns from the first call, as the call graph's
    /// `--timestamp` column counts; then in CLOCK_MONOTONIC ns, once that
    /// call came.
    window: (u64, u64),
    since: u64,
    until: u64,
    started: bool,
    matches: Vec<Match>,
    threads: IdMap<u32, Vec<Frame>>,
    /// `-f` was given: what is outside every match is hidden.
    narrowed: bool,
}

impl Filtered {
    fn name_match(&mut self, func: FuncId, table: &FuncTable) -> Match {
        let i = func.index();
        if i >= self.matches.len() {
            self.matches.resize(i + 1, Match::default());
        }
        if !self.matches[i].known {
            let names = table.function(func).map(recorded_names).unwrap_or_default();
            self.matches[i] = Match {
                known: true,
                included: self.selector.includes(&names),
                excluded: self.selector.excludes(&names),
            };
        }
        self.matches[i]
    }

    /// Whether a shown call's entry can go on at once: no filter that waits
    /// for its end could still hide it.
    fn shown_at_entry(&self, ts: u64) -> bool {
        self.min_ns == 0 && ts >= self.since
    }

    fn enter(&mut self, call: &Call, t: &FuncTable) -> Result<()> {
        let Call::Enter {
            pid,
            tid,
            func,
            ts,
            ref args,
            ..
        } = *call
        else {
            return Ok(());
        };
        let m = self.name_match(func, t);
        let (max_depth, until) = (self.max_depth, self.until);
        let at_entry = self.shown_at_entry(ts);
        let frames = self.threads.entry(tid).or_default();
        let frame = match frames.last() {
            Some(Frame::Pruned) => Frame::Pruned,
            _ if m.excluded || ts > until => Frame::Pruned,
            Some(Frame::Shown(parent)) if parent.depth >= max_depth => Frame::Pruned,
            Some(Frame::Shown(parent)) => shown(pid, func, parent.depth + 1, ts, args),
            _ if m.included => shown(pid, func, 0, ts, args),
            _ => Frame::Above,
        };
        let now = matches!(frame, Frame::Shown(_)) && at_entry;
        frames.push(frame);
        match now {
            true => self.reveal(tid, t),
            false => Ok(()),
        }
    }

    fn leave(&mut self, call: &Call, t: &FuncTable) -> Result<()> {
        let Call::Leave {
            tid,
            depth,
            ts,
            end,
            ..
        } = *call
        else {
            return Ok(());
        };
        let Some(frames) = self.threads.get_mut(&tid) else {
            return Ok(());
        };
        frames.truncate(depth as usize + 1);
        if frames.len() != depth as usize + 1 {
            return Ok(());
        }
        let Some(Frame::Shown(me)) = frames.last() else {
            frames.pop();
            return Ok(());
        };
        let ns = ts.saturating_sub(me.entry_ts);
        let ret = match call {
            Call::Leave { ret, .. } => ret.clone(),
            Call::Enter { .. } => None,
        };
        if ns < self.min_ns || ts < self.since {
            frames.pop();
            return Ok(());
        }
        self.reveal(tid, t)?;
        let Some(frames) = self.threads.get_mut(&tid) else {
            return Ok(());
        };
        let Some(Frame::Shown(me)) = frames.pop() else {
            return Ok(());
        };
        if let Some(Frame::Shown(parent)) = frames.last_mut() {
            parent.child_ns += ns;
        }
        let out = Call::Leave {
            pid: me.pid,
            tid,
            func: me.func,
            depth: me.depth,
            entry_ts: me.entry_ts,
            ts,
            child_ns: me.child_ns.min(ns),
            end,
            ret,
        };
        self.inner.call(&out, t)
    }

    /// Passes on the entries still waiting on `tid`'s stack, outermost
    /// first: the innermost is known to be shown, so its callers are too.
    fn reveal(&mut self, tid: u32, t: &FuncTable) -> Result<()> {
        let Some(frames) = self.threads.get_mut(&tid) else {
            return Ok(());
        };
        for frame in frames.iter_mut() {
            if let Frame::Shown(s) = frame
                && !s.entered
            {
                s.entered = true;
                let enter = Call::Enter {
                    pid: s.pid,
                    tid,
                    func: s.func,
                    depth: s.depth,
                    ts: s.entry_ts,
                    args: s.args.take(),
                };
                self.inner.call(&enter, t)?;
            }
        }
        Ok(())
    }
}

fn shown(pid: u32, func: FuncId, depth: u32, entry_ts: u64, args: &Option<Values>) -> Frame {
    Frame::Shown(Shown {
        args: args.clone(),
        pid,
        func,
        depth,
        entry_ts,
        child_ns: 0,
        entered: false,
    })
}

impl Filtered {
    fn start(&mut self, ts: u64) {
        if !self.started {
            self.started = true;
            self.since = ts.saturating_add(self.window.0);
            self.until = ts.saturating_add(self.window.1);
        }
    }
}

impl Sink for Filtered {
    fn syscall(&mut self, sys: &SyscallCall, table: &FuncTable) -> Result<()> {
        self.start(sys.ts);
        let kept_by_time =
            sys.duration() >= self.min_ns && sys.sys.end_ts >= self.since && sys.ts <= self.until;
        if !kept_by_time || (!self.tids.is_empty() && !self.tids.contains(&sys.tid)) {
            return Ok(());
        }
        let frames = self.threads.entry(sys.tid).or_default();
        frames.truncate(sys.depth as usize);
        let depth = match frames.last() {
            None if self.narrowed => return Ok(()),
            None => 0,
            Some(Frame::Shown(parent)) if parent.depth < self.max_depth => parent.depth + 1,
            Some(_) => return Ok(()),
        };
        self.reveal(sys.tid, table)?;
        self.inner.syscall(&SyscallCall { depth, ..*sys }, table)
    }

    fn call(&mut self, call: &Call, table: &FuncTable) -> Result<()> {
        self.start(call.ts());
        if !self.tids.is_empty() && !self.tids.contains(&call.tid()) {
            return Ok(());
        }
        match *call {
            Call::Enter { tid, depth, .. } => {
                // The pairing closes what an entry leaves behind first.
                let frames = self.threads.entry(tid).or_default();
                frames.truncate(depth as usize);
                self.enter(call, table)
            }
            Call::Leave { .. } => self.leave(call, table),
        }
    }

    fn idle(&mut self, now: u64, table: &FuncTable) -> Result<()> {
        self.inner.idle(now, table)
    }

    fn finish(&mut self, table: &FuncTable, run: &RunInfo) -> Result<()> {
        self.inner.finish(table, run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::End;
    use crate::model::EventKind::{Entry, Exit};
    use crate::report::testutil::{calls_of, ev};
    use crate::tracefile::tests::table;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Keeps what it is given.
    struct Collect(Rc<RefCell<Vec<Call>>>);

    impl Sink for Collect {
        fn call(&mut self, call: &Call, _: &FuncTable) -> Result<()> {
            self.0.borrow_mut().push(call.clone());
            Ok(())
        }
        fn syscall(&mut self, _: &SyscallCall, _: &FuncTable) -> Result<()> {
            Ok(())
        }
        fn finish(&mut self, _: &FuncTable, _: &RunInfo) -> Result<()> {
            Ok(())
        }
    }

    /// Thread 1: main 0..100 → sort::numbers 10..60 → compare 20..25 and
    /// 30..50; main → fib 70..90 → fib 75..80. Thread 2: compare 40..45.
    fn trace() -> Vec<Call> {
        calls_of(&[
            ev(Entry, 1, 0, 0, 0),
            ev(Entry, 1, 1, 1, 10),
            ev(Entry, 1, 2, 2, 20),
            ev(Exit, 1, 2, 2, 25),
            ev(Entry, 1, 2, 2, 30),
            ev(Entry, 2, 2, 0, 40),
            ev(Exit, 2, 2, 0, 45),
            ev(Exit, 1, 2, 2, 50),
            ev(Exit, 1, 1, 1, 60),
            ev(Entry, 1, 4, 1, 70),
            ev(Entry, 1, 4, 2, 75),
            ev(Exit, 1, 4, 2, 80),
            ev(Exit, 1, 4, 1, 90),
            ev(Exit, 1, 0, 0, 100),
        ])
    }

    /// The calls `filter` keeps, one line each: `tid depth name entry..end
    /// child_ns` for a leave, `tid depth > name` for an entry.
    fn kept(filter: CallFilter) -> Vec<String> {
        let t = table();
        check(&filter, &t).unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let mut sink = apply(Box::new(Collect(got.clone())), &filter).unwrap();
        for call in trace() {
            sink.call(&call, &t).unwrap();
        }
        let calls = got.borrow().clone();
        let lines = calls.iter().map(|c| match *c {
            Call::Enter {
                tid, func, depth, ..
            } => format!("{tid} {depth} > {}", t.name(func)),
            Call::Leave {
                tid,
                func,
                depth,
                entry_ts,
                ts,
                child_ns,
                end,
                ..
            } => {
                assert_eq!(end, End::Returned);
                format!("{tid} {depth} {} {entry_ts}..{ts} {child_ns}", t.name(func))
            }
        });
        lines.collect()
    }

    #[test]
    fn function_keeps_the_matching_calls_and_all_under_them_at_depth_0() {
        let kept = kept(CallFilter {
            functions: vec!["sort::*".into()],
            ..CallFilter::default()
        });
        let expected = [
            "1 0 > sort::numbers",
            "1 1 > compare",
            "1 1 compare 20..25 0",
            "1 1 > compare",
            "1 1 compare 30..50 0",
            "1 0 sort::numbers 10..60 25",
        ];
        assert_eq!(kept, expected);
    }

    #[test]
    fn no_function_hides_the_calls_and_their_callees_into_the_callers_self_time() {
        let kept = kept(CallFilter {
            no_functions: vec!["sort::numbers".into(), "fib".into()],
            ..CallFilter::default()
        });
        let expected = [
            "1 0 > main",
            "2 0 > compare",
            "2 0 compare 40..45 0",
            "1 0 main 0..100 0",
        ];
        assert_eq!(kept, expected);
    }

    #[test]
    fn max_depth_counts_from_the_shown_tree() {
        let kept = kept(CallFilter {
            functions: vec!["main".into()],
            max_depth: Some(1),
            tids: vec![1],
            ..CallFilter::default()
        });
        let expected = [
            "1 0 > main",
            "1 1 > sort::numbers",
            "1 1 sort::numbers 10..60 0",
            "1 1 > fib",
            "1 1 fib 70..90 0",
            "1 0 main 0..100 70",
        ];
        assert_eq!(kept, expected);
    }

    #[test]
    fn time_filter_keeps_long_calls_and_their_callers_in_order() {
        let kept = kept(CallFilter {
            min_duration_ns: 20,
            ..CallFilter::default()
        });
        let expected = [
            "1 0 > main",
            "1 1 > sort::numbers",
            "1 2 > compare",
            "1 2 compare 30..50 0",
            "1 1 sort::numbers 10..60 20",
            "1 1 > fib",
            "1 1 fib 70..90 0",
            "1 0 main 0..100 70",
        ];
        assert_eq!(kept, expected);
    }

    #[test]
    fn a_window_keeps_the_calls_running_in_it_whole() {
        let kept = kept(CallFilter {
            since_ns: Some(26),
            until_ns: Some(28),
            ..CallFilter::default()
        });
        let expected = [
            "1 0 > main",
            "1 1 > sort::numbers",
            "1 1 sort::numbers 10..60 0",
            "1 0 main 0..100 50",
        ];
        assert_eq!(kept, expected);
    }

    #[test]
    fn a_pattern_matching_no_recorded_function_is_an_error() {
        let filter = CallFilter {
            no_functions: vec!["nope*".into()],
            ..CallFilter::default()
        };
        let err = check(&filter, &table()).unwrap_err().to_string();
        assert_eq!(
            err,
            "no function of the trace matches --no-function 'nope*' (`utrace --report` lists the functions it holds)"
        );
        // A PLT stub matches by its import's name too, as when tracing.
        let stub = CallFilter {
            functions: vec!["qsort".into()],
            ..CallFilter::default()
        };
        check(&stub, &table()).unwrap();
    }
}
