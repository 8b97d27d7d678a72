//! The data every stage shares: the table of traced functions (a function's id
//! is its index, which is also its BPF attach cookie) and the events that flow
//! from BPF or a trace file through call-stack pairing into the consumers.

use std::collections::BTreeMap;

use crate::values::{FuncValues, Values};

/// A traced function: its index in the [`FuncTable`] of the run, and the
/// attach cookie BPF reports it by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FuncId(pub u32);

impl FuncId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for FuncId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One ELF file that holds traced functions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    /// GNU build-id as lowercase hex, when the file has one.
    pub build_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuncKind {
    /// A function with code in its module.
    Function,
    /// A PLT stub of its module: a call into a shared library.
    Plt,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    /// Index into [`FuncTable::modules`].
    pub module: u32,
    /// Demangled name as shown to users; PLT stubs are `<sym>@plt`. When two
    /// functions of a module would show the same name, each carries a tag
    /// that tells them apart: `helper [a.c:3]`, `Base::~Base() [D0]`
    /// (symbols/labels.rs).
    pub name: String,
    /// Name as in the symbol table.
    pub raw_name: String,
    /// Link-time virtual address.
    pub addr: u64,
    pub size: u64,
    pub kind: FuncKind,
    /// For a PLT stub, the library its import binds to as the program's
    /// loader names it (`libc.so.6`), when known; `None` for functions.
    pub library: Option<String>,
    /// Where it is defined, `path/file.c:12`, when debug info says.
    pub source: Option<String>,
}

impl Function {
    /// The symbol as the symbol table spells it, to join with nm, perf or
    /// c++filt output: a PLT stub's is its import's.
    pub fn linkage_name(&self) -> &str {
        match self.kind {
            FuncKind::Plt => self.raw_name.strip_suffix("@plt").unwrap_or(&self.raw_name),
            FuncKind::Function => &self.raw_name,
        }
    }

    /// Where it is defined without the directories: `a.c:3` from the stored
    /// `/src/dir/a.c:3`, for columns and tags a user reads.
    pub fn short_source(&self) -> Option<String> {
        let source = self.source.as_deref()?;
        Some(source.rsplit('/').next().unwrap_or(source).to_string())
    }
}

/// Everything a report needs to name what it shows, without the binary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuncTable {
    pub modules: Vec<Module>,
    pub functions: Vec<Function>,
    /// `-A`/`-R`: what is read at the entry and return of these functions.
    pub values: BTreeMap<FuncId, FuncValues>,
}

impl FuncTable {
    pub fn function(&self, id: FuncId) -> Option<&Function> {
        self.functions.get(id.index())
    }

    /// Name of function `id`, or a placeholder for an id the table lacks.
    pub fn name(&self, id: FuncId) -> &str {
        self.function(id).map_or("<unknown>", |f| f.name.as_str())
    }

    /// Module path of function `id` ("" when unknown).
    pub fn module_of(&self, id: FuncId) -> &str {
        self.function(id)
            .and_then(|f| self.modules.get(f.module as usize))
            .map_or("", |m| m.path.as_str())
    }

    /// The id the next function added gets.
    pub fn next_id(&self) -> FuncId {
        FuncId(self.functions.len() as u32)
    }

    /// `-A`: the arguments `values` of a call of `id`, as shown
    /// (`buf="GET /", len=5`); `None` when `id` has no spec.
    pub fn shown_args(&self, id: FuncId, values: &Values) -> Option<String> {
        Some(crate::values::show_args(self.values.get(&id)?, values))
    }

    /// `-R`: the return value in `values` of a call of `id`, as shown.
    pub fn shown_ret(&self, id: FuncId, values: &Values) -> Option<String> {
        let spec = self.values.get(&id)?.ret.as_ref()?;
        Some(crate::values::show_ret(spec, values.first()?))
    }

    /// Every id in the table, in order.
    pub fn ids(&self) -> impl Iterator<Item = FuncId> + use<> {
        (0..self.functions.len() as u32).map(FuncId)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Entry,
    Exit,
    /// The thread's calls at `depth` and deeper ended here without a return:
    /// an exception was caught above them, or a longjmp left them.
    Unwind,
    /// The thread's open calls end here without a return: it exited (exit,
    /// pthread_exit) or exec'd another program.
    Gone,
    /// A system call made at `depth` (under the thread's innermost open
    /// traced call), entered at `ts`; the rest is in [`Event::sys`].
    Syscall,
    /// The arguments (`-A`) of the entry at `depth` and `ts` that follows
    /// (held back with a time filter, or never sent if the call was short):
    /// in [`Event::values`].
    Args,
    /// The return value (`-R`) of the exit at `depth` and `ts` that follows.
    Retval,
}

/// What a system call event carries beside the common fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Syscall {
    /// x86-64 system call number.
    pub nr: u32,
    /// When it returned, or when it was seen never to return.
    pub end_ts: u64,
    /// Its result; `None` when it never returned (exit, or its thread ended).
    pub ret: Option<i64>,
    pub args: [u64; 6],
    /// The memory up to two arguments pointed to, copied at entry: copy `i`
    /// is `data[..lens[0]]` or `data[lens[0]..]`; `None` when the pointer
    /// could not be read.
    pub copies: [Option<ArgCopy>; 2],
    pub data: Vec<u8>,
    /// `--io`: what the call caused below it.
    pub io: Option<SyscallIo>,
}

/// What one system call caused in the page cache and on block devices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallIo {
    /// Pages asked of the page cache, and of those the ones it added.
    pub cache_pages: u32,
    pub cache_added: u32,
    pub dirtied: u32,
    /// Block requests it waited for, and their device time.
    pub requests: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub device_ns: u64,
}

/// Whose I/O a row of the I/O table is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IoOwner {
    Function(FuncId),
    /// The program, outside every traced call.
    Outside,
    /// The devices' traffic the program did not cause (its devices only).
    Other,
}

/// The I/O below one function, in every layer (`--io`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounts {
    /// The bytes the thread's calls read and wrote, as the kernel counts
    /// them per thread (rchar and wchar: sendfile and copy_file_range count
    /// both ways, splice not at all).
    pub syscall_read_bytes: u64,
    pub syscall_write_bytes: u64,
    pub cache_hit_pages: u64,
    pub cache_miss_pages: u64,
    pub dirtied_pages: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    pub block_requests: u64,
    /// Pages it dirtied, written back then or later.
    pub writeback_bytes: u64,
    /// Written back because it asked (fsync and the like).
    pub forced_writeback_bytes: u64,
    pub device_ns: u64,
    pub max_device_ns: u64,
}

impl IoCounts {
    /// Device bytes per syscall byte, read side: `None` with nothing read.
    pub fn read_amp(&self) -> Option<f64> {
        (self.syscall_read_bytes > 0)
            .then(|| self.block_read_bytes as f64 / self.syscall_read_bytes as f64)
    }

    /// Write side: what it wrote directly and what it dirtied, written back.
    pub fn write_amp(&self) -> Option<f64> {
        (self.syscall_write_bytes > 0).then(|| {
            (self.block_write_bytes + self.writeback_bytes) as f64 / self.syscall_write_bytes as f64
        })
    }

    pub fn avg_device_ns(&self) -> u64 {
        self.device_ns.checked_div(self.block_requests).unwrap_or(0)
    }

    /// As the twelve numbers in their documented order (trace file, CSV).
    pub fn fields(&self) -> [u64; 12] {
        [
            self.syscall_read_bytes,
            self.syscall_write_bytes,
            self.cache_hit_pages,
            self.cache_miss_pages,
            self.dirtied_pages,
            self.block_read_bytes,
            self.block_write_bytes,
            self.block_requests,
            self.writeback_bytes,
            self.forced_writeback_bytes,
            self.device_ns,
            self.max_device_ns,
        ]
    }

    pub fn from_fields(f: [u64; 12]) -> Self {
        IoCounts {
            syscall_read_bytes: f[0],
            syscall_write_bytes: f[1],
            cache_hit_pages: f[2],
            cache_miss_pages: f[3],
            dirtied_pages: f[4],
            block_read_bytes: f[5],
            block_write_bytes: f[6],
            block_requests: f[7],
            writeback_bytes: f[8],
            forced_writeback_bytes: f[9],
            device_ns: f[10],
            max_device_ns: f[11],
        }
    }
}

/// One copied argument: where its bytes are in [`Syscall::data`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgCopy {
    pub len: u16,
    /// Longer than the copy limit: only the start was copied.
    pub cut: bool,
}

impl Syscall {
    /// The bytes of copy `i` and whether they were cut.
    pub fn copy(&self, i: usize) -> Option<(&[u8], bool)> {
        let c = self.copies.get(i).copied().flatten()?;
        let start = if i == 0 {
            0
        } else {
            self.copies[0].map_or(0, |c| c.len as usize)
        };
        let bytes = self.data.get(start..start + c.len as usize)?;
        Some((bytes, c.cut))
    }

    pub fn duration(&self, entry_ts: u64) -> u64 {
        self.end_ts.saturating_sub(entry_ts)
    }
}

/// One raw event as BPF sends it (and as a trace file stores it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub pid: u32,
    pub tid: u32,
    pub func: FuncId,
    /// Calls open on the thread below this one: 0 for an outermost call.
    pub depth: u32,
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts: u64,
    /// The thread lost events (ring buffer full) just before this one: its
    /// call stack around here is incomplete.
    pub after_loss: bool,
    /// Counting mode, an entry deeper than BPF's per-thread frames: its
    /// function is open in those frames too (a nested activation). Never
    /// stored in a trace file.
    pub nested: bool,
    /// `EventKind::Syscall` only: the call. Boxed, so the events of calls,
    /// the many, stay small.
    pub sys: Option<Box<Syscall>>,
    /// `EventKind::Args` and `EventKind::Retval` only: what was read, in the
    /// order of the function's [`FuncValues`].
    pub values: Option<Values>,
}

/// A system call as the sinks see it: placed in its thread's call tree.
#[derive(Clone, Copy, Debug)]
pub struct SyscallCall<'a> {
    pub pid: u32,
    pub tid: u32,
    /// Its depth in the tree: the number of traced calls open around it.
    pub depth: u32,
    /// The innermost traced call open around it; `None` outside every one.
    pub caller: Option<FuncId>,
    pub ts: u64,
    pub sys: &'a Syscall,
}

impl SyscallCall<'_> {
    pub fn duration(&self) -> u64 {
        self.sys.duration(self.ts)
    }
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Its return was seen.
    Returned,
    /// An exception, a panic or a longjmp left it (BPF's probes on the
    /// unwinder and longjmp said so): closed when it was left.
    Unwound,
    /// Its return was not seen, and nothing said why (a tail call into code
    /// not traced, a lost event, an exception with no unwinder probes):
    /// closed when the thread was next seen higher up the stack.
    NotSeen,
    /// It never returned because its thread ended (exit, pthread_exit, exec).
    ThreadEnded,
    /// Still running when the trace ended.
    Open,
}

/// Paired call events, in the order they happened per thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Enter {
        pid: u32,
        tid: u32,
        func: FuncId,
        depth: u32,
        ts: u64,
        /// `-A`: its arguments, as the function table's spec says.
        args: Option<Values>,
    },
    Leave {
        pid: u32,
        tid: u32,
        func: FuncId,
        depth: u32,
        entry_ts: u64,
        ts: u64,
        /// Time spent in traced callees (so self time = ts - entry_ts - child_ns).
        child_ns: u64,
        end: End,
        /// `-R`: its return value (a call that did not return has none).
        ret: Option<Values>,
    },
}

impl Call {
    pub fn tid(&self) -> u32 {
        match *self {
            Call::Enter { tid, .. } | Call::Leave { tid, .. } => tid,
        }
    }

    pub fn ts(&self) -> u64 {
        match *self {
            Call::Enter { ts, .. } | Call::Leave { ts, .. } => ts,
        }
    }
}

/// What is known about a traced run: stored in a trace file's header and
/// trailer, shown in report footers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunInfo {
    /// The traced command line, or `pid N` for an attach.
    pub command: String,
    pub pid: u32,
    /// Wall-clock start, ns since the Unix epoch.
    pub start_unix_ns: u64,
    /// CLOCK_MONOTONIC at the start, to relate event timestamps to it.
    pub start_mono_ns: u64,
    pub end_mono_ns: u64,
    /// Events the BPF side could not send (ring buffer full, no thread state).
    pub lost_events: u64,
    /// `--io`: the I/O below each function, counted in BPF over the run.
    pub io: Vec<(IoOwner, IoCounts)>,
}

/// A consumer of paired calls: the live printer, the aggregators, the report
/// formats. Live sessions and `--report` drive the same sinks.
pub trait Sink {
    fn call(&mut self, call: &Call, table: &FuncTable) -> anyhow::Result<()>;

    /// A system call, after the calls that opened before it.
    fn syscall(&mut self, sys: &SyscallCall, table: &FuncTable) -> anyhow::Result<()>;

    /// Called when no event arrived for a while; `now` is CLOCK_MONOTONIC ns.
    fn idle(&mut self, _now: u64, _table: &FuncTable) -> anyhow::Result<()> {
        Ok(())
    }

    /// End of the trace: every open call has already been closed as `End::Open`.
    fn finish(&mut self, table: &FuncTable, run: &RunInfo) -> anyhow::Result<()>;
}
