//! The walks over DWARF's debugging information entries that addr2line does
//! not do: where a function is declared (DW_AT_decl_file/decl_line, through
//! its abstract origin or specification: a function compiled at -O2 often
//! starts with inlined code, whose line the line table gives for its entry
//! address), and which functions also have inlined copies.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use gimli::{AttributeValue, Reader as _, UnitSectionOffset};

pub(super) type Reader = gimli::EndianArcSlice<gimli::LittleEndian>;
type Dwarf = gimli::Dwarf<Reader>;
type Unit = gimli::Unit<Reader>;

/// Entry address → `path:line` of the functions defined in `unit`.
pub(super) fn unit_decls(dwarf: &Dwarf, unit: &Unit) -> HashMap<u64, String> {
    let mut out = HashMap::new();
    let mut entries = unit.entries();
    while let Ok(Some(entry)) = entries.next_dfs() {
        if entry.tag() != gimli::DW_TAG_subprogram {
            continue;
        }
        let low_pc = entry.attr_value(gimli::DW_AT_low_pc);
        let Some(addr) = low_pc.and_then(|v| dwarf.attr_address(unit, v).ok()?) else {
            continue;
        };
        if let Some(decl) = decl_of(dwarf, unit, entry.offset()) {
            out.insert(addr, decl);
        }
    }
    out
}

/// The declaration of the entry at `offset`: its own, or that of the entry
/// it is a concrete copy (abstract origin) or the definition (specification)
/// of, within the unit; a few hops at most.
fn decl_of(dwarf: &Dwarf, unit: &Unit, mut offset: gimli::UnitOffset) -> Option<String> {
    for _ in 0..4 {
        let entry = unit.entry(offset).ok()?;
        let file = entry.attr_value(gimli::DW_AT_decl_file);
        let line = entry.attr_value(gimli::DW_AT_decl_line);
        if let (Some(file), Some(line)) = (file, line) {
            let index = match file {
                AttributeValue::FileIndex(i) => i,
                other => other.udata_value()?,
            };
            let path = file_path(dwarf, unit, index)?;
            return Some(format!("{path}:{}", line.udata_value()?));
        }
        let next = entry.attr_value(gimli::DW_AT_abstract_origin);
        match next.or_else(|| entry.attr_value(gimli::DW_AT_specification))? {
            AttributeValue::UnitRef(next) => offset = next,
            _ => return None,
        }
    }
    None
}

/// File `index` of the unit's line program, with its directory and the
/// compilation directory when those are relative.
fn file_path(dwarf: &Dwarf, unit: &Unit, index: u64) -> Option<String> {
    let header = unit.line_program.as_ref()?.header();
    let file = header.file(index)?;
    let text = |value| -> Option<String> {
        let raw = dwarf.attr_string(unit, value).ok()?;
        Some(raw.to_string_lossy().ok()?.into_owned())
    };
    let mut path = PathBuf::new();
    if let Some(dir) = &unit.comp_dir {
        path.push(dir.to_string_lossy().ok()?.as_ref());
    }
    if let Some(dir) = file.directory(header) {
        path.push(text(dir)?); // an absolute directory replaces comp_dir
    }
    path.push(text(file.path_name())?);
    Some(path.display().to_string())
}

/// Entry addresses of the functions that have an out-of-line copy (a
/// DW_TAG_subprogram with a low_pc) and inlined copies (a
/// DW_TAG_inlined_subroutine) of the same abstract origin.
pub(super) fn inlined_entries(dwarf: &Dwarf) -> Result<HashSet<u64>, gimli::Error> {
    let mut inlined = HashSet::new();
    let mut out_of_line: Vec<(u64, UnitSectionOffset)> = Vec::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let mut entries = unit.entries();
        while let Some(entry) = entries.next_dfs()? {
            let own = entry.offset().to_unit_section_offset(&unit.header);
            let origin = match entry.attr_value(gimli::DW_AT_abstract_origin) {
                Some(AttributeValue::UnitRef(o)) => Some(o.to_unit_section_offset(&unit.header)),
                Some(AttributeValue::DebugInfoRef(o)) => o.to_unit_section_offset(&unit.header),
                _ => None,
            };
            match entry.tag() {
                gimli::DW_TAG_inlined_subroutine => inlined.extend(origin),
                gimli::DW_TAG_subprogram => {
                    let low_pc = entry.attr_value(gimli::DW_AT_low_pc);
                    if let Some(addr) = low_pc.and_then(|v| dwarf.attr_address(&unit, v).ok()?) {
                        out_of_line.push((addr, origin.unwrap_or(own)));
                    }
                }
                _ => {}
            }
        }
    }
    let with_copies = out_of_line.into_iter().filter(|(_, o)| inlined.contains(o));
    Ok(with_copies.map(|(addr, _)| addr).collect())
}
