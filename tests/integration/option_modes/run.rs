//! Runs one cell of the option × mode table: spin.c traced, recorded,
//! reported or listed with the row's arguments, and what came out.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{Col, Ran, Row};
use crate::common::{Build, copy_program, fixture, utrace};

/// spin.c's private copy, under the name its --libname rows expect.
fn spin(dir: &Path) -> PathBuf {
    let copy = dir.join("spin-O2");
    copy_program(&fixture("spin", Build::O2), &copy);
    copy
}

fn spin_args(bin: &Path) -> Vec<String> {
    vec![bin.display().to_string(), "-n".into(), "3".into()]
}

/// The trace --report cells read: spin recorded once.
fn recorded() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("option-modes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("spin.data");
        let mut cmd = utrace();
        cmd.arg("--record")
            .arg("-d")
            .arg(&data)
            .arg("--")
            .args(spin_args(&spin(&dir)));
        let ran = released(cmd, None);
        assert_eq!(ran.code, Some(0), "recording spin: {}", ran.stderr);
        data
    })
}

/// Runs `cmd`, whose stdout is the spin target's (-c) or whose target is
/// `target` (-p, a spin waiting for SIGUSR1), releases spin once utrace is
/// attached, and collects what happened.
fn released(mut cmd: Command, target: Option<&mut Child>) -> Ran {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut out, mut err) = (String::new(), String::new());
    let (mut uid, mut personality) = (None, None);
    let pid = match target {
        // -p: spin is released once utrace says it attached.
        Some(spin) => {
            while !err.contains("attached") {
                if stderr.read_line(&mut err).unwrap_or(0) == 0 {
                    break;
                }
            }
            Some(spin.id())
        }
        // -c: the command prints its pid once utrace released it from exec.
        None => {
            stdout.read_line(&mut out).unwrap_or(0);
            let pid = out
                .trim()
                .strip_prefix("pid=")
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                uid = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .map(str::to_owned);
                personality = std::fs::read_to_string(format!("/proc/{pid}/personality")).ok();
            }
            pid
        }
    };
    if let Some(pid) = pid {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
    }
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let _ = stdout.read_to_string(&mut out);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{cmd:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    err.push_str(&drain.join().unwrap_or_default());
    Ran {
        out: String::new(),
        stdout: out,
        stderr: err,
        code: status.code(),
        uid,
        personality,
    }
}

/// Runs one cell of `row` in `col`.
pub(super) fn run_cell(row: &Row, col: Col, refused: bool) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    // -u nobody runs the copy of spin in it.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // Only --report reads the recorded trace: recording needs BPF.
    let data = match col {
        Col::Report => recorded().to_path_buf(),
        _ => PathBuf::new(),
    };
    let args: Vec<String> = row
        .args
        .iter()
        .map(|a| {
            let trace = match col {
                Col::Report => data.clone(),
                _ => dir.path().join("x.data"),
            };
            a.replace("{dir}", &dir.path().display().to_string())
                .replace("{trace}", &trace.display().to_string())
        })
        .collect();
    let has = |flag: &str| row.args.contains(&flag);
    let out_file = match has("-o") {
        true => dir.path().join("out.txt"),
        false => dir.path().join("graph.txt"),
    };
    let mut cmd = utrace();
    let bin = spin(dir.path());
    match col {
        Col::Command | Col::Pid => {
            cmd.args(&args);
            if !has("-o") {
                cmd.arg("-o").arg(&out_file);
            }
        }
        Col::Record => {
            cmd.arg("--record").args(&args);
            if !has("-d") {
                cmd.arg("-d").arg(dir.path().join("x.data"));
            }
        }
        Col::Report | Col::List => {
            cmd.arg(if col == Col::Report {
                "--report"
            } else {
                "--list"
            })
            .args(&args);
            if col == Col::Report && !has("-d") {
                cmd.arg("-d").arg(&data);
            }
            // The call graph, but where the row is about the default format.
            let about_format = ["--format", "--sort", "--per-thread"];
            if col == Col::Report
                && !row
                    .args
                    .iter()
                    .any(|a| about_format.iter().any(|f| a.starts_with(f)))
            {
                cmd.arg("--format=call-graph");
            }
        }
    }
    if refused {
        match col {
            Col::Pid => cmd.args(["-p", "1"]),
            Col::Command | Col::Record | Col::List => cmd.arg("--").args(spin_args(&bin)),
            Col::Report => &mut cmd,
        };
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        return Ran {
            out: String::new(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
            uid: None,
            personality: None,
        };
    }
    let mut ran = match col {
        Col::Pid => {
            let mut target = Command::new(&bin)
                .args(["-n", "3"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let mut line = String::new();
            BufReader::new(target.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            cmd.arg("-p").arg(target.id().to_string());
            let ran = released(cmd, Some(&mut target));
            let _ = target.kill();
            let _ = target.wait();
            ran
        }
        Col::Command | Col::Record => {
            cmd.arg("--").args(spin_args(&bin));
            released(cmd, None)
        }
        Col::Report | Col::List => {
            if col == Col::List {
                cmd.arg("--").args(spin_args(&bin));
            }
            let out = crate::common::run(&mut cmd, Duration::from_secs(60));
            Ran {
                out: String::new(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                code: out.status.code(),
                uid: None,
                personality: None,
            }
        }
    };
    ran.out = match col {
        Col::Record => {
            // The -d row names the same file.
            let data = dir.path().join("x.data");
            let report = utrace()
                .args(["--report", "--format=call-graph", "-d"])
                .arg(data)
                .output()
                .unwrap();
            String::from_utf8_lossy(&report.stdout).into_owned()
        }
        Col::Report | Col::List if !has("-o") => ran.stdout.clone(),
        _ => std::fs::read_to_string(&out_file).unwrap_or_default(),
    };
    ran
}
