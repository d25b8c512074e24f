//! The browser suite as one trial: `node --test e2e/browser/*.test.mjs` (Node 22 from node_modules) drives Debian's Chromium (playwright-core) against
//! this stack, told where it is by environment variables. Node's output is shown only when it fails, except the
//! measurements the suite prints as `sunnylive-metric: ...` lines (live latency, VOD length), which are shown
//! always; its screenshots land in e2e/artifacts/screenshots/ either way.

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
