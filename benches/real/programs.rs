//! The three real programs, their workloads, and the set-up that builds them.
//!
//! benches/real/setup.sh fetches each Debian source package (`apt-get
//! source`), builds it the upstream way at -O2 with symbols and caches the
//! binary under target/real/bin. The workloads are small on purpose: with no
//! function filter each run makes 35,000–100,000 traced calls, and a uprobe
//! trap costs microseconds on this VM.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Program {
    pub name: &'static str,
    /// What it exercises, for the table.
    pub what: &'static str,
    pub bin: PathBuf,
    pub args: Vec<String>,
    pub stdin: Option<PathBuf>,
}

impl Program {
    /// `BIN ARGS` as one string (bpftrace's -c), relative to the repo for printing.
    pub fn command_line(&self) -> String {
        std::iter::once(self.bin.display().to_string())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Runs setup.sh into `dir`; the programs it built, by name, and why the others were not.
pub fn setup(dir: &Path) -> (BTreeMap<String, PathBuf>, Vec<String>) {
    let script = crate::common::repo_root().join("benches/real/setup.sh");
    let out = Command::new("bash").arg(&script).arg(dir).output();
    let mut built = BTreeMap::new();
    let mut missing = Vec::new();
    match out {
        Err(e) => missing.push(format!("{}: {e}", script.display())),
        Ok(o) => {
            eprint!("{}", String::from_utf8_lossy(&o.stderr));
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                match line.split_once(' ') {
                    Some((name, "-")) => missing.push(format!("{name}: not built")),
                    Some((name, rest)) if rest.starts_with("- ") => {
                        missing.push(format!("{name}: {}", &rest[2..]))
                    }
                    Some((name, path)) => {
                        built.insert(name.to_string(), PathBuf::from(path));
                    }
                    None => {}
                }
            }
            if !o.status.success() {
                missing.push(format!("setup.sh failed: {}", o.status));
            }
        }
    }
    (built, missing)
}

/// The preloaded timer (benches/real/span.c), built once.
pub fn span_lib(dir: &Path) -> Result<PathBuf, String> {
    let src = crate::common::repo_root().join("benches/real/span.c");
    let lib = dir.join("span.so");
    crate::common::build_cached("gcc", &["-O2", "-shared", "-fPIC"], &[&src], &[], &lib)?;
    Ok(lib)
}

/// The programs that were built, with their workloads.
pub fn programs(built: &BTreeMap<String, PathBuf>, dir: &Path) -> Result<Vec<Program>, String> {
    let here = crate::common::repo_root().join("benches/real");
    let mut progs = Vec::new();
    // canonicalize: span.c compares it with /proc/self/exe.
    let bin = |name: &str| built.get(name).and_then(|p| p.canonicalize().ok());
    if let Some(bin) = bin("lua") {
        progs.push(Program {
            name: "lua 5.4",
            what: "C, longjmp errors, deep C recursion",
            bin,
            args: vec![here.join("work.lua").display().to_string()],
            stdin: None,
        });
    }
    if let Some(bin) = bin("muparser-example2") {
        progs.push(Program {
            name: "muparser example2",
            what: "C++, parse errors thrown and caught",
            bin,
            args: Vec::new(),
            stdin: Some(here.join("exprs.txt")),
        });
    }
    if let Some(bin) = bin("xz") {
        let input = xz_input(dir).map_err(|e| format!("writing the xz input: {e}"))?;
        progs.push(Program {
            name: "xz -T2",
            what: "C, 2 worker threads",
            bin,
            args: ["-T2", "-1", "--block-size=8KiB", "-c"]
                .iter()
                .map(|s| s.to_string())
                .chain([input.display().to_string()])
                .collect(),
            stdin: None,
        });
    }
    Ok(progs)
}

/// 32 KiB of pseudo-random words (fixed seed): four 8 KiB blocks, so both
/// worker threads compress.
fn xz_input(dir: &Path) -> std::io::Result<PathBuf> {
    const WORDS: [&str; 12] = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "sed",
        "do",
        "eiusmod",
        "tempor",
    ];
    let path = dir.join("xz-input.txt");
    let mut text = String::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    while text.len() < 32 << 10 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text += WORDS[(x % 12) as usize];
        text += &(x >> 40 & 0x3f).to_string();
        text.push(if x >> 50 & 0xf == 0 { '\n' } else { ' ' });
    }
    std::fs::write(&path, text)?;
    Ok(path)
}
