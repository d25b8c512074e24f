//! Per-request context: the environment's bindings, the checked configuration, and the two things the core never
//! reads by itself (the clock and randomness).

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use sunnylive_core::error::ApiError;
use sunnylive_core::hls;
use sunnylive_core::replica::SessionStart;
use sunnylive_core::secret::{equal_secrets, is_placeholder_url, midtrans_problems, production_problem};
use sunnylive_core::token::AccessTokens;
use worker::{Bucket, Context, Env};

use crate::db::Db;

/// Configuration read from wrangler vars and secrets (README, "Configuration", lists every one).
pub struct Config {
    pub jwt_secret: String,
    pub stream_key_secret: String,
    pub origin_token: String,
    pub midtrans_server_key: String,
    /// The AES-256 key simulcast output keys are sealed under, derived from `OUTPUT_KEY_SECRET`.
    pub output_sealing_key: [u8; 32],
    /// `ENVIRONMENT=development`: simulcast outputs may then point at private and loopback hosts (local receivers).
    pub development: bool,
    pub public_base_url: Option<String>,
    /// An R2 custom domain serving the media bucket (`https://media.example.com`), or None: segments and
    /// thumbnails are then served by this Worker under /hls/.
    pub media_base_url: Option<String>,
    pub broadcast_retention_days: i64,
    pub rtmp_ingest_url: String,
    /// The origin's RTMPS ingest (`rtmps://ingest.example.com:1936/live`), when it has one: Studio shows it first.
    pub rtmps_ingest_url: Option<String>,
    pub midtrans_snap_base_url: String,
    pub midtrans_api_base_url: String,
    pub stale_stream_seconds: i64,
    pub donation_reconcile_after_seconds: i64,
}

const SECRETS: [&str; 5] = [
    "JWT_SECRET",
    "STREAM_KEY_SECRET",
    "ORIGIN_TOKEN",
    "MIDTRANS_SERVER_KEY",
    "OUTPUT_KEY_SECRET",
];

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string()).filter(|v| !v.is_empty())
}

fn secret(env: &Env, name: &str) -> Option<String> {
    // `wrangler secret put` values are secrets; `.dev.vars` values arrive as plain vars locally. Accept both.
    env.secret(name)
        .ok()
        .map(|v| v.to_string())
        .or_else(|| var(env, name))
        .filter(|v| !v.is_empty())
}

fn number(env: &Env, name: &str, default: i64) -> i64 {
    var(env, name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

thread_local! {
    /// The configuration as this isolate first read it. Vars and secrets are fixed for a deployed version (a new
    /// `wrangler secret put` or deploy is a new version, so new isolates), so reading and checking them again on
    /// every request only costs CPU: about a fifth of a /healthz (`scripts/bench cpu`).
    static CONFIG: RefCell<Option<Result<Rc<Config>, ApiError>>> = const { RefCell::new(None) };
    /// The access-token keys made from that configuration's JWT secret, once.
    static TOKENS: OnceCell<Rc<AccessTokens>> = const { OnceCell::new() };
}

impl Config {
    /// The configuration, read and checked once per isolate (`load`), the same answer every time after.
    pub fn cached(env: &Env) -> Result<Rc<Config>, ApiError> {
        CONFIG.with(|cell| {
            cell.borrow_mut()
                .get_or_insert_with(|| Config::load(env).map(Rc::new))
                .clone()
        })
    }

    /// Reads the configuration. Outside development, every problem (a secret missing, a development value,
    /// shorter than 32 bytes, or equal to another secret; the Midtrans sandbox without `MIDTRANS_ENVIRONMENT=sandbox`;
    /// a URL still on a placeholder host) is logged by variable name, never by value, and every request is refused
    /// (503 `misconfigured`).
    pub fn load(env: &Env) -> Result<Config, ApiError> {
        let development = var(env, "ENVIRONMENT").as_deref() == Some("development");
        let values: Vec<Option<String>> = SECRETS.iter().map(|name| secret(env, name)).collect();
        let trim = |s: String| s.trim_end_matches('/').to_string();
        let public_base_url = var(env, "PUBLIC_BASE_URL").map(trim);
        let media_base_url = var(env, "MEDIA_BASE_URL").map(trim);
        let rtmp_ingest_url = trim(var(env, "RTMP_INGEST_URL").unwrap_or_else(|| "rtmp://127.0.0.1:1935/live".into()));
        let rtmps_ingest_url = var(env, "RTMPS_INGEST_URL").map(trim);
        let sandbox = var(env, "MIDTRANS_ENVIRONMENT").as_deref() == Some("sandbox");
        // Without a URL configured, production talks to production Midtrans and the sandbox to the sandbox.
        let (snap_default, api_default) = if sandbox || development {
            ("https://app.sandbox.midtrans.com", "https://api.sandbox.midtrans.com")
        } else {
            ("https://app.midtrans.com", "https://api.midtrans.com")
        };
        let midtrans_snap_base_url = trim(var(env, "MIDTRANS_SNAP_BASE_URL").unwrap_or_else(|| snap_default.into()));
        let midtrans_api_base_url = trim(var(env, "MIDTRANS_API_BASE_URL").unwrap_or_else(|| api_default.into()));

        let mut problems: Vec<(String, String)> = Vec::new();
        for (name, value) in SECRETS.iter().zip(&values) {
            let problem = if development {
                value.is_none().then_some("is missing")
            } else {
                production_problem(value.as_deref())
            };
            if let Some(problem) = problem {
                problems.push((
                    name.to_string(),
                    format!("{problem} (set it with `wrangler secret put {name}`)"),
                ));
            }
        }
        if !development {
            let present: Vec<(&str, &str)> = SECRETS
                .iter()
                .zip(&values)
                .filter_map(|(name, v)| v.as_deref().map(|v| (*name, v)))
                .collect();
            for (a, b) in equal_secrets(&present) {
                problems.push((
                    a.to_string(),
                    format!("equals {b}: give every secret its own random value"),
                ));
            }
            let urls = [
                ("MIDTRANS_SNAP_BASE_URL", midtrans_snap_base_url.as_str()),
                ("MIDTRANS_API_BASE_URL", midtrans_api_base_url.as_str()),
            ];
            let server_key = values[3].as_deref().unwrap_or_default();
            for (name, problem) in midtrans_problems(sandbox, server_key, &urls) {
                problems.push((name.to_string(), problem.to_string()));
            }
            let placeholders = [
                ("PUBLIC_BASE_URL", public_base_url.as_deref().unwrap_or_default()),
                ("MEDIA_BASE_URL", media_base_url.as_deref().unwrap_or_default()),
                ("RTMP_INGEST_URL", rtmp_ingest_url.as_str()),
                ("RTMPS_INGEST_URL", rtmps_ingest_url.as_deref().unwrap_or_default()),
                ("MIDTRANS_SNAP_BASE_URL", midtrans_snap_base_url.as_str()),
                ("MIDTRANS_API_BASE_URL", midtrans_api_base_url.as_str()),
            ];
            for (name, url) in placeholders {
                if is_placeholder_url(url) {
                    problems.push((
                        name.to_string(),
                        "is still a placeholder (*.example.com): set the real one".into(),
                    ));
                }
            }
        }
        // Checked in development too: a wrong scheme here would send streamers' keys in clear while Studio says TLS.
        if let Some(url) = &rtmps_ingest_url {
            if !url.starts_with("rtmps://") {
                problems.push((
                    "RTMPS_INGEST_URL".into(),
                    "must be an rtmps:// URL (or unset when the origin has no RTMPS)".into(),
                ));
            }
        }
        if !problems.is_empty() {
            for (name, problem) in &problems {
                worker::console_error!("refusing to serve: {name} {problem}");
            }
            return Err(ApiError::Misconfigured);
        }
        let mut values = values.into_iter().map(|v| v.expect("BUG: checked above"));
        Ok(Config {
            jwt_secret: values.next().expect("BUG: five secrets"),
            stream_key_secret: values.next().expect("BUG: five secrets"),
            origin_token: values.next().expect("BUG: five secrets"),
            midtrans_server_key: values.next().expect("BUG: five secrets"),
            output_sealing_key: sunnylive_core::output::sealing_key(
                values.next().expect("BUG: five secrets").as_bytes(),
            ),
            development,
            public_base_url,
            media_base_url,
            broadcast_retention_days: number(env, "BROADCAST_RETENTION_DAYS", hls::DEFAULT_RETENTION_DAYS),
            rtmp_ingest_url,
            rtmps_ingest_url,
            midtrans_snap_base_url,
            midtrans_api_base_url,
            stale_stream_seconds: number(env, "STALE_STREAM_SECONDS", 90),
            donation_reconcile_after_seconds: number(env, "DONATION_RECONCILE_AFTER_SECONDS", 600),
        })
    }
}

pub struct App {
    pub env: Env,
    pub config: Rc<Config>,
    /// This request's D1 session (where it starts: `sunnylive_core::replica::session_start`).
    pub db: Db,
    pub tokens: Rc<AccessTokens>,
    /// The request's execution context (None for the cron): what purges the cache in front of the Worker.
    ctx: Option<Context>,
    /// The colo's cache was asked for this request before it got here and had nothing (`video_cache::lookup`).
    pub video_cache_missed: bool,
}

impl App {
    pub fn new(env: Env, start: &SessionStart, ctx: Option<Context>) -> Result<App, ApiError> {
        let config = Config::cached(&env)?;
        let db = env
            .d1("DB")
            .map_err(|e| ApiError::internal(format!("D1 binding DB: {e}")))?;
        let tokens = TOKENS.with(|cell| {
            cell.get_or_init(|| Rc::new(AccessTokens::new(config.jwt_secret.as_bytes())))
                .clone()
        });
        Ok(App {
            env,
            config,
            db: Db::new(db, start),
            tokens,
            ctx,
            video_cache_missed: false,
        })
    }

    /// Runs `work` after this request has been answered (`ctx.waitUntil`), with an `App` of its own whose D1 session
    /// starts at the primary, so it reads what this request wrote. Without an execution context (the cron) there is
    /// no "after": the work is skipped, which only costs what it would have saved.
    pub fn after_answer<F, Fut>(&self, work: F)
    where
        F: FnOnce(App) -> Fut,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let Some(ctx) = &self.ctx else { return };
        let Ok(database) = self.env.d1("DB") else { return };
        let app = App {
            env: self.env.clone(),
            config: self.config.clone(),
            db: Db::new(database, &SessionStart::Primary),
            tokens: self.tokens.clone(),
            ctx: None,
            video_cache_missed: false,
        };
        ctx.wait_until(work(app));
    }

    /// Drops every answer tagged with one of `tags` from the cache in front of the Worker (Workers Cache,
    /// `ctx.cache.purge`), e.g. a deleted broadcast's segments. Locally there is no such cache (`wrangler dev` has no
    /// `ctx.cache`), and a failed purge only leaves copies that expire by themselves: both are logged, never an
    /// error for the request that deleted.
    pub async fn purge_cache(&self, tags: Vec<String>) {
        let Some(ctx) = &self.ctx else { return };
        let ctx: &worker::worker_sys::Context = ctx.as_ref();
        let ctx: &wasm_bindgen::JsValue = ctx.as_ref();
        let cache = js_sys::Reflect::get(ctx, &"cache".into()).unwrap_or(wasm_bindgen::JsValue::UNDEFINED);
        if cache.is_undefined() || cache.is_null() {
            return;
        }
        let purge = js_sys::Reflect::get(&cache, &"purge".into())
            .ok()
            .and_then(|f| wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(f).ok());
        let Some(purge) = purge else { return };
        let options = js_sys::Object::new();
        let list: js_sys::Array = tags.iter().map(|t| wasm_bindgen::JsValue::from_str(t)).collect();
        let _ = js_sys::Reflect::set(&options, &"tags".into(), &list);
        let result = match purge.call1(&cache, &options) {
            Ok(promise) => wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&promise))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            worker::console_error!("cache purge of {} tag(s) failed: {e:?}", tags.len());
        }
    }

    /// The R2 bucket holding every broadcast's video (binding `MEDIA`).
    pub fn media(&self) -> Result<Bucket, ApiError> {
        self.env
            .bucket("MEDIA")
            .map_err(|e| ApiError::internal(format!("R2 binding MEDIA: {e}")))
    }

    /// Where a broadcast's thumbnail is fetched: from the media domain when one is configured, else the site. `at`
    /// (when it was taken) makes each new thumbnail a new URL, so caches never show an old one for long.
    pub fn thumbnail_url(&self, stream_id: &str, broadcast_id: &str, at: i64) -> String {
        format!(
            "{}/{}?v={at}",
            self.config.media_base_url.as_deref().unwrap_or(""),
            hls::object_key(stream_id, broadcast_id, "thumb.jpg")
        )
    }

    /// Unix seconds now. (In production the clock does not advance during CPU work; that is fine for every use.)
    pub fn now(&self) -> i64 {
        now_unix()
    }

    /// RFC 3339 UTC timestamp for `now`.
    pub fn now_rfc3339(&self) -> String {
        rfc3339(self.now())
    }
}

pub use sunnylive_edge::now_unix;

pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
