//! Symbol resolution: from ELF files (or a running process) to the table of
//! traced functions and the probe lists that attach them.
//!
//! The stages: `elf` reads one module's functions (with `plt` for its PLT
//! stubs and `placement` for where each probe goes); `maps` (for `-p`) and
//! `libs` (for `-c`) find the modules; `select` applies the user's globs;
//! [`probe_set`] numbers what was selected. A function's id is its index in
//! the [`FuncTable`](crate::model::FuncTable) and also its BPF attach cookie,
//! so BPF never sees a name. `libc` holds what utrace knows about the C
//! runtime; `image` the ELF facts every reader shares; `exports` which
//! library defines an import its stub does not name; `debugfile` where a
//! module's DWARF is and `debuginfo` what it says (source lines, inlining,
//! and with `params` and `abi` the arguments of `-A`/`-R`), read only when
//! asked.

mod abi;
pub(crate) mod debugfile;
pub(crate) mod debuginfo;
pub(crate) mod demangle;
mod dies;
pub(crate) mod elf;
pub(crate) mod epilogue;
mod exit_sites;
mod exports;
mod image;
pub(crate) mod labels;
pub(crate) mod libc;
pub(crate) mod libs;
pub(crate) mod link;
pub(crate) mod maps;
mod params;
pub(crate) mod placement;
pub(crate) mod plt;
pub(crate) mod select;
mod symbol;
mod taken;
#[cfg(test)]
pub(crate) mod testutil;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::model::{FuncId, FuncKind, FuncTable, Function, Module};

pub use debugfile::DEFAULT_DEBUG_DIR;
pub use debuginfo::DebugInfo;
pub use elf::{ModuleSymbols, read_module, read_module_with};
pub use exit_sites::SHORT_HEIGHT;
pub use exports::defining_libraries;
pub use libs::{SearchConfig, resolve_needed};
pub use maps::read_process;
pub use placement::EntryPath;
pub use plt::PltStub;
pub use select::{Selection, Selector, select};
pub use symbol::Symbol;

/// Whether `path` starts like an ELF file (its errors come from reading it).
pub fn is_elf(path: &Path) -> bool {
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| head == object::elf::ELFMAG)
}

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
    /// The function each offset belongs to (its cookie in BPF).
    pub ids: Vec<FuncId>,
}

/// What a function's exit probe may be, as far as its code tells.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitFacts {
    /// A return probe that hijacks the return address (uretprobe, session)
    /// is safe: nothing can unwind through its frame (an unwinder that
    /// meets the kernel's trampoline aborts the program).
    pub hijack_safe: bool,
    /// It returns twice (setjmp and kin): its return address must never be
    /// hijacked at all.
    pub returns_twice: bool,
    /// Its calls are short: a PLT stub (the library function it reaches is
    /// not traced), or a function whose calls nest only a few levels below
    /// it (Symbol's `short`). BPF keeps a few hijacks for such calls when
    /// deep recursion has used up the others.
    pub short: bool,
    /// It may leave by a tail jump (Symbol's `tail_calls`). Ended where its
    /// calls return, its frame then stays open under the call it jumps to,
    /// which returns there too.
    pub tail_calls: bool,
}

/// What the probe stage needs: the functions (numbered from `first`), what
/// their exits allow, and the probe lists per module. Each list holds only
/// modules with something to probe in it, so lists of different kinds do not
/// line up by index: match them by `path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeSet {
    /// The functions of this set: `table.functions[i]` has id `first + i`,
    /// and its `module` indexes the run's whole table.
    pub table: FuncTable,
    pub first: FuncId,
    /// Per function, in `table` order.
    pub exits: Vec<ExitFacts>,
    /// Entry probes. Return probes go at the entry placement too: a
    /// uretprobe hijacks the return address when the function is entered,
    /// and at the placement (the first instruction, or the one after
    /// endbr64) the return address is still on top of the stack.
    pub entries: Vec<AttachList>,
    /// For exits without return-address hijacking: every `ret` and direct
    /// tail jump of each selected function, where the stack pointer equals
    /// its entry value (BPF `on_ret_site`).
    pub ret_sites: Vec<AttachList>,
    /// Branches into epilogues that can stand in for ret sites (Symbol's
    /// `epilogues`), and the `ret`s they stand for (`early_covers`).
    pub early_exits: Vec<AttachList>,
    pub early_covers: Vec<AttachList>,
    /// Direct calls returning into an epilogue, to a traced function whose
    /// exit then ends the caller's frame too (BPF chains it at the call),
    /// and the `ret`s that they with `early_exits` stand for. Only while
    /// BPF keeps the caller's frame: deeper, the `ret` is attached.
    pub chain_calls: Vec<AttachList>,
    pub chain_covers: Vec<AttachList>,
    /// The same for selected PLT stubs: the instruction after every direct
    /// `call` to the stub anywhere in its module, where the stack pointer is
    /// its entry value + 8 (BPF `on_exit` as a plain uprobe). A direct `jmp`
    /// to a stub (a tail call into the library) gets no site of its own: the
    /// library returns straight to the jumping function's caller, seen where
    /// that function's direct calls return (`watch_returns`); from a call
    /// through a pointer, the stub's frame is closed as not seen when the
    /// thread is next seen at or above its slot.
    /// Functions only ever called directly (Symbol's `call_returns`) have
    /// theirs here too, beside their ret sites: the exit policy uses one.
    pub call_returns: Vec<AttachList>,
    /// For selected PLT stubs only called directly (PltStub's
    /// `call_sites`): every `call` to the stub, where its entry is probed
    /// when its exits are seen at its call returns. The stack pointer is
    /// one slot above the stub's entry value there.
    pub call_site_entries: Vec<AttachList>,
    /// For the same stubs, every direct `jmp` to one (PltStub's
    /// `jump_sites`): entered where its calls are, its jumped calls are
    /// entered there, with the stack as at the stub's own entry.
    pub jump_entries: Vec<AttachList>,
    /// Of `call_site_entries`, the calls that run into a `ret` of their
    /// traced caller (PltStub's `into_caller_ret`), and where each of them
    /// returns (in `call_returns` too): the caller's exit can end them.
    pub into_caller_calls: Vec<AttachList>,
    pub into_caller_returns: Vec<AttachList>,
    /// The same return sites, with the calling function as their id: its
    /// exits must be seen for them to be left unprobed (`--max-rate` may
    /// stop tracing it).
    pub into_caller_callers: Vec<AttachList>,
    /// The ret sites that are direct jumps to a selected function or stub
    /// of the same module (tail calls), with that callee as their id.
    pub tail_targets: Vec<AttachList>,
    /// The ret sites that are jumps through a pointer (Symbol's
    /// `tail_calls` with no target), with the jumping function as their id.
    pub pointer_jumps: Vec<AttachList>,
    /// Where the direct calls of a selected function with a direct tail
    /// jump return (Symbol's `watch_returns`): with ret-site exits, the
    /// call its jump made (into a library, or to code whose own return no
    /// probe sees) returns there, and the jumping frame ends with it.
    pub watch_returns: Vec<AttachList>,
    /// Those functions' direct tail jumps, with the jumping function as
    /// their id.
    pub watched_jumps: Vec<AttachList>,
}

impl ProbeSet {
    /// A set numbered from zero (its own table's ids and module indexes),
    /// renumbered to follow `numbering`: code loaded later is planned on
    /// its own, as the start's is, then joins the run's table.
    pub fn renumber(&mut self, numbering: Numbering) {
        let shift = |id: &mut FuncId| id.0 += numbering.first_function.0 - self.first.0;
        let lists = [
            &mut self.entries,
            &mut self.ret_sites,
            &mut self.early_exits,
            &mut self.early_covers,
            &mut self.chain_calls,
            &mut self.chain_covers,
            &mut self.call_returns,
            &mut self.call_site_entries,
            &mut self.jump_entries,
            &mut self.into_caller_calls,
            &mut self.into_caller_returns,
            &mut self.into_caller_callers,
            &mut self.tail_targets,
            &mut self.pointer_jumps,
            &mut self.watch_returns,
            &mut self.watched_jumps,
        ];
        for list in lists.into_iter().flatten() {
            list.ids.iter_mut().for_each(shift);
        }
        for f in &mut self.table.functions {
            f.module += numbering.first_module;
        }
        let values = std::mem::take(&mut self.table.values);
        self.table.values = (values.into_iter())
            .map(|(mut id, v)| {
                shift(&mut id);
                (id, v)
            })
            .collect();
        self.first = numbering.first_function;
    }

    /// What function `id`'s exit allows (nothing, for an id not in this set).
    pub fn exit_facts(&self, id: FuncId) -> ExitFacts {
        let index = id.0.checked_sub(self.first.0).map(|i| i as usize);
        index
            .and_then(|i| self.exits.get(i))
            .copied()
            .unwrap_or_default()
    }
}

/// One module's list for one uprobe_multi link. The kernel rejects a link
/// that names an offset twice, so an offset is kept for its first function.
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
    fn add(&mut self, offset: u64, id: FuncId) -> bool {
        let new = self.seen.insert(offset);
        if new {
            self.list.offsets.push(offset);
            self.list.ids.push(id);
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

/// Deep recursion's sites in place of single-stepped `ret`s (Symbol's
/// `epilogues`): the branches into an epilogue, and the calls returning
/// into it whose callee's own exit is seen: a traced function (`at`) whose
/// entry is probed in its own code (`own_entry`; one entered at its calls
/// would share the call's probe) and that returns once. None in a module
/// that can be unwound through (`unwinds`), where a catch could land
/// between the call and the epilogue.
fn list_epilogues(
    lists: &mut ModuleLists,
    set: &ProbeSet,
    functions: &[&Symbol],
    at: &HashMap<u64, FuncId>,
    own_entry: &HashSet<u64>,
    unwinds: bool,
) {
    let traced = |&(_, callee): &(u64, u64)| {
        let facts = (at.get(&callee)).and_then(|id| set.exits.get((id.0 - set.first.0) as usize));
        own_entry.contains(&callee) && facts.is_some_and(|f| !f.returns_twice)
    };
    for sym in functions {
        let Some(&id) = at.get(&sym.vaddr) else {
            continue;
        };
        for e in &sym.epilogues {
            if !e.calls.is_empty() && (unwinds || !e.calls.iter().all(traced)) {
                continue;
            }
            for &site in &e.branches {
                lists.early_exits.add(site, id);
            }
            for &(site, _) in &e.calls {
                lists.chain_calls.add(site, id);
            }
            match e.calls.is_empty() {
                true => lists.early_covers.add(e.ret, id),
                false => lists.chain_covers.add(e.ret, id),
            };
        }
    }
}

/// The lists of one module, filled as ids are handed out.
struct ModuleLists {
    entries: ListBuilder,
    ret_sites: ListBuilder,
    early_exits: ListBuilder,
    early_covers: ListBuilder,
    chain_calls: ListBuilder,
    chain_covers: ListBuilder,
    call_returns: ListBuilder,
    call_sites: ListBuilder,
    jump_sites: ListBuilder,
    into_caller_calls: ListBuilder,
    into_caller_returns: ListBuilder,
    into_caller_callers: ListBuilder,
    tail_targets: ListBuilder,
    pointer_jumps: ListBuilder,
    watch_returns: ListBuilder,
    watched_jumps: ListBuilder,
}

impl ModuleLists {
    fn new(path: &Path) -> Self {
        ModuleLists {
            entries: ListBuilder::new(path),
            ret_sites: ListBuilder::new(path),
            early_exits: ListBuilder::new(path),
            early_covers: ListBuilder::new(path),
            chain_calls: ListBuilder::new(path),
            chain_covers: ListBuilder::new(path),
            call_returns: ListBuilder::new(path),
            call_sites: ListBuilder::new(path),
            jump_sites: ListBuilder::new(path),
            into_caller_calls: ListBuilder::new(path),
            into_caller_returns: ListBuilder::new(path),
            into_caller_callers: ListBuilder::new(path),
            tail_targets: ListBuilder::new(path),
            pointer_jumps: ListBuilder::new(path),
            watch_returns: ListBuilder::new(path),
            watched_jumps: ListBuilder::new(path),
        }
    }

    /// Gives `function` the next id unless its entry offset is taken.
    fn number(
        &mut self,
        set: &mut ProbeSet,
        (function, offset): (Function, u64),
        hijack_safe: bool,
        (short, tail_calls): (bool, bool),
    ) -> Option<FuncId> {
        let id = FuncId(set.first.0 + set.table.functions.len() as u32);
        self.entries.add(offset, id).then(|| {
            set.exits.push(ExitFacts {
                hijack_safe,
                returns_twice: libc::returns_twice(&function.raw_name),
                short,
                tail_calls,
            });
            set.table.functions.push(function);
            id
        })
    }

    fn finish(self, set: &mut ProbeSet) {
        self.entries.finish(&mut set.entries);
        self.ret_sites.finish(&mut set.ret_sites);
        self.early_exits.finish(&mut set.early_exits);
        self.early_covers.finish(&mut set.early_covers);
        self.chain_calls.finish(&mut set.chain_calls);
        self.chain_covers.finish(&mut set.chain_covers);
        self.call_returns.finish(&mut set.call_returns);
        self.call_sites.finish(&mut set.call_site_entries);
        self.jump_sites.finish(&mut set.jump_entries);
        self.into_caller_calls.finish(&mut set.into_caller_calls);
        self.into_caller_returns
            .finish(&mut set.into_caller_returns);
        self.into_caller_callers
            .finish(&mut set.into_caller_callers);
        self.tail_targets.finish(&mut set.tail_targets);
        self.pointer_jumps.finish(&mut set.pointer_jumps);
        self.watch_returns.finish(&mut set.watch_returns);
        self.watched_jumps.finish(&mut set.watched_jumps);
    }
}

/// The helper probes of one module (`--exit=auto`): see [`libc::Helper`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HelperList {
    pub path: PathBuf,
    pub offsets: Vec<u64>,
    pub kinds: Vec<libc::Helper>,
}

/// The unwinder and longjmp functions of `module` and where their probes go.
pub fn helper_list(module: &ModuleSymbols) -> HelperList {
    let mut list = HelperList {
        path: module.path.clone(),
        ..HelperList::default()
    };
    let mut seen = HashSet::new();
    let mut add = |offset: u64, kind| {
        if seen.insert(offset) {
            list.offsets.push(offset);
            list.kinds.push(kind);
        }
    };
    for sym in module.functions.iter().filter(|s| s.placement.probeable) {
        let names = std::iter::once(&sym.raw_name).chain(&sym.aliases);
        // On the first instruction: helpers read their arguments.
        if let Some(kind) = names.clone().find_map(|n| libc::helper_of(n)) {
            add(sym.placement.unmoved().probe_file_offset, kind);
        }
    }
    list
}

/// Where a probe set's numbering starts: after the functions and modules a
/// run already traces (code loaded later), or at zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Numbering {
    pub first_function: FuncId,
    pub first_module: u32,
}

impl Numbering {
    /// The numbering that follows everything in `table`.
    pub fn after(table: &FuncTable) -> Self {
        Numbering {
            first_function: FuncId(table.functions.len() as u32),
            first_module: table.modules.len() as u32,
        }
    }
}

/// Numbers the selected functions: ids follow module order, then each
/// module's functions, then its PLT stubs. Two selections that share a probe
/// offset in one module (which uprobe_multi would reject) keep the first.
pub fn probe_set(selection: &Selection<'_>, numbering: Numbering) -> ProbeSet {
    probe_set_with(selection, numbering, &mut |_, _| None, false)
}

/// Where a function is defined (`file:line`), asked per selected function.
pub type SourceOf<'s> = dyn FnMut(&ModuleSymbols, u64) -> Option<String> + 's;

/// [`probe_set`], with each function's source from `source_of` (module,
/// address): asked for every function when `all`, else only for those whose
/// names clash within their module, which are tagged (labels.rs).
pub fn probe_set_with(
    selection: &Selection<'_>,
    numbering: Numbering,
    source_of: &mut SourceOf<'_>,
    all: bool,
) -> ProbeSet {
    let mut set = ProbeSet {
        first: numbering.first_function,
        ..ProbeSet::default()
    };
    for selected in &selection.modules {
        if selected.functions.is_empty() && selected.plt.is_empty() {
            continue;
        }
        let module = selected.module;
        let module_id = numbering.first_module + set.table.modules.len() as u32;
        set.table.modules.push(Module {
            path: module.path.display().to_string(),
            build_id: module.build_id.clone(),
        });
        let mut lists = ModuleLists::new(&module.path);
        let unwinds = module.can_unwind();
        let first = set.table.functions.len();
        // Each numbered function or stub by address, for the tail calls.
        let mut at: HashMap<u64, FuncId> = HashMap::new();
        // Functions whose entry is probed in their own code, not at calls.
        let mut own_entry: HashSet<u64> = HashSet::new();
        let mut tail_calls = Vec::new();
        for sym in &selected.functions {
            // Recursion deeper than the kernel's 64 pending returns is BPF's
            // to handle (HIJACK_BUDGET: ret sites on demand). A function only
            // ever called whose own entry would be single-stepped is cheaper
            // entered at its calls and ended where they return, both usually
            // emulated, than single-stepped and hijacked.
            let at_calls = sym.placement.path == EntryPath::SingleStep
                && !sym.call_sites.is_empty()
                && !sym.call_returns.is_empty();
            let hijack_safe = (!unwinds || sym.leaf) && !at_calls;
            let source = all.then(|| source_of(module, sym.vaddr)).flatten();
            let function = function_of(sym, module_id, source);
            let how = (sym.short, !sym.tail_calls.is_empty());
            let Some(id) = lists.number(&mut set, function, hijack_safe, how) else {
                continue;
            };
            // The same `ret` can end two functions whose bodies overlap:
            // hand-written assembly with several entry points sharing a tail,
            // or a symbol whose size spans its neighbour (aliases at one
            // address are merged before this, and so is code that identical
            // code folding gave one address). BPF matches an exit to its
            // frame by stack pointer, so the kept id still ends the right
            // frame; the exit event should name the frame's function.
            for &site in &sym.ret_sites {
                lists.ret_sites.add(site, id);
            }
            // The same exits seen where its calls return (exit_policy picks).
            for &site in &sym.call_returns {
                lists.call_returns.add(site, id);
            }
            for &site in sym.call_sites.iter().filter(|_| at_calls) {
                lists.call_sites.add(site, id);
            }
            if !sym.watch_returns.is_empty() {
                for &site in &sym.watch_returns {
                    lists.watch_returns.add(site, id);
                }
                for &(site, _) in sym.tail_calls.iter().filter(|(_, to)| to.is_some()) {
                    lists.watched_jumps.add(site, id);
                }
            }
            at.insert(sym.vaddr, id);
            if !at_calls {
                own_entry.insert(sym.vaddr);
            }
            tail_calls.extend(sym.tail_calls.iter().map(|&(site, to)| (site, to, id)));
        }
        list_epilogues(
            &mut lists,
            &set,
            &selected.functions,
            &at,
            &own_entry,
            unwinds,
        );
        for stub in &selected.plt {
            // Reached only by direct calls and jumps, a stub is entered at
            // them (PltStub's call_sites and jump_sites), in every module:
            // the kernel emulates a `call` or `jmp` and single-steps the
            // stub's `jmp *slot` (~1 µs a call instead of ~15 on these VMs).
            // Its calls end where they return. Its exit facts are its
            // jumps': a call to a library function nothing thrown passes
            // through keeps its hijacked return, exact when a function
            // tail-jumps to the stub, where no probe after a call sees the
            // return. A stub only called has no jumps to hijack for.
            let library = stub.library.as_deref();
            let hijack_safe = (stub.call_sites.is_empty() || !stub.jump_sites.is_empty())
                && (!unwinds || libc::throws_nothing(&stub.import, library));
            let stub_fn = stub_of(stub, module, module_id);
            let Some(id) = lists.number(&mut set, stub_fn, hijack_safe, (true, false)) else {
                continue;
            };
            for &site in &stub.call_returns {
                lists.call_returns.add(site, id);
            }
            for &site in &stub.call_sites {
                lists.call_sites.add(site, id);
            }
            for &site in &stub.jump_sites {
                lists.jump_sites.add(site, id);
            }
            for into in &stub.into_caller_ret {
                let Some(&caller) = at.get(&into.caller) else {
                    continue;
                };
                lists.into_caller_calls.add(into.call, id);
                lists.into_caller_returns.add(into.ret, id);
                lists.into_caller_callers.add(into.ret, caller);
            }
            at.insert(stub.vaddr, id);
        }
        for (site, target, id) in tail_calls {
            match target {
                Some(target) => {
                    if let Some(&callee) = at.get(&target) {
                        lists.tail_targets.add(site, callee);
                    }
                }
                None => {
                    lists.pointer_jumps.add(site, id);
                }
            }
        }
        lists.finish(&mut set);
        let mut clashing_source = |addr| source_of(module, addr);
        labels::tell_apart(&mut set.table.functions[first..], &mut clashing_source);
    }
    set
}

fn function_of(sym: &Symbol, module: u32, source: Option<String>) -> (Function, u64) {
    let function = Function {
        module,
        name: sym.name.clone(),
        raw_name: sym.raw_name.clone(),
        addr: sym.vaddr,
        size: sym.size,
        kind: FuncKind::Function,
        library: None,
        source,
    };
    (function, sym.placement.probe_file_offset)
}

fn stub_of(stub: &PltStub, module: &ModuleSymbols, module_id: u32) -> (Function, u64) {
    let function = Function {
        module: module_id,
        name: stub.name.clone(),
        raw_name: stub.raw_name.clone(),
        addr: stub.vaddr,
        size: stub.size,
        kind: FuncKind::Plt,
        library: select::stub_library(module, stub).map(str::to_owned),
        source: None,
    };
    (function, stub.placement.probe_file_offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Filter;
    use crate::symbols::epilogue::Epilogue;
    use crate::symbols::testutil::{ASM_EXITS, CALLS_LIBC, EXITS, Fixture};

    fn ids(ids: &[u32]) -> Vec<FuncId> {
        ids.iter().copied().map(FuncId).collect()
    }

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
        let plan = probe_set(&selection, Numbering::default());

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
        // malloc's version need names libc; lib_fn is unversioned and the
        // program needs two libraries: left for the plan to look up.
        let libraries: Vec<Option<&str>> = plan
            .table
            .functions
            .iter()
            .map(|f| f.library.as_deref())
            .collect();
        assert_eq!(libraries, [None, Some("libc.so.6"), None, None]);
        let paths: Vec<&str> = plan.table.modules.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                exe.path.to_str().unwrap_or(""),
                libs[0].path.to_str().unwrap_or("")
            ]
        );
        assert_eq!(plan.table.modules[0].build_id, exe.build_id);

        assert_eq!(plan.entries[0].path, exe.path);
        assert_eq!(plan.entries[0].ids, ids(&[0, 1, 2]));
        assert_eq!(plan.entries[1].ids, ids(&[3]));
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
        assert_eq!(plan.table.name(FuncId(3)), "lib_fn");
        assert_eq!(
            plan.table.module_of(FuncId(3)),
            libs[0].path.to_str().unwrap_or("")
        );
    }

    fn plan_for(module: &ModuleSymbols, functions: &[&str]) -> ProbeSet {
        let filter = Filter {
            functions: functions.iter().map(|f| f.to_string()).collect(),
            ..Filter::default()
        };
        let selection = select(module, &[], &Selector::new(&filter).expect("globs"));
        probe_set(&selection, Numbering::default())
    }

    #[test]
    fn a_call_returning_into_an_epilogue_chains_only_to_a_traced_callee() {
        let fx = Fixture::new();
        let exe = read_module(&fx.cc("intocall", testutil::INTOCALL, &["-O2"])).expect("reading");
        let relay = exe
            .functions
            .iter()
            .find(|s| s.name == "relay")
            .expect("relay");
        // relay's second `ret` follows its call to hop.
        let chained: Vec<&Epilogue> = relay
            .epilogues
            .iter()
            .filter(|e| !e.calls.is_empty())
            .collect();
        let [epilogue] = chained[..] else {
            panic!("{:?}", relay.epilogues)
        };
        let lists = |plan: &ProbeSet| {
            let offsets =
                |l: &[AttachList]| l.iter().flat_map(|l| l.offsets.clone()).collect::<Vec<_>>();
            (offsets(&plan.chain_calls), offsets(&plan.chain_covers))
        };
        let calls = epilogue.calls.iter().map(|c| c.0).collect();
        assert_eq!(
            lists(&plan_for(&exe, &["relay", "hop"])),
            (calls, vec![epilogue.ret])
        );
        // hop untraced: nothing would end relay's frame.
        assert_eq!(lists(&plan_for(&exe, &["relay"])), (vec![], vec![]));
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
        // Both have ret sites, and, only ever called, their exits where
        // main's calls to them return too (the exit policy picks): tail's
        // tail jump to other returns there as well.
        let sites = [&two_rets.ret_sites[..], &tail.ret_sites[..]].concat();
        assert_eq!(sites.len(), 3);
        let expected = AttachList {
            path: exe.path.clone(),
            offsets: sites,
            ids: ids(&[0, 0, 1]),
        };
        assert_eq!(plan.ret_sites, [expected]);
        assert_eq!(two_rets.call_returns.len(), 1);
        assert_eq!(tail.call_returns.len(), 1);
        let strlen = exe
            .plt
            .stubs
            .iter()
            .find(|s| s.import == "strlen")
            .expect("stub");
        let expected = AttachList {
            path: exe.path.clone(),
            offsets: [
                &two_rets.call_returns[..],
                &tail.call_returns[..],
                &strlen.call_returns[..],
            ]
            .concat(),
            ids: ids(&[0, 1, 2, 2, 2]),
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
        assert_eq!(plan.entries[0].ids, ids(&[0, 1]));
        // g's ret is f's: kept once, for f.
        assert_eq!(plan.ret_sites[0].offsets, [f.file_offset + 4]);
        assert_eq!(plan.ret_sites[0].ids, ids(&[0]));
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
        let plan = probe_set(&selection, Numbering::default());
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
        assert_eq!(
            probe_set(&Selection::default(), Numbering::default()),
            ProbeSet::default()
        );
    }
}
