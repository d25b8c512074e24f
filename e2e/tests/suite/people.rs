//! A person's data (issue 26): the export holds what a person streamed, chatted and donated and no secret; deleting
//! the account leaves no row naming them in any table, no video of theirs in R2, a cut publish, their chat messages
//! as "deleted user" and the streamers' donation totals unchanged; and a deletion without the password changes
//! nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};
use sunnylive_e2e::ws::{ChatClient, Credentials};
use sunnylive_e2e::{ensure, eventually, Answer, Api, BoxError, Session, TestApp, TestResult, TEST_HEARTBEAT_SECONDS};

use crate::rtmp::{api_client, newest_broadcast, wait_for_playlist, Publisher};

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        an_export_holds_what_the_person_streamed_chatted_and_donated_and_no_secret,
        deleting_an_account_leaves_no_row_naming_them_no_video_a_cut_publish_and_totals_unchanged,
        a_deletion_without_the_right_password_is_refused_and_changes_nothing,
    )
}

/// Someone who did everything: streams (with a simulcast output and a live publish), chats in another streamer's
/// room, donated to that streamer (paid), received a guest donation (paid) and holds recovery codes.
struct Person {
    api: Api,
    me: Session,
    stream_id: String,
    stream_key: String,
    output_key: String,
    codes: Vec<String>,
    /// The other streamer's stream, where the person chatted and donated.
    their_stream: String,
    chat_text: String,
    order_made: String,
    order_received: String,
    socket: ChatClient,
}

async fn pay(app: &TestApp, redirect: &str) -> TestResult {
    let r = app
        .http()
        .post(format!("{redirect}/pay"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("method=card")
        .send()
        .await?;
    ensure!(
        r.status().is_redirection() || r.status().is_success(),
        "pay: {}",
        r.status()
    );
    Ok(())
}

async fn donation_status(api: &Api, order: &str) -> Result<String, BoxError> {
    let a = api.get(&format!("/api/donations/{order}"), None).await?;
    Ok(a.body["donation"]["status"].as_str().unwrap_or_default().to_string())
}

async fn person(app: &TestApp, prefix: &str) -> Result<Person, BoxError> {
    let api = api_client(app)?;
    let me = api.register(prefix).await?;
    let (stream_id, stream_key) = api.create_stream(&me, &format!("{prefix} streams")).await?;
    let output_key = crate::simulcast::output_key("del");
    // A loopback target nothing listens on: the origin's attempts never leave the machine.
    let out = api
        .post(
            &format!("/api/streams/{stream_id}/outputs"),
            Some(&me.access),
            &json!({"name": "Elsewhere", "url": "rtmp://127.0.0.1:9/app", "key": output_key}),
        )
        .await?;
    ensure!(out.status == 201, "add output: {} {}", out.status, out.text);
    let codes = api
        .post(
            "/api/me/recovery-codes",
            Some(&me.access),
            &json!({"password": me.password}),
        )
        .await?;
    ensure!(codes.status == 201, "recovery codes: {} {}", codes.status, codes.text);
    let codes: Vec<String> = codes.body["codes"]
        .as_array()
        .map(|c| c.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();

    let other = app.api();
    let their_owner = other.register(&format!("{prefix}host")).await?;
    let (their_stream, _) = other.create_stream(&their_owner, "the other streamer").await?;
    let mut socket = ChatClient::connect(&app.base, &their_stream, Credentials::Bearer(&me.access)).await?;
    let chat_text = sunnylive_e2e::unique_name("a message to keep ");
    socket.send_json(&json!({"type": "chat", "text": chat_text})).await?;
    let echoed = socket.next_of_type("chat", Duration::from_secs(5)).await?;
    ensure!(
        echoed["text"] == chat_text.as_str(),
        "my message is stored and shown: {echoed}"
    );

    let made = api
        .post(
            &format!("/api/streams/{their_stream}/donations"),
            Some(&me.access),
            &json!({"amount": 25_000, "message": format!("from {}", me.username)}),
        )
        .await?;
    ensure!(made.status == 201, "donate: {} {}", made.status, made.text);
    pay(app, made.body["redirect_url"].as_str().unwrap_or_default()).await?;
    let order_made = made.body["order_id"].as_str().unwrap_or_default().to_string();
    let received = app
        .api()
        .post(
            &format!("/api/streams/{stream_id}/donations"),
            None,
            &json!({"amount": 10_000, "donor_name": "a fan"}),
        )
        .await?;
    ensure!(
        received.status == 201,
        "guest donation: {} {}",
        received.status,
        received.text
    );
    pay(app, received.body["redirect_url"].as_str().unwrap_or_default()).await?;
    let order_received = received.body["order_id"].as_str().unwrap_or_default().to_string();
    for order in [&order_made, &order_received] {
        eventually(Duration::from_secs(10), "the donation is paid", || async {
            Ok(donation_status(&api, order).await? == "paid")
        })
        .await?;
    }
    Ok(Person {
        api,
        me,
        stream_id,
        stream_key,
        output_key,
        codes,
        their_stream,
        chat_text,
        order_made,
        order_received,
        socket,
    })
}

async fn export(api: &Api, who: &Session) -> Result<Answer, BoxError> {
    api.get("/api/me/export", Some(&who.access)).await
}

async fn delete_me(api: &Api, who: &Session, body: &Value) -> Result<Answer, BoxError> {
    api.send(
        api.request(Method::DELETE, "/api/me")
            .bearer_auth(&who.access)
            .json(body),
    )
    .await
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .map(|a| a.iter().filter_map(|v| v[field].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

async fn an_export_holds_what_the_person_streamed_chatted_and_donated_and_no_secret(app: &TestApp) -> TestResult {
    let p = person(app, "xport").await?;
    // A broadcast with video, as the origin makes one.
    let (broadcast, client) = crate::video::start_broadcast(&p.api, &p.stream_key).await?;
    for seq in 0..3 {
        let up = crate::video::upload(
            &p.api,
            &format!("{broadcast}/{seq}.ts?duration=2"),
            Some(sunnylive_e2e::ORIGIN_TOKEN),
            vec![0x47; 376],
        )
        .await?;
        ensure!(up.status == 201, "upload {seq}: {} {}", up.status, up.text);
    }
    crate::video::end_broadcast(&p.api, &p.stream_key, client).await?;
    // And a clip of it, made by the person.
    let clip = p
        .api
        .post(
            &format!("/api/streams/{}/clips", p.stream_id),
            Some(&p.me.access),
            &json!({"duration_seconds": 5, "broadcast_id": broadcast, "title": "my moment"}),
        )
        .await?;
    ensure!(clip.status == 201, "clip: {} {}", clip.status, clip.text);
    let clip_id = clip.body["clip"]["id"].as_str().unwrap_or_default().to_string();

    let a = export(&p.api, &p.me).await?;
    ensure!(a.status == 200, "export: {} {}", a.status, a.text);
    ensure!(
        a.header("content-disposition")
            .is_some_and(|v| v.starts_with("attachment")),
        "the export is a download"
    );
    let e = &a.body;
    ensure!(
        e["account"]["username"] == p.me.username.as_str() && e["account"]["id"] == p.me.user_id.as_str(),
        "the account: {}",
        e["account"]
    );
    ensure!(
        e["sign_ins"].as_array().is_some_and(|s| !s.is_empty()),
        "the sign-ins: {}",
        e["sign_ins"]
    );
    ensure!(
        e["recovery_codes"]["unused"] == 10,
        "the recovery codes, counted: {}",
        e["recovery_codes"]
    );
    let stream = e["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == p.stream_id.as_str()));
    ensure!(
        stream.is_some_and(|s| s["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/s/{}", p.stream_id)))),
        "the stream with its URL: {}",
        e["streams"]
    );
    let b = e["broadcasts"]
        .as_array()
        .and_then(|l| l.iter().find(|b| b["id"] == broadcast.as_str()));
    let playlist = b
        .and_then(|b| b["playlist_url"].as_str())
        .unwrap_or_default()
        .to_string();
    ensure!(
        playlist.ends_with(&format!("/hls/{}/{broadcast}/master.m3u8", p.stream_id)),
        "the broadcast with its URL: {}",
        e["broadcasts"]
    );
    let c = e["clips"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["id"] == clip_id.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    ensure!(
        c["title"] == "my moment"
            && c["page_url"]
                .as_str()
                .is_some_and(|u| u.ends_with(&format!("/clip/{clip_id}")))
            && c["playlist_url"]
                .as_str()
                .is_some_and(|u| u.ends_with(&format!("/hls/{}/clips/{clip_id}/master.m3u8", p.stream_id))),
        "the clip with its URLs: {}",
        e["clips"]
    );
    // Absolute on the site's public origin; fetched here through the stack's own address.
    let path = reqwest::Url::parse(&playlist)?.path().to_string();
    let r = app.http().get(format!("{}{path}", app.base)).send().await?;
    ensure!(r.status() == 200, "the broadcast's URL plays: {}", r.status());
    ensure!(
        e["outputs"][0]["name"] == "Elsewhere" && e["outputs"][0]["url"] == "rtmp://127.0.0.1:9/app",
        "the output: {}",
        e["outputs"]
    );
    ensure!(
        ids(&e["donations_made"], "order_id") == [p.order_made.clone()]
            && e["donations_made"][0]["status"] == "paid"
            && e["donations_made"][0]["amount"] == 25_000,
        "the donation made: {}",
        e["donations_made"]
    );
    ensure!(
        ids(&e["donations_received"], "order_id") == [p.order_received.clone()],
        "the donation received: {}",
        e["donations_received"]
    );
    let rooms = e["chat_messages"].as_array().cloned().unwrap_or_default();
    let theirs = rooms.iter().find(|r| r["stream_id"] == p.their_stream.as_str());
    ensure!(
        theirs.is_some_and(|r| r["messages"][0]["text"] == p.chat_text.as_str()),
        "the chat message, by stream: {}",
        e["chat_messages"]
    );

    // No secret: no key, no hash, no token.
    let key = p
        .api
        .get(&format!("/api/streams/{}/key", p.stream_id), Some(&p.me.access))
        .await?;
    let stream_key = key.body["stream_key"].as_str().unwrap_or_default().to_string();
    ensure!(!stream_key.is_empty(), "the stream key, for comparison");
    let mut secrets = vec![
        ("the stream key", stream_key),
        ("the output key", p.output_key.clone()),
        (
            "the output key's hint",
            p.output_key[p.output_key.len() - 4..].to_string(),
        ),
        ("the access token", p.me.access.clone()),
        ("the refresh token", p.me.refresh.clone()),
        ("the password", p.me.password.clone()),
        ("a password hash", "pbkdf2".to_string()),
        ("a sealed key", "\"v1.".to_string()),
        ("a hash field", "_hash".to_string()),
    ];
    for code in &p.codes {
        secrets.push(("a recovery code", code.clone()));
    }
    for (what, secret) in &secrets {
        ensure!(!a.text.contains(secret.as_str()), "the export carries {what}");
    }
    p.socket.close().await;
    Ok(())
}

async fn a_deletion_without_the_right_password_is_refused_and_changes_nothing(app: &TestApp) -> TestResult {
    let api = app.api();
    let me = api.register("xkeep").await?;
    let (stream, _) = api.create_stream(&me, "still here").await?;
    for (body, status, code) in [
        (json!({}), 422, "validation_failed"),
        (json!({"password": "not my password"}), 403, "wrong_password"),
    ] {
        let a = delete_me(&api, &me, &body).await?;
        ensure!(
            a.status == status && a.code() == code && a.body["error"]["message"].is_string(),
            "{body}: {} {}",
            a.status,
            a.text
        );
    }
    let anonymous = api
        .send(
            api.request(Method::DELETE, "/api/me")
                .json(&json!({"password": me.password})),
        )
        .await?;
    ensure!(
        anonymous.status == 401,
        "anonymous: {} {}",
        anonymous.status,
        anonymous.text
    );
    ensure!(
        api.get("/api/me", Some(&me.access)).await?.status == 200,
        "still signed in"
    );
    ensure!(
        api.stream(&stream).await?["id"] == stream.as_str(),
        "the stream is still there"
    );
    ensure!(
        api.login(&me.username, &me.password).await?.status == 200,
        "the password still works"
    );
    Ok(())
}

/// `TestApp::d1_query`, tried up to three times: a read from outside can find the database busy under the Worker.
async fn d1(app: &TestApp, sql: &str) -> Result<Vec<Value>, BoxError> {
    let mut last = None;
    for _ in 0..3 {
        match app.d1_query(sql) {
            Ok(rows) => return Ok(rows),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last.unwrap_or_else(|| "d1 query".into()))
}

/// Every table of the database (from sqlite_master; the platform's own `_cf_` tables aside) searched, every column,
/// for the person's id or username. Returns how many tables were searched and every table with a hit.
async fn rows_naming(app: &TestApp, user_id: &str, username: &str) -> Result<(usize, Vec<String>), BoxError> {
    let columns = d1(
        app,
        "SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_cf_%'",
    )
    .await?;
    let tables: std::collections::BTreeSet<String> = columns
        .iter()
        .filter_map(|r| r["t"].as_str().map(String::from))
        .collect();
    let name = username.to_lowercase();
    // One count per table, every column in its WHERE, as the columns of one SELECT (D1 caps the terms of a compound
    // SELECT, and each query here is a wrangler run).
    let counts: Vec<String> = tables
        .iter()
        .map(|t| {
            let any: Vec<String> = columns
                .iter()
                .filter(|r| r["t"] == t.as_str())
                .filter_map(|r| r["c"].as_str())
                .map(|c| {
                    format!(
                        "instr(lower(CAST(\"{c}\" AS TEXT)), '{name}') > 0 OR instr(CAST(\"{c}\" AS TEXT), '{user_id}') > 0"
                    )
                })
                .collect();
            format!("(SELECT COUNT(*) FROM \"{t}\" WHERE {}) AS \"{t}\"", any.join(" OR "))
        })
        .collect();
    let row = d1(app, &format!("SELECT {}", counts.join(", "))).await?;
    let hits = row
        .first()
        .and_then(Value::as_object)
        .map(|r| {
            r.iter()
                .filter(|(_, n)| n.as_i64() != Some(0))
                .map(|(t, n)| format!("{t}: {n}"))
                .collect()
        })
        .unwrap_or_else(|| vec!["no answer".to_string()]);
    Ok((tables.len(), hits))
}

async fn stream_total(app: &TestApp, stream: &str) -> Result<i64, BoxError> {
    let rows = d1(
        app,
        &format!("SELECT total_paid FROM stream_donation_totals WHERE stream_id = '{stream}'"),
    )
    .await?;
    Ok(rows.first().and_then(|r| r["total_paid"].as_i64()).unwrap_or(0))
}

async fn deleting_an_account_leaves_no_row_naming_them_no_video_a_cut_publish_and_totals_unchanged(
    app: &TestApp,
) -> TestResult {
    let mut p = person(app, "xdel").await?;
    let leaderboard_before = p
        .api
        .get(&format!("/api/streams/{}/leaderboard", p.their_stream), None)
        .await?;
    let (their_total, my_total) = (
        stream_total(app, &p.their_stream).await?,
        stream_total(app, &p.stream_id).await?,
    );
    ensure!(
        their_total == 25_000 && my_total == 10_000,
        "totals before: {their_total}, {my_total}"
    );

    // Live, with video in R2: the segments the live playlist lists (never fetched, so in no cache).
    let mut publisher = Publisher::start(app, &p.stream_key, 90, "320x180")?;
    let playlist = wait_for_playlist(app, &p.stream_id, Duration::from_secs(45)).await?;
    let broadcast = newest_broadcast(&p.api, &p.stream_id).await?;
    let base = reqwest::Url::parse(&format!("{}/hls/{}/live.m3u8", app.base, p.stream_id))?;
    let segments: Vec<String> = playlist
        .lines()
        .filter(|l| l.ends_with(".ts"))
        .filter_map(|l| base.join(l).ok().map(|u| u.to_string()))
        .collect();
    ensure!(!segments.is_empty(), "segments uploaded: {playlist}");
    ensure!(
        segments.iter().all(|s| s.contains(&broadcast)),
        "the segments are the broadcast's: {segments:?}"
    );
    ensure!(publisher.still_running(), "the publisher is running");
    // A clip of the live stream, by the person: it holds some of those segments, and goes with them.
    // A clip needs 5 s of the broadcast: give the publish that much past its first segment, then try a few times
    // (each try counts toward the clip limit, 10 in 5 minutes).
    tokio::time::sleep(Duration::from_secs(7)).await;
    let deadline = Instant::now() + Duration::from_secs(12);
    let clip = loop {
        let a = p
            .api
            .post(
                &format!("/api/streams/{}/clips", p.stream_id),
                Some(&p.me.access),
                &json!({"duration_seconds": 5}),
            )
            .await?;
        if a.status == 201 {
            break a.body["clip"]["id"].as_str().unwrap_or_default().to_string();
        }
        ensure!(
            Instant::now() < deadline,
            "no 5-s clip of the live stream: {} {}",
            a.status,
            a.text
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    let clip_page = p.api.get(&format!("/api/clips/{clip}"), None).await?;
    ensure!(
        clip_page.status == 200,
        "the clip: {} {}",
        clip_page.status,
        clip_page.text
    );

    let started = Instant::now();
    let a = delete_me(&p.api, &p.me, &json!({"password": p.me.password})).await?;
    ensure!(a.status == 204, "delete: {} {}", a.status, a.text);
    println!("people: the deletion answered in {:?}", started.elapsed());

    // The publish is cut within one heartbeat, and the person's chat socket closed.
    let (status, err) = publisher
        .finish(Duration::from_secs(TEST_HEARTBEAT_SECONDS + 3))
        .await?;
    ensure!(!status.success(), "the publisher was cut: {status} {err}");
    let code = p.socket.close_code(Duration::from_secs(2)).await?;
    ensure!(code == 1008 || code == 1000, "the chat socket closed: {code}");

    // Signed out everywhere.
    ensure!(
        p.api.get("/api/me", Some(&p.me.access)).await?.status == 401,
        "the access token"
    );
    let stream = p.api.get(&format!("/api/streams/{}", p.stream_id), None).await?;
    ensure!(stream.status == 404, "the stream is gone: {}", stream.status);

    // The chat message stays, as the deleted user.
    let history = p
        .api
        .get(&format!("/api/streams/{}/messages", p.their_stream), None)
        .await?;
    let mine: Vec<&Value> = history.body["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["text"] == p.chat_text.as_str()).collect())
        .unwrap_or_default();
    ensure!(
        mine.len() == 1 && mine[0]["user"]["username"] == "deleted user",
        "the message stays, as the deleted user: {}",
        history.text
    );
    ensure!(
        !history.text.contains(&p.me.user_id) && !history.text.to_lowercase().contains(&p.me.username.to_lowercase()),
        "the room's history names them nowhere: {}",
        history.text
    );

    // The donations: still paid, the streamers' totals unchanged.
    ensure!(
        donation_status(&p.api, &p.order_made).await? == "paid",
        "the donation made"
    );
    let received = d1(
        app,
        &format!("SELECT status FROM donations WHERE order_id = '{}'", p.order_received),
    )
    .await?;
    ensure!(
        received[0]["status"] == "paid",
        "the donation received stays: {received:?}"
    );
    ensure!(
        stream_total(app, &p.their_stream).await? == their_total && stream_total(app, &p.stream_id).await? == my_total,
        "the totals are unchanged"
    );
    let leaderboard = p
        .api
        .get(&format!("/api/streams/{}/leaderboard", p.their_stream), None)
        .await?;
    ensure!(
        leaderboard.body["top"][0]["total"] == leaderboard_before.body["top"][0]["total"]
            && leaderboard.body["top"][0]["donor"] == "deleted user",
        "the leaderboard keeps the amount without the name: {}",
        leaderboard.text
    );

    // No video of theirs: the cron purges what the request left.
    app.run_cron().await?;
    for url in &segments {
        let r = app.http().get(url).send().await?;
        ensure!(r.status() == 404, "{url} after the deletion: {}", r.status());
    }
    let gone = p.api.get(&format!("/api/clips/{clip}"), None).await?;
    ensure!(
        gone.status == 404,
        "their clip after the deletion: {} {}",
        gone.status,
        gone.text
    );
    let thumb = format!("{}/hls/{}/{broadcast}/thumb.jpg", app.base, p.stream_id);
    ensure!(
        app.http().get(&thumb).send().await?.status() == 404,
        "the thumbnail is gone"
    );

    // And no row naming them, over every table.
    let (tables, hits) = rows_naming(app, &p.me.user_id, &p.me.username).await?;
    ensure!(tables >= 20, "every table was searched ({tables})");
    ensure!(hits.is_empty(), "rows still naming them: {hits:?}");

    // Last, as these write: a sign-in with the name is refused (its attempt counts under the lockout like any
    // unknown name's, a counter the cron drops with its window), and the name is quarantined.
    let login = p.api.login(&p.me.username, &p.me.password).await?;
    ensure!(
        login.status == 401,
        "sign-in after deletion: {} {}",
        login.status,
        login.text
    );
    let again = app
        .api()
        .post(
            "/api/auth/register",
            None,
            &json!({"username": p.me.username.to_uppercase(), "password": "a new person's password"}),
        )
        .await?;
    ensure!(
        again.status == 409 && again.code() == "username_quarantined",
        "the name again: {} {}",
        again.status,
        again.text
    );
    Ok(())
}
