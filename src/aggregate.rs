//! Aggregators the report formats share: per-function statistics (summary,
//! json) and the call tree of self times (folded, flame graph). They see
//! paired calls, live or from a file, and keep only what they aggregate:
//! memory grows with functions × threads × depth, never with events.

use crate::model::{Call, End, FuncId, FuncTable, SyscallCall};
use crate::options::SortKey;
use crate::util::idmap::{IdMap, PerThread};

/// One function's numbers. Total counts only outermost activations of a
/// recursive function (as uftrace does), so totals never count time twice;
/// min, max and avg are over every call's own duration (avg = sum / calls),
/// so min ≤ avg ≤ max always holds, recursion or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub calls: u64,
    pub total_ns: u64,
    pub self_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    /// Every call's own duration, nested activations included.
    pub sum_ns: u64,
    /// Calls still running when the trace ended (after `-p`, at detach):
    /// timed to the end, so every time of the function is a lower bound.
    pub running: u64,
}

impl Stats {
    /// The mean duration of a call.
    pub fn avg_ns(&self) -> u64 {
        self.sum_ns.checked_div(self.calls).unwrap_or(0)
    }

    /// Adds the calls of `other`, aggregated apart (counting mode: in BPF,
    /// and from the events of calls too deep for it).
    pub fn merge(&mut self, other: &Stats) {
        if other.calls == 0 {
            return;
        }
        self.min_ns = match self.calls {
            0 => other.min_ns,
            _ => self.min_ns.min(other.min_ns),
        };
        self.max_ns = self.max_ns.max(other.max_ns);
        self.calls += other.calls;
        self.total_ns += other.total_ns;
        self.self_ns += other.self_ns;
        self.sum_ns += other.sum_ns;
        self.running += other.running;
    }
}

/// Counters every aggregate report shows in its footer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Events paired into the calls seen: one per entry, one per return.
    pub events: u64,
    pub threads: u64,
    pub first_ts: Option<u64>,
    pub last_ts: u64,
}

impl Counts {
    /// Wall time covered by the calls seen.
    pub fn span_ns(&self) -> u64 {
        self.first_ts
            .map_or(0, |first| self.last_ts.saturating_sub(first))
    }
}

/// Per-function statistics, aggregated from calls (or taken from BPF).
#[derive(Default)]
pub struct StatsByFunction {
    stats: Vec<Stats>,
    /// Per thread: how many activations of each function are open.
    active: PerThread<IdMap<FuncId, u32>>,
    counts: Counts,
}

impl StatsByFunction {
    pub fn new() -> Self {
        Self::default()
    }

    /// Statistics BPF aggregated itself (counting mode), indexed by function id.
    pub fn from_counted(stats: Vec<Stats>) -> Self {
        StatsByFunction {
            stats,
            ..Self::default()
        }
    }

    #[inline]
    pub fn call(&mut self, call: &Call) {
        let c = &mut self.counts;
        c.first_ts.get_or_insert(call.ts());
        c.last_ts = c.last_ts.max(call.ts());
        match *call {
            Call::Enter { tid, func, .. } => {
                self.counts.events += 1;
                *self.active.get(tid).entry(func).or_insert(0) += 1;
            }
            Call::Leave {
                tid,
                func,
                entry_ts,
                ts,
                child_ns,
                end,
                ..
            } => {
                self.counts.events += u64::from(end == End::Returned);
                // Entries stay at 0 rather than being removed: the map holds
                // the functions the thread called, and no churn per call.
                let outermost = match self.active.get(tid).get_mut(&func) {
                    Some(n) => {
                        *n = n.saturating_sub(1);
                        *n == 0
                    }
                    None => true,
                };
                let total = ts.saturating_sub(entry_ts);
                self.add(func, total, child_ns, outermost, end == End::Open);
            }
        }
    }

    /// Counting mode: `func` is open on thread `tid` below the calls this
    /// sees (in BPF's frames), so theirs are nested activations, left out
    /// of Total, until [`StatsByFunction::release`].
    pub fn hold(&mut self, tid: u32, func: FuncId) {
        *self.active.get(tid).entry(func).or_insert(0) += 1;
    }

    pub fn release(&mut self, tid: u32, func: FuncId) {
        if let Some(n) = self.active.get(tid).get_mut(&func) {
            *n = n.saturating_sub(1);
        }
    }

    /// Every function's numbers, indexed by function id.
    pub fn stats(&self) -> &[Stats] {
        &self.stats
    }

    pub fn total_calls(&self) -> u64 {
        self.stats.iter().map(|s| s.calls).sum()
    }

    /// Footer counters: events, threads, time span of the calls seen.
    pub fn counts(&self) -> Counts {
        Counts {
            threads: self.active.len() as u64,
            ..self.counts
        }
    }

    /// One call of `func`; `running`: still running when the trace ended.
    fn add(&mut self, func: FuncId, total: u64, child_ns: u64, outermost: bool, running: bool) {
        let i = func.index();
        if i >= self.stats.len() {
            self.stats.resize(i + 1, Stats::default());
        }
        let s = &mut self.stats[i];
        s.min_ns = if s.calls == 0 {
            total
        } else {
            s.min_ns.min(total)
        };
        s.max_ns = s.max_ns.max(total);
        s.sum_ns += total;
        s.calls += 1;
        s.running += u64::from(running);
        s.self_ns += total.saturating_sub(child_ns);
        if outermost {
            s.total_ns += total;
        }
    }

    /// (function id, stats) of every function called, in `sort` order.
    pub fn rows(&self, sort: SortKey, table: &FuncTable) -> Vec<(FuncId, Stats)> {
        let mut rows: Vec<(FuncId, Stats)> = self
            .stats
            .iter()
            .enumerate()
            .filter(|(_, s)| s.calls > 0)
            .map(|(i, s)| (FuncId(i as u32), *s))
            .collect();
        let by_name = |a: &(FuncId, Stats), b: &(FuncId, Stats)| {
            table.name(a.0).cmp(table.name(b.0)).then(a.0.cmp(&b.0))
        };
        match sort {
            SortKey::Name => rows.sort_by(by_name),
            _ => rows.sort_by(|a, b| {
                sort_value(sort, &b.1)
                    .cmp(&sort_value(sort, &a.1))
                    .then_with(|| by_name(a, b))
            }),
        }
        rows
    }
}

fn sort_value(sort: SortKey, s: &Stats) -> u64 {
    match sort {
        SortKey::Calls => s.calls,
        SortKey::Total | SortKey::Name => s.total_ns,
        SortKey::SelfTime => s.self_ns,
        SortKey::Avg => s.avg_ns(),
        SortKey::Max => s.max_ns,
    }
}

/// A node of the call tree: one distinct stack.
struct Node {
    /// Function id (its number), or the tid for a per-thread root.
    func: u32,
    parent: u32,
    self_ns: u64,
}

const ROOT: u32 = 0;
/// A node's `func` with this bit is a system call (its number below it).
const SYSCALL_NODE: u32 = 1 << 31;

/// Self time per distinct call stack, for folded stacks and flame graphs.
pub struct CallTree {
    nodes: Vec<Node>,
    children: IdMap<(u32, u32), u32>,
    /// Per thread: the node of its innermost open call.
    cursor: PerThread<Option<u32>>,
    per_thread: bool,
}

impl CallTree {
    /// With `per_thread`, each thread's stacks hang under a node of its own.
    pub fn new(per_thread: bool) -> Self {
        CallTree {
            nodes: vec![Node {
                func: u32::MAX,
                parent: ROOT,
                self_ns: 0,
            }],
            children: IdMap::default(),
            cursor: PerThread::default(),
            per_thread,
        }
    }

    #[inline]
    pub fn call(&mut self, call: &Call) {
        match *call {
            Call::Enter { tid, func, .. } => {
                let at = match *self.cursor.get(tid) {
                    Some(node) => node,
                    None if self.per_thread => self.child(ROOT, tid),
                    None => ROOT,
                };
                let node = self.child(at, func.0);
                *self.cursor.get(tid) = Some(node);
            }
            Call::Leave {
                tid,
                entry_ts,
                ts,
                child_ns,
                ..
            } => {
                let Some(node) = *self.cursor.get(tid) else {
                    return;
                };
                let n = &mut self.nodes[node as usize];
                // Wrapping: the node's syscalls were taken off it already.
                let own = ts.saturating_sub(entry_ts).saturating_sub(child_ns);
                n.self_ns = n.self_ns.wrapping_add(own);
                let parent = n.parent;
                let at_top = parent == ROOT
                    || (self.per_thread && self.nodes[parent as usize].parent == ROOT);
                *self.cursor.get(tid) = (!at_top).then_some(parent);
            }
        }
    }

    /// A system call: a leaf under the thread's open call, its time taken
    /// off that call's self time so the stacks still add up to the roots.
    pub fn syscall(&mut self, call: &SyscallCall) {
        let at = match *self.cursor.get(call.tid) {
            Some(node) => node,
            None if self.per_thread => self.child(ROOT, call.tid),
            None => ROOT,
        };
        let ns = call.duration();
        if at != ROOT && !(self.per_thread && self.nodes[at as usize].parent == ROOT) {
            let n = &mut self.nodes[at as usize];
            n.self_ns = n.self_ns.wrapping_sub(ns);
        }
        let leaf = self.child(at, SYSCALL_NODE | call.sys.nr);
        self.nodes[leaf as usize].self_ns += ns;
    }

    fn child(&mut self, parent: u32, func: u32) -> u32 {
        let next = self.nodes.len() as u32;
        let node = *self.children.entry((parent, func)).or_insert(next);
        if node == next {
            self.nodes.push(Node {
                func,
                parent,
                self_ns: 0,
            });
        }
        node
    }

    /// Folded lines (`main;sort;compare 1234`, self time in ns), sorted; with
    /// per-thread roots the first frame is `tid N`.
    pub fn folded(&self, table: &FuncTable) -> Vec<String> {
        let mut names: Vec<String> = Vec::with_capacity(self.nodes.len());
        names.push(String::new());
        let mut lines = Vec::new();
        for node in &self.nodes[1..] {
            // Parents come before their children, so a parent's path is known.
            let name = match self.per_thread && node.parent == ROOT {
                true => format!("tid {}", node.func),
                // flamegraph.pl's and inferno's mark of a kernel frame.
                false if node.func & SYSCALL_NODE != 0 => {
                    format!("{}_[k]", crate::syscall::name(node.func & !SYSCALL_NODE))
                }
                false => frame_name(table.name(FuncId(node.func))),
            };
            let path = match &names[node.parent as usize] {
                p if p.is_empty() => name,
                p => format!("{p};{name}"),
            };
            // Below zero only when clocks disagreed: nothing to draw.
            if (node.self_ns as i64) > 0 {
                lines.push(format!("{path} {}", node.self_ns));
            }
            names.push(path);
        }
        lines.sort_unstable();
        lines
    }
}

/// A name safe inside a folded line: `;` separates frames there.
fn frame_name(name: &str) -> String {
    name.replace(';', ":").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventKind::*;
    use crate::report::testutil::{calls_of, ev, recursive_events};

    #[test]
    fn recursion_counts_only_outermost_activations_in_total() {
        let calls = calls_of(&recursive_events());
        let mut agg = StatsByFunction::new();
        calls.iter().for_each(|c| agg.call(c));
        let table = crate::tracefile::tests::table();
        let rows = agg.rows(SortKey::Total, &table);
        // fib (4) recursion: 10..90 around 20..70 around 30..50.
        let fib = rows.iter().find(|r| r.0 == FuncId(4)).unwrap().1;
        assert_eq!(
            fib,
            Stats {
                calls: 3,
                total_ns: 80,
                self_ns: 80,
                min_ns: 20,
                max_ns: 80,
                sum_ns: 150,
                running: 0,
            }
        );
        // 80, 50 and 20 ns: the mean call, not total / calls (26 ns < min).
        assert_eq!(fib.avg_ns(), 50);
        let main = rows.iter().find(|r| r.0 == FuncId(0)).unwrap().1;
        assert_eq!(
            main,
            Stats {
                calls: 1,
                total_ns: 100,
                self_ns: 20,
                min_ns: 100,
                max_ns: 100,
                sum_ns: 100,
                running: 0,
            }
        );
        assert_eq!(rows[0].0, FuncId(0));
        assert_eq!(agg.counts().events, 8);
        assert_eq!(agg.counts().threads, 1);
    }

    #[test]
    fn merged_stats_are_those_of_all_the_calls() {
        let bpf = Stats {
            calls: 3,
            total_ns: 90,
            self_ns: 30,
            min_ns: 20,
            max_ns: 40,
            sum_ns: 90,
            running: 1,
        };
        let deep = Stats {
            calls: 2,
            total_ns: 0,
            self_ns: 10,
            min_ns: 5,
            max_ns: 15,
            sum_ns: 20,
            running: 1,
        };
        let mut all = Stats::default();
        all.merge(&bpf);
        all.merge(&Stats::default());
        assert_eq!(all, bpf, "nothing merged from no calls");
        all.merge(&deep);
        let expected = Stats {
            calls: 5,
            total_ns: 90,
            self_ns: 40,
            min_ns: 5,
            max_ns: 40,
            sum_ns: 110,
            running: 2,
        };
        assert_eq!(all, expected);
    }

    #[test]
    fn a_held_function_keeps_its_calls_out_of_total() {
        let calls = calls_of(&[ev(Entry, 1, 4, 0, 10), ev(Exit, 1, 4, 0, 30)]);
        let mut agg = StatsByFunction::new();
        agg.hold(1, FuncId(4));
        calls.iter().for_each(|c| agg.call(c));
        agg.release(1, FuncId(4));
        calls.iter().for_each(|c| agg.call(c));
        let fib = agg.stats()[4];
        assert_eq!((fib.calls, fib.total_ns, fib.sum_ns), (2, 20, 40));
    }

    #[test]
    fn folded_stacks_merge_threads_unless_asked() {
        let events = [
            ev(Entry, 1, 0, 0, 0),
            ev(Entry, 2, 0, 0, 5),
            ev(Entry, 1, 2, 1, 10),
            ev(Exit, 1, 2, 1, 15),
            ev(Exit, 1, 0, 0, 20),
            ev(Exit, 2, 0, 0, 30),
        ];
        let calls = calls_of(&events);
        let table = crate::tracefile::tests::table();
        let mut merged = CallTree::new(false);
        let mut split = CallTree::new(true);
        for c in &calls {
            merged.call(c);
            split.call(c);
        }
        assert_eq!(merged.folded(&table), ["main 40", "main;compare 5"]);
        assert_eq!(
            split.folded(&table),
            ["tid 1;main 15", "tid 1;main;compare 5", "tid 2;main 25"]
        );
    }
}
