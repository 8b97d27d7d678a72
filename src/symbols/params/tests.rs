//! The classifier on real DWARF: tests/fixtures/values.c and values_cxx.cpp
//! built with -g -O0 (cached next to the test binary), every function's
//! slots and formats checked against the SysV ABI.

use crate::symbols::testutil::built;
use crate::symbols::{DebugInfo, ModuleSymbols, read_module};
use crate::values::{Format, FuncValues, Slot, ValueSpec};

fn values_of(module: &ModuleSymbols, info: &mut DebugInfo, name: &str) -> FuncValues {
    let sym = (module.functions.iter())
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} not in the fixture"));
    info.values(module, sym.vaddr)
        .unwrap_or_else(|| panic!("no values for {name}"))
}

fn named(name: &str, slot: Slot, format: Format) -> ValueSpec {
    ValueSpec {
        name: Some(name.to_owned()),
        slot,
        format,
    }
}

fn ret(slot: Slot, format: Format) -> Option<ValueSpec> {
    Some(ValueSpec {
        name: None,
        slot,
        format,
    })
}

fn slots(values: &FuncValues) -> Vec<Slot> {
    values.args.iter().map(|a| a.slot).collect()
}

#[test]
fn c_arguments_and_returns_follow_the_sysv_abi() {
    let module = read_module(&built("gcc", "values.c")).expect("reading values.c's binary");
    let mut info = DebugInfo::new();
    let mut of = |name: &str| values_of(&module, &mut info, name);
    use Format::*;
    use Slot::*;

    let parse = of("parse");
    assert_eq!(
        parse.args,
        [named("buf", Reg(0), Str), named("len", Reg(1), Signed(4))]
    );
    assert_eq!(parse.ret, ret(Ret(0), Signed(4)));
    assert_eq!(of("flag").args, [named("on", Reg(0), Bool)]);
    assert_eq!(of("flag").ret, ret(Ret(0), Bool));
    assert_eq!(of("grade").args, [named("c", Reg(0), Char)]);
    let colors = vec![(0, "RED".into()), (2, "GREEN".into()), (7, "BLUE".into())];
    let color = Enum {
        size: 4,
        names: colors,
    };
    assert_eq!(of("paint").args, [named("c", Reg(0), color.clone())]);
    assert_eq!(of("paint").ret, ret(Ret(0), color));
    assert_eq!(of("point").args, [named("p", Reg(0), Pointer)]);
    assert_eq!(of("point").ret, ret(Ret(0), Pointer));

    let mix = of("mix");
    assert_eq!(
        mix.args,
        [
            named("a", Reg(0), Signed(4)),
            named("b", Sse(0), Float(8)),
            named("c", Reg(1), Signed(8)),
            named("d", Sse(1), Float(4)),
        ]
    );
    assert_eq!(mix.ret, ret(Sse(0), Float(8)));

    let eight = of("eight");
    let mut expected: Vec<Slot> = (0..6).map(Reg).collect();
    expected.extend([Stack(8), Stack(16)]);
    assert_eq!(slots(&eight), expected);
    assert_eq!(eight.args[7].name.as_deref(), Some("a8"));

    assert_eq!(of("pair_sum").args, [named("p", Reg(0), Aggregate)]);
    let big_sum = of("big_sum");
    assert_eq!(
        big_sum.args,
        [named("b", Memory, Aggregate), named("k", Reg(0), Signed(4))]
    );
    let make_big = of("make_big");
    assert_eq!(slots(&make_big), [Reg(1), Reg(2)]);
    assert_eq!(make_big.ret, ret(Ret(0), Aggregate));
    assert_eq!(of("nothing"), FuncValues::default());
    assert_eq!(of("name").ret, ret(Ret(0), Str));
    let half = of("half");
    assert_eq!(half.args, [named("x", Sse(0), Float(8))]);
    assert_eq!(half.ret, ret(Sse(0), Float(8)));
    assert!(info.take_warnings().is_empty());
}

#[test]
fn cxx_this_comes_first_and_non_trivial_classes_go_by_address() {
    let module = read_module(&built("g++", "values_cxx.cpp")).expect("reading values_cxx");
    let mut info = DebugInfo::new();
    let add = values_of(&module, &mut info, "Counter::add(int)");
    assert_eq!(
        add.args,
        [
            named("this", Slot::Reg(0), Format::Pointer),
            named("k", Slot::Reg(1), Format::Signed(4)),
        ]
    );
    assert_eq!(add.ret, ret(Slot::Ret(0), Format::Signed(4)));
    let skip = values_of(&module, &mut info, "skip(int, Empty, int)");
    assert_eq!(
        skip.args.iter().map(|a| a.slot).collect::<Vec<_>>(),
        [Slot::Reg(0), Slot::Memory, Slot::Reg(1)],
        "an empty class takes no register"
    );
    let consume = values_of(&module, &mut info, "consume(Handle, int)");
    assert_eq!(
        consume.args,
        [
            named("h", Slot::Reg(0), Format::Pointer),
            named("k", Slot::Reg(1), Format::Signed(4)),
        ]
    );
}

#[test]
fn no_debug_info_is_no_values() {
    let fx = crate::symbols::testutil::Fixture::new();
    let src =
        "__attribute__((noipa)) int f(int x) { return x; }\nint main(void) { return f(1); }\n";
    let exe = fx.cc("nodebug", src, &["-g0"]);
    let module = read_module(&exe).expect("reading nodebug");
    let f = module.functions.iter().find(|s| s.name == "f").expect("f");
    let mut info = DebugInfo::new();
    assert_eq!(info.values(&module, f.vaddr), None);
    assert_eq!(info.values(&module, 1), None);
}

/// The ABI's corners the fixture does not need end to end.
const CORNERS: &str = r#"
struct fl { float a, b; };
struct dl { double a; long b; };
struct dd { double a, b; };
struct __attribute__((packed)) pk { char c; int i; };
struct arr { char tag[3]; float f; };
__attribute__((noipa)) int floats(struct fl x, int k) { return (int)x.a + k; }
__attribute__((noipa)) int mixed(struct dl x, int k) { return (int)x.a + k; }
__attribute__((noipa)) double doubles(struct dd x, double y) { return x.a + y; }
__attribute__((noipa)) int packed(struct pk x, int k) { return x.i + k; }
__attribute__((noipa)) int array(struct arr x, int k) { return x.tag[0] + k; }
__attribute__((noipa)) int ld(long double x, int k) { return (int)x + k; }
__attribute__((noipa)) long double ld_ret(int k) { return k; }
__attribute__((noipa)) int wide(int a, __int128 b, int c) { return a + (int)b + c; }
__attribute__((noipa)) int vsum(int n, ...) { return n; }
__attribute__((noipa)) double nine(double a, double b, double c, double d, double e,
                                   double f, double g, double h, double i) { return a + i; }
__attribute__((noipa)) struct dd pair_ret(int k) { struct dd r = { k, k }; return r; }
int main(void) {
    struct fl f = { 1, 2 }; struct dl m = { 1, 2 }; struct dd d = { 1, 2 };
    struct pk p = { 1, 2 }; struct arr a = { "ab", 1 };
    return floats(f, 1) + mixed(m, 1) + (int)doubles(d, 1) + packed(p, 1) + array(a, 1)
        + ld(1.0L, 1) + (int)ld_ret(1) + wide(1, 2, 3) + vsum(1, 2) + (int)nine(1, 2, 3, 4, 5, 6, 7, 8, 9)
        + (int)pair_ret(1).a;
}
"#;

#[test]
fn aggregates_long_double_int128_and_varargs_at_o0_and_o2() {
    use Format::*;
    use Slot::*;
    let fx = crate::symbols::testutil::Fixture::new();
    for opt in ["-O0", "-O2"] {
        let exe = fx.cc(&format!("corners{opt}"), CORNERS, &["-g", opt]);
        let module = read_module(&exe).expect("reading corners");
        let mut info = DebugInfo::new();
        let mut of = |name: &str| slots(&values_of(&module, &mut info, name));
        assert_eq!(of("floats"), [Sse(0), Reg(0)], "{opt}");
        // A double then a long: xmm0 and rdi, so k is in rsi.
        assert_eq!(of("mixed"), [Sse(0), Reg(1)], "{opt}");
        assert_eq!(of("doubles"), [Sse(0), Sse(2)], "{opt}");
        assert_eq!(of("packed"), [Memory, Reg(0)], "{opt}");
        // tag[3] and f share the first eightbyte: INTEGER.
        assert_eq!(of("array"), [Reg(0), Reg(1)], "{opt}");
        assert_eq!(of("ld"), [Memory, Reg(0)], "{opt}");
        assert_eq!(of("wide"), [Reg(0), Reg(1), Reg(3)], "{opt}");
        assert_eq!(of("vsum"), [Reg(0)], "{opt}");
        let mut nine: Vec<Slot> = (0..8).map(Sse).collect();
        nine.push(Stack(8));
        assert_eq!(of("nine"), nine, "{opt}");
        let ld_ret = values_of(&module, &mut info, "ld_ret");
        assert_eq!(ld_ret.ret, ret(Memory, Float(16)), "{opt}");
        assert_eq!(slots(&ld_ret), [Reg(0)]);
        let pair_ret = values_of(&module, &mut info, "pair_ret");
        assert_eq!(pair_ret.ret, ret(Sse(0), Aggregate), "{opt}");
        assert_eq!(
            slots(&pair_ret),
            [Reg(0)],
            "{opt}: a register return takes no rdi"
        );
    }
}

#[test]
fn an_out_of_line_copy_takes_names_and_types_from_its_abstract_origin() {
    const SRC: &str = r#"
static inline long sq(long x, const char *why) { (void)why; return x * x; }
__attribute__((noinline)) long outer(long x) { return sq(x, "in") + 1; }
long (*volatile keep)(long, const char *) = sq;
int main(int argc, char **argv) { (void)argv; return (int)(outer(argc) + keep(argc, "out")); }
"#;
    let fx = crate::symbols::testutil::Fixture::new();
    let exe = fx.cc("origin", SRC, &["-O2", "-g"]);
    let module = read_module(&exe).expect("reading origin");
    let mut info = DebugInfo::new();
    let sq = values_of(&module, &mut info, "sq");
    assert_eq!(
        sq.args,
        [
            named("x", Slot::Reg(0), Format::Signed(8)),
            named("why", Slot::Reg(1), Format::Str),
        ]
    );
    assert_eq!(sq.ret, ret(Slot::Ret(0), Format::Signed(8)));
}
