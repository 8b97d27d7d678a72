//! Exits seen before the epilogue, for the ret sites deep recursion needs.
//!
//! The kernel single-steps a probe on `ret` (10–18 µs on these VMs) but
//! emulates one on a relative `jcc`, `jmp` or `call` (under 1 µs). When
//! every way into the straight line that ends in a function's `ret` (its
//! epilogue: `add $N,%rsp`, `pop`s, stores) is such a branch, a `jcc`
//! falling through into it, or a direct call returning into it, those can
//! stand in for the `ret`. Once a branch goes that way the return is
//! certain: the stack pointer at the `ret` is the branch's plus what the
//! epilogue pops, and nothing between them writes the return value's
//! registers, so BPF ends the frame there, a few instructions early,
//! testing a `jcc`'s condition against the flags as for a conditional tail
//! call. A call returning into it ends the frame when the callee's own
//! exit is seen: BPF chains the frame to the callee's at the call (the
//! caller picks the calls whose callee is traced, symbols' mod.rs). Lua's
//! `luaV_execute` leaves through one `jne` into `add $0x58,%rsp; pop ×6;
//! ret`, `luaD_callnoyield` where its `call luaV_execute` returns into
//! `subl; add $16,%rsp; pop; ret`: their deep frames end at ~0.5 µs
//! instead of a single step each.
//!
//! What could land in an epilogue unseen is ruled out: a relative jump
//! table (a PIC `switch`) or a jump through a register this scan cannot
//! follow, a computed goto or a pointer to it (an address the module's
//! relocations name, taken.rs), a jump from another function, code that
//! cannot all be decoded, a call through a pointer returning into it.

use std::collections::{HashMap, HashSet};

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic,
    OpKind, Register,
};

use super::placement::{is_direct_jmp, is_jcc, kernel_accepts, writes};

/// The most instructions an epilogue holds before its `ret`.
const EPILOGUE_LIMIT: usize = 16;

/// The most stack slots an epilogue pops: BPF's cookie has 8 bits for them,
/// and a frame's `gap` (one more, for a call's return address) too.
const SLOTS_MAX: u32 = 0xfe;

/// For code that starts an epilogue: the stack slots it pops before its
/// `ret` (so that %rsp at the `ret` is %rsp here + 8 × slots). `None` when
/// it is not one: a branch, a call, a write to %rax, %rdx or a vector
/// register (the return value), or %rsp set other than by `pop`, `add
/// $N,%rsp` or `lea N(%rsp),%rsp`, before a plain `ret`.
pub fn slots_to_ret(code: &[u8]) -> Option<u32> {
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut info = InstructionInfoFactory::new();
    let mut bytes = 0u64;
    for _ in 0..=EPILOGUE_LIMIT {
        let insn = decoder.decode();
        if insn.is_invalid() {
            return None;
        }
        if insn.mnemonic() == Mnemonic::Ret {
            let slots = u32::try_from(bytes / 8).ok()?;
            let whole = bytes.is_multiple_of(8) && slots <= SLOTS_MAX;
            return (insn.op_count() == 0 && whole).then_some(slots);
        }
        bytes += pops(&mut info, &insn)?;
    }
    None
}

/// What one epilogue instruction adds to %rsp, if it is one.
fn pops(info: &mut InstructionInfoFactory, insn: &Instruction) -> Option<u64> {
    let to_rsp = insn.op_count() > 0
        && insn.op0_kind() == OpKind::Register
        && insn.op0_register() == Register::RSP;
    match insn.mnemonic() {
        Mnemonic::Pop if insn.op0_kind() == OpKind::Register => {
            let reg = insn.op0_register();
            let allowed = reg.size() == 8 && !value_or_stack(reg);
            return allowed.then_some(8);
        }
        Mnemonic::Add
            if to_rsp
                && matches!(
                    insn.op1_kind(),
                    OpKind::Immediate8to64 | OpKind::Immediate32to64
                ) =>
        {
            return u64::try_from(insn.immediate64() as i64).ok();
        }
        Mnemonic::Lea
            if to_rsp
                && insn.memory_base() == Register::RSP
                && insn.memory_index() == Register::None =>
        {
            return u64::try_from(insn.memory_displacement64() as i64).ok();
        }
        _ => {}
    }
    if insn.flow_control() != FlowControl::Next || insn.has_lock_prefix() {
        return None;
    }
    // A store is no return: the frame may end before it (the `subl` of
    // Lua's luaD_callnoyield, a counter's update).
    let used = info.info(insn);
    let clean = (used.used_registers().iter())
        .filter(|r| writes(r.access()))
        .all(|r| {
            let full = r.register().full_register();
            (Register::RAX..=Register::R15).contains(&full) && !value_or_stack(full)
        });
    clean.then_some(0)
}

/// %rax and %rdx hold a return value (`-R` reads them at the exit); %rsp
/// is what the epilogue counts.
fn value_or_stack(reg: Register) -> bool {
    matches!(
        reg.full_register(),
        Register::RAX | Register::RDX | Register::RSP
    )
}

/// The exit one early site sees: the stack slots to its function's `ret`,
/// and for a `jcc` whether its exit is the jump taken (else it is the jump
/// not taken, falling through into the epilogue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EarlyExit {
    pub slots: u32,
    pub taken: Option<bool>,
}

/// For the branch at the start of `code` (at `ip`, where `read(a)` gives
/// the bytes from `a` on): the exit it stands for, when exactly one way it
/// goes is an epilogue ([`slots_to_ret`]). `ip` may be a file offset: a
/// relative branch's target is as far away in the file as in memory.
pub fn early_exit<B: AsRef<[u8]>>(
    code: &[u8],
    ip: u64,
    read: impl Fn(u64) -> Option<B>,
) -> Option<EarlyExit> {
    let insn = Decoder::with_ip(64, code, ip, DecoderOptions::NONE).decode();
    let at = |to: u64| read(to).and_then(|b| slots_to_ret(b.as_ref()));
    let target = at(insn.near_branch_target());
    if is_direct_jmp(&insn) {
        return target.map(|slots| EarlyExit { slots, taken: None });
    }
    if !is_jcc(&insn) {
        return None;
    }
    match (target, at(insn.next_ip())) {
        (Some(slots), None) => Some(EarlyExit {
            slots,
            taken: Some(true),
        }),
        (None, Some(slots)) => Some(EarlyExit {
            slots,
            taken: Some(false),
        }),
        _ => None,
    }
}

/// A function's code: its body first, then its `.cold` part, each as
/// (bytes, address, file offset).
pub(crate) type Pieces<'a> = [(&'a [u8], u64, u64)];

/// What [`early_sites`] must know of the module around the function.
pub(crate) struct Around<'a> {
    /// The addresses the module hands out (taken.rs), `None` when unknown.
    pub taken: Option<&'a HashSet<u64>>,
    /// Whether an address is a branch target or RIP-relative operand
    /// anywhere in the module.
    pub referenced: &'a dyn Fn(u64) -> bool,
    /// Whether the indirect `jmp` at `insns[i]` may land at an address no
    /// relocation names (a relative jump table).
    pub lands_unnamed: &'a dyn Fn(&[Instruction], usize) -> bool,
}

/// A `ret` whose epilogue only emulated instructions enter: the branches
/// into it and the direct calls that return into it, all file offsets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Epilogue {
    pub ret: u64,
    pub branches: Vec<u64>,
    /// (the call, the address it calls): its frame can end with that
    /// callee's when the callee is traced (its own exit seen).
    pub calls: Vec<(u64, u64)>,
}

/// A function's epilogues that [`Epilogue`] describes, by `ret`.
pub(crate) fn epilogues(pieces: &Pieces<'_>, around: &Around<'_>) -> Vec<Epilogue> {
    let mut code: Vec<Vec<Instruction>> = Vec::new();
    for &(bytes, vaddr, _) in pieces {
        let mut insns = Vec::new();
        let mut decoder = Decoder::with_ip(64, bytes, vaddr, DecoderOptions::NONE);
        while decoder.can_decode() {
            let insn = decoder.decode();
            if insn.is_invalid() {
                return Vec::new();
            }
            insns.push(insn);
        }
        code.push(insns);
    }
    // An indirect jump may land where its table or pointer says: only what
    // relocations name (taken) is known.
    for insns in &code {
        for (i, insn) in insns.iter().enumerate() {
            let indirect = insn.flow_control() == FlowControl::IndirectBranch;
            if indirect && (around.taken.is_none() || (around.lands_unnamed)(insns, i)) {
                return Vec::new();
            }
        }
    }
    // Where each of the function's branches and calls lands.
    let mut landing: HashMap<u64, Vec<&Instruction>> = HashMap::new();
    for insn in code.iter().flatten() {
        if insn.op0_kind() == OpKind::NearBranch64 {
            landing
                .entry(insn.near_branch_target())
                .or_default()
                .push(insn);
        }
    }
    let mut info = InstructionInfoFactory::new();
    let mut found = Vec::new();
    for (piece, insns) in code.iter().enumerate() {
        for (r, ret) in insns.iter().enumerate() {
            if ret.mnemonic() != Mnemonic::Ret {
                continue;
            }
            let mut start = r;
            while start > 0
                && r - start < EPILOGUE_LIMIT
                && pops(&mut info, &insns[start - 1]).is_some()
            {
                start -= 1;
            }
            let line = &insns[start..=r];
            let mut entries: Vec<&Instruction> = (line.iter())
                .flat_map(|i| landing.get(&i.ip()).into_iter().flatten().copied())
                .collect();
            let mut calls = Vec::new();
            // Reached without a branch: from the function's own entry, from
            // a call returning, or from an instruction that runs on into it.
            let falls_in = match start.checked_sub(1).map(|k| &insns[k]) {
                None => piece == 0,
                Some(prev) => match prev.flow_control() {
                    FlowControl::ConditionalBranch => {
                        entries.push(prev);
                        false
                    }
                    FlowControl::Call if prev.code() == Code::Call_rel32_64 => {
                        calls.push(prev);
                        false
                    }
                    FlowControl::UnconditionalBranch
                    | FlowControl::IndirectBranch
                    | FlowControl::Return
                    | FlowControl::Interrupt
                    | FlowControl::Exception => false,
                    _ => true,
                },
            };
            let elsewhere = line.iter().any(|i| {
                let ip = i.ip();
                around.taken.is_some_and(|t| t.contains(&ip))
                    || (around.referenced)(ip) && !landing.contains_key(&ip)
            });
            let accepted = |i: &Instruction| {
                at(pieces, i.ip()).is_some_and(|code| kernel_accepts(&code[..i.len()]))
            };
            let stands_in = |b: &&Instruction| {
                (is_jcc(b) || is_direct_jmp(b))
                    && accepted(b)
                    && at(pieces, b.ip())
                        .is_some_and(|code| early_exit(code, b.ip(), |a| at(pieces, a)).is_some())
            };
            let entered = entries.iter().all(stands_in) && calls.iter().all(|c| accepted(c));
            if falls_in || elsewhere || entries.len() + calls.len() == 0 || !entered {
                continue;
            }
            let offsets = |list: &[&Instruction]| -> Option<Vec<u64>> {
                list.iter().map(|b| file_offset(pieces, b.ip())).collect()
            };
            let (Some(ret), Some(branches), Some(call_sites)) = (
                file_offset(pieces, ret.ip()),
                offsets(&entries),
                offsets(&calls),
            ) else {
                continue;
            };
            let targets = calls.iter().map(|c| c.near_branch_target());
            let mut branches = branches;
            branches.sort_unstable();
            branches.dedup();
            found.push(Epilogue {
                ret,
                branches,
                calls: call_sites.into_iter().zip(targets).collect(),
            });
        }
    }
    found
}

/// The piece holding address `ip`.
fn piece_of<'p, 'a>(pieces: &'p Pieces<'a>, ip: u64) -> Option<&'p (&'a [u8], u64, u64)> {
    pieces
        .iter()
        .find(|&&(b, v, _)| (v..v + b.len() as u64).contains(&ip))
}

/// The bytes from address `ip` to the end of its piece.
fn at<'a>(pieces: &Pieces<'a>, ip: u64) -> Option<&'a [u8]> {
    let &(bytes, vaddr, _) = piece_of(pieces, ip)?;
    bytes.get(usize::try_from(ip - vaddr).ok()?..)
}

/// The file offset of address `ip`.
fn file_offset(pieces: &Pieces<'_>, ip: u64) -> Option<u64> {
    let &(_, vaddr, offset) = piece_of(pieces, ip)?;
    Some(offset + (ip - vaddr))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// push %rbx; sub $0x10,%rsp; then `middle`; then the epilogue at
    /// `epilogue`: add $0x10,%rsp; pop %rbx; ret.
    fn function(middle: &[u8]) -> Vec<u8> {
        let mut code = vec![0x53, 0x48, 0x83, 0xec, 0x10];
        code.extend_from_slice(middle);
        code.extend_from_slice(&[0x48, 0x83, 0xc4, 0x10, 0x5b, 0xc3]);
        code
    }

    const BASE: u64 = 0x1000;
    const FILE: u64 = 0x200;

    /// (branch sites, `ret`s they all enter) of `code`'s epilogues, and the
    /// calls returning into them.
    fn sites(code: &[u8], taken: Option<&HashSet<u64>>) -> (Vec<u64>, Vec<u64>, Vec<(u64, u64)>) {
        let around = Around {
            taken,
            referenced: &|_| false,
            lands_unnamed: &|_, _| false,
        };
        let found = epilogues(&[(code, BASE, FILE)], &around);
        let branches = found.iter().flat_map(|e| e.branches.clone()).collect();
        let rets = found.iter().map(|e| e.ret).collect();
        let calls = found.iter().flat_map(|e| e.calls.clone()).collect();
        (branches, rets, calls)
    }

    /// The exit the branch at `code[at]` stands for.
    fn exit_at(code: &[u8], at: usize) -> Option<EarlyExit> {
        let ip = BASE + at as u64;
        early_exit(&code[at..], ip, |a| code.get((a - BASE) as usize..))
    }

    #[test]
    fn an_epilogue_pops_its_slots_before_a_plain_ret() {
        // add $0x58,%rsp; pop ×6 (luaV_execute's); ret
        let lua = [
            0x48, 0x83, 0xc4, 0x58, 0x5b, 0x5d, 0x41, 0x5c, 0x41, 0x5d, 0x41, 0x5e, 0x41, 0x5f,
            0xc3,
        ];
        assert_eq!(slots_to_ret(&lua), Some(17));
        // mov %rbx,%rdi; lea 0x18(%rsp),%rsp; ret: a register write and a lea.
        assert_eq!(
            slots_to_ret(&[0x48, 0x89, 0xdf, 0x48, 0x8d, 0x64, 0x24, 0x18, 0xc3]),
            Some(3)
        );
        assert_eq!(slots_to_ret(&[0xc9, 0xc3]), None); // leave: %rsp from %rbp
        assert_eq!(slots_to_ret(&[0x31, 0xc0, 0xc3]), None); // xor %eax,%eax: the value
        assert_eq!(slots_to_ret(&[0x58, 0xc3]), None); // pop %rax
        // mov %eax,(%rbx): a store, after which the function returns all the same.
        assert_eq!(slots_to_ret(&[0x89, 0x03, 0x5b, 0xc3]), Some(1));
        assert_eq!(slots_to_ret(&[0xc2, 0x08, 0x00]), None); // ret $8
        assert_eq!(slots_to_ret(&[0x5b, 0xe8, 0, 0, 0, 0, 0xc3]), None); // a call
    }

    #[test]
    fn a_jcc_into_the_epilogue_stands_in_for_the_ret() {
        // 05: test %edi,%edi; je epilogue (0e); dec %edi; jmp 05; nop
        let code = function(&[0x85, 0xff, 0x74, 0x05, 0xff, 0xcf, 0xeb, 0xf8, 0x90]);
        assert_eq!(
            sites(&code, Some(&HashSet::new())),
            (vec![FILE + 7], vec![FILE + 0x13], vec![])
        );
        assert_eq!(
            exit_at(&code, 7),
            Some(EarlyExit {
                slots: 3,
                taken: Some(true)
            })
        );
        // Unknown what the module's pointers name, its jumps through one
        // could land there.
        let mut pointer = code.clone();
        pointer.splice(5..9, [0xff, 0xe0, 0x90, 0x90]); // jmp *%rax; nops
        assert_eq!(sites(&pointer, None), Default::default());
        // Named by a relocation: a pointer to the epilogue.
        let named = HashSet::from([BASE + 0x0e]);
        assert_eq!(sites(&code, Some(&named)), Default::default());
    }

    #[test]
    fn a_jcc_falling_through_into_the_epilogue_exits_when_not_taken() {
        // 05: dec %edi; jne 05; then the epilogue.
        let code = function(&[0xff, 0xcf, 0x75, 0xfc]);
        assert_eq!(
            sites(&code, Some(&HashSet::new())),
            (vec![FILE + 7], vec![FILE + 0x0e], vec![])
        );
        assert_eq!(
            exit_at(&code, 7),
            Some(EarlyExit {
                slots: 3,
                taken: Some(false)
            })
        );
    }

    #[test]
    fn a_call_returning_into_the_epilogue_enters_it_too() {
        // 05: test %edi,%edi; je epilogue (0e); call 0
        let code = function(&[0x85, 0xff, 0x74, 0x05, 0xe8, 0xf2, 0xff, 0xff, 0xff]);
        let found = sites(&code, Some(&HashSet::new()));
        assert_eq!(
            found,
            (vec![FILE + 7], vec![FILE + 0x13], vec![(FILE + 9, BASE)])
        );
        // xor %eax,%eax before the epilogue: the value is set on the way.
        let code = function(&[0x85, 0xff, 0x74, 0x02, 0xeb, 0xfa, 0x31, 0xc0]);
        assert_eq!(sites(&code, Some(&HashSet::new())), Default::default());
        // A call through a pointer: what it reaches is unknown.
        let code = function(&[0x85, 0xff, 0x74, 0x02, 0xff, 0xd0]);
        assert_eq!(sites(&code, Some(&HashSet::new())), Default::default());
    }
}
