//! A person's own account, under `/api/me`: change the password, see and end sign-ins, and recovery codes, plus
//! `POST /api/auth/recover` (a recovery code instead of the password). Every secret presented here is checked
//! under the login limits (`auth::Attempt`): a wrong current password or recovery code counts toward the lockout
//! like a failed login. Ending a sign-in is exactly what logout does to one (`auth::revoke_family`): its refresh
//! tokens stop, its access tokens are refused (`auth::require_user`), its chat sockets close.

use sunnylive_core::account::{
    quarantine_key, Password, Username, DELETED_USER_ID, DELETED_USER_NAME, USERNAME_QUARANTINE_DAYS,
};
use sunnylive_core::chat::{ROOM_FORGET_USER, ROOM_USER_MESSAGES};
use sunnylive_core::error::{ApiError, FieldErrors};
use sunnylive_core::rate_limit;
use sunnylive_core::sign_in::{RecoveryCode, RECOVERY_CODES};
use sunnylive_core::token::REFRESH_TTL_SECONDS;
use worker::{Method, Request, Response};

use crate::app::{rfc3339, App};
use crate::auth::{self, Attempt, AuthUser, Text, UserRow};
use crate::crypto::random;
use crate::db::{self, Arg};
use crate::http::{self, OrInternal, JSON_LIMIT};
use crate::room_client::ask_room;
use sunnylive_edge::json_text;

fn wrong_password() -> ApiError {
    ApiError::Forbidden {
        code: "wrong_password",
        message: "The current password is wrong.".into(),
    }
}

/// Checks the caller's own password under the login limits (their account row, as the password check read it):
/// 403 `wrong_password` when it is wrong, 429 past the limits. Usernames never change, so the access token's is
/// the account's.
async fn confirm_password(app: &App, req: &Request, caller: &AuthUser, password: &str) -> Result<UserRow, ApiError> {
    match auth::check_password(app, req, &caller.username, password).await {
        Ok(me) if me.id == caller.id.as_str() => Ok(me),
        Ok(_) => Err(ApiError::unauthenticated()),
        Err(ApiError::Unauthenticated { .. }) => Err(wrong_password()),
        Err(e) => Err(e),
    }
}

/// A required string field: `None` (and the field named in `fields`) when it is missing.
fn field<'a>(body: &'a http::JsonBody, name: &str, fields: &mut FieldErrors) -> Result<Option<&'a str>, ApiError> {
    let value = body.opt_str(name)?;
    if value.is_none() {
        fields.insert(name.into(), "is required".into());
    }
    Ok(value)
}

/// A required new password that passes the registration rules (the reason in `fields` otherwise).
fn new_password(body: &http::JsonBody, fields: &mut FieldErrors) -> Result<Option<Password>, ApiError> {
    Ok(field(body, "new_password", fields)?.and_then(|p| {
        Password::parse(p)
            .map_err(|why| fields.insert("new_password".into(), why))
            .ok()
    }))
}

/// What the routes that take the caller's password share: who is calling, their account, and (`with_new`) the new
/// password, every field checked and all problems reported at once (422) before the current password is checked
/// under the login limits. One function for both routes: each async step written once costs the Worker's size less.
async fn confirmed(
    app: &App,
    req: &mut Request,
    password_field: &str,
    with_new: bool,
) -> Result<(AuthUser, UserRow, Option<Password>), ApiError> {
    let caller = auth::require_user(app, req).await?;
    let body = http::read_json(req, JSON_LIMIT).await?;
    let mut fields = FieldErrors::new();
    let current = field(&body, password_field, &mut fields)?;
    let new = if with_new {
        new_password(&body, &mut fields)?
    } else {
        None
    };
    let (Some(current), true) = (current, fields.is_empty()) else {
        return Err(ApiError::Invalid(fields));
    };
    let me = confirm_password(app, req, &caller, current).await?;
    Ok((caller, me, new))
}

async fn set_password(app: &App, user_id: &str, password: &Password) -> Result<(), ApiError> {
    let stored = auth::hash_new_password(password).await?;
    db::run(
        &app.db,
        "set a new password",
        "UPDATE users SET password_hash = ?1 WHERE id = ?2",
        &[(&stored).into(), user_id.into()],
    )
    .await?;
    Ok(())
}

/// Revokes every live login of `user_id` but `keep`; returns how many.
pub(crate) async fn end_logins_except(app: &App, user_id: &str, keep: Option<&str>) -> Result<usize, ApiError> {
    let logins: Vec<Text> = db::all(
        &app.db,
        "live logins of a user",
        "SELECT id AS value FROM login_families WHERE user_id = ?1 AND revoked_at IS NULL",
        &[user_id.into()],
    )
    .await?;
    let mut ended = 0;
    for login in logins.iter().filter(|l| Some(l.value.as_str()) != keep) {
        auth::revoke_family(app, &login.value).await?;
        ended += 1;
    }
    Ok(ended)
}

/// `{"ended": n}`. JSON written by hand here and below: a `Serialize` type per answer costs the Worker's size budget.
fn ended(n: usize) -> Result<Response, ApiError> {
    json_text(200, format!("{{\"ended\":{n}}}"))
}

/// `POST /api/me/password`: `{current_password, new_password}`. Every other sign-in ends; this one stays.
pub async fn change_password(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let (caller, me, new) = confirmed(app, &mut req, "current_password", true).await?;
    let new = new.ok_or_else(|| ApiError::internal("BUG: confirmed without the new password"))?;
    set_password(app, &me.id, &new).await?;
    let n = end_logins_except(app, &me.id, caller.login_id.as_deref()).await?;
    ended(n)
}

/// `GET /api/me/logins`: the caller's live sign-ins, most recently used first. D1 writes the answer's JSON (one
/// string column), so the Worker carries no row or answer type for it.
pub async fn list_logins(app: &App, req: Request) -> Result<Response, ApiError> {
    let caller = auth::require_user(app, &req).await?;
    let now = app.now();
    // A login whose refresh token has expired is over even unrevoked: its last rotation is older than a token lives.
    let answer: Option<Text> = db::one(
        &app.db,
        "list my logins",
        "SELECT json_object('logins', json_group_array(json_object(
             'id', id, 'created_at', created_at,
             'last_used_at', strftime('%Y-%m-%dT%H:%M:%SZ', last_used_at, 'unixepoch'),
             'network', network, 'browser', COALESCE(browser, 'Unknown'),
             'current', json(CASE WHEN id = ?4 THEN 'true' ELSE 'false' END)))) AS value
         FROM (SELECT id, created_at, last_used_at, network, browser FROM login_families
               WHERE user_id = ?1 AND revoked_at IS NULL
                 AND (last_used_at > ?2 OR (last_used_at IS NULL AND created_at > ?3))
               ORDER BY COALESCE(last_used_at, 0) DESC, created_at DESC LIMIT 200)",
        &[
            caller.id.as_str().into(),
            (now - REFRESH_TTL_SECONDS).into(),
            rfc3339(now - REFRESH_TTL_SECONDS).as_str().into(),
            caller.login_id.as_deref().into(),
        ],
    )
    .await?;
    let answer = answer.ok_or_else(|| ApiError::internal("list my logins: no row"))?;
    json_text(200, answer.value)
}

/// `DELETE /api/me/logins/{login_id}`: ends one of the caller's sign-ins (404 for anyone else's). Ending the
/// current one signs this client out, like logout.
pub async fn end_login(app: &App, req: Request, login_id: &str) -> Result<Response, ApiError> {
    let caller = auth::require_user(app, &req).await?;
    // Marks it revoked only if it is the caller's (a revoked one keeps its time): no row, no such sign-in of theirs.
    let own = db::run(
        &app.db,
        "end my login",
        "UPDATE login_families SET revoked_at = COALESCE(revoked_at, ?3) WHERE id = ?1 AND user_id = ?2",
        &[
            login_id.into(),
            caller.id.as_str().into(),
            app.now_rfc3339().as_str().into(),
        ],
    )
    .await?;
    if own == 0 {
        return Err(ApiError::NotFound {
            code: "login_not_found",
            message: "You have no sign-in with that id.".into(),
        });
    }
    auth::revoke_family(app, login_id).await?;
    let response = http::no_content()?;
    if caller.login_id.as_deref() == Some(login_id) {
        auth::clear_cookies(&req, response.headers())?;
    }
    Ok(response)
}

/// `POST /api/me/logins/end-others`: ends every sign-in of the caller but this one.
pub async fn end_other_logins(app: &App, req: Request) -> Result<Response, ApiError> {
    let caller = auth::require_user(app, &req).await?;
    let n = end_logins_except(app, caller.id.as_str(), caller.login_id.as_deref()).await?;
    ended(n)
}

/// `POST /api/me/recovery-codes`: `{password}`. A new set of codes, shown this once; the old set stops working.
pub async fn create_recovery_codes(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let (_, me, _) = confirmed(app, &mut req, "password", false).await?;
    let now = app.now();
    let codes: Vec<RecoveryCode> = (0..RECOVERY_CODES).map(|_| RecoveryCode::generate(random())).collect();
    let mut statements = vec![db::stmt(
        &app.db,
        "DELETE FROM recovery_codes WHERE user_id = ?1",
        &[me.id.as_str().into()],
    )?];
    for code in &codes {
        statements.push(db::stmt(
            &app.db,
            "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?1, ?2, ?3)",
            &[me.id.as_str().into(), code.hash().as_str().into(), now.into()],
        )?);
    }
    // One batch is one transaction: the old set is never gone without the new one in place.
    app.db.batch(statements).await.or_internal("replace recovery codes")?;
    // Codes and the timestamp are plain ASCII with nothing to escape.
    let listed: Vec<String> = codes.iter().map(|c| format!("\"{}\"", c.display())).collect();
    json_text(
        201,
        format!(
            "{{\"codes\":[{}],\"created_at\":\"{}\"}}",
            listed.join(","),
            rfc3339(now)
        ),
    )
}

/// `POST /api/auth/recover`: `{username, code, new_password}`. The code is used up, the password replaced, every
/// existing sign-in ended (a lost password may be a stolen one), and the caller signed in like a login.
pub async fn recover(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let body = http::read_json(&mut req, JSON_LIMIT).await?;
    let mut fields = FieldErrors::new();
    let username = field(&body, "username", &mut fields)?;
    let code = field(&body, "code", &mut fields)?.and_then(|c| {
        RecoveryCode::parse(c)
            .map_err(|why| fields.insert("code".into(), why))
            .ok()
    });
    let new = new_password(&body, &mut fields)?;
    let (Some(username), Some(code), Some(new)) = (username, code, new) else {
        return Err(ApiError::Invalid(fields));
    };
    let attempt = Attempt::begin(app, &req, username).await?;
    let user: Option<UserRow> = match attempt.username().map(Username::as_str) {
        Some(name) => {
            db::one(
                &app.db,
                "load user for recovery",
                "SELECT id, username, email, created_at, suspended_at FROM users WHERE username = ?1",
                &[name.into()],
            )
            .await?
        }
        None => None,
    };
    let invalid = || ApiError::Unauthenticated {
        code: "invalid_credentials",
        message: "Wrong username or recovery code.".into(),
    };
    let user = user.ok_or_else(invalid)?;
    auth::refuse_suspended(&user)?;
    // Single use, decided by the database: of two requests with one code, exactly one claims it.
    let claimed = db::run(
        &app.db,
        "claim a recovery code",
        "UPDATE recovery_codes SET used_at = ?1 WHERE user_id = ?2 AND code_hash = ?3 AND used_at IS NULL",
        &[app.now().into(), user.id.as_str().into(), code.hash().as_str().into()],
    )
    .await?;
    if claimed != 1 {
        return Err(invalid());
    }
    attempt.succeeded(app).await?;
    set_password(app, &user.id, &new).await?;
    end_logins_except(app, &user.id, None).await?;
    auth::start_session(app, &req, &user, 200).await
}

/// Everything `GET /api/me/export` reads from D1, as one JSON object written by D1 (one text column: no row or
/// answer type in the Worker). ?1 the user, ?2 the site's origin, ?3 now, ?4 where thumbnails are served from.
/// Secrets are left out by naming every column: no password or recovery-code hash, no refresh token, no stream key
/// (derived, never stored) and no output key (sealed) or its hint.
const EXPORT_SQL: &str = "SELECT json_object(
    'exported_at', ?3,
    'account', (SELECT json_object('id', id, 'username', username, 'email', email, 'created_at', created_at,
                                   'role', role, 'suspended_at', suspended_at) FROM users WHERE id = ?1),
    'sign_ins', (SELECT json_group_array(json_object('id', id, 'created_at', created_at,
                     'last_used_at', strftime('%Y-%m-%dT%H:%M:%SZ', last_used_at, 'unixepoch'),
                     'network', network, 'browser', browser, 'ended_at', revoked_at))
                 FROM login_families WHERE user_id = ?1),
    'recovery_codes', (SELECT json_object('unused', COUNT(*) - COUNT(used_at), 'used', COUNT(used_at),
                           'created_at', strftime('%Y-%m-%dT%H:%M:%SZ', MAX(created_at), 'unixepoch'))
                       FROM recovery_codes WHERE user_id = ?1),
    'streams', (SELECT json_group_array(json_object('id', id, 'title', title, 'description', description,
                    'created_at', created_at, 'deleted_at', deleted_at, 'url', ?2 || '/s/' || id))
                FROM streams WHERE owner_id = ?1),
    'broadcasts', (SELECT json_group_array(json_object('id', b.id, 'stream_id', b.stream_id,
                       'started_at', b.started_at, 'ended_at', b.ended_at,
                       'duration_seconds', b.duration_ms / 1000.0,
                       'playlist_url', ?2 || '/hls/' || b.stream_id || '/' || b.id || '/master.m3u8',
                       'thumbnail_url', CASE WHEN b.thumbnail_at IS NULL THEN NULL
                           ELSE ?4 || '/hls/' || b.stream_id || '/' || b.id || '/thumb.jpg?v=' || b.thumbnail_at END))
                   FROM broadcasts b JOIN streams s ON s.id = b.stream_id
                   WHERE s.owner_id = ?1 AND b.deleted_at IS NULL),
    'clips', (SELECT json_group_array(json_object('id', id, 'stream_id', stream_id, 'broadcast_id', broadcast_id,
                  'title', title, 'duration_seconds', duration_ms / 1000.0, 'created_at', created_at,
                  'playlist_url', ?2 || '/hls/' || stream_id || '/clips/' || id || '/master.m3u8',
                  'page_url', ?2 || '/clip/' || id))
              FROM clips WHERE creator_id = ?1),
    'outputs', (SELECT json_group_array(json_object('id', o.id, 'stream_id', o.stream_id, 'name', o.name,
                    'url', o.url, 'enabled', json(CASE WHEN o.enabled THEN 'true' ELSE 'false' END),
                    'created_at', o.created_at))
                FROM stream_outputs o JOIN streams s ON s.id = o.stream_id WHERE s.owner_id = ?1),
    'donations_made', (SELECT json_group_array(json_object('order_id', order_id, 'stream_id', stream_id,
                           'donor_name', donor_name, 'message', message, 'amount', amount, 'currency', currency,
                           'status', status, 'created_at', created_at, 'paid_at', paid_at))
                       FROM donations WHERE donor_user_id = ?1),
    'donations_received', (SELECT json_group_array(json_object('order_id', d.order_id, 'stream_id', d.stream_id,
                               'donor_name', d.donor_name, 'message', d.message, 'amount', d.amount,
                               'currency', d.currency, 'status', d.status, 'created_at', d.created_at,
                               'paid_at', d.paid_at))
                           FROM donations d JOIN streams s ON s.id = d.stream_id WHERE s.owner_id = ?1),
    'reports_made', (SELECT json_group_array(json_object('id', id, 'target_type', target_type,
                         'target_id', target_id, 'reason', reason, 'created_at', created_at,
                         'closed_at', closed_at))
                     FROM reports WHERE reporter_id = ?1)
) AS value";

/// The rooms whose chat may hold something of `user_id`: those they opened a signed-in socket in, and those of
/// streams they donated to (the alerts name them).
async fn rooms_of(app: &App, user_id: &str) -> Result<Vec<Text>, ApiError> {
    db::all(
        &app.db,
        "chat rooms of a user",
        "SELECT stream_id AS value FROM user_chat_rooms WHERE user_id = ?1
         UNION SELECT stream_id FROM donations WHERE donor_user_id = ?1 AND alert_state <> 'none'",
        &[user_id.into()],
    )
    .await
}

/// `GET /api/me/export`: everything held about the caller, as one JSON document: the D1 part (`EXPORT_SQL`) and
/// the chat messages they wrote, asked of each room (`chat_messages`: per stream, the messages as chat shows them).
/// Rate-limited per user: each export asks every room the user spoke in.
pub async fn export(app: &App, req: Request) -> Result<Response, ApiError> {
    let caller = auth::require_user(app, &req).await?;
    let user = caller.id.as_str();
    auth::count_attempt(app, &format!("export:{user}"), rate_limit::EXPORT_PER_USER).await?;
    let origin = http::own_origin(&req, app.config.public_base_url.as_deref());
    let media = app.config.media_base_url.as_deref().unwrap_or(&origin);
    let data: Option<Text> = db::one(
        &app.db,
        "export my data",
        EXPORT_SQL,
        &[
            user.into(),
            origin.as_str().into(),
            app.now_rfc3339().as_str().into(),
            media.into(),
        ],
    )
    .await?;
    let data = data.ok_or_else(|| ApiError::internal("export: no row"))?.value;
    let mut chat = Vec::new();
    for Text { value: room } in rooms_of(app, user).await? {
        let path = format!("{ROOM_USER_MESSAGES}?user_id={user}");
        let (_, body) = ask_room(app, &room, Method::Get, &path, None).await?;
        // The room's `{"messages":[...]}`, which it wrote itself, with the stream named first.
        if let Some(rest) = body.strip_prefix('{').filter(|r| !r.starts_with("\"messages\":[]")) {
            chat.push(format!("{{\"stream_id\":\"{room}\",{rest}"));
        }
    }
    let data = data.strip_suffix('}').unwrap_or(&data);
    let response = json_text(200, format!("{data},\"chat_messages\":[{}]}}", chat.join(",")))?;
    response
        .headers()
        .set("content-disposition", "attachment; filename=\"sunnylive-export.json\"")
        .or_internal("headers")?;
    Ok(response)
}

/// `DELETE /api/me`: `{password}`. The account goes, in an order that can be retried from the start whatever step
/// fails: the other sign-ins end (their sockets close); the streams are deleted (keys refused at once, a live
/// publish cut at its next heartbeat); every room the person spoke or donated in rewrites their messages as the
/// deleted user (a room that cannot be reached stops here: 502, try again); then one D1 transaction removes or
/// anonymises every row naming them and quarantines the username; last, broadcasts' R2 objects are purged (what
/// this request may; the cron finishes the rest). Donations received stay as financial records, on an emptied
/// stream owned by the deleted user; donations made stay in their streamers' totals, without name or message.
pub async fn delete_account(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let (caller, me, _) = confirmed(app, &mut req, "password", false).await?;
    let user = me.id.as_str();
    end_logins_except(app, user, caller.login_id.as_deref()).await?;
    let live: Vec<Text> = db::all(
        &app.db,
        "live streams of a deleted account",
        "SELECT id AS value FROM streams WHERE owner_id = ?1 AND status = 'live' AND deleted_at IS NULL",
        &[user.into()],
    )
    .await?;
    let mut tags = Vec::new();
    let stamp = app.now_rfc3339();
    let streams: Vec<Text> = db::all(
        &app.db,
        "delete the streams of a deleted account",
        "UPDATE streams SET deleted_at = COALESCE(deleted_at, ?2), status = 'offline', live_since = NULL,
             publisher = NULL WHERE owner_id = ?1 RETURNING id AS value",
        &[user.into(), stamp.as_str().into()],
    )
    .await?;
    for Text { value: id } in &live {
        crate::room_client::announce_status(app, id, false).await;
    }
    let orders: Vec<Text> = db::all(
        &app.db,
        "donations of a deleted account",
        "SELECT json_quote(order_id) AS value FROM donations WHERE donor_user_id = ?1",
        &[user.into()],
    )
    .await?;
    // `ForgetUserPost`, written by hand (a Serialize impl costs the Worker's size): D1 quotes the order ids.
    let orders: Vec<&str> = orders.iter().map(|o| o.value.as_str()).collect();
    let forget = format!("{{\"user_id\":\"{user}\",\"orders\":[{}]}}", orders.join(","));
    for Text { value: room } in rooms_of(app, user).await? {
        ask_room(app, &room, Method::Post, ROOM_FORGET_USER, Some(forget.clone())).await?;
    }
    // Their clips, and every clip of their streams, go with their objects (the rows below reference the user).
    crate::clips::forget_clips_of_user(app, user).await?;
    // Every sign-in ends (this one's sockets close too) before its rows go.
    end_logins_except(app, user, None).await?;
    let (now, name) = (app.now(), me.username.to_ascii_lowercase());
    let quarantine = quarantine_key(app.config.jwt_secret.as_bytes(), &name);
    let until = now + USERNAME_QUARANTINE_DAYS * 86_400;
    let u = || -> Arg { user.into() };
    let logins = "(SELECT id FROM login_families WHERE user_id = ?1)";
    let owned = "(SELECT id FROM streams WHERE owner_id = ?1)";
    let steps: Vec<(String, Vec<Arg>)> = vec![
        (
            format!("DELETE FROM refresh_tokens WHERE family_id IN {logins}"),
            vec![u()],
        ),
        (
            format!("DELETE FROM login_chat_rooms WHERE login_id IN {logins}"),
            vec![u()],
        ),
        ("DELETE FROM login_families WHERE user_id = ?1".into(), vec![u()]),
        ("DELETE FROM recovery_codes WHERE user_id = ?1".into(), vec![u()]),
        ("DELETE FROM user_chat_rooms WHERE user_id = ?1".into(), vec![u()]),
        (
            "DELETE FROM login_known_clients WHERE username = ?1".into(),
            vec![name.as_str().into()],
        ),
        (
            "DELETE FROM rate_limits WHERE key = 'login-user:' || ?1 OR key LIKE 'login-user:' || ?1 || '@%'
                 OR key LIKE '%:' || ?2"
                .into(),
            vec![name.as_str().into(), u()],
        ),
        (
            format!("DELETE FROM stream_outputs WHERE stream_id IN {owned}"),
            vec![u()],
        ),
        (
            format!(
                "UPDATE broadcasts SET ended_at = COALESCE(ended_at, ?2), ended_unix = COALESCE(ended_unix, ?3),
                     deleted_at = COALESCE(deleted_at, ?2) WHERE stream_id IN {owned}"
            ),
            vec![u(), stamp.as_str().into(), now.into()],
        ),
        (
            "UPDATE streams SET owner_id = ?2, title = 'deleted', description = '', thumbnail_broadcast_id = NULL,
                 thumbnail_at = NULL, blocked_key_generation = NULL WHERE owner_id = ?1"
                .into(),
            vec![u(), DELETED_USER_ID.into()],
        ),
        // The search index drops deleted rows' terms only when its segments merge: merge them now.
        (
            "INSERT INTO streams_search(streams_search) VALUES ('optimize')".into(),
            vec![],
        ),
        (
            "UPDATE donations SET donor_user_id = NULL, donor_name = ?2, message = NULL WHERE donor_user_id = ?1"
                .into(),
            vec![u(), DELETED_USER_NAME.into()],
        ),
        (
            "UPDATE reports SET reporter_id = NULL WHERE reporter_id = ?1".into(),
            vec![u()],
        ),
        (
            "UPDATE reports SET closed_by = ?2 WHERE closed_by = ?1".into(),
            vec![u(), DELETED_USER_ID.into()],
        ),
        (
            "UPDATE audit_log SET operator_id = ?2 WHERE operator_id = ?1".into(),
            vec![u(), DELETED_USER_ID.into()],
        ),
        (
            "UPDATE audit_log SET target_id = ?2 WHERE target_id = ?1".into(),
            vec![u(), DELETED_USER_ID.into()],
        ),
        (
            "INSERT OR REPLACE INTO username_quarantine (name_key, until) VALUES (?1, ?2)".into(),
            vec![quarantine.as_str().into(), until.into()],
        ),
        ("DELETE FROM users WHERE id = ?1".into(), vec![u()]),
    ];
    let mut statements = Vec::with_capacity(steps.len());
    for (sql, args) in &steps {
        statements.push(db::stmt(&app.db, sql, args)?);
    }
    // One batch is one transaction: the account is gone whole or not at all.
    app.db.batch(statements).await.or_internal("delete account")?;
    for Text { value: id } in &streams {
        tags.push(sunnylive_core::cache::stream_tag(id));
    }
    app.purge_cache(tags).await;
    // The broadcasts' video: what this request may purge now; the cron's sweep finishes the rest.
    if let Err(e) = crate::broadcasts::sweep(app).await {
        worker::console_warn!("account deletion: purge left to the cron: {e}");
    }
    let response = http::no_content()?;
    auth::clear_cookies(&req, response.headers())?;
    Ok(response)
}
