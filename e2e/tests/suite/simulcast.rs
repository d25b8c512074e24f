//! Simulcast end to end: a real publish into the origin, re-sent by the origin's supervisor (sunnylive-simulcast,
//! one ffmpeg per output) to local RTMP receivers (`ffmpeg -listen 1`, standing in for other platforms). Covers two
//! outputs receiving the whole publish, one disabled mid-stream stopping while the other goes on, one enabled
//! mid-stream starting, a key the target refuses showing `error`, the keys in no log, process or answer, and bad
//! input refused in the contract's shape with nothing written (also a private target in production).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};
use sunnylive_e2e::{ensure, eventually, next_ip, Api, BoxError, Session, TestApp, TestResult, ORIGIN_TOKEN};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::rtmp::{new_stream, newest_broadcast, wait_for_status, Publisher};

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        two_outputs_receive_the_publish_and_follow_disable_and_enable_mid_stream,
        a_key_the_target_refuses_shows_error,
        an_rtmps_output_carries_the_stream_over_tls,
        bad_outputs_are_refused_in_the_contract_shape_and_nothing_is_written,
        only_the_owner_reaches_outputs_and_only_the_origin_reads_keys,
        a_private_target_is_refused_in_production,
    )
}

pub(crate) fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A unique output key, like a platform's (and long enough that finding it anywhere is no accident).
pub(crate) fn output_key(label: &str) -> String {
    format!(
        "live_{label}_{}",
        sunnylive_e2e::unique_name("k").replace(['-', '.'], "")
    )
}

/// A stand-in for another platform's ingest: `ffmpeg -listen 1` takes one publisher on its port and writes what
/// it gets to `<dir>/<name>.flv`. It logs the stream name the publisher asked for (the output key: how the test
/// knows the key arrived) and exits when the publisher goes away.
struct Receiver {
    child: Child,
    url: String,
    file: PathBuf,
    said: Arc<Mutex<String>>,
}

impl Receiver {
    fn start(dir: &Path, name: &str) -> Result<Receiver, BoxError> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let file = dir.join(format!("{name}.flv"));
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-listen", "1", "-i"])
            .arg(format!("rtmp://127.0.0.1:{port}/app/expected"))
            .args(["-c", "copy", "-f", "flv", "-y"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting the receiver: {e}"))?;
        let said = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let said = said.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut s = said.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        Ok(Receiver {
            child,
            url: format!("rtmp://127.0.0.1:{port}/app"),
            file,
            said,
        })
    }

    /// True once a publisher connected asking for stream `key`.
    fn got_key(&self, key: &str) -> bool {
        self.said.lock().unwrap().contains(&format!("Unexpected stream {key},"))
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn wait_exit(&mut self, timeout: Duration) -> TestResult {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .map_err(|_| format!("the receiver at {} still runs after {timeout:?}", self.url))??;
        Ok(())
    }
}

/// Seconds of video in an FLV file: last video timestamp minus the first.
pub(crate) async fn video_seconds(file: &Path) -> Result<f64, BoxError> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .await?;
    let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    let (Some(first), Some(last)) = (
        times.iter().cloned().reduce(f64::min),
        times.iter().cloned().reduce(f64::max),
    ) else {
        return Err(format!("no video packets in {}", file.display()).into());
    };
    Ok(last - first)
}

pub(crate) async fn add_output(api: &Api, s: &Session, stream: &str, body: &Value) -> Result<Value, BoxError> {
    let a = api
        .post(&format!("/api/streams/{stream}/outputs"), Some(&s.access), body)
        .await?;
    ensure!(a.status == 201, "add output: {} {}", a.status, a.text);
    Ok(a.body["output"].clone())
}

async fn patch_output(api: &Api, s: &Session, stream: &str, output: &str, body: &Value) -> TestResult {
    let a = api
        .json(
            Method::PATCH,
            &format!("/api/streams/{stream}/outputs/{output}"),
            Some(&s.access),
            body,
        )
        .await?;
    ensure!(a.status == 200, "patch output: {} {}", a.status, a.text);
    Ok(())
}

async fn list_outputs(api: &Api, s: &Session, stream: &str) -> Result<(Vec<Value>, String), BoxError> {
    let a = api
        .get(&format!("/api/streams/{stream}/outputs"), Some(&s.access))
        .await?;
    ensure!(a.status == 200, "list outputs: {} {}", a.status, a.text);
    Ok((a.body["outputs"].as_array().cloned().unwrap_or_default(), a.text))
}

pub(crate) async fn output_status(api: &Api, s: &Session, stream: &str, output: &str) -> Result<Value, BoxError> {
    let (outputs, _) = list_outputs(api, s, stream).await?;
    Ok(outputs
        .into_iter()
        .find(|o| o["id"] == output)
        .ok_or("the output is listed")?)
}

/// Every process's command line and environment, as one text (what `ps` and /proc show).
fn process_texts() -> String {
    let mut text = String::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            for f in ["cmdline", "environ"] {
                if let Ok(bytes) = std::fs::read(e.path().join(f)) {
                    text.push_str(&String::from_utf8_lossy(&bytes).replace('\0', " "));
                    text.push('\n');
                }
            }
        }
    }
    text
}

async fn two_outputs_receive_the_publish_and_follow_disable_and_enable_mid_stream(app: &TestApp) -> TestResult {
    let (api, s, id, stream_key) = new_stream(app, "simul").await?;
    let dir = app.run_dir.join(format!("simulcast-{id}"));
    let mut a = Receiver::start(&dir, "a")?;
    let mut b = Receiver::start(&dir, "b")?;
    let mut c = Receiver::start(&dir, "c")?;
    let keys = [output_key("a"), output_key("b"), output_key("c")];
    let oa = add_output(&api, &s, &id, &json!({"name": "A", "url": a.url, "key": keys[0]})).await?;
    let ob = add_output(&api, &s, &id, &json!({"name": "B", "url": b.url, "key": keys[1]})).await?;
    let oc = add_output(
        &api,
        &s,
        &id,
        &json!({"name": "C", "url": c.url, "key": keys[2], "enabled": false}),
    )
    .await?;
    let [oa, ob, oc] = [&oa, &ob, &oc].map(|o| o["id"].as_str().unwrap_or_default().to_string());
    ensure!(
        output_status(&api, &s, &id, &oa).await?["status"] == "idle",
        "an output of an offline stream is idle"
    );

    const PUBLISH_SECONDS: f64 = 24.0;
    let publisher = Publisher::start(app, &stream_key, PUBLISH_SECONDS as u32, "320x180")?;
    let published = Instant::now();
    wait_for_status(&api, &id, "live", Duration::from_secs(15)).await?;
    eventually(
        Duration::from_secs(10),
        "both enabled outputs reach their targets with their keys",
        || {
            let got = a.got_key(&keys[0]) && b.got_key(&keys[1]);
            async move { Ok(got) }
        },
    )
    .await?;
    eventually(Duration::from_secs(10), "the API shows both outputs live", || async {
        Ok(output_status(&api, &s, &id, &oa).await?["status"] == "live"
            && output_status(&api, &s, &id, &ob).await?["status"] == "live")
    })
    .await?;
    ensure!(!c.got_key(&keys[2]), "a disabled output is not started");
    let live_b = output_status(&api, &s, &id, &ob).await?;
    ensure!(
        live_b["since"]
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
        "since is RFC 3339: {live_b}"
    );

    // Mid-stream: B off, C on.
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(published.elapsed())).await;
    let changed = Instant::now();
    patch_output(&api, &s, &id, &ob, &json!({"enabled": false})).await?;
    patch_output(&api, &s, &id, &oc, &json!({"enabled": true})).await?;
    b.wait_exit(Duration::from_secs(5))
        .await
        .map_err(|e| format!("the disabled output stops within 5 s: {e}"))?;
    let stopped_in = changed.elapsed();
    eventually(
        Duration::from_secs(5).saturating_sub(changed.elapsed()),
        "the enabled output starts within 5 s",
        || {
            let got = c.got_key(&keys[2]);
            async move { Ok(got) }
        },
    )
    .await?;
    let started_in = changed.elapsed();
    // The receiver takes one publisher and exits when it leaves (its file is written in 32 KB steps, so its size is
    // no clock): still running means A's one connection is still up; what it got is checked at the end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(
        a.running() && output_status(&api, &s, &id, &oa).await?["status"] == "live",
        "the other output goes on after one is disabled"
    );
    ensure!(
        output_status(&api, &s, &id, &ob).await?["status"] == "idle",
        "a disabled output is idle"
    );

    let (status, err) = publisher.finish(Duration::from_secs(40)).await?;
    ensure!(status.success(), "the publisher ran to its end: {status} {err}");
    a.wait_exit(Duration::from_secs(10)).await?;
    c.wait_exit(Duration::from_secs(10)).await?;
    let got_a = video_seconds(&a.file).await?;
    let got_b = video_seconds(&b.file).await?;
    let got_c = video_seconds(&c.file).await?;
    eprintln!(
        "simulcast: published {PUBLISH_SECONDS} s; A got {got_a:.1} s, B {got_b:.1} s (disabled after {:.1} s, \
         stopped {:.1} s later), C {got_c:.1} s (enabled then, started {:.1} s later)",
        (changed - published).as_secs_f64(),
        stopped_in.as_secs_f64(),
        started_in.as_secs_f64()
    );
    ensure!(
        (PUBLISH_SECONDS - got_a).abs() <= 3.0,
        "the first output got the whole publish: {got_a:.1} s of {PUBLISH_SECONDS} s"
    );
    let until_disabled = (changed - published).as_secs_f64();
    ensure!(
        got_b <= until_disabled + 5.0 && got_b >= until_disabled - 6.0,
        "the disabled output got only the part before it was disabled: {got_b:.1} s, disabled at {until_disabled:.1} s"
    );
    ensure!(
        got_c >= PUBLISH_SECONDS - until_disabled - 8.0,
        "the output enabled mid-stream got the rest: {got_c:.1} s"
    );

    wait_for_status(&api, &id, "offline", Duration::from_secs(15)).await?;
    eventually(
        Duration::from_secs(10),
        "every output is idle once the stream is offline",
        || async {
            let (outputs, _) = list_outputs(&api, &s, &id).await?;
            Ok(outputs.iter().all(|o| o["status"] == "idle"))
        },
    )
    .await?;

    // The keys: in no log of the stack, no process's arguments or environment, no API answer.
    let (_, listed) = list_outputs(&api, &s, &id).await?;
    let logs = app.all_logs();
    let processes = process_texts();
    ensure!(
        logs.contains(&oa),
        "the logs did see this simulcast (else the check proves nothing)"
    );
    for key in &keys {
        ensure!(!logs.contains(key.as_str()), "an output key is in a log of the stack");
        ensure!(
            !processes.contains(key.as_str()),
            "an output key is in a process's arguments or environment"
        );
        ensure!(!listed.contains(key.as_str()), "an output key is in an API answer");
        ensure!(listed.contains(&key[key.len() - 4..]), "the key's hint is listed");
    }
    Ok(())
}

async fn a_key_the_target_refuses_shows_error(app: &TestApp) -> TestResult {
    let (api, s, id, stream_key) = new_stream(app, "refused").await?;
    // The target: this stack's own ingest, which refuses any key it did not issue (as a platform would).
    let wrong = output_key("wrong");
    let out = add_output(
        &api,
        &s,
        &id,
        &json!({"name": "Refuses", "url": app.rtmp_url, "key": wrong}),
    )
    .await?;
    let out = out["id"].as_str().unwrap_or_default().to_string();
    let publisher = Publisher::start(app, &stream_key, 14, "320x180")?;
    wait_for_status(&api, &id, "live", Duration::from_secs(15)).await?;
    eventually(
        Duration::from_secs(12),
        "the refused output shows error with a reason",
        || async {
            let o = output_status(&api, &s, &id, &out).await?;
            Ok(o["status"] == "error" && o["message"].as_str().is_some_and(|m| !m.is_empty()))
        },
    )
    .await?;
    let o = output_status(&api, &s, &id, &out).await?;
    ensure!(
        !o.to_string().contains(&wrong),
        "the error message does not carry the key: {o}"
    );
    let (status, err) = publisher.finish(Duration::from_secs(30)).await?;
    ensure!(status.success(), "the stream itself is unaffected: {status} {err}");
    ensure!(!app.all_logs().contains(&wrong), "the refused key is in no log");
    Ok(())
}

async fn an_rtmps_output_carries_the_stream_over_tls(app: &TestApp) -> TestResult {
    // The target: this stack's own RTMPS ingest (TLS in nginx's stream module, a self-signed certificate, which
    // ffmpeg does not verify unless told to), publishing into a second stream of this site with that stream's key.
    let (api, s, id, stream_key) = new_stream(app, "tlsout").await?;
    let (second, second_key) = api.create_stream(&s, "Simulcast over RTMPS").await?;
    let out = add_output(
        &api,
        &s,
        &id,
        &json!({"name": "Over TLS", "url": app.rtmps_url, "key": second_key}),
    )
    .await?;
    let out = out["id"].as_str().unwrap_or_default().to_string();
    ensure!(
        app.rtmps_url.starts_with("rtmps://"),
        "the target is an rtmps:// URL: {}",
        app.rtmps_url
    );
    let publisher = Publisher::start(app, &stream_key, 14, "320x180")?;
    wait_for_status(&api, &id, "live", Duration::from_secs(15)).await?;
    wait_for_status(&api, &second, "live", Duration::from_secs(15)).await?;
    eventually(Duration::from_secs(10), "the RTMPS output shows live", || async {
        Ok(output_status(&api, &s, &id, &out).await?["status"] == "live")
    })
    .await?;
    let (status, err) = publisher.finish(Duration::from_secs(30)).await?;
    ensure!(status.success(), "publisher: {status} {err}");
    wait_for_status(&api, &second, "offline", Duration::from_secs(15)).await?;
    ensure!(
        !app.all_logs().contains(&second_key),
        "the output key (a stream key here) is in no log"
    );
    Ok(())
}

/// Asserts an error answer in the contract's shape.
fn refused(a: &sunnylive_e2e::Answer, status: u16, code: &str, what: &str) -> TestResult {
    ensure!(
        a.status == status && a.code() == code && a.body["error"]["message"].is_string(),
        "{what}: expected {status} {code}, got {} {}",
        a.status,
        a.text
    );
    Ok(())
}

async fn bad_outputs_are_refused_in_the_contract_shape_and_nothing_is_written(app: &TestApp) -> TestResult {
    let api = Api::new(&app.base, next_ip());
    let s = api.register("badout").await?;
    let (id, _) = api.create_stream(&s, "Bad outputs").await?;
    let path = format!("/api/streams/{id}/outputs");
    let good_key = output_key("good");
    for (body, field, what) in [
        (
            json!({"name": "X", "url": "http://live.example.net/app", "key": good_key}),
            "url",
            "another scheme",
        ),
        (
            json!({"name": "X", "url": "srt://live.example.net:9000", "key": good_key}),
            "url",
            "srt",
        ),
        (
            json!({"name": "X", "url": "rtmp://user:pw@live.example.net/app", "key": good_key}),
            "url",
            "credentials",
        ),
        (
            json!({"name": "X", "url": "rtmp://live.example.net/app?key=1", "key": good_key}),
            "url",
            "a query",
        ),
        (
            json!({"name": "", "url": "rtmp://live.example.net/app", "key": good_key}),
            "name",
            "an empty name",
        ),
        (
            json!({"name": "X", "url": "rtmp://live.example.net/app", "key": "short"}),
            "key",
            "a short key",
        ),
        (
            json!({"name": "X", "url": "rtmp://live.example.net/app", "key": "has spaces in it"}),
            "key",
            "spaces",
        ),
        (
            json!({"name": "X", "url": "rtmp://live.example.net/app"}),
            "key",
            "no key",
        ),
        (
            json!({"name": "X", "url": "rtmp://live.example.net/app", "key": good_key, "enabled": "yes"}),
            "enabled",
            "a string enabled",
        ),
    ] {
        let a = api.post(&path, Some(&s.access), &body).await?;
        refused(&a, 422, "validation_failed", what)?;
        ensure!(
            a.body["error"]["fields"][field].is_string(),
            "{what}: names the field {field}: {}",
            a.text
        );
        ensure!(!a.text.contains(&good_key), "{what}: the key is not echoed");
    }
    ensure!(
        list_outputs(&api, &s, &id).await?.0.is_empty(),
        "nothing was written by the refused creates"
    );

    let mut ids = Vec::new();
    for n in 1..=5 {
        let o = add_output(
            &api,
            &s,
            &id,
            &json!({"name": format!("Out {n}"), "url": "rtmp://127.0.0.1:1/app", "key": output_key("n")}),
        )
        .await?;
        ensure!(
            o["key_hint"].as_str().is_some_and(|h| h.len() == 4) && o.get("key").is_none(),
            "key_hint, no key: {o}"
        );
        ids.push(o["id"].as_str().unwrap_or_default().to_string());
    }
    let sixth = api
        .post(
            &path,
            Some(&s.access),
            &json!({"name": "Six", "url": "rtmp://127.0.0.1:1/app", "key": good_key}),
        )
        .await?;
    refused(&sixth, 409, "output_limit_reached", "a sixth output")?;
    ensure!(list_outputs(&api, &s, &id).await?.0.len() == 5, "still five outputs");

    let a = api
        .json(
            Method::PATCH,
            &format!("{path}/{}", ids[0]),
            Some(&s.access),
            &json!({"url": "rtmps://x:y@live.example.net/app"}),
        )
        .await?;
    refused(&a, 422, "validation_failed", "an edit to a URL with credentials")?;
    let first = output_status(&api, &s, &id, &ids[0]).await?;
    ensure!(
        first["url"] == "rtmp://127.0.0.1:1/app",
        "the refused edit wrote nothing: {first}"
    );

    // Another stream's output id, on this stream: 404, and the other stream's output is untouched.
    let (other, _) = api.create_stream(&s, "Other").await?;
    for (method, body) in [(Method::PATCH, json!({"name": "Moved"})), (Method::DELETE, json!({}))] {
        let a = api
            .json(
                method.clone(),
                &format!("/api/streams/{other}/outputs/{}", ids[0]),
                Some(&s.access),
                &body,
            )
            .await?;
        refused(
            &a,
            404,
            "output_not_found",
            &format!("{method} another stream's output"),
        )?;
    }
    ensure!(
        output_status(&api, &s, &id, &ids[0]).await?["name"] == "Out 1",
        "the other stream's output is untouched"
    );
    let a = api
        .json(
            Method::PATCH,
            &format!("{path}/nosuchoutput"),
            Some(&s.access),
            &json!({"name": "x"}),
        )
        .await?;
    refused(&a, 404, "output_not_found", "an unknown output id")?;

    // Delete and edit work.
    let a = api
        .json(
            Method::DELETE,
            &format!("{path}/{}", ids[4]),
            Some(&s.access),
            &json!({}),
        )
        .await?;
    ensure!(a.status == 204, "delete: {} {}", a.status, a.text);
    patch_output(
        &api,
        &s,
        &id,
        &ids[0],
        &json!({"name": "Renamed", "key": "new-key-ABCD"}),
    )
    .await?;
    let first = output_status(&api, &s, &id, &ids[0]).await?;
    ensure!(
        first["name"] == "Renamed" && first["key_hint"] == "ABCD",
        "the edit shows: {first}"
    );
    ensure!(
        list_outputs(&api, &s, &id).await?.0.len() == 4,
        "four outputs after one delete"
    );
    Ok(())
}

async fn only_the_owner_reaches_outputs_and_only_the_origin_reads_keys(app: &TestApp) -> TestResult {
    let api = Api::new(&app.base, next_ip());
    let owner = api.register("outowner").await?;
    let stranger = api.register("outstranger").await?;
    let (id, _) = api.create_stream(&owner, "Mine").await?;
    let key = output_key("own");
    let o = add_output(
        &api,
        &owner,
        &id,
        &json!({"name": "Mine", "url": "rtmp://127.0.0.1:1/app", "key": key}),
    )
    .await?;
    let oid = o["id"].as_str().unwrap_or_default();
    let path = format!("/api/streams/{id}/outputs");
    refused(
        &api.get(&path, None).await?,
        401,
        "not_authenticated",
        "an anonymous list",
    )?;
    refused(
        &api.get(&path, Some(&stranger.access)).await?,
        403,
        "not_owner",
        "someone else's list",
    )?;
    let a = api
        .post(
            &path,
            Some(&stranger.access),
            &json!({"name": "Theirs", "url": "rtmp://127.0.0.1:1/app", "key": output_key("x")}),
        )
        .await?;
    refused(&a, 403, "not_owner", "an output added to someone else's stream")?;
    let a = api
        .json(
            Method::PATCH,
            &format!("{path}/{oid}"),
            Some(&stranger.access),
            &json!({"enabled": false}),
        )
        .await?;
    refused(&a, 403, "not_owner", "an edit of someone else's output")?;
    let a = api
        .json(
            Method::DELETE,
            &format!("{path}/{oid}"),
            Some(&stranger.access),
            &json!({}),
        )
        .await?;
    refused(&a, 403, "not_owner", "a delete of someone else's output")?;
    let (outputs, _) = list_outputs(&api, &owner, &id).await?;
    ensure!(
        outputs.len() == 1 && outputs[0]["enabled"] == true,
        "nothing written by the stranger: {outputs:?}"
    );

    // The origin's route: the token only; a user's token is not enough.
    let origin_path = "/api/origin/broadcasts/abcdefghijkmnpqr/outputs";
    refused(
        &api.get(origin_path, Some(&owner.access)).await?,
        401,
        "bad_origin_token",
        "a user reading keys",
    )?;
    let a = api.get(origin_path, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        a.status == 200 && a.body["outputs"] == json!([]),
        "not a live broadcast: no outputs: {} {}",
        a.text,
        a.status
    );
    let a = api
        .json(
            Method::PUT,
            &format!("/api/origin/broadcasts/abcdefghijkmnpqr/outputs/{oid}/status"),
            Some(&owner.access),
            &json!({"status": "live"}),
        )
        .await?;
    refused(&a, 401, "bad_origin_token", "a user reporting a status")?;
    let a = api
        .json(
            Method::PUT,
            &format!("/api/origin/broadcasts/abcdefghijkmnpqr/outputs/{oid}/status"),
            Some(ORIGIN_TOKEN),
            &json!({"status": "live"}),
        )
        .await?;
    refused(&a, 404, "output_not_found", "a status for a broadcast that is not live")?;
    ensure!(
        output_status(&api, &owner, &id, oid).await?["status"] == "idle",
        "the refused report wrote nothing"
    );

    // The key only reaches the origin while the stream is live with that broadcast.
    let (_, stream_key) = (
        id.clone(),
        api.get(&format!("/api/streams/{id}/key"), Some(&owner.access)).await?,
    );
    let stream_key = stream_key.body["stream_key"].as_str().unwrap_or_default().to_string();
    let publisher = Publisher::start(app, &stream_key, 8, "320x180")?;
    wait_for_status(&api, &id, "live", Duration::from_secs(15)).await?;
    let broadcast = newest_broadcast(&api, &id).await?;
    let a = api
        .get(
            &format!("/api/origin/broadcasts/{broadcast}/outputs"),
            Some(ORIGIN_TOKEN),
        )
        .await?;
    ensure!(
        a.status == 200 && a.body["outputs"][0]["key"] == key.as_str() && a.body["outputs"][0]["id"] == oid,
        "the origin reads the enabled output with its key: {}",
        a.status
    );
    ensure!(
        a.header("cache-control")
            .is_some_and(|c| c.split(',').any(|d| d.trim() == "no-store")),
        "the keys are never cached: {:?}",
        a.header("cache-control")
    );
    let (status, err) = publisher.finish(Duration::from_secs(30)).await?;
    ensure!(status.success(), "publisher: {status} {err}");
    Ok(())
}

async fn a_private_target_is_refused_in_production(app: &TestApp) -> TestResult {
    let prod = app
        .start_extra_worker_with_schema(
            "prod-simulcast",
            "ENVIRONMENT=production\n\
             JWT_SECRET=jwt-0123456789abcdef0123456789abcdef\n\
             STREAM_KEY_SECRET=key-0123456789abcdef0123456789abcdef\n\
             ORIGIN_TOKEN=origin-0123456789abcdef0123456789abcdef\n\
             OUTPUT_KEY_SECRET=output-0123456789abcdef0123456789abcdef\n\
             MIDTRANS_ENVIRONMENT=sandbox\n\
             MIDTRANS_SERVER_KEY=SB-Mid-server-0123456789abcdefghijklmn\n\
             MIDTRANS_SNAP_BASE_URL=https://app.sandbox.midtrans.com\n\
             MIDTRANS_API_BASE_URL=https://api.sandbox.midtrans.com\n\
             PUBLIC_BASE_URL=https://sunnylive.test\n\
             RTMP_INGEST_URL=rtmp://ingest.sunnylive.test/live\n",
        )
        .await?;
    let api = Api::new(&prod.base, next_ip());
    let s = api.register("prodout").await?;
    let (id, _) = api.create_stream(&s, "Production").await?;
    let path = format!("/api/streams/{id}/outputs");
    for url in [
        "rtmp://127.0.0.1:1935/live",
        "rtmp://localhost/live",
        "rtmp://10.0.0.5/live",
        "rtmps://192.168.1.2:443/app",
        "rtmp://169.254.169.254/latest",
        "rtmp://[::1]/live",
        "rtmp://2130706433/live",
    ] {
        let a = api
            .post(
                &path,
                Some(&s.access),
                &json!({"name": "Inside", "url": url, "key": output_key("p")}),
            )
            .await?;
        refused(&a, 422, "validation_failed", url)?;
        ensure!(
            a.body["error"]["fields"]["url"].is_string(),
            "{url}: names the url field"
        );
    }
    ensure!(list_outputs(&api, &s, &id).await?.0.is_empty(), "nothing was written");
    add_output(
        &api,
        &s,
        &id,
        &json!({"name": "YouTube", "url": "rtmp://a.rtmp.youtube.com/live2", "key": output_key("yt")}),
    )
    .await?;
    Ok(())
}
