//! Turns symbol-table names into the names users read and filter on, spelled
//! as the reference tools print them: c++filt for C++, rustfilt for Rust.
//!
//! Rust legacy names are also valid Itanium names (`_ZN…17h<hash>E`), so they
//! go to rustc-demangle first: cpp_demangle would print the hash as a path
//! segment. rustc-demangle also treats compiler suffixes as rustfilt does: it
//! drops `.llvm.<hash>` and keeps others (`.cold`) as written.
//!
//! C++ names keep their parameter lists, or overloads would collapse into one
//! name, and templates keep the return type they encode, as c++filt prints
//! it; `base_name` strips both for `-f` globs. cpp_demangle is the copy in
//! vendor/cpp_demangle, 0.5.1 with the fixes its UTRACE-PATCHES.md lists
//! (each to go upstream) and two options that spell names as c++filt does;
//! demangle/reference.rs checks that every C++ function of libstdc++ and of
//! the fixtures reads exactly as c++filt prints it.

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
    symbol.demangle_with_options(&cxxfilt_options()).ok()
}

/// c++filt's spelling: `Ss` and `So` spelled out
/// (`std::basic_string<char, std::char_traits<char>, std::allocator<char> >`,
/// libiberty's DMGL_VERBOSE, which c++filt sets), and thunks, integer literals
/// and `decltype(nullptr)` as libiberty writes them (`non-virtual thunk to
/// f()`, `0ul`) rather than cpp_demangle's own `{virtual override thunk(…)}`
/// and `(unsigned long)0`.
fn cxxfilt_options() -> cpp_demangle::DemangleOptions {
    cpp_demangle::DemangleOptions::new()
        .expand_std_substitutions()
        .libiberty_spelling()
}

/// `_ZN`, length-prefixed segments, `E`, where the last segment is rustc's
/// hash (`h` + 16 hex digits); then nothing or a compiler suffix (`.llvm.…`,
/// `.cold`). The segments are walked by their lengths because they may hold
/// dots themselves: `_$LT$core..fmt..Debug$GT$` is `<core::fmt::Debug>`.
fn is_rust_legacy(raw: &str) -> bool {
    let Some(mut rest) = raw.strip_prefix("_ZN") else {
        return false;
    };
    let mut last = "";
    while let Some((segment, after)) = split_segment(rest) {
        last = segment;
        rest = after;
    }
    let suffix_ok = rest
        .strip_prefix('E')
        .is_some_and(|tail| tail.is_empty() || tail.starts_with('.'));
    suffix_ok && is_hash_segment(last)
}

/// The segment `<len><bytes>` at the start of `s` and what follows it.
fn split_segment(s: &str) -> Option<(&str, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let len: usize = s.get(..digits)?.parse().ok()?;
    let end = digits.checked_add(len)?;
    Some((s.get(digits..end)?, s.get(end..)?))
}

fn is_hash_segment(seg: &str) -> bool {
    seg.strip_prefix('h')
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The qualified name of a demangled function without what surrounds it: the
/// parameter list and qualifiers (`ns::Shape::area() const` → `ns::Shape::area`)
/// and the return type templates carry (`int geo::twice<int>(int)` →
/// `geo::twice<int>`), so that `-f`-style globs need not spell out C++ types.
/// Names without a parameter list come back whole.
pub fn base_name(name: &str) -> &str {
    match split_points(name) {
        Some((start, open)) if start < open => name[start..open].trim_end(),
        _ => name,
    }
}

/// Where the qualified name starts (after the last space outside brackets
/// that precedes it: the end of a return type) and where its parameter list
/// opens. Operator tokens are skipped so that `operator<` or `operator()`
/// are not taken for brackets, and the spaces after `operator` (`operator
/// bool`, `operator< <char>`) belong to the name.
fn split_points(name: &str) -> Option<(usize, usize)> {
    let bytes = name.as_bytes();
    let (mut depth, mut start, mut i) = (0i32, 0usize, 0usize);
    let mut in_operator = false;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"operator") && starts_word(bytes, i) {
            in_operator |= depth == 0;
            i += 8 + operator_symbol_len(&bytes[i + 8..]);
            continue;
        }
        match bytes[i] {
            b'(' if depth == 0 && opens_parameters(bytes, i) => return Some((start, i)),
            b'-' if bytes[i..].starts_with(b"->") => i += 1,
            b'<' | b'{' | b'[' | b'(' => depth += 1,
            b'>' | b'}' | b']' | b')' => depth -= 1,
            b' ' if depth == 0 && !in_operator => start = i + 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether the `(` at `i` opens a parameter list rather than a name part
/// (`(anonymous namespace)`), a `decltype(…)` return type or a declarator
/// around the name (`void (*f())()`, a function returning a pointer).
fn opens_parameters(bytes: &[u8], i: usize) -> bool {
    let before = &bytes[..i];
    let after = &bytes[i + 1..];
    i > 0
        && !after.starts_with(b"anonymous namespace)")
        && !before.trim_ascii_end().ends_with(b"decltype")
        && !after.starts_with(b"*")
        && !after.starts_with(b"&")
}

/// Whether `operator` at `i` starts a word (`ns::operator+`, not `cooperator`).
fn starts_word(bytes: &[u8], i: usize) -> bool {
    i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')
}

/// Length of the operator token after `operator` (`<<`, `()`, `-`, ...), so
/// its brackets are not taken for template or parameter brackets. The longest
/// token wins; demanglers put a space where that would be wrong
/// (`operator< <char>`), so `operator-<T>` is `-` then `<T>`.
fn operator_symbol_len(rest: &[u8]) -> usize {
    OPERATOR_TOKENS
        .iter()
        .find(|token| rest.starts_with(token.as_bytes()))
        .map_or(0, |token| token.len())
}

/// C++'s operator tokens, longest first.
const OPERATOR_TOKENS: [&str; 39] = [
    "<=>", "<<=", ">>=", "->*", "()", "[]", "->", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||",
    "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "+", "-", "*", "/", "%", "^", "&",
    "|", "~", "!", "=", "<", ">", ",",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_cpp_keeping_parameters() {
        assert_eq!(demangle("_Z3addii"), "add(int, int)");
        assert_eq!(demangle("_ZNK2ns5Shape4areaEv"), "ns::Shape::area() const");
    }

    #[test]
    fn templates_keep_their_return_type_like_cxxfilt() {
        assert_eq!(
            demangle("_ZN3geo5twiceIiEET_S1_"),
            "int geo::twice<int>(int)"
        );
        assert_eq!(
            demangle("_ZSt4moveIRiEONSt16remove_referenceIT_E4typeEOS2_"),
            "std::remove_reference<int&>::type&& std::move<int&>(int&)"
        );
    }

    #[test]
    fn class_template_destructor_and_constructor() {
        assert_eq!(
            demangle("_ZNSt6vectorIiSaIiEED2Ev"),
            "std::vector<int, std::allocator<int> >::~vector()"
        );
        assert_eq!(
            demangle("_ZNSt6thread11_State_implINS_8_InvokerISt5tupleIJZ4mainEUlvE_EEEEED0Ev"),
            "std::thread::_State_impl<std::thread::_Invoker<std::tuple<main::{lambda()#1}> > >::~_State_impl()"
        );
        assert_eq!(
            demangle("_ZNSt6vectorIiSaIiEEC2Ev"),
            "std::vector<int, std::allocator<int> >::vector()"
        );
    }

    /// gcc's clone suffixes, as c++filt prints them.
    #[test]
    fn cpp_clone_suffixes_like_cxxfilt() {
        for (raw, name) in [
            ("_Z3addii.cold", "add(int, int) [clone .cold]"),
            ("_Z3addii.isra.0", "add(int, int) [clone .isra.0]"),
            ("_Z3addii.constprop.0", "add(int, int) [clone .constprop.0]"),
            ("_Z3addii.part.0", "add(int, int) [clone .part.0]"),
            (
                "_Z3addii.constprop.0.isra.0",
                "add(int, int) [clone .constprop.0] [clone .isra.0]",
            ),
            ("_Z3addii.llvm.123", "add(int, int) [clone .llvm.123]"),
            (
                "_ZN3geo5twiceIiEET_S1_.isra.0",
                "int geo::twice<int>(int) [clone .isra.0]",
            ),
        ] {
            assert_eq!(demangle(raw), name, "{raw}");
        }
    }

    /// One test per fix in vendor/cpp_demangle/UTRACE-PATCHES.md, each name
    /// from libstdc++ or the fixtures (or made the way g++ makes them),
    /// expected as c++filt prints it.
    fn assert_like_cxxfilt(cases: &[(&str, &str)]) {
        for (raw, cxxfilt) in cases {
            assert_eq!(demangle(raw), *cxxfilt, "{raw}");
        }
    }

    /// A constructor template's first parameter was taken for a return type
    /// and dropped, so overloads collapsed.
    #[test]
    fn constructor_templates_keep_their_first_parameter() {
        assert_like_cxxfilt(&[
            (
                "_ZNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEC2IS3_EEPKcRKS3_",
                "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >::basic_string<std::allocator<char> >(char const*, std::allocator<char> const&)",
            ),
            (
                "_ZN7mozilla3gfx12RecordedFillC2INS0_11EventStreamEEERT_",
                "mozilla::gfx::RecordedFill::RecordedFill<mozilla::gfx::EventStream>(mozilla::gfx::EventStream&)",
            ),
        ]);
    }

    /// `&&` on a pack expansion (`DpOT_`) applies to each element, collapsing
    /// with the element's own reference; it was lost after a reference one.
    #[test]
    fn pack_expansions_give_each_element_its_reference() {
        assert_like_cxxfilt(&[
            (
                "_ZNSt6vectorISt6threadSaIS0_EE17_M_realloc_insertIJRFviiPN3exc6ResultEERiS9_S6_EEEvN9__gnu_cxx17__normal_iteratorIPS0_S2_EEDpOT_",
                "void std::vector<std::thread, std::allocator<std::thread> >::_M_realloc_insert<void (&)(int, int, exc::Result*), int&, int&, exc::Result*>(__gnu_cxx::__normal_iterator<std::thread*, std::vector<std::thread, std::allocator<std::thread> > >, void (&)(int, int, exc::Result*), int&, int&, exc::Result*&&)",
            ),
            ("_Z1fIJilEEvDpOT_", "void f<int, long>(int&&, long&&)"),
        ]);
    }

    /// An empty pack prints nothing: no `, &&` parameter, no trailing `, `
    /// template argument (and, as c++filt, no space in the `>>` before it).
    #[test]
    fn empty_packs_print_nothing() {
        assert_like_cxxfilt(&[
            (
                "_ZNSt6threadC2IZ4mainEUlvE_JEvEEOT_DpOT0_",
                "std::thread::thread<main::{lambda()#1}, , void>(main::{lambda()#1}&&)",
            ),
            (
                "_ZSt13__invoke_implIvZ4mainEUlvE_JEET_St14__invoke_otherOT0_DpOT1_",
                "void std::__invoke_impl<void, main::{lambda()#1}>(std::__invoke_other, main::{lambda()#1}&&)",
            ),
            (
                "_ZSt12__get_helperILm1ESt14default_deleteINSt6thread6_StateEEJEERT0_RSt11_Tuple_implIXT_EJS4_DpT1_EE",
                "std::default_delete<std::thread::_State>& std::__get_helper<1ul, std::default_delete<std::thread::_State>>(std::_Tuple_impl<1ul, std::default_delete<std::thread::_State>>&)",
            ),
            ("_Z1fIJEEvDpOT_", "void f<>()"),
        ]);
    }

    /// `sp T_` with `T_` an argument pack prints its elements.
    #[test]
    fn pack_expansion_expressions_print_the_elements() {
        assert_like_cxxfilt(&[(
            "_ZNSt6thread8_InvokerISt5tupleIJZ4mainEUlvE_EEE9_M_invokeIJLm0EEEEvSt12_Index_tupleIJXspT_EEE",
            "void std::thread::_Invoker<std::tuple<main::{lambda()#1}> >::_M_invoke<0ul>(std::_Index_tuple<0ul>)",
        )]);
    }

    /// A reference to a nested class whose scope is a substitution printed
    /// inside the name (`A::B&::C`).
    #[test]
    fn references_to_nested_classes_follow_the_whole_name() {
        assert_like_cxxfilt(&[
            (
                "_ZNK10__cxxabiv120__si_class_type_info11__do_upcastEPKNS_17__class_type_infoEPKvRNS1_15__upcast_resultE",
                "__cxxabiv1::__si_class_type_info::__do_upcast(__cxxabiv1::__class_type_info const*, void const*, __cxxabiv1::__class_type_info::__upcast_result&) const",
            ),
            ("_Z1fN1A1BERNS0_1CE", "f(A::B, A::B::C&)"),
        ]);
    }

    /// g++'s `sr St <class template> <member>` was rejected, leaving the name
    /// mangled.
    #[test]
    fn std_class_template_members_in_expressions_demangle() {
        assert_like_cxxfilt(&[(
            "_ZSt4swapINSt6thread2idEENSt9enable_ifIXsrSt6__and_IJSt6__not_ISt15__is_tuple_likeIT_EESt21is_move_constructibleIS6_ESt18is_move_assignableIS6_EEE5valueEvE4typeERS6_SG_",
            "std::enable_if<std::__and_<std::__not_<std::__is_tuple_like<std::thread::id> >, std::is_move_constructible<std::thread::id>, std::is_move_assignable<std::thread::id> >::value, void>::type std::swap<std::thread::id>(std::thread::id&, std::thread::id&)",
        )]);
    }

    /// c++filt spells `Ss` and `So` out, their constructors too.
    #[test]
    fn std_abbreviations_spelled_out_like_cxxfilt() {
        assert_like_cxxfilt(&[
            (
                "_ZNKSs4findERKSsm",
                "std::basic_string<char, std::char_traits<char>, std::allocator<char> >::find(std::basic_string<char, std::char_traits<char>, std::allocator<char> > const&, unsigned long) const",
            ),
            (
                "_ZNSsC1Ev",
                "std::basic_string<char, std::char_traits<char>, std::allocator<char> >::basic_string()",
            ),
            (
                "_ZNSoD0Ev",
                "std::basic_ostream<char, std::char_traits<char> >::~basic_ostream()",
            ),
            (
                "_ZNKSo6sentrycvbEv",
                "std::basic_ostream<char, std::char_traits<char> >::sentry::operator bool() const",
            ),
        ]);
    }

    #[test]
    fn thunks_like_cxxfilt() {
        assert_like_cxxfilt(&[
            (
                "_ZThn16_NSdD1Ev",
                "non-virtual thunk to std::basic_iostream<char, std::char_traits<char> >::~basic_iostream()",
            ),
            (
                "_ZTv0_n24_NSt9strstreamD0Ev",
                "virtual thunk to std::strstream::~strstream()",
            ),
            ("_ZTch0_h8_N1A1fEv", "covariant return thunk to A::f()"),
        ]);
    }

    #[test]
    fn literals_and_nullptr_like_cxxfilt() {
        assert_like_cxxfilt(&[
            (
                "_Z1fILj3ELl4ELm5ELx6ELy7ELi8ELc65ELb1EEvv",
                "void f<3u, 4l, 5ul, 6ll, 7ull, 8, (char)65, true>()",
            ),
            ("_Z1fILln5EEvv", "void f<-5l>()"),
            (
                "_ZNSolsEDn",
                "std::basic_ostream<char, std::char_traits<char> >::operator<<(decltype(nullptr))",
            ),
        ]);
    }

    /// The clone number was parsed into an isize: clang's `.llvm.<u64>`
    /// overflowed half the time and split in two.
    #[test]
    fn cpp_llvm_clone_suffix_stays_whole() {
        assert_like_cxxfilt(&[
            (
                "_Z3addii.llvm.15167162746041251166",
                "add(int, int) [clone .llvm.15167162746041251166]",
            ),
            ("_Z3addii.part.01", "add(int, int) [clone .part.01]"),
        ]);
    }

    #[test]
    fn demangles_rust_legacy_without_hash() {
        let raw = "_ZN4demo5greet17h0123456789abcdefE";
        assert_eq!(demangle(raw), "demo::greet");
    }

    /// Escaped segments (`$LT$`, `$u20$`, `..`) hold dots, which once ended
    /// the name early and left these mangled; expected values are rustfilt's.
    #[test]
    fn demangles_rust_legacy_impl_and_closure_names() {
        for (raw, name) in [
            (
                "_ZN102_$LT$core..iter..adapters..map..Map$LT$I$C$F$GT$$u20$as$u20$core..iter..traits..iterator..Iterator$GT$4fold17h3a0f3c0a0b1c2d3eE",
                "<core::iter::adapters::map::Map<I,F> as core::iter::traits::iterator::Iterator>::fold",
            ),
            (
                "_ZN56_$LT$$u5b$u64$u3b$$u20$2$u5d$$u20$as$u20$names..Area$GT$4area17h44d2b0be93429305E",
                "<[u64; 2] as names::Area>::area",
            ),
            (
                "_ZN5names4main28_$u7b$$u7b$closure$u7d$$u7d$17hb021504d020094d7E",
                "names::main::{{closure}}",
            ),
            (
                "_ZN4core3ops8function6FnOnce40call_once$u7b$$u7b$vtable.shim$u7d$$u7d$17h695ec42e2bf6c98bE",
                "core::ops::function::FnOnce::call_once{{vtable.shim}}",
            ),
        ] {
            assert_eq!(demangle(raw), name, "{raw}");
        }
    }

    #[test]
    fn demangles_rust_v0() {
        for (raw, name) in [
            ("_RNvCs4T4zK9Otvt5_5names4main", "names::main"),
            (
                "_RNCNvCs4T4zK9Otvt5_5names4main0B3_",
                "names::main::{closure#0}",
            ),
            (
                "_RNvXs_Cs4T4zK9Otvt5_5namesINtB4_4RecthENtB4_4Area4areaB4_",
                "<names::Rect<u8> as names::Area>::area",
            ),
        ] {
            assert_eq!(demangle(raw), name, "{raw}");
        }
    }

    /// As rustfilt: `.llvm.<hash>` (ThinLTO's promoted locals) is dropped,
    /// other suffixes are kept as written.
    #[test]
    fn rust_compiler_suffixes_like_rustfilt() {
        for (raw, name) in [
            (
                "_ZN102_$LT$core..iter..adapters..map..Map$LT$I$C$F$GT$$u20$as$u20$core..iter..traits..iterator..Iterator$GT$4fold17h3a0f3c0a0b1c2d3eE.llvm.15167162746041251166",
                "<core::iter::adapters::map::Map<I,F> as core::iter::traits::iterator::Iterator>::fold",
            ),
            (
                "_ZN4rust3add17h0123456789abcdefE.llvm.A5310EB9",
                "rust::add",
            ),
            (
                "_RNvCs4T4zK9Otvt5_5names5apply.llvm.15167162746041251166",
                "names::apply",
            ),
            (
                "_ZN3std2rt10lang_start28_$u7b$$u7b$closure$u7d$$u7d$17hcbe69001a6df8e06E.llvm.14763069645122186998",
                "std::rt::lang_start::{{closure}}",
            ),
            ("_ZN4rust3add17h0123456789abcdefE.cold", "rust::add.cold"),
        ] {
            assert_eq!(demangle(raw), name, "{raw}");
        }
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
        assert_eq!(base_name("add(int, int) [clone .isra.0]"), "add");
        assert_eq!(base_name("ns::V::operator()(int)"), "ns::V::operator()");
        assert_eq!(base_name("operator<<(std::ostream&, X)"), "operator<<");
        assert_eq!(base_name("demo::greet"), "demo::greet");
        assert_eq!(
            base_name("names::main::{{closure}}"),
            "names::main::{{closure}}"
        );
        assert_eq!(
            base_name("(anonymous namespace)::f(int)"),
            "(anonymous namespace)::f"
        );
    }

    #[test]
    fn base_name_strips_return_types() {
        for (name, base) in [
            ("void foo<int>(int)", "foo<int>"),
            (
                "int geo::twice<int>(int) [clone .isra.0]",
                "geo::twice<int>",
            ),
            ("unsigned long ns::f<char>()", "ns::f<char>"),
            (
                "std::pair<int, int> const& ns::get<(unsigned long)0>(ns::T&)",
                "ns::get<(unsigned long)0>",
            ),
            (
                "int (anonymous namespace)::f<int>(int)",
                "(anonymous namespace)::f<int>",
            ),
            (
                "decltype ({parm#1}+{parm#2}) ns::sum<int>(int, decltype ({parm#1}+{parm#2}))",
                "ns::sum<int>",
            ),
            (
                "bool std::operator< <char, std::char_traits<char> >(std::string const&, char const*)",
                "std::operator< <char, std::char_traits<char> >",
            ),
            (
                "std::ostream::sentry::operator bool() const",
                "std::ostream::sentry::operator bool",
            ),
            ("operator delete[](void*)", "operator delete[]"),
            (
                "main::{lambda(int)#1}::operator()(int) const",
                "main::{lambda(int)#1}::operator()",
            ),
            ("rust::f::<fn() -> u8>", "rust::f::<fn() -> u8>"),
            (
                "bool __gnu_cxx::operator!=<char*, std::string>(ns::It const&, ns::It const&)",
                "__gnu_cxx::operator!=<char*, std::string>",
            ),
            (
                "ns::It::difference_type ns::operator-<int*>(ns::It, ns::It)",
                "ns::operator-<int*>",
            ),
            ("ns::X& ns::X::operator<<=(int)", "ns::X::operator<<="),
        ] {
            assert_eq!(base_name(name), base, "{name}");
        }
    }
}

#[cfg(test)]
mod reference;
