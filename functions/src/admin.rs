//! The operator (issue 26): routes under `/api/admin/` for users whose `role` is `operator` (given only by
//! `scripts/admin grant <username>`, a D1 statement; never by an API), and `POST /api/reports`, where signed-in
//! viewers report a stream, a broadcast or a chat message. Every operator route checks the role before it reads
//! anything else (403 `not_operator`, nothing changed), and every act writes one `audit_log` row (who, what, on what,
//! when, why) in the same D1 batch as the act where the act is D1's, or right after an act elsewhere (a chat room)
//! succeeded. Lists are written by D1 as JSON (one text column): no row or answer types in the Worker. Every operator
//! route is one handler (`operator`), a match per route inside it: each async handler costs the Worker's size budget.

use sunnylive_core::chat::{MessageId, ROOM_DELETE_MESSAGE};
use sunnylive_core::error::ApiError;
use sunnylive_core::ids::UserId;
use sunnylive_core::moderation::{parse_resolution, NewReport, OperatorReason, TargetType};
use sunnylive_core::page::parse_limit;
use sunnylive_core::rate_limit;
use sunnylive_edge::json_text;
use worker::{Method, Request, Response};

use crate::app::App;
use crate::auth::{self, Text};
use crate::crypto::random;
use crate::db::{self, Arg};
use crate::http::{self, OrInternal, JSON_LIMIT};

/// What an operator route does (`routes.rs` picks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// `GET /api/admin/reports?status=open|closed&limit=`: oldest open first, or newest closed first.
    ListReports,
    /// `GET /api/admin/audit?limit=`: operator acts, newest first, with the operator's username.
    Audit,
    /// `POST /api/admin/reports/{report_id}/close` `{resolution, reason}` (404 `report_not_found` unless open).
    CloseReport,
    /// `POST /api/admin/streams/{id}/end` `{reason}`: the stream goes offline now and its key is blocked until the
    /// owner rotates it: the publisher's next heartbeat is refused (nginx drops it), and so is a new publish.
    EndStream,
    /// `POST /api/admin/users/{user_id}/suspend` `{reason}`: no sign-in, no publish, no chat; every sign-in ends now
    /// (their chat sockets close) and their live publish is refused at its next heartbeat.
    Suspend,
    /// `POST /api/admin/users/{user_id}/unsuspend` `{reason}`: they may sign in again.
    Unsuspend,
    /// `DELETE /api/admin/broadcasts/{broadcast_id}?reason=`: any past broadcast and its video (409 while live).
    DeleteBroadcast,
    /// `DELETE /api/admin/clips/{clip_id}?reason=`: any clip, with what only it held (404 `clip_not_found`).
    DeleteClip,
    /// `DELETE /api/admin/streams/{id}/messages/{message_id}?reason=`: any chat message, for everyone at once (the
    /// room sends `deleted`, as for the host's delete).
    DeleteMessage,
}

/// An act's D1 statement and its arguments.
type Change<'a> = (&'static str, Vec<Arg<'a>>);

fn not_found(code: &'static str, what: &str) -> ApiError {
    ApiError::NotFound {
        code,
        message: format!("No such {what}."),
    }
}

/// Every `/api/admin/` route: the role first (nothing else is read before it), then the reason (body, or query for
/// the DELETE routes), then the act and its audit row, in one D1 batch where the act is D1's (the audit row kept
/// only when the act changed a row), after the act where it is not.
pub async fn operator(app: &App, mut req: Request, act: Act, first: &str, second: &str) -> Result<Response, ApiError> {
    let caller = auth::require_user(app, &req).await?;
    let operator: Option<Text> = db::one(
        &app.db,
        "is the caller an operator",
        "SELECT 'operator' AS value FROM users WHERE id = ?1 AND role = 'operator' AND suspended_at IS NULL",
        &[caller.id.as_str().into()],
    )
    .await?;
    if operator.is_none() {
        return Err(ApiError::Forbidden {
            code: "not_operator",
            message: "Only an operator can do this.".into(),
        });
    }
    let query = http::query(&req);
    if matches!(act, Act::ListReports | Act::Audit) {
        let limit = parse_limit(query.get("limit").map(String::as_str))?;
        let sql = if act == Act::Audit {
            "SELECT json_object('entries', json_group_array(json_object('id', id, 'at', at,
                 'operator_id', operator_id, 'operator', operator, 'action', action, 'target_type', target_type,
                 'target_id', target_id, 'reason', reason))) AS value
             FROM (SELECT a.*, u.username AS operator FROM audit_log a LEFT JOIN users u ON u.id = a.operator_id
                   ORDER BY a.id DESC LIMIT ?1)"
                .to_string()
        } else {
            let (filter, order) = match query.get("status").map(String::as_str) {
                None | Some("open") => ("closed_at IS NULL", "created_at, id"),
                Some("closed") => ("closed_at IS NOT NULL", "closed_at DESC, id"),
                Some(_) => return Err(ApiError::invalid("status", "must be open or closed")),
            };
            format!(
                "SELECT json_object('reports', json_group_array(json_object('id', id, 'reporter_id', reporter_id,
                     'target_type', target_type, 'target_id', target_id, 'reason', reason,
                     'created_at', created_at, 'closed_at', closed_at, 'closed_by', closed_by,
                     'resolution', resolution))) AS value
                 FROM (SELECT * FROM reports WHERE {filter} ORDER BY {order} LIMIT ?1)"
            )
        };
        let answer: Option<Text> = db::one(&app.db, "list for operators", &sql, &[i64::from(limit).into()]).await?;
        return json_text(200, answer.map(|a| a.value).unwrap_or_default());
    }
    let deleting = matches!(act, Act::DeleteBroadcast | Act::DeleteClip | Act::DeleteMessage);
    let body = if deleting {
        http::JsonBody::default()
    } else {
        http::read_json(&mut req, JSON_LIMIT).await?
    };
    let reason = OperatorReason::parse(match deleting {
        true => query.get("reason").map(String::as_str),
        false => body.opt_str("reason")?,
    })?;
    let now = app.now_rfc3339();
    // What the act changes in D1 (None: it happened elsewhere, just now), what it is, and on what.
    let (change, action, target_type, target): (Option<Change>, String, &str, String) = match act {
        Act::ListReports | Act::Audit => unreachable!("BUG: lists are answered above"),
        Act::CloseReport => {
            let resolution = parse_resolution(body.opt_str("resolution")?)?;
            let sql = "UPDATE reports SET closed_at = ?2, closed_by = ?3, resolution = ?4
                       WHERE id = ?1 AND closed_at IS NULL";
            let args = vec![
                first.into(),
                now.as_str().into(),
                caller.id.as_str().into(),
                resolution.into(),
            ];
            (
                Some((sql, args)),
                format!("close_report:{resolution}"),
                "report",
                first.to_string(),
            )
        }
        Act::EndStream => {
            let stream = crate::stream_row::load(app, first).await?;
            let sql = "UPDATE streams SET status = 'offline', live_since = NULL, publisher = NULL,
                           blocked_key_generation = key_generation WHERE id = ?1";
            (
                Some((sql, vec![first.into()])),
                "end_stream".into(),
                "stream",
                stream.id,
            )
        }
        Act::Suspend | Act::Unsuspend => {
            let on = act == Act::Suspend;
            if on && (first == caller.id.as_str() || first == sunnylive_core::account::DELETED_USER_ID) {
                return Err(ApiError::Conflict {
                    code: "cannot_suspend",
                    message: "An operator cannot suspend themselves or the deleted user.".into(),
                });
            }
            let sql = if on {
                "UPDATE users SET suspended_at = COALESCE(suspended_at, ?2) WHERE id = ?1"
            } else {
                "UPDATE users SET suspended_at = NULL WHERE id = ?1 AND ?2 IS NOT NULL"
            };
            let action = if on { "suspend_user" } else { "unsuspend_user" };
            (
                Some((sql, vec![first.into(), now.as_str().into()])),
                action.into(),
                "user",
                first.to_string(),
            )
        }
        Act::DeleteBroadcast => {
            crate::broadcasts::remove(app, &req, "", first).await?;
            (None, "delete_broadcast".into(), "broadcast", first.to_string())
        }
        Act::DeleteClip => {
            if !crate::clips::exists(app, first).await? {
                return Err(not_found("clip_not_found", "clip"));
            }
            crate::clips::forget(app, first).await?;
            (None, "delete_clip".into(), "clip", first.to_string())
        }
        Act::DeleteMessage => {
            let stream = crate::stream_row::load(app, first).await?;
            let id = MessageId::parse(second).ok_or_else(|| not_found("message_not_found", "chat message"))?;
            // `DeleteMessagePost`, written by hand: an id is digits.
            let body = format!("{{\"id\":\"{id}\"}}");
            let (status, _) =
                crate::room_client::ask_room(app, &stream.id, Method::Post, ROOM_DELETE_MESSAGE, Some(body)).await?;
            if status != 200 {
                return Err(not_found("message_not_found", "chat message"));
            }
            (
                None,
                "delete_chat_message".into(),
                "chat_message",
                format!("{}/{id}", stream.id),
            )
        }
    };
    let mut statements = Vec::new();
    if let Some((sql, args)) = &change {
        statements.push(db::stmt(&app.db, sql, args)?);
    }
    statements.push(db::stmt(
        &app.db,
        &format!(
            "INSERT INTO audit_log (at, operator_id, action, target_type, target_id, reason)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6{}",
            if change.is_some() { " WHERE changes() > 0" } else { "" }
        ),
        &[
            now.as_str().into(),
            caller.id.as_str().into(),
            action.as_str().into(),
            target_type.into(),
            target.as_str().into(),
            reason.as_str().into(),
        ],
    )?);
    let results = app.db.batch(statements).await.or_internal("an operator act")?;
    let changed = results
        .first()
        .and_then(|r| r.meta().ok().flatten())
        .and_then(|m| m.changes)
        .unwrap_or(0);
    if change.is_some() && changed == 0 {
        return Err(match act {
            Act::CloseReport => ApiError::NotFound {
                code: "report_not_found",
                message: "No open report with that id.".into(),
            },
            _ => not_found("user_not_found", "user"),
        });
    }
    match act {
        Act::EndStream => {
            crate::broadcasts::end_current(app, &target).await?;
            crate::room_client::announce_status(app, &target, false).await;
            json_text(200, format!("{{\"stream_id\":\"{target}\",\"key_blocked\":true}}"))
        }
        Act::Suspend | Act::Unsuspend => {
            let on = act == Act::Suspend;
            let ended = match on {
                true => crate::account::end_logins_except(app, &target, None).await?,
                false => 0,
            };
            json_text(
                200,
                format!("{{\"user_id\":\"{target}\",\"suspended\":{on},\"ended\":{ended}}}"),
            )
        }
        _ => http::no_content(),
    }
}

/// `POST /api/reports` `{target_type, target_id, reason}`: a signed-in viewer reports something (201). At most
/// `REPORTS_PER_USER` per hour (429); a target that does not exist is 404 `report_target_not_found`. One statement
/// files it only if the target exists and writes the answer's JSON.
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
    // A target of the wrong shape names nothing: no lookup can find "".
    let (stream, broadcast, clip) = match (report.names_something(), report.target_type) {
        (false, _) => ("", "", ""),
        (true, TargetType::Broadcast) => ("", report.target_id.as_str(), ""),
        (true, TargetType::Clip) => ("", "", report.target_id.as_str()),
        (true, _) => (report.stream_id().unwrap_or_default(), "", ""),
    };
    let id = UserId::generate(random());
    let filed: Option<Text> = db::one(
        &app.db,
        "file a report",
        "INSERT INTO reports (id, reporter_id, target_type, target_id, reason, created_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6
         WHERE EXISTS (SELECT 1 FROM streams WHERE id = ?7 AND deleted_at IS NULL)
            OR EXISTS (SELECT 1 FROM broadcasts WHERE id = ?8 AND deleted_at IS NULL)
            OR EXISTS (SELECT 1 FROM clips WHERE id = ?9)
         RETURNING json_object('report', json_object('id', id, 'reporter_id', reporter_id,
             'target_type', target_type, 'target_id', target_id, 'reason', reason, 'created_at', created_at)) AS value",
        &[
            id.as_str().into(),
            caller.id.as_str().into(),
            report.target_type.as_str().into(),
            report.target_id.as_str().into(),
            report.reason.into(),
            app.now_rfc3339().as_str().into(),
            stream.into(),
            broadcast.into(),
            clip.into(),
        ],
    )
    .await?;
    match filed {
        Some(answer) => json_text(201, answer.value),
        None => Err(ApiError::NotFound {
            code: "report_target_not_found",
            message: "There is nothing with that id to report.".into(),
        }),
    }
}
