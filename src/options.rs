//! What the user asked for, as plain types: `cli` converts the command line
//! into these, and every stage below reads them. Nothing here knows clap.

use std::path::PathBuf;

/// The mode utrace runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Trace and print the call graph (or an aggregate `format`) as it happens.
    Live(TraceOptions, ReportOptions),
    Record(TraceOptions, PathBuf),
    Report(PathBuf, ReportOptions),
    /// `--list`, to `-o` (a file, `-` or nothing for stdout).
    List(TraceOptions, Option<PathBuf>),
}

/// Where the traced program comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Command(Vec<String>),
    Pid(u32),
}

/// The selection options as the user gave them (globs, not yet compiled).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub functions: Vec<String>,
    pub no_functions: Vec<String>,
    pub libs: Vec<String>,
    pub no_libs: Vec<String>,
    pub nest_libs: Vec<String>,
}

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

/// What tracing a target takes: the target, the selection, what BPF
/// filters, and how the run behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceOptions {
    pub target: Target,
    pub filter: Filter,
    pub max_depth: Option<u32>,
    pub min_duration_ns: u64,
    pub user: Option<String>,
    pub no_randomize_addr: bool,
    pub follow_forks: bool,
    pub exit: ExitMode,
    pub buffer_bytes: u32,
    pub max_rate: Option<u64>,
    /// `--syscalls`: the system calls traced as leaves of the call tree.
    pub syscalls: Option<crate::syscall::Set>,
    /// `--syscalls-only`: no function is probed, every thread is traced.
    pub syscalls_only: bool,
    /// `--io`: the page cache, block and writeback I/O below each function.
    pub io: bool,
    /// `--debug-dir`: where separate debug files are looked for (empty:
    /// /usr/lib/debug).
    pub debug_dirs: Vec<PathBuf>,
    /// Read each traced function's source line from debug info: `--list`, a
    /// recording, `--srcline` and JSON show it.
    pub sources: bool,
    /// `-A`/`-R`, in the order given (a later request for a function wins).
    pub values: Vec<ValueRequest>,
}

/// Whether a `-A`/`-R` request reads a function's arguments or its return
/// value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueAt {
    /// `-A`: at the entry.
    Entry,
    /// `-R`: at the return.
    Return,
}

/// One `-A FUNC[@SPEC]` or `-R FUNC[@SPEC]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueRequest {
    /// The FUNC glob, matched against the traced functions as `-f` matches.
    pub pattern: String,
    pub at: ValueAt,
    /// The registers the user named (for `Return`, one spec); `None`: what
    /// the function's debug info says.
    pub spec: Option<Vec<crate::values::ValueSpec>>,
}

impl ValueRequest {
    /// The option as the user spelled it, for messages: `-A 'parse*'`.
    pub fn flag(&self) -> &'static str {
        match self.at {
            ValueAt::Entry => "-A",
            ValueAt::Return => "-R",
        }
    }
}

/// The output formats, live and `--report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Summary,
    CallGraph,
    Json,
    Folded,
    FlameGraph,
    Chrome,
    /// One row per call and per system call, for awk and pandas.
    Csv,
    /// One line per system call, as `strace -f -T` prints it.
    Strace,
    /// `--io`'s table: the I/O below each function, layer by layer.
    Io,
    /// The same as an SVG bar chart.
    IoPlot,
}

/// Sort order of the summary and the JSON function list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Calls,
    Total,
    SelfTime,
    Avg,
    Max,
    Name,
}

/// How the call graph is laid out (live and `--report --format=call-graph`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub tid: bool,
    pub timestamp: bool,
    pub flat: bool,
    pub libname: bool,
    /// Escape codes for a terminal: decided from [`ColorChoice`] where the
    /// output is opened.
    pub color: bool,
}

/// `--color`: whether the call graph is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (no-color.org).
    #[default]
    Auto,
    Always,
    Never,
}

impl Default for Layout {
    /// uftrace's replay layout: durations and the TID column.
    fn default() -> Self {
        Layout {
            tid: true,
            timestamp: false,
            flat: false,
            libname: false,
            color: false,
        }
    }
}

/// How events become output: the format and its knobs, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOptions {
    pub format: Format,
    pub sort: SortKey,
    pub per_thread: bool,
    pub layout: Layout,
    /// `-o`: a file, `-` for stdout (see util::output).
    pub output: Option<PathBuf>,
    pub color: ColorChoice,
    /// What `--report` keeps of the trace (live, BPF filters at the source).
    pub calls: CallFilter,
    /// `--srcline`: the summary shows where each function is defined.
    pub srcline: bool,
}

/// The replay-time filters of `--report` (uftrace's `replay -F/-N/-D/-t`),
/// applied between the pairing and every format: see `report::filter`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// `-f`: matching calls and everything under them.
    pub functions: Vec<String>,
    /// `--no-function`: matching calls and everything under them are hidden.
    pub no_functions: Vec<String>,
    /// `--max-depth`: calls nested deeper than this in the output are hidden.
    pub max_depth: Option<u32>,
    /// `-t`: calls shorter than this are hidden.
    pub min_duration_ns: u64,
    /// `--tid`: only these threads (empty: all).
    pub tids: Vec<u32>,
    /// `--since` / `--until`: only calls running in this window, in ns from
    /// the first call (as the call graph's `--timestamp` column counts).
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
}

impl CallFilter {
    /// Whether it keeps every call, so the stage can be left out.
    pub fn keeps_all(&self) -> bool {
        *self == CallFilter::default()
    }
}

impl ReportOptions {
    /// `format` with the command line's defaults: sorted by total time, the
    /// default layout, to stdout.
    pub fn new(format: Format) -> Self {
        ReportOptions {
            format,
            sort: SortKey::Total,
            per_thread: false,
            layout: Layout::default(),
            output: None,
            color: ColorChoice::Auto,
            calls: CallFilter::default(),
            srcline: false,
        }
    }
}
