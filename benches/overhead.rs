//! Per-call overhead of tracing, against bpftrace measured in the same run.
//!
//! benches/fixtures/hot_bench.c times its own hot loop (clock_gettime around
//! N calls of hot_add/hot_xor) and prints `ns_per_call=`, so start-up, attach
//! and detach drop out. It is tests/fixtures/hot.c with a stack slot in each
//! traced function, so the CET build gets the `endbr64; push %rbp` prologue
//! real functions have. It is built four ways, because the kernel's uprobe
//! cost depends on the first instruction at the probe address (issue 5):
//! plain -O2 PIE (`mov`, single-stepped), CET + frame pointers (`endbr64;
//! push`), gcc nop5 and clang nop5 (the kernel can turn a nop5 into a call).
//! Every build runs untraced, under bpftrace (uprobe+uretprobe count()), and
//! under each utrace mode this utrace has; runs go round-robin over all
//! configurations so drift on this shared VM hits them all alike.
//!
//! Knobs: UTRACE_BENCH_RUNS (default 5, the median is reported),
//! UTRACE_BENCH_CALLS (calls per run, default 200,000; the first run of each
//! configuration makes a quarter of them, and so do the later ones where
//! that first run cost over 5 µs a call: a single-stepped probe), UTRACE_BIN.
//! Run: `cargo bench --bench overhead` (as root).

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Ran, find_value, median, thousands};

const FUNCS: [&str; 2] = ["hot_add", "hot_xor"];
const RUN_LIMIT: Duration = Duration::from_secs(300);

struct Build {
    name: &'static str,
    cc: &'static str,
    cflags: &'static [&'static str],
    ldflags: &'static [&'static str],
}

/// `-fcf-protection=none` pins the non-CET builds on distributions whose gcc
/// defaults to CET (Ubuntu). The CET build adds -mno-omit-leaf-frame-pointer,
/// as Fedora's default flags do. The gcc nop5 build is linked without -pg:
/// -pg at link time pulls in gcrt1.o, which profiles the run and writes gmon.out.
const BUILDS: [Build; 4] = [
    Build {
        name: "plain",
        cc: "gcc",
        cflags: &["-O2", "-fPIE", "-fcf-protection=none"],
        ldflags: &["-pie"],
    },
    Build {
        name: "cet",
        cc: "gcc",
        cflags: &[
            "-O2",
            "-fPIE",
            "-fcf-protection=full",
            "-fno-omit-frame-pointer",
            "-mno-omit-leaf-frame-pointer",
        ],
        ldflags: &["-pie"],
    },
    Build {
        name: "nop5-gcc",
        cc: "gcc",
        cflags: &[
            "-O2",
            "-fno-pie",
            "-fcf-protection=none",
            "-pg",
            "-mfentry",
            "-mnop-mcount",
        ],
        ldflags: &["-no-pie"],
    },
    Build {
        name: "nop5-clang",
        cc: "clang-14",
        cflags: &[
            "-O2",
            "-fPIE",
            "-fcf-protection=none",
            "-fpatchable-function-entry=5",
        ],
        ldflags: &["-pie"],
    },
];

/// One way of running a fixture.
struct Mode {
    label: String,
    kind: Kind,
}

enum Kind {
    Untraced,
    Bpftrace,
    /// utrace with these arguments before `-f … -c …`.
    Utrace(Vec<String>),
}

/// Measured ns/call per run, and anything odd seen along the way.
#[derive(Default)]
struct Cell {
    ns: Vec<f64>,
    notes: Vec<String>,
    failed: bool,
}

fn main() {
    let runs = common::env_usize("UTRACE_BENCH_RUNS", 5).max(1);
    let calls = common::env_usize("UTRACE_BENCH_CALLS", 200_000) / 2 * 2;
    let dir = common::fixture_dir();
    let bins: Vec<(usize, PathBuf)> = (0..BUILDS.len())
        .filter_map(|i| build(&BUILDS[i], &dir).map(|p| (i, p)))
        .collect();
    let utrace = common::utrace_bin();
    let modes = modes(utrace.as_deref(), &dir);
    println!(
        "overhead: {} calls per run ({} in the first, and in all runs over {} µs/call), median of {runs}; {}",
        thousands(calls as u64),
        thousands(slow_calls(calls) as u64),
        SLOW_NS / 1000.0,
        common::host_line()
    );
    print_commands(&modes, utrace.as_deref());

    let mut cells: Vec<Vec<Cell>> = bins
        .iter()
        .map(|_| modes.iter().map(|_| Cell::default()).collect())
        .collect();
    for rep in 0..runs {
        for (b, (_, bin)) in bins.iter().enumerate() {
            for (m, mode) in modes.iter().enumerate() {
                let cell = &mut cells[b][m];
                if !cell.failed {
                    let n = calls_for(cell, calls);
                    run_one(utrace.as_deref(), bin, mode, n, rep, cell);
                }
            }
        }
    }
    println!("\nafter the runs: {}", common::host_line());
    report(&bins, &modes, &cells, utrace.is_some());
}

/// Every configuration's first run makes a quarter of the calls; one that
/// cost more than this per call (a single-stepped probe: ~15 µs here) keeps
/// to a quarter, the others make them all from then on. A slow loop lasts
/// seconds at full size, and per-call costs that large are steady over
/// 50,000 calls.
const SLOW_NS: f64 = 5000.0;

/// The calls the next run of `cell` makes (even: the fixture alternates two functions).
fn calls_for(cell: &Cell, calls: usize) -> usize {
    match cell.ns.first() {
        Some(&ns) if ns <= SLOW_NS => calls,
        _ => slow_calls(calls),
    }
}

fn slow_calls(calls: usize) -> usize {
    (calls / 4 / 2 * 2).max(20_000).min(calls)
}

/// Compiles and links one build of hot_bench.c (cached); None if its compiler is missing.
fn build(b: &Build, dir: &Path) -> Option<PathBuf> {
    if !common::have(b.cc) {
        eprintln!("overhead: {}: {} not installed, skipped", b.name, b.cc);
        return None;
    }
    let root = common::repo_root();
    let src = root.join("benches/fixtures/hot_bench.c");
    let obj = dir.join(format!("hot-{}.o", b.name));
    let bin = dir.join(format!("hot-{}", b.name));
    let inc = format!("-I{}", root.join("tests/fixtures").display()); // fixture.h
    let cflags: Vec<&str> = b
        .cflags
        .iter()
        .copied()
        .chain(["-c", inc.as_str()])
        .collect();
    let header = root.join("tests/fixtures/fixture.h");
    let built = common::build_cached(b.cc, &cflags, &[&src], &[&header], &obj)
        .and_then(|()| common::build_cached(b.cc, b.ldflags, &[&obj], &[], &bin));
    match built {
        Ok(()) => Some(bin),
        Err(e) => {
            eprintln!("overhead: {}: build failed: {e}", b.name);
            None
        }
    }
}

/// Untraced, bpftrace, and every utrace mode this utrace offers.
fn modes(utrace: Option<&Path>, dir: &Path) -> Vec<Mode> {
    let mut modes = vec![Mode {
        label: "untraced".into(),
        kind: Kind::Untraced,
    }];
    if common::have("bpftrace") {
        modes.push(Mode {
            label: "bpftrace".into(),
            kind: Kind::Bpftrace,
        });
    }
    let Some(bin) = utrace else { return modes };
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let data = dir.join("hot.utrace.data").display().to_string();
    let summary = dir.join("hot.summary.txt").display().to_string();
    let live = modes.len();
    modes.push(Mode {
        label: "utrace live".into(),
        kind: Kind::Utrace(s(&["-o", "/dev/null"])),
    });
    modes.push(Mode {
        label: "--record".into(),
        kind: Kind::Utrace(s(&["--record", "-d", &data])),
    });
    modes.push(Mode {
        label: "--format=summary".into(),
        kind: Kind::Utrace(s(&["--format=summary", "-o", &summary])),
    });
    // Every other --exit mode this utrace offers, live (the ones above use its default).
    let (default, values) = exit_modes(&common::help_text(bin));
    if let Some(d) = &default {
        modes[live].label = format!("live (--exit={d})");
    }
    for v in values.iter().filter(|v| Some(*v) != default.as_ref()) {
        let flag = format!("--exit={v}");
        modes.push(Mode {
            label: format!("live {flag}"),
            kind: Kind::Utrace(s(&[&flag, "-o", "/dev/null"])),
        });
    }
    modes
}

/// From `--help`: the default and possible values of `--exit`, if it has one.
fn exit_modes(help: &str) -> (Option<String>, Vec<String>) {
    let Some(at) = help.find("--exit") else {
        return (None, Vec::new());
    };
    // clap wraps the help text: join the lines of this option's paragraph.
    let text: String = help[at..]
        .split("\n      -")
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let field = |key: &str| {
        let start = text.find(key)? + key.len();
        Some(text[start..].split(']').next()?.trim().to_string())
    };
    let values = field("[possible values:")
        .map_or_else(Vec::new, |v| v.split(", ").map(String::from).collect());
    (field("[default:"), values)
}

fn bpftrace_program(bin: &Path) -> String {
    let list = |kind: &str| {
        FUNCS
            .map(|f| format!("{kind}:{}:{f}", bin.display()))
            .join(",")
    };
    format!(
        "{} {{ @[probe] = count(); }} {} {{ @r[probe] = count(); }}",
        list("uprobe"),
        list("uretprobe")
    )
}

/// The argv of one run; the fixture's own command line is `BIN CALLS`.
fn command(utrace: Option<&Path>, bin: &Path, mode: &Mode, calls: &str) -> Command {
    let target = format!("{} {calls}", bin.display());
    let mut cmd;
    match &mode.kind {
        Kind::Untraced => {
            cmd = Command::new(bin);
            cmd.arg(calls);
        }
        Kind::Bpftrace => {
            // -c: bpftrace attaches every probe, then starts the command as its child.
            cmd = Command::new("bpftrace");
            cmd.args(["-e", &bpftrace_program(bin), "-c", &target]);
        }
        Kind::Utrace(args) => {
            cmd = Command::new(utrace.unwrap_or(Path::new("utrace")));
            cmd.args(args).args(["-f", "hot_*", "-c", &target]);
        }
    }
    cmd
}

fn print_commands(modes: &[Mode], utrace: Option<&Path>) {
    let bin = Path::new("BIN");
    println!("commands (BIN = target/bench-fixtures/hot-<build>, N = calls per run):");
    let width = modes.iter().map(|m| m.label.len()).max().unwrap_or(0);
    for m in modes {
        let cmd = command(utrace.map(|_| Path::new("utrace")), bin, m, "N");
        let argv: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(shell_word)
            .collect();
        println!("  {:<width$}  {}", m.label, argv.join(" "));
    }
    if utrace.is_none() {
        println!("  utrace: not available (build it: cargo build --release)");
    }
}

fn shell_word(s: &std::ffi::OsStr) -> String {
    let s = s.to_string_lossy();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_=./,:".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{s}'")
    }
}

/// Runs one configuration once and files its figure (or its failure) in `cell`.
fn run_one(
    utrace: Option<&Path>,
    bin: &Path,
    mode: &Mode,
    calls: usize,
    rep: usize,
    cell: &mut Cell,
) {
    let name = bin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ran = match common::run_with_limit(
        &mut command(utrace, bin, mode, &calls.to_string()),
        RUN_LIMIT,
    ) {
        Ok(r) => r,
        Err(e) => return fail(cell, &format!("cannot start: {e}")),
    };
    let ns = find_value(&ran.stdout, "ns_per_call");
    match (ran.ok(), ns) {
        (true, Some(ns)) => {
            eprintln!(
                "overhead: run {}: {name:<15} {:<22} {ns:>9.1} ns/call",
                rep + 1,
                mode.label
            );
            cell.ns.push(ns);
        }
        (_, _) if ran.status.is_none() => {
            return fail(cell, &format!("timed out after {}s", RUN_LIMIT.as_secs()));
        }
        _ => return fail(cell, &format!("failed: {}", ran.stderr_tail())),
    }
    check_counts(utrace, mode, &ran, calls, rep, cell);
}

fn fail(cell: &mut Cell, why: &str) {
    eprintln!("overhead: {why}");
    cell.notes.push(why.to_string());
    cell.failed = true;
}

/// Checks the calls each tracer saw where that is cheap: bpftrace's maps every
/// run, utrace's summary every run, the recording once; utrace's losses always.
fn check_counts(
    utrace: Option<&Path>,
    mode: &Mode,
    ran: &Ran,
    calls: usize,
    rep: usize,
    cell: &mut Cell,
) {
    let want = (calls / 2) as u64;
    let mut note = |n: String| {
        if !cell.notes.contains(&n) {
            cell.notes.push(n);
        }
    };
    match &mode.kind {
        Kind::Untraced => {}
        Kind::Bpftrace => {
            for f in FUNCS {
                for map in ["@[", "@r["] {
                    let got = bpftrace_count(&ran.stdout, map, f);
                    if got != Some(want) {
                        note(format!("bpftrace {map}…{f}] = {got:?}, expected {want}"));
                    }
                }
            }
        }
        Kind::Utrace(args) => {
            if let Some(lost) = ran.stderr.lines().find(|l| l.starts_with("utrace: lost")) {
                note(lost.trim().to_string());
            }
            let summary = if args[0] == "--format=summary" {
                std::fs::read_to_string(&args[2]).ok()
            } else if args[0] == "--record" && rep == 0 {
                utrace.and_then(|u| report_summary(u, &args[2]))
            } else {
                return;
            };
            match summary {
                Some(text) => FUNCS
                    .iter()
                    .filter_map(|f| summary_mismatch(&text, f, want))
                    .for_each(&mut note),
                None => note("no summary to check counts against".into()),
            }
        }
    }
}

/// `@[uprobe:/path:hot_add]: 100000` → 100000.
fn bpftrace_count(out: &str, map: &str, func: &str) -> Option<u64> {
    out.lines()
        .filter(|l| l.starts_with(map))
        .find(|l| {
            l.split("]:")
                .next()
                .is_some_and(|k| k.ends_with(&format!(":{func}")))
        })
        .and_then(|l| l.rsplit(':').next()?.trim().parse().ok())
}

fn report_summary(utrace: &Path, data: &str) -> Option<String> {
    let out = Command::new(utrace)
        .args(["--report", "--format=summary", "-d", data])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// None when the summary's line for `func` holds the expected count (plain or 1,234).
fn summary_mismatch(text: &str, func: &str, want: u64) -> Option<String> {
    let Some(line) = text.lines().find(|l| {
        l.split_whitespace()
            .any(|w| w.trim_end_matches("()") == func)
    }) else {
        return Some(format!("{func} missing from the summary"));
    };
    let ok = line
        .split_whitespace()
        .any(|w| w == want.to_string() || w == thousands(want));
    (!ok).then(|| {
        format!(
            "{func}: expected {want} calls, summary says `{}`",
            line.trim()
        )
    })
}

/// The first two instructions of hot_add, as the kernel's uprobe sees them.
fn entry_insn(bin: &Path) -> String {
    let out = Command::new("objdump")
        .args(["-d", "--disassemble=hot_add"])
        .arg(bin)
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // Lines look like "  1280:\tf3 0f 1e fa          \tendbr64".
    let insns: Vec<(usize, String)> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            parts.next()?.trim().strip_suffix(':')?;
            let bytes = parts.next()?.split_whitespace().count();
            let mnemonic = parts.next()?.split_whitespace().next()?.to_string();
            Some((bytes, mnemonic))
        })
        .take(2)
        .collect();
    let name = |(n, m): &(usize, String)| {
        if m.starts_with("nop") && *n == 5 {
            "nop5".to_string()
        } else {
            m.clone()
        }
    };
    match insns.as_slice() {
        [first, second] if first.1 == "endbr64" => format!("endbr64; {}", name(second)),
        [first, ..] => name(first),
        [] => "?".into(),
    }
}

/// The table: build × mode → ns per traced call (minus untraced), ratio to bpftrace.
fn report(bins: &[(usize, PathBuf)], modes: &[Mode], cells: &[Vec<Cell>], have_utrace: bool) {
    let mut rows = vec![
        ["build", "first insns", "untraced ns/call"]
            .iter()
            .map(|s| s.to_string())
            .chain(modes.iter().skip(1).map(|m| m.label.clone()))
            .collect::<Vec<_>>(),
    ];
    let bpf = modes.iter().position(|m| matches!(m.kind, Kind::Bpftrace));
    let mut notes = Vec::new();
    for (b, (i, bin)) in bins.iter().enumerate() {
        let base = median(&cells[b][0].ns);
        let over = |m: usize| Some(median(&cells[b][m].ns)? - base?);
        let bpf_over = bpf.and_then(over);
        let mut row = vec![
            BUILDS[*i].name.to_string(),
            entry_insn(bin),
            base.map_or("-".into(), |x| format!("{x:.1}")),
        ];
        for m in 1..modes.len() {
            row.push(match (over(m), bpf_over) {
                (None, _) => "failed".into(),
                (Some(ns), Some(bp)) if Some(m) != bpf && bp > 0.0 => {
                    format!("{ns:.0} ({:.2}×)", ns / bp)
                }
                (Some(ns), _) => format!("{ns:.0}"),
            });
            for n in &cells[b][m].notes {
                notes.push(format!("{} / {}: {n}", BUILDS[*i].name, modes[m].label));
            }
        }
        rows.push(row);
    }
    println!(
        "\nns per traced call (traced − untraced, median); (×) = ratio to bpftrace in the same run"
    );
    common::print_table(&rows, true);
    if !have_utrace {
        println!("\nutrace: not available");
    }
    if notes.is_empty() {
        println!(
            "\ncall counts: every check matched (bpftrace maps; utrace summary/record where run)"
        );
    } else {
        println!("\nnotes:");
        notes.iter().for_each(|n| println!("  {n}"));
    }
}
