//! Records a synthetic 50-million-event trace file and reports it as summary
//! and as folded stacks, printing bytes/event, events/s and peak memory.
//!
//!     cargo bench --bench report              # 50M events
//!     UTRACE_BENCH_REPORT_EVENTS=5000000 cargo bench --bench report
//!     UTRACE_BENCH_DATA=/tmp/bench.data cargo bench --bench report   # keep the file
//!
//! The trace imitates a traced program: 48 functions in a fixed call graph
//! (loops, a recursive function, a PLT call), four threads taking turns in
//! bursts, durations of tens to hundreds of ns with jitter.

use std::io;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use utrace::model::{Event, EventKind, FuncId, FuncKind, FuncTable, Function, Module, RunInfo};
use utrace::options::{Format, ReportOptions};
use utrace::report::{replay_file, sink_for};
use utrace::tracefile::{TraceReader, TraceWriter};

const FUNCTIONS: u32 = 48;
const THREADS: u32 = 4;

fn main() -> Result<()> {
    let events: u64 = std::env::var("UTRACE_BENCH_REPORT_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000_000);
    let dir = tempfile::tempdir()?;
    // UTRACE_BENCH_DATA=FILE keeps the trace for a closer look.
    let path = std::env::var_os("UTRACE_BENCH_DATA")
        .map_or_else(|| dir.path().join("bench.data"), Into::into);

    reset_peak();
    let t = Instant::now();
    let bytes = record(&path, events)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "record : {} events, {:.2} bytes/event, {:.1} M events/s, peak RSS {} MiB",
        events,
        bytes as f64 / events as f64,
        events as f64 / secs / 1e6,
        peak_rss_mib()
    );
    for format in [Format::Summary, Format::Folded] {
        reset_peak();
        let t = Instant::now();
        let read = report(&path, format)?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{:<7}: {read} events in {secs:.2} s, {:.1} M events/s, peak RSS {} MiB",
            format!("{format:?}").to_lowercase(),
            read as f64 / secs / 1e6,
            peak_rss_mib()
        );
    }
    Ok(())
}

fn table() -> FuncTable {
    let functions = (0..FUNCTIONS)
        .map(|i| Function {
            module: u32::from(i == FUNCTIONS - 1),
            name: if i == FUNCTIONS - 1 {
                "memcpy@plt".into()
            } else {
                format!("fn_{i}")
            },
            raw_name: format!("fn_{i}"),
            addr: 0x1000 + u64::from(i) * 0x40,
            size: 0x40,
            kind: if i == FUNCTIONS - 1 {
                FuncKind::Plt
            } else {
                FuncKind::Function
            },
            library: (i == FUNCTIONS - 1).then(|| "libc.so.6".into()),
            source: None,
        })
        .collect();
    let modules = vec![
        Module {
            path: "/bench/app".into(),
            build_id: Some("00ff".into()),
        },
        Module {
            path: "/bench/libc.so.6".into(),
            build_id: None,
        },
    ];
    FuncTable {
        modules,
        functions,
        values: Default::default(),
    }
}

/// A deterministic stand-in for a program's execution.
struct Program {
    rng: u64,
    ts: u64,
    out: Vec<Event>,
}

impl Program {
    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn emit(&mut self, kind: EventKind, tid: u32, func: u32, depth: u32) {
        self.ts += 20 + (func as u64 % 7) * 15 + self.rand() % 64;
        self.out.push(Event {
            kind,
            pid: 1000,
            tid,
            func: FuncId(func),
            depth,
            ts: self.ts,
            after_loss: false,
            nested: false,
            sys: None,
            values: None,
        });
    }

    /// One call of `func` and everything it calls.
    fn call(&mut self, tid: u32, func: u32, depth: u32) {
        self.emit(EventKind::Entry, tid, func, depth);
        if depth < 6 {
            let loops = 1 + (self.rand() % 3) as u32;
            for i in 0..loops {
                let callee = match func {
                    // fn_5 recurses a few levels.
                    5 if depth < 5 && i == 0 => 5,
                    _ => (func * 7 + i * 3 + 1) % FUNCTIONS,
                };
                if callee != func || func == 5 {
                    self.call(tid, callee, depth + 1);
                }
            }
        }
        self.emit(EventKind::Exit, tid, func, depth);
    }
}

fn record(path: &Path, events: u64) -> Result<u64> {
    let run = RunInfo {
        command: "./bench-app --work".into(),
        pid: 1000,
        ..RunInfo::default()
    };
    let mut writer = TraceWriter::create(path, &run, &table())?;
    let mut program = Program {
        rng: 0x9e37_79b9_7f4a_7c15,
        ts: 1_000_000,
        out: Vec::new(),
    };
    let mut written = 0;
    let mut burst = 0u32;
    while written < events {
        let tid = 1000 + burst % THREADS;
        burst += 1;
        let root = (program.rand() % u64::from(FUNCTIONS)) as u32;
        program.call(tid, root, 0);
        for ev in program.out.drain(..).take((events - written) as usize) {
            writer.write(&ev)?;
            written += 1;
        }
    }
    let end = RunInfo {
        end_mono_ns: program.ts + 1,
        ..run
    };
    Ok(writer.finish(&end)?.bytes)
}

fn report(path: &Path, format: Format) -> Result<u64> {
    let opts = ReportOptions::new(format);
    let reader = TraceReader::open(path).context("opening the bench trace")?;
    let sink = sink_for(format, &opts, Box::new(io::sink()));
    let status = replay_file(&reader, sink)?;
    Ok(status.events)
}

/// Resets VmHWM (Linux ≥ 4.0), so each phase reports its own peak.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    kb / 1024
}
