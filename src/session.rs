//! One traced run, from attach to the last event: load and attach the
//! probes, start (or hold) the target, move batches from the reader thread
//! through the consumers until the target ends or the user stops it, then
//! detach (timed) and drain everything still pending.

use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, select};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::aggregate::Stats;
use crate::callstack::CallStacks;
use crate::cli::{Target, TraceOptions};
use crate::events::{self, Streams};
use crate::loader::Loader;
use crate::model::{Event, FuncTable, RunInfo, Sink};
use crate::plan::Plan;
use crate::probe::{BpfConfig, ObjectStorage, Probes, RawStats};
use crate::ratelimit::RateLimit;
use crate::record::Recorder;
use crate::report::summary::Summary;
use crate::target::{self, LaunchOptions, Launched};

const TICK: Duration = Duration::from_millis(50);

/// Where the events of a run go.
pub enum Output {
    /// Paired into calls and shown (live call graph, or a live aggregate).
    Calls(Box<dyn Sink>),
    /// Stored raw in a trace file.
    Record(Recorder),
    /// Counted per function in BPF, no events streamed: the summary at exit.
    Count(Box<Summary>),
}

/// How a run ended.
pub struct Outcome {
    /// The exit code utrace should end with: the command's, or 0 after -p.
    pub exit_code: i32,
}

/// Traces the target described by `opts` with the probes of `plan`.
pub fn run(opts: &TraceOptions, plan: Plan, output: Output) -> Result<Outcome> {
    let mut storage = ObjectStorage::uninit();
    let mut probes = Probes::load(&mut storage, bpf_config(opts, &plan, &output))?;
    let mut launched = launch(opts, &plan)?;
    let pid = launched
        .as_ref()
        .map_or(plan.pid.unwrap_or_default(), |l| l.pid);
    // Signals are caught from here on: Ctrl-C never leaves utrace half-attached.
    let signals = signal_channel()?;
    let mut loader = attach(opts, &plan, &mut probes, pid, launched.is_some())?;
    let (reader, streams) = events::spawn(probes.ring_buffer()?)?;
    let run = RunInfo {
        command: plan.command.clone(),
        pid,
        start_unix_ns: unix_now_ns(),
        start_mono_ns: mono_now_ns(),
        ..RunInfo::default()
    };
    let mut pipe = Pipeline::new(plan.probes.table, output, run);
    pipe.rates = opts.max_rate.map(RateLimit::new);
    let child_exit = match launched.as_mut() {
        Some(l) => {
            l.release()?;
            Some(wait_in_thread(l.pid)?)
        }
        None => None,
    };
    let mut control = Control {
        probes: &mut probes,
        loader: loader.as_mut(),
        pid,
    };
    let ends = Ends {
        signals: &signals,
        launched: launched.as_ref(),
        child_exit: child_exit.as_ref(),
        pid,
    };
    let exit_code = pipe.pump(&streams, &ends, &mut control)?;
    let took = probes.detach();
    if let Err(e) = probes.flush_queues() {
        eprintln!(
            "utrace: warning: {e:#}: calls threads made just before the detach may be missing"
        );
    }
    eprintln!(
        "utrace: detached {} probes in {} ms",
        probes.probe_count(),
        took.as_millis()
    );
    let undecodable = reader.stop()?;
    // A process that hit the loader's breakpoint as we detached waits for
    // a SIGCONT nobody else will send.
    for stopped in streams.loads.try_iter() {
        let _ = kill(Pid::from_raw(stopped as i32), Signal::SIGCONT);
    }
    for batch in streams.batches.iter() {
        pipe.batch(&batch)?;
    }
    pipe.run.lost_events = probes.lost_events()? + undecodable;
    if let Output::Count(summary) = &mut pipe.output {
        let counted = probes.stats(pipe.table.functions.len() as u32)?;
        summary.load_counted(counted.iter().map(stats_of).collect());
    }
    pipe.finish()?;
    Ok(Outcome { exit_code })
}

fn bpf_config(opts: &TraceOptions, plan: &Plan, output: &Output) -> BpfConfig {
    BpfConfig {
        max_depth: opts.max_depth,
        min_duration_ns: opts.min_duration_ns,
        ringbuf_bytes: opts.buffer_bytes,
        exit: opts.exit,
        count_only: matches!(output, Output::Count(_)),
        stats_slots: plan.probes.table.functions.len() as u32,
        follow_forks: opts.follow_forks && matches!(opts.target, Target::Command(_)),
    }
}

/// `-c`: the command, forked and held before exec.
fn launch(opts: &TraceOptions, plan: &Plan) -> Result<Option<Launched>> {
    let Target::Command(argv) = &opts.target else {
        return Ok(None);
    };
    let how = LaunchOptions {
        user: opts.user.as_deref(),
        no_randomize_addr: opts.no_randomize_addr,
    };
    Ok(Some(target::launch(&plan.exe, argv, &how)?))
}

/// Attaches every probe of `plan` to `pid`; returns the watch for code
/// mapped later (dlopen, exec), if one is needed.
fn attach(
    opts: &TraceOptions,
    plan: &Plan,
    probes: &mut Probes,
    pid: u32,
    launched: bool,
) -> Result<Option<Loader>> {
    // Following forks (-c only): the executable's probes drop the kernel's
    // pid filter and BPF keeps the followed processes. Libraries keep the
    // filter: tracing libc must never slow other processes.
    let follow = opts.follow_forks && launched;
    if follow {
        probes.follow(pid)?;
    }
    let exe = plan.exe.as_path();
    probes.attach_plan(&plan.probes, opts.exit, |list| {
        (!(follow && list.path == exe)).then_some(pid)
    })?;
    let loader = Loader::new(plan, opts, pid, follow.then_some(exe))?;
    if let Some(loader) = &loader {
        loader.attach(probes, pid)?;
    }
    let modules = plan.probes.table.modules.len();
    let detach_hint = if launched { "" } else { " (Ctrl-C detaches)" };
    let s = if modules == 1 { "" } else { "s" };
    eprintln!(
        "utrace: attached {} probes in {modules} module{s} to pid {pid}{detach_hint}",
        probes.probe_count()
    );
    Ok(loader)
}

/// What the consumers' loop may ask of the probes while the run goes on.
struct Control<'a, 'obj> {
    probes: &'a mut Probes<'obj>,
    loader: Option<&'a mut Loader>,
    pid: u32,
}

impl Control<'_, '_> {
    /// Process `pid` stopped at the loader's breakpoint (or an exec).
    fn loaded(&mut self, pid: u32, table: &mut FuncTable) -> Result<()> {
        match &mut self.loader {
            Some(loader) => loader.resume(pid, self.probes, table),
            None => Ok(()),
        }
    }

    /// Drops functions over `--max-rate`, with the process stopped so no
    /// call falls between the old links and the new ones.
    fn exclude(&mut self, ids: &[u32]) -> Result<()> {
        let pid = Pid::from_raw(self.pid as i32);
        let stopped = kill(pid, Signal::SIGSTOP).is_ok() && target::wait_stopped(self.pid);
        let result = self.probes.exclude(ids);
        if stopped {
            let _ = kill(pid, Signal::SIGCONT);
        }
        result
    }
}

/// What ends a run: a signal to utrace, the command's exit (-c), or the
/// process's end (-p).
struct Ends<'a> {
    signals: &'a Receiver<i32>,
    launched: Option<&'a Launched>,
    child_exit: Option<&'a Receiver<i32>>,
    pid: u32,
}

struct Pipeline {
    stacks: CallStacks,
    output: Output,
    table: FuncTable,
    run: RunInfo,
    last_ts: u64,
    /// Events that reached userspace.
    received: u64,
    /// `--max-rate`.
    rates: Option<RateLimit>,
    /// Set when stdout went away (`utrace … | head`): stop writing, keep tracing quietly.
    output_closed: bool,
}

impl Pipeline {
    fn new(table: FuncTable, output: Output, run: RunInfo) -> Self {
        Pipeline {
            stacks: CallStacks::new(),
            output,
            table,
            run,
            last_ts: 0,
            received: 0,
            rates: None,
            output_closed: false,
        }
    }

    /// Moves batches through the consumers until the target is done;
    /// processes stopped at the loader's breakpoint, and functions over
    /// `--max-rate`, go to `control`.
    fn pump(&mut self, streams: &Streams, ends: &Ends, control: &mut Control) -> Result<i32> {
        let never = crossbeam_channel::never();
        let exited = ends.child_exit.unwrap_or(&never);
        let (signals, launched, pid) = (ends.signals, ends.launched, ends.pid);
        loop {
            select! {
                recv(streams.loads) -> stopped => if let Ok(stopped) = stopped {
                    let known = self.table.functions.len();
                    control.loaded(stopped, &mut self.table)?;
                    if let Output::Record(rec) = &mut self.output
                        && self.table.functions.len() > known
                    {
                        rec.table_grew(&self.table)?;
                    }
                },
                recv(streams.batches) -> batch => match batch {
                    Ok(batch) => {
                        self.batch(&batch)?;
                        let over = self.rates.as_mut().map(RateLimit::take_new).unwrap_or_default();
                        if !over.is_empty() {
                            control.exclude(&over)?;
                        }
                    }
                    Err(_) => anyhow::bail!("the ring buffer reader stopped unexpectedly"),
                },
                recv(exited) -> code => return Ok(code.unwrap_or(0)),
                recv(signals) -> sig => match launched {
                    // -c: the command decides how to react; we follow it out.
                    Some(l) => l.signal(Signal::try_from(sig.unwrap_or(SIGTERM)).unwrap_or(Signal::SIGTERM)),
                    // -p: detach and leave the process running.
                    None => return Ok(0),
                },
                default(TICK) => {
                    self.idle()?;
                    self.limit_counted(control)?;
                    if launched.is_none() && !target::alive(pid) {
                        eprintln!("utrace: process {pid} exited");
                        return Ok(0);
                    }
                }
            }
        }
    }

    fn batch(&mut self, batch: &[Event]) -> Result<()> {
        let Some(last) = batch.last() else {
            return Ok(());
        };
        self.last_ts = self.last_ts.max(last.ts);
        self.received += batch.len() as u64;
        if let Some(rates) = &mut self.rates {
            rates.count(batch);
        }
        match &mut self.output {
            Output::Record(rec) => batch.iter().try_for_each(|ev| rec.event(ev)),
            Output::Count(_) => Ok(()),
            Output::Calls(sink) => {
                if self.output_closed {
                    return Ok(());
                }
                let mut result = Ok(());
                let table = &self.table;
                for ev in batch {
                    self.stacks.push(ev, &mut |call| {
                        if result.is_ok() {
                            result = sink.call(call, table);
                        }
                    });
                }
                self.check_output(result)
            }
        }
    }

    /// Counting mode streams no events to rate: `--max-rate` reads BPF's
    /// call counts instead, once a second.
    fn limit_counted(&mut self, control: &mut Control) -> Result<()> {
        let (Output::Count(_), Some(rates)) = (&self.output, &mut self.rates) else {
            return Ok(());
        };
        let now = mono_now_ns();
        if !rates.due(now) {
            return Ok(());
        }
        let totals = rates
            .watched(self.table.functions.len() as u32)
            .into_iter()
            .map(|id| Ok((id, control.probes.stat(id)?.count)))
            .collect::<Result<Vec<_>>>()?;
        rates.sample(now, &totals);
        let over = rates.take_new();
        if over.is_empty() {
            Ok(())
        } else {
            control.exclude(&over)
        }
    }

    fn idle(&mut self) -> Result<()> {
        match &mut self.output {
            // Flushing the open chunk keeps a crash from losing what came before.
            Output::Record(rec) => rec.idle(),
            Output::Count(_) => Ok(()),
            Output::Calls(_) if self.output_closed => Ok(()),
            Output::Calls(sink) => {
                let result = sink.idle(mono_now_ns(), &self.table);
                self.check_output(result)
            }
        }
    }

    /// A closed stdout ends the output quietly; any other error is real.
    fn check_output(&mut self, result: Result<()>) -> Result<()> {
        match result {
            Err(e) if is_broken_pipe(&e) => {
                self.output_closed = true;
                Ok(())
            }
            other => other,
        }
    }

    fn finish(mut self) -> Result<()> {
        self.run.end_mono_ns = mono_now_ns();
        if let Some(line) = self.rates.as_ref().and_then(|r| r.report(&self.table)) {
            eprintln!("{line}");
        }
        let lost = self.run.lost_events;
        match self.output {
            Output::Record(rec) => {
                rec.finish(&self.run)?;
            }
            Output::Count(mut summary) => summary.finish(&self.table, &self.run)?,
            Output::Calls(mut sink) => {
                let end = self.last_ts.max(self.run.start_mono_ns);
                let mut result = Ok(());
                let table = &self.table;
                self.stacks.finish(end, &mut |call| {
                    if result.is_ok() {
                        result = sink.call(call, table);
                    }
                });
                if !self.output_closed {
                    let finished = result.and_then(|()| sink.finish(&self.table, &self.run));
                    if let Err(e) = finished
                        && !is_broken_pipe(&e)
                    {
                        return Err(e);
                    }
                }
            }
        }
        if let Some(note) = self.stacks.loss_note() {
            eprintln!("{note}");
        }
        if lost > 0 {
            let total = lost + self.received;
            eprintln!(
                "utrace: lost {lost} of {total} events (the ring buffer was full: raise --buffer-size, \
                 narrow the selection with -f, or use --time-filter)"
            );
        }
        Ok(())
    }
}

fn stats_of(raw: &RawStats) -> Stats {
    Stats {
        calls: raw.count,
        total_ns: raw.total_ns,
        self_ns: raw.self_ns,
        min_ns: raw.min_ns,
        max_ns: raw.max_ns,
    }
}

pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// SIGINT and SIGTERM arrive on a channel instead of killing utrace.
fn signal_channel() -> Result<Receiver<i32>> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing signal handlers")?;
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("utrace-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(rx)
}

/// Reaps the command on a thread of its own; its exit code arrives on the channel.
fn wait_in_thread(pid: u32) -> Result<Receiver<i32>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("utrace-wait".into())
        .spawn(move || {
            let _ = tx.send(target::wait_pid(pid).unwrap_or(1));
        })
        .context("starting the wait thread")?;
    Ok(rx)
}

pub fn mono_now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |ts| {
        ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
    })
}

pub fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
