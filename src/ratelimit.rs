//! `--max-rate`: a function called more often than N times per second is
//! dropped from the probes while the run goes on, so a first trace of a big
//! program stays usable; the functions dropped are listed at the end.

use crate::model::{Event, EventKind, FuncTable};

const WINDOW_NS: u64 = 1_000_000_000;

pub struct RateLimit {
    max_per_s: u64,
    window_start: Option<u64>,
    /// Entries per function id in the current window.
    counts: Vec<u64>,
    /// Over the limit, not yet handed out by [`RateLimit::take_new`].
    new: Vec<u32>,
    /// Every function dropped, with the rate it reached.
    pub excluded: Vec<(u32, u64)>,
}

impl RateLimit {
    pub fn new(max_per_s: u64) -> Self {
        RateLimit {
            max_per_s,
            window_start: None,
            counts: Vec::new(),
            new: Vec::new(),
            excluded: Vec::new(),
        }
    }

    /// Counts the entries of `batch`, in event time.
    pub fn count(&mut self, batch: &[Event]) {
        for ev in batch.iter().filter(|e| e.kind == EventKind::Entry) {
            let start = *self.window_start.get_or_insert(ev.ts);
            if ev.ts >= start + WINDOW_NS {
                self.window_start = Some(ev.ts);
                self.counts.iter_mut().for_each(|c| *c = 0);
            }
            let i = ev.func as usize;
            if i >= self.counts.len() {
                self.counts.resize(i + 1, 0);
            }
            self.counts[i] += 1;
            // Once: its probes are going away.
            if self.counts[i] == self.max_per_s + 1 {
                self.new.push(ev.func);
                let elapsed = ev.ts.saturating_sub(start).max(1);
                self.excluded
                    .push((ev.func, self.counts[i] * WINDOW_NS / elapsed));
            }
        }
    }

    /// Functions that went over the limit since the last call.
    pub fn take_new(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.new)
    }

    /// The closing report, when anything was dropped.
    pub fn report(&self, table: &FuncTable) -> Option<String> {
        if self.excluded.is_empty() {
            return None;
        }
        let list: Vec<String> = self
            .excluded
            .iter()
            .map(|&(id, rate)| {
                format!(
                    "{} ({} calls/s)",
                    table.name(id),
                    crate::report::thousands(rate)
                )
            })
            .collect();
        Some(format!(
            "utrace: stopped tracing {} function{} over --max-rate {}/s: {}",
            list.len(),
            if list.len() == 1 { "" } else { "s" },
            crate::report::thousands(self.max_per_s),
            list.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(func: u32, ts: u64) -> Event {
        Event {
            kind: EventKind::Entry,
            pid: 1,
            tid: 1,
            func,
            depth: 0,
            ts,
            after_loss: false,
        }
    }

    #[test]
    fn a_function_over_the_limit_is_reported_once() {
        let mut r = RateLimit::new(3);
        let batch: Vec<Event> = (0..10)
            .map(|i| entry(7, i * 1000))
            .chain([entry(8, 20_000)])
            .collect();
        r.count(&batch);
        assert_eq!(r.take_new(), vec![7]);
        assert!(r.take_new().is_empty());
        assert_eq!(r.excluded.len(), 1);
    }

    #[test]
    fn counts_restart_every_second() {
        let mut r = RateLimit::new(3);
        let batch: Vec<Event> = (0..8).map(|i| entry(1, i * 400_000_000)).collect();
        r.count(&batch);
        assert!(r.take_new().is_empty(), "never more than 3 in one second");
    }
}
