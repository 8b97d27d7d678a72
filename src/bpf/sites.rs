//! What BPF must know of the instruction under a ret site, read from the
//! file as the kernel will probe it: a `ret`, or a jump (a tail call, where
//! no return value exists yet); and for a conditional jump, its condition,
//! which BPF tests against the flags so that a jump not taken leaves the
//! frame open.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};

use super::abi::{COOKIE_CC_SHIFT, COOKIE_JCC, COOKIE_TAIL_JUMP};

/// What one ret-site instruction is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    Ret,
    /// A conditional jump, with its condition code (the low nibble of its
    /// opcode, as x86 numbers them: 0 `jo` … 15 `jg`).
    Jcc(u8),
    Jump,
}

fn site(bytes: [u8; 3]) -> Site {
    // `bnd` (0xf2) may precede a branch; `rep ret` is a `ret`.
    let op = match bytes {
        [0xf2 | 0xf3, rest @ ..] => [rest[0], rest[1]],
        [a, b, _] => [a, b],
    };
    match op {
        [0xc3, _] | [0xc2, _] => Site::Ret,
        [0x70..=0x7f, _] => Site::Jcc(op[0] & 0xf),
        [0x0f, 0x80..=0x8f] => Site::Jcc(op[1] & 0xf),
        _ => Site::Jump,
    }
}

/// Marks the cookies of the ret sites at `offsets` of `path`: every
/// conditional jump with its condition, and with `values` (-R) every jump
/// as a tail jump, whose return value does not exist yet.
pub fn mark(path: &Path, offsets: &[u64], cookies: &mut [u64], values: bool) -> Result<()> {
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    for (offset, cookie) in offsets.iter().zip(cookies) {
        let mut bytes = [0u8; 3];
        // An instruction at the very end of the file has fewer bytes after it.
        let n = file
            .read_at(&mut bytes, *offset)
            .with_context(|| format!("reading {} at {offset:#x}", path.display()))?;
        anyhow::ensure!(n > 0, "{} ends before {offset:#x}", path.display());
        let kind = site(bytes);
        if let Site::Jcc(cc) = kind {
            *cookie |= COOKIE_JCC | (u64::from(cc) << COOKIE_CC_SHIFT);
        }
        if values && kind != Site::Ret {
            *cookie |= COOKIE_TAIL_JUMP;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rets_jumps_and_conditions() {
        assert_eq!(site([0xc3, 0, 0]), Site::Ret);
        assert_eq!(site([0xf3, 0xc3, 0]), Site::Ret);
        assert_eq!(site([0xe9, 0, 0]), Site::Jump);
        assert_eq!(site([0xff, 0xe0, 0]), Site::Jump);
        assert_eq!(site([0x75, 0x10, 0]), Site::Jcc(5)); // jne rel8
        assert_eq!(site([0x0f, 0x84, 0]), Site::Jcc(4)); // je rel32
        assert_eq!(site([0xf2, 0x0f, 0x8f]), Site::Jcc(15)); // bnd jg
    }
}
