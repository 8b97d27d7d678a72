//! Where each option acts. An option given in a mode (or with a format)
//! where it would do nothing is refused in one line saying where it
//! applies, rather than silently ignored. One rule per option; the
//! table-driven test in tests/integration/option_modes.rs runs every cell.

use clap::ArgMatches;
use clap::parser::ValueSource;

use super::UsageError;
use crate::options::Format;

/// The mode of a run, as far as options care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    Live,
    Record,
    Report,
    List,
}

/// What the command line asks for.
pub struct Context {
    pub run: Run,
    /// A command utrace starts (-c or `--`), rather than -p.
    pub command: bool,
    pub format: Format,
}

/// One option: the modes and formats it acts in, and how to say so.
struct Rule {
    /// clap's id of the option (the field name).
    id: &'static str,
    flag: &'static str,
    acts: fn(&Context) -> bool,
    /// "applies to …": where it does act.
    applies: &'static str,
    /// What a refusal names: the mode, or the output format.
    by: By,
}

/// What decides where an option acts, and so what a refusal names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    Mode,
    /// The format, live and with --report.
    Format,
    /// The format when tracing live; else the mode (`-A`: a recording
    /// keeps the values for any format, a report has them already).
    LiveFormat,
}

const fn mode(
    id: &'static str,
    flag: &'static str,
    acts: fn(&Context) -> bool,
    applies: &'static str,
) -> Rule {
    Rule {
        id,
        flag,
        acts,
        applies,
        by: By::Mode,
    }
}

const fn format(
    id: &'static str,
    flag: &'static str,
    acts: fn(&Context) -> bool,
    applies: &'static str,
) -> Rule {
    Rule {
        by: By::Format,
        ..mode(id, flag, acts, applies)
    }
}

const fn live_format(
    id: &'static str,
    flag: &'static str,
    acts: fn(&Context) -> bool,
    applies: &'static str,
) -> Rule {
    Rule {
        by: By::LiveFormat,
        ..mode(id, flag, acts, applies)
    }
}

fn tracing(c: &Context) -> bool {
    c.run != Run::Report
}

fn attaching(c: &Context) -> bool {
    matches!(c.run, Run::Live | Run::Record)
}

fn filtering(c: &Context) -> bool {
    c.run != Run::List
}

fn launching(c: &Context) -> bool {
    attaching(c) && c.command
}

fn reporting(c: &Context) -> bool {
    c.run == Run::Report
}

fn with_output(c: &Context) -> bool {
    c.run != Run::Record
}

fn formatting(c: &Context) -> bool {
    matches!(c.run, Run::Live | Run::Report)
}

fn trace_file(c: &Context) -> bool {
    matches!(c.run, Run::Record | Run::Report)
}

fn sorted(c: &Context) -> bool {
    formatting(c) && matches!(c.format, Format::Summary | Format::Json)
}

fn stacks(c: &Context) -> bool {
    formatting(c) && matches!(c.format, Format::Folded | Format::FlameGraph)
}

fn summary(c: &Context) -> bool {
    formatting(c) && c.format == Format::Summary
}

/// `-A`/`-R`: read when probing; live, only the formats that show values.
fn valued(c: &Context) -> bool {
    match c.run {
        Run::Record => true,
        Run::Live => matches!(c.format, Format::CallGraph | Format::Chrome),
        Run::Report | Run::List => false,
    }
}

fn call_graph(c: &Context) -> bool {
    formatting(c) && c.format == Format::CallGraph
}

const TRACING: &str = "tracing (-c, -p, --record, --list)";
const ATTACHING: &str = "tracing (-c, -p, --record)";
const LAUNCHING: &str = "a command utrace starts (-c or --)";
const REPORT: &str = "--report (a recorded trace)";
const CALL_GRAPH: &str = "the call graph (--format=call-graph)";
const VALUED: &str = "tracing with --format=call-graph or chrome (-c, -p), and --record";

/// Every option but the ones that choose the mode and the target.
const RULES: &[Rule] = &[
    mode("lib", "--lib", tracing, TRACING),
    mode("no_lib", "--no-lib", tracing, TRACING),
    mode("nest_lib", "--nest-lib", tracing, TRACING),
    mode("exit", "--exit", tracing, TRACING),
    mode("buffer_size", "--buffer-size", attaching, ATTACHING),
    mode("max_rate", "--max-rate", attaching, ATTACHING),
    mode("user", "-u", launching, LAUNCHING),
    mode(
        "no_randomize_addr",
        "--no-randomize-addr",
        launching,
        LAUNCHING,
    ),
    mode("no_follow", "--no-follow", launching, LAUNCHING),
    mode("syscalls", "--syscalls", attaching, ATTACHING),
    mode("syscalls_only", "--syscalls-only", attaching, ATTACHING),
    mode("io", "--io", attaching, ATTACHING),
    mode("debug_dir", "--debug-dir", tracing, TRACING),
    live_format("argument", "-A", valued, VALUED),
    live_format("retval", "-R", valued, VALUED),
    mode(
        "max_depth",
        "--max-depth",
        filtering,
        "tracing and --report",
    ),
    mode("time_filter", "-t", filtering, "tracing and --report"),
    mode("tid", "--tid", reporting, REPORT),
    mode("since", "--since", reporting, REPORT),
    mode("until", "--until", reporting, REPORT),
    mode("data", "-d", trace_file, "--record and --report"),
    mode(
        "output",
        "-o",
        with_output,
        "live output, --report and --list (--record writes to -d)",
    ),
    mode(
        "format",
        "--format",
        formatting,
        "live output and --report (--record stores every event)",
    ),
    format("sort", "--sort", sorted, "--format=summary and json"),
    format("srcline", "--srcline", summary, "--format=summary"),
    format(
        "per_thread",
        "--per-thread",
        stacks,
        "--format=folded and flame-graph",
    ),
    format("no_tid", "--no-tid", call_graph, CALL_GRAPH),
    format("timestamp", "--timestamp", call_graph, CALL_GRAPH),
    format("flat", "--flat", call_graph, CALL_GRAPH),
    format("libname", "--libname", call_graph, CALL_GRAPH),
    format("color", "--color", call_graph, CALL_GRAPH),
];

/// Refuses the first option of `matches` given where it does nothing.
pub fn check(matches: &ArgMatches, ctx: &Context) -> Result<(), UsageError> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    match RULES.iter().find(|r| given(r.id) && !(r.acts)(ctx)) {
        Some(rule) => Err(UsageError::new(format!(
            "{} applies to {}, not to {}",
            rule.flag,
            rule.applies,
            this(rule, ctx)
        ))),
        None => Ok(()),
    }
}

/// What the run is, in the words of the rule that refused an option.
fn this(rule: &Rule, ctx: &Context) -> String {
    match ctx.run {
        Run::Live | Run::Report if rule.by == By::Format => {
            format!("--format={}", name(ctx.format))
        }
        Run::Live if rule.by == By::LiveFormat => format!("--format={}", name(ctx.format)),
        Run::Live if rule.applies == LAUNCHING => "-p".to_owned(),
        Run::Record if rule.applies == LAUNCHING => "--record -p".to_owned(),
        Run::Live => "live tracing".to_owned(),
        Run::Record => "--record".to_owned(),
        Run::Report => "--report".to_owned(),
        Run::List => "--list".to_owned(),
    }
}

fn name(format: Format) -> &'static str {
    match format {
        Format::Summary => "summary",
        Format::CallGraph => "call-graph",
        Format::Json => "json",
        Format::Folded => "folded",
        Format::FlameGraph => "flame-graph",
        Format::Chrome => "chrome",
        Format::Csv => "csv",
        Format::Strace => "strace",
        Format::Io => "io",
        Format::IoPlot => "io-plot",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every option of the command line has a rule, or chooses the mode
    /// or the target: a new option cannot be silently ignored somewhere.
    #[test]
    fn every_option_has_a_rule() {
        let chooses = [
            "command",
            "argv",
            "pid",
            "list",
            "record",
            "report",
            "function",
            "no_function",
        ];
        let cmd = super::super::Args::command();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") || chooses.contains(&id) {
                continue;
            }
            assert!(RULES.iter().any(|r| r.id == id), "no scope rule for {id}");
        }
    }
}
