//! Arguments and return values (`-A`/`-R`, issue 13): every class of value
//! the x86-64 SysV ABI passes, typed from DWARF, read by BPF at entry and
//! return and shown live, from a recording and in the chrome format; the
//! user's register lists; every exit mode; a time filter holding entries
//! back; a tail jump, where no return value exists yet.

use crate::common::{Build, assert_text_eq, fixture, normalise, require_bpf, trace};
use crate::record::{record, report};

/// values.c, every function with its values; PLT stubs left out (they have
/// no debug info, and say so).
const ALL: [&str; 6] = ["-A", "*", "-R", "*", "--no-function", "*@plt"];

/// The graph of values.c under ALL, normalised, pointers hidden.
const EVERY_CLASS: &str = "\
# DURATION     TID     FUNCTION
            [     1] | main() {
      <dur> [     1] |   make_big(x=10, k=2) = {...};
      <dur> [     1] |   parse(buf=\"GET /\", len=5) = 10;
      <dur> [     1] |   flag(on=false) = true;
      <dur> [     1] |   grade(c='a') = 'b';
      <dur> [     1] |   paint(c=RED) = BLUE;
      <dur> [     1] |   point(p=0x<addr>) = 0x<addr>;
      <dur> [     1] |   mix(a=1, b=<xmm0>, c=3, d=<xmm1>) = <xmm0>;
      <dur> [     1] |   eight(a1=1, a2=2, a3=3, a4=4, a5=5, a6=6, a7=7, a8=8) = 36;
      <dur> [     1] |   pair_sum(p={...}) = 7;
      <dur> [     1] |   big_sum(b={...}, k=1) = 34;
      <dur> [     1] |   nothing();
      <dur> [     1] |   name(i=1) = \"one\";
      <dur> [     1] |   half(x=<xmm0>) = <xmm0>;
      <dur> [     1] |   longest(s=\"0123456789abcdefghij0123456789abcdefghij0123456789abcdefghij012\"...) = 100;
      <dur> [     1] |   is_null(s=NULL) = 1;
      <dur> [     1] | } = 0; /* main */
";

/// Addresses differ from run to run: `0x7ffd1234` → `0x<addr>`.
fn hide_addresses(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("0x") {
        out.push_str(&rest[..at]);
        let hex = rest[at + 2..]
            .bytes()
            .take_while(u8::is_ascii_hexdigit)
            .count();
        out.push_str(if hex >= 6 {
            "0x<addr>"
        } else {
            &rest[at..at + 2 + hex]
        });
        rest = &rest[at + 2 + hex..];
    }
    out.push_str(rest);
    out
}

/// The two pointers of `point(p=X) = Y;`: the same address, read at entry and return.
fn point_addresses(graph: &str) -> (String, String) {
    let line = graph.lines().find(|l| l.contains("point(p=")).unwrap();
    let p = line
        .split("point(p=")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let r = line.split(") = ").nth(1).unwrap().trim_end_matches(';');
    (p.to_string(), r.to_string())
}

#[test]
fn every_class_of_value_shows_as_its_dwarf_type_says() {
    if !require_bpf() {
        return;
    }
    for build in [Build::O0, Build::O2] {
        let bin = fixture("values", build);
        let t = trace(&bin, &[], &ALL);
        assert_eq!(t.stdout, "values ok=1 sum=317\n", "{}", t.stderr);
        assert_text_eq(EVERY_CLASS, &hide_addresses(&normalise(&t.graph)));
        let (p, r) = point_addresses(&t.graph);
        assert_eq!(p, r, "point returns its argument: {}", t.graph);
        // Floating point is said once to be out of a probe's reach.
        let sse = t
            .stderr
            .lines()
            .filter(|l| l.contains("SSE registers"))
            .count();
        assert_eq!(sse, 1, "{}", t.stderr);
    }
}

#[test]
fn a_recording_reports_the_values_seen_live() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("values", Build::O2);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("values.data");
    record(&ALL, &bin, &[], &data);
    let graph = report(&data, &["--format=call-graph"]);
    assert_text_eq(EVERY_CLASS, &hide_addresses(&normalise(&graph)));
    // The chrome format carries them per call, as the call graph shows them.
    let chrome: serde_json::Value =
        serde_json::from_str(&report(&data, &["--format=chrome"])).unwrap();
    let events = chrome["traceEvents"].as_array().unwrap();
    let parse = events.iter().find(|e| e["name"] == "parse").unwrap();
    assert_eq!(parse["args"]["arguments"], "buf=\"GET /\", len=5");
    assert_eq!(parse["args"]["retval"], "10");
    let nothing = events.iter().find(|e| e["name"] == "nothing").unwrap();
    assert_eq!(nothing["args"].get("arguments"), None);
}

#[test]
fn registers_the_user_names_show_without_names() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("values", Build::O2);
    let opts = [
        "-f",
        "parse",
        "-f",
        "name",
        "-f",
        "is_null",
        "-A",
        "parse@arg1/s,arg2/i32",
        "-R",
        "parse@retval/x32",
        "-R",
        "name@retval/s",
        "-A",
        "is_null@arg1/p",
    ];
    let t = trace(&bin, &[], &opts);
    let expected = "\
# DURATION     TID     FUNCTION
      <dur> [     1] | parse(\"GET /\", 5) = 0xa;
      <dur> [     1] | name() = \"one\";
      <dur> [     1] | is_null(NULL);
";
    assert_text_eq(expected, &normalise(&t.graph));
    assert!(!t.stderr.contains("warning"), "{}", t.stderr);
}

#[test]
fn every_exit_mode_reads_the_return_value() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("values", Build::O2);
    let opts = ["-f", "parse", "-f", "paint", "-A", "paint", "-R", "*"];
    let expected = "\
# DURATION     TID     FUNCTION
      <dur> [     1] | parse() = 10;
      <dur> [     1] | paint(c=RED) = BLUE;
";
    for exit in ["auto", "ret-sites", "uretprobe", "session"] {
        let exit = format!("--exit={exit}");
        let t = trace(&bin, &[], &[&opts[..], &[exit.as_str()]].concat());
        assert_text_eq(expected, &normalise(&t.graph));
    }
}

/// At -O2 outer() and outer2() end in `jmp inner`. With inner traced, the
/// jumping frame ends with inner's return and shows its value, whether
/// returns are hijacked (they chain) or seen at ret sites (the tail jump
/// chains the frame). With inner not traced and ret-site exits, outer,
/// called directly, still ends where its call returns, with the value
/// inner returned; outer2, called only through a pointer, has no probe
/// where its call returns: a ret site ends it at the jump, before any value
/// is returned, and says so.
#[test]
fn a_return_seen_at_a_tail_jump_has_no_value_yet() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("tail", Build::O2);
    let values = ["-A", "*", "-R", "*"];
    let nested = "\
# DURATION     TID     FUNCTION
            [     1] | outer(x=0) {
      <dur> [     1] |   inner(x=1) = 3;
      <dur> [     1] | } = 3; /* outer */
            [     1] | outer(x=1) {
      <dur> [     1] |   inner(x=2) = 6;
      <dur> [     1] | } = 6; /* outer */
            [     1] | outer(x=2) {
      <dur> [     1] |   inner(x=3) = 9;
      <dur> [     1] | } = 9; /* outer */
            [     1] | outer2(x=3) {
      <dur> [     1] |   inner(x=5) = 15;
      <dur> [     1] | } = 15; /* outer2 */
";
    for exit in ["--exit=ret-sites", "--exit=uretprobe"] {
        let opts = [&["-f", "outer*", "-f", "inner", exit][..], &values].concat();
        let t = trace(&bin, &[], &opts);
        assert_eq!(t.stdout, "sum=33\n", "{}", t.stderr);
        assert_text_eq(nested, &normalise(&t.graph));
    }
    let opts = [&["-f", "outer*", "--exit=ret-sites"][..], &values].concat();
    let t = trace(&bin, &[], &opts);
    let expected = "\
# DURATION     TID     FUNCTION
      <dur> [     1] | outer(x=0) = 3;
      <dur> [     1] | outer(x=1) = 6;
      <dur> [     1] | outer(x=2) = 9;
      <dur> [     1] | outer2(x=3) = ?;
";
    assert_text_eq(expected, &normalise(&t.graph));
}

/// With -t, BPF holds entries back until a call proves long: the arguments
/// read at entry wait with them, and a short call's never show.
#[test]
fn the_time_filter_keeps_the_arguments_of_the_calls_it_keeps() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("phases", Build::O2);
    let opts = [
        "-t",
        "5ms",
        "-A",
        "usleep@plt@arg1/u32",
        "-R",
        "usleep@plt@retval/i32",
        "-A",
        "main",
        "-R",
        "main",
        "-A",
        "quick",
        "-R",
        "quick",
    ];
    let t = trace(&bin, &[], &opts);
    let expected = "\
# DURATION     TID     FUNCTION
            [     1] | main(argc=1, argv=0x<addr>) {
      <dur> [     1] |   usleep@plt(300000) = 0;
            [     1] |   late() {
            [     1] |     slow() {
      <dur> [     1] |       usleep@plt(30000) = 0;
      <dur> [     1] |     } /* slow */
      <dur> [     1] |   } /* late */
      <dur> [     1] | } = 0; /* main */
";
    assert_text_eq(expected, &hide_addresses(&normalise(&t.graph)));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("phases.data");
    record(&opts[2..], &bin, &[], &data);
    let reported = report(&data, &["--format=call-graph", "-t", "5ms"]);
    assert_text_eq(expected, &hide_addresses(&normalise(&reported)));
}

/// -A/-R apply to a library dlopen loads later (with --nest-lib) as to the
/// modules loaded at the start: the plugin's arguments and return values,
/// named from its debug info, live and recorded, though no request matched
/// anything at the start (said as a warning, not an error, with --nest-lib).
#[test]
fn values_are_read_in_a_library_loaded_later() {
    if !require_bpf() {
        return;
    }
    let plugin = fixture("plugin", Build::O2);
    let plugin = plugin.to_str().unwrap();
    let bin = fixture("dlopen", Build::O2);
    let opts = ["--nest-lib", "plugin*", "-A", "plugin_*", "-R", "plugin_*"];
    let t = trace(&bin, &[plugin], &opts);
    assert_eq!(t.stdout, "round1=12 round2=6\n", "{}", t.stderr);
    assert!(
        t.stderr.contains(
            "utrace: warning: -A 'plugin_*' matches nothing yet (a library dlopen loads later \
             gets its values when it loads)"
        ),
        "{}",
        t.stderr
    );
    let (open, done) = ("            [     1] | ", "      <dur> [     1] | ");
    let mut expected = format!("# DURATION     TID     FUNCTION\n{open}main() {{\n");
    for (n, sum) in [(3, 12), (2, 6)] {
        expected += &format!("{open}  load_and_call() {{\n");
        expected += &format!("{done}    dlopen@plt();\n{done}    dlsym@plt();\n");
        expected += &format!("{open}    plugin_entry(n={n}) {{\n");
        for x in 0..n {
            expected += &format!("{open}      plugin_work(x={x}) {{\n");
            expected += &format!("{done}        plugin_helper(x={x}) = {};\n", x + 1);
            expected += &format!("{done}      }} = {}; /* plugin_work */\n", 2 * (x + 1));
        }
        expected += &format!("{done}    }} = {sum}; /* plugin_entry */\n");
        expected += &format!("{done}    dlclose@plt();\n{done}  }} /* load_and_call */\n");
    }
    expected += &format!("{done}  printf@plt();\n{done}}} /* main */\n");
    assert_text_eq(&expected, &normalise(&t.graph));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("late.data");
    record(&opts, &bin, &[plugin], &data);
    let graph = report(&data, &["--format=call-graph"]);
    assert_text_eq(&expected, &normalise(&graph));
}
