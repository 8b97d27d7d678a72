//! How `-A`/`-R` travel in a trace file (format 5): the specs in the
//! function table, after the functions, and what each probe read in a
//! chunk's values column. Every decoder bounds what it allocates by the bytes
//! left, so a damaged block is `None`, never a panic or a huge allocation.

use std::collections::BTreeMap;

use super::varint::{Cursor, put, put_str, unzigzag, zigzag};
use crate::model::FuncId;
use crate::values::{Format, FuncValues, Slot, Value, ValueSpec, Values};

/// A spec's first byte: its slot kind in the low bits, then these.
const SPEC_NAMED: u8 = 0x10;
const SLOT_KIND: u8 = 0x0f;

/// A value's first byte. `TEXT` may add `READ` (its bytes follow) and `CUT`.
const VAL_MISSING: u8 = 0;
const VAL_WORD: u8 = 1;
const VAL_TEXT: u8 = 2;
const VAL_READ: u8 = 4;
const VAL_CUT: u8 = 8;

/// The table's values section: per function with specs its id, its
/// arguments, and its return value if it has one.
pub fn encode_specs(out: &mut Vec<u8>, specs: &BTreeMap<FuncId, FuncValues>) {
    put(out, specs.len() as u64);
    for (id, fv) in specs {
        put(out, id.0.into());
        put(out, fv.args.len() as u64);
        for spec in &fv.args {
            encode_spec(out, spec);
        }
        out.push(u8::from(fv.ret.is_some()));
        if let Some(spec) = &fv.ret {
            encode_spec(out, spec);
        }
    }
}

pub fn decode_specs(c: &mut Cursor) -> Option<BTreeMap<FuncId, FuncValues>> {
    let n = c.count()?;
    let mut specs = BTreeMap::new();
    for _ in 0..n {
        let id = FuncId(c.varint_u32()?);
        let nargs = c.count()?;
        let mut args = Vec::with_capacity(nargs);
        for _ in 0..nargs {
            args.push(decode_spec(c)?);
        }
        let ret = match c.u8()? {
            0 => None,
            1 => Some(decode_spec(c)?),
            _ => return None,
        };
        // Ids are written in order, once each: anything else is damage.
        if specs.last_key_value().is_some_and(|(last, _)| *last >= id) {
            return None;
        }
        specs.insert(id, FuncValues { args, ret });
    }
    Some(specs)
}

fn encode_spec(out: &mut Vec<u8>, spec: &ValueSpec) {
    let (kind, n) = match spec.slot {
        Slot::Reg(r) => (0, u64::from(r)),
        Slot::Stack(off) => (1, u64::from(off)),
        Slot::Ret(r) => (2, u64::from(r)),
        Slot::Sse(r) => (3, u64::from(r)),
        Slot::Memory => (4, 0),
    };
    out.push(kind | if spec.name.is_some() { SPEC_NAMED } else { 0 });
    put(out, n);
    if let Some(name) = &spec.name {
        put_str(out, name);
    }
    encode_format(out, &spec.format);
}

fn decode_spec(c: &mut Cursor) -> Option<ValueSpec> {
    let head = c.u8()?;
    if head & !(SLOT_KIND | SPEC_NAMED) != 0 {
        return None;
    }
    let n = c.varint()?;
    let slot = match head & SLOT_KIND {
        0 => Slot::Reg(u8::try_from(n).ok()?),
        1 => Slot::Stack(u16::try_from(n).ok()?),
        2 => Slot::Ret(u8::try_from(n).ok()?),
        3 => Slot::Sse(u8::try_from(n).ok()?),
        4 if n == 0 => Slot::Memory,
        _ => return None,
    };
    let name = match head & SPEC_NAMED {
        0 => None,
        _ => Some(c.str()?),
    };
    let format = decode_format(c)?;
    Some(ValueSpec { name, slot, format })
}

/// A format is its kind byte and, for the sized kinds, its size byte; an
/// enum's names follow its size.
fn encode_format(out: &mut Vec<u8>, format: &Format) {
    let (kind, size) = match format {
        Format::Signed(s) => (0, Some(*s)),
        Format::Unsigned(s) => (1, Some(*s)),
        Format::Hex(s) => (2, Some(*s)),
        Format::Bool => (3, None),
        Format::Char => (4, None),
        Format::Enum { size, .. } => (5, Some(*size)),
        Format::Pointer => (6, None),
        Format::Str => (7, None),
        Format::Float(s) => (8, Some(*s)),
        Format::Aggregate => (9, None),
    };
    out.push(kind);
    out.extend(size);
    if let Format::Enum { names, .. } = format {
        put(out, names.len() as u64);
        for (value, name) in names {
            put(out, zigzag(*value));
            put_str(out, name);
        }
    }
}

fn decode_format(c: &mut Cursor) -> Option<Format> {
    Some(match c.u8()? {
        0 => Format::Signed(c.u8()?),
        1 => Format::Unsigned(c.u8()?),
        2 => Format::Hex(c.u8()?),
        3 => Format::Bool,
        4 => Format::Char,
        5 => {
            let size = c.u8()?;
            let n = c.count()?;
            let mut names = Vec::with_capacity(n);
            for _ in 0..n {
                names.push((unzigzag(c.varint()?), c.str()?));
            }
            Format::Enum { size, names }
        }
        6 => Format::Pointer,
        7 => Format::Str,
        8 => Format::Float(c.u8()?),
        9 => Format::Aggregate,
        _ => return None,
    })
}

/// One Args or Retval event's record in the values column: how many values
/// plus one (0: the event carried none, kept so a round trip is exact), then
/// each.
pub fn encode_values(out: &mut Vec<u8>, values: Option<&[Value]>) {
    let Some(values) = values else {
        out.push(0);
        return;
    };
    put(out, values.len() as u64 + 1);
    for v in values {
        match v {
            Value::Missing => out.push(VAL_MISSING),
            Value::Word(w) => {
                out.push(VAL_WORD);
                put(out, *w);
            }
            Value::Text { addr, bytes, cut } => {
                let read = if bytes.is_some() { VAL_READ } else { 0 };
                out.push(VAL_TEXT | read | if *cut { VAL_CUT } else { 0 });
                put(out, *addr);
                if let Some(b) = bytes {
                    put(out, b.len() as u64);
                    out.extend_from_slice(b);
                }
            }
        }
    }
}

/// `Some(None)` for an event that carried no values; `None` when damaged.
pub fn decode_values(c: &mut Cursor) -> Option<Option<Values>> {
    let Some(n) = c.varint()?.checked_sub(1) else {
        return Some(None);
    };
    // Each value takes a byte at least: a count past the end is damage.
    let n = usize::try_from(n).ok().filter(|&n| n <= c.remaining())?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        values.push(match c.u8()? {
            VAL_MISSING => Value::Missing,
            VAL_WORD => Value::Word(c.varint()?),
            head if head & !(VAL_READ | VAL_CUT) == VAL_TEXT => {
                let addr = c.varint()?;
                let bytes = match head & VAL_READ {
                    0 => None,
                    _ => {
                        let len = c.count()?;
                        Some(c.bytes(len)?.to_vec())
                    }
                };
                Value::Text {
                    addr,
                    bytes,
                    cut: head & VAL_CUT != 0,
                }
            }
            _ => return None,
        });
    }
    Some(Some(values.into()))
}
