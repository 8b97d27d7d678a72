//! Turns symbol-table names into the names users read and filter on.
//!
//! Rust legacy names are also valid Itanium names (`_ZN…17h<hash>E`), so they
//! go to rustc-demangle first: cpp_demangle would print the hash as a path
//! segment. C++ names keep their parameter lists, or overloads would collapse
//! into one name; return types are dropped to keep trace lines short.

use cpp_demangle::DemangleOptions;

/// The name to show for `raw`; `raw` itself when it is not mangled (C) or
/// cannot be demangled.
pub fn demangle(raw: &str) -> String {
    if (raw.starts_with("_R") || is_rust_legacy(raw))
        && let Ok(name) = rustc_demangle::try_demangle(raw)
    {
        // `{:#}` leaves out the hash (legacy) and crate disambiguators (v0).
        return format!("{name:#}");
    }
    if raw.starts_with("_Z")
        && let Some(name) = demangle_cpp(raw)
    {
        return name;
    }
    raw.to_string()
}

fn demangle_cpp(raw: &str) -> Option<String> {
    let symbol = cpp_demangle::Symbol::new(raw).ok()?;
    symbol
        .demangle_with_options(&DemangleOptions::new().no_return_type())
        .ok()
}

/// `_ZN` … `17h` + 16 hex digits + `E`, optionally followed by a compiler
/// suffix such as `.llvm.1234` or `.cold`.
fn is_rust_legacy(raw: &str) -> bool {
    let Some(body) = raw.strip_prefix("_ZN") else {
        return false;
    };
    let end = body.find('.').unwrap_or(body.len());
    let body = &body[..end];
    let Some(body) = body.strip_suffix('E') else {
        return false;
    };
    body.len() > 19
        && body.is_char_boundary(body.len() - 19)
        && is_hash_segment(&body[body.len() - 19..])
}

fn is_hash_segment(seg: &str) -> bool {
    seg.strip_prefix("17h")
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The part of a demangled name before its parameter list:
/// `ns::Shape::area() const` → `ns::Shape::area`, so that `-f area`-style
/// globs need not spell out C++ parameters. Names without a parameter list
/// come back whole.
pub fn base_name(name: &str) -> &str {
    let bytes = name.as_bytes();
    let mut depth = 0i32;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"operator") {
            i += 8 + operator_symbol_len(&bytes[i + 8..]);
            continue;
        }
        match bytes[i] {
            b'<' | b'{' | b'[' => depth += 1,
            b'>' | b'}' | b']' => depth -= 1,
            b'(' if depth == 0 && i > 0 => return &name[..i],
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    name
}

/// Length of the operator token after `operator` (`<<`, `()`, `[]`, ...), so
/// its brackets are not taken for template or parameter brackets.
fn operator_symbol_len(rest: &[u8]) -> usize {
    if rest.starts_with(b"()") || rest.starts_with(b"[]") {
        return 2;
    }
    rest.iter()
        .take_while(|b| b"<>=!+-*/%^&|~,".contains(*b))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_cpp_keeping_parameters() {
        assert_eq!(demangle("_Z3addii"), "add(int, int)");
        assert_eq!(demangle("_ZNK2ns5Shape4areaEv"), "ns::Shape::area() const");
        assert_eq!(
            demangle("_Z3addii.constprop.0"),
            "add(int, int) [clone .constprop.0]"
        );
    }

    #[test]
    fn demangles_rust_legacy_without_hash() {
        let raw = "_ZN4demo5greet17h0123456789abcdefE";
        assert_eq!(demangle(raw), "demo::greet");
    }

    #[test]
    fn leaves_c_names_alone() {
        assert_eq!(demangle("main"), "main");
        assert_eq!(demangle("foo.isra.0"), "foo.isra.0");
        assert_eq!(demangle("_Zgarbage"), "_Zgarbage");
    }

    #[test]
    fn base_name_strips_parameters() {
        assert_eq!(base_name("ns::Shape::area() const"), "ns::Shape::area");
        assert_eq!(base_name("add(int, int)"), "add");
        assert_eq!(base_name("ns::maxof<int>(int, int)"), "ns::maxof<int>");
        assert_eq!(base_name("ns::V::operator()(int)"), "ns::V::operator()");
        assert_eq!(base_name("operator<<(std::ostream&, X)"), "operator<<");
        assert_eq!(base_name("demo::greet"), "demo::greet");
    }
}
