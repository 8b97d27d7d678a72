//! Bad input gets one clear line naming the problem and the way out, and a
//! non-zero exit: never a panic, never a silent empty result.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::common::{Build, fixture, require_bpf, run, utrace};

/// The one error line utrace printed (warnings aside).
fn error_line(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure, got {:?}",
        out.status
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("utrace: warning"))
        .collect();
    assert_eq!(errors.len(), 1, "exactly one error line:\n{stderr}");
    errors[0].to_string()
}

fn utrace_fails(args: &[&str]) -> String {
    error_line(&run(utrace().args(args), Duration::from_secs(60)))
}

#[test]
fn no_such_pid() {
    let line = utrace_fails(&["-p", "999999999"]);
    assert_eq!(
        line,
        "utrace: no such process: 999999999 (check the pid with `ps`)"
    );
}

#[test]
fn a_kernel_thread_is_named_not_blamed_on_permissions() {
    // pid 2 is kthreadd on every Linux: /proc/2/exe cannot be read, even by root.
    let line = utrace_fails(&["-p", "2"]);
    assert_eq!(
        line,
        "utrace: pid 2 is a kernel thread (kthreadd): only user-space processes can be traced"
    );
}

#[test]
fn a_zombie_is_named_not_blamed_on_permissions() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    // Not waited for: once it exits it stays a zombie until `wait` below.
    let stat = format!("/proc/{pid}/stat");
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&stat)
        .unwrap()
        .rsplit(')')
        .next()
        .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "true never exited"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let line = utrace_fails(&["-p", &pid.to_string()]);
    child.wait().unwrap();
    assert_eq!(
        line,
        format!(
            "utrace: process {pid} is a zombie (exited, not yet reaped by its parent): nothing left to trace"
        )
    );
}

/// utrace's exit status and whole stderr for `args`.
fn usage(args: &[&str]) -> (Option<i32>, String) {
    let out = run(utrace().args(args), Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr)
}

#[test]
fn negative_numbers_get_one_line_saying_what_the_option_takes() {
    let bin = fixture("calls", Build::O2);
    let bin = bin.to_str().unwrap();
    let cases = [
        (
            vec!["--max-depth", "-1", "--", bin],
            "utrace: --max-depth takes a number of levels, 0 or more\n",
        ),
        (
            vec!["-t", "-5us", "--", bin],
            "utrace: --time-filter takes a duration like 10us, not a negative one\n",
        ),
        (
            vec!["-p", "-1"],
            "utrace: -p takes a process id, a number like 4242 (see `ps`)\n",
        ),
    ];
    for (args, stderr) in cases {
        assert_eq!(usage(&args), (Some(2), stderr.to_owned()), "{args:?}");
    }
}

#[test]
fn no_such_command() {
    let line = utrace_fails(&["--", "/nonexistent/prog"]);
    assert!(
        line.starts_with("utrace: no such command: /nonexistent/prog"),
        "{line}"
    );
    let line = utrace_fails(&["--", "no-such-program-anywhere"]);
    assert!(line.contains("not found on $PATH"), "{line}");
}

#[test]
fn not_an_elf() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let line = utrace_fails(&["--list", "--", script.to_str().unwrap()]);
    assert!(line.contains("is not an ELF executable"), "{line}");
    assert!(line.contains("interpreter"), "says the way out: {line}");
}

#[test]
fn stripped_binary() {
    let dir = tempfile::tempdir().unwrap();
    let stripped = dir.path().join("calls-stripped");
    let status = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(fixture("calls", Build::O2))
        .status()
        .unwrap();
    assert!(status.success());
    // Its PLT stubs remain (decoded from relocations): those are listed.
    let out = run(
        utrace().args(["--list", "--"]).arg(&stripped),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is stripped and exports nothing: only its library calls"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(names, ["printf@plt"], "{stdout}");
    // With no symbol and no library call, nothing is left to trace.
    let bare = dir.path().join("bare");
    let src = dir.path().join("bare.c");
    std::fs::write(
        &src,
        "void _start(void) { for (;;) __asm__ volatile(\"\"); }\n",
    )
    .unwrap();
    let status = std::process::Command::new("gcc")
        .args(["-O2", "-s", "-nostdlib", "-static", "-o"])
        .arg(&bare)
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success());
    let line = utrace_fails(&["--list", "--", bare.to_str().unwrap()]);
    assert!(
        line.contains("is stripped: it has no function symbols to trace"),
        "{line}"
    );
}

#[test]
fn pattern_matching_nothing_points_at_list() {
    let bin = fixture("calls", Build::O2);
    let line = utrace_fails(&["-f", "no_such_function*", "--", bin.to_str().unwrap()]);
    assert_eq!(
        line,
        "utrace: no function matches -f 'no_such_function*': see the candidates with --list"
    );
}

#[test]
fn values_requests_name_what_they_miss_and_the_way_out() {
    let bin = fixture("values", Build::O0);
    let bin = bin.to_str().unwrap();
    assert_eq!(
        utrace_fails(&["-A", "nomatch*", "--", bin]),
        "utrace: -A 'nomatch*' matches no traced function (see --list; -A applies to the \
         functions -f selects, and to a library dlopen loads later only with --nest-lib)"
    );
    assert_eq!(
        utrace_fails(&["-R", "printf@plt", "--", bin]),
        "utrace: -R 'printf@plt': printf@plt, the function it matches, has no debug info: \
         name the registers (-R 'printf@plt@retval'), or give the debug files with --debug-dir"
    );
    let (code, stderr) = usage(&["-A", "parse@arg1,ar2", "--", bin]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("utrace: -A 'parse@arg1,ar2': \"ar2\" is not an argument: use argN"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn no_bpf_permission_names_the_capabilities() {
    if !require_bpf() {
        return; // dropping privileges needs root to begin with
    }
    let bin = fixture("calls", Build::O2);
    let out = run(
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(env!("CARGO_BIN_EXE_utrace"))
            .arg("--")
            .arg(&bin),
        Duration::from_secs(60),
    );
    let line = error_line(&out);
    assert!(
        line.starts_with("utrace: no permission to load BPF programs"),
        "{line}"
    );
    assert!(
        line.contains("CAP_BPF") && line.contains("CAP_PERFMON"),
        "{line}"
    );
}

#[test]
fn no_such_user_or_group() {
    if !require_bpf() {
        return; // the command is launched after the BPF programs load
    }
    let bin = fixture("ids", Build::O2);
    let bin = bin.to_str().unwrap();
    let line = utrace_fails(&["-u", "no-such-user-x", "--", bin]);
    assert_eq!(line, "utrace: no such user: no-such-user-x");
    let line = utrace_fails(&["-u", "nobody:no-such-group-x", "--", bin]);
    assert_eq!(line, "utrace: no such group: no-such-group-x");
    let line = utrace_fails(&["-u", "4242424", "--", bin]);
    assert_eq!(
        line,
        "utrace: uid 4242424 has no entry in the user database: give its group too, as -u 4242424:GID"
    );
}

#[test]
fn nothing_to_trace() {
    let line = utrace_fails(&["-f", "x"]);
    assert!(line.contains("nothing to trace"), "{line}");
}

#[test]
fn list_shows_module_offset_probe_path_exit_and_name() {
    /// (function, probe path, exit) rows of `utrace --list` for `bin`.
    fn listed(bin: &std::path::Path) -> (Vec<(String, String, String)>, String) {
        let out = run(
            utrace().args(["--list", "--"]).arg(bin),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut rows = crate::common::list_rows(&text);
        rows.sort();
        (rows, text)
    }
    let own = |v: &[(&str, &str, &str)]| -> Vec<(String, String, String)> {
        v.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    };
    let (rows, text) = listed(&fixture("calls", Build::Nop5));
    // Every function starts with a nop5; every return is hijacked through a
    // session link (C: nothing unwinds), fib's too: calls nested deeper than
    // the kernel's 64 pending returns get ret sites on demand.
    let expected = own(&[
        ("a", "optimized", "session"),
        ("b", "optimized", "session"),
        ("c", "optimized", "session"),
        ("fib", "optimized", "session"),
        ("main", "optimized", "session"),
        ("printf@plt", "single-step", "session"),
    ]);
    assert_eq!(rows, expected, "{text}");
    assert!(
        text.lines().nth(1).unwrap().starts_with("calls-nop5"),
        "{text}"
    );
    // C++: exceptions may cross any frame that calls out; leaves are safe.
    // f3, only ever called directly, ends where its calls return; main's
    // address is the C runtime's to call, so it ends at its `ret`s.
    let (rows, text) = listed(&fixture("throw", Build::O2));
    let exit_of = |name: &str| rows.iter().find(|r| r.0 == name).map(|r| r.2.as_str());
    assert_eq!(exit_of("f3(int)"), Some("returns"), "{text}");
    assert_eq!(exit_of("main"), Some("ret-sites"), "{text}");
    // on_rethrow, a leaf whose entry would be single-stepped, is entered at
    // its calls and ends where they return.
    assert_eq!(exit_of("on_rethrow(int)"), Some("returns"), "{text}");
}

#[test]
fn list_goes_to_the_file_o_names() {
    let bin = fixture("calls", Build::O2);
    let list = |output: Option<&Path>| {
        let mut cmd = utrace();
        cmd.arg("--list");
        if let Some(path) = output {
            cmd.arg("-o").arg(path);
        }
        let out = run(cmd.arg("--").arg(&bin), Duration::from_secs(60));
        assert!(out.status.success(), "{out:?}");
        (
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (table, said) = list(None);
    assert!(table.starts_with(b"MODULE "), "{table:?}");
    assert_eq!(said, "utrace: 6 functions in 1 module\n");
    let dir = tempfile::tempdir().unwrap();
    let lst = dir.path().join("lst.txt");
    let (stdout, said) = list(Some(&lst));
    assert_eq!(stdout, b"", "nothing on stdout");
    assert_eq!(std::fs::read(&lst).unwrap(), table);
    assert_eq!(
        said,
        format!("Wrote {}: 6 functions in 1 module\n", lst.display())
    );
    assert_eq!(list(Some(Path::new("-"))).0, table, "-o - is stdout");
}

#[test]
fn a_syscall_set_for_the_live_io_table_is_refused_with_the_way_out() {
    let line = utrace_fails(&["--io", "--syscalls=read", "--format=io", "--", "/bin/true"]);
    assert_eq!(
        line,
        "utrace: --syscalls: the live --format=io traces no system call (its bytes are each \
         thread's read/write counts): drop --syscalls, or --record and --report --format=io \
         to have both"
    );
}
