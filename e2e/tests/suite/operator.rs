//! The operator (issue 26), end to end: a role given only by `scripts/admin grant`; an operator ends a live stream
//! (the publisher cut within one heartbeat, the key refused until rotated), suspends a user (sign-in, publish and
//! chat refused, open sockets closed) and lifts it, deletes chat messages and broadcasts, and closes reports; every
//! act is in the audit; a normal user on any operator route gets 403 and changes nothing; reports are validated and
//! rate-limited.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};
use sunnylive_e2e::ws::{ChatClient, Credentials};
use sunnylive_e2e::{ensure, repo_root, Answer, Api, BoxError, Session, TestApp, TestResult, ORIGIN_TOKEN};
use sunnylive_e2e::{wrangler_env, TEST_HEARTBEAT_SECONDS};

use crate::rtmp::{new_stream, wait_for_playlist, wait_for_status, Publisher};
use crate::streams::callback;

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        an_operator_ends_a_live_stream_the_publisher_is_cut_and_the_key_refused_until_rotated,
        an_operator_suspends_a_user_refusing_sign_in_publish_and_chat_and_lifts_it,
        a_normal_user_gets_403_on_every_operator_route_and_nothing_changes,
        a_report_is_filed_then_closed_with_an_act_and_reports_past_the_limit_are_refused,
    )
}

static CLIENT_IDS: AtomicU32 = AtomicU32::new(8_100_000);

/// Operators made before the parallel tests start (`prepare`), as (username, password). `scripts/admin` writes the
/// local D1 from another process; a request the Worker serves meanwhile can find the local D1 unable to give its
/// session bookmark (a 500 "Failed to get session commit token" that no production D1 shows, since nothing writes
/// to it from outside). So the suite grants them while nothing else runs, and tests sign in as one.
static PREPARED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Makes `n` operators for the tests that need one (this module's, a clip's, the browser suite's Operator page).
pub fn prepare(app: &TestApp, n: usize) -> Result<(), BoxError> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        for _ in 0..n {
            let op = grant_new(app, &app.api()).await?;
            PREPARED.lock().expect("BUG: poisoned").push((op.username, op.password));
        }
        Ok(())
    })
}

/// An operator made by `prepare`, taken for one test (None when all are taken).
pub fn take_prepared() -> Option<(String, String)> {
    PREPARED.lock().expect("BUG: poisoned").pop()
}

/// An operator signed in for this test: one `prepare` made, or (a filtered run) one made now.
pub async fn operator(app: &TestApp, api: &Api) -> Result<Session, BoxError> {
    match take_prepared() {
        Some((username, password)) => {
            let a = api
                .post(
                    "/api/auth/login",
                    None,
                    &serde_json::json!({ "username": username, "password": password }),
                )
                .await?;
            ensure!(a.status == 200, "operator sign-in: {} {}", a.status, a.text);
            Ok(sunnylive_e2e::session(&a, &password))
        }
        None => grant_new(app, api).await,
    }
}

/// Registers someone and makes them an operator the documented way: `scripts/admin grant`, against this stack's D1.
async fn grant_new(app: &TestApp, api: &Api) -> Result<Session, BoxError> {
    let op = api.register("oper").await?;
    let mut cmd = std::process::Command::new(repo_root().join("scripts/admin"));
    cmd.current_dir(repo_root())
        .args(["grant", &op.username])
        .env("SUNNYLIVE_ADMIN_PERSIST_TO", app.run_dir.join("state"));
    wrangler_env(&mut cmd);
    // A write from outside the Worker can find the local database busy: tried up to three times.
    let mut last = String::new();
    for _ in 0..3 {
        let out = cmd.output()?;
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&op.username) {
            return Ok(op);
        }
        last = format!(
            "{} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("scripts/admin grant: {last}").into())
}

async fn admin_post(api: &Api, who: &Session, path: &str, body: &Value) -> Result<Answer, BoxError> {
    api.post(path, Some(&who.access), body).await
}

async fn admin_delete(api: &Api, who: &Session, path: &str) -> Result<Answer, BoxError> {
    api.send(api.request(Method::DELETE, path).bearer_auth(&who.access))
        .await
}

/// The audit rows about `target_id`, newest first.
async fn audit_of(api: &Api, op: &Session, target_id: &str) -> Result<Vec<Value>, BoxError> {
    let a = api.get("/api/admin/audit?limit=100", Some(&op.access)).await?;
    ensure!(a.status == 200, "audit: {} {}", a.status, a.text);
    Ok(a.body["entries"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["target_id"] == target_id).cloned().collect())
        .unwrap_or_default())
}

fn audited(rows: &[Value], op: &Session, action: &str, reason: &str) -> bool {
    rows.iter().any(|e| {
        e["action"] == action
            && e["reason"] == reason
            && e["operator_id"] == op.user_id.as_str()
            && e["operator"] == op.username.as_str()
            && e["at"].as_str().is_some_and(|t| t.ends_with('Z'))
    })
}

async fn an_operator_ends_a_live_stream_the_publisher_is_cut_and_the_key_refused_until_rotated(
    app: &TestApp,
) -> TestResult {
    let (api, owner, id, key) = new_stream(app, "opend").await?;
    let op = operator(app, &api).await?;
    let mut publisher = Publisher::start(app, &key, 90, "320x180")?;
    wait_for_playlist(app, &id, Duration::from_secs(45)).await?;
    ensure!(publisher.still_running(), "the publisher is running");

    let reason = "a broadcast of a crime in progress";
    let started = Instant::now();
    let a = admin_post(
        &api,
        &op,
        &format!("/api/admin/streams/{id}/end"),
        &json!({ "reason": reason }),
    )
    .await?;
    ensure!(
        a.status == 200 && a.body["key_blocked"] == true,
        "end: {} {}",
        a.status,
        a.text
    );
    let (status, err) = publisher
        .finish(Duration::from_secs(TEST_HEARTBEAT_SECONDS + 3))
        .await?;
    ensure!(!status.success(), "the publisher is cut: {status} {err}");
    println!("operator: the publisher was cut {:?} after the end", started.elapsed());
    wait_for_status(&api, &id, "offline", Duration::from_secs(5)).await?;

    // The key stays refused, however often it is tried, until the owner rotates it.
    let client = CLIENT_IDS.fetch_add(1, Ordering::SeqCst);
    let again = callback(&api, "on-publish", &key, client, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        again.status == 403 && again.code() == "stream_key_refused",
        "the blocked key: {} {}",
        again.status,
        again.text
    );
    let rotated = api
        .post(&format!("/api/streams/{id}/key"), Some(&owner.access), &json!({}))
        .await?;
    ensure!(rotated.status == 200, "rotate: {} {}", rotated.status, rotated.text);
    let new_key = rotated.body["stream_key"].as_str().unwrap_or_default();
    let fresh = callback(&api, "on-publish", new_key, client, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        fresh.status == 302,
        "the rotated key publishes: {} {}",
        fresh.status,
        fresh.text
    );
    callback(&api, "on-publish-done", new_key, client, Some(ORIGIN_TOKEN)).await?;

    ensure!(
        audited(&audit_of(&api, &op, &id).await?, &op, "end_stream", reason),
        "the end is in the audit"
    );
    Ok(())
}

async fn an_operator_suspends_a_user_refusing_sign_in_publish_and_chat_and_lifts_it(app: &TestApp) -> TestResult {
    let (api, user, id, key) = new_stream(app, "opsus").await?;
    let op = operator(app, &api).await?;
    let host = app.api();
    let other = host.register("opsushost").await?;
    let (room, _) = host.create_stream(&other, "a room").await?;
    let mut socket = ChatClient::connect(&app.base, &room, Credentials::Bearer(&user.access)).await?;
    let client = CLIENT_IDS.fetch_add(1, Ordering::SeqCst);
    let publish = callback(&api, "on-publish", &key, client, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        publish.status == 302,
        "publishing before: {} {}",
        publish.status,
        publish.text
    );

    let reason = "ban evasion";
    let started = Instant::now();
    let a = admin_post(
        &api,
        &op,
        &format!("/api/admin/users/{}/suspend", user.user_id),
        &json!({ "reason": reason }),
    )
    .await?;
    ensure!(
        a.status == 200 && a.body["suspended"] == true && a.body["ended"] == 1,
        "suspend: {} {}",
        a.status,
        a.text
    );
    let code = socket.close_code(Duration::from_secs(2)).await?;
    ensure!(
        code == 1008 && started.elapsed() <= Duration::from_secs(2),
        "the open socket closed: {code} after {:?}",
        started.elapsed()
    );
    ensure!(
        api.get("/api/me", Some(&user.access)).await?.status == 401,
        "the access token"
    );
    let refresh = api
        .post("/api/auth/refresh", None, &json!({ "refresh_token": user.refresh }))
        .await?;
    ensure!(refresh.status == 401, "the refresh token: {}", refresh.status);
    let login = api.login(&user.username, &user.password).await?;
    ensure!(
        login.status == 403 && login.code() == "account_suspended",
        "sign-in: {} {}",
        login.status,
        login.text
    );
    ensure!(
        ChatClient::connect(&app.base, &room, Credentials::Bearer(&user.access))
            .await
            .is_err(),
        "no new chat socket"
    );
    // The live publish's next heartbeat is refused (nginx drops it), and so is a new publish.
    let beat = callback(&api, "on-update", &key, client, Some(ORIGIN_TOKEN)).await?;
    ensure!(beat.status == 403, "the heartbeat: {} {}", beat.status, beat.text);
    let again = callback(&api, "on-publish", &key, client + 1, Some(ORIGIN_TOKEN)).await?;
    ensure!(again.status == 403, "a new publish: {} {}", again.status, again.text);
    callback(&api, "on-publish-done", &key, client, Some(ORIGIN_TOKEN)).await?;
    ensure!(api.stream(&id).await?["id"] == id.as_str(), "the stream itself stays");

    let lift = "appeal upheld";
    let a = admin_post(
        &api,
        &op,
        &format!("/api/admin/users/{}/unsuspend", user.user_id),
        &json!({ "reason": lift }),
    )
    .await?;
    ensure!(
        a.status == 200 && a.body["suspended"] == false,
        "unsuspend: {} {}",
        a.status,
        a.text
    );
    let login = api.login(&user.username, &user.password).await?;
    ensure!(login.status == 200, "sign-in after: {} {}", login.status, login.text);

    let rows = audit_of(&api, &op, &user.user_id).await?;
    ensure!(
        audited(&rows, &op, "suspend_user", reason) && audited(&rows, &op, "unsuspend_user", lift),
        "both acts are in the audit: {rows:?}"
    );
    let nobody = admin_post(
        &api,
        &op,
        "/api/admin/users/zzzzzzzzzzzzzzzz/suspend",
        &json!({ "reason": "typo" }),
    )
    .await?;
    ensure!(
        nobody.status == 404 && nobody.code() == "user_not_found",
        "no such user: {} {}",
        nobody.status,
        nobody.text
    );
    ensure!(
        audit_of(&api, &op, "zzzzzzzzzzzzzzzz").await?.is_empty(),
        "an act that did not happen is not audited"
    );
    Ok(())
}

async fn a_normal_user_gets_403_on_every_operator_route_and_nothing_changes(app: &TestApp) -> TestResult {
    let api = app.api();
    let owner = api.register("opvictim").await?;
    let (stream, key) = api.create_stream(&owner, "not to be touched").await?;
    let (broadcast, client) = crate::video::start_broadcast(&api, &key).await?;
    crate::video::end_broadcast(&api, &key, client).await?;
    let mut socket = ChatClient::connect(&app.base, &stream, Credentials::Bearer(&owner.access)).await?;
    socket.send_json(&json!({"type": "chat", "text": "keep me"})).await?;
    let said = socket.next_of_type("chat", Duration::from_secs(5)).await?;
    let message = said["id"].as_str().unwrap_or_default().to_string();
    let viewer = app.api().register("opnobody").await?;
    let filed = api
        .post(
            "/api/reports",
            Some(&viewer.access),
            &json!({"target_type": "stream", "target_id": stream, "reason": "spam"}),
        )
        .await?;
    ensure!(filed.status == 201, "a report: {} {}", filed.status, filed.text);
    let report = filed.body["report"]["id"].as_str().unwrap_or_default().to_string();

    let why = json!({ "reason": "because I can" });
    let calls: Vec<(Method, String, Value)> = vec![
        (Method::GET, "/api/admin/reports".into(), Value::Null),
        (Method::GET, "/api/admin/audit".into(), Value::Null),
        (
            Method::POST,
            format!("/api/admin/reports/{report}/close"),
            json!({"resolution": "no_action", "reason": "x"}),
        ),
        (Method::POST, format!("/api/admin/streams/{stream}/end"), why.clone()),
        (
            Method::POST,
            format!("/api/admin/users/{}/suspend", owner.user_id),
            why.clone(),
        ),
        (
            Method::POST,
            format!("/api/admin/users/{}/unsuspend", owner.user_id),
            why.clone(),
        ),
        (
            Method::DELETE,
            format!("/api/admin/broadcasts/{broadcast}?reason=x"),
            Value::Null,
        ),
        (
            Method::DELETE,
            format!("/api/admin/streams/{stream}/messages/{message}?reason=x"),
            Value::Null,
        ),
        (
            Method::DELETE,
            "/api/admin/clips/aaaaaaaaaaaaaaaa?reason=x".into(),
            Value::Null,
        ),
    ];
    // Every operator route of the contract is in the list above.
    let doc = api.get("/api/openapi.json", None).await?;
    let admin_ops: usize = doc.body["paths"]
        .as_object()
        .map(|p| {
            p.iter()
                .filter(|(k, _)| k.starts_with("/api/admin/"))
                .map(|(_, ops)| {
                    ops.as_object()
                        .map_or(0, |o| o.keys().filter(|k| *k != "parameters").count())
                })
                .sum()
        })
        .unwrap_or(0);
    ensure!(
        admin_ops == calls.len(),
        "{admin_ops} operator operations, {} tried",
        calls.len()
    );
    for (method, path, body) in &calls {
        let mut rb = api.request(method.clone(), path).bearer_auth(&viewer.access);
        if !body.is_null() {
            rb = rb.json(body);
        }
        let a = api.send(rb).await?;
        ensure!(
            a.status == 403 && a.code() == "not_operator",
            "{method} {path} as a normal user: {} {}",
            a.status,
            a.text
        );
        let anonymous = api.send(api.request(method.clone(), path)).await?;
        ensure!(
            anonymous.status == 401,
            "{method} {path} anonymously: {}",
            anonymous.status
        );
    }
    // Nothing changed: the owner is signed in, the stream, its broadcast and the message are all there.
    ensure!(
        api.get("/api/me", Some(&owner.access)).await?.status == 200,
        "the owner is signed in"
    );
    socket.send_json(&json!({"type": "ping"})).await?;
    socket.next_of_type("pong", Duration::from_secs(5)).await?;
    let b = api.get(&format!("/api/streams/{stream}/broadcasts"), None).await?;
    ensure!(
        b.body["broadcasts"][0]["id"] == broadcast.as_str(),
        "the broadcast: {}",
        b.text
    );
    let h = api.get(&format!("/api/streams/{stream}/messages"), None).await?;
    ensure!(h.text.contains("keep me"), "the message: {}", h.text);
    let c = callback(&api, "on-publish", &key, client + 1, Some(ORIGIN_TOKEN)).await?;
    ensure!(c.status == 302, "the key still publishes: {} {}", c.status, c.text);
    callback(&api, "on-publish-done", &key, client + 1, Some(ORIGIN_TOKEN)).await?;
    let op = operator(app, &api).await?;
    let open = api.get("/api/admin/reports?limit=100", Some(&op.access)).await?;
    ensure!(open.text.contains(&report), "the report is still open: {}", open.text);
    for target in [&stream, &owner.user_id, &broadcast, &report] {
        ensure!(
            audit_of(&api, &op, target).await?.is_empty(),
            "no act on {target} was audited"
        );
    }
    Ok(())
}

async fn a_report_is_filed_then_closed_with_an_act_and_reports_past_the_limit_are_refused(app: &TestApp) -> TestResult {
    let api = app.api();
    let host = api.register("ophost").await?;
    let (stream, key) = api.create_stream(&host, "reported").await?;
    let viewer = app.api().register("opviewer").await?;
    let mut socket = ChatClient::connect(&app.base, &stream, Credentials::Bearer(&viewer.access)).await?;
    socket
        .send_json(&json!({"type": "chat", "text": "something unlawful"}))
        .await?;
    let said = socket.next_of_type("chat", Duration::from_secs(5)).await?;
    let message = said["id"].as_str().unwrap_or_default().to_string();
    let reporter = app.api().register("opreporter").await?;
    let report = |target_type: &'static str, target_id: String, reason: &'static str| {
        let api = &api;
        let reporter = &reporter;
        async move {
            api.post(
                "/api/reports",
                Some(&reporter.access),
                &json!({"target_type": target_type, "target_id": target_id, "reason": reason}),
            )
            .await
        }
    };

    // Bad reports: each a clear error, none filed.
    let bad = report("chat_message", String::new(), "boring").await?;
    ensure!(
        bad.status == 422
            && bad.body["error"]["fields"]["reason"].is_string()
            && bad.body["error"]["fields"]["target_id"].is_string(),
        "a bad report: {} {}",
        bad.status,
        bad.text
    );
    let shapeless = report("chat_message", stream.clone(), "spam").await?;
    ensure!(
        shapeless.status == 404 && shapeless.code() == "report_target_not_found",
        "a chat message without its id: {} {}",
        shapeless.status,
        shapeless.text
    );
    let missing = report("stream", "zzzzzzzzzzzzzzzz".into(), "spam").await?;
    ensure!(
        missing.status == 404 && missing.code() == "report_target_not_found",
        "no such stream: {} {}",
        missing.status,
        missing.text
    );
    let anonymous = api
        .post(
            "/api/reports",
            None,
            &json!({"target_type": "stream", "target_id": stream, "reason": "spam"}),
        )
        .await?;
    ensure!(anonymous.status == 401, "an anonymous report: {}", anonymous.status);

    let filed = report("chat_message", format!("{stream}/{message}"), "harassment").await?;
    ensure!(filed.status == 201, "a report: {} {}", filed.status, filed.text);
    let id = filed.body["report"]["id"].as_str().unwrap_or_default().to_string();

    let op = operator(app, &api).await?;
    let open = api.get("/api/admin/reports?limit=100", Some(&op.access)).await?;
    let listed = open.body["reports"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["id"] == id.as_str()).cloned())
        .unwrap_or(Value::Null);
    ensure!(
        listed["target_type"] == "chat_message"
            && listed["target_id"] == format!("{stream}/{message}").as_str()
            && listed["reason"] == "harassment"
            && listed["reporter_id"] == reporter.user_id.as_str(),
        "the open report: {}",
        open.text
    );

    // The act: the message goes for everyone at once, then the report closes with it.
    let reason = "threats against a viewer";
    let path = format!(
        "/api/admin/streams/{stream}/messages/{message}?reason={}",
        reason.replace(' ', "%20")
    );
    let a = admin_delete(&api, &op, &path).await?;
    ensure!(a.status == 204, "delete the message: {} {}", a.status, a.text);
    let gone = socket.next_of_type("deleted", Duration::from_secs(5)).await?;
    ensure!(gone["id"] == message.as_str(), "the room says it is deleted: {gone}");
    let h = api.get(&format!("/api/streams/{stream}/messages"), None).await?;
    ensure!(
        !h.text.contains("something unlawful"),
        "gone from the history: {}",
        h.text
    );
    let again = admin_delete(&api, &op, &path).await?;
    ensure!(
        again.status == 404 && again.code() == "message_not_found",
        "twice: {} {}",
        again.status,
        again.text
    );
    let closed = admin_post(
        &api,
        &op,
        &format!("/api/admin/reports/{id}/close"),
        &json!({"resolution": "content_deleted", "reason": reason}),
    )
    .await?;
    ensure!(closed.status == 204, "close: {} {}", closed.status, closed.text);
    let open = api.get("/api/admin/reports?limit=100", Some(&op.access)).await?;
    ensure!(!open.text.contains(&id), "no longer open: {}", open.text);
    let done = api
        .get("/api/admin/reports?status=closed&limit=100", Some(&op.access))
        .await?;
    ensure!(
        done.body["reports"].as_array().is_some_and(|r| r
            .iter()
            .any(|r| r["id"] == id.as_str() && r["resolution"] == "content_deleted")),
        "closed with its resolution: {}",
        done.text
    );
    let twice = admin_post(
        &api,
        &op,
        &format!("/api/admin/reports/{id}/close"),
        &json!({"resolution": "no_action", "reason": "again"}),
    )
    .await?;
    ensure!(
        twice.status == 404 && twice.code() == "report_not_found",
        "closing twice: {}",
        twice.status
    );
    let target = format!("{stream}/{message}");
    ensure!(
        audited(&audit_of(&api, &op, &target).await?, &op, "delete_chat_message", reason)
            && audited(
                &audit_of(&api, &op, &id).await?,
                &op,
                "close_report:content_deleted",
                reason
            )
            && !audited(&audit_of(&api, &op, &id).await?, &op, "close_report:no_action", "again"),
        "the act and the closing are audited, the refused close is not"
    );

    // An operator deletes a broadcast too.
    let (broadcast, client) = crate::video::start_broadcast(&api, &key).await?;
    crate::video::end_broadcast(&api, &key, client).await?;
    let a = admin_delete(
        &api,
        &op,
        &format!("/api/admin/broadcasts/{broadcast}?reason=copyright"),
    )
    .await?;
    ensure!(a.status == 204, "delete a broadcast: {} {}", a.status, a.text);
    let b = api.get(&format!("/api/streams/{stream}/broadcasts"), None).await?;
    ensure!(
        b.body["broadcasts"].as_array().is_some_and(|l| l.is_empty()),
        "gone: {}",
        b.text
    );
    let no_reason = admin_delete(&api, &op, &format!("/api/admin/broadcasts/{broadcast}")).await?;
    ensure!(no_reason.status == 422, "an act without a reason: {}", no_reason.status);

    // Past the limit: 10 reports an hour per user (the two 404s above counted, the 422 did not).
    let mut filed_now = 3;
    let limited = loop {
        let a = report("stream", stream.clone(), "spam").await?;
        if a.status != 201 {
            break a;
        }
        filed_now += 1;
        ensure!(filed_now <= 10, "more than 10 reports were accepted");
    };
    ensure!(
        limited.status == 429 && limited.code() == "rate_limited" && limited.header("retry-after").is_some(),
        "past the limit: {} {}",
        limited.status,
        limited.text
    );
    ensure!(filed_now == 10, "10 reports counted before the limit, {filed_now} seen");
    let open = api.get("/api/admin/reports?limit=100", Some(&op.access)).await?;
    let mine = open.body["reports"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|r| r["reporter_id"] == reporter.user_id.as_str())
                .count()
        })
        .unwrap_or(0);
    ensure!(mine == 7, "the refused report was not filed: {mine} open");
    Ok(())
}
