//! Command-line parsing. clap lives here only: the rest of the program sees
//! the plain option structs this module converts the arguments into.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

use crate::options::{
    ExitMode, Filter, Format, Layout, Mode, ReportOptions, SortKey, Target, TraceOptions,
};

const EXAMPLES: &str = "\
Examples:
  utrace -c \"./sort -n 5000\"                 run a command and trace it live
  utrace -- ./sort -n 5000                   the same, without quoting
  utrace -p 4242                             attach to a running process; Ctrl-C detaches
  utrace -c ./app -f 'parse*' --no-function 'std::*'
  utrace -c ./app --lib 'libc.so*'           only calls into matching libraries
  utrace -c ./app --nest-lib 'libfoo*'       also trace inside matching libraries
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
    #[arg(short = 'f', long = "function", value_name = "GLOB")]
    function: Vec<String>,

    /// Do not trace functions whose demangled name matches GLOB (repeatable).
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

    /// Sort order of the summary.
    #[arg(long, value_enum, default_value_t = SortArg::Total)]
    sort: SortArg,

    /// Folded stacks: prefix every stack with its thread.
    #[arg(long)]
    per_thread: bool,

    /// Write output (call graph, report, SVG, --list) to FILE instead of
    /// stdout (`-` is stdout). Live with -c, where the command writes to the
    /// same stdout, json, folded, chrome and flame-graph go to utrace.json,
    /// utrace.folded, utrace.chrome.json and utrace.svg unless -o says otherwise.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,

    /// Do not send calls nested deeper than N (0 = outermost calls only); applied in BPF.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_depth)]
    max_depth: Option<u32>,

    /// Only show calls that ran at least TIME, e.g. 10us, 2ms; applied in BPF.
    #[arg(short = 't', long, value_name = "TIME", allow_hyphen_values = true, value_parser = parse_duration)]
    time_filter: Option<u64>,

    /// Show the TID column (the default; kept for eBPF-utrace users).
    #[arg(long, overrides_with = "no_tid")]
    tid: bool,

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
    /// exception crossing such a frame aborts the program). auto: uretprobes
    /// where nothing can unwind through the frame, ret sites elsewhere.
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

/// Parses the process arguments. A bad option value is a [`UsageError`];
/// other usage errors, `--help` and `--version` exit with clap's output.
pub fn parse() -> Result<Mode> {
    match Args::try_parse() {
        Ok(args) => args.into_mode(),
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
    match Args::try_parse_from(argv) {
        Ok(args) => args.into_mode(),
        Err(err) => Err(match usage_error(err) {
            Ok(usage) => usage.into(),
            Err(err) => err.into(),
        }),
    }
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
    fn into_mode(self) -> Result<Mode> {
        let report = ReportOptions {
            format: self.format.map_or(
                if self.report {
                    Format::Summary
                } else {
                    Format::CallGraph
                },
                Format::from,
            ),
            sort: self.sort.into(),
            per_thread: self.per_thread,
            layout: Layout {
                tid: !self.no_tid,
                timestamp: self.timestamp,
                flat: self.flat,
                libname: self.libname,
            },
            output: self.output.clone(),
            srcline: self.srcline,
        };
        if self.report {
            return Ok(Mode::Report(self.data, report));
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
            debug_dirs: self.debug_dir,
            // Asked only where something shows it: a trace file carries it.
            sources: self.list || self.record || self.srcline || report.format == Format::Json,
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

/// Splits a command string the way a POSIX shell would (quotes, escapes);
/// the program is then exec'd directly, with no shell in between.
fn split_command(cmd: &str) -> Result<Vec<String>> {
    let argv = shlex::split(cmd)
        .with_context(|| format!("cannot split command {cmd:?}: unbalanced quotes"))?;
    if argv.is_empty() {
        bail!("-c was given an empty command");
    }
    Ok(argv)
}

/// `-p`: a process id. Negative numbers reach this (clap would otherwise
/// take `-1` for an option) to be refused in words.
fn parse_pid(s: &str) -> Result<u32, String> {
    s.trim()
        .parse()
        .map_err(|_| "-p takes a process id, a number like 4242 (see `ps`)".to_owned())
}

/// `--max-depth`: levels below the outermost call, 0 or more (capped by
/// BPF at its 16-bit depth field, so a huge number means "no limit").
fn parse_depth(s: &str) -> Result<u32, String> {
    let levels: u64 = s
        .trim()
        .parse()
        .map_err(|_| "--max-depth takes a number of levels, 0 or more".to_owned())?;
    Ok(u32::try_from(levels).unwrap_or(u32::MAX))
}

/// `--max-rate`: calls a second.
fn parse_rate(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| "--max-rate takes a number of calls a second, like 10000".to_owned())
}

/// "64K", "16M", or bytes; a power of two from 4 KiB to 1 GiB, as the
/// kernel requires of a ring buffer.
fn parse_size(s: &str) -> Result<u32, String> {
    let (num, scale) = match s.trim().to_ascii_uppercase() {
        t if t.ends_with('K') => (t[..t.len() - 1].to_string(), 1 << 10),
        t if t.ends_with('M') => (t[..t.len() - 1].to_string(), 1 << 20),
        t if t.ends_with('G') => (t[..t.len() - 1].to_string(), 1 << 30),
        t => (t, 1),
    };
    let not_a_size = || format!("--buffer-size {s:?} is not a size like 64K or 16M");
    let n: u64 = num.parse().map_err(|_| not_a_size())?;
    let bytes = n.saturating_mul(scale);
    if !bytes.is_power_of_two() || !(4096..=1 << 30).contains(&bytes) {
        return Err(format!(
            "--buffer-size {s:?}: the ring buffer size must be a power of two from 4K to 1G"
        ));
    }
    Ok(bytes as u32)
}

/// "10us", "2ms", "1.5s", "500ns", or a bare number of nanoseconds.
fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.strip_prefix('-')
        .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit() || c == '.'))
    {
        return Err("--time-filter takes a duration like 10us, not a negative one".to_owned());
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("--time-filter {s:?} is not a duration like 10us or 2ms"))?;
    let scale = match unit {
        "" | "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => {
            return Err(format!(
                "--time-filter {s:?}: unknown unit {unit:?}, use ns, us, ms or s"
            ));
        }
    };
    Ok((value * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
    fn depth_zero_and_huge_depths_parse() {
        assert_eq!(parse_depth("0"), Ok(0));
        assert_eq!(parse_depth("99999999999"), Ok(u32::MAX));
    }

    #[test]
    fn pid_and_command_conflict() {
        assert!(parse_from(["utrace", "-p", "1", "-c", "ls"]).is_err());
    }
}
