//! The BPF side from userspace: open the skeleton, set its read-only
//! configuration, load, attach one uprobe_multi entry link and one return
//! link per traced ELF file, read the drop counters, detach (timed).

use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{ErrorKind, Link, MapCore, MapFlags, MapHandle, OpenObject, UprobeMultiOpts};

#[allow(clippy::all, unsafe_op_in_unsafe_fn, dead_code, unused_imports)]
mod bpf {
    include!(concat!(env!("OUT_DIR"), "/utrace.skel.rs"));
}
pub use bpf::types::{event as RawEvent, event_kind as RawKind};
use bpf::{UtraceSkel, UtraceSkelBuilder};

/// Storage the loaded BPF object lives in; create it before [`Probes::load`].
pub type ObjectStorage = MaybeUninit<OpenObject>;

/// What BPF filters before anything is sent.
#[derive(Debug, Clone, Copy)]
pub struct BpfConfig {
    pub max_depth: Option<u32>,
    pub min_duration_ns: u64,
    pub ringbuf_bytes: u32,
}

/// Probes for one ELF file: uprobe file offsets and their function ids.
#[derive(Debug, Clone, Default)]
pub struct FileProbes {
    pub path: PathBuf,
    pub offsets: Vec<usize>,
    pub cookies: Vec<u64>,
}

pub struct Probes<'obj> {
    skel: UtraceSkel<'obj>,
    links: Vec<Link>,
    probes: usize,
}

impl<'obj> Probes<'obj> {
    /// Opens, configures and loads the BPF programs.
    pub fn load(storage: &'obj mut ObjectStorage, cfg: BpfConfig) -> Result<Self> {
        let mut open = UtraceSkelBuilder::default().open(storage).map_err(load_error)?;
        open.maps.events.set_max_entries(cfg.ringbuf_bytes).context("sizing the ring buffer")?;
        let rodata = open.maps.rodata_data.as_deref_mut().context("BPF object has no .rodata")?;
        rodata.max_depth = cfg.max_depth.unwrap_or(u32::MAX).min(0xffff);
        rodata.min_duration_ns = cfg.min_duration_ns;
        // Wake the reader once a quarter of the buffer is waiting.
        rodata.wakeup_bytes = u64::from(cfg.ringbuf_bytes / 4);
        let skel = open.load().map_err(load_error)?;
        Ok(Probes { skel, links: Vec::new(), probes: 0 })
    }

    /// Attaches entry and return probes of one file, filtered to `pid`.
    pub fn attach(&mut self, file: &FileProbes, pid: Option<u32>) -> Result<()> {
        if file.offsets.is_empty() {
            return Ok(());
        }
        let pid = pid.map_or(-1, |p| p as i32);
        for (prog, retprobe) in [(&self.skel.progs.on_entry, false), (&self.skel.progs.on_exit, true)] {
            let opts = UprobeMultiOpts {
                offsets: file.offsets.clone(),
                cookies: file.cookies.clone(),
                retprobe,
                ..Default::default()
            };
            let link = prog
                .attach_uprobe_multi_with_opts(pid, &file.path, "", opts)
                .map_err(attach_error)
                .with_context(|| format!("attaching {} probes to {}", file.offsets.len(), file.path.display()))?;
            self.links.push(link);
        }
        self.probes += file.offsets.len();
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

    /// Removes every probe from the traced process; returns how long it took.
    pub fn detach(&mut self) -> Duration {
        let start = Instant::now();
        self.links.clear();
        start.elapsed()
    }
}

fn load_error(err: libbpf_rs::Error) -> anyhow::Error {
    if err.kind() == ErrorKind::PermissionDenied {
        anyhow::anyhow!(
            "no permission to load BPF programs: run as root, or give utrace CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE \
             (sudo setcap cap_bpf,cap_perfmon,cap_sys_resource+ep utrace)"
        )
    } else {
        anyhow::Error::new(err).context("loading the BPF programs (kernel 6.6 or later with BTF is needed)")
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
