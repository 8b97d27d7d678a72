//! The progress line of a long `--record` on a terminal: events so far,
//! their rate and the events lost, rewritten in place once a second on
//! stderr and erased at the end, so the closing lines start clean. Not on
//! a pipe or a file: a log gets no carriage returns.

use std::io::{IsTerminal, Write};

use crate::util::fmt::thousands;

const EVERY_NS: u64 = 1_000_000_000;
/// Back to the start of the line, and erase it.
const ERASE: &str = "\r\x1b[K";

pub struct Progress {
    /// When the line was last written, and the events then.
    last_ns: u64,
    last_events: u64,
    shown: bool,
}

impl Progress {
    /// A progress line, when stderr is a terminal; `now` starts the clock.
    pub fn on_terminal(now: u64) -> Option<Progress> {
        std::io::stderr().is_terminal().then_some(Progress {
            last_ns: now,
            last_events: 0,
            shown: false,
        })
    }

    /// Whether a second has passed since the line was last written.
    pub fn due(&self, now: u64) -> bool {
        now.saturating_sub(self.last_ns) >= EVERY_NS
    }

    /// Rewrites the line with `events` received and `lost` so far.
    pub fn show(&mut self, now: u64, events: u64, lost: u64) {
        let secs = now.saturating_sub(self.last_ns) as f64 / 1e9;
        let rate = (events.saturating_sub(self.last_events) as f64 / secs.max(1e-9)) as u64;
        let line = format!(
            "{ERASE}utrace: recording: {} events, {}/s, {} lost",
            thousands(events),
            thousands(rate),
            thousands(lost)
        );
        // A progress line that cannot be written is no reason to stop.
        let _ = std::io::stderr().write_all(line.as_bytes());
        (self.last_ns, self.last_events, self.shown) = (now, events, true);
    }

    /// Erases the line, if one is shown, before other lines are written.
    pub fn clear(&mut self) {
        if std::mem::take(&mut self.shown) {
            let _ = std::io::stderr().write_all(ERASE.as_bytes());
        }
    }
}
