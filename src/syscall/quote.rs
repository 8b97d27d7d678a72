//! Quoting copied strings the way strace does, so a path reads the same in
//! both: printable ASCII as is, `"` and `\` escaped, the C escapes for
//! `\t\n\v\f\r`, and octal for every other byte (three digits when a digit
//! 0-7 follows, so the escape cannot swallow it).

use std::fmt::Write;

use super::Copied;

/// `"bytes"`, or `"bytes"...` when BPF cut the copy at its limit. A string
/// ends at its first NUL.
pub(super) fn string(copied: &Copied<'_>) -> String {
    let bytes = copied.bytes;
    let end = bytes.iter().position(|&b| b == 0);
    let text = &bytes[..end.unwrap_or(bytes.len())];
    let mut out = quoted(text);
    // A NUL inside the copy means the whole string fit, whatever the flag says.
    if copied.truncated && end.is_none() {
        out.push_str("...");
    }
    out
}

/// `bytes` between double quotes, escaped.
pub(super) fn quoted(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            b' '..=b'~' => out.push(b as char),
            _ => {
                let digit_follows = bytes.get(i + 1).is_some_and(|n| (b'0'..=b'7').contains(n));
                // Writing to a String cannot fail.
                let _ = if digit_follows {
                    write!(out, "\\{b:03o}")
                } else {
                    write!(out, "\\{b:o}")
                };
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_strace() {
        assert_eq!(quoted(b"a\"b\\c\t\n"), r#""a\"b\\c\t\n""#);
        assert_eq!(quoted(b"\x01x\x017\xff"), r#""\1x\0017\377""#);
        assert_eq!(quoted("é".as_bytes()), r#""\303\251""#);
    }

    #[test]
    fn truncated_strings_end_with_dots_unless_a_nul_came_first() {
        let cut = Copied {
            bytes: b"/aaaa",
            truncated: true,
        };
        assert_eq!(string(&cut), r#""/aaaa"..."#);
        let ended = Copied {
            bytes: b"/a\0junk",
            truncated: true,
        };
        assert_eq!(string(&ended), r#""/a""#);
    }
}
