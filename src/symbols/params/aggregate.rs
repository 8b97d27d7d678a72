//! Structs, classes and unions passed by value, classified as the SysV ABI
//! does: larger than 16 bytes or with an unaligned field is MEMORY; else
//! each eightbyte is INTEGER if any field in it is, SSE if all are floats.
//! A C++ class the compiler marks DW_CC_pass_by_reference (a non-trivial
//! copy constructor or destructor) is passed by its address instead.

use gimli::AttributeValue;

use super::{Cx, Entry, HOPS};
use crate::symbols::abi::{Class, Pass, Type};
use crate::values::Format;

/// What the fields of an aggregate made of its (at most two) eightbytes.
#[derive(Default)]
struct Eightbytes {
    classes: [Option<Class>; 2],
    align: u64,
    /// A field that forces MEMORY: unaligned, or x87.
    memory: bool,
}

pub(super) fn aggregate(cx: &Cx<'_>, entry: &Entry, depth: usize) -> Option<Type> {
    if entry.attr_value(gimli::DW_AT_declaration).is_some() {
        return None; // incomplete: its layout is not here
    }
    let size = Cx::udata(entry, gimli::DW_AT_byte_size)?;
    if by_reference(cx, entry, depth) {
        return Some(Type {
            size,
            align: 8,
            format: Format::Pointer,
            pass: Pass::ByReference,
        });
    }
    let mut bytes = Eightbytes {
        align: 1,
        ..Eightbytes::default()
    };
    bytes.members(cx, entry, 0, depth)?;
    let align = Cx::udata(entry, gimli::DW_AT_alignment).unwrap_or(bytes.align);
    let empty = bytes.classes.iter().all(Option::is_none);
    if empty && !bytes.memory {
        // An empty struct (C's size 0, C++'s 1) takes no register and no
        // stack word.
        return Some(Type {
            size: 0,
            align: 1,
            format: Format::Aggregate,
            pass: Pass::Memory,
        });
    }
    let pass = match size {
        _ if bytes.memory || size > 16 => Pass::Memory,
        _ => {
            let words = size.div_ceil(8) as usize;
            // An eightbyte of padding only (NO_CLASS) is counted as SSE.
            let classes = bytes.classes[..words].iter();
            Pass::Regs(classes.map(|c| c.unwrap_or(Class::Sse)).collect())
        }
    };
    Some(Type {
        size,
        align,
        format: Format::Aggregate,
        pass,
    })
}

/// Whether a C++ class is passed by its address: the compiler says so
/// (clang, DW_AT_calling_convention), or (gcc says nothing) it has a
/// user-provided destructor or copy/move constructor, a virtual function,
/// or a base or member that is so.
fn by_reference(cx: &Cx<'_>, entry: &Entry, depth: usize) -> bool {
    match entry.attr_value(gimli::DW_AT_calling_convention) {
        Some(AttributeValue::CallingConvention(gimli::DW_CC_pass_by_reference)) => return true,
        Some(AttributeValue::CallingConvention(gimli::DW_CC_pass_by_value)) => return false,
        _ => {}
    }
    if depth > HOPS {
        return false;
    }
    // A template's constructors are named without its arguments.
    let name = cx.name(entry).unwrap_or_default();
    let class = name.split('<').next().unwrap_or_default();
    let Ok(mut tree) = cx.unit.entries_tree(Some(entry.offset())) else {
        return false;
    };
    let Ok(root) = tree.root() else {
        return false;
    };
    let mut children = root.children();
    while let Ok(Some(child)) = children.next() {
        let child = child.entry();
        let non_trivial = match child.tag() {
            gimli::DW_TAG_subprogram => special_member(cx, child, class),
            // A virtual base makes copying non-trivial.
            gimli::DW_TAG_inheritance if child.attr_value(gimli::DW_AT_virtuality).is_some() => {
                true
            }
            gimli::DW_TAG_inheritance | gimli::DW_TAG_member
                if child.attr_value(gimli::DW_AT_declaration).is_none() =>
            {
                let ty = cx.target(child).and_then(|t| cx.strip(t));
                ty.is_some_and(|t| {
                    matches!(
                        t.tag(),
                        gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type
                    ) && by_reference(cx, &t, depth + 1)
                })
            }
            _ => false,
        };
        if non_trivial {
            return true;
        }
    }
    false
}

/// A member function that makes its class non-trivial for calls: virtual,
/// or a destructor or constructor the user wrote (a constructor taking
/// arguments does not matter, but DWARF does not say which is the copy
/// one without reading parameter types: only `Class(const Class&)` and
/// `Class(Class&&)` shapes are looked for).
fn special_member(cx: &Cx<'_>, member: &Entry, class: &str) -> bool {
    if member.attr_value(gimli::DW_AT_virtuality).is_some() {
        return true;
    }
    // `= default` in the class keeps it trivial; `= delete` too.
    let defaulted = matches!(
        member.attr_value(gimli::DW_AT_defaulted),
        Some(AttributeValue::Udata(1) | AttributeValue::Data1(1))
    );
    if defaulted || member.attr_value(gimli::DW_AT_deleted).is_some() {
        return false;
    }
    let name = cx.name(member).unwrap_or_default();
    if name.starts_with('~') {
        return true;
    }
    name == class && !class.is_empty() && copies_own_class(cx, member, class)
}

/// Whether a constructor's first parameter after `this` is a reference
/// (lvalue or rvalue) to its own class.
fn copies_own_class(cx: &Cx<'_>, ctor: &Entry, class: &str) -> bool {
    let Ok(mut tree) = cx.unit.entries_tree(Some(ctor.offset())) else {
        return false;
    };
    let Ok(root) = tree.root() else {
        return false;
    };
    let mut children = root.children();
    let mut params = Vec::new();
    while let Ok(Some(child)) = children.next() {
        let child = child.entry();
        if child.tag() == gimli::DW_TAG_formal_parameter
            && child.attr_value(gimli::DW_AT_artificial).is_none()
        {
            params.push(cx.target(child));
        }
    }
    let [Some(first)] = params[..] else {
        return false;
    };
    let Some(reference) = cx.strip(first) else {
        return false;
    };
    let is_ref = matches!(
        reference.tag(),
        gimli::DW_TAG_reference_type | gimli::DW_TAG_rvalue_reference_type
    );
    let to = cx.target(&reference).and_then(|t| cx.strip(t));
    is_ref && to.is_some_and(|t| cx.name(&t).as_deref() == Some(class))
}

impl Eightbytes {
    /// The fields and bases of the aggregate `entry`, placed at `base`.
    fn members(&mut self, cx: &Cx<'_>, entry: &Entry, base: u64, depth: usize) -> Option<()> {
        if depth > HOPS {
            return None;
        }
        let mut tree = cx.unit.entries_tree(Some(entry.offset())).ok()?;
        let root = tree.root().ok()?;
        let mut children = root.children();
        while let Some(child) = children.next().ok()? {
            let child = child.entry();
            let is_field = match child.tag() {
                // A static member (DWARF 4 declares it as a member).
                gimli::DW_TAG_member => child.attr_value(gimli::DW_AT_declaration).is_none(),
                gimli::DW_TAG_inheritance => true,
                _ => false,
            };
            if !is_field {
                continue;
            }
            let at = base + Cx::udata(child, gimli::DW_AT_data_member_location).unwrap_or(0);
            if child.attr_value(gimli::DW_AT_bit_size).is_some() {
                // Bit fields are integers; a field's bits start in its byte.
                let bit = Cx::udata(child, gimli::DW_AT_data_bit_offset);
                self.mark(bit.map_or(at, |b| base + b / 8), Class::Integer);
                continue;
            }
            self.field(cx, cx.target(child)?, at, depth + 1)?;
        }
        Some(())
    }

    /// One field of type `offset` at byte `at` of the outermost aggregate.
    fn field(
        &mut self,
        cx: &Cx<'_>,
        offset: gimli::UnitOffset,
        at: u64,
        depth: usize,
    ) -> Option<()> {
        let entry = cx.strip(offset)?;
        match entry.tag() {
            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type => {
                if let Some(align) = Cx::udata(&entry, gimli::DW_AT_alignment) {
                    self.align = self.align.max(align);
                }
                self.members(cx, &entry, at, depth + 1)
            }
            gimli::DW_TAG_array_type => self.array(cx, &entry, at, depth + 1),
            _ => {
                let ty = cx.ty(offset, depth + 1)?;
                self.align = self.align.max(ty.align);
                if !at.is_multiple_of(ty.align.max(1)) {
                    self.memory = true;
                }
                match ty.pass {
                    Pass::Regs(classes) => {
                        for (i, class) in classes.into_iter().enumerate() {
                            self.mark(at + 8 * i as u64, class);
                        }
                    }
                    Pass::X87 | Pass::Memory | Pass::ByReference => self.memory = true,
                }
                Some(())
            }
        }
    }

    /// The elements of an array field that fall within the first 16 bytes
    /// (past them the aggregate is MEMORY anyway), and its alignment.
    fn array(&mut self, cx: &Cx<'_>, entry: &Entry, at: u64, depth: usize) -> Option<()> {
        let element = cx.target(entry)?;
        let size = cx.ty(element, depth)?.size;
        let count = array_count(cx, entry).unwrap_or(0);
        let mut offset = at;
        for _ in 0..count {
            if offset >= 16 && offset > at {
                break;
            }
            self.field(cx, element, offset, depth)?;
            offset += size.max(1);
        }
        Some(())
    }

    /// Merges `class` into the eightbyte holding byte `at`: INTEGER wins.
    fn mark(&mut self, at: u64, class: Class) {
        let Some(slot) = self.classes.get_mut((at / 8) as usize) else {
            return;
        };
        *slot = match (*slot, class) {
            (Some(Class::Integer), _) | (_, Class::Integer) => Some(Class::Integer),
            _ => Some(Class::Sse),
        };
    }
}

/// The element count of an array type's first dimension (0 when unknown:
/// a flexible array member).
fn array_count(cx: &Cx<'_>, entry: &Entry) -> Option<u64> {
    let mut tree = cx.unit.entries_tree(Some(entry.offset())).ok()?;
    let root = tree.root().ok()?;
    let mut children = root.children();
    let mut count = 1u64;
    let mut any = false;
    while let Some(child) = children.next().ok()? {
        let child = child.entry();
        if child.tag() != gimli::DW_TAG_subrange_type {
            continue;
        }
        let n = match Cx::udata(child, gimli::DW_AT_count) {
            Some(n) => n,
            None => Cx::udata(child, gimli::DW_AT_upper_bound)?.checked_add(1)?,
        };
        count = count.saturating_mul(n);
        any = true;
    }
    any.then_some(count)
}
