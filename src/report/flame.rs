//! `--format=flame-graph`: an interactive SVG drawn by inferno (no perl),
//! from the same self-time stacks as the folded format, titled with the
//! traced command, which also labels the root frame. `utrace.svg` unless
//! `--output` says otherwise.

use std::io::Write;

use anyhow::{Context, Result};
use inferno::flamegraph::{self, Options};

use crate::aggregate::CallTree;
use crate::model::{Call, FuncTable, RunInfo, Sink, SyscallCall};

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

    fn syscall(&mut self, sys: &SyscallCall, _table: &FuncTable) -> Result<()> {
        self.tree.syscall(sys);
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
        let mut svg = Vec::new();
        if lines.is_empty() {
            // inferno refuses an empty graph; draw one empty frame instead.
            let empty = ["(no calls traced) 1"];
            flamegraph::from_lines(&mut opts, empty.iter().copied(), &mut svg)
        } else {
            flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut svg)
        }
        .context("drawing the flame graph")?;
        let svg = String::from_utf8_lossy(&svg);
        let svg = match run.command.as_str() {
            "" => svg,
            command => label_root(&svg, command).map_or(svg, Into::into),
        };
        self.out.write_all(svg.as_bytes())?;
        self.out.flush()?;
        Ok(())
    }
}

/// Characters of the root label drawn: what fits the 1200-pixel default
/// width at inferno's 12-pixel font. (Its script shortens labels to fit
/// when the graph is zoomed or resized.)
const ROOT_LABEL_CHARS: usize = 160;

/// `svg` with its root frame labelled `label`. inferno draws the root as
/// `all` with an empty text and has no option to name it, so the frame is
/// found in its output: the one `<g>` whose title reads `all (N ns, 100%)`
/// (any other frame's share has two decimals, so a function named `all` is
/// never taken for it). Its title says `label (N ns, 100%)`, since inferno's
/// script reads a frame's label back from its title, and its text `label`.
/// `None` when inferno's output is not what this expects.
fn label_root(svg: &str, label: &str) -> Option<String> {
    let title_at = svg.match_indices("<g><title>all (").find_map(|(at, _)| {
        let end = at + svg[at..].find("</title>")?;
        svg[..end].ends_with(" ns, 100%)").then_some((at, end))
    });
    let (at, title_end) = title_at?;
    let text_end = title_end + svg[title_end..].find("></text></g>")? + 1;
    let name_at = at + "<g><title>".len();
    let shown: String = match label.chars().count() > ROOT_LABEL_CHARS {
        true => label
            .chars()
            .take(ROOT_LABEL_CHARS - 2)
            .chain("..".chars())
            .collect(),
        false => label.to_owned(),
    };
    let mut out = String::with_capacity(svg.len() + 2 * label.len());
    out.push_str(&svg[..name_at]);
    out.push_str(&xml_escape(label));
    out.push_str(&svg[name_at + "all".len()..text_end]);
    out.push_str(&xml_escape(&shown));
    out.push_str(&svg[text_end..]);
    Some(out)
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
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

    /// (title, text) of the root frame: the `<g>` whose title ends `, 100%)`.
    fn root_frame(svg: &str) -> (String, String) {
        let mut reader = Reader::from_str(svg);
        let (mut in_title, mut in_text, mut frame) = (false, false, (String::new(), String::new()));
        loop {
            match reader.read_event().unwrap() {
                Xml::Start(e) if e.name().as_ref() == b"g" => frame = Default::default(),
                Xml::Start(e) => {
                    in_title = e.name().as_ref() == b"title";
                    in_text = e.name().as_ref() == b"text";
                }
                Xml::Text(t) if in_title => frame.0.push_str(&t.decode().unwrap()),
                Xml::Text(t) if in_text => frame.1.push_str(&t.decode().unwrap()),
                Xml::GeneralRef(r) => {
                    let entity = format!("&{};", String::from_utf8_lossy(&r));
                    let c = quick_xml::escape::unescape(&entity).unwrap().into_owned();
                    if in_title {
                        frame.0.push_str(&c);
                    } else if in_text {
                        frame.1.push_str(&c);
                    }
                }
                Xml::End(e) if e.name().as_ref() == b"g" && frame.0.ends_with(", 100%)") => {
                    return frame;
                }
                Xml::End(_) => (in_title, in_text) = (false, false),
                Xml::Eof => panic!("no root frame"),
                _ => {}
            }
        }
    }

    #[test]
    fn the_root_frame_is_labelled_with_the_command() {
        let svg = report(&synthetic_events(200), &options(Format::FlameGraph));
        let (title, text) = root_frame(&svg);
        assert!(title.starts_with("./sort -n 5000 ("), "{title}");
        assert_eq!(text, "./sort -n 5000");
        let svg = report(&[], &options(Format::FlameGraph));
        assert_eq!(root_frame(&svg).1, "./sort -n 5000", "an empty trace too");
    }

    #[test]
    fn root_labels_are_escaped_and_cut_to_fit() {
        let svg = "<g><title>all (9 ns, 100.00%)</title><text></text></g>\
                   <g><title>all (10 ns, 100%)</title><rect/><text x=\"1\"></text></g>";
        let labelled = super::label_root(svg, "a <b> & 'c'").unwrap();
        assert!(
            labelled.starts_with("<g><title>all (9 ns, 100.00%)"),
            "a function named all"
        );
        assert!(
            labelled.ends_with(
                "<g><title>a &lt;b&gt; &amp; &apos;c&apos; (10 ns, 100%)</title><rect/>\
             <text x=\"1\">a &lt;b&gt; &amp; &apos;c&apos;</text></g>"
            ),
            "{labelled}"
        );
        let long = "x".repeat(300);
        let labelled = super::label_root(svg, &long).unwrap();
        assert!(
            labelled.contains(&format!(">{}..</text>", "x".repeat(158))),
            "{labelled}"
        );
        assert_eq!(super::label_root("<svg/>", "cmd"), None);
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
