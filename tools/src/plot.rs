//! Draws the load sweep of `make bench` as an SVG: the wait in acquire (p50 and p99) and
//! the throughput against the number of workers, one line per master count.
//!
//! ```text
//! cargo run -p tools --release -- plot target/bench-report/sweep.tsv target/bench-report/load.svg
//! ```
//!
//! The input has one case a line, tab-separated, `#` starting a comment:
//! `masters workers cycles_per_sec wait_p50_ms wait_p99_ms`.

use std::error::Error;

use plotters::prelude::*;

/// One case of the sweep.
#[derive(Debug, Clone, Copy)]
struct Case {
    masters: u32,
    workers: f64,
    cycles_per_sec: f64,
    wait_p50_ms: f64,
    wait_p99_ms: f64,
}

fn parse(text: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let num = |j: usize| -> Result<f64, String> {
            f.get(j)
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("line {}: field {} is not a number: {line:?}", i + 1, j + 1))
        };
        cases.push(Case {
            masters: num(0)? as u32,
            workers: num(1)?,
            cycles_per_sec: num(2)?,
            wait_p50_ms: num(3)?,
            wait_p99_ms: num(4)?,
        });
    }
    if cases.is_empty() {
        return Err("no cases in the input".into());
    }
    Ok(cases)
}

/// Colours for the master counts, in order.
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

fn draw(cases: &[Case], out: &str) -> Result<(), Box<dyn Error>> {
    let mut masters: Vec<u32> = cases.iter().map(|c| c.masters).collect();
    masters.sort_unstable();
    masters.dedup();
    let series = |m: u32| {
        let mut s: Vec<Case> = cases.iter().copied().filter(|c| c.masters == m).collect();
        s.sort_by(|a, b| a.workers.total_cmp(&b.workers));
        s
    };
    let max_workers = cases.iter().map(|c| c.workers).fold(1.0, f64::max);
    // Log scales need positive values: anything under 10 µs is drawn at 10 µs.
    let floor = 0.01;
    let wait_max = cases.iter().map(|c| c.wait_p99_ms).fold(floor, f64::max);
    let wait_min = cases
        .iter()
        .map(|c| c.wait_p50_ms.max(floor))
        .fold(wait_max, f64::min);
    let rate_max = cases.iter().map(|c| c.cycles_per_sec).fold(1.0, f64::max);
    // Workers double from case to case: x is log2(workers), labelled with the count.
    let x_max = max_workers.log2() + 0.3;
    let x_label = |x: &f64| format!("{}", 2f64.powf(*x).round());

    let root = SVGBackend::new(out, (1100, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);

    let mut wait = ChartBuilder::on(&left)
        .caption(
            "wait in acquire (solid p50, dashed p99)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.3..x_max, (wait_min / 2.0..wait_max * 2.0).log_scale())?;
    wait.configure_mesh()
        .x_desc("workers")
        .y_desc("ms")
        .x_labels(max_workers.log2() as usize + 1)
        .x_label_formatter(&x_label)
        .light_line_style(WHITE)
        .draw()?;
    for (i, &m) in masters.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let s = series(m);
        let label = format!("{m} master{}", if m == 1 { "" } else { "s" });
        wait.draw_series(
            LineSeries::new(
                s.iter()
                    .map(|c| (c.workers.log2(), c.wait_p50_ms.max(floor))),
                colour.stroke_width(2),
            )
            .point_size(3),
        )?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        wait.draw_series(DashedLineSeries::new(
            s.iter()
                .map(|c| (c.workers.log2(), c.wait_p99_ms.max(floor))),
            6,
            4,
            colour.stroke_width(2),
        ))?;
    }
    wait.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let mut rate = ChartBuilder::on(&right)
        .caption("throughput", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.3..x_max, 0.0..rate_max * 1.15)?;
    rate.configure_mesh()
        .x_desc("workers")
        .y_desc("cycles/s")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_labels(max_workers.log2() as usize + 1)
        .x_label_formatter(&x_label)
        .light_line_style(WHITE)
        .draw()?;
    for (i, &m) in masters.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let label = format!("{m} master{}", if m == 1 { "" } else { "s" });
        rate.draw_series(
            LineSeries::new(
                series(m)
                    .iter()
                    .map(|c| (c.workers.log2(), c.cycles_per_sec)),
                colour.stroke_width(2),
            )
            .point_size(3),
        )?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    rate.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The sweep: masters, workers, cycles/s, wait p50 and p99 in ms, tab-separated.
    sweep: String,
    /// The SVG to write.
    out: String,
}

pub(crate) fn main(args: Args) -> i32 {
    match plot(&args.sweep, &args.out) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("plot: {e}");
            1
        }
    }
}

/// Draws the sweep in `input` to the SVG `out`.
pub(crate) fn plot(input: &str, out: &str) -> Result<(), Box<dyn Error>> {
    let text = std::fs::read_to_string(input).map_err(|e| format!("{input}: {e}"))?;
    let cases = parse(&text)?;
    draw(&cases, out)?;
    Ok(())
}
