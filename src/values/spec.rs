//! The user's register lists for `-A`/`-R`, in uftrace's syntax:
//! `arg1,arg2/s,fparg1,arg7/x32` and `retval/x`. A list the user gives
//! replaces what debug info would say, so it also works on PLT stubs and
//! stripped code; its values carry no names.

use super::{Format, Slot, ValueSpec};

/// The most values one function's entry reads (`VALUES_MAX` in
/// bpf/utrace.h): an event carries this many words.
pub const VALUES_MAX: usize = 8;

/// The syntax, for errors to show.
const ARG_SYNTAX: &str = "argN[/FMT] (N from 1) or fpargN[/32|/64] (N 1-8), FMT one of d i u x s c p b, \
                          with a size for d i u x: arg2/x32";
const RET_SYNTAX: &str =
    "retval[/FMT], FMT one of d i u x s c p b, with a size for d i u x: retval/x32";

/// `-A`'s list: `arg1,arg2/s,fparg1`, in order, at most [`VALUES_MAX`].
pub fn parse_args(list: &str) -> Result<Vec<ValueSpec>, String> {
    let specs = list
        .split(',')
        .map(|item| parse_arg(item.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if specs.len() > VALUES_MAX {
        return Err(format!(
            "{list:?} names {} values: at most {VALUES_MAX} are read per function",
            specs.len()
        ));
    }
    Ok(specs)
}

/// `-R`'s spec: `retval` or `retval/FMT`, read from rax.
pub fn parse_ret(spec: &str) -> Result<ValueSpec, String> {
    let (name, fmt) = split_format(spec.trim());
    if name != "retval" {
        return Err(format!("{spec:?} is not a return value: use {RET_SYNTAX}"));
    }
    let format = match fmt {
        None => Format::Signed(8),
        Some(fmt) => parse_format(fmt)
            .ok_or_else(|| format!("{spec:?}: unknown format {fmt:?}: use {RET_SYNTAX}"))?,
    };
    Ok(unnamed(Slot::Ret(0), format))
}

fn parse_arg(item: &str) -> Result<ValueSpec, String> {
    let bad = || format!("{item:?} is not an argument: use {ARG_SYNTAX}");
    let (name, fmt) = split_format(item);
    if let Some(n) = name.strip_prefix("fparg") {
        let n: u8 = n.parse().map_err(|_| bad())?;
        if !(1..=8).contains(&n) {
            return Err(format!(
                "{item:?}: there are 8 SSE argument registers, fparg1 to fparg8"
            ));
        }
        let format = match fmt {
            None | Some("64") => Format::Float(8),
            Some("32") => Format::Float(4),
            Some(_) => return Err(format!("{item:?}: fparg takes /32 (float) or /64 (double)")),
        };
        return Ok(unnamed(Slot::Sse(n - 1), format));
    }
    let n: u16 = name
        .strip_prefix("arg")
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)?;
    let slot = match n {
        0 => return Err(format!("{item:?}: arguments count from arg1")),
        1..=6 => Slot::Reg((n - 1) as u8),
        // The 7th integer argument is the first stack word above the
        // return address; each takes 8 bytes. Far beyond any real list.
        7..=1000 => Slot::Stack(8 * (n - 6)),
        _ => return Err(format!("{item:?}: no function takes that many arguments")),
    };
    let format = match fmt {
        None => Format::Signed(8),
        Some(fmt) => parse_format(fmt)
            .ok_or_else(|| format!("{item:?}: unknown format {fmt:?}: use {ARG_SYNTAX}"))?,
    };
    Ok(unnamed(slot, format))
}

fn unnamed(slot: Slot, format: Format) -> ValueSpec {
    ValueSpec {
        name: None,
        slot,
        format,
    }
}

fn split_format(item: &str) -> (&str, Option<&str>) {
    match item.split_once('/') {
        Some((name, fmt)) => (name, Some(fmt)),
        None => (item, None),
    }
}

/// `d`, `i32`, `x8`, `s`, …: a letter, and for the numbers a size in bits
/// (64, as uftrace, when none is given).
fn parse_format(fmt: &str) -> Option<Format> {
    let (letter, bits) = fmt.split_at_checked(1)?;
    let bytes = match bits {
        "" | "64" => 8,
        "32" => 4,
        "16" => 2,
        "8" => 1,
        _ => return None,
    };
    let sized = bits.is_empty() || bytes == 8;
    Some(match letter {
        "d" | "i" => Format::Signed(bytes),
        "u" => Format::Unsigned(bytes),
        "x" => Format::Hex(bytes),
        "s" if bits.is_empty() => Format::Str,
        "p" if sized => Format::Pointer,
        "c" if bits.is_empty() || bytes == 1 => Format::Char,
        "b" if bits.is_empty() || bytes == 1 => Format::Bool,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(slot: Slot, format: Format) -> ValueSpec {
        unnamed(slot, format)
    }

    #[test]
    fn args_take_registers_then_the_stack_with_formats() {
        let specs =
            parse_args("arg1,arg2/s, arg3/x32,arg7/u8,arg8/c,fparg1,fparg2/32,arg4/b").unwrap();
        assert_eq!(
            specs,
            [
                spec(Slot::Reg(0), Format::Signed(8)),
                spec(Slot::Reg(1), Format::Str),
                spec(Slot::Reg(2), Format::Hex(4)),
                spec(Slot::Stack(8), Format::Unsigned(1)),
                spec(Slot::Stack(16), Format::Char),
                spec(Slot::Sse(0), Format::Float(8)),
                spec(Slot::Sse(1), Format::Float(4)),
                spec(Slot::Reg(3), Format::Bool),
            ]
        );
        assert_eq!(
            parse_args("arg6/i16").unwrap(),
            [spec(Slot::Reg(5), Format::Signed(2))]
        );
        assert_eq!(
            parse_args("arg2/p").unwrap(),
            [spec(Slot::Reg(1), Format::Pointer)]
        );
    }

    #[test]
    fn retval_reads_rax() {
        assert_eq!(
            parse_ret("retval").unwrap(),
            spec(Slot::Ret(0), Format::Signed(8))
        );
        assert_eq!(
            parse_ret("retval/x").unwrap(),
            spec(Slot::Ret(0), Format::Hex(8))
        );
        assert_eq!(
            parse_ret("retval/s").unwrap(),
            spec(Slot::Ret(0), Format::Str)
        );
        assert_eq!(
            parse_ret("retval/u32").unwrap(),
            spec(Slot::Ret(0), Format::Unsigned(4))
        );
    }

    #[test]
    fn bad_items_are_named_with_the_syntax() {
        let err = |list: &str| parse_args(list).unwrap_err();
        assert!(err("arg1,ar2").starts_with("\"ar2\" is not an argument: use argN[/FMT]"));
        assert!(err("retval").starts_with("\"retval\" is not an argument"));
        assert_eq!(err("arg0"), "\"arg0\": arguments count from arg1");
        assert!(err("arg1/q").starts_with("\"arg1/q\": unknown format \"q\""));
        assert!(err("arg1/s32").starts_with("\"arg1/s32\": unknown format"));
        assert!(err("arg1/d12").starts_with("\"arg1/d12\": unknown format"));
        assert_eq!(
            err("fparg9"),
            "\"fparg9\": there are 8 SSE argument registers, fparg1 to fparg8"
        );
        assert_eq!(
            err("fparg1/x"),
            "\"fparg1/x\": fparg takes /32 (float) or /64 (double)"
        );
        assert!(err("arg1,").starts_with("\"\" is not an argument"));
        let nine = "arg1,arg2,arg3,arg4,arg5,arg6,arg7,arg8,arg9";
        assert!(err(nine).ends_with("names 9 values: at most 8 are read per function"));
        let ret = parse_ret("arg1").unwrap_err();
        assert!(
            ret.starts_with("\"arg1\" is not a return value: use retval[/FMT]"),
            "{ret}"
        );
        assert!(
            parse_ret("retval/z")
                .unwrap_err()
                .contains("unknown format \"z\"")
        );
    }
}
