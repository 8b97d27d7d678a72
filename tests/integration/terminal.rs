//! What only shows on a terminal: the call graph's colours (`--color`,
//! `NO_COLOR`). A terminal is a pseudo-terminal from script(1).

use std::process::Command;
use std::time::Duration;

use crate::common::{require_bpf, run, utrace};
use crate::report_filters::phases;

/// `utrace ARGS` on a pseudo-terminal, with `env` set: what it printed.
fn on_a_terminal(args: &str, env: &[(&str, &str)]) -> String {
    let utrace = env!("CARGO_BIN_EXE_utrace");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("{utrace} {args}"), "/dev/null"]);
    cmd.env_remove("NO_COLOR").envs(env.iter().copied());
    let out = run(&mut cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

/// The line of the call graph that ends with `tail`.
fn line_ending<'a>(text: &'a str, tail: &str) -> &'a str {
    text.lines()
        .find(|l| l.ends_with(tail))
        .unwrap_or_else(|| panic!("no line ending {tail:?} in:\n{text}"))
}

#[test]
fn the_call_graph_is_coloured_on_a_terminal_as_uftrace_does() {
    if !require_bpf() {
        return;
    }
    let data = phases().display().to_string();
    let args = format!("--report --format=call-graph -d {data}");
    let text = on_a_terminal(&args, &[]);
    // slow() took 30 ms: a green unit, a bold name.
    let slow = line_ending(&text, "|     } /* \x1b[1mslow\x1b[0m */");
    assert!(slow.contains(" \x1b[32mms\x1b[0m ["), "{slow:?}");
    let quick = line_ending(&text, "|     \x1b[1mquick\x1b[0m();");
    assert!(
        quick.contains(" us ["),
        "microseconds stay plain: {quick:?}"
    );
    let main = line_ending(&text, "| } /* \x1b[1mmain\x1b[0m */");
    assert!(main.contains(" \x1b[32mms\x1b[0m ["), "{main:?}");
    // NO_COLOR (any value) turns auto off; --color=always overrides it.
    let plain = on_a_terminal(&args, &[("NO_COLOR", "1")]);
    assert!(!plain.contains('\x1b'), "{plain}");
    assert_eq!(plain.lines().count(), text.lines().count());
    let forced = on_a_terminal(&format!("{args} --color=always"), &[("NO_COLOR", "1")]);
    assert!(forced.contains("\x1b[1mslow\x1b[0m() {"), "{forced}");
    assert!(!on_a_terminal(&format!("{args} --color=never"), &[]).contains('\x1b'));
}

#[test]
fn a_pipe_gets_no_colour_unless_asked() {
    if !require_bpf() {
        return;
    }
    let report = |extra: &[&str]| {
        let mut cmd = utrace();
        cmd.args(["--report", "--format=call-graph", "-d"])
            .arg(phases())
            .args(extra);
        let out = run(cmd.env_remove("NO_COLOR"), Duration::from_secs(60));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(!report(&[]).contains('\x1b'));
    let always = report(&["--color=always"]);
    assert!(
        line_ending(&always, "|     } /* \x1b[1mslow\x1b[0m */").contains(" \x1b[32mms\x1b[0m ["),
        "{always}"
    );
}

/// A --record of 1.5 s shows its progress line once a second on a
/// terminal, erased before the closing lines; on a pipe it shows none.
#[test]
fn a_long_record_shows_progress_on_a_terminal_only() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p.data");
    let bin = crate::common::fixture("phases", crate::common::Build::O2);
    let args = format!(
        "--record -f quick -d {} -- {} 1500",
        data.display(),
        bin.display()
    );
    let text = on_a_terminal(&args, &[]);
    // early()'s two quick() calls, 4 events, came in the first second: the
    // rate is 4 over a second and a bit.
    let shown = "\r\x1b[Kutrace: recording: 4 events, ";
    let at = text.find(shown).unwrap_or_else(|| panic!("{text:?}"));
    let rest = &text[at + shown.len()..];
    let rate = rest.split_once("/s, 0 lost").map(|r| r.0);
    assert!(matches!(rate, Some("3" | "4")), "{text:?}");
    // The results come first (the detach after them), the progress line
    // erased before them.
    let wrote = text.lines().find(|l| l.contains("Wrote ")).unwrap_or("");
    assert!(
        wrote.starts_with("\r\x1b[KWrote "),
        "erased first: {text:?}"
    );
    let mut cmd = utrace();
    cmd.args(["--record", "-f", "quick", "-d"])
        .arg(&data)
        .arg("--")
        .arg(&bin)
        .arg("1500");
    let out = run(&mut cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains('\r') && !stderr.contains("recording:"),
        "{stderr:?}"
    );
}
