//! The kernel's own events from userspace: the system call tracepoints
//! (`--syscalls`: which numbers, what BPF copies, the threads adopted) and
//! the page cache, writeback and block tracepoints (`--io`), with the
//! counts BPF keeps of them.

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, MapFlags};

use super::Probes;
use super::abi::{
    BpfIo, IO_OTHER, SYS_NO_CALLER, SYSCALL_SLOTS, SyscallCounts, SyscallKey, SyscallSpec,
    copy_kind, io_dir, plain_bytes, read_plain,
};
use crate::model::{FuncId, IoCounts, IoOwner};
use crate::syscall;

/// The benches' floor: the syscall and --io tracepoints run programs that do
/// nothing (bpf/syscalls.bpf.inc, io.bpf.inc), so a bench can tell the
/// kernel's own cost of the tracepoints from utrace's.
pub(super) fn bench_floor() -> bool {
    std::env::var_os("UTRACE_BENCH_FLOOR").is_some_and(|v| v == "1")
}

impl Probes<'_> {
    /// `--syscalls`: traces the system calls of `set` made by every thread
    /// of process `pid` (and of the processes [`Probes::follow`] follows).
    /// `running`: the process exists already (-p): its threads get their
    /// state now; a command (-c) gets it at its exec. The I/O table alone
    /// ([`super::BpfConfig::io_table_only`]) attaches no syscall tracepoint:
    /// the threads get their state, and BPF reads the bytes they moved from
    /// their I/O accounting (bpf/io.bpf.inc: io_settle), at no cost to
    /// every other syscall on the machine.
    pub fn trace_syscalls(&mut self, pid: u32, set: &syscall::Set, running: bool) -> Result<()> {
        // Only the syscall programs read the table.
        let specs = if self.io_table_only { 0 } else { SYSCALL_SLOTS };
        for nr in 0..specs {
            let spec = syscall_spec(nr, set);
            self.skel
                .maps
                .syscall_specs
                .update(&nr.to_ne_bytes(), plain_bytes(&spec), MapFlags::ANY)
                .context("filling the system call table")?;
        }
        self.register(pid)?;
        self.watch_fork()?;
        self.watch_exec()?;
        if running {
            let link = self.skel.progs.adopt_threads.attach();
            let link = link.context("attaching the thread adoption iterator")?;
            let mut iter = libbpf_rs::Iter::new(&link).context("adopting the threads")?;
            std::io::copy(&mut iter, &mut std::io::sink()).context("adopting the threads")?;
        }
        let progs = &self.skel.progs;
        let attached = match (bench_floor(), self.io_table_only) {
            (_, true) => vec![],
            (true, false) => vec![&progs.floor_sys_exit, &progs.floor_sys_enter],
            (false, false) => vec![&progs.on_sys_exit, &progs.on_sys_enter],
        };
        for prog in attached {
            let link = prog.attach();
            self.links
                .push(link.context("attaching the raw_syscalls tracepoints")?);
        }
        Ok(())
    }

    /// `--io`: the page cache, writeback and block tracepoints (after
    /// [`Probes::trace_syscalls`], which gives the threads their state).
    pub fn trace_io(&mut self) -> Result<()> {
        let p = &self.skel.progs;
        let progs = match bench_floor() {
            true => [
                &p.floor_rq_complete,
                &p.floor_rq_issue,
                &p.floor_bio_queue,
                &p.floor_dirty,
                &p.floor_cache_get,
                &p.floor_cache_add,
            ],
            false => [
                &p.on_rq_complete,
                &p.on_rq_issue,
                &p.on_bio_queue,
                &p.on_dirty,
                &p.on_cache_get,
                &p.on_cache_add,
            ],
        };
        for prog in progs {
            let link = prog.attach();
            self.links
                .push(link.context("attaching the page cache, writeback and block tracepoints")?);
        }
        Ok(())
    }

    /// `--io`: the I/O below each function, summed over CPUs.
    pub fn io_counts(&self) -> Result<Vec<(IoOwner, IoCounts)>> {
        let map = &self.skel.maps.io_counts;
        let mut rows = Vec::new();
        for key in map.keys() {
            let Some(per_cpu) = map
                .lookup_percpu(&key, MapFlags::ANY)
                .context("reading the I/O counts")?
            else {
                continue;
            };
            let Some(id) = key
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
            else {
                continue;
            };
            let mut sum = [0u64; 12];
            for c in per_cpu.iter().filter_map(|b| read_plain::<BpfIo>(b)) {
                let f = [
                    c.syscall_read_bytes,
                    c.syscall_write_bytes,
                    c.cache_pages,
                    c.cache_miss_pages,
                    c.dirtied_pages,
                    c.block_read_bytes,
                    c.block_write_bytes,
                    c.block_requests,
                    c.writeback_bytes,
                    c.forced_writeback_bytes,
                    c.device_ns,
                ];
                sum.iter_mut().zip(f).for_each(|(s, v)| *s += v);
                sum[11] = sum[11].max(c.max_device_ns);
            }
            // Pages asked for that it did not have to add: its hits.
            sum[2] = sum[2].saturating_sub(sum[3]);
            let owner = match id {
                SYS_NO_CALLER => IoOwner::Outside,
                IO_OTHER => IoOwner::Other,
                id => IoOwner::Function(FuncId(id)),
            };
            rows.push((owner, IoCounts::from_fields(sum)));
        }
        rows.sort_by_key(|r| r.0);
        Ok(rows)
    }

    /// Counting mode with --syscalls: the totals per (caller, number), one
    /// row per CPU that counted any (`SyscallTotals::insert` sums them); the
    /// caller `None` outside every traced call.
    pub fn syscall_counts(&self) -> Result<Vec<(Option<FuncId>, u32, SyscallCounts)>> {
        let map = &self.skel.maps.syscall_counts;
        let mut out = Vec::new();
        for key in map.keys() {
            let Some(per_cpu) = map
                .lookup_percpu(&key, MapFlags::ANY)
                .context("reading the system call counts")?
            else {
                continue;
            };
            let Some(k) = read_plain::<SyscallKey>(&key) else {
                continue;
            };
            let caller = (k.caller != SYS_NO_CALLER).then_some(FuncId(k.caller));
            let cpus = per_cpu
                .iter()
                .filter_map(|b| read_plain::<SyscallCounts>(b));
            out.extend(cpus.filter(|c| c.count > 0).map(|c| (caller, k.nr, c)));
        }
        Ok(out)
    }
}

/// Which way a read/write-family call moves its bytes.
fn direction(nr: u32) -> io_dir {
    if syscall::bytes(nr, 0).is_none() {
        return io_dir::IO_NONE;
    }
    let name = syscall::name(nr);
    match ["read", "pread", "recv"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        true => io_dir::IO_READS,
        false => io_dir::IO_WRITES,
    }
}

/// What BPF does with system call `nr`: whether it is traced, and which
/// argument memory it copies at entry (bpf/utrace.h: struct syscall_spec).
fn syscall_spec(nr: u32, set: &syscall::Set) -> SyscallSpec {
    // The kernel's own: a uretprobe returns through `uretprobe` (6.11+) and
    // an optimised uprobe traps through `uprobe`; neither is the program's.
    let mechanism = ["uretprobe", "uprobe"]
        .map(syscall::number)
        .contains(&Some(nr));
    let mut spec = SyscallSpec {
        traced: u8::from(set.contains(nr) && !mechanism),
        moves_bytes: direction(nr).0 as u8,
        ..SyscallSpec::default()
    };
    for (i, copy) in syscall::copies(nr).into_iter().enumerate() {
        let (kind, arg, len_arg, len) = match copy {
            syscall::Copy::None => continue,
            syscall::Copy::Str { arg } => (copy_kind::COPY_STR, arg, 0, 0),
            syscall::Copy::Bytes { arg, len_arg } => (copy_kind::COPY_BYTES, arg, len_arg, 0),
            syscall::Copy::Fixed { arg, len } => (copy_kind::COPY_FIXED, arg, 0, len),
        };
        spec.copy[i] = kind.0 as u8;
        spec.arg[i] = arg;
        spec.len_arg[i] = len_arg;
        spec.len[i] = len;
    }
    spec
}

/// Whether this kernel runs fentry programs on its own functions, which a
/// VFS layer under `--io` would need: loads one that does nothing on
/// `vfs_read` and attaches it for a moment. `Err` says why not (this VM:
/// EPERM at load).
pub fn fentry_works() -> std::result::Result<(), String> {
    use libbpf_rs::libbpf_sys as sys;
    // SAFETY: a NUL-terminated name; libbpf only reads it.
    let id =
        unsafe { sys::libbpf_find_vmlinux_btf_id(c"vfs_read".as_ptr(), sys::BPF_TRACE_FENTRY) };
    if id < 0 {
        return Err(format!("vfs_read: {}", nix::errno::Errno::from_raw(-id)));
    }
    let insn = |code: u32| sys::bpf_insn {
        code: code as u8,
        ..Default::default()
    };
    // r0 = 0; exit
    let insns = [
        insn(sys::BPF_ALU64 | sys::BPF_MOV | sys::BPF_K),
        insn(sys::BPF_JMP | sys::BPF_EXIT),
    ];
    let mut opts = sys::bpf_prog_load_opts {
        sz: std::mem::size_of::<sys::bpf_prog_load_opts>() as _,
        expected_attach_type: sys::BPF_TRACE_FENTRY,
        attach_btf_id: id as u32,
        ..Default::default()
    };
    // SAFETY: the pointers are to live locals of the sizes given; libbpf
    // copies them into the bpf() call.
    let prog = unsafe {
        sys::bpf_prog_load(
            sys::BPF_PROG_TYPE_TRACING,
            c"utrace_fentry".as_ptr(),
            c"GPL".as_ptr(),
            insns.as_ptr(),
            insns.len() as _,
            &mut opts,
        )
    };
    if prog < 0 {
        return Err(format!(
            "loading one on vfs_read: {}",
            nix::errno::Errno::last()
        ));
    }
    // SAFETY: `prog` is a program fd of ours; a null name attaches it where
    // it was loaded for.
    let link = unsafe { sys::bpf_raw_tracepoint_open(std::ptr::null(), prog) };
    let attached = match link {
        l if l < 0 => Err(format!(
            "attaching one to vfs_read: {}",
            nix::errno::Errno::last()
        )),
        _ => Ok(()),
    };
    for fd in [link, prog].into_iter().filter(|fd| *fd >= 0) {
        // SAFETY: fds this function opened and nothing else holds.
        unsafe { libc::close(fd) };
    }
    attached
}
