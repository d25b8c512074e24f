//! A person's own account (issue 26), end to end: a password change ends every other sign-in (its access, its
//! refresh and its chat socket) and the old password; sign-ins are listed by a coarse place only and end one by one
//! or all but this one; a recovery code signs in once and never again; and bad input is refused in the contract's
//! shape with nothing changed.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};
use sunnylive_e2e::ws::{ChatClient, Credentials};
use sunnylive_e2e::{ensure, session, Answer, Api, Session, TestApp, TestResult};

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        a_password_change_ends_the_other_sign_ins_access_and_chat_socket_within_2_s_and_the_old_password,
        sign_ins_are_listed_by_coarse_place_only_and_end_one_by_one_or_all_but_this_one,
        a_recovery_code_signs_in_once_and_never_again_and_a_new_set_voids_the_old,
        bad_passwords_and_codes_are_refused_in_the_contracts_shape_and_change_nothing,
        wrong_current_passwords_count_toward_the_login_lockout,
    )
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
const CHROME: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

static NEXT: AtomicU32 = AtomicU32::new(1);

/// A fresh IPv4 client address in TEST-NET-1 (RFC 5737), only ever a header value: (address, its /24).
fn ipv4_client() -> (String, String) {
    let n = NEXT.fetch_add(1, Ordering::SeqCst) + std::process::id() % 1000 * 50;
    let (c, d) = ((n / 250) % 256, n % 250 + 1);
    (format!("192.0.{c}.{d}"), format!("192.0.{c}.0/24"))
}

/// A fresh IPv6 client address in the documentation range (RFC 3849): (address, its /48).
fn ipv6_client() -> (String, String) {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    // The upper half of 2001:db8::/32 by /48 (`next_ip` keeps to the lower half), below security's fffe/ffff.
    let a = 0x8000 + (std::process::id() & 0x0fff);
    (format!("2001:db8:{a:x}:{n:x}::5"), format!("2001:db8:{a:x}::/48"))
}

async fn login(api: &Api, username: &str, password: &str, user_agent: &str) -> Result<Answer, sunnylive_e2e::BoxError> {
    api.send(
        api.request(Method::POST, "/api/auth/login")
            .header("user-agent", user_agent)
            .json(&json!({ "username": username, "password": password })),
    )
    .await
}

async fn refresh(api: &Api, who: &Session) -> Result<Answer, sunnylive_e2e::BoxError> {
    api.post("/api/auth/refresh", None, &json!({ "refresh_token": who.refresh }))
        .await
}

async fn change_password(
    api: &Api,
    who: &Session,
    current: &str,
    new: &str,
) -> Result<Answer, sunnylive_e2e::BoxError> {
    api.post(
        "/api/me/password",
        Some(&who.access),
        &json!({ "current_password": current, "new_password": new }),
    )
    .await
}

/// The contract's error shape: `{"error": {"code", "message"}}` with the given status and code.
fn refused(a: &Answer, status: u16, code: &str) -> bool {
    a.status == status && a.code() == code && a.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty())
}

async fn a_password_change_ends_the_other_sign_ins_access_and_chat_socket_within_2_s_and_the_old_password(
    app: &TestApp,
) -> TestResult {
    let api = app.api();
    let host = api.register("pwhost").await?;
    let (stream_id, _) = api.create_stream(&host, "password change").await?;
    let me = api.register("pwchange").await?;
    let elsewhere_api = app.api();
    let other = login(&elsewhere_api, &me.username, &me.password, CHROME).await?;
    ensure!(other.status == 200, "second sign-in: {} {}", other.status, other.text);
    let other = session(&other, &me.password);
    let mut other_socket = ChatClient::connect(&app.base, &stream_id, Credentials::Bearer(&other.access)).await?;
    let mut my_socket = ChatClient::connect(&app.base, &stream_id, Credentials::Bearer(&me.access)).await?;

    let new_password = format!("{}-renewed", me.password);
    let started = Instant::now();
    let changed = change_password(&api, &me, &me.password, &new_password).await?;
    ensure!(
        changed.status == 200,
        "change password: {} {}",
        changed.status,
        changed.text
    );
    ensure!(changed.body["ended"] == 1, "one other sign-in ended: {}", changed.text);

    let code = other_socket.close_code(Duration::from_secs(2)).await?;
    let socket_closed_after = started.elapsed();
    println!(
        "account: the other sign-in's chat socket closed {socket_closed_after:?} after the password change was sent"
    );
    ensure!(
        code == 1000 || code == 1008,
        "the other sign-in's chat socket closed with {code}"
    );
    ensure!(
        socket_closed_after <= Duration::from_secs(2),
        "the other sign-in's socket closed {socket_closed_after:?} after the change"
    );
    let access = elsewhere_api.get("/api/me", Some(&other.access)).await?;
    ensure!(
        access.status == 401 && started.elapsed() <= Duration::from_secs(2),
        "the other sign-in's access token is refused within 2 s: {} {} after {:?}",
        access.status,
        access.text,
        started.elapsed()
    );
    let other_refresh = refresh(&elsewhere_api, &other).await?;
    ensure!(
        other_refresh.status == 401,
        "the other sign-in's refresh: {}",
        other_refresh.status
    );
    let reopened = ChatClient::connect(&app.base, &stream_id, Credentials::Bearer(&other.access)).await;
    ensure!(
        reopened.is_err(),
        "the other sign-in's access token opens no new chat socket"
    );

    // This sign-in stays: its access, its refresh and its socket.
    let mine = api.get("/api/me", Some(&me.access)).await?;
    ensure!(
        mine.status == 200,
        "this sign-in's access: {} {}",
        mine.status,
        mine.text
    );
    my_socket.send_json(&json!({ "type": "ping" })).await?;
    let pong: Value = my_socket.next_of_type("pong", Duration::from_secs(5)).await?;
    ensure!(pong["type"] == "pong", "this sign-in's socket is open");
    my_socket.close().await;
    let my_refresh = refresh(&api, &me).await?;
    ensure!(
        my_refresh.status == 200,
        "this sign-in refreshes: {} {}",
        my_refresh.status,
        my_refresh.text
    );

    let old = login(&app.api(), &me.username, &me.password, FIREFOX).await?;
    ensure!(
        refused(&old, 401, "invalid_credentials"),
        "the old password: {} {}",
        old.status,
        old.text
    );
    let new = login(&app.api(), &me.username, &new_password, FIREFOX).await?;
    ensure!(new.status == 200, "the new password: {} {}", new.status, new.text);
    Ok(())
}

async fn sign_ins_are_listed_by_coarse_place_only_and_end_one_by_one_or_all_but_this_one(app: &TestApp) -> TestResult {
    let registrar = app.api();
    let user = registrar.register("places").await?;
    let (v4, v4_net) = ipv4_client();
    let (v6, v6_net) = ipv6_client();
    let (v4_api, v6_api) = (Api::new(&app.base, v4.clone()), Api::new(&app.base, v6.clone()));
    let a = login(&v4_api, &user.username, &user.password, FIREFOX).await?;
    ensure!(a.status == 200, "sign-in from IPv4: {} {}", a.status, a.text);
    let a = session(&a, &user.password);
    let b = login(&v6_api, &user.username, &user.password, CHROME).await?;
    ensure!(b.status == 200, "sign-in from IPv6: {} {}", b.status, b.text);
    let b = session(&b, &user.password);

    let list = v4_api.get("/api/me/logins", Some(&a.access)).await?;
    ensure!(list.status == 200, "list: {} {}", list.status, list.text);
    let logins = list.body["logins"].as_array().cloned().unwrap_or_default();
    ensure!(
        logins.len() == 3,
        "three sign-ins (registration and two logins): {}",
        list.text
    );
    let by_network = |net: &str| {
        logins
            .iter()
            .find(|l| l["network"] == net)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let (from_v4, from_v6) = (by_network(&v4_net), by_network(&v6_net));
    ensure!(
        from_v4["browser"] == "Firefox" && from_v4["current"] == true,
        "the IPv4 sign-in, by its /24, is this one: {}",
        list.text
    );
    ensure!(
        from_v6["browser"] == "Chrome" && from_v6["current"] == false,
        "the IPv6 sign-in, by its /48: {}",
        list.text
    );
    ensure!(
        logins.iter().filter(|l| l["current"] == true).count() == 1,
        "exactly one is current: {}",
        list.text
    );
    for l in &logins {
        ensure!(
            l["created_at"].is_string() && l["last_used_at"].is_string() && l["id"].is_string(),
            "each has an id, created and last used: {l}"
        );
    }
    // A coarse place only: no full address, in the list or anywhere in its answer.
    let v6_host_part = v6.trim_end_matches("::5");
    ensure!(
        !list.text.contains(&v4) && !list.text.contains(v6_host_part) && !list.text.contains("Mozilla"),
        "the list carries no full address or User-Agent: {}",
        list.text
    );

    // Someone else's sign-in is not found, and stays.
    let stranger = app.api().register("stranger").await?;
    let theirs = app.api().get("/api/me/logins", Some(&stranger.access)).await?;
    let their_id = theirs.body["logins"][0]["id"].as_str().unwrap_or_default().to_string();
    let nope = v4_api
        .send(
            v4_api
                .request(Method::DELETE, &format!("/api/me/logins/{their_id}"))
                .bearer_auth(&a.access),
        )
        .await?;
    ensure!(
        refused(&nope, 404, "login_not_found"),
        "ending a stranger's sign-in: {} {}",
        nope.status,
        nope.text
    );
    let still = app.api().get("/api/me", Some(&stranger.access)).await?;
    ensure!(still.status == 200, "the stranger is still signed in: {}", still.status);

    // End one: the IPv6 sign-in.
    let b_id = from_v6["id"].as_str().unwrap_or_default();
    let ended = v4_api
        .send(
            v4_api
                .request(Method::DELETE, &format!("/api/me/logins/{b_id}"))
                .bearer_auth(&a.access),
        )
        .await?;
    ensure!(ended.status == 204, "end one: {} {}", ended.status, ended.text);
    ensure!(
        refresh(&v6_api, &b).await?.status == 401,
        "the ended sign-in cannot refresh"
    );
    ensure!(
        v6_api.get("/api/me", Some(&b.access)).await?.status == 401,
        "the ended sign-in's access token is refused"
    );
    let list = v4_api.get("/api/me/logins", Some(&a.access)).await?;
    ensure!(
        list.body["logins"].as_array().map(Vec::len) == Some(2) && !list.text.contains(b_id),
        "the ended sign-in is gone from the list: {}",
        list.text
    );

    // End all others: the registration's sign-in goes, this one stays.
    let others = v4_api
        .post("/api/me/logins/end-others", Some(&a.access), &json!({}))
        .await?;
    ensure!(
        others.status == 200 && others.body["ended"] == 1,
        "end all others: {} {}",
        others.status,
        others.text
    );
    ensure!(
        refresh(&registrar, &user).await?.status == 401,
        "the registration's sign-in is ended"
    );
    let list = v4_api.get("/api/me/logins", Some(&a.access)).await?;
    let logins = list.body["logins"].as_array().cloned().unwrap_or_default();
    ensure!(
        logins.len() == 1 && logins[0]["current"] == true,
        "only this sign-in is left: {}",
        list.text
    );
    ensure!(
        refresh(&v4_api, &a).await?.status == 200,
        "this sign-in still refreshes"
    );
    Ok(())
}

async fn create_codes(api: &Api, who: &Session, password: &str) -> Result<Vec<String>, sunnylive_e2e::BoxError> {
    let a = api
        .post(
            "/api/me/recovery-codes",
            Some(&who.access),
            &json!({ "password": password }),
        )
        .await?;
    ensure!(a.status == 201, "recovery codes: {} {}", a.status, a.text);
    Ok(a.body["codes"]
        .as_array()
        .map(|c| c.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default())
}

async fn recover(api: &Api, username: &str, code: &str, new_password: &str) -> Result<Answer, sunnylive_e2e::BoxError> {
    api.post(
        "/api/auth/recover",
        None,
        &json!({ "username": username, "code": code, "new_password": new_password }),
    )
    .await
}

async fn a_recovery_code_signs_in_once_and_never_again_and_a_new_set_voids_the_old(app: &TestApp) -> TestResult {
    let api = app.api();
    let me = api.register("recovers").await?;
    let codes = create_codes(&api, &me, &me.password).await?;
    ensure!(codes.len() == 10, "ten codes: {codes:?}");
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    ensure!(distinct.len() == 10, "all different: {codes:?}");

    let first_password = "forgotten-then-found-1";
    let recovered = recover(&app.api(), &me.username, &codes[0], first_password).await?;
    ensure!(
        recovered.status == 200,
        "recover with a code: {} {}",
        recovered.status,
        recovered.text
    );
    for field in ["access_token", "refresh_token", "expires_in"] {
        ensure!(
            !recovered.body[field].is_null(),
            "signs in like login ({field}): {}",
            recovered.text
        );
    }
    ensure!(
        recovered.body["user"]["username"] == me.username.as_str(),
        "as the user: {}",
        recovered.text
    );
    let recovered = session(&recovered, first_password);
    ensure!(
        api.get("/api/me", Some(&recovered.access)).await?.status == 200,
        "the recovered sign-in works"
    );
    // A lost password may be a stolen one: every earlier sign-in is ended.
    ensure!(refresh(&api, &me).await?.status == 401, "the earlier sign-in is ended");
    let old = login(&app.api(), &me.username, &me.password, FIREFOX).await?;
    ensure!(old.status == 401, "the old password no longer works: {}", old.status);
    let new = login(&app.api(), &me.username, first_password, FIREFOX).await?;
    ensure!(new.status == 200, "the new password works: {} {}", new.status, new.text);

    // The same code never again.
    let again = recover(&app.api(), &me.username, &codes[0], "another-new-password").await?;
    ensure!(
        refused(&again, 401, "invalid_credentials"),
        "a used code: {} {}",
        again.status,
        again.text
    );
    let still = login(&app.api(), &me.username, first_password, FIREFOX).await?;
    ensure!(still.status == 200, "the used code changed nothing: {}", still.status);

    // Another code of the set works, typed in capitals without dashes.
    let typed = codes[1].to_uppercase().replace('-', "");
    let second = recover(&app.api(), &me.username, &typed, "forgotten-then-found-2").await?;
    ensure!(
        second.status == 200,
        "a second code, typed loosely: {} {}",
        second.status,
        second.text
    );
    let second = session(&second, "forgotten-then-found-2");

    // A new set voids the old one.
    let fresh = create_codes(&api, &second, "forgotten-then-found-2").await?;
    ensure!(fresh.iter().all(|c| !codes.contains(c)), "a new set of codes");
    let voided = recover(&app.api(), &me.username, &codes[2], "forgotten-then-found-3").await?;
    ensure!(
        refused(&voided, 401, "invalid_credentials"),
        "a code of the old set: {} {}",
        voided.status,
        voided.text
    );
    let works = recover(&app.api(), &me.username, &fresh[0], "forgotten-then-found-3").await?;
    ensure!(
        works.status == 200,
        "a code of the new set: {} {}",
        works.status,
        works.text
    );
    Ok(())
}

async fn bad_passwords_and_codes_are_refused_in_the_contracts_shape_and_change_nothing(app: &TestApp) -> TestResult {
    let api = app.api();
    let me = api.register("badinput").await?;
    let other = login(&app.api(), &me.username, &me.password, CHROME).await?;
    ensure!(other.status == 200, "second sign-in: {}", other.status);
    let other = session(&other, &me.password);

    let wrong = change_password(&api, &me, "not-the-password", "a-perfectly-good-one").await?;
    ensure!(
        refused(&wrong, 403, "wrong_password"),
        "wrong current password: {} {}",
        wrong.status,
        wrong.text
    );
    let short = change_password(&api, &me, &me.password, "short").await?;
    ensure!(
        refused(&short, 422, "validation_failed") && short.body["error"]["fields"]["new_password"].is_string(),
        "a new password failing the rules: {} {}",
        short.status,
        short.text
    );
    let missing = api.post("/api/me/password", Some(&me.access), &json!({})).await?;
    ensure!(
        missing.status == 422
            && missing.body["error"]["fields"]["current_password"].is_string()
            && missing.body["error"]["fields"]["new_password"].is_string(),
        "both fields required, at once: {} {}",
        missing.status,
        missing.text
    );
    let anonymous = api
        .post(
            "/api/me/password",
            None,
            &json!({ "current_password": me.password, "new_password": "a-perfectly-good-one" }),
        )
        .await?;
    ensure!(
        refused(&anonymous, 401, "not_authenticated"),
        "anonymous: {} {}",
        anonymous.status,
        anonymous.text
    );
    // Nothing changed: the password, and the other sign-in.
    let same = login(&app.api(), &me.username, &me.password, FIREFOX).await?;
    ensure!(
        same.status == 200,
        "the password is unchanged: {} {}",
        same.status,
        same.text
    );
    ensure!(
        refresh(&api, &other).await?.status == 200,
        "the other sign-in is untouched"
    );

    let codes = create_codes(&api, &me, &me.password).await?;
    let no_codes = api
        .post(
            "/api/me/recovery-codes",
            Some(&me.access),
            &json!({ "password": "not-the-password" }),
        )
        .await?;
    ensure!(
        refused(&no_codes, 403, "wrong_password"),
        "codes with a wrong password: {} {}",
        no_codes.status,
        no_codes.text
    );
    let unknown = recover(&app.api(), &me.username, "aaaa-bbbb-cccc", "a-perfectly-good-one").await?;
    ensure!(
        refused(&unknown, 401, "invalid_credentials"),
        "an unknown code: {} {}",
        unknown.status,
        unknown.text
    );
    let nobody = recover(&app.api(), "nobody-at-all-here", &codes[0], "a-perfectly-good-one").await?;
    ensure!(
        refused(&nobody, 401, "invalid_credentials"),
        "an unknown user: {} {}",
        nobody.status,
        nobody.text
    );
    let malformed = recover(&app.api(), &me.username, "not a code", "short").await?;
    ensure!(
        refused(&malformed, 422, "validation_failed")
            && malformed.body["error"]["fields"]["code"].is_string()
            && malformed.body["error"]["fields"]["new_password"].is_string(),
        "a malformed code and a short password, both reported: {} {}",
        malformed.status,
        malformed.text
    );
    let weak = recover(&app.api(), &me.username, &codes[0], "short").await?;
    ensure!(
        weak.status == 422,
        "a good code with a weak password: {} {}",
        weak.status,
        weak.text
    );
    // None of that used up or replaced the codes, or changed the password.
    let same = login(&app.api(), &me.username, &me.password, FIREFOX).await?;
    ensure!(same.status == 200, "the password is unchanged: {}", same.status);
    let works = recover(&app.api(), &me.username, &codes[0], "a-perfectly-good-one").await?;
    ensure!(
        works.status == 200,
        "the first code still works: {} {}",
        works.status,
        works.text
    );
    Ok(())
}

async fn wrong_current_passwords_count_toward_the_login_lockout(app: &TestApp) -> TestResult {
    let api = app.api();
    let me = api.register("lockme").await?;
    // Never signed in by login, so this client counts with strangers: ten failures lock the username.
    for i in 0..10 {
        let wrong = change_password(&api, &me, &format!("wrong-guess-{i}"), "a-perfectly-good-one").await?;
        ensure!(wrong.status == 403, "wrong guess {i}: {} {}", wrong.status, wrong.text);
    }
    let locked = change_password(&api, &me, &me.password, "a-perfectly-good-one").await?;
    ensure!(
        refused(&locked, 429, "rate_limited") && locked.header("retry-after").is_some(),
        "past the lockout even the right password waits: {} {}",
        locked.status,
        locked.text
    );
    let login_too = login(&app.api(), &me.username, &me.password, FIREFOX).await?;
    ensure!(
        login_too.status == 429,
        "the guesses counted like failed logins: {} {}",
        login_too.status,
        login_too.text
    );
    Ok(())
}
