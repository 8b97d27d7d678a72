//! Values as uftrace shows them: `parse(buf="GET /", len=5) = 0`. What a
//! probe could not read is marked where it is shown, never guessed.

use std::fmt::Write as _;

use super::{Format, FuncValues, Slot, Value, ValueSpec};

/// The argument list without its parentheses: `buf="GET /", len=5`.
pub fn show_args(spec: &FuncValues, values: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in spec.args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if let Some(name) = &arg.name {
            out.push_str(name);
            out.push('=');
        }
        show_one(&mut out, arg, values.get(i).unwrap_or(&Value::Missing));
    }
    out
}

/// A return value: `0`, `"text"`, `?` (seen at a tail jump).
pub fn show_ret(spec: &ValueSpec, value: &Value) -> String {
    let mut out = String::new();
    show_one(&mut out, spec, value);
    out
}

/// A function's display name with its parameter list replaced by the
/// values (`ns::parse(char const*, int) const` → `ns::parse(buf="x", len=1)
/// const`), or the values added where a C name has none (before a
/// ` [tag]` that tells two alike apart).
pub fn with_args(name: &str, args: &str) -> String {
    let tag = match name.ends_with(']') {
        true => name.rfind(" [").unwrap_or(name.len()),
        false => name.len(),
    };
    let (base, tag) = name.split_at(tag);
    match param_list(base) {
        Some((open, close)) => format!("{}({args}){}{tag}", &base[..open], &base[close + 1..]),
        None => format!("{base}({args}){tag}"),
    }
}

/// Where a demangled name's own parameter list is: the parentheses that
/// close last, matched back to their opening one (templates and
/// `operator()` may hold more before them).
fn param_list(name: &str) -> Option<(usize, usize)> {
    let close = name.rfind(')')?;
    let mut depth = 0usize;
    for (i, c) in name[..=close].char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return Some((i, close));
                }
            }
            _ => {}
        }
    }
    None
}

fn show_one(out: &mut String, spec: &ValueSpec, value: &Value) {
    let word = match value {
        Value::Word(w) => *w,
        Value::Text { addr, bytes, cut } => return show_text(out, *addr, bytes.as_deref(), *cut),
        Value::Missing => return show_missing(out, spec),
    };
    match &spec.format {
        Format::Signed(size) => _ = write!(out, "{}", sign_extend(word, *size)),
        Format::Unsigned(size) => _ = write!(out, "{}", truncate(word, *size)),
        Format::Hex(size) => _ = write!(out, "{:#x}", truncate(word, *size)),
        Format::Bool => out.push_str(if word & 0xff != 0 { "true" } else { "false" }),
        Format::Char => show_char(out, word as u8),
        Format::Enum { size, names } => {
            let v = sign_extend(word, *size);
            match names.iter().find(|(n, _)| *n == v) {
                Some((_, name)) => out.push_str(name),
                None => _ = write!(out, "{v}"),
            }
        }
        Format::Pointer | Format::Str if word == 0 => out.push_str("NULL"),
        Format::Pointer | Format::Str => _ = write!(out, "{word:#x}"),
        // A float in a general register or on the stack is its bits.
        Format::Float(4) => _ = write!(out, "{}", f32::from_bits(word as u32)),
        Format::Float(8) => _ = write!(out, "{}", f64::from_bits(word)),
        Format::Float(_) | Format::Aggregate => show_missing(out, spec),
    }
}

/// Where a value is that no probe can read: the register's name, so the
/// line says what is missing rather than showing a wrong number.
fn show_missing(out: &mut String, spec: &ValueSpec) {
    match spec.slot {
        Slot::Sse(n) => _ = write!(out, "<xmm{n}>"),
        Slot::Memory => out.push_str("{...}"),
        _ if spec.format == Format::Aggregate => out.push_str("{...}"),
        _ => out.push('?'),
    }
}

fn show_text(out: &mut String, addr: u64, bytes: Option<&[u8]>, cut: bool) {
    let Some(bytes) = bytes else {
        if addr == 0 {
            out.push_str("NULL");
        } else {
            _ = write!(out, "{addr:#x} <unreadable>");
        }
        return;
    };
    out.push('"');
    for &b in bytes {
        push_escaped(out, b, b'"');
    }
    out.push('"');
    if cut {
        out.push_str("...");
    }
}

fn show_char(out: &mut String, b: u8) {
    out.push('\'');
    push_escaped(out, b, b'\'');
    out.push('\'');
}

fn push_escaped(out: &mut String, b: u8, quote: u8) {
    match b {
        b'\n' => out.push_str("\\n"),
        b'\t' => out.push_str("\\t"),
        b'\r' => out.push_str("\\r"),
        b'\\' => out.push_str("\\\\"),
        _ if b == quote => {
            out.push('\\');
            out.push(b as char);
        }
        0x20..=0x7e => out.push(b as char),
        _ => _ = write!(out, "\\x{b:02x}"),
    }
}

fn truncate(word: u64, size: u8) -> u64 {
    match size {
        1..=7 => word & ((1u64 << (size * 8)) - 1),
        _ => word,
    }
}

fn sign_extend(word: u64, size: u8) -> i64 {
    match size {
        1..=7 => {
            let shift = 64 - u32::from(size) * 8;
            ((word << shift) as i64) >> shift
        }
        _ => word as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(name: &str, slot: Slot, format: Format) -> ValueSpec {
        ValueSpec {
            name: Some(name.to_string()),
            slot,
            format,
        }
    }

    #[test]
    fn every_class_shows_as_uftrace_shows_it() {
        let spec = FuncValues {
            args: vec![
                arg("buf", Slot::Reg(0), Format::Str),
                arg("len", Slot::Reg(1), Format::Signed(4)),
                arg("neg", Slot::Reg(2), Format::Signed(2)),
                arg("ok", Slot::Reg(3), Format::Bool),
                arg("c", Slot::Reg(4), Format::Char),
                arg(
                    "e",
                    Slot::Reg(5),
                    Format::Enum {
                        size: 4,
                        names: vec![(1, "RED".into())],
                    },
                ),
                arg("x", Slot::Sse(0), Format::Float(8)),
                arg("p", Slot::Stack(8), Format::Pointer),
                arg("s", Slot::Memory, Format::Aggregate),
            ],
            ret: None,
        };
        let values = [
            Value::Text {
                addr: 0x1000,
                bytes: Some(b"GET \"/\"\n".to_vec()),
                cut: true,
            },
            Value::Word(0xffff_ffff_0000_0005),
            Value::Word(0xfffe),
            Value::Word(0x100),
            Value::Word(b'\'' as u64),
            Value::Word(1),
            Value::Missing,
            Value::Word(0),
            Value::Missing,
        ];
        assert_eq!(
            show_args(&spec, &values),
            r#"buf="GET \"/\"\n"..., len=5, neg=-2, ok=false, c='\'', e=RED, x=<xmm0>, p=NULL, s={...}"#
        );
    }

    #[test]
    fn values_replace_a_cxx_parameter_list_and_follow_a_c_name() {
        assert_eq!(
            with_args(
                "ns::Parser::parse(char const*, int) const",
                "this=0x10, n=1"
            ),
            "ns::Parser::parse(this=0x10, n=1) const"
        );
        assert_eq!(
            with_args("f(void (*)(int), long) [D0]", "1, 2"),
            "f(1, 2) [D0]"
        );
        assert_eq!(with_args("helper [a.c:3]", "x=1"), "helper(x=1) [a.c:3]");
        assert_eq!(with_args("puts@plt", "\"hi\""), "puts@plt(\"hi\")");
    }

    #[test]
    fn a_register_the_user_named_shows_its_value_alone() {
        let ret = ValueSpec {
            name: None,
            slot: Slot::Ret(0),
            format: Format::Hex(8),
        };
        assert_eq!(show_ret(&ret, &Value::Word(255)), "0xff");
        assert_eq!(show_ret(&ret, &Value::Missing), "?");
        let text = ValueSpec {
            format: Format::Str,
            ..ret
        };
        let bad = Value::Text {
            addr: 0x10,
            bytes: None,
            cut: false,
        };
        assert_eq!(show_ret(&text, &bad), "0x10 <unreadable>");
    }
}
