//! The benchmark charts: the fan-out and HLS benchmarks write what they measured as CSV (`.run/bench/fanout.csv`,
//! `.run/bench/hls.csv`), and `bench_charts` draws them as SVG for docs/BENCHMARKS.md: chat latency (median and p99)
//! against send rate for each target (the room with shards off and on, and both floors), and HLS delivered % and
//! written-to-listed delay against viewers, and glass-to-glass latency per segment length (`.run/bench/latency.csv`
//! from `bench_latency`). Host only (plotters' SVG backend; text is SVG `<text>`, no font files).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::BoxError;

/// Where the benchmarks leave their CSV results: `BENCH_RESULTS_DIR`, or `.run/bench` in the repository.
pub fn results_dir() -> std::path::PathBuf {
    std::env::var_os("BENCH_RESULTS_DIR")
        .map(Into::into)
        .unwrap_or_else(|| crate::repo_root().join(".run/bench"))
}

/// The time a run started, as the charts print it: `2026-12-06 09:40 UTC`.
pub fn run_stamp() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string()
}

/// One fan-out step: one target, room size and send rate, and what the sockets measured.
#[derive(Clone, Debug, PartialEq)]
pub struct FanoutStep {
    pub run: String,
    pub target: String,
    /// `fixed` (the fixed-rate step at each size) or `ladder` (the rate search at 1,000 sockets).
    pub phase: String,
    pub sockets: usize,
    pub rate: f64,
    pub median_ms: f64,
    pub p99_ms: f64,
    pub delivered: u64,
    pub expected: u64,
}

/// One HLS run: N viewers for the bench's run length.
#[derive(Clone, Debug, PartialEq)]
pub struct HlsRun {
    pub run: String,
    pub viewers: usize,
    pub delivered_pct: f64,
    pub delay_p50_ms: f64,
    pub delay_p99_ms: f64,
}

/// One glass-to-glass run: one segment length (latency mode), what the viewer measured, in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyRun {
    pub run: String,
    pub segment_s: u64,
    pub glass_p50_s: f64,
    pub glass_p95_s: f64,
    pub edge_p50_s: f64,
    pub stalls: u64,
}

const LATENCY_HEADER: &str = "run,segment_s,glass_p50_s,glass_p95_s,edge_p50_s,stalls";
const FANOUT_HEADER: &str = "run,target,phase,sockets,rate,median_ms,p99_ms,delivered,expected";
const HLS_HEADER: &str = "run,viewers,delivered_pct,delay_p50_ms,delay_p99_ms";

/// A CSV field, quoted when it holds a comma, a quote or a line break (the bench's labels do: "room, shards off").
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The fields of one CSV line, quotes undone.
fn split_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let (mut quoted, mut chars) = (false, line.chars().peekable());
    while let Some(c) = chars.next() {
        let last = fields.last_mut().expect("BUG: fields always has a last field");
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                last.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => last.push(c),
        }
    }
    fields
}

/// The steps as CSV, one line per step.
pub fn fanout_csv(steps: &[FanoutStep]) -> Result<String, BoxError> {
    let mut out = format!("{FANOUT_HEADER}\n");
    for s in steps {
        writeln!(
            out,
            "{},{},{},{},{},{:.2},{:.2},{},{}",
            field(&s.run),
            field(&s.target),
            field(&s.phase),
            s.sockets,
            s.rate,
            s.median_ms,
            s.p99_ms,
            s.delivered,
            s.expected
        )?;
    }
    Ok(out)
}

pub fn hls_csv(runs: &[HlsRun]) -> Result<String, BoxError> {
    let mut out = format!("{HLS_HEADER}\n");
    for r in runs {
        writeln!(
            out,
            "{},{},{:.2},{:.1},{:.1}",
            field(&r.run),
            r.viewers,
            r.delivered_pct,
            r.delay_p50_ms,
            r.delay_p99_ms
        )?;
    }
    Ok(out)
}

pub fn latency_csv(runs: &[LatencyRun]) -> Result<String, BoxError> {
    let mut out = format!("{LATENCY_HEADER}\n");
    for r in runs {
        writeln!(
            out,
            "{},{},{:.2},{:.2},{:.2},{}",
            field(&r.run),
            r.segment_s,
            r.glass_p50_s,
            r.glass_p95_s,
            r.edge_p50_s,
            r.stalls
        )?;
    }
    Ok(out)
}

/// The rows of a CSV this module wrote, each split into the header's number of fields; a different header or a short
/// row is an error naming the line.
fn rows(text: &str, header: &str) -> Result<Vec<Vec<String>>, BoxError> {
    let mut lines = text.lines();
    if lines.next() != Some(header) {
        return Err(format!("not a results file of this kind (expected the header {header})").into());
    }
    let columns = header.split(',').count();
    lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let fields = split_line(l);
            if fields.len() == columns {
                Ok(fields)
            } else {
                Err(format!("line {}: {} fields, expected {columns}", i + 2, fields.len()).into())
            }
        })
        .collect()
}

fn num<T: std::str::FromStr>(field: &str, what: &str) -> Result<T, BoxError> {
    field
        .trim()
        .parse()
        .map_err(|_| format!("{what}: not a number: {field:?}").into())
}

pub fn parse_fanout_csv(text: &str) -> Result<Vec<FanoutStep>, BoxError> {
    rows(text, FANOUT_HEADER)?
        .into_iter()
        .map(|f| {
            Ok(FanoutStep {
                sockets: num(&f[3], "sockets")?,
                rate: num(&f[4], "rate")?,
                median_ms: num(&f[5], "median_ms")?,
                p99_ms: num(&f[6], "p99_ms")?,
                delivered: num(&f[7], "delivered")?,
                expected: num(&f[8], "expected")?,
                run: f[0].clone(),
                target: f[1].clone(),
                phase: f[2].clone(),
            })
        })
        .collect()
}

pub fn parse_hls_csv(text: &str) -> Result<Vec<HlsRun>, BoxError> {
    rows(text, HLS_HEADER)?
        .into_iter()
        .map(|f| {
            Ok(HlsRun {
                viewers: num(&f[1], "viewers")?,
                delivered_pct: num(&f[2], "delivered_pct")?,
                delay_p50_ms: num(&f[3], "delay_p50_ms")?,
                delay_p99_ms: num(&f[4], "delay_p99_ms")?,
                run: f[0].clone(),
            })
        })
        .collect()
}

pub fn parse_latency_csv(text: &str) -> Result<Vec<LatencyRun>, BoxError> {
    rows(text, LATENCY_HEADER)?
        .into_iter()
        .map(|f| {
            Ok(LatencyRun {
                segment_s: num(&f[1], "segment_s")?,
                glass_p50_s: num(&f[2], "glass_p50_s")?,
                glass_p95_s: num(&f[3], "glass_p95_s")?,
                edge_p50_s: num(&f[4], "edge_p50_s")?,
                stalls: num(&f[5], "stalls")?,
                run: f[0].clone(),
            })
        })
        .collect()
}

/// Writes `text` to `path`, creating its folder.
pub fn write_file(path: &Path, text: &str) -> Result<(), BoxError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()).into())
}

const SIZE: (u32, u32) = (900, 520);
/// One colour per target, in the order targets first appear; dark enough to read on white and on GitHub's dark page.
const COLOURS: [RGBColor; 6] = [
    RGBColor(0xd9, 0x5f, 0x02),
    RGBColor(0x1b, 0x9e, 0x77),
    RGBColor(0x75, 0x70, 0xb3),
    RGBColor(0xe7, 0x29, 0x8a),
    RGBColor(0x66, 0xa6, 0x1e),
    RGBColor(0xa6, 0x76, 0x1d),
];

/// Tick marks for a log axis from `min` to `max`: 1, 2 and 5 times each power of ten in between, or every multiple
/// when that gives fewer than three (plotters' own log axis marks powers of ten only, so a range inside one decade
/// would have no label at all).
fn log_ticks(min: f64, max: f64) -> Vec<f64> {
    let (low, high) = (
        min.max(1e-3).log10().floor() as i32,
        max.max(1e-3).log10().ceil() as i32,
    );
    let ticks = |multiples: &[f64]| -> Vec<f64> {
        (low..=high)
            .flat_map(|k| multiples.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|v| *v >= min && *v <= max)
            .collect()
    };
    let coarse = ticks(&[1.0, 2.0, 5.0]);
    if coarse.len() >= 3 {
        coarse
    } else {
        ticks(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    }
}

fn plot_error<E: std::fmt::Debug>(e: E) -> BoxError {
    format!("drawing the chart: {e:?}").into()
}

/// The series a latency chart draws: for each target, its rate-search steps at its largest searched room size
/// (every fixed-rate step when it has none), sorted by rate.
fn latency_series(steps: &[FanoutStep]) -> Vec<(String, usize, Vec<&FanoutStep>)> {
    let mut targets: Vec<&str> = Vec::new();
    for s in steps {
        if !targets.contains(&s.target.as_str()) {
            targets.push(&s.target);
        }
    }
    targets
        .into_iter()
        .filter_map(|t| {
            let mine: Vec<&FanoutStep> = steps
                .iter()
                .filter(|s| s.target == t && s.rate > 0.0 && s.median_ms.is_finite() && s.p99_ms.is_finite())
                .collect();
            let ladder: Vec<&FanoutStep> = mine.iter().copied().filter(|s| s.phase == "ladder").collect();
            let pool = if ladder.is_empty() { mine } else { ladder };
            let sockets = pool.iter().map(|s| s.sockets).max()?;
            let mut points: Vec<&FanoutStep> = pool.into_iter().filter(|s| s.sockets == sockets).collect();
            points.sort_by(|a, b| a.rate.total_cmp(&b.rate));
            Some((t.to_string(), sockets, points))
        })
        .collect()
}

/// Chat latency against send rate: per target a solid line (median) and a dashed one (p99), log-log.
pub fn fanout_chart(steps: &[FanoutStep]) -> Result<String, BoxError> {
    let series = latency_series(steps);
    if series.is_empty() {
        return Err("no fan-out steps to draw".into());
    }
    let all = series.iter().flat_map(|(_, _, p)| p.iter());
    let (mut rate_max, mut ms_min, mut ms_max) = (1.0f64, f64::MAX, 1.0f64);
    for s in all {
        rate_max = rate_max.max(s.rate);
        ms_min = ms_min.min(s.median_ms.max(0.1));
        ms_max = ms_max.max(s.p99_ms);
    }
    let sockets: Vec<String> = {
        let mut v: Vec<usize> = series.iter().map(|(_, n, _)| *n).collect();
        v.dedup();
        v.iter().map(|n| n.to_string()).collect()
    };
    let run = steps.first().map(|s| s.run.as_str()).unwrap_or_default();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Chat latency against send rate, {} sockets (run {run})",
                    sockets.join("/")
                ),
                ("sans-serif", 20),
            )
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (0.8f64..rate_max * 1.25)
                    .log_scale()
                    .with_key_points(log_ticks(0.8, rate_max * 1.25)),
                (ms_min * 0.8..ms_max * 1.25)
                    .log_scale()
                    .with_key_points(log_ticks(ms_min * 0.8, ms_max * 1.25)),
            )
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("messages per second sent (log)")
            .y_desc("send to receipt, ms (log)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()
            .map_err(plot_error)?;
        for (i, (target, _, points)) in series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let median: Vec<(f64, f64)> = points.iter().map(|s| (s.rate, s.median_ms.max(0.1))).collect();
            let p99: Vec<(f64, f64)> = points.iter().map(|s| (s.rate, s.p99_ms.max(0.1))).collect();
            chart
                .draw_series(LineSeries::new(median.clone(), colour.stroke_width(2)).point_size(3))
                .map_err(plot_error)?
                .label(format!("{target}: median"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2)));
            chart
                .draw_series(DashedLineSeries::new(p99.clone(), 6, 4, colour.stroke_width(2)))
                .map_err(plot_error)?
                .label(format!("{target}: p99 (dashed)"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 6, y)], colour.stroke_width(2)));
            chart
                .draw_series(p99.iter().map(|&p| TriangleMarker::new(p, 4, colour.filled())))
                .map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xcc, 0xcc, 0xcc))
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// HLS at the edge against viewers: delivered % (left axis) and written-to-listed delay p50 / p99 (right axis, log).
pub fn hls_chart(runs: &[HlsRun]) -> Result<String, BoxError> {
    // A run that measured no delay (no segment listed at all) has no point on the delay lines.
    let mut runs: Vec<&HlsRun> = runs
        .iter()
        .filter(|r| r.viewers > 0 && r.delay_p50_ms.is_finite() && r.delay_p99_ms.is_finite())
        .collect();
    if runs.is_empty() {
        return Err("no HLS run measured a delay".into());
    }
    runs.sort_by_key(|r| r.viewers);
    let viewers_max = runs.iter().map(|r| r.viewers).max().unwrap_or(1) as f64;
    let viewers_min = runs.iter().map(|r| r.viewers).min().unwrap_or(1).max(1) as f64;
    let pct_max = runs.iter().map(|r| r.delivered_pct).fold(100.0f64, f64::max) * 1.1;
    let delay_max = runs.iter().map(|r| r.delay_p99_ms).fold(1.0f64, f64::max) * 1.5;
    let delay_min = runs.iter().map(|r| r.delay_p50_ms.max(1.0)).fold(f64::MAX, f64::min) * 0.7;
    let run = runs[0].run.as_str();
    // Each measured audience size is a tick: a reader wants "at 100 viewers", not the axis's powers of ten.
    let viewer_ticks: Vec<f64> = runs.iter().map(|r| r.viewers as f64).collect();
    let (ok, p50c, p99c) = (COLOURS[1], COLOURS[0], COLOURS[2]);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("HLS at the edge against viewers (run {run})"),
                ("sans-serif", 20),
            )
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .right_y_label_area_size(70)
            .build_cartesian_2d(
                (viewers_min * 0.8..viewers_max * 1.25)
                    .log_scale()
                    .with_key_points(viewer_ticks.clone()),
                0f64..pct_max,
            )
            .map_err(plot_error)?
            .set_secondary_coord(
                (viewers_min * 0.8..viewers_max * 1.25)
                    .log_scale()
                    .with_key_points(viewer_ticks),
                (delay_min..delay_max)
                    .log_scale()
                    .with_key_points(log_ticks(delay_min, delay_max)),
            );
        chart
            .configure_mesh()
            .x_desc("viewers (log)")
            .y_desc("segments delivered, %")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE)
            .draw()
            .map_err(plot_error)?;
        chart
            .configure_secondary_axes()
            .y_desc("written on the origin to listed at the edge, ms (log)")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(plot_error)?;
        let delivered: Vec<(f64, f64)> = runs.iter().map(|r| (r.viewers as f64, r.delivered_pct)).collect();
        chart
            .draw_series(LineSeries::new(delivered, ok.stroke_width(3)).point_size(4))
            .map_err(plot_error)?
            .label("delivered % (left)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], ok.stroke_width(3)));
        let p50: Vec<(f64, f64)> = runs
            .iter()
            .map(|r| (r.viewers as f64, r.delay_p50_ms.max(1.0)))
            .collect();
        let p99: Vec<(f64, f64)> = runs
            .iter()
            .map(|r| (r.viewers as f64, r.delay_p99_ms.max(1.0)))
            .collect();
        chart
            .draw_secondary_series(LineSeries::new(p50, p50c.stroke_width(2)).point_size(3))
            .map_err(plot_error)?
            .label("delay p50 (right)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], p50c.stroke_width(2)));
        chart
            .draw_secondary_series(p99.iter().map(|&p| TriangleMarker::new(p, 4, p99c.filled())))
            .map_err(plot_error)?;
        chart
            .draw_secondary_series(DashedLineSeries::new(p99, 6, 4, p99c.stroke_width(2)))
            .map_err(plot_error)?
            .label("delay p99 (right, dashed)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 6, y)], p99c.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xcc, 0xcc, 0xcc))
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Owncast's lowest documented latency (its "lowest latency" setting, about 5 s): the line the latency chart compares
/// against.
const OWNCAST_LOWEST_S: f64 = 5.0;

/// Glass-to-glass latency per latency mode (segment length): the median and p95 from the picture, the part of it
/// from ingest to the edge, and Owncast's lowest documented figure as a reference line.
pub fn latency_chart(runs: &[LatencyRun]) -> Result<String, BoxError> {
    let mut runs: Vec<&LatencyRun> = runs
        .iter()
        .filter(|r| r.segment_s > 0 && r.glass_p50_s.is_finite() && r.glass_p95_s.is_finite())
        .collect();
    if runs.is_empty() {
        return Err("no glass-to-glass run to draw".into());
    }
    runs.sort_by_key(|r| r.segment_s);
    let x_max = runs.iter().map(|r| r.segment_s).max().unwrap_or(1) as f64 + 0.5;
    let y_max = runs.iter().map(|r| r.glass_p95_s).fold(OWNCAST_LOWEST_S, f64::max) * 1.2;
    let run = runs[0].run.as_str();
    let ticks: Vec<f64> = runs.iter().map(|r| r.segment_s as f64).collect();
    let (p50c, p95c, edgec, refc) = (COLOURS[0], COLOURS[2], COLOURS[1], RGBColor(0x88, 0x88, 0x88));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Glass-to-glass latency per segment length (run {run})"),
                ("sans-serif", 20),
            )
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d((0.5f64..x_max).log_scale().with_key_points(ticks), 0f64..y_max)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("segment length, s (the latency mode; log)")
            .y_desc("seconds")
            .x_label_formatter(&|v| format!("{v:.0} s"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()
            .map_err(plot_error)?;
        let line = |f: fn(&LatencyRun) -> f64| -> Vec<(f64, f64)> {
            runs.iter().map(|r| (r.segment_s as f64, f(r))).collect()
        };
        chart
            .draw_series(LineSeries::new(line(|r| r.glass_p50_s), p50c.stroke_width(3)).point_size(5))
            .map_err(plot_error)?
            .label("glass-to-glass p50")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], p50c.stroke_width(3)));
        let p95 = line(|r| r.glass_p95_s);
        chart
            .draw_series(DashedLineSeries::new(p95.clone(), 6, 4, p95c.stroke_width(2)))
            .map_err(plot_error)?
            .label("glass-to-glass p95 (dashed)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 6, y)], p95c.stroke_width(2)));
        chart
            .draw_series(p95.iter().map(|&p| TriangleMarker::new(p, 4, p95c.filled())))
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(line(|r| r.edge_p50_s), edgec.stroke_width(2)).point_size(3))
            .map_err(plot_error)?
            .label("of which ingest to edge, p50")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], edgec.stroke_width(2)));
        chart
            .draw_series(DashedLineSeries::new(
                [(0.5, OWNCAST_LOWEST_S), (x_max, OWNCAST_LOWEST_S)],
                3,
                3,
                refc.stroke_width(1),
            ))
            .map_err(plot_error)?
            .label("Owncast's lowest documented (about 5 s)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 6, y)], refc.stroke_width(1)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xcc, 0xcc, 0xcc))
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(target: &str, phase: &str, sockets: usize, rate: f64, median: f64, p99: f64) -> FanoutStep {
        FanoutStep {
            run: "2026-12-02 12:46 UTC".into(),
            target: target.into(),
            phase: phase.into(),
            sockets,
            rate,
            median_ms: median,
            p99_ms: p99,
            delivered: 100,
            expected: 100,
        }
    }

    fn sample_fanout() -> Vec<FanoutStep> {
        vec![
            step("floor", "fixed", 100, 10.0, 2.6, 6.2),
            step("floor", "ladder", 1000, 1.0, 10.0, 20.0),
            step("floor", "ladder", 1000, 128.0, 60.0, 180.0),
            step("floor", "ladder", 1000, 256.0, 200.0, 900.0),
            step("room, shards off", "ladder", 1000, 1.0, 30.0, 60.0),
            step("room, shards off", "ladder", 1000, 448.0, 120.0, 240.0),
            step("room, shards on", "ladder", 1000, 320.0, 130.0, 245.0),
        ]
    }

    #[test]
    fn fanout_results_survive_the_trip_through_csv() {
        let steps = sample_fanout();
        let csv = fanout_csv(&steps).expect("csv");
        assert_eq!(parse_fanout_csv(&csv).expect("parse"), steps);
    }

    #[test]
    fn hls_results_survive_the_trip_through_csv() {
        let runs = vec![HlsRun {
            run: "2026-12-02 13:45 UTC".into(),
            viewers: 100,
            delivered_pct: 100.3,
            delay_p50_ms: 241.0,
            delay_p99_ms: 421.0,
        }];
        assert_eq!(parse_hls_csv(&hls_csv(&runs).expect("csv")).expect("parse"), runs);
    }

    #[test]
    fn a_results_file_of_another_kind_or_with_a_short_row_is_refused() {
        assert!(parse_fanout_csv("viewers,delivered\n1,2\n").is_err());
        let err = parse_hls_csv(&format!("{HLS_HEADER}\nrun,10,100\n")).expect_err("short row");
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(parse_hls_csv(&format!("{HLS_HEADER}\nrun,ten,1,2,3\n")).is_err());
    }

    #[test]
    fn a_label_with_a_comma_or_a_quote_is_quoted_and_read_back_whole() {
        let steps = [step("room, shards \"on\"", "fixed", 1, 1.0, 1.0, 1.0)];
        let csv = fanout_csv(&steps).expect("csv");
        assert!(csv.contains("\"room, shards \"\"on\"\"\""), "{csv}");
        assert_eq!(parse_fanout_csv(&csv).expect("parse"), steps);
    }

    #[test]
    fn the_latency_chart_draws_the_rate_search_of_each_target_with_a_median_and_a_p99_line() {
        let steps = sample_fanout();
        let series = latency_series(&steps);
        let names: Vec<(&str, usize, usize)> = series.iter().map(|(t, n, p)| (t.as_str(), *n, p.len())).collect();
        // The floor's fixed step at 100 sockets is not on the 1,000-socket rate search's chart.
        assert_eq!(
            names,
            [
                ("floor", 1000, 3),
                ("room, shards off", 1000, 2),
                ("room, shards on", 1000, 1)
            ]
        );
        let svg = fanout_chart(&sample_fanout()).expect("chart");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for label in [
            "floor: median",
            "room, shards off: p99 (dashed)",
            "room, shards on: median",
            "run 2026-12-02",
        ] {
            assert!(svg.contains(label), "the chart names {label:?}");
        }
    }

    #[test]
    fn the_hls_chart_names_both_axes_and_all_three_lines() {
        let runs: Vec<HlsRun> = [
            (10, 100.3, 205.0, 330.0),
            (100, 100.3, 241.0, 421.0),
            (500, 11.6, 52168.0, 57033.0),
        ]
        .into_iter()
        .map(|(viewers, delivered_pct, delay_p50_ms, delay_p99_ms)| HlsRun {
            run: "2026-12-02 13:45 UTC".into(),
            viewers,
            delivered_pct,
            delay_p50_ms,
            delay_p99_ms,
        })
        .collect();
        let svg = hls_chart(&runs).expect("chart");
        for label in [
            "delivered % (left)",
            "delay p50 (right)",
            "delay p99 (right, dashed)",
            "viewers (log)",
        ] {
            assert!(svg.contains(label), "the chart names {label:?}");
        }
    }

    #[test]
    fn a_log_axis_inside_one_decade_still_gets_ticks() {
        assert_eq!(log_ticks(106.0, 480.0), [200.0, 300.0, 400.0]);
        assert_eq!(log_ticks(0.8, 80.0), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
    }

    #[test]
    fn latency_results_survive_the_trip_through_csv_and_draw_every_line() {
        let runs: Vec<LatencyRun> = [(2, 5.56, 5.59, 0.47, 1), (1, 3.79, 3.96, 0.40, 0)]
            .into_iter()
            .map(|(segment_s, glass_p50_s, glass_p95_s, edge_p50_s, stalls)| LatencyRun {
                run: "2026-12-06 12:00 UTC".into(),
                segment_s,
                glass_p50_s,
                glass_p95_s,
                edge_p50_s,
                stalls,
            })
            .collect();
        let csv = latency_csv(&runs).expect("csv");
        assert_eq!(parse_latency_csv(&csv).expect("parse"), runs);
        let svg = latency_chart(&runs).expect("chart");
        for label in [
            "glass-to-glass p50",
            "glass-to-glass p95 (dashed)",
            "of which ingest to edge, p50",
            "Owncast",
            "1 s",
            "2 s",
        ] {
            assert!(svg.contains(label), "the chart names {label:?}");
        }
        assert!(latency_chart(&[]).is_err());
    }

    #[test]
    fn nothing_to_draw_is_an_error_not_an_empty_picture() {
        assert!(fanout_chart(&[]).is_err());
        assert!(hls_chart(&[]).is_err());
    }
}
