//! How each traced function's end is seen, decided in one place: from the
//! user's `--exit` and what the function's code allows (symbols'
//! [`ExitFacts`]), the uprobe_multi links to make, in the order the kernel
//! needs them. The probe stage only attaches what this asks for.
//!
//! `--exit=auto` hijacks every return through a session link, as cheap as
//! the kernel allows, and repairs what hijacking breaks: BPF declines the
//! returns of calls nested deeper than the kernel's 64 pending returns,
//! whose ret sites are then attached on demand ([`on_demand_links`]); probes
//! on the unwinder and longjmp ([`helper_links`]) put real return addresses
//! back while an unwinder walks the stack and end the frames an exception or
//! a longjmp leaves, where and when they leave them. Only functions that
//! return twice get ret sites from the start.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::model::{FuncId, FuncKind};
use crate::options::ExitMode;
use crate::symbols::libc::Helper;
use crate::symbols::{AttachList, ExitFacts, HelperList, ModuleSymbols, ProbeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Entry,
    /// A uretprobe, placed at the function's entry.
    Return,
    /// A plain probe on a `ret` or tail-jump instruction.
    RetSite,
    /// A plain probe on the instruction after a call (for PLT stubs, whose
    /// function returns from another module, and functions only ever called
    /// directly): sp is one slot above the entry's, as for a uretprobe, so
    /// it shares that program.
    CallReturn,
    /// Entry and return in one session link.
    Session,
    /// A probe on the unwinder or longjmp (--exit=auto).
    Helper(Helper),
}

impl ProbeKind {
    /// Whether a link of this kind has one probe per traced function.
    pub fn counts_functions(self) -> bool {
        matches!(self, ProbeKind::Entry | ProbeKind::Session)
    }
}

/// One uprobe_multi link to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    pub kind: ProbeKind,
    pub list: AttachList,
    /// Entry probes of functions whose exits are probed at their ret sites:
    /// BPF then expects no hijacked return for them.
    pub ret_site_exits: bool,
    /// Entry probes of short calls (symbols' [`ExitFacts::short`]), which
    /// BPF lets use the hijacks it keeps above the others' budget.
    pub short_calls: bool,
    /// Entry probes on the calls to a PLT stub ([`ProbeSet`]'s
    /// `call_site_entries`): the stack pointer is one slot above the
    /// stub's entry value there.
    pub at_calls: bool,
    /// Ret sites that are tail jumps to a traced function whose own return
    /// is seen at the same slot ([`chain_sites`]): BPF keeps the jumping
    /// frame open, to end with that call. On entries: functions ended where
    /// their calls return whose tail jumps go unprobed, so their frames
    /// stay open under the call they jump to from the start.
    pub chains: bool,
    /// Entries at calls to a stub that run into a `ret` of their traced
    /// caller ([`ProbeSet`]'s `into_caller_calls`): the caller's exit ends
    /// them, where their own return would be single-stepped.
    pub with_caller: bool,
    /// Ret sites that stand in for a `ret`: branches into its epilogue
    /// ([`ProbeSet`]'s `early_exits`), where BPF finds the `ret`'s stack
    /// pointer in the cookie, and calls returning into it (`chain_calls`),
    /// where BPF chains the frame to the callee's.
    pub early: bool,
}

impl LinkSpec {
    /// An empty entry link with no flags, to build others from.
    fn plain() -> LinkSpec {
        LinkSpec {
            kind: ProbeKind::Entry,
            list: AttachList::default(),
            ret_site_exits: false,
            short_calls: false,
            at_calls: false,
            chains: false,
            with_caller: false,
            early: false,
        }
    }

    /// The same link without the probes of the functions `drop` names.
    pub fn without(&self, drop: impl Fn(FuncId) -> bool) -> LinkSpec {
        LinkSpec {
            list: keep(&self.list, |id| !drop(id)),
            ..self.clone()
        }
    }
}

/// How function `facts`' exit is seen under `exit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitProbe {
    /// Probes on its ret sites: the return address is left alone.
    RetSites,
    /// Its return address is hijacked (a uretprobe or a session return).
    Hijack,
    /// Not traced at all: it returns twice, and hijacking its return
    /// address would kill the program, while ret sites were not asked for.
    Untraced,
}

pub fn exit_probe(facts: ExitFacts, exit: ExitMode) -> ExitProbe {
    let by_ret_site = match exit {
        ExitMode::RetSites => true,
        // What returns twice saves the return address it was called with;
        // an unwinder that meets a hijacked return address aborts.
        ExitMode::Auto => facts.returns_twice || !facts.hijack_safe,
        ExitMode::Uretprobe | ExitMode::Session => false,
    };
    match by_ret_site {
        true => ExitProbe::RetSites,
        // Hijacking the return address of a function that returns twice
        // kills the program: such functions are not traced that way at all.
        false if facts.returns_twice => ExitProbe::Untraced,
        false => ExitProbe::Hijack,
    }
}

/// The functions of `set` (not PLT stubs) whose exits `exit` sees where
/// their calls return rather than at their `ret`s: those only ever called
/// directly (Symbol's `call_returns`), under `auto`. The site after a call
/// is often an emulated instruction, while a `ret` is always single-stepped.
/// `--exit=ret-sites` keeps the `ret`s it names.
pub fn ends_at_call_returns(set: &ProbeSet, exit: ExitMode) -> HashSet<FuncId> {
    if exit != ExitMode::Auto {
        return HashSet::new();
    }
    (set.call_returns.iter())
        .flat_map(|l| l.ids.iter().copied())
        .filter(|&id| !stub(set, id))
        .collect()
}

/// Whether `id` is one of `set`'s PLT stubs.
fn stub(set: &ProbeSet, id: FuncId) -> bool {
    let index = id.0.checked_sub(set.first.0).map(|i| i as usize);
    let function = index.and_then(|i| set.table.functions.get(i));
    function.is_some_and(|f| f.kind == FuncKind::Plt)
}

/// The PLT stubs of `set` entered where code reaches them under `exit`:
/// at their calls ([`ProbeSet`]'s `call_site_entries`), which end where
/// they return, and at the direct jumps to them (`jump_entries`), which end
/// as the stub's exit facts say. Those reached only so whose exits are seen
/// at ret sites, and under `auto` those jumped to whose jumps hijack: the
/// jump site hijacks the return address the stub's own entry would.
pub fn entered_at_calls(set: &ProbeSet, exit: ExitMode) -> HashSet<FuncId> {
    let jumped: HashSet<FuncId> = (set.jump_entries.iter())
        .flat_map(|l| l.ids.iter().copied())
        .collect();
    (set.call_site_entries.iter().chain(&set.jump_entries))
        .flat_map(|l| l.ids.iter().copied())
        .filter(|&id| match exit_probe(set.exit_facts(id), exit) {
            ExitProbe::RetSites => true,
            ExitProbe::Hijack => exit == ExitMode::Auto && jumped.contains(&id),
            ExitProbe::Untraced => false,
        })
        .collect()
}

/// The links that trace `set` under `exit`. Exit probes come before the
/// entries: where a function's entry and a ret site share an offset (a body
/// that is just `ret`), the kernel runs the link attached last first, and
/// the entry must be seen before the exit. Entries at the calls to a PLT
/// stub come before the exits: such a call can be the call return of the
/// call just before it, whose exit must be seen first; so do the entries at
/// the jumps to one, each also a ret site of the function that jumps.
pub fn links(set: &ProbeSet, exit: ExitMode) -> Vec<LinkSpec> {
    let how = |id| exit_probe(set.exit_facts(id), exit);
    let by_ret_site = |id| how(id) == ExitProbe::RetSites;
    let at_returns = ends_at_call_returns(set, exit);
    let hijacked = |id| how(id) == ExitProbe::Hijack;
    // Only auto keeps hijacks for short calls (bpf's SHORT_BUDGET).
    let short = |id| exit == ExitMode::Auto && set.exit_facts(id).short;
    let at_calls = entered_at_calls(set, exit);
    let mut specs = Vec::new();
    let mut push = |kind, list: AttachList, how: LinkSpec| {
        if !list.offsets.is_empty() {
            specs.push(LinkSpec { kind, list, ..how });
        }
    };
    let plain = LinkSpec::plain();
    let ret_site_exits = LinkSpec {
        ret_site_exits: true,
        ..plain.clone()
    };
    // Functions ended where their calls return that may leave by a tail
    // jump: their frames chain from the entry (bpf's COOKIE_CHAIN).
    let chaining = |id| at_returns.contains(&id) && set.exit_facts(id).tail_calls;
    let into_caller = into_caller(set);
    for list in &set.call_site_entries {
        let how = LinkSpec {
            at_calls: true,
            ..ret_site_exits.clone()
        };
        let entered = keep(list, |id| at_calls.contains(&id));
        let ends_with_caller = |offset, _| into_caller.0.contains(&(list.path.as_path(), offset));
        let [(own, how), (with_caller, _)] = split_chained(&entered, &how, ends_with_caller);
        for (list, how) in split_chained(&own, &how, |_, id| chaining(id)) {
            push(ProbeKind::Entry, list, how);
        }
        let how = LinkSpec {
            with_caller: true,
            ..how
        };
        push(ProbeKind::Entry, with_caller, how);
    }
    let short_calls = LinkSpec {
        short_calls: true,
        ..plain.clone()
    };
    for list in &set.jump_entries {
        let entered = keep(list, |id| at_calls.contains(&id));
        let long = |id| hijacked(id) && !short(id);
        push(ProbeKind::Session, keep(&entered, long), plain.clone());
        let short = |id| hijacked(id) && short(id);
        push(
            ProbeKind::Session,
            keep(&entered, short),
            short_calls.clone(),
        );
        push(
            ProbeKind::Entry,
            keep(&entered, by_ret_site),
            ret_site_exits.clone(),
        );
    }
    let watched = watched(set, exit);
    let chains = chain_sites(set, exit, &watched);
    for list in &set.ret_sites {
        let rets = keep(list, |id| by_ret_site(id) && !at_returns.contains(&id));
        let chained = |offset, _| chains.contains(&(list.path.as_path(), offset));
        for (list, how) in split_chained(&rets, &ret_site_exits, chained) {
            push(ProbeKind::RetSite, list, how);
        }
    }
    for list in &set.call_returns {
        let ends_there = |id| {
            at_calls.contains(&id) || by_ret_site(id) && (stub(set, id) || at_returns.contains(&id))
        };
        let unprobed = |offset| into_caller.1.contains(&(list.path.as_path(), offset));
        push(
            ProbeKind::CallReturn,
            keep_probes(list, |offset, id| {
                ends_there(id) && !(at_calls.contains(&id) && unprobed(offset))
            }),
            ret_site_exits.clone(),
        );
    }
    for list in &set.watch_returns {
        let list = keep(list, |id| watched.contains(&id));
        push(ProbeKind::CallReturn, list, ret_site_exits.clone());
    }
    for list in &set.entries {
        // A stub entered where code reaches it has no probe of its own.
        let list = &keep(list, |id| !at_calls.contains(&id));
        // A session link is entry and return at once: functions with
        // ret-site exits get a plain entry link instead.
        if matches!(exit, ExitMode::Session | ExitMode::Auto) {
            let long = |id| hijacked(id) && !short(id);
            push(ProbeKind::Session, keep(list, long), plain.clone());
            let short = |id| hijacked(id) && short(id);
            push(ProbeKind::Session, keep(list, short), short_calls.clone());
        } else {
            push(ProbeKind::Return, keep(list, hijacked), plain.clone());
            push(ProbeKind::Entry, keep(list, hijacked), plain.clone());
        }
        let own_entry = keep(list, by_ret_site);
        for (list, how) in split_chained(&own_entry, &ret_site_exits, |_, id| chaining(id)) {
            push(ProbeKind::Entry, list, how);
        }
    }
    specs
}

/// `--exit=auto`: the links that tell BPF about the unwinder and longjmp,
/// one per file and kind (the cookie is the kind).
pub fn helper_links(helpers: &[HelperList]) -> Vec<LinkSpec> {
    let kinds = [
        Helper::UnwindStart,
        Helper::Catch,
        Helper::Freed,
        Helper::Longjmp,
    ];
    let mut specs = Vec::new();
    for list in helpers {
        for kind in kinds {
            let offsets: Vec<u64> = list
                .offsets
                .iter()
                .zip(&list.kinds)
                .filter(|&(_, &k)| k == kind)
                .map(|(&o, _)| o)
                .collect();
            if offsets.is_empty() {
                continue;
            }
            specs.push(LinkSpec {
                kind: ProbeKind::Helper(kind),
                list: AttachList {
                    path: list.path.clone(),
                    offsets,
                    ids: Vec::new(),
                },
                ..LinkSpec::plain()
            });
        }
    }
    specs
}

/// `--exit=auto`: the links that see function `id`'s exits at its ret sites
/// (or, for a PLT stub or a function only ever called directly, where the
/// calls to it return), for calls BPF could not hijack the return of.
/// Empty when it has none (it never returns, or only through an indirect
/// jump) or has them already (a stub entered at its calls, whose jumps
/// hijack): those calls end as unwound.
pub fn on_demand_links(sets: &[ProbeSet], id: FuncId) -> Vec<LinkSpec> {
    let mut specs = Vec::new();
    for set in sets {
        let chains = chain_sites(set, ExitMode::Auto, &watched(set, ExitMode::Auto));
        let at_returns = ends_at_call_returns(set, ExitMode::Auto).contains(&id);
        // A stub entered at its calls has their returns probed already.
        let at_calls = entered_at_calls(set, ExitMode::Auto).contains(&id);
        let lists = [
            (&set.ret_sites, ProbeKind::RetSite),
            (&set.call_returns, ProbeKind::CallReturn),
        ];
        let lists = lists
            .into_iter()
            .filter(|&(_, k)| !at_calls || k != ProbeKind::CallReturn);
        // Branches into its epilogues, and calls returning into them, stand
        // in for the `ret`s they cover: the kernel emulates them, and
        // single-steps a `ret`.
        let covered: HashSet<(&Path, u64)> = (set.early_covers.iter())
            .chain(&set.chain_covers)
            .flat_map(|l| l.offsets.iter().zip(&l.ids).map(move |(&o, &f)| (l, o, f)))
            .filter(|&(_, _, f)| f == id)
            .map(|(l, o, _)| (l.path.as_path(), o))
            .collect();
        for list in set.early_exits.iter().chain(&set.chain_calls) {
            let list = keep(list, |f| f == id);
            if !list.offsets.is_empty() && !at_returns {
                specs.push(LinkSpec {
                    kind: ProbeKind::RetSite,
                    list,
                    ret_site_exits: true,
                    early: true,
                    ..LinkSpec::plain()
                });
            }
        }
        for (lists, kind) in lists {
            let how = LinkSpec {
                kind,
                ret_site_exits: true,
                ..LinkSpec::plain()
            };
            for list in lists {
                let stands = |o| kind == ProbeKind::RetSite && !at_returns && covered.contains(&o);
                let list = &keep_probes(list, |o, _| !stands((list.path.as_path(), o)));
                let chained = |offset, _| chains.contains(&(list.path.as_path(), offset));
                for (list, how) in split_chained(&keep(list, |f| f == id), &how, chained) {
                    // Ended where its calls return, it needs of its ret sites
                    // only the tail jumps that chain its frame to the callee's:
                    // its frame was pushed by its hijacking entry, unchained,
                    // and the callee's entry at the same slot would end it.
                    let needed = !at_returns || kind == ProbeKind::CallReturn || how.chains;
                    if needed && !list.offsets.is_empty() {
                        specs.push(LinkSpec { list, ..how });
                    }
                }
            }
        }
    }
    specs
}

/// `--exit=auto`: the `ret`s of function `id` that its calls into them
/// stood in for ([`ProbeSet`]'s `chain_covers`), for a call deeper than
/// BPF keeps frames (or with `--max-rate`), where it cannot chain the
/// caller's frame to the callee's.
pub fn unchained_links(sets: &[ProbeSet], id: FuncId) -> Vec<LinkSpec> {
    (sets.iter().flat_map(|set| &set.chain_covers))
        .map(|list| keep(list, |f| f == id))
        .filter(|list| !list.offsets.is_empty())
        .map(|list| LinkSpec {
            kind: ProbeKind::RetSite,
            list,
            ret_site_exits: true,
            ..LinkSpec::plain()
        })
        .collect()
}

/// The warnings due before `exit` hijacks every return: one per module of
/// `modules` that has probes in `set` and that something can unwind
/// through (symbols' `can_unwind`), where an unwinder meeting a hijacked
/// return address aborts the program. `auto` and `ret-sites` need none.
pub fn unwind_warnings(modules: &[ModuleSymbols], set: &ProbeSet, exit: ExitMode) -> Vec<String> {
    let option = match exit {
        ExitMode::Uretprobe => "--exit=uretprobe",
        ExitMode::Session => "--exit=session",
        ExitMode::Auto | ExitMode::RetSites => return Vec::new(),
    };
    let probed = |m: &&ModuleSymbols| set.entries.iter().any(|l| l.path == m.path);
    modules
        .iter()
        .filter(probed)
        .filter(|m| m.can_unwind())
        .map(|m| {
            format!(
                "{} can unwind through its frames (C++ exceptions, Rust panics): {option} may abort it; \
                 the default --exit=auto is safe",
                m.path.display()
            )
        })
        .collect()
}

/// The ret sites of `set` (by file and offset) whose tail jumps chain the
/// jumping frame: [`onto_seen_returns`], and the direct tail jumps of a
/// function whose ret sites end its calls and whose direct calls' returns
/// are probed (`watched`, from [`watched`]), wherever they go: a call it jumps to whose own
/// return no probe sees (a library's, an untraced function's) returns where
/// its direct calls do, and the frame ends there with it. Called through a
/// pointer, neither return is seen: the next call at that stack slot finds
/// both frames dead.
fn chain_sites<'s>(
    set: &'s ProbeSet,
    exit: ExitMode,
    watched: &HashSet<FuncId>,
) -> HashSet<(&'s Path, u64)> {
    let mut sites = onto_seen_returns(set, exit);
    for list in &set.watched_jumps {
        for (&offset, id) in list.offsets.iter().zip(&list.ids) {
            if watched.contains(id) {
                sites.insert((list.path.as_path(), offset));
            }
        }
    }
    sites
}

/// The ret sites of `set` that are tail jumps to a traced function whose
/// own return is seen where it returns, at the slot the jump left it: its
/// return is hijacked, or it is a function of the module's with ret sites.
/// A PLT stub whose exit is seen after the calls to it is not: jumped to,
/// it returns where no probe is. Jumps through a pointer chain too: where
/// they go is known only when they go, and a frame that no call ends is
/// found dead as it would be without a probe.
fn onto_seen_returns(set: &ProbeSet, exit: ExitMode) -> HashSet<(&Path, u64)> {
    let with_ret_sites: HashSet<FuncId> =
        set.ret_sites.iter().flat_map(|l| l.ids.clone()).collect();
    let stub = |id: FuncId| stub(set, id);
    let seen_returning = |id| match exit_probe(set.exit_facts(id), exit) {
        ExitProbe::Hijack => true,
        ExitProbe::RetSites => !stub(id) && with_ret_sites.contains(&id),
        ExitProbe::Untraced => false,
    };
    let mut sites: HashSet<(&Path, u64)> = (set.pointer_jumps.iter())
        .flat_map(|l| l.offsets.iter().map(|&o| (l.path.as_path(), o)))
        .collect();
    for list in &set.tail_targets {
        for (&offset, &callee) in list.offsets.iter().zip(&list.ids) {
            if seen_returning(callee) {
                sites.insert((list.path.as_path(), offset));
            }
        }
    }
    sites
}

/// The functions of `set` whose ret sites end their calls under `exit` and
/// whose direct tail jumps lead to code whose return no probe sees: the
/// returns of their direct calls are probed too (ProbeSet's
/// `watch_returns`), and their tail jumps chain ([`chain_sites`]). A jump
/// leads there when it goes to code not traced, to a stub whose exit is
/// seen only after the calls to it, or to a function with ret sites that
/// leads there in turn (its frame chains on the jumping one's slot, and
/// their common return is seen nowhere else). One whose jumps all end at
/// a return seen (hijacked, say) needs no watch, whose probes would only
/// cost a trap at each of its calls.
pub fn watched(set: &ProbeSet, exit: ExitMode) -> HashSet<FuncId> {
    let at_returns = ends_at_call_returns(set, exit);
    let by_ret_site = |id| exit_probe(set.exit_facts(id), exit) == ExitProbe::RetSites;
    let candidates: HashSet<FuncId> = (set.watch_returns.iter())
        .flat_map(|l| l.ids.iter().copied())
        .filter(|&id| by_ret_site(id) && !at_returns.contains(&id))
        .collect();
    let target: HashMap<(&Path, u64), FuncId> = (set.tail_targets.iter())
        .flat_map(|l| {
            l.offsets
                .iter()
                .zip(&l.ids)
                .map(move |(&o, &id)| ((l.path.as_path(), o), id))
        })
        .collect();
    // (jumping function, the traced function it jumps to, if any).
    let jumps: Vec<(FuncId, Option<FuncId>)> = (set.watched_jumps.iter())
        .flat_map(|l| {
            l.offsets
                .iter()
                .zip(&l.ids)
                .map(move |(&o, &id)| (l.path.as_path(), o, id))
        })
        .map(|(path, offset, id)| (id, target.get(&(path, offset)).copied()))
        .collect();
    let lost_at_once = |callee: Option<FuncId>| match callee {
        None => true,
        Some(c) => match exit_probe(set.exit_facts(c), exit) {
            ExitProbe::Hijack => false,
            ExitProbe::RetSites => stub(set, c),
            ExitProbe::Untraced => true,
        },
    };
    let mut leads: HashSet<FuncId> = (jumps.iter())
        .filter(|&&(_, callee)| lost_at_once(callee))
        .map(|&(id, _)| id)
        .collect();
    loop {
        let more: Vec<FuncId> = (jumps.iter())
            .filter(|(id, callee)| {
                !leads.contains(id) && callee.is_some_and(|c| leads.contains(&c))
            })
            .map(|&(id, _)| id)
            .collect();
        if more.is_empty() {
            break;
        }
        leads.extend(more);
    }
    candidates
        .into_iter()
        .filter(|id| leads.contains(id))
        .collect()
}

/// `--max-rate` stops tracing `muted`: the links that see the returns of
/// the stub calls that their exits would have ended ([`into_caller`]).
pub fn muted_caller_links(sets: &[ProbeSet], muted: &[FuncId]) -> Vec<LinkSpec> {
    let mut specs = Vec::new();
    for set in sets {
        let unprobed = into_caller(set).1;
        // The two lists name the same sites in the same order.
        for (returns, callers) in set.into_caller_returns.iter().zip(&set.into_caller_callers) {
            let path = returns.path.as_path();
            let (offsets, ids) = (returns.offsets.iter().zip(&returns.ids).zip(&callers.ids))
                .filter(|&((&o, _), c)| muted.contains(c) && unprobed.contains(&(path, o)))
                .map(|((&o, &id), _)| (o, id))
                .unzip();
            let list = AttachList {
                path: path.to_path_buf(),
                offsets,
                ids,
            };
            if !list.offsets.is_empty() {
                specs.push(LinkSpec {
                    kind: ProbeKind::CallReturn,
                    list,
                    ret_site_exits: true,
                    ..LinkSpec::plain()
                });
            }
        }
    }
    specs
}

/// Probe sites by file and offset.
type Sites<'s> = HashSet<(&'s Path, u64)>;

/// The calls of `set` to stubs that end with their caller's exit, and
/// their return sites, left unprobed ([`ProbeSet`]'s `into_caller_calls`
/// and `into_caller_returns`): all but those of stubs whose return value
/// is read (`-R`), which only their return site sees.
fn into_caller(set: &ProbeSet) -> (Sites<'_>, Sites<'_>) {
    fn sites<'s>(set: &ProbeSet, lists: &'s [AttachList]) -> Sites<'s> {
        let reads_return = |id: &FuncId| set.table.values.get(id).is_some_and(|v| v.ret.is_some());
        (lists.iter())
            .flat_map(|l| {
                (l.offsets.iter().zip(&l.ids))
                    .filter(|&(_, id)| !reads_return(id))
                    .map(move |(&o, _)| (l.path.as_path(), o))
            })
            .collect()
    }
    (
        sites(set, &set.into_caller_calls),
        sites(set, &set.into_caller_returns),
    )
}

/// `list` as two links like `how`: the probes `chained` does not pick,
/// then those it picks, with `chains` set.
fn split_chained(
    list: &AttachList,
    how: &LinkSpec,
    chained: impl Fn(u64, FuncId) -> bool,
) -> [(AttachList, LinkSpec); 2] {
    let plain = keep_probes(list, |offset, id| !chained(offset, id));
    let chaining = LinkSpec {
        chains: true,
        ..how.clone()
    };
    [(plain, how.clone()), (keep_probes(list, chained), chaining)]
}

/// The probes of `list` whose function passes `wanted`.
fn keep(list: &AttachList, wanted: impl Fn(FuncId) -> bool) -> AttachList {
    keep_probes(list, |_, id| wanted(id))
}

/// The probes of `list` whose offset and function pass `wanted`.
fn keep_probes(list: &AttachList, wanted: impl Fn(u64, FuncId) -> bool) -> AttachList {
    let (offsets, ids) = list
        .offsets
        .iter()
        .zip(&list.ids)
        .filter(|&(&offset, &id)| wanted(offset, id))
        .unzip();
    AttachList {
        path: list.path.clone(),
        offsets,
        ids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Probes at `offsets` of /bin/x, of the functions `ids`.
    fn attach_list(offsets: &[u64], ids: &[u32]) -> AttachList {
        AttachList {
            path: PathBuf::from("/bin/x"),
            offsets: offsets.to_vec(),
            ids: ids.iter().copied().map(FuncId).collect(),
        }
    }

    /// Probes at `offsets` of /bin/x, all of function 11.
    fn of_11(offsets: &[u64]) -> AttachList {
        attach_list(offsets, &vec![11; offsets.len()])
    }

    fn set() -> ProbeSet {
        let facts = |hijack_safe, returns_twice, short| ExitFacts {
            hijack_safe,
            returns_twice,
            short,
            tail_calls: false,
        };
        let list = attach_list;
        // 10: safe to hijack; 11: not (an unwinder may meet it); 12: setjmp;
        // 13: a leaf.
        ProbeSet {
            first: FuncId(10),
            exits: vec![
                facts(true, false, false),
                facts(false, false, false),
                facts(true, true, false),
                facts(true, false, true),
            ],
            entries: vec![list(&[0x100, 0x200, 0x300, 0x400], &[10, 11, 12, 13])],
            ret_sites: vec![list(&[0x110, 0x210, 0x310, 0x410], &[10, 11, 12, 13])],
            ..ProbeSet::default()
        }
    }

    /// (kind, ids, ret-site exits, short calls) per link.
    fn shape(specs: &[LinkSpec]) -> Vec<(ProbeKind, Vec<u32>, bool, bool)> {
        let ids = |s: &LinkSpec| s.list.ids.iter().map(|id| id.0).collect();
        specs
            .iter()
            .map(|s| (s.kind, ids(s), s.ret_site_exits, s.short_calls))
            .collect()
    }

    #[test]
    fn auto_hijacks_what_nothing_unwinds_through_and_never_a_setjmp() {
        use ProbeKind::*;
        assert_eq!(
            shape(&links(&set(), ExitMode::Auto)),
            [
                (RetSite, vec![11, 12], true, false),
                (Session, vec![10], false, false),
                (Session, vec![13], false, true),
                (Entry, vec![11, 12], true, false),
            ]
        );
    }

    #[test]
    fn a_stub_with_ret_site_exits_is_entered_at_its_calls_before_any_exit() {
        use ProbeKind::*;
        let mut with_calls = set();
        // 11 (ret-site exits) and 10 (hijacked) are both called directly.
        with_calls.call_site_entries = vec![AttachList {
            path: PathBuf::from("/bin/x"),
            offsets: vec![0x500, 0x510, 0x520],
            ids: vec![FuncId(11), FuncId(11), FuncId(10)],
        }];
        let specs = links(&with_calls, ExitMode::Auto);
        assert_eq!(
            shape(&specs),
            [
                (Entry, vec![11, 11], true, false),
                (RetSite, vec![11, 12], true, false),
                (Session, vec![10], false, false),
                (Session, vec![13], false, true),
                (Entry, vec![12], true, false),
            ]
        );
        assert!(specs[0].at_calls);
        assert!(specs.iter().skip(1).all(|s| !s.at_calls));
    }

    #[test]
    fn a_stub_jumped_to_is_entered_at_its_calls_and_hijacked_at_its_jumps() {
        use ProbeKind::*;
        let mut stub = set();
        let list = |offsets: Vec<u64>| AttachList {
            path: PathBuf::from("/bin/x"),
            ids: vec![FuncId(10); offsets.len()],
            offsets,
        };
        // 10 (safe to hijack) is called at 0x500 and jumped to at 0x600.
        stub.call_site_entries = vec![list(vec![0x500])];
        stub.jump_entries = vec![list(vec![0x600])];
        stub.call_returns = vec![list(vec![0x505])];
        let specs = links(&stub, ExitMode::Auto);
        let offsets = |s: &LinkSpec| s.list.offsets.clone();
        let shaped: Vec<_> = (shape(&specs).into_iter())
            .zip(specs.iter().map(offsets))
            .collect();
        assert_eq!(
            shaped,
            [
                ((Entry, vec![10], true, false), vec![0x500]),
                ((Session, vec![10], false, false), vec![0x600]),
                ((RetSite, vec![11, 12], true, false), vec![0x210, 0x310]),
                ((CallReturn, vec![10], true, false), vec![0x505]),
                ((Session, vec![13], false, true), vec![0x400]),
                ((Entry, vec![11, 12], true, false), vec![0x200, 0x300]),
            ]
        );
        // Its call returns are probed already: nothing to add on demand.
        assert!(on_demand_links(std::slice::from_ref(&stub), FuncId(10)).is_empty());
        // Hijacking everything, it keeps its own entry.
        let specs = links(&stub, ExitMode::Session);
        let probes: Vec<(u64, FuncId)> = (specs.iter())
            .flat_map(|s| {
                s.list
                    .offsets
                    .iter()
                    .copied()
                    .zip(s.list.ids.iter().copied())
            })
            .filter(|&(_, id)| id == FuncId(10))
            .collect();
        assert_eq!(probes, [(0x100, FuncId(10))]);
    }

    #[test]
    fn a_stub_call_into_its_callers_epilogue_has_no_return_probe() {
        let mut stub = set();
        let list = |offsets: Vec<u64>| AttachList {
            path: PathBuf::from("/bin/x"),
            ids: vec![FuncId(11); offsets.len()],
            offsets,
        };
        // 11 (ret-site exits) is called at 0x500 and 0x510; the second
        // call returns (0x515) into its caller's epilogue.
        stub.call_site_entries = vec![list(vec![0x500, 0x510])];
        stub.call_returns = vec![list(vec![0x505, 0x515])];
        stub.into_caller_calls = vec![list(vec![0x510])];
        stub.into_caller_returns = vec![list(vec![0x515])];
        let specs = links(&stub, ExitMode::Auto);
        let of = |kind, with_caller| -> Vec<u64> {
            (specs.iter())
                .filter(|s| s.kind == kind && s.with_caller == with_caller)
                .flat_map(|s| s.list.offsets.clone())
                .filter(|o| (0x500..0x600).contains(o))
                .collect()
        };
        assert_eq!(of(ProbeKind::Entry, false), [0x500]);
        assert_eq!(of(ProbeKind::Entry, true), [0x510]);
        assert_eq!(of(ProbeKind::CallReturn, false), [0x505]);
    }

    #[test]
    fn a_tail_jump_chains_only_onto_a_call_whose_own_return_is_seen() {
        // 11's site 0x210 jumps to 10 (hijacked), 12's 0x310 to 99 (no
        // probe of its own return).
        let mut tails = set();
        tails.tail_targets = vec![AttachList {
            path: PathBuf::from("/bin/x"),
            offsets: vec![0x210, 0x310],
            ids: vec![FuncId(10), FuncId(99)],
        }];
        let specs = links(&tails, ExitMode::Auto);
        let ret_sites: Vec<(Vec<u64>, bool)> = (specs.iter())
            .filter(|s| s.kind == ProbeKind::RetSite)
            .map(|s| (s.list.offsets.clone(), s.chains))
            .collect();
        assert_eq!(ret_sites, [(vec![0x310], false), (vec![0x210], true)]);
        let on_demand = on_demand_links(&[tails], FuncId(11));
        assert_eq!(on_demand.len(), 1);
        assert!(on_demand[0].chains && on_demand[0].list.offsets == [0x210]);
    }

    #[test]
    fn a_tail_jump_chains_wherever_it_goes_when_its_calls_returns_are_probed() {
        // 11 (ret-site exits) tail-jumps at 0x210 to code with no probe of
        // its own return; its direct calls return at 0x950.
        let mut watched = set();
        let path = PathBuf::from("/bin/x");
        watched.watch_returns = vec![AttachList {
            path: path.clone(),
            offsets: vec![0x950],
            ids: vec![FuncId(11)],
        }];
        watched.watched_jumps = vec![AttachList {
            path,
            offsets: vec![0x210],
            ids: vec![FuncId(11)],
        }];
        fn exits(set: &ProbeSet, exit: ExitMode) -> Vec<(ProbeKind, Vec<u64>, bool)> {
            (links(set, exit).iter())
                .filter(|s| matches!(s.kind, ProbeKind::RetSite | ProbeKind::CallReturn))
                .map(|s| (s.kind, s.list.offsets.clone(), s.chains))
                .collect()
        }
        use ProbeKind::*;
        assert_eq!(
            exits(&watched, ExitMode::Auto),
            [
                (RetSite, vec![0x310], false),
                (RetSite, vec![0x210], true),
                (CallReturn, vec![0x950], false),
            ]
        );
        // Hijacked, its return is seen wherever it lands: nothing to watch.
        assert_eq!(exits(&watched, ExitMode::Uretprobe), []);
        // A jump to 10, whose hijacked return is seen, chains anyway: the
        // watch would only cost a probe at each of 11's calls.
        watched.tail_targets = vec![AttachList {
            path: PathBuf::from("/bin/x"),
            offsets: vec![0x210],
            ids: vec![FuncId(10)],
        }];
        assert_eq!(
            exits(&watched, ExitMode::Auto),
            [(RetSite, vec![0x310], false), (RetSite, vec![0x210], true)]
        );
    }

    #[test]
    fn ret_sites_on_demand_are_the_functions_own() {
        use ProbeKind::*;
        assert_eq!(
            shape(&on_demand_links(&[set()], FuncId(11))),
            [(RetSite, vec![11], true, false)]
        );
        assert!(on_demand_links(&[set()], FuncId(99)).is_empty());
    }

    #[test]
    fn on_demand_branches_into_an_epilogue_stand_in_for_the_ret_they_cover() {
        // 11 has a second `ret` at 0x220, entered only by the `jcc`s at
        // 0x1f0 and 0x200 (epilogue.rs); its `ret` at 0x210 keeps its site.
        let mut early = set();
        early.ret_sites.push(of_11(&[0x220]));
        early.early_exits = vec![of_11(&[0x1f0, 0x200])];
        early.early_covers = vec![of_11(&[0x220])];
        let sites: Vec<(Vec<u64>, bool)> = on_demand_links(&[early], FuncId(11))
            .into_iter()
            .map(|s| (s.list.offsets, s.early))
            .collect();
        assert_eq!(sites, [(vec![0x1f0, 0x200], true), (vec![0x210], false)]);
    }

    #[test]
    fn calls_into_an_epilogue_stand_in_for_its_ret_until_bpf_cannot_chain() {
        // 11's `ret` at 0x220 is entered by the `jcc` at 0x1f0 and where
        // its call at 0x1e0 returns.
        let mut chained = set();
        chained.ret_sites = vec![of_11(&[0x220])];
        chained.early_exits = vec![of_11(&[0x1f0])];
        chained.chain_calls = vec![of_11(&[0x1e0])];
        chained.chain_covers = vec![of_11(&[0x220])];
        let sites = |specs: Vec<LinkSpec>| -> Vec<(Vec<u64>, bool)> {
            specs
                .into_iter()
                .map(|s| (s.list.offsets, s.early))
                .collect()
        };
        let sets = std::slice::from_ref(&chained);
        let on_demand = sites(on_demand_links(sets, FuncId(11)));
        assert_eq!(on_demand, [(vec![0x1f0], true), (vec![0x1e0], true)]);
        assert_eq!(
            sites(unchained_links(sets, FuncId(11))),
            [(vec![0x220], false)]
        );
        assert!(unchained_links(sets, FuncId(10)).is_empty());
    }

    #[test]
    fn on_demand_a_function_ended_at_its_call_returns_keeps_its_chaining_tail_jumps() {
        // 10 (hijacked) is only called directly: its calls return at 0x900,
        // its `ret` is 0x110 and it tail-jumps to 13 (hijacked) at 0x120.
        let mut returns = set();
        let path = PathBuf::from("/bin/x");
        returns.call_returns = vec![AttachList {
            path: path.clone(),
            offsets: vec![0x900],
            ids: vec![FuncId(10)],
        }];
        returns.ret_sites[0].offsets.push(0x120);
        returns.ret_sites[0].ids.push(FuncId(10));
        returns.tail_targets = vec![AttachList {
            path,
            offsets: vec![0x120],
            ids: vec![FuncId(13)],
        }];
        let on_demand: Vec<(ProbeKind, Vec<u64>, bool)> = on_demand_links(&[returns], FuncId(10))
            .iter()
            .map(|s| (s.kind, s.list.offsets.clone(), s.chains))
            .collect();
        assert_eq!(
            on_demand,
            [
                (ProbeKind::RetSite, vec![0x120], true),
                (ProbeKind::CallReturn, vec![0x900], false)
            ]
        );
    }

    #[test]
    fn ret_sites_trace_everything_and_session_keeps_setjmp_out() {
        use ProbeKind::*;
        assert_eq!(
            shape(&links(&set(), ExitMode::RetSites)),
            [
                (RetSite, vec![10, 11, 12, 13], true, false),
                (Entry, vec![10, 11, 12, 13], true, false)
            ]
        );
        // Only auto keeps hijacks for short calls.
        assert_eq!(
            shape(&links(&set(), ExitMode::Session)),
            [(Session, vec![10, 11, 13], false, false)]
        );
    }
}
