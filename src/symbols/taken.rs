//! The addresses a position-independent module hands out other than through
//! a direct `call`: what its dynamic relocations, exports, entry point and
//! init/fini point at. A function at none of them (and named by no
//! RIP-relative operand or jump in its code, which exit_sites checks) is
//! reached only by the direct calls the scan sees, so its returns all land
//! where those calls return.
//!
//! Only ET_DYN files answer: in one, every pointer stored in data needs a
//! dynamic relocation, while a fixed-address executable keeps absolute
//! pointers in data with no trace of them.

use std::collections::HashSet;

use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{Dyn, FileHeader, Rela, SectionHeader, Sym};

use super::image::Elf;

/// Every address of `elf` (the bytes `data`) that its data, exports and
/// dynamic table refer to; `None` when that cannot be known: not ET_DYN,
/// or relocations of a kind not read here (REL, packed RELR), whose
/// addends are the relocated words themselves.
pub(crate) fn taken_addresses(elf: &Elf<'_>, data: &[u8]) -> Option<HashSet<u64>> {
    let header = elf.elf_header();
    if header.e_type(LE) != elf::ET_DYN {
        return None;
    }
    let mut taken = HashSet::from([header.e_entry(LE)]);
    let sections = elf.elf_section_table();
    for section in sections.iter() {
        match section.sh_type(LE) {
            elf::SHT_REL | elf::SHT_RELR => return None,
            elf::SHT_RELA => {
                let relas: &[elf::Rela64<LE>] = section.data_as_array(LE, data).ok()?;
                let symbols = sections
                    .symbol_table_by_index(LE, data, section.link(LE))
                    .ok();
                for rela in relas {
                    let index = rela.r_sym(LE, false);
                    if index == 0 {
                        // RELATIVE and IRELATIVE: the address is the addend.
                        taken.insert(rela.r_addend(LE) as u64);
                        continue;
                    }
                    let symbols = symbols.as_ref()?;
                    let sym = symbols.symbol(object::SymbolIndex(index as usize)).ok()?;
                    if !sym.is_undefined(LE) {
                        taken.insert(sym.st_value(LE).wrapping_add(rela.r_addend(LE) as u64));
                    }
                }
            }
            elf::SHT_DYNAMIC => {
                let entries: &[elf::Dyn64<LE>] = section.data_as_array(LE, data).ok()?;
                for entry in entries {
                    if [elf::DT_INIT, elf::DT_FINI].contains(&entry.d_tag(LE)) {
                        taken.insert(entry.d_val(LE));
                    }
                }
            }
            _ => {}
        }
    }
    let exports = elf.elf_dynamic_symbol_table();
    for sym in exports.iter().filter(|s| !s.is_undefined(LE)) {
        taken.insert(sym.st_value(LE));
    }
    Some(taken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::testutil::Fixture;
    use object::read::elf::ElfFile64;

    fn symbol(data: &[u8], name: &str) -> u64 {
        let elf: Elf<'_> = ElfFile64::parse(data).expect("parsing");
        let table = elf.elf_symbol_table();
        let sym = table
            .iter()
            .find(|s| table.symbol_name(LE, s).ok() == Some(name.as_bytes()))
            .unwrap_or_else(|| panic!("no symbol {name}"));
        sym.st_value(LE)
    }

    #[test]
    fn pointers_in_data_exports_and_the_entry_are_taken_direct_calls_are_not() {
        let source = r#"
__attribute__((noipa)) static int called(int x) { return x + 1; }
__attribute__((noipa)) static int pointed(int x) { return x + 2; }
__attribute__((noipa)) int exported(int x) { return called(x) * 2; }
int (*volatile table[1])(int) = { pointed };
int main(int c, char **v) { (void)v; return table[0](c) + exported(c); }
"#;
        let fx = Fixture::new();
        let exe = fx.cc("taken", source, &["-O2", "-fPIE", "-pie", "-rdynamic"]);
        let data = std::fs::read(&exe).expect("reading");
        let elf: Elf<'_> = ElfFile64::parse(&data[..]).expect("parsing");
        let taken = taken_addresses(&elf, &data).expect("a PIE answers");
        let at = |name| symbol(&data, name);
        assert!(taken.contains(&at("pointed")), "a pointer in .data");
        assert!(taken.contains(&at("exported")), "exported with -rdynamic");
        assert!(taken.contains(&at("_start")), "the entry point");
        assert!(!taken.contains(&at("called")), "called directly only");
        let fixed = fx.cc("taken_nopie", source, &["-O2", "-no-pie"]);
        let data = std::fs::read(&fixed).expect("reading");
        let elf: Elf<'_> = ElfFile64::parse(&data[..]).expect("parsing");
        assert_eq!(taken_addresses(&elf, &data), None, "ET_EXEC cannot say");
    }
}
