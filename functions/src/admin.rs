//! The operator (issue 26): routes under `/api/admin/` for users whose `role` is `operator` (given only by
//! `scripts/admin grant <username>`, a D1 statement; never by an API), and `POST /api/reports`, where signed-in
//! viewers report a stream, a broadcast or a chat message. Every operator route checks the role before it reads
//! anything else (403 `not_operator`, nothing changed), and every act writes one `audit_log` row (who, what, on what,
//! when, why) in the same D1 batch as the act where the act is D1's, or right after an act elsewhere (a chat room)
//! succeeded. Lists are written by D1 as JSON (one text column): no row or answer types in the Worker.

use sunnylive_core::chat::{DeleteMessagePost, MessageId, ROOM_DELETE_MESSAGE};
use sunnylive_core::error::ApiError;
use sunnylive_core::ids::UserId;
use sunnylive_core::moderation::{parse_resolution, NewReport, OperatorReason, TargetType};
use sunnylive_core::page::parse_limit;
use sunnylive_core::rate_limit;
use sunnylive_edge::json_text;
use worker::{D1PreparedStatement, Method, Request, Response};

use crate::app::App;
use crate::auth::{self, AuthUser, Text};
use crate::crypto::random;
use crate::db::{self, Arg};
use crate::http::{self, OrInternal, JSON_LIMIT};

/// The caller, if they are an operator (and not suspended): 401 anonymous, 403 `not_operator` anyone else.
async fn require_operator(app: &App, req: &Request) -> Result<AuthUser, ApiError> {
    let caller = auth::require_user(app, req).await?;
    let operator: Option<Text> = db::one(
        &app.db,
        "is the caller an operator",
        "SELECT 'operator' AS value FROM users WHERE id = ?1 AND role = 'operator' AND suspended_at IS NULL",
        &[caller.id.as_str().into()],
    )
    .await?;
    operator.ok_or_else(|| ApiError::Forbidden {
        code: "not_operator",
        message: "Only an operator can do this.".into(),
    })?;
    Ok(caller)
}

/// The operator and their reason, from a JSON body `{reason}`.
async fn operator_with_reason(app: &App, req: &mut Request) -> Result<(AuthUser, OperatorReason), ApiError> {
    let operator = require_operator(app, req).await?;
    let body = http::read_json(req, JSON_LIMIT).await?;
    Ok((operator, OperatorReason::parse(body.opt_str("reason")?)?))
}

/// The operator and their reason, from the query (`?reason=`: the DELETE routes have no body).
async fn operator_with_query_reason(app: &App, req: &Request) -> Result<(AuthUser, OperatorReason), ApiError> {
    let operator = require_operator(app, req).await?;
    let reason = OperatorReason::parse(http::query(req).get("reason").map(String::as_str))?;
    Ok((operator, reason))
}

/// The audit row of one act. `if_changed`: written only when the statement just before it in the same batch
/// changed a row (SQLite's `changes()`), so an act that found nothing to change leaves no audit row either.
fn audit(
    app: &App,
    operator: &AuthUser,
    action: &str,
    target: (&str, &str),
    reason: &OperatorReason,
    if_changed: bool,
) -> Result<D1PreparedStatement, ApiError> {
    let condition = if if_changed { " WHERE changes() > 0" } else { "" };
    db::stmt(
        &app.db,
        &format!(
            "INSERT INTO audit_log (at, operator_id, action, target_type, target_id, reason)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6{condition}"
        ),
        &[
            app.now_rfc3339().as_str().into(),
            operator.id.as_str().into(),
            action.into(),
            target.0.into(),
            target.1.into(),
            reason.as_str().into(),
        ],
    )
}

/// Runs an act's statements (and its audit row) as one transaction.
async fn act(app: &App, statements: Vec<D1PreparedStatement>, what: &str) -> Result<Vec<worker::D1Result>, ApiError> {
    app.db.batch(statements).await.or_internal(what)
}

/// How many rows a batch result changed.
fn changes(result: Option<&worker::D1Result>) -> usize {
    result
        .and_then(|r| r.meta().ok().flatten())
        .and_then(|m| m.changes)
        .unwrap_or(0)
}

fn user_not_found() -> ApiError {
    ApiError::NotFound {
        code: "user_not_found",
        message: "No such user.".into(),
    }
}

/// `POST /api/admin/streams/{id}/end` `{reason}`: the stream goes offline now and its key is blocked until the owner
/// rotates it: the publisher's next heartbeat is refused (nginx drops it), and so is a new publish with that key.
pub async fn end_stream(app: &App, mut req: Request, id: &str) -> Result<Response, ApiError> {
    let (operator, reason) = operator_with_reason(app, &mut req).await?;
    let stream = crate::stream_row::load(app, id).await?;
    act(
        app,
        vec![
            db::stmt(
                &app.db,
                "UPDATE streams SET status = 'offline', live_since = NULL, publisher = NULL,
                     blocked_key_generation = key_generation WHERE id = ?1",
                &[stream.id.as_str().into()],
            )?,
            audit(app, &operator, "end_stream", ("stream", &stream.id), &reason, false)?,
        ],
        "end a stream",
    )
    .await?;
    crate::broadcasts::end_current(app, &stream.id).await?;
    crate::room_client::announce_status(app, &stream.id, false).await;
    json_text(200, format!("{{\"stream_id\":\"{}\",\"key_blocked\":true}}", stream.id))
}

/// `POST /api/admin/users/{user_id}/suspend` `{reason}`: no sign-in, no publish, no chat. Every sign-in of the user
/// ends now (their chat sockets close); their live publish is refused at its next heartbeat.
pub async fn suspend(app: &App, mut req: Request, user_id: &str) -> Result<Response, ApiError> {
    let (operator, reason) = operator_with_reason(app, &mut req).await?;
    let user = UserId::parse(user_id).ok_or_else(user_not_found)?;
    if user.as_str() == operator.id.as_str() || user.as_str() == sunnylive_core::account::DELETED_USER_ID {
        return Err(ApiError::Conflict {
            code: "cannot_suspend",
            message: "An operator cannot suspend themselves or the deleted user.".into(),
        });
    }
    let results = act(
        app,
        vec![
            db::stmt(
                &app.db,
                "UPDATE users SET suspended_at = COALESCE(suspended_at, ?2) WHERE id = ?1",
                &[user.as_str().into(), app.now_rfc3339().as_str().into()],
            )?,
            audit(app, &operator, "suspend_user", ("user", user.as_str()), &reason, true)?,
        ],
        "suspend a user",
    )
    .await?;
    if changes(results.first()) == 0 {
        return Err(user_not_found());
    }
    let ended = crate::account::end_logins_except(app, user.as_str(), None).await?;
    json_text(
        200,
        format!(
            "{{\"user_id\":\"{}\",\"suspended\":true,\"ended\":{ended}}}",
            user.as_str()
        ),
    )
}

/// `POST /api/admin/users/{user_id}/unsuspend` `{reason}`: lifts a suspension (the user signs in again).
pub async fn unsuspend(app: &App, mut req: Request, user_id: &str) -> Result<Response, ApiError> {
    let (operator, reason) = operator_with_reason(app, &mut req).await?;
    let user = UserId::parse(user_id).ok_or_else(user_not_found)?;
    let results = act(
        app,
        vec![
            db::stmt(
                &app.db,
                "UPDATE users SET suspended_at = NULL WHERE id = ?1",
                &[user.as_str().into()],
            )?,
            audit(app, &operator, "unsuspend_user", ("user", user.as_str()), &reason, true)?,
        ],
        "lift a suspension",
    )
    .await?;
    if changes(results.first()) == 0 {
        return Err(user_not_found());
    }
    json_text(
        200,
        format!("{{\"user_id\":\"{}\",\"suspended\":false}}", user.as_str()),
    )
}

/// `DELETE /api/admin/broadcasts/{broadcast_id}?reason=`: any past broadcast and its video (409 while live: end the
/// stream first).
pub async fn delete_broadcast(app: &App, req: Request, broadcast_id: &str) -> Result<Response, ApiError> {
    let (operator, reason) = operator_with_query_reason(app, &req).await?;
    let stream_id = crate::broadcasts::stream_of(app, broadcast_id).await?;
    crate::broadcasts::remove(app, &req, &stream_id, broadcast_id).await?;
    act(
        app,
        vec![audit(
            app,
            &operator,
            "delete_broadcast",
            ("broadcast", broadcast_id),
            &reason,
            false,
        )?],
        "audit a broadcast deletion",
    )
    .await?;
    http::no_content()
}

/// `DELETE /api/admin/streams/{id}/messages/{message_id}?reason=`: any chat message, for everyone at once (the room
/// sends `deleted`, as for the host's delete).
pub async fn delete_message(app: &App, req: Request, stream_id: &str, message_id: &str) -> Result<Response, ApiError> {
    let (operator, reason) = operator_with_query_reason(app, &req).await?;
    let stream = crate::stream_row::load(app, stream_id).await?;
    let not_found = || ApiError::NotFound {
        code: "message_not_found",
        message: "No such chat message.".into(),
    };
    let id = MessageId::parse(message_id).ok_or_else(not_found)?;
    let body = serde_json::to_string(&DeleteMessagePost { id: id.to_string() })
        .map_err(|e| ApiError::internal(format!("delete body: {e}")))?;
    let (status, _) =
        crate::room_client::ask_room(app, &stream.id, Method::Post, ROOM_DELETE_MESSAGE, Some(body)).await?;
    if status != 200 {
        return Err(not_found());
    }
    let target = format!("{}/{id}", stream.id);
    act(
        app,
        vec![audit(
            app,
            &operator,
            "delete_chat_message",
            ("chat_message", &target),
            &reason,
            false,
        )?],
        "audit a message deletion",
    )
    .await?;
    http::no_content()
}

/// `GET /api/admin/reports?status=open|closed&limit=`: reports, oldest open first (newest closed first).
pub async fn list_reports(app: &App, req: Request) -> Result<Response, ApiError> {
    require_operator(app, &req).await?;
    let query = http::query(&req);
    let limit = parse_limit(query.get("limit").map(String::as_str))?;
    let (filter, order) = match query.get("status").map(String::as_str) {
        None | Some("open") => ("closed_at IS NULL", "created_at, id"),
        Some("closed") => ("closed_at IS NOT NULL", "closed_at DESC, id"),
        Some(_) => return Err(ApiError::invalid("status", "must be open or closed")),
    };
    let answer: Option<Text> = db::one(
        &app.db,
        "list reports",
        &format!(
            "SELECT json_object('reports', json_group_array(json_object('id', id, 'reporter_id', reporter_id,
                 'target_type', target_type, 'target_id', target_id, 'reason', reason, 'created_at', created_at,
                 'closed_at', closed_at, 'closed_by', closed_by, 'resolution', resolution))) AS value
             FROM (SELECT * FROM reports WHERE {filter} ORDER BY {order} LIMIT ?1)"
        ),
        &[i64::from(limit).into()],
    )
    .await?;
    json_text(200, answer.map(|a| a.value).unwrap_or_default())
}

/// `POST /api/admin/reports/{report_id}/close` `{resolution, reason}`: closes an open report with what was done
/// (404 `report_not_found` when there is no open report with that id).
pub async fn close_report(app: &App, mut req: Request, report_id: &str) -> Result<Response, ApiError> {
    let operator = require_operator(app, &req).await?;
    let body = http::read_json(&mut req, JSON_LIMIT).await?;
    let resolution = parse_resolution(body.opt_str("resolution")?)?;
    let reason = OperatorReason::parse(body.opt_str("reason")?)?;
    let results = act(
        app,
        vec![
            db::stmt(
                &app.db,
                "UPDATE reports SET closed_at = ?2, closed_by = ?3, resolution = ?4 WHERE id = ?1 AND closed_at IS NULL",
                &[
                    report_id.into(),
                    app.now_rfc3339().as_str().into(),
                    operator.id.as_str().into(),
                    resolution.into(),
                ],
            )?,
            audit(app, &operator, &format!("close_report:{resolution}"), ("report", report_id), &reason, true)?,
        ],
        "close a report",
    )
    .await?;
    if changes(results.first()) == 0 {
        return Err(ApiError::NotFound {
            code: "report_not_found",
            message: "No open report with that id.".into(),
        });
    }
    http::no_content()
}

/// `GET /api/admin/audit?limit=`: operator acts, newest first, with the operator's username.
pub async fn audit_list(app: &App, req: Request) -> Result<Response, ApiError> {
    require_operator(app, &req).await?;
    let limit = parse_limit(http::query(&req).get("limit").map(String::as_str))?;
    let answer: Option<Text> = db::one(
        &app.db,
        "list the audit",
        "SELECT json_object('entries', json_group_array(json_object('id', id, 'at', at, 'operator_id', operator_id,
             'operator', operator, 'action', action, 'target_type', target_type, 'target_id', target_id,
             'reason', reason))) AS value
         FROM (SELECT a.*, u.username AS operator FROM audit_log a LEFT JOIN users u ON u.id = a.operator_id
               ORDER BY a.id DESC LIMIT ?1)",
        &[i64::from(limit).into()],
    )
    .await?;
    json_text(200, answer.map(|a| a.value).unwrap_or_default())
}

/// `POST /api/reports` `{target_type, target_id, reason}`: a signed-in viewer reports something (201). At most
/// `REPORTS_PER_USER` per hour (429); a target that does not exist is 404 `report_target_not_found`.
pub async fn create_report(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let caller = auth::require_user(app, &req).await?;
    let body = http::read_json(&mut req, JSON_LIMIT).await?;
    let report = NewReport::parse(
        body.opt_str("target_type")?,
        body.opt_str("target_id")?,
        body.opt_str("reason")?,
    )?;
    auth::count_attempt(
        app,
        &format!("report:{}", caller.id.as_str()),
        rate_limit::REPORTS_PER_USER,
    )
    .await?;
    let exists: Option<Text> = match (report.target_type, report.stream_id()) {
        _ if !report.names_something() => None,
        (TargetType::Broadcast, _) => {
            db::one(
                &app.db,
                "does the reported broadcast exist",
                "SELECT id AS value FROM broadcasts WHERE id = ?1 AND deleted_at IS NULL",
                &[report.target_id.as_str().into()],
            )
            .await?
        }
        (_, stream) => {
            db::one(
                &app.db,
                "does the reported stream exist",
                "SELECT id AS value FROM streams WHERE id = ?1 AND deleted_at IS NULL",
                &[stream.unwrap_or_default().into()],
            )
            .await?
        }
    };
    if exists.is_none() {
        return Err(ApiError::NotFound {
            code: "report_target_not_found",
            message: "There is nothing with that id to report.".into(),
        });
    }
    let id = UserId::generate(random());
    let now = app.now_rfc3339();
    let args: [Arg; 6] = [
        id.as_str().into(),
        caller.id.as_str().into(),
        report.target_type.as_str().into(),
        report.target_id.as_str().into(),
        report.reason.into(),
        now.as_str().into(),
    ];
    db::run(
        &app.db,
        "file a report",
        "INSERT INTO reports (id, reporter_id, target_type, target_id, reason, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &args,
    )
    .await?;
    // Plain ASCII throughout (ids, a listed reason, a timestamp): nothing to escape.
    json_text(
        201,
        format!(
            "{{\"report\":{{\"id\":\"{}\",\"target_type\":\"{}\",\"target_id\":\"{}\",\"reason\":\"{}\",\"created_at\":\"{now}\"}}}}",
            id.as_str(),
            report.target_type.as_str(),
            report.target_id,
            report.reason
        ),
    )
}
