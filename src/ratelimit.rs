//! `--max-rate`: a function called more often than N times per second is
//! dropped from the probes while the run goes on, so a first trace of a big
//! program stays usable; the functions dropped are listed at the end. Rates
//! come from the events, or in counting mode (no events) from BPF's call
//! counts, read once a second.

use crate::model::{Event, EventKind, FuncId, FuncTable};
use crate::util::fmt::{plural, thousands};

const WINDOW_NS: u64 = 1_000_000_000;

pub struct RateLimit {
    max_per_s: u64,
    window_start: Option<u64>,
    /// Entries per function id in the current window.
    counts: Vec<u64>,
    /// Counting mode: each function's calls at the last reading.
    totals: Vec<u64>,
    /// Over the limit, not yet handed out by [`RateLimit::take_new`].
    new: Vec<FuncId>,
    /// Every function dropped, with the rate it reached.
    pub excluded: Vec<(FuncId, u64)>,
}

impl RateLimit {
    pub fn new(max_per_s: u64) -> Self {
        RateLimit {
            max_per_s,
            window_start: None,
            counts: Vec::new(),
            totals: Vec::new(),
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
            let i = ev.func.index();
            if i >= self.counts.len() {
                self.counts.resize(i + 1, 0);
            }
            self.counts[i] += 1;
            // Once: its probes are going away. (Counting mode rates calls
            // from BPF's counts too, and the deepest from their events.)
            if self.counts[i] == self.max_per_s + 1
                && !self.excluded.iter().any(|&(id, _)| id == ev.func)
            {
                self.new.push(ev.func);
                let elapsed = ev.ts.saturating_sub(start).max(1);
                self.excluded
                    .push((ev.func, self.counts[i] * WINDOW_NS / elapsed));
            }
        }
    }

    /// Counting mode: whether BPF's counts are due to be read at `now`.
    pub fn due(&self, now: u64) -> bool {
        self.window_start
            .is_none_or(|start| now >= start + WINDOW_NS)
    }

    /// Counting mode: the functions of `table` still traced, whose counts to read.
    pub fn watched(&self, table: &FuncTable) -> Vec<FuncId> {
        let gone: std::collections::HashSet<FuncId> =
            self.excluded.iter().map(|&(id, _)| id).collect();
        table.ids().filter(|id| !gone.contains(id)).collect()
    }

    /// Counting mode: `totals` are (function, calls so far) read at `now`;
    /// the rate is the growth since the previous reading.
    pub fn sample(&mut self, now: u64, totals: &[(FuncId, u64)]) {
        let start = self.window_start.replace(now);
        let elapsed = start.map_or(0, |s| now.saturating_sub(s)).max(1);
        for &(id, total) in totals {
            let i = id.index();
            if i >= self.totals.len() {
                self.totals.resize(i + 1, 0);
            }
            let calls = total.saturating_sub(std::mem::replace(&mut self.totals[i], total));
            let rate =
                u64::try_from(u128::from(calls) * u128::from(WINDOW_NS) / u128::from(elapsed))
                    .unwrap_or(u64::MAX);
            if start.is_some() && rate > self.max_per_s {
                self.new.push(id);
                self.excluded.push((id, rate));
            }
        }
    }

    /// Functions that went over the limit since the last call.
    pub fn take_new(&mut self) -> Vec<FuncId> {
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
            .map(|&(id, rate)| format!("{} ({} calls/s)", table.name(id), thousands(rate)))
            .collect();
        Some(format!(
            "utrace: stopped tracing {} function{} over --max-rate {}/s: {}",
            list.len(),
            plural(list.len() as u64),
            thousands(self.max_per_s),
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
            func: FuncId(func),
            depth: 0,
            ts,
            after_loss: false,
            nested: false,
            sys: None,
            values: None,
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
        assert_eq!(r.take_new(), vec![FuncId(7)]);
        assert!(r.take_new().is_empty());
        assert_eq!(r.excluded.len(), 1);
    }

    #[test]
    fn counted_rates_are_growth_over_the_time_between_readings() {
        let mut r = RateLimit::new(100);
        assert!(r.due(5));
        r.sample(0, &[(FuncId(0), 500), (FuncId(1), 10)]); // the first reading is the baseline
        assert!(r.take_new().is_empty());
        assert!(!r.due(WINDOW_NS - 1));
        assert!(r.due(WINDOW_NS));
        r.sample(2 * WINDOW_NS, &[(FuncId(0), 700), (FuncId(1), 311)]);
        // 200 calls in 2 s is 100/s: at the limit, not over; 301 in 2 s is over.
        assert_eq!(r.take_new(), vec![FuncId(1)]);
        assert_eq!(r.excluded, vec![(FuncId(1), 150)]);
        let function = crate::model::Function {
            module: 0,
            name: "f".into(),
            raw_name: "f".into(),
            addr: 0,
            size: 1,
            kind: crate::model::FuncKind::Function,
            library: None,
            source: None,
        };
        let table = FuncTable {
            functions: vec![function; 3],
            ..FuncTable::default()
        };
        assert_eq!(r.watched(&table), vec![FuncId(0), FuncId(2)]);
    }

    #[test]
    fn counts_restart_every_second() {
        let mut r = RateLimit::new(3);
        let batch: Vec<Event> = (0..8).map(|i| entry(1, i * 400_000_000)).collect();
        r.count(&batch);
        assert!(r.take_new().is_empty(), "never more than 3 in one second");
    }
}
