//! The BPF side from userspace, mechanism only: open the skeleton, set its
//! read-only configuration, load, attach the uprobe_multi links the exit
//! policy (plan::exit_policy) asks for, read the maps, detach (timed). What
//! to attach is decided elsewhere; `abi` holds the interface with the BPF C,
//! `sites` what a ret site's cookie says of its instruction, `kernel_events`
//! the syscall and I/O tracepoints.

pub(crate) mod abi;
mod kernel_events;
mod sites;
pub(crate) mod values;

pub use kernel_events::fentry_works;

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{ErrorKind, Link, MapCore, MapFlags, MapHandle, OpenObject, UprobeMultiOpts};

use crate::model::FuncId;
use crate::plan::exit_policy::{LinkSpec, ProbeKind};
use abi::{
    BpfCounts, COOKIE_AT_CALL, COOKIE_CHAIN, COOKIE_RET_SITE, COOKIE_SHORT, COOKIE_WITH_CALLER,
    Drops, EXITS_ATTACHED, EXITS_RETS_ATTACHED, MAX_SENT_DEPTH, UtraceSkel, UtraceSkelBuilder,
    helper_cookie,
};

/// A detach slower than this says on stderr that it is under way.
const SLOW_DETACH: Duration = Duration::from_secs(1);

/// Storage the loaded BPF object lives in; create it before [`Probes::load`].
pub type ObjectStorage = MaybeUninit<OpenObject>;

/// What BPF does with each call, set before load.
#[derive(Debug, Clone, Copy)]
pub struct BpfConfig {
    pub max_depth: Option<u32>,
    pub min_duration_ns: u64,
    pub ringbuf_bytes: u32,
    /// Aggregate per function in BPF and send no events (`count_slots` ids).
    pub count_only: bool,
    pub count_slots: u32,
    /// -A/-R: ids BPF's table of value specs holds (the start's, and room
    /// for a library dlopen loads later).
    pub value_slots: u32,
    /// Trace the processes the target forks (see [`Probes::follow`]).
    pub follow_forks: bool,
    /// --exit=auto: hijack within a budget, ret sites beyond it, and keep
    /// the unwinder working (plan::exit_policy).
    pub repair_exits: bool,
    /// --syscalls: give every thread of a traced process its state up front.
    pub trace_syscalls: bool,
    /// --io: count the I/O below each function.
    pub trace_io: bool,
    /// Counting mode for the I/O table alone: it needs no system call
    /// tracepoint, as BPF takes the bytes moved from the kernel's own
    /// per-thread counts (see [`Probes::trace_syscalls`]).
    pub io_table_only: bool,
    /// --max-rate: functions may be muted ([`Probes::mute`]).
    pub rate_limited: bool,
    /// -A/-R: read the values [`Probes::set_values`] asks for.
    pub capture_values: bool,
}

/// One uprobe_multi link and what it was made of, so it can be made again
/// without some functions (`--max-rate`).
struct MultiLink {
    spec: LinkSpec,
    pid: Option<u32>,
    link: Link,
    /// `--exit=auto`: the function whose ret sites BPF asked for, when the
    /// link holds them ([`Probes::attach_exits`]).
    demand: Option<FuncId>,
}

pub struct Probes<'obj> {
    skel: UtraceSkel<'obj>,
    multi: Vec<MultiLink>,
    /// Tracepoints and the loader's breakpoint.
    links: Vec<Link>,
    /// The functions with an entry probe: a stub entered at its calls and
    /// its jumps has two links, and counts once.
    probed: HashSet<FuncId>,
    /// Events go through the ring buffer (not counting mode).
    streams: bool,
    /// The exec tracepoint is attached (following forks, or `-c`).
    exec_watched: bool,
    /// The fork tracepoint is attached (following forks, or --syscalls).
    fork_watched: bool,
    /// -A/-R: ret sites tell a tail jump from a `ret` in their cookies.
    capture_values: bool,
    /// See [`BpfConfig::io_table_only`].
    io_table_only: bool,
    /// -A: the functions whose arguments are read: their entries go to
    /// the sleepable programs (see [`Probes::set_values`]).
    with_args: HashSet<FuncId>,
    /// `--exit=auto`: functions given ret sites on demand, and how many
    /// times they were taken away again, for the closing line.
    demanded: (usize, usize),
}

impl<'obj> Probes<'obj> {
    /// Opens, configures and loads the BPF programs.
    pub fn load(storage: &'obj mut ObjectStorage, cfg: BpfConfig) -> Result<Self> {
        // libbpf's own messages would duplicate our one-line errors; keep them for debugging.
        if std::env::var_os("UTRACE_DEBUG").is_none() {
            libbpf_rs::set_print(None);
        }
        let mut open = UtraceSkelBuilder::default()
            .open(storage)
            .map_err(load_error)?;
        open.maps
            .events
            .set_max_entries(cfg.ringbuf_bytes)
            .context("sizing the ring buffer")?;
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .context("BPF object has no .rodata")?;
        rodata.max_depth = cfg.max_depth.unwrap_or(u32::MAX).min(MAX_SENT_DEPTH);
        rodata.min_duration_ns = cfg.min_duration_ns;
        // Wake the reader once a quarter of the buffer is waiting.
        rodata.wakeup_bytes = u64::from(cfg.ringbuf_bytes / 4);
        rodata.count_only = cfg.count_only;
        rodata.follow_forks = cfg.follow_forks;
        rodata.repair_exits = cfg.repair_exits;
        rodata.trace_syscalls = cfg.trace_syscalls;
        rodata.trace_io = cfg.trace_io;
        rodata.rate_limited = cfg.rate_limited;
        rodata.capture_values = cfg.capture_values;
        open.maps
            .counts
            .set_max_entries(cfg.count_slots.max(1))
            .context("sizing the counting map")?;
        open.maps
            .muted
            .set_max_entries(cfg.count_slots.max(1))
            .context("sizing the muted map")?;
        open.maps
            .callers
            .set_max_entries(cfg.count_slots.max(1))
            .context("sizing the callers map")?;
        open.maps
            .value_specs
            .set_max_entries(cfg.value_slots.max(1))
            .context("sizing the -A/-R table")?;
        if kernel_events::bench_floor() {
            eprintln!(
                "utrace: UTRACE_BENCH_FLOOR=1: the syscall and I/O tracepoints run programs \
                 that do nothing (for the benches' floor): no system call or I/O is seen"
            );
        } else {
            let p = &mut open.progs;
            for prog in [
                &mut p.floor_sys_enter,
                &mut p.floor_sys_exit,
                &mut p.floor_cache_add,
                &mut p.floor_cache_get,
                &mut p.floor_dirty,
                &mut p.floor_bio_queue,
                &mut p.floor_rq_issue,
                &mut p.floor_rq_complete,
            ] {
                prog.set_autoload(false);
            }
        }
        let skel = open.load().map_err(load_error)?;
        let mut probes = Probes {
            skel,
            multi: Vec::new(),
            links: Vec::new(),
            probed: HashSet::new(),
            streams: !cfg.count_only,
            exec_watched: false,
            fork_watched: false,
            capture_values: cfg.capture_values,
            io_table_only: cfg.io_table_only,
            with_args: HashSet::new(),
            demanded: (0, 0),
        };
        // Threads queue their events (bpf/utrace.h: struct batch): these
        // send the queue when a thread blocks or exits.
        let progs = &probes.skel.progs;
        let mut flushers = vec![&progs.on_thread_exit];
        if probes.streams {
            flushers.push(&progs.on_switch);
        }
        for prog in flushers {
            let link = prog
                .attach()
                .context("attaching the scheduler tracepoints")?;
            probes.links.push(link);
        }
        Ok(probes)
    }

    /// Starts following process `pid` and, through the fork and exit
    /// tracepoints, every process it forks. Links attached with no pid
    /// filter then fire for exactly these processes.
    pub fn follow(&mut self, pid: u32) -> Result<()> {
        self.register(pid)?;
        self.watch_fork()?;
        self.watch_exec()
    }

    /// Stops BPF from tracing anything new, before the detach: what was
    /// traced up to now can then be shown while the kernel takes the
    /// probes down. Events already queued still go out.
    pub fn pause(&mut self) -> Result<()> {
        let bss = self
            .skel
            .maps
            .bss_data
            .as_deref_mut()
            .context("BPF object has no .bss")?;
        bss.paused = true;
        Ok(())
    }

    /// Puts `pid` in the set of traced processes.
    pub(super) fn register(&mut self, pid: u32) -> Result<()> {
        // The syscall tracepoints' first test (bpf: traced_tgids).
        let bits = self
            .skel
            .maps
            .bss_data
            .as_deref_mut()
            .context("BPF object has no .bss")?;
        let words = bits.traced_tgids.len();
        bits.traced_tgids[(pid as usize / 64) % words] |= 1 << (pid % 64);
        self.skel
            .maps
            .procs
            .update(&pid.to_ne_bytes(), &[1], MapFlags::ANY)
            .context("registering the traced process")
    }

    /// Attaches the fork tracepoint once.
    pub(super) fn watch_fork(&mut self) -> Result<()> {
        if !self.fork_watched {
            let link = self.skel.progs.on_fork.attach();
            self.links
                .push(link.context("attaching the fork tracepoint")?);
            self.fork_watched = true;
        }
        Ok(())
    }

    /// `-c`: process `pid` (forked, held before exec) is traced from its
    /// exec on; until then it runs utrace's own code.
    pub fn start_at_exec(&mut self, pid: u32) -> Result<()> {
        self.skel
            .maps
            .before_exec
            .update(&pid.to_ne_bytes(), &[1], MapFlags::ANY)
            .context("registering the command before its exec")?;
        self.watch_exec()
    }

    /// Attaches the exec tracepoint once: following forks and `-c` both need it.
    pub(super) fn watch_exec(&mut self) -> Result<()> {
        if !self.exec_watched {
            let link = self.skel.progs.on_exec.attach();
            self.links
                .push(link.context("attaching the exec tracepoint")?);
            self.exec_watched = true;
        }
        Ok(())
    }

    /// Attaches the links `specs`, in order; `pid_for` gives each file's
    /// pid filter (`None`: every process running the file traps, and BPF
    /// keeps the followed ones).
    pub fn attach_all(
        &mut self,
        specs: Vec<LinkSpec>,
        pid_for: impl Fn(&Path) -> Option<u32>,
    ) -> Result<()> {
        for spec in specs {
            let pid = pid_for(&spec.list.path);
            self.attach(spec, pid, None)?;
        }
        Ok(())
    }

    /// `--exit=auto`: attaches the ret sites (`specs`) BPF asked for
    /// function `id`, in process `pid`, and tells BPF they are there.
    /// [`Probes::retract_exits`] takes them away again.
    /// Attaches exit links that stay (not on demand).
    pub fn attach_more(&mut self, specs: Vec<LinkSpec>, pid: u32) -> Result<()> {
        for spec in specs {
            self.attach(spec, Some(pid), None)?;
        }
        Ok(())
    }

    pub fn attach_exits(&mut self, id: FuncId, specs: Vec<LinkSpec>, pid: u32) -> Result<()> {
        self.attach_demanded(id, specs, pid, EXITS_ATTACHED)
    }

    /// The `ret`s of function `id` that its calls into them stood for,
    /// where BPF could not chain a frame (EV_NEED_RETS): taken away with
    /// its other ret sites.
    pub fn attach_rets(&mut self, id: FuncId, specs: Vec<LinkSpec>, pid: u32) -> Result<()> {
        self.attach_demanded(id, specs, pid, EXITS_RETS_ATTACHED)
    }

    /// Attaches links on demand for function `id`, to be taken away with
    /// its other ret sites, and tells BPF they are there (`state`, an
    /// `exit_sites_state`).
    fn attach_demanded(
        &mut self,
        id: FuncId,
        specs: Vec<LinkSpec>,
        pid: u32,
        state: u8,
    ) -> Result<()> {
        if !specs.is_empty() {
            self.demanded.0 += 1;
        }
        for spec in specs {
            self.attach(spec, Some(pid), Some(id))?;
        }
        self.mark_exits(id, state)
    }

    /// What the ret sites attached on demand were, for the closing lines:
    /// deep recursion costs a trap at every `ret` of those functions while
    /// they are there.
    pub fn demanded_exits(&self) -> Option<String> {
        let times = |n: usize| match n {
            1 => "once".to_string(),
            n => format!("{n} times"),
        };
        let (attached, retracted) = self.demanded;
        let gone = match retracted {
            0 => String::new(),
            n => format!(", taken away again {} when the recursion ended", times(n)),
        };
        (attached > 0).then(|| {
            format!(
                "calls nested deeper than the kernel's 64 pending returns: ret sites attached on demand {}{gone}",
                times(attached)
            )
        })
    }

    /// Whether ret sites attached on demand are attached now.
    pub fn has_demanded_exits(&self) -> bool {
        self.multi.iter().any(|m| m.demand.is_some())
    }

    /// `--exit=auto`: takes away the ret sites attached on demand, when no
    /// thread is deep enough to hold a call that needs them (bpf's
    /// `deep_threads`). BPF forgets they were there first, so a call that
    /// needs them from then on stops the process until they are attached
    /// again; if a thread went deep meanwhile, they stay. Returns how many
    /// functions lost theirs.
    pub fn retract_exits(&mut self) -> Result<usize> {
        if self.deep_threads()? > 0 {
            return Ok(0);
        }
        let mut ids: Vec<FuncId> = self.multi.iter().filter_map(|m| m.demand).collect();
        ids.sort_unstable();
        ids.dedup();
        let sites = &self.skel.maps.exit_sites;
        // What BPF knew of each, to give back if they stay: a function whose
        // unchained `ret`s are attached too must not ask for them again.
        let mut states = Vec::with_capacity(ids.len());
        for &id in &ids {
            let key = id.0.to_ne_bytes();
            let state = sites.lookup(&key, MapFlags::ANY).ok().flatten();
            states.push((id, state.and_then(|v| v.first().copied())));
            // Absent when BPF never asked (a function without ret sites).
            let _ = sites.delete(&key);
        }
        if self.deep_threads()? > 0 {
            for (id, state) in states {
                self.mark_exits(id, state.unwrap_or(EXITS_ATTACHED))?;
            }
            return Ok(0);
        }
        let (gone, kept) = self.multi.drain(..).partition(|m| m.demand.is_some());
        self.multi = kept;
        // Each release waits out grace periods (tens of ms here, per link):
        // from threads of their own they overlap, and the events keep
        // flowing meanwhile.
        for m in gone {
            std::thread::spawn(move || drop(m.link));
        }
        self.demanded.1 += 1;
        Ok(ids.len())
    }

    fn deep_threads(&self) -> Result<u64> {
        let bss = (self.skel.maps.bss_data.as_deref()).context("BPF object has no .bss")?;
        // SAFETY: the .bss is mapped shared with BPF, which updates it
        // atomically; a volatile read sees its current value.
        Ok(unsafe { std::ptr::read_volatile(&bss.deep_threads) })
    }

    /// Attaches one uprobe_multi link, filtered to `pid` so no other
    /// process pays for the probes.
    fn attach(&mut self, spec: LinkSpec, pid: Option<u32>, demand: Option<FuncId>) -> Result<()> {
        if spec.list.offsets.is_empty() {
            return Ok(());
        }
        let entries = matches!(spec.kind, ProbeKind::Entry | ProbeKind::Session);
        let parts = {
            let has = |id: &FuncId| self.with_args.contains(id);
            let ids = &spec.list.ids;
            let mixed = entries && ids.iter().any(has) && !ids.iter().all(has);
            mixed.then(|| (spec.without(|id| !has(&id)), spec.without(|id| has(&id))))
        };
        if let Some((reading, plain)) = parts {
            // One link per program: those that read arguments are sleepable.
            self.attach(reading, pid, demand)?;
            return self.attach(plain, pid, demand);
        }
        let link = self.link(&spec, pid)?;
        if spec.kind.counts_functions() {
            self.probed.extend(&spec.list.ids);
        }
        self.multi.push(MultiLink {
            spec,
            pid,
            link,
            demand,
        });
        Ok(())
    }

    fn link(&self, spec: &LinkSpec, pid: Option<u32>) -> Result<Link> {
        let args = (spec.list.ids.first()).is_some_and(|id| self.with_args.contains(id));
        let prog = match spec.kind {
            ProbeKind::Entry if args => &self.skel.progs.on_entry_s,
            ProbeKind::Entry => &self.skel.progs.on_entry,
            ProbeKind::Return | ProbeKind::CallReturn => &self.skel.progs.on_exit,
            ProbeKind::RetSite => &self.skel.progs.on_ret_site,
            ProbeKind::Session if args => &self.skel.progs.on_session_s,
            ProbeKind::Session => &self.skel.progs.on_session,
            ProbeKind::Helper(_) => &self.skel.progs.on_helper,
        };
        let flags = match (spec.ret_site_exits, spec.short_calls, spec.at_calls) {
            (true, _, true) => COOKIE_RET_SITE | COOKIE_AT_CALL,
            (true, _, false) => COOKIE_RET_SITE,
            (false, true, _) => COOKIE_SHORT,
            (false, false, _) => 0,
        };
        let flags = flags | if spec.chains { COOKIE_CHAIN } else { 0 };
        let flags = flags
            | if spec.with_caller {
                COOKIE_WITH_CALLER
            } else {
                0
            };
        let list = &spec.list;
        let mut cookies = match spec.kind {
            ProbeKind::Helper(h) => vec![helper_cookie(h); list.offsets.len()],
            _ => list.ids.iter().map(|id| u64::from(id.0) | flags).collect(),
        };
        if spec.early {
            sites::mark_early(&list.path, &list.offsets, &mut cookies)?;
        } else if spec.kind == ProbeKind::RetSite {
            sites::mark(&list.path, &list.offsets, &mut cookies, self.capture_values)?;
        }
        let opts = UprobeMultiOpts {
            offsets: list.offsets.iter().map(|&o| o as usize).collect(),
            cookies,
            retprobe: spec.kind == ProbeKind::Return,
            session: spec.kind == ProbeKind::Session,
            ..Default::default()
        };
        let (n, path) = (list.offsets.len(), list.path.display());
        prog.attach_uprobe_multi_with_opts(pid.map_or(-1, |p| p as i32), &list.path, "", opts)
            .map_err(attach_error)
            .with_context(|| format!("attaching {n} probes to {path}"))
    }

    /// Stops probing the functions `ids`: every link that holds one is made
    /// again without it. The caller keeps the process stopped meanwhile, so
    /// no call falls between the old link and the new one.
    /// `--max-rate`: stops tracing new calls of `ids` at once, without a
    /// stop: the calls open now still end at their own returns, so the
    /// probes can go later ([`Probes::exclude`]). Returns the ids it could
    /// not mute (those numbered after load, in code mapped since).
    pub fn mute(&mut self, ids: &[FuncId]) -> Result<Vec<FuncId>> {
        let slots = self.skel.maps.muted.info()?.info.max_entries;
        let (now, later): (Vec<FuncId>, Vec<FuncId>) = ids.iter().partition(|id| id.0 < slots);
        for id in now {
            self.skel
                .maps
                .muted
                .update(&id.0.to_ne_bytes(), &[1], MapFlags::ANY)
                .context("muting a function over --max-rate")?;
        }
        Ok(later)
    }

    pub fn exclude(&mut self, ids: &[FuncId]) -> Result<()> {
        let mut remade = Vec::new();
        for i in 0..self.multi.len() {
            let m = &self.multi[i];
            if !m.spec.list.ids.iter().any(|id| ids.contains(id)) {
                continue;
            }
            let spec = m.spec.without(|id| ids.contains(&id));
            if m.spec.kind.counts_functions() {
                ids.iter().for_each(|id| _ = self.probed.remove(id));
            }
            let (pid, demand) = (m.pid, m.demand);
            // The calls still open keep their returns only for consumers of
            // the kind the kernel calls for any pending return: a new session
            // link would miss them, a uretprobe link sees them.
            let specs = match spec.kind {
                ProbeKind::Session => vec![
                    LinkSpec {
                        kind: ProbeKind::Return,
                        ..spec.clone()
                    },
                    LinkSpec {
                        kind: ProbeKind::Entry,
                        ..spec
                    },
                ],
                _ => vec![spec],
            };
            // A link needs a probe: an emptied one just goes.
            self.multi[i].spec.list.offsets.clear();
            for spec in specs.into_iter().filter(|s| !s.list.offsets.is_empty()) {
                let link = self.link(&spec, pid)?;
                remade.push(MultiLink {
                    spec,
                    pid,
                    link,
                    demand,
                });
            }
        }
        self.multi.retain(|m| !m.spec.list.offsets.is_empty());
        self.multi.append(&mut remade);
        Ok(())
    }

    /// Stops the process at the dynamic loader's breakpoint (`_dl_debug_state`
    /// at `offset` in `loader`) so libraries it maps can be attached first.
    pub fn attach_loader(&mut self, loader: &Path, offset: u64, pid: u32) -> Result<()> {
        let opts = libbpf_rs::UprobeOpts {
            retprobe: false,
            ..Default::default()
        };
        let link = self
            .skel
            .progs
            .on_loader
            .attach_uprobe_with_opts(pid as i32, loader, offset as usize, opts)
            .map_err(attach_error)
            .with_context(|| format!("attaching to the dynamic loader {}", loader.display()))?;
        self.links.push(link);
        Ok(())
    }

    /// The I/O table alone: no system call tracepoint is attached.
    pub fn io_table_only(&self) -> bool {
        self.io_table_only
    }

    /// Number of functions probed (each has an entry and a return probe).
    pub fn probe_count(&self) -> usize {
        self.probed.len()
    }

    /// An owned handle on the ring buffer for the reader thread.
    pub fn ring_buffer(&self) -> Result<MapHandle> {
        MapHandle::try_from(&self.skel.maps.events).context("duplicating the ring buffer handle")
    }

    /// `--exit=auto`: what of function `id`'s ret sites is attached
    /// (`state`, an `exit_sites_state`; EXITS_ATTACHED also when it has
    /// none): BPF stops asking for it.
    fn mark_exits(&self, id: FuncId, state: u8) -> Result<()> {
        self.skel
            .maps
            .exit_sites
            .update(&id.0.to_ne_bytes(), &[state], MapFlags::ANY)
            .context("marking the ret sites attached")
    }

    /// How many times BPF has stopped process `pid` so far.
    pub fn stop_requests(&self, pid: u32) -> Result<u64> {
        let value = self
            .skel
            .maps
            .stop_requests
            .lookup(&pid.to_ne_bytes(), MapFlags::ANY)
            .context("reading the stop requests")?;
        Ok(value
            .and_then(|v| v.get(..8).and_then(|b| b.try_into().ok()))
            .map_or(0, u64::from_ne_bytes))
    }

    /// What BPF could not deliver so far, by cause, summed over CPUs.
    pub fn drops(&self) -> Result<Drops> {
        let mut drops = Drops::default();
        for kind in Drops::kinds() {
            let per_cpu = self
                .skel
                .maps
                .drops
                .lookup_percpu(&kind.to_ne_bytes(), MapFlags::ANY)
                .context("reading the drop counters")?
                .unwrap_or_default();
            let n = per_cpu
                .iter()
                .filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()))
                .map(u64::from_ne_bytes)
                .sum::<u64>();
            drops.add(kind, n);
        }
        Ok(drops)
    }

    /// Counting mode: one function's figures, summed over CPUs.
    pub fn counts(&self, id: FuncId) -> Result<BpfCounts> {
        let maps = &self.skel.maps;
        // Functions numbered after load are past `counts`: in `late_counts`.
        let map = match id.0 < maps.counts.info()?.info.max_entries {
            true => &maps.counts,
            false => &maps.late_counts,
        };
        let per_cpu = map
            .lookup_percpu(&id.0.to_ne_bytes(), MapFlags::ANY)
            .context("reading the counting map")?
            .unwrap_or_default();
        let mut sum = BpfCounts::default();
        for cpu in per_cpu
            .iter()
            .filter_map(|b| abi::read_plain::<BpfCounts>(b))
        {
            sum.count += cpu.count;
            sum.total_ns += cpu.total_ns;
            sum.self_ns += cpu.self_ns;
            sum.sum_ns += cpu.sum_ns;
            sum.running += cpu.running;
            sum.max_ns = sum.max_ns.max(cpu.max_ns);
            if cpu.count > 0 && (sum.min_ns == 0 || cpu.min_ns < sum.min_ns) {
                sum.min_ns = cpu.min_ns;
            }
        }
        Ok(sum)
    }

    /// Removes every probe from the traced process; returns how long it took.
    pub fn detach(&mut self) -> Duration {
        let start = Instant::now();
        // Each link's release waits out an RCU grace period: closing them
        // from threads of their own lets those waits overlap.
        let links: Vec<Link> = self
            .multi
            .drain(..)
            .map(|m| m.link)
            .chain(self.links.drain(..))
            .collect();
        let probes = self.probed.len();
        let (done, finished) = crossbeam_channel::bounded::<()>(0);
        std::thread::scope(|scope| {
            // A busy machine can stretch the grace periods to many seconds:
            // say so rather than wait in silence.
            scope.spawn(move || {
                let waited = finished.recv_timeout(SLOW_DETACH);
                if waited == Err(crossbeam_channel::RecvTimeoutError::Timeout) {
                    eprintln!(
                        "utrace: detaching {probes} probes: the kernel waits until every CPU has left them…"
                    );
                }
            });
            let closing: Vec<_> = links
                .into_iter()
                .map(|link| scope.spawn(move || drop(link)))
                .collect();
            closing.into_iter().for_each(|c| drop(c.join()));
            drop(done);
        });
        start.elapsed()
    }

    /// After [`Probes::pause`]: sends the events threads still hold in
    /// their queues (after -p the process runs on, and its threads may never
    /// block or exit while we wait) by walking every task once. In counting
    /// mode it also counts the calls still open, ended with the run.
    pub fn flush_queues(&self) -> Result<()> {
        let link = self
            .skel
            .progs
            .flush_all
            .attach()
            .context("attaching the queue flush iterator")?;
        let mut iter = libbpf_rs::Iter::new(&link).context("starting the queue flush")?;
        std::io::copy(&mut iter, &mut std::io::sink()).context("flushing the thread queues")?;
        Ok(())
    }
}

fn load_error(err: libbpf_rs::Error) -> anyhow::Error {
    if err.kind() == ErrorKind::PermissionDenied {
        anyhow::anyhow!(
            "no permission to load BPF programs: run as root, or give utrace CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE \
             (sudo setcap cap_bpf,cap_perfmon,cap_sys_resource+ep utrace)"
        )
    } else {
        anyhow::Error::new(err)
            .context("loading the BPF programs (kernel 6.6 or later with BTF is needed)")
    }
}

fn attach_error(err: libbpf_rs::Error) -> anyhow::Error {
    match err.kind() {
        ErrorKind::PermissionDenied => anyhow::anyhow!(
            "no permission to attach uprobes: run as root, or give utrace CAP_BPF and CAP_PERFMON"
        ),
        // EOPNOTSUPP / ENOSYS from the link create: no BPF_LINK_TYPE_UPROBE_MULTI.
        ErrorKind::Unsupported => anyhow::anyhow!(
            "this kernel has no uprobe_multi links (Linux 6.6 or later with CONFIG_UPROBES is needed)"
        ),
        _ => anyhow::Error::new(err),
    }
}
