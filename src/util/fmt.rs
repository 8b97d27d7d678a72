//! How numbers, durations and module names read in every output.

/// "1,234,567"
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration scaled to its unit: "850 ns", "12.345 us", "1.234 ms", "2.500 s".
pub fn human_duration(ns: u64) -> String {
    match ns {
        n if n < 1_000 => format!("{n} ns"),
        n if n < 1_000_000 => format!("{:.3} us", n as f64 / 1e3),
        n if n < 1_000_000_000 => format!("{:.3} ms", n as f64 / 1e6),
        n => format!("{:.3} s", n as f64 / 1e9),
    }
}

/// The file name of a module path: what tables show.
pub fn module_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// "" for one, "s" otherwise.
pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// 512 → "512 B", 65536 → "64 KiB", 1572864 → "1.5 MiB" (one decimal
/// above KiB, whole KiB below a MiB).
pub fn human_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = KIB * KIB;
    const GIB: u64 = MIB * KIB;
    match n {
        n if n < KIB => format!("{n} B"),
        n if n < MIB => format!("{} KiB", n / KIB),
        n if n < GIB => format!("{:.1} MiB", n as f64 / MIB as f64),
        n => format!("{:.1} GiB", n as f64 / GIB as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(human_duration(850), "850 ns");
        assert_eq!(human_duration(12_345), "12.345 us");
        assert_eq!(human_duration(1_234_000), "1.234 ms");
        assert_eq!(human_duration(2_500_000_000), "2.500 s");
        assert_eq!(module_name("/usr/lib/libc.so.6"), "libc.so.6");
        assert_eq!((plural(1), plural(0), plural(2)), ("", "s", "s"));
    }

    #[test]
    fn bytes_scale_to_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(65536), "64 KiB");
        assert_eq!(human_bytes(1_572_864), "1.5 MiB");
    }
}
