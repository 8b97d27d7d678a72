//! demangle() against the reference tools over real symbol tables: c++filt
//! (binutils) for every C++ function of libstdc++ and of the C++ fixtures,
//! rustc-demangle as rustfilt runs it for a Rust fixture. Its own file for
//! size: building the fixtures and running the tools is most of it.
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::demangle;
use crate::symbols::elf::read_module;
use crate::symbols::testutil::{Fixture, run};

const LIBSTDCXX: &str = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The toolchain the comparison was measured with, named by libstdc++'s
/// build-id: Debian 12's libstdc++.so.6.0.30 (gcc 12.2.0, whose g++
/// builds the fixtures), c++filt of binutils 2.40. Other toolchains
/// have other template instantiations, so other names to compare.
const MEASURED_BUILD_ID: &str = "289ee39f8c07bd4fa48102dfeeb7e6f9c76158b4";

/// Out of 4,593 names (4,424 in libstdc++, 169 in the fixtures), none
/// differs from c++filt. With cpp_demangle 0.5.1 as published and its
/// default options, 508 did: 351 `std::string` for c++filt's spelled-out
/// `std::basic_string<…>`, 72 thunks as `{virtual override thunk(…)}`, 41
/// literals as `(unsigned long)0` for `0ul`, 2 `std::nullptr_t` for
/// `decltype(nullptr)` (the options `expand_std_substitutions` and
/// `libiberty_spelling`, added in vendor/cpp_demangle, spell these as
/// c++filt does), and bugs fixed there: 34 constructor templates lost their
/// first parameter, 4 empty packs printed `, &&` or a trailing `, `, 2
/// references printed inside a nested name, 1 pack expansion expression
/// printed `((unsigned long)0)...`, 1 name stayed mangled (`sr St…`); a
/// pack losing `&&` occurred in none of these names, only in a program's
/// (the `_M_realloc_insert` unit test). See
/// vendor/cpp_demangle/UTRACE-PATCHES.md.
#[test]
fn cpp_names_equal_cxxfilt() {
    let Some(names) = cpp_corpus() else { return };
    let differences = differences(&names);
    eprintln!(
        "c++filt: {} of {} names differ",
        differences.len(),
        names.len()
    );
    if libstdcxx_build_id().as_deref() != Some(MEASURED_BUILD_ID) {
        eprintln!("c++filt: not the measured libstdc++ (other names, same requirement)");
    }
    assert!(
        differences.is_empty(),
        "differ from c++filt:\n{}",
        differences.join("\n")
    );
}

/// Each name whose demangling differs from c++filt's, both spellings shown.
fn differences(names: &[String]) -> Vec<String> {
    let theirs = cxxfilt(names);
    assert_eq!(theirs.len(), names.len(), "one c++filt line per name");
    names
        .iter()
        .zip(&theirs)
        .map(|(raw, theirs)| (raw, theirs, demangle(raw)))
        .filter(|(_, theirs, ours)| ours != *theirs)
        .map(|(raw, theirs, ours)| format!("{raw}\n  c++filt: {theirs}\n  ours:    {ours}"))
        .collect()
}

/// Every `_Z` function name of libstdc++ and of the C++ fixtures built
/// at -O0 and -O2; `None` (after saying why) when a tool is missing
/// outside CI. Under CI=true a missing tool fails the test.
fn cpp_corpus() -> Option<Vec<String>> {
    for tool in ["c++filt", "g++", "nm"] {
        if !runs(tool) {
            return skip(&format!("{tool} not found (binutils, g++: tools/setup)"));
        }
    }
    if !Path::new(LIBSTDCXX).exists() {
        return skip(&format!("{LIBSTDCXX} not found"));
    }
    let mut names = BTreeSet::new();
    // Stripped: its dynamic symbols are all nm -D finds, plain nm none.
    names.extend(function_names(Path::new(LIBSTDCXX), true));
    names.extend(function_names(Path::new(LIBSTDCXX), false));
    let fx = Fixture::new();
    for exe in cpp_fixtures(&fx) {
        names.extend(function_names(&exe, false));
    }
    Some(names.into_iter().filter(|n| n.starts_with("_Z")).collect())
}

fn cpp_fixtures(fx: &Fixture) -> Vec<PathBuf> {
    let mut built = Vec::new();
    for source in ["cxx", "throw"] {
        let path = format!("{FIXTURES}/{source}.cpp");
        let text = std::fs::read_to_string(&path).expect("reading a C++ fixture");
        for opt in ["-O0", "-O2"] {
            let include = format!("-I{FIXTURES}");
            let flags = [opt, "-pthread", include.as_str()];
            built.push(fx.compile("g++", "cpp", &format!("{source}{opt}"), &text, &flags));
        }
    }
    built
}

/// Defined function symbols (nm types T, t, W, w, i) without their
/// symbol version (`@@GLIBCXX_3.4`).
fn function_names(path: &Path, dynamic: bool) -> Vec<String> {
    let mut cmd = Command::new("nm");
    cmd.arg("--defined-only");
    if dynamic {
        cmd.arg("-D");
    }
    run(cmd.arg(path))
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let kind = fields.next()?;
            let name = fields.next()?;
            let name = name.split('@').next()?;
            ["T", "t", "W", "w", "i"]
                .contains(&kind)
                .then(|| name.to_string())
        })
        .collect()
}

/// c++filt's demangling of every name, one run over stdin.
fn cxxfilt(names: &[String]) -> Vec<String> {
    let mut child = Command::new("c++filt")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting c++filt");
    let mut stdin = child.stdin.take().expect("c++filt's stdin");
    let input = names.join("\n") + "\n";
    // Written from another thread: c++filt's output would fill its pipe
    // before all input is written.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("reading c++filt");
    writer
        .join()
        .expect("writer thread")
        .expect("writing to c++filt");
    assert!(out.status.success(), "c++filt failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

fn libstdcxx_build_id() -> Option<String> {
    read_module(Path::new(LIBSTDCXX)).ok()?.build_id
}

fn runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn skip<T>(why: &str) -> Option<T> {
    if matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1")) {
        panic!("c++filt comparison must run in CI: {why}");
    }
    eprintln!("c++filt comparison skipped: {why}");
    None
}

const NAMES_RS: &str = include_str!("../../../tests/fixtures/names.rs");

/// Every `_ZN`/`_R` function of tests/fixtures/names.rs built `rustc -O`
/// (legacy and v0) reads as rustfilt prints it, and none stays mangled.
/// rustfilt prints `{:#}` of rustc_demangle::demangle whatever the mangling;
/// rustfilt 0.2.2 itself printed the same for every name of both builds.
/// The third build splits the crate in two codegen units, so that ThinLTO
/// promotes locals under `.llvm.<u64>` suffixes (rustc 1.95: the
/// `lang_start` closure and a `{{vtable.shim}}`), which must be dropped, as
/// rustfilt does, not read as C++ clone suffixes.
#[test]
fn rust_fixture_names_equal_rustfilt() {
    let fx = Fixture::new();
    let v0 = ["-C", "symbol-mangling-version=v0"];
    let split = ["-C", "codegen-units=2"];
    for (variant, extra, closure) in [
        ("legacy", &[][..], "names::main::{{closure}}"),
        ("v0", &v0[..], "names::main::{closure#0}"),
        ("legacy-cgu2", &split[..], "names::main::{{closure}}"),
    ] {
        let base = ["-O", "--edition", "2021", "--crate-name", "names"];
        let flags = [&base[..], extra].concat();
        let exe = fx.rustc(&format!("names-{variant}"), NAMES_RS, &flags);
        let mut ours = BTreeSet::new();
        let mut llvm_suffixed = 0;
        for raw in function_names(&exe, false) {
            if !(raw.starts_with("_ZN") || raw.starts_with("_R")) {
                continue;
            }
            let name = demangle(&raw);
            let rustfilt = format!("{:#}", rustc_demangle::demangle(&raw));
            assert_eq!(name, rustfilt, "{variant}: {raw}");
            assert!(!name.starts_with("_ZN") && !name.starts_with("_R"), "{raw}");
            assert!(!name.contains(".llvm") && !name.contains("[clone"), "{raw}");
            llvm_suffixed += usize::from(raw.starts_with("_ZN") && raw.contains(".llvm."));
            ours.insert(name);
        }
        for expected in [closure, "names::apply", "<[u64; 2] as names::Area>::area"] {
            assert!(ours.contains(expected), "{variant}: {expected} missing");
        }
        if variant == "legacy-cgu2" {
            assert!(llvm_suffixed > 0, "no legacy `.llvm.` name to check");
        }
    }
}
