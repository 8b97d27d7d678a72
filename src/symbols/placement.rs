//! Where in a function to put its probe, and how the kernel will handle the
//! breakpoint there (x86-64).
//!
//! The kernel executes the probed instruction in one of three ways
//! (arch/x86/kernel/uprobes.c): since 6.18 a 5-byte nop is rewritten into a
//! call to a trampoline after its first hit (no trap at all afterwards);
//! push, nops and relative jmp/call/jcc are emulated in the trap handler
//! (branch_setup_xol_ops, push_setup_xol_ops); everything else is
//! single-stepped out of line, which costs a second trap. `endbr64` is in the
//! last group, so when a function opens with it the probe goes on the next
//! instruction: the stack is still untouched there, so entry arguments and
//! the return address (for uretprobes) are the same as at the first byte.
//!
//! Some instructions cannot be probed at all ([`kernel_accepts`]); exits.rs
//! asks before proposing a site.
//!
//! A function whose first instruction would be single-stepped (`mov`, `lea`,
//! `test` at -O2) usually reaches an emulated one within a few instructions:
//! the `push` of its prologue, the `jcc` of its first test, or the `jmp` into
//! its first loop. Its probe goes there ([`move_to_emulated`]) when
//! everything before it only computes into registers: the stack pointer,
//! the return address and memory are as the call left them, so the exit
//! hijack, the frame's stack pointer and stack arguments are exact. On these
//! VMs that is 0.3–0.75 µs a call instead of 10–18.

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic,
    OpAccess, OpKind, Register,
};

const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];

/// The kernel's preferred nops (x86_nops[len]), which its uprobe code
/// recognises and emulates.
const KERNEL_NOPS: [&[u8]; 8] = [
    &[0x90],
    &[0x66, 0x90],
    &[0x0f, 0x1f, 0x00],
    &[0x0f, 0x1f, 0x40, 0x00],
    &NOP5,
    &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
    &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
];

/// How the kernel runs the probed instruction, cheapest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryPath {
    /// A 5-byte nop: rewritten into a call to the uprobe trampoline after the
    /// first hit (kernel 6.18+), so later hits take no trap.
    Optimized,
    /// Emulated in the breakpoint handler: one trap.
    Emulated,
    /// Single-stepped out of line: two traps.
    SingleStep,
}

/// Where a function's probe goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Link-time address of the probed instruction.
    pub probe_vaddr: u64,
    /// File offset of the probed instruction: what uprobes attach to.
    pub probe_file_offset: u64,
    pub path: EntryPath,
    /// Whether the kernel accepts a probe there at all ([`kernel_accepts`]):
    /// not when the function opens with a `lock`-prefixed instruction
    /// (pthread_spin_lock) or an AVX one it does not know (vpxor).
    pub probeable: bool,
    /// Set when the probe was moved forward from the function's first
    /// instruction onto an emulated one ([`move_to_emulated`]).
    pub moved: Option<Moved>,
}

/// Where a moved probe would have been, and what the instructions it was
/// moved past change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moved {
    pub probe_vaddr: u64,
    pub probe_file_offset: u64,
    pub path: EntryPath,
    /// The integer argument registers they write, as bits in SysV order
    /// (bit 0 %rdi ... bit 5 %r9): a probe that reads those arguments must
    /// stay where it was ([`Placement::unmoved`]).
    pub clobbers: u8,
}

impl Placement {
    /// The placement on the first instruction (past endbr64), where every
    /// argument register still holds what the caller passed.
    pub fn unmoved(&self) -> Placement {
        match self.moved {
            Some(m) => Placement {
                probe_vaddr: m.probe_vaddr,
                probe_file_offset: m.probe_file_offset,
                path: m.path,
                probeable: true,
                moved: None,
            },
            None => *self,
        }
    }
}

/// The most instructions a probe is moved past.
const MOVE_LIMIT: usize = 16;

/// The most bytes past a function's first byte its entry probe is moved
/// to: BPF's ENTRY_SLACK (bpf/utrace.h), which tells a jump through a
/// pointer to the function by that distance (settle_jump).
pub const ENTRY_MOVE_MAX: u64 = 32;

/// The SysV integer argument registers, in order.
const ARG_REGISTERS: [Register; 6] = [
    Register::RDI,
    Register::RSI,
    Register::RDX,
    Register::RCX,
    Register::R8,
    Register::R9,
];

/// For a function whose probe would be single-stepped: the placement on the
/// first emulated instruction its entry reaches in a straight line
/// ([`emulated_ahead`]), if no branch of the function (`body`, all of it)
/// lands after the first instruction and up to the new probe (each such
/// landing would count as a call). Otherwise `placement` as it was.
pub fn move_to_emulated(
    placement: Placement,
    body: &[u8],
    vaddr: u64,
    file_offset: u64,
) -> Placement {
    if placement.path != EntryPath::SingleStep || !placement.probeable {
        return placement;
    }
    let Some((to, written)) = emulated_ahead(body, vaddr, placement.probe_vaddr, Line::Entry)
    else {
        return placement;
    };
    if to - vaddr > ENTRY_MOVE_MAX || lands_in(body, vaddr, &((placement.probe_vaddr + 1)..=to)) {
        return placement;
    }
    let clobbers = (ARG_REGISTERS.iter().enumerate())
        .filter(|&(_, &r)| written & gpr_bit(r) != 0)
        .fold(0u8, |bits, (i, _)| bits | 1 << i);
    Placement {
        probe_vaddr: to,
        probe_file_offset: file_offset + (to - vaddr),
        path: EntryPath::Emulated,
        probeable: true,
        moved: Some(Moved {
            probe_vaddr: placement.probe_vaddr,
            probe_file_offset: placement.probe_file_offset,
            path: placement.path,
            clobbers,
        }),
    }
}

/// What the straight line [`emulated_ahead`] moves a probe along may do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// From a function's entry: its arguments are read at the probe, so
    /// nothing before it may write memory.
    Entry,
    /// From where a call returns: only the stack pointer and the return
    /// value matter there, so memory may be written.
    AfterCall,
}

/// For code `body` at `vaddr`, from the instruction at `from`: the address
/// of the first instruction the kernel emulates that a straight line of at
/// most MOVE_LIMIT instructions reaches, and the general registers the ones
/// before it write (bits by [`gpr_bit`]). Those must fall through and leave
/// %rsp alone, so the stack is as it was at `from`, and write no memory on
/// an [`Line::Entry`] line. The instruction found is a `push`, a nop, a
/// direct `call`, or a `jcc` or `jmp` that stays in `body` (where the line
/// ends: the jump is not followed): never a `ret` or a jump out (a tail
/// call), which are exit sites of their own.
/// `from` itself is the answer when it qualifies. Whether a branch lands
/// between is the caller's to check.
pub(crate) fn emulated_ahead(body: &[u8], vaddr: u64, from: u64, line: Line) -> Option<(u64, u32)> {
    let end = vaddr + body.len() as u64;
    let start = usize::try_from(from.checked_sub(vaddr)?).ok()?;
    let code = body.get(start..)?;
    let mut decoder = Decoder::with_ip(64, code, from, DecoderOptions::NONE);
    let mut info = InstructionInfoFactory::new();
    let mut written = 0u32;
    for _ in 0..MOVE_LIMIT {
        let at = start + decoder.position();
        let insn = decoder.decode();
        if insn.is_invalid() {
            return None;
        }
        let bytes = &body[at..at + insn.len()];
        if is_emulated(&insn, bytes) {
            let inside = (vaddr..end).contains(&insn.near_branch_target());
            let stays = match insn.flow_control() {
                FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch => inside,
                FlowControl::Call | FlowControl::Next => true,
                _ => false,
            };
            return (stays && kernel_accepts(bytes)).then_some((insn.ip(), written));
        }
        written |= registers_only(&mut info, &insn, line == Line::AfterCall)?;
    }
    None
}

/// A general register's bit in [`emulated_ahead`]'s mask.
pub(crate) fn gpr_bit(reg: Register) -> u32 {
    1 << (reg.full_register() as u32 - Register::RAX as u32)
}

/// For an instruction that falls through and writes only general registers
/// other than %rsp (and memory, with `memory`): those registers (bits by
/// [`gpr_bit`]). `None` for anything else.
fn registers_only(
    info: &mut InstructionInfoFactory,
    insn: &Instruction,
    memory: bool,
) -> Option<u32> {
    if insn.flow_control() != FlowControl::Next || insn.has_lock_prefix() {
        return None;
    }
    let used = info.info(insn);
    if !memory && used.used_memory().iter().any(|m| writes(m.access())) {
        return None;
    }
    let mut written = 0;
    for reg in used.used_registers().iter().filter(|r| writes(r.access())) {
        let full = reg.register().full_register();
        match full {
            Register::RSP | Register::RIP => return None,
            _ if (Register::RAX..=Register::R15).contains(&full) => written |= gpr_bit(full),
            // Vector registers are nothing a probe reads.
            _ if reg.register().is_segment_register() => return None,
            _ => {}
        }
    }
    Some(written)
}

pub(crate) fn writes(access: OpAccess) -> bool {
    !matches!(
        access,
        OpAccess::Read | OpAccess::CondRead | OpAccess::NoMemAccess | OpAccess::None
    )
}

/// Whether a branch or call in `body` (at `vaddr`) targets `range`, or
/// `body` cannot all be decoded (data in code: what follows is unknown).
fn lands_in(body: &[u8], vaddr: u64, range: &std::ops::RangeInclusive<u64>) -> bool {
    let mut decoder = Decoder::with_ip(64, body, vaddr, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.is_invalid() {
            return true;
        }
        if insn.op0_kind() == OpKind::NearBranch64 && range.contains(&insn.near_branch_target()) {
            return true;
        }
    }
    false
}

/// Decides the probe for a function at `vaddr` / `file_offset` whose first
/// bytes are `code` (at most its size; 16 bytes are plenty).
pub fn place(code: &[u8], vaddr: u64, file_offset: u64) -> Placement {
    let skip = if code.starts_with(&ENDBR64) && code.len() > ENDBR64.len() {
        ENDBR64.len()
    } else {
        0
    };
    let probed = &code[skip..];
    let first = Decoder::with_ip(64, probed, vaddr, DecoderOptions::NONE).decode();
    let probeable = !first.is_invalid() && kernel_accepts(&probed[..first.len()]);
    Placement {
        probe_vaddr: vaddr + skip as u64,
        probe_file_offset: file_offset + skip as u64,
        path: classify(probed, vaddr + skip as u64),
        probeable,
        moved: None,
    }
}

/// For a function whose first instruction the kernel refuses (see
/// [`place`]): the placement on its second instruction, or why there is
/// none. `body` is the whole function. Moving the probe is sound only when
/// the first instruction leaves the stack as it was (a `lock`-prefixed one
/// writes memory, never %rsp, and is no branch: arguments and the return
/// address are where the entry left them) and no branch in the function
/// lands on either instruction (a spin loop back to the `lock`): each such
/// landing would count as a call.
pub fn place_past_refused(body: &[u8], vaddr: u64, file_offset: u64) -> Result<Placement, String> {
    let skip = if body.starts_with(&ENDBR64) {
        ENDBR64.len()
    } else {
        0
    };
    let mut decoder =
        Decoder::with_ip(64, &body[skip..], vaddr + skip as u64, DecoderOptions::NONE);
    let first = decoder.decode();
    let what = mnemonic(&first);
    if first.is_invalid() || !first.has_lock_prefix() {
        return Err(format!(
            "the kernel refuses a uprobe on its first instruction ({what})"
        ));
    }
    let second_at = skip + first.len();
    let second = decoder.decode();
    let second_bytes = body
        .get(second_at..second_at + second.len())
        .unwrap_or_default();
    if second.is_invalid() || !kernel_accepts(second_bytes) {
        return Err(format!(
            "the kernel refuses a uprobe on its first instruction ({what}) and on the next"
        ));
    }
    let (entry, second_vaddr) = (vaddr + skip as u64, second.ip());
    let mut all = Decoder::with_ip(64, body, vaddr, DecoderOptions::NONE);
    let lands_back = std::iter::from_fn(|| all.can_decode().then(|| all.decode())).any(|insn| {
        let branch = insn.op0_kind() == OpKind::NearBranch64 && insn.mnemonic() != Mnemonic::Call;
        branch && (entry..=second_vaddr).contains(&insn.near_branch_target())
    });
    if lands_back {
        return Err(format!(
            "the kernel refuses a uprobe on its first instruction ({what}), and a branch in it returns there"
        ));
    }
    let probed = &body[second_at..];
    Ok(Placement {
        probe_vaddr: second_vaddr,
        probe_file_offset: file_offset + second_at as u64,
        path: classify(probed, second_vaddr),
        probeable: true,
        moved: None,
    })
}

/// `lock xadd`, `vpxor`: how a refusal names the instruction.
fn mnemonic(insn: &Instruction) -> String {
    let name = format!("{:?}", insn.mnemonic()).to_lowercase();
    match insn.has_lock_prefix() {
        true => format!("lock {name}"),
        false => name,
    }
}

/// How the kernel handles a breakpoint on the first instruction of `code`.
pub fn classify(code: &[u8], vaddr: u64) -> EntryPath {
    if code.starts_with(&NOP5) {
        return EntryPath::Optimized;
    }
    let mut decoder = Decoder::with_ip(64, code, vaddr, DecoderOptions::NONE);
    let insn = decoder.decode();
    if insn.is_invalid() {
        return EntryPath::SingleStep;
    }
    let bytes = &code[..insn.len()];
    if is_emulated(&insn, bytes) {
        EntryPath::Emulated
    } else {
        EntryPath::SingleStep
    }
}

fn is_emulated(insn: &Instruction, bytes: &[u8]) -> bool {
    if KERNEL_NOPS.contains(&bytes) {
        return true;
    }
    match insn.code() {
        // Opcode 0x90 behind any prefixes: the kernel treats it as a nop.
        Code::Nopw | Code::Nopd | Code::Nopq | Code::Pause => true,
        // push %reg, with at most a REX.B prefix (push_setup_xol_ops).
        Code::Push_r64 => bytes.len() == 1 || (bytes.len() == 2 && bytes[0] == 0x41),
        // With an operand-size prefix the kernel refuses the probe outright
        // (kernel_accepts); such branches are never emitted by compilers.
        Code::Call_rel32_64 | Code::Jmp_rel8_64 | Code::Jmp_rel32_64 => bytes[0] != 0x66,
        _ => is_jcc(insn) && bytes[0] != 0x66,
    }
}

/// A conditional jump with a relative target (iced's own test needs its
/// `instr_info` feature, which nothing else here uses).
pub(crate) fn is_jcc(insn: &Instruction) -> bool {
    use Mnemonic::*;
    matches!(
        insn.mnemonic(),
        Ja | Jae | Jb | Jbe | Je | Jg | Jge | Jl | Jle | Jne | Jno | Jnp | Jns | Jo | Jp | Js
    ) && insn.op0_kind() == OpKind::NearBranch64
}

pub(crate) fn is_direct_jmp(insn: &Instruction) -> bool {
    matches!(insn.code(), Code::Jmp_rel8_64 | Code::Jmp_rel32_64)
}

/// Legacy prefixes, which the kernel's decoder reads before REX and the opcode.
const LEGACY_PREFIXES: [u8; 11] = [
    0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3,
];

/// Prefixes `is_prefix_bad` refuses: es, cs, ss, ds (so also `notrack` and
/// the padding prefixes of `cs nopw`) and lock.
const BAD_PREFIXES: [u8; 5] = [0x26, 0x2e, 0x36, 0x3e, 0xf0];

/// The zero bits of the kernel's `good_insns_64`: opcodes it will not probe.
const BAD_OPCODES: [u8; 40] = [
    0x06, 0x07, 0x0e, 0x16, 0x17, 0x1e, 0x1f, 0x27, 0x2f, 0x37, 0x3f, 0x60, 0x61, 0x62, 0x6c, 0x6d,
    0x6e, 0x6f, 0x82, 0x9a, 0xcc, 0xcd, 0xce, 0xcf, 0xd4, 0xd5, 0xd6, 0xe4, 0xe5, 0xe6, 0xe7, 0xea,
    0xec, 0xed, 0xee, 0xef, 0xf1, 0xf4, 0xfa, 0xfb,
];

/// Whether the kernel accepts a uprobe on the instruction `bytes` (exactly
/// one instruction). One refused offset fails a whole uprobe_multi link, so
/// a site the kernel would refuse is never proposed. This mirrors
/// uprobe_init_insn and branch_setup_xol_ops (arch/x86/kernel/uprobes.c),
/// checked against 6.18 with tracefs uprobes:
/// - es/cs/ss/ds and lock prefixes are refused;
/// - the first opcode byte must be in `good_insns_64`. The 2-byte table is
///   never consulted, because 0x0f itself is "good" (so `ud2` and `syscall`
///   pass); for VEX and EVEX the byte after the prefix is looked up in the
///   one-byte table, so `vpxor` (ef) and `vmovdqu` (6f) are refused while
///   `vpcmpeqb` (74) passes;
/// - mov to %ss masks exceptions and is refused;
/// - relative branches with a 0x66 prefix are refused.
pub(crate) fn kernel_accepts(bytes: &[u8]) -> bool {
    let prefixes = bytes
        .iter()
        .take_while(|b| LEGACY_PREFIXES.contains(b))
        .count();
    if bytes[..prefixes].iter().any(|b| BAD_PREFIXES.contains(b)) {
        return false;
    }
    let rex = usize::from(bytes.get(prefixes).is_some_and(|b| b & 0xf0 == 0x40));
    let at = prefixes + rex;
    let opcode_at = match bytes.get(at) {
        Some(0xc5) => at + 2,
        Some(0xc4) => at + 3,
        Some(0x62) => at + 4, // EVEX: 0x62 is no longer `bound` in 64-bit mode
        Some(_) => at,
        None => return false,
    };
    let Some(&opcode) = bytes.get(opcode_at) else {
        return false;
    };
    if BAD_OPCODES.contains(&opcode) {
        return false;
    }
    let modrm_reg = bytes.get(opcode_at + 1).map(|m| (m >> 3) & 7);
    if opcode == 0x8e && modrm_reg == Some(2) {
        return false; // mov to %ss
    }
    let vex = opcode_at != at;
    !(bytes[..prefixes].contains(&0x66) && !vex && is_relative_branch(&bytes[at..]))
}

/// call/jmp/jcc rel, from the opcode on.
fn is_relative_branch(op: &[u8]) -> bool {
    match op {
        [0xe8 | 0xe9 | 0xeb, ..] => true,
        [0x0f, second, ..] => (0x80..=0x8f).contains(second),
        [first, ..] => (0x70..=0x7f).contains(first),
        [] => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endbr64_is_skipped() {
        // endbr64; push %rbp
        let p = place(&[0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48], 0x1000, 0x200);
        assert_eq!(p.probe_vaddr, 0x1004);
        assert_eq!(p.probe_file_offset, 0x204);
        assert_eq!(p.path, EntryPath::Emulated);
    }

    #[test]
    fn refused_first_instruction_is_not_probeable() {
        assert!(place(&[0x55], 0, 0).probeable); // push %rbp
        assert!(place(&[0xf3, 0x0f, 0x1e, 0xfa, 0xc3], 0, 0).probeable); // endbr64; ret
        assert!(!place(&[0xf0, 0xff, 0x0f], 0, 0).probeable); // lock decl (%rdi)
        assert!(!place(&[0xf3, 0x0f, 0x1e, 0xfa, 0xf0, 0x0f, 0xc1, 0x07], 0, 0).probeable); // endbr64; lock xadd
        assert!(!place(&[0xc5, 0xf9, 0xef, 0xc0], 0, 0).probeable); // vpxor
        assert!(!place(&[], 0, 0).probeable);
    }

    #[test]
    fn a_lock_first_instruction_moves_the_probe_unless_a_branch_returns() {
        // lock addl $1,0x10(%rip); ret
        let bump = [0xf0, 0x83, 0x05, 0x10, 0, 0, 0, 0x01, 0xc3];
        assert!(!place(&bump, 0x1000, 0x400).probeable);
        let moved = place_past_refused(&bump, 0x1000, 0x400).expect("moved");
        assert_eq!(
            (moved.probe_vaddr, moved.probe_file_offset),
            (0x1008, 0x408)
        );
        assert!(moved.probeable);
        // 1: lock btsl $0,0x10(%rip); jc 1b; ret
        let spin = [
            0xf0, 0x0f, 0xba, 0x2d, 0x10, 0, 0, 0, 0x00, 0x72, 0xf5, 0xc3,
        ];
        let why = place_past_refused(&spin, 0x1000, 0x400).expect_err("loops back");
        assert_eq!(
            why,
            "the kernel refuses a uprobe on its first instruction (lock bts), and a branch in it returns there"
        );
        // vpxor %xmm0,%xmm0,%xmm0; ret: not lock, not moved.
        let why = place_past_refused(&[0xc5, 0xf9, 0xef, 0xc0, 0xc3], 0, 0).expect_err("vex");
        assert_eq!(
            why,
            "the kernel refuses a uprobe on its first instruction (vpxor)"
        );
    }

    /// The placement of a function of `body` at 0x1000 (file offset 0x400).
    fn moved(body: &[u8]) -> Placement {
        move_to_emulated(place(body, 0x1000, 0x400), body, 0x1000, 0x400)
    }

    #[test]
    fn a_single_stepped_entry_moves_to_the_first_emulated_instruction() {
        // mov 0x20(%rdi),%rax; test %esi,%esi; jle 1f; ret; 1: xor %eax,%eax; ret
        let test_first = [
            0x48, 0x8b, 0x47, 0x20, 0x85, 0xf6, 0x7e, 0x01, 0xc3, 0x31, 0xc0, 0xc3,
        ];
        let p = moved(&test_first);
        assert_eq!((p.probe_vaddr, p.probe_file_offset), (0x1006, 0x406));
        assert_eq!(p.path, EntryPath::Emulated);
        let from = p.moved.expect("moved");
        assert_eq!(
            (from.probe_vaddr, from.path, from.clobbers),
            (0x1000, EntryPath::SingleStep, 0)
        );
        assert_eq!(p.unmoved(), place(&test_first, 0x1000, 0x400));
        // mov %rdi,%rdx; mov %rsi,%rcx; push %rbx; ...: %rdx and %rcx are
        // argument registers.
        let p = moved(&[0x48, 0x89, 0xfa, 0x48, 0x89, 0xf1, 0x53, 0x5b, 0xc3]);
        assert_eq!(p.probe_vaddr, 0x1006);
        assert_eq!(p.moved.expect("moved").clobbers, 0b1100);
    }

    /// mov $1,%eax, `n` times, then jmp 1f; nop; 1: ret.
    fn movs_then_jump(n: usize) -> Vec<u8> {
        let mut body = [0xb8, 1, 0, 0, 0].repeat(n);
        body.extend([0xeb, 0x01, 0x90, 0xc3]);
        body
    }

    #[test]
    fn an_entry_moves_onto_a_jump_within_the_function_up_to_bpfs_slack() {
        // Lua's luaH_getshortstr: nine register-only instructions, then a
        // jmp into its loop, 31 bytes in.
        let p = moved(&movs_then_jump(6));
        assert_eq!((p.probe_vaddr, p.path), (0x101e, EntryPath::Emulated));
        // 35 bytes in: past what BPF's settle_jump allows for.
        let p = moved(&movs_then_jump(7));
        assert_eq!((p.probe_vaddr, p.moved), (0x1000, None));
    }

    #[test]
    fn an_entry_stays_where_moving_it_would_change_what_is_seen() {
        let stays = |body: &[u8], why: &str| {
            let p = moved(body);
            assert_eq!((p.probe_vaddr, p.moved), (0x1000, None), "{why}");
        };
        stays(
            &[0x48, 0x89, 0x38, 0x53, 0x5b, 0xc3],
            "mov %rdi,(%rax) writes memory",
        );
        stays(
            &[0x48, 0x83, 0xec, 0x08, 0xe8, 0, 0, 0, 0, 0xc3],
            "sub $8,%rsp moves the stack",
        );
        stays(
            &[0x89, 0xf8, 0xe9, 0, 0, 0, 0],
            "mov; jmp: a tail jump is an exit site",
        );
        stays(
            &[0x85, 0xff, 0x0f, 0x85, 0x00, 0x10, 0, 0, 0xc3],
            "jne out of the function",
        );
        stays(
            &[0x89, 0xf8, 0xc3],
            "mov; ret: no emulated instruction before the exit",
        );
        // mov %edi,%eax; 1: dec %eax; jne 1b; ret: the loop lands in between.
        stays(
            &[0x89, 0xf8, 0xff, 0xc8, 0x75, 0xfc, 0xc3],
            "a branch lands before the probe",
        );
        // push %rbp first: already emulated.
        assert_eq!(moved(&[0x55, 0x5d, 0xc3]).moved, None);
    }

    #[test]
    fn after_a_call_the_line_passes_memory_writes_and_both_lines_end_on_a_jump_within() {
        let ahead = |body: &[u8], line| emulated_ahead(body, 0x1000, 0x1000, line);
        // mov %rax,0x8(%rsp); mov %rbx,%rdi; call ...: memory written.
        let stores = [
            0x48, 0x89, 0x44, 0x24, 0x08, 0x48, 0x89, 0xdf, 0xe8, 0, 0, 0, 0,
        ];
        assert_eq!(ahead(&stores, Line::Entry), None);
        assert_eq!(ahead(&stores, Line::AfterCall), Some((0x1008, 0b1000_0000)));
        // mov %eax,%ebx; jmp 1f; nop; 1: ret: a jump that stays in the body.
        let jumps = [0x89, 0xc3, 0xeb, 0x01, 0x90, 0xc3];
        assert_eq!(ahead(&jumps, Line::Entry), Some((0x1002, 0b1000)));
        assert_eq!(ahead(&jumps, Line::AfterCall), Some((0x1002, 0b1000)));
        // mov %eax,%ebx; jmp out: a tail call, an exit site of its own.
        let leaves = [0x89, 0xc3, 0xe9, 0x00, 0x10, 0, 0];
        assert_eq!(ahead(&leaves, Line::AfterCall), None);
        // mov %rax,(%rsp); pop %rbx: the stack moves before anything emulated.
        let pops = [0x48, 0x89, 0x04, 0x24, 0x5b, 0xc3];
        assert_eq!(ahead(&pops, Line::AfterCall), None);
    }

    #[test]
    fn classifies_first_instruction() {
        assert_eq!(classify(&NOP5, 0), EntryPath::Optimized);
        assert_eq!(classify(&[0x55], 0), EntryPath::Emulated); // push %rbp
        assert_eq!(classify(&[0x41, 0x57], 0), EntryPath::Emulated); // push %r15
        assert_eq!(classify(&[0xe9, 0, 0, 0, 0], 0), EntryPath::Emulated); // jmp rel32
        assert_eq!(classify(&[0xe8, 0, 0, 0, 0], 0), EntryPath::Emulated); // call rel32
        assert_eq!(classify(&[0x74, 0x02], 0), EntryPath::Emulated); // je
        assert_eq!(classify(&[0x66, 0x90], 0), EntryPath::Emulated); // xchg %ax,%ax
        assert_eq!(classify(&[0x48, 0x89, 0xe5], 0), EntryPath::SingleStep); // mov
        assert_eq!(
            classify(&[0x48, 0x83, 0xec, 0x08], 0),
            EntryPath::SingleStep
        ); // sub
        assert_eq!(classify(&ENDBR64, 0), EntryPath::SingleStep);
        // jmp *0x2f66(%rip): a PLT stub's indirect jump
        assert_eq!(
            classify(&[0xff, 0x25, 0x66, 0x2f, 0, 0], 0),
            EntryPath::SingleStep
        );
        assert_eq!(classify(&[], 0), EntryPath::SingleStep);
    }

    #[test]
    fn kernel_acceptance_matches_tracefs() {
        // Each verdict was observed by enabling a tracefs uprobe on 6.18.
        let cases: [(&[u8], bool); 32] = [
            (&[0xc3], true),                                         // ret
            (&[0xf3, 0xc3], true),                                   // repz ret
            (&[0xc2, 0x08, 0x00], true),                             // ret $8
            (&[0x48, 0xc3], true),                                   // rex.W ret
            (&[0x66, 0xc3], true),                                   // retw
            (&[0x2e, 0xc3], false),                                  // cs ret
            (&[0xe9, 0, 0, 0, 0], true),                             // jmp rel32
            (&[0x74, 0x07], true),                                   // je rel8
            (&[0xf2, 0xe9, 0, 0, 0, 0], true),                       // bnd jmp
            (&[0x3e, 0xe9, 0, 0, 0, 0], false),                      // ds jmp
            (&[0x66, 0xe9, 0, 0], false),                            // jmpw
            (&[0x66, 0xe8, 0, 0], false),                            // callw
            (&[0x66, 0x0f, 0x84, 0, 0], false),                      // jew
            (&[0x3e, 0xff, 0xe0], false),                            // notrack jmp *%rax
            (&[0x66, 0x90], true),                                   // xchg %ax,%ax
            (&[0x66, 0x0f, 0x1f, 0x44, 0, 0], true),                 // nopw
            (&[0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0], false), // cs nopw
            (&[0xcc], false),                                        // int3
            (&[0x0f, 0x0b], true),                                   // ud2
            (&[0x0f, 0x05], true),                                   // syscall
            (&[0x0f, 0xae, 0xf0], true),                             // mfence
            (&[0xf0, 0xff, 0x07], false),                            // lock incl (%rdi)
            (&[0x8e, 0xd0], false),                                  // mov %eax,%ss
            (&[0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0], true),  // mov %fs:0x28,%rax
            (&[0x67, 0x8b, 0x07], true),                             // mov (%edi),%eax
            (&[0xc5, 0xf9, 0xef, 0xc0], false),                      // vpxor
            (&[0xc5, 0xfe, 0x6f, 0x07], false),                      // vmovdqu (%rdi),%ymm0
            (&[0xc5, 0xfd, 0x74, 0x0f], true),                       // vpcmpeqb (%rdi),%ymm0,%ymm1
            (&[0xc5, 0xf8, 0x77], true),                             // vzeroupper
            (&[0xc4, 0xe1, 0x7d, 0xec, 0xc0], false),                // vpaddsb, 3-byte VEX
            (&[0xc4, 0xe2, 0xe0, 0xf2, 0xc8], true),                 // andn
            (&[0x62, 0xf1, 0x6d, 0x48, 0xfe, 0xd9], true),           // vpaddd %zmm1,%zmm2,%zmm3
        ];
        for (bytes, accepted) in cases {
            assert_eq!(kernel_accepts(bytes), accepted, "{bytes:02x?}");
        }
        assert!(!kernel_accepts(&[0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x07])); // vmovdqu64
        assert!(!kernel_accepts(&[]));
    }

    mod binaries {
        use super::super::*;
        use crate::symbols::testutil::{self, CALLS_LIBC, Fixture};
        use crate::symbols::{ModuleSymbols, Symbol, read_module};

        fn add_of(module: &ModuleSymbols) -> &Symbol {
            module
                .functions
                .iter()
                .find(|s| s.name == "add")
                .expect("add")
        }

        #[test]
        fn cet_build_probes_after_endbr64() {
            let fx = Fixture::new();
            let exe = fx.cc("cet", CALLS_LIBC, &["-O0", "-fcf-protection=full"]);
            let module = read_module(&exe).expect("reading");
            let add = add_of(&module);
            assert_eq!(testutil::file_bytes(&exe, add.file_offset, 4), ENDBR64);
            assert_eq!(add.placement.probe_vaddr, add.vaddr + 4);
            assert_eq!(add.placement.probe_file_offset, add.file_offset + 4);
            // -O0 opens the frame with push %rbp, which the kernel emulates.
            assert_eq!(
                testutil::file_bytes(&exe, add.placement.probe_file_offset, 1),
                [0x55]
            );
            assert_eq!(add.placement.path, EntryPath::Emulated);
        }

        #[test]
        fn mcount_nop_is_optimized() {
            let fx = Fixture::new();
            let mcount = [
                "-O0",
                "-pg",
                "-mfentry",
                "-mnop-mcount",
                "-fno-pie",
                "-no-pie",
            ];
            let exe = fx.cc("nop5", CALLS_LIBC, &mcount);
            let module = read_module(&exe).expect("reading");
            let add = add_of(&module);
            assert_eq!(testutil::file_bytes(&exe, add.file_offset, 5), NOP5);
            assert_eq!(add.placement.probe_vaddr, add.vaddr);
            assert_eq!(add.placement.path, EntryPath::Optimized);

            let cet = [&mcount[..], &["-fcf-protection=full"]].concat();
            let exe = fx.cc("cet_nop5", CALLS_LIBC, &cet);
            let module = read_module(&exe).expect("reading");
            let add = add_of(&module);
            assert_eq!(add.placement.probe_vaddr, add.vaddr + 4);
            assert_eq!(add.placement.path, EntryPath::Optimized);
        }

        #[test]
        fn plain_build_single_steps_the_first_instruction() {
            let fx = Fixture::new();
            let exe = fx.cc("o2", "__attribute__((noinline)) int add(int a, int b) { return a + b; }\nint main(int c, char **v) { (void)v; return add(c, 2); }", &["-O2", "-fcf-protection=none"]);
            let module = read_module(&exe).expect("reading");
            let add = add_of(&module);
            // lea (%rdi,%rsi,1),%eax
            assert_eq!(add.placement.probe_vaddr, add.vaddr);
            assert_eq!(add.placement.path, EntryPath::SingleStep);
        }
    }
}
