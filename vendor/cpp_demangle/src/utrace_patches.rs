//! Tests of the fixes listed in UTRACE-PATCHES.md, each expected as c++filt
//! (binutils 2.40) prints it. Upstream they belong in tests/tests.rs as
//! `demangles!` cases; they live here because the published crate has no
//! tests/ directory (build.rs reads one when it exists).

use crate::{DemangleOptions, Symbol};
use alloc::string::String;

fn demangle(mangled: &str, options: &DemangleOptions) -> String {
    let sym = Symbol::new(mangled.as_bytes()).expect("should parse");
    sym.demangle_with_options(options).expect("should demangle")
}

fn assert_demangles(cases: &[(&str, &str)]) {
    for (mangled, expected) in cases {
        assert_eq!(
            demangle(mangled, &DemangleOptions::new()),
            *expected,
            "{}",
            mangled
        );
    }
}

fn assert_demangles_like_cxxfilt(cases: &[(&str, &str)]) {
    let options = DemangleOptions::new()
        .expand_std_substitutions()
        .libiberty_spelling();
    for (mangled, expected) in cases {
        assert_eq!(demangle(mangled, &options), *expected, "{}", mangled);
    }
}

#[test]
fn constructor_template_keeps_its_first_parameter() {
    assert_demangles(&[
        (
            "_ZN7mozilla3gfx12RecordedFillC2INS0_11EventStreamEEERT_",
            "mozilla::gfx::RecordedFill::RecordedFill<mozilla::gfx::EventStream>(mozilla::gfx::EventStream&)",
        ),
        (
            "_ZNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEC2IS3_EEPKcRKS3_",
            "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >::basic_string<std::allocator<char> >(char const*, std::allocator<char> const&)",
        ),
    ]);
}

#[test]
fn pack_expansion_applies_its_pattern_to_each_element() {
    assert_demangles(&[
        ("_Z1fIJilEEvDpOT_", "void f<int, long>(int&&, long&&)"),
        ("_Z1fIJRiPlEEvDpOT_", "void f<int&, long*>(int&, long*&&)"),
        ("_Z1fIJRKiEEvDpRT_", "void f<int const&>(int const&)"),
    ]);
}

#[test]
fn empty_packs_print_nothing() {
    assert_demangles(&[
        ("_Z1fIJEEvDpOT_", "void f<>()"),
        ("_Z1fIiJEEvT_DpOT0_", "void f<int>(int)"),
        (
            "_ZN4base8internal13FunctorTraitsIPFvvEvE6InvokeIJEEEvS3_DpOT_",
            "void base::internal::FunctorTraits<void (*)(), void>::Invoke<>(void (*)())",
        ),
        ("_Z1fIJiEJEEvv", "void f<int>()"),
        ("_Z1fIJ1AIiEEJEEvv", "void f<A<int> >()"),
    ]);
    // libiberty takes back the comma of a trailing empty pack after deciding
    // nothing on it, and so writes no space in `>>`.
    assert_demangles_like_cxxfilt(&[("_Z1fIJ1AIiEEJEEvv", "void f<A<int>>()")]);
}

#[test]
fn pack_expansion_expression_prints_the_elements() {
    assert_demangles_like_cxxfilt(&[(
        "_ZNSt6thread8_InvokerISt5tupleIJZ4mainEUlvE_EEE9_M_invokeIJLm0EEEEvSt12_Index_tupleIJXspT_EEE",
        "void std::thread::_Invoker<std::tuple<main::{lambda()#1}> >::_M_invoke<0ul>(std::_Index_tuple<0ul>)",
    )]);
}

#[test]
fn reference_to_nested_class_follows_the_whole_name() {
    assert_demangles(&[
        ("_Z1fN1A1BERNS0_1CE", "f(A::B, A::B::C&)"),
        ("_Z1fN1A1BEPNS0_1CIiEE", "f(A::B, A::B::C<int>*)"),
        ("_Z1fN1A1BEPKNS0_1C1DE", "f(A::B, A::B::C::D const*)"),
    ]);
}

#[test]
fn std_class_template_member_after_sr() {
    assert_demangles(&[(
        "_ZSt4swapINSt6thread2idEENSt9enable_ifIXsrSt6__and_IJSt6__not_ISt15__is_tuple_likeIT_EESt21is_move_constructibleIS6_ESt18is_move_assignableIS6_EEE5valueEvE4typeERS6_SG_",
        "std::enable_if<std::__and_<std::__not_<std::__is_tuple_like<std::thread::id> >, std::is_move_constructible<std::thread::id>, std::is_move_assignable<std::thread::id> >::value, void>::type std::swap<std::thread::id>(std::thread::id&, std::thread::id&)",
    )]);
}

#[test]
fn clone_numbers_are_kept_as_written() {
    assert_demangles(&[
        (
            "_Z3addii.llvm.15167162746041251166",
            "add(int, int) [clone .llvm.15167162746041251166]",
        ),
        ("_Z3addii.part.01", "add(int, int) [clone .part.01]"),
        (
            "_Z3addii.constprop.0.isra.0",
            "add(int, int) [clone .constprop.0] [clone .isra.0]",
        ),
    ]);
}

#[test]
fn expand_std_substitutions() {
    // The default is unchanged.
    assert_demangles(&[("_ZNKSs4sizeEv", "std::string::size() const")]);
    assert_demangles_like_cxxfilt(&[
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
    ]);
}

#[test]
fn libiberty_spelling() {
    // The defaults are unchanged.
    assert_demangles(&[
        (
            "_ZThn8_N1A1fEv",
            "{virtual override thunk({offset(-8)}, A::f())}",
        ),
        ("_Z1fILm5EEvv", "void f<(unsigned long)5>()"),
        ("_Z1fDn", "f(std::nullptr_t)"),
    ]);
    assert_demangles_like_cxxfilt(&[
        ("_ZThn8_N1A1fEv", "non-virtual thunk to A::f()"),
        ("_ZTv0_n24_N1A1fEv", "virtual thunk to A::f()"),
        ("_ZTch0_h8_N1A1fEv", "covariant return thunk to A::f()"),
        ("_ZTV1A", "vtable for A"),
        ("_ZTT1A", "VTT for A"),
        (
            "_Z1fILj3ELl4ELm5ELx6ELy7ELi8ELc65ELb1EEvv",
            "void f<3u, 4l, 5ul, 6ll, 7ull, 8, (char)65, true>()",
        ),
        ("_Z1fILln5EEvv", "void f<-5l>()"),
        ("_Z1fDn", "f(decltype(nullptr))"),
    ]);
}
