//! Draws the benchmark charts (`scripts/bench` runs it after `fanout`, `hls` or `latency`; `scripts/bench charts`
//! alone): reads the results the last `bench_fanout`, `bench_hls` and `bench_latency` runs wrote
//! (`.run/bench/fanout.csv`, `hls.csv`, `latency.csv`, or `BENCH_RESULTS_DIR`) and writes `docs/img/bench-fanout.svg`,
//! `bench-hls.svg` and `bench-latency.svg` (or into `BENCH_CHARTS_OUT`). A missing results file is skipped with a
//! note; a malformed one is an error.

use sunnylive_e2e::charts::{
    self, fanout_chart, hls_chart, latency_chart, parse_fanout_csv, parse_hls_csv, parse_latency_csv,
};
use sunnylive_e2e::{repo_root, BoxError};

type Draw = fn(&str) -> Result<(usize, String), BoxError>;

fn main() -> Result<(), BoxError> {
    let results = charts::results_dir();
    let out = std::env::var_os("BENCH_CHARTS_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("docs/img"));
    // (results file, bench that writes it, chart file, what it draws, how: the number of rows and the SVG)
    let charts: [(&str, &str, &str, &str, Draw); 3] = [
        ("fanout.csv", "fanout", "bench-fanout.svg", "fan-out", |text| {
            let steps = parse_fanout_csv(text)?;
            Ok((steps.len(), fanout_chart(&steps)?))
        }),
        ("hls.csv", "hls", "bench-hls.svg", "HLS", |text| {
            let runs = parse_hls_csv(text)?;
            Ok((runs.len(), hls_chart(&runs)?))
        }),
        ("latency.csv", "latency", "bench-latency.svg", "latency", |text| {
            let runs = parse_latency_csv(text)?;
            Ok((runs.len(), latency_chart(&runs)?))
        }),
    ];
    let mut drawn = 0;
    for (csv, bench, svg, what, draw) in charts {
        let csv = results.join(csv);
        let Ok(text) = std::fs::read_to_string(&csv) else {
            println!(
                "bench_charts: no {} (run scripts/bench {bench} first); {what} chart not drawn",
                csv.display()
            );
            continue;
        };
        let (rows, chart) = draw(&text).map_err(|e| format!("{}: {e}", csv.display()))?;
        let path = out.join(svg);
        charts::write_file(&path, &chart)?;
        println!("bench_charts: {rows} rows -> {}", path.display());
        drawn += 1;
    }
    if drawn == 0 {
        return Err("no benchmark results to draw".into());
    }
    Ok(())
}
