//! The call graph in uftrace's replay layout, live and from `--report`.
//!
//! A call with no traced callee prints on one line (`f();` with its
//! duration), so a call's opening line cannot be written until its thread's
//! next event says which form it takes. Lines wait in a queue in arrival
//! order; an undecided opening line holds back the lines behind it until its
//! thread moves on, or for at most `HOLD_NS`, after which it is printed as
//! `f() {` so a call still running is always visible. A system call is a
//! leaf with its arguments and result: `read(3, 0x…, 4096) = 811;`.
//! A call still running when the trace ends (after `-p`, at detach) closes
//! with no duration: `} /* f */ /* still running */`.

use std::collections::VecDeque;
use std::io::Write;

use anyhow::Result;

use crate::model::{Call, End, FuncId, FuncKind, FuncTable, RunInfo, Sink, SyscallCall};
use crate::options::Layout;
use crate::util::fmt::module_name;
use crate::util::idmap::IdMap;
use crate::values::with_args;

const HOLD_NS: u64 = 100_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    /// Entry whose form is not known yet.
    Pending,
    /// `f() {`
    Open,
    /// `f();` with a duration.
    Leaf { ns: u64, end: End },
    /// `} /* f */` with a duration.
    Close { ns: u64, end: End },
}

struct Line {
    tid: u32,
    func: FuncId,
    depth: u32,
    ts: u64,
    shape: Shape,
    /// A system call's text, shown instead of a function's name.
    syscall: Option<Box<str>>,
    /// `-A`/`-R`: the call's argument list and return value, as shown.
    values: Option<Box<(Option<String>, Option<String>)>>,
}

pub struct CallGraph {
    out: Box<dyn Write>,
    layout: Layout,
    queue: VecDeque<Line>,
    /// Sequence number of the queue's front line.
    front_seq: u64,
    /// Per thread: sequence number of its pending entry line.
    pending: IdMap<u32, u64>,
    first_ts: Option<u64>,
    header_done: bool,
    /// The line being built, kept to reuse its allocation.
    text: String,
}

impl CallGraph {
    pub fn new(out: Box<dyn Write>, layout: Layout) -> Self {
        CallGraph {
            out,
            layout,
            queue: VecDeque::new(),
            front_seq: 0,
            pending: IdMap::default(),
            first_ts: None,
            header_done: false,
            text: String::with_capacity(128),
        }
    }

    fn push(&mut self, line: Line) {
        if line.shape == Shape::Pending {
            self.pending
                .insert(line.tid, self.front_seq + self.queue.len() as u64);
        }
        self.queue.push_back(line);
    }

    /// Decides the thread's pending entry as an opening line.
    fn open_pending(&mut self, tid: u32) {
        if let Some(seq) = self.pending.remove(&tid)
            && let Some(line) = self.queue.get_mut((seq - self.front_seq) as usize)
        {
            line.shape = Shape::Open;
        }
    }

    fn flush(&mut self, table: &FuncTable) -> Result<()> {
        while let Some(front) = self.queue.front() {
            if front.shape == Shape::Pending {
                break;
            }
            let line = self.queue.pop_front().expect("front exists");
            self.front_seq += 1;
            self.write_line(&line, table)?;
        }
        Ok(())
    }

    fn write_header(&mut self) -> Result<()> {
        if self.header_done {
            return Ok(());
        }
        self.header_done = true;
        let mut header = String::from("#");
        if self.layout.timestamp {
            header.push_str("     TIMESTAMP  ");
        }
        header.push_str(" DURATION    ");
        if self.layout.tid {
            header.push_str(" TID     ");
        }
        header.push_str("FUNCTION");
        writeln!(self.out, "{header}")?;
        Ok(())
    }

    /// One line, built in a buffer kept across lines: this runs once per
    /// event, and allocating per line was a third of the printer's time.
    fn write_line(&mut self, line: &Line, table: &FuncTable) -> Result<()> {
        use std::fmt::Write as _;
        self.write_header()?;
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        if self.layout.timestamp {
            let rel = line.ts.saturating_sub(self.first_ts.unwrap_or(line.ts));
            let _ = write!(
                text,
                "{:>4}.{:09} ",
                rel / 1_000_000_000,
                rel % 1_000_000_000
            );
        }
        match line.shape {
            Shape::Close { end: End::Open, .. } => text.push_str("            "),
            Shape::Leaf { ns, .. } | Shape::Close { ns, .. } => {
                text.push(' ');
                push_duration(&mut text, ns, self.layout.color);
                text.push(' ');
            }
            _ => text.push_str("            "),
        }
        if self.layout.tid {
            let _ = write!(text, "[{:>6}] ", line.tid);
        }
        text.push_str("| ");
        if !self.layout.flat {
            (0..line.depth).for_each(|_| text.push_str("  "));
        }
        if let Some(label) = &line.syscall {
            text.push_str(label);
            text.push('\n');
            let written = self.out.write_all(text.as_bytes());
            self.text = text;
            return Ok(written?);
        }
        let (name, module) = match self.layout.libname {
            true => name_at_library(table, line.func),
            false => (table.name(line.func), None),
        };
        let (args, ret) = match &line.values {
            Some(v) => (v.0.as_deref(), v.1.as_deref()),
            None => (None, None),
        };
        let name = &*match args {
            Some(args) => std::borrow::Cow::Owned(with_args(name, args)),
            None => std::borrow::Cow::Borrowed(name),
        };
        let bold = self.layout.color;
        let push_name = |text: &mut String| {
            if bold {
                text.push_str(BOLD);
            }
            text.push_str(name);
            if let Some(module) = module {
                text.push('@');
                text.push_str(module);
            }
            if bold {
                text.push_str(RESET);
            }
        };
        match line.shape {
            Shape::Pending | Shape::Open | Shape::Leaf { .. } => {
                push_name(&mut text);
                // A C++ name keeps its parameter list, so overloads stay
                // distinct; a C name gets one, before the tag that tells two
                // alike apart (`helper() [a.c:3]`, symbols/labels.rs).
                if !name.contains('(') {
                    let at = tag_start(name).map_or(text.len(), |i| text.len() - (name.len() - i));
                    let at = if module.is_some() { text.len() } else { at };
                    text.insert_str(at, "()");
                }
                match line.shape {
                    Shape::Leaf { end, .. } => {
                        push_ret(&mut text, ret);
                        text.push(';');
                        text.push_str(marker(end));
                    }
                    _ => text.push_str(" {"),
                }
            }
            Shape::Close { end, .. } => {
                text.push('}');
                if ret.is_some() {
                    push_ret(&mut text, ret);
                    text.push(';');
                }
                text.push_str(" /* ");
                push_name(&mut text);
                text.push_str(" */");
                text.push_str(marker(end));
            }
        }
        text.push('\n');
        let written = self.out.write_all(text.as_bytes());
        self.text = text;
        Ok(written?)
    }
}

fn push_ret(text: &mut String, ret: Option<&str>) {
    if let Some(ret) = ret {
        text.push_str(" = ");
        text.push_str(ret);
    }
}

/// Where the ` [tag]` of a tagged name without a parameter list starts.
fn tag_start(name: &str) -> Option<usize> {
    name.ends_with(']').then(|| name.rfind(" [")).flatten()
}

/// `--libname`: a function and the file it is in; for a PLT stub whose
/// library is known, the import and that library (`strtol`, `libc.so.6`),
/// since the call goes there, not to the stub's own module.
fn name_at_library(table: &FuncTable, id: FuncId) -> (&str, Option<&str>) {
    let name = table.name(id);
    let stub = table.function(id).filter(|f| f.kind == FuncKind::Plt);
    match stub.and_then(|f| f.library.as_deref()) {
        Some(library) => (name.strip_suffix("@plt").unwrap_or(name), Some(library)),
        None => (name, Some(module_name(table.module_of(id)))),
    }
}

fn marker(end: End) -> &'static str {
    match end {
        End::Returned => "",
        End::Unwound => " /* unwound */",
        End::NotSeen => " /* return not seen */",
        End::Open => " /* still running */",
        End::ThreadEnded => " /* no return: thread ended */",
    }
}

/// uftrace's duration column: 3 decimals, truncated as uftrace does,
/// scaled from µs upward: `  0.731 us`, ` 12.345 ms`, `  2.500  s`.
pub fn duration(ns: u64) -> String {
    let mut s = String::with_capacity(10);
    push_duration(&mut s, ns, false);
    s
}

/// With `color`, the unit is coloured as uftrace does: ms green, s yellow,
/// and (uftrace's minutes and hours) a minute or more red.
fn push_duration(out: &mut String, ns: u64, color: bool) {
    use std::fmt::Write as _;
    let (scale, unit, code) = match ns {
        n if n < 1_000_000 => (1_000, "us", None),
        n if n < 1_000_000_000 => (1_000_000, "ms", Some(GREEN)),
        n if n < 60_000_000_000 => (1_000_000_000, " s", Some(YELLOW)),
        _ => (1_000_000_000, " s", Some(RED)),
    };
    let milli = ns / (scale / 1_000);
    let _ = write!(out, "{:>3}.{:03} ", milli / 1_000, milli % 1_000);
    match code.filter(|_| color) {
        Some(code) => {
            out.push_str(code);
            out.push_str(unit);
            out.push_str(RESET);
        }
        None => out.push_str(unit),
    }
}

/// uftrace's terminal colours (its utils/debug.c).
const BOLD: &str = "\x1b[1m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[91m";
const RESET: &str = "\x1b[0m";

impl Sink for CallGraph {
    fn call(&mut self, call: &Call, table: &FuncTable) -> Result<()> {
        self.first_ts.get_or_insert(call.ts());
        match *call {
            Call::Enter {
                tid,
                func,
                depth,
                ts,
                ref args,
                ..
            } => {
                let values = (args.as_ref())
                    .and_then(|a| table.shown_args(func, a))
                    .map(|a| Box::new((Some(a), None)));
                self.open_pending(tid);
                let shape = if self.layout.flat {
                    Shape::Open
                } else {
                    Shape::Pending
                };
                self.push(Line {
                    tid,
                    func,
                    depth,
                    ts,
                    shape,
                    syscall: None,
                    values,
                });
            }
            Call::Leave {
                tid,
                func,
                depth,
                entry_ts,
                ts,
                end,
                ref ret,
                ..
            } => {
                let ns = ts - entry_ts;
                let ret = ret.as_ref().and_then(|r| table.shown_ret(func, r));
                let leaf = match self.pending.get(&tid) {
                    Some(&seq) => self
                        .queue
                        .get((seq - self.front_seq) as usize)
                        .is_some_and(|l| l.func == func && l.depth == depth),
                    None => false,
                };
                // Still running at the end: opened, then closed with no time.
                if leaf && !self.layout.flat && end != End::Open {
                    let seq = self.pending.remove(&tid).unwrap_or_default();
                    if let Some(line) = self.queue.get_mut((seq - self.front_seq) as usize) {
                        line.shape = Shape::Leaf { ns, end };
                        if ret.is_some() {
                            line.values.get_or_insert_default().1 = ret;
                        }
                    }
                } else {
                    self.open_pending(tid);
                    self.push(Line {
                        tid,
                        func,
                        depth,
                        ts,
                        shape: Shape::Close { ns, end },
                        syscall: None,
                        values: ret.map(|r| Box::new((None, Some(r)))),
                    });
                }
            }
        }
        self.drain(call.ts(), table)
    }

    fn syscall(&mut self, call: &SyscallCall, table: &FuncTable) -> Result<()> {
        self.first_ts.get_or_insert(call.ts);
        // Its caller has a callee now: it opens rather than being a leaf.
        self.open_pending(call.tid);
        let end = match call.sys.ret {
            Some(_) => End::Returned,
            None => End::ThreadEnded,
        };
        self.push(Line {
            tid: call.tid,
            func: FuncId(0),
            depth: call.depth,
            ts: call.ts,
            shape: Shape::Leaf {
                ns: call.duration(),
                end,
            },
            syscall: Some(
                match super::syscalls::io_note(call.sys) {
                    Some(note) => format!("{};  /* {note} */", super::syscalls::label(call.sys)),
                    None => format!("{};", super::syscalls::label(call.sys)),
                }
                .into(),
            ),
            values: None,
        });
        self.drain(call.ts, table)
    }

    fn idle(&mut self, now: u64, table: &FuncTable) -> Result<()> {
        self.drain(now, table)?;
        self.out.flush()?;
        Ok(())
    }

    fn finish(&mut self, table: &FuncTable, _run: &RunInfo) -> Result<()> {
        let tids: Vec<u32> = self.pending.keys().copied().collect();
        for tid in tids {
            self.open_pending(tid);
        }
        self.flush(table)?;
        self.out.flush()?;
        Ok(())
    }
}

impl CallGraph {
    /// Writes every decided line; an entry held longer than `HOLD_NS` at the
    /// front is shown as opened so a running call is always visible.
    fn drain(&mut self, now: u64, table: &FuncTable) -> Result<()> {
        loop {
            self.flush(table)?;
            match self.queue.front() {
                Some(l) if l.shape == Shape::Pending && now.saturating_sub(l.ts) >= HOLD_NS => {
                    let tid = l.tid;
                    self.open_pending(tid);
                }
                _ => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Function, Module};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn table() -> FuncTable {
        let f = |name: &str| Function {
            module: 0,
            name: name.into(),
            raw_name: name.into(),
            addr: 0,
            size: 1,
            kind: FuncKind::Function,
            library: None,
            source: None,
        };
        FuncTable {
            modules: vec![Module {
                path: "/bin/sort".into(),
                build_id: None,
            }],
            functions: vec![f("main"), f("sort_numbers"), f("compare")],
            values: Default::default(),
        }
    }

    fn enter(func: u32, depth: u32, ts: u64) -> Call {
        Call::Enter {
            pid: 1,
            tid: 7,
            func: FuncId(func),
            depth,
            ts,
            args: None,
        }
    }

    fn leave(func: u32, depth: u32, entry_ts: u64, ts: u64) -> Call {
        Call::Leave {
            pid: 1,
            tid: 7,
            func: FuncId(func),
            depth,
            entry_ts,
            ts,
            child_ns: 0,
            end: End::Returned,
            ret: None,
        }
    }

    /// What the call graph prints for `calls` in `layout`, named from `t`.
    fn render(layout: Layout, t: &FuncTable, calls: &[Call]) -> String {
        let buf = Shared::default();
        let mut g = CallGraph::new(Box::new(buf.clone()), layout);
        for c in calls {
            g.call(c, t).unwrap();
        }
        g.finish(t, &RunInfo::default()).unwrap();
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn renders_uftrace_layout() {
        let layout = Layout::default();
        let t = table();
        let text = render(
            layout,
            &t,
            &[
                enter(0, 0, 0),
                enter(1, 1, 1_000),
                enter(2, 2, 2_000),
                leave(2, 2, 2_000, 2_731),
                leave(1, 1, 1_000, 53_004),
                leave(0, 0, 0, 60_000),
            ],
        );
        let expected = "\
# DURATION     TID     FUNCTION
            [     7] | main() {
            [     7] |   sort_numbers() {
   0.731 us [     7] |     compare();
  52.004 us [     7] |   } /* sort_numbers */
  60.000 us [     7] | } /* main */
";
        assert_eq!(text, expected);
    }

    #[test]
    fn libname_names_the_library_a_stub_calls_into() {
        let layout = Layout {
            libname: true,
            ..Layout::default()
        };
        let mut t = table();
        let stub = |name: &str, library: Option<&str>| Function {
            module: 0,
            name: format!("{name}@plt"),
            raw_name: format!("{name}@plt"),
            addr: 0,
            size: 16,
            kind: FuncKind::Plt,
            library: library.map(str::to_owned),
            source: None,
        };
        t.functions.push(stub("strtol", Some("libc.so.6")));
        t.functions.push(stub("mystery", None));
        let text = render(
            layout,
            &t,
            &[
                enter(0, 0, 0),
                enter(3, 1, 1_000),
                leave(3, 1, 1_000, 1_500),
                enter(4, 1, 2_000),
                leave(4, 1, 2_000, 2_500),
                leave(0, 0, 0, 3_000),
            ],
        );
        let expected = "\
# DURATION     TID     FUNCTION
            [     7] | main@sort() {
   0.500 us [     7] |   strtol@libc.so.6();
   0.500 us [     7] |   mystery@plt@sort();
   3.000 us [     7] | } /* main@sort */
";
        assert_eq!(text, expected);
    }

    #[test]
    fn flat_layout_has_the_header_too() {
        let layout = Layout {
            flat: true,
            ..Layout::default()
        };
        let t = table();
        let text = render(
            layout,
            &t,
            &[
                enter(0, 0, 0),
                enter(2, 1, 1_000),
                leave(2, 1, 1_000, 1_731),
                leave(0, 0, 0, 3_000),
            ],
        );
        let expected = "\
# DURATION     TID     FUNCTION
            [     7] | main() {
            [     7] | compare() {
   0.731 us [     7] | } /* compare */
   3.000 us [     7] | } /* main */
";
        assert_eq!(text, expected);
    }

    #[test]
    fn color_makes_names_bold_and_units_green_yellow_red_as_uftrace() {
        let layout = Layout {
            color: true,
            ..Layout::default()
        };
        let t = table();
        let text = render(
            layout,
            &t,
            &[
                enter(0, 0, 0),
                enter(1, 1, 1_000),
                leave(1, 1, 1_000, 1_500),
                enter(2, 1, 2_000),
                leave(2, 1, 2_000, 3_002_000),
                enter(1, 1, 4_000_000),
                leave(1, 1, 4_000_000, 2_504_000_000),
                leave(0, 0, 0, 90_000_000_000),
            ],
        );
        let expected = "\
# DURATION     TID     FUNCTION
            [     7] | \x1b[1mmain\x1b[0m() {
   0.500 us [     7] |   \x1b[1msort_numbers\x1b[0m();
   3.000 \x1b[32mms\x1b[0m [     7] |   \x1b[1mcompare\x1b[0m();
   2.500 \x1b[33m s\x1b[0m [     7] |   \x1b[1msort_numbers\x1b[0m();
  90.000 \x1b[91m s\x1b[0m [     7] | } /* \x1b[1mmain\x1b[0m */
";
        assert_eq!(text, expected);
    }

    #[test]
    fn durations_scale() {
        assert_eq!(duration(731), "  0.731 us");
        assert_eq!(
            duration(12_345_678),
            " 12.345 ms",
            "truncated, as uftrace does"
        );
        assert_eq!(duration(2_500_000_000), "  2.500  s");
    }
}
