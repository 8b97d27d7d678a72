//! Where the x86-64 System V ABI puts each argument and the return value,
//! from the class of its type: INTEGER values take rdi, rsi, rdx, rcx, r8,
//! r9, SSE values xmm0-7, then both go to the stack in 8-byte words; a
//! MEMORY value (a large or unaligned aggregate, x87 `long double`) is
//! copied onto the stack. params.rs says what each type is; this says where
//! it goes.

use crate::values::{Format, Slot, ValueSpec};

/// The ABI class of one eightbyte of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    Integer,
    Sse,
}

/// How a value of some type is passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Pass {
    /// In registers, one class per eightbyte (one or two).
    Regs(Vec<Class>),
    /// Copied onto the stack (MEMORY class); returned through a hidden
    /// pointer the caller passes in rdi.
    Memory,
    /// x87 (`long double`): on the stack as an argument, in st0 as a return
    /// value, which no probe reads.
    X87,
    /// A C++ class with a non-trivial copy constructor or destructor: its
    /// address is passed (INTEGER), and it is returned through a hidden
    /// pointer.
    ByReference,
}

/// A type as the ABI and the display need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Type {
    pub size: u64,
    pub align: u64,
    pub format: Format,
    pub pass: Pass,
}

impl Type {
    /// A scalar of one class in one eightbyte.
    pub fn scalar(size: u64, format: Format, class: Class) -> Type {
        Type {
            size,
            align: size.clamp(1, 16),
            format,
            pass: Pass::Regs(vec![class]),
        }
    }
}

/// The registers and stack words used so far, left to right.
pub(super) struct Placer {
    int: u8,
    sse: u8,
    /// The next stack argument's offset above the return address.
    stack: u16,
}

const INT_REGS: u8 = 6;
const SSE_REGS: u8 = 8;

impl Placer {
    /// For a function returning `ret`: a MEMORY return value takes rdi for
    /// its hidden pointer, so the arguments start at rsi.
    pub fn new(ret: Option<&Type>) -> Placer {
        let hidden = ret.is_some_and(|t| matches!(t.pass, Pass::Memory | Pass::ByReference));
        Placer {
            int: u8::from(hidden),
            sse: 0,
            stack: 8,
        }
    }

    /// Where the next argument, of type `ty`, is.
    pub fn arg(&mut self, name: Option<String>, ty: &Type) -> ValueSpec {
        let (slot, format) = match &ty.pass {
            Pass::Memory | Pass::X87 => {
                self.stack_word(ty);
                (Slot::Memory, ty.format.clone())
            }
            Pass::ByReference => (self.regs(&[Class::Integer], ty), Format::Pointer),
            Pass::Regs(classes) => (self.regs(classes, ty), ty.format.clone()),
        };
        ValueSpec { name, slot, format }
    }

    /// Registers of `classes` if enough remain, else (the whole value) the
    /// stack.
    fn regs(&mut self, classes: &[Class], ty: &Type) -> Slot {
        let ints = classes.iter().filter(|c| **c == Class::Integer).count() as u8;
        let sses = classes.len() as u8 - ints;
        if self.int + ints > INT_REGS || self.sse + sses > SSE_REGS {
            return Slot::Stack(self.stack_word(ty));
        }
        let slot = match classes.first() {
            Some(Class::Sse) => Slot::Sse(self.sse),
            _ => Slot::Reg(self.int),
        };
        self.int += ints;
        self.sse += sses;
        slot
    }

    /// The offset of a value passed on the stack, and the words it takes:
    /// each argument is rounded up to 8 bytes, and one aligned to 16 starts
    /// 16-aligned (the stack arguments start 16-aligned at the call, which
    /// is 8 above the return address).
    fn stack_word(&mut self, ty: &Type) -> u16 {
        if ty.align > 8 && !(self.stack - 8).is_multiple_of(16) {
            self.stack += 8;
        }
        let at = self.stack;
        let words = ty.size.div_ceil(8).min(u64::from(u16::MAX / 8)) as u16;
        self.stack = self.stack.saturating_add(words * 8);
        at
    }
}

/// Where the return value of type `ty` is when the function returns.
pub(super) fn ret(ty: &Type) -> ValueSpec {
    let (slot, format) = match &ty.pass {
        Pass::Regs(classes) if classes.first() == Some(&Class::Sse) => {
            (Slot::Sse(0), ty.format.clone())
        }
        Pass::Regs(_) => (Slot::Ret(0), ty.format.clone()),
        // rax returns the hidden pointer the caller passed.
        Pass::Memory | Pass::ByReference => (Slot::Ret(0), Format::Aggregate),
        Pass::X87 => (Slot::Memory, ty.format.clone()),
    };
    ValueSpec {
        name: None,
        slot,
        format,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int() -> Type {
        Type::scalar(4, Format::Signed(4), Class::Integer)
    }

    fn slots(ret: Option<&Type>, args: &[Type]) -> Vec<Slot> {
        let mut placer = Placer::new(ret);
        args.iter().map(|t| placer.arg(None, t).slot).collect()
    }

    #[test]
    fn registers_run_out_into_stack_words() {
        let dbl = Type::scalar(8, Format::Float(8), Class::Sse);
        let mut args = vec![int(); 7];
        args.extend(vec![dbl.clone(); 9]);
        args.push(int());
        let got = slots(None, &args);
        assert_eq!(got[5], Slot::Reg(5));
        assert_eq!(got[6], Slot::Stack(8));
        assert_eq!(got[7..15], (0..8).map(Slot::Sse).collect::<Vec<_>>()[..]);
        assert_eq!(got[15], Slot::Stack(16));
        assert_eq!(got[16], Slot::Stack(24));
    }

    #[test]
    fn a_pair_that_does_not_fit_goes_whole_to_the_stack() {
        let pair = Type {
            size: 16,
            align: 8,
            format: Format::Aggregate,
            pass: Pass::Regs(vec![Class::Integer, Class::Integer]),
        };
        let args = [int(), int(), int(), int(), int(), pair, int()];
        let got = slots(None, &args);
        assert_eq!(got[5], Slot::Stack(8));
        // The last register is still free for the int after it.
        assert_eq!(got[6], Slot::Reg(5));
    }

    #[test]
    fn long_double_is_aligned_on_the_stack_and_returned_in_st0() {
        let ld = Type {
            size: 16,
            align: 16,
            format: Format::Float(16),
            pass: Pass::X87,
        };
        let mut args = vec![int(); 6];
        args.extend([int(), ld.clone(), int()]);
        let got = slots(None, &args);
        assert_eq!(got[6..], [Slot::Stack(8), Slot::Memory, Slot::Stack(40)]);
        assert_eq!(ret(&ld).slot, Slot::Memory);
    }
}
