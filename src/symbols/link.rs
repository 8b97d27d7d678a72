//! The dynamic-linking facts of an ELF file (soname, DT_NEEDED, RPATH,
//! RUNPATH, PIE-ness): what the library search reads from every candidate,
//! so it reads only the headers and the dynamic section, not whole files.

use std::fs::File;
use std::path::Path;

use object::elf::{self, FileHeader64};
use object::read::ReadCache;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{LittleEndian as LE, ReadRef};

use super::SymbolError;
use super::image::{check_ident, check_machine};

/// What the dynamic loader reads from a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkInfo {
    pub soname: Option<String>,
    /// DT_NEEDED entries, in order.
    pub needed: Vec<String>,
    /// DT_RPATH directories (unexpanded: may hold `$ORIGIN`).
    pub rpath: Vec<String>,
    /// DT_RUNPATH directories (unexpanded).
    pub runpath: Vec<String>,
    /// PT_INTERP.
    pub interpreter: Option<String>,
    /// A position-independent executable.
    pub is_pie: bool,
    /// An executable (ET_EXEC, or a PIE), not a library.
    pub is_executable: bool,
}

/// The dynamic-linking facts of `path`, reading only the headers and the
/// dynamic section (the library search opens many files).
pub fn read_link_info(path: &Path) -> Result<LinkInfo, SymbolError> {
    let file = File::open(path).map_err(SymbolError::io(path))?;
    let cache = ReadCache::new(file);
    let head = cache.read_bytes_at(0, 64).unwrap_or_default();
    check_ident(path, head)?;
    let header = FileHeader64::<LE>::parse(&cache).map_err(SymbolError::malformed(path))?;
    check_machine(path, header)?;
    link_info(&cache).map_err(SymbolError::malformed(path))
}

/// Dynamic-section facts, through any [`ReadRef`] so the library search can
/// read them without loading whole files.
pub(crate) fn link_info<'d, R: ReadRef<'d>>(data: R) -> object::read::Result<LinkInfo> {
    let header = FileHeader64::<LE>::parse(data)?;
    let interpreter = header
        .program_headers(LE, data)?
        .iter()
        .find(|p| p.p_type(LE) == elf::PT_INTERP)
        .and_then(|p| p.data(LE, data).ok())
        .map(|bytes| lossy(bytes.split(|&b| b == 0).next().unwrap_or_default()));
    let sections = header.sections(LE, data)?;
    let dynamic = sections.dynamic_table(LE, data)?;
    let mut info = LinkInfo {
        interpreter,
        ..LinkInfo::default()
    };
    let mut flags_1 = 0;
    for entry in dynamic.iter() {
        let text = || dynamic.string(entry).map(lossy);
        match entry.tag {
            elf::DT_NEEDED => info.needed.push(text()?),
            elf::DT_SONAME => info.soname = Some(text()?),
            elf::DT_RPATH => info.rpath.extend(split_path_list(&text()?)),
            elf::DT_RUNPATH => info.runpath.extend(split_path_list(&text()?)),
            elf::DT_FLAGS_1 => flags_1 = entry.val,
            _ => {}
        }
    }
    let dyn_type = header.e_type(LE) == elf::ET_DYN;
    // Older linkers do not set DF_1_PIE; a PIE is then an ET_DYN that asks
    // for an interpreter and has no soname (libc.so.6 has PT_INTERP, too).
    let pie_flag = flags_1 & elf::DF_1_PIE.0 != 0;
    info.is_pie = dyn_type && (pie_flag || (info.interpreter.is_some() && info.soname.is_none()));
    info.is_executable = header.e_type(LE) == elf::ET_EXEC || info.is_pie;
    Ok(info)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn split_path_list(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(':')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::elf::read_module;
    use crate::symbols::testutil::Fixture;

    #[test]
    fn reads_shared_library_link_facts() {
        let fx = Fixture::new();
        let src = "int lib_fn(int x) { return x + 1; }";
        let runpath = fx.cc(
            "librp.so",
            src,
            &[
                "-shared",
                "-fPIC",
                "-Wl,-soname,librp.so.1",
                "-Wl,-rpath,$ORIGIN/x:/opt/y",
            ],
        );
        let module = read_module(&runpath).expect("reading a library");
        assert!(!module.link.is_pie && !module.link.is_executable);
        assert_eq!(module.link.soname.as_deref(), Some("librp.so.1"));
        assert_eq!(module.link.runpath, ["$ORIGIN/x", "/opt/y"]);
        assert!(module.link.rpath.is_empty());
        assert!(module.functions.iter().any(|s| s.name == "lib_fn"));
        let flags = [
            "-shared",
            "-fPIC",
            "-Wl,--disable-new-dtags",
            "-Wl,-rpath,/opt/z",
        ];
        let rpath = fx.cc("librpath.so", src, &flags);
        let link = read_link_info(&rpath).expect("reading link facts");
        assert_eq!(link.rpath, ["/opt/z"]);
        assert!(link.runpath.is_empty() && link.soname.is_none());
    }
}
