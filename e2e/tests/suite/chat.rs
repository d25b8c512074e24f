//! Chat end to end, through the real worker and the ChatRoom Durable Object under `wrangler dev`, with real
//! WebSocket clients: message order between viewers, history for late joiners and through the paging route,
//! anonymous read-only sockets, cookie sockets and their Origin check, rate limit and slow mode, moderation (delete,
//! timeout, ban across reconnects), byte-for-byte text, 1009 for a 1 MB frame, presence throttling, status frames
//! from the RTMP callbacks, a donation shown once however often Midtrans repeats itself, and what survives
//! hibernation (idle past eviction) and a `wrangler dev` restart.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};
use serde_json::{json, Value};
use sunnylive_e2e::ws::{ChatClient, Credentials};
use sunnylive_e2e::{ensure, eventually, Api, BoxError, Session, TestApp, TestResult, ORIGIN_TOKEN};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::streams::callback;

/// How long a frame that should come may take.
const WAIT: Duration = Duration::from_secs(10);
/// How long we listen to be sure a frame that should not come does not.
const QUIET: Duration = Duration::from_millis(1500);
/// Idle time after which local workerd has evicted a hibernatable object (measured ~20 s; docs/TOOLCHAIN.md).
const PAST_EVICTION: Duration = Duration::from_secs(28);

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    macro_rules! trial {
        ($name:ident) => {{
            let app = app.clone();
            Trial::test(concat!("chat::", stringify!($name)), move || app.run($name(&app)))
        }};
    }
    vec![
        trial!(two_viewers_see_each_others_messages_in_the_same_order),
        trial!(a_late_joiner_gets_the_history_in_its_welcome),
        trial!(the_stream_owner_joins_as_host_and_others_as_viewers),
        trial!(anonymous_sockets_read_but_cannot_send),
        trial!(a_cookie_socket_chats_and_a_cookie_from_a_foreign_origin_is_refused),
        trial!(the_chat_route_needs_an_upgrade_an_existing_stream_and_valid_credentials),
        trial!(a_burst_of_five_then_rate_limited),
        trial!(slow_mode_answers_rate_limited_and_everyone_is_told),
        trial!(the_host_deletes_a_message_for_everyone),
        trial!(a_timed_out_user_cannot_send_until_the_timeout_ends),
        trial!(a_banned_user_is_disconnected_and_cannot_send_after_reconnecting),
        trial!(viewers_cannot_moderate),
        trial!(html_and_script_payloads_come_back_byte_for_byte),
        trial!(a_one_megabyte_frame_closes_the_socket_with_1009),
        trial!(bad_frames_get_error_frames_and_the_socket_stays_open),
        trial!(presence_counts_viewers_at_most_once_every_two_seconds),
        trial!(the_stream_api_shows_the_rooms_viewer_count),
        trial!(viewers_are_counted_as_people_not_sockets),
        trial!(one_address_gets_twenty_sockets_and_the_next_is_refused_with_a_clear_error),
        trial!(a_burst_into_a_big_room_reaches_every_socket_once_in_order_in_batches),
        trial!(the_messages_route_pages_backwards_through_history),
        trial!(status_frames_follow_the_stream_going_live_and_offline),
        trial!(a_paid_donation_appears_in_chat_exactly_once),
        trial!(a_ping_frame_is_answered_with_pong),
        trial!(after_hibernation_sockets_still_work_and_bans_and_history_are_kept),
    ]
}

/// Tests that restart `wrangler dev`, and the shard tests (a few hundred sockets each, which would skew the timing
/// of the parallel tests): the suite runs them alone, after the rest.
pub fn serial_tests(app: Arc<TestApp>) -> Vec<Trial> {
    macro_rules! trial {
        ($name:ident) => {{
            let app = app.clone();
            Trial::test(concat!("chat::", stringify!($name)), move || app.run($name(&app)))
        }};
    }
    let restarted = app.clone();
    vec![
        trial!(shards_deliver_every_message_once_in_order),
        trial!(sockets_past_two_shards_through_the_direct_path_get_every_message_once_in_order),
        trial!(moderation_reaches_every_shard),
        trial!(presence_sums_across_shards),
        trial!(an_evicted_shard_keeps_its_sockets_and_drops_nothing),
        Trial::test(
            "chat::after_a_worker_restart_history_bans_and_settings_are_still_there",
            move || after_a_worker_restart_history_bans_and_settings_are_still_there(&app),
        ),
        Trial::test("chat::a_restarted_shard_rejoins_without_loss", move || {
            a_restarted_shard_rejoins_without_loss(&restarted)
        }),
    ]
}

/// A stream with its owner.
struct Room {
    api: Api,
    host: Session,
    id: String,
    key: String,
}

async fn new_room(app: &TestApp) -> Result<Room, BoxError> {
    let api = app.api();
    let host = api.register("chathost").await?;
    let (id, key) = api.create_stream(&host, "chat room").await?;
    Ok(Room { api, host, id, key })
}

async fn join(app: &TestApp, room: &Room, creds: Credentials<'_>) -> Result<ChatClient, BoxError> {
    ChatClient::connect(&app.base, &room.id, creds).await
}

/// `join` from a given client address (`CF-Connecting-IP`).
async fn join_from(app: &TestApp, room: &Room, creds: Credentials<'_>, ip: &str) -> Result<ChatClient, BoxError> {
    ChatClient::connect_from(&app.base, &room.id, creds, Some(ip)).await
}

/// A fresh IPv4 client address per call (the benchmarking range, RFC 2544: only ever a header value), so distinct
/// addresses stay distinct however a limit buckets IPv6.
fn next_ip() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    sunnylive_e2e::viewer_ipv4(NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) as usize)
}

async fn say(c: &mut ChatClient, text: &str) -> TestResult {
    c.send_json(&json!({"type": "chat", "text": text})).await
}

async fn next_chat(c: &mut ChatClient) -> Result<Value, BoxError> {
    c.next_of_type("chat", WAIT).await
}

async fn next_error(c: &mut ChatClient) -> Result<Value, BoxError> {
    c.next_of_type("error", WAIT).await
}

fn texts(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn two_viewers_see_each_others_messages_in_the_same_order(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let (a, b) = (room.api.register("alice").await?, room.api.register("bob").await?);
    let mut ca = join(app, &room, Credentials::Bearer(&a.access)).await?;
    let mut cb = join(app, &room, Credentials::Bearer(&b.access)).await?;
    for i in 0..3 {
        say(&mut ca, &format!("a{i}")).await?;
        say(&mut cb, &format!("b{i}")).await?;
    }
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..6 {
        seen_a.push(next_chat(&mut ca).await?);
        seen_b.push(next_chat(&mut cb).await?);
    }
    ensure!(
        seen_a == seen_b,
        "both sockets see the same frames in the same order:\n{seen_a:?}\n{seen_b:?}"
    );
    let ids: Vec<u64> = seen_a.iter().filter_map(|f| f["id"].as_str()?.parse().ok()).collect();
    ensure!(
        ids.windows(2).all(|w| w[0] < w[1]) && ids.len() == 6,
        "ids increase: {ids:?}"
    );
    let from_a: Vec<String> = seen_a
        .iter()
        .filter(|f| f["user"]["id"] == a.user_id.as_str())
        .map(|f| f["text"].as_str().unwrap_or("").to_string())
        .collect();
    ensure!(
        from_a == ["a0", "a1", "a2"],
        "each sender's messages keep their order: {from_a:?}"
    );
    let f = &seen_a[0];
    ensure!(
        f["user"]["username"].is_string() && f["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
        "chat frame shape: {f}"
    );
    Ok(())
}

async fn a_late_joiner_gets_the_history_in_its_welcome(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    for i in 0..55 {
        say(&mut host, &format!("m{i}")).await?;
    }
    for _ in 0..55 {
        next_chat(&mut host).await?;
    }
    let late = join(app, &room, Credentials::Anonymous).await?;
    let history = late.welcome["history"].as_array().ok_or("no history")?;
    ensure!(
        history.len() == 50,
        "the welcome carries the last 50: {}",
        history.len()
    );
    let want: Vec<String> = (5..55).map(|i| format!("m{i}")).collect();
    ensure!(
        texts(history) == want,
        "oldest first, newest last: {:?}",
        texts(history)
    );
    ensure!(
        late.welcome["viewers"] == 2 && late.welcome["status"] == "offline",
        "welcome: {}",
        late.welcome
    );
    ensure!(late.welcome["slow_mode_seconds"] == 0, "welcome: {}", late.welcome);
    Ok(())
}

async fn the_stream_owner_joins_as_host_and_others_as_viewers(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let v = room.api.register("viewer").await?;
    let host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    let viewer = join(app, &room, Credentials::Bearer(&v.access)).await?;
    let anon = join(app, &room, Credentials::Anonymous).await?;
    let you = |c: &ChatClient| c.welcome["you"].clone();
    ensure!(
        you(&host) == json!({"id": room.host.user_id, "username": room.host.username, "role": "host"}),
        "{}",
        you(&host)
    );
    ensure!(
        you(&viewer) == json!({"id": v.user_id, "username": v.username, "role": "viewer"}),
        "{}",
        you(&viewer)
    );
    ensure!(
        you(&anon) == json!({"id": null, "username": null, "role": "anonymous"}),
        "{}",
        you(&anon)
    );
    Ok(())
}

async fn anonymous_sockets_read_but_cannot_send(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let mut anon = join(app, &room, Credentials::Anonymous).await?;
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    say(&mut anon, "let me in").await?;
    let e = next_error(&mut anon).await?;
    ensure!(e["code"] == "not_authenticated", "{e}");
    say(&mut host, "welcome, reader").await?;
    ensure!(
        next_chat(&mut anon).await?["text"] == "welcome, reader",
        "anonymous sockets read"
    );
    let stray = host.collect_of_type("chat", QUIET).await;
    ensure!(
        texts(&stray).is_empty() || texts(&stray) == ["welcome, reader"],
        "nothing from the anonymous socket: {stray:?}"
    );
    Ok(())
}

async fn a_cookie_socket_chats_and_a_cookie_from_a_foreign_origin_is_refused(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let v = room.api.register("cookie").await?;
    let mut c = join(app, &room, Credentials::Cookie(&v.access, &app.site)).await?;
    ensure!(
        c.welcome["you"]["role"] == "viewer",
        "the cookie identifies the user: {}",
        c.welcome
    );
    say(&mut c, "by cookie").await?;
    ensure!(
        next_chat(&mut c).await?["user"]["id"] == v.user_id.as_str(),
        "sent as the cookie's user"
    );

    let url = format!("{}/api/streams/{}/chat", app.base.replacen("http", "ws", 1), room.id);
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("cookie", format!("sl_access={}", v.access).parse()?);
    req.headers_mut().insert("origin", "https://evil.example".parse()?);
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            ensure!(r.status() == 403, "foreign origin: {}", r.status())
        }
        Err(e) => return Err(format!("expected a 403 handshake answer, got {e}").into()),
        Ok(_) => return Err("a cookie from a foreign origin opened a chat socket".into()),
    }
    Ok(())
}

async fn the_chat_route_needs_an_upgrade_an_existing_stream_and_valid_credentials(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let plain = room.api.get(&format!("/api/streams/{}/chat", room.id), None).await?;
    ensure!(
        plain.status == 426 && plain.code() == "upgrade_required",
        "plain GET: {} {}",
        plain.status,
        plain.text
    );
    for (id, token, want) in [
        ("aaaaaaaaaaaaaaaa", None, 404),
        ("not-an-id", None, 404),
        (room.id.as_str(), Some("garbage.token.here"), 401),
    ] {
        let url = format!("{}/api/streams/{id}/chat", app.base.replacen("http", "ws", 1));
        let mut req = url.into_client_request()?;
        if let Some(t) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse()?);
        }
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                ensure!(r.status() == want, "{id} {token:?}: {}", r.status())
            }
            Err(e) => return Err(format!("{id}: expected {want}, got {e}").into()),
            Ok(_) => return Err(format!("{id} {token:?}: the socket opened").into()),
        }
    }
    Ok(())
}

async fn a_burst_of_five_then_rate_limited(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let v = room.api.register("chatty").await?;
    let mut c = join(app, &room, Credentials::Bearer(&v.access)).await?;
    for i in 0..6 {
        say(&mut c, &format!("burst {i}")).await?;
    }
    let mut chats = Vec::new();
    let mut errors = Vec::new();
    while chats.len() + errors.len() < 6 {
        let f = c.next_frame(WAIT).await?;
        match f["type"].as_str() {
            Some("chat") => chats.push(f),
            Some("error") => errors.push(f),
            _ => {}
        }
    }
    ensure!(
        texts(&chats) == ["burst 0", "burst 1", "burst 2", "burst 3", "burst 4"],
        "five pass: {chats:?}"
    );
    ensure!(
        errors.len() == 1 && errors[0]["code"] == "rate_limited",
        "the sixth is refused: {errors:?}"
    );
    let wait = errors[0]["retry_after_ms"].as_u64().ok_or("retry_after_ms")?;
    ensure!((1..=1000).contains(&wait), "retry after at most a second: {wait}");
    tokio::time::sleep(Duration::from_millis(wait + 100)).await;
    say(&mut c, "after the pause").await?;
    ensure!(
        next_chat(&mut c).await?["text"] == "after the pause",
        "one per second after the burst"
    );
    // The host is exempt.
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    for i in 0..10 {
        say(&mut host, &format!("host {i}")).await?;
    }
    let mut got = Vec::new();
    while got.len() < 10 {
        let f = host.next_frame(WAIT).await?;
        ensure!(f["type"] != "error", "the host was limited: {f}");
        if f["type"] == "chat" && f["user"]["id"] == room.host.user_id.as_str() {
            got.push(f);
        }
    }
    Ok(())
}

async fn slow_mode_answers_rate_limited_and_everyone_is_told(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let v = room.api.register("slowpoke").await?;
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    let mut c = join(app, &room, Credentials::Bearer(&v.access)).await?;
    host.send_json(&json!({"type": "slow_mode", "seconds": 3})).await?;
    ensure!(
        c.next_of_type("slow_mode", WAIT).await?["seconds"] == 3,
        "viewers are told"
    );
    ensure!(
        host.next_of_type("slow_mode", WAIT).await?["seconds"] == 3,
        "the host sees it too"
    );
    say(&mut c, "one").await?;
    ensure!(next_chat(&mut c).await?["text"] == "one", "the first message passes");
    say(&mut c, "two").await?;
    let e = next_error(&mut c).await?;
    ensure!(
        e["code"] == "rate_limited" && e["retry_after_ms"].as_u64().is_some_and(|ms| ms > 1000),
        "{e}"
    );
    let late = join(app, &room, Credentials::Anonymous).await?;
    ensure!(
        late.welcome["slow_mode_seconds"] == 3,
        "the welcome shows slow mode: {}",
        late.welcome
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    say(&mut c, "three").await?;
    ensure!(next_chat(&mut c).await?["text"] == "three", "after the interval");
    host.send_json(&json!({"type": "slow_mode", "seconds": 0})).await?;
    ensure!(
        c.next_of_type("slow_mode", WAIT).await?["seconds"] == 0,
        "slow mode off"
    );
    Ok(())
}

async fn the_host_deletes_a_message_for_everyone(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let v = room.api.register("spammer").await?;
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    let mut c = join(app, &room, Credentials::Bearer(&v.access)).await?;
    say(&mut c, "keep me").await?;
    say(&mut c, "delete me").await?;
    next_chat(&mut host).await?;
    let doomed = next_chat(&mut host).await?;
    let id = doomed["id"].as_str().ok_or("id")?.to_string();
    host.send_json(&json!({"type": "delete", "id": id})).await?;
    for client in [&mut host, &mut c] {
        let d = client.next_of_type("deleted", WAIT).await?;
        ensure!(d == json!({"type": "deleted", "id": id}), "{d}");
    }
    let late = join(app, &room, Credentials::Anonymous).await?;
    ensure!(
        texts(late.welcome["history"].as_array().ok_or("history")?) == ["keep me"],
        "gone from the welcome: {}",
        late.welcome
    );
    let page = room
        .api
        .get(&format!("/api/streams/{}/messages", room.id), None)
        .await?;
    ensure!(
        texts(page.body["messages"].as_array().ok_or("messages")?) == ["keep me"],
        "gone from history: {}",
        page.text
    );
    host.send_json(&json!({"type": "delete", "id": "999999"})).await?;
    ensure!(
        next_error(&mut host).await?["code"] == "bad_frame",
        "an unknown id is a bad frame"
    );
    Ok(())
}

async fn a_timed_out_user_cannot_send_until_the_timeout_ends(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let v = room.api.register("timeout").await?;
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    let mut c = join(app, &room, Credentials::Bearer(&v.access)).await?;
    host.send_json(&json!({"type": "timeout", "user_id": v.user_id, "seconds": 3}))
        .await?;
    // The timeout is applied in order with the host's frames: a chat from the host after it proves it was read.
    say(&mut host, "sync").await?;
    next_chat(&mut c).await?;
    say(&mut c, "am I muted?").await?;
    let e = next_error(&mut c).await?;
    ensure!(
        e["code"] == "rate_limited" && e["retry_after_ms"].as_u64().is_some_and(|ms| ms <= 3000),
        "{e}"
    );
    tokio::time::sleep(Duration::from_millis(3200)).await;
    say(&mut c, "free again").await?;
    ensure!(next_chat(&mut c).await?["text"] == "free again", "the timeout ended");
    host.send_json(&json!({"type": "timeout", "user_id": v.user_id, "seconds": 600}))
        .await?;
    host.send_json(&json!({"type": "timeout", "user_id": v.user_id, "seconds": 0}))
        .await?;
    say(&mut host, "sync2").await?;
    c.next_of_type("chat", WAIT).await?;
    say(&mut c, "lifted").await?;
    ensure!(
        next_chat(&mut c).await?["text"] == "lifted",
        "seconds 0 lifts a timeout"
    );
    Ok(())
}

async fn a_banned_user_is_disconnected_and_cannot_send_after_reconnecting(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let v = room.api.register("troll").await?;
    let w = room.api.register("bystander").await?;
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    let mut troll = join(app, &room, Credentials::Bearer(&v.access)).await?;
    let mut other = join(app, &room, Credentials::Bearer(&w.access)).await?;
    host.send_json(&json!({"type": "ban", "user_id": v.user_id})).await?;
    let code = troll.close_code(WAIT).await?;
    ensure!(code == 1008, "the banned socket closes with 1008, got {code}");
    let mut again = join(app, &room, Credentials::Bearer(&v.access)).await?;
    say(&mut again, "I'm back").await?;
    ensure!(
        next_error(&mut again).await?["code"] == "banned",
        "banned after reconnecting"
    );
    say(&mut other, "still here").await?;
    ensure!(
        next_chat(&mut other).await?["text"] == "still here",
        "others are unaffected"
    );
    host.send_json(&json!({"type": "unban", "user_id": v.user_id})).await?;
    say(&mut host, "sync").await?;
    next_chat(&mut again).await?;
    say(&mut again, "sorry").await?;
    ensure!(next_chat(&mut again).await?["text"] == "sorry", "unban lets them chat");
    Ok(())
}

async fn viewers_cannot_moderate(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let v = room.api.register("wannabe").await?;
    let mut c = join(app, &room, Credentials::Bearer(&v.access)).await?;
    let mut anon = join(app, &room, Credentials::Anonymous).await?;
    for frame in [
        json!({"type": "delete", "id": "1"}),
        json!({"type": "timeout", "user_id": room.host.user_id, "seconds": 60}),
        json!({"type": "ban", "user_id": room.host.user_id}),
        json!({"type": "slow_mode", "seconds": 30}),
    ] {
        c.send_json(&frame).await?;
        ensure!(next_error(&mut c).await?["code"] == "forbidden", "viewer {frame}");
        anon.send_json(&frame).await?;
        ensure!(
            next_error(&mut anon).await?["code"] == "not_authenticated",
            "anonymous {frame}"
        );
    }
    say(&mut c, "nothing happened").await?;
    ensure!(
        next_chat(&mut c).await?["text"] == "nothing happened",
        "the socket stays usable"
    );
    Ok(())
}

async fn html_and_script_payloads_come_back_byte_for_byte(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let v = room.api.register("xss").await?;
    let mut c = join(app, &room, Credentials::Bearer(&v.access)).await?;
    let payloads = [
        r#"<script>alert("x")</script>"#,
        r#"<img src=x onerror=alert(1)> &amp; &lt;b&gt; 'single' "double""#,
        "\u{202e}rtl \u{1F600} 日本語 </textarea><!--",
    ];
    for p in payloads {
        say(&mut c, p).await?;
        let f = next_chat(&mut c).await?;
        ensure!(f["text"] == p, "live frame: {} != {p}", f["text"]);
    }
    let page = room
        .api
        .get(&format!("/api/streams/{}/messages", room.id), None)
        .await?;
    let stored = texts(page.body["messages"].as_array().ok_or("messages")?);
    ensure!(stored == payloads, "history keeps the text as sent: {stored:?}");
    Ok(())
}

async fn a_one_megabyte_frame_closes_the_socket_with_1009(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let v = room.api.register("bigmouth").await?;
    let mut c = join(app, &room, Credentials::Bearer(&v.access)).await?;
    let mut watcher = join(app, &room, Credentials::Anonymous).await?;
    let big = json!({"type": "chat", "text": "a".repeat(1_000_000)}).to_string();
    c.send_raw(Message::text(big)).await?;
    let code = c.close_code(WAIT).await?;
    ensure!(code == 1009, "closed with {code}");
    let leaked = watcher.collect_of_type("chat", QUIET).await;
    ensure!(leaked.is_empty(), "nothing was broadcast: {leaked:?}");
    Ok(())
}

async fn bad_frames_get_error_frames_and_the_socket_stays_open(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let v = room.api.register("clumsy").await?;
    let mut c = join(app, &room, Credentials::Bearer(&v.access)).await?;
    let cases: Vec<(Message, &str)> = vec![
        (Message::text("not json"), "bad_frame"),
        (Message::text(r#"{"type":"shout","text":"x"}"#), "bad_frame"),
        (Message::text(r#"{"type":"chat"}"#), "bad_frame"),
        (Message::text(r#"{"type":"chat","text":"   "}"#), "empty"),
        (
            Message::text(json!({"type": "chat", "text": "x".repeat(501)}).to_string()),
            "too_long",
        ),
        (Message::text(r#"{"type":"chat","text":"two\nlines"}"#), "bad_frame"),
        (Message::binary(vec![1u8, 2, 3]), "bad_frame"),
    ];
    for (msg, code) in cases {
        let shown = format!("{msg:?}").chars().take(60).collect::<String>();
        c.send_raw(msg).await?;
        let e = next_error(&mut c).await?;
        ensure!(
            e["code"] == code && e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{shown}: {e}"
        );
    }
    say(&mut c, &"x".repeat(500)).await?;
    ensure!(
        next_chat(&mut c).await?["text"].as_str().map(str::len) == Some(500),
        "500 characters pass, socket open"
    );
    Ok(())
}

async fn presence_counts_viewers_at_most_once_every_two_seconds(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let mut observer = join(app, &room, Credentials::Anonymous).await?;
    // Timestamp presence frames as they arrive, while the others join.
    let reader = tokio::spawn(async move {
        let start = Instant::now();
        let mut seen: Vec<(Duration, u64)> = Vec::new();
        let window = Duration::from_secs(7);
        while let Some(left) = window.checked_sub(start.elapsed()) {
            match observer.next_of_type("presence", left).await {
                Ok(f) => seen.push((start.elapsed(), f["viewers"].as_u64().unwrap_or(0))),
                Err(_) => break,
            }
        }
        (observer, seen)
    });
    let mut others = Vec::new();
    for _ in 0..10 {
        // Each from its own address: anonymous sockets count as viewers by address.
        others.push(join_from(app, &room, Credentials::Anonymous, &next_ip()).await?);
    }
    let (mut observer, seen) = reader.await?;
    ensure!(
        seen.last().map(|s| s.1) == Some(11),
        "the trailing update counts everyone: {seen:?}"
    );
    for w in seen.windows(2) {
        // The room sends them 2 s apart; allow a little delivery jitter on the observer's side.
        ensure!(
            w[1].0 - w[0].0 >= Duration::from_millis(1800),
            "presence frames too close: {seen:?}"
        );
    }
    ensure!(seen.len() <= 4, "ten joins are folded into a few frames: {seen:?}");
    for c in others.drain(..5) {
        c.close().await;
    }
    let mut last = Value::Null;
    for _ in 0..3 {
        last = observer.next_of_type("presence", Duration::from_secs(5)).await?;
        if last["viewers"] == 6 {
            return Ok(());
        }
    }
    Err(format!("leaving sockets are counted out: last presence {last}").into())
}

/// The room writes its viewer count to D1 (throttled like presence), where `GET /api/streams/{id}` reads it.
async fn the_stream_api_shows_the_rooms_viewer_count(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let viewers = |n: u64| {
        let (api, id) = (&room.api, &room.id);
        move || async move { Ok(api.stream(id).await?["viewers"] == n) }
    };
    ensure!(
        room.api.stream(&room.id).await?["viewers"] == 0,
        "no sockets, no viewers"
    );
    let first = join_from(app, &room, Credentials::Anonymous, &next_ip()).await?;
    let _second = join_from(app, &room, Credentials::Anonymous, &next_ip()).await?;
    eventually(
        Duration::from_secs(6),
        "GET /api/streams/{id} to show 2 viewers",
        viewers(2),
    )
    .await?;
    first.close().await;
    eventually(
        Duration::from_secs(6),
        "GET /api/streams/{id} to show 1 viewer after a close",
        viewers(1),
    )
    .await
}

async fn the_messages_route_pages_backwards_through_history(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    for i in 0..25 {
        say(&mut host, &format!("h{i}")).await?;
    }
    for _ in 0..25 {
        next_chat(&mut host).await?;
    }
    let path = format!("/api/streams/{}/messages", room.id);
    let mut all = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..5 {
        let q = match &before {
            Some(b) => format!("{path}?limit=10&before={b}"),
            None => format!("{path}?limit=10"),
        };
        let page = room.api.get(&q, None).await?;
        ensure!(page.status == 200, "{q}: {} {}", page.status, page.text);
        let mut texts_page = texts(page.body["messages"].as_array().ok_or("messages")?);
        texts_page.extend(all);
        all = texts_page;
        match page.body["next_before"].as_str() {
            Some(b) => before = Some(b.to_string()),
            None => break,
        }
    }
    let want: Vec<String> = (0..25).map(|i| format!("h{i}")).collect();
    ensure!(all == want, "every message once, in order: {all:?}");
    let default = room.api.get(&path, None).await?;
    ensure!(
        default.body["messages"].as_array().map(Vec::len) == Some(20),
        "default limit 20: {}",
        default.text
    );
    for bad in ["limit=0", "limit=101", "before=abc", "before=-1"] {
        let a = room.api.get(&format!("{path}?{bad}"), None).await?;
        ensure!(a.status == 422, "{bad}: {} {}", a.status, a.text);
    }
    let missing = room.api.get("/api/streams/aaaaaaaaaaaaaaaa/messages", None).await?;
    ensure!(missing.status == 404, "unknown stream: {}", missing.status);
    Ok(())
}

async fn status_frames_follow_the_stream_going_live_and_offline(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let mut c = join(app, &room, Credentials::Anonymous).await?;
    ensure!(c.welcome["status"] == "offline", "{}", c.welcome);
    let a = callback(&room.api, "on-publish", &room.key, 7001, Some(ORIGIN_TOKEN)).await?;
    ensure!(a.status == 302, "publish: {} {}", a.status, a.text);
    ensure!(
        c.next_of_type("status", WAIT).await? == json!({"type": "status", "status": "live"}),
        "live"
    );
    let late = join(app, &room, Credentials::Anonymous).await?;
    ensure!(
        late.welcome["status"] == "live",
        "the welcome shows live: {}",
        late.welcome
    );
    callback(&room.api, "on-publish-done", &room.key, 7001, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        c.next_of_type("status", WAIT).await? == json!({"type": "status", "status": "offline"}),
        "offline"
    );
    Ok(())
}

async fn a_paid_donation_appears_in_chat_exactly_once(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let mut c = join(app, &room, Credentials::Anonymous).await?;
    let a = room
        .api
        .post(
            &format!("/api/streams/{}/donations", room.id),
            None,
            &json!({"amount": 25_000, "donor_name": "Budi", "message": "semangat <b>!</b>"}),
        )
        .await?;
    ensure!(a.status == 201, "checkout: {} {}", a.status, a.text);
    let order = a.body["order_id"].as_str().ok_or("order_id")?.to_string();
    let redirect = a.body["redirect_url"].as_str().ok_or("redirect_url")?.to_string();
    let paid = room
        .api
        .client
        .post(format!("{redirect}/pay"))
        .form(&[("method", "card")])
        .send()
        .await?;
    ensure!(
        paid.status().is_redirection() || paid.status().is_success(),
        "pay: {}",
        paid.status()
    );
    let d = c.next_of_type("donation", Duration::from_secs(20)).await?;
    ensure!(
        d["donor"] == "Budi" && d["amount"] == 25_000 && d["currency"] == "IDR",
        "{d}"
    );
    ensure!(d["message"] == "semangat <b>!</b>", "the message as sent: {d}");
    // Midtrans repeats itself: the same notification three more times changes nothing in the room.
    let replay = room
        .api
        .client
        .post(format!("{}/_control/replay/{order}", app.midtrans))
        .json(&json!({"times": 3}))
        .send()
        .await?;
    ensure!(replay.status().is_success(), "replay: {}", replay.status());
    app.run_cron().await?;
    let again = c.collect_of_type("donation", Duration::from_secs(3)).await;
    ensure!(again.is_empty(), "the donation was shown again: {again:?}");
    let late = join(app, &room, Credentials::Anonymous).await?;
    let in_history: Vec<&Value> = late.welcome["history"]
        .as_array()
        .ok_or("history")?
        .iter()
        .filter(|f| f["type"] == "donation")
        .collect();
    ensure!(
        in_history.len() == 1 && in_history[0]["id"] == d["id"],
        "history has it once: {}",
        late.welcome
    );
    Ok(())
}

async fn a_ping_frame_is_answered_with_pong(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let mut c = join(app, &room, Credentials::Anonymous).await?;
    c.send_raw(Message::text(r#"{"type":"ping"}"#)).await?;
    ensure!(c.next_of_type("pong", WAIT).await? == json!({"type": "pong"}), "pong");
    Ok(())
}

/// Sets up a room with history, a ban, a timeout and slow mode; returns (room, banned user, timed-out user).
async fn moderated_room(app: &TestApp) -> Result<(Room, Session, Session, ChatClient), BoxError> {
    let room = new_room(app).await?;
    let banned = room.api.register("banned").await?;
    let muted = room.api.register("muted").await?;
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    say(&mut host, "remember me").await?;
    host.send_json(&json!({"type": "ban", "user_id": banned.user_id}))
        .await?;
    host.send_json(&json!({"type": "timeout", "user_id": muted.user_id, "seconds": 3600}))
        .await?;
    host.send_json(&json!({"type": "slow_mode", "seconds": 7})).await?;
    host.next_of_type("slow_mode", WAIT).await?;
    Ok((room, banned, muted, host))
}

async fn check_room_remembers(app: &TestApp, room: &Room, banned: &Session, muted: &Session) -> TestResult {
    let late = join(app, room, Credentials::Anonymous).await?;
    let history = texts(late.welcome["history"].as_array().ok_or("history")?);
    ensure!(
        history.first().map(String::as_str) == Some("remember me"),
        "history kept: {history:?}"
    );
    ensure!(
        late.welcome["slow_mode_seconds"] == 7,
        "slow mode kept: {}",
        late.welcome
    );
    let mut b = join(app, room, Credentials::Bearer(&banned.access)).await?;
    say(&mut b, "did they forget?").await?;
    ensure!(next_error(&mut b).await?["code"] == "banned", "the ban is kept");
    let mut m = join(app, room, Credentials::Bearer(&muted.access)).await?;
    say(&mut m, "and me?").await?;
    ensure!(
        next_error(&mut m).await?["code"] == "rate_limited",
        "the timeout is kept"
    );
    Ok(())
}

async fn after_hibernation_sockets_still_work_and_bans_and_history_are_kept(app: &TestApp) -> TestResult {
    let (room, banned, muted, mut host) = moderated_room(app).await?;
    let v = room.api.register("sleeper").await?;
    let mut viewer = join(app, &room, Credentials::Bearer(&v.access)).await?;
    let rebuilt_before = rebuild_count(app, &room.id);
    // Nothing happens in this room for longer than local workerd keeps an idle hibernatable object.
    tokio::time::sleep(PAST_EVICTION).await;
    say(&mut viewer, "good morning").await?;
    ensure!(
        next_chat(&mut host).await?["text"] == "good morning",
        "the open sockets still work after the nap"
    );
    ensure!(
        next_chat(&mut viewer).await?["text"] == "good morning",
        "the sender sees it too"
    );
    // The log line may reach the file a moment after the frames reach us.
    eventually(
        Duration::from_secs(10),
        "the worker log to show the room rebuilt from storage",
        || async { Ok(rebuild_count(app, &room.id) > rebuilt_before) },
    )
    .await?;
    check_room_remembers(app, &room, &banned, &muted).await?;
    say(&mut viewer, "too fast?").await?;
    ensure!(
        next_error(&mut viewer).await?["code"] == "rate_limited",
        "slow mode still counts the message before the nap"
    );
    Ok(())
}

/// Arrange and assert run on the harness's runtime; the restart in between blocks, so it runs outside it.
fn after_a_worker_restart_history_bans_and_settings_are_still_there(app: &TestApp) -> Result<(), Failed> {
    let arranged: Mutex<Option<(Room, Session, Session)>> = Mutex::new(None);
    app.run(async {
        let (room, banned, muted, host) = moderated_room(app).await?;
        host.close().await;
        *arranged.lock().map_err(|_| "poisoned")? = Some((room, banned, muted));
        Ok(())
    })?;
    let (room, banned, muted) = arranged.into_inner().ok().flatten().ok_or("arrange did not finish")?;
    app.restart_worker().map_err(|e| Failed::from(e.to_string()))?;
    app.run(async {
        check_room_remembers(app, &room, &banned, &muted).await?;
        let page = room
            .api
            .get(&format!("/api/streams/{}/messages", room.id), None)
            .await?;
        let history = texts(page.body["messages"].as_array().ok_or("messages")?);
        ensure!(history == ["remember me"], "history route: {}", page.text);
        Ok(())
    })
}

/// How many times the worker log says this stream's room was rebuilt from storage.
fn rebuild_count(app: &TestApp, stream_id: &str) -> usize {
    let needle = format!("chat room {stream_id}: rebuilt from storage");
    app.all_logs().matches(&needle).count()
}

/// Item 6 of the security review: thousands of anonymous sockets must not inflate a stream's viewer count. A
/// signed-in user counts once however many tabs they open; anonymous sockets count once per address.
async fn viewers_are_counted_as_people_not_sockets(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let viewer = room.api.register("counted").await?;
    let shared = next_ip();
    let mut open = Vec::new();
    for _ in 0..6 {
        open.push(join_from(app, &room, Credentials::Anonymous, &shared).await?);
    }
    open.push(join_from(app, &room, Credentials::Anonymous, &next_ip()).await?);
    open.push(join_from(app, &room, Credentials::Bearer(&viewer.access), &next_ip()).await?);
    let last = join_from(app, &room, Credentials::Bearer(&viewer.access), &next_ip()).await?;
    ensure!(
        last.welcome["viewers"] == 3,
        "9 sockets, 3 viewers (one address, another address, one user): {}",
        last.welcome
    );
    let (api, id) = (&room.api, &room.id);
    eventually(
        Duration::from_secs(6),
        "the stream's viewer count to be 3",
        || async move { Ok(api.stream(id).await?["viewers"] == 3) },
    )
    .await
}

async fn one_address_gets_twenty_sockets_and_the_next_is_refused_with_a_clear_error(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let ip = next_ip();
    let mut open = Vec::new();
    for _ in 0..20 {
        open.push(join_from(app, &room, Credentials::Anonymous, &ip).await?);
    }
    let mut refused = ChatClient::open(&app.base, &room.id, Credentials::Anonymous, Some(&ip)).await?;
    let first = refused.next_frame(WAIT).await?;
    ensure!(
        first["type"] == "error" && first["code"] == "too_many_connections",
        "the 21st socket's first frame says why: {first}"
    );
    ensure!(
        first["message"].as_str().is_some_and(|m| m.contains("20")),
        "the message names the limit: {first}"
    );
    let code = refused.close_code(WAIT).await?;
    ensure!(code == 1008, "then it is closed with 1008, got {code}");
    // Another address is not affected, and a freed place can be taken again.
    join_from(app, &room, Credentials::Anonymous, &next_ip()).await?;
    if let Some(c) = open.pop() {
        c.close().await;
    }
    let mut again = None;
    for _ in 0..20 {
        match join_from(app, &room, Credentials::Anonymous, &ip).await {
            Ok(c) => {
                again = Some(c);
                break;
            }
            // The room learns of the close a moment after the client sent it.
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    ensure!(again.is_some(), "a closed socket frees its place under the cap");
    Ok(())
}

/// Issue 16: a room of 32 or more sockets coalesces a burst into `batch` frames. Every socket still gets every
/// message exactly once, in order, and a socket that joins mid-burst gets its welcome first.
async fn a_burst_into_a_big_room_reaches_every_socket_once_in_order_in_batches(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    let mut readers = Vec::new();
    for _ in 0..40 {
        readers.push(join_from(app, &room, Credentials::Anonymous, &next_ip()).await?);
    }
    let want: Vec<String> = (0..30).map(|i| format!("burst {i}")).collect();
    for text in &want[..15] {
        say(&mut host, text).await?;
    }
    let mut late = join_from(app, &room, Credentials::Anonymous, &next_ip()).await?;
    for text in &want[15..] {
        say(&mut host, text).await?;
    }
    let mut batches = 0;
    for (i, reader) in readers.iter_mut().chain(std::iter::once(&mut host)).enumerate() {
        let mut got = Vec::new();
        while got.len() < want.len() {
            got.push(next_chat(reader).await?);
        }
        ensure!(texts(&got) == want, "socket {i} got {:?}", texts(&got));
        let extra = reader.collect_of_type("chat", Duration::from_millis(300)).await;
        ensure!(extra.is_empty(), "socket {i} got messages twice: {extra:?}");
        batches += reader.batches;
    }
    ensure!(batches > 0, "a burst of 30 into 41 sockets came in batch frames");
    // The late joiner: history up to its welcome, then the rest live, nothing twice, nothing missing.
    let mut seen = texts(late.welcome["history"].as_array().ok_or("history")?);
    while seen.len() < want.len() {
        seen.push(texts(&[next_chat(&mut late).await?]).remove(0));
    }
    ensure!(seen == want, "the late joiner saw {seen:?}");
    Ok(())
}

// --- Rooms past one object (issue 16, item 2) ---------------------------------------------------------------------
// The stack runs with `CHAT_SHARD_SOCKETS` = `TEST_CHAT_SHARD_SOCKETS` (40): the room holds 40 sockets, each shard
// 40 more, so the rooms below span the room object and several shards.

/// Opens `n` anonymous sockets, each from its own address, a few at a time.
async fn many_readers(app: &TestApp, room: &Room, n: usize) -> Result<Vec<ChatClient>, BoxError> {
    let mut readers = Vec::with_capacity(n);
    while readers.len() < n {
        let batch = (n - readers.len()).min(20);
        let opened = futures::future::join_all(
            (0..batch).map(|_| async { join_from(app, room, Credentials::Anonymous, &next_ip()).await }),
        )
        .await;
        for r in opened {
            readers.push(r?);
        }
    }
    Ok(readers)
}

/// The shards the worker log says hold sockets of this stream's room.
fn shards_in_use(app: &TestApp, stream_id: &str) -> Vec<u32> {
    let logs = app.all_logs();
    let needle = format!("chat room {stream_id}: shard ");
    let mut shards: Vec<u32> = logs
        .match_indices(&needle)
        .filter_map(|(at, _)| logs[at + needle.len()..].split(' ').next()?.parse().ok())
        .collect();
    shards.sort_unstable();
    shards.dedup();
    shards
}

/// How many times the worker log says a shard of this stream's room took its first socket.
fn shard_openings(app: &TestApp, stream_id: &str) -> usize {
    let needle = format!("chat room {stream_id}: shard ");
    app.all_logs().matches(&needle).count()
}

/// Reads `want` chat frames from every client (batches unpacked) and checks that each got them in the same order
/// as `order` (ids), none twice, and nothing more.
async fn every_socket_got(clients: &mut [&mut ChatClient], order: &[String]) -> TestResult {
    let results = futures::future::join_all(clients.iter_mut().map(|c| async {
        let mut ids = Vec::new();
        while ids.len() < order.len() {
            let frame = c.next_of_type("chat", Duration::from_secs(20)).await?;
            ids.push(frame["id"].as_str().unwrap_or_default().to_string());
        }
        let extra = c.collect_of_type("chat", Duration::from_millis(300)).await;
        Ok::<_, BoxError>((ids, extra.len()))
    }))
    .await;
    for (i, r) in results.into_iter().enumerate() {
        let (ids, extra) = r.map_err(|e| format!("socket {i}: {e}"))?;
        ensure!(
            ids == order,
            "socket {i} got ids {ids:?}, the room's order is {order:?}"
        );
        ensure!(extra == 0, "socket {i} got {extra} messages more than once");
    }
    Ok(())
}

/// A few hundred sockets over the room and five shards; the host (in the room) and a viewer (on a shard, so its
/// messages reach the room through the shard) send at once. Every socket gets every message once, in the one
/// order the room gave them (their ids).
async fn shards_deliver_every_message_once_in_order(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let talker = room.api.register("shardtalk").await?;
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    let mut readers = many_readers(app, &room, 240).await?;
    let mut viewer = join_from(app, &room, Credentials::Bearer(&talker.access), &next_ip()).await?;
    let shards = shards_in_use(app, &room.id);
    ensure!(
        shards.len() >= 5,
        "242 sockets at 40 per object span the room and at least five shards; the log names {shards:?}"
    );
    let host_says = async {
        for i in 0..20 {
            say(&mut host, &format!("host {i}")).await?;
        }
        Ok::<_, BoxError>(())
    };
    let viewer_says = async {
        for i in 0..5 {
            say(&mut viewer, &format!("viewer {i}")).await?;
        }
        Ok::<_, BoxError>(())
    };
    let (a, b) = futures::join!(host_says, viewer_says);
    a?;
    b?;
    // The room's order is the ids' order: the host's copy defines it.
    let mut order = Vec::new();
    let mut seen_texts = Vec::new();
    while order.len() < 25 {
        let frame = next_chat(&mut host).await?;
        order.push(frame["id"].as_str().unwrap_or_default().to_string());
        seen_texts.push(frame["text"].as_str().unwrap_or_default().to_string());
    }
    // The shard viewer's messages went through the room, in the order the viewer sent them.
    let from_viewer: Vec<&String> = seen_texts.iter().filter(|t| t.starts_with("viewer ")).collect();
    let sent: Vec<String> = (0..5).map(|i| format!("viewer {i}")).collect();
    ensure!(
        from_viewer == sent.iter().collect::<Vec<_>>(),
        "the shard viewer's messages in its own order: {seen_texts:?}"
    );
    let mut clients: Vec<&mut ChatClient> = readers.iter_mut().collect();
    clients.push(&mut viewer);
    every_socket_got(&mut clients, &order).await
}

/// Straight at the user workerd (no dev proxy, as production has none and as `scripts/bench fanout` measures): more
/// sockets than the room and two shards hold, and a burst from the host reaches every one of them once, in the
/// room's order. The broadcast hands each frame and its list of sockets to JS in one call; this is the check that
/// the one call still reaches every socket, on the room and on every shard.
async fn sockets_past_two_shards_through_the_direct_path_get_every_message_once_in_order(app: &TestApp) -> TestResult {
    let direct = format!("http://127.0.0.1:{}", app.direct_worker_port()?);
    let room = new_room(app).await?;
    let per_object = app.chat_shard_sockets as usize;
    let n = 3 * per_object + per_object / 2;
    let mut host = ChatClient::connect(&direct, &room.id, Credentials::Bearer(&room.host.access)).await?;
    let mut readers = Vec::with_capacity(n);
    while readers.len() < n {
        let batch = (n - readers.len()).min(20);
        let opened = futures::future::join_all((0..batch).map(|_| async {
            ChatClient::connect_from(&direct, &room.id, Credentials::Anonymous, Some(&next_ip())).await
        }))
        .await;
        for r in opened {
            readers.push(r?);
        }
    }
    let shards = shards_in_use(app, &room.id);
    ensure!(
        shards.len() >= 3,
        "{} sockets at {per_object} per object need the room and at least three shards; the log names {shards:?}",
        n + 1
    );
    for i in 0..30 {
        say(&mut host, &format!("direct {i}")).await?;
    }
    let mut order = Vec::new();
    while order.len() < 30 {
        let frame = next_chat(&mut host).await?;
        order.push(frame["id"].as_str().unwrap_or_default().to_string());
    }
    let mut clients: Vec<&mut ChatClient> = readers.iter_mut().collect();
    every_socket_got(&mut clients, &order).await
}

/// Delete, timeout and ban from the host in the room reach sockets on every shard: the deletion is seen
/// everywhere, a timed-out user on a shard is refused with `rate_limited`, and a banned user's sockets close with
/// 1008 wherever they are (one in the room, one on a shard). A logout closes its login's socket on a shard too.
async fn moderation_reaches_every_shard(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let troll = room.api.register("shardtroll").await?;
    let muted = room.api.register("shardmute").await?;
    let leaver = room.api.register("shardleave").await?;
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    // One socket of the troll in the room itself, then enough readers to fill it and three shards.
    let mut troll_in_room = join_from(app, &room, Credentials::Bearer(&troll.access), &next_ip()).await?;
    let mut readers = many_readers(app, &room, 160).await?;
    let mut troll_on_shard = join_from(app, &room, Credentials::Bearer(&troll.access), &next_ip()).await?;
    let mut muted_on_shard = join_from(app, &room, Credentials::Bearer(&muted.access), &next_ip()).await?;
    let mut leaver_on_shard = join_from(app, &room, Credentials::Bearer(&leaver.access), &next_ip()).await?;
    let shards = shards_in_use(app, &room.id);
    ensure!(shards.len() >= 3, "164 sockets span at least three shards: {shards:?}");

    // Logout closes the login's socket on its shard.
    let out = room
        .api
        .send(
            room.api
                .request(reqwest::Method::POST, "/api/auth/logout")
                .bearer_auth(&leaver.access),
        )
        .await?;
    ensure!(out.status == 204, "logout: {} {}", out.status, out.text);
    let code = leaver_on_shard.close_code(WAIT).await?;
    ensure!(
        code == 1008,
        "a logged-out login's socket on a shard closes with 1008, got {code}"
    );

    say(&mut troll_on_shard, "spam from a shard").await?;
    let spam = next_chat(&mut host).await?;
    ensure!(spam["text"] == "spam from a shard", "the host sees it: {spam}");
    let id = spam["id"].as_str().ok_or("id")?.to_string();
    host.send_json(&json!({"type": "delete", "id": id})).await?;
    let deleted = futures::future::join_all(
        readers
            .iter_mut()
            .map(|r| async { r.next_of_type("deleted", Duration::from_secs(20)).await }),
    )
    .await;
    for (i, d) in deleted.into_iter().enumerate() {
        let d = d.map_err(|e| format!("reader {i}: {e}"))?;
        ensure!(d["id"] == id.as_str(), "reader {i} was told of the deletion: {d}");
    }

    host.send_json(&json!({"type": "timeout", "user_id": muted.user_id, "seconds": 60}))
        .await?;
    // The timeout is in effect once a later host message comes back.
    say(&mut host, "after the timeout").await?;
    while next_chat(&mut muted_on_shard).await?["text"] != "after the timeout" {}
    say(&mut muted_on_shard, "let me talk").await?;
    let refused = next_error(&mut muted_on_shard).await?;
    ensure!(
        refused["code"] == "rate_limited",
        "a timed-out user on a shard is refused: {refused}"
    );

    host.send_json(&json!({"type": "ban", "user_id": troll.user_id}))
        .await?;
    let (a, b) = futures::join!(troll_in_room.close_code(WAIT), troll_on_shard.close_code(WAIT));
    ensure!(a? == 1008, "the banned user's socket in the room closes with 1008");
    ensure!(b? == 1008, "the banned user's socket on a shard closes with 1008");
    let mut again = join_from(app, &room, Credentials::Bearer(&troll.access), &next_ip()).await?;
    say(&mut again, "back through a shard").await?;
    ensure!(
        next_error(&mut again).await?["code"] == "banned",
        "still banned on a shard"
    );
    say(&mut host, "bystanders unaffected").await?;
    for (i, c) in readers.iter_mut().enumerate() {
        loop {
            let frame = c
                .next_of_type("chat", Duration::from_secs(20))
                .await
                .map_err(|e| format!("reader {i}: {e}"))?;
            if frame["text"] == "bystanders unaffected" {
                break;
            }
        }
    }
    Ok(())
}

/// Waits for a `presence` frame saying `want` viewers (earlier ones may say other counts on the way).
async fn presence_reaches(c: &mut ChatClient, want: u64) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = c
            .next_of_type("presence", left)
            .await
            .map_err(|e| format!("no presence frame with {want} viewers: {e}"))?;
        if frame["viewers"] == want {
            return Ok(());
        }
    }
}

/// The viewer count is the room's over every shard: anonymous sockets count once per address and a user once
/// however many sockets, in the room or on shards; it goes down as shard sockets leave; the per-address cap holds
/// across shards.
async fn presence_sums_across_shards(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let user = room.api.register("shardcount").await?;
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    let user_in_room = join_from(app, &room, Credentials::Bearer(&user.access), &next_ip()).await?;
    let mut readers = many_readers(app, &room, 150).await?;
    let user_on_shard = join_from(app, &room, Credentials::Bearer(&user.access), &next_ip()).await?;
    let shards = shards_in_use(app, &room.id);
    ensure!(shards.len() >= 3, "153 sockets span at least three shards: {shards:?}");
    // host + user + 150 addresses.
    let want = 152;
    ensure!(
        user_on_shard.welcome["viewers"] == want,
        "the welcome on a shard counts everyone: {}",
        user_on_shard.welcome["viewers"]
    );
    let mut last = readers.pop().ok_or("a reader")?;
    presence_reaches(&mut last, want).await?;
    let (api, id) = (&room.api, &room.id);
    eventually(
        Duration::from_secs(10),
        "the stream's viewer count to be 152",
        || async move { Ok(api.stream(id).await?["viewers"] == want) },
    )
    .await?;

    // 50 readers on shards leave (the newest sockets are the ones on shards).
    for r in readers.drain(readers.len() - 50..) {
        r.close().await;
    }
    user_on_shard.close().await;
    let want = want - 50;
    presence_reaches(&mut host, want).await?;
    eventually(
        Duration::from_secs(10),
        "the stream's viewer count to be 102",
        || async move { Ok(api.stream(id).await?["viewers"] == want) },
    )
    .await?;

    // The cap: one address gets 20 sockets, wherever they land, and the 21st is refused.
    let ip = next_ip();
    let mut same = Vec::new();
    for _ in 0..20 {
        same.push(join_from(app, &room, Credentials::Anonymous, &ip).await?);
    }
    let mut refused = ChatClient::open(&app.base, &room.id, Credentials::Anonymous, Some(&ip)).await?;
    let frame = refused.next_frame(WAIT).await?;
    ensure!(
        frame["code"] == "too_many_connections",
        "the 21st socket from one address is refused across shards: {frame}"
    );
    ensure!(refused.close_code(WAIT).await? == 1008, "and closed with 1008");
    drop(user_in_room);
    Ok(())
}

/// A shard evicted from memory (idle past the local eviction time, its sockets hibernating) comes back on the next
/// delivery: nothing is lost, nothing repeated (its last applied delivery is in storage), and its sockets still
/// send through it. The room, idle as long, is rebuilt too and numbers its deliveries in a new epoch.
async fn an_evicted_shard_keeps_its_sockets_and_drops_nothing(app: &TestApp) -> TestResult {
    let room = new_room(app).await?;
    let talker = room.api.register("evictee").await?;
    let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
    let mut readers = many_readers(app, &room, 100).await?;
    let mut viewer = join_from(app, &room, Credentials::Bearer(&talker.access), &next_ip()).await?;
    ensure!(shards_in_use(app, &room.id).len() >= 2, "102 sockets span two shards");
    say(&mut host, "before").await?;
    let before = next_chat(&mut host).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut clients: Vec<&mut ChatClient> = readers.iter_mut().collect();
    clients.push(&mut viewer);
    every_socket_got(&mut clients, &[before]).await?;
    let rebuilds = rebuild_count(app, &room.id);
    tokio::time::sleep(PAST_EVICTION).await;
    say(&mut viewer, "after, from a shard").await?;
    for i in 0..4 {
        say(&mut host, &format!("after {i}")).await?;
    }
    let mut order = Vec::new();
    while order.len() < 5 {
        order.push(
            next_chat(&mut host).await?["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    ensure!(
        rebuild_count(app, &room.id) > rebuilds,
        "the room was evicted and rebuilt meanwhile (else this test proves nothing)"
    );
    let mut clients: Vec<&mut ChatClient> = readers.iter_mut().collect();
    clients.push(&mut viewer);
    every_socket_got(&mut clients, &order).await
}

/// `wrangler dev` killed and started again: every socket (room and shards) drops; clients reconnect, as the web
/// client does, and resume from their welcome's history by id. Nothing sent before the kill is lost or repeated,
/// the room forgets the shard sockets that died with the process (the viewer count is that of the reconnected
/// sockets, not twice that), and the shards deliver the room's new frames once, in order.
fn a_restarted_shard_rejoins_without_loss(app: &TestApp) -> Result<(), Failed> {
    type Seen = Vec<Vec<String>>;
    let arranged: Mutex<Option<(Room, Vec<String>, Seen)>> = Mutex::new(None);
    app.run(async {
        let room = new_room(app).await?;
        let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
        let mut readers = many_readers(app, &room, 120).await?;
        ensure!(shards_in_use(app, &room.id).len() >= 2, "121 sockets span two shards");
        for i in 0..10 {
            say(&mut host, &format!("pre {i}")).await?;
        }
        let mut sent = Vec::new();
        while sent.len() < 10 {
            sent.push(
                next_chat(&mut host).await?["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        // Whatever each reader got before the kill (not necessarily everything).
        let mut seen = Vec::new();
        for r in readers.iter_mut() {
            let got = r.collect_of_type("chat", Duration::from_millis(20)).await;
            seen.push(
                got.iter()
                    .map(|f| f["id"].as_str().unwrap_or_default().to_string())
                    .collect(),
            );
        }
        *arranged.lock().map_err(|_| "poisoned")? = Some((room, sent, seen));
        Ok(())
    })?;
    let (room, sent, seen) = arranged.into_inner().ok().flatten().ok_or("arrange did not finish")?;
    app.kill_worker();
    app.start_worker_again().map_err(|e| Failed::from(e.to_string()))?;
    app.run(async {
        let mut host = join(app, &room, Credentials::Bearer(&room.host.access)).await?;
        let mut readers = Vec::new();
        let openings = shard_openings(app, &room.id);
        for (i, had) in seen.iter().enumerate() {
            let r = join_from(app, &room, Credentials::Anonymous, &next_ip()).await?;
            // Resume: what the welcome's history holds beyond the last id this client had, by id.
            let mut ids = had.clone();
            for item in r.welcome["history"].as_array().ok_or("history")? {
                let id = item["id"].as_str().unwrap_or_default().to_string();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            ensure!(ids == sent, "reader {i} resumed with {ids:?}, the room sent {sent:?}");
            readers.push(r);
        }
        ensure!(
            shard_openings(app, &room.id) >= openings + 2,
            "the reconnected sockets are on two shards again"
        );
        let want = readers.len() + 1;
        let (api, id) = (&room.api, &room.id);
        eventually(
            Duration::from_secs(15),
            "the viewer count to be the live sockets'",
            || async move { Ok(api.stream(id).await?["viewers"] == want) },
        )
        .await?;
        for i in 0..5 {
            say(&mut host, &format!("post {i}")).await?;
        }
        let mut order = Vec::new();
        while order.len() < 5 {
            order.push(
                next_chat(&mut host).await?["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        let mut clients: Vec<&mut ChatClient> = readers.iter_mut().collect();
        every_socket_got(&mut clients, &order).await
    })
}
