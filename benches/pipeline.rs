//! Userspace headroom (issue 5 §6): synthetic events through the real
//! consumers, one thread, to show userspace is never the bottleneck
//! (target: ≥ 5 million events/s on one core, peak RSS < 100 MB for a
//! 10-million-event live session).
//!
//! Events come in 64 Ki batches, as the reader thread hands them over, and
//! only the consumers' time is counted (making the batch is not). Each stage
//! reports its own peak RSS: VmHWM is reset between stages.
//!
//! Knobs: UTRACE_BENCH_EVENTS (default 10,000,000), UTRACE_BENCH_RUNS
//! (default 5, the median is reported).
//! Run: `cargo bench --bench pipeline` (no root needed).

#[path = "common/mod.rs"]
mod common;

use std::io::{self, BufWriter};
use std::time::{Duration, Instant};

use anyhow::Result;
use utrace::model::{
    Call, Event, EventKind, FuncId, FuncKind, FuncTable, Function, Module, RunInfo, Sink,
    SyscallCall,
};
use utrace::options::{Format, Layout, ReportOptions};
use utrace::record::Recorder;
use utrace::replay::Replay;
use utrace::report::{self, call_graph::CallGraph};

const BATCH: usize = 64 * 1024;
const THREADS: u32 = 4;
/// Threads interleave in runs this long, like records from per-CPU producers.
const RUN: u64 = 256;
/// Distinct ids per role below, so aggregators see 1 + 4 × VARIANTS functions.
const VARIANTS: u32 = 16;
/// One unit of a thread's work under its main(): (kind, role, depth).
/// Roles 0..4 are parse, lex, eval, add; main is function 0 at depth 0.
const UNIT: [(EventKind, u32, u32); 12] = {
    use EventKind::{Entry as E, Exit as X};
    [
        (E, 0, 1),
        (E, 1, 2),
        (X, 1, 2),
        (E, 1, 2),
        (X, 1, 2),
        (E, 1, 2),
        (X, 1, 2),
        (X, 0, 1),
        (E, 2, 1),
        (E, 3, 2),
        (X, 3, 2),
        (X, 2, 1),
    ]
};

/// An endless, deterministic event stream shaped like a real trace; gaps and
/// function variants are pseudo-random so the recorder cannot compress a
/// pattern real traces do not have.
struct Gen {
    /// Per thread: events emitted (0 = main's entry not sent yet), and the
    /// variant its current unit uses.
    pos: Vec<u64>,
    variant: Vec<u32>,
    seq: u64,
    ts: u64,
    rng: u64,
}

impl Gen {
    fn new() -> Self {
        let n = THREADS as usize;
        Gen {
            pos: vec![0; n],
            variant: vec![0; n],
            seq: 0,
            ts: 1_000_000_000,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// xorshift64: cheap next to the consumers, and not counted anyway.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn next(&mut self) -> Event {
        let t = ((self.seq / RUN) % u64::from(THREADS)) as usize;
        self.seq += 1;
        self.ts += 40 + self.random() % 360; // 40–400 ns apart
        let p = self.pos[t];
        self.pos[t] += 1;
        let (kind, func, depth) = if p == 0 {
            (EventKind::Entry, 0, 0)
        } else {
            let step = ((p - 1) % UNIT.len() as u64) as usize;
            if step == 0 {
                self.variant[t] = (self.random() % u64::from(VARIANTS)) as u32;
            }
            let (kind, role, depth) = UNIT[step];
            (kind, 1 + role + 4 * self.variant[t], depth)
        };
        Event {
            kind,
            pid: 1000,
            tid: 1000 + t as u32,
            func: FuncId(func),
            depth,
            ts: self.ts,
            after_loss: false,
            nested: false,
            sys: None,
            values: None,
        }
    }

    fn fill(&mut self, batch: &mut Vec<Event>, n: usize) {
        batch.clear();
        batch.extend((0..n).map(|_| self.next()));
    }
}

fn table() -> FuncTable {
    let roles = ["parse", "lex", "eval", "add"];
    let mut names = vec!["main".to_string()];
    names.extend((0..VARIANTS).flat_map(|v| roles.iter().map(move |r| format!("app::{r}_{v}"))));
    let functions = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| Function {
            module: 0,
            raw_name: name.clone(),
            name,
            addr: 0x1000 + 0x40 * i as u64,
            size: 0x40,
            kind: FuncKind::Function,
            library: None,
            source: None,
        })
        .collect();
    FuncTable {
        modules: vec![Module {
            path: "/usr/bin/app".into(),
            build_id: None,
        }],
        functions,
        values: Default::default(),
    }
}

/// What a stage does with the events: pair them into a sink, or record them.
trait Consumer {
    fn feed(&mut self, batch: &[Event]) -> Result<()>;
    fn finish(self: Box<Self>, end_ts: u64) -> Result<()>;
}

/// The live path: the replay engine pairing into a sink, as a session drives it.
struct Paired {
    replay: Replay,
    table: FuncTable,
}

impl Consumer for Paired {
    fn feed(&mut self, batch: &[Event]) -> Result<()> {
        self.replay.feed(batch, &self.table)
    }

    fn finish(self: Box<Self>, end_ts: u64) -> Result<()> {
        let run = RunInfo {
            end_mono_ns: end_ts,
            ..RunInfo::default()
        };
        self.replay.finish(&self.table, &run)
    }
}

/// Pairing alone: the floor under every live sink.
struct Discard;

impl Sink for Discard {
    fn call(&mut self, _: &Call, _: &FuncTable) -> Result<()> {
        Ok(())
    }
    fn syscall(&mut self, _: &SyscallCall, _: &FuncTable) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self, _: &FuncTable, _: &RunInfo) -> Result<()> {
        Ok(())
    }
}

impl Consumer for Recorder {
    fn feed(&mut self, batch: &[Event]) -> Result<()> {
        batch.iter().try_for_each(|ev| self.event(ev))
    }

    fn finish(self: Box<Self>, _: u64) -> Result<()> {
        (*self).finish(&RunInfo::default()).map(|_| ())
    }
}

/// Feeds `events` generated events to `consumer`; returns the consumer's time
/// (making the batches is not counted) and the peak RSS since the last reset.
fn run(events: usize, mut consumer: Box<dyn Consumer>) -> Result<(Duration, u64)> {
    let mut events_in = Gen::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut busy = Duration::ZERO;
    let mut left = events;
    while left > 0 {
        events_in.fill(&mut batch, left.min(BATCH));
        left -= batch.len();
        let t = Instant::now();
        consumer.feed(&batch)?;
        busy += t.elapsed();
    }
    let t = Instant::now();
    consumer.finish(events_in.ts)?;
    busy += t.elapsed();
    Ok((busy, common::peak_rss_kib()))
}

fn sink_out() -> Box<dyn io::Write> {
    Box::new(BufWriter::new(io::sink()))
}

type Make<'a> = Box<dyn Fn() -> Result<Box<dyn Consumer>> + 'a>;

fn main() -> Result<()> {
    let events = common::env_usize("UTRACE_BENCH_EVENTS", 10_000_000);
    let runs = common::env_usize("UTRACE_BENCH_RUNS", 5).max(1);
    let layout = Layout::default();
    let opts = ReportOptions::new(Format::Summary);
    let data = common::fixture_dir().join("pipeline.utrace.data");
    let paired = |sink: Box<dyn Sink>| {
        Box::new(Paired {
            replay: Replay::new(sink),
            table: table(),
        })
    };
    println!(
        "pipeline: {} events, {THREADS} threads, median of {runs}; {}",
        common::thousands(events as u64),
        common::host_line()
    );

    // Each stage builds its consumer after the reset, so its peak RSS is its own.
    let stages: Vec<(&str, Make)> = vec![
        (
            "CallStacks (pairing only)",
            Box::new(|| Ok(paired(Box::new(Discard)) as _)),
        ),
        (
            "CallStacks + CallGraph → sink",
            Box::new(|| Ok(paired(Box::new(CallGraph::new(sink_out(), layout))) as _)),
        ),
        (
            "CallStacks + summary → sink",
            Box::new(|| Ok(paired(report::sink_for(Format::Summary, &opts, sink_out())) as _)),
        ),
        (
            "Recorder → trace file",
            Box::new(|| Ok(Box::new(Recorder::new(&data, &RunInfo::default(), &table())?) as _)),
        ),
    ];
    // Stages take turns, `runs` rounds, so load on this shared machine hits them alike.
    let mut secs = vec![Vec::new(); stages.len()];
    let mut peak = vec![0u64; stages.len()];
    for _ in 0..runs {
        for (i, (name, make)) in stages.iter().enumerate() {
            common::reset_peak_rss();
            let (busy, kib) = run(events, make()?)?;
            eprintln!("pipeline: {name:<32} {:.2} s", busy.as_secs_f64());
            secs[i].push(busy.as_secs_f64());
            peak[i] = peak[i].max(kib);
        }
    }
    let size = std::fs::metadata(&data).map_or(0, |m| m.len());
    let _ = std::fs::remove_file(&data);

    let mut rows = vec![
        ["consumer", "events/s", "ns/event", "peak RSS MB"]
            .map(String::from)
            .to_vec(),
    ];
    for (i, (name, _)) in stages.iter().enumerate() {
        let t = common::median(&secs[i]).unwrap_or(f64::NAN);
        rows.push(vec![
            name.to_string(),
            format!("{:.1} M", events as f64 / t / 1e6),
            format!("{:.0}", t * 1e9 / events as f64),
            format!("{:.0}", peak[i] as f64 / 1024.0),
        ]);
    }
    println!(
        "\nconsumer time only (median), one thread; peak RSS = the bench's VmHWM, reset before each stage"
    );
    common::print_table(&rows, true);
    println!(
        "\ntrace file for {} events: {:.1} MB",
        common::thousands(events as u64),
        size as f64 / 1e6
    );
    Ok(())
}
