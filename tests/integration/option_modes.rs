//! Every option of `utrace --help`, in every mode: live with -c, live with
//! -p, --record, --report and --list. In each cell the option either acts
//! (a check of what it does) or is refused with its exact one-line error.
//! The options that choose the mode and the target (-c, --, -p, --list,
//! --record, --report) are the columns; -h and -V print and exit.
//!
//! Every cell traces spin.c's `spin -n 3`: it prints its pid, waits for
//! SIGUSR1, then calls tick() 3 times and finish() once, so -c and -p see
//! the same calls. A cell that is refused never reaches BPF.

use crate::common::{count_calls, require_bpf, summary_calls, utrace};

#[path = "option_modes/run.rs"]
mod run;
use run::run_cell;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Command,
    Pid,
    Record,
    Report,
    List,
}

/// What one cell's run produced.
struct Ran {
    /// The output: -o's file live, the call graph of the recording for
    /// --record, stdout for --report and --list.
    out: String,
    stdout: String,
    stderr: String,
    code: Option<i32>,
    /// The target's /proc/PID/status Uid and /proc/PID/personality, read
    /// while it waited for SIGUSR1 (-c and --record).
    uid: Option<String>,
    personality: Option<String>,
}

type Check = fn(&Ran, Col) -> Result<(), String>;

enum Cell {
    Acts(Check),
    Refused(&'static str),
}
use Cell::{Acts, Refused};

/// One option: its arguments (`{dir}` is the cell's own directory,
/// `{trace}` the trace file: the one recorded, or the one reported) and
/// its five cells.
struct Row {
    args: &'static [&'static str],
    cells: [Cell; 5],
}

fn row(args: &'static [&'static str], cells: [Cell; 5]) -> Row {
    Row { args, cells }
}

const TRACING: &str = "tracing (-c, -p, --record, --list)";
const ATTACHING: &str = "tracing (-c, -p, --record)";
const LAUNCHING: &str = "a command utrace starts (-c or --)";
const REPORT: &str = "--report (a recorded trace)";
const VALUED: &str = "tracing with --format=call-graph or chrome (-c, -p), and --record";

/// Columns in the order of [`Col`].
fn table() -> Vec<Row> {
    let on_report = |flag: &'static str| -> &'static str {
        Box::leak(format!("{flag} applies to {REPORT}, not to live tracing").into_boxed_str())
    };
    let refused = |flag: &str, applies: &str, this: &str| -> Cell {
        Refused(Box::leak(
            format!("{flag} applies to {applies}, not to {this}").into_boxed_str(),
        ))
    };
    let graph_only = |flag: &str| -> [Cell; 5] {
        let applies = "the call graph (--format=call-graph)";
        [
            Acts(layout),
            Acts(layout),
            refused(flag, applies, "--record"),
            Acts(layout),
            refused(flag, applies, "--list"),
        ]
    };
    let tracing_only = |flag: &str, check: Check| -> [Cell; 5] {
        [
            Acts(check),
            Acts(check),
            Acts(check),
            refused(flag, TRACING, "--report"),
            Acts(check),
        ]
    };
    let attaching_only = |flag: &str, check: Check| -> [Cell; 5] {
        [
            Acts(check),
            Acts(check),
            Acts(check),
            refused(flag, ATTACHING, "--report"),
            refused(flag, ATTACHING, "--list"),
        ]
    };
    let launching_only = |flag: &str, check: Check| -> [Cell; 5] {
        [
            Acts(check),
            refused(flag, LAUNCHING, "-p"),
            Acts(check),
            refused(flag, LAUNCHING, "--report"),
            refused(flag, LAUNCHING, "--list"),
        ]
    };
    let report_only = |flag: &'static str, check: Check| -> [Cell; 5] {
        [
            Refused(on_report(flag)),
            Refused(on_report(flag)),
            refused(flag, REPORT, "--record"),
            Acts(check),
            refused(flag, REPORT, "--list"),
        ]
    };
    // -A/-R: read by the probes; live, only where values are shown.
    let valued = |flag: &str, check: Check| -> [Cell; 5] {
        [
            Acts(check),
            Acts(check),
            Acts(check),
            refused(flag, VALUED, "--report"),
            refused(flag, VALUED, "--list"),
        ]
    };
    let unvalued = |flag: &str| -> [Cell; 5] {
        [
            refused(flag, VALUED, "--format=summary"),
            refused(flag, VALUED, "--format=summary"),
            refused(
                "--format",
                "live output and --report (--record stores every event)",
                "--record",
            ),
            refused(flag, VALUED, "--report"),
            refused(flag, VALUED, "--list"),
        ]
    };
    let filters = "tracing and --report";
    let format_refused = |this: &str| {
        refused(
            "--format",
            "live output and --report (--record stores every event)",
            this,
        )
    };
    vec![
        row(
            &["-f", "tick"],
            [
                Acts(only_tick),
                Acts(only_tick),
                Acts(only_tick),
                Acts(only_tick),
                Acts(only_tick),
            ],
        ),
        row(
            &["--no-function", "tick"],
            [
                Acts(no_tick),
                Acts(no_tick),
                Acts(no_tick),
                Acts(no_tick),
                Acts(no_tick),
            ],
        ),
        row(&["--lib", "libc.so*"], tracing_only("--lib", plt_calls)),
        row(
            &["--no-lib", "libc.so*"],
            tracing_only("--no-lib", no_plt_calls),
        ),
        row(
            &["--nest-lib", "libc.so*", "-f", "printf"],
            tracing_only("--nest-lib", inside_libc),
        ),
        row(&["--exit=ret-sites"], tracing_only("--exit", ret_sites)),
        row(
            &["--buffer-size", "64K"],
            attaching_only("--buffer-size", traced),
        ),
        row(
            &["--max-rate", "1"],
            attaching_only("--max-rate", rate_limited),
        ),
        row(&["-u", "nobody"], launching_only("-u", as_nobody)),
        row(
            &["--no-randomize-addr"],
            launching_only("--no-randomize-addr", no_aslr),
        ),
        row(&["--no-follow"], launching_only("--no-follow", traced)),
        row(
            &["--syscalls=write"],
            attaching_only("--syscalls", writes_shown),
        ),
        row(
            &["--syscalls-only"],
            attaching_only("--syscalls-only", writes_shown),
        ),
        row(&["--io"], attaching_only("--io", traced)),
        row(
            &["--debug-dir", "{dir}"],
            tracing_only("--debug-dir", traced_or_listed),
        ),
        row(&["-A", "tick@arg1/x"], valued("-A", with_args)),
        row(&["-R", "tick@retval/x"], valued("-R", with_retval)),
        row(&["--format=summary", "-A", "tick"], unvalued("-A")),
        row(&["--format=summary", "-R", "tick"], unvalued("-R")),
        row(
            &["--format=summary", "--srcline"],
            [
                Acts(sources_shown),
                Acts(sources_shown),
                format_refused("--record"),
                Acts(sources_shown),
                format_refused("--list"),
            ],
        ),
        row(
            &["--max-depth", "0"],
            [
                Acts(outermost),
                Acts(outermost),
                Acts(outermost),
                Acts(outermost),
                refused("--max-depth", filters, "--list"),
            ],
        ),
        row(
            &["-t", "1s"],
            [
                Acts(nothing),
                Acts(nothing),
                Acts(nothing),
                Acts(nothing),
                refused("-t", filters, "--list"),
            ],
        ),
        row(&["--tid", "1"], report_only("--tid", nothing)),
        row(&["--since", "1000"], report_only("--since", nothing)),
        row(&["--until", "1000"], report_only("--until", traced)),
        row(
            &["-d", "{trace}"],
            [
                refused("-d", "--record and --report", "live tracing"),
                refused("-d", "--record and --report", "live tracing"),
                Acts(wrote_data),
                Acts(read_data),
                refused("-d", "--record and --report", "--list"),
            ],
        ),
        row(
            &["--format=json"],
            [
                Acts(json),
                Acts(json),
                format_refused("--record"),
                Acts(json),
                format_refused("--list"),
            ],
        ),
        row(
            &["--format=summary", "--sort=calls"],
            [
                Acts(by_calls),
                Acts(by_calls),
                format_refused("--record"),
                Acts(by_calls),
                format_refused("--list"),
            ],
        ),
        row(
            &["--sort=calls"],
            [
                refused("--sort", "--format=summary and json", "--format=call-graph"),
                refused("--sort", "--format=summary and json", "--format=call-graph"),
                refused("--sort", "--format=summary and json", "--record"),
                Acts(by_calls),
                refused("--sort", "--format=summary and json", "--list"),
            ],
        ),
        row(
            &["--format=folded", "--per-thread"],
            [
                Acts(per_thread),
                Acts(per_thread),
                format_refused("--record"),
                Acts(per_thread),
                format_refused("--list"),
            ],
        ),
        row(
            &["--per-thread"],
            [
                refused(
                    "--per-thread",
                    "--format=folded and flame-graph",
                    "--format=call-graph",
                ),
                refused(
                    "--per-thread",
                    "--format=folded and flame-graph",
                    "--format=call-graph",
                ),
                refused(
                    "--per-thread",
                    "--format=folded and flame-graph",
                    "--record",
                ),
                refused(
                    "--per-thread",
                    "--format=folded and flame-graph",
                    "--format=summary",
                ),
                refused("--per-thread", "--format=folded and flame-graph", "--list"),
            ],
        ),
        row(
            &["-o", "{dir}/out.txt"],
            [
                Acts(to_file),
                Acts(to_file),
                refused(
                    "-o",
                    "live output, --report and --list (--record writes to -d)",
                    "--record",
                ),
                Acts(to_file),
                Acts(to_file),
            ],
        ),
        row(&["--no-tid"], graph_only("--no-tid")),
        row(&["--timestamp"], graph_only("--timestamp")),
        row(&["--flat"], graph_only("--flat")),
        row(&["--libname"], graph_only("--libname")),
        row(&["--color=always"], graph_only("--color")),
    ]
}

fn want(ok: bool, what: &str, ran: &Ran) -> Result<(), String> {
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{what}\nout:\n{}\nstderr:\n{}",
            ran.out, ran.stderr
        )),
    }
}

/// The functions listed by `--list`, or the calls of a call graph.
fn names(ran: &Ran, col: Col) -> Vec<String> {
    match col {
        Col::List => ran
            .out
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
            .collect(),
        _ => count_calls(&ran.out).into_keys().collect(),
    }
}

/// The summary names where tick() is defined (spin.c is built with -g).
fn sources_shown(ran: &Ran, _col: Col) -> Result<(), String> {
    let ok = ran
        .out
        .lines()
        .any(|l| l.contains("tick") && l.contains("spin.c:"));
    want(ok, "tick's spin.c:LINE in the summary", ran)
}

/// finish()'s printf reaches the kernel as write(1, …) when spin exits.
fn writes_shown(ran: &Ran, _col: Col) -> Result<(), String> {
    let ok = ran.out.lines().any(|l| l.contains("write(1, 0x"));
    want(ok, "the write(1, …) of finish's output", ran)
}

fn only_tick(ran: &Ran, col: Col) -> Result<(), String> {
    let ok = match col {
        Col::List => names(ran, col) == ["tick"],
        _ => count_calls(&ran.out) == crate::common::counts(&[("tick", 3)]),
    };
    want(ok, "only tick, 3 times", ran)
}

fn no_tick(ran: &Ran, col: Col) -> Result<(), String> {
    let names = names(ran, col);
    want(
        !names.iter().any(|n| n == "tick") && names.iter().any(|n| n == "finish"),
        "finish but no tick",
        ran,
    )
}

fn plt_calls(ran: &Ran, col: Col) -> Result<(), String> {
    let names = names(ran, col);
    want(
        names.iter().any(|n| n == "printf@plt") && names.iter().any(|n| n == "tick"),
        "printf@plt (into libc) and tick",
        ran,
    )
}

fn no_plt_calls(ran: &Ran, col: Col) -> Result<(), String> {
    let names = names(ran, col);
    want(
        !names.iter().any(|n| n.ends_with("@plt")) && names.iter().any(|n| n == "tick"),
        "no @plt call, tick still",
        ran,
    )
}

fn inside_libc(ran: &Ran, col: Col) -> Result<(), String> {
    let ok = match col {
        Col::List => ran
            .out
            .lines()
            .skip(1)
            .any(|l| l.starts_with("libc.so.6") && l.ends_with(" printf")),
        // -f printf takes the stub (printf@plt) too, by its import's name.
        _ => names(ran, col) == ["printf", "printf@plt"],
    };
    want(ok, "libc's own printf", ran)
}

/// Every function's exits at its ret sites; one that tail-jumps into a
/// library (finish: `jmp printf@plt`) also where its calls return.
fn ret_sites(ran: &Ran, col: Col) -> Result<(), String> {
    let ret_site = |l: &str| match l.contains(" finish") {
        true => l.contains(" ret+calls "),
        false => l.contains(" ret-sites "),
    };
    let ok = match col {
        Col::List => ran.out.lines().skip(1).all(ret_site),
        _ => count_calls(&ran.out).get("tick") == Some(&3),
    };
    want(ok, "ret-sites exits (--list), calls still exact", ran)
}

fn traced(ran: &Ran, _: Col) -> Result<(), String> {
    want(
        count_calls(&ran.out).get("tick") == Some(&3),
        "tick 3 times",
        ran,
    )
}

/// tick's 3 calls, each with the register -A names (rdi: whatever the
/// caller left there; tick takes nothing).
fn with_args(ran: &Ran, _: Col) -> Result<(), String> {
    let shown = ran.out.lines().filter(|l| l.contains("tick(0x")).count();
    want(shown == 3, "tick(0x…) 3 times", ran)
}

/// tick's 3 calls, each with the return value -R names (rax: the count).
fn with_retval(ran: &Ran, _: Col) -> Result<(), String> {
    let shown: Vec<&str> = ran
        .out
        .lines()
        .filter(|l| l.contains("tick() = "))
        .collect();
    let ends = ["tick() = 0x1;", "tick() = 0x2;", "tick() = 0x3;"];
    let counted = shown.len() == 3 && shown.iter().zip(ends).all(|(l, e)| l.ends_with(e));
    want(counted, "tick() = 0x1, 0x2, 0x3", ran)
}

/// tick traced exactly, or listed (--list).
fn traced_or_listed(ran: &Ran, col: Col) -> Result<(), String> {
    match col {
        Col::List => want(
            names(ran, col).iter().any(|n| n == "tick"),
            "tick listed",
            ran,
        ),
        _ => traced(ran, col),
    }
}

/// tick's 3 calls come in microseconds: all are seen before the probes go.
fn rate_limited(ran: &Ran, _: Col) -> Result<(), String> {
    let said = ran
        .stderr
        .lines()
        .any(|l| l.contains("over --max-rate 1/s") && l.contains("tick ("));
    want(said, "tick listed as dropped", ran)
}

fn as_nobody(ran: &Ran, _: Col) -> Result<(), String> {
    let uid = ran.uid.as_deref().unwrap_or("");
    want(
        uid.split_whitespace().all(|u| u == "65534"),
        &format!("Uid: {uid}"),
        ran,
    )?;
    traced(ran, Col::Command)
}

fn no_aslr(ran: &Ran, _: Col) -> Result<(), String> {
    let persona = ran.personality.as_deref().unwrap_or("");
    let flags = u32::from_str_radix(persona.trim(), 16).unwrap_or(0);
    want(
        flags & 0x0040000 != 0,
        &format!("ADDR_NO_RANDOMIZE in {persona}"),
        ran,
    )?;
    traced(ran, Col::Command)
}

fn outermost(ran: &Ran, _: Col) -> Result<(), String> {
    let bodies: Vec<&str> = ran
        .out
        .lines()
        .filter_map(|l| l.split_once("| ").map(|b| b.1))
        .collect();
    want(
        !bodies.is_empty() && bodies.iter().all(|b| !b.starts_with(' ')),
        "only calls at depth 0",
        ran,
    )
}

fn nothing(ran: &Ran, col: Col) -> Result<(), String> {
    let empty = match col {
        Col::Report if ran.out.starts_with("      Calls") => summary_calls(&ran.out).is_empty(),
        _ => count_calls(&ran.out).is_empty(),
    };
    want(empty && ran.code == Some(0), "no call shown", ran)
}

fn wrote_data(ran: &Ran, _: Col) -> Result<(), String> {
    want(
        ran.stderr
            .lines()
            .any(|l| l.starts_with("Wrote ") && l.contains("/x.data: ")),
        "Wrote …/x.data",
        ran,
    )?;
    traced(ran, Col::Record)
}

fn read_data(ran: &Ran, _: Col) -> Result<(), String> {
    traced(ran, Col::Report)
}

fn json(ran: &Ran, _: Col) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_str(&ran.out).map_err(|e| format!("{e}: {}", ran.out))?;
    let tick = v["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["function"] == "tick");
    want(
        tick.is_some_and(|f| f["calls"] == 3),
        "tick: 3 calls in the JSON",
        ran,
    )
}

fn by_calls(ran: &Ran, _: Col) -> Result<(), String> {
    let row: Vec<&str> = ran
        .out
        .lines()
        .nth(2)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    want(
        row.len() > 2 && row[row.len() - 2] == "tick",
        "tick (3 calls) first",
        ran,
    )
}

fn per_thread(ran: &Ran, _: Col) -> Result<(), String> {
    want(
        !ran.out.is_empty() && ran.out.lines().all(|l| l.starts_with("tid ")),
        "every stack under its thread",
        ran,
    )
}

fn to_file(ran: &Ran, col: Col) -> Result<(), String> {
    let shown = match col {
        Col::List => ran.out.starts_with("MODULE "),
        _ => count_calls(&ran.out).get("tick") == Some(&3),
    };
    want(
        shown && !ran.stdout.contains("| "),
        "the output in -o's file only",
        ran,
    )
}

/// --no-tid, --timestamp, --color, --flat, --libname: told apart by what
/// they change.
fn layout(ran: &Ran, _: Col) -> Result<(), String> {
    let header = ran.out.lines().next().unwrap_or("");
    let ok = if header.contains("TIMESTAMP") {
        ran.out
            .lines()
            .nth(1)
            .is_some_and(|l| l.trim_start().starts_with("0.0"))
    } else if !header.contains("TID") {
        ran.out.lines().skip(1).all(|l| !l.contains('['))
    } else {
        // --color, --flat, --libname.
        ["\x1b[1mtick\x1b[0m();", "| } /* tick */", "tick@spin-O2();"]
            .iter()
            .any(|shown| ran.out.contains(shown))
    };
    want(
        ok && count_calls(&ran.out).len() > 1,
        "the layout asked for",
        ran,
    )
}

/// Runs every row's cell in `col`; reports every cell that fails at once.
fn column(col: Col) {
    let index = col as usize;
    let needs_bpf = matches!(col, Col::Command | Col::Pid | Col::Record | Col::Report);
    let mut failures = Vec::new();
    for row in table() {
        let cell = &row.cells[index];
        if matches!(cell, Acts(_)) && needs_bpf && !require_bpf() {
            continue;
        }
        let ran = run_cell(&row, col, matches!(cell, Refused(_)));
        let result = match cell {
            Acts(_) if ran.code != Some(0) => Err(format!("exit {:?}: {}", ran.code, ran.stderr)),
            Acts(check) => check(&ran, col),
            Refused(line) => {
                let expected = format!("utrace: {line}\n");
                match (ran.code, ran.stderr == expected) {
                    (Some(2), true) => Ok(()),
                    _ => Err(format!(
                        "expected exit 2 and {expected:?}, got {:?} and {:?}",
                        ran.code, ran.stderr
                    )),
                }
            }
        };
        if let Err(why) = result {
            failures.push(format!("{:?} in {col:?}: {why}", row.args));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_option_acts_or_is_refused_live_with_a_command() {
    column(Col::Command);
}

#[test]
fn every_option_acts_or_is_refused_live_with_a_pid() {
    column(Col::Pid);
}

#[test]
fn every_option_acts_or_is_refused_when_recording() {
    column(Col::Record);
}

#[test]
fn every_option_acts_or_is_refused_in_a_report() {
    column(Col::Report);
}

#[test]
fn every_option_acts_or_is_refused_with_list() {
    column(Col::List);
}

/// The table covers every option `utrace --help` lists, but the columns'
/// own and -h/-V.
#[test]
fn the_table_has_a_row_for_every_option_of_help() {
    let help = utrace().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let columns = [
        "--command",
        "--pid",
        "--list",
        "--record",
        "--report",
        "--help",
        "--version",
    ];
    let rows = table();
    let spelled = |long: &str, short: Option<&str>| {
        rows.iter().any(|r| {
            r.args
                .iter()
                .any(|a| a.split('=').next() == Some(long) || Some(*a) == short)
        })
    };
    // Option lines are indented 2 (or 6, without a short flag); a wrapped
    // description line that starts with `-f` is indented to its column.
    let indent = |l: &str| l.len() - l.trim_start().len();
    for line in help
        .lines()
        .filter(|l| indent(l) <= 6)
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
    {
        let mut words = line.split([',', ' ']).filter(|w| w.starts_with('-'));
        let (first, second) = (words.next().unwrap_or(""), words.next());
        let (short, long) = match second {
            Some(long) if !first.starts_with("--") => (Some(first), long),
            _ => (None, first),
        };
        // An optional value: `--syscalls[=<SET>]`.
        let long = long.split('[').next().unwrap_or(long);
        if columns.contains(&long) {
            continue;
        }
        assert!(spelled(long, short), "no row for {long} ({line})");
    }
}
