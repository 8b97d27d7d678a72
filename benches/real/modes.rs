//! The ways each program is run, and the argv of each.
//!
//! utrace runs with its default options and no function filter (live to a
//! file, `--record`, live `--format=summary`, which counts in BPF), once more
//! with `--exit=ret-sites`, and once restricted with `-f` to the functions
//! bpftrace probes. uftrace cannot hook an unmodified -O2 binary through
//! mcount, so it patches every function (`-P .`); where its return hooks break
//! the program it runs again with `-e` (entries only). bpftrace attaches a
//! uprobe and a uretprobe with `count()` to the hottest functions, as
//! benches/overhead.rs does: one probe per function attaches slowly.

use std::ffi::OsString;
use std::path::Path;

use crate::programs::Program;
use crate::run::Scratch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Untraced,
    /// `utrace -o FILE`: the live call graph, default options.
    Live,
    Record,
    /// Live `--format=summary`: counted in BPF, no events streamed.
    Summary,
    RetSites,
    /// `uftrace record -P .`, with `-e` when `estimate` is set.
    Uftrace {
        estimate: bool,
    },
    Bpftrace,
    /// `utrace --record -f RAW…` on bpftrace's functions.
    Subset,
}

pub const FULL: [Mode; 6] = [
    Mode::Untraced,
    Mode::Live,
    Mode::Record,
    Mode::Summary,
    Mode::RetSites,
    Mode::Uftrace { estimate: false },
];

impl Mode {
    pub fn label(self, subset: usize) -> String {
        match self {
            Mode::Untraced => "untraced".into(),
            Mode::Live => "utrace -o FILE".into(),
            Mode::Record => "utrace --record".into(),
            Mode::Summary => "utrace --format=summary".into(),
            Mode::RetSites => "utrace --exit=ret-sites --record".into(),
            Mode::Uftrace { estimate: false } => "uftrace -P .".into(),
            Mode::Uftrace { estimate: true } => "uftrace -P . -e".into(),
            Mode::Bpftrace => format!("bpftrace, {subset} functions"),
            Mode::Subset => format!("utrace --record, -f {subset} functions"),
        }
    }

    pub fn is_utrace(self) -> bool {
        matches!(
            self,
            Mode::Live | Mode::Record | Mode::Summary | Mode::RetSites | Mode::Subset
        )
    }
}

/// What a mode needs besides the program: utrace, and the probed subset as
/// (utrace name, raw name).
pub struct Tools<'a> {
    pub utrace: Option<&'a Path>,
    pub subset: &'a [(String, String)],
}

/// The argv of one run of `prog` in `mode`; None when the tool is missing.
pub fn argv(mode: Mode, prog: &Program, tools: &Tools, scratch: &Scratch) -> Option<Vec<OsString>> {
    let mut v: Vec<OsString> = Vec::new();
    let s = |x: &str| OsString::from(x);
    let path = |name: &str| scratch.file(name).into_os_string();
    match mode {
        Mode::Untraced => {}
        Mode::Live | Mode::Record | Mode::Summary | Mode::RetSites | Mode::Subset => {
            v.push(tools.utrace?.into());
            match mode {
                Mode::Live => v.extend([s("-o"), path("live.txt")]),
                Mode::Summary => v.extend([s("--format=summary"), s("-o"), path("summary.txt")]),
                Mode::RetSites => v.push(s("--exit=ret-sites")),
                _ => {}
            }
            if matches!(mode, Mode::Record | Mode::RetSites | Mode::Subset) {
                v.extend([s("--record"), s("-d"), path("utrace.data")]);
            }
            if mode == Mode::Subset {
                for (_, raw) in tools.subset {
                    v.extend([s("-f"), s(raw)]);
                }
            }
            v.push(s("--"));
        }
        Mode::Uftrace { estimate } => {
            v.extend([
                s("uftrace"),
                s("record"),
                s("-P"),
                s("."),
                s("-d"),
                path("uftrace.data"),
            ]);
            if estimate {
                v.push(s("-e"));
            }
        }
        Mode::Bpftrace => {
            v.extend([
                s("bpftrace"),
                s("-f"),
                s("json"),
                s("-o"),
                path("bpftrace.json"),
            ]);
            v.extend([s("-e"), s(&bpftrace_program(&prog.bin, tools.subset))]);
            v.extend([s("-c"), s(&prog.command_line())]);
            return Some(v);
        }
    }
    v.push(prog.bin.clone().into_os_string());
    v.extend(prog.args.iter().map(OsString::from));
    Some(v)
}

fn bpftrace_program(bin: &Path, subset: &[(String, String)]) -> String {
    let list = |kind: &str| {
        subset
            .iter()
            .map(|(_, raw)| format!("{kind}:{}:{raw}", bin.display()))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{} {{ @[probe] = count(); }} {} {{ @r[probe] = count(); }}",
        list("uprobe"),
        list("uretprobe")
    )
}

/// The argv as a shell would show it, with scratch paths shortened.
pub fn shown(argv: &[OsString], scratch: &Scratch) -> String {
    let dir = scratch.dir.display().to_string();
    argv.iter()
        .map(|a| {
            let a = a.to_string_lossy().replace(&dir, "$RUN");
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=./,:$".contains(c))
            {
                a
            } else {
                format!("'{a}'")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
