//! Real programs built from source, traced with no function filter, against
//! uftrace and bpftrace in the same run (issue 10).
//!
//! Three Debian source packages, fetched and built by benches/real/setup.sh
//! (cached in target/real): Lua 5.4 running benches/real/work.lua (errors
//! are longjmps out of deep C recursion), muparser's C-API sample example2
//! evaluating benches/real/exprs.txt (C++: each bad expression throws
//! mu::ParserError, caught in the library), and xz compressing with two
//! worker threads. Each run checks the program's stdout and exit status
//! against an untraced run, and each tracer's per-function call counts
//! against uftrace's (every function) and bpftrace's (the hottest few). A
//! mismatch is printed, never hidden: the point is what each exit mode
//! really does to real code.
//!
//! Cost per call = (program time traced − untraced) / the calls that run
//! traced, where program time is the program's own span (benches/real/span.c,
//! preloaded: attach and detach drop out), median over rounds that go
//! round-robin over every configuration, as benches/overhead.rs does.
//!
//! The like-for-like pair (bpftrace and `utrace -f` on the same functions),
//! whose ratio is issue 10's target, runs PAIRS times a round, back to back
//! and in alternating order: a Lua run lasts ~50 ms, and one round's ratio
//! moved by ±15% with the machine's other tenants.
//!
//! Knobs: UTRACE_BENCH_REAL_RUNS, else UTRACE_BENCH_RUNS (default 5; CI runs
//! 2), UTRACE_BENCH_REAL_PAIRS (default 4), UTRACE_BIN. Run as root:
//! `cargo bench --bench real`.

#[path = "../common/mod.rs"]
mod common;
mod counts;
mod modes;
mod programs;
mod run;
mod table;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use counts::{Counts, Symbols};
use modes::{Mode, Tools};
use programs::Program;
use run::{Ran, Scratch};

const RUN_LIMIT: Duration = Duration::from_secs(120);
/// uftrace without -e on a program its return hooks break can loop, writing
/// tens of MB/s of trace: give it little time.
const UFTRACE_PROBE_LIMIT: Duration = Duration::from_secs(10);
/// Functions probed by bpftrace (and by utrace -f for the like-for-like row).
const SUBSET: usize = 8;
/// Runs of the like-for-like pair per round (UTRACE_BENCH_REAL_PAIRS).
const PAIRS: usize = 4;

/// One run, as the table needs it.
pub struct Outcome {
    pub span_ns: Option<u64>,
    pub same_output: bool,
    pub counts: Option<Counts>,
    /// bpftrace's uretprobe counts.
    pub returns: Option<Counts>,
}

/// One configuration of one program, over the rounds.
pub struct Cell {
    pub mode: Mode,
    pub runs: Vec<Outcome>,
    /// Set once the output differed: the failure is noted and not repeated.
    pub stopped: bool,
}

pub struct Bench {
    pub prog: Program,
    pub syms: Option<Symbols>,
    pub cells: Vec<Cell>,
    /// (utrace name, raw name) of the functions bpftrace probes.
    pub subset: Vec<(String, String)>,
    pub subset_from: String,
    pub notes: Vec<String>,
    /// The argv of each configuration, as run.
    pub commands: Vec<String>,
    reference: Option<(Vec<u8>, i32)>,
}

impl Bench {
    fn note(&mut self, n: String) {
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }
}

fn main() {
    let runs = common::runs("real");
    let dir = common::fixture_dir()
        .parent()
        .map_or_else(|| PathBuf::from("target/real"), |t| t.join("real"));
    let (built, missing) = programs::setup(&dir);
    let span_lib = programs::span_lib(&dir);
    let progs = programs::programs(&built, &dir);
    let (span_lib, progs) = match (span_lib, progs) {
        (Ok(l), Ok(p)) => (l, p),
        (Err(e), _) | (_, Err(e)) => {
            println!("real: cannot run: {e}");
            return;
        }
    };
    let scratch = Scratch {
        dir: dir.join("run"),
        span_lib,
    };
    if let Err(e) = std::fs::create_dir_all(&scratch.dir) {
        println!("real: cannot create {}: {e}", scratch.dir.display());
        return;
    }
    let utrace = common::utrace_bin();
    let (have_bpftrace, have_uftrace) = (common::have("bpftrace"), common::have("uftrace"));
    println!("real: median of {runs} rounds; {}", common::host_line());
    missing.iter().for_each(|m| println!("real: skipped {m}"));
    let mut benches: Vec<Bench> = progs
        .into_iter()
        .map(|p| new_bench(p, utrace.as_deref(), have_uftrace))
        .collect();
    for rep in 0..runs {
        for b in &mut benches {
            let have = Have {
                utrace: utrace.as_deref(),
                bpftrace: have_bpftrace,
                uftrace: have_uftrace,
            };
            round(b, rep, &have, &scratch);
        }
    }
    println!("\nafter the runs: {}", common::host_line());
    table::report(&benches, utrace.is_some(), have_bpftrace);
}

fn new_bench(prog: Program, utrace: Option<&Path>, have_uftrace: bool) -> Bench {
    let (syms, mut notes) = match Symbols::load(&prog.bin, utrace) {
        Ok(s) => (Some(s), Vec::new()),
        Err(e) => (None, vec![format!("symbols: {e}")]),
    };
    if !have_uftrace {
        notes.push("uftrace not installed: no uftrace row".into());
    }
    let cells = modes::FULL
        .iter()
        .map(|&mode| Cell {
            mode,
            runs: Vec::new(),
            stopped: false,
        })
        .collect();
    Bench {
        prog,
        syms,
        cells,
        subset: Vec::new(),
        subset_from: String::new(),
        notes,
        commands: Vec::new(),
        reference: None,
    }
}

/// The tracers this machine has.
struct Have<'a> {
    utrace: Option<&'a Path>,
    bpftrace: bool,
    uftrace: bool,
}

/// One round over every configuration of one program; the first round also
/// picks bpftrace's functions once the full-trace counts are in.
fn round(b: &mut Bench, rep: usize, have: &Have, scratch: &Scratch) {
    let utrace = have.utrace;
    let available = |m: Mode| match m {
        Mode::Uftrace { .. } => have.uftrace,
        Mode::Bpftrace => have.bpftrace,
        m if m.is_utrace() => utrace.is_some(),
        _ => true,
    };
    let pairs = common::env_usize("UTRACE_BENCH_REAL_PAIRS", PAIRS).max(1);
    let mut i = 0;
    while i < b.cells.len() {
        let pair = b.cells[i].mode == Mode::Bpftrace
            && b.cells.get(i + 1).is_some_and(|c| c.mode == Mode::Subset);
        if pair {
            // Alternating who goes first, so that neither gains from the
            // other's warm caches.
            for k in 0..pairs {
                let order = if k % 2 == 0 { [i, i + 1] } else { [i + 1, i] };
                for j in order {
                    if available(b.cells[j].mode) {
                        run_cell(b, j, rep, utrace, scratch);
                    }
                }
            }
            i += 2;
            continue;
        }
        if available(b.cells[i].mode) {
            run_cell(b, i, rep, utrace, scratch);
        }
        if i == 0 && b.reference.is_none() {
            return; // the untraced run failed: nothing to compare with
        }
        i += 1;
        if rep == 0 && i == b.cells.len() && b.subset.is_empty() {
            pick_subset(b);
            if !b.subset.is_empty() {
                for mode in [Mode::Bpftrace, Mode::Subset] {
                    if available(mode) {
                        b.cells.push(Cell {
                            mode,
                            runs: Vec::new(),
                            stopped: false,
                        });
                    }
                }
            }
        }
    }
}

/// The hottest functions bpftrace can probe by name, from the first
/// full-trace counts whose run left the program's output intact.
fn pick_subset(b: &mut Bench) {
    let Some(syms) = &b.syms else { return };
    let source = b.cells.iter().find(|c| {
        matches!(c.mode, Mode::Record | Mode::RetSites | Mode::Uftrace { .. })
            && c.runs
                .first()
                .is_some_and(|o| o.same_output && o.counts.is_some())
    });
    let Some(cell) = source else {
        b.note("no full trace left the output intact: no bpftrace comparison".into());
        return;
    };
    let Some(counts) = cell.runs[0].counts.as_ref() else {
        return;
    };
    let mut hot: Vec<(&String, &u64)> = counts.iter().filter(|(_, n)| **n > 0).collect();
    hot.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    b.subset = hot
        .into_iter()
        .filter(|(name, _)| !name.ends_with("@plt"))
        .filter_map(|(name, _)| Some((name.clone(), syms.probe_name(name)?.to_string())))
        .take(SUBSET)
        .collect();
    b.subset_from = cell.mode.label(0);
    if b.subset.is_empty() {
        // Not silently a table without its bpftrace rows.
        b.note("no hot function could be named for bpftrace: no bpftrace comparison".into());
    }
}

fn run_cell(b: &mut Bench, i: usize, rep: usize, utrace: Option<&Path>, scratch: &Scratch) {
    let mode = b.cells[i].mode;
    if b.cells[i].stopped {
        return;
    }
    let tools = Tools {
        utrace,
        subset: &b.subset,
    };
    let Some(argv) = modes::argv(mode, &b.prog, &tools, scratch) else {
        return;
    };
    let shown = modes::shown(&argv, scratch);
    if rep == 0 && !b.commands.contains(&shown) {
        b.commands.push(shown);
    }
    clean(scratch);
    let limit = match mode {
        Mode::Uftrace { estimate: false } => UFTRACE_PROBE_LIMIT,
        _ => RUN_LIMIT,
    };
    let ran = match run::run(scratch, &argv, &b.prog.bin, b.prog.stdin.as_deref(), limit) {
        Ok(r) => r,
        Err(e) => {
            b.note(format!("{}: cannot start: {e}", mode.label(b.subset.len())));
            b.cells[i].stopped = true;
            return;
        }
    };
    let outcome = judge(b, mode, &ran, utrace, scratch);
    eprintln!(
        "real: run {}: {:<18} {:<40} {:>10} {}",
        rep + 1,
        b.prog.name,
        mode.label(b.subset.len()),
        outcome
            .span_ns
            .map_or("-".into(), |ns| format!("{:.1} ms", ns as f64 / 1e6)),
        if outcome.same_output {
            "same output"
        } else {
            "OUTPUT DIFFERS"
        }
    );
    let failed = !outcome.same_output;
    b.cells[i].runs.push(outcome);
    if failed && mode == (Mode::Uftrace { estimate: false }) {
        // uftrace's own return hooks broke the program: entries only (-e).
        b.cells[i].mode = Mode::Uftrace { estimate: true };
        b.cells[i].runs.clear();
        run_cell(b, i, rep, utrace, scratch);
    } else if failed && mode != Mode::Untraced {
        b.cells[i].stopped = true;
    }
}

fn clean(scratch: &Scratch) {
    for f in ["live.txt", "summary.txt", "utrace.data", "bpftrace.json"] {
        let _ = std::fs::remove_file(scratch.file(f));
    }
    let _ = std::fs::remove_dir_all(scratch.file("uftrace.data"));
}

/// Compares the run's output with the untraced reference and reads its counts.
fn judge(
    b: &mut Bench,
    mode: Mode,
    ran: &Ran,
    utrace: Option<&Path>,
    scratch: &Scratch,
) -> Outcome {
    let label = mode.label(b.subset.len());
    let mut stdout = ran.stdout.clone();
    if mode == Mode::Bpftrace {
        // bpftrace writes two newlines of its own to stdout at exit.
        if let Some(out) = stdout.as_mut().filter(|o| o.ends_with(b"\n\n")) {
            out.truncate(out.len() - 2);
        }
    }
    if mode == Mode::Untraced && b.reference.is_none() {
        match (ran.span, &stdout) {
            (Some(span), Some(out)) => b.reference = Some((out.clone(), span.status)),
            _ => b.note(format!("untraced run failed: {}", ran.failure())),
        }
    }
    let why = match (&b.reference, ran.span, &stdout) {
        (None, _, _) => Some("no untraced reference".to_string()),
        (_, None, _) => Some(ran.failure()),
        (Some((_, want)), Some(s), _) if s.status != *want => {
            Some(format!("exit status {}, untraced {want}", s.status))
        }
        (_, _, None) => Some("stdout grew past 64 MiB".into()),
        (Some((want, _)), _, Some(out)) if out != want => Some(format!(
            "stdout differs ({} bytes, untraced {})",
            out.len(),
            want.len()
        )),
        _ => None,
    };
    if let Some(why) = &why {
        b.note(format!("{label}: output differs: {why}"));
    }
    for lost in ran.stderr.lines().filter(|l| l.starts_with("utrace: lost")) {
        b.note(format!("{label}: {}", lost.trim()));
    }
    let mut outcome = Outcome {
        span_ns: ran.span.map(|s| s.ns),
        same_output: why.is_none(),
        counts: None,
        returns: None,
    };
    if outcome.same_output {
        read_counts(b, mode, utrace, scratch, &mut outcome);
    }
    outcome
}

/// Fills in the call counts the run left behind (and notes when it left none).
fn read_counts(
    b: &mut Bench,
    mode: Mode,
    utrace: Option<&Path>,
    scratch: &Scratch,
    o: &mut Outcome,
) {
    let text = |argv: &[&std::ffi::OsStr]| {
        Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let data = scratch.file("utrace.data");
    let uf = scratch.file("uftrace.data");
    o.counts = match mode {
        Mode::Record | Mode::RetSites | Mode::Subset => utrace
            .and_then(|u| {
                text(&[
                    u.as_os_str(),
                    "--report".as_ref(),
                    "--format=json".as_ref(),
                    "-d".as_ref(),
                    data.as_os_str(),
                ])
            })
            .and_then(|t| counts::utrace_json(&t)),
        Mode::Summary => std::fs::read_to_string(scratch.file("summary.txt"))
            .ok()
            .and_then(|t| counts::utrace_summary(&t)),
        Mode::Uftrace { .. } => {
            let args = [
                "uftrace",
                "report",
                "--no-pager",
                "-f",
                "call",
                "--demangle=no",
                "-d",
            ];
            let mut argv: Vec<&std::ffi::OsStr> = args.iter().map(|s| s.as_ref()).collect();
            argv.push(uf.as_os_str());
            match (text(&argv), &b.syms) {
                (Some(t), Some(syms)) => counts::uftrace_report(&t, syms).ok(),
                _ => None,
            }
        }
        Mode::Bpftrace => {
            let t = std::fs::read_to_string(scratch.file("bpftrace.json")).unwrap_or_default();
            counts::bpftrace_json(&t, &b.subset).map(|(entries, returns)| {
                o.returns = Some(returns);
                entries
            })
        }
        Mode::Untraced | Mode::Live => return,
    };
    if o.counts.is_none() {
        b.note(format!(
            "{}: no call counts could be read",
            mode.label(b.subset.len())
        ));
    }
}
