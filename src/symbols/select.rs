//! Which functions to trace, from the user's globs.
//!
//! `-f` globs match demangled names (also without their C++ parameter list,
//! raw names and aliases, so `-f add`, `-f 'ns::*'` and `-f _Z3addii` all
//! work); no `-f` means everything. `--no-function` removes. `--lib` keeps
//! only the PLT calls that bind into matching libraries and `--no-lib` drops
//! them; both match a library's soname or file name (`libc.so*`).
//! `--nest-lib` adds the functions of matching shared libraries. Selecting
//! nothing is a value: the caller says so and points at `--list`.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::SymbolError;
use super::demangle::base_name;
use super::elf::ModuleSymbols;
use super::image::file_name;
use super::libc;
use super::plt::PltStub;
use super::symbol::Symbol;
use crate::model::{FuncKind, Function};
use crate::options::Filter;

/// A [`Filter`] with its globs compiled.
#[derive(Clone, Debug)]
pub struct Selector {
    filter: Filter,
    functions: GlobSet,
    no_functions: GlobSet,
    libs: GlobSet,
    no_libs: GlobSet,
    nest_libs: GlobSet,
}

/// A pattern that matched nothing, to tell the user about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmatched {
    /// The option as spelled on the command line (`-f`, `--lib`, ...).
    pub option: &'static str,
    pub pattern: String,
}

/// The functions and stubs selected in one module.
#[derive(Clone, Debug)]
pub struct SelectedModule<'a> {
    pub module: &'a ModuleSymbols,
    pub functions: Vec<&'a Symbol>,
    pub plt: Vec<&'a PltStub>,
    /// Selected, but the kernel refuses their probe ([`Symbol::refused`]).
    pub refused: Vec<&'a Symbol>,
}

/// Everything selected, main module first.
#[derive(Clone, Debug, Default)]
pub struct Selection<'a> {
    pub modules: Vec<SelectedModule<'a>>,
}

impl Selection<'_> {
    /// Number of selected functions and stubs.
    pub fn len(&self) -> usize {
        self.modules
            .iter()
            .map(|m| m.functions.len() + m.plt.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn compile(option: &'static str, patterns: &[String]) -> Result<GlobSet, SymbolError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|err| SymbolError::BadPattern {
            option,
            pattern: pattern.clone(),
            reason: err.kind().to_string(),
        })?;
        set.add(glob);
    }
    set.build().map_err(|err| SymbolError::BadPattern {
        option,
        pattern: patterns.join(" "),
        reason: err.to_string(),
    })
}

impl Selector {
    pub fn new(filter: &Filter) -> Result<Selector, SymbolError> {
        Ok(Selector {
            filter: filter.clone(),
            functions: compile("-f", &filter.functions)?,
            no_functions: compile("--no-function", &filter.no_functions)?,
            libs: compile("--lib", &filter.libs)?,
            no_libs: compile("--no-lib", &filter.no_libs)?,
            nest_libs: compile("--nest-lib", &filter.nest_libs)?,
        })
    }

    /// Whether `--nest-lib` asks for the functions of the library at `path`
    /// (matched by its soname when known, its file name, or its whole path).
    pub fn nests(&self, path: &Path, soname: Option<&str>) -> bool {
        soname.is_some_and(|s| self.nest_libs.is_match(s))
            || self.nest_libs.is_match(file_name(path))
            || self.nest_libs.is_match(path)
    }

    fn wants_function(&self, names: &[&str]) -> bool {
        self.includes(names) && !self.excludes(names)
    }

    /// Whether `-f` takes a function known by `names` (no `-f`: every one).
    pub(crate) fn includes(&self, names: &[&str]) -> bool {
        self.filter.functions.is_empty() || names.iter().any(|n| self.functions.is_match(n))
    }

    /// Whether `--no-function` leaves out a function known by `names`.
    pub(crate) fn excludes(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.no_functions.is_match(n))
    }

    fn wants_library(&self, library: Option<&str>) -> bool {
        let included =
            self.filter.libs.is_empty() || library.is_some_and(|l| self.libs.is_match(l));
        included && !library.is_some_and(|l| self.no_libs.is_match(l))
    }

    /// The patterns that match nothing among `modules` (the main module and
    /// the nested libraries that were read) and, for `--nest-lib`, among all
    /// the libraries of the process (`lib_paths`).
    pub fn unmatched(&self, modules: &[&ModuleSymbols], lib_paths: &[PathBuf]) -> Vec<Unmatched> {
        let mut hit = Hits::default();
        for module in modules {
            for sym in module
                .functions
                .iter()
                .filter(|s| traceable(s) || s.refused.is_some())
            {
                hit.names(self, &symbol_names(sym));
            }
            for stub in &module.plt.stubs {
                hit.names(self, &stub_names(stub));
                if let Some(lib) = stub_library(module, stub) {
                    hit.libs.extend(self.libs.matches(lib));
                    hit.no_libs.extend(self.no_libs.matches(lib));
                }
            }
        }
        for path in lib_paths {
            hit.nest.extend(self.nest_libs.matches(file_name(path)));
            hit.nest.extend(self.nest_libs.matches(path));
        }
        let f = &self.filter;
        [
            ("-f", &f.functions, &hit.functions),
            ("--no-function", &f.no_functions, &hit.no_functions),
            ("--lib", &f.libs, &hit.libs),
            ("--no-lib", &f.no_libs, &hit.no_libs),
            ("--nest-lib", &f.nest_libs, &hit.nest),
        ]
        .into_iter()
        .flat_map(|(option, patterns, hits)| {
            let missed = patterns
                .iter()
                .enumerate()
                .filter(|(i, _)| !hits.contains(i));
            missed.map(move |(_, p)| Unmatched {
                option,
                pattern: p.clone(),
            })
        })
        .collect()
    }
}

/// Indices of the patterns of each option that matched something.
#[derive(Default)]
struct Hits {
    functions: Vec<usize>,
    no_functions: Vec<usize>,
    libs: Vec<usize>,
    no_libs: Vec<usize>,
    nest: Vec<usize>,
}

impl Hits {
    fn names(&mut self, selector: &Selector, names: &[&str]) {
        for name in names {
            self.functions.extend(selector.functions.matches(name));
            self.no_functions
                .extend(selector.no_functions.matches(name));
        }
    }
}

/// The names `-f` may match a function by.
fn symbol_names(sym: &Symbol) -> Vec<&str> {
    let mut names = vec![
        sym.name.as_str(),
        base_name(&sym.name),
        sym.raw_name.as_str(),
    ];
    names.extend(sym.aliases.iter().map(String::as_str));
    names
}

/// The names `-f` may match a stub by: `malloc@plt` and `malloc`.
fn stub_names(stub: &PltStub) -> Vec<&str> {
    let import = stub.name.strip_suffix("@plt").unwrap_or(&stub.name);
    vec![
        stub.name.as_str(),
        import,
        base_name(import),
        stub.import.as_str(),
    ]
}

/// The names `-f` may match a function of a trace file's table by: those of
/// [`symbol_names`] and [`stub_names`] that the table keeps (report-time
/// filters match what trace-time selection would have).
pub(crate) fn recorded_names(f: &Function) -> Vec<&str> {
    let mut names = vec![f.name.as_str(), f.raw_name.as_str()];
    match f.kind {
        FuncKind::Function => names.push(base_name(&f.name)),
        FuncKind::Plt => {
            let import = f.name.strip_suffix("@plt").unwrap_or(&f.name);
            let raw_import = f.raw_name.strip_suffix("@plt").unwrap_or(&f.raw_name);
            names.extend([import, base_name(import), raw_import]);
        }
    }
    names
}

/// The library a stub binds to: its version need, else the module's only
/// DT_NEEDED entry; unknown when the module needs several unversioned ones.
pub(crate) fn stub_library<'a>(module: &'a ModuleSymbols, stub: &'a PltStub) -> Option<&'a str> {
    match (&stub.library, module.link.needed.as_slice()) {
        (Some(lib), _) => Some(lib),
        (None, [only]) => Some(only),
        _ => None,
    }
}

/// Applies `selector` to the main module and to the libraries of `libs`
/// that `--nest-lib` asks for (others are ignored).
pub fn select<'a>(
    main: &'a ModuleSymbols,
    libs: &'a [ModuleSymbols],
    selector: &Selector,
) -> Selection<'a> {
    let nested = libs
        .iter()
        .filter(|m| selector.nests(&m.path, m.link.soname.as_deref()));
    let modules = std::iter::once(main)
        .chain(nested)
        .map(|module| select_in(module, selector))
        .filter(|m| !m.functions.is_empty() || !m.plt.is_empty() || !m.refused.is_empty())
        .collect();
    Selection { modules }
}

/// Whether a probe on `sym` would see its calls. An IFUNC symbol's address
/// is its resolver, which runs once when the loader binds the symbol, not
/// on each call (callers reach the implementation it picked, e.g.
/// `__memcpy_avx_unaligned_erms` for `memcpy`): it is never selected, and
/// never counts as a match.
///
/// Nor is a function whose first instruction the kernel refuses to probe
/// (`lock`-prefixed, as in pthread_spin_lock; see
/// [`kernel_accepts`](super::placement::kernel_accepts)) when the probe
/// could not move to the next one: for a running process that fails the
/// module's whole uprobe_multi link, and for a new one the probe is silently
/// not installed. It is kept aside with the reason, for `--list` and `-f`.
///
/// The C runtime's start-up and tear-down code is never selected either: it
/// is not the program's, uftrace does not show it, and `_start` is entered by
/// a jump from the kernel with argc where a return address would be, so a
/// return probe there would overwrite argc.
fn traceable(sym: &Symbol) -> bool {
    !sym.ifunc && sym.placement.probeable && !libc::is_runtime_function(&sym.raw_name)
}

fn select_in<'a>(module: &'a ModuleSymbols, selector: &Selector) -> SelectedModule<'a> {
    let wanted = |sym: &&Symbol| selector.wants_function(&symbol_names(sym));
    let functions = module
        .functions
        .iter()
        .filter(|s| traceable(s))
        .filter(wanted)
        .collect();
    let refused = module
        .functions
        .iter()
        .filter(|s| s.refused.is_some() && !s.ifunc);
    let refused = refused.filter(wanted).collect();
    let plt = module
        .plt
        .stubs
        .iter()
        .filter(|stub| stub.placement.probeable && !libc::is_runtime_import(&stub.import))
        .filter(|stub| selector.wants_function(&stub_names(stub)))
        .filter(|stub| selector.wants_library(stub_library(module, stub)))
        .collect();
    SelectedModule {
        module,
        functions,
        plt,
        refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::elf::read_module;
    use crate::symbols::testutil::{ASM_EXITS, CALLS_LIBC, Fixture};

    const OVERLOADS: &str = r#"
namespace ns { __attribute__((noinline)) int twice(int x) { return 2 * x; } }
__attribute__((noinline)) int add(int a, int b) { return a + b; }
__attribute__((noinline)) double add(double a, double b) { return a + b; }
int main() { return add(1, 2) + (int)add(1.0, 2.0) + ns::twice(3); }
"#;

    /// A program calling into libc and into an unversioned libdemo.so, and
    /// libdemo.so itself.
    fn with_library(fx: &Fixture) -> (ModuleSymbols, ModuleSymbols) {
        let lib = fx.cc(
            "libdemo.so",
            "int lib_fn(int x) { return x + 1; }\nint lib_other(void) { return 0; }",
            &["-shared", "-fPIC"],
        );
        let dir = fx.dir.path().display().to_string();
        let src =
            format!("int lib_fn(int);\n{CALLS_LIBC}\nint twice(int x) {{ return lib_fn(x); }}");
        let exe = fx.cc("uses", &src, &["-O0", "-L", &dir, "-ldemo"]);
        (
            read_module(&exe).expect("exe"),
            read_module(&lib).expect("lib"),
        )
    }

    fn selector(f: impl FnOnce(&mut Filter)) -> Selector {
        let mut filter = Filter::default();
        f(&mut filter);
        Selector::new(&filter).expect("valid globs")
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn selected_names(selection: &Selection<'_>) -> Vec<String> {
        let mut names: Vec<String> = selection
            .modules
            .iter()
            .flat_map(|m| {
                let f = m.functions.iter().map(|s| s.name.clone());
                f.chain(m.plt.iter().map(|s| s.name.clone()))
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn no_filter_selects_all_but_the_c_runtime() {
        let fx = Fixture::new();
        let (exe, lib) = with_library(&fx);
        let libs = [lib];
        let selection = select(&exe, &libs, &selector(|_| {}));
        assert_eq!(selection.modules.len(), 1);
        let selected = selected_names(&selection);
        let functions = exe.functions.iter().map(|s| &s.name);
        let mut left_out: Vec<&str> = functions
            .chain(exe.plt.stubs.iter().map(|s| &s.name))
            .filter(|n| !selected.contains(n))
            .map(String::as_str)
            .collect();
        left_out.sort_unstable();
        let crt = [
            "__cxa_finalize@plt",
            "__do_global_dtors_aux",
            "_fini",
            "_init",
            "_start",
            "deregister_tm_clones",
            "frame_dummy",
            "register_tm_clones",
        ];
        assert_eq!(left_out, crt);
    }

    #[test]
    fn function_globs_match_demangled_base_and_raw_names() {
        let fx = Fixture::new();
        let exe = read_module(&fx.cxx("overloads", OVERLOADS, &["-O1"])).expect("reading");
        let pick = |f: &[&str], no: &[&str]| {
            let sel = selector(|flt| {
                flt.functions = strings(f);
                flt.no_functions = strings(no);
            });
            selected_names(&select(&exe, &[], &sel))
        };
        assert_eq!(
            pick(&["add"], &[]),
            ["add(double, double)", "add(int, int)"]
        );
        assert_eq!(pick(&["ns::*"], &[]), ["ns::twice(int)"]);
        assert_eq!(pick(&["add(int, int)"], &[]), ["add(int, int)"]);
        assert_eq!(pick(&["_Z3addii"], &[]), ["add(int, int)"]);
        assert_eq!(
            pick(&["add", "main"], &["add(double*"]),
            ["add(int, int)", "main"]
        );
        assert!(select(&exe, &[], &selector(|f| f.functions = strings(&["zzz*"]))).is_empty());
    }

    #[test]
    fn lib_globs_filter_plt_calls_only() {
        let fx = Fixture::new();
        let (exe, _) = with_library(&fx);
        let only_libc = select(&exe, &[], &selector(|f| f.libs = strings(&["libc.so*"])));
        let names = selected_names(&only_libc);
        for stub in ["malloc@plt", "free@plt", "strlen@plt", "printf@plt"] {
            assert!(names.iter().any(|n| n == stub), "{stub} in {names:?}");
        }
        assert!(
            !names.iter().any(|n| n == "lib_fn@plt"),
            "library unknown: not kept by --lib"
        );
        assert!(
            names.iter().any(|n| n == "twice"),
            "--lib leaves functions alone"
        );

        let no_libc = select(&exe, &[], &selector(|f| f.no_libs = strings(&["libc.so*"])));
        let names = selected_names(&no_libc);
        assert!(!names.iter().any(|n| n == "malloc@plt"));
        assert!(names.iter().any(|n| n == "lib_fn@plt"));

        let malloc = select(&exe, &[], &selector(|f| f.functions = strings(&["malloc"])));
        assert_eq!(selected_names(&malloc), ["malloc@plt"]);
    }

    #[test]
    fn nest_lib_adds_the_library_functions() {
        let fx = Fixture::new();
        let (exe, lib) = with_library(&fx);
        let libs = [lib];
        let sel = selector(|f| {
            f.functions = strings(&["lib_*"]);
            f.nest_libs = strings(&["libdemo*"]);
        });
        let selection = select(&exe, &libs, &sel);
        assert_eq!(selection.modules.len(), 2);
        assert_eq!(
            selected_names(&selection),
            ["lib_fn", "lib_fn@plt", "lib_other"]
        );
        assert!(sel.nests(&libs[0].path, None));
        assert!(!sel.nests(
            Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            Some("libc.so.6")
        ));
    }

    #[test]
    fn reports_patterns_that_match_nothing() {
        let fx = Fixture::new();
        let (exe, lib) = with_library(&fx);
        let sel = selector(|f| {
            f.functions = strings(&["twice", "nope*"]);
            f.no_functions = strings(&["main"]);
            f.libs = strings(&["libc.so*", "libz*"]);
            f.nest_libs = strings(&["libdemo*", "libfoo*"]);
        });
        let lib_paths = vec![
            lib.path.clone(),
            PathBuf::from("/usr/lib/x86_64-linux-gnu/libc.so.6"),
        ];
        let unmatched = sel.unmatched(&[&exe, &lib], &lib_paths);
        let expected = [
            ("-f", "nope*"),
            ("--lib", "libz*"),
            ("--nest-lib", "libfoo*"),
        ];
        let expected: Vec<Unmatched> = expected
            .iter()
            .map(|(option, p)| Unmatched {
                option,
                pattern: p.to_string(),
            })
            .collect();
        assert_eq!(unmatched, expected);
    }

    #[test]
    fn ifunc_resolvers_are_not_selected() {
        let fx = Fixture::new();
        let src = r#"
static int foo_impl(int x) { return x + 1; }
static int (*resolve_foo(void))(int) { return foo_impl; }
int foo(int) __attribute__((ifunc("resolve_foo")));
int main(int argc, char **argv) { (void)argv; return foo(argc); }
"#;
        let exe = read_module(&fx.cc("ifunc", src, &["-O0"])).expect("reading");
        let foo = exe.functions.iter().find(|s| s.name == "foo").expect("foo");
        assert!(foo.ifunc, "fixture lost its IFUNC");
        // The resolver's own symbol is an alias at the same address.
        assert_eq!(foo.aliases, ["resolve_foo"]);
        let all = selected_names(&select(&exe, &[], &selector(|_| {})));
        assert!(!all.iter().any(|n| n == "foo"), "{all:?}");
        assert!(all.iter().any(|n| n == "foo_impl"), "{all:?}");
        let only_foo = selector(|f| f.functions = strings(&["foo"]));
        assert!(select(&exe, &[], &only_foo).is_empty());
        let unmatched = only_foo.unmatched(&[&exe], &[]);
        let expected = Unmatched {
            option: "-f",
            pattern: "foo".into(),
        };
        assert_eq!(unmatched, [expected]);
    }

    #[test]
    fn functions_the_kernel_cannot_probe_are_kept_aside_with_the_reason() {
        let fx = Fixture::new();
        let exe = fx.compile("gcc", "S", "asm", ASM_EXITS, &[]);
        let exe = read_module(&exe).expect("reading");
        let all = selected_names(&select(&exe, &[], &selector(|_| {})));
        assert!(all.iter().any(|n| n == "rets"), "{all:?}");
        // `lock incl (%rdi); ret`: probed on the ret.
        let locked = exe
            .functions
            .iter()
            .find(|s| s.name == "locked")
            .expect("locked");
        assert!(all.iter().any(|n| n == "locked"), "{all:?}");
        assert_eq!(locked.placement.probe_file_offset, locked.file_offset + 3);
        // A loop back onto the lock: refused, not selected, kept with why.
        let spin = ".globl spin\n.type spin, @function\nspin:\n1: lock incl (%rdi)\n jne 1b\n ret\n.size spin, .-spin\n\
                    .globl main\n.type main, @function\nmain:\n ret\n.size main, .-main\n";
        let exe = read_module(&fx.compile("gcc", "S", "spin", spin, &[])).expect("reading");
        let selection = select(&exe, &[], &selector(|f| f.functions = strings(&["spin"])));
        assert!(selection.is_empty());
        let refused: Vec<&str> = selection.modules[0]
            .refused
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(refused, ["spin"]);
        let why = selection.modules[0].refused[0].refused.as_deref();
        assert_eq!(
            why,
            Some(
                "the kernel refuses a uprobe on its first instruction (lock inc), and a branch in it returns there"
            )
        );
        let only_spin = selector(|f| f.functions = strings(&["spin"]));
        assert!(
            only_spin.unmatched(&[&exe], &[]).is_empty(),
            "named: said by the plan, not unmatched"
        );
    }

    #[test]
    fn bad_glob_is_an_error() {
        let filter = Filter {
            functions: strings(&["a[b"]),
            ..Filter::default()
        };
        let err = Selector::new(&filter).expect_err("unclosed class");
        assert!(
            matches!(err, SymbolError::BadPattern { option: "-f", ref pattern, .. } if pattern == "a[b"),
            "{err}"
        );
    }
}
