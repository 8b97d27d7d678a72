//! Reads one ELF file: its functions (from .symtab, or .dynsym when the file
//! is stripped), where each one lives in the file (uprobes attach by file
//! offset, not by address) and its build-id; with its PLT stubs (plt.rs),
//! dynamic-linking facts (link.rs) and where calls end (exits.rs), everything
//! utrace needs from it, from one read of the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use object::elf::{self, FileHeader64};
use object::read::elf::{SectionHeader, Sym, SymbolTable};
use object::{LittleEndian as LE, Object};

use super::SymbolError;
use super::debugfile::{DEFAULT_DEBUG_DIR, DebugRef, Separate, find_separate};
use super::demangle::demangle;
use super::exit_sites::{self, ColdPart, ModuleCode, cold_parent};
use super::image::{Elf, Segments, check_ident, check_machine, hex};
use super::libc;
use super::link::{LinkInfo, link_info};
use super::placement::{self, EntryPath};
use super::plt::{self, PltInfo};
use super::symbol::Symbol;
use super::taken;

/// Bytes read to place a probe: endbr64 plus the longest x86 instruction.
const PLACEMENT_WINDOW: u64 = 4 + 15;

/// Everything utrace needs from one ELF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleSymbols {
    pub path: PathBuf,
    /// GNU build-id as lowercase hex.
    pub build_id: Option<String>,
    pub link: LinkInfo,
    /// Functions sorted by address, one per address.
    pub functions: Vec<Symbol>,
    pub plt: PltInfo,
    /// Where its DWARF may be (read lazily, debuginfo.rs).
    pub debug: DebugRef,
    /// What the user should know, e.g. that only exported functions could
    /// be read, or that a debug file did not match.
    pub warnings: Vec<String>,
}

impl ModuleSymbols {
    /// Whether an unwinder may walk through this module's frames: then a
    /// hijacked return address there would abort the program.
    pub fn can_unwind(&self) -> bool {
        let stubs = self.plt.stubs.iter().map(|s| s.import.as_str());
        let got = self.plt.got_only_imports.iter().map(String::as_str);
        let mut imports = stubs.chain(got);
        imports.any(libc::may_unwind) || self.link.needed.iter().any(|n| libc::unwinds_frames(n))
    }
}

/// Reads the functions, PLT stubs and link facts of the ELF file at `path`,
/// with separate debug files looked for in /usr/lib/debug.
pub fn read_module(path: &Path) -> Result<ModuleSymbols, SymbolError> {
    read_module_with(path, &[PathBuf::from(DEFAULT_DEBUG_DIR)])
}

/// [`read_module`], with separate debug files looked for in `debug_dirs`.
pub fn read_module_with(path: &Path, debug_dirs: &[PathBuf]) -> Result<ModuleSymbols, SymbolError> {
    let data = std::fs::read(path).map_err(SymbolError::io(path))?;
    parse_module(path, &data, debug_dirs)
}

/// [`read_module_with`] on bytes already in memory.
pub fn parse_module(
    path: &Path,
    data: &[u8],
    debug_dirs: &[PathBuf],
) -> Result<ModuleSymbols, SymbolError> {
    check_ident(path, data)?;
    let elf = Elf::parse(data).map_err(SymbolError::malformed(path))?;
    check_machine(path, elf.elf_header())?;
    let segments = Segments::new(elf.elf_program_headers());
    let link = link_info(data).map_err(SymbolError::malformed(path))?;
    let (mut plt, imports) =
        plt::parse_plt(&elf, data, &segments).map_err(SymbolError::malformed(path))?;
    let build_id = elf.build_id().ok().flatten().map(hex);
    let mut debug = DebugRef::of(&elf, debug_dirs);
    let code = ModuleCode {
        data,
        segs: &segments,
        sections: code_sections(&elf),
    };
    let found = functions(path, &elf, &code, build_id.as_deref(), &mut debug)?;
    let (mut functions, cold, mut warnings) = found;
    if functions.is_empty() && plt.stubs.is_empty() {
        return Err(SymbolError::Stripped(path.to_path_buf()));
    }
    if functions.is_empty() {
        warnings.push(format!(
            "{} is stripped and exports nothing: only its library calls (PLT stubs) can be traced",
            shown(path).display()
        ));
    }
    let taken = taken::taken_addresses(&elf, data);
    let called = exit_sites::scan(
        &code,
        &mut functions,
        &cold,
        &mut plt.stubs,
        &imports,
        taken.as_ref(),
    );
    if elf.elf_header().e_type.get(LE) != elf::ET_DYN {
        for stub in &mut plt.stubs {
            stub.call_sites.clear();
            stub.jump_sites.clear();
            stub.into_caller_ret.clear();
        }
    }
    plt.got_only_imports = plt::got_only_imports(&imports, &called);
    Ok(ModuleSymbols {
        path: path.to_path_buf(),
        build_id,
        link,
        functions,
        plt,
        debug,
        warnings,
    })
}

/// The executable sections outside the PLT, as [start, end) addresses.
fn code_sections(elf: &Elf<'_>) -> Vec<(u64, u64)> {
    let sections = elf.elf_section_table();
    let code = sections.iter().filter(|h| {
        let name = sections.section_name(LE, h).unwrap_or_default();
        h.sh_flags(LE).contains(elf::SHF_EXECINSTR)
            && h.sh_type(LE) != elf::SHT_NOBITS
            && !plt::STUB_SECTIONS.iter().any(|s| s.as_bytes() == name)
    });
    code.map(|h| (h.sh_addr(LE), h.sh_addr(LE) + h.sh_size(LE)))
        .collect()
}

type Functions = (Vec<Symbol>, Vec<ColdPart>, Vec<String>);

/// The functions and their `.cold` parts: from .symtab; for a stripped file
/// from its separate debug file's .symtab (the full table); else from
/// .dynsym (the exports only, said in a warning); else none.
fn functions(
    path: &Path,
    elf: &Elf<'_>,
    code: &ModuleCode<'_>,
    build_id: Option<&str>,
    debug: &mut DebugRef,
) -> Result<Functions, SymbolError> {
    let (from_symtab, cold) = collect(elf, elf.elf_symbol_table(), code.data, code.segs);
    if !from_symtab.is_empty() {
        return Ok((from_symtab, cold, Vec::new()));
    }
    let found = find_separate(path, build_id, debug);
    debug.separate = Separate::Searched(found.path.clone());
    let mut warnings = found.warnings;
    if let (Some(debug_file), Some(data)) = (&found.path, &found.data) {
        match debug_symbols(data, code) {
            Some((functions, cold)) if !functions.is_empty() => {
                return Ok((functions, cold, warnings));
            }
            _ => warnings.push(format!(
                "{} has no function symbols: not using it",
                debug_file.display()
            )),
        }
    }
    let (from_dynsym, cold) = collect(elf, elf.elf_dynamic_symbol_table(), code.data, code.segs);
    if !from_dynsym.is_empty() {
        warnings.push(format!(
            "{} is stripped: only its exported functions (.dynsym) can be traced",
            shown(path).display()
        ));
    }
    Ok((from_dynsym, cold, warnings))
}

/// The functions a separate debug file's .symtab names; their code (for
/// probe placement and exits) is read from the binary's own bytes.
fn debug_symbols(data: &[u8], code: &ModuleCode<'_>) -> Option<(Vec<Symbol>, Vec<ColdPart>)> {
    let elf = Elf::parse(data).ok()?;
    Some(collect(&elf, elf.elf_symbol_table(), code.data, code.segs))
}

/// The program a path names, for messages: a traced child that exec'd is
/// read through /proc/PID/exe, which tells the user nothing.
fn shown(path: &Path) -> PathBuf {
    let is_proc_exe = path.starts_with("/proc") && path.ends_with("exe");
    match is_proc_exe.then(|| std::fs::read_link(path).ok()).flatten() {
        Some(target) => target,
        None => path.to_path_buf(),
    }
}

/// One function symbol before aliases are merged.
struct Candidate<'d> {
    raw: &'d str,
    vaddr: u64,
    size: u64,
    binding: u8,
    ifunc: bool,
}

impl Candidate<'_> {
    /// Which alias names an address: global, then not `_`-prefixed, then
    /// shortest, then alphabetical, so the choice is deterministic.
    fn preference(&self) -> (u8, bool, usize, &str) {
        (
            self.binding,
            self.raw.starts_with('_'),
            self.raw.len(),
            self.raw,
        )
    }
}

fn collect(
    elf: &Elf<'_>,
    table: &SymbolTable<'_, FileHeader64<LE>>,
    data: &[u8],
    segs: &Segments,
) -> (Vec<Symbol>, Vec<ColdPart>) {
    let (candidates, cold) = candidates(elf, table);
    let mut by_addr: BTreeMap<u64, Vec<Candidate<'_>>> = BTreeMap::new();
    for candidate in candidates {
        by_addr.entry(candidate.vaddr).or_default().push(candidate);
    }
    let functions = by_addr
        .into_values()
        .filter_map(|group| merge_aliases(group, data, segs))
        .collect();
    (functions, cold)
}

fn candidates<'d>(
    elf: &Elf<'d>,
    table: &SymbolTable<'d, FileHeader64<LE>>,
) -> (Vec<Candidate<'d>>, Vec<ColdPart>) {
    let sections = elf.elf_section_table();
    let mut out = Vec::new();
    let mut cold = Vec::new();
    for (index, sym) in table.enumerate() {
        let ifunc = sym.st_type() == elf::STT_GNU_IFUNC;
        if sym.st_type() != elf::STT_FUNC && !ifunc {
            continue;
        }
        let Ok(Some(section)) = table.symbol_section(LE, sym, index) else {
            continue; // undefined or absolute
        };
        let executable = sections
            .section(section)
            .is_ok_and(|s| s.sh_flags(LE).contains(elf::SHF_EXECINSTR));
        let name = table
            .symbol_name(LE, sym)
            .ok()
            .and_then(|n| std::str::from_utf8(n).ok());
        let Some(raw) = name.filter(|n| executable && !n.is_empty()) else {
            continue;
        };
        // A `.cold` fragment is entered by a jump from its parent (or by the
        // unwinder), never called: an entry probe there would report calls
        // that never happened. Its exits are its parent's.
        if let Some(parent) = cold_parent(raw) {
            cold.push(ColdPart {
                parent: parent.to_string(),
                vaddr: sym.st_value(LE),
                size: sym.st_size(LE),
            });
            continue;
        }
        out.push(Candidate {
            raw,
            vaddr: sym.st_value(LE),
            size: sym.st_size(LE),
            binding: binding_rank(sym.st_bind()),
            ifunc,
        });
    }
    (out, cold)
}

fn binding_rank(bind: elf::SymbolBind) -> u8 {
    match bind {
        elf::STB_GLOBAL => 0,
        elf::STB_LOCAL => 2,
        _ => 1, // weak, unique
    }
}

/// One traced function for the symbols at one address.
fn merge_aliases(mut group: Vec<Candidate<'_>>, data: &[u8], segs: &Segments) -> Option<Symbol> {
    group.sort_by(|a, b| a.preference().cmp(&b.preference()));
    let size = group.iter().map(|c| c.size).max().unwrap_or(0);
    let first = group.first()?;
    let file_offset = segs.file_offset(first.vaddr)?;
    let window = if size == 0 {
        PLACEMENT_WINDOW
    } else {
        size.min(PLACEMENT_WINDOW)
    };
    let code = segs.bytes(data, first.vaddr, window).unwrap_or_default();
    let mut placement = placement::place(code, first.vaddr, file_offset);
    let mut refused = None;
    let body = |size| segs.bytes(data, first.vaddr, size).unwrap_or_default();
    if !placement.probeable {
        match placement::place_past_refused(body(size.max(window)), first.vaddr, file_offset) {
            Ok(moved) => placement = moved,
            Err(why) => refused = Some(why),
        }
    } else if placement.path == EntryPath::SingleStep && size > 0 {
        placement = placement::move_to_emulated(placement, body(size), first.vaddr, file_offset);
    }
    let mut aliases: Vec<String> = group[1..].iter().map(|c| c.raw.to_string()).collect();
    aliases.dedup();
    Some(Symbol {
        name: demangle(first.raw),
        raw_name: first.raw.to_string(),
        aliases,
        vaddr: first.vaddr,
        size,
        file_offset,
        global: first.binding < 2,
        // The resolver's own FUNC symbol shares the IFUNC's address.
        ifunc: group.iter().any(|c| c.ifunc),
        placement,
        refused,
        ret_sites: Vec::new(),
        epilogues: Vec::new(),
        call_returns: Vec::new(),
        value_returns: Vec::new(),
        call_sites: Vec::new(),
        watch_returns: Vec::new(),
        tail_calls: Vec::new(),
        leaf: false,
        short: false,
    })
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::symbols::testutil::{self, CALLS_LIBC, COLD_AND_ALIASES, CPP, Fixture, RUST};

    fn find<'a>(module: &'a ModuleSymbols, name: &str) -> &'a Symbol {
        module
            .functions
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} among {} names", module.functions.len()))
    }

    fn names(module: &ModuleSymbols) -> Vec<&str> {
        module.functions.iter().map(|s| s.name.as_str()).collect()
    }

    /// The file offset of every function holds the bytes the section
    /// headers say are at its address.
    fn assert_offsets_match_sections(path: &Path, module: &ModuleSymbols) {
        for sym in module.functions.iter().filter(|s| s.size > 0) {
            let len = sym.size.min(16) as usize;
            assert_eq!(
                testutil::file_bytes(path, sym.file_offset, len),
                testutil::section_bytes(path, sym.vaddr, len),
                "{}",
                sym.name
            );
        }
    }

    fn readelf_build_id(path: &Path) -> Option<String> {
        let notes = testutil::run(Command::new("readelf").arg("-n").arg(path));
        let line = notes.lines().find(|l| l.contains("Build ID:"))?;
        Some(line.split("Build ID:").nth(1)?.trim().to_string())
    }

    #[test]
    fn reads_pie_executable() {
        let fx = Fixture::new();
        let exe = fx.cc("pie", CALLS_LIBC, &["-O0", "-pie", "-fPIE"]);
        let module = read_module(&exe).expect("reading a PIE");
        assert!(module.link.is_pie && module.link.is_executable);
        assert_eq!(module.link.needed, ["libc.so.6"]);
        assert!(module.warnings.is_empty());
        assert_eq!(module.build_id, readelf_build_id(&exe));
        assert!(module.build_id.as_ref().is_some_and(|id| id.len() == 40));
        let add = find(&module, "add");
        assert!(add.global && add.size > 0 && add.aliases.is_empty());
        find(&module, "main");
        assert_offsets_match_sections(&exe, &module);
    }

    #[test]
    fn reads_non_pie_executable() {
        let fx = Fixture::new();
        let exe = fx.cc("nopie", CALLS_LIBC, &["-O0", "-no-pie", "-fno-pie"]);
        let module = read_module(&exe).expect("reading a non-PIE");
        assert!(!module.link.is_pie && module.link.is_executable);
        let add = find(&module, "add");
        assert!(add.vaddr >= 0x400000 && add.file_offset < add.vaddr);
        assert_offsets_match_sections(&exe, &module);
    }

    #[test]
    fn skips_cold_fragments_and_keeps_clones() {
        let fx = Fixture::new();
        let exe = fx.cc("cold", COLD_AND_ALIASES, &["-O2"]);
        let raw = testutil::symtab_names(&exe);
        assert!(
            raw.iter().any(|n| n == "check.cold"),
            "fixture lost check.cold: {raw:?}"
        );
        assert!(
            raw.iter().any(|n| n == "scale.constprop.0"),
            "fixture lost the clone: {raw:?}"
        );
        let module = read_module(&exe).expect("reading");
        assert!(
            !names(&module).iter().any(|n| n.contains(".cold")),
            "{:?}",
            names(&module)
        );
        let clone = find(&module, "scale.constprop.0");
        assert!(!clone.global);
        find(&module, "check");
    }

    #[test]
    fn merges_aliases_into_one_function() {
        let fx = Fixture::new();
        let exe = fx.cc("alias", COLD_AND_ALIASES, &["-O2"]);
        let module = read_module(&exe).expect("reading");
        let chosen = find(&module, "public_name");
        assert_eq!(chosen.aliases, ["_hidden_impl", "pn"]);
        let at_addr = module
            .functions
            .iter()
            .filter(|s| s.vaddr == chosen.vaddr)
            .count();
        assert_eq!(at_addr, 1);
    }

    #[test]
    fn demangles_cpp_names_with_parameters() {
        let fx = Fixture::new();
        let exe = fx.cxx("shapes", CPP, &["-O0"]);
        let module = read_module(&exe).expect("reading");
        let all = names(&module);
        for expected in [
            "ns::Circle::area() const",
            "ns::Circle::Circle(double)",
            "ns::Shape::~Shape()",
            "add(int, int)",
            "add(double, double)",
            "int ns::maxof<int>(int, int)",
            "main",
        ] {
            assert!(all.contains(&expected), "{expected} missing from {all:?}");
        }
        assert_eq!(find(&module, "add(int, int)").raw_name, "_Z3addii");
    }

    #[test]
    fn demangles_rust_legacy_and_v0() {
        let fx = Fixture::new();
        let base = ["--crate-name", "demo", "-C", "opt-level=0"];
        let legacy = fx.rustc("legacy", RUST, &base);
        let v0_flags = [&base[..], &["-C", "symbol-mangling-version=v0"]].concat();
        let v0 = fx.rustc("v0", RUST, &v0_flags);
        for (exe, prefix, method) in [
            (legacy, "_ZN", "demo::inner::S::go"),
            (v0, "_RNv", "<demo::inner::S>::go"),
        ] {
            let module = read_module(&exe).expect("reading");
            let greet = find(&module, "demo::greet");
            assert!(greet.raw_name.starts_with(prefix), "{}", greet.raw_name);
            find(&module, method);
        }
    }

    #[test]
    fn stripped_executable_without_exports_keeps_its_plt_stubs() {
        let fx = Fixture::new();
        let exe = fx.cc("full", CALLS_LIBC, &["-O0"]);
        let stripped = fx.strip(&exe, "stripped");
        let module = read_module_with(&stripped, &[]).expect("its PLT stubs remain");
        assert!(module.functions.is_empty());
        let stubs: Vec<&str> = module.plt.stubs.iter().map(|s| s.import.as_str()).collect();
        assert!(
            stubs.contains(&"malloc") && stubs.contains(&"printf"),
            "{stubs:?}"
        );
        let warning = format!(
            "{} is stripped and exports nothing: only its library calls (PLT stubs) can be traced",
            stripped.display()
        );
        assert_eq!(module.warnings, [warning]);
    }

    #[test]
    fn a_program_read_through_proc_pid_exe_is_named_by_its_path() {
        let fx = Fixture::new();
        let src = "#include <unistd.h>\nint main(void) { sleep(30); return 0; }";
        let exe = fx.cc("sleeper", src, &["-O2", "-s"]);
        let mut child = Command::new(&exe).spawn().expect("running the sleeper");
        let proc_exe = PathBuf::from(format!("/proc/{}/exe", child.id()));
        let module = read_module_with(&proc_exe, &[]);
        let _ = child.kill();
        let _ = child.wait();
        let warning = format!(
            "{} is stripped and exports nothing: only its library calls (PLT stubs) can be traced",
            std::fs::canonicalize(&exe).expect("real path").display()
        );
        assert_eq!(module.expect("its PLT stubs remain").warnings, [warning]);
    }

    #[test]
    fn nothing_to_trace_at_all_is_an_error() {
        let fx = Fixture::new();
        let src = "__attribute__((visibility(\"hidden\"))) int inner(int x) { return x + 1; }";
        let lib = fx.cc("libnone.so", src, &["-shared", "-fPIC", "-nostdlib"]);
        let stripped = fx.strip(&lib, "libnone-stripped.so");
        let err = read_module_with(&stripped, &[]).expect_err("nothing to trace");
        assert!(
            matches!(err, SymbolError::Stripped(ref p) if p == &stripped),
            "{err:?}"
        );
    }

    #[test]
    fn stripped_binary_reads_the_full_table_of_its_debug_file() {
        let fx = Fixture::new();
        let src = format!(
            "static __attribute__((noinline)) int hidden(int x) {{ return x * 3; }}\n{CALLS_LIBC}\nint use(int x) {{ return hidden(x); }}"
        );
        let exe = fx.cc("prog", &src, &["-O0", "-g"]);
        let split = fx.split_debug(&exe, "prog.debug");
        // Found by .gnu_debuglink beside it: the local function is back.
        let module = read_module_with(&split.stripped, &[]).expect("reading");
        assert!(names(&module).contains(&"hidden"), "{:?}", names(&module));
        assert!(module.warnings.is_empty(), "{:?}", module.warnings);
        let full = read_module(&exe).expect("reading");
        let offsets = |m: &ModuleSymbols| -> Vec<(String, u64, u64)> {
            let f = m.functions.iter();
            f.map(|s| (s.name.clone(), s.file_offset, s.placement.probe_file_offset))
                .collect()
        };
        assert_eq!(offsets(&module), offsets(&full));
    }

    #[test]
    fn stripped_library_falls_back_to_dynsym() {
        let fx = Fixture::new();
        let src = "static int helper(int x) { return x * 2; }\nint exported(int x) { return helper(x) + 1; }";
        let lib = fx.cc("libs.so", src, &["-O0", "-shared", "-fPIC"]);
        let stripped = fx.strip(&lib, "libs-stripped.so");
        let module = read_module(&stripped).expect("exports remain");
        assert_eq!(names(&module), ["exported"]);
        let warning = format!(
            "{} is stripped: only its exported functions (.dynsym) can be traced",
            stripped.display()
        );
        assert_eq!(module.warnings, [warning]);
        assert!(names(&read_module(&lib).expect("reading")).contains(&"helper"));
    }

    #[test]
    fn not_elf_and_missing_files_are_errors() {
        let fx = Fixture::new();
        let text = fx.path("notes.txt");
        std::fs::write(&text, "just text\n").expect("writing");
        assert!(matches!(read_module(&text), Err(SymbolError::NotElf(p)) if p == text));
        let empty = fx.path("empty");
        std::fs::write(&empty, "").expect("writing");
        assert!(matches!(read_module(&empty), Err(SymbolError::NotElf(_))));
        let missing = fx.path("missing");
        assert!(matches!(read_module(&missing), Err(SymbolError::Io { .. })));
        assert!(matches!(
            crate::symbols::link::read_link_info(&missing),
            Err(SymbolError::Io { .. })
        ));
    }

    #[test]
    fn other_architectures_are_refused() {
        let fx = Fixture::new();
        let exe = fx.cc("native", CALLS_LIBC, &["-O0"]);
        let mut data = std::fs::read(&exe).expect("reading");
        data[18..20].copy_from_slice(&183u16.to_le_bytes()); // e_machine = EM_AARCH64
        let err = parse_module(&exe, &data, &[]).expect_err("aarch64");
        assert_eq!(
            err.to_string(),
            format!(
                "{} is an ELF file for aarch64: utrace traces x86-64 code only",
                exe.display()
            )
        );
        data[4] = 1; // ELFCLASS32
        let err = parse_module(&exe, &data, &[]).expect_err("32-bit");
        assert!(
            matches!(err, SymbolError::UnsupportedArch { ref what, .. } if what == "a 32-bit ELF file")
        );
    }
}
