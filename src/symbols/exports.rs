//! Which library defines an import. A PLT stub's import usually names its
//! library through its version need (`malloc@GLIBC_2.2.5` → libc.so.6, in
//! plt.rs); an unversioned import in a module that needs several libraries
//! does not. The loader binds it to the first object of its global scope,
//! in load order, that defines the symbol: the same search, over the
//! libraries' .dynsym, names it here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use object::read::elf::{Sym, SymbolTable};
use object::{LittleEndian as LE, elf};

use super::image::Elf;
use super::link::link_info;

/// For each of `imports`, the first library of `libs` (in load order) whose
/// dynamic symbol table exports a function by that name, named by its
/// soname (or file name). An import no library defines, or whose library
/// cannot be read, is left out: not knowing is a value, not an error.
pub fn defining_libraries(
    libs: &[PathBuf],
    imports: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for path in libs {
        if found.len() == imports.len() {
            break;
        }
        let Ok(data) = std::fs::read(path) else {
            continue;
        };
        let Some((name, exported)) = exports(path, &data, imports) else {
            continue;
        };
        for import in exported {
            found.entry(import).or_insert_with(|| name.clone());
        }
    }
    found
}

/// The library's name and which of `imports` its .dynsym defines.
fn exports(path: &Path, data: &[u8], imports: &BTreeSet<String>) -> Option<(String, Vec<String>)> {
    let file = Elf::parse(data).ok()?;
    let name = match link_info(data).ok().and_then(|l| l.soname) {
        Some(soname) => soname,
        None => path.file_name()?.to_string_lossy().into_owned(),
    };
    let dynsym: &SymbolTable<'_, elf::FileHeader64<LE>> = file.elf_dynamic_symbol_table();
    let exported = dynsym
        .iter()
        .filter(|sym| {
            let function = matches!(sym.st_type(), elf::STT_FUNC | elf::STT_GNU_IFUNC);
            let global = matches!(sym.st_bind(), elf::STB_GLOBAL | elf::STB_WEAK);
            function && global && sym.st_shndx(LE) != elf::SHN_UNDEF
        })
        .filter_map(|sym| dynsym.symbol_name(LE, sym).ok())
        .map(String::from_utf8_lossy)
        .filter(|name| imports.contains(name.as_ref()))
        .map(|name| name.into_owned())
        .collect();
    Some((name, exported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::testutil::Fixture;

    #[test]
    fn the_first_library_in_load_order_that_exports_it() {
        let fx = Fixture::new();
        let first = fx.cc(
            "libfirst.so",
            "int shared_fn(void) { return 1; } static int hidden(void) { return 2; } \
             int use_hidden(void) { return hidden(); }",
            &["-shared", "-fPIC", "-Wl,-soname,libfirst.so.1"],
        );
        let second = fx.cc(
            "libsecond.so",
            "int shared_fn(void) { return 3; } int only_second(void) { return 4; }",
            &["-shared", "-fPIC"],
        );
        let imports: BTreeSet<String> = ["shared_fn", "only_second", "hidden", "nowhere"]
            .map(String::from)
            .into();
        let found = defining_libraries(&[first, second, "/nonexistent.so".into()], &imports);
        let expected: BTreeMap<String, String> = [
            ("shared_fn", "libfirst.so.1"),
            ("only_second", "libsecond.so"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .into();
        assert_eq!(found, expected);
    }
}
