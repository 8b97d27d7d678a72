//! The BPF side from userspace: open the skeleton, set its read-only
//! configuration, load, attach one uprobe_multi entry link and one return
//! link per traced ELF file, read the drop counters, detach (timed).

use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{ErrorKind, Link, MapCore, MapFlags, MapHandle, OpenObject, UprobeMultiOpts};

use crate::symbols::{AttachList, ProbePlan};

#[allow(clippy::all, unsafe_op_in_unsafe_fn, dead_code, unused_imports)]
mod bpf {
    include!(concat!(env!("OUT_DIR"), "/utrace.skel.rs"));
}
pub use bpf::types::{
    batch_head as RawHead, event as RawEvent, event_flags as RawFlags, event_kind as RawKind,
    func_stats as RawStats,
};
use bpf::{UtraceSkel, UtraceSkelBuilder};

/// Storage the loaded BPF object lives in; create it before [`Probes::load`].
pub type ObjectStorage = MaybeUninit<OpenObject>;

/// How a function's end is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExitMode {
    /// Per function: a uretprobe where nothing can unwind through its frame
    /// and it does not recurse (cheap: the kernel returns through a
    /// trampoline), ret sites elsewhere (safe).
    #[default]
    Auto,
    /// Probes on the function's `ret` and tail-jump instructions: survives C++
    /// exceptions, longjmp and any recursion depth, but the kernel
    /// single-steps a `ret`, which costs a second trap per call.
    RetSites,
    /// uretprobes: the kernel hijacks the return address. An exception
    /// unwinding through such a frame aborts the program, and the kernel keeps
    /// at most 64 pending returns per thread.
    Uretprobe,
    /// uprobe.session: one program for entry and return, the return still by
    /// return-address hijacking (same limits as `Uretprobe`).
    Session,
}

/// What BPF does with each call, set before load.
#[derive(Debug, Clone, Copy)]
pub struct BpfConfig {
    pub max_depth: Option<u32>,
    pub min_duration_ns: u64,
    pub ringbuf_bytes: u32,
    pub exit: ExitMode,
    /// Aggregate per function in BPF and send no events (`stats_slots` ids).
    pub count_only: bool,
    pub stats_slots: u32,
    /// Trace the processes the target forks (see [`Probes::follow`]).
    pub follow_forks: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Entry,
    /// A uretprobe, placed at the function's entry.
    Return,
    /// A plain probe on a `ret` or tail-jump instruction.
    RetSite,
    /// A plain probe on the instruction after a call (for PLT stubs, whose
    /// function returns from another module): sp is one slot above the entry's,
    /// as for a uretprobe, so it shares that program.
    CallReturn,
    /// Entry and return in one session link.
    Session,
}

/// One uprobe_multi link and what it was made of, so it can be made again
/// without some functions (`--max-rate`).
struct MultiLink {
    list: AttachList,
    kind: ProbeKind,
    pid: Option<u32>,
    link: Link,
}

pub struct Probes<'obj> {
    skel: UtraceSkel<'obj>,
    multi: Vec<MultiLink>,
    /// Tracepoints and the loader's breakpoint.
    links: Vec<Link>,
    probes: usize,
    /// Events go through the ring buffer (not counting mode).
    streams: bool,
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
        rodata.max_depth = cfg.max_depth.unwrap_or(u32::MAX).min(0xffff);
        rodata.min_duration_ns = cfg.min_duration_ns;
        // Wake the reader once a quarter of the buffer is waiting.
        rodata.wakeup_bytes = u64::from(cfg.ringbuf_bytes / 4);
        rodata.count_only = cfg.count_only;
        rodata.follow_forks = cfg.follow_forks;
        open.maps
            .stats
            .set_max_entries(cfg.stats_slots.max(1))
            .context("sizing the counting map")?;
        let skel = open.load().map_err(load_error)?;
        let mut probes = Probes {
            skel,
            multi: Vec::new(),
            links: Vec::new(),
            probes: 0,
            streams: !cfg.count_only,
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
        self.skel
            .maps
            .procs
            .update(&pid.to_ne_bytes(), &[1], MapFlags::ANY)
            .context("registering the traced process")?;
        let progs = &self.skel.progs;
        for prog in [&progs.on_fork, &progs.on_exec] {
            self.links.push(
                prog.attach()
                    .context("attaching the fork and exit tracepoints")?,
            );
        }
        Ok(())
    }

    /// Attaches one uprobe_multi link of `kind` for one file, filtered to
    /// `pid` so no other process pays for the probes (`None`: every process
    /// running the file traps, and BPF keeps the followed ones).
    pub fn attach(&mut self, list: &AttachList, kind: ProbeKind, pid: Option<u32>) -> Result<()> {
        if list.offsets.is_empty() {
            return Ok(());
        }
        let link = self.link(list, kind, pid)?;
        self.multi.push(MultiLink {
            list: list.clone(),
            kind,
            pid,
            link,
        });
        if matches!(kind, ProbeKind::Entry | ProbeKind::Session) {
            self.probes += list.offsets.len();
        }
        Ok(())
    }

    fn link(&self, list: &AttachList, kind: ProbeKind, pid: Option<u32>) -> Result<Link> {
        let prog = match kind {
            ProbeKind::Entry => &self.skel.progs.on_entry,
            ProbeKind::Return | ProbeKind::CallReturn => &self.skel.progs.on_exit,
            ProbeKind::RetSite => &self.skel.progs.on_ret_site,
            ProbeKind::Session => &self.skel.progs.on_session,
        };
        let opts = UprobeMultiOpts {
            offsets: list.offsets.iter().map(|&o| o as usize).collect(),
            cookies: list.cookies.clone(),
            retprobe: kind == ProbeKind::Return,
            session: kind == ProbeKind::Session,
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
    pub fn exclude(&mut self, ids: &[u32]) -> Result<()> {
        let drops = |c: &u64| ids.contains(&(*c as u32));
        for i in 0..self.multi.len() {
            if !self.multi[i].list.cookies.iter().any(drops) {
                continue;
            }
            let m = &self.multi[i];
            let (offsets, cookies) = m
                .list
                .offsets
                .iter()
                .zip(&m.list.cookies)
                .filter(|&(_, c)| !drops(c))
                .unzip();
            let list = AttachList {
                path: m.list.path.clone(),
                offsets,
                cookies,
            };
            if matches!(m.kind, ProbeKind::Entry | ProbeKind::Session) {
                self.probes -= m.list.offsets.len() - list.offsets.len();
            }
            if list.offsets.is_empty() {
                // A link needs a probe: this one goes (in `retain` below).
                self.multi[i].list = list;
                continue;
            }
            let link = self.link(&list, m.kind, m.pid)?;
            let m = &mut self.multi[i];
            (m.list, m.link) = (list, link);
        }
        self.multi.retain(|m| !m.list.offsets.is_empty());
        Ok(())
    }

    /// Attaches every probe of `plan` for `exit`; `pid_for` gives each
    /// file's pid filter.
    pub fn attach_plan(
        &mut self,
        plan: &ProbePlan,
        exit: ExitMode,
        pid_for: impl Fn(&AttachList) -> Option<u32>,
    ) -> Result<()> {
        let by_ret_site = |id: u64| exit_by_ret_site(plan, exit, id);
        // Hijacking the return address of a function that returns twice
        // kills the program: such functions are not traced that way at all.
        let traced = |id: u64| by_ret_site(id) || !returns_twice(plan, id);
        let hijacked = |id: u64| !by_ret_site(id) && traced(id);
        // Exit probes first: where a function's entry and a ret site share an
        // offset (a body that is just `ret`), the kernel runs the link
        // attached last first, and the entry must be seen before the exit.
        let exits = [
            (&plan.ret_sites, ProbeKind::RetSite),
            (&plan.call_returns, ProbeKind::CallReturn),
        ];
        for (lists, kind) in exits {
            for list in lists {
                let list = keep(list, by_ret_site);
                self.attach(&list, kind, pid_for(&list))?;
            }
        }
        let (returns, entry_kind) = match exit {
            ExitMode::Session => (None, ProbeKind::Session),
            _ => (Some(ProbeKind::Return), ProbeKind::Entry),
        };
        for list in &plan.entries {
            if let Some(kind) = returns {
                let hijacks = keep(list, hijacked);
                self.attach(&hijacks, kind, pid_for(list))?;
            }
            let mut entries = keep(list, traced);
            for cookie in entries.cookies.iter_mut().filter(|c| by_ret_site(**c)) {
                *cookie |= COOKIE_RET_SITE;
            }
            // A session link is entry and return at once; ret-site functions
            // in it would get a return probe too.
            if entry_kind == ProbeKind::Session {
                self.attach(
                    &keep(&entries, |c| c & COOKIE_RET_SITE == 0),
                    ProbeKind::Session,
                    pid_for(list),
                )?;
                self.attach(
                    &keep(&entries, |c| c & COOKIE_RET_SITE != 0),
                    ProbeKind::Entry,
                    pid_for(list),
                )?;
            } else {
                self.attach(&entries, ProbeKind::Entry, pid_for(list))?;
            }
        }
        Ok(())
    }

    /// Stops the process at the dynamic loader's breakpoint (`_dl_debug_state`
    /// at `offset` in `loader`) so libraries it maps can be attached first.
    pub fn attach_loader(&mut self, loader: &std::path::Path, offset: u64, pid: u32) -> Result<()> {
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

    /// Number of functions probed (each has an entry and a return probe).
    pub fn probe_count(&self) -> usize {
        self.probes
    }

    /// An owned handle on the ring buffer for the reader thread.
    pub fn ring_buffer(&self) -> Result<MapHandle> {
        MapHandle::try_from(&self.skel.maps.events).context("duplicating the ring buffer handle")
    }

    /// Events BPF could not send: failed reservations plus threads without state.
    pub fn lost_events(&self) -> Result<u64> {
        let mut total = 0;
        for key in 0u32..2 {
            let per_cpu = self
                .skel
                .maps
                .drops
                .lookup_percpu(&key.to_ne_bytes(), MapFlags::ANY)
                .context("reading the drop counters")?
                .unwrap_or_default();
            total += per_cpu
                .iter()
                .filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()))
                .map(u64::from_ne_bytes)
                .sum::<u64>();
        }
        Ok(total)
    }

    /// Counting mode: (count, total, self, min, max) per function id, summed over CPUs.
    pub fn stats(&self, funcs: u32) -> Result<Vec<RawStats>> {
        (0..funcs).map(|id| self.stat(id)).collect()
    }

    /// Counting mode: one function's figures, summed over CPUs.
    pub fn stat(&self, id: u32) -> Result<RawStats> {
        let per_cpu = self
            .skel
            .maps
            .stats
            .lookup_percpu(&id.to_ne_bytes(), MapFlags::ANY)
            .context("reading the counting map")?
            .unwrap_or_default();
        let mut sum = RawStats::default();
        for bytes in per_cpu {
            if bytes.len() < std::mem::size_of::<RawStats>() {
                continue;
            }
            // SAFETY: the length was checked and RawStats is plain repr(C) integers.
            let cpu: RawStats = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            sum.count += cpu.count;
            sum.total_ns += cpu.total_ns;
            sum.self_ns += cpu.self_ns;
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
        std::thread::scope(|scope| {
            for link in links {
                scope.spawn(move || drop(link));
            }
        });
        start.elapsed()
    }

    /// After [`Probes::detach`]: sends the events threads still hold in
    /// their queues (after -p the process runs on, and its threads may never
    /// block or exit while we wait) by walking every task once.
    pub fn flush_queues(&self) -> Result<()> {
        if !self.streams {
            return Ok(());
        }
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

/// Functions that return twice (or into a copied stack) save the return
/// address a uretprobe has replaced: a longjmp back then lands in the
/// trampoline and the kernel kills the program (SIGILL). Without a return
/// probe their frame would never close, so in uretprobe mode they are not
/// traced at all.
const RETURNS_TWICE: [&str; 7] = [
    "setjmp",
    "_setjmp",
    "__sigsetjmp",
    "sigsetjmp",
    "savectx",
    "vfork",
    "getcontext",
];

/// `lists` without the functions that cannot carry a uretprobe.
/// Whether function `id`'s exit is probed at its ret sites (else by
/// hijacking its return address).
pub fn exit_by_ret_site(plan: &ProbePlan, exit: ExitMode, id: u64) -> bool {
    match exit {
        ExitMode::RetSites => true,
        ExitMode::Auto => !plan.hijack_safe(id),
        ExitMode::Uretprobe | ExitMode::Session => false,
    }
}

fn returns_twice(plan: &ProbePlan, id: u64) -> bool {
    let function = plan
        .table
        .functions
        .get(id.wrapping_sub(plan.first_id) as usize);
    function.is_some_and(|f| {
        let name = f.raw_name.strip_suffix("@plt").unwrap_or(&f.raw_name);
        RETURNS_TWICE.contains(&name)
    })
}

/// The probes of `list` whose cookie passes `wanted`.
fn keep(list: &AttachList, wanted: impl Fn(u64) -> bool) -> AttachList {
    let (offsets, cookies) = list
        .offsets
        .iter()
        .zip(&list.cookies)
        .filter(|&(_, &c)| wanted(c))
        .unzip();
    AttachList {
        path: list.path.clone(),
        offsets,
        cookies,
    }
}

/// Entry cookie bit: the function's exit is probed at its ret sites
/// (COOKIE_RET_SITE in bpf/utrace.bpf.c).
const COOKIE_RET_SITE: u64 = 1 << 63;
