//! Accounts and sessions: register, login, refresh (rotation with reuse detection), logout, `GET /api/me`, and the
//! one `authenticate` function every other module uses to learn who is calling.
//!
//! Every rejection of presented credentials answers the same 401; the reason goes to the log. A login is a token
//! family: each refresh token is single-use, and presenting a used one revokes the whole family.

use serde::{Deserialize, Serialize};
use sunnylive_core::account::{Password, Registration, Username};
use sunnylive_core::error::ApiError;
use sunnylive_core::ids::UserId;
use sunnylive_core::password::{StoredPassword, DUMMY_SALT, PBKDF2_ITERATIONS, SALT_LEN};
use sunnylive_core::rate_limit::{self, Limit};
use sunnylive_core::sign_in;
use sunnylive_core::token::{
    hash_refresh_token, new_refresh_token, AccessClaims, ACCESS_TTL_SECONDS, REFRESH_TTL_SECONDS,
};
use worker::{Headers, Request, Response};

use crate::app::{rfc3339, App};
use crate::crypto::{pbkdf2_sha256, random};
use crate::db;
use crate::http::{self, OrInternal, JSON_LIMIT};

pub const ACCESS_COOKIE: &str = "sl_access";
pub const REFRESH_COOKIE: &str = "sl_refresh";

/// The caller, once their access token checked out.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub username: String,
    /// The login the access token was issued for (`None` for tokens issued before the `sid` claim existed).
    pub login_id: Option<String>,
}

impl AuthUser {
    fn from_claims(claims: AccessClaims) -> AuthUser {
        AuthUser {
            id: UserId::from_trusted(claims.sub),
            username: claims.name,
            login_id: claims.sid,
        }
    }
}

fn reject(why: &str) -> ApiError {
    worker::console_log!("auth: rejected credentials ({why})");
    ApiError::unauthenticated()
}

/// Requests signed in by cookie that change state must come from our own pages: the `Origin` header must be the
/// site's origin. (SameSite=Lax already stops most cross-site posts; this closes the rest.) Safe methods pass.
fn check_origin(app: &App, req: &Request) -> Result<(), ApiError> {
    if http::is_safe_method(&req.method()) {
        return Ok(());
    }
    require_own_origin(app, req)
}

/// 403 unless the request's `Origin` is the site's own. Browsers always send it on state-changing requests and on
/// WebSocket handshakes (where SameSite does not help: a sibling subdomain is "same site"); clients without one
/// use Bearer tokens, which need no such check.
pub fn require_own_origin(app: &App, req: &Request) -> Result<(), ApiError> {
    let own = http::own_origin(req, app.config.public_base_url.as_deref());
    match req.headers().get("origin").ok().flatten() {
        Some(origin) if origin == own => Ok(()),
        _ => Err(ApiError::Forbidden {
            code: "cross_origin",
            message: "Requests signed in by cookie must come from this site.".into(),
        }),
    }
}

/// Who is calling: `Ok(None)` for anonymous callers. What authenticated the request decides which rules apply: a
/// Bearer token, when present, is the only credential looked at (a failing one is a 401, and cookies that came
/// along, e.g. from a client's cookie jar, are ignored: no Origin check); only a request authenticated by its
/// access cookie gets the Origin check. A stale access cookie is treated as anonymous (browsers keep sending it
/// until it is refreshed).
pub fn authenticate(app: &App, req: &Request) -> Result<Option<AuthUser>, ApiError> {
    let now = app.now();
    if let Some(token) = http::bearer(req) {
        let claims = app
            .tokens
            .verify(&token, now)
            .map_err(|why| reject(&format!("bearer: {why:?}")))?;
        return Ok(Some(AuthUser::from_claims(claims)));
    }
    let Some(token) = http::cookie(req, ACCESS_COOKIE) else {
        return Ok(None);
    };
    match app.tokens.verify(&token, now) {
        Ok(claims) => {
            check_origin(app, req)?;
            Ok(Some(AuthUser::from_claims(claims)))
        }
        Err(why) => {
            worker::console_log!("auth: ignoring access cookie ({why:?})");
            Ok(None)
        }
    }
}

/// The user of a valid Bearer access token, if the request carries one (no cookie is looked at).
fn bearer_user(app: &App, req: &Request) -> Option<AuthUser> {
    let token = http::bearer(req)?;
    match app.tokens.verify(&token, app.now()) {
        Ok(claims) => Some(AuthUser::from_claims(claims)),
        Err(why) => {
            worker::console_log!("auth: ignoring a Bearer token at logout ({why:?})");
            None
        }
    }
}

/// Like `authenticate`, but anonymous callers get a 401, and so does an access token whose login was revoked
/// (logout, a password change, a sign-in ended from the account page): ending a sign-in ends its access at once,
/// not when its last access token expires. One primary-key read.
pub async fn require_user(app: &App, req: &Request) -> Result<AuthUser, ApiError> {
    let user = authenticate(app, req)?.ok_or_else(ApiError::unauthenticated)?;
    if let Some(login_id) = &user.login_id {
        if !login_is_live(app, login_id).await? {
            return Err(reject("the access token's login is revoked"));
        }
    }
    Ok(user)
}

/// A row of one text column, `SELECT ... AS value`. The queries here that read one string (or only whether a row
/// exists) share it: every row type costs the Worker a deserializer of its own, ~4 KB of wasm.
#[derive(Deserialize)]
pub(crate) struct Text {
    pub(crate) value: String,
}

/// True while the login exists, is not revoked, and its user is not suspended.
async fn login_is_live(app: &App, login_id: &str) -> Result<bool, ApiError> {
    let live: Option<Text> = db::one(
        &app.db,
        "load login of an access token",
        "SELECT 'live' AS value FROM login_families f JOIN users u ON u.id = f.user_id
         WHERE f.id = ?1 AND f.revoked_at IS NULL AND u.suspended_at IS NULL",
        &[login_id.into()],
    )
    .await?;
    Ok(live.is_some())
}

#[derive(Deserialize)]
pub(crate) struct UserRow {
    pub(crate) id: String,
    pub(crate) username: String,
    pub(crate) email: Option<String>,
    pub(crate) created_at: String,
    /// Read only where a password is checked (absent from other queries); never in an answer (`view`).
    password_hash: Option<String>,
    /// Read where a sign-in starts (login, recovery): set while an operator has the account suspended.
    suspended_at: Option<String>,
}

/// A suspended account signs in nowhere (403 `account_suspended`), once its secret checked out.
pub(crate) fn refuse_suspended(user: &UserRow) -> Result<(), ApiError> {
    match user.suspended_at {
        Some(_) => Err(ApiError::Forbidden {
            code: "account_suspended",
            message: "This account is suspended by an operator.".into(),
        }),
        None => Ok(()),
    }
}

#[derive(Serialize)]
struct UserView<'a> {
    id: &'a str,
    username: &'a str,
    email: Option<&'a str>,
    created_at: &'a str,
}

impl UserRow {
    fn view(&self) -> UserView<'_> {
        UserView {
            id: &self.id,
            username: &self.username,
            email: self.email.as_deref(),
            created_at: &self.created_at,
        }
    }
}

#[derive(Serialize)]
struct SessionBody<'a> {
    user: UserView<'a>,
    access_token: &'a str,
    refresh_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
}

/// Counts one attempt against `limit` under `key`; 429 with Retry-After once over.
pub async fn count_attempt(app: &App, key: &str, limit: Limit) -> Result<(), ApiError> {
    let now = app.now();
    // The count comes back as text to share the one-text-column row type (`Text`).
    let row: Option<Text> = db::one(
        &app.db,
        "count a rate-limited attempt",
        "INSERT INTO rate_limits (key, window_start, count) VALUES (?1, ?2, 1)
         ON CONFLICT (key, window_start) DO UPDATE SET count = count + 1 RETURNING CAST(count AS TEXT) AS value",
        &[key.into(), limit.window_start(now).into()],
    )
    .await?;
    let count = row.and_then(|r| r.value.parse().ok()).unwrap_or(1);
    match limit.check(count, now) {
        Some(retry_after) => Err(ApiError::RateLimited { retry_after }),
        None => Ok(()),
    }
}

fn is_local_http(req: &Request) -> bool {
    req.url()
        .map(|u| u.scheme() == "http" && matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")))
        .unwrap_or(false)
}

fn cookie_header(req: &Request, name: &str, value: &str, path: &str, max_age: i64) -> String {
    // Secure everywhere except plain-http localhost, where browsers would drop a Secure cookie.
    let secure = if is_local_http(req) { "" } else { "; Secure" };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

fn session_cookies(req: &Request, headers: &Headers, access: &str, refresh: &str) -> Result<(), ApiError> {
    headers
        .append(
            "set-cookie",
            &cookie_header(req, ACCESS_COOKIE, access, "/", ACCESS_TTL_SECONDS),
        )
        .or_internal("set-cookie")?;
    headers
        .append(
            "set-cookie",
            &cookie_header(req, REFRESH_COOKIE, refresh, "/api/auth", REFRESH_TTL_SECONDS),
        )
        .or_internal("set-cookie")?;
    Ok(())
}

pub(crate) fn clear_cookies(req: &Request, headers: &Headers) -> Result<(), ApiError> {
    headers
        .append("set-cookie", &cookie_header(req, ACCESS_COOKIE, "", "/", 0))
        .or_internal("set-cookie")?;
    headers
        .append("set-cookie", &cookie_header(req, REFRESH_COOKIE, "", "/api/auth", 0))
        .or_internal("set-cookie")?;
    Ok(())
}

/// The coarse place of a request, as the sign-in list shows it: the client's network (/24 or /48) and its
/// browser family. Never the whole address or User-Agent.
fn place(req: &Request) -> (Option<String>, &'static str) {
    let header = |name| req.headers().get(name).ok().flatten().unwrap_or_default();
    (
        sign_in::coarse_network(&header("cf-connecting-ip")),
        sign_in::browser_family(&header("user-agent")),
    )
}

/// Starts a new login (token family) for `user` and answers with tokens in JSON and cookies.
pub(crate) async fn start_session(app: &App, req: &Request, user: &UserRow, status: u16) -> Result<Response, ApiError> {
    let now = app.now();
    let family = UserId::generate(random());
    let refresh = new_refresh_token(random());
    let (network, browser) = place(req);
    app.db
        .batch(vec![
            db::stmt(
                &app.db,
                "INSERT INTO login_families (id, user_id, created_at, last_used_at, network, browser)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &[
                    family.as_str().into(),
                    (&user.id).into(),
                    (&rfc3339(now)).into(),
                    now.into(),
                    network.as_deref().into(),
                    browser.into(),
                ],
            )?,
            db::stmt(
                &app.db,
                "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES (?1, ?2, ?3)",
                &[
                    (&refresh.hash).into(),
                    family.as_str().into(),
                    (now + REFRESH_TTL_SECONDS).into(),
                ],
            )?,
        ])
        .await
        .or_internal("insert login family")?;
    session_response(app, req, user, family.as_str(), &refresh.token, status)
}

fn session_response(
    app: &App,
    req: &Request,
    user: &UserRow,
    login_id: &str,
    refresh_token: &str,
    status: u16,
) -> Result<Response, ApiError> {
    let (access, _) = app.tokens.issue(
        &UserId::from_trusted(user.id.clone()),
        &user.username,
        &UserId::from_trusted(login_id.to_string()),
        app.now(),
        random(),
    );
    let body = SessionBody {
        user: user.view(),
        access_token: &access,
        refresh_token,
        token_type: "Bearer",
        expires_in: ACCESS_TTL_SECONDS,
    };
    let response = http::json(status, &body)?;
    session_cookies(req, response.headers(), &access, refresh_token)?;
    Ok(response)
}

pub(crate) async fn hash_new_password(password: &Password) -> Result<String, ApiError> {
    let salt = random::<SALT_LEN>().to_vec();
    let hash = pbkdf2_sha256(password.as_bytes(), &salt, PBKDF2_ITERATIONS).await?;
    Ok(StoredPassword::new(PBKDF2_ITERATIONS, salt, hash).encode())
}

/// `POST /api/auth/register`
pub async fn register(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let body = http::read_json(&mut req, JSON_LIMIT).await?;
    let reg = Registration::parse(
        body.opt_str("username")?,
        body.opt_str("password")?,
        body.opt_str("email")?,
    )?;
    count_attempt(
        app,
        &format!("register-ip:{}", http::client_ip(&req)),
        rate_limit::REGISTER_PER_IP,
    )
    .await?;
    let user = UserRow {
        id: UserId::generate(random()).to_string(),
        username: reg.username.as_str().to_string(),
        email: reg.email.as_ref().map(|e| e.as_str().to_string()),
        created_at: app.now_rfc3339(),
        password_hash: None,
        suspended_at: None,
    };
    let stored = hash_new_password(&reg.password).await?;
    let inserted = db::run(
        &app.db,
        "insert user",
        // A deleted account's name waits out its quarantine (core/src/account.rs says why): no row is inserted.
        "INSERT INTO users (id, username, email, password_hash, created_at) SELECT ?1, ?2, ?3, ?4, ?5
         WHERE NOT EXISTS (SELECT 1 FROM username_quarantine WHERE name_key = ?6 AND until > ?7)",
        &[
            (&user.id).into(),
            (&user.username).into(),
            user.email.as_deref().into(),
            (&stored).into(),
            (&user.created_at).into(),
            sunnylive_core::account::quarantine_key(app.config.jwt_secret.as_bytes(), reg.username.as_str())
                .as_str()
                .into(),
            app.now().into(),
        ],
    )
    .await;
    match inserted {
        Ok(0) => Err(ApiError::Conflict {
            code: "username_quarantined",
            message: format!(
                "That username belonged to a deleted account; it can be registered again {} days after the deletion.",
                sunnylive_core::account::USERNAME_QUARANTINE_DAYS
            ),
        }),
        Ok(_) => start_session(app, &req, &user, 201).await,
        Err(e) if db::is_unique_violation(&e) => Err(ApiError::Conflict {
            code: "username_taken",
            message: "That username is taken; pick another.".into(),
        }),
        Err(e) => Err(e),
    }
}

/// `POST /api/auth/login`
pub async fn login(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let body = http::read_json(&mut req, JSON_LIMIT).await?;
    let (Some(username), Some(password)) = (body.opt_str("username")?, body.opt_str("password")?) else {
        let mut fields = sunnylive_core::error::FieldErrors::new();
        for name in ["username", "password"] {
            if body.opt_str(name)?.is_none() {
                fields.insert(name.into(), "is required".into());
            }
        }
        return Err(ApiError::Invalid(fields));
    };
    let user = check_password(app, &req, username, password).await?;
    start_session(app, &req, &user, 200).await
}

/// A sign-in attempt for one username, counted against the login limits (per client, and the username's lockout)
/// before its secret is checked; `succeeded` takes the lockout's count back. Login, a password change, recovery
/// codes and recovery all go through this, so a guess costs the same everywhere.
pub(crate) struct Attempt {
    name: Option<Username>,
    client: String,
    lockout_key: Option<String>,
}

impl Attempt {
    pub(crate) async fn begin(app: &App, req: &Request, username: &str) -> Result<Attempt, ApiError> {
        let client = http::client_ip(req);
        count_attempt(app, &format!("login-ip:{client}"), rate_limit::LOGIN_PER_IP).await?;
        // The username lockout counts failures: the attempt is counted now (so parallel guesses cannot slip past
        // the limit) and taken back if the secret is right. A name that cannot exist has no account to protect.
        let name = Username::parse(username).ok();
        let lockout_key = match &name {
            Some(name) => {
                let key = lockout_key(app, name, &client).await?;
                count_attempt(app, &key, rate_limit::LOGIN_PER_USERNAME).await?;
                Some(key)
            }
            None => None,
        };
        Ok(Attempt {
            name,
            client,
            lockout_key,
        })
    }

    pub(crate) fn username(&self) -> Option<&Username> {
        self.name.as_ref()
    }

    pub(crate) async fn succeeded(&self, app: &App) -> Result<(), ApiError> {
        if let (Some(name), Some(key)) = (&self.name, &self.lockout_key) {
            signed_in_from(app, name, &self.client, key).await?;
        }
        Ok(())
    }
}

/// Checks `password` for the account named `username` under the login limits: the user, or 401
/// `invalid_credentials` (unknown name and wrong password alike, in the same time), or 429.
pub(crate) async fn check_password(
    app: &App,
    req: &Request,
    username: &str,
    password: &str,
) -> Result<UserRow, ApiError> {
    let attempt = Attempt::begin(app, req, username).await?;
    let name = attempt.username();

    // A name that cannot exist still costs one derivation below, so timing does not tell unknown from wrong.
    let user: Option<UserRow> =
        match name {
            Some(name) => db::one(
                &app.db,
                "load user for login",
                "SELECT id, username, email, created_at, password_hash, suspended_at FROM users WHERE username = ?1",
                &[name.as_str().into()],
            )
            .await?,
            None => None,
        };
    let stored = user
        .as_ref()
        .and_then(|u| u.password_hash.as_deref())
        .and_then(StoredPassword::parse);
    let (salt, iterations) = match &stored {
        Some(s) => (s.salt.clone(), s.iterations),
        None => (DUMMY_SALT.to_vec(), PBKDF2_ITERATIONS),
    };
    let derived = pbkdf2_sha256(password.as_bytes(), &salt, iterations).await?;
    let (Some(user), Some(stored)) = (user, stored) else {
        return Err(invalid_credentials());
    };
    if !stored.matches(&derived) {
        return Err(invalid_credentials());
    }
    attempt.succeeded(app).await?;
    refuse_suspended(&user)?;
    if stored.needs_rehash() {
        if let Ok(p) = Password::parse(password) {
            let upgraded = hash_new_password(&p).await?;
            db::run(
                &app.db,
                "upgrade password hash",
                "UPDATE users SET password_hash = ?1 WHERE id = ?2",
                &[(&upgraded).into(), (&user.id).into()],
            )
            .await?;
        }
    }
    Ok(user)
}

/// The lockout key of this login attempt: apart from strangers' when this client signed in to the account before.
async fn lockout_key(app: &App, name: &Username, client: &str) -> Result<String, ApiError> {
    let known: Option<Text> = db::one(
        &app.db,
        "is this a known login client",
        "SELECT 'known' AS value FROM login_known_clients WHERE username = ?1 AND client = ?2",
        &[name.as_str().to_ascii_lowercase().as_str().into(), client.into()],
    )
    .await?;
    Ok(rate_limit::login_lockout_key(name, known.is_some().then_some(client)))
}

/// A successful sign-in: takes back the attempt counted against the lockout, and remembers the client as one
/// that signs in to this account.
async fn signed_in_from(app: &App, name: &Username, client: &str, lockout_key: &str) -> Result<(), ApiError> {
    let now = app.now();
    db::run(
        &app.db,
        "take back a successful login attempt",
        "UPDATE rate_limits SET count = count - 1 WHERE key = ?1 AND window_start = ?2 AND count > 0",
        &[
            lockout_key.into(),
            rate_limit::LOGIN_PER_USERNAME.window_start(now).into(),
        ],
    )
    .await?;
    db::run(
        &app.db,
        "remember a known login client",
        "INSERT INTO login_known_clients (username, client, last_ok_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (username, client) DO UPDATE SET last_ok_at = excluded.last_ok_at",
        &[
            name.as_str().to_ascii_lowercase().as_str().into(),
            client.into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

pub(crate) fn invalid_credentials() -> ApiError {
    ApiError::Unauthenticated {
        code: "invalid_credentials",
        message: "Wrong username or password.".into(),
    }
}

/// The refresh token a client presents: the JSON field, else the cookie.
async fn presented_refresh_token(app: &App, req: &mut Request) -> Result<Option<String>, ApiError> {
    let body = http::read_optional_json(req, JSON_LIMIT).await?;
    if let Some(t) = body.opt_str("refresh_token")? {
        return Ok(Some(t.to_string()));
    }
    match http::cookie(req, REFRESH_COOKIE).filter(|c| !c.is_empty()) {
        Some(c) => {
            check_origin(app, req)?;
            Ok(Some(c))
        }
        None => Ok(None),
    }
}

/// Revokes a login: its refresh tokens stop working at once, and every chat socket it opened is closed (the rooms
/// it opened sockets in are recorded by `chat_login`). Its access tokens expire within 15 minutes and can open no
/// new chat socket meanwhile. A room that cannot be reached is logged; the revocation stands.
pub(crate) async fn revoke_family(app: &App, family_id: &str) -> Result<(), ApiError> {
    db::run(
        &app.db,
        "revoke login family",
        "UPDATE login_families SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
        &[app.now_rfc3339().as_str().into(), family_id.into()],
    )
    .await?;
    let rooms: Vec<Text> = db::all(
        &app.db,
        "rooms of a revoked login",
        "DELETE FROM login_chat_rooms WHERE login_id = ?1 RETURNING stream_id AS value",
        &[family_id.into()],
    )
    .await?;
    let body = sunnylive_core::chat::LogoutPost {
        login_id: family_id.to_string(),
    };
    for Text { value: room } in rooms {
        match crate::room_client::post_to_room(app, &room, sunnylive_core::chat::ROOM_LOGOUT, &body).await {
            Ok(code) if (200..300).contains(&code) => {}
            Ok(code) => worker::console_error!("auth: room {room} answered {code} to a logout"),
            Err(e) => worker::console_error!("auth: room {room} unreachable for a logout: {e}"),
        }
    }
    Ok(())
}

/// Called when `user` opens a chat socket in `stream_id`: refuses (401) a login that was revoked (its access token
/// may still be unexpired), and records the room so a later revocation can close the socket. Returns the login id
/// to hand to the room.
pub async fn chat_login(app: &App, user: &AuthUser, stream_id: &str) -> Result<Option<String>, ApiError> {
    let Some(login_id) = &user.login_id else {
        return Ok(None);
    };
    if !login_is_live(app, login_id).await? {
        return Err(reject("chat: the access token's login is revoked"));
    }
    // The user's rooms are kept past the login: the export and a deletion look there for their messages.
    app.db
        .batch(vec![
            db::stmt(
                &app.db,
                "INSERT INTO login_chat_rooms (login_id, stream_id, seen_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (login_id, stream_id) DO UPDATE SET seen_at = excluded.seen_at",
                &[login_id.into(), stream_id.into(), app.now().into()],
            )?,
            db::stmt(
                &app.db,
                "INSERT OR IGNORE INTO user_chat_rooms (user_id, stream_id) VALUES (?1, ?2)",
                &[user.id.as_str().into(), stream_id.into()],
            )?,
        ])
        .await
        .or_internal("remember the room of a login")?;
    Ok(Some(login_id.clone()))
}

/// Cron: forgets known login clients and logins' chat rooms unused for longer than a login lives.
pub async fn forget_old_known_clients(app: &App) -> Result<(), ApiError> {
    let before = app.now() - REFRESH_TTL_SECONDS;
    db::run(
        &app.db,
        "forget old known login clients",
        "DELETE FROM login_known_clients WHERE last_ok_at < ?1",
        &[before.into()],
    )
    .await?;
    db::run(
        &app.db,
        "forget old chat rooms of logins",
        "DELETE FROM login_chat_rooms WHERE seen_at < ?1",
        &[before.into()],
    )
    .await?;
    db::run(
        &app.db,
        "end username quarantines",
        "DELETE FROM username_quarantine WHERE until < ?1",
        &[app.now().into()],
    )
    .await?;
    Ok(())
}

/// `POST /api/auth/refresh`: rotates the refresh token. A token that was already used revokes its whole login.
pub async fn refresh(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let token = presented_refresh_token(app, &mut req)
        .await?
        .ok_or_else(|| reject("refresh: no token"))?;
    let hash = hash_refresh_token(&token);
    #[derive(Deserialize)]
    struct Row {
        family_id: String,
        expires_at: i64,
        used_at: Option<i64>,
        revoked_at: Option<String>,
        id: String,
        username: String,
        email: Option<String>,
        created_at: String,
    }
    let row: Option<Row> = db::one(
        &app.db,
        "load refresh token",
        "SELECT t.family_id, t.expires_at, t.used_at, f.revoked_at, u.id, u.username, u.email, u.created_at
         FROM refresh_tokens t JOIN login_families f ON f.id = t.family_id JOIN users u ON u.id = f.user_id
         WHERE t.token_hash = ?1",
        &[(&hash).into()],
    )
    .await?;
    let row = row.ok_or_else(|| reject("refresh: unknown token"))?;
    let now = app.now();
    if row.revoked_at.is_some() {
        return Err(reject("refresh: login revoked"));
    }
    if row.used_at.is_some() {
        revoke_family(app, &row.family_id).await?;
        return Err(reject("refresh: reuse of a used token; login revoked"));
    }
    if row.expires_at <= now {
        return Err(reject("refresh: expired"));
    }
    // Single use, decided by the database: of two concurrent refreshes with one token, exactly one wins; the
    // other is a reuse and revokes the login.
    let claimed = db::run(
        &app.db,
        "claim refresh token",
        "UPDATE refresh_tokens SET used_at = ?1 WHERE token_hash = ?2 AND used_at IS NULL",
        &[now.into(), (&hash).into()],
    )
    .await?;
    if claimed != 1 {
        revoke_family(app, &row.family_id).await?;
        return Err(reject("refresh: concurrent reuse; login revoked"));
    }
    let next = new_refresh_token(random());
    let (network, browser) = place(&req);
    app.db
        .batch(vec![
            db::stmt(
                &app.db,
                "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES (?1, ?2, ?3)",
                &[
                    (&next.hash).into(),
                    (&row.family_id).into(),
                    (now + REFRESH_TTL_SECONDS).into(),
                ],
            )?,
            // The sign-in list shows where a login was last used from.
            db::stmt(
                &app.db,
                "UPDATE login_families SET last_used_at = ?1, network = ?2, browser = ?3 WHERE id = ?4",
                &[
                    now.into(),
                    network.as_deref().into(),
                    browser.into(),
                    (&row.family_id).into(),
                ],
            )?,
        ])
        .await
        .or_internal("rotate refresh token")?;
    let user = UserRow {
        id: row.id,
        username: row.username,
        email: row.email,
        created_at: row.created_at,
        password_hash: None,
        suspended_at: None,
    };
    session_response(app, &req, &user, &row.family_id, &next.token, 200)
}

/// `POST /api/auth/logout`: revokes the caller's login and clears cookies. Which login is decided by what
/// authenticated the request: a valid Bearer access token (its login, from the `sid` claim; cookies that came
/// along are ignored and no Origin is needed), else a refresh token in the body, else the refresh cookie (a cookie
/// sign-in, so it must come from our own origin). Always 204: logging out twice, or with nothing to revoke, is not
/// an error.
pub async fn logout(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let mut logins = Vec::new();
    if let Some(user) = bearer_user(app, &req) {
        let body = http::read_optional_json(&mut req, JSON_LIMIT).await?;
        logins.extend(user.login_id);
        if let Some(token) = body.opt_str("refresh_token")? {
            logins.extend(login_of_refresh_token(app, token).await?);
        }
    } else if let Some(token) = presented_refresh_token(app, &mut req).await? {
        logins.extend(login_of_refresh_token(app, &token).await?);
    }
    logins.dedup();
    for login in &logins {
        revoke_family(app, login).await?;
    }
    let response = http::no_content()?;
    clear_cookies(&req, response.headers())?;
    Ok(response)
}

async fn login_of_refresh_token(app: &App, token: &str) -> Result<Option<String>, ApiError> {
    let row: Option<Text> = db::one(
        &app.db,
        "find login to revoke",
        "SELECT family_id AS value FROM refresh_tokens WHERE token_hash = ?1",
        &[hash_refresh_token(token).as_str().into()],
    )
    .await?;
    Ok(row.map(|r| r.value))
}

/// `GET /api/me`
pub async fn me(app: &App, req: Request) -> Result<Response, ApiError> {
    let caller = require_user(app, &req).await?;
    let row: Option<UserRow> = db::one(
        &app.db,
        "load me",
        "SELECT id, username, email, created_at FROM users WHERE id = ?1",
        &[caller.id.as_str().into()],
    )
    .await?;
    let row = row.ok_or_else(|| reject("me: user no longer exists"))?;
    #[derive(Serialize)]
    struct Body<'a> {
        user: UserView<'a>,
    }
    http::json(200, &Body { user: row.view() })
}
