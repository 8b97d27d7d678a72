//! The ELF facts every reader of a module needs: the file is 64-bit
//! little-endian x86-64, and how its link-time addresses map to file offsets
//! (uprobes attach by file offset). Kept apart so the readers (elf, plt,
//! link, exit_sites) depend on it and not on each other.

use std::path::Path;

use object::LittleEndian as LE;
use object::elf::{self, FileHeader64};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};

use super::SymbolError;

pub(crate) type Elf<'d> = ElfFile64<'d, LE>;

pub(crate) fn check_ident(path: &Path, head: &[u8]) -> Result<(), SymbolError> {
    if !head.starts_with(&elf::ELFMAG) {
        return Err(SymbolError::NotElf(path.to_path_buf()));
    }
    let what = match (head.get(4), head.get(5)) {
        (Some(&c), Some(&d)) if c == elf::ELFCLASS64.0 && d == elf::ELFDATA2LSB.0 => return Ok(()),
        (Some(&c), _) if c == elf::ELFCLASS32.0 => "a 32-bit ELF file",
        (Some(&c), _) if c == elf::ELFCLASS64.0 => "a big-endian ELF file",
        _ => return Err(SymbolError::NotElf(path.to_path_buf())),
    };
    Err(SymbolError::UnsupportedArch {
        path: path.to_path_buf(),
        what: what.to_string(),
    })
}

pub(crate) fn check_machine(path: &Path, header: &FileHeader64<LE>) -> Result<(), SymbolError> {
    let machine = header.e_machine(LE);
    let name = match machine {
        elf::EM_X86_64 => return Ok(()),
        elf::EM_386 => "i386".to_string(),
        elf::EM_AARCH64 => "aarch64".to_string(),
        elf::EM_ARM => "arm".to_string(),
        elf::EM_RISCV => "riscv".to_string(),
        elf::EM_PPC64 => "ppc64".to_string(),
        elf::EM_S390 => "s390".to_string(),
        elf::EM_LOONGARCH => "loongarch".to_string(),
        other => format!("machine {}", other.0),
    };
    Err(SymbolError::UnsupportedArch {
        path: path.to_path_buf(),
        what: format!("an ELF file for {name}"),
    })
}

/// The PT_LOAD segments: how link-time addresses map to file offsets.
#[derive(Clone, Debug, Default)]
pub(crate) struct Segments(Vec<LoadSegment>);

#[derive(Clone, Copy, Debug)]
struct LoadSegment {
    vaddr: u64,
    offset: u64,
    filesz: u64,
}

impl Segments {
    pub(crate) fn new(headers: &[elf::ProgramHeader64<LE>]) -> Self {
        let loads = headers.iter().filter(|p| p.p_type(LE) == elf::PT_LOAD);
        Segments(
            loads
                .map(|p| LoadSegment {
                    vaddr: p.p_vaddr(LE),
                    offset: p.p_offset(LE),
                    filesz: p.p_filesz(LE),
                })
                .collect(),
        )
    }

    fn containing(&self, vaddr: u64) -> Option<&LoadSegment> {
        self.0
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)
    }

    /// offset = vaddr - p_vaddr + p_offset, in the segment backed by the file.
    pub(crate) fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.containing(vaddr).map(|s| vaddr - s.vaddr + s.offset)
    }

    /// Up to `len` bytes of the file at `vaddr`, cut at the end of its segment.
    pub(crate) fn bytes<'d>(&self, data: &'d [u8], vaddr: u64, len: u64) -> Option<&'d [u8]> {
        let seg = self.containing(vaddr)?;
        let start = vaddr - seg.vaddr + seg.offset;
        let len = len.min(seg.offset + seg.filesz - start);
        data.get(usize::try_from(start).ok()?..usize::try_from(start + len).ok()?)
    }
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Bytes (a build-id) as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
