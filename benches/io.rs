//! What `--io` costs (issue 12), against bpftrace counting the same
//! tracepoints in the same run, and what it does to stress-ng's I/O load.
//!
//! benches/fixtures/io_bench.c times its own loop of rounds (a 4 KiB pwrite
//! and pread in the page cache, an fdatasync every 64 rounds), each made by
//! the traced function one(); the median ns per round of the runs is
//! reported with what each tracer adds. Then stress-ng's --hdd and --iomix
//! stressors (bounded in time) run untraced and under `utrace
//! --syscalls-only --io`, and the drop in their bogo ops/s is printed with
//! the events lost.
//!
//! Knobs: UTRACE_BENCH_RUNS (default 5), UTRACE_BENCH_ROUNDS (default
//! 20,000), UTRACE_BIN. Run: `cargo bench --bench io` (as root).

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{find_value, median, thousands};

const RUN_LIMIT: Duration = Duration::from_secs(300);

/// bpftrace counting what `--io` listens to: the syscalls, the page cache,
/// dirtying and the block layer.
const BPFTRACE: &str = "tracepoint:raw_syscalls:sys_enter /comm == \"io_bench\"/ { @s = count(); } \
    tracepoint:raw_syscalls:sys_exit /comm == \"io_bench\"/ { @x = count(); } \
    tracepoint:filemap:mm_filemap_add_to_page_cache { @a = count(); } \
    tracepoint:filemap:mm_filemap_get_pages { @g = count(); } \
    tracepoint:writeback:writeback_dirty_folio { @d = count(); } \
    tracepoint:block:block_bio_queue { @q = count(); } \
    tracepoint:block:block_rq_issue { @i = count(); } \
    tracepoint:block:block_rq_complete { @c = count(); }";

fn svec(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
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

/// stress-ng's I/O stressors, untraced, traced by `--syscalls-only --io`,
/// and under bpftrace counting the same tracepoints.
fn stress(utrace: &Path, dir: &Path) {
    if !common::have("stress-ng") {
        println!("\nstress-ng: not installed (tools/setup installs it), skipped");
        return;
    }
    let temp = dir.join("stress-io");
    let _ = std::fs::create_dir_all(&temp);
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
        "5s",
        "--metrics-brief",
        "--temp-path",
    ]);
    line.push(temp.display().to_string());
    // bpftrace -c wants one binary: `stress-ng` alone can match two (PATH).
    if let Some(path) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("stress-ng"))
            .find(|p| p.is_file())
    }) {
        line[0] = path.display().to_string();
    }
    let bpftrace = BPFTRACE.replace("io_bench", "stress-ng");
    let utrace = utrace.display().to_string();
    let prefixes: [(&str, Vec<String>); 3] = [
        ("untraced", vec![]),
        (
            "utrace --syscalls-only --io",
            svec(&[
                &utrace,
                "--syscalls-only",
                "--io",
                "--format=io",
                "-o",
                "/dev/null",
                "--",
            ]),
        ),
        (
            "bpftrace, the same tracepoints",
            svec(&["bpftrace", "-e", &bpftrace, "-c"]),
        ),
    ];
    let mut alone = None;
    println!("\nstress-ng --hdd --iomix (5 s), bogo ops/s:");
    for (name, prefix) in &prefixes {
        if name.starts_with("bpftrace") && !common::have("bpftrace") {
            continue;
        }
        let mut cmd = Command::new(prefix.first().unwrap_or(&line[0]));
        match prefix.first().map(String::as_str) {
            None => cmd.args(&line[1..]),
            // bpftrace -c takes the command as one string.
            Some("bpftrace") => cmd.args(&prefix[1..]).arg(line.join(" ")),
            Some(_) => cmd.args(&prefix[1..]).args(&line),
        };
        let Ok(ran) = common::run_with_limit(&mut cmd, RUN_LIMIT) else {
            continue;
        };
        let text = format!("{}{}", ran.stdout, ran.stderr);
        let rate: f64 = text
            .lines()
            .filter(|l| l.contains("] hdd ") || l.contains("] iomix "))
            .filter_map(|l| l.split_whitespace().nth(8)?.parse::<f64>().ok())
            .sum();
        let lost = text
            .lines()
            .find(|l| l.contains("utrace: lost"))
            .unwrap_or("");
        match alone {
            _ if rate <= 0.0 => {
                println!("  {name}: no bogo-ops figures read ({})", ran.stderr_tail())
            }
            None => {
                alone = Some(rate);
                println!("  {name}: {rate:.0}");
            }
            Some(a) => println!(
                "  {name}: {rate:.0}, {:.1}% slower {lost}",
                (1.0 - rate / a) * 100.0
            ),
        }
    }
}
