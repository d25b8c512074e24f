//! A person's own account, under `/api/me`: change the password, see and end sign-ins, and recovery codes, plus
//! `POST /api/auth/recover` (a recovery code instead of the password). Every secret presented here is checked
//! under the login limits (`auth::Attempt`): a wrong current password or recovery code counts toward the lockout
//! like a failed login. Ending a sign-in is exactly what logout does to one (`auth::revoke_family`): its refresh
//! tokens stop, its access tokens are refused (`auth::require_user`), its chat sockets close.

use sunnylive_core::account::{Password, Username};
use sunnylive_core::error::{ApiError, FieldErrors};
use sunnylive_core::sign_in::{RecoveryCode, RECOVERY_CODES};
use sunnylive_core::token::REFRESH_TTL_SECONDS;
use worker::{Request, Response};

use crate::app::{rfc3339, App};
use crate::auth::{self, Attempt, AuthUser, Text, UserRow};
use crate::crypto::random;
use crate::db;
use crate::http::{self, OrInternal, JSON_LIMIT};
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
async fn end_logins_except(app: &App, user_id: &str, keep: Option<&str>) -> Result<usize, ApiError> {
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
                "SELECT id, username, email, created_at FROM users WHERE username = ?1",
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
