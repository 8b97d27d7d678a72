//! The data every stage shares: the table of traced functions (a function's id
//! is its index, which is also its BPF attach cookie) and the events that flow
//! from BPF or a trace file through call-stack pairing into the consumers.

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
}

/// One raw event as BPF sends it (and as a trace file stores it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Its return was seen.
    Returned,
    /// Its return was never seen (longjmp, exception, lost event): closed when
    /// an exception was caught or a longjmp landed above it, or else when the
    /// thread was next seen at a lower depth.
    Unwound,
    /// It never returned because its thread ended (exit, pthread_exit, exec).
    ThreadEnded,
    /// Still running when the trace ended.
    Open,
}

/// Paired call events, in the order they happened per thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Enter {
        pid: u32,
        tid: u32,
        func: FuncId,
        depth: u32,
        ts: u64,
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
}

/// A consumer of paired calls: the live printer, the aggregators, the report
/// formats. Live sessions and `--report` drive the same sinks.
pub trait Sink {
    fn call(&mut self, call: &Call, table: &FuncTable) -> anyhow::Result<()>;

    /// Called when no event arrived for a while; `now` is CLOCK_MONOTONIC ns.
    fn idle(&mut self, _now: u64, _table: &FuncTable) -> anyhow::Result<()> {
        Ok(())
    }

    /// End of the trace: every open call has already been closed as `End::Open`.
    fn finish(&mut self, table: &FuncTable, run: &RunInfo) -> anyhow::Result<()>;
}
