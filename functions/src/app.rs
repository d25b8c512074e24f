//! Per-request context: the environment's bindings, the checked configuration, and the two things the core never
//! reads by itself (the clock and randomness).

use sunnylive_core::error::ApiError;
use sunnylive_core::secret::production_problem;
use sunnylive_core::token::AccessTokens;
use worker::{Bucket, D1Database, Env};

/// Configuration read from wrangler vars and secrets (README, "Configuration", lists every one).
pub struct Config {
    pub jwt_secret: String,
    pub stream_key_secret: String,
    pub origin_token: String,
    pub midtrans_server_key: String,
    pub public_base_url: Option<String>,
    /// An R2 custom domain serving the media bucket (`https://media.example.com`), or None: segments and
    /// thumbnails are then served by this Worker under /hls/.
    pub media_base_url: Option<String>,
    pub broadcast_retention_days: i64,
    pub rtmp_ingest_url: String,
    pub midtrans_snap_base_url: String,
    pub midtrans_api_base_url: String,
    pub stale_stream_seconds: i64,
    pub donation_reconcile_after_seconds: i64,
}

const SECRETS: [&str; 4] = ["JWT_SECRET", "STREAM_KEY_SECRET", "ORIGIN_TOKEN", "MIDTRANS_SERVER_KEY"];

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

impl Config {
    /// Reads the configuration. Outside development, a missing secret or a development value refuses every
    /// request (503) and logs which secret is wrong (its name, never its value).
    pub fn load(env: &Env) -> Result<Config, ApiError> {
        let development = var(env, "ENVIRONMENT").as_deref() == Some("development");
        let values: Vec<Option<String>> = SECRETS.iter().map(|name| secret(env, name)).collect();
        let mut broken = false;
        for (name, value) in SECRETS.iter().zip(&values) {
            let problem = if development {
                value.is_none().then_some("is missing")
            } else {
                production_problem(value.as_deref())
            };
            if let Some(problem) = problem {
                worker::console_error!(
                    "refusing to serve: secret {name} {problem} (set it with `wrangler secret put {name}`)"
                );
                broken = true;
            }
        }
        if broken {
            return Err(ApiError::Misconfigured);
        }
        let mut values = values.into_iter().map(|v| v.expect("BUG: checked above"));
        let trim = |s: String| s.trim_end_matches('/').to_string();
        Ok(Config {
            jwt_secret: values.next().expect("BUG: four secrets"),
            stream_key_secret: values.next().expect("BUG: four secrets"),
            origin_token: values.next().expect("BUG: four secrets"),
            midtrans_server_key: values.next().expect("BUG: four secrets"),
            public_base_url: var(env, "PUBLIC_BASE_URL").map(trim),
            media_base_url: var(env, "MEDIA_BASE_URL").map(trim),
            broadcast_retention_days: number(
                env,
                "BROADCAST_RETENTION_DAYS",
                sunnylive_core::hls::DEFAULT_RETENTION_DAYS,
            ),
            rtmp_ingest_url: trim(var(env, "RTMP_INGEST_URL").unwrap_or_else(|| "rtmp://127.0.0.1:1935/live".into())),
            midtrans_snap_base_url: trim(
                var(env, "MIDTRANS_SNAP_BASE_URL").unwrap_or_else(|| "https://app.sandbox.midtrans.com".into()),
            ),
            midtrans_api_base_url: trim(
                var(env, "MIDTRANS_API_BASE_URL").unwrap_or_else(|| "https://api.sandbox.midtrans.com".into()),
            ),
            stale_stream_seconds: number(env, "STALE_STREAM_SECONDS", 90),
            donation_reconcile_after_seconds: number(env, "DONATION_RECONCILE_AFTER_SECONDS", 600),
        })
    }
}

pub struct App {
    pub env: Env,
    pub config: Config,
    pub db: D1Database,
    pub tokens: AccessTokens,
}

impl App {
    pub fn new(env: Env) -> Result<App, ApiError> {
        let config = Config::load(&env)?;
        let db = env
            .d1("DB")
            .map_err(|e| ApiError::internal(format!("D1 binding DB: {e}")))?;
        let tokens = AccessTokens::new(config.jwt_secret.as_bytes());
        Ok(App {
            env,
            config,
            db,
            tokens,
        })
    }

    /// The R2 bucket holding every broadcast's video (binding `MEDIA`).
    pub fn media(&self) -> Result<Bucket, ApiError> {
        self.env
            .bucket("MEDIA")
            .map_err(|e| ApiError::internal(format!("R2 binding MEDIA: {e}")))
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

pub fn now_unix() -> i64 {
    (worker::Date::now().as_millis() / 1000) as i64
}

pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
