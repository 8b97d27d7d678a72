//! One traced run, from attach to the last event: load and attach the
//! probes, start (or hold) the target, move what the reader thread delivers
//! through the consumers until the target ends or the user stops it, then
//! pause BPF, resume every process stopped for us, drain everything still
//! pending, write the results, and detach (timed) last: the kernel can take
//! seconds for that. Whatever fails on the way, the pause and the resume
//! happen first and the detach happens.

mod counted;
mod pipeline;
mod progress;
mod watch;

use std::collections::HashMap;

use anyhow::{Context, Result};
use crossbeam_channel::Receiver;
use nix::sys::signal::Signal;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::bpf::abi::Drops;
use crate::bpf::{BpfConfig, ObjectStorage, Probes};
use crate::events::{self, Streams};
use crate::model::RunInfo;
use crate::options::{ExitMode, Target, TraceOptions};
use crate::plan::Plan;
use crate::plan::exit_policy;
use crate::target::{self, Exit, LaunchOptions, Launched};
use crate::util::clock::{mono_now_ns, unix_now_ns};
use crate::util::diag::warning;
use crate::util::fmt::plural;
use pipeline::{Control, Ends, Pipeline};
use watch::CodeWatch;

pub use counted::Counted;
pub use pipeline::Output;

/// How a run ended.
pub struct Outcome {
    /// The exit code utrace should end with: the command's, or 0 after -p.
    pub exit_code: i32,
}

/// Traces the target described by `opts` with the probes of `plan`.
pub fn run(opts: &TraceOptions, plan: Plan, output: Output) -> Result<Outcome> {
    let mut storage = ObjectStorage::uninit();
    let mut probes = Probes::load(&mut storage, bpf_config(opts, &plan, &output))?;
    probes.set_values(&plan.probes.table.values)?;
    // Forked before any thread of ours exists (see target::launch).
    let mut launched = launch(opts, &plan)?;
    let pid = launched
        .as_ref()
        .map_or(plan.pid.unwrap_or_default(), |l| l.pid);
    // After the fork, so the command runs at its own priority.
    keep_up_with_the_target();
    // Signals are caught from here on: Ctrl-C never leaves utrace half-attached.
    let signals = signal_channel()?;
    let (reader, streams) = events::spawn(probes.ring_buffer()?)?;
    let mut pipe = Pipeline::new(plan.probes.table.clone(), output, run_info(&plan, pid));
    pipe.rates = opts.max_rate.map(crate::ratelimit::RateLimit::new);
    let traced = trace(
        opts,
        &plan,
        &mut probes,
        &mut pipe,
        &streams,
        &signals,
        launched.as_mut(),
    );
    pipe.run.end_mono_ns = mono_now_ns();
    // Results first: BPF stops tracing now and the probes come down after
    // the results are out (the kernel can take seconds for that), on every
    // path. If pausing fails, detaching is what stops the tracing.
    let paused = probes.pause().is_ok();
    if !paused {
        detach(&mut probes);
    }
    let outcome = conclude(opts, &mut probes, pipe, reader, &streams, traced);
    if paused {
        detach(&mut probes);
    }
    outcome
}

/// The end of a run, once BPF traces nothing new: what is still queued or
/// in the ring buffer goes through the consumers, stopped processes
/// resume, and the results and closing lines are written.
fn conclude(
    opts: &TraceOptions,
    probes: &mut Probes,
    mut pipe: Pipeline,
    reader: events::Reader,
    streams: &Streams,
    traced: Result<Exit>,
) -> Result<Outcome> {
    flush_queues(probes);
    // What is still coming goes through the consumers as the reader drains
    // the ring buffer: waiting for it first could fill the channel.
    let mut fed = Ok(());
    let undecodable = reader.stop(|events| {
        if fed.is_ok() {
            fed = pipe.events(&events);
        }
    })?;
    // A process stopped at the loader's breakpoint as we detached (or while
    // the run failed) waits for a SIGCONT: dropping its guard sends it.
    streams.stops.try_iter().for_each(drop);
    let exit = traced?;
    fed?;
    for events in streams.events.iter() {
        pipe.events(&events)?;
    }
    let drops = probes.drops()?;
    pipe.run.lost_events = drops.total() + undecodable;
    if opts.io {
        pipe.run.io = probes.io_counts()?;
    }
    if let Output::Count(counted_out) = &mut pipe.output {
        let counted = pipe
            .table
            .ids()
            .map(|id| probes.counts(id).map(|c| pipeline::stats_of(&c)))
            .collect::<Result<Vec<_>>>()?;
        let mut syscalls = crate::report::syscalls::SyscallTotals::default();
        // One row per CPU: insert() sums them.
        for (caller, nr, c) in probes.syscall_counts()? {
            syscalls.insert((caller, nr), pipeline::syscall_stats_of(&c));
        }
        counted_out.load(counted, syscalls);
    }
    let received = pipe.received;
    pipe.finish()?;
    for line in loss_lines(drops, undecodable, received) {
        eprintln!("{line}");
    }
    if let (
        Target::Command(argv),
        Exit::Signal {
            signal,
            core_dumped,
        },
    ) = (&opts.target, exit)
    {
        eprintln!("{}", killed_line(&argv[0], signal, core_dumped));
    }
    Ok(Outcome {
        exit_code: exit.code(),
    })
}

/// The closing line for a command a signal ended (-c only: after -p the
/// process is not ours to wait for): "utrace: ./app killed by SIGSEGV (core dumped)".
fn killed_line(program: &str, signal: Signal, core_dumped: bool) -> String {
    let core = if core_dumped { " (core dumped)" } else { "" };
    format!("utrace: {program} killed by {}{core}", signal.as_str())
}

/// Attaches, lets the target go, and runs the consumers until it is done;
/// returns how the target ended (an exit code 0 after -p).
fn trace(
    opts: &TraceOptions,
    plan: &Plan,
    probes: &mut Probes,
    pipe: &mut Pipeline,
    streams: &Streams,
    signals: &Receiver<i32>,
    mut launched: Option<&mut Launched>,
) -> Result<Exit> {
    let pid = launched
        .as_ref()
        .map_or(plan.pid.unwrap_or_default(), |l| l.pid);
    let mut watch = attach(opts, plan, probes, pid, launched.is_some())?;
    let child_exit = match launched.as_mut() {
        Some(l) => {
            l.release()?;
            Some(wait_in_thread(l.pid)?)
        }
        None => None,
    };
    let mut control = Control {
        probes,
        watch: watch.as_mut(),
        pid,
        exit_sites: vec![plan.probes.clone()],
        handled: HashMap::new(),
        held: Vec::new(),
        muted: Vec::new(),
        retract: (0, pipeline::RETRACT_FIRST_NS),
    };
    let ends = Ends {
        signals,
        launched: launched.as_deref(),
        child_exit: child_exit.as_ref(),
        pid,
    };
    pipe.pump(streams, &ends, &mut control)
}

fn run_info(plan: &Plan, pid: u32) -> RunInfo {
    RunInfo {
        command: plan.command.clone(),
        pid,
        start_unix_ns: unix_now_ns(),
        start_mono_ns: mono_now_ns(),
        ..RunInfo::default()
    }
}

fn bpf_config(opts: &TraceOptions, plan: &Plan, output: &Output) -> BpfConfig {
    // A library dlopen loads later, or a program a child execs, may have
    // values to read.
    let follows = opts.follow_forks && matches!(opts.target, Target::Command(_));
    let late_values = !opts.values.is_empty() && (!opts.filter.nest_libs.is_empty() || follows);
    BpfConfig {
        max_depth: opts.max_depth,
        min_duration_ns: opts.min_duration_ns,
        ringbuf_bytes: opts.buffer_bytes,
        count_only: matches!(output, Output::Count(_) | Output::CountIo(_)),
        count_slots: plan.probes.table.functions.len() as u32,
        value_slots: plan.probes.table.functions.len() as u32
            + if late_values {
                crate::bpf::abi::LATE_VALUES_MAX
            } else {
                0
            },
        follow_forks: follows,
        repair_exits: opts.exit == ExitMode::Auto,
        trace_syscalls: opts.syscalls.is_some(),
        trace_io: opts.io,
        io_table_only: matches!(output, Output::CountIo(_)),
        rate_limited: opts.max_rate.is_some(),
        capture_values: !plan.probes.table.values.is_empty() || late_values,
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
) -> Result<Option<CodeWatch>> {
    // Following forks (-c only): the executable's probes drop the kernel's
    // pid filter and BPF keeps the followed processes. Libraries keep the
    // filter: tracing libc must never slow other processes.
    let follow = opts.follow_forks && launched;
    if launched {
        probes.start_at_exec(pid)?;
    }
    if follow {
        probes.follow(pid)?;
    }
    if let Some(set) = &opts.syscalls {
        probes.trace_syscalls(pid, set, !launched)?;
    }
    if opts.io {
        probes.trace_io()?;
        // What --io sees, and why no more: a VFS layer needs fentry.
        let vfs = match crate::bpf::fentry_works() {
            Ok(()) => "fentry works here, but utrace has no VFS layer".to_string(),
            Err(why) => format!("no VFS layer: the kernel refuses fentry ({why})"),
        };
        eprintln!("utrace: --io sees the page cache, writeback and block tracepoints; {vfs}");
    }
    let exe = plan.exe.as_path();
    for line in exit_policy::unwind_warnings(&plan.modules, &plan.probes, opts.exit) {
        warning!("{line}");
    }
    let links = exit_policy::links(&plan.probes, opts.exit);
    probes.attach_all(links, |path| (!(follow && path == exe)).then_some(pid))?;
    probes.attach_all(exit_policy::helper_links(&plan.helpers), |_| Some(pid))?;
    let watch = CodeWatch::new(plan, opts, pid, follow.then_some(exe))?;
    if let Some(watch) = &watch {
        watch.attach(probes, pid)?;
    }
    let modules = plan.probes.table.modules.len();
    let detach_hint = if launched { "" } else { " (Ctrl-C detaches)" };
    // The I/O table alone takes no system call: it says what it does see.
    let kernel = if opts.io && probes.io_table_only() {
        Some("I/O")
    } else {
        opts.syscalls.as_ref().map(|_| "system calls")
    };
    if opts.syscalls_only {
        let kernel = kernel.unwrap_or("system calls");
        eprintln!("utrace: attached to the {kernel} of pid {pid}{detach_hint}");
    } else {
        let also = kernel.map(|k| format!(" and its {k}")).unwrap_or_default();
        eprintln!(
            "utrace: attached {} probes in {modules} module{} to pid {pid}{also}{detach_hint}",
            probes.probe_count(),
            plural(modules as u64)
        );
    }
    Ok(watch)
}

/// Sends what threads still queue (after -p the process runs on).
fn flush_queues(probes: &Probes) {
    if let Err(e) = probes.flush_queues() {
        warning!("{e:#}: calls threads made just before the end may be missing");
    }
}

/// Removes every probe; timed, on stderr.
fn detach(probes: &mut Probes) {
    if let Some(line) = probes.demanded_exits() {
        eprintln!("utrace: {line}");
    }
    let took = probes.detach();
    match probes.probe_count() {
        0 => eprintln!("utrace: detached in {} ms", took.as_millis()),
        n => eprintln!("utrace: detached {n} probes in {} ms", took.as_millis()),
    }
}

/// The closing lines for what BPF or the reader could not deliver, each
/// with its own cause and way out.
fn loss_lines(drops: Drops, undecodable: u64, received: u64) -> Vec<String> {
    let mut lines = Vec::new();
    if drops.ring_full > 0 {
        let (lost, total) = (drops.ring_full, drops.ring_full + received);
        lines.push(format!(
            "utrace: lost {lost} of {total} events (the ring buffer was full: raise --buffer-size, \
             narrow the selection with -f, or use --time-filter)"
        ));
    }
    if drops.no_state > 0 {
        lines.push(format!(
            "utrace: {} call{} not traced: BPF could not create their thread's state (the kernel \
             was short of memory, or another BPF program held the task storage): free memory or \
             stop other BPF tracers and run again",
            drops.no_state,
            if drops.no_state == 1 {
                " was"
            } else {
                "s were"
            }
        ));
    }
    if drops.unfiltered > 0 {
        lines.push(format!(
            "utrace: {} call{} nested deeper than {} frames left out: BPF cannot apply \
             --time-filter that deep (record without it and filter with --report --time-filter)",
            drops.unfiltered,
            plural(drops.unfiltered),
            crate::bpf::abi::MAX_FRAMES,
        ));
    }
    if drops.uncounted > 0 {
        lines.push(format!(
            "utrace: {} call{} not counted: more than {} functions loaded after the start were \
             called (record with --record and count with --report --format=summary)",
            drops.uncounted,
            plural(drops.uncounted),
            crate::bpf::abi::LATE_COUNTS_MAX,
        ));
    }
    if drops.too_deep > 0 {
        lines.push(format!(
            "utrace: {} library call{} nested deeper than {} frames left out: only the frame of \
             their caller, which BPF does not keep that deep, would end them (--exit=session \
             traces them, where nothing unwinds through the program)",
            drops.too_deep,
            plural(drops.too_deep),
            crate::bpf::abi::MAX_FRAMES,
        ));
    }
    if undecodable > 0 {
        lines.push(format!(
            "utrace: {undecodable} events could not be decoded (the BPF object and utrace disagree \
             on the event layout: rebuild utrace)"
        ));
    }
    lines
}

/// How much more CPU time than a thread of the traced program utrace's
/// threads ask for (nice -10 weighs about ten times nice 0).
const NICE: i32 = -10;

/// Raises this thread's priority, and so that of the threads it starts:
/// the reader and the consumers must drain the ring buffer as fast as the
/// traced threads fill it, and a program with more busy threads than CPUs
/// would otherwise leave them a share too small (64 threads on 2 CPUs,
/// beside another test, overran 16M). Best effort: without CAP_SYS_NICE
/// utrace runs as it is.
fn keep_up_with_the_target() {
    // SAFETY: setpriority only changes the calling thread's nice value
    // (Linux: PRIO_PROCESS with who 0 is the calling thread).
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
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

/// Reaps the command on a thread of its own; how it ended arrives on the channel.
fn wait_in_thread(pid: u32) -> Result<Receiver<Exit>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("utrace-wait".into())
        .spawn(move || {
            let _ = tx.send(target::wait_pid(pid).unwrap_or(Exit::Code(1)));
        })
        .context("starting the wait thread")?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_death_is_named_with_its_core_dump() {
        assert_eq!(
            killed_line("./app", Signal::SIGSEGV, true),
            "utrace: ./app killed by SIGSEGV (core dumped)"
        );
        assert_eq!(
            killed_line("./app", Signal::SIGINT, false),
            "utrace: ./app killed by SIGINT"
        );
        let segv = Exit::Signal {
            signal: Signal::SIGSEGV,
            core_dumped: true,
        };
        assert_eq!((segv.code(), Exit::Code(3).code()), (139, 3));
    }

    #[test]
    fn each_kind_of_loss_names_its_own_remedy() {
        let ring = Drops {
            ring_full: 5,
            ..Drops::default()
        };
        assert_eq!(
            loss_lines(ring, 0, 95),
            [
                "utrace: lost 5 of 100 events (the ring buffer was full: raise --buffer-size, \
              narrow the selection with -f, or use --time-filter)"
            ]
        );
        let state = Drops {
            no_state: 3,
            ..Drops::default()
        };
        let deep = Drops {
            unfiltered: 2,
            ..Drops::default()
        };
        assert_eq!(
            loss_lines(deep, 0, 95),
            [
                "utrace: 2 calls nested deeper than 1024 frames left out: BPF cannot apply \
                 --time-filter that deep (record without it and filter with --report --time-filter)"
            ]
        );
        let lines = loss_lines(state, 0, 95);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with(
                "utrace: 3 calls were not traced: BPF could not create their thread's state"
            ),
            "{lines:?}"
        );
        assert!(!lines[0].contains("--buffer-size"), "{lines:?}");
        assert!(lines[0].ends_with("stop other BPF tracers and run again"));
        let late = Drops {
            uncounted: 1,
            ..Drops::default()
        };
        assert_eq!(
            loss_lines(late, 0, 0),
            [
                "utrace: 1 call not counted: more than 65536 functions loaded after the start were \
                 called (record with --record and count with --report --format=summary)"
            ]
        );
        assert_eq!(
            loss_lines(Drops::default(), 2, 10),
            [
                "utrace: 2 events could not be decoded (the BPF object and utrace disagree on the \
              event layout: rebuild utrace)"
            ]
        );
        assert!(loss_lines(Drops::default(), 0, 10).is_empty());
    }
}
