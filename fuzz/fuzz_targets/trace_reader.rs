//! Fuzzes the trace-file reader: whole files, edits of a valid file, and raw
//! chunks (see `utrace::tracefile::fuzz_one`). Must never panic, hang or
//! allocate without bound.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    utrace::tracefile::fuzz_one(data);
});
