//! What tracing system calls costs, against strace and perf trace measured
//! in the same run (issue 11).
//!
//! benches/fixtures/sys_bench.c times its own loop of N cheap syscalls
//! (getppid, or a 1-byte write to /dev/null), each made by the traced
//! function one(), and prints `ns_per_syscall=`, so start-up, attach and
//! detach drop out. Every configuration runs round-robin; the median of the
//! runs is reported as ns added per syscall over the untraced loop. Two more
//! figures: what an untraced bystander pays per syscall while utrace traces
//! another program (the tracepoints fire for every thread on the machine),
//! and how much stress-ng's mixed load slows down meanwhile.
//!
//! Knobs: UTRACE_BENCH_RUNS (default 5), UTRACE_BENCH_SYSCALLS (syscalls per
//! run, default 1,000,000; strace gets a fiftieth, perf trace and the
//! runs with a traced caller a tenth: they cost that much more),
//! UTRACE_BIN. Run: `cargo bench --bench syscalls` (as root).

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{find_value, median, thousands};

const RUN_LIMIT: Duration = Duration::from_secs(300);

/// One way to run the fixture.
struct Config {
    name: &'static str,
    /// The command before the fixture's path; empty: untraced.
    prefix: Vec<String>,
    /// Divides the syscalls per run (strace is slow).
    divisor: usize,
}

fn configs(utrace: Option<&Path>, out: &Path) -> Vec<Config> {
    let mut c = vec![Config {
        name: "untraced",
        prefix: vec![],
        divisor: 1,
    }];
    let o = out.display().to_string();
    if common::have("strace") {
        c.push(Config {
            name: "strace -f -c",
            prefix: svec(&["strace", "-f", "-c", "-o", &o]),
            divisor: 50,
        });
        c.push(Config {
            name: "strace -f -o FILE",
            prefix: svec(&["strace", "-f", "-o", &o]),
            divisor: 50,
        });
    }
    if perf_trace_works() {
        c.push(Config {
            name: "perf trace -o FILE",
            prefix: svec(&["perf", "trace", "-o", &o]),
            divisor: 10,
        });
    }
    if let Some(u) = utrace {
        let u = u.display().to_string();
        c.push(Config {
            name: "utrace --syscalls-only -o FILE",
            prefix: svec(&[&u, "--syscalls-only", "-o", &o, "--"]),
            divisor: 1,
        });
        c.push(Config {
            name: "utrace --syscalls-only --format=summary",
            prefix: svec(&[&u, "--syscalls-only", "--format=summary", "-o", &o, "--"]),
            divisor: 1,
        });
        // The traced caller's own cost, to tell the syscall's part from it.
        c.push(Config {
            name: "utrace -f one -o FILE (calls only)",
            prefix: svec(&[&u, "-f", "one", "-o", &o, "--"]),
            // A traced call costs microseconds here: a tenth is plenty.
            divisor: 10,
        });
        c.push(Config {
            name: "utrace --syscalls -f one -o FILE",
            prefix: svec(&[&u, "--syscalls", "-f", "one", "-o", &o, "--"]),
            divisor: 10,
        });
    }
    c
}

fn svec(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn perf_trace_works() -> bool {
    common::have("perf")
        && Command::new("perf")
            .args(["trace", "-o", "/dev/null", "--", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn build(dir: &Path) -> Option<PathBuf> {
    let root = common::repo_root();
    let src = root.join("benches/fixtures/sys_bench.c");
    let header = root.join("tests/fixtures/fixture.h");
    let out = dir.join("sys_bench");
    let inc = format!("-I{}", root.join("tests/fixtures").display());
    match common::build_cached("gcc", &["-O2", &inc], &[&src], &[&header], &out) {
        Ok(()) => Some(out),
        Err(e) => {
            eprintln!("syscalls: building the fixture failed: {e}");
            None
        }
    }
}

/// One run: ns per syscall the fixture measured, and whether utrace said it
/// lost events.
fn run_one(cfg: &Config, bin: &Path, n: usize, kind: &str) -> Option<(f64, bool)> {
    let mut cmd = match cfg.prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg((n / cfg.divisor).max(1000).to_string()).arg(kind);
    let ran = common::run_with_limit(&mut cmd, RUN_LIMIT).ok()?;
    if !ran.ok() {
        eprintln!("syscalls: {} failed: {}", cfg.name, ran.stderr_tail());
        return None;
    }
    let ns = find_value(&ran.stdout, "ns_per_syscall")?;
    Some((ns, ran.stderr.contains("lost")))
}

fn main() {
    let runs = common::env_usize("UTRACE_BENCH_RUNS", 5).max(1);
    let n = common::env_usize("UTRACE_BENCH_SYSCALLS", 1_000_000);
    let dir = common::fixture_dir();
    let Some(bin) = build(&dir) else { return };
    let utrace = common::utrace_bin();
    let out = dir.join("syscalls.out");
    let configs = configs(utrace.as_deref(), &out);
    println!(
        "syscalls: {} syscalls per run (strace {}), median of {runs}; {}",
        thousands(n as u64),
        thousands((n / 50) as u64),
        common::host_line()
    );
    for kind in ["getppid", "write"] {
        let mut cells: Vec<Vec<f64>> = configs.iter().map(|_| Vec::new()).collect();
        let mut lost = vec![false; configs.len()];
        for _ in 0..runs {
            for (i, cfg) in configs.iter().enumerate() {
                if let Some((ns, l)) = run_one(cfg, &bin, n, kind) {
                    cells[i].push(ns);
                    lost[i] |= l;
                }
            }
        }
        report(kind, &configs, &cells, &lost);
    }
    if let Some(u) = &utrace {
        bystander(u, &bin, runs);
        stress(u, &bin);
    }
    let _ = std::fs::remove_file(&out);
}

fn report(kind: &str, configs: &[Config], cells: &[Vec<f64>], lost: &[bool]) {
    let base = median(&cells[0]).unwrap_or(0.0);
    let strace = configs
        .iter()
        .position(|c| c.name == "strace -f -o FILE")
        .and_then(|i| median(&cells[i]));
    let mut rows = vec![svec(&[
        "configuration",
        "ns/syscall",
        "added ns",
        "syscalls/s",
        "vs strace -o",
        "lost",
    ])];
    for (i, cfg) in configs.iter().enumerate() {
        let Some(ns) = median(&cells[i]) else {
            rows.push(vec![cfg.name.into(), "failed".into()]);
            continue;
        };
        let added = ns - base;
        let cheaper = match (strace, i) {
            _ if i == 0 || cfg.name.starts_with("strace") => "-".to_string(),
            (Some(s), _) if added > 0.0 => format!("{:.0}× cheaper", (s - base) / added),
            _ => "-".to_string(),
        };
        rows.push(vec![
            cfg.name.into(),
            format!("{ns:.0}"),
            if i == 0 {
                "-".into()
            } else {
                format!("{added:.0}")
            },
            thousands((1e9 / ns) as u64),
            cheaper,
            if lost[i] { "yes" } else { "0" }.into(),
        ]);
    }
    println!("\n{kind}():");
    common::print_table(&rows, true);
}

/// An untraced copy of the fixture running its loop while utrace traces
/// another program: what every other process pays for the tracepoints.
/// (Debian's bpftrace 0.17 cannot attach raw tracepoints, so there is no
/// floor to print beside it.)
fn bystander(utrace: &Path, bin: &Path, runs: usize) {
    let utrace = utrace.display().to_string();
    let tracer = svec(&[
        &utrace,
        "--syscalls-only",
        "--format=summary",
        "-o",
        "/dev/null",
    ])
    .into_iter()
    .chain(svec(&["--", "sleep", "6"]))
    .collect::<Vec<_>>();
    let (mut alone, mut beside) = (Vec::new(), Vec::new());
    for _ in 0..runs.min(3) {
        for traced in [false, true] {
            let mut running = traced.then(|| {
                Command::new(&tracer[0])
                    .args(&tracer[1..])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()
            });
            std::thread::sleep(Duration::from_millis(if traced { 3000 } else { 0 }));
            let ran =
                common::run_with_limit(Command::new(bin).args(["0", "getppid", "2"]), RUN_LIMIT);
            if let Some(Some(t)) = running.as_mut() {
                let _ = t.wait();
            }
            let ns = ran
                .ok()
                .and_then(|r| find_value(&r.stdout, "ns_per_syscall"));
            match traced {
                false => alone.extend(ns),
                true => beside.extend(ns),
            }
        }
    }
    if let (Some(a), Some(b)) = (median(&alone), median(&beside)) {
        println!(
            "\nbystander: an untraced getppid() loop takes {a:.0} ns/syscall alone, {b:.0} ns \
             while utrace --syscalls-only traces another program: {:+.0} ns",
            b - a
        );
    }
}

/// stress-ng's mixed load, untraced and while utrace traces another program.
fn stress(utrace: &Path, _bin: &Path) {
    if !common::have("stress-ng") {
        println!("\nstress-ng: not installed (tools/setup installs it), skipped");
        return;
    }
    let bogo = |traced: bool| -> Option<f64> {
        let mut tracer = traced.then(|| {
            Command::new(utrace)
                .args([
                    "--syscalls-only",
                    "--format=summary",
                    "-o",
                    "/dev/null",
                    "--",
                ])
                .args(["sleep", "8"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        });
        std::thread::sleep(Duration::from_millis(if traced { 1500 } else { 0 }));
        let args = [
            "--get",
            "1",
            "--switch",
            "1",
            "--timer",
            "1",
            "--open",
            "1",
            "-t",
            "4s",
            "--metrics-brief",
        ];
        let ran = common::run_with_limit(Command::new("stress-ng").args(args), RUN_LIMIT).ok()?;
        if let Some(Some(t)) = tracer.as_mut() {
            let _ = t.wait();
        }
        // "stress-ng: metrc: [pid] switch  271266  2.00  0.11  1.23  135601.40  202672.96":
        // the 9th field is bogo ops/s in real time; summed over the stressors.
        let text = ran.stdout + &ran.stderr;
        let rates: Vec<f64> = text
            .lines()
            .filter(|l| {
                ["get", "switch", "timer", "open"]
                    .iter()
                    .any(|s| l.contains(&format!("] {s} ")))
            })
            .filter_map(|l| l.split_whitespace().nth(8)?.parse().ok())
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum())
    };
    let (Some(alone), Some(beside)) = (bogo(false), bogo(true)) else {
        println!("\nstress-ng: no bogo-ops figures read, skipped");
        return;
    };
    println!(
        "\nstress-ng --get --switch --timer --open (4 s): {:.0} bogo ops/s untraced, {:.0} while \
         utrace --syscalls-only traces another program: {:.1}% slower",
        alone,
        beside,
        (1.0 - beside / alone) * 100.0
    );
}
