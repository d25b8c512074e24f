//! Accounts end to end: every auth route's success path, a table of bad inputs (right status and code, never a
//! 500), forged access tokens, refresh rotation with reuse detection, logout, cookies and the Origin check, and
//! the login rate limits.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use sunnylive_e2e::{ensure, session, unique_name, TestApp, TestResult};

/// The development JWT secret from `.dev.vars` (the test stack runs with it, like `make dev`).
const DEV_JWT_SECRET: &str = "dev-only-jwt-secret-change-me-0123456789";

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        register_login_and_me_work_with_bearer_and_cookies,
        bad_inputs_get_the_right_status_and_code_and_never_500,
        forged_access_tokens_are_refused,
        refresh_rotates_and_reuse_revokes_the_whole_login,
        logout_revokes_the_login_and_clears_cookies,
        cookie_requests_that_change_state_need_our_origin,
        login_is_rate_limited_per_username_and_per_ip,
    )
}

fn sign_hs(alg: &str, secret: &str, claims: &Value) -> String {
    let header = B64URL.encode(json!({ "alg": alg, "typ": "JWT" }).to_string());
    let payload = B64URL.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let sig = match alg {
        "HS512" => {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
    };
    format!("{input}.{}", B64URL.encode(sig))
}

fn set_cookies(a: &sunnylive_e2e::Answer) -> Vec<String> {
    a.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(String::from)
        .collect()
}

async fn register_login_and_me_work_with_bearer_and_cookies(app: &TestApp) -> TestResult {
    let api = app.api();
    let name = unique_name("alice");
    let pw = "correct horse battery";
    let a = api
        .post(
            "/api/auth/register",
            None,
            &json!({"username": name, "password": pw, "email": "a@example.com"}),
        )
        .await?;
    ensure!(a.status == 201, "register: {} {}", a.status, a.text);
    for field in ["access_token", "refresh_token", "expires_in"] {
        ensure!(!a.body[field].is_null(), "register answer lacks {field}");
    }
    ensure!(a.body["expires_in"] == 900, "access tokens live 15 minutes");
    ensure!(
        a.body["user"]["username"] == name.as_str() && a.body["user"]["email"] == "a@example.com",
        "user: {}",
        a.body
    );
    ensure!(
        a.body["user"].get("password_hash").is_none(),
        "the hash must never be sent"
    );
    let cookies = set_cookies(&a);
    ensure!(
        cookies
            .iter()
            .any(|c| c.starts_with("sl_access=") && c.contains("HttpOnly") && c.contains("SameSite=Lax")),
        "access cookie: {cookies:?}"
    );
    ensure!(
        cookies
            .iter()
            .any(|c| c.starts_with("sl_refresh=") && c.contains("HttpOnly")),
        "refresh cookie: {cookies:?}"
    );
    // The worker's public origin in the tests is https (as behind Cloudflare): cookies are Secure. (Plain-http
    // localhost, where browsers would drop them, gets them without: that is what `make dev` serves.)
    ensure!(
        cookies.iter().all(|c| c.contains("; Secure")),
        "Secure cookies on the https site: {cookies:?}"
    );

    let s = session(&a, pw);
    let me = api.get("/api/me", Some(&s.access)).await?;
    ensure!(
        me.status == 200 && me.body["user"]["id"] == s.user_id.as_str(),
        "me: {} {}",
        me.status,
        me.text
    );
    ensure!(
        me.body["user"]["created_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "RFC 3339 UTC: {}",
        me.text
    );

    let login = api.login(&name.to_uppercase(), pw).await?;
    ensure!(
        login.status == 200,
        "login is case-insensitive on the name: {} {}",
        login.status,
        login.text
    );
    let cookie_me = api
        .send(api.request(Method::GET, "/api/me").header(
            "cookie",
            format!("sl_access={}", login.body["access_token"].as_str().unwrap_or("")),
        ))
        .await?;
    ensure!(
        cookie_me.status == 200,
        "me by cookie: {} {}",
        cookie_me.status,
        cookie_me.text
    );
    Ok(())
}

async fn bad_inputs_get_the_right_status_and_code_and_never_500(app: &TestApp) -> TestResult {
    let api = app.api();
    let taken = api.register("taken").await?;
    let long = "x".repeat(20_000);
    // (what, method, path, content type, body, expected status, expected code)
    let cases: Vec<(&str, &str, &str, &str, String, u16, &str)> = vec![
        (
            "register: not JSON",
            "POST",
            "/api/auth/register",
            "application/json",
            "{nope".into(),
            400,
            "malformed_body",
        ),
        (
            "register: a JSON array",
            "POST",
            "/api/auth/register",
            "application/json",
            "[]".into(),
            400,
            "malformed_body",
        ),
        (
            "register: text/plain",
            "POST",
            "/api/auth/register",
            "text/plain",
            "{}".into(),
            415,
            "unsupported_media_type",
        ),
        (
            "register: 20 KB body",
            "POST",
            "/api/auth/register",
            "application/json",
            format!("{{\"username\":\"{long}\"}}"),
            413,
            "body_too_large",
        ),
        (
            "register: empty object",
            "POST",
            "/api/auth/register",
            "application/json",
            "{}".into(),
            422,
            "validation_failed",
        ),
        (
            "register: username too short",
            "POST",
            "/api/auth/register",
            "application/json",
            json!({"username":"ab","password":"longenough"}).to_string(),
            422,
            "validation_failed",
        ),
        (
            "register: username too long",
            "POST",
            "/api/auth/register",
            "application/json",
            json!({"username":"a".repeat(33),"password":"longenough"}).to_string(),
            422,
            "validation_failed",
        ),
        (
            "register: username with a space",
            "POST",
            "/api/auth/register",
            "application/json",
            json!({"username":"a b c","password":"longenough"}).to_string(),
            422,
            "validation_failed",
        ),
        (
            "register: username with markup",
            "POST",
            "/api/auth/register",
            "application/json",
            json!({"username":"<script>","password":"longenough"}).to_string(),
            422,
            "validation_failed",
        ),
        (
            "register: username is a number",
            "POST",
            "/api/auth/register",
            "application/json",
            json!({"username":12345,"password":"longenough"}).to_string(),
            422,
            "validation_failed",
        ),
        (
            "register: password too short",
            "POST",
            "/api/auth/register",
            "application/json",
            json!({"username":unique_name("u"),"password":"short"}).to_string(),
            422,
            "validation_failed",
        ),
        (
            "register: password too long",
            "POST",
            "/api/auth/register",
            "application/json",
            json!({"username":unique_name("u"),"password":"p".repeat(129)}).to_string(),
            422,
            "validation_failed",
        ),
        (
            "register: password missing",
            "POST",
            "/api/auth/register",
            "application/json",
            json!({"username":unique_name("u")}).to_string(),
            422,
            "validation_failed",
        ),
        (
            "register: bad e-mail",
            "POST",
            "/api/auth/register",
            "application/json",
            json!({"username":unique_name("u"),"password":"longenough","email":"nope"}).to_string(),
            422,
            "validation_failed",
        ),
        (
            "register: name taken",
            "POST",
            "/api/auth/register",
            "application/json",
            json!({"username":taken.username,"password":"longenough"}).to_string(),
            409,
            "username_taken",
        ),
        (
            "register: name taken in other case",
            "POST",
            "/api/auth/register",
            "application/json",
            json!({"username":taken.username.to_uppercase(),"password":"longenough"}).to_string(),
            409,
            "username_taken",
        ),
        (
            "login: wrong password",
            "POST",
            "/api/auth/login",
            "application/json",
            json!({"username":taken.username,"password":"wrong password"}).to_string(),
            401,
            "invalid_credentials",
        ),
        (
            "login: unknown user",
            "POST",
            "/api/auth/login",
            "application/json",
            json!({"username":unique_name("ghost"),"password":"whatever1"}).to_string(),
            401,
            "invalid_credentials",
        ),
        (
            "login: impossible username",
            "POST",
            "/api/auth/login",
            "application/json",
            json!({"username":"☃","password":"whatever1"}).to_string(),
            401,
            "invalid_credentials",
        ),
        (
            "login: missing password",
            "POST",
            "/api/auth/login",
            "application/json",
            json!({"username":"someone"}).to_string(),
            422,
            "validation_failed",
        ),
        (
            "login: malformed",
            "POST",
            "/api/auth/login",
            "application/json",
            "{\"username\":".into(),
            400,
            "malformed_body",
        ),
        (
            "login: form-encoded",
            "POST",
            "/api/auth/login",
            "application/x-www-form-urlencoded",
            "username=a&password=b".into(),
            415,
            "unsupported_media_type",
        ),
        (
            "refresh: unknown token",
            "POST",
            "/api/auth/refresh",
            "application/json",
            json!({"refresh_token":"rt_nope"}).to_string(),
            401,
            "not_authenticated",
        ),
        (
            "refresh: nothing presented",
            "POST",
            "/api/auth/refresh",
            "application/json",
            "".into(),
            401,
            "not_authenticated",
        ),
        (
            "refresh: access token instead",
            "POST",
            "/api/auth/refresh",
            "application/json",
            json!({"refresh_token":taken.access}).to_string(),
            401,
            "not_authenticated",
        ),
        (
            "refresh: token is a number",
            "POST",
            "/api/auth/refresh",
            "application/json",
            json!({"refresh_token":5}).to_string(),
            422,
            "validation_failed",
        ),
        (
            "me: anonymous",
            "GET",
            "/api/me",
            "",
            String::new(),
            401,
            "not_authenticated",
        ),
        (
            "unknown API route",
            "GET",
            "/api/nothing-here",
            "",
            String::new(),
            404,
            "route_not_found",
        ),
        (
            "wrong method",
            "DELETE",
            "/api/auth/login",
            "",
            String::new(),
            405,
            "method_not_allowed",
        ),
    ];
    ensure!(cases.len() >= 20, "the issue asks for at least 20 bad inputs");
    let mut failures = Vec::new();
    for (what, method, path, ct, body, status, code) in cases {
        let mut rb = api.request(Method::from_bytes(method.as_bytes())?, path);
        if !ct.is_empty() {
            rb = rb.header("content-type", ct);
        }
        if !body.is_empty() {
            rb = rb.body(body);
        }
        let a = api.send(rb).await?;
        if a.status != status || a.code() != code || a.body["error"]["message"].as_str().is_none_or(str::is_empty) {
            failures.push(format!("{what}: wanted {status} {code}, got {} {}", a.status, a.text));
        }
        if status == 422 && a.body["error"]["fields"].as_object().is_none_or(|f| f.is_empty()) {
            failures.push(format!("{what}: a 422 must name its fields: {}", a.text));
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

async fn forged_access_tokens_are_refused(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("forge").await?;
    let now = chrono::Utc::now().timestamp();
    let claims =
        |iat: i64, exp: i64, name: &str| json!({"sub": s.user_id, "name": name, "iat": iat, "exp": exp, "jti": "x"});
    let good = sign_hs("HS256", DEV_JWT_SECRET, &claims(now, now + 600, &s.username));
    ensure!(
        api.get("/api/me", Some(&good)).await?.status == 200,
        "the control token (right key, HS256) must pass"
    );

    let parts: Vec<&str> = s.access.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(claims(now, now + 600, "root").to_string()),
        parts[2]
    );
    let none = format!(
        "{}.{}.",
        B64URL.encode(r#"{"alg":"none","typ":"JWT"}"#),
        B64URL.encode(claims(now, now + 600, "x").to_string())
    );
    let forged = [
        ("alg none", none),
        (
            "wrong key",
            sign_hs(
                "HS256",
                "not-the-server-secret-at-all-000000",
                &claims(now, now + 600, "x"),
            ),
        ),
        (
            "expired",
            sign_hs("HS256", DEV_JWT_SECRET, &claims(now - 1000, now - 100, "x")),
        ),
        (
            "HS512 with the right key",
            sign_hs("HS512", DEV_JWT_SECRET, &claims(now, now + 600, "x")),
        ),
        ("tampered payload", tampered),
        ("refresh token as access", s.refresh.clone()),
        ("garbage", "a.b.c".to_string()),
    ];
    for (what, token) in forged {
        let a = api.get("/api/me", Some(&token)).await?;
        ensure!(
            a.status == 401 && a.code() == "not_authenticated",
            "{what}: got {} {}",
            a.status,
            a.text
        );
        let c = api
            .send(
                api.request(Method::GET, "/api/me")
                    .header("cookie", format!("sl_access={token}")),
            )
            .await?;
        ensure!(c.status == 401, "{what} as a cookie: got {} {}", c.status, c.text);
    }
    Ok(())
}

async fn refresh_rotates_and_reuse_revokes_the_whole_login(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("rot").await?;
    let r1 = api
        .post("/api/auth/refresh", None, &json!({"refresh_token": s.refresh}))
        .await?;
    ensure!(r1.status == 200, "first refresh: {} {}", r1.status, r1.text);
    let second = session(&r1, &s.password);
    ensure!(
        second.refresh != s.refresh && second.refresh.starts_with("rt_"),
        "a new refresh token each time"
    );
    ensure!(
        api.get("/api/me", Some(&second.access)).await?.status == 200,
        "the new access token works"
    );

    // A second, independent login of the same user must survive the other login's revocation.
    let other = session(&api.login(&s.username, &s.password).await?, &s.password);

    let replay = api
        .post("/api/auth/refresh", None, &json!({"refresh_token": s.refresh}))
        .await?;
    ensure!(
        replay.status == 401,
        "replaying a used refresh token: {} {}",
        replay.status,
        replay.text
    );
    let after = api
        .post("/api/auth/refresh", None, &json!({"refresh_token": second.refresh}))
        .await?;
    ensure!(
        after.status == 401,
        "the whole family is revoked after reuse: {} {}",
        after.status,
        after.text
    );
    let independent = api
        .post("/api/auth/refresh", None, &json!({"refresh_token": other.refresh}))
        .await?;
    ensure!(
        independent.status == 200,
        "another login is untouched: {} {}",
        independent.status,
        independent.text
    );

    // By cookie, from our own origin.
    let c = api
        .send(
            api.request(Method::POST, "/api/auth/refresh")
                .header("cookie", format!("sl_refresh={}", session(&independent, "").refresh))
                .header("origin", &app.site),
        )
        .await?;
    ensure!(
        c.status == 200 && !set_cookies(&c).is_empty(),
        "refresh by cookie: {} {}",
        c.status,
        c.text
    );
    Ok(())
}

async fn logout_revokes_the_login_and_clears_cookies(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("bye").await?;
    let a = api
        .post(
            "/api/auth/logout",
            Some(&s.access),
            &json!({"refresh_token": s.refresh}),
        )
        .await?;
    ensure!(a.status == 204, "logout: {} {}", a.status, a.text);
    let cookies = set_cookies(&a);
    ensure!(
        cookies.iter().filter(|c| c.contains("Max-Age=0")).count() == 2,
        "both cookies cleared: {cookies:?}"
    );
    let r = api
        .post("/api/auth/refresh", None, &json!({"refresh_token": s.refresh}))
        .await?;
    ensure!(r.status == 401, "refresh after logout: {} {}", r.status, r.text);
    let again = api.post("/api/auth/logout", None, &json!({})).await?;
    ensure!(again.status == 204, "logging out twice is fine: {}", again.status);
    Ok(())
}

async fn cookie_requests_that_change_state_need_our_origin(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("csrf").await?;
    let post = |origin: Option<&str>| {
        let mut rb = api
            .request(Method::POST, "/api/streams")
            .header("cookie", format!("sl_access={}", s.access))
            .json(&json!({"title": "cookie stream"}));
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        rb
    };
    let foreign = api.send(post(Some("https://evil.example"))).await?;
    ensure!(
        foreign.status == 403 && foreign.code() == "cross_origin",
        "foreign origin: {} {}",
        foreign.status,
        foreign.text
    );
    let missing = api.send(post(None)).await?;
    ensure!(
        missing.status == 403,
        "no origin with a cookie: {} {}",
        missing.status,
        missing.text
    );
    let own = api.send(post(Some(&app.site))).await?;
    ensure!(own.status == 201, "own origin: {} {}", own.status, own.text);
    // Bearer clients are not browsers: no Origin needed.
    let bearer = api
        .post("/api/streams", Some(&s.access), &json!({"title": "bearer stream"}))
        .await?;
    ensure!(bearer.status == 201, "bearer: {} {}", bearer.status, bearer.text);
    Ok(())
}

async fn login_is_rate_limited_per_username_and_per_ip(app: &TestApp) -> TestResult {
    // Each part again, with new names and addresses, when its attempts straddled two of the limit's windows.
    let mut tries = 0;
    loop {
        tries += 1;
        let window = sunnylive_e2e::limit_window(300);
        let api = app.api();
        let s = api.register("limited").await?;
        let mut last = None;
        for _ in 0..11 {
            // A fresh address each time: only the per-username limit can trip.
            let a = app.api().login(&s.username, "wrong password").await?;
            last = Some(a);
        }
        let a = last.ok_or("no attempts made")?;
        if a.status != 429 && sunnylive_e2e::limit_window(300) != window && tries < 3 {
            continue;
        }
        ensure!(
            a.status == 429 && a.code() == "rate_limited",
            "11th wrong password for one name: {} {}",
            a.status,
            a.text
        );
        let retry: u64 = a.header("retry-after").ok_or("429 without Retry-After")?.parse()?;
        ensure!((1..=300).contains(&retry), "Retry-After {retry}");
        // Even the right password waits out the window (otherwise the limit would tell an attacker when they hit it).
        ensure!(
            app.api().login(&s.username, &s.password).await?.status == 429,
            "the limit holds for the right password too"
        );
        break;
    }

    let mut tries = 0;
    loop {
        tries += 1;
        let window = sunnylive_e2e::limit_window(300);
        let one_ip = app.api();
        let mut statuses = Vec::new();
        for _ in 0..31 {
            statuses.push(one_ip.login(&unique_name("nobody"), "whatever1").await?.status);
        }
        if statuses[30] != 429 && sunnylive_e2e::limit_window(300) != window && tries < 3 {
            continue;
        }
        ensure!(
            statuses[..30].iter().all(|s| *s == 401),
            "the first 30 from one address are judged: {statuses:?}"
        );
        ensure!(
            statuses[30] == 429,
            "the 31st from one address is limited: {statuses:?}"
        );
        return Ok(());
    }
}
