//! Requests against values.c's traced functions: which get values, from
//! where, and the one-line errors and the way out.

use super::*;
use crate::options::Filter;
use crate::symbols::testutil::built;
use crate::symbols::{self, Numbering, Selector, read_module};
use crate::values::{Format, Slot, spec};

fn request(at: ValueAt, arg: &str) -> ValueRequest {
    let (pattern, list) = match arg.rsplit_once('@') {
        Some((_, "plt")) | None => (arg, None),
        Some((p, l)) => (p, Some(l)),
    };
    let spec = list.map(|l| match at {
        ValueAt::Entry => spec::parse_args(l).unwrap(),
        ValueAt::Return => vec![spec::parse_ret(l).unwrap()],
    });
    ValueRequest {
        pattern: pattern.to_owned(),
        at,
        spec,
    }
}

fn a(arg: &str) -> ValueRequest {
    request(ValueAt::Entry, arg)
}

fn r(arg: &str) -> ValueRequest {
    request(ValueAt::Return, arg)
}

/// values.c's table with `requests` filled in, or the error.
fn filled(requests: &[ValueRequest]) -> Result<FuncTable> {
    filled_in(&built("gcc", "values.c"), requests)
}

fn filled_in(exe: &std::path::Path, requests: &[ValueRequest]) -> Result<FuncTable> {
    let module = read_module(exe).expect("reading the fixture");
    let selector = Selector::new(&Filter::default()).expect("no globs");
    let selection = symbols::select(&module, &[], &selector);
    let mut table = symbols::probe_set(&selection, Numbering::default()).table;
    let mut debug = DebugInfo::new();
    fill(
        &mut table,
        std::slice::from_ref(&module),
        &mut debug,
        requests,
        false,
    )?;
    Ok(table)
}

fn slots(values: &FuncValues) -> Vec<Slot> {
    values.args.iter().map(|a| a.slot).collect()
}

#[test]
fn dwarf_fills_the_matching_functions_only() {
    let table = filled(&[a("pa*"), r("half"), r("nothing")]).unwrap();
    let got = with_values(&table);
    let names: Vec<&str> = got.iter().map(|(n, _)| *n).collect();
    // nothing() is void: no return value to read.
    assert_eq!(names, ["parse", "paint", "pair_sum", "half"]);
    let (_, parse) = got[0];
    assert_eq!(slots(parse), [Slot::Reg(0), Slot::Reg(1)]);
    assert_eq!(parse.ret, None, "-A alone reads no return value");
    let (_, half) = got[3];
    assert!(half.args.is_empty());
    assert_eq!(half.ret.as_ref().map(|r| r.slot), Some(Slot::Sse(0)));
}

#[test]
fn the_last_request_for_a_function_wins_and_registers_replace_dwarf() {
    let table = filled(&[a("parse"), a("parse@arg2/x"), r("parse@retval/u8")]).unwrap();
    let got = with_values(&table);
    let [(_, parse)] = got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(parse.args[0].name, None);
    assert_eq!(parse.args[0].slot, Slot::Reg(1));
    assert_eq!(parse.args[0].format, Format::Hex(8));
    assert_eq!(
        parse.ret.as_ref().map(|r| r.format.clone()),
        Some(Format::Unsigned(1))
    );
}

#[test]
fn a_request_matching_nothing_names_the_way_out() {
    let err = filled(&[a("parse"), a("nomatch*")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "-A 'nomatch*' matches no traced function (see --list; -A applies to the functions -f \
         selects, and to a library dlopen loads later only with --nest-lib)"
    );
    let err = filled(&[r("x[")]).unwrap_err().to_string();
    assert!(err.starts_with("-R 'x[' is not a valid glob"), "{err}");
}

#[test]
fn stubs_without_dwarf_need_registers() {
    let err = filled(&[a("printf@plt")]).unwrap_err().to_string();
    assert_eq!(
        err,
        "-A 'printf@plt': printf@plt, the function it matches, has no debug info: name the \
         registers (-A 'printf@plt@arg1,arg2'), or give the debug files with --debug-dir"
    );
    let table = filled(&[a("printf@plt@arg1/s")]).unwrap();
    let got = with_values(&table);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.args[0].format, Format::Str);
    // Some with and some without: a warning, and the described ones filled.
    let table = filled(&[a("p*")]).unwrap();
    assert!(with_values(&table).iter().any(|(n, _)| *n == "point"));
    assert!(!with_values(&table).iter().any(|(n, _)| n.ends_with("@plt")));
}

#[test]
fn more_than_eight_arguments_are_cut() {
    let nine = "eight@arg1,arg2,arg3,arg4,arg5,arg6,arg7,arg8";
    let table = filled(&[a(nine)]).unwrap();
    assert_eq!(with_values(&table)[0].1.args.len(), 8);
    let mut long = a("eight");
    long.spec = Some(vec![long_arg(); 10]);
    let table = filled(&[long]).unwrap();
    assert_eq!(with_values(&table)[0].1.args.len(), VALUES_MAX);
}

fn long_arg() -> crate::values::ValueSpec {
    crate::values::ValueSpec {
        name: None,
        slot: Slot::Reg(0),
        format: Format::Signed(8),
    }
}

#[test]
fn compiler_clones_get_no_values_from_dwarf() {
    let fx = crate::symbols::testutil::Fixture::new();
    let exe = fx.cc(
        "clones",
        crate::symbols::testutil::COLD_AND_ALIASES,
        &["-O2", "-g"],
    );
    let table = filled_in(&exe, &[a("scale*"), a("check")]).unwrap();
    let got = with_values(&table);
    let names: Vec<&str> = got.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["check"],
        "scale.constprop.0 does not take scale's arguments"
    );
    // Registers the user names are read as given, clone or not.
    let table = filled_in(&exe, &[a("scale*@arg1")]).unwrap();
    assert_eq!(with_values(&table).len(), 1);
}
