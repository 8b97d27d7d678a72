//! `--format=folded`: one line per distinct stack, `main;sort;compare 1234`,
//! weighted by self time in ns so the widths of a flame graph add up to the
//! roots' totals. Threads merge unless `--per-thread` puts each under
//! `tid N`. For flamegraph.pl, inferno and speedscope.

use std::io::Write;

use anyhow::Result;

use crate::aggregate::CallTree;
use crate::model::{Call, FuncTable, RunInfo, Sink, SyscallCall};

pub struct Folded {
    out: Box<dyn Write>,
    tree: CallTree,
}

impl Folded {
    pub fn new(out: Box<dyn Write>, per_thread: bool) -> Self {
        Folded {
            out,
            tree: CallTree::new(per_thread),
        }
    }
}

impl Sink for Folded {
    #[inline]
    fn call(&mut self, call: &Call, _table: &FuncTable) -> Result<()> {
        self.tree.call(call);
        Ok(())
    }

    fn syscall(&mut self, sys: &SyscallCall, _table: &FuncTable) -> Result<()> {
        self.tree.syscall(sys);
        Ok(())
    }

    fn finish(&mut self, table: &FuncTable, _run: &RunInfo) -> Result<()> {
        for line in self.tree.folded(table) {
            writeln!(self.out, "{line}")?;
        }
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Call;
    use crate::options::{Format, ReportOptions};
    use crate::report::testutil::{calls_of, options, recursive_events, report, synthetic_events};

    fn parse(text: &str) -> Vec<(String, u64)> {
        text.lines()
            .map(|l| {
                let (stack, n) = l.rsplit_once(' ').expect("stack and count");
                (stack.to_owned(), n.parse().expect("count"))
            })
            .collect()
    }

    #[test]
    fn recursion_folds_into_nested_frames() {
        let text = report(&recursive_events(), &options(Format::Folded));
        assert_eq!(
            text,
            "main 20\nmain;fib 30\nmain;fib;fib 30\nmain;fib;fib;fib 20\n"
        );
    }

    #[test]
    fn lines_sum_to_the_root_totals() {
        let events = synthetic_events(500);
        let roots: u64 = calls_of(&events)
            .iter()
            .filter_map(|c| match c {
                Call::Leave {
                    depth: 0,
                    entry_ts,
                    ts,
                    ..
                } => Some(ts - entry_ts),
                _ => None,
            })
            .sum();
        for per_thread in [false, true] {
            let lines = parse(&report(
                &events,
                &ReportOptions {
                    per_thread,
                    ..options(Format::Folded)
                },
            ));
            assert_eq!(lines.iter().map(|l| l.1).sum::<u64>(), roots);
            assert!(
                lines
                    .iter()
                    .all(|(stack, _)| stack.starts_with(if per_thread {
                        "tid 42"
                    } else {
                        "main"
                    }))
            );
        }
    }
}
