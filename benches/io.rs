//! What `--io` costs (issue 12), against bpftrace counting the same
//! tracepoints in the same run, and what it does to stress-ng's I/O load.
//!
//! benches/fixtures/io_bench.c times its own loop of rounds (a 4 KiB pwrite
//! and pread in the page cache, an fdatasync every 64 rounds), each made by
//! the traced function one(); the median ns per round of the runs is
//! reported with what each tracer adds. Then stress-ng's --hdd and --iomix
//! stressors (bounded in time) run untraced, under `utrace --syscalls-only
//! --io --format=io` (the I/O table, which attaches no system call
//! tracepoint), beside the floor (the same tracepoints running programs
//! that do nothing) and under bpftrace, in short rounds whose order rotates;
//! the median drop in their bogo ops/s (issue 12's target: 5%) is printed with the
//! spread of the rounds and the events lost.
//!
//! Knobs: UTRACE_BENCH_RUNS (default 5), UTRACE_BENCH_ROUNDS (default
//! 20,000), UTRACE_BENCH_STRESS_ROUNDS (default 5),
//! UTRACE_BENCH_STRESS_SECONDS (per run, default 2), UTRACE_BIN.
//! Run: `cargo bench --bench io` (as root).

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::rounds::{self, Pairs};
use common::{find_value, median, thousands};

const RUN_LIMIT: Duration = Duration::from_secs(300);

/// bpftrace counting what the I/O table listens to: the page cache,
/// dirtying and the block layer (the bytes at the system call come from
/// each thread's own I/O accounting: no syscall tracepoint).
const BPFTRACE: &str = "tracepoint:filemap:mm_filemap_add_to_page_cache { @a = count(); } \
    tracepoint:filemap:mm_filemap_get_pages { @g = count(); } \
    tracepoint:writeback:writeback_dirty_folio { @d = count(); } \
    tracepoint:block:block_bio_queue { @q = count(); } \
    tracepoint:block:block_rq_issue { @i = count(); } \
    tracepoint:block:block_rq_complete { @c = count(); }";

fn svec(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `utrace ARGS` as the floor: with UTRACE_BENCH_FLOOR=1 the syscall and
/// --io tracepoints run programs that do nothing, so what is left is the
/// kernel's own cost of them, which no tracer of these tracepoints goes under.
fn floor(utrace_args: &[&str]) -> Vec<String> {
    let mut argv = svec(&["env", "UTRACE_BENCH_FLOOR=1"]);
    argv.extend(svec(utrace_args));
    argv
}

fn main() {
    let runs = common::env_usize("UTRACE_BENCH_RUNS", 5).max(1);
    let rounds = common::env_usize("UTRACE_BENCH_ROUNDS", 20_000);
    let dir = common::fixture_dir();
    let root = common::repo_root();
    let bin = dir.join("io_bench");
    let inc = format!("-I{}", root.join("tests/fixtures").display());
    let src = root.join("benches/fixtures/io_bench.c");
    let header = root.join("tests/fixtures/fixture.h");
    if let Err(e) = common::build_cached("gcc", &["-O2", &inc], &[&src], &[&header], &bin) {
        eprintln!("io: building the fixture failed: {e}");
        return;
    }
    let data = dir.join("io_bench.dat");
    let out = dir.join("io.out");
    let utrace = common::utrace_bin();
    let mut configs: Vec<(&str, Vec<String>)> = vec![("untraced", vec![])];
    if let Some(u) = &utrace {
        let u = u.display().to_string();
        let o = out.display().to_string();
        configs.push((
            "utrace -f one (calls only)",
            svec(&[&u, "-f", "one", "-o", &o, "--"]),
        ));
        // Tracepoints alone, as bpftrace below: no uprobe on one().
        configs.push((
            "utrace --syscalls-only --io --format=io",
            svec(&[&u, "--syscalls-only", "--io", "--format=io", "-o", &o, "--"]),
        ));
        configs.push((
            "utrace --io -f one --format=io",
            svec(&[&u, "--io", "-f", "one", "--format=io", "-o", &o, "--"]),
        ));
        // The default view: the call graph, each I/O syscall a leaf with what
        // happened below it (the syscall tracepoints on, events streamed).
        configs.push((
            "utrace --io -f one (live call graph)",
            svec(&[&u, "--io", "-f", "one", "-o", &o, "--"]),
        ));
        configs.push((
            "floor: the same tracepoints, empty programs",
            floor(&[&u, "--syscalls-only", "--io", "--format=io", "-o", &o, "--"]),
        ));
    }
    if common::have("bpftrace") {
        configs.push((
            "bpftrace, the same tracepoints (count)",
            svec(&["bpftrace", "-e", BPFTRACE, "-c"]),
        ));
    }
    println!(
        "io: {} rounds per run, median of {runs}; {}",
        thousands(rounds as u64),
        common::host_line()
    );
    let mut cells: Vec<Vec<f64>> = configs.iter().map(|_| Vec::new()).collect();
    for _ in 0..runs {
        for (i, (name, prefix)) in configs.iter().enumerate() {
            let target = format!("{} {} {rounds}", bin.display(), data.display());
            let mut cmd = match prefix.split_first() {
                // bpftrace -c takes the command as one string.
                Some((first, rest)) if first == "bpftrace" => {
                    let mut c = Command::new(first);
                    c.args(rest).arg(&target);
                    c
                }
                Some((first, rest)) => {
                    let mut c = Command::new(first);
                    c.args(rest).arg(&bin).arg(&data).arg(rounds.to_string());
                    c
                }
                None => {
                    let mut c = Command::new(&bin);
                    c.arg(&data).arg(rounds.to_string());
                    c
                }
            };
            match common::run_with_limit(&mut cmd, RUN_LIMIT) {
                Ok(ran) if ran.ok() => cells[i].extend(find_value(&ran.stdout, "ns_per_round")),
                Ok(ran) => eprintln!("io: {name} failed: {}", ran.stderr_tail()),
                Err(e) => eprintln!("io: {name}: {e}"),
            }
        }
    }
    let base = median(&cells[0]).unwrap_or(0.0);
    let mut rows = vec![svec(&["configuration", "ns/round", "added ns"])];
    for (i, (name, _)) in configs.iter().enumerate() {
        let Some(ns) = median(&cells[i]) else {
            rows.push(vec![name.to_string(), "failed".into()]);
            continue;
        };
        let added = if i == 0 {
            "-".into()
        } else {
            format!("{:.0}", ns - base)
        };
        rows.push(vec![name.to_string(), format!("{ns:.0}"), added]);
    }
    common::print_table(&rows, true);
    if let Some(u) = &utrace {
        stress(u, &dir);
    }
    let _ = std::fs::remove_file(&data);
    let _ = std::fs::remove_file(&out);
}

/// One way to run stress-ng: its name and the argv before stress-ng's.
type Side = (&'static str, Vec<String>);

/// stress-ng's I/O stressors, untraced, traced by `--syscalls-only --io`, and
/// under bpftrace counting the same tracepoints: short rounds, the order
/// rotating every round; the median slow-down against issue 12's 5%.
fn stress(utrace: &Path, dir: &Path) {
    if !common::have("stress-ng") {
        println!("\nstress-ng: not installed (tools/setup installs it), skipped");
        return;
    }
    let wanted = common::env_usize("UTRACE_BENCH_STRESS_ROUNDS", 5).max(2);
    let secs = common::env_usize("UTRACE_BENCH_STRESS_SECONDS", 2).max(1);
    let temp = dir.join("stress-io");
    let _ = std::fs::create_dir_all(&temp);
    let line = stress_line(&temp, secs);
    let sides = sides(utrace);
    // A round is one run per side, plus start-up (bpftrace compiles its program).
    let budget = Duration::from_secs((wanted * sides.len() * (secs + 3)) as u64);
    let start = Instant::now();
    // Per side after the untraced one: (real time, CPU time) pairs with it.
    let mut pairs: Vec<[Pairs; 2]> = sides.iter().skip(1).map(|_| Default::default()).collect();
    let mut lost: Vec<String> = Vec::new();
    let mut i = 0;
    while rounds::more_rounds(i, wanted, start, budget) {
        let mut rates = vec![None; sides.len()];
        for k in 0..sides.len() {
            let s = (k + i) % sides.len();
            let (r, l) = stress_run(&sides[s], &line);
            rates[s] = r;
            lost.extend(l);
        }
        for (k, [real, cpu]) in pairs.iter_mut().enumerate() {
            if let (Some(u), Some(t)) = (&rates[0], &rates[k + 1]) {
                real.push(&u.0, &t.0);
                cpu.push(&u.1, &t.1);
            }
        }
        i += 1;
    }
    println!(
        "\nstress-ng --hdd --iomix ({secs} s a run, {i} rounds, the order rotating); slow-down \
         = 1 - the geometric mean of the two stressors' traced/untraced ratios:"
    );
    for (m, what) in ["real time", "CPU time (usr+sys)"].iter().enumerate() {
        let alone = pairs.first().and_then(|p| median(&p[m].untraced));
        println!(
            "  bogo ops/s of {what}: untraced {}",
            alone.map_or("-".into(), |a| format!("{a:.0}"))
        );
        for (k, p) in pairs.iter().enumerate() {
            let name = sides[k + 1].0;
            match (median(&p[m].traced), p[m].describe()) {
                (Some(t), Some(text)) => {
                    let target = match k {
                        0 => format!("; {}", rounds::verdict(&p[m], 5.0)),
                        _ => String::new(),
                    };
                    println!("    {name}: {t:.0}, {text}{target}");
                }
                _ => println!("    {name}: no bogo-ops figures read"),
            }
        }
    }
    match lost.is_empty() {
        true => println!("  events lost under utrace: 0"),
        false => println!("  events lost under utrace: {}", lost.join("; ")),
    }
}

/// The stress-ng command line, with the full path (bpftrace -c wants one
/// binary: `stress-ng` alone can match two on PATH).
fn stress_line(temp: &Path, secs: usize) -> Vec<String> {
    let mut line = svec(&[
        "stress-ng",
        "--hdd",
        "1",
        "--hdd-bytes",
        "16m",
        "--iomix",
        "1",
        "--iomix-bytes",
        "16m",
        "-t",
        &format!("{secs}s"),
        "--metrics-brief",
        "--temp-path",
    ]);
    line.push(temp.display().to_string());
    if let Some(path) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("stress-ng"))
            .find(|p| p.is_file())
    }) {
        line[0] = path.display().to_string();
    }
    line
}

/// Untraced first (the reference), then utrace, the floor, and bpftrace if
/// installed.
fn sides(utrace: &Path) -> Vec<Side> {
    let utrace = utrace.display().to_string();
    let traced = [
        utrace.as_str(),
        "--syscalls-only",
        "--io",
        "--format=io",
        "-o",
        "/dev/null",
        "--",
    ];
    let mut sides: Vec<Side> = vec![
        ("untraced", vec![]),
        ("utrace --syscalls-only --io", svec(&traced)),
        (
            "floor: the same tracepoints, empty programs",
            floor(&traced),
        ),
    ];
    if common::have("bpftrace") {
        let bpftrace = BPFTRACE.replace("io_bench", "stress-ng");
        sides.push((
            "bpftrace, the same tracepoints",
            svec(&["bpftrace", "-e", &bpftrace, "-c"]),
        ));
    }
    sides
}

/// Bogo ops/s of real and of usr+sys time per stressor (hdd, iomix).
type Rates = (Vec<f64>, Vec<f64>);

/// One stress-ng run on one side: its rates, and utrace's "lost" lines.
fn stress_run((name, prefix): &Side, line: &[String]) -> (Option<Rates>, Vec<String>) {
    let mut cmd = Command::new(prefix.first().unwrap_or(&line[0]));
    match prefix.first().map(String::as_str) {
        None => cmd.args(&line[1..]),
        // bpftrace -c takes the command as one string.
        Some("bpftrace") => cmd.args(&prefix[1..]).arg(line.join(" ")),
        Some(_) => cmd.args(&prefix[1..]).args(line),
    };
    let ran = match common::run_with_limit(&mut cmd, RUN_LIMIT) {
        Ok(ran) => ran,
        Err(e) => {
            eprintln!("io: stress-ng {name}: {e}");
            return (None, Vec::new());
        }
    };
    let text = format!("{}{}", ran.stdout, ran.stderr);
    let lost = text
        .lines()
        .filter(|l| l.contains("utrace: lost"))
        .map(|l| l.trim().to_string())
        .collect();
    let rates = parse_rates(&text);
    if rates.is_none() {
        eprintln!(
            "io: stress-ng {name}: no bogo-ops figures read ({})",
            ran.stderr_tail()
        );
    }
    (rates, lost)
}

/// "stress-ng: metrc: [pid] hdd  1234  3.00  0.11  1.23  411.3  921.0": the
/// 9th and 10th fields are bogo ops/s of real and of usr+sys time.
fn parse_rates(text: &str) -> Option<Rates> {
    let (mut real, mut cpu) = (Vec::new(), Vec::new());
    for s in ["hdd", "iomix"] {
        let line = text.lines().find(|l| l.contains(&format!("] {s} ")))?;
        let f: Vec<&str> = line.split_whitespace().collect();
        real.push(f.get(8)?.parse().ok()?);
        cpu.push(f.get(9)?.parse().ok()?);
    }
    Some((real, cpu))
}
