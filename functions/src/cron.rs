//! The minute cron: ends streams whose heartbeats stopped (and their broadcasts), removes deleted and expired
//! broadcasts' video (but what clips hold) and deleted streams' clips, asks Midtrans about donations pending too long, redelivers chat alerts for paid donations,
//! prunes the refused part of the Midtrans audit log, and forgets expired rate-limit windows and long-unused known
//! login clients. Each task runs
//! even when another fails, and failures are logged with context.

use sunnylive_core::replica::SessionStart;
use worker::Env;

use crate::app::App;
use crate::{auth, broadcasts, clips, db, donations, rtmp};

pub async fn run(env: Env) {
    // The cron decides on current state (stale streams, pending donations): it reads the primary.
    let app = match App::new(env, &SessionStart::Primary, None) {
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
    match broadcasts::sweep(&app).await {
        Ok(n) if n > 0 => worker::console_log!("cron: purged {n} deleted or expired broadcast(s)"),
        Ok(_) => {}
        Err(e) => worker::console_error!("cron: broadcast sweep failed: {e}"),
    }
    if let Err(e) = clips::sweep(&app).await {
        worker::console_error!("cron: clip sweep failed: {e}");
    }
    match donations::reconcile_pending(&app).await {
        Ok(n) if n > 0 => worker::console_log!("cron: settled {n} pending donation(s) from Midtrans's status API"),
        Ok(_) => {}
        Err(e) => worker::console_error!("cron: donation status sweep failed: {e}"),
    }
    match donations::deliver_pending_alerts(&app).await {
        Ok(n) if n > 0 => worker::console_log!("cron: delivered {n} owed donation alert(s)"),
        Ok(_) => {}
        Err(e) => worker::console_error!("cron: donation alert redelivery failed: {e}"),
    }
    match donations::prune_audit_log(&app).await {
        Ok(n) if n > 0 => worker::console_log!("cron: pruned {n} refused notification(s) from the audit log"),
        Ok(_) => {}
        Err(e) => worker::console_error!("cron: audit log pruning failed: {e}"),
    }
    if let Err(e) = auth::forget_old_known_clients(&app).await {
        worker::console_error!("cron: known login clients cleanup failed: {e}");
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
