//! Where calls end, for exit probes that leave return addresses alone (an
//! unwinder that meets a hijacked return address aborts the program):
//! - a function's `ret`s and direct tail jumps, where the stack pointer is
//!   back at its entry value (BPF `on_ret_site`);
//! - for a PLT stub, the instruction after each direct `call` to it, where
//!   the stack pointer is one slot above the stub's entry value (`on_exit`
//!   as a plain uprobe): the library function is not probed, so its return
//!   is only seen where it lands.
//!
//! One pass decodes the module's code, each piece from a known instruction
//! start to its end: every function over its symbol size, every `.cold`
//! fragment (whose sites belong to its parent), and the code no symbol
//! covers (for calls only). Decoding a piece stops at its end and at the
//! first undecodable byte (data in code): nothing after that is known to be
//! an instruction start, and a probe inside an instruction corrupts it. The
//! same pass collects the GOT slots called indirectly, for plt.rs's -fno-plt
//! warning. Every site is checked with [`kernel_accepts`]: one refused
//! offset fails a whole uprobe_multi link.

use std::collections::{BTreeSet, HashMap, HashSet};

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register,
};

use super::epilogue::{Around, epilogues};
use super::image::Segments;
use super::libc;
use super::placement::{Line, emulated_ahead, gpr_bit, is_direct_jmp, is_jcc, kernel_accepts};
use super::plt::{Imports, IntoRet, PltStub, rip_indirect};
use super::symbol::Symbol;

/// A `.cold` fragment: the unlikely blocks (and C++ landing pads) that GCC
/// moves out of a function. It runs in its parent's frame, so its `ret`s end
/// the parent and a jump into it is no tail call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ColdPart {
    /// Raw name of the function it was split from.
    pub parent: String,
    pub vaddr: u64,
    pub size: u64,
}

/// The parent's name of a `.cold` fragment (`foo.cold`, `foo.cold.3`).
pub(crate) fn cold_parent(raw: &str) -> Option<&str> {
    let at = raw.rfind(".cold")?;
    let rest = &raw[at + ".cold".len()..];
    let numbered = rest
        .strip_prefix('.')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (at > 0 && (rest.is_empty() || numbered)).then(|| &raw[..at])
}

/// The module's bytes and where its code is.
pub(crate) struct ModuleCode<'d> {
    pub data: &'d [u8],
    pub segs: &'d Segments,
    /// Executable sections outside the PLT: [start, end) addresses.
    pub sections: Vec<(u64, u64)>,
}

impl ModuleCode<'_> {
    /// The bytes of [vaddr, vaddr + size), cut at the end of the segment, and
    /// the file offset of the first one.
    fn piece(&self, vaddr: u64, size: u64) -> Option<(&[u8], u64)> {
        let offset = self.segs.file_offset(vaddr)?;
        Some((self.segs.bytes(self.data, vaddr, size)?, offset))
    }
}

/// Fills each function's `ret_sites` and `call_returns` and each stub's
/// `call_returns`, and returns the GOT slots that code calls or jumps
/// through. `taken`: the addresses the module's data and dynamic tables
/// refer to (taken.rs), `None` when unknown.
pub(crate) fn scan(
    code: &ModuleCode<'_>,
    functions: &mut [Symbol],
    cold: &[ColdPart],
    stubs: &mut [PltStub],
    imports: &Imports,
    taken: Option<&HashSet<u64>>,
) -> BTreeSet<u64> {
    let mut scanner = Scanner::new(stubs, functions, imports);
    let mut parts = ColdIndex::new(cold, functions);
    // Per function, what it calls or jumps to outside itself; `None` when
    // some of it is unknown (an indirect branch, or code not decoded).
    let mut callees: Vec<Option<Vec<u64>>> = vec![None; functions.len()];
    for (index, function) in functions.iter_mut().enumerate() {
        let Some((bytes, offset)) = code.piece(function.vaddr, function.size) else {
            continue;
        };
        let found = scanner.decode(bytes, function.vaddr, offset);
        let caller = function.vaddr;
        (scanner.into_ret).extend(found.into_ret.iter().map(|&(s, c, r)| (s, c, r, caller)));
        for &(_, target) in &found.jumps_out {
            parts.claim(target, index);
        }
        let range = (function.vaddr, function.vaddr + bytes.len() as u64);
        let leaves = |t| !in_range(t, range) && !parts.belongs(t, index);
        function.ret_sites = found.sites(leaves);
        function.tail_calls = found.tail_calls(leaves).collect();
        function.leaf = found.calls.is_empty()
            && !found.indirect_branch
            && function.ret_sites.iter().all(|s| found.rets.contains(s));
        callees[index] = found.callees(leaves);
    }
    for (part, parent) in parts.parts.iter().zip(&parts.parent) {
        let Some((bytes, offset)) = code.piece(part.vaddr, part.size) else {
            continue;
        };
        // Decoded even without a parent: its calls still count.
        let found = scanner.decode(bytes, part.vaddr, offset);
        let Some((index, f)) = parent.and_then(|i| Some((i, functions.get_mut(i)?))) else {
            continue;
        };
        let range = (f.vaddr, f.vaddr + f.size);
        let caller = f.vaddr;
        (scanner.into_ret).extend(found.into_ret.iter().map(|&(s, c, r)| (s, c, r, caller)));
        let leaves = |t| !in_range(t, range) && !parts.belongs(t, index);
        f.ret_sites.extend(found.sites(leaves));
        f.tail_calls.extend(found.tail_calls(leaves));
        // A jump back from the part that lands between the function's first
        // instruction and a probe moved forward would count as a call.
        if let Some(moved) = f.placement.moved {
            let window = moved.probe_vaddr + 1..=f.placement.probe_vaddr;
            if found.jumps_out.iter().any(|(_, t)| window.contains(t)) {
                f.placement = f.placement.unmoved();
            }
        }
        // What its `.cold` part calls (abort, __cxa_throw...) the function calls.
        f.leaf &= found.calls.is_empty() && !found.indirect_branch;
        let part_callees = found.callees(leaves);
        callees[index] = match (callees[index].take(), part_callees) {
            (Some(mut own), Some(more)) => {
                own.extend(more);
                Some(own)
            }
            _ => None,
        };
        f.ret_sites.sort_unstable();
        f.ret_sites.dedup();
        f.tail_calls.sort_unstable();
        f.tail_calls.dedup();
    }
    mark_short(functions, &callees, stubs);
    for (start, end) in uncovered(&code.sections, functions, cold) {
        if let Some((bytes, offset)) = code.piece(start, end - start) {
            scanner.decode(bytes, start, offset);
        }
    }
    find_epilogues(code, functions, &parts, taken, &scanner.referenced);
    watch_returns(functions, &scanner.function_returns);
    let returns = by_function(&scanner.function_returns, functions.len());
    let calls = by_function(&scanner.function_calls, functions.len());
    if let (Some(taken), true) = (taken, scanner.complete) {
        for ((f, sites), calls) in functions.iter_mut().zip(returns).zip(calls) {
            if let Some(sites) = sites.filter(|_| only_called(f, taken, &scanner.referenced)) {
                (f.call_returns, f.value_returns) = split_returns(sites);
                f.call_sites = calls.unwrap_or_default();
            }
        }
    }
    scanner.finish(stubs)
}

/// Gives each function its epilogues that emulated instructions alone
/// enter (epilogue.rs), for deep recursion's sites.
fn find_epilogues(
    code: &ModuleCode<'_>,
    functions: &mut [Symbol],
    parts: &ColdIndex,
    taken: Option<&HashSet<u64>>,
    referenced: &HashSet<u64>,
) {
    let around = Around {
        taken,
        referenced: &|ip| referenced.contains(&ip),
        lands_unnamed: &lands_unnamed,
    };
    for (index, f) in functions.iter_mut().enumerate() {
        let cold = (parts.parts.iter().zip(&parts.parent))
            .filter(|(_, parent)| **parent == Some(index))
            .map(|(part, _)| (part.vaddr, part.size));
        let pieces: Option<Vec<(&[u8], u64, u64)>> = std::iter::once((f.vaddr, f.size))
            .chain(cold)
            .map(|(vaddr, size)| code.piece(vaddr, size).map(|(b, o)| (b, vaddr, o)))
            .collect();
        if let Some(pieces) = pieces.filter(|_| !f.ret_sites.is_empty()) {
            // An entry moved onto one of their sites (`test; je` into a bare
            // `ret`) would share its probe: the kernel promises no order
            // between the two, and the exit must come after the entry.
            let entry = f.placement.probe_file_offset;
            f.epilogues = epilogues(&pieces, &around)
                .into_iter()
                .filter(|e| !e.branches.contains(&entry) && e.calls.iter().all(|c| c.0 != entry))
                .collect();
        }
    }
}

/// Gives each function with a direct tail jump the sites where its direct
/// calls return (`returns`: function index, site), those a probe can see.
/// Its `value_returns` get them too, as for `call_returns`.
fn watch_returns(functions: &mut [Symbol], returns: &[(usize, Option<ReturnSite>)]) {
    for &(index, site) in returns {
        let (Some(f), Some(site)) = (functions.get_mut(index), site) else {
            continue;
        };
        if f.tail_calls.iter().any(|(_, target)| target.is_some()) {
            f.watch_returns.push(site.site);
            if site.value != site.site {
                f.value_returns.push((site.site, site.value));
            }
        }
    }
    for f in functions.iter_mut() {
        f.watch_returns.sort_unstable();
        f.watch_returns.dedup();
        f.value_returns.sort_unstable();
        f.value_returns.dedup();
    }
}

/// Per function (by index, `count` of them), the sorted, distinct sites of
/// `pairs` (function index, site): its direct calls or where they return;
/// `None` for one with a call no probe can see (a `None` site). Overlapping
/// symbols decode the same call twice.
fn by_function<T: Copy + Ord>(pairs: &[(usize, Option<T>)], count: usize) -> Vec<Option<Vec<T>>> {
    let mut sites: Vec<Option<Vec<T>>> = vec![Some(Vec::new()); count];
    for &(f, site) in pairs {
        let Some(entry) = sites.get_mut(f) else {
            continue;
        };
        match (entry.as_mut(), site) {
            (Some(list), Some(site)) => list.push(site),
            _ => *entry = None,
        }
    }
    for list in sites.iter_mut().flatten() {
        list.sort_unstable();
        list.dedup();
    }
    sites
}

/// The sites of `returns` ([`ReturnSite`]s, sorted), and those `-R` needs
/// instead where they differ.
fn split_returns(returns: Vec<ReturnSite>) -> (Vec<u64>, Vec<(u64, u64)>) {
    let value = (returns.iter())
        .filter(|r| r.value != r.site)
        .map(|r| (r.site, r.value))
        .collect();
    (returns.into_iter().map(|r| r.site).collect(), value)
}

/// Whether every return of `f` lands where one of the direct calls to it
/// returns: nothing else refers to its address (`taken` from data,
/// `referenced` by code other than a direct call: a jump, a RIP-relative
/// operand), so nothing calls it through a pointer, jumps to it or calls it
/// from another module. What it tail-jumps to returns there too.
fn only_called(f: &Symbol, taken: &HashSet<u64>, referenced: &HashSet<u64>) -> bool {
    !f.ifunc
        && !taken.contains(&f.vaddr)
        && !referenced.contains(&f.vaddr)
        && !f.ret_sites.is_empty()
}

/// How many calls deep below it a short call may nest: BPF keeps one
/// hijack above the others' budget per level (bpf's SHORT_BUDGET).
pub const SHORT_HEIGHT: usize = 2;

/// Sets each function's `short`: its calls (`callees`, by index) reach only
/// PLT stubs and functions that are short one level lower, down to leaves.
fn mark_short(functions: &mut [Symbol], callees: &[Option<Vec<u64>>], stubs: &[PltStub]) {
    let index: HashMap<u64, usize> = functions
        .iter()
        .enumerate()
        .map(|(i, f)| (f.vaddr, i))
        .collect();
    let stub_at: BTreeSet<u64> = stubs.iter().map(|s| s.vaddr).collect();
    // height[i]: the levels of calls below function i, when at most SHORT_HEIGHT.
    let mut height: Vec<Option<usize>> = vec![None; functions.len()];
    for level in 0..=SHORT_HEIGHT {
        // A PLT stub is a call of its own, with nothing traced below it.
        let below = |t: &u64| match index.get(t) {
            Some(&j) => height[j].is_some_and(|h| h < level),
            None => stub_at.contains(t) && level > 0,
        };
        let now: Vec<usize> = (0..functions.len())
            .filter(|&i| height[i].is_none())
            .filter(|&i| callees[i].as_ref().is_some_and(|c| c.iter().all(below)))
            .collect();
        for i in now {
            height[i] = Some(level);
        }
    }
    for (f, h) in functions.iter_mut().zip(height) {
        f.short = h.is_some();
    }
}

fn in_range(addr: u64, (start, end): (u64, u64)) -> bool {
    start <= addr && addr < end
}

/// What decoding one piece found, as file offsets of the probed instruction.
#[derive(Default)]
struct Found {
    /// `ret`s, and `jmp *slot(%rip)` through an import's GOT slot (a
    /// -fno-plt tail call into a library).
    rets: Vec<u64>,
    /// Direct `jmp`/`jcc` whose target is outside the piece: (site, target).
    jumps_out: Vec<(u64, u64)>,
    /// Jumps through a register or memory that are no jump table
    /// ([`jump_table`]): tail calls through a pointer, when the stack
    /// pointer is back at the entry value there.
    pointer_jumps: Vec<u64>,
    /// Targets of direct calls.
    calls: Vec<u64>,
    /// Some call or jump goes through a register or memory: it may leave
    /// for code this scan cannot see (a tail call through a pointer, such as
    /// a C++ member-function pointer), so nothing proves the function a leaf.
    indirect_branch: bool,
    /// (stub index, file offset of a call to it, its call-return site) for
    /// each call whose return would be single-stepped and that runs on in a
    /// straight line into a `ret` of the piece ([`runs_into_ret`]).
    into_ret: Vec<(usize, u64, u64)>,
}

impl Found {
    /// What the piece calls, and the targets of its jumps that `leaves`
    /// says are outside the function; `None` when it also branches
    /// somewhere unknown.
    fn callees(&self, leaves: impl Fn(u64) -> bool) -> Option<Vec<u64>> {
        if self.indirect_branch {
            return None;
        }
        let jumps = self.jumps_out.iter().map(|j| j.1).filter(|&t| leaves(t));
        Some(self.calls.iter().copied().chain(jumps).collect())
    }

    /// The sites: every `ret`, the jumps out whose target `leaves` says is
    /// outside the function (not into its own `.cold` part or back), and
    /// the jumps through a pointer.
    fn sites(&self, leaves: impl Fn(u64) -> bool) -> Vec<u64> {
        let jumps = self.jumps_out.iter().filter(|&&(_, t)| leaves(t));
        let mut sites: Vec<u64> = self
            .rets
            .iter()
            .copied()
            .chain(jumps.map(|j| j.0))
            .chain(self.pointer_jumps.iter().copied())
            .collect();
        sites.sort_unstable();
        sites.dedup();
        sites
    }

    /// The jumps out among [`Found::sites`]: (site, target if direct).
    fn tail_calls(&self, leaves: impl Fn(u64) -> bool) -> impl Iterator<Item = (u64, Option<u64>)> {
        let direct = self.jumps_out.iter().filter(move |&&(_, t)| leaves(t));
        let direct = direct.map(|&(site, t)| (site, Some(t)));
        direct.chain(self.pointer_jumps.iter().map(|&site| (site, None)))
    }
}

/// What a direct call reaches.
#[derive(Clone, Copy)]
enum Callee {
    /// A PLT stub, by index.
    Stub(usize),
    /// A function of the module's, by index.
    Function(usize),
}

/// Decodes pieces of code, collecting call-return sites and GOT slots
/// across them.
struct Scanner<'a> {
    /// Stub address → index, for the stubs a call site may end.
    stub_at: HashMap<u64, usize>,
    imports: &'a Imports,
    /// (stub index, where the call returns).
    call_returns: Vec<(usize, ReturnSite)>,
    /// (stub index, file offset of the call).
    call_sites: Vec<(usize, u64)>,
    /// (stub index, file offset of a direct unconditional `jmp` to it): a
    /// tail call into the library.
    jump_sites: Vec<(usize, u64)>,
    /// (stub index, call, its call-return site, the calling function's
    /// address): Found's `into_ret`, of the module's functions.
    into_ret: Vec<(usize, u64, u64, u64)>,
    /// Stubs some jump or call reaches where no probe can stand in for the
    /// stub's own entry: a conditional jump (the probe would run when it is
    /// not taken too), or one the kernel refuses a probe on.
    own_entry_only: HashSet<usize>,
    /// Function address → index, for the functions a direct call reaches.
    function_at: HashMap<u64, usize>,
    /// (function index, where its call returns, or `None` where no probe
    /// can see it: the call ends its piece, or the kernel refuses a probe
    /// after it).
    function_returns: Vec<(usize, Option<ReturnSite>)>,
    /// (function index, file offset of a direct call to it, `None` where
    /// the kernel refuses a probe on that call).
    function_calls: Vec<(usize, Option<u64>)>,
    /// Addresses code refers to other than by a direct call: branch
    /// targets and RIP-relative operands.
    referenced: HashSet<u64>,
    /// Every piece decoded to its end: no call can hide in bytes after an
    /// undecodable one.
    complete: bool,
    got_slots: BTreeSet<u64>,
    insn: Instruction,
    /// The instructions just before `insn` in a straight line, oldest
    /// first, for what an indirect jump jumps through.
    recent: Vec<Instruction>,
}

impl<'a> Scanner<'a> {
    fn new(stubs: &[PltStub], functions: &[Symbol], imports: &'a Imports) -> Self {
        let stub_at = stubs
            .iter()
            .enumerate()
            .filter(|(_, s)| !libc::never_returns(&s.import))
            .map(|(i, s)| (s.vaddr, i))
            .collect();
        let function_at = functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f.vaddr, i))
            .collect();
        Scanner {
            stub_at,
            imports,
            call_returns: Vec::new(),
            call_sites: Vec::new(),
            jump_sites: Vec::new(),
            into_ret: Vec::new(),
            own_entry_only: HashSet::new(),
            function_at,
            function_returns: Vec::new(),
            function_calls: Vec::new(),
            referenced: HashSet::new(),
            complete: true,
            got_slots: BTreeSet::new(),
            insn: Instruction::default(),
            recent: Vec::with_capacity(RECENT),
        }
    }

    /// Decodes `bytes`, at address `start` and file offset `offset`.
    fn decode(&mut self, bytes: &[u8], start: u64, offset: u64) -> Found {
        let end = start + bytes.len() as u64;
        let mut found = Found::default();
        let mut after_call: Option<(Callee, u64)> = None;
        // (callee, file offset of the call, address, probe accepted there)
        // of each instruction a call returns to, and where the piece's
        // branches land.
        let mut returns: Vec<(Callee, u64, u64, bool)> = Vec::new();
        let mut landings: Vec<u64> = Vec::new();
        let mut decoder = Decoder::with_ip(64, bytes, start, DecoderOptions::NONE);
        self.recent.clear();
        while decoder.can_decode() {
            if decoder.position() > 0 {
                if self.recent.len() == RECENT {
                    self.recent.remove(0);
                }
                self.recent.push(self.insn);
            }
            let at = decoder.position();
            decoder.decode_out(&mut self.insn);
            let insn = &self.insn;
            if insn.is_invalid() {
                self.complete = false;
                break;
            }
            let site = offset + at as u64;
            let probeable = || kernel_accepts(&bytes[at..at + insn.len()]);
            if let Some((callee, call)) = after_call.take() {
                returns.push((callee, call, insn.ip(), probeable()));
            }
            if insn.op0_kind() == OpKind::NearBranch64 {
                landings.push(insn.near_branch_target());
            }
            if insn.is_ip_rel_memory_operand() {
                self.referenced.insert(insn.ip_rel_memory_address());
            }
            if insn.code() == Code::Call_rel32_64 {
                let target = insn.near_branch_target();
                found.calls.push(target);
                // A call that ends the piece never returns (noreturn): what
                // follows is another function or padding, so it has no site.
                after_call = match self.stub_at.get(&target) {
                    Some(&stub) => Some((Callee::Stub(stub), site)),
                    None => (self.function_at.get(&target)).map(|&f| (Callee::Function(f), site)),
                };
                match after_call.map(|(callee, _)| callee) {
                    Some(Callee::Stub(stub)) if probeable() => self.call_sites.push((stub, site)),
                    Some(Callee::Stub(stub)) => _ = self.own_entry_only.insert(stub),
                    Some(Callee::Function(f)) => {
                        self.function_calls.push((f, probeable().then_some(site)));
                    }
                    _ => {}
                }
            } else if insn.mnemonic() == Mnemonic::Ret {
                found.rets.extend(probeable().then_some(site));
            } else if is_direct_jmp(insn) || is_jcc(insn) {
                let target = insn.near_branch_target();
                self.referenced.insert(target);
                if let Some(&stub) = self.stub_at.get(&target) {
                    match is_direct_jmp(insn) && probeable() {
                        true => self.jump_sites.push((stub, site)),
                        false => _ = self.own_entry_only.insert(stub),
                    }
                }
                if !in_range(target, (start, end)) && probeable() {
                    found.jumps_out.push((site, target));
                }
            } else if let Some(slot) = rip_indirect(insn, Code::Jmp_rm64) {
                self.got_slots.insert(slot);
                if !self.imports.contains_key(&slot) {
                    found.indirect_branch = true;
                    found.pointer_jumps.extend(probeable().then_some(site));
                } else if probeable() {
                    found.rets.push(site);
                }
            } else if let Some(slot) = rip_indirect(insn, Code::Call_rm64) {
                found.indirect_branch = true;
                self.got_slots.insert(slot);
            } else if matches!(insn.mnemonic(), Mnemonic::Call | Mnemonic::Jmp) {
                found.indirect_branch = true;
                let pointer = insn.mnemonic() == Mnemonic::Jmp && !jump_table(insn, &self.recent);
                if pointer && probeable() {
                    found.pointer_jumps.push(site);
                }
            }
        }
        if let Some((Callee::Function(f), _)) = after_call {
            self.function_returns.push((f, None));
        }
        landings.sort_unstable();
        for (callee, call, at, accepted) in returns {
            let to = return_site(bytes, start, (at, accepted), &landings);
            let file = |to| offset + (to - start);
            let site = to.map(|r| ReturnSite {
                site: file(r.site),
                value: file(r.value),
                ..r
            });
            match callee {
                Callee::Stub(stub) => {
                    self.call_returns.extend(site.map(|s| (stub, s)));
                    let stepped = site.filter(|s| !s.emulated);
                    if let Some(s) = stepped.filter(|_| runs_into_ret(bytes, start, at)) {
                        found.into_ret.push((stub, call, s.site));
                    }
                }
                Callee::Function(f) => self.function_returns.push((f, site)),
            }
        }
        found
    }

    /// Hands the call-return sites to their stubs; returns the GOT slots.
    fn finish(mut self, stubs: &mut [PltStub]) -> BTreeSet<u64> {
        // Overlapping symbols decode the same call twice.
        self.call_returns.sort_unstable();
        self.call_returns.dedup();
        for (stub, site) in self.call_returns {
            if let Some(s) = stubs.get_mut(stub) {
                s.call_returns.push(site.site);
                if site.value != site.site {
                    s.value_returns.push((site.site, site.value));
                }
            }
        }
        let entries = [(self.call_sites, false), (self.jump_sites, true)];
        for (mut sites, jumps) in entries {
            sites.sort_unstable();
            sites.dedup();
            for (stub, site) in sites {
                let Some(s) = stubs
                    .get_mut(stub)
                    .filter(|_| !self.own_entry_only.contains(&stub))
                else {
                    continue;
                };
                match jumps {
                    true => s.jump_sites.push(site),
                    false => s.call_sites.push(site),
                }
            }
        }
        self.into_ret.sort_unstable();
        self.into_ret.dedup();
        for (stub, call, ret, caller) in self.into_ret {
            if let Some(s) = stubs.get_mut(stub).filter(|s| s.call_sites.contains(&call)) {
                s.into_caller_ret.push(IntoRet { call, ret, caller });
            }
        }
        self.got_slots
    }
}

/// How many instructions before an indirect jump [`jump_table`] looks at.
const RECENT: usize = 4;

/// Whether the indirect `jmp` `insn` dispatches through a jump table (a
/// switch, a computed goto) rather than leaving its function: its target
/// is read with an index scaled by 4 or 8 (`jmp *tbl(,%rax,8)`), or the
/// register it jumps through was last written, among the instructions
/// `before` it, by such a read or by adding two registers (a PIC table's
/// base and offset). A member-function pointer's vtable slot is read with
/// an unscaled index, a function pointer with none.
fn jump_table(insn: &Instruction, before: &[Instruction]) -> bool {
    table_kind(insn, before).is_some()
}

/// How a jump table ([`jump_table`]) holds its targets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    /// As addresses, each named by a relocation in a PIE (taken.rs).
    Absolute,
    /// As offsets from the table (a PIC switch): nothing names them.
    Relative,
}

fn table_kind(insn: &Instruction, before: &[Instruction]) -> Option<Table> {
    let scaled = |i: &Instruction| {
        i.memory_index() != Register::None && matches!(i.memory_index_scale(), 4 | 8)
    };
    let kind = |i: &Instruction| match i.memory_index_scale() {
        8 => Table::Absolute,
        _ => Table::Relative,
    };
    if insn.op0_kind() == OpKind::Memory {
        return scaled(insn).then(|| kind(insn));
    }
    let target = insn.op0_register().full_register();
    let writes = |i: &&Instruction| {
        i.op_count() > 0
            && i.op0_kind() == OpKind::Register
            && i.op0_register().full_register() == target
    };
    let writer = before.iter().rev().find(writes)?;
    let reads_memory = (0..writer.op_count()).any(|k| writer.op_kind(k) == OpKind::Memory);
    let adds_registers =
        writer.mnemonic() == Mnemonic::Add && writer.op1_kind() == OpKind::Register;
    if adds_registers {
        return Some(Table::Relative);
    }
    (reads_memory && scaled(writer)).then(|| kind(writer))
}

/// Whether the indirect jump `insns[i]` may land where no relocation names
/// (epilogue's `Around`): a relative jump table, or a register whose value
/// this scan does not know. A slot in memory (the GOT, a vtable) holds a
/// function's address, an absolute table addresses that relocations name.
fn lands_unnamed(insns: &[Instruction], i: usize) -> bool {
    let before = &insns[i.saturating_sub(RECENT)..i];
    match table_kind(&insns[i], before) {
        Some(Table::Absolute) => false,
        Some(Table::Relative) => true,
        None => insns[i].op0_kind() != OpKind::Memory,
    }
}

/// Where a call's return is probed: `site`, and `value`, where the return
/// value is still in %rax and %rdx (`-R` reads it there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ReturnSite {
    site: u64,
    value: u64,
    /// `site` is an emulated instruction (else it is single-stepped).
    emulated: bool,
}

/// Where to probe the return of a call, which lands at `at` in the piece
/// `bytes` (at `start`; `landings`: its branch targets, sorted): the first
/// emulated instruction a straight line from `at` reaches (placement's
/// [`emulated_ahead`]) when no branch lands among the ones before it; for
/// the value, one the instructions before leave %rax and %rdx alone for.
/// Else `at` itself, single-stepped, when the kernel `accepted` a probe
/// there; with none there either, the value is read at the site.
fn return_site(
    bytes: &[u8],
    start: u64,
    (at, accepted): (u64, bool),
    landings: &[u64],
) -> Option<ReturnSite> {
    let value_registers = gpr_bit(Register::RAX) | gpr_bit(Register::RDX);
    let first_after = landings.partition_point(|&t| t <= at);
    let ahead = emulated_ahead(bytes, start, at, Line::AfterCall)
        .filter(|&(to, _)| landings.get(first_after).is_none_or(|&t| t > to));
    let unmoved = accepted.then_some(at);
    let value = ahead
        .filter(|&(_, written)| written & value_registers == 0)
        .map(|(to, _)| to)
        .or(unmoved);
    let site = ahead.map(|(to, _)| to).or(unmoved)?;
    Some(ReturnSite {
        site,
        value: value.unwrap_or(site),
        emulated: ahead.is_some(),
    })
}

/// Whether the code at `at` in `bytes` (at `start`) runs into a `ret` in a
/// straight line of a few instructions, none of them a branch, a call or a
/// trap: `add $8,%rsp; pop %rbx; ret`, an epilogue after a call. A branch
/// may land among them; every path through them still ends at the `ret`.
fn runs_into_ret(bytes: &[u8], start: u64, at: u64) -> bool {
    let Some(code) = usize::try_from(at - start)
        .ok()
        .and_then(|i| bytes.get(i..))
    else {
        return false;
    };
    let mut decoder = Decoder::with_ip(64, code, at, DecoderOptions::NONE);
    for _ in 0..INTO_RET_LIMIT {
        let insn = decoder.decode();
        match insn.flow_control() {
            _ if insn.is_invalid() => return false,
            FlowControl::Return => return insn.mnemonic() == Mnemonic::Ret,
            FlowControl::Next => {}
            _ => return false,
        }
    }
    false
}

/// The most instructions [`runs_into_ret`] looks past.
const INTO_RET_LIMIT: usize = 8;

/// The `.cold` parts by address, and which function each belongs to.
struct ColdIndex {
    /// Sorted by address.
    parts: Vec<ColdPart>,
    /// Functions named like each part's parent (several when static
    /// functions of different files share a name).
    candidates: Vec<Vec<usize>>,
    parent: Vec<Option<usize>>,
}

impl ColdIndex {
    fn new(cold: &[ColdPart], functions: &[Symbol]) -> Self {
        let mut parts = cold.to_vec();
        parts.sort_by_key(|p| p.vaddr);
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
        if !parts.is_empty() {
            for (i, f) in functions.iter().enumerate() {
                let names = std::iter::once(&f.raw_name).chain(&f.aliases);
                for name in names {
                    by_name.entry(name.as_str()).or_default().push(i);
                }
            }
        }
        let candidates: Vec<Vec<usize>> = parts
            .iter()
            .map(|p| by_name.get(p.parent.as_str()).cloned().unwrap_or_default())
            .collect();
        let parent = candidates
            .iter()
            .map(|c| {
                if c.len() == 1 {
                    c.first().copied()
                } else {
                    None
                }
            })
            .collect();
        ColdIndex {
            parts,
            candidates,
            parent,
        }
    }

    fn containing(&self, addr: u64) -> Option<usize> {
        let i = self
            .parts
            .partition_point(|p| p.vaddr <= addr)
            .checked_sub(1)?;
        let p = &self.parts[i];
        in_range(addr, (p.vaddr, p.vaddr + p.size)).then_some(i)
    }

    /// A function that jumps into a part named after it is its parent: this
    /// settles a name shared by static functions of different files.
    fn claim(&mut self, target: u64, function: usize) {
        if let Some(i) = self.containing(target)
            && self.parent[i].is_none()
            && self.candidates[i].contains(&function)
        {
            self.parent[i] = Some(function);
        }
    }

    /// Whether `addr` is in a `.cold` part of `function`.
    fn belongs(&self, addr: u64, function: usize) -> bool {
        self.containing(addr)
            .is_some_and(|i| self.parent[i] == Some(function) || self.candidates[i] == [function])
    }
}

/// The stretches of `sections` that no function or `.cold` part covers.
fn uncovered(sections: &[(u64, u64)], functions: &[Symbol], cold: &[ColdPart]) -> Vec<(u64, u64)> {
    let mut covered: Vec<(u64, u64)> = functions
        .iter()
        .map(|f| (f.vaddr, f.vaddr + f.size))
        .chain(cold.iter().map(|c| (c.vaddr, c.vaddr + c.size)))
        .filter(|(start, end)| start < end)
        .collect();
    covered.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(covered.len());
    for (start, end) in covered {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut gaps = Vec::new();
    for &(start, end) in sections {
        let mut at = start;
        let first = merged.partition_point(|c| c.1 <= start);
        for &(c_start, c_end) in merged[first..].iter().take_while(|c| c.0 < end) {
            if c_start > at {
                gaps.push((at, c_start));
            }
            at = at.max(c_end);
        }
        if at < end {
            gaps.push((at, end));
        }
    }
    gaps
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use iced_x86::{Decoder, DecoderOptions, Mnemonic};

    use super::*;
    use crate::symbols::elf::{ModuleSymbols, read_module};
    use crate::symbols::testutil::{self, ASM_EXITS, COLD_AND_ALIASES, EXCEPTIONS, EXITS, Fixture};

    fn find<'a>(module: &'a ModuleSymbols, name: &str) -> &'a Symbol {
        let found = module.functions.iter().find(|s| s.name == name);
        found.unwrap_or_else(|| panic!("no {name}"))
    }

    fn stub<'a>(module: &'a ModuleSymbols, import: &str) -> &'a PltStub {
        let found = module.plt.stubs.iter().find(|s| s.import == import);
        found.unwrap_or_else(|| panic!("no {import}@plt"))
    }

    /// Offsets relative to the function's first byte.
    fn relative(sym: &Symbol) -> Vec<u64> {
        sym.ret_sites.iter().map(|s| s - sym.file_offset).collect()
    }

    /// The file offset of address `vaddr` in `sym`'s segment.
    fn offset_in(sym: &Symbol, vaddr: u64) -> u64 {
        vaddr - sym.vaddr + sym.file_offset
    }

    /// The instruction at file offset `offset` of `path`, at address `vaddr`.
    fn insn_at(path: &Path, offset: u64, vaddr: u64) -> Instruction {
        let bytes = testutil::file_bytes(path, offset, 16);
        Decoder::with_ip(64, &bytes, vaddr, DecoderOptions::NONE).decode()
    }

    /// objdump's addresses of the lines in [start, end) that `pick` likes.
    fn objdump_in(path: &Path, (start, end): (u64, u64), pick: impl Fn(&str) -> bool) -> Vec<u64> {
        testutil::objdump_insns(path)
            .into_iter()
            .filter(|(addr, text)| in_range(*addr, (start, end)) && pick(text))
            .map(|(addr, _)| addr)
            .collect()
    }

    fn is_ret(text: &str) -> bool {
        text.split_whitespace().any(|w| w == "ret" || w == "retq")
    }

    fn range(sym: &Symbol) -> (u64, u64) {
        (sym.vaddr, sym.vaddr + sym.size)
    }

    #[test]
    fn a_return_site_moves_past_a_write_to_the_return_value_only_for_its_exit() {
        let site = |bytes: &[u8]| return_site(bytes, 0x1000, (0x1000, true), &[]);
        // mov (%rsp),%rax; call ...: the exit moves onto the call, the
        // value stays where %rax still holds it.
        let overwrites = [0x48, 0x8b, 0x04, 0x24, 0xe8, 0, 0, 0, 0];
        let expected = ReturnSite {
            site: 0x1004,
            value: 0x1000,
            emulated: true,
        };
        assert_eq!(site(&overwrites), Some(expected));
        // mov %rax,%rbx; call ...: both on the call.
        let keeps = [0x48, 0x89, 0xc3, 0xe8, 0, 0, 0, 0];
        let expected = ReturnSite {
            site: 0x1003,
            value: 0x1003,
            emulated: true,
        };
        assert_eq!(site(&keeps), Some(expected));
        // A branch lands on the call: neither moves there.
        let landed = return_site(&keeps, 0x1000, (0x1000, true), &[0x1003]);
        let expected = ReturnSite {
            site: 0x1000,
            value: 0x1000,
            emulated: false,
        };
        assert_eq!(landed, Some(expected));
    }

    #[test]
    fn short_calls_nest_at_most_short_height_levels_below() {
        let source = r#"
#include <string.h>
#define T __attribute__((noipa))
T int leaf(int x) { return x * 3; }
T int one(int x) { return leaf(x) + 1; }
T int two(int x) { return one(x) + 2; }
T int three(int x) { return two(x) + 3; }
T size_t via_plt(const char *s) { return strlen(s) + 1; }
T int rec(int x) { int r = x > 0 ? rec(x - 1) : 0; __asm__ volatile("" : "+r"(r)); return r + x; }
T int via_pointer(int (*f)(int), int x) { return f(x) + 1; }
int main(int c, char **v) {
    return leaf(c) + three(c) + (int)via_plt(v[0]) + rec(c) + via_pointer(leaf, c);
}
"#;
        let fx = Fixture::new();
        let exe = fx.cc("short", source, &["-O2"]);
        let module = read_module(&exe).expect("reading");
        let short = |name| find(&module, name).short;
        // leaf 0, one 1, two 2 levels below; three is a level too deep.
        assert!(short("leaf") && short("one") && short("two"));
        assert!(!short("three"));
        // A PLT stub is a level of its own.
        assert!(short("via_plt"));
        // Recursion never ends its levels; a call through a pointer may go
        // anywhere.
        assert!(!short("rec"));
        assert!(!short("via_pointer"));
        assert!(!short("main"));
    }

    #[test]
    fn early_return_gives_both_rets() {
        let fx = Fixture::new();
        let exe = fx.cc("exits", EXITS, &["-O2"]);
        let module = read_module(&exe).expect("reading");
        let f = find(&module, "two_rets");
        let rets = objdump_in(&exe, range(f), is_ret);
        assert_eq!(rets.len(), 2, "fixture lost its early return");
        let expected: Vec<u64> = rets.iter().map(|&a| offset_in(f, a)).collect();
        assert_eq!(f.ret_sites, expected);
        for &site in &f.ret_sites {
            let byte = testutil::file_bytes(&exe, site, 1)[0];
            assert!(matches!(byte, 0xc3 | 0xc2 | 0xf3), "{byte:#x} at {site:#x}");
        }
    }

    #[test]
    fn an_interpreter_loops_return_is_seen_at_its_branches_into_the_epilogue() {
        let fx = Fixture::new();
        let exe = fx.cc("epilogue", testutil::EPILOGUE, &["-O2"]);
        let module = read_module(&exe).expect("reading");
        let f = find(&module, "eval");
        let rets = objdump_in(&exe, range(f), is_ret);
        assert_eq!(rets.len(), 1, "{rets:x?}");
        let [epilogue] = &f.epilogues[..] else {
            panic!("{:?}", f.epilogues)
        };
        assert_eq!(epilogue.ret, offset_in(f, rets[0]));
        assert!(epilogue.calls.is_empty(), "{epilogue:?}");
        // The `je` of `]` jumps into its pops, the `jne` of `)` falls through.
        let insns: Vec<(u64, String)> = testutil::objdump_insns(&exe)
            .into_iter()
            .filter(|(addr, _)| in_range(*addr, range(f)))
            .collect();
        let target = |text: &str| {
            text.split_whitespace()
                .nth(1)
                .and_then(|t| u64::from_str_radix(t, 16).ok())
        };
        let (je, pops) = (insns.iter())
            .find_map(|(a, t)| {
                target(t)
                    .filter(|&to| t.starts_with("je") && (rets[0] - 8..rets[0]).contains(&to))
                    .map(|to| (*a, to))
            })
            .expect("a je into the epilogue");
        let before = insns
            .iter()
            .take_while(|(a, _)| *a < pops)
            .last()
            .expect("an instruction before");
        assert!(before.1.starts_with("jne"), "{before:?}");
        let expected = vec![offset_in(f, je), offset_in(f, before.0)];
        assert_eq!(epilogue.branches, expected);
    }

    #[test]
    fn tail_call_is_a_site() {
        let fx = Fixture::new();
        let exe = fx.cc("exits", EXITS, &["-O2"]);
        let module = read_module(&exe).expect("reading");
        let (tail, other) = (find(&module, "tail"), find(&module, "other"));
        assert_eq!(tail.ret_sites.len(), 1, "{:?}", tail.ret_sites);
        let site = tail.ret_sites[0];
        let insn = insn_at(&exe, site, site - tail.file_offset + tail.vaddr);
        assert_eq!(insn.mnemonic(), Mnemonic::Jmp);
        assert_eq!(insn.near_branch_target(), other.vaddr);
        // The site knows where it goes, for BPF to chain the frames.
        assert_eq!(tail.tail_calls, [(site, Some(other.vaddr))]);
    }

    #[test]
    fn plt_calls_return_right_after_each_call_or_at_the_next_call() {
        let fx = Fixture::new();
        let ibt = ["-O2", "-fcf-protection=full", "-Wl,-z,ibtplt"];
        for (name, flags) in [("plain", &["-O2"][..]), ("ibt", &ibt[..])] {
            let exe = fx.cc(name, EXITS, flags);
            let module = read_module(&exe).expect("reading");
            let strlen = stub(&module, "strlen");
            let insns = testutil::objdump_insns(&exe);
            // After each `call strlen@plt`: that instruction, or the next
            // call when only moves into other registers than the return
            // value's come first (two's first call: `mov %rbp,%rdi; mov
            // %rax,%rbx; call strlen@plt`).
            let moves_aside = |text: &str| {
                let dst = text.rsplit(',').next().unwrap_or_default();
                text.starts_with("mov ")
                    && dst.starts_with('%')
                    && !["%rax", "%eax", "%rdx", "%edx", "%rsp"].contains(&dst)
            };
            let sites: Vec<u64> = (0..insns.len().saturating_sub(1))
                .filter(|&i| insns[i].1.starts_with("call") && insns[i].1.ends_with("<strlen@plt>"))
                .map(|i| {
                    let mut j = i + 1;
                    while j < insns.len() && moves_aside(&insns[j].1) {
                        j += 1;
                    }
                    let next_call = insns.get(j).filter(|(_, t)| t.starts_with("call"));
                    next_call.map_or(insns[i + 1].0, |&(a, _)| a)
                })
                .collect();
            assert_eq!(sites.len(), 3, "{name}");
            assert!(
                sites
                    .iter()
                    .any(|&a| insns.iter().any(|(b, t)| *b == a && t.starts_with("call"))),
                "{name}: nothing moved"
            );
            let (one, two) = (find(&module, "one"), find(&module, "two"));
            let mut expected: Vec<u64> = sites
                .iter()
                .map(|&a| match in_range(a, range(one)) {
                    true => offset_in(one, a),
                    false => offset_in(two, a),
                })
                .collect();
            expected.sort_unstable();
            assert_eq!(strlen.call_returns, expected, "{name}");
        }
    }

    #[test]
    fn a_stub_only_called_or_jumped_to_is_entered_where_code_reaches_it() {
        let source = r#"
#include <stdlib.h>
#include <string.h>
__attribute__((noipa)) size_t measure(const char *s) { return strlen(s) + strlen(s + 1); }
__attribute__((noipa)) void release(void *p) { free(p); }
int main(int c, char **v) { char *p = malloc(8); release(p); return (int)measure(v[0]) + c; }
"#;
        let fx = Fixture::new();
        let exe = fx.cc("callsites", source, &["-O2"]);
        let module = read_module(&exe).expect("reading");
        let insns = testutil::objdump_insns(&exe);
        let strlen = stub(&module, "strlen");
        let measure = find(&module, "measure");
        // Each `call strlen@plt`, and nothing else.
        let calls: Vec<u64> = insns
            .iter()
            .filter(|(_, text)| text.starts_with("call") && text.ends_with("<strlen@plt>"))
            .map(|&(a, _)| offset_in(measure, a))
            .collect();
        assert_eq!(calls.len(), 2, "{insns:?}");
        assert_eq!(strlen.call_sites, calls);
        assert!(strlen.jump_sites.is_empty());
        // release's `free(p)` is a tail call: `jmp free@plt`, free's only
        // way in, is where it is entered.
        let release = find(&module, "release");
        let jumps: Vec<u64> = (insns.iter())
            .filter(|(_, t)| t.starts_with("jmp") && t.ends_with("<free@plt>"))
            .map(|&(a, _)| offset_in(release, a))
            .collect();
        assert_eq!(jumps.len(), 1, "{insns:?}");
        let free = stub(&module, "free");
        assert!(free.call_sites.is_empty());
        assert_eq!(free.jump_sites, jumps);
        // A non-PIE executable's pointers to an import may hold its stub.
        let exe = fx.cc("callsites_nopie", source, &["-O2", "-fno-pie", "-no-pie"]);
        let module = read_module(&exe).expect("reading");
        assert!(stub(&module, "strlen").call_sites.is_empty());
        assert!(stub(&module, "free").jump_sites.is_empty());
    }

    #[test]
    fn a_stub_call_into_its_callers_epilogue_is_found() {
        // nap: `call usleep@plt; mov $1,%eax; add $8,%rsp; ret`, and so does
        // twice's second call; its first returns onto a `call`, which the
        // kernel emulates.
        let source = r#"
#include <unistd.h>
__attribute__((noipa)) int nap(void) { usleep(1); return 1; }
__attribute__((noipa)) int twice(void) { usleep(1); usleep(2); return 2; }
int main(void) { return nap() + twice(); }
"#;
        let fx = Fixture::new();
        let exe = fx.cc("intoret", source, &["-O2"]);
        let module = read_module(&exe).expect("reading");
        let insns = testutil::objdump_insns(&exe);
        let last_call = |f: &Symbol| {
            let calls: Vec<u64> = (insns.iter())
                .filter(|&&(a, ref t)| in_range(a, range(f)) && t.ends_with("<usleep@plt>"))
                .map(|&(a, _)| offset_in(f, a))
                .collect();
            let call = *calls.last().unwrap_or_else(|| panic!("{insns:?}"));
            IntoRet {
                call,
                ret: call + 5,
                caller: f.vaddr,
            }
        };
        let usleep = stub(&module, "usleep");
        let expected = [find(&module, "nap"), find(&module, "twice")].map(last_call);
        assert_eq!(usleep.into_caller_ret, expected);
        assert_eq!(usleep.call_sites.len(), 3);
    }

    #[test]
    fn a_function_with_a_tail_jump_watches_where_its_direct_calls_return() {
        // sort2 is `jmp qsort@plt` and its address is taken: its direct
        // calls' returns are watched, not its only exits.
        let source = r#"
#include <stdlib.h>
__attribute__((noipa)) int cmp(const void *a, const void *b) { return *(int *)a - *(int *)b; }
__attribute__((noipa)) void sort2(int *v) { qsort(v, 2, sizeof(int), cmp); }
__attribute__((noipa)) int leaf(int x) { return x + 1; }
void (*volatile hook)(int *) = sort2;
int main(int c, char **v) { int a[2] = {c, 1}; sort2(a); sort2(a); hook(a); return leaf(a[0]); }
"#;
        let fx = Fixture::new();
        let exe = fx.cc("watch", source, &["-O2"]);
        let module = read_module(&exe).expect("reading");
        let insns = testutil::objdump_insns(&exe);
        let sort2 = find(&module, "sort2");
        // After each direct `call sort2`: its next instruction, or the first
        // emulated one a straight line reaches.
        let after: Vec<u64> = (0..insns.len() - 1)
            .filter(|&i| insns[i].1.starts_with("call") && insns[i].1.ends_with("<sort2>"))
            .map(|i| insns[i + 1].0)
            .collect();
        assert_eq!(after.len(), 2, "{insns:?}");
        assert_eq!(sort2.watch_returns.len(), 2, "{:?}", sort2.watch_returns);
        for (&site, &ret) in sort2.watch_returns.iter().zip(&after) {
            assert!(site >= offset_in(sort2, ret), "{site:#x} before {ret:#x}");
        }
        assert!(sort2.call_returns.is_empty());
        // Without a tail jump, nothing is watched.
        assert!(find(&module, "leaf").watch_returns.is_empty());
    }

    #[test]
    fn cold_part_is_its_parents() {
        let fx = Fixture::new();
        let exe = fx.cc("cold", COLD_AND_ALIASES, &["-O2"]);
        let module = read_module(&exe).expect("reading");
        let check = find(&module, "check");
        let into_cold = objdump_in(&exe, range(check), |t| t.ends_with("<check.cold>"));
        assert_eq!(into_cold.len(), 1, "fixture lost its jump into check.cold");
        // The jump into check.cold is no tail call, nor is the jump back.
        let rets: Vec<u64> = objdump_in(&exe, range(check), is_ret);
        let expected: Vec<u64> = rets.iter().map(|&a| offset_in(check, a)).collect();
        assert_eq!(check.ret_sites, expected);
    }

    #[test]
    fn exceptions_keep_landing_pads_out() {
        let fx = Fixture::new();
        let exe = fx.cxx("exceptions", EXCEPTIONS, &["-O2"]);
        let module = read_module(&exe).expect("reading");
        let labels = testutil::objdump_labels(&exe);
        let label = |name: &str| labels.iter().find(|(n, _)| n == name).map(|l| l.1);
        let catcher_cold = label("catcher(int) [clone .cold]").or(label("_Z7catcheri.cold"));
        let catcher_cold = catcher_cold.expect("fixture lost catcher's .cold part");
        for name in ["thrower(int)", "catcher(int)"] {
            let f = find(&module, name);
            let rets = objdump_in(&exe, range(f), is_ret);
            let expected: Vec<u64> = rets.iter().map(|&a| offset_in(f, a)).collect();
            assert_eq!(f.ret_sites, expected, "{name}");
        }
        let tailthrow = find(&module, "tailthrow(int)");
        let printf = stub(&module, "printf");
        let [site] = tailthrow.ret_sites[..] else {
            panic!("tailthrow: {:?}", tailthrow.ret_sites);
        };
        let insn = insn_at(&exe, site, site - tailthrow.file_offset + tailthrow.vaddr);
        assert_eq!(
            (insn.mnemonic(), insn.near_branch_target()),
            (Mnemonic::Jmp, printf.vaddr)
        );
        // A tail call into the library leaves printf@plt without a site.
        assert!(printf.call_returns.is_empty(), "{:?}", printf.call_returns);
        // puts is called from the catch block, in catcher's .cold part.
        let puts = stub(&module, "puts");
        let [after_puts] = puts.call_returns[..] else {
            panic!("puts: {:?}", puts.call_returns);
        };
        let vaddr = after_puts + tailthrow.vaddr - tailthrow.file_offset;
        assert!(vaddr > catcher_cold && vaddr < find(&module, "catcher(int)").vaddr);
        for import in ["__cxa_throw", "_Unwind_Resume"] {
            assert!(stub(&module, import).call_returns.is_empty(), "{import}");
        }
    }

    #[test]
    fn hand_written_exits() {
        let fx = Fixture::new();
        let exe = fx.compile("gcc", "S", "asm", ASM_EXITS, &[]);
        let module = read_module(&exe).expect("reading");
        let sites = |name: &str| relative(find(&module, name));
        assert_eq!(sites("rets"), [4, 11]);
        assert_eq!(sites("condtail"), [2, 4]);
        assert_eq!(sites("data"), [4]);
        assert!(sites("truncated").is_empty());
        let (f, g) = (find(&module, "f"), find(&module, "g"));
        assert_eq!(f.ret_sites, [f.file_offset + 4]);
        assert_eq!(g.ret_sites, f.ret_sites);
    }

    #[test]
    fn jump_tables_are_told_from_jumps_through_a_pointer() {
        let table = |bytes: &[u8]| {
            let mut decoder = Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE);
            let mut insns: Vec<Instruction> = Vec::new();
            while decoder.can_decode() {
                insns.push(decoder.decode());
            }
            let (jmp, before) = insns.split_last().expect("instructions");
            jump_table(jmp, before)
        };
        // lea tbl(%rip),%rdx; movslq (%rdx,%rax,4),%rax; add %rdx,%rax; jmp *%rax
        let pic_switch = [
            0x48, 0x8d, 0x15, 0, 0, 0, 0, 0x48, 0x63, 0x04, 0x82, 0x48, 0x01, 0xd0, 0xff, 0xe0,
        ];
        assert!(table(&pic_switch));
        // mov (%rdx,%rax,8),%rax; jmp *%rax: a computed goto.
        assert!(table(&[0x48, 0x8b, 0x04, 0xc2, 0xff, 0xe0]));
        // jmp *tbl(,%rax,8)
        assert!(table(&[0xff, 0x24, 0xc5, 0, 0, 0, 0]));
        // mov -0x1(%rdx,%rax,1),%rax; jmp *%rax: a virtual member pointer.
        assert!(!table(&[0x48, 0x8b, 0x44, 0x02, 0xff, 0xff, 0xe0]));
        // jmp *0x18(%rdi): a function pointer in a struct; jmp *%rsi: an argument.
        assert!(!table(&[0xff, 0x67, 0x18]));
        assert!(!table(&[0xff, 0xe6]));
    }

    #[test]
    fn cold_parent_names() {
        assert_eq!(cold_parent("check.cold"), Some("check"));
        assert_eq!(cold_parent("_Z7catcheri.cold"), Some("_Z7catcheri"));
        assert_eq!(
            cold_parent("scale.constprop.0.cold.12"),
            Some("scale.constprop.0")
        );
        assert_eq!(cold_parent("cold"), None);
        assert_eq!(cold_parent(".cold"), None);
        assert_eq!(cold_parent("x.coldstart"), None);
        assert_eq!(cold_parent("x.cold."), None);
    }

    #[test]
    fn uncovered_is_what_no_symbol_holds() {
        let code = |vaddr, size| Symbol {
            name: String::new(),
            raw_name: String::new(),
            aliases: Vec::new(),
            vaddr,
            size,
            file_offset: vaddr,
            global: true,
            ifunc: false,
            placement: crate::symbols::placement::place(&[], vaddr, vaddr),
            refused: None,
            ret_sites: Vec::new(),
            epilogues: Vec::new(),
            call_returns: Vec::new(),
            value_returns: Vec::new(),
            call_sites: Vec::new(),
            watch_returns: Vec::new(),
            tail_calls: Vec::new(),
            leaf: false,
            short: false,
        };
        let functions = [
            code(0x10, 0x10),
            code(0x14, 0x4),
            code(0x40, 0x8),
            code(0x50, 0),
        ];
        let cold = [ColdPart {
            parent: "x".into(),
            vaddr: 0x30,
            size: 0x8,
        }];
        let sections = [(0x0, 0x60), (0x100, 0x110)];
        assert_eq!(
            uncovered(&sections, &functions, &cold),
            [
                (0x0, 0x10),
                (0x20, 0x30),
                (0x38, 0x40),
                (0x48, 0x60),
                (0x100, 0x110)
            ]
        );
    }
}
