//! D1 access: the request's session (global read replication: `sunnylive_core::replica` decides where it starts),
//! binding arguments, reading one row or many, and `changes` from a write, each turning platform errors into
//! `ApiError::Internal` with the statement's intent as context.

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use sunnylive_core::error::ApiError;
use sunnylive_core::replica::SessionStart;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use worker::{D1Database, D1DatabaseSession, D1PreparedStatement, D1Result};

use crate::http::OrInternal;

/// A request's way into D1: one session, so that everything the request reads is sequentially consistent, and
/// writes go to the primary whatever the session started on. It remembers the newest bookmark (for the client, to
/// read its own writes next time) and the region that answered (for the log line).
pub struct Db {
    session: Session,
    served_by_region: RefCell<Option<String>>,
}

enum Session {
    Replicated(D1DatabaseSession),
    /// A D1 without the Sessions API (none is known today; kept so that a runtime without it still serves).
    Plain(D1Database),
}

impl Db {
    pub fn new(db: D1Database, start: &SessionStart) -> Db {
        let session = match db.with_session(Some(start.constraint())) {
            Ok(session) => Session::Replicated(session),
            Err(e) => {
                worker::console_warn!("D1 sessions unavailable, reading the database directly: {e}");
                Session::Plain(db)
            }
        };
        Db {
            session,
            served_by_region: RefCell::new(None),
        }
    }

    pub fn prepare(&self, sql: &str) -> D1PreparedStatement {
        match &self.session {
            Session::Replicated(s) => s.prepare(sql),
            Session::Plain(db) => db.prepare(sql),
        }
    }

    pub async fn batch(&self, statements: Vec<D1PreparedStatement>) -> worker::Result<Vec<D1Result>> {
        match &self.session {
            Session::Replicated(s) => s.batch(statements).await,
            Session::Plain(db) => db.batch(statements).await,
        }
    }

    /// The newest D1 state this request saw, for the `Sunnylive-Bookmark` answer header.
    pub fn bookmark(&self) -> Option<String> {
        match &self.session {
            Session::Replicated(s) => s.get_bookmark().ok().flatten(),
            Session::Plain(_) => None,
        }
    }

    /// The region that answered the request's last read (`served_by_region`), when D1 said.
    pub fn served_by_region(&self) -> Option<String> {
        self.served_by_region.borrow().clone()
    }

    /// Runs a read and returns its rows, noting who answered. One execution (`all`), read through JS so that the
    /// result's `meta` (which workers-rs's typed meta leaves out) is seen beside the rows.
    async fn rows<T: DeserializeOwned>(&self, stmt: D1PreparedStatement, what: &str) -> Result<Vec<T>, ApiError> {
        let promise = stmt
            .inner()
            .all()
            .map_err(|e| ApiError::internal(format!("{what}: {e:?}")))?;
        let result = JsFuture::from(promise)
            .await
            .map_err(|e| ApiError::internal(format!("{what}: {}", js_message(&e))))?;
        let region = js_sys::Reflect::get(&result, &"meta".into())
            .and_then(|meta| js_sys::Reflect::get(&meta, &"served_by_region".into()))
            .ok()
            .and_then(|r| r.as_string());
        if region.is_some() {
            *self.served_by_region.borrow_mut() = region;
        }
        let rows = js_sys::Reflect::get(&result, &"results".into()).unwrap_or(JsValue::UNDEFINED);
        if rows.is_undefined() || rows.is_null() {
            return Ok(Vec::new());
        }
        serde_wasm_bindgen::from_value(rows).map_err(|e| ApiError::internal(format!("{what}: {e}")))
    }
}

/// The message of a thrown JS error (D1's own text, e.g. "UNIQUE constraint failed: ..."), or its debug form.
fn js_message(e: &JsValue) -> String {
    js_sys::Reflect::get(e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// A value bound to a statement parameter.
pub enum Arg<'a> {
    Text(&'a str),
    Int(i64),
    Null,
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(s: &'a str) -> Self {
        Arg::Text(s)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(s: &'a String) -> Self {
        Arg::Text(s)
    }
}

impl From<i64> for Arg<'_> {
    fn from(n: i64) -> Self {
        Arg::Int(n)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(s: Option<&'a str>) -> Self {
        s.map_or(Arg::Null, Arg::Text)
    }
}

fn js(arg: &Arg) -> JsValue {
    match arg {
        Arg::Text(s) => JsValue::from_str(s),
        // D1 binds JS numbers; every integer we store (unix seconds, rupiah, counters) is far below 2^53.
        Arg::Int(n) => JsValue::from_f64(*n as f64),
        Arg::Null => JsValue::NULL,
    }
}

/// Prepares `sql` with `args`.
pub fn stmt(db: &Db, sql: &str, args: &[Arg]) -> Result<D1PreparedStatement, ApiError> {
    let values: Vec<JsValue> = args.iter().map(js).collect();
    db.prepare(sql).bind(&values).or_internal("D1 bind")
}

/// The first row, if any.
pub async fn one<T: DeserializeOwned>(db: &Db, what: &str, sql: &str, args: &[Arg<'_>]) -> Result<Option<T>, ApiError> {
    Ok(db.rows(stmt(db, sql, args)?, what).await?.into_iter().next())
}

/// Every row.
pub async fn all<T: DeserializeOwned>(db: &Db, what: &str, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>, ApiError> {
    db.rows(stmt(db, sql, args)?, what).await
}

/// Runs a write and returns how many rows it changed.
pub async fn run(db: &Db, what: &str, sql: &str, args: &[Arg<'_>]) -> Result<usize, ApiError> {
    let result = stmt(db, sql, args)?.run().await.or_internal(what)?;
    Ok(result.meta().or_internal(what)?.and_then(|m| m.changes).unwrap_or(0))
}

/// True when a D1 error is a UNIQUE constraint failure (the user's doing: a 409, not a 500).
pub fn is_unique_violation(e: &ApiError) -> bool {
    matches!(e, ApiError::Internal { context } if context.contains("UNIQUE constraint failed"))
}
