//! Command-line parsing. clap lives here only: the rest of the program sees
//! the plain option structs this module converts the arguments into.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::options::{
    CallFilter, ColorChoice, ExitMode, Filter, Format, Layout, Mode, ReportOptions, SortKey,
    Target, TraceOptions, ValueRequest,
};

mod scope;
mod values;

use values::{
    parse_argument, parse_depth, parse_duration, parse_pid, parse_rate, parse_retval, parse_since,
    parse_size, parse_syscalls, parse_tid, parse_until, split_command,
};

const EXAMPLES: &str = "\
Examples:
  utrace -c \"./sort -n 5000\"                 run a command and trace it live
  utrace -- ./sort -n 5000                   the same, without quoting
  utrace -p 4242                             attach to a running process; Ctrl-C detaches
  utrace -c ./app -f 'parse*' --no-function 'std::*'
  utrace -c ./app --lib 'libc.so*'           only calls into matching libraries
  utrace -c ./app --nest-lib 'libfoo*'       also trace inside matching libraries
  utrace -c ./app -f 'parse*' -A 'parse*' -R 'parse*'   with arguments and return values
  utrace -c ./app --list                     show what would be traced, attach nothing
  utrace --record -c \"./sort -n 5000\"        write ./utrace.data
  utrace --report --format=summary           per-function table from ./utrace.data
  utrace --report --format=flame-graph -o flame.svg";

#[derive(Parser, Debug)]
#[command(
    name = "utrace",
    version,
    about = "Trace every call of the functions you choose in an unmodified program, with timings (eBPF uprobes).",
    after_help = EXAMPLES,
    arg_required_else_help = true
)]
struct Args {
    /// Run COMMAND (split like a shell would) and trace it from its first instruction.
    #[arg(short = 'c', long = "command", value_name = "COMMAND", conflicts_with_all = ["pid", "report"])]
    command: Option<String>,

    /// The command and its arguments, after `--` (instead of -c).
    #[arg(last = true, value_name = "ARGS", conflicts_with_all = ["command", "pid", "report"])]
    argv: Vec<String>,

    /// Attach to the running process PID; Ctrl-C detaches and leaves it running.
    #[arg(
        short = 'p',
        long = "pid",
        value_name = "PID",
        conflicts_with = "report",
        allow_negative_numbers = true,
        value_parser = parse_pid
    )]
    pid: Option<u32>,

    /// Trace only functions whose demangled name matches GLOB (repeatable).
    /// With --report: show the matching calls and all they call (uftrace's -F).
    #[arg(short = 'f', long = "function", value_name = "GLOB")]
    function: Vec<String>,

    /// Do not trace functions whose demangled name matches GLOB (repeatable).
    /// With --report: hide the matching calls and all they call (uftrace's -N).
    #[arg(long = "no-function", value_name = "GLOB")]
    no_function: Vec<String>,

    /// Trace only library calls (PLT) into libraries matching GLOB, e.g. 'libc.so*'.
    #[arg(short = 'l', long = "lib", value_name = "GLOB")]
    lib: Vec<String>,

    /// Do not trace library calls into libraries matching GLOB.
    #[arg(long = "no-lib", value_name = "GLOB")]
    no_lib: Vec<String>,

    /// Also trace the functions inside shared libraries matching GLOB.
    #[arg(long = "nest-lib", value_name = "GLOB")]
    nest_lib: Vec<String>,

    /// Show the arguments of the traced functions matching FUNC (a glob, as
    /// -f matches; repeatable): their names, types and registers from debug
    /// info, or the registers SPEC lists (uftrace's syntax: argN[/FMT] for
    /// integer argument N, fpargN[/32] for float argument N; FMT d, i, u, x
    /// with a size 8/16/32/64, s string, c char, p pointer, b bool).
    /// Examples: -A 'parse*', -A 'f@arg1,arg2/s', -A 'malloc@plt@arg1/u'.
    #[arg(short = 'A', long = "argument", value_name = "FUNC[@SPEC]", value_parser = parse_argument)]
    argument: Vec<ValueRequest>,

    /// Show the return values of the traced functions matching FUNC (as
    /// -A; repeatable): typed from debug info, or as SPEC says, which is
    /// retval[/FMT] (rax). Examples: -R 'parse*', -R 'f@retval/x'.
    #[arg(short = 'R', long = "retval", value_name = "FUNC[@SPEC]", value_parser = parse_retval)]
    retval: Vec<ValueRequest>,

    /// Print what would be traced (module, offset, probe path, name) and exit.
    #[arg(long)]
    list: bool,

    /// Record to the trace file (-d) instead of printing live.
    #[arg(long, conflicts_with_all = ["report", "list"])]
    record: bool,

    /// Read the trace file (-d) and print a report (--format).
    #[arg(long, conflicts_with = "list")]
    report: bool,

    /// The trace file for --record and --report.
    #[arg(
        short = 'd',
        long = "data",
        value_name = "FILE",
        default_value = "utrace.data"
    )]
    data: PathBuf,

    /// Report format (with --report, or live to aggregate without streaming events).
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<FormatArg>,

    /// Sort order of the summary and the JSON report.
    #[arg(long, value_enum, default_value_t = SortArg::Total)]
    sort: SortArg,

    /// Folded stacks and flame graphs: prefix every stack with its thread.
    #[arg(long)]
    per_thread: bool,

    /// Write output (call graph, report, SVG, --list) to FILE instead of
    /// stdout (`-` is stdout). Live with -c, where the command writes to the
    /// same stdout, json, folded, chrome and flame-graph go to utrace.json,
    /// utrace.folded, utrace.chrome.json and utrace.svg unless -o says otherwise.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,

    /// Do not show calls nested deeper than N (0 = outermost calls only);
    /// applied in BPF when tracing, to the shown tree with --report.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_depth)]
    max_depth: Option<u32>,

    /// Only show calls that ran at least TIME, e.g. 10us, 2ms, and their
    /// callers; applied in BPF when tracing, to the calls shown with --report.
    #[arg(short = 't', long, value_name = "TIME", allow_hyphen_values = true, value_parser = parse_duration)]
    time_filter: Option<u64>,

    /// With --report: only the calls of these threads (comma-separated, repeatable).
    #[arg(long, value_name = "TID,...", value_delimiter = ',', value_parser = parse_tid)]
    tid: Vec<u32>,

    /// With --report: only calls running after SECONDS from the first call
    /// (0.5, or 500ms; as the --timestamp column counts).
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true, value_parser = parse_since)]
    since: Option<u64>,

    /// With --report: only calls running before SECONDS from the first call.
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true, value_parser = parse_until)]
    until: Option<u64>,

    /// Hide the TID column.
    #[arg(long)]
    no_tid: bool,

    /// Show a timestamp column (seconds since the trace started).
    #[arg(long)]
    timestamp: bool,

    /// One line per entry and exit, no nesting.
    #[arg(long)]
    flat: bool,

    /// Append the module name to every function: `name@libfoo.so`.
    #[arg(long)]
    libname: bool,

    /// Colour the call graph: function names bold, durations of 1 ms and
    /// more green, 1 s yellow, 1 min red (as uftrace). auto: on a terminal,
    /// unless NO_COLOR is set.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorArg::Auto)]
    color: ColorArg,

    /// Run the command as USER: a name or a uid, optionally with :GROUP (a
    /// name or a gid; default: the user's own). With -c.
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    user: Option<String>,

    /// Disable address space layout randomization for the command (with -c).
    #[arg(long)]
    no_randomize_addr: bool,

    /// How function ends are seen. ret-sites: probes on each function's
    /// return instructions (survives C++ exceptions, longjmp, deep
    /// recursion; a second trap per call). uretprobe / session: the kernel
    /// hijacks the return address, as other tracers do (cheap, but a C++
    /// exception crossing such a frame aborts the program). auto: session
    /// returns wherever no unwinder can walk the frame (longjmp included),
    /// ret sites for deeper than 60 calls and in C++/Rust code that calls
    /// out, or for a function only ever called directly, probes where its
    /// calls return (--list shows the choice).
    #[arg(long, value_enum, default_value_t = ExitArg::Auto, value_name = "MODE")]
    exit: ExitArg,

    /// Size of the BPF ring buffer, e.g. 16M (a power of two, at least 4K). A
    /// larger buffer absorbs longer bursts before events are lost.
    #[arg(long, value_name = "SIZE", default_value = "16M", allow_hyphen_values = true, value_parser = parse_size)]
    buffer_size: u32,

    /// Stop tracing a function once it is called more than N times in a
    /// second (its probes are removed on the fly); the functions dropped are
    /// listed at the end. A live --format=summary checks once a second.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_rate)]
    max_rate: Option<u64>,

    /// Do not trace children the program forks.
    #[arg(long)]
    no_follow: bool,

    /// Also trace system calls, each a leaf under the traced call that made
    /// it. SET is strace's -e trace= list: names and classes (%file, %net,
    /// %desc, %process, %memory, %signal, %ipc), `!` to negate; default all.
    #[arg(long, value_name = "SET", num_args = 0..=1, require_equals = true,
          default_missing_value = "all", value_parser = parse_syscalls)]
    syscalls: Option<crate::syscall::Set>,

    /// Trace system calls and no functions: every thread of the program and
    /// of the children it forks, one line per call as strace -f -T prints
    /// it (live), or any --format. Takes the set of --syscalls=SET.
    #[arg(long, conflicts_with_all = ["function", "lib", "nest_lib"])]
    syscalls_only: bool,

    /// Follow the bytes below each function: page cache (hits, misses,
    /// dirtied pages), block requests and device time, and writeback, also
    /// when a kernel thread does it later (it goes to the function that
    /// dirtied the pages). Traces the read/write and sync system calls unless
    /// --syscalls says which; --format=io shows the table, counted in BPF
    /// with no system call tracepoint (the bytes come from each thread's
    /// rchar/wchar, as /proc/PID/io counts them).
    #[arg(long)]
    io: bool,
    /// Look for separate debug files (by build-id, then .gnu_debuglink) in
    /// DIR instead of /usr/lib/debug (repeatable).
    #[arg(long = "debug-dir", value_name = "DIR")]
    debug_dir: Vec<PathBuf>,

    /// Show where each function is defined (file:line, from debug info) in
    /// the summary.
    #[arg(long)]
    srcline: bool,
}

/// The command line's spelling of [`Format`].
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum FormatArg {
    Summary,
    CallGraph,
    Json,
    Folded,
    FlameGraph,
    Chrome,
    Csv,
    Strace,
    Io,
    IoPlot,
}

impl From<FormatArg> for Format {
    fn from(arg: FormatArg) -> Self {
        match arg {
            FormatArg::Summary => Format::Summary,
            FormatArg::CallGraph => Format::CallGraph,
            FormatArg::Json => Format::Json,
            FormatArg::Folded => Format::Folded,
            FormatArg::FlameGraph => Format::FlameGraph,
            FormatArg::Chrome => Format::Chrome,
            FormatArg::Csv => Format::Csv,
            FormatArg::Strace => Format::Strace,
            FormatArg::Io => Format::Io,
            FormatArg::IoPlot => Format::IoPlot,
        }
    }
}

/// The command line's spelling of [`ExitMode`].
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ExitArg {
    Auto,
    RetSites,
    Uretprobe,
    Session,
}

impl From<ExitArg> for ExitMode {
    fn from(arg: ExitArg) -> Self {
        match arg {
            ExitArg::Auto => ExitMode::Auto,
            ExitArg::RetSites => ExitMode::RetSites,
            ExitArg::Uretprobe => ExitMode::Uretprobe,
            ExitArg::Session => ExitMode::Session,
        }
    }
}

/// The command line's spelling of [`ColorChoice`].
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ColorArg {
    Auto,
    Always,
    Never,
}

impl From<ColorArg> for ColorChoice {
    fn from(arg: ColorArg) -> Self {
        match arg {
            ColorArg::Auto => ColorChoice::Auto,
            ColorArg::Always => ColorChoice::Always,
            ColorArg::Never => ColorChoice::Never,
        }
    }
}

/// The command line's spelling of [`SortKey`].
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SortArg {
    Calls,
    Total,
    #[value(name = "self")]
    SelfTime,
    Avg,
    Max,
    Name,
}

impl From<SortArg> for SortKey {
    fn from(arg: SortArg) -> Self {
        match arg {
            SortArg::Calls => SortKey::Calls,
            SortArg::Total => SortKey::Total,
            SortArg::SelfTime => SortKey::SelfTime,
            SortArg::Avg => SortKey::Avg,
            SortArg::Max => SortKey::Max,
            SortArg::Name => SortKey::Name,
        }
    }
}

/// A value the command line cannot take, said in one line (the caller
/// exits with status 2, as clap does for other usage errors).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

impl UsageError {
    pub(crate) fn new(line: String) -> Self {
        UsageError(line)
    }
}

/// The clap definition, for the shell completions and the man page that
/// examples/gen-completions writes.
pub fn command() -> clap::Command {
    Args::command()
}

/// Parses the process arguments. A bad option value, or an option given
/// where it does nothing, is a [`UsageError`]; other usage errors,
/// `--help` and `--version` exit with clap's output.
pub fn parse() -> Result<Mode> {
    match Args::command().try_get_matches() {
        Ok(matches) => into_mode(&matches),
        Err(err) => Err(usage_error(err).unwrap_or_else(|err| err.exit()).into()),
    }
}

/// Parses an explicit argv; for tests.
#[cfg(test)]
fn parse_from<I, T>(argv: I) -> Result<Mode>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Args::command().try_get_matches_from(argv) {
        Ok(matches) => into_mode(&matches),
        Err(err) => Err(match usage_error(err) {
            Ok(usage) => usage.into(),
            Err(err) => err.into(),
        }),
    }
}

/// The mode `matches` asks for, once every option given is one that acts
/// in that mode (see `scope`).
fn into_mode(matches: &clap::ArgMatches) -> Result<Mode> {
    let args = Args::from_arg_matches(matches)?;
    let run = match (args.report, args.list, args.record) {
        (true, ..) => scope::Run::Report,
        (_, true, _) => scope::Run::List,
        (.., true) => scope::Run::Record,
        _ => scope::Run::Live,
    };
    let ctx = scope::Context {
        run,
        command: args.command.is_some() || !args.argv.is_empty(),
        format: args.format(),
    };
    scope::check(matches, &ctx)?;
    args.into_mode()
}

/// A value our parsers refused, as the one line they wrote (clap's own
/// rendering adds a usage block and, for a value starting with `-`, a tip to
/// pass it after `--`, which is wrong here); any other error as it was.
fn usage_error(err: clap::Error) -> Result<UsageError, clap::Error> {
    use std::error::Error as _;
    if err.kind() != clap::error::ErrorKind::ValueValidation {
        return Err(err);
    }
    match err.source() {
        Some(reason) => Ok(UsageError(reason.to_string())),
        None => Err(err),
    }
}

impl Args {
    /// `--format`, or the default: the summary for a report, else the call graph.
    fn format(&self) -> Format {
        let default = match (self.report, self.syscalls_only) {
            (true, _) => Format::Summary,
            (false, true) => Format::Strace,
            (false, false) => Format::CallGraph,
        };
        self.format.map_or(default, Format::from)
    }

    fn into_mode(self) -> Result<Mode> {
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since > until
        {
            return Err(UsageError(
                "--since is after --until: the window holds no call".to_owned(),
            )
            .into());
        }
        // The live I/O table takes its bytes from each thread's own counts
        // and traces no system call: a set given for it would mean nothing.
        let io_table = matches!(self.format(), Format::Io | Format::IoPlot);
        if io_table && self.syscalls.is_some() && !self.record && !self.report && !self.list {
            return Err(UsageError(
                "--syscalls: the live --format=io traces no system call (its bytes are each \
                 thread's read/write counts): drop --syscalls, or --record and --report \
                 --format=io to have both"
                    .to_owned(),
            )
            .into());
        }
        let report = ReportOptions {
            format: self.format(),
            sort: self.sort.into(),
            per_thread: self.per_thread,
            layout: Layout {
                tid: !self.no_tid,
                timestamp: self.timestamp,
                flat: self.flat,
                libname: self.libname,
                color: false,
            },
            output: self.output.clone(),
            color: self.color.into(),
            calls: CallFilter::default(),
            srcline: self.srcline,
        };
        if self.report {
            let calls = CallFilter {
                functions: self.function,
                no_functions: self.no_function,
                max_depth: self.max_depth,
                min_duration_ns: self.time_filter.unwrap_or(0),
                tids: self.tid,
                since_ns: self.since,
                until_ns: self.until,
            };
            return Ok(Mode::Report(self.data, ReportOptions { calls, ..report }));
        }
        let target = match (self.command, self.argv, self.pid) {
            (Some(cmd), _, None) => Target::Command(split_command(&cmd)?),
            (None, argv, None) if !argv.is_empty() => Target::Command(argv),
            (None, _, Some(pid)) => Target::Pid(pid),
            _ => {
                bail!("nothing to trace: give -c COMMAND, -- COMMAND ARGS…, or -p PID (see --help)")
            }
        };
        let trace = TraceOptions {
            target,
            filter: Filter {
                functions: self.function,
                no_functions: self.no_function,
                libs: self.lib,
                no_libs: self.no_lib,
                nest_libs: self.nest_lib,
            },
            max_depth: self.max_depth,
            min_duration_ns: self.time_filter.unwrap_or(0),
            user: self.user,
            no_randomize_addr: self.no_randomize_addr,
            follow_forks: !self.no_follow,
            buffer_bytes: self.buffer_size,
            max_rate: self.max_rate,
            exit: self.exit.into(),
            syscalls_only: self.syscalls_only,
            syscalls: match (self.syscalls, self.syscalls_only, self.io) {
                (None, true, _) => Some(crate::syscall::Set::all()),
                (None, false, true) => Some(io_syscalls()),
                (set, _, _) => set,
            },
            io: self.io,
            debug_dirs: self.debug_dir,
            // Asked only where something shows it: a trace file carries it.
            sources: self.list || self.record || self.srcline || report.format == Format::Json,
            values: self.argument.into_iter().chain(self.retval).collect(),
        };
        Ok(if self.list {
            Mode::List(trace, report.output)
        } else if self.record {
            Mode::Record(trace, self.data)
        } else {
            Mode::Live(trace, report)
        })
    }
}

/// `--io` without `--syscalls`: the calls that move file bytes or force them out.
fn io_syscalls() -> crate::syscall::Set {
    const IO: &str = "read,write,pread64,pwrite64,readv,writev,preadv,pwritev,preadv2,pwritev2,\
                      sendfile,copy_file_range,splice,fsync,fdatasync,sync_file_range,sync,syncfs";
    crate::syscall::Set::parse(IO).unwrap_or_else(|_| crate::syscall::Set::all())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn command_after_double_dash_keeps_its_own_flags() {
        let mode =
            parse_from(["utrace", "-f", "main", "--", "./sort", "-n", "5", "--list"]).unwrap();
        let Mode::Live(trace, _) = mode else {
            panic!("expected live mode, got {mode:?}")
        };
        assert_eq!(
            trace.target,
            Target::Command(vec![
                "./sort".into(),
                "-n".into(),
                "5".into(),
                "--list".into()
            ])
        );
        assert_eq!(trace.filter.functions, vec!["main".to_string()]);
    }

    #[test]
    fn command_string_is_split_like_a_shell() {
        let mode = parse_from(["utrace", "-c", "./app 'a b' c\\ d"]).unwrap();
        let Mode::Live(trace, _) = mode else {
            panic!("expected live mode")
        };
        assert_eq!(
            trace.target,
            Target::Command(vec!["./app".into(), "a b".into(), "c d".into()])
        );
    }

    #[test]
    fn debug_dirs_repeat_and_sources_are_read_only_where_shown() {
        let argv = [
            "utrace",
            "--debug-dir",
            "/a",
            "--debug-dir",
            "/b",
            "--srcline",
            "--format=summary",
            "--",
            "x",
        ];
        let Mode::Live(trace, report) = parse_from(argv).unwrap() else {
            panic!("expected live mode")
        };
        assert_eq!(trace.debug_dirs, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(trace.sources && report.srcline);
        let sources = |argv: &[&str]| match parse_from(argv.iter().copied()).unwrap() {
            Mode::Live(t, _) | Mode::Record(t, _) | Mode::List(t, _) => t.sources,
            Mode::Report(..) => panic!("no trace options"),
        };
        assert!(!sources(&["utrace", "--", "x"]));
        assert!(sources(&["utrace", "--list", "--", "x"]));
        assert!(sources(&["utrace", "--record", "--", "x"]));
        assert!(sources(&["utrace", "--format=json", "--", "x"]));
        let Mode::Report(_, report) = parse_from(["utrace", "--report", "--srcline"]).unwrap()
        else {
            panic!("expected report")
        };
        assert!(report.srcline);
    }

    #[test]
    fn report_defaults_to_summary_of_utrace_data() {
        let mode = parse_from(["utrace", "--report"]).unwrap();
        let Mode::Report(path, opts) = mode else {
            panic!("expected report")
        };
        assert_eq!(path, PathBuf::from("utrace.data"));
        assert_eq!(opts.format, Format::Summary);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10us"), Ok(10_000));
        assert_eq!(parse_duration("1.5ms"), Ok(1_500_000));
        assert_eq!(parse_duration("7"), Ok(7));
        assert!(parse_duration("3 parsecs").is_err());
    }

    #[test]
    fn sizes_parse_and_huge_ones_are_refused_not_wrapped() {
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        let too_big = "the ring buffer size must be a power of two from 4K to 1G";
        // 2^34 G overflows u64: refused, never wrapped into a valid size.
        for s in ["17179869184G", "18446744073709551615K", "2G", "3K"] {
            let err = parse_size(s).unwrap_err();
            assert!(err.ends_with(too_big), "{s}: {err}");
        }
        assert!(parse_size("lots").unwrap_err().contains("is not a size"));
    }

    #[test]
    fn negative_values_are_refused_in_one_line_not_taken_for_options() {
        let refused = |argv: &[&str]| {
            let err = parse_from(["utrace"].iter().chain(argv)).unwrap_err();
            assert!(err.is::<UsageError>(), "{argv:?}: {err:?}");
            err.to_string()
        };
        let levels = "--max-depth takes a number of levels, 0 or more";
        assert_eq!(refused(&["--max-depth", "-1", "--", "ls"]), levels);
        assert_eq!(refused(&["--max-depth=-1", "--", "ls"]), levels);
        assert_eq!(refused(&["--max-depth", "lots", "--", "ls"]), levels);
        let negative = "--time-filter takes a duration like 10us, not a negative one";
        assert_eq!(refused(&["-t", "-5us", "--", "ls"]), negative);
        assert_eq!(refused(&["--time-filter", "-5", "--", "ls"]), negative);
        // An option where the value should be is not called a negative duration.
        assert_eq!(
            refused(&["-t", "--flat", "--", "ls"]),
            "--time-filter \"--flat\" is not a duration like 10us or 2ms"
        );
        assert_eq!(
            refused(&["-p", "-1"]),
            "-p takes a process id, a number like 4242 (see `ps`)"
        );
        assert_eq!(
            refused(&["--max-rate", "-3", "--", "ls"]),
            "--max-rate takes a number of calls a second, like 10000"
        );
        assert_eq!(
            refused(&["--buffer-size", "-4K", "--", "ls"]),
            "--buffer-size \"-4K\" is not a size like 64K or 16M"
        );
    }

    #[test]
    fn report_takes_the_replay_filters() {
        let mode = parse_from([
            "utrace",
            "--report",
            "-f",
            "main",
            "--no-function",
            "fib",
            "--max-depth",
            "2",
            "-t",
            "1us",
            "--tid",
            "7,8",
            "--tid",
            "9",
            "--since",
            "0.5",
            "--until",
            "750ms",
        ])
        .unwrap();
        let Mode::Report(_, opts) = mode else {
            panic!("expected report, got {mode:?}")
        };
        let expected = CallFilter {
            functions: vec!["main".into()],
            no_functions: vec!["fib".into()],
            max_depth: Some(2),
            min_duration_ns: 1_000,
            tids: vec![7, 8, 9],
            since_ns: Some(500_000_000),
            until_ns: Some(750_000_000),
        };
        assert_eq!(opts.calls, expected);
    }

    #[test]
    fn options_that_do_nothing_in_a_mode_are_refused_in_one_line() {
        let refused = |argv: &[&str]| {
            let err = parse_from(["utrace"].iter().chain(argv)).unwrap_err();
            assert!(err.is::<UsageError>(), "{argv:?}: {err:?}");
            err.to_string()
        };
        assert_eq!(
            refused(&["--tid", "1", "--", "ls"]),
            "--tid applies to --report (a recorded trace), not to live tracing"
        );
        assert_eq!(
            refused(&["--report", "--lib", "libc*"]),
            "--lib applies to tracing (-c, -p, --record, --list), not to --report"
        );
        assert_eq!(
            refused(&["--sort", "calls", "--", "ls"]),
            "--sort applies to --format=summary and json, not to --format=call-graph"
        );
        assert_eq!(
            refused(&["-u", "nobody", "-p", "1"]),
            "-u applies to a command utrace starts (-c or --), not to -p"
        );
        assert_eq!(
            refused(&["--report", "--since", "2", "--until", "1"]),
            "--since is after --until: the window holds no call"
        );
    }

    #[test]
    fn arguments_and_retvals_keep_their_order_and_specs() {
        use crate::options::ValueAt;
        use crate::values::{Format, Slot, ValueSpec};
        let argv = [
            "utrace",
            "-R",
            "f@retval/x",
            "-A",
            "parse*",
            "-A",
            "f@arg1,arg2/s",
            "-A",
            "malloc@plt",
            "--",
            "x",
        ];
        let Mode::Live(trace, _) = parse_from(argv).unwrap() else {
            panic!("expected live mode")
        };
        let got: Vec<_> = (trace.values.iter())
            .map(|r| (r.pattern.as_str(), r.at, r.spec.as_ref().map(Vec::len)))
            .collect();
        assert_eq!(
            got,
            [
                ("parse*", ValueAt::Entry, None),
                ("f", ValueAt::Entry, Some(2)),
                ("malloc@plt", ValueAt::Entry, None),
                ("f", ValueAt::Return, Some(1)),
            ]
        );
        let ret = ValueSpec {
            name: None,
            slot: Slot::Ret(0),
            format: Format::Hex(8),
        };
        assert_eq!(trace.values[3].spec, Some(vec![ret]));
        let refused = |argv: &[&str]| parse_from(argv.iter().copied()).unwrap_err().to_string();
        assert!(
            refused(&["utrace", "-A", "f@arg1,ar2", "--", "x"])
                .starts_with("-A 'f@arg1,ar2': \"ar2\" is not an argument: use argN")
        );
        assert!(
            refused(&["utrace", "-R", "@retval", "--", "x"])
                .starts_with("-R '@retval' names no function")
        );
        assert_eq!(
            refused(&["utrace", "--format=summary", "-A", "f", "--", "x"]),
            "-A applies to tracing with --format=call-graph or chrome (-c, -p), and --record, \
             not to --format=summary"
        );
    }

    #[test]
    fn depth_zero_and_huge_depths_parse() {
        assert_eq!(parse_depth("0"), Ok(0));
        assert_eq!(parse_depth("99999999999"), Ok(u32::MAX));
    }

    #[test]
    fn pid_and_command_conflict() {
        assert!(parse_from(["utrace", "-p", "1", "-c", "ls"]).is_err());
    }
}
