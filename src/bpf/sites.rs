//! What BPF must know of the instruction under a ret site, read from the
//! file as the kernel will probe it: a `ret`, or a jump (a tail call, where
//! no return value exists yet); for a conditional jump, its condition,
//! which BPF tests against the flags so that a jump not taken leaves the
//! frame open; for a jump through a register, the register, so that BPF
//! knows where it went.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};

use super::abi::{
    COOKIE_CC_SHIFT, COOKIE_EARLY, COOKIE_INTO_RET, COOKIE_JCC, COOKIE_JMP_REG, COOKIE_REG_SHIFT,
    COOKIE_SLOTS_SHIFT, COOKIE_TAIL_JUMP,
};
use crate::symbols::epilogue::{early_exit, slots_to_ret};

/// What one ret-site instruction is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    Ret,
    /// A conditional jump, with its condition code (the low nibble of its
    /// opcode, as x86 numbers them: 0 `jo` … 15 `jg`).
    Jcc(u8),
    Jump,
    /// `jmp *%reg`, with the register's number (0 rax … 15 r15).
    JumpReg(u8),
}

fn site(bytes: [u8; 4]) -> Site {
    // `bnd` (0xf2) or `notrack` (0x3e, CET) may precede a branch; `rep ret`
    // is a `ret`.
    let op = match bytes {
        [0xf2 | 0xf3 | 0x3e, rest @ ..] => rest,
        [a, b, c, _] => [a, b, c],
    };
    match op {
        [0xc3, ..] | [0xc2, ..] => Site::Ret,
        [0x70..=0x7f, ..] => Site::Jcc(op[0] & 0xf),
        [0x0f, 0x80..=0x8f, _] => Site::Jcc(op[1] & 0xf),
        // ff /4 with a register operand; REX.B (bit 0) picks r8-r15.
        [0xff, m, _] if m & 0xf8 == 0xe0 => Site::JumpReg(m & 7),
        [0x40..=0x4f, 0xff, m] if m & 0xf8 == 0xe0 => Site::JumpReg((m & 7) | ((op[0] & 1) << 3)),
        _ => Site::Jump,
    }
}

/// Marks the cookies of the ret sites at `offsets` of `path`: every
/// conditional jump with its condition, and with `values` (-R) every jump
/// as a tail jump, whose return value does not exist yet.
pub fn mark(path: &Path, offsets: &[u64], cookies: &mut [u64], values: bool) -> Result<()> {
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    for (offset, cookie) in offsets.iter().zip(cookies) {
        let mut bytes = [0u8; 4];
        // An instruction at the very end of the file has fewer bytes after it.
        let n = file
            .read_at(&mut bytes, *offset)
            .with_context(|| format!("reading {} at {offset:#x}", path.display()))?;
        anyhow::ensure!(n > 0, "{} ends before {offset:#x}", path.display());
        let kind = site(bytes);
        match kind {
            Site::Jcc(cc) => *cookie |= COOKIE_JCC | (u64::from(cc) << COOKIE_CC_SHIFT),
            Site::JumpReg(r) => *cookie |= COOKIE_JMP_REG | (u64::from(r) << COOKIE_REG_SHIFT),
            Site::Ret | Site::Jump => {}
        }
        if values && kind != Site::Ret {
            *cookie |= COOKIE_TAIL_JUMP;
        }
    }
    Ok(())
}

/// Marks the cookies of early sites at `offsets` of `path`, which stand in
/// for a `ret`: the stack slots to it, and what the site is: a branch into
/// the epilogue (for a `jcc`, the condition under which it goes there, the
/// jump's own or, falling through, its negation), or a call returning into
/// it (COOKIE_INTO_RET).
pub fn mark_early(path: &Path, offsets: &[u64], cookies: &mut [u64]) -> Result<()> {
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    // An epilogue is at most 16 instructions of at most 15 bytes.
    let read = |at: u64| {
        let mut bytes = vec![0u8; 256];
        let n = file.read_at(&mut bytes, at).ok()?;
        bytes.truncate(n);
        Some(bytes)
    };
    for (&offset, cookie) in offsets.iter().zip(cookies) {
        let code = read(offset).unwrap_or_default();
        let bad = || format!("{} at {offset:#x}: no way into an epilogue", path.display());
        // e8 rel32: the epilogue starts where the call returns.
        if code.first() == Some(&0xe8) {
            let slots = read(offset + 5)
                .and_then(|after| slots_to_ret(&after))
                .with_context(bad)?;
            *cookie |= COOKIE_INTO_RET | (u64::from(slots) << COOKIE_SLOTS_SHIFT);
            continue;
        }
        let exit = early_exit(&code, offset, read).with_context(bad)?;
        *cookie |= COOKIE_EARLY | (u64::from(exit.slots) << COOKIE_SLOTS_SHIFT);
        if let (Some(taken), Site::Jcc(cc)) = (exit.taken, site(first_bytes(&code))) {
            let cc = if taken { cc } else { cc ^ 1 };
            *cookie |= COOKIE_JCC | (u64::from(cc) << COOKIE_CC_SHIFT);
        }
    }
    Ok(())
}

fn first_bytes(code: &[u8]) -> [u8; 4] {
    let mut bytes = [0u8; 4];
    let n = code.len().min(4);
    bytes[..n].copy_from_slice(&code[..n]);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rets_jumps_and_conditions() {
        assert_eq!(site([0xc3, 0, 0, 0]), Site::Ret);
        assert_eq!(site([0xf3, 0xc3, 0, 0]), Site::Ret);
        assert_eq!(site([0xe9, 0, 0, 0]), Site::Jump);
        assert_eq!(site([0x75, 0x10, 0, 0]), Site::Jcc(5)); // jne rel8
        assert_eq!(site([0x0f, 0x84, 0, 0]), Site::Jcc(4)); // je rel32
        assert_eq!(site([0xf2, 0x0f, 0x8f, 0]), Site::Jcc(15)); // bnd jg
    }

    #[test]
    fn jumps_through_registers_name_the_register() {
        assert_eq!(site([0xff, 0xe0, 0, 0]), Site::JumpReg(0)); // jmp *%rax
        assert_eq!(site([0xff, 0xe7, 0, 0]), Site::JumpReg(7)); // jmp *%rdi
        assert_eq!(site([0x41, 0xff, 0xe3, 0]), Site::JumpReg(11)); // jmp *%r11
        assert_eq!(site([0x3e, 0xff, 0xe1, 0]), Site::JumpReg(1)); // notrack jmp *%rcx
        assert_eq!(site([0x3e, 0x41, 0xff, 0xe0]), Site::JumpReg(8)); // notrack jmp *%r8
        // Through memory: where it goes is not in a register.
        assert_eq!(site([0xff, 0x25, 0, 0]), Site::Jump); // jmp *x(%rip)
        assert_eq!(site([0xff, 0x60, 0x08, 0]), Site::Jump); // jmp *8(%rax)
    }
}
