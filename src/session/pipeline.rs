//! The consumers' side of a run: what the reader delivers goes to the
//! output (the replay engine's sink, the recorder, or nothing in counting
//! mode), processes stopped for a late attach go to the code watch, and
//! functions over `--max-rate` are dropped from the probes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::{Receiver, select};
use nix::sys::signal::Signal;
use signal_hook::consts::SIGTERM;

use super::counted::Counted;
use super::progress::Progress;
use super::watch::CodeWatch;
use crate::aggregate::Stats;
use crate::bpf::Probes;
use crate::bpf::abi::{BpfCounts, SyscallCounts};
use crate::events::{Stop, StopReason, Streams};
use crate::model::{Event, FuncId, FuncTable, RunInfo};
use crate::plan::exit_policy;
use crate::ratelimit::RateLimit;
use crate::record::Recorder;
use crate::replay::Replay;
use crate::report::syscalls::SyscallStats;
use crate::symbols::ProbeSet;
use crate::target::{self, Exit, Launched, Stopped};
use crate::util::clock::mono_now_ns;

const TICK: Duration = Duration::from_millis(50);

/// How long a function over `--max-rate` stays muted before its probes go:
/// the calls open when it was muted end at their own returns meanwhile (a
/// call still open after that ends as not seen when its caller goes on).
const MUTED_NS: u64 = 1_000_000_000;

/// `--exit=auto`: how often the ret sites attached on demand are checked
/// for taking away, at first; each time they are taken away the wait
/// doubles, up to RETRACT_MAX_NS, so a program that keeps recursing deep
/// is not stopped over and over to attach them again. Every call of their
/// functions traps on them while they are there (Lua's 870-deep phases
/// last a few ms), so the first check comes soon: checking is one read of
/// BPF's `deep_threads`.
pub(super) const RETRACT_FIRST_NS: u64 = 1_000_000;
const RETRACT_MAX_NS: u64 = 10_000_000_000;

/// Where the events of a run go.
pub enum Output {
    /// Paired into calls and shown (live call graph, or a live aggregate).
    Calls(Replay),
    /// Stored raw in a trace file.
    Record(Recorder),
    /// Counted per function in BPF (events only for calls too deep for it):
    /// the summary at exit.
    Count(Box<Counted>),
    /// `--io` counted in BPF, no events streamed: the I/O table (or its
    /// chart) at exit.
    CountIo(Box<dyn crate::model::Sink>),
}

/// What the consumers' loop may ask of the probes while the run goes on.
pub(super) struct Control<'a, 'obj> {
    pub probes: &'a mut Probes<'obj>,
    pub watch: Option<&'a mut CodeWatch>,
    pub pid: u32,
    /// Every probe set attached, for the ret sites `--exit=auto` attaches
    /// on demand.
    pub exit_sites: Vec<ProbeSet>,
    /// Stops BPF asked for and this loop handled, per process.
    pub handled: HashMap<u32, u64>,
    /// Processes handled but held stopped: BPF asked to stop them again
    /// before they resumed, and that stop is not handled yet.
    pub held: Vec<Stopped>,
    /// Functions over `--max-rate` muted in BPF, and when their probes go.
    pub muted: Vec<(u64, Vec<FuncId>)>,
    /// When the ret sites attached on demand are next checked for taking
    /// away, and the wait after that.
    pub retract: (u64, u64),
}

impl Control<'_, '_> {
    /// A process BPF stopped: attach what it needs. It resumes when the
    /// stop is dropped, attached or not.
    fn stopped(&mut self, stop: Stop, table: &mut FuncTable) -> Result<()> {
        let done = self.handle(&stop, table);
        *self.handled.entry(stop.stopped.pid()).or_default() += 1;
        self.resume(stop.stopped)?;
        done
    }

    /// Lets `stopped` run again, unless BPF asked to stop it for something
    /// not handled yet: one SIGCONT ends every stop pending, and a thread
    /// waiting for its own would run on. Once all its threads are stopped
    /// no BPF program of it runs, so the count of requests is final.
    fn resume(&mut self, stopped: Stopped) -> Result<()> {
        let pid = stopped.pid();
        target::wait_stopped(pid);
        let handled = self.handled.get(&pid).copied().unwrap_or(0);
        if self.probes.stop_requests(pid)? > handled {
            self.held.push(stopped);
        } else {
            self.held.retain(|s| s.pid() != pid);
        }
        Ok(())
    }

    fn handle(&mut self, stop: &Stop, table: &mut FuncTable) -> Result<()> {
        match (stop.why, &mut self.watch) {
            (StopReason::Mapped, Some(watch)) => {
                watch.attach_new(&stop.stopped, self.probes, table, &mut self.exit_sites)
            }
            (StopReason::Mapped, None) => Ok(()),
            (StopReason::NeedExits(id), _) => {
                let links = exit_policy::on_demand_links(&self.exit_sites, id);
                self.probes.attach_exits(id, links, stop.stopped.pid())
            }
            (StopReason::NeedRets(id), _) => {
                let links = exit_policy::unchained_links(&self.exit_sites, id);
                self.probes.attach_rets(id, links, stop.stopped.pid())
            }
        }
    }

    /// Drops functions over `--max-rate`: muted in BPF now, their probes
    /// removed once the calls open now have had time to return
    /// ([`Control::unprobe_muted`]).
    fn exclude(&mut self, ids: &[FuncId]) -> Result<()> {
        // Library calls that these functions' exits would end get their
        // own return probes first.
        let returns = exit_policy::muted_caller_links(&self.exit_sites, ids);
        self.probes.attach_more(returns, self.pid)?;
        let unmuted = self.probes.mute(ids)?;
        let muted: Vec<FuncId> = ids
            .iter()
            .filter(|id| !unmuted.contains(id))
            .copied()
            .collect();
        if !muted.is_empty() {
            self.muted.push((mono_now_ns() + MUTED_NS, muted));
        }
        match unmuted.is_empty() {
            true => Ok(()),
            false => self.unprobe(&unmuted),
        }
    }

    /// `--exit=auto`: takes away the ret sites attached on demand once no
    /// thread recurses deep ([`Probes::retract_exits`]): a program past its
    /// deep recursion pays for hijacked returns again, not for a trap at
    /// every `ret` of every function that was ever called that deep.
    fn retract_exits(&mut self) -> Result<()> {
        let now = mono_now_ns();
        let (at, wait) = self.retract;
        if now < at || !self.probes.has_demanded_exits() {
            return Ok(());
        }
        self.retract.0 = now + wait;
        if self.probes.retract_exits()? > 0 {
            self.retract.1 = (wait * 2).min(RETRACT_MAX_NS);
        }
        Ok(())
    }

    /// Fires when the ret sites attached on demand are due to be checked
    /// ([`Control::retract_exits`], only from here), whether events come
    /// meanwhile or not; never while there are none.
    fn retract_due(&self) -> Receiver<Instant> {
        if !self.probes.has_demanded_exits() {
            return crossbeam_channel::never();
        }
        let wait = self.retract.0.saturating_sub(mono_now_ns());
        crossbeam_channel::at(Instant::now() + Duration::from_nanos(wait))
    }

    /// Removes the probes of the functions muted long enough ago.
    fn unprobe_muted(&mut self) -> Result<()> {
        if self.muted.is_empty() {
            return Ok(()); // the common case, checked after every batch
        }
        let now = mono_now_ns();
        let (due, waiting): (Vec<_>, Vec<_>) = self.muted.drain(..).partition(|(at, _)| *at <= now);
        self.muted = waiting;
        let ids: Vec<FuncId> = due.into_iter().flat_map(|(_, ids)| ids).collect();
        match ids.is_empty() {
            true => Ok(()),
            false => self.unprobe(&ids),
        }
    }

    /// Removes the probes of `ids`, with the process stopped so no call
    /// falls between the old links and the new ones.
    /// A process that ended meanwhile has no code left to relink: its
    /// `/proc/PID/exe` is gone, and that is no error.
    fn unprobe(&mut self, ids: &[FuncId]) -> Result<()> {
        let stopped = Stopped::stop(self.pid);
        let excluded = self.probes.exclude(ids);
        let excluded = match excluded {
            Err(_) if !target::alive(self.pid) => Ok(()),
            other => other,
        };
        match stopped {
            Some(stopped) => self.resume(stopped).and(excluded),
            None => excluded,
        }
    }
}

/// What ends a run: a signal to utrace, the command's exit (-c), or the
/// process's end (-p).
pub(super) struct Ends<'a> {
    pub signals: &'a Receiver<i32>,
    pub launched: Option<&'a Launched>,
    pub child_exit: Option<&'a Receiver<Exit>>,
    pub pid: u32,
}

pub(super) struct Pipeline {
    pub output: Output,
    pub table: FuncTable,
    pub run: RunInfo,
    /// Events that reached userspace.
    pub received: u64,
    /// `--max-rate`.
    pub rates: Option<RateLimit>,
    /// `--record` on a terminal, while the target runs.
    progress: Option<Progress>,
}

impl Pipeline {
    pub fn new(table: FuncTable, output: Output, run: RunInfo) -> Self {
        Pipeline {
            output,
            table,
            run,
            received: 0,
            rates: None,
            progress: None,
        }
    }

    /// Moves events through the consumers until the target is done;
    /// processes stopped at the loader's breakpoint, and functions over
    /// `--max-rate`, go to `control`.
    pub fn pump(&mut self, streams: &Streams, ends: &Ends, control: &mut Control) -> Result<Exit> {
        // From here the target runs: its first second is the line's.
        if matches!(self.output, Output::Record(_)) {
            self.progress = Progress::on_terminal(mono_now_ns());
        }
        let exit = self.pump_events(streams, ends, control);
        if let Some(progress) = &mut self.progress {
            progress.clear();
        }
        exit
    }

    fn pump_events(
        &mut self,
        streams: &Streams,
        ends: &Ends,
        control: &mut Control,
    ) -> Result<Exit> {
        let never = crossbeam_channel::never();
        let exited = ends.child_exit.unwrap_or(&never);
        let (signals, launched, pid) = (ends.signals, ends.launched, ends.pid);
        loop {
            let retract_due = control.retract_due();
            select! {
                recv(streams.stops) -> stop => if let Ok(stop) = stop {
                    let known = self.table.functions.len();
                    control.stopped(stop, &mut self.table)?;
                    if let Output::Record(rec) = &mut self.output
                        && self.table.functions.len() > known
                    {
                        rec.table_grew(&self.table)?;
                    }
                },
                recv(streams.events) -> events => match events {
                    Ok(events) => {
                        self.events(&events)?;
                        let over = self.rates.as_mut().map(RateLimit::take_new).unwrap_or_default();
                        if !over.is_empty() {
                            control.exclude(&over)?;
                        }
                        control.unprobe_muted()?;
                        self.show_progress(control)?;
                    }
                    Err(_) => anyhow::bail!("the ring buffer reader stopped unexpectedly"),
                },
                recv(retract_due) -> _ => control.retract_exits()?,
                recv(exited) -> exit => return Ok(exit.unwrap_or(Exit::Code(0))),
                recv(signals) -> sig => match launched {
                    // -c: the command decides how to react; we follow it out.
                    Some(l) => l.signal(Signal::try_from(sig.unwrap_or(SIGTERM)).unwrap_or(Signal::SIGTERM)),
                    // -p: detach and leave the process running.
                    None => return Ok(Exit::Code(0)),
                },
                default(TICK) => {
                    self.idle()?;
                    self.limit_counted(control)?;
                    control.unprobe_muted()?;
                    self.show_progress(control)?;
                    if launched.is_none() && !target::alive(pid) {
                        if let Some(progress) = &mut self.progress {
                            progress.clear();
                        }
                        eprintln!("utrace: process {pid} exited");
                        return Ok(Exit::Code(0));
                    }
                }
            }
        }
    }

    /// Rewrites the progress line once a second (the lost events are read
    /// from BPF then, not per batch).
    fn show_progress(&mut self, control: &mut Control) -> Result<()> {
        let now = mono_now_ns();
        match &mut self.progress {
            Some(progress) if progress.due(now) => {
                let lost = control.probes.drops()?.total();
                progress.show(now, self.received, lost);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub fn events(&mut self, events: &[Event]) -> Result<()> {
        self.received += events.len() as u64;
        if let Some(rates) = &mut self.rates {
            rates.count(events);
        }
        match &mut self.output {
            Output::Record(rec) => events.iter().try_for_each(|ev| rec.event(ev)),
            Output::Count(counted) => counted.events(events, &self.table),
            Output::CountIo(_) => Ok(()),
            Output::Calls(replay) => replay.feed(events, &self.table),
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
            .watched(&self.table)
            .into_iter()
            .map(|id| Ok((id, control.probes.counts(id)?.count)))
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
            Output::Count(_) | Output::CountIo(_) => Ok(()),
            Output::Calls(replay) => replay.idle(mono_now_ns(), &self.table),
        }
    }

    /// Ends every output: the recorder's trailer, the counted summary, or
    /// the replay's open calls and its sink.
    pub fn finish(self) -> Result<()> {
        if let Some(line) = self.rates.as_ref().and_then(|r| r.report(&self.table)) {
            eprintln!("{line}");
        }
        match self.output {
            Output::Record(rec) => rec.finish(&self.run).map(drop),
            Output::Count(counted) => counted.finish(&self.table, &self.run),
            Output::CountIo(mut sink) => sink.finish(&self.table, &self.run),
            Output::Calls(replay) => replay.finish(&self.table, &self.run),
        }
    }
}

pub(super) fn syscall_stats_of(raw: &SyscallCounts) -> SyscallStats {
    SyscallStats {
        calls: raw.count,
        errors: raw.errors,
        total_ns: raw.total_ns,
        min_ns: raw.min_ns,
        max_ns: raw.max_ns,
        bytes: raw.bytes,
    }
}

pub(super) fn stats_of(raw: &BpfCounts) -> Stats {
    Stats {
        calls: raw.count,
        total_ns: raw.total_ns,
        self_ns: raw.self_ns,
        min_ns: raw.min_ns,
        max_ns: raw.max_ns,
        sum_ns: raw.sum_ns,
        running: raw.running,
    }
}
