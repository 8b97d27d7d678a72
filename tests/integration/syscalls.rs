//! --syscalls and --syscalls-only: system calls as leaves under the traced
//! call that made them, exact per function and syscall, checked against
//! the fixtures' known calls and against strace's own counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    Build, assert_text_eq, fixture, normalise, require_bpf, run, spawn_attached, trace, utrace,
};

/// The functions of syscalls.c that make system calls, and main.
const FUNCTIONS: [&str; 10] = [
    "-f",
    "main",
    "-f",
    "load_config",
    "-f",
    "ping_parent",
    "-f",
    "write_null",
    "-f",
    "long_path",
];

/// A config file of exactly 811 bytes for load_config to read.
fn config(dir: &Path) -> PathBuf {
    let path = dir.join("app.conf");
    std::fs::write(&path, vec![b'x'; 811]).unwrap();
    path
}

/// `text` with every hex address (a buffer, a stack slot) as `0xADDR`.
fn addresses_hidden(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("0x") {
        out.push_str(&rest[..at]);
        let digits = rest[at + 2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len() - at - 2);
        if digits >= 6 {
            out.push_str("0xADDR");
        } else {
            out.push_str(&rest[at..at + 2 + digits]);
        }
        rest = &rest[at + 2 + digits..];
    }
    out.push_str(rest);
    out
}

/// Only the lines of the tree from main's entry to its end.
fn main_tree(graph: &str) -> String {
    let lines: Vec<&str> = graph.lines().collect();
    let start = lines.iter().position(|l| l.ends_with("| main() {"));
    let end = lines.iter().position(|l| l.ends_with("| } /* main */"));
    match (start, end) {
        (Some(s), Some(e)) => lines[s..=e].join("\n") + "\n",
        _ => panic!("no main() in\n{graph}"),
    }
}

#[test]
fn system_calls_are_leaves_under_the_function_that_made_them() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path());
    let mut opts = vec!["--syscalls=openat,read,close,getppid,write"];
    opts.extend(FUNCTIONS);
    let t = trace(
        &fixture("syscalls", Build::O2),
        &[conf.to_str().unwrap()],
        &opts,
    );
    assert_eq!(
        t.stdout, "read=811 pings=3 written=5 cut=1\n",
        "{}",
        t.stderr
    );
    let conf = conf.display();
    // COPY_MAX (256) bytes with the NUL: 255 of the path.
    let long = format!("/{}", "a".repeat(254));
    let expected = format!(
        "\
\x20           [     1] | main() {{
            [     1] |   load_config() {{
      <dur> [     1] |     openat(AT_FDCWD, \"{conf}\", O_RDONLY) = 3;
      <dur> [     1] |     read(3, 0xADDR, 4096) = 811;
      <dur> [     1] |     close(3) = 0;
      <dur> [     1] |     openat(AT_FDCWD, \"/nonexistent/utrace.conf\", O_RDONLY) = -ENOENT;
      <dur> [     1] |   }} /* load_config */
            [     1] |   ping_parent() {{
      <dur> [     1] |     getppid() = 2;
      <dur> [     1] |     getppid() = 2;
      <dur> [     1] |     getppid() = 2;
      <dur> [     1] |   }} /* ping_parent */
            [     1] |   write_null() {{
      <dur> [     1] |     openat(AT_FDCWD, \"/dev/null\", O_WRONLY) = 3;
      <dur> [     1] |     write(3, 0xADDR, 1) = 1;
      <dur> [     1] |     write(3, 0xADDR, 1) = 1;
      <dur> [     1] |     write(3, 0xADDR, 1) = 1;
      <dur> [     1] |     write(3, 0xADDR, 1) = 1;
      <dur> [     1] |     write(3, 0xADDR, 1) = 1;
      <dur> [     1] |     close(3) = 0;
      <dur> [     1] |   }} /* write_null */
            [     1] |   long_path() {{
      <dur> [     1] |     openat(AT_FDCWD, \"{long}\"..., O_RDONLY) = -ENAMETOOLONG;
      <dur> [     1] |   }} /* long_path */
      <dur> [     1] | }} /* main */
"
    );
    // getppid's result is utrace's own pid: renumbered like the tids.
    let tree = main_tree(&t.graph).replace(&format!("= {};", t_parent(&t.graph)), "= PPID;");
    let tree = normalise(&addresses_hidden(&tree)).replace("= PPID;", "= 2;");
    assert_text_eq(&expected, &tree);
}

/// The pid getppid() returned in `graph` (the fixture's parent: utrace).
fn t_parent(graph: &str) -> String {
    graph
        .lines()
        .find_map(|l| l.trim_end().strip_suffix(';')?.split_once("getppid() = "))
        .map(|(_, pid)| pid.to_string())
        .unwrap_or_default()
}

/// The JSON report's syscall rows as (function, syscall) → (calls, errors, bytes).
type Rows = BTreeMap<(String, String), (u64, u64, u64)>;

fn syscall_rows(json: &str) -> Rows {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["syscalls"]
        .as_array()
        .expect("a syscalls array")
        .iter()
        .map(|r| {
            let function = r["function"].as_str().unwrap_or("null").to_string();
            let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
            (
                (function, r["syscall"].as_str().unwrap().to_string()),
                (n("calls"), n("errors"), n("bytes")),
            )
        })
        .collect()
}

fn rows(expected: &[(&str, &str, u64, u64, u64)]) -> Rows {
    expected
        .iter()
        .map(|&(f, s, c, e, b)| ((f.to_string(), s.to_string()), (c, e, b)))
        .collect()
}

/// `utrace OPTS --format=json -o FILE -- syscalls ARGS`: the JSON and the run.
fn json_of(opts: &[&str], args: &[&str]) -> (String, crate::common::Traced) {
    let mut all = vec!["--format=json"];
    all.extend(opts);
    let t = trace(&fixture("syscalls", Build::O2), args, &all);
    (t.graph.clone(), t)
}

#[test]
fn json_counts_each_syscall_per_function_with_errors_and_bytes() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path());
    let mut opts = vec!["--syscalls=openat,read,close,getppid,write"];
    opts.extend(FUNCTIONS);
    let (json, t) = json_of(&opts, &[conf.to_str().unwrap()]);
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    let mut got = syscall_rows(&json);
    // Outside main: the dynamic loader's reads and printf's write at exit.
    got.retain(|(f, _), _| f != "null");
    let expected = rows(&[
        ("load_config", "openat", 2, 1, 0),
        ("load_config", "read", 1, 0, 811),
        ("load_config", "close", 1, 0, 0),
        ("ping_parent", "getppid", 3, 0, 0),
        ("write_null", "openat", 1, 0, 0),
        ("write_null", "write", 5, 0, 5),
        ("write_null", "close", 1, 0, 0),
        ("long_path", "openat", 1, 1, 0),
    ]);
    assert_eq!(got, expected, "{json}");
}

#[test]
fn threads_and_forked_children_are_traced_too() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path());
    let conf = conf.to_str().unwrap();
    let opts = ["--syscalls=getppid", "-f", "ping_parent"];
    for (how, calls) in [("threads", 3 + 4 * 10), ("fork", 3 + 10)] {
        let (json, t) = json_of(&opts, &[conf, how]);
        assert_eq!(t.code, Some(0), "{how}: {}", t.stderr);
        assert_eq!(
            syscall_rows(&json),
            rows(&[("ping_parent", "getppid", calls, 0, 0)]),
            "{how}: {json}"
        );
    }
}

#[test]
fn syscalls_only_probes_no_function_of_a_program_the_command_execs() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path());
    let bin = fixture("syscalls", Build::O2);
    // The shell is the command; the fixture is what its child execs.
    let script = format!("{} {} fork; true", bin.display(), conf.display());
    let t = trace(
        Path::new("/bin/sh"),
        &["-c", &script],
        &["--syscalls-only", "--syscalls=getppid", "--format=json"],
    );
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    let v: Value = serde_json::from_str(&t.graph).unwrap_or_else(|e| panic!("{e}: {}", t.graph));
    assert_eq!(
        (
            v["functions"].as_array().map(Vec::len),
            v["events"].as_u64()
        ),
        (Some(0), Some(0)),
        "{}",
        t.graph
    );
    assert_eq!(
        syscall_rows(&t.graph),
        // The shell asks for its parent once ($PPID), then the fixture does.
        rows(&[("null", "getppid", 1 + 3 + 10, 0, 0)]),
        "{}",
        t.graph
    );
    assert!(!t.stderr.contains("probes"), "{}", t.stderr);
}

/// strace -f -c's table: syscall → (calls, errors).
fn strace_counts(bin: &Path, args: &[&str]) -> BTreeMap<String, (u64, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("strace.txt");
    let status = run(
        std::process::Command::new("strace")
            .args(["-f", "-c", "-o"])
            .arg(&out)
            .arg(bin)
            .args(args),
        Duration::from_secs(60),
    );
    assert!(status.status.success(), "strace failed: {status:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('%') && !l.starts_with('-') && !l.contains("total"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // % time, seconds, usecs/call, calls, [errors], syscall
            match f.len() {
                6 => Some((f[5].to_string(), (f[3].parse().ok()?, f[4].parse().ok()?))),
                5 => Some((f[4].to_string(), (f[3].parse().ok()?, 0))),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn syscalls_only_counts_what_strace_counts() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path());
    let conf = conf.to_str().unwrap();
    let bin = fixture("syscalls", Build::O2);
    let mut expected = strace_counts(&bin, &[conf, "threads"]);
    // utrace starts at the exec strace shows returning, and counts the
    // exits that strace -c leaves out (they never return): the process's,
    // and its 4 threads'.
    expected.remove("execve");
    expected.insert("exit_group".into(), (1, 0));
    expected.insert("exit".into(), (4, 0));
    // How often pthread_join waits on a futex depends on who runs first.
    expected.remove("futex");
    for format in ["--format=json", "--format=summary"] {
        let t = trace(&bin, &[conf, "threads"], &["--syscalls-only", format]);
        assert_eq!(t.code, Some(0), "{}", t.stderr);
        let mut got: BTreeMap<String, (u64, u64)> = if format.ends_with("json") {
            syscall_rows(&t.graph)
                .into_iter()
                .map(|((f, s), (c, e, _))| {
                    assert_eq!(f, "null", "no function is traced");
                    (s, (c, e))
                })
                .collect()
        } else {
            summary_syscalls(&t.graph)
        };
        got.remove("futex");
        assert_eq!(got, expected, "{format}:\n{}", t.graph);
    }
}

/// The summary's "System calls:" table: syscall → (calls, errors).
fn summary_syscalls(text: &str) -> BTreeMap<String, (u64, u64)> {
    text.lines()
        .skip_while(|l| *l != "System calls:")
        .skip(3)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = |s: &str| s.replace(',', "").parse().unwrap();
            (f[f.len() - 1].to_string(), (n(f[0]), n(f[1])))
        })
        .collect()
}

#[test]
fn the_net_set_traces_sockets_over_loopback_and_nothing_else() {
    if !require_bpf() {
        return;
    }
    let (json, t) = {
        let t = trace(
            &fixture("net", Build::O2),
            &[],
            &[
                "--syscalls=%net",
                "--format=json",
                "-f",
                "listen_on",
                "-f",
                "dial",
                "-f",
                "talk",
                "-f",
                "hang_up",
            ],
        );
        (t.graph.clone(), t)
    };
    assert_eq!(t.stdout, "received=5\n", "{}", t.stderr);
    let expected = rows(&[
        ("listen_on", "socket", 1, 0, 0),
        ("listen_on", "bind", 1, 0, 0),
        ("listen_on", "listen", 1, 0, 0),
        ("listen_on", "getsockname", 1, 0, 0),
        ("dial", "socket", 1, 0, 0),
        ("dial", "connect", 1, 0, 0),
        ("talk", "accept", 1, 0, 0),
        ("talk", "sendto", 1, 0, 5),
        ("talk", "recvfrom", 1, 0, 5),
    ]);
    // close is %desc, not %net: hang_up makes none of these.
    assert_eq!(syscall_rows(&json), expected, "{json}");
}

#[test]
fn the_report_of_a_recording_is_the_live_tree() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path());
    let conf = conf.to_str().unwrap();
    let bin = fixture("syscalls", Build::O2);
    let mut opts = vec!["--syscalls=openat,getppid,write"];
    opts.extend(FUNCTIONS);
    let live = trace(&bin, &[conf], &opts);
    let data = dir.path().join("sys.data");
    let out = run(
        utrace()
            .arg("--record")
            .arg("-d")
            .arg(&data)
            .args(&opts)
            .arg("--")
            .arg(&bin)
            .arg(conf),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{out:?}");
    let report = run(
        utrace()
            .args(["--report", "--format=call-graph", "-d"])
            .arg(&data),
        Duration::from_secs(60),
    );
    let reported = String::from_utf8_lossy(&report.stdout);
    // getppid() returns each run's own utrace.
    let same = |g: &str| {
        let tree = main_tree(g).replace(&format!("= {};", t_parent(g)), "= PPID;");
        normalise(&addresses_hidden(&tree))
    };
    assert_text_eq(&same(&live.graph), &same(&reported));
}

#[test]
fn csv_has_one_row_per_call_and_per_syscall() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path());
    let t = trace(
        &fixture("syscalls", Build::O2),
        &[conf.to_str().unwrap()],
        &[
            "--syscalls=getppid,write",
            "--format=csv",
            "-f",
            "ping_parent",
            "-f",
            "write_null",
        ],
    );
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    let mut lines = t.graph.lines();
    assert_eq!(
        lines.next(),
        Some("timestamp_ns,pid,tid,depth,kind,name,linkage_name,duration_ns,result,bytes")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let shape: Vec<String> = rows
        .iter()
        .filter(|r| r[3] != "0" || r[4] == "call")
        .map(|r| format!("{} {} {} {} {}", r[3], r[4], r[5], r[8], r[9]))
        .collect();
    let mut expected = vec!["1 syscall getppid PPID ".to_string(); 3];
    expected.push("0 call ping_parent  ".into());
    expected.extend(vec!["1 syscall write 1 1".to_string(); 5]);
    expected.push("0 call write_null  ".into());
    let ppid = rows.iter().find(|r| r[5] == "getppid").map_or("", |r| r[8]);
    let shape: Vec<String> = shape.iter().map(|s| s.replace(ppid, "PPID")).collect();
    assert_eq!(shape, expected, "{}", t.graph);
    for r in &rows {
        assert_eq!(r.len(), 10, "{r:?}");
        assert!(
            r[0].parse::<u64>().is_ok() && r[7].parse::<u64>().is_ok(),
            "{r:?}"
        );
    }
}

#[test]
fn syscalls_only_follows_an_attached_process_and_prints_strace_lines() {
    if !require_bpf() {
        return;
    }
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut spin = Command::new(fixture("spin", Build::O2))
        .args(["-n", "10"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(spin.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: u32 = line.trim().strip_prefix("pid=").unwrap().parse().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = utrace();
    cmd.args(["--syscalls-only", "-p", &pid.to_string(), "-o"])
        .arg(out.path());
    let (mut tracer, _) = spawn_attached(&mut cmd);
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGUSR1) }, 0);
    assert!(tracer.wait().unwrap().success());
    let _ = spin.wait();
    let text = std::fs::read_to_string(out.path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The sigwait it was blocked in began before the attach: not shown. Then
    // printf's write at exit, and the exit that never returns.
    assert_eq!(lines.len(), 2, "{text}");
    let tid = format!("{pid:<5} ");
    let write = lines[0]
        .strip_prefix(&tid)
        .unwrap_or_else(|| panic!("{text}"));
    assert!(write.starts_with("write(1, 0x"), "{text}");
    assert!(
        write.contains(", 9) = 9 <0.") && write.ends_with('>'),
        "{text}"
    );
    assert_eq!(lines[1], format!("{tid}exit_group(0) = ?"), "{text}");
}

/// 300,000 syscalls as fast as a thread makes them, each a line to format:
/// the reader runs ahead of the printer and fills the channel between them;
/// the end of the run must drain it, not wait on it (it once hung there).
#[test]
fn a_burst_of_syscalls_is_printed_whole_when_the_run_ends() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path());
    let t = trace(
        &fixture("syscalls", Build::O2),
        &[conf.to_str().unwrap(), "many"],
        // Room for the whole burst: the test is about the channel, not loss.
        &["--syscalls-only", "--buffer-size", "128M"],
    );
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    let pings = t
        .graph
        .lines()
        .filter(|l| l.contains(" getppid() = "))
        .count();
    assert_eq!(pings, 3 + 300_000, "{}", t.stderr);
    assert!(!t.stderr.contains("lost"), "{}", t.stderr);
}

#[test]
fn the_time_filter_keeps_long_syscalls_and_the_calls_they_are_under() {
    if !require_bpf() {
        return;
    }
    // phases sleeps 300 ms in main and 30 ms in slow(): with -t 5ms only
    // those two clock_nanosleep calls and the calls around them are left,
    // live and in the report of a recording alike.
    let bin = fixture("phases", Build::O2);
    let t = trace(&bin, &[], &["--syscalls", "-t", "5ms"]);
    let expected = "\
# DURATION     TID     FUNCTION
            [     1] | main() {
            [     1] |   usleep@plt() {
      <dur> [     1] |     clock_nanosleep(CLOCK_REALTIME, 0, {tv_sec=0, tv_nsec=300000000}, NULL) = 0;
      <dur> [     1] |   } /* usleep@plt */
            [     1] |   late() {
            [     1] |     slow() {
            [     1] |       usleep@plt() {
      <dur> [     1] |         clock_nanosleep(CLOCK_REALTIME, 0, {tv_sec=0, tv_nsec=30000000}, NULL) = 0;
      <dur> [     1] |       } /* usleep@plt */
      <dur> [     1] |     } /* slow */
      <dur> [     1] |   } /* late */
      <dur> [     1] | } /* main */
";
    assert_text_eq(expected, &normalise(&t.graph));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("phases.data");
    crate::record::record(&["--syscalls"], &bin, &[], &data);
    let reported = crate::record::report(&data, &["--format=call-graph", "-t", "5ms"]);
    assert_text_eq(expected, &normalise(&reported));
}
