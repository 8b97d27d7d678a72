//! `--format=json`: the summary, machine-readable, in exactly this shape:
//! `{"functions":[{"function","linkage_name","module","source","calls",
//! "total_ns","self_ns","avg_ns","min_ns","max_ns","running"}, ...],
//! "syscalls":[{"function","module","syscall","calls","errors","total_ns",
//! "bytes"}, ...], "lost_events", "threads", "events"}`. `linkage_name` is
//! the symbol as the symbol table spells it (to join with nm, perf or
//! c++filt output); `module` is the full path of the module holding the
//! function (for a PLT stub `<sym>@plt`, the calling module); `source` is
//! `path/file.c:12` from debug info, or null; `running` counts the calls
//! still running when the trace ended (after `-p`, at detach), timed to
//! its end: with any, the function's times are lower bounds. A syscall
//! row's `function` is null when no traced call was open; `bytes` sums the
//! results ≥ 0 of the read/write family. With `--io`, `"io":[{"function","module",
//! "syscall_read_bytes","syscall_write_bytes","cache_hit_pages",
//! "cache_miss_pages","dirtied_pages","block_read_bytes","block_write_bytes",
//! "block_requests","writeback_bytes","forced_writeback_bytes",
//! "avg_device_ns","max_device_ns","read_amp","write_amp"}, ...]`
//! (`function` null outside every traced call, and "(other traffic)" for
//! the devices' I/O the program did not cause; `syscall_*_bytes` as the
//! kernel counts them per thread, rchar and wchar; an amplification is null
//! when nothing was asked that way).

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::syscalls::SyscallTotals;
use crate::aggregate::StatsByFunction;
use crate::model::{Call, FuncTable, IoCounts, IoOwner, RunInfo, Sink, SyscallCall};
use crate::options::SortKey;

#[derive(Serialize)]
struct Report<'a> {
    functions: Vec<Function<'a>>,
    syscalls: Vec<SyscallRow<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io: Vec<IoRow<'a>>,
    lost_events: u64,
    threads: u64,
    events: u64,
}

#[derive(Serialize)]
struct Function<'a> {
    function: &'a str,
    linkage_name: &'a str,
    module: &'a str,
    source: Option<&'a str>,
    calls: u64,
    total_ns: u64,
    self_ns: u64,
    avg_ns: u64,
    min_ns: u64,
    max_ns: u64,
    running: u64,
}

#[derive(Serialize)]
struct SyscallRow<'a> {
    function: Option<&'a str>,
    module: Option<&'a str>,
    syscall: String,
    calls: u64,
    errors: u64,
    total_ns: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct IoRow<'a> {
    function: Option<&'a str>,
    module: Option<&'a str>,
    syscall_read_bytes: u64,
    syscall_write_bytes: u64,
    cache_hit_pages: u64,
    cache_miss_pages: u64,
    dirtied_pages: u64,
    block_read_bytes: u64,
    block_write_bytes: u64,
    block_requests: u64,
    writeback_bytes: u64,
    forced_writeback_bytes: u64,
    avg_device_ns: u64,
    max_device_ns: u64,
    read_amp: Option<f64>,
    write_amp: Option<f64>,
}

fn io_row<'a>(table: &'a FuncTable, owner: IoOwner, c: &IoCounts) -> IoRow<'a> {
    let (function, module) = match owner {
        IoOwner::Function(id) => (Some(table.name(id)), Some(table.module_of(id))),
        IoOwner::Outside => (None, None),
        IoOwner::Other => (Some("(other traffic)"), None),
    };
    IoRow {
        function,
        module,
        syscall_read_bytes: c.syscall_read_bytes,
        syscall_write_bytes: c.syscall_write_bytes,
        cache_hit_pages: c.cache_hit_pages,
        cache_miss_pages: c.cache_miss_pages,
        dirtied_pages: c.dirtied_pages,
        block_read_bytes: c.block_read_bytes,
        block_write_bytes: c.block_write_bytes,
        block_requests: c.block_requests,
        writeback_bytes: c.writeback_bytes,
        forced_writeback_bytes: c.forced_writeback_bytes,
        avg_device_ns: c.avg_device_ns(),
        max_device_ns: c.max_device_ns,
        read_amp: c.read_amp(),
        write_amp: c.write_amp(),
    }
}

pub struct Json {
    out: Box<dyn Write>,
    sort: SortKey,
    stats: StatsByFunction,
    syscalls: SyscallTotals,
}

impl Json {
    pub fn new(out: Box<dyn Write>, sort: SortKey) -> Self {
        Json {
            out,
            sort,
            stats: StatsByFunction::new(),
            syscalls: SyscallTotals::default(),
        }
    }
}

impl Sink for Json {
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
        let functions = self
            .stats
            .rows(self.sort, table)
            .into_iter()
            .map(|(id, s)| Function {
                function: table.name(id),
                linkage_name: table.function(id).map_or("", |f| f.linkage_name()),
                module: table.module_of(id),
                source: table.function(id).and_then(|f| f.source.as_deref()),
                calls: s.calls,
                total_ns: s.total_ns,
                self_ns: s.self_ns,
                avg_ns: s.avg_ns(),
                min_ns: s.min_ns,
                max_ns: s.max_ns,
                running: s.running,
            })
            .collect();
        let syscalls = self
            .syscalls
            .rows(table)
            .into_iter()
            .map(|((caller, nr), s)| SyscallRow {
                function: caller.map(|f| table.name(f)),
                module: caller.map(|f| table.module_of(f)),
                syscall: crate::syscall::name(nr).into_owned(),
                calls: s.calls,
                errors: s.errors,
                total_ns: s.total_ns,
                bytes: s.bytes,
            })
            .collect();
        let counts = self.stats.counts();
        let io = super::io::rows(run)
            .iter()
            .map(|(owner, c)| io_row(table, *owner, c))
            .collect();
        let report = Report {
            functions,
            syscalls,
            io,
            lost_events: run.lost_events,
            threads: counts.threads,
            events: counts.events,
        };
        serde_json::to_writer_pretty(&mut self.out, &report)?;
        writeln!(self.out)?;
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::options::Format;
    use crate::report::testutil::{options, recursive_events, report};

    #[test]
    fn schema_is_exact() {
        let text = report(&recursive_events(), &options(Format::Json));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let expected = serde_json::json!({
            "functions": [
                {"function": "main", "linkage_name": "main", "module": "/opt/sort", "source": null,
                 "calls": 1, "total_ns": 100, "self_ns": 20, "avg_ns": 100, "min_ns": 100, "max_ns": 100,
                 "running": 0},
                {"function": "fib", "linkage_name": "fib", "module": "/opt/sort", "source": "/src/fib.c:7",
                 "calls": 3, "total_ns": 80, "self_ns": 80, "avg_ns": 50, "min_ns": 20, "max_ns": 80,
                 "running": 0},
            ],
            "syscalls": [],
            "lost_events": 3,
            "threads": 1,
            "events": 8,
        });
        assert_eq!(value, expected);
        // Keys in the documented order.
        let keys = [
            "\"function\"",
            "\"linkage_name\"",
            "\"module\"",
            "\"source\"",
            "\"calls\"",
            "\"total_ns\"",
            "\"self_ns\"",
            "\"avg_ns\"",
            "\"min_ns\"",
            "\"max_ns\"",
            "\"running\"",
        ];
        let at: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        let tail = ["\"lost_events\"", "\"threads\"", "\"events\""].map(|k| text.rfind(k).unwrap());
        assert!(tail[0] < tail[1] && tail[1] < tail[2]);
    }

    #[test]
    fn plt_stubs_keep_their_name_and_calling_module() {
        use crate::model::EventKind::*;
        use crate::report::testutil::ev;
        let events = [
            ev(Entry, 1, 0, 0, 0),
            ev(Entry, 1, 3, 1, 1),
            ev(Exit, 1, 3, 1, 2),
            ev(Exit, 1, 0, 0, 3),
        ];
        let value: serde_json::Value =
            serde_json::from_str(&report(&events, &options(Format::Json))).unwrap();
        let plt = &value["functions"][1];
        assert_eq!(plt["function"], "qsort@plt");
        assert_eq!(plt["linkage_name"], "qsort");
        assert_eq!(plt["module"], "/opt/sort");
    }
}
