//! Symbol resolution: from ELF files (or a running process) to the table of
//! traced functions and the probe lists that attach them.
//!
//! The stages: `elf` reads one module's functions (with `plt` for its PLT
//! stubs and `placement` for where each probe goes); `maps` (for `-p`) and
//! `libs` (for `-c`) find the modules; `select` applies the user's globs;
//! [`build_plan`] numbers what was selected. A function's id is its index in
//! the [`FuncTable`](crate::model::FuncTable) and also its BPF attach cookie,
//! so BPF never sees a name.

pub mod demangle;
pub mod elf;
mod exits;
pub mod libs;
pub mod link;
pub mod maps;
pub mod placement;
pub mod plt;
pub mod select;
#[cfg(test)]
mod testutil;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::model::{FuncKind, FuncTable, Function, Module};

pub use elf::{ModuleSymbols, Symbol, read_module};
pub use libs::{MissingLib, ResolvedLibs, SearchConfig, resolve_needed};
pub use link::{LinkInfo, read_link_info};
pub use maps::{MappedFile, ProcessMaps, read_process};
pub use placement::{EntryPath, Placement};
pub use plt::{PltInfo, PltStub};
pub use select::{Filter, SelectedModule, Selection, Selector, Unmatched, select};

/// Errors a caller may branch on; "nothing found / nothing matched" is a
/// value, never one of these.
#[derive(Debug, thiserror::Error)]
pub enum SymbolError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not an ELF file", .0.display())]
    NotElf(PathBuf),
    #[error("{} is {what}: utrace traces x86-64 code only", path.display())]
    UnsupportedArch { path: PathBuf, what: String },
    #[error("{} is stripped: it has no function symbols (.symtab or .dynsym) to trace", .0.display())]
    Stripped(PathBuf),
    #[error("{} is a malformed ELF file: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("no such process: {0}")]
    NoSuchProcess(u32),
    #[error("invalid pattern {pattern:?} for {option}: {reason}")]
    BadPattern {
        option: &'static str,
        pattern: String,
        reason: String,
    },
}

impl SymbolError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SymbolError {
        let path = path.into();
        move |source| SymbolError::Io { path, source }
    }

    pub(crate) fn malformed(
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(object::read::Error) -> SymbolError {
        let path = path.into();
        move |err| SymbolError::Malformed {
            path,
            reason: err.to_string(),
        }
    }
}

/// The probes of one module for one uprobe_multi link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttachList {
    /// The file to attach to (as given: may be under /proc/PID/root).
    pub path: PathBuf,
    /// File offsets of the probed instructions.
    pub offsets: Vec<u64>,
    /// The function id for each offset: BPF reads it with bpf_get_attach_cookie.
    pub cookies: Vec<u64>,
}

/// What the probe stage needs: the table reports name functions by, and the
/// probe lists per module. Each list holds only modules with something to
/// probe in it, so lists of different kinds do not line up by index: match
/// them by `path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbePlan {
    pub table: FuncTable,
    /// Per function id: whether a return probe that hijacks the return
    /// address (uretprobe, session) is safe for it: nothing can unwind
    /// through its frame and it does not recurse past the kernel's 64
    /// pending returns. `--exit=auto` gives the others ret-site exits.
    pub hijack_safe: Vec<bool>,
    /// The id of `table.functions[0]`: a plan built later (dlopen) is
    /// numbered after the functions already traced.
    pub first_id: u64,
    pub entries: Vec<AttachList>,
    /// Return probes go at the entry placement too: a uretprobe hijacks the
    /// return address when the function is entered, and at the placement
    /// (the first instruction, or the one after endbr64) the return address
    /// is still on top of the stack.
    pub returns: Vec<AttachList>,
    /// For exits without return-address hijacking: every `ret` and direct
    /// tail jump of each selected function, where the stack pointer equals
    /// its entry value (BPF `on_ret_site`). Cookie: the function's id.
    pub ret_sites: Vec<AttachList>,
    /// The same for selected PLT stubs: the instruction after every direct
    /// `call` to the stub anywhere in its module, where the stack pointer is
    /// its entry value + 8 (BPF `on_exit` as a plain uprobe). Cookie: the
    /// stub's id. A direct `jmp` to a stub (a tail call into the library)
    /// gets no site: the library returns straight to the jumping function's
    /// caller, and calls to that function are not all known (some are
    /// indirect); the stub's frame is closed as unwound when the thread is
    /// next seen higher up the stack.
    pub call_returns: Vec<AttachList>,
}

/// One module's list for one uprobe_multi link. The kernel rejects a link
/// that names an offset twice, so an offset is kept for its first cookie.
struct ListBuilder {
    list: AttachList,
    seen: HashSet<u64>,
}

impl ListBuilder {
    fn new(path: &Path) -> Self {
        let list = AttachList {
            path: path.to_path_buf(),
            ..AttachList::default()
        };
        ListBuilder {
            list,
            seen: HashSet::new(),
        }
    }

    /// Adds `offset` unless the list has it already; says whether it did.
    fn add(&mut self, offset: u64, cookie: u64) -> bool {
        let new = self.seen.insert(offset);
        if new {
            self.list.offsets.push(offset);
            self.list.cookies.push(cookie);
        }
        new
    }

    /// Appends the list to `lists` unless it is empty.
    fn finish(self, lists: &mut Vec<AttachList>) {
        if !self.list.offsets.is_empty() {
            lists.push(self.list);
        }
    }
}

/// The lists of one module, filled as ids are handed out.
struct ModulePlan {
    entries: ListBuilder,
    ret_sites: ListBuilder,
    call_returns: ListBuilder,
}

impl ModulePlan {
    fn new(path: &Path) -> Self {
        ModulePlan {
            entries: ListBuilder::new(path),
            ret_sites: ListBuilder::new(path),
            call_returns: ListBuilder::new(path),
        }
    }

    /// Gives `function` the next id unless its entry offset is taken.
    fn number(
        &mut self,
        table: &mut FuncTable,
        (function, offset): (Function, u64),
    ) -> Option<u64> {
        let id = table.functions.len() as u64;
        self.entries.add(offset, id).then(|| {
            table.functions.push(function);
            id
        })
    }

    fn finish(self, plan: &mut ProbePlan) {
        if !self.entries.list.offsets.is_empty() {
            plan.returns.push(self.entries.list.clone());
        }
        self.entries.finish(&mut plan.entries);
        self.ret_sites.finish(&mut plan.ret_sites);
        self.call_returns.finish(&mut plan.call_returns);
    }
}

impl ProbePlan {
    /// Whether function `id` may carry a return-address-hijacking probe.
    pub fn hijack_safe(&self, id: u64) -> bool {
        let index = id.wrapping_sub(self.first_id) as usize;
        self.hijack_safe.get(index).copied().unwrap_or(false)
    }
}

/// Numbers the selected functions: ids follow module order, then each
/// module's functions, then its PLT stubs. Two selections that share a probe
/// offset in one module (which uprobe_multi would reject) keep the first.
pub fn build_plan(selection: &Selection<'_>) -> ProbePlan {
    let mut plan = ProbePlan::default();
    for selected in &selection.modules {
        if selected.functions.is_empty() && selected.plt.is_empty() {
            continue;
        }
        let module = selected.module;
        let module_id = plan.table.modules.len() as u32;
        plan.table.modules.push(Module {
            path: module.path.display().to_string(),
            build_id: module.build_id.clone(),
        });
        let mut lists = ModulePlan::new(&module.path);
        let unwinds = module.can_unwind();
        for sym in &selected.functions {
            let Some(id) = lists.number(&mut plan.table, function_of(sym, module_id)) else {
                continue;
            };
            plan.hijack_safe
                .push((!unwinds || sym.leaf) && !sym.recursive);
            // The same `ret` can end two functions whose bodies overlap:
            // hand-written assembly with several entry points sharing a tail,
            // or a symbol whose size spans its neighbour (aliases at one
            // address are merged before this, and so is code that identical
            // code folding gave one address). BPF matches an exit to its
            // frame by stack pointer, so the kept cookie still ends the right
            // frame; the exit event should name the frame's function.
            for &site in &sym.ret_sites {
                lists.ret_sites.add(site, id);
            }
        }
        for stub in &selected.plt {
            let Some(id) = lists.number(&mut plan.table, stub_of(stub, module_id)) else {
                continue;
            };
            plan.hijack_safe.push(!unwinds);
            for &site in &stub.call_returns {
                lists.call_returns.add(site, id);
            }
        }
        lists.finish(&mut plan);
    }
    plan
}

fn function_of(sym: &Symbol, module: u32) -> (Function, u64) {
    let function = Function {
        module,
        name: sym.name.clone(),
        raw_name: sym.raw_name.clone(),
        addr: sym.vaddr,
        size: sym.size,
        kind: FuncKind::Function,
    };
    (function, sym.placement.probe_file_offset)
}

fn stub_of(stub: &PltStub, module: u32) -> (Function, u64) {
    let function = Function {
        module,
        name: stub.name.clone(),
        raw_name: stub.raw_name.clone(),
        addr: stub.vaddr,
        size: stub.size,
        kind: FuncKind::Plt,
    };
    (function, stub.placement.probe_file_offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::testutil::{ASM_EXITS, CALLS_LIBC, EXITS, Fixture};

    #[test]
    fn plan_numbers_functions_as_cookies() {
        let fx = Fixture::new();
        let lib = fx.cc(
            "libdemo.so",
            "int lib_fn(int x) { return x + 1; }",
            &["-shared", "-fPIC"],
        );
        let dir = fx.dir.path().display().to_string();
        let src =
            format!("int lib_fn(int);\n{CALLS_LIBC}\nint twice(int x) {{ return lib_fn(x); }}");
        let exe = fx.cc(
            "uses",
            &src,
            &["-O0", "-fcf-protection=full", "-L", &dir, "-ldemo"],
        );
        let (exe, lib) = (
            read_module(&exe).expect("exe"),
            read_module(&lib).expect("lib"),
        );
        let libs = [lib];
        let filter = Filter {
            functions: vec!["add".into(), "malloc".into(), "lib_fn".into()],
            nest_libs: vec!["libdemo.so".into()],
            ..Filter::default()
        };
        let selection = select(&exe, &libs, &Selector::new(&filter).expect("globs"));
        let plan = build_plan(&selection);

        let names: Vec<(&str, FuncKind, u32)> = plan
            .table
            .functions
            .iter()
            .map(|f| (f.name.as_str(), f.kind, f.module))
            .collect();
        let expected = [
            ("add", FuncKind::Function, 0),
            ("malloc@plt", FuncKind::Plt, 0),
            ("lib_fn@plt", FuncKind::Plt, 0),
            ("lib_fn", FuncKind::Function, 1),
        ];
        assert_eq!(names, expected);
        let paths: Vec<&str> = plan.table.modules.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                exe.path.to_str().unwrap_or(""),
                libs[0].path.to_str().unwrap_or("")
            ]
        );
        assert_eq!(plan.table.modules[0].build_id, exe.build_id);

        assert_eq!(plan.entries, plan.returns);
        assert_eq!(plan.entries[0].path, exe.path);
        assert_eq!(plan.entries[0].cookies, [0, 1, 2]);
        assert_eq!(plan.entries[1].cookies, [3]);
        let add = exe.functions.iter().find(|s| s.name == "add").expect("add");
        // -fcf-protection: probed past endbr64.
        assert_eq!(plan.entries[0].offsets[0], add.file_offset + 4);
        let malloc = exe
            .plt
            .stubs
            .iter()
            .find(|s| s.import == "malloc")
            .expect("malloc@plt");
        assert_eq!(
            plan.entries[0].offsets[1],
            malloc.placement.probe_file_offset
        );
        assert_eq!(plan.table.name(3), "lib_fn");
        assert_eq!(plan.table.module_of(3), libs[0].path.to_str().unwrap_or(""));
    }

    fn plan_for(module: &ModuleSymbols, functions: &[&str]) -> ProbePlan {
        let filter = Filter {
            functions: functions.iter().map(|f| f.to_string()).collect(),
            ..Filter::default()
        };
        let selection = select(module, &[], &Selector::new(&filter).expect("globs"));
        build_plan(&selection)
    }

    #[test]
    fn plan_lists_ret_sites_and_call_returns() {
        let fx = Fixture::new();
        let exe = read_module(&fx.cc("exits", EXITS, &["-O2"])).expect("reading");
        let plan = plan_for(&exe, &["two_rets", "tail", "strlen"]);
        let names: Vec<&str> = plan
            .table
            .functions
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, ["two_rets", "tail", "strlen@plt"]);
        let find = |name: &str| exe.functions.iter().find(|s| s.name == name).expect(name);
        let (two_rets, tail) = (find("two_rets"), find("tail"));
        let sites = [&two_rets.ret_sites[..], &tail.ret_sites[..]].concat();
        assert_eq!(sites.len(), 3);
        let expected = AttachList {
            path: exe.path.clone(),
            offsets: sites,
            cookies: vec![0, 0, 1],
        };
        assert_eq!(plan.ret_sites, [expected]);
        let strlen = exe
            .plt
            .stubs
            .iter()
            .find(|s| s.import == "strlen")
            .expect("stub");
        let expected = AttachList {
            path: exe.path.clone(),
            offsets: strlen.call_returns.clone(),
            cookies: vec![2; 3],
        };
        assert_eq!(plan.call_returns, [expected]);
    }

    #[test]
    fn shared_ret_site_is_listed_once() {
        let fx = Fixture::new();
        let exe = fx.compile("gcc", "S", "asm", ASM_EXITS, &[]);
        let exe = read_module(&exe).expect("reading");
        let plan = plan_for(&exe, &["f", "g"]);
        let f = exe.functions.iter().find(|s| s.name == "f").expect("f");
        assert_eq!(plan.entries[0].cookies, [0, 1]);
        // g's ret is f's: kept once, for f.
        assert_eq!(plan.ret_sites[0].offsets, [f.file_offset + 4]);
        assert_eq!(plan.ret_sites[0].cookies, [0]);
        assert!(plan.call_returns.is_empty());
    }

    /// 20,000 -O2 functions of four shapes: early return with a libc call,
    /// tail call, strlen call, loop.
    fn many_functions(n: usize) -> String {
        let mut src =
            String::from("#include <stdio.h>\n#include <string.h>\nint f0(int x) { return x; }\n");
        for i in 1..n {
            let body = match i % 4 {
                0 => format!("if (x == {i}) return 0; printf(\"%d\\n\", x); return 1;"),
                1 => format!("return f{}(x + {i});", i - 1),
                2 => format!("return (int)strlen((const char *)(long)x) + {i};"),
                _ => format!("int r = 0; for (int k = 0; k < x; k++) r += k * {i}; return r;"),
            };
            src += &format!("__attribute__((noinline)) int f{i}(int x) {{ {body} }}\n");
        }
        src + "int main(int argc, char **argv) { (void)argv; return f1(argc) + f2(argc); }\n"
    }

    /// `cargo test --release --lib plan_timing -- --ignored --nocapture`
    #[test]
    #[ignore = "timing: builds a 20,000-function fixture (about a minute of gcc)"]
    fn plan_timing_20k_functions() {
        use std::time::Instant;
        let fx = Fixture::new();
        let exe = fx.cc("many", &many_functions(20_000), &["-O2"]);
        let t = Instant::now();
        let module = read_module(&exe).expect("reading");
        let read = t.elapsed();
        let t = Instant::now();
        let selection = select(
            &module,
            &[],
            &Selector::new(&Filter::default()).expect("globs"),
        );
        let selected = t.elapsed();
        let t = Instant::now();
        let plan = build_plan(&selection);
        let built = t.elapsed();
        let count = |lists: &[AttachList]| lists.iter().map(|l| l.offsets.len()).sum::<usize>();
        eprintln!(
            "{} functions: read_module {read:?} (with exit sites), select {selected:?}, build_plan {built:?}; \
             {} entries, {} ret sites, {} call returns",
            module.functions.len(),
            count(&plan.entries),
            count(&plan.ret_sites),
            count(&plan.call_returns)
        );
        assert!(module.functions.len() > 20_000);
    }

    #[test]
    fn empty_selection_gives_empty_plan() {
        assert_eq!(build_plan(&Selection::default()), ProbePlan::default());
    }
}
