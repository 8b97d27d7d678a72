//! `--format=io-plot`: the I/O table as an SVG bar chart, one group of bars
//! per function and one bar per layer (bytes asked at the syscall, read
//! and written on the device, written back), drawn with plotters.

use std::io::Write;

use anyhow::{Context, Result};
use plotters::prelude::*;

use super::io::{owner_name, rows};
use crate::model::{Call, FuncTable, IoCounts, RunInfo, Sink, SyscallCall};

/// The layers, in the order of their bars, and their colours.
const LAYERS: [(&str, RGBColor); 5] = [
    ("syscall read", RGBColor(78, 121, 167)),
    ("syscall write", RGBColor(242, 142, 43)),
    ("block read", RGBColor(89, 161, 79)),
    ("block write", RGBColor(225, 87, 89)),
    ("writeback", RGBColor(176, 122, 161)),
];

fn layer_bytes(c: &IoCounts) -> [u64; 5] {
    [
        c.syscall_read_bytes,
        c.syscall_write_bytes,
        c.block_read_bytes,
        c.block_write_bytes,
        c.writeback_bytes,
    ]
}

pub struct IoPlot {
    out: Box<dyn Write>,
}

impl IoPlot {
    pub fn new(out: Box<dyn Write>) -> Self {
        IoPlot { out }
    }
}

/// The chart of `bars` (a label and its layers' KiB per function) as SVG.
fn draw(title: &str, bars: &[(String, [u64; 5])]) -> Result<String> {
    let mut svg = String::new();
    let width = (160 + 120 * bars.len().max(1)) as u32;
    {
        let root = SVGBackend::with_string(&mut svg, (width.max(640), 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let top = bars.iter().flat_map(|b| b.1).max().unwrap_or(0).max(1) as f64 / 1024.0;
        let n = bars.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..n, 0f64..top * 1.1)?;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len().max(1) * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                match (x - x.floor() - 0.5).abs() < 0.01 {
                    true => names.get(i).cloned().unwrap_or_default(),
                    false => String::new(),
                }
            })
            .y_desc("KiB")
            .draw()?;
        for (layer, (name, colour)) in LAYERS.iter().enumerate() {
            let style = colour.filled();
            let series = bars.iter().enumerate().map(|(i, (_, bytes))| {
                let x0 = i as f64 + 0.1 + 0.16 * layer as f64;
                let kib = bytes[layer] as f64 / 1024.0;
                Rectangle::new([(x0, 0.0), (x0 + 0.15, kib)], style)
            });
            chart
                .draw_series(series)?
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], style));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

impl Sink for IoPlot {
    fn call(&mut self, _call: &Call, _table: &FuncTable) -> Result<()> {
        Ok(())
    }

    fn syscall(&mut self, _sys: &SyscallCall, _table: &FuncTable) -> Result<()> {
        Ok(())
    }

    fn finish(&mut self, table: &FuncTable, run: &RunInfo) -> Result<()> {
        let bars: Vec<(String, [u64; 5])> = rows(run)
            .iter()
            .map(|(owner, c)| (owner_name(table, *owner).to_string(), layer_bytes(c)))
            .collect();
        let title = format!("I/O by function and layer: {}", run.command);
        let svg = draw(&title, &bars).context("drawing the I/O chart")?;
        self.out.write_all(svg.as_bytes())?;
        self.out.flush()?;
        Ok(())
    }
}
