//! `make screenshots`: the docs' pictures from the real stack. Starts the same stack as the end-to-end suite
//! (`TestApp`: wrangler dev with both Workers, the nginx origin, the Midtrans stand-in, the site over https under its
//! test host name) and runs `e2e/browser/screenshots.mjs` in Node against it: a streamer goes live with ffmpeg's test
//! pattern, a viewer and the streamer chat, a guest donates, and headless Chromium saves the watch page, Studio and
//! the OBS overlay into `docs/img/` (or the folder `SUNNYLIVE_SCREENSHOT_OUT` names). Expects `make build` and
//! `cargo build -p midtrans-sandbox -p sunnylive-origin-uploader` (the Makefile target does both).

use std::process::Command;

use sunnylive_e2e::{repo_root, BoxError, TestApp, SITE_HOST};

fn main() -> Result<(), BoxError> {
    let root = repo_root();
    let out = std::env::var_os("SUNNYLIVE_SCREENSHOT_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("docs/img"));
    let app = TestApp::start()?;
    eprintln!("screenshots: stack up at {}", app.site);
    let status = Command::new(sunnylive_e2e::node())
        .arg("e2e/browser/screenshots.mjs")
        .current_dir(&root)
        .env("SUNNYLIVE_BASE_URL", &app.site)
        .env("SUNNYLIVE_SITE_HOST", SITE_HOST)
        .env("SUNNYLIVE_SITE_SPKI", &app.site_spki)
        .env("SUNNYLIVE_RTMP_URL", &app.rtmp_url)
        .env("SUNNYLIVE_RTMPS_URL", &app.rtmps_url)
        .env("SUNNYLIVE_MIDTRANS_URL", &app.midtrans)
        .env("SUNNYLIVE_SCREENSHOT_OUT", &out)
        .status()
        .map_err(|e| format!("could not run node_modules/.bin/node (scripts/setup installs it): {e}"));
    let logs = app.run_dir.clone();
    app.stop();
    let status = status?;
    if !status.success() {
        return Err(format!(
            "the screenshots failed ({status}); the stack's logs are in {}",
            logs.display()
        )
        .into());
    }
    eprintln!("screenshots: done; look at them in {} before committing", out.display());
    Ok(())
}
