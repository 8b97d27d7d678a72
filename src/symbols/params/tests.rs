//! The classifier on real DWARF: tests/fixtures/values.c and values_cxx.cpp
//! built with -g -O0 (cached next to the test binary), every function's
//! slots and formats checked against the SysV ABI.

use std::path::Path;

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
    let module = read_module(Path::new("/proc/self/exe")).expect("reading the test binary");
    let main = module.functions.iter().find(|s| s.name == "main");
    if let Some(main) = main {
        // Rust's main is described, with no C parameters to mis-place;
        // what matters is that asking never fails.
        let _ = DebugInfo::new().values(&module, main.vaddr);
    }
    let mut info = DebugInfo::new();
    assert_eq!(info.values(&module, 1), None);
}
