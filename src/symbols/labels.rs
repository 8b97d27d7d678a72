//! Names a user can tell apart. Two functions of one module that would show
//! the same name (two `static helper()` in different files; the complete,
//! base and deleting destructors of a class, which demangle alike) get a
//! tag: the C++ structor kind (`[D0]`), else where they are defined
//! (`[a.c:3]`, from debug info), else their address (`[0x1139]`). The tag is
//! part of [`Function::name`], set once when a module's functions are
//! numbered: every report (summary, JSON, call graph, flame graph) shows the
//! same names, and a trace file carries them.

use std::collections::HashMap;

use crate::model::Function;

/// Tags the functions of `functions` (all of one module) whose names clash.
/// A clashing function without a source gets one from `source_of` (its
/// address), so the tag is the same whether or not the run asked for
/// sources.
pub fn tell_apart(functions: &mut [Function], source_of: &mut dyn FnMut(u64) -> Option<String>) {
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, f) in functions.iter().enumerate() {
        groups.entry(f.name.as_str()).or_default().push(i);
    }
    let mut clashes: Vec<Vec<usize>> = groups.into_values().filter(|g| g.len() > 1).collect();
    clashes.sort(); // deterministic, whatever the hash order
    for group in clashes {
        // Structor kinds need no debug info: the DWARF is read only for
        // clashes they do not settle.
        let kinds = group.iter().map(|&i| structor_kind(&functions[i].raw_name));
        if distinct(kinds.collect()).is_none() {
            for &i in &group {
                let f = &mut functions[i];
                if f.source.is_none() && f.kind == crate::model::FuncKind::Function {
                    f.source = source_of(f.addr);
                }
            }
        }
        let tags = tags(&group.iter().map(|&i| &functions[i]).collect::<Vec<_>>());
        for (&i, tag) in group.iter().zip(tags) {
            let f = &mut functions[i];
            f.name = format!("{} [{tag}]", f.name);
        }
    }
}

/// One tag per function of a group sharing a name, distinct when the
/// functions can be told apart at all.
fn tags(group: &[&Function]) -> Vec<String> {
    let kinds: Vec<Option<&str>> = group.iter().map(|f| structor_kind(&f.raw_name)).collect();
    if let Some(kinds) = distinct(kinds.clone()) {
        return kinds;
    }
    let sources: Vec<Option<String>> = group.iter().map(|f| f.short_source()).collect();
    let place = |i: usize, where_: String| match kinds[i] {
        Some(kind) => format!("{kind} {where_}"),
        None => where_,
    };
    let with_sources: Vec<Option<String>> = (0..group.len())
        .map(|i| sources[i].clone().map(|s| place(i, s)))
        .collect();
    distinct(with_sources).unwrap_or_else(|| {
        let address = |i: usize| place(i, format!("{:#x}", group[i].addr));
        (0..group.len()).map(address).collect()
    })
}

/// The values when every one is there and none repeats.
fn distinct<T: Into<String> + Clone + Eq + std::hash::Hash>(
    values: Vec<Option<T>>,
) -> Option<Vec<String>> {
    let all: Vec<T> = values.into_iter().collect::<Option<_>>()?;
    let unique: std::collections::HashSet<&T> = all.iter().collect();
    (unique.len() == all.len()).then(|| all.into_iter().map(Into::into).collect())
}

/// The Itanium ABI kind of a constructor or destructor symbol (`C1`
/// complete, `C2` base, `D0` deleting, `D1` complete, `D2` base destructor),
/// which the demangled name does not show. Scans the nested name, skipping
/// source names by their length, for `C1`..`C5`/`D0`..`D5` followed by the
/// end of the name (`E`), an ABI tag (`B`) or template arguments (`I`).
pub fn structor_kind(raw: &str) -> Option<&str> {
    let b = raw.strip_prefix("_Z")?.as_bytes();
    let base = raw.len() - b.len();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'0'..=b'9' => {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let len: usize = raw[base + start..base + i].parse().ok()?;
                i += len;
            }
            // A substitution: S_, S<seq-id>_, or St/Sa/Ss/...
            b'S' if b
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_') =>
            {
                while i < b.len() && b[i] != b'_' {
                    i += 1;
                }
                i += 1;
            }
            b'S' => i += 2,
            c @ (b'C' | b'D') => {
                let digit = b.get(i + 1).copied().unwrap_or(0);
                let ok_digit = if c == b'C' { b'1'..=b'5' } else { b'0'..=b'5' };
                let next = b.get(i + 2).copied().unwrap_or(b'E');
                if ok_digit.contains(&digit) && matches!(next, b'E' | b'B' | b'I') {
                    return raw.get(base + i..base + i + 2);
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FuncKind;

    fn f(name: &str, raw: &str, addr: u64, source: Option<&str>) -> Function {
        Function {
            module: 0,
            name: name.into(),
            raw_name: raw.into(),
            addr,
            size: 8,
            kind: FuncKind::Function,
            library: None,
            source: source.map(str::to_owned),
        }
    }

    fn names(functions: &[Function]) -> Vec<&str> {
        functions.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn structor_kinds_are_read_from_the_mangled_name() {
        let cases = [
            ("_ZN4BaseD0Ev", Some("D0")),
            ("_ZN4BaseD1Ev", Some("D1")),
            ("_ZN2ns6CircleC2Ed", Some("C2")),
            ("_ZNSt6vectorIiSaIiEED2Ev", Some("D2")),
            (
                "_ZNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEC2IS3_EEPKcRKS3_",
                Some("C2"),
            ),
            ("_ZN4ABCD3getEv", None), // a name ending in D is no destructor
            ("_ZN3Foo2C1Ev", None),   // nor is a method called C1
            ("_Z3addii", None),
            ("main", None),
        ];
        for (raw, kind) in cases {
            assert_eq!(structor_kind(raw), kind, "{raw}");
        }
    }

    #[test]
    fn sources_are_asked_only_for_clashes_kinds_do_not_settle() {
        let mut functions = vec![
            f("Base::~Base()", "_ZN4BaseD0Ev", 0x10, None),
            f("Base::~Base()", "_ZN4BaseD1Ev", 0x20, None),
            f("helper", "helper", 0x30, None),
            f("helper", "helper", 0x40, None),
        ];
        let mut asked = Vec::new();
        tell_apart(&mut functions, &mut |addr| {
            asked.push(addr);
            Some(format!("/src/h{addr:x}.c:1"))
        });
        assert_eq!(asked, [0x30, 0x40]);
        assert_eq!(
            names(&functions),
            [
                "Base::~Base() [D0]",
                "Base::~Base() [D1]",
                "helper [h30.c:1]",
                "helper [h40.c:1]"
            ]
        );
    }

    #[test]
    fn clashing_names_get_a_kind_a_source_or_an_address() {
        let mut functions = vec![
            f("Base::~Base()", "_ZN4BaseD0Ev", 0x10, Some("/src/b.cc:4")),
            f("Base::~Base()", "_ZN4BaseD1Ev", 0x20, Some("/src/b.cc:4")),
            f("helper", "helper", 0x30, Some("/src/a.c:3")),
            f("helper", "helper", 0x40, Some("/src/b.c:3")),
            f("twin", "twin", 0x1139, None),
            f("twin", "twin", 0x1150, Some("/src/t.c:9")),
            f("main", "main", 0x50, Some("/src/m.c:1")),
        ];
        tell_apart(&mut functions, &mut |_| None);
        assert_eq!(
            names(&functions),
            [
                "Base::~Base() [D0]",
                "Base::~Base() [D1]",
                "helper [a.c:3]",
                "helper [b.c:3]",
                "twin [0x1139]",
                "twin [0x1150]",
                "main",
            ]
        );
    }
}
