//! The options around the core: --nest-lib, signal forwarding with -c, the
//! layout switches, and the opening line of a call that is still running.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    Build, Traced, assert_text_eq, copy_program, count_calls, counts, fixture, normalise,
    require_bpf, summary_calls, trace, utrace,
};

/// Builds tests/fixtures/uselib.c against the plugin library into `dir`.
fn uselib(dir: &Path) -> std::path::PathBuf {
    let lib = dir.join("libplugin.so");
    copy_program(&fixture("plugin", Build::O2), &lib);
    let bin = dir.join("uselib");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/uselib.c");
    let status = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(src)
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .status()
        .unwrap();
    assert!(status.success());
    bin
}

#[test]
fn nest_lib_traces_inside_a_needed_library_from_the_first_call() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = uselib(dir.path());
    let t = trace(
        &bin,
        &[],
        &["--nest-lib", "libplugin*", "--no-function", "printf*"],
    );
    assert_eq!(t.stdout, "sum=12\n", "{}", t.stderr);
    let expected = counts(&[
        ("main", 1),
        ("plugin_entry@plt", 1),
        ("plugin_entry", 1),
        ("plugin_work", 3),
        ("plugin_helper", 3),
    ]);
    assert_eq!(count_calls(&t.graph), expected, "{}", t.graph);
    let t = trace(&bin, &[], &["--no-function", "printf*"]);
    assert_eq!(
        count_calls(&t.graph),
        counts(&[("main", 1), ("plugin_entry@plt", 1)]),
        "without --nest-lib"
    );
}

#[test]
fn libname_flat_and_timestamp_change_the_layout() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("exitcode", Build::O2);
    let t = trace(&bin, &[], &["--libname", "--no-function", "strtol*"]);
    // At -O2 main tail-calls leave (`jmp leave`). With uretprobes (auto, for
    // C code) both returns fire at leave's `ret`: leave nests in main.
    assert!(t.graph.contains("| main@exitcode-O2() {"), "{}", t.graph);
    let flat = |exit: &str| {
        let t = trace(&bin, &[], &["--flat", exit, "--no-function", "strtol*"]);
        let header = t.graph.lines().next();
        assert_eq!(
            header,
            Some("# DURATION     TID     FUNCTION"),
            "{}",
            t.graph
        );
        let bodies = t
            .graph
            .lines()
            .filter_map(|l| l.split_once("| ").map(|(_, b)| b.to_string()));
        bodies.collect::<Vec<String>>()
    };
    // With ret-site exits the tail jump chains main on leave's call: the
    // same nesting.
    for exit in ["--exit=auto", "--exit=ret-sites"] {
        assert_eq!(
            flat(exit),
            ["main() {", "leave() {", "} /* leave */", "} /* main */"],
            "{exit}"
        );
    }
    let t = trace(
        &bin,
        &[],
        &["--timestamp", "--no-tid", "--no-function", "strtol*"],
    );
    let first = t.graph.lines().nth(1).unwrap();
    assert!(first.trim_start().starts_with("0.000000000"), "{}", t.graph);
    assert!(!first.contains('['), "no TID column: {first}");
}

#[test]
fn user_is_a_name_a_uid_or_uid_and_gid() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("ids", Build::O2);
    let ran_as = |user: &str| {
        let t = trace(&bin, &[], &["-u", user, "-f", "report"]);
        assert_eq!(
            count_calls(&t.graph),
            counts(&[("report", 1)]),
            "{}",
            t.stderr
        );
        t.stdout
    };
    // Root's own groups are never kept: the user's groups replace them.
    let nobody = "uid=65534 euid=65534 gid=65534 egid=65534 groups=65534\n";
    assert_eq!(ran_as("nobody"), nobody);
    assert_eq!(ran_as("65534"), nobody);
    assert_eq!(ran_as("65534:65534"), nobody);
    assert_eq!(
        ran_as("65534:100"),
        "uid=65534 euid=65534 gid=100 egid=100 groups=100\n"
    );
    assert_eq!(
        ran_as("4242424:4343"),
        "uid=4242424 euid=4242424 gid=4343 egid=4343 groups=4343\n"
    );
}

#[test]
fn a_running_call_shows_its_opening_line_and_ctrl_c_reaches_the_command() {
    if !require_bpf() {
        return;
    }
    let graph = tempfile::NamedTempFile::new().unwrap();
    // spin -n waits for SIGUSR1 inside main(): main stays open.
    let mut tracer = utrace()
        .arg("-o")
        .arg(graph.path())
        .arg("--")
        .arg(fixture("spin", Build::O2))
        .args(["-n", "5"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(graph.path())
        .unwrap()
        .contains("main() {")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "main's opening line never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    let status = tracer.wait().unwrap();
    let mut stderr = String::new();
    tracer
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGINT),
        "utrace ends with the command's status: {stderr}"
    );
}

/// Traces sort with `--max-rate 2000` and `opts`: its output must be the
/// untraced run's; returns the trace and utrace's line listing what it dropped.
fn sort_over_max_rate(args: &[&str], opts: &[&str]) -> (Traced, String) {
    let bin = fixture("sort", Build::O2);
    let opts: Vec<&str> = opts.iter().copied().chain(["--max-rate", "2000"]).collect();
    let t = trace(&bin, args, &opts);
    let untraced = Command::new(&bin).args(args).output().unwrap();
    assert_eq!(t.stdout.as_bytes(), untraced.stdout, "{}", t.stderr);
    let line = t
        .stderr
        .lines()
        .find(|l| l.contains("over --max-rate 2,000/s"))
        .expect("the dropped functions are listed")
        .to_string();
    (t, line)
}

#[test]
fn max_rate_drops_hot_functions_and_lists_them() {
    if !require_bpf() {
        return;
    }
    let (t, line) = sort_over_max_rate(&["-n", "20000"], &[]);
    assert!(
        line.contains("compare (") && line.contains("swap ("),
        "{line}"
    );
    // compare ran 346,273 times: it was traced until it passed the limit, then no more.
    let compare = count_calls(&t.graph)["compare"];
    assert!(
        (2001..346_273 / 10).contains(&compare),
        "compare traced {compare} times"
    );
    assert_eq!(
        count_calls(&t.graph).get("main"),
        Some(&1),
        "the rest is still traced"
    );
    // The dropped functions' calls open at the drop end at their own
    // returns: BPF stops tracing new calls first, the probes go a second
    // later. Only a call still open by then (the outermost quicksort on a
    // slow machine) can end as unwound.
    for line in t.graph.lines().filter(|l| l.ends_with("/* unwound */")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ns = crate::common::ns_of(&format!("{} {}", words[0], words[1]));
        assert!(ns >= 1e9, "ended as unwound before the probes went: {line}");
    }
}

/// Counting mode streams no events: the rates come from BPF's counts, read
/// once a second, and the summary keeps the calls made before the drop.
#[test]
fn max_rate_applies_to_counting_in_bpf() {
    if !require_bpf() {
        return;
    }
    let (t, line) = sort_over_max_rate(&["-n", "100000"], &["--format=summary"]);
    assert!(line.contains("compare ("), "{line}");
    let made: usize = t
        .stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("compare=")?.parse().ok())
        .expect("compare=N in the output");
    let counted = summary_calls(&t.graph)["compare"];
    assert!(
        (2001..made / 2).contains(&counted),
        "compare counted {counted} of {made} times"
    );
    assert_eq!(summary_calls(&t.graph).get("main"), Some(&1));
}

/// A command a signal kills gets a closing line saying so (with or without
/// a core dump, as the kernel decided for it untraced), and utrace exits
/// 128 + N as a shell does.
#[test]
fn a_command_killed_by_a_signal_gets_a_closing_line() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("crash", Build::O2);
    let dir = tempfile::tempdir().unwrap();
    // Where a core dump may be written; allowed, so both forms can show.
    let allow_core = |cmd: &mut Command| {
        cmd.current_dir(dir.path());
        // SAFETY: setrlimit is async-signal-safe and touches no memory of ours.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(cmd, || {
                let unlimited = libc::rlimit {
                    rlim_cur: libc::RLIM_INFINITY,
                    rlim_max: libc::RLIM_INFINITY,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &unlimited);
                Ok(())
            });
        }
    };
    let mut untraced = Command::new(&bin);
    allow_core(&mut untraced);
    let status = untraced.status().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGSEGV));
    let core = if status.core_dumped() {
        " (core dumped)"
    } else {
        ""
    };
    let mut cmd = utrace();
    cmd.args(["-f", "crash", "--"]).arg(&bin);
    allow_core(&mut cmd);
    let out = crate::common::run(&mut cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + libc::SIGSEGV), "{stderr}");
    // The command's end closes the results; only the detach comes after.
    let lines: Vec<&str> = stderr.lines().collect();
    let [.., killed, detached] = lines[..] else {
        panic!("{stderr}");
    };
    assert_eq!(
        killed,
        format!("utrace: {} killed by SIGSEGV{core}", bin.display()),
        "{stderr}"
    );
    assert!(detached.starts_with("utrace: detached "), "{stderr}");
    assert!(
        count_calls(&String::from_utf8_lossy(&out.stdout)).contains_key("crash"),
        "{stderr}"
    );
}

/// `--exit=uretprobe` and `--exit=session` hijack every return: utrace warns
/// first where something can unwind through the frames (C++ here), and
/// only there.
#[test]
fn hijacking_exits_warn_before_tracing_code_that_unwinds() {
    if !require_bpf() {
        return;
    }
    let throw = fixture("throw", Build::O2);
    // caught() is a leaf nothing unwinds through: the run itself is safe.
    for exit in ["uretprobe", "session"] {
        let t = trace(&throw, &[], &[&format!("--exit={exit}"), "-f", "caught"]);
        assert_eq!(t.stdout, "caught=16 sum=128\n", "{}", t.stderr);
        assert_eq!(
            t.stderr.lines().next(),
            Some(
                format!(
                    "utrace: warning: {} can unwind through its frames (C++ exceptions, Rust panics): \
                     --exit={exit} may abort it; the default --exit=auto is safe",
                    throw.display()
                )
                .as_str()
            ),
            "{}",
            t.stderr
        );
    }
    let t = trace(&throw, &[], &["-f", "caught"]);
    assert!(!t.stderr.contains("warning"), "auto: {}", t.stderr);
    let t = trace(&fixture("calls", Build::O2), &[], &["--exit=uretprobe"]);
    assert!(!t.stderr.contains("warning"), "C: {}", t.stderr);
}

/// `--libname` names the library a PLT call goes to, not the stub's module:
/// from the import's version need (strtol@GLIBC → libc.so.6), or, for an
/// unversioned import in a program needing several libraries, from the
/// library that exports it; live and from a recording alike.
#[test]
fn libname_names_the_library_a_plt_call_goes_to() {
    if !require_bpf() {
        return;
    }
    let t = trace(&fixture("exitcode", Build::O2), &["0"], &["--libname"]);
    assert_text_eq(
        "
# DURATION     TID     FUNCTION
            [     1] | main@exitcode-O2() {
      <dur> [     1] |   strtol@libc.so.6();
      <dur> [     1] |   leave@exitcode-O2();
      <dur> [     1] | } /* main@exitcode-O2 */
",
        &normalise(&t.graph),
    );
    let dir = tempfile::tempdir().unwrap();
    let bin = uselib(dir.path());
    let expected = "
# DURATION     TID     FUNCTION
            [     1] | main@uselib() {
      <dur> [     1] |   plugin_entry@libplugin.so();
      <dur> [     1] | } /* main@uselib */
";
    let opts = ["--libname", "--no-function", "printf*"];
    let t = trace(&bin, &[], &opts);
    assert_text_eq(expected, &normalise(&t.graph));
    let data = dir.path().join("uselib.data");
    let recorded = crate::common::run(
        utrace()
            .args(["--record", "--no-function", "printf*", "-d"])
            .arg(&data)
            .arg("--")
            .arg(&bin),
        Duration::from_secs(60),
    );
    assert!(recorded.status.success(), "{recorded:?}");
    let reported = crate::common::run(
        utrace()
            .args(["--report", "--format=call-graph", "--libname", "-d"])
            .arg(&data),
        Duration::from_secs(60),
    );
    assert_text_eq(
        expected,
        &normalise(&String::from_utf8_lossy(&reported.stdout)),
    );
}

/// Nothing before the command's exec is traced: the forked child still runs
/// utrace's own code there (its execv calls into libc), and the program
/// itself never calls execv, execve or read.
#[test]
fn tracing_starts_at_the_commands_exec() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("calls", Build::O2);
    let pre_exec = [
        "--nest-lib",
        "libc.so*",
        "-f",
        "execv",
        "-f",
        "execve",
        "-f",
        "read",
    ];
    for follow in [&[][..], &["--no-follow"][..]] {
        let t = trace(&bin, &[], &[&pre_exec[..], follow].concat());
        assert_eq!(t.stdout, "fib(10)=55 sum=33\n", "{follow:?}: {}", t.stderr);
        assert_eq!(
            count_calls(&t.graph),
            counts(&[]),
            "{follow:?}: {}",
            t.graph
        );
    }
    // The same libc probes do see the program's own calls.
    let t = trace(&bin, &[], &["--nest-lib", "libc.so*", "-f", "printf"]);
    assert_eq!(count_calls(&t.graph).get("printf"), Some(&1), "{}", t.graph);
}
