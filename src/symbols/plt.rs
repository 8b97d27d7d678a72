//! PLT stubs: the trampolines through which a module calls shared-library
//! functions. A probe on `malloc@plt` sees every call this module makes to
//! malloc without probing libc itself.
//!
//! Stubs are matched to names by what their code does, never by position:
//! each stub's `jmp *slot(%rip)` is decoded to find the GOT slot it reads, and
//! the dynamic relocation of that slot (JUMP_SLOT in .rela.plt, GLOB_DAT for
//! .plt.got) names the import. One rule covers lazy .plt, the IBT .plt.sec,
//! MPX .plt.bnd and .plt.got layouts. Code built with -fno-plt calls
//! `*slot(%rip)` directly with no stub to probe; that is detected and
//! reported, since those calls stay invisible.

use std::collections::{BTreeMap, BTreeSet};

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic};
use object::elf;
use object::read::elf::{Rela, SectionHeader};
use object::{LittleEndian as LE, SymbolIndex};

use super::demangle::demangle;
use super::image::{Elf, Segments};
use super::libc;
use super::placement::{self, Placement};

/// Sections that hold stubs.
pub(crate) const STUB_SECTIONS: [&str; 4] = [".plt", ".plt.sec", ".plt.bnd", ".plt.got"];

/// x86-64 PLT entries are at most 16 bytes; the last stub of a section and
/// a stub followed by something else are cut there.
const MAX_STUB_SIZE: u64 = 16;

/// One PLT stub of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PltStub {
    /// `<demangled import>@plt`, as users see it.
    pub name: String,
    /// `<import>@plt`.
    pub raw_name: String,
    /// The imported symbol the stub jumps to.
    pub import: String,
    pub vaddr: u64,
    pub size: u64,
    pub file_offset: u64,
    /// Address of the GOT slot the stub jumps through.
    pub got_slot: u64,
    /// The file the import binds to, from its version need (`malloc@GLIBC_2.2.5`
    /// → `libc.so.6`); None for unversioned imports.
    pub library: Option<String>,
    pub placement: Placement,
    /// File offsets of the instructions right after each direct `call` to
    /// this stub in the module's code (exits.rs), sorted: where the library
    /// function returns to, with the stack pointer one slot above the stub's
    /// entry value. Moved onto the first emulated instruction ahead, past
    /// writes to the return value's registers: [`value_returns`] holds the
    /// sites for `-R`, where those moved less.
    ///
    /// [`value_returns`]: PltStub::value_returns
    pub call_returns: Vec<u64>,
    /// (call return, the site that still sees the return value) for each of
    /// `call_returns` that moved past a write to %rax or %rdx.
    pub value_returns: Vec<(u64, u64)>,
    /// File offsets of each direct `call` to this stub, when those and
    /// [`jump_sites`] are its only ways in (exits.rs): every jump to it is
    /// a direct unconditional one, and the module is position independent
    /// (a non-PIE executable's pointers to an import hold its stub's
    /// address). Empty otherwise. Where the stub's exits are seen at
    /// `call_returns`, its entry is probed here rather than at its
    /// `jmp *slot`: the kernel emulates a `call`, and single-steps the
    /// indirect jump.
    ///
    /// [`jump_sites`]: PltStub::jump_sites
    pub call_sites: Vec<u64>,
    /// File offsets of each direct `jmp` to this stub (a tail call into the
    /// library), under the same condition. Entered there, a call is entered
    /// with the stack as the stub's own entry sees it, return address on
    /// top: the kernel emulates the `jmp`, and hijacks that return address
    /// as well as at the stub.
    pub jump_sites: Vec<u64>,
    /// The calls of `call_sites` whose return would be single-stepped and
    /// that run on in a straight line into their caller's `ret` (an
    /// epilogue: `add $8,%rsp; pop %rbx; ret`). Where that caller is traced,
    /// its exit ends the stub's call too, a few instructions late, instead
    /// of a second single-step.
    pub into_caller_ret: Vec<IntoRet>,
}

/// One of [`PltStub::into_caller_ret`], by file offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntoRet {
    /// The call.
    pub call: u64,
    /// Where the call returns (its call-return site, left unprobed).
    pub ret: u64,
    /// Link-time address of the function that makes the call.
    pub caller: u64,
}

/// The PLT stubs of a module, and whether some imports bypass them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PltInfo {
    /// Sorted by address.
    pub stubs: Vec<PltStub>,
    /// Imported functions called straight through the GOT (-fno-plt), sorted:
    /// those calls have no stub, so tracing this module cannot show them.
    pub got_only_imports: Vec<String>,
}

impl PltInfo {
    /// Whether some library calls bypass the PLT (see `got_only_imports`).
    pub fn bypassed(&self) -> bool {
        !self.got_only_imports.is_empty()
    }
}

/// What a dynamic relocation of a GOT slot says about the slot.
pub(crate) struct Import {
    name: String,
    library: Option<String>,
    /// GLOB_DAT of a function: what -fno-plt code calls through.
    got_function: bool,
}

/// GOT slot → the import its dynamic relocation names.
pub(crate) type Imports = BTreeMap<u64, Import>;

/// The stubs of a module, and its imports for [`got_only_imports`] once the
/// code has been scanned; `got_only_imports` is left empty.
pub(crate) fn parse_plt(
    elf: &Elf<'_>,
    data: &[u8],
    segs: &Segments,
) -> object::read::Result<(PltInfo, Imports)> {
    let sections = elf.elf_section_table();
    let imports = imports(elf, data)?;
    let mut stubs: Vec<PltStub> = Vec::new();
    for name in STUB_SECTIONS {
        let Some((_, header)) = sections.section_by_name(LE, name.as_bytes()) else {
            continue;
        };
        let code = header.data(LE, data)?;
        let found = stub_jumps(code, header.sh_addr(LE));
        stubs.extend(
            found
                .iter()
                .filter_map(|jump| make_stub(jump, &imports, data, segs)),
        );
    }
    stubs.sort_by_key(|s| s.vaddr);
    let mut seen = BTreeSet::new();
    stubs.retain(|s| seen.insert(s.got_slot));
    let info = PltInfo {
        stubs,
        ..PltInfo::default()
    };
    Ok((info, imports))
}

/// GOT slot → import, from the relocation sections of the dynamic symbols.
fn imports(elf: &Elf<'_>, data: &[u8]) -> object::read::Result<Imports> {
    let sections = elf.elf_section_table();
    let dynsym = elf.elf_dynamic_symbol_table();
    let versions = sections.versions(LE, data)?;
    let mut out = BTreeMap::new();
    for header in sections.iter() {
        if header.sh_type(LE) != elf::SHT_RELA || header.link(LE) != dynsym.section() {
            continue;
        }
        let relas: &[elf::Rela64<LE>] = header.data_as_array(LE, data)?;
        for rela in relas {
            let kind = rela.r_type(LE, false);
            if kind != elf::R_X86_64_JUMP_SLOT && kind != elf::R_X86_64_GLOB_DAT {
                continue;
            }
            let index = SymbolIndex(rela.r_sym(LE, false) as usize);
            let sym = dynsym.symbol(index)?;
            let library = versions
                .as_ref()
                .and_then(|v| v.version(v.version_index(LE, index).index()).ok().flatten())
                .and_then(|v| v.file())
                .map(|f| String::from_utf8_lossy(f).into_owned());
            let import = Import {
                name: String::from_utf8_lossy(dynsym.symbol_name(LE, sym)?).into_owned(),
                library,
                got_function: kind == elf::R_X86_64_GLOB_DAT
                    && sym.st_type() == elf::STT_FUNC
                    && sym.st_bind() != elf::STB_WEAK,
            };
            out.insert(rela.r_offset(LE), import);
        }
    }
    Ok(out)
}

/// A `jmp *slot(%rip)` in a PLT section and the entry it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StubJump {
    entry: u64,
    got_slot: u64,
    /// Where the next stub or the section's end is.
    limit: u64,
}

/// Every `jmp *slot(%rip)` in `code` at `addr`, with the start of its entry:
/// the first instruction after the previous entry's final jump and any
/// padding (so an `endbr64` before the jump belongs to the stub).
fn stub_jumps(code: &[u8], addr: u64) -> Vec<StubJump> {
    let mut found: Vec<StubJump> = Vec::new();
    let mut entry: Option<u64> = None;
    for insn in Decoder::with_ip(64, code, addr, DecoderOptions::NONE) {
        let padding = matches!(insn.mnemonic(), Mnemonic::Nop | Mnemonic::Int3);
        if insn.is_invalid() || (entry.is_none() && padding) {
            entry = None;
            continue;
        }
        let start = *entry.get_or_insert(insn.ip());
        if let Some(slot) = rip_indirect(&insn, Code::Jmp_rm64) {
            found.push(StubJump {
                entry: start,
                got_slot: slot,
                limit: addr + code.len() as u64,
            });
        }
        if insn.mnemonic() == Mnemonic::Jmp {
            entry = None;
        }
    }
    for i in 1..found.len() {
        found[i - 1].limit = found[i].entry;
    }
    found
}

/// The memory slot of a `jmp`/`call *slot(%rip)`.
pub(crate) fn rip_indirect(insn: &Instruction, code: Code) -> Option<u64> {
    (insn.code() == code && insn.is_ip_rel_memory_operand()).then(|| insn.ip_rel_memory_address())
}

fn make_stub(jump: &StubJump, imports: &Imports, data: &[u8], segs: &Segments) -> Option<PltStub> {
    let import = imports.get(&jump.got_slot)?;
    let vaddr = jump.entry;
    let size = (jump.limit - vaddr).min(MAX_STUB_SIZE);
    let file_offset = segs.file_offset(vaddr)?;
    let code = segs.bytes(data, vaddr, size)?;
    Some(PltStub {
        name: format!("{}@plt", demangle(&import.name)),
        raw_name: format!("{}@plt", import.name),
        import: import.name.clone(),
        vaddr,
        size,
        file_offset,
        got_slot: jump.got_slot,
        library: import.library.clone(),
        placement: placement::place(code, vaddr, file_offset),
        call_returns: Vec::new(),
        value_returns: Vec::new(),
        call_sites: Vec::new(),
        jump_sites: Vec::new(),
        into_caller_ret: Vec::new(),
    })
}

/// Imported functions that code outside the PLT calls or tail-calls through
/// the GOT (`call *slot(%rip)`, `jmp *slot(%rip)`; exits.rs collects the
/// slots while it decodes): the -fno-plt signature. Taking a function's
/// address also goes through the GOT but is a `mov`, so it does not count.
pub(crate) fn got_only_imports(imports: &Imports, called_slots: &BTreeSet<u64>) -> Vec<String> {
    let names: BTreeSet<&str> = called_slots
        .iter()
        .filter_map(|slot| imports.get(slot))
        .filter(|i| i.got_function && !libc::is_startup_import(&i.name))
        .map(|i| i.name.as_str())
        .collect();
    names.into_iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use object::{Object, ObjectSection};

    use super::*;
    use crate::symbols::elf::{ModuleSymbols, read_module};
    use crate::symbols::placement::EntryPath;
    use crate::symbols::testutil::{self, CALLS_LIBC, Fixture};

    const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
    const JMP_RIP: [u8; 2] = [0xff, 0x25];

    fn stub<'a>(module: &'a ModuleSymbols, import: &str) -> &'a PltStub {
        let stubs = &module.plt.stubs;
        stubs
            .iter()
            .find(|s| s.import == import)
            .unwrap_or_else(|| panic!("no {import}@plt in {stubs:#?}"))
    }

    fn section_of(path: &Path, vaddr: u64) -> String {
        let data = std::fs::read(path).expect("reading");
        let file = object::File::parse(&*data).expect("parsing");
        let section = file
            .sections()
            .find(|s| s.address() <= vaddr && vaddr < s.address() + s.size());
        section
            .and_then(|s| s.name().ok().map(str::to_string))
            .unwrap_or_default()
    }

    /// Our stubs are exactly the `<name@plt>` labels objdump prints.
    fn assert_matches_objdump(path: &Path, module: &ModuleSymbols) {
        let mut theirs: Vec<(String, u64)> = testutil::objdump_labels(path)
            .into_iter()
            .filter(|(name, _)| name.ends_with("@plt"))
            .collect();
        theirs.sort();
        let mut ours: Vec<(String, u64)> = module
            .plt
            .stubs
            .iter()
            .map(|s| (s.raw_name.clone(), s.vaddr))
            .collect();
        ours.sort();
        assert_eq!(ours, theirs);
    }

    fn assert_libc_stubs(path: &Path, module: &ModuleSymbols, first_bytes: &[u8]) {
        for import in ["malloc", "free", "strlen", "printf"] {
            let s = stub(module, import);
            assert_eq!(s.name, format!("{import}@plt"));
            assert_eq!(s.library.as_deref(), Some("libc.so.6"), "{import}");
            assert_eq!(s.size, 16, "{import}");
            let bytes = testutil::file_bytes(path, s.file_offset, first_bytes.len());
            assert_eq!(bytes, first_bytes, "{import}");
            assert_eq!(
                testutil::section_bytes(path, s.vaddr, 16),
                testutil::file_bytes(path, s.file_offset, 16)
            );
        }
        assert!(!module.plt.bypassed(), "{:?}", module.plt.got_only_imports);
    }

    #[test]
    fn finds_lazy_plt_stubs_in_pie() {
        let fx = Fixture::new();
        let exe = fx.cc("pie", CALLS_LIBC, &["-O0", "-pie", "-fPIE"]);
        let module = read_module(&exe).expect("reading");
        assert_libc_stubs(&exe, &module, &JMP_RIP);
        assert_matches_objdump(&exe, &module);
        assert_eq!(section_of(&exe, stub(&module, "malloc").vaddr), ".plt");
        // Taken by address in crtbegin and called through its GOT slot: .plt.got.
        let finalize = stub(&module, "__cxa_finalize");
        assert_eq!(section_of(&exe, finalize.vaddr), ".plt.got");
        assert_eq!(finalize.size, 8);
        let malloc = stub(&module, "malloc");
        assert_eq!(malloc.placement.probe_vaddr, malloc.vaddr);
        assert_eq!(malloc.placement.path, EntryPath::SingleStep);
    }

    #[test]
    fn finds_lazy_plt_stubs_in_non_pie() {
        let fx = Fixture::new();
        let exe = fx.cc("nopie", CALLS_LIBC, &["-O0", "-no-pie", "-fno-pie"]);
        let module = read_module(&exe).expect("reading");
        assert_libc_stubs(&exe, &module, &JMP_RIP);
        assert_matches_objdump(&exe, &module);
    }

    #[test]
    fn finds_ibt_stubs_in_plt_sec() {
        let fx = Fixture::new();
        // Debian's crt files lack the IBT property, so ld needs -z ibtplt to
        // emit the .plt.sec layout that fully-CET distributions get by default.
        let flags = ["-O0", "-fcf-protection=full", "-Wl,-z,ibtplt"];
        let exe = fx.cc("cet", CALLS_LIBC, &flags);
        let module = read_module(&exe).expect("reading");
        assert_libc_stubs(&exe, &module, &ENDBR64);
        assert_matches_objdump(&exe, &module);
        let malloc = stub(&module, "malloc");
        assert_eq!(section_of(&exe, malloc.vaddr), ".plt.sec");
        assert_eq!(malloc.placement.probe_vaddr, malloc.vaddr + 4);
        assert_eq!(malloc.placement.probe_file_offset, malloc.file_offset + 4);
        let probed = testutil::file_bytes(&exe, malloc.placement.probe_file_offset, 2);
        assert_eq!(probed, JMP_RIP);
    }

    #[test]
    fn detects_calls_through_the_got() {
        let fx = Fixture::new();
        let exe = fx.cc("noplt", CALLS_LIBC, &["-O0", "-fno-plt"]);
        let module = read_module(&exe).expect("reading");
        assert!(module.plt.bypassed());
        for import in ["free", "malloc", "printf", "strcpy", "strlen"] {
            assert!(
                module.plt.got_only_imports.iter().any(|n| n == import),
                "{import}: {:?}",
                module.plt.got_only_imports
            );
            assert!(!module.plt.stubs.iter().any(|s| s.import == import));
        }
        assert!(
            !module
                .plt
                .got_only_imports
                .iter()
                .any(|n| n == "__libc_start_main")
        );
    }

    #[test]
    fn taking_an_import_address_is_not_no_plt() {
        let fx = Fixture::new();
        let src = r#"
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    qsort(argv, argc, sizeof *argv, (int (*)(const void *, const void *))strcmp);
    return 0;
}
"#;
        let exe = fx.cc("addr", src, &["-O0", "-pie", "-fPIE"]);
        let module = read_module(&exe).expect("reading");
        assert!(!module.plt.bypassed(), "{:?}", module.plt.got_only_imports);
        stub(&module, "qsort");
    }

    #[test]
    fn unversioned_imports_have_no_library() {
        let fx = Fixture::new();
        fx.cc(
            "libdemo.so",
            "int lib_fn(int x) { return x + 1; }",
            &["-shared", "-fPIC"],
        );
        let dir = fx.dir.path().display().to_string();
        let src = "int lib_fn(int);\nint main(int argc, char **argv) { (void)argv; return lib_fn(argc); }";
        let exe = fx.cc("uses", src, &["-O0", "-L", &dir, "-ldemo"]);
        let module = read_module(&exe).expect("reading");
        assert_eq!(stub(&module, "lib_fn").library, None);
    }

    #[test]
    fn stub_jumps_follow_entry_boundaries() {
        // PLT0 (push; jmp *GOT+16; nopl), then a lazy entry (jmp *slot; push; jmp PLT0).
        let mut plt = vec![
            0xff, 0x35, 0, 0, 0, 0, 0xff, 0x25, 0, 0, 0, 0, 0x0f, 0x1f, 0x40, 0x00,
        ];
        plt.extend([
            0xff, 0x25, 0x10, 0, 0, 0, 0x68, 0, 0, 0, 0, 0xe9, 0xe0, 0xff, 0xff, 0xff,
        ]);
        let jumps = stub_jumps(&plt, 0x1000);
        let slots: Vec<(u64, u64, u64)> = jumps
            .iter()
            .map(|j| (j.entry, j.got_slot, j.limit))
            .collect();
        assert_eq!(slots, [(0x1000, 0x100c, 0x1010), (0x1010, 0x1026, 0x1020)]);
    }
}
