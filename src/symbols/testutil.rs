//! Test support: builds the tiny programs the symbol tests read (gcc, g++,
//! rustc into a per-test temporary directory) and independent oracles
//! (objdump, readelf, the section view of `object`) to check results against.

use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSection};
use tempfile::TempDir;

/// A C program with calls into libc and a function that does not inline.
pub const CALLS_LIBC: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) int add(int a, int b) { return a + b; }
int main(int argc, char **argv) {
    char *p = malloc(strlen(argv[0]) + 1);
    strcpy(p, argv[0]);
    printf("%zu %d\n", strlen(p), add(argc, 2));
    free(p);
    return 0;
}
"#;

/// gcc -O2 fixture with a `.cold` part, a `.constprop` clone and three
/// names for one function.
pub const COLD_AND_ALIASES: &str = r#"
#include <stdio.h>
__attribute__((cold, noinline)) void report(const char *m, int x) { fprintf(stderr, "%s %d\n", m, x); }
/* The unlikely branch becomes check.cold, reached by a jump from check. */
__attribute__((noinline)) int check(int x) {
    if (x < 0) { report("negative", x); report("again", x * 2); x = -x; }
    return x * 3;
}
/* Called with a constant: becomes scale.constprop.0. */
static __attribute__((noinline)) int scale(int x, int k) { return x * k + 1; }
int _hidden_impl(int x) { return x + 7; }
int public_name(int x) __attribute__((alias("_hidden_impl")));
int pn(int x) __attribute__((weak, alias("_hidden_impl")));
int main(int argc, char **argv) {
    (void)argv;
    return check(argc - 5) + scale(argc, 5) + scale(argc + 1, 5) + public_name(argc);
}
"#;

/// gcc -O2 exits: an early return (two `ret`s), a tail call compiled to
/// `jmp other`, and strlen called three times from two functions.
pub const EXITS: &str = r#"
#include <stdio.h>
#include <string.h>
__attribute__((noinline)) int two_rets(int x) { if (x == 42) return 0; printf("x %d\n", x); return 1; }
__attribute__((noinline)) int other(int x) { return x * 7 + 1; }
__attribute__((noinline)) int tail(int x) { return other(x + 1); }
__attribute__((noinline)) size_t one(const char *s) { return strlen(s) * 2; }
__attribute__((noinline)) size_t two(const char *a, const char *b) { return strlen(a) + 3 * strlen(b); }
int main(int argc, char **argv) {
    return two_rets(argc) + tail(argc) + (int)(one(argv[0]) + two(argv[0], argv[argc - 1]));
}
"#;

/// gcc -O2: an interpreter's loop (tests/fixtures/epilogue.c's), which
/// returns through a `je` into its epilogue and a `jne` falling through
/// into it, and is called through a pointer.
pub const EPILOGUE: &str = r#"
__attribute__((noipa, used)) void eval(const char *code, long *pc, long *acc) {
    char op;
    do {
        op = code[(*pc)++];
        if (op == ']') return;
        if (op == '(') eval(code, pc, acc); else *acc += op == '1';
    } while (op != ')');
}
static void (*volatile run)(const char *, long *, long *) = eval;
int main(int argc, char **argv) { long pc = 0, acc = 0; run(argv[argc - 1], &pc, &acc); return (int)acc; }
"#;

/// gcc -O2 (tests/fixtures/intocall.c's): relay calls hop and returns
/// straight after (`call hop; add $8,%rsp; ret`); hop writes its value on
/// the way out, so no call of relay's runs into hop's `ret`.
pub const INTOCALL: &str = r#"
long hops;
__attribute__((noipa, used)) long hop(long n);
__attribute__((noipa, used)) void relay(long n) { if (n > 0) hop(n - 1); __asm__ volatile("" ::: "memory"); }
__attribute__((noipa, used)) long hop(long n) { relay(n); hops++; __asm__ volatile("" ::: "memory"); return n; }
static void (*volatile run)(long) = relay;
int main(int argc, char **argv) { (void)argv; run(argc); return (int)hops; }
"#;

/// Hand-written exits no compiler emits on purpose (assemble with gcc as `.S`).
pub const ASM_EXITS: &str = r#"
    .text
    .globl main
    .type main, @function
main:
    xor %eax, %eax
    ret
    .size main, .-main

/* g starts inside f, and both end at one ret (at f+4). */
    .globl f
    .type f, @function
    .globl g
    .type g, @function
f:
    xor %eax, %eax
g:
    inc %eax
    ret
    .size f, .-f
    .size g, .-g

/* repz ret (+4) and ret $8 (+11) are sites; cs ret (+14) the kernel refuses. */
    .globl rets
    .type rets, @function
rets:
    test %edi, %edi
    jne 1f
    repz ret
1:  cmp $1, %edi
    jne 2f
    ret $8
2:  .byte 0x2e, 0xc3
    .size rets, .-rets

/* A conditional tail jump (+2, rel8 back to f) and a ret (+4). */
    .globl condtail
    .type condtail, @function
condtail:
    test %edi, %edi
    jne f
    ret
    .size condtail, .-condtail

/* Data in code: decoding stops at the undecodable bytes after the ret at +4. */
    .globl data
    .type data, @function
data:
    test %edi, %edi
    je 1f
    ret
    .byte 0xff, 0xff
1:  ret
    .size data, .-data

/* Opens with an instruction the kernel will not probe. */
    .globl locked
    .type locked, @function
locked:
    lock incl (%rdi)
    ret
    .size locked, .-locked

/* Its size cuts its first instruction. */
    .globl truncated
    .type truncated, @function
truncated:
    mov $1, %eax
    ret
    .size truncated, 3
    .section .note.GNU-stack, "", @progbits
"#;

/// C++ exceptions at -O2: landing pads and throws in `.cold` parts, a
/// catch that returns through its parent, and a tail call into a library.
pub const EXCEPTIONS: &str = r#"
#include <stdexcept>
#include <cstdio>
__attribute__((noinline)) int thrower(int x) { if (x > 3) throw std::runtime_error("big"); return x; }
__attribute__((noinline)) int catcher(int x) {
    try { return thrower(x) + 1; } catch (const std::exception &e) { std::puts(e.what()); return -1; }
}
__attribute__((noinline)) void tailthrow(int x) { if (x < 0) throw 1; std::printf("%d\n", x); }
int main(int argc, char **) { tailthrow(argc); return catcher(argc); }
"#;

/// C++ with a namespace, a template, overloads and virtual functions.
pub const CPP: &str = r#"
#include <cstdio>
namespace ns {
struct Shape {
    virtual ~Shape() {}
    virtual double area() const = 0;
};
struct Circle : Shape {
    double r;
    explicit Circle(double r) : r(r) {}
    double area() const override { return 3.0 * r * r; }
};
template <typename T> __attribute__((noinline)) T maxof(T a, T b) { return a > b ? a : b; }
}
__attribute__((noinline)) int add(int a, int b) { return a + b; }
__attribute__((noinline)) double add(double a, double b) { return a + b; }
int main() {
    ns::Circle c(2);
    ns::Shape *s = &c;
    std::printf("%f %d %f %d\n", s->area(), add(1, 2), add(1.0, 2.0), ns::maxof<int>(3, 4));
}
"#;

/// Rust with a free function and a method, for both manglings.
pub const RUST: &str = r#"
#[inline(never)]
fn greet(n: u32) -> u32 { n * 2 }
pub mod inner {
    pub struct S;
    impl S {
        #[inline(never)]
        pub fn go(&self) -> u32 { 7 }
    }
}
fn main() { println!("{}", greet(3) + inner::S.go()); }
"#;

pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().expect("creating a temporary directory"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `source` to `<name>.<ext>` and compiles it to `<name>`.
    pub fn compile(
        &self,
        compiler: &str,
        ext: &str,
        name: &str,
        source: &str,
        flags: &[&str],
    ) -> PathBuf {
        let src = self.path(&format!("{name}.{ext}"));
        std::fs::write(&src, source).expect("writing a fixture source");
        let out = self.path(name);
        let mut cmd = Command::new(compiler);
        // Flags after the source, so that `-l` options resolve its symbols.
        cmd.arg("-o").arg(&out).arg(&src).args(flags);
        run(&mut cmd);
        out
    }

    pub fn cc(&self, name: &str, source: &str, flags: &[&str]) -> PathBuf {
        self.compile("gcc", "c", name, source, flags)
    }

    pub fn cxx(&self, name: &str, source: &str, flags: &[&str]) -> PathBuf {
        self.compile("g++", "cc", name, source, flags)
    }

    pub fn rustc(&self, name: &str, source: &str, flags: &[&str]) -> PathBuf {
        self.compile("rustc", "rs", name, source, flags)
    }

    /// A stripped copy of `path` named `name`.
    pub fn strip(&self, path: &Path, name: &str) -> PathBuf {
        let out = self.path(name);
        run(Command::new("strip").arg("-o").arg(&out).arg(path));
        out
    }

    /// Splits `path` the way distributions do: `objcopy --only-keep-debug`
    /// into `debug_name`, `strip`, `objcopy --add-gnu-debuglink`; both files
    /// in the fixture directory.
    pub fn split_debug(&self, path: &Path, debug_name: &str) -> Split {
        let debug = self.path(debug_name);
        let stripped = self.path(&format!(
            "{}-stripped",
            debug_name.trim_end_matches(".debug")
        ));
        run(Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(path)
            .arg(&debug));
        run(Command::new("strip").arg("-o").arg(&stripped).arg(path));
        // objcopy records the name and CRC of the file it is given.
        run(Command::new("objcopy")
            .arg(format!("--add-gnu-debuglink={}", debug.display()))
            .arg(&stripped));
        Split { stripped, debug }
    }
}

/// A binary split from its debug info.
pub struct Split {
    pub stripped: PathBuf,
    pub debug: PathBuf,
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `len` bytes at `vaddr`, read through the section headers (not the
/// segments the code under test uses).
pub fn section_bytes(path: &Path, vaddr: u64, len: usize) -> Vec<u8> {
    let data = std::fs::read(path).expect("reading a fixture");
    let file = object::File::parse(&*data).expect("parsing a fixture");
    let section = file
        .sections()
        .find(|s| s.address() <= vaddr && vaddr < s.address() + s.size())
        .expect("a section holding the address");
    let bytes = section.data().expect("section data");
    let start = (vaddr - section.address()) as usize;
    bytes[start..start + len].to_vec()
}

/// `len` bytes at `offset` in the file.
pub fn file_bytes(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let data = std::fs::read(path).expect("reading a fixture");
    data[offset as usize..offset as usize + len].to_vec()
}

/// The addresses objdump labels `<name>` in `path`'s code, by label.
pub fn objdump_labels(path: &Path) -> Vec<(String, u64)> {
    let text = run(Command::new("objdump")
        .arg("-d")
        .arg("--no-show-raw-insn")
        .arg(path));
    text.lines()
        .filter_map(|line| {
            let (addr, rest) = line.split_once(" <")?;
            let name = rest.strip_suffix(">:")?;
            Some((name.to_string(), u64::from_str_radix(addr.trim(), 16).ok()?))
        })
        .collect()
}

/// Every instruction objdump decodes in `path`: (address, text without the
/// raw bytes, e.g. `repz ret` or `call   1030 <strlen@plt>`).
pub fn objdump_insns(path: &Path) -> Vec<(u64, String)> {
    let text = run(Command::new("objdump")
        .arg("-d")
        .arg("--no-show-raw-insn")
        .arg(path));
    text.lines()
        .filter_map(|line| {
            let (addr, insn) = line.split_once(":\t")?;
            let addr = u64::from_str_radix(addr.trim(), 16).ok()?;
            Some((addr, insn.trim().to_string()))
        })
        .collect()
}

/// Raw names in `path`'s .symtab, for checking that a fixture has what a
/// test is about (a `.cold` part, a clone) before checking our output.
pub fn symtab_names(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).expect("reading a fixture");
    let file = object::File::parse(&*data).expect("parsing a fixture");
    use object::ObjectSymbol;
    file.symbols()
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect()
}

/// `tests/fixtures/<source>` compiled by `compiler -g -O0`, rebuilt when
/// the source is newer than the cached binary.
pub fn built(compiler: &str, source: &str) -> PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let src = fixtures.join(source);
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("unit-fixtures");
    std::fs::create_dir_all(&dir).expect("creating the fixture cache");
    let out = dir.join(source.replace('.', "-"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&out).is_some() && modified(&out) >= modified(&src) {
        return out;
    }
    // Built under a private name, then renamed: tests run in parallel.
    let tmp = dir.join(format!("{}.{}", source, std::process::id()));
    let status = Command::new(compiler)
        .args(["-g", "-O0", "-I"])
        .arg(&fixtures)
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .status()
        .expect("running the compiler");
    assert!(status.success(), "{compiler} {source} failed");
    std::fs::rename(&tmp, &out).expect("caching the fixture");
    out
}
