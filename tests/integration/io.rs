//! --io on a real file system: an ext4 made on a loop device for each test,
//! and io.c's functions doing known I/O on it. Every figure is the kernel's
//! own (page cache, writeback and block tracepoints), checked against what
//! the fixture did: bytes, pages and who caused them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{Build, fixture, require_bpf, run, spawn_attached, trace, utrace};

/// An ext4 file system on a loop device, mounted in a temporary directory;
/// unmounted (and its loop device freed) when dropped.
struct Ext4 {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl Ext4 {
    fn new() -> Ext4 {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        std::fs::File::create(&img)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let ok = |cmd: &mut Command| {
            let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            assert!(out.status.success(), "{cmd:?}: {out:?}");
        };
        ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        ok(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt));
        Ext4 { _dir: dir, mnt }
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        // A busy mount (a test that failed midway) goes lazily.
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

const FUNCTIONS: [&str; 10] = [
    "direct_write",
    "direct_read",
    "cold_read",
    "warm_read",
    "fill",
    "flush",
    "dirty",
    "small_sync",
    "every_kind",
    "main",
];

fn selection() -> Vec<&'static str> {
    FUNCTIONS.iter().flat_map(|f| ["-f", f]).collect()
}

/// The JSON report's `io` rows by function ("-" outside every call).
fn io_rows(json: &str) -> std::collections::BTreeMap<String, Value> {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["io"]
        .as_array()
        .unwrap_or_else(|| panic!("no io array in {json}"))
        .iter()
        .map(|r| {
            let name = r["function"].as_str().unwrap_or("-").to_string();
            (name, r.clone())
        })
        .collect()
}

fn n(row: &Value, key: &str) -> u64 {
    row[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {row}"))
}

/// `utrace --io --format=json` of `io MNT MODE`.
fn io_json(fs: &Ext4, mode: &str) -> std::collections::BTreeMap<String, Value> {
    let mut opts = vec!["--io", "--format=json"];
    opts.extend(selection());
    let mnt = fs.mnt.to_str().unwrap();
    let t = trace(&fixture("io", Build::O2), &[mnt, mode], &opts);
    assert_eq!(t.stdout, format!("ok {mode}\n"), "{}", t.stderr);
    io_rows(&t.graph)
}

#[test]
fn direct_io_is_exactly_what_it_asked_each_way() {
    if !require_bpf() {
        return;
    }
    let fs = Ext4::new();
    let rows = io_json(&fs, "direct");
    let (w, r) = (&rows["direct_write"], &rows["direct_read"]);
    assert_eq!(
        (n(w, "syscall_write_bytes"), n(w, "block_write_bytes")),
        (256 << 10, 256 << 10),
        "{w}"
    );
    assert_eq!(
        (n(r, "syscall_read_bytes"), n(r, "block_read_bytes")),
        (256 << 10, 256 << 10),
        "{r}"
    );
    // O_DIRECT passes the page cache by.
    assert_eq!(
        (n(r, "cache_miss_pages"), n(r, "dirtied_pages")),
        (0, 0),
        "{r}"
    );
    assert_eq!(
        (r["read_amp"].as_f64(), w["write_amp"].as_f64()),
        (Some(1.0), Some(1.0))
    );
    assert_eq!(n(r, "block_requests"), 64, "{r}");
}

#[test]
fn a_cold_read_misses_and_reads_the_device_a_warm_one_hits() {
    if !require_bpf() {
        return;
    }
    let fs = Ext4::new();
    let rows = io_json(&fs, "cache");
    let (cold, warm) = (&rows["cold_read"], &rows["warm_read"]);
    assert_eq!(n(cold, "syscall_read_bytes"), 4 << 20, "{cold}");
    assert!(n(cold, "block_read_bytes") >= 4 << 20, "{cold}");
    // Nothing of the file was cached: no hit, however many times each read
    // asked the page cache again as the read-ahead came in.
    assert_eq!(
        (n(cold, "cache_miss_pages"), n(cold, "cache_hit_pages")),
        (1024, 0),
        "{cold}"
    );
    assert_eq!(
        (
            n(warm, "block_read_bytes"),
            n(warm, "cache_hit_pages"),
            n(warm, "cache_miss_pages")
        ),
        (0, 1024, 0),
        "{warm}"
    );
}

#[test]
fn fsynced_writeback_goes_to_the_dirtier_and_to_the_function_that_forced_it() {
    if !require_bpf() {
        return;
    }
    let fs = Ext4::new();
    let rows = io_json(&fs, "fsync");
    let (fill, flush) = (&rows["fill"], &rows["flush"]);
    assert_eq!(
        (
            n(fill, "dirtied_pages"),
            n(fill, "writeback_bytes"),
            n(fill, "forced_writeback_bytes")
        ),
        (256, 1 << 20, 0),
        "{fill}"
    );
    assert_eq!(
        (
            n(flush, "writeback_bytes"),
            n(flush, "forced_writeback_bytes")
        ),
        (0, 1 << 20),
        "{flush}"
    );
}

#[test]
fn pages_a_kernel_thread_writes_back_later_stay_the_dirtiers() {
    if !require_bpf() {
        return;
    }
    let fs = Ext4::new();
    let mnt = fs.mnt.clone();
    // Once dirty() has returned and the program waits, `sync` makes the
    // flusher threads write the pages back; then the program may end.
    let waiter = std::thread::spawn(move || {
        let file = mnt.join("later");
        for _ in 0..500 {
            if std::fs::metadata(&file).is_ok_and(|m| m.len() == 256 << 10) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(Command::new("sync").status().unwrap().success());
        std::fs::write(mnt.join("go"), b"").unwrap();
    });
    let rows = io_json(&fs, "later");
    waiter.join().unwrap();
    let dirty = &rows["dirty"];
    assert_eq!(
        (n(dirty, "dirtied_pages"), n(dirty, "writeback_bytes")),
        (64, 256 << 10),
        "{dirty}"
    );
    // Nobody in the program forced it: the `sync` was another process's.
    assert_eq!(n(dirty, "forced_writeback_bytes"), 0, "{dirty}");
    assert!(!rows.contains_key("-") || n(&rows["-"], "forced_writeback_bytes") == 0);
}

#[test]
fn small_synchronous_writes_are_amplified_and_say_so() {
    if !require_bpf() {
        return;
    }
    let fs = Ext4::new();
    let rows = io_json(&fs, "osync");
    let w = &rows["small_sync"];
    assert_eq!(n(w, "syscall_write_bytes"), 100 * 100, "{w}");
    let amp = w["write_amp"].as_f64().unwrap_or(0.0);
    eprintln!("small_sync: 100 O_SYNC writes of 100 bytes, W_AMP {amp:.2}");
    assert!(amp > 1.0, "{w}");
}

#[test]
fn the_io_table_is_recorded_and_reported_as_a_table_and_as_csv() {
    if !require_bpf() {
        return;
    }
    let fs = Ext4::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("io.data");
    let mut cmd = utrace();
    cmd.args(["--io", "--record", "-d"])
        .arg(&data)
        .args(selection());
    cmd.arg("--")
        .arg(fixture("io", Build::O2))
        .arg(&fs.mnt)
        .arg("fsync");
    let out = run(&mut cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    let report = |args: &[&str]| {
        let out = run(
            utrace().args(["--report", "-d"]).arg(&data).args(args),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = report(&["--format=io"]);
    let fill = table
        .lines()
        .find(|l| l.ends_with(" fill"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(fill.contains("1.0 MiB"), "{table}");
    let csv_path = dir.path().join("io.csv");
    report(&["--format=io", "-o", csv_path.to_str().unwrap()]);
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "function,syscall_read_bytes,syscall_write_bytes,cache_hit_pages,cache_miss_pages,\
             dirtied_pages,block_read_bytes,block_write_bytes,block_requests,writeback_bytes,\
             forced_writeback_bytes,avg_device_ns,max_device_ns,read_amp,write_amp,module"
        )
    );
    let fill: Vec<&str> = lines
        .find(|l| l.starts_with("fill,"))
        .unwrap_or_else(|| panic!("{csv}"))
        .split(',')
        .collect();
    assert_eq!(
        (fill[5], fill[9], fill[14]),
        ("256", "1048576", "1.00"),
        "{csv}"
    );
    let svg_path = dir.path().join("io.svg");
    report(&["--format=io-plot", "-o", svg_path.to_str().unwrap()]);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    for label in ["fill", "flush", "writeback", "syscall write"] {
        let text = format!(">\n{label}\n</text>");
        assert!(svg.contains(&text), "{label} in {svg}");
    }
    let json = report(&["--format=json"]);
    assert_eq!(
        n(&io_rows(&json)["flush"], "forced_writeback_bytes"),
        1 << 20
    );
}

#[test]
fn a_read_that_misses_says_what_happened_below_it() {
    if !require_bpf() {
        return;
    }
    let fs = Ext4::new();
    let mnt = fs.mnt.to_str().unwrap();
    let t = trace(
        &fixture("io", Build::O2),
        &[mnt, "cache"],
        &["--io", "-f", "cold_read", "-f", "warm_read"],
    );
    assert_eq!(t.stdout, "ok cache\n", "{}", t.stderr);
    let first = t
        .graph
        .lines()
        .skip_while(|l| !l.ends_with("| cold_read() {"))
        .nth(1)
        .unwrap_or_else(|| panic!("{}", t.graph));
    assert!(
        first.contains("read(3, 0x")
            && first.contains(", 65536) = 65536;  /* cache 0/16 pages; block read "),
        "{first}"
    );
    assert!(first.contains(" in 1 request, "), "{first}");
    let warm: Vec<&str> = t
        .graph
        .lines()
        .skip_while(|l| !l.ends_with("| warm_read() {"))
        .filter(|l| l.contains("= 65536;"))
        .collect();
    assert_eq!(warm.len(), 64, "{}", t.graph);
    assert!(
        warm.iter().all(|l| l.ends_with("/* cache 16/16 pages */")),
        "{}",
        t.graph
    );
}

/// `utrace --io --format=io -o X.csv` of `io MNT MODE`: the live table,
/// counted in BPF alone (no event leaves the kernel), its CSV rows by
/// function, each a map from column to value.
fn io_table_live(fs: &Ext4, mode: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    io_table_live_out(fs, mode).0
}

/// [`io_table_live`], with what the fixture printed.
fn io_table_live_out(
    fs: &Ext4,
    mode: &str,
) -> (BTreeMap<String, BTreeMap<String, String>>, String) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("io.csv");
    let mut opts = vec!["--io", "--format=io"];
    opts.extend(selection());
    let mnt = fs.mnt.to_str().unwrap();
    let mut cmd = utrace();
    cmd.args(&opts).arg("-o").arg(&csv).arg("--");
    cmd.arg(fixture("io", Build::O2)).args([mnt, mode]);
    let out = run(&mut cmd, Duration::from_secs(120));
    assert!(out.status.success(), "{out:?}");
    let rows = csv_rows(&std::fs::read_to_string(&csv).unwrap());
    (rows, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The rows of an I/O table's CSV by function, each a map from column to
/// value.
fn csv_rows(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    lines
        .map(|l| {
            let row: BTreeMap<String, String> = header
                .iter()
                .zip(l.split(','))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (row["function"].clone(), row)
        })
        .collect()
}

/// Columns `keys` of a live table's row, as numbers.
fn cols(row: &BTreeMap<String, String>, keys: &[&str]) -> Vec<u64> {
    keys.iter()
        .map(|k| {
            row[*k]
                .parse()
                .unwrap_or_else(|e| panic!("{k}: {e} in {row:?}"))
        })
        .collect()
}

#[test]
fn the_live_io_table_counts_direct_io_exactly_each_way() {
    if !require_bpf() {
        return;
    }
    let fs = Ext4::new();
    let rows = io_table_live(&fs, "direct");
    // Creating the file reads the new file system's metadata: direct_write
    // may have block reads and page-cache misses of its own.
    let keys = ["syscall_write_bytes", "block_write_bytes", "dirtied_pages"];
    assert_eq!(
        cols(&rows["direct_write"], &keys),
        [256 << 10, 256 << 10, 0],
        "{rows:?}"
    );
    let keys = [
        "syscall_read_bytes",
        "block_read_bytes",
        "block_requests",
        "cache_hit_pages",
        "cache_miss_pages",
    ];
    assert_eq!(
        cols(&rows["direct_read"], &keys),
        [256 << 10, 256 << 10, 64, 0, 0],
        "{rows:?}"
    );
}

#[test]
fn the_live_io_table_counts_cold_misses_and_warm_hits() {
    if !require_bpf() {
        return;
    }
    let fs = Ext4::new();
    let rows = io_table_live(&fs, "cache");
    let keys = ["syscall_read_bytes", "cache_hit_pages", "cache_miss_pages"];
    assert_eq!(
        cols(&rows["cold_read"], &keys),
        [4 << 20, 0, 1024],
        "{rows:?}"
    );
    assert!(cols(&rows["cold_read"], &["block_read_bytes"])[0] >= 4 << 20);
    assert_eq!(
        cols(
            &rows["warm_read"],
            &[
                "syscall_read_bytes",
                "cache_hit_pages",
                "cache_miss_pages",
                "block_read_bytes"
            ]
        ),
        [4 << 20, 1024, 0, 0],
        "{rows:?}"
    );
}

/// The bytes at the system call are the kernel's own count of what the
/// thread's calls moved (rchar and wchar): one call of each kind, sendfile
/// and copy_file_range counting both ways and splice not at all, equal what
/// /proc/thread-self/io told the fixture, counted in BPF and in events alike.
#[test]
fn syscall_bytes_are_what_the_kernel_counted_for_the_thread() {
    if !require_bpf() {
        return;
    }
    let fs = Ext4::new();
    let kernel = "kernel read 8300 wrote 12400\nok kinds\n";
    let (rows, out) = io_table_live_out(&fs, "kinds");
    assert_eq!(out, kernel);
    let keys = ["syscall_read_bytes", "syscall_write_bytes"];
    assert_eq!(cols(&rows["every_kind"], &keys), [8300, 12400], "{rows:?}");
    let mut opts = vec!["--io", "--format=json"];
    opts.extend(selection());
    let mnt = fs.mnt.to_str().unwrap();
    let t = trace(&fixture("io", Build::O2), &[mnt, "kinds"], &opts);
    assert_eq!(t.stdout, kernel, "{}", t.stderr);
    // It says what it sees, once.
    let sees = "utrace: --io sees the page cache, writeback and block tracepoints; ";
    assert_eq!(t.stderr.matches(sees).count(), 1, "{}", t.stderr);
    let row = &io_rows(&t.graph)["every_kind"];
    assert_eq!((n(row, keys[0]), n(row, keys[1])), (8300, 12400), "{row}");
}

/// `-p`: a thread's bytes count from the attach, not from its start: the
/// MiB the fixture wrote before is nowhere in the table.
#[test]
fn an_attached_process_counts_its_bytes_from_the_attach() {
    if !require_bpf() {
        return;
    }
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    let fs = Ext4::new();
    let mut target = Command::new(fixture("io", Build::O2))
        .arg(&fs.mnt)
        .arg("attach")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(target.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let pid = line.trim().strip_prefix("pid=").unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("io.csv");
    let mut cmd = utrace();
    cmd.args(["--io", "--format=io", "-f", "every_kind", "-p", &pid, "-o"])
        .arg(&csv);
    let (mut tracer, line) = spawn_attached(&mut cmd);
    assert!(line.contains(" and its I/O "), "{line}");
    std::fs::write(fs.mnt.join("go"), "").unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(target.wait().unwrap().success());
    assert!(tracer.wait().unwrap().success());
    assert_eq!(rest, "kernel read 8300 wrote 12400\nok attach\n");
    let rows = csv_rows(&std::fs::read_to_string(&csv).unwrap());
    let keys = ["syscall_read_bytes", "syscall_write_bytes"];
    assert_eq!(cols(&rows["every_kind"], &keys), [8300, 12400], "{rows:?}");
    // Outside every_kind only stdout's one write at exit.
    let outside = cols(&rows["-"], &keys[1..])[0];
    assert_eq!(outside, rest.len() as u64, "{rows:?}");
}
