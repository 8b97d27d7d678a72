//! `--format=chrome`: Chrome trace-event JSON for Perfetto (ui.perfetto.dev)
//! and chrome://tracing. Every call is a complete event (`"ph":"X"`, `ts` and
//! `dur` in µs with ns fractions, real pid and tid), written as it closes, so
//! memory stays flat; process and thread names follow as metadata events.
//! Calls still running at the end are closed there and marked in `args.end`.
//! System calls are complete events of category `syscall`, the call with its
//! arguments and result in `args.call`. With `-A`/`-R`, a call's values are
//! in `args.arguments` and `args.retval`, as the call graph shows them.

use std::io::Write;

use anyhow::Result;

use crate::model::{Call, End, FuncId, FuncTable, RunInfo, Sink, SyscallCall};
use crate::util::fmt::module_name;
use crate::util::idmap::{IdMap, PerThread};

pub struct Chrome {
    out: Box<dyn Write>,
    /// JSON-escaped name and module per function id, made on first use.
    names: Vec<Option<(String, String)>>,
    /// pid of every thread seen, in order of appearance.
    threads: PerThread<u32>,
    started: bool,
    /// `-A`: per thread, the shown arguments of its open calls by depth.
    open_args: IdMap<u32, Vec<Option<String>>>,
}

impl Chrome {
    pub fn new(out: Box<dyn Write>) -> Self {
        Chrome {
            out,
            names: Vec::new(),
            threads: PerThread::default(),
            started: false,
            open_args: IdMap::default(),
        }
    }

    /// `-A`: keeps an entry's arguments until its call closes.
    fn hold_args(&mut self, call: &Call, table: &FuncTable) {
        let Call::Enter {
            tid,
            func,
            depth,
            ref args,
            ..
        } = *call
        else {
            return;
        };
        let shown = args.as_ref().and_then(|a| table.shown_args(func, a));
        let open = self.open_args.entry(tid).or_default();
        open.resize(depth as usize, None);
        open.push(shown);
    }

    /// `"arguments"` and `"retval"` of a closing call, JSON-escaped.
    fn values_of(&mut self, call: &Call, table: &FuncTable) -> String {
        let Call::Leave {
            tid,
            func,
            depth,
            ref ret,
            ..
        } = *call
        else {
            return String::new();
        };
        let mut out = String::new();
        if let Some(open) = self.open_args.get_mut(&tid) {
            if let Some(Some(args)) = open.get_mut(depth as usize).map(Option::take) {
                out = format!(",\"arguments\":{}", json_str(&args));
            }
            open.truncate(depth as usize);
        }
        if let Some(shown) = ret.as_ref().and_then(|r| table.shown_ret(func, r)) {
            out.push_str(&format!(",\"retval\":{}", json_str(&shown)));
        }
        out
    }

    fn start(&mut self) -> Result<()> {
        if !self.started {
            self.started = true;
            writeln!(self.out, "{{\"traceEvents\":[")?;
        }
        Ok(())
    }

    fn metadata(&mut self, run: &RunInfo) -> Result<()> {
        let program = run
            .command
            .split_whitespace()
            .next()
            .map_or("", module_name)
            .to_owned();
        let mut pids: Vec<u32> = self.threads.iter().map(|(_, pid)| *pid).collect();
        pids.sort_unstable();
        pids.dedup();
        for pid in pids {
            let name = if pid == run.pid && !run.command.is_empty() {
                run.command.clone()
            } else {
                format!("pid {pid}")
            };
            let name = json_str(&name);
            writeln!(
                self.out,
                ",{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{pid},\"tid\":{pid},\"args\":{{\"name\":{name}}}}}"
            )?;
        }
        for (tid, pid) in self.threads.iter() {
            let name = if tid == pid && !program.is_empty() {
                program.clone()
            } else {
                format!("thread {tid}")
            };
            let name = json_str(&name);
            writeln!(
                self.out,
                ",{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":{name}}}}}"
            )?;
        }
        Ok(())
    }
}

impl Sink for Chrome {
    fn call(&mut self, call: &Call, table: &FuncTable) -> Result<()> {
        let values = match table.values.is_empty() {
            true => String::new(),
            false => {
                self.hold_args(call, table);
                self.values_of(call, table)
            }
        };
        let Call::Leave {
            pid,
            tid,
            func,
            entry_ts,
            ts,
            end,
            ..
        } = *call
        else {
            return Ok(());
        };
        let first = !self.started;
        self.start()?;
        *self.threads.get(tid) = pid;
        let sep = if first { "" } else { "," };
        let (name, module) = cached_names(&mut self.names, func, table);
        let args = match end {
            End::Returned => String::new(),
            End::Unwound => ",\"end\":\"unwound (an exception or a longjmp left it)\"".to_owned(),
            End::NotSeen => ",\"end\":\"return not seen\"".to_owned(),
            End::Open => ",\"end\":\"still running at trace end\"".to_owned(),
            End::ThreadEnded => ",\"end\":\"no return: its thread ended\"".to_owned(),
        };
        writeln!(
            self.out,
            "{sep}{{\"name\":{name},\"cat\":\"function\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":{pid},\"tid\":{tid},\"args\":{{\"module\":{module}{args}{values}}}}}",
            micros(entry_ts),
            micros(ts.saturating_sub(entry_ts)),
        )?;
        Ok(())
    }

    fn syscall(&mut self, call: &SyscallCall, _table: &FuncTable) -> Result<()> {
        let first = !self.started;
        self.start()?;
        let (pid, tid) = (call.pid, call.tid);
        *self.threads.get(tid) = pid;
        let sep = if first { "" } else { "," };
        writeln!(
            self.out,
            "{sep}{{\"name\":{},\"cat\":\"syscall\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":{pid},\"tid\":{tid},\"args\":{{\"call\":{}}}}}",
            json_str(&crate::syscall::name(call.sys.nr)),
            micros(call.ts),
            micros(call.duration()),
            json_str(&super::syscalls::label(call.sys)),
        )?;
        Ok(())
    }

    fn finish(&mut self, _table: &FuncTable, run: &RunInfo) -> Result<()> {
        let empty = !self.started;
        self.start()?;
        if empty {
            // Keep the leading-comma scheme valid: metadata follows an item.
            let pid = run.pid;
            writeln!(
                self.out,
                "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{pid},\"tid\":{pid},\"args\":{{\"name\":{}}}}}",
                json_str(&run.command)
            )?;
        } else {
            self.metadata(run)?;
        }
        let command = json_str(&run.command);
        writeln!(
            self.out,
            "],\"displayTimeUnit\":\"ns\",\"otherData\":{{\"command\":{command},\"lost_events\":{}}}}}",
            run.lost_events
        )?;
        self.out.flush()?;
        Ok(())
    }
}

fn cached_names<'a>(
    names: &'a mut Vec<Option<(String, String)>>,
    func: FuncId,
    table: &FuncTable,
) -> &'a (String, String) {
    let i = func.index();
    if i >= names.len() {
        names.resize(i + 1, None);
    }
    names[i].get_or_insert_with(|| (json_str(table.name(func)), json_str(table.module_of(func))))
}

/// ns as µs with three decimals, exactly: 1234567 → "1234.567".
fn micros(ns: u64) -> String {
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::Value;

    use super::micros;
    use crate::model::EventKind::*;
    use crate::options::Format;
    use crate::report::testutil::{ev, options, recursive_events, report, synthetic_events};

    fn x_events(v: &Value) -> Vec<&Value> {
        v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "X")
            .collect()
    }

    #[test]
    fn parses_and_complete_events_nest_per_thread() {
        let events = synthetic_events(300);
        let v: Value = serde_json::from_str(&report(&events, &options(Format::Chrome))).unwrap();
        let xs = x_events(&v);
        assert_eq!(xs.len(), events.len() / 2);
        let mut per_thread: HashMap<u64, Vec<(f64, f64)>> = HashMap::new();
        for x in &xs {
            let (ts, dur) = (x["ts"].as_f64().unwrap(), x["dur"].as_f64().unwrap());
            per_thread
                .entry(x["tid"].as_u64().unwrap())
                .or_default()
                .push((ts, ts + dur));
            assert_eq!(x["pid"], 4242);
        }
        assert_eq!(per_thread.len(), 3);
        for spans in per_thread.values_mut() {
            // Sorted by start, outer first: each span lies inside every open
            // one it starts in, or after it.
            spans.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
            let mut open: Vec<(f64, f64)> = Vec::new();
            for &(s, e) in spans.iter() {
                while open.last().is_some_and(|o| o.1 <= s) {
                    open.pop();
                }
                if let Some(o) = open.last() {
                    assert!(e <= o.1, "{s}..{e} overlaps {}..{}", o.0, o.1);
                }
                open.push((s, e));
            }
        }
        let meta: Vec<&Value> = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "M")
            .collect();
        assert!(
            meta.iter()
                .any(|m| m["name"] == "process_name" && m["args"]["name"] == "./sort -n 5000")
        );
        assert_eq!(
            meta.iter().filter(|m| m["name"] == "thread_name").count(),
            3
        );
    }

    #[test]
    fn open_calls_close_at_the_end_and_are_marked() {
        let events = [
            ev(Entry, 1, 0, 0, 1_000),
            ev(Entry, 1, 4, 1, 1_500),
            ev(Exit, 1, 4, 1, 2_000),
        ];
        let v: Value = serde_json::from_str(&report(&events, &options(Format::Chrome))).unwrap();
        let xs = x_events(&v);
        let main = xs.iter().find(|x| x["name"] == "main").unwrap();
        assert_eq!(main["args"]["end"], "still running at trace end");
        // The trace ends 1 ns after its last event.
        assert_eq!(main["dur"].as_f64().unwrap(), 1.001);
        assert_eq!(
            xs.iter().find(|x| x["name"] == "fib").unwrap()["args"].get("end"),
            None
        );
    }

    #[test]
    fn empty_trace_is_valid_json() {
        let v: Value = serde_json::from_str(&report(&[], &options(Format::Chrome))).unwrap();
        assert!(x_events(&v).is_empty());
        let _: Value =
            serde_json::from_str(&report(&recursive_events(), &options(Format::Chrome))).unwrap();
    }

    #[test]
    fn microseconds_keep_nanoseconds() {
        assert_eq!(micros(1_234_567), "1234.567");
        assert_eq!(micros(5), "0.005");
    }
}
