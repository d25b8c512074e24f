//! The minute cron: ends streams whose heartbeats stopped, and forgets expired rate-limit windows. Each task runs
//! even when another fails, and failures are logged with context.

use worker::Env;

use crate::app::App;
use crate::{db, rtmp};

pub async fn run(env: Env) {
    let app = match App::new(env) {
        Ok(app) => app,
        Err(e) => {
            worker::console_error!("cron: not running: {e}");
            return;
        }
    };
    match rtmp::sweep_stale_streams(&app).await {
        Ok(n) if n > 0 => worker::console_log!("cron: ended {n} stale stream(s)"),
        Ok(_) => {}
        Err(e) => worker::console_error!("cron: stale-stream sweep failed: {e}"),
    }
    // The longest window is an hour; anything older than two is dead weight.
    if let Err(e) = db::run(
        &app.db,
        "expire rate-limit windows",
        "DELETE FROM rate_limits WHERE window_start < ?1",
        &[(app.now() - 7200).into()],
    )
    .await
    {
        worker::console_error!("cron: rate-limit cleanup failed: {e}");
    }
}
