//! Short interleaved rounds for the load benches (stress-ng untraced, then
//! traced, alternating): a tracer held in the background for one side of a
//! round, and the median and spread of what the rounds measured.
//!
//! One long run per side measures mostly the drift of a shared 2-core VM
//! (other builds start and stop); several short rounds whose order alternates
//! (untraced first, then traced first) spread that drift over both sides, and
//! the spread of the per-round figures says how far the median can be trusted.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::median;

/// How long a tracer may take to say it attached, and to exit once told to.
const TRACER_LIMIT: Duration = Duration::from_secs(30);

/// utrace tracing `cat`, whose stdin we hold: attached when [`Beside::start`]
/// returns; closing the pipe ends cat, and utrace detaches and exits. The
/// tracepoints it enables fire for every process meanwhile.
pub struct Beside {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: JoinHandle<String>,
}

impl Beside {
    /// `utrace ARGS… -- cat`; None (with the reason on stderr) if it did not
    /// attach within the limit. `floor`: with UTRACE_BENCH_FLOOR=1, the
    /// syscall tracepoints run programs that do nothing (the kernel's own
    /// cost of them).
    pub fn start(utrace: &Path, args: &[&str], floor: bool) -> Option<Beside> {
        let mut child = Command::new(utrace)
            .args(args)
            .env("UTRACE_BENCH_FLOOR", if floor { "1" } else { "0" })
            .args(["--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| eprintln!("bench: {}: {e}", utrace.display()))
            .ok()?;
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().map(BufReader::new);
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            for line in err
                .into_iter()
                .flat_map(|r| r.lines())
                .map_while(Result::ok)
            {
                if line.starts_with("utrace: attached") {
                    let _ = tx.send(());
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let beside = Beside {
            child,
            stdin,
            stderr,
        };
        if rx.recv_timeout(TRACER_LIMIT).is_err() {
            let text = beside.stop();
            eprintln!("bench: the tracer did not attach: {}", text.trim());
            return None;
        }
        Some(beside)
    }

    /// Ends the traced `cat` and waits for utrace (killed after the limit);
    /// what utrace wrote on stderr.
    pub fn stop(mut self) -> String {
        drop(self.stdin.take());
        let start = Instant::now();
        while start.elapsed() < TRACER_LIMIT {
            if let Ok(Some(_)) = self.child.try_wait() {
                return self.stderr.join().unwrap_or_default();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        "killed: did not exit after its target did".into()
    }
}

/// What one round measured on each side.
pub struct Sides<T> {
    pub alone: Option<T>,
    /// Beside utrace with programs that do nothing on the same tracepoints.
    pub floor: Option<T>,
    /// Beside `utrace ARGS… -- cat`.
    pub traced: Option<T>,
}

impl<T> Sides<T> {
    /// (alone, floor, traced) when every side was measured.
    pub fn all(self) -> Option<(T, T, T)> {
        Some((self.alone?, self.floor?, self.traced?))
    }
}

/// Round `i` of `measure`, alone, beside the floor and beside utrace. The
/// order rotates from round to round, so a drift in the machine's load hits
/// every side alike. None when a tracer did not attach.
pub fn beside_round<T>(
    i: usize,
    utrace: &Path,
    args: &[&str],
    mut measure: impl FnMut() -> Option<T>,
) -> Option<Sides<T>> {
    let mut sides = Sides {
        alone: None,
        floor: None,
        traced: None,
    };
    for k in 0..3 {
        match (i + k) % 3 {
            0 => sides.alone = measure(),
            side => {
                let tracer = Beside::start(utrace, args, side == 1)?;
                let got = measure();
                tracer.stop();
                match side {
                    1 => sides.floor = got,
                    _ => sides.traced = got,
                }
            }
        }
    }
    Some(sides)
}

/// Rounds of (untraced, traced) throughput, one figure per stressor.
#[derive(Default)]
pub struct Pairs {
    /// Per round, the stressors' figures summed.
    pub untraced: Vec<f64>,
    pub traced: Vec<f64>,
    /// Per round, how much slower the traced side ran, in percent.
    pub slowdowns: Vec<f64>,
}

impl Pairs {
    /// One round: each stressor's figure untraced and traced, in the same
    /// order. The round's slow-down is 1 − the geometric mean of the
    /// traced/untraced ratios, so no stressor outweighs the others by the
    /// scale of its bogo ops.
    pub fn push(&mut self, untraced: &[f64], traced: &[f64]) {
        if untraced.is_empty() || untraced.len() != traced.len() {
            return;
        }
        let logs: f64 = untraced.iter().zip(traced).map(|(u, t)| (t / u).ln()).sum();
        let ratio = (logs / untraced.len() as f64).exp();
        self.untraced.push(untraced.iter().sum());
        self.traced.push(traced.iter().sum());
        self.slowdowns.push((1.0 - ratio) * 100.0);
    }

    /// "median 2.1% slower (rounds -0.8 … +4.0%, 6 rounds)".
    pub fn describe(&self) -> Option<String> {
        let s = &self.slowdowns;
        let (m, (lo, hi)) = (median(s)?, spread(s)?);
        Some(format!(
            "median {m:.1}% slower (rounds {lo:+.1} … {hi:+.1}%, {} rounds)",
            s.len()
        ))
    }
}

/// The smallest and largest finite value.
pub fn spread(v: &[f64]) -> Option<(f64, f64)> {
    let f = v.iter().copied().filter(|x| x.is_finite());
    let lo = f.clone().reduce(f64::min)?;
    Some((lo, f.reduce(f64::max)?))
}

/// "target ≤ 3%: met", "NOT met", and whether every round agrees with the
/// median or the rounds fall on both sides of the target.
pub fn verdict(p: &Pairs, target_pct: f64) -> String {
    let (Some(m), Some((lo, hi))) = (median(&p.slowdowns), spread(&p.slowdowns)) else {
        return format!("target ≤ {target_pct:.0}%: no figures");
    };
    let met = if m <= target_pct { "met" } else { "NOT met" };
    let how = match (lo > target_pct, hi <= target_pct) {
        (true, _) => "every round over it",
        (_, true) => "every round within it",
        _ => "by the median; rounds on both sides of it",
    };
    format!("target ≤ {target_pct:.0}%: {met} ({how})")
}

/// Rounds to run: `wanted`, but no new round once `budget` has passed since
/// `start` (the load benches stay short in CI however slow the machine is).
pub fn more_rounds(i: usize, wanted: usize, start: Instant, budget: Duration) -> bool {
    i < wanted && (i < 2 || start.elapsed() < budget)
}
