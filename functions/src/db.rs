//! D1 access helpers: binding arguments, reading one row or many, and `changes` from a write, each turning
//! platform errors into `ApiError::Internal` with the statement's intent as context.

use serde::de::DeserializeOwned;
use sunnylive_core::error::ApiError;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

use crate::http::OrInternal;

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
pub fn stmt(db: &D1Database, sql: &str, args: &[Arg]) -> Result<D1PreparedStatement, ApiError> {
    let values: Vec<JsValue> = args.iter().map(js).collect();
    db.prepare(sql).bind(&values).or_internal("D1 bind")
}

/// The first row, if any.
pub async fn one<T: DeserializeOwned>(
    db: &D1Database,
    what: &str,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<Option<T>, ApiError> {
    stmt(db, sql, args)?.first::<T>(None).await.or_internal(what)
}

/// Every row.
pub async fn all<T: DeserializeOwned>(
    db: &D1Database,
    what: &str,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<Vec<T>, ApiError> {
    stmt(db, sql, args)?
        .all()
        .await
        .or_internal(what)?
        .results::<T>()
        .or_internal(what)
}

/// Runs a write and returns how many rows it changed.
pub async fn run(db: &D1Database, what: &str, sql: &str, args: &[Arg<'_>]) -> Result<usize, ApiError> {
    let result = stmt(db, sql, args)?.run().await.or_internal(what)?;
    Ok(result.meta().or_internal(what)?.and_then(|m| m.changes).unwrap_or(0))
}

/// True when a D1 error is a UNIQUE constraint failure (the user's doing: a 409, not a 500).
pub fn is_unique_violation(e: &ApiError) -> bool {
    matches!(e, ApiError::Internal { context } if context.contains("UNIQUE constraint failed"))
}
