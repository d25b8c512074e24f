//! Draws the benchmark charts (`scripts/bench` runs it after `fanout` or `hls`; `scripts/bench charts` alone): reads
//! the results the last `bench_fanout`, `bench_hls` and `bench_latency` runs wrote (`.run/bench/fanout.csv`,
//! `hls.csv`, `latency.csv`, or `BENCH_RESULTS_DIR`) and writes `docs/img/bench-fanout.svg`, `bench-hls.svg` and
//! `bench-latency.svg` (or into `BENCH_CHARTS_OUT`). A missing results file is skipped with a note; a malformed one is an error.

use sunnylive_e2e::charts::{
    self, fanout_chart, hls_chart, latency_chart, parse_fanout_csv, parse_hls_csv, parse_latency_csv,
};
use sunnylive_e2e::{repo_root, BoxError};

fn main() -> Result<(), BoxError> {
    let results = charts::results_dir();
    let out = std::env::var_os("BENCH_CHARTS_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("docs/img"));
    let mut drawn = 0;
    let fanout = results.join("fanout.csv");
    if let Ok(text) = std::fs::read_to_string(&fanout) {
        let steps = parse_fanout_csv(&text).map_err(|e| format!("{}: {e}", fanout.display()))?;
        let path = out.join("bench-fanout.svg");
        charts::write_file(&path, &fanout_chart(&steps)?)?;
        println!("bench_charts: {} steps -> {}", steps.len(), path.display());
        drawn += 1;
    } else {
        println!(
            "bench_charts: no {} (run scripts/bench fanout first); fan-out chart not drawn",
            fanout.display()
        );
    }
    let hls = results.join("hls.csv");
    if let Ok(text) = std::fs::read_to_string(&hls) {
        let runs = parse_hls_csv(&text).map_err(|e| format!("{}: {e}", hls.display()))?;
        let path = out.join("bench-hls.svg");
        charts::write_file(&path, &hls_chart(&runs)?)?;
        println!("bench_charts: {} runs -> {}", runs.len(), path.display());
        drawn += 1;
    } else {
        println!(
            "bench_charts: no {} (run scripts/bench hls first); HLS chart not drawn",
            hls.display()
        );
    }
    let latency = results.join("latency.csv");
    if let Ok(text) = std::fs::read_to_string(&latency) {
        let runs = parse_latency_csv(&text).map_err(|e| format!("{}: {e}", latency.display()))?;
        let path = out.join("bench-latency.svg");
        charts::write_file(&path, &latency_chart(&runs)?)?;
        println!("bench_charts: {} runs -> {}", runs.len(), path.display());
        drawn += 1;
    } else {
        println!(
            "bench_charts: no {} (run scripts/bench latency first); latency chart not drawn",
            latency.display()
        );
    }
    if drawn == 0 {
        return Err("no benchmark results to draw".into());
    }
    Ok(())
}
