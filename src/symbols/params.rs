//! Function parameters and return types from DWARF, for `-A`/`-R`: the
//! DW_TAG_subprogram whose code starts at a function's address, its
//! DW_TAG_formal_parameter children in order (through DW_AT_abstract_origin
//! and DW_AT_specification, where -O2 copies and C++ member definitions keep
//! names and types), each type mapped to how it is shown and passed. abi.rs
//! then places them in registers and stack words.

use std::collections::HashMap;

use gimli::{AttributeValue, Reader as _, UnitOffset};

use super::abi::{self, Class, Pass, Placer, Type};

mod aggregate;
use super::dies::{Reader, entry_address};
use crate::values::{Format, FuncValues};

type Dwarf = gimli::Dwarf<Reader>;
type Unit = gimli::Unit<Reader>;
type Entry = gimli::DebuggingInformationEntry<Reader>;

/// Hops through typedefs, qualifiers, origins and nested members: DWARF is
/// acyclic there, but a broken file must not loop.
const HOPS: usize = 16;

/// Every function with code in a module, by entry address: one walk, then
/// a function is read only when asked.
pub(super) struct Index {
    units: Vec<Unit>,
    by_addr: HashMap<u64, (usize, UnitOffset)>,
}

pub(super) fn index(dwarf: &Dwarf) -> Result<Index, gimli::Error> {
    let mut index = Index {
        units: Vec::new(),
        by_addr: HashMap::new(),
    };
    let mut headers = dwarf.units();
    while let Some(header) = headers.next()? {
        let unit = dwarf.unit(header)?;
        let mut cursor = unit.entries();
        while let Some(entry) = cursor.next_dfs()? {
            if entry.tag() == gimli::DW_TAG_subprogram
                && let Some(addr) = entry_address(dwarf, &unit, entry)
            {
                let at = (index.units.len(), entry.offset());
                index.by_addr.entry(addr).or_insert(at);
            }
        }
        index.units.push(unit);
    }
    Ok(index)
}

impl Index {
    /// The parameters and return value of the function at `vaddr`; `None`
    /// when DWARF does not describe it, or describes a type it cannot
    /// place (then every later slot would be a guess).
    pub fn values(&self, dwarf: &Dwarf, vaddr: u64) -> Option<FuncValues> {
        let (unit, offset) = *self.by_addr.get(&vaddr)?;
        let cx = Cx {
            dwarf,
            unit: self.units.get(unit)?,
        };
        cx.function(offset)
    }
}

/// One unit being read.
struct Cx<'a> {
    dwarf: &'a Dwarf,
    unit: &'a Unit,
}

/// A formal parameter as declared.
struct Param {
    name: Option<String>,
    ty: Option<UnitOffset>,
}

impl Cx<'_> {
    fn function(&self, offset: UnitOffset) -> Option<FuncValues> {
        let entry = self.unit.entry(offset).ok()?;
        // gcc marks functions it changed the calling convention of.
        if let Some(AttributeValue::CallingConvention(gimli::DW_CC_nocall)) =
            self.inherited(&entry, gimli::DW_AT_calling_convention)
        {
            return None;
        }
        let ret = match self.inherited(&entry, gimli::DW_AT_type) {
            Some(value) => Some(self.ty(self.type_ref(value)?, 0)?),
            None => None, // void
        };
        let mut placer = Placer::new(ret.as_ref());
        let mut args = Vec::new();
        for param in self.params(offset)? {
            let ty = self.ty(param.ty?, 0)?;
            args.push(placer.arg(param.name, &ty));
        }
        let ret = ret.as_ref().map(abi::ret);
        Some(FuncValues { args, ret })
    }

    /// `offset`'s formal parameters, or those of the entry it is a copy or
    /// the definition of when that lists more: an optimised copy may leave
    /// out a parameter it never uses, which still takes its register (a
    /// declaration lists them all, though often without names). Variadic
    /// functions: the named ones.
    fn params(&self, offset: UnitOffset) -> Option<Vec<Param>> {
        let mut best: Option<Vec<Param>> = None;
        let mut at = Some(offset);
        for _ in 0..HOPS {
            let Some(offset) = at else { break };
            let (params, origin) = self.own_params(offset)?;
            if best.as_ref().is_none_or(|b| params.len() > b.len()) {
                best = Some(params);
            }
            at = origin;
        }
        best
    }

    /// The formal parameters listed under `offset`, and its origin.
    fn own_params(&self, offset: UnitOffset) -> Option<(Vec<Param>, Option<UnitOffset>)> {
        let mut params = Vec::new();
        let mut tree = self.unit.entries_tree(Some(offset)).ok()?;
        let root = tree.root().ok()?;
        let origin = self.origin(root.entry());
        let mut children = root.children();
        while let Some(child) = children.next().ok()? {
            let child = child.entry();
            match child.tag() {
                gimli::DW_TAG_formal_parameter => params.push(self.param(child)),
                gimli::DW_TAG_unspecified_parameters => break,
                _ => {}
            }
        }
        Some((params, origin))
    }

    fn param(&self, entry: &Entry) -> Param {
        let name = self.inherited(entry, gimli::DW_AT_name).and_then(|v| {
            let raw = self.dwarf.attr_string(self.unit, v).ok()?;
            Some(raw.to_string_lossy().ok()?.into_owned())
        });
        let artificial = matches!(
            self.inherited(entry, gimli::DW_AT_artificial),
            Some(AttributeValue::Flag(true))
        );
        let ty = self.inherited(entry, gimli::DW_AT_type);
        Param {
            name: name.or_else(|| artificial.then(|| "this".to_owned())),
            ty: ty.and_then(|v| self.type_ref(v)),
        }
    }

    /// The entry `entry` is a concrete copy or the definition of.
    fn origin(&self, entry: &Entry) -> Option<UnitOffset> {
        let value = entry.attr_value(gimli::DW_AT_abstract_origin);
        self.type_ref(value.or_else(|| entry.attr_value(gimli::DW_AT_specification))?)
    }

    /// `attr` of `entry`, or of the entries it is a copy or definition of.
    fn inherited(&self, entry: &Entry, attr: gimli::DwAt) -> Option<AttributeValue<Reader>> {
        let mut next;
        let mut entry = entry;
        for _ in 0..HOPS {
            if let Some(value) = entry.attr_value(attr) {
                return Some(value);
            }
            next = self.unit.entry(self.origin(entry)?).ok()?;
            entry = &next;
        }
        None
    }

    /// A reference within this unit (LTO's cross-unit ones are not read).
    fn type_ref(&self, value: AttributeValue<Reader>) -> Option<UnitOffset> {
        match value {
            AttributeValue::UnitRef(offset) => Some(offset),
            AttributeValue::DebugInfoRef(offset) => offset.to_unit_offset(&self.unit.header),
            _ => None,
        }
    }

    fn udata(entry: &Entry, attr: gimli::DwAt) -> Option<u64> {
        entry.attr_value(attr)?.udata_value()
    }

    /// The entry a type refers to (DW_AT_type), if any.
    fn target(&self, entry: &Entry) -> Option<UnitOffset> {
        self.type_ref(entry.attr_value(gimli::DW_AT_type)?)
    }

    /// `offset` without typedefs and qualifiers.
    fn strip(&self, mut offset: UnitOffset) -> Option<Entry> {
        for _ in 0..HOPS {
            let entry = self.unit.entry(offset).ok()?;
            match entry.tag() {
                gimli::DW_TAG_typedef
                | gimli::DW_TAG_const_type
                | gimli::DW_TAG_volatile_type
                | gimli::DW_TAG_restrict_type
                | gimli::DW_TAG_atomic_type
                | gimli::DW_TAG_immutable_type => offset = self.target(&entry)?,
                _ => return Some(entry),
            }
        }
        None
    }

    /// How a value of the type at `offset` is shown and passed.
    fn ty(&self, offset: UnitOffset, depth: usize) -> Option<Type> {
        let entry = self.strip(offset)?;
        let size = Self::udata(&entry, gimli::DW_AT_byte_size);
        match entry.tag() {
            gimli::DW_TAG_base_type => self.base(&entry, size?),
            gimli::DW_TAG_enumeration_type => self.enumeration(&entry, size),
            gimli::DW_TAG_pointer_type
            | gimli::DW_TAG_reference_type
            | gimli::DW_TAG_rvalue_reference_type => {
                let format = match self.target(&entry) {
                    Some(to) if self.is_char(to) => Format::Str,
                    _ => Format::Pointer,
                };
                Some(Type::scalar(8, format, Class::Integer))
            }
            gimli::DW_TAG_ptr_to_member_type => Some(self.member_pointer(&entry)),
            // nullptr_t, and arrays only reach here decayed.
            gimli::DW_TAG_unspecified_type | gimli::DW_TAG_array_type => {
                Some(Type::scalar(8, Format::Pointer, Class::Integer))
            }
            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type => {
                aggregate::aggregate(self, &entry, depth)
            }
            _ => None,
        }
    }

    fn base(&self, entry: &Entry, size: u64) -> Option<Type> {
        let Some(AttributeValue::Encoding(encoding)) = entry.attr_value(gimli::DW_AT_encoding)
        else {
            return None;
        };
        let bytes = size.min(16) as u8;
        let int = |format| match size {
            16 => Type {
                size,
                align: 16,
                format,
                pass: Pass::Regs(vec![Class::Integer, Class::Integer]),
            },
            _ => Type::scalar(size, format, Class::Integer),
        };
        Some(match encoding {
            gimli::DW_ATE_signed => int(Format::Signed(bytes)),
            gimli::DW_ATE_boolean => int(Format::Bool),
            gimli::DW_ATE_signed_char | gimli::DW_ATE_unsigned_char => int(Format::Char),
            gimli::DW_ATE_float if size == 16 && self.is_long_double(entry) => Type {
                size,
                align: 16,
                format: Format::Float(16),
                pass: Pass::X87,
            },
            // __float128 takes one xmm register (SSE + SSEUP).
            gimli::DW_ATE_float => Type::scalar(size, Format::Float(bytes), Class::Sse),
            gimli::DW_ATE_complex_float => complex(size),
            _ => int(Format::Unsigned(bytes)),
        })
    }

    fn is_long_double(&self, entry: &Entry) -> bool {
        self.name(entry).is_some_and(|n| n.contains("long double"))
    }

    fn name(&self, entry: &Entry) -> Option<String> {
        let raw = (self.dwarf)
            .attr_string(self.unit, entry.attr_value(gimli::DW_AT_name)?)
            .ok()?;
        Some(raw.to_string_lossy().ok()?.into_owned())
    }

    /// Whether a pointer to the type at `offset` points to text: (cv) char,
    /// signed or unsigned, also through a typedef but not the 8-bit integer
    /// typedefs (`uint8_t *` is bytes).
    fn is_char(&self, mut offset: UnitOffset) -> bool {
        for _ in 0..HOPS {
            let Ok(entry) = self.unit.entry(offset) else {
                return false;
            };
            let next = match entry.tag() {
                gimli::DW_TAG_typedef => {
                    let name = self.name(&entry).unwrap_or_default();
                    if name.ends_with("int8_t") || name.ends_with("u8") || name.ends_with("s8") {
                        return false;
                    }
                    self.target(&entry)
                }
                gimli::DW_TAG_const_type | gimli::DW_TAG_volatile_type => self.target(&entry),
                gimli::DW_TAG_base_type => {
                    return matches!(
                        entry.attr_value(gimli::DW_AT_encoding),
                        Some(AttributeValue::Encoding(
                            gimli::DW_ATE_signed_char | gimli::DW_ATE_unsigned_char
                        ))
                    );
                }
                _ => return false,
            };
            match next {
                Some(n) => offset = n,
                None => return false,
            }
        }
        false
    }

    fn enumeration(&self, entry: &Entry, size: Option<u64>) -> Option<Type> {
        let size = match size {
            Some(size) => size,
            None => self.ty(self.target(entry)?, 1)?.size,
        };
        let mut names = Vec::new();
        let mut tree = self.unit.entries_tree(Some(entry.offset())).ok()?;
        let root = tree.root().ok()?;
        let mut children = root.children();
        while let Some(child) = children.next().ok()? {
            let child = child.entry();
            if child.tag() != gimli::DW_TAG_enumerator {
                continue;
            }
            let value = match child.attr_value(gimli::DW_AT_const_value)? {
                AttributeValue::Udata(u) => u as i64,
                other => other
                    .sdata_value()
                    .or_else(|| other.udata_value().map(|u| u as i64))?,
            };
            if let Some(name) = self.name(child) {
                names.push((value, name));
            }
        }
        let format = Format::Enum {
            size: size.min(8) as u8,
            names,
        };
        Some(Type::scalar(size, format, Class::Integer))
    }

    /// A pointer to a data member is an offset; to a member function, a
    /// pointer and an adjustment (two INTEGER eightbytes).
    fn member_pointer(&self, entry: &Entry) -> Type {
        let to_function = self
            .target(entry)
            .and_then(|t| self.strip(t))
            .is_some_and(|t| t.tag() == gimli::DW_TAG_subroutine_type);
        match to_function {
            true => Type {
                size: 16,
                align: 8,
                format: Format::Aggregate,
                pass: Pass::Regs(vec![Class::Integer, Class::Integer]),
            },
            false => Type::scalar(8, Format::Signed(8), Class::Integer),
        }
    }
}

/// `_Complex float` is one SSE eightbyte, `_Complex double` two;
/// `_Complex long double` is COMPLEX_X87 (memory as an argument).
fn complex(size: u64) -> Type {
    let pass = match size {
        0..=8 => Pass::Regs(vec![Class::Sse]),
        9..=16 => Pass::Regs(vec![Class::Sse, Class::Sse]),
        _ => Pass::X87,
    };
    Type {
        size,
        align: (size / 2).clamp(1, 16),
        format: Format::Aggregate,
        pass,
    }
}

#[cfg(test)]
mod tests;
