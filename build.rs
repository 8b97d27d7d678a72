//! Compiles bpf/utrace.bpf.c with clang and generates the Rust skeleton into
//! $OUT_DIR, so the event layout in bpf/utrace.h is shared, never copied.
use std::{env, path::PathBuf};

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "bpf/utrace.bpf.c";

fn main() {
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("utrace.skel.rs");
    if let Err(err) = SkeletonBuilder::new()
        .source(SRC)
        .clang_args(["-Ibpf", "-D__TARGET_ARCH_x86", "-mcpu=v3", "-O2", "-g"])
        .build_and_generate(&out)
    {
        panic!(
            "building {SRC} failed: {err:#}\n\
             clang (>= 14) and libelf-dev are needed: run tools/test or tools/demo once, they install them"
        );
    }
    println!("cargo:rerun-if-changed=bpf");
}
