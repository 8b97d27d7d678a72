//! `--format=flame-graph`: an interactive SVG drawn by inferno (no perl),
//! from the same self-time stacks as the folded format, titled with the
//! traced command. `utrace.svg` unless `--output` says otherwise.

use std::io::Write;

use anyhow::{Context, Result};
use inferno::flamegraph::{self, Options};

use crate::aggregate::CallTree;
use crate::model::{Call, FuncTable, RunInfo, Sink};

pub struct Flame {
    out: Box<dyn Write>,
    tree: CallTree,
}

impl Flame {
    pub fn new(out: Box<dyn Write>, per_thread: bool) -> Self {
        Flame {
            out,
            tree: CallTree::new(per_thread),
        }
    }
}

impl Sink for Flame {
    #[inline]
    fn call(&mut self, call: &Call, _table: &FuncTable) -> Result<()> {
        self.tree.call(call);
        Ok(())
    }

    fn finish(&mut self, table: &FuncTable, run: &RunInfo) -> Result<()> {
        let lines = self.tree.folded(table);
        let mut opts = Options::default();
        opts.title = if run.command.is_empty() {
            "utrace".to_owned()
        } else {
            run.command.clone()
        };
        opts.subtitle = Some("self time per stack, from utrace".to_owned());
        opts.count_name = "ns".to_owned();
        if lines.is_empty() {
            // inferno refuses an empty graph; draw one empty frame instead.
            let empty = ["(no calls traced) 1"];
            flamegraph::from_lines(&mut opts, empty.iter().copied(), &mut self.out)
        } else {
            flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut self.out)
        }
        .context("drawing the flame graph")?;
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use quick_xml::Reader;
    use quick_xml::events::Event as Xml;

    use crate::options::Format;
    use crate::report::testutil::{options, recursive_events, report, synthetic_events};

    /// Parses the whole document; panics where it is not well-formed XML.
    /// Returns the text content.
    fn well_formed(svg: &str) -> String {
        let mut reader = Reader::from_str(svg);
        reader.config_mut().check_end_names = true;
        let mut depth = 0i32;
        let mut text = String::new();
        loop {
            match reader.read_event() {
                Ok(Xml::Start(_)) => depth += 1,
                Ok(Xml::End(_)) => depth -= 1,
                Ok(Xml::Text(t)) => text.push_str(&t.decode().unwrap()),
                Ok(Xml::GeneralRef(r)) => {
                    text.push_str(&format!("&{};", String::from_utf8_lossy(&r)))
                }
                Ok(Xml::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("not well-formed at {}: {e}", reader.buffer_position()),
            }
        }
        assert_eq!(depth, 0, "unclosed elements");
        text
    }

    #[test]
    fn svg_is_well_formed_and_names_the_functions_and_command() {
        let svg = report(&synthetic_events(200), &options(Format::FlameGraph));
        assert!(svg.starts_with("<?xml"));
        let text = well_formed(&svg);
        for name in [
            "main",
            "sort::numbers",
            "compare",
            "qsort@plt",
            "./sort -n 5000",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }

    #[test]
    fn markup_in_names_is_escaped() {
        use crate::model::EventKind::*;
        use crate::report::testutil::ev;
        let events = [
            ev(Entry, 1, 0, 0, 0),
            ev(Entry, 1, 5, 1, 10),
            ev(Exit, 1, 5, 1, 20),
            ev(Exit, 1, 0, 0, 30),
        ];
        let text = well_formed(&report(&events, &options(Format::FlameGraph)));
        assert!(
            text.contains("operator&lt;&lt;(std::ostream&amp;")
                || text.contains("operator<<(std::ostream&"),
            "{text}"
        );
    }

    #[test]
    fn empty_trace_still_draws() {
        well_formed(&report(&[], &options(Format::FlameGraph)));
        well_formed(&report(&recursive_events(), &options(Format::FlameGraph)));
    }
}
