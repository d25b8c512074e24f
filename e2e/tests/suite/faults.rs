//! The fault suite: what users see when a process dies mid-evening. Each test starts a whole stack of its own
//! (`TestApp::start`, own ports and state directory) and kills parts of *that* stack, so the shared stack the other
//! tests use is never touched; they run serially, after the parallel tests, one extra stack at a time.
//!
//! - `wrangler dev` SIGKILLed while chat, donations and an RTMP publish are flowing, then started on the same state:
//!   every chat message acknowledged before the kill is in history once, every paid donation is credited once and
//!   alerted once, and the stream is live again or ended, never stuck live.
//! - The same kill under a viewer's watch page in Chromium: its chat socket reconnects with backoff and shows the
//!   messages it missed, each once.
//! - The origin SIGKILLed mid-stream: the stream is offline within the stale window, and a new publish works.
//! - `wrangler dev` SIGKILLed and started again mid-simulcast: the output's ffmpeg on the origin keeps sending (its
//!   receiver gets the whole publish in one connection), the API shows it live afterwards and idle once the stream
//!   ends.
//! - The Midtrans stand-in hung (SIGSTOP: longer than the worker's timeout), failing (500) and down (connection
//!   refused): checkout answers 502 in the contract's error shape within a bounded time and leaves a failed row, not
//!   a pending one; a donation paid while the stand-in hangs is settled by the cron once it answers again.
//! - A clip of the live stream made while a segment's upload is in flight (its body still trickling in, straight
//!   at the Worker's workerd; see `trickled_upload` for what that covers locally): the clip names only segments
//!   already stored (each answers 200 and decodes),
//!   is whole segments within one of what was asked and ends at the newest stored one; the upload still completes
//!   (201) and is listed in the broadcast's playlist; the clip plays the same afterwards.
//! - `wrangler dev` SIGKILLed and started again on the same state while a client pages through a past broadcast's
//!   chat replay (chat and a donation sent during a publish, one message deleted by the host): continuing from
//!   `next_from_ms`, every message comes once, in order, with the ids and offsets of a full read before the kill,
//!   and the deleted one never.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};
use serde_json::{json, Value};
use sunnylive_e2e::ws::{ChatClient, Credentials};
use sunnylive_e2e::{
    ensure, eventually, Api, BoxError, Session, TestApp, TestResult, ORIGIN_TOKEN, TEST_HEARTBEAT_SECONDS,
    TEST_STALE_STREAM_SECONDS,
};

pub fn serial_tests() -> Vec<Trial> {
    vec![
        own_stack(
            "a_worker_killed_mid_load_keeps_every_acknowledged_message_and_credits_each_donation_once",
            a_worker_killed_mid_load_keeps_every_acknowledged_message_and_credits_each_donation_once,
        ),
        own_stack(
            "the_watch_page_reconnects_after_a_worker_kill_and_shows_what_it_missed_once_in_chromium",
            the_watch_page_reconnects_after_a_worker_kill_and_shows_what_it_missed_once_in_chromium,
        ),
        own_stack(
            "a_killed_origin_shows_the_stream_offline_within_the_stale_window_and_a_new_publish_works",
            a_killed_origin_shows_the_stream_offline_within_the_stale_window_and_a_new_publish_works,
        ),
        own_stack(
            "a_worker_restart_mid_simulcast_keeps_the_outputs_going_and_their_status_right",
            a_worker_restart_mid_simulcast_keeps_the_outputs_going_and_their_status_right,
        ),
        own_stack(
            "midtrans_hung_failing_or_down_gives_a_bounded_502_and_no_donation_left_unresolvable",
            midtrans_hung_failing_or_down_gives_a_bounded_502_and_no_donation_left_unresolvable,
        ),
        own_stack(
            "a_clip_made_while_a_segment_uploads_names_only_stored_segments_and_the_upload_completes",
            a_clip_made_while_a_segment_uploads_names_only_stored_segments_and_the_upload_completes,
        ),
        own_stack(
            "a_worker_restart_mid_replay_pages_every_message_once_in_order_without_the_deleted_one",
            a_worker_restart_mid_replay_pages_every_message_once_in_order_without_the_deleted_one,
        ),
    ]
}

/// A trial that starts a stack of its own, runs `test` (blocking code that alternates `block_on` phases with kills
/// and restarts), and always stops the stack.
fn own_stack(name: &'static str, test: fn(&TestApp) -> TestResult) -> Trial {
    Trial::test(format!("faults::{name}"), move || {
        let stack = TestApp::start().map_err(|e| Failed::from(format!("starting a stack of its own: {e}")))?;
        let result = test(&stack);
        stack.stop();
        result.map_err(|e| Failed::from(format!("{e}\n(logs: {})", stack.run_dir.display())))
    })
}

/// How long after its last heartbeat a stream may still show live: the stale threshold, one heartbeat, and a margin
/// for the cron run that notices (in production the cron runs every minute; here the test runs it every second).
fn stale_bound() -> Duration {
    Duration::from_secs(TEST_STALE_STREAM_SECONDS + TEST_HEARTBEAT_SECONDS + 8)
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/// The test publisher (`rtmp::publisher_args`) as a blocking `std` child, so it can be started and stopped outside
/// the runtime.
struct Publisher(Child);

impl Publisher {
    fn start(stack: &TestApp, key: &str) -> Result<Publisher, BoxError> {
        let child = Command::new("ffmpeg")
            .args(crate::rtmp::publisher_args(
                &format!("{}/{key}", stack.rtmp_url),
                600,
                "320x180",
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting ffmpeg: {e}"))?;
        Ok(Publisher(child))
    }

    fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn stream_status(api: &Api, id: &str) -> Result<String, BoxError> {
    Ok(api.stream(id).await?["status"].as_str().unwrap_or_default().to_string())
}

/// Every `{"type": "chat"}` object anywhere in a frame (a plain chat frame, or one inside a batch of frames).
fn chat_objects<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("chat") {
                out.push(v);
            }
            map.values().for_each(|x| chat_objects(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| chat_objects(x, out)),
        _ => {}
    }
}

/// The whole history of a room, oldest first, paging back with `before`.
async fn full_history(api: &Api, stream_id: &str) -> Result<Vec<Value>, BoxError> {
    let mut all = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..200 {
        let q = before
            .as_ref()
            .map_or("limit=100".to_string(), |b| format!("limit=100&before={b}"));
        let a = api.get(&format!("/api/streams/{stream_id}/messages?{q}"), None).await?;
        ensure!(a.status == 200, "history: {} {}", a.status, a.text);
        let mut page = a.body["messages"].as_array().cloned().unwrap_or_default();
        page.extend(all);
        all = page;
        match a.body["next_before"].as_str() {
            Some(b) => before = Some(b.to_string()),
            None => return Ok(all),
        }
    }
    Err("history did not end within 200 pages".into())
}

/// Starts a donation as a guest with `message`; (order id, redirect url) on 201, the answer otherwise.
async fn donate(stack: &TestApp, stream_id: &str, amount: u64, message: &str) -> Result<(String, String), String> {
    let a = stack
        .api()
        .post(
            &format!("/api/streams/{stream_id}/donations"),
            None,
            &json!({"amount": amount, "message": message, "donor_name": "Fault"}),
        )
        .await
        .map_err(|e| e.to_string())?;
    if a.status != 201 {
        return Err(format!("{} {}", a.status, a.text));
    }
    Ok((
        a.body["order_id"].as_str().unwrap_or_default().to_string(),
        a.body["redirect_url"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Pays on the stand-in's page by card (the stand-in then notifies the worker).
async fn pay(stack: &TestApp, redirect_url: &str) -> Result<(), BoxError> {
    let r = stack
        .http()
        .post(format!("{redirect_url}/pay"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("method=card")
        .send()
        .await?;
    ensure!(r.status().as_u16() == 303, "pay: {}", r.status());
    Ok(())
}

async fn control(stack: &TestApp, path: &str, body: Value) -> TestResult {
    let r = stack
        .http()
        .post(format!("{}/_control/{path}", stack.midtrans))
        .json(&body)
        .send()
        .await?;
    ensure!(r.status().is_success(), "control {path}: {}", r.status());
    Ok(())
}

/// The owner's view of every donation to the stream and the paid total.
async fn owner_donations(api: &Api, owner: &Session, stream_id: &str) -> Result<(Vec<Value>, i64), BoxError> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map_or("limit=100".to_string(), |c| format!("limit=100&cursor={c}"));
        let a = api
            .get(&format!("/api/streams/{stream_id}/donations?{q}"), Some(&owner.access))
            .await?;
        ensure!(a.status == 200, "owner list: {} {}", a.status, a.text);
        rows.extend(a.body["donations"].as_array().cloned().unwrap_or_default());
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok((rows, a.body["total_paid"].as_i64().unwrap_or(-1))),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// wrangler dev killed mid-load

/// Sends a chat line about every 1.1 s (inside the room's rate limit) until `stop` or the socket dies, and records
/// every chat text the room echoed back to this socket: those are acknowledged.
async fn chatter(
    base: String,
    stream_id: String,
    who: Session,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<HashSet<String>>>,
) -> Result<u32, BoxError> {
    let mut client = ChatClient::connect(&base, &stream_id, Credentials::Bearer(&who.access)).await?;
    let mut sent = 0;
    while !stop.load(Ordering::SeqCst) {
        let text = format!("{}-{sent}", who.username);
        if client.send_json(&json!({"type": "chat", "text": text})).await.is_err() {
            break;
        }
        sent += 1;
        let until = tokio::time::Instant::now() + Duration::from_millis(1100);
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match client.next_frame(left).await {
                Ok(frame) => {
                    let mut chats = Vec::new();
                    chat_objects(&frame, &mut chats);
                    let mut acked = acked.lock().expect("BUG: poisoned");
                    for c in chats {
                        if let Some(t) = c["text"].as_str() {
                            acked.insert(t.to_string());
                        }
                    }
                }
                Err(e) if e.to_string().starts_with("no frame within") => break,
                // The worker died under us: everything acknowledged so far is recorded.
                Err(_) => return Ok(sent),
            }
        }
    }
    Ok(sent)
}

/// Starts and pays a donation every ~700 ms until `stop`, recording what the worker answered 201 for.
async fn donor(base: String, stream_id: String, stop: Arc<AtomicBool>, made: Arc<Mutex<Vec<String>>>) {
    let api = Api::new(&base, sunnylive_e2e::next_ip());
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let body = json!({"amount": 1000 + n, "message": format!("flow-{n}"), "donor_name": "Fault"});
        if let Ok(a) = api
            .post(&format!("/api/streams/{stream_id}/donations"), None, &body)
            .await
        {
            if a.status == 201 {
                made.lock()
                    .expect("BUG: poisoned")
                    .push(a.body["order_id"].as_str().unwrap_or_default().into());
                if let Some(url) = a.body["redirect_url"].as_str() {
                    let _ = api
                        .client
                        .post(format!("{url}/pay"))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body("method=card")
                        .send()
                        .await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

fn a_worker_killed_mid_load_keeps_every_acknowledged_message_and_credits_each_donation_once(
    stack: &TestApp,
) -> TestResult {
    let api = stack.api();
    let (host, stream_id, key, chatters) = stack.block_on(async {
        let host = api.register("khost").await?;
        let (id, key) = api.create_stream(&host, "fault night").await?;
        let mut chatters = Vec::new();
        for _ in 0..4 {
            chatters.push(stack.api().register("kchat").await?);
        }
        Ok::<_, BoxError>((host, id, key, chatters))
    })?;

    // Arrange: a live publish, two donations paid and alerted, four chatters and a donor keeping load up.
    let mut publisher = Publisher::start(stack, &key)?;
    stack.block_on(eventually(Duration::from_secs(30), "the stream to go live", || async {
        Ok(stream_status(&api, &stream_id).await? == "live")
    }))?;
    let settled_before = stack.block_on(async {
        let mut paid = Vec::new();
        for (amount, msg) in [(20_000, "before-1"), (30_000, "before-2")] {
            let (order, url) = donate(stack, &stream_id, amount, msg).await?;
            pay(stack, &url).await?;
            paid.push(order);
        }
        eventually(Duration::from_secs(20), "the two donations to be paid", || async {
            let (rows, _) = owner_donations(&api, &host, &stream_id).await?;
            Ok(rows.iter().filter(|r| r["status"] == "paid").count() == 2)
        })
        .await?;
        Ok::<_, BoxError>(paid)
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let made = Arc::new(Mutex::new(Vec::new()));
    let rt = stack.handle();
    let chat_tasks: Vec<_> = chatters
        .iter()
        .map(|who| {
            rt.spawn(chatter(
                stack.base.clone(),
                stream_id.clone(),
                who.clone(),
                stop.clone(),
                acked.clone(),
            ))
        })
        .collect();
    let donor_task = rt.spawn(donor(stack.base.clone(), stream_id.clone(), stop.clone(), made.clone()));
    std::thread::sleep(Duration::from_secs(6));

    // Act: the crash. Nothing is flushed on the way out.
    let acked_at_kill = acked.lock().expect("BUG: poisoned").len();
    stack.kill_worker();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    stack.start_worker_again()?;

    stack.block_on(async {
        let mut sent = 0;
        for t in chat_tasks {
            sent += t.await?.map_err(|e| format!("a chatter failed before the kill: {e}"))?;
        }
        donor_task.await?;
        let acked: HashSet<String> = acked.lock().expect("BUG: poisoned").clone();
        ensure!(
            acked_at_kill >= 8 && acked.len() >= acked_at_kill,
            "too little chat flowed before the kill ({acked_at_kill} acknowledged of {sent} sent)"
        );

        // Chat: every acknowledged line is in history, exactly once; no id twice.
        let history = full_history(&api, &stream_id).await?;
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut ids = HashSet::new();
        for m in &history {
            ensure!(ids.insert(m["id"].to_string()), "message id {} twice in history", m["id"]);
            if m["type"] == "chat" {
                *counts.entry(m["text"].as_str().unwrap_or_default()).or_default() += 1;
            }
        }
        let mut lost: Vec<&String> = acked.iter().filter(|t| !counts.contains_key(t.as_str())).collect();
        lost.sort();
        ensure!(
            lost.is_empty(),
            "{} of {} acknowledged chat messages are missing from history after the restart: {lost:?}",
            lost.len(),
            acked.len()
        );
        let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        ensure!(doubled.is_empty(), "chat messages stored twice: {doubled:?}");

        // Donations: the cron settles whatever was paid while the worker was down and redelivers alerts; then
        // every paid donation is credited once and alerted once, and nothing paid before the kill is lost.
        let last = Mutex::new(String::new());
        let settled = eventually(Duration::from_secs(90), "every paid donation credited and alerted", || async {
            stack.run_cron().await?;
            let (rows, total) = owner_donations(&api, &host, &stream_id).await?;
            let history = full_history(&api, &stream_id).await?;
            let paid: Vec<&Value> = rows.iter().filter(|r| r["status"] == "paid").collect();
            let sum: i64 = paid.iter().map(|r| r["amount"].as_i64().unwrap_or(0)).sum();
            let alerts = |msg: &Value| history.iter().filter(|m| m["type"] == "donation" && m["message"] == *msg).count();
            let alerted_once = paid.iter().all(|r| alerts(&r["message"]) == 1);
            let never_twice = rows.iter().all(|r| alerts(&r["message"]) <= 1);
            let unpaid_silent = rows.iter().filter(|r| r["status"] != "paid").all(|r| alerts(&r["message"]) == 0);
            let seen = format!(
                "{} rows, {} paid summing {sum}, total_paid {total}, alerted once: {alerted_once}, \
                 none twice: {never_twice}, unpaid silent: {unpaid_silent}",
                rows.len(),
                paid.len()
            );
            let last = {
                let mut l = last.lock().expect("BUG: poisoned");
                *l = seen.clone();
                seen
            };
            ensure!(never_twice, "a donation was alerted twice: {last}");
            ensure!(total <= sum, "credited more than was paid: {last}");
            let before_ok = settled_before
                .iter()
                .all(|o| rows.iter().any(|r| r["order_id"] == o.as_str() && r["status"] == "paid"));
            ensure!(before_ok, "a donation paid before the kill is no longer paid: {last}");
            Ok(total == sum && alerted_once && unpaid_silent)
        })
        .await;
        let last = last.into_inner().expect("BUG: poisoned");
        settled.map_err(|e| format!("{e}; last seen: {last}"))?;
        eprintln!(
            "faults: {} chat lines acknowledged ({acked_at_kill} at the kill) all in history; donations: {last}; {} started by the donor",
            acked.len(),
            made.lock().expect("BUG: poisoned").len()
        );
        Ok::<_, BoxError>(())
    })?;

    // RTMP: live again (the publisher survived) or ended by the sweep; never left live without a publisher.
    stack.block_on(async {
        tokio::time::sleep(Duration::from_secs(2 * TEST_HEARTBEAT_SECONDS)).await;
        let status = stream_status(&api, &stream_id).await?;
        eprintln!("faults: after the restart the stream is {status}");
        Ok::<_, BoxError>(())
    })?;
    let survived = publisher.running();
    drop(publisher);
    stack.block_on(async {
        let started = Instant::now();
        eventually(
            stale_bound(),
            "the stream to end after its publisher is gone",
            || async {
                stack.run_cron().await?;
                Ok(stream_status(&api, &stream_id).await? == "offline")
            },
        )
        .await?;
        eprintln!(
            "faults: publisher {} the kill; offline {:.1} s after it stopped",
            if survived { "survived" } else { "was dropped by" },
            started.elapsed().as_secs_f64()
        );
        Ok::<_, BoxError>(())
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// The web client through a worker kill (Chromium)

/// Sends `texts` as `who` and waits until the room has echoed each one (acknowledged).
async fn say_all(base: &str, stream_id: &str, who: &Session, texts: &[String]) -> TestResult {
    let mut client = ChatClient::connect(base, stream_id, Credentials::Bearer(&who.access)).await?;
    let mut pending: HashSet<&str> = texts.iter().map(String::as_str).collect();
    for t in texts {
        client.send_json(&json!({"type": "chat", "text": t})).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while !pending.is_empty() {
        ensure!(Instant::now() < deadline, "no echo for {pending:?}");
        let frame = client.next_frame(Duration::from_secs(15)).await?;
        let mut chats = Vec::new();
        chat_objects(&frame, &mut chats);
        for c in chats {
            pending.remove(c["text"].as_str().unwrap_or_default());
        }
    }
    client.close().await;
    Ok(())
}

fn the_watch_page_reconnects_after_a_worker_kill_and_shows_what_it_missed_once_in_chromium(
    stack: &TestApp,
) -> TestResult {
    use std::io::{BufRead, Write};
    let api = stack.api();
    let before: Vec<String> = (1..=3).map(|i| format!("before the crash #{i}")).collect();
    let after: Vec<String> = (1..=3).map(|i| format!("sent while you were away #{i}")).collect();
    let (host, stream_id) = stack.block_on(async {
        let host = api.register("bhost").await?;
        let (id, _) = api.create_stream(&host, "browser through a crash").await?;
        say_all(&stack.base, &id, &host, &before).await?;
        Ok::<_, BoxError>((host, id))
    })?;
    let mut node = Command::new(sunnylive_e2e::node())
        .arg("e2e/browser/fault-reconnect.mjs")
        .current_dir(sunnylive_e2e::repo_root())
        .env("SUNNYLIVE_BASE_URL", &stack.site)
        .env("SUNNYLIVE_SITE_HOST", sunnylive_e2e::SITE_HOST)
        .env("SUNNYLIVE_SITE_SPKI", &stack.site_spki)
        .env("SUNNYLIVE_RTMP_URL", &stack.rtmp_url)
        .env("SUNNYLIVE_MIDTRANS_URL", &stack.midtrans)
        .env("SUNNYLIVE_FAULT_STREAM", &stream_id)
        .env("SUNNYLIVE_FAULT_BEFORE", serde_json::to_string(&before)?)
        .env("SUNNYLIVE_FAULT_AFTER", serde_json::to_string(&after)?)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("could not run node: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = node.stdout.take().ok_or("node stdout")?;
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let wait_for = |prefix: &str, timeout: Duration, seen: &mut Vec<String>| -> Result<String, BoxError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) || line.starts_with("FAIL") => return Ok(line),
                Ok(line) => seen.push(line),
                Err(_) => return Err(format!("no {prefix} from the browser within {timeout:?}: {seen:?}").into()),
            }
        }
    };
    let ready = wait_for("READY", Duration::from_secs(90), &mut seen);
    let outcome = (|| -> TestResult {
        let ready = ready?;
        ensure!(ready == "READY", "the browser did not get ready: {ready}");
        stack.kill_worker();
        std::thread::sleep(Duration::from_secs(1));
        stack.start_worker_again()?;
        stack.block_on(say_all(&stack.base, &stream_id, &host, &after))?;
        let mut stdin = node.stdin.take().ok_or("node stdin")?;
        writeln!(stdin, "SENT {}", after.len())?;
        let verdict = wait_for("PASS", Duration::from_secs(120), &mut seen)?;
        ensure!(verdict.starts_with("PASS"), "the watch page after the crash: {verdict}");
        eprintln!("faults: chromium {verdict}");
        Ok(())
    })();
    let _ = node.kill();
    let _ = node.wait();
    outcome
}

// ---------------------------------------------------------------------------------------------------------------
// The origin killed mid-stream

fn a_killed_origin_shows_the_stream_offline_within_the_stale_window_and_a_new_publish_works(
    stack: &TestApp,
) -> TestResult {
    let api = stack.api();
    let (stream_id, key) = stack.block_on(async {
        let host = api.register("ohost").await?;
        api.create_stream(&host, "origin crash").await
    })?;
    let publisher = Publisher::start(stack, &key)?;
    stack.block_on(eventually(Duration::from_secs(30), "the stream to go live", || async {
        Ok(stream_status(&api, &stream_id).await? == "live")
    }))?;

    // The crash: nginx dies with no on_publish_done; only the missing heartbeats can tell the worker.
    stack.kill_origin();
    let killed = Instant::now();
    drop(publisher);
    stack.block_on(async {
        eventually(stale_bound(), "the stream to show offline", || async {
            stack.run_cron().await?;
            Ok(stream_status(&api, &stream_id).await? == "offline")
        })
        .await?;
        eprintln!(
            "faults: offline {:.1} s after the origin died (stale window {TEST_STALE_STREAM_SECONDS} s)",
            killed.elapsed().as_secs_f64()
        );
        Ok::<_, BoxError>(())
    })?;

    // A fresh origin on the same ports takes a new publish with the same key.
    stack.start_origin_again()?;
    let _publisher = Publisher::start(stack, &key)?;
    stack.block_on(eventually(
        Duration::from_secs(30),
        "a new publish to go live",
        || async { Ok(stream_status(&api, &stream_id).await? == "live") },
    ))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Midtrans hung, failing, down

/// The worker gives Midtrans 8 s (`MIDTRANS_TIMEOUT` in functions/src/donations/midtrans_client.rs); a checkout must
/// be answered within that plus the request's own work.
const CHECKOUT_BOUND: Duration = Duration::from_secs(12);

/// A checkout while Midtrans misbehaves: 502 in the contract's error shape within `bound`, and the row it left is
/// failed (resolved), not pending.
async fn checkout_is_refused_cleanly(
    stack: &TestApp,
    owner: &Session,
    stream_id: &str,
    what: &str,
    bound: Duration,
) -> TestResult {
    let api = stack.api();
    let started = Instant::now();
    let a = api
        .post(
            &format!("/api/streams/{stream_id}/donations"),
            None,
            &json!({"amount": 5000, "message": what}),
        )
        .await?;
    let took = started.elapsed();
    ensure!(a.status == 502, "{what}: checkout answered {} {}", a.status, a.text);
    ensure!(
        a.body["error"]["code"].as_str().is_some_and(|c| !c.is_empty())
            && a.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: not the contract's error shape: {}",
        a.text
    );
    ensure!(took <= bound, "{what}: checkout took {took:?} (bound {bound:?})");
    let (rows, _) = owner_donations(&api, owner, stream_id).await?;
    let row = rows
        .iter()
        .find(|r| r["message"] == what)
        .ok_or_else(|| format!("{what}: no donation row"))?;
    ensure!(
        row["status"] == "failed",
        "{what}: the row is {} instead of failed",
        row["status"]
    );
    eprintln!(
        "faults: Midtrans {what}: 502 {} in {:.1} s",
        a.code(),
        took.as_secs_f64()
    );
    Ok(())
}

fn midtrans_hung_failing_or_down_gives_a_bounded_502_and_no_donation_left_unresolvable(stack: &TestApp) -> TestResult {
    let api = stack.api();
    let (owner, stream_id) = stack.block_on(async {
        let owner = api.register("mhost").await?;
        let (id, _) = api.create_stream(&owner, "midtrans weather").await?;
        Ok::<_, BoxError>((owner, id))
    })?;

    // Failing: Snap answers 500.
    stack.block_on(async {
        control(stack, "outage", json!({"on": true, "status": 500})).await?;
        let r = checkout_is_refused_cleanly(stack, &owner, &stream_id, "failing", CHECKOUT_BOUND).await;
        control(stack, "outage", json!({"on": false})).await?;
        r
    })?;

    // Hung: the stand-in accepts connections and never answers.
    stack.freeze_midtrans(true);
    let hung = stack.block_on(checkout_is_refused_cleanly(
        stack,
        &owner,
        &stream_id,
        "hung",
        CHECKOUT_BOUND,
    ));
    stack.freeze_midtrans(false);
    hung?;

    // Paid while the notification is lost and the status API hangs: still pending (not failed) after a cron run
    // that could not ask; settled, credited once, by the first cron run after Midtrans answers again.
    let order = stack.block_on(async {
        let (order, url) = donate(stack, &stream_id, 25_000, "paid in the dark").await?;
        control(stack, "mute-notifications", json!({"on": true})).await?;
        let paid = pay(stack, &url).await;
        control(stack, "mute-notifications", json!({"on": false})).await?;
        paid?;
        Ok::<_, BoxError>(order)
    })?;
    stack.freeze_midtrans(true);
    let during = stack.block_on(async {
        let started = Instant::now();
        let cron = stack.run_cron().await;
        let status = api.get(&format!("/api/donations/{order}"), None).await?.body["donation"]["status"].clone();
        Ok::<_, BoxError>((cron, status, started.elapsed()))
    });
    stack.freeze_midtrans(false);
    let (cron, status, took) = during?;
    cron?;
    ensure!(
        status == "pending",
        "after a cron run against a hung Midtrans the donation is {status}"
    );
    eprintln!(
        "faults: a cron run against a hung Midtrans took {:.1} s and left the donation pending",
        took.as_secs_f64()
    );
    stack.block_on(async {
        eventually(Duration::from_secs(30), "the cron to settle the donation", || async {
            stack.run_cron().await?;
            Ok(api.get(&format!("/api/donations/{order}"), None).await?.body["donation"]["status"] == "paid")
        })
        .await?;
        stack.run_cron().await?;
        let (_, total) = owner_donations(&api, &owner, &stream_id).await?;
        ensure!(total == 25_000, "credited once: total_paid {total}");
        Ok::<_, BoxError>(())
    })?;

    // Down: connection refused.
    stack.kill_midtrans();
    let down = stack.block_on(checkout_is_refused_cleanly(
        stack,
        &owner,
        &stream_id,
        "down",
        Duration::from_secs(5),
    ));
    stack.start_midtrans_again()?;
    down?;
    stack.block_on(async {
        let (order, _) = donate(stack, &stream_id, 7_000, "back again").await?;
        ensure!(!order.is_empty(), "a checkout works once the stand-in is back");
        Ok::<_, BoxError>(())
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Simulcast through a Worker restart

fn a_worker_restart_mid_simulcast_keeps_the_outputs_going_and_their_status_right(stack: &TestApp) -> TestResult {
    use crate::simulcast::{add_output, free_port, output_key, output_status, video_seconds};
    let dir = stack.run_dir.join("simulcast-fault");
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let file = dir.join("received.flv");
    // Not a .log: the receiver prints the output key (the stream name it was asked for), and it is not the stack's.
    let mut receiver = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-listen", "1", "-i"])
        .arg(format!("rtmp://127.0.0.1:{port}/app/expected"))
        .args(["-c", "copy", "-f", "flv", "-y"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("receiver.txt"))?)
        .spawn()
        .map_err(|e| format!("starting the receiver: {e}"))?;
    let api = Api::new(&stack.base, sunnylive_e2e::next_ip());
    let (owner, stream_id, stream_key, output) = stack.block_on(async {
        let owner = api.register("faultsim").await?;
        let (id, key) = api.create_stream(&owner, "Simulcast through a restart").await?;
        let o = add_output(
            &api,
            &owner,
            &id,
            &json!({"name": "Receiver", "url": format!("rtmp://127.0.0.1:{port}/app"), "key": output_key("fault")}),
        )
        .await?;
        Ok::<_, BoxError>((owner, id, key, o["id"].as_str().unwrap_or_default().to_string()))
    })?;
    let mut publisher = Publisher::start(stack, &stream_key)?;
    let published = Instant::now();
    stack.block_on(eventually(Duration::from_secs(30), "the output is live", || async {
        Ok(output_status(&api, &owner, &stream_id, &output).await?["status"] == "live")
    }))?;
    let since = stack.block_on(output_status(&api, &owner, &stream_id, &output))?["since"].clone();

    // Act: the Worker dies and comes back on the same state.
    stack.kill_worker();
    std::thread::sleep(Duration::from_secs(6));
    // The receiver takes one publisher and exits when it leaves: still running means the output's one connection
    // is still up (what it got is checked at the end, when the receiver has written it out).
    ensure!(
        matches!(receiver.try_wait(), Ok(None)),
        "the output's connection survives the Worker going down"
    );
    stack.start_worker_again()?;
    stack.block_on(async {
        let after = output_status(&api, &owner, &stream_id, &output).await?;
        ensure!(
            after["status"] == "live" && after["since"] == since,
            "the output still shows live since the same moment after the restart: {after}"
        );
        Ok::<_, BoxError>(())
    })?;
    std::thread::sleep(Duration::from_secs(4));
    ensure!(publisher.running(), "the publisher survived the restart");
    ensure!(
        matches!(receiver.try_wait(), Ok(None)),
        "the receiver's one connection survived the restart (no reconnect)"
    );

    // The publish ends: the output stops, its receiver gets everything in one piece, and the API says idle.
    drop(publisher);
    let ended = published.elapsed().as_secs_f64();
    stack.block_on(async {
        eventually(
            Duration::from_secs(20),
            "the output is idle once the stream ended",
            || async { Ok(output_status(&api, &owner, &stream_id, &output).await?["status"] == "idle") },
        )
        .await
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(receiver.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = receiver.kill();
    let _ = receiver.wait();
    let got = stack.block_on(video_seconds(&file))?;
    eprintln!("faults: simulcast through a Worker restart: published {ended:.1} s, the target got {got:.1} s");
    // The target misses the start up to the first keyframe after the output joined (2 s here) plus ffmpeg's own
    // start; a gap as long as the outage (6 s) would be well past this bound.
    ensure!(
        got >= ended - 4.0 && got <= ended + 1.0,
        "the receiver got the whole publish through the restart: {got:.1} s of {ended:.1} s"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// A clip made while a segment's upload is in flight

/// The renditions `cut_renditions` makes, with their picture sizes.
const CUT: [(&str, u32, u32); 2] = [("source", 640, 360), ("240p", 426, 240)];

/// Per rendition, its segments' files and lengths (the upload's `duration` parameter), in order.
type Cut = HashMap<&'static str, Vec<(String, String)>>;

/// A media playlist of a clip: its name in the master, its text, and the (URI, sequence number, seconds) of every
/// segment it names.
type MediaPlaylist = (String, String, Vec<(String, u32, f64)>);

/// `seconds` of ffmpeg's test pattern with a tone, cut into ~2-s MPEG-TS segments (a keyframe every 2 s) for each
/// rendition of `CUT`, as the origin's transcoder would give them: per rendition, (file, duration as the upload's
/// `duration` parameter) in order.
fn cut_renditions(dir: &std::path::Path, seconds: u32) -> Result<Cut, BoxError> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"]);
    for input in ["testsrc=size=640x360:rate=30", "sine=frequency=440:sample_rate=48000"] {
        cmd.args(["-t", &seconds.to_string(), "-f", "lavfi", "-i", input]);
    }
    for (name, w, h) in CUT {
        cmd.args(["-map", "0:v", "-map", "1:a", "-s", &format!("{w}x{h}")]);
        cmd.args(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]);
        cmd.args(["-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-c:a", "aac"]);
        cmd.args([
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_list_size",
            "0",
            "-hls_segment_filename",
        ]);
        cmd.arg(dir.join(format!("{name}-%d.ts")));
        cmd.arg(dir.join(format!("{name}.m3u8")));
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running ffmpeg: {e}"))?;
    ensure!(
        out.status.success(),
        "ffmpeg cutting the test video: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cut = HashMap::new();
    for (name, _, _) in CUT {
        let playlist = std::fs::read_to_string(dir.join(format!("{name}.m3u8")))?;
        let mut segments = Vec::new();
        let mut duration = None;
        for line in playlist.lines() {
            if let Some(d) = line.strip_prefix("#EXTINF:") {
                duration = Some(format!("{:.3}", d.trim_end_matches(',').parse::<f64>()?));
            } else if !line.starts_with('#') && !line.is_empty() {
                let d = duration
                    .take()
                    .ok_or_else(|| format!("a segment without its length: {playlist}"))?;
                segments.push((dir.join(line).to_string_lossy().into_owned(), d));
            }
        }
        cut.insert(name, segments);
    }
    Ok(cut)
}

/// PUTs `body` to the Worker's upload route as the origin does (its token, Content-Length up front), but straight
/// at the Worker's workerd (wrangler's dev proxy would take the whole body before relaying it) and slowly: the head
/// and a first slice at once, the rest in slices spread over `over`, so the origin is mid-PUT all that time.
/// Locally the Worker itself is handed such a request only once its body is whole (measured 2026-12-06: with the
/// segment's row written before the body was read, the row appeared with the last byte, 6 s in), so what this
/// races is the origin's PUT; that a clip never names a segment the Worker is still writing to R2 rests on the
/// upload's order (R2 first, the row after), which `hls::upload` documents.
/// The answer's status and body, and when the last byte went out.
async fn trickled_upload(
    port: u16,
    path: String,
    body: Vec<u8>,
    over: Duration,
) -> Result<(u16, String, Instant), BoxError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SLICES: u32 = 20;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let head = format!(
        "PUT /api/origin/hls/{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {ORIGIN_TOKEN}\r\n\
         Content-Type: video/mp2t\r\nContent-Length: {}\r\nCF-Connecting-IP: {}\r\nConnection: close\r\n\r\n",
        body.len(),
        sunnylive_e2e::next_ip()
    );
    tcp.write_all(head.as_bytes()).await?;
    for (i, slice) in body.chunks(body.len().div_ceil(SLICES as usize).max(1)).enumerate() {
        if i > 0 {
            tokio::time::sleep(over / SLICES).await;
        }
        tcp.write_all(slice).await?;
        tcp.flush().await?;
    }
    let last_byte = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut answer))
        .await
        .map_err(|_| "no answer to the upload within 30 s of its last byte")??;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body, last_byte))
}

/// A clip's playlists as served: the master's text, and per media playlist its text and the (URI, sequence number,
/// seconds) of every segment it names.
struct ClipPlaylists {
    master: String,
    media: Vec<MediaPlaylist>,
}

async fn clip_playlists(stack: &TestApp, playlist_url: &str) -> Result<ClipPlaylists, BoxError> {
    let get = |url: String| async move {
        let r = stack.http().get(url.as_str()).send().await?;
        ensure!(r.status() == 200, "{url}: {}", r.status());
        Ok::<_, BoxError>(r.text().await?)
    };
    let master = get(format!("{}{playlist_url}", stack.base)).await?;
    let base = playlist_url.trim_end_matches("master.m3u8");
    let mut media = Vec::new();
    for name in master.lines().filter(|l| l.ends_with(".m3u8")) {
        let text = get(format!("{}{base}{name}", stack.base)).await?;
        ensure!(text.ends_with("#EXT-X-ENDLIST\n"), "{name} is closed VOD: {text}");
        let mut segments = Vec::new();
        let mut seconds = None;
        for line in text.lines() {
            if let Some(d) = line.strip_prefix("#EXTINF:") {
                seconds = Some(d.trim_end_matches(',').parse::<f64>()?);
            } else if line.ends_with(".ts") {
                let seq = line
                    .rsplit('/')
                    .next()
                    .and_then(|f| f.trim_end_matches(".ts").parse().ok())
                    .ok_or_else(|| format!("a segment URI without its number: {line}"))?;
                segments.push((
                    line.to_string(),
                    seq,
                    seconds.take().ok_or("a segment without #EXTINF")?,
                ));
            }
        }
        ensure!(!segments.is_empty(), "{name} names segments: {text}");
        media.push((name.to_string(), text, segments));
    }
    ensure!(!media.is_empty(), "the clip's master names playlists: {master}");
    Ok(ClipPlaylists { master, media })
}

fn a_clip_made_while_a_segment_uploads_names_only_stored_segments_and_the_upload_completes(
    stack: &TestApp,
) -> TestResult {
    use crate::video::{end_broadcast, ffprobe_duration, start_broadcast, upload};
    /// Segments 0..STORED are stored before the clip; segment STORED of the source is the one in flight.
    const STORED: usize = 10;
    /// What the clip asks for: the live stream's last 9 s (not a whole number of 2-s segments).
    const ASKED: f64 = 9.0;
    let dir = stack.run_dir.join("clip-during-upload");
    std::fs::create_dir_all(&dir)?;
    let cut = cut_renditions(&dir, 24)?;
    ensure!(
        CUT.iter().all(|(name, _, _)| cut[*name].len() > STORED),
        "ffmpeg cut more than {STORED} segments per rendition: {:?}",
        cut.values().map(Vec::len).collect::<Vec<_>>()
    );
    let api = stack.api();
    let (stream_id, key, clipper) = stack.block_on(async {
        let host = api.register("uhost").await?;
        let (id, key) = api.create_stream(&host, "clipped mid-upload").await?;
        Ok::<_, BoxError>((id, key, api.register("uclipper").await?))
    })?;
    let (b, client) = stack.block_on(start_broadcast(&api, &key))?;
    let put = |rendition: &'static str, seq: usize| {
        let (file, duration) = cut[rendition][seq].clone();
        let (_, w, h) = CUT
            .iter()
            .find(|(n, _, _)| *n == rendition)
            .copied()
            .unwrap_or_default();
        let api = &api;
        let b = &b;
        async move {
            let a = upload(
                api,
                &format!("{b}/{rendition}/{seq}.ts?duration={duration}&width={w}&height={h}&fps=30"),
                Some(ORIGIN_TOKEN),
                std::fs::read(&file)?,
            )
            .await?;
            ensure!(a.status == 201, "upload {rendition}/{seq}: {} {}", a.status, a.text);
            Ok::<_, BoxError>(())
        }
    };
    stack.block_on(async {
        for seq in 0..STORED {
            for (rendition, _, _) in CUT {
                put(rendition, seq).await?;
            }
        }
        Ok::<_, BoxError>(())
    })?;

    // Act: the source's next segment starts uploading and trickles in over 6 s; 1.5 s in, a viewer clips the live
    // stream's last 9 s.
    let port = stack.direct_worker_port()?;
    let (file, duration) = cut["source"][STORED].clone();
    let trickle = stack.handle().spawn(trickled_upload(
        port,
        format!("{b}/source/{STORED}.ts?duration={duration}&width=640&height=360&fps=30"),
        std::fs::read(&file)?,
        Duration::from_secs(6),
    ));
    std::thread::sleep(Duration::from_millis(1500));
    let (clip, answered, during) = stack.block_on(async {
        let a = api
            .post(
                &format!("/api/streams/{stream_id}/clips"),
                Some(&clipper.access),
                &json!({ "duration_seconds": ASKED, "title": "Mid-upload" }),
            )
            .await?;
        let answered = Instant::now();
        ensure!(a.status == 201, "the clip made mid-upload: {} {}", a.status, a.text);
        let clip = a.body["clip"].clone();
        // Everything it names is there at once, while the upload is still coming in.
        let playlists = clip_playlists(stack, clip["playlist_url"].as_str().ok_or("a playlist_url")?).await?;
        for (_, _, segments) in &playlists.media {
            for (uri, _, _) in segments {
                let r = stack.http().get(format!("{}{uri}", stack.base)).send().await?;
                ensure!(r.status() == 200, "the clip names {uri}, which answers {}", r.status());
                r.bytes().await?;
            }
        }
        Ok::<_, BoxError>((clip, answered, playlists))
    })?;
    let (status, answer, last_byte) = stack
        .block_on(trickle)
        .map_err(|e| format!("the trickled upload's task: {e}"))??;
    ensure!(
        answered < last_byte,
        "the clip was answered while the upload was still in flight ({:?} before its last byte)",
        last_byte.saturating_duration_since(answered)
    );
    eprintln!(
        "faults: the clip was answered {:.1} s before the in-flight upload's last byte",
        last_byte.duration_since(answered).as_secs_f64()
    );

    // What the clip names: stored segments only, ending at the newest stored one, whole segments within one of 9 s.
    let clip_id = clip["id"].as_str().unwrap_or_default().to_string();
    let playlist_url = clip["playlist_url"].as_str().unwrap_or_default().to_string();
    ensure!(
        during.media.len() == CUT.len(),
        "the clip has a playlist per rendition: {}",
        during.master
    );
    let mut longest: f64 = 0.0;
    for (name, text, segments) in &during.media {
        let seqs: Vec<u32> = segments.iter().map(|(_, seq, _)| *seq).collect();
        ensure!(
            seqs.iter().all(|&s| (s as usize) < STORED) && seqs.last() == Some(&(STORED as u32 - 1)),
            "{name} names only stored segments, up to the newest ({}): {seqs:?}\n{text}",
            STORED - 1
        );
        ensure!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "{name} names consecutive segments: {seqs:?}"
        );
        let seconds: f64 = segments.iter().map(|(_, _, d)| d).sum();
        longest = segments.iter().fold(longest, |m, (_, _, d)| m.max(*d));
        ensure!(
            (seconds - clip["duration_seconds"].as_f64().unwrap_or(-1.0)).abs() < 0.01,
            "{name}: duration_seconds is its whole segments' {seconds:.3} s: {clip}"
        );
    }
    let clip_seconds = clip["duration_seconds"].as_f64().unwrap_or(-1.0);
    ensure!(
        (clip_seconds - ASKED).abs() <= longest,
        "the clip is {clip_seconds} s, more than a segment ({longest} s) off {ASKED} s"
    );
    let mut decoded = 0;
    for (_, _, segments) in &during.media {
        for (uri, _, _) in segments {
            let d = stack.block_on(ffprobe_duration(&format!("{}{uri}", stack.base)))?;
            ensure!(d > 1.0, "{uri} decodes to {d} s");
            decoded += 1;
        }
    }
    let held: HashSet<String> = stack
        .d1_query(&format!("SELECT key FROM clip_objects WHERE clip_id = '{clip_id}'"))?
        .iter()
        .filter_map(|r| r["key"].as_str().map(String::from))
        .collect();
    for (_, _, segments) in &during.media {
        for (uri, _, _) in segments {
            ensure!(
                held.contains(uri.trim_start_matches('/')),
                "the clip holds what it names: {uri} not in {held:?}"
            );
        }
    }

    // The in-flight upload completed and is listed; then the broadcast ends with it.
    ensure!(
        status == 201 && answer.contains(r#""stored":true"#),
        "the upload in flight while the clip was made: {status} {answer}"
    );
    let listed = |text: &str| {
        text.lines()
            .any(|l| l == format!("{STORED}.ts") || l.ends_with(&format!("/{STORED}.ts")))
    };
    stack.block_on(async {
        let r = stack
            .http()
            .get(format!("{}/hls/{stream_id}/{b}/index.m3u8", stack.base))
            .send()
            .await?;
        let text = r.text().await?;
        ensure!(listed(&text), "the broadcast's playlist lists {STORED}.ts: {text}");
        put("240p", STORED).await?;
        end_broadcast(&api, &key, client).await?;
        // (A copy of the growing playlist may be served from the edge cache for its max-age.)
        let last = Mutex::new(String::new());
        let closed = eventually(Duration::from_secs(10), "the ended broadcast's playlist", || async {
            let r = stack
                .http()
                .get(format!("{}/hls/{stream_id}/{b}/index.m3u8", stack.base))
                .send()
                .await?;
            let text = r.text().await?;
            let done = text.ends_with("#EXT-X-ENDLIST\n");
            *last.lock().expect("BUG: poisoned") = text;
            Ok(done)
        })
        .await;
        let text = last.into_inner().expect("BUG: poisoned");
        closed.map_err(|e| format!("{e}: {text}"))?;
        ensure!(listed(&text), "the ended broadcast keeps {STORED}.ts: {text}");
        Ok::<_, BoxError>(())
    })?;

    // The clip is what it was, and plays whole.
    let after = stack.block_on(clip_playlists(stack, &playlist_url))?;
    ensure!(
        after.master == during.master && after.media.iter().map(|m| &m.1).eq(during.media.iter().map(|m| &m.1)),
        "the clip's playlists did not change when the upload landed"
    );
    let plays = stack.block_on(ffprobe_duration(&format!("{}{playlist_url}", stack.base)))?;
    ensure!(
        (plays - ASKED).abs() <= longest + 0.1 && (plays - clip_seconds).abs() <= 0.5,
        "the clip plays {plays:.2} s (duration_seconds {clip_seconds}, asked {ASKED})"
    );
    eprintln!(
        "faults: a {ASKED}-s clip made mid-upload is {clip_seconds} s of stored segments ({decoded} decoded), plays \
         {plays:.2} s; the upload in flight completed 201"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Chat replay through a Worker restart

/// One page of a broadcast's chat replay: its messages and `next_from_ms`.
async fn replay_page(
    api: &Api,
    stream_id: &str,
    b: &str,
    from_ms: Option<i64>,
    limit: u32,
) -> Result<(Vec<Value>, Option<i64>), BoxError> {
    let q = from_ms.map_or(format!("limit={limit}"), |f| format!("limit={limit}&from_ms={f}"));
    let a = api
        .get(&format!("/api/streams/{stream_id}/broadcasts/{b}/chat?{q}"), None)
        .await?;
    ensure!(a.status == 200, "replay from {from_ms:?}: {} {}", a.status, a.text);
    Ok((
        a.body["messages"].as_array().cloned().unwrap_or_default(),
        a.body["next_from_ms"].as_i64(),
    ))
}

fn a_worker_restart_mid_replay_pages_every_message_once_in_order_without_the_deleted_one(
    stack: &TestApp,
) -> TestResult {
    use crate::rtmp::{newest_broadcast, wait_for_playlist};
    /// Chat lines sent, and which one the host deletes.
    const LINES: usize = 9;
    const DELETED: usize = 4;
    let api = stack.api();
    let (people, stream_id, key) = stack.block_on(async {
        let host = api.register("rphost").await?;
        let (id, key) = api.create_stream(&host, "replayed through a crash").await?;
        let people = vec![host, api.register("rpfan").await?, api.register("rpfan").await?];
        Ok::<_, BoxError>((people, id, key))
    })?;
    let publisher = Publisher::start(stack, &key)?;
    let (b, sent, donation, deleted) = stack.block_on(async {
        wait_for_playlist(stack, &stream_id, Duration::from_secs(45)).await?;
        let b = newest_broadcast(&api, &stream_id).await?;
        let mut sockets = Vec::new();
        for who in &people {
            sockets.push(ChatClient::connect(&stack.base, &stream_id, Credentials::Bearer(&who.access)).await?);
        }
        // Three people take turns (each well inside the room's rate limit); the host's socket sees every line.
        let mut sent = Vec::new();
        for i in 0..LINES {
            let text = format!("replayed line {i}");
            sockets[i % people.len()]
                .send_json(&json!({"type": "chat", "text": text}))
                .await?;
            let frame = sockets[0].next_of_type("chat", Duration::from_secs(10)).await?;
            ensure!(frame["text"] == text.as_str(), "the room echoed {frame} for {text:?}");
            sent.push(frame["id"].as_str().ok_or("a chat id")?.to_string());
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        let (_, url) = donate(stack, &stream_id, 15_000, "replayed donation").await?;
        pay(stack, &url).await?;
        let frame = sockets[0].next_of_type("donation", Duration::from_secs(30)).await?;
        let donation = frame["id"].as_str().ok_or("a donation id")?.to_string();
        let deleted = sent[DELETED].clone();
        sockets[0].send_json(&json!({"type": "delete", "id": deleted})).await?;
        sockets[0].next_of_type("deleted", Duration::from_secs(10)).await?;
        for s in sockets {
            s.close().await;
        }
        Ok::<_, BoxError>((b, sent, donation, deleted))
    })?;
    drop(publisher);
    stack.block_on(eventually(Duration::from_secs(30), "the broadcast to end", || async {
        Ok(stream_status(&api, &stream_id).await? == "offline")
    }))?;

    // The whole replay in one read, before anything dies.
    let (full, next) = stack.block_on(replay_page(&api, &stream_id, &b, None, 100))?;
    ensure!(next.is_none(), "the whole replay fits one page of 100");
    let ids: Vec<&str> = full.iter().filter_map(|m| m["id"].as_str()).collect();
    let mut want: Vec<&str> = sent.iter().map(String::as_str).filter(|id| *id != deleted).collect();
    want.push(donation.as_str());
    ensure!(
        ids == want,
        "the replay is every line but the deleted one, then the donation, in order: {ids:?} vs {want:?}"
    );
    ensure!(
        full.iter()
            .filter(|m| m["kind"] == "donation")
            .all(|m| m["text"] == "replayed donation" && m["amount"] == 15_000)
            && full
                .windows(2)
                .all(|w| w[0]["offset_ms"].as_i64() <= w[1]["offset_ms"].as_i64()),
        "kinds, texts and offsets in order: {full:?}"
    );

    // Pages of two: two pages, then the crash, then on from next_from_ms.
    let mut paged = Vec::new();
    let mut from = None;
    for _ in 0..2 {
        let (page, next) = stack.block_on(replay_page(&api, &stream_id, &b, from, 2))?;
        ensure!(!page.is_empty(), "a page before the crash is not empty");
        paged.extend(page);
        from = Some(next.ok_or("more pages after the second")?);
    }
    stack.kill_worker();
    std::thread::sleep(Duration::from_secs(1));
    stack.start_worker_again()?;
    let api = stack.api();
    let mut pages = 2;
    stack.block_on(async {
        loop {
            ensure!(pages < 50, "the replay did not end within 50 pages of two");
            let (page, next) = replay_page(&api, &stream_id, &b, from, 2).await?;
            pages += 1;
            paged.extend(page);
            match next {
                Some(n) => {
                    ensure!(Some(n) > from, "next_from_ms moves forward: {from:?} then {n}");
                    from = Some(n);
                }
                None => return Ok::<_, BoxError>(()),
            }
        }
    })?;
    let mut seen = HashSet::new();
    let repeated: Vec<&Value> = paged.iter().filter(|m| !seen.insert(m["id"].to_string())).collect();
    ensure!(
        repeated.is_empty(),
        "messages paged twice across the restart: {repeated:?}"
    );
    ensure!(
        !paged.iter().any(|m| m["id"] == deleted.as_str()),
        "the deleted message came back after the restart"
    );
    ensure!(
        paged == full,
        "paged across the restart, the replay is the full read's, item for item:\n{paged:?}\nvs\n{full:?}"
    );
    let (again, _) = stack.block_on(replay_page(&api, &stream_id, &b, None, 100))?;
    ensure!(again == full, "a full read after the restart is the one before it");
    eprintln!(
        "faults: chat replay paged in {pages} pages of two across a Worker restart: {} items once each, in order",
        paged.len()
    );
    Ok(())
}
