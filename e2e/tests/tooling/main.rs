//! The tooling a developer and an operator use, checked the way they use it, in a fresh copy of this checkout (the
//! files a clone would have: nothing built, no web/vendor) inside a 0700 directory, the way a clone under /root
//! looks to nginx's unprivileged workers:
//! - deploy: `wrangler deploy --dry-run --outdir`, for each Worker's config (durable-objects/wrangler.toml, then
//!   wrangler.toml), builds that optimized Worker by itself (the config's [build]) and its bundle is within 1% of what
//!   `make size` measures for it; `scripts/deploy --dry-run` walks every step, changes no file, and refuses the example
//!   placeholders and a development Midtrans key.
//! - devloop: `scripts/dev` (what `make dev` runs) serves the site and takes an ffmpeg publish; `make size` beside it
//!   disturbs neither /healthz nor an open chat socket; a one-line Rust edit is served within 60 s (the time is
//!   printed); a compile error keeps the last good build serving and puts the compiler's error in the dev log; a
//!   service that stops is reported and started again.
//!
//! The copy builds into this checkout's target directory under this checkout's build lock, so only the workspace's
//! own crates compile again. Trials run one at a time, in order, against one `scripts/dev` started on first use.
//! Run alone: `cargo test -p sunnylive-e2e --test tooling [-- devloop]`. A failed run keeps its copy and logs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::json;
use sunnylive_e2e::ws::{ChatClient, Credentials};
use sunnylive_e2e::{ensure, next_ip, repo_root, Api, BoxError, TestResult};

/// The line of functions/src/openapi.rs the edit trials change: /healthz's version.
const HEALTH_VERSION: &str = "\"version\": env!(\"CARGO_PKG_VERSION\")";
const EDITED_VERSION: &str = "edited-by-the-tooling-test";

struct Fixture {
    root: PathBuf,
    /// The 0700 directory holding the copy, its dev log and the bundles.
    outer: PathBuf,
    copy: PathBuf,
    dev: Mutex<Option<Dev>>,
    rt: tokio::runtime::Runtime,
}

struct Dev {
    child: Child,
    log: PathBuf,
    base: String,
    rtmp_url: String,
    midtrans_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free local port")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Fixture {
    /// Copies the files git would clone (tracked and new, not ignored) into a fresh 0700 directory.
    fn create() -> Result<Fixture, BoxError> {
        use std::os::unix::fs::PermissionsExt;
        let root = repo_root();
        let outer = std::env::temp_dir().join(format!("sunnylive-tooling-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&outer);
        std::fs::create_dir_all(&outer)?;
        std::fs::set_permissions(&outer, std::fs::Permissions::from_mode(0o700))?;
        let copy = outer.join("sunnylive");
        let files = Command::new("git")
            .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
            .current_dir(&root)
            .output()?;
        ensure!(files.status.success(), "git ls-files: {}", text(&files));
        let mut n = 0;
        for name in files.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let name = std::str::from_utf8(name)?;
            let from = root.join(name);
            // node_modules is a symlink in worktrees; a deleted file may still be tracked.
            if name == "node_modules" || !from.is_file() {
                continue;
            }
            let to = copy.join(name);
            std::fs::create_dir_all(to.parent().expect("BUG: a file has a parent"))?;
            std::fs::copy(&from, &to)?;
            n += 1;
        }
        // The npm packages are the checkout's (npm ci per copy would need the registry and a minute).
        std::os::unix::fs::symlink(
            std::fs::canonicalize(root.join("node_modules"))?,
            copy.join("node_modules"),
        )?;
        eprintln!("tooling: copied {n} files into {} (mode 0700)", outer.display());
        Ok(Fixture {
            root,
            outer,
            copy,
            dev: Mutex::new(None),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?,
        })
    }

    fn target_dir(&self) -> PathBuf {
        std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| self.root.join("target"))
    }

    /// A command run in the copy, building into this checkout's target directory under its build lock.
    fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let home = std::env::var("HOME").unwrap_or_default();
        let path = format!(
            "{home}/.cargo/bin:{}:{}",
            self.copy.join("node_modules/.bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        std::fs::create_dir_all(self.root.join(".run")).expect("creating .run");
        cmd.current_dir(&self.copy)
            .env("PATH", path)
            .env("CARGO_TARGET_DIR", self.target_dir())
            .env("SUNNYLIVE_BUILD_LOCK", self.root.join(".run/build.lock"))
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_SEND_ERROR_REPORTS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("NO_COLOR", "1")
            .env_remove("SUNNYLIVE_BUILD_LOCK_HELD")
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Output, BoxError> {
        let mut cmd = self.cmd(program);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Ok(cmd.output()?)
    }

    /// `scripts/dev` in the copy on free ports, started on first use and kept for the following trials.
    fn dev(&self) -> Result<std::sync::MutexGuard<'_, Option<Dev>>, BoxError> {
        let mut guard = self.dev.lock().map_err(|_| "dev lock poisoned")?;
        if guard.is_some() {
            return Ok(guard);
        }
        let ports = [free_port(), free_port(), free_port(), free_port(), free_port()];
        let target = self.target_dir();
        let midtrans = ["release", "debug"]
            .iter()
            .map(|p| target.join(p).join("midtrans-sandbox"))
            .find(|p| p.exists())
            .ok_or("midtrans-sandbox is not built: run `cargo build -p midtrans-sandbox`")?;
        let log = self.outer.join("dev.log");
        let out = std::fs::File::create(&log)?;
        let mut cmd = self.cmd("scripts/dev");
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        cmd.env("SUNNYLIVE_WORKER_PORT", ports[0].to_string())
            .env("SUNNYLIVE_RTMP_PORT", ports[1].to_string())
            .env("SUNNYLIVE_ORIGIN_HTTP_PORT", ports[2].to_string())
            .env("SUNNYLIVE_MIDTRANS_PORT", ports[3].to_string())
            .env("SUNNYLIVE_INSPECTOR_PORT", ports[4].to_string())
            .env("SUNNYLIVE_MIDTRANS_BIN", &midtrans)
            .stdout(out.try_clone()?)
            .stderr(out);
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        let dev = loop {
            let so_far = std::fs::read_to_string(&log).unwrap_or_default();
            if so_far.contains("Sunnylive is running.") {
                break Dev {
                    child,
                    log,
                    base: format!("http://127.0.0.1:{}", ports[0]),
                    rtmp_url: format!("rtmp://127.0.0.1:{}/live", ports[1]),
                    midtrans_port: ports[3],
                };
            }
            if let Some(status) = child.try_wait()? {
                return Err(format!("scripts/dev exited ({status}) before serving:\n{}", tail(&so_far, 40)).into());
            }
            if started.elapsed() > Duration::from_secs(600) {
                let _ = Command::new("kill")
                    .args(["-TERM", "--", &format!("-{}", child.id())])
                    .status();
                return Err(format!("scripts/dev did not serve within 600 s:\n{}", tail(&so_far, 40)).into());
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        eprintln!(
            "tooling: scripts/dev serving at {} after {:.1} s",
            dev.base,
            started.elapsed().as_secs_f64()
        );
        *guard = Some(dev);
        Ok(guard)
    }

    /// Stops scripts/dev through its trap (which stops every service), then makes sure nothing is left. SIGTERM,
    /// not SIGINT: a shell that started us in the background may have left SIGINT ignored, and bash cannot trap a
    /// signal ignored on entry.
    fn stop_dev(&self) {
        let Ok(mut guard) = self.dev.lock() else { return };
        let Some(mut dev) = guard.take() else { return };
        let group = format!("-{}", dev.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(dev.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("tooling: scripts/dev ignored SIGTERM for 30 s; stopping its services by pid");
        for line in std::fs::read_to_string(self.copy.join(".run/dev/services"))
            .unwrap_or_default()
            .lines()
        {
            if let Some(pid) = line.split_whitespace().nth(1) {
                let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pid}")]).status();
            }
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = dev.child.wait();
    }

    fn trial<F>(self: &Arc<Self>, name: &str, f: F) -> Trial
    where
        F: Fn(&Fixture) -> TestResult + Send + 'static,
    {
        let fx = Arc::clone(self);
        Trial::test(name.to_string(), move || {
            f(&fx).map_err(|e| Failed::from(e.to_string()))
        })
    }
}

async fn health(http: &reqwest::Client, base: &str) -> Result<serde_json::Value, BoxError> {
    let r = http.get(format!("{base}/healthz")).send().await?;
    ensure!(r.status() == 200, "/healthz answered {}", r.status());
    Ok(r.json().await?)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(4))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("BUG: a plain reqwest client always builds")
}

/// (raw, gzip -9) bytes of every .wasm and .js file in a wrangler --outdir bundle.
fn bundle_size(dir: &Path) -> Result<(u64, u64), BoxError> {
    let (mut raw, mut gz) = (0, 0);
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if !p.extension().is_some_and(|x| x == "wasm" || x == "js") {
            continue;
        }
        raw += std::fs::metadata(&p)?.len();
        let mut child = Command::new("gzip")
            .args(["-9", "-c"])
            .arg(&p)
            .stdout(Stdio::piped())
            .spawn()?;
        let mut bytes = Vec::new();
        child.stdout.take().ok_or("gzip stdout")?.read_to_end(&mut bytes)?;
        ensure!(child.wait()?.success(), "gzip {} failed", p.display());
        gz += bytes.len() as u64;
    }
    ensure!(raw > 0, "no .wasm/.js files in {}", dir.display());
    Ok((raw, gz))
}

fn within_one_percent(a: u64, b: u64) -> bool {
    a.abs_diff(b) * 100 <= a.max(b)
}

// --- deploy ----------------------------------------------------------------------------------------------------------

fn fresh_clone_dry_run_is_the_optimized_bundle(fx: &Fixture) -> TestResult {
    for built in ["functions/build", "durable-objects/build"] {
        ensure!(
            !fx.copy.join(built).exists(),
            "the copy must start with nothing built ({built} exists)"
        );
    }
    // Both Workers, each as README "Deploy" says to deploy it: the chat Worker's config, then the main one.
    let workers = [
        ("sunnylive-chat", "durable-objects/wrangler.toml", "chat"),
        ("sunnylive", "wrangler.toml", "main"),
    ];
    let mut fresh = Vec::new();
    for (name, config, dir) in workers {
        let out_dir = fx.outer.join(format!("fresh-bundle-{dir}"));
        let started = Instant::now();
        let out = fx.run(
            "node_modules/.bin/wrangler",
            &[
                "deploy",
                "--dry-run",
                "-c",
                config,
                "--outdir",
                out_dir.to_str().ok_or("path")?,
            ],
            &[],
        )?;
        ensure!(
            out.status.success(),
            "wrangler deploy --dry-run -c {config} failed:\n{}",
            tail(&text(&out), 40)
        );
        eprintln!(
            "tooling: wrangler deploy --dry-run -c {config} ({name}) on the fresh copy took {:.0} s",
            started.elapsed().as_secs_f64()
        );
        // wrangler names every config field it does not know ("Unexpected fields found in ..."), and would drop it
        // from the upload: the main Worker's `[cache]` block (Workers Cache in front of it) must not be among them.
        ensure!(
            !text(&out).contains("Unexpected fields"),
            "wrangler does not know a field of {config}:\n{}",
            tail(&text(&out), 40)
        );
        if name == "sunnylive" {
            let toml = std::fs::read_to_string(fx.copy.join(config))?;
            let block: Vec<&str> = toml
                .lines()
                .skip_while(|l| l.trim() != "[cache]")
                .skip(1)
                .take_while(|l| !l.trim_start().starts_with('['))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect();
            ensure!(
                block == ["enabled = true"],
                "the main Worker deploys without Workers Cache in front of it: [cache] is {block:?}"
            );
        }
        fresh.push((name, dir, out_dir));
    }
    let out = fx.run("make", &["-s", "size"], &[])?;
    ensure!(out.status.success(), "make size failed:\n{}", tail(&text(&out), 40));
    for (name, dir, out_dir) in fresh {
        let (fresh_raw, fresh_gz) = bundle_size(&out_dir)?;
        let (size_raw, size_gz) = bundle_size(&fx.copy.join(".run/dry-run").join(dir))?;
        eprintln!(
            "tooling: {name}: fresh-clone dry-run bundle {fresh_raw} B raw / {fresh_gz} B gzip; make size {size_raw} / {size_gz}"
        );
        ensure!(
            within_one_percent(fresh_raw, size_raw) && within_one_percent(fresh_gz, size_gz),
            "{name}: the fresh clone's bundle ({fresh_raw}/{fresh_gz}) is not within 1% of make size's ({size_raw}/{size_gz})"
        );
    }
    Ok(())
}

fn scripts_deploy_dry_run_walks_every_step_and_refuses_placeholders(fx: &Fixture) -> TestResult {
    let configs = ["wrangler.toml", "durable-objects/wrangler.toml"];
    let configs_before = configs
        .iter()
        .map(|c| std::fs::read(fx.copy.join(c)))
        .collect::<Result<Vec<_>, _>>()?;
    // wrangler.toml names live Midtrans (production refuses the sandbox unless asked for): a production-shaped key.
    let key = "Mid-server-tooling0test0key";
    let good = [
        ("SUNNYLIVE_PUBLIC_BASE_URL", "https://live.sunnylive.test"),
        ("SUNNYLIVE_RTMP_INGEST_URL", "rtmp://ingest.sunnylive.test/live"),
        ("MIDTRANS_SERVER_KEY", key),
    ];
    let out = fx.run("scripts/deploy", &["--dry-run"], &good)?;
    let said = text(&out);
    println!("---- scripts/deploy --dry-run ----\n{said}----");
    ensure!(out.status.success(), "scripts/deploy --dry-run failed:\n{said}");
    for expected in [
        "1. Cloudflare account",
        "2. D1 database 'sunnylive'",
        "would run: wrangler d1 create sunnylive",
        "would write its id into wrangler.toml",
        "3. R2 bucket 'sunnylive-media'",
        "would run: wrangler r2 bucket create sunnylive-media",
        "would set PUBLIC_BASE_URL = https://live.sunnylive.test",
        "would set RTMP_INGEST_URL = rtmp://ingest.sunnylive.test/live",
        "would run: wrangler d1 migrations apply DB --remote",
        "running: wrangler deploy --dry-run -c durable-objects/wrangler.toml",
        "running: wrangler deploy --dry-run -c wrangler.toml",
        "would run: wrangler deploy -c durable-objects/wrangler.toml",
        "would run: wrangler deploy\n",
        "would run: wrangler secret bulk",
        "origin.env (mode 0600)",
        "9. Where to go",
        "configuration checked, no problems",
    ] {
        ensure!(
            said.contains(expected),
            "the dry run does not say '{expected}':\n{said}"
        );
    }
    ensure!(!said.contains(key), "the dry run printed the Midtrans key");
    // The chat Worker goes first: the main Worker's CHAT_ROOMS binding names it.
    let order = |needle: &str| said.find(needle).unwrap_or(usize::MAX);
    ensure!(
        order("would run: wrangler deploy -c durable-objects/wrangler.toml") < order("would run: wrangler deploy\n"),
        "the dry run does not deploy the chat Worker before the main one:\n{said}"
    );
    for (config, before) in configs.iter().zip(&configs_before) {
        ensure!(
            std::fs::read(fx.copy.join(config))? == *before,
            "the dry run changed {config}"
        );
    }

    // The example placeholders in wrangler.toml, and a development key, are refused.
    let out = fx.run(
        "scripts/deploy",
        &["--dry-run"],
        &[("MIDTRANS_SERVER_KEY", "dev-only-midtrans-server-key")],
    )?;
    let said = text(&out);
    ensure!(!out.status.success(), "a dry run with placeholders succeeded:\n{said}");
    for expected in [
        "RTMP_INGEST_URL is the placeholder 'rtmp://ingest.example.com/live'",
        "MIDTRANS_SERVER_KEY does not look like a production server key",
    ] {
        ensure!(
            said.contains(expected),
            "the refusal does not say '{expected}':\n{said}"
        );
    }
    Ok(())
}

// --- devloop ---------------------------------------------------------------------------------------------------------

fn make_dev_in_a_0700_clone_serves_and_takes_a_publish(fx: &Fixture) -> TestResult {
    let guard = fx.dev()?;
    let dev = guard.as_ref().ok_or("BUG: dev started")?;
    let (base, rtmp) = (dev.base.clone(), dev.rtmp_url.clone());
    drop(guard);
    fx.rt.block_on(async {
        let page = http().get(format!("{base}/")).send().await?;
        ensure!(page.status() == 200, "GET / answered {}", page.status());
        let api = Api::new(&base, next_ip());
        let who = api.register("tool").await?;
        let (id, key) = api.create_stream(&who, "tooling publish").await?;
        let mut ffmpeg = tokio::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=30"])
            .args(["-f", "lavfi", "-i", "sine", "-t", "20"])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-c:a", "aac", "-f", "flv",
            ])
            .arg(format!("{rtmp}/{key}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let live = sunnylive_e2e::eventually(Duration::from_secs(30), "the stream to go live", || async {
            Ok(api.stream(&id).await?["status"] == "live")
        })
        .await;
        let _ = ffmpeg.kill().await;
        live
    })
}

fn make_size_beside_make_dev_disturbs_nothing(fx: &Fixture) -> TestResult {
    let guard = fx.dev()?;
    let dev = guard.as_ref().ok_or("BUG: dev started")?;
    let (base, log) = (dev.base.clone(), dev.log.clone());
    drop(guard);
    let mut socket = fx.rt.block_on(async {
        let api = Api::new(&base, next_ip());
        let who = api.register("size").await?;
        let (id, _) = api.create_stream(&who, "beside make size").await?;
        ChatClient::connect(&base, &id, Credentials::Anonymous).await
    })?;
    let mut size = fx.cmd("make");
    size.args(["-s", "size"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let size = size.spawn()?;
    let started = Instant::now();
    let size_thread = std::thread::spawn(move || size.wait_with_output());
    let (mut checks, mut failures) = (0, Vec::new());
    while !size_thread.is_finished() {
        checks += 1;
        if let Err(e) = fx.rt.block_on(health(&http(), &base)) {
            failures.push(format!("{:.1} s: {e}", started.elapsed().as_secs_f64()));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = size_thread.join().map_err(|_| "make size thread panicked")??;
    ensure!(out.status.success(), "make size failed:\n{}", tail(&text(&out), 30));
    eprintln!(
        "tooling: make size took {:.0} s beside make dev; /healthz checked {checks} times",
        started.elapsed().as_secs_f64()
    );
    ensure!(failures.is_empty(), "/healthz failed during make size: {failures:?}");
    fx.rt.block_on(async {
        socket.send_json(&json!({"type": "ping"})).await?;
        socket.next_of_type("pong", Duration::from_secs(10)).await?;
        socket.close().await;
        Ok::<(), BoxError>(())
    })?;
    let worker_log = std::fs::read_to_string(fx.copy.join(".run/logs/worker.log")).unwrap_or_default();
    ensure!(
        !worker_log.contains("CompileError") && !worker_log.contains("fell off end"),
        "wrangler dev saw a half-written build:\n{}",
        tail(&worker_log, 20)
    );
    let dev_log = std::fs::read_to_string(log)?;
    ensure!(
        !dev_log.contains("stopped ("),
        "a service stopped during make size:\n{}",
        tail(&dev_log, 30)
    );
    Ok(())
}

fn a_rust_edit_is_served_within_60_s(fx: &Fixture) -> TestResult {
    let guard = fx.dev()?;
    let dev = guard.as_ref().ok_or("BUG: dev started")?;
    let (base, log) = (dev.base.clone(), dev.log.clone());
    drop(guard);
    let file = fx.copy.join("functions/src/openapi.rs");
    let source = std::fs::read_to_string(&file)?;
    ensure!(
        source.contains(HEALTH_VERSION),
        "functions/src/openapi.rs no longer has the line this test edits: {HEALTH_VERSION}"
    );
    let before = fx.rt.block_on(health(&http(), &base))?;
    ensure!(before["version"] != EDITED_VERSION, "already edited?");
    std::fs::write(
        &file,
        source.replace(HEALTH_VERSION, &format!("\"version\": \"{EDITED_VERSION}\"")),
    )?;
    let saved = Instant::now();
    let served = fx.rt.block_on(async {
        let http = http();
        loop {
            if let Ok(v) = health(&http, &base).await {
                if v["version"] == EDITED_VERSION {
                    return Ok(saved.elapsed());
                }
            }
            if saved.elapsed() > Duration::from_secs(60) {
                return Err::<Duration, BoxError>("not served within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let dev_log = std::fs::read_to_string(&log)?;
    let took = served.map_err(|e| format!("the edited /healthz was {e}; dev log:\n{}", tail(&dev_log, 30)))?;
    println!(
        "save-to-served: {:.1} s (a one-line change to functions/src/openapi.rs, until /healthz answers it)",
        took.as_secs_f64()
    );
    ensure!(
        dev_log.contains("rebuilt in"),
        "the dev log does not report the rebuild:\n{dev_log}"
    );
    Ok(())
}

fn a_compile_error_keeps_the_last_good_build_serving(fx: &Fixture) -> TestResult {
    let guard = fx.dev()?;
    let dev = guard.as_ref().ok_or("BUG: dev started")?;
    let (base, log) = (dev.base.clone(), dev.log.clone());
    drop(guard);
    let serving = fx.rt.block_on(health(&http(), &base))?["version"].clone();
    let file = fx.copy.join("functions/src/openapi.rs");
    let good = std::fs::read_to_string(&file)?;
    let failures_before = std::fs::read_to_string(&log)?.matches("build FAILED").count();
    std::fs::write(
        &file,
        format!("{good}\nfn broken_by_the_tooling_test() -> u32 {{\n    \"not a number\"\n}}\n"),
    )?;
    let started = Instant::now();
    let dev_log = loop {
        let text = std::fs::read_to_string(&log)?;
        if text.matches("build FAILED").count() > failures_before {
            // The compiler's lines follow the FAILED line; give the printer a moment.
            std::thread::sleep(Duration::from_millis(500));
            break std::fs::read_to_string(&log)?;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "no failed build reported within 120 s:\n{}",
            tail(&text, 30)
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    std::fs::write(&file, &good)?;
    let reported = &dev_log[dev_log.rfind("build FAILED").unwrap_or(0)..];
    println!(
        "---- the dev terminal after the compile error ----\n{}\n----",
        tail(reported, 14)
    );
    ensure!(
        reported.contains("mismatched types") && reported.contains("openapi.rs"),
        "the dev log does not show the compiler's error:\n{reported}"
    );
    let now = fx.rt.block_on(health(&http(), &base))?;
    ensure!(
        now["version"] == serving,
        "after the failed build /healthz answers {now}, not the last good build ({serving})"
    );
    Ok(())
}

fn a_stopped_service_is_reported_and_started_again(fx: &Fixture) -> TestResult {
    let guard = fx.dev()?;
    let dev = guard.as_ref().ok_or("BUG: dev started")?;
    let (log, port) = (dev.log.clone(), dev.midtrans_port);
    drop(guard);
    let services = std::fs::read_to_string(fx.copy.join(".run/dev/services"))?;
    let pid = services
        .lines()
        .find_map(|l| l.strip_prefix("midtrans "))
        .ok_or_else(|| format!("no midtrans pid in .run/dev/services: {services}"))?
        .trim()
        .to_string();
    ensure!(
        Command::new("kill").args(["-TERM", "--", &pid]).status()?.success(),
        "could not stop midtrans ({pid})"
    );
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log)?;
        let restarted = text.contains("midtrans stopped") && text.contains("starting midtrans again");
        if restarted && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let at = text.find("midtrans stopped").unwrap_or(0);
            println!("---- the dev terminal ----\n{}\n----", tail(&text[at..], 20));
            return Ok(());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "midtrans was not reported and restarted within 30 s:\n{}",
            tail(&text, 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn main() {
    let mut args = Arguments::from_args();
    let names = [
        "deploy::fresh_clone_dry_run_is_the_optimized_bundle",
        "deploy::scripts_deploy_dry_run_walks_every_step_and_refuses_placeholders",
        "devloop::make_dev_in_a_0700_clone_serves_and_takes_a_publish",
        "devloop::make_size_beside_make_dev_disturbs_nothing",
        "devloop::a_rust_edit_is_served_within_60_s",
        "devloop::a_compile_error_keeps_the_last_good_build_serving",
        "devloop::a_stopped_service_is_reported_and_started_again",
    ];
    if args.list {
        for n in names {
            println!("{n}: test");
        }
        return;
    }
    let fx = match Fixture::create() {
        Ok(fx) => Arc::new(fx),
        Err(e) => {
            eprintln!("could not copy the checkout: {e}");
            std::process::exit(1);
        }
    };
    let steps: [fn(&Fixture) -> TestResult; 7] = [
        fresh_clone_dry_run_is_the_optimized_bundle,
        scripts_deploy_dry_run_walks_every_step_and_refuses_placeholders,
        make_dev_in_a_0700_clone_serves_and_takes_a_publish,
        make_size_beside_make_dev_disturbs_nothing,
        a_rust_edit_is_served_within_60_s,
        a_compile_error_keeps_the_last_good_build_serving,
        a_stopped_service_is_reported_and_started_again,
    ];
    let trials = names.iter().zip(steps).map(|(name, f)| fx.trial(name, f)).collect();
    // In order, one at a time: they share one copy and one dev stack, and build.
    args.test_threads = Some(1);
    let conclusion = libtest_mimic::run(&args, trials);
    fx.stop_dev();
    if conclusion.has_failed() {
        eprintln!("the copy and its logs stay in {}", fx.outer.display());
        conclusion.exit();
    }
    let _ = std::fs::remove_dir_all(&fx.outer);
    conclusion.exit();
}
