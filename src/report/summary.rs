//! `--format=summary` (the default report): one row per function with calls,
//! total, self, average, min and max time, sorted by `--sort`, and a footer
//! with the events, threads, lost events and traced wall time. `--srcline`
//! adds where each function is defined. With `--syscalls`, strace -c's
//! table and which function made the calls follow.

use std::io::Write;

use anyhow::Result;

use super::syscalls::SyscallTotals;
use crate::aggregate::{Counts, StatsByFunction};
use crate::model::{Call, FuncTable, RunInfo, Sink, SyscallCall};
use crate::options::SortKey;
use crate::util::fmt::{human_duration, module_name, thousands};

const NUMBERS: [&str; 6] = ["Calls", "Total", "Self", "Avg", "Min", "Max"];
const WIDTH: usize = 11;
/// Longer names widen their own row only.
const MAX_NAME_WIDTH: usize = 60;

pub struct Summary {
    out: Box<dyn Write>,
    sort: SortKey,
    stats: StatsByFunction,
    syscalls: SyscallTotals,
    /// Counted in BPF: events were streamed only for calls too deep for it.
    counted: bool,
    /// Counting mode: the events of those deep calls, and the depth BPF
    /// counts to.
    streamed: (u64, u32),
    srcline: bool,
}

impl Summary {
    pub fn new(out: Box<dyn Write>, sort: SortKey) -> Self {
        Summary {
            out,
            sort,
            stats: StatsByFunction::new(),
            syscalls: SyscallTotals::default(),
            counted: false,
            streamed: (0, 0),
            srcline: false,
        }
    }

    /// `--srcline`: a Source column (`file.c:12`, `-` without debug info).
    pub fn with_srcline(mut self, srcline: bool) -> Self {
        self.srcline = srcline;
        self
    }

    /// Takes the statistics counting mode aggregated instead of calls:
    /// BPF's, with those of the calls deeper than `streamed.1` that
    /// `streamed.0` events brought.
    pub fn load_counted(
        &mut self,
        stats: Vec<crate::aggregate::Stats>,
        syscalls: SyscallTotals,
        streamed: (u64, u32),
    ) {
        self.stats = StatsByFunction::from_counted(stats);
        self.syscalls = syscalls;
        self.counted = true;
        self.streamed = streamed;
    }

    fn write_table(&mut self, table: &FuncTable) -> Result<()> {
        let rows = self.stats.rows(self.sort, table);
        let name_width = rows
            .iter()
            .map(|r| table.name(r.0).chars().count())
            .max()
            .unwrap_or(0)
            .clamp(8, MAX_NAME_WIDTH);
        let mut head = String::new();
        let mut rule = String::new();
        for h in NUMBERS {
            head.push_str(&format!("{h:>WIDTH$} "));
            rule.push_str(&format!("{:>WIDTH$} ", "=".repeat(WIDTH - 1)));
        }
        // Without --srcline the module is last and unpadded, as it was.
        let module_width = match self.srcline {
            true => (rows.iter())
                .map(|r| module_name(table.module_of(r.0)).chars().count())
                .fold(6, usize::max),
            false => 0,
        };
        let (source_head, source_rule) = match self.srcline {
            true => ("  Source", format!("  {}", "=".repeat(6))),
            false => ("", String::new()),
        };
        writeln!(
            self.out,
            "{head} {:<name_width$}  {:<module_width$}{source_head}",
            "Function", "Module"
        )?;
        writeln!(
            self.out,
            "{rule} {}  {:<module_width$}{source_rule}",
            "=".repeat(name_width),
            "=".repeat(6)
        )?;
        let mut running = Vec::new();
        for &(func, s) in &rows {
            let mut line = format!("{:>WIDTH$} ", thousands(s.calls));
            // A call timed to the trace's end makes each time a lower bound.
            let bound = if s.running > 0 { "+" } else { "" };
            for ns in [s.total_ns, s.self_ns, s.avg_ns(), s.min_ns, s.max_ns] {
                line.push_str(&format!("{:>WIDTH$} ", human_duration(ns) + bound));
            }
            if s.running > 0 {
                running.push((func, s.running));
            }
            let module = module_name(table.module_of(func));
            let name = table.name(func);
            let row = format!("{line} {name:<name_width$}  {module:<module_width$}");
            match self.srcline {
                true => {
                    let source = table.function(func).and_then(|f| f.short_source());
                    writeln!(self.out, "{row}  {}", source.as_deref().unwrap_or("-"))?;
                }
                false => writeln!(self.out, "{row}")?,
            }
        }
        if !running.is_empty() {
            writeln!(self.out, "\n{}", running_note(&running, table))?;
        }
        Ok(())
    }
}

/// What the `+` after a row's times means: "+ at least: 2 calls were still
/// running when the trace ended, timed to its end: work (1), block (1)".
fn running_note(running: &[(crate::model::FuncId, u64)], table: &FuncTable) -> String {
    let calls: u64 = running.iter().map(|r| r.1).sum();
    let each: Vec<String> = (running.iter())
        .map(|&(func, n)| format!("{} ({})", table.name(func), thousands(n)))
        .collect();
    format!(
        "+ at least: {} call{} still running when the trace ended, timed to its end: {}",
        thousands(calls),
        if calls == 1 { " was" } else { "s were" },
        each.join(", ")
    )
}

/// "2,469,134 events, 3 threads, 0 lost, 1.234 s traced"
pub fn footer(counts: &Counts, run: &RunInfo) -> String {
    let wall = match run.end_mono_ns.checked_sub(run.start_mono_ns) {
        Some(ns) if run.start_mono_ns > 0 && ns > 0 => ns,
        _ => counts.span_ns(),
    };
    let plural =
        |n: u64, word: &str| format!("{} {word}{}", thousands(n), if n == 1 { "" } else { "s" });
    let mut line = format!(
        "{}, {}, {} lost, {} traced",
        plural(counts.events, "event"),
        plural(counts.threads, "thread"),
        thousands(run.lost_events),
        human_duration(wall)
    );
    if run.lost_events > 0 {
        line.push_str(
            " (lost events: trace fewer functions with -f, or less deep with --max-depth)",
        );
    }
    line
}

/// "1,234,567 calls counted in BPF (no events streamed), 0 lost, 1.234 s traced";
/// "… calls counted (20,002 events streamed for calls deeper than 128 frames,
/// the rest in BPF) …" when some were. Lost events make counts low: said so.
fn counted_footer(stats: &StatsByFunction, streamed: (u64, u32), run: &RunInfo) -> String {
    let calls = stats.total_calls();
    let wall = run.end_mono_ns.saturating_sub(run.start_mono_ns);
    let streamed = match streamed {
        (0, _) => "in BPF (no events streamed)".to_owned(),
        (n, depth) => format!(
            "({} event{} streamed for calls deeper than {depth} frames, the rest in BPF)",
            thousands(n),
            if n == 1 { "" } else { "s" },
        ),
    };
    let mut line = format!(
        "{} call{} counted {streamed}, {} lost, {} traced",
        thousands(calls),
        if calls == 1 { "" } else { "s" },
        thousands(run.lost_events),
        human_duration(wall)
    );
    if run.lost_events > 0 {
        line.push_str(" (the lost calls are missing from the counts: raise --buffer-size)");
    }
    line
}

/// "1,234 system calls counted in BPF (no events streamed), 0 lost, 1.234 s traced"
fn counted_syscalls_footer(syscalls: &SyscallTotals, run: &RunInfo) -> String {
    let wall = run.end_mono_ns.saturating_sub(run.start_mono_ns);
    format!(
        "{} system calls counted in BPF (no events streamed), {} lost, {} traced",
        thousands(syscalls.calls()),
        thousands(run.lost_events),
        human_duration(wall)
    )
}

impl Sink for Summary {
    #[inline]
    fn call(&mut self, call: &Call, _table: &FuncTable) -> Result<()> {
        self.stats.call(call);
        Ok(())
    }

    fn syscall(&mut self, sys: &SyscallCall, _table: &FuncTable) -> Result<()> {
        self.syscalls.add(sys);
        Ok(())
    }

    fn finish(&mut self, table: &FuncTable, run: &RunInfo) -> Result<()> {
        // --syscalls-only traces no function: its table would be empty.
        if !table.functions.is_empty() || self.syscalls.is_empty() {
            self.write_table(table)?;
            writeln!(self.out)?;
        }
        if !self.syscalls.is_empty() {
            self.syscalls.write(&mut self.out, table)?;
            writeln!(self.out)?;
        }
        let mut line = match self.counted {
            true if table.functions.is_empty() => counted_syscalls_footer(&self.syscalls, run),
            true => counted_footer(&self.stats, self.streamed, run),
            false => footer(&self.stats.counts(), run),
        };
        let counted_syscalls_only = self.counted && table.functions.is_empty();
        if !self.syscalls.is_empty() && !counted_syscalls_only {
            let n = self.syscalls.calls();
            line.push_str(&format!(
                "; {} system call{}",
                thousands(n),
                if n == 1 { "" } else { "s" }
            ));
        }
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Format;
    use crate::report::testutil::{options, recursive_events, report, synthetic_events};

    #[test]
    fn hand_made_trace_gives_exact_table() {
        let text = report(&recursive_events(), &options(Format::Summary));
        let expected = [
            "      Calls       Total        Self         Avg         Min         Max  Function  Module",
            " ==========  ==========  ==========  ==========  ==========  ==========  ========  ======",
            "          1      100 ns       20 ns      100 ns      100 ns      100 ns  main      sort",
            "          3       80 ns       80 ns       50 ns       20 ns       80 ns  fib       sort",
            "",
            "8 events, 1 thread, 3 lost, 100 ns traced \
             (lost events: trace fewer functions with -f, or less deep with --max-depth)",
            "",
        ]
        .join("\n");
        assert_eq!(text, expected);
    }

    #[test]
    fn the_counted_footer_says_what_came_as_events_and_what_was_lost() {
        let stats = StatsByFunction::from_counted(vec![crate::aggregate::Stats {
            calls: 304,
            ..Default::default()
        }]);
        let mut run = RunInfo {
            start_mono_ns: 1,
            end_mono_ns: 1_000_001,
            ..RunInfo::default()
        };
        assert_eq!(
            counted_footer(&stats, (0, 128), &run),
            "304 calls counted in BPF (no events streamed), 0 lost, 1.000 ms traced"
        );
        run.lost_events = 2;
        assert_eq!(
            counted_footer(&stats, (348, 128), &run),
            "304 calls counted (348 events streamed for calls deeper than 128 frames, the rest \
             in BPF), 2 lost, 1.000 ms traced (the lost calls are missing from the counts: raise \
             --buffer-size)"
        );
    }

    #[test]
    fn sort_keys_order_rows() {
        let events = synthetic_events(40);
        let order = |sort| {
            let text = report(
                &events,
                &crate::options::ReportOptions {
                    sort,
                    ..options(Format::Summary)
                },
            );
            text.lines()
                .skip(2)
                .take_while(|l| !l.is_empty())
                .map(|l| l.split_whitespace().nth(11).unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order(SortKey::Name),
            ["compare", "main", "qsort@plt", "sort::numbers"]
        );
        assert_eq!(order(SortKey::Calls)[0], "compare");
        assert_eq!(order(SortKey::Total)[0], "main");
    }

    #[test]
    fn self_times_add_up_to_the_roots_per_thread() {
        let events = synthetic_events(300);
        let calls = crate::report::testutil::calls_of(&events);
        for tid in [4242, 4243, 4244] {
            let mut stats = StatsByFunction::new();
            let mut roots = 0;
            for c in calls.iter().filter(|c| c.tid() == tid) {
                stats.call(c);
                if let Call::Leave {
                    depth: 0,
                    entry_ts,
                    ts,
                    ..
                } = c
                {
                    roots += ts - entry_ts;
                }
            }
            let table = crate::tracefile::tests::table();
            let self_sum: u64 = stats
                .rows(SortKey::Total, &table)
                .iter()
                .map(|r| r.1.self_ns)
                .sum();
            assert_eq!(self_sum, roots, "tid {tid}");
        }
    }
}
