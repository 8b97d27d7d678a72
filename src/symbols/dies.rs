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

/// What one pass over a module's DIEs tells about its functions, by entry
/// address.
#[derive(Default)]
pub(super) struct Facts {
    /// Where each function is declared, `path:line`.
    pub decls: HashMap<u64, String>,
    /// The functions that also have inlined copies.
    pub inlined: HashSet<u64>,
}

/// One pass over every unit: the declarations of the functions with code
/// (DW_TAG_subprogram with an address) and which of them have inlined
/// copies (a DW_TAG_inlined_subroutine of the same abstract origin). Type
/// subtrees are skipped (in C++ most entries are types and their members;
/// the code of a member function is described at namespace level, by an
/// entry that names its declaration in DW_AT_specification). A `--list`
/// asks about every function, so one pass beats per-unit lookups.
pub(super) fn walk(dwarf: &Dwarf) -> Result<Facts, gimli::Error> {
    let mut walk = Walk::default();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let mut tree = unit.entries_tree(None)?;
        walk.paths.clear(); // file indices are per unit
        walk.node(dwarf, &unit, tree.root()?)?;
    }
    let Walk {
        mut facts,
        origins,
        out_of_line,
        ..
    } = walk;
    let with_copies = out_of_line.into_iter().filter(|(_, o)| origins.contains(o));
    facts.inlined = with_copies.map(|(addr, _)| addr).collect();
    Ok(facts)
}

#[derive(Default)]
struct Walk {
    facts: Facts,
    /// Abstract origins of the inlined copies.
    origins: HashSet<UnitSectionOffset>,
    /// Entry address and abstract origin (or own offset) of each function.
    out_of_line: Vec<(u64, UnitSectionOffset)>,
    /// The current unit's file paths by index: many functions share a file.
    paths: HashMap<u64, Option<String>>,
}

impl Walk {
    fn node(
        &mut self,
        dwarf: &Dwarf,
        unit: &Unit,
        node: gimli::EntriesTreeNode<'_, '_, Reader>,
    ) -> Result<(), gimli::Error> {
        let entry = node.entry();
        let origin = match entry.attr_value(gimli::DW_AT_abstract_origin) {
            Some(AttributeValue::UnitRef(o)) => Some(o.to_unit_section_offset(&unit.header)),
            Some(AttributeValue::DebugInfoRef(o)) => o.to_unit_section_offset(&unit.header),
            _ => None,
        };
        match entry.tag() {
            gimli::DW_TAG_inlined_subroutine => self.origins.extend(origin),
            gimli::DW_TAG_subprogram => match entry_address(dwarf, unit, entry) {
                Some(addr) => {
                    let own = entry.offset().to_unit_section_offset(&unit.header);
                    self.out_of_line.push((addr, origin.unwrap_or(own)));
                    if let Some((file, line)) = decl_of(unit, entry) {
                        let path = (self.paths.entry(file))
                            .or_insert_with(|| file_path(dwarf, unit, file));
                        if let Some(path) = path {
                            self.facts.decls.insert(addr, format!("{path}:{line}"));
                        }
                    }
                }
                // A declaration or an abstract instance: no code, and the
                // inlined copies in its body are described where it is
                // concrete.
                None => return Ok(()),
            },
            gimli::DW_TAG_structure_type
            | gimli::DW_TAG_class_type
            | gimli::DW_TAG_union_type
            | gimli::DW_TAG_enumeration_type
            | gimli::DW_TAG_subroutine_type => return Ok(()),
            _ => {}
        }
        let mut children = node.children();
        while let Some(child) = children.next()? {
            self.node(dwarf, unit, child)?;
        }
        Ok(())
    }
}

/// Where a function's code starts: DW_AT_low_pc, or for one split into hot
/// and cold parts (DW_AT_ranges) its entry_pc or its first range.
pub(super) fn entry_address(
    dwarf: &Dwarf,
    unit: &Unit,
    entry: &gimli::DebuggingInformationEntry<Reader>,
) -> Option<u64> {
    for attr in [gimli::DW_AT_low_pc, gimli::DW_AT_entry_pc] {
        if let Some(value) = entry.attr_value(attr) {
            return dwarf.attr_address(unit, value).ok()?;
        }
    }
    entry.attr_value(gimli::DW_AT_ranges)?;
    let mut ranges = dwarf.die_ranges(unit, entry).ok()?;
    ranges.next().ok()?.map(|r| r.begin)
}

/// The declaration of `entry` (file index, line): its own, or that of the
/// entry it is a concrete copy (abstract origin) or the definition
/// (specification) of, within the unit; a few hops at most.
fn decl_of(unit: &Unit, entry: &gimli::DebuggingInformationEntry<Reader>) -> Option<(u64, u64)> {
    let mut next;
    let mut entry = entry;
    for _ in 0..4 {
        let file = entry.attr_value(gimli::DW_AT_decl_file);
        let line = entry.attr_value(gimli::DW_AT_decl_line);
        if let (Some(file), Some(line)) = (file, line) {
            let index = match file {
                AttributeValue::FileIndex(i) => i,
                other => other.udata_value()?,
            };
            return Some((index, line.udata_value()?));
        }
        let origin = entry.attr_value(gimli::DW_AT_abstract_origin);
        match origin.or_else(|| entry.attr_value(gimli::DW_AT_specification))? {
            AttributeValue::UnitRef(offset) => next = unit.entry(offset).ok()?,
            _ => return None,
        }
        entry = &next;
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
