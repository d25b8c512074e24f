//! The browser suite as one trial: `node --test e2e/browser/*.test.mjs` (Node 22 from node_modules) drives Debian's Chromium (playwright-core) against
//! this stack, told where it is by environment variables. Node's output is shown only when it fails, except the
//! measurements the suite prints as `sunnylive-metric: ...` lines (live latency, VOD length), which are shown
//! always; its screenshots land in e2e/artifacts/screenshots/ either way.
//!
//! One more browser test runs in the serial phase on a stack of its own: adaptive bitrate on a throttled line
//! (`e2e/browser/abr-throttled.mjs`), whose origin makes a 240p rendition besides the default ladder so that one
//! fits under 800 kbit/s, and which asserts no stall, so it runs with nothing beside it.

use std::sync::Arc;

use libtest_mimic::Trial;
use sunnylive_e2e::{repo_root, BoxError, TestApp, TestResult};
use tokio::process::Command;

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    vec![Trial::test(
        "browser::a_streamer_goes_live_is_watched_chatted_with_and_paid_in_chromium",
        move || app.run(run_browser_suite(&app)),
    )]
}

/// The renditions the throttled-ABR test's origin makes: the default ladder and 240p, the one that fits in 800 kbit/s
/// (360p is 700 kbit/s of video and the source's audio, so about 0.8 Mbit/s with the container: not quite).
const ABR_LADDER: &str = "480p,360p,240p";

pub fn serial_tests() -> Vec<Trial> {
    vec![Trial::test(
        "browser::on_a_slow_line_the_player_settles_on_a_rendition_that_fits_and_climbs_back_when_it_is_fast",
        move || {
            // The origin reads its ladder from the environment when the stack starts; the serial phase runs one test
            // at a time, so nothing else starts a stack meanwhile.
            std::env::set_var("SUNNYLIVE_RENDITIONS", ABR_LADDER);
            let stack = TestApp::start();
            std::env::remove_var("SUNNYLIVE_RENDITIONS");
            let stack = stack.map_err(|e| libtest_mimic::Failed::from(format!("starting a stack of its own: {e}")))?;
            let result = stack.run(run_node_tests(&stack, vec!["e2e/browser/abr-throttled.mjs".into()]));
            stack.stop();
            result
        },
    )]
}

async fn run_browser_suite(app: &TestApp) -> TestResult {
    let root = repo_root();
    // The test files by name: Node 22's `--test` takes files and globs, no longer a directory.
    let mut files: Vec<String> = std::fs::read_dir(root.join("e2e/browser"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.mjs"))
        // SUNNYLIVE_BROWSER_ONLY=account runs only the files whose name contains it (a quick loop on one page).
        .filter(|name| std::env::var("SUNNYLIVE_BROWSER_ONLY").map_or(true, |only| name.contains(&only)))
        .map(|name| format!("e2e/browser/{name}"))
        .collect();
    files.sort();
    run_node_tests(app, files).await
}

/// `node --test` on `files` against `app`'s stack, told where it is by environment variables.
async fn run_node_tests(app: &TestApp, files: Vec<String>) -> TestResult {
    let root = repo_root();
    let output = Command::new(sunnylive_e2e::node())
        .args(["--test", "--test-reporter=spec"])
        .args(&files)
        .current_dir(&root)
        // The site over https under a real-looking host name, as production serves it: mixed content, Secure
        // cookies and the Origin check behave as they would for a real visitor.
        .env("SUNNYLIVE_BASE_URL", &app.site)
        .env("SUNNYLIVE_SITE_HOST", sunnylive_e2e::SITE_HOST)
        .env("SUNNYLIVE_SITE_SPKI", &app.site_spki)
        .env("SUNNYLIVE_RTMP_URL", &app.rtmp_url)
        .env("SUNNYLIVE_RTMPS_URL", &app.rtmps_url)
        .env("SUNNYLIVE_MIDTRANS_URL", &app.midtrans)
        // The stack's local D1, for scripts/admin (the Operator page's test makes its operator the documented way).
        .env("SUNNYLIVE_STATE_DIR", app.run_dir.join("state"))
        // An operator the suite made before its parallel tests (`operator::prepare`), when there is one left.
        .env(
            "SUNNYLIVE_E2E_OPERATOR",
            crate::operator::take_prepared()
                .map(|(user, password)| format!("{user}:{password}"))
                .unwrap_or_default(),
        )
        .output()
        .await
        .map_err(|e| -> BoxError {
            format!("could not run node_modules/.bin/node (scripts/setup installs it): {e}").into()
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    for (_, metric) in stdout.lines().filter_map(|l| l.split_once("sunnylive-metric:")) {
        println!("browser: {}", metric.trim());
    }
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "the browser suite failed ({}); screenshots in {}\n{}{}",
        output.status,
        root.join("e2e/artifacts/screenshots").display(),
        stdout,
        String::from_utf8_lossy(&output.stderr)
    )
    .into())
}
