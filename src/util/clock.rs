//! The two clocks a run is stamped with: CLOCK_MONOTONIC, which BPF's
//! `bpf_ktime_get_ns()` also reads (event timestamps), and the wall clock
//! (when the run started, for reports).

/// CLOCK_MONOTONIC in ns: the clock of every event timestamp.
pub fn mono_now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |ts| {
        ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
    })
}

/// Wall-clock ns since the Unix epoch.
pub fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
