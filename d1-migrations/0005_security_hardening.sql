-- Security hardening (issue 12): the Midtrans audit log keeps only an excerpt of refused notifications and is
-- bounded; the login lockout remembers which clients signed in before.

-- Refused notifications are whatever anyone posted: keep the body's hash and size plus a short prefix in `body`
-- (functions/src/donations.rs decides how much). NULL on rows written before this migration.
ALTER TABLE midtrans_notifications ADD COLUMN body_sha256 TEXT;
ALTER TABLE midtrans_notifications ADD COLUMN body_bytes INTEGER;
-- Rows refused before this migration kept whole bodies: cut them to the same prefix.
UPDATE midtrans_notifications SET body = substr(body, 1, 256) WHERE answer_status >= 400 AND length(body) > 256;
-- The per-minute cap on refused rows counts through this index, and the cron's retention deletes through it. A
-- query must say `answer_status >= 400` for SQLite to pick it.
CREATE INDEX midtrans_notifications_refused ON midtrans_notifications(received_at) WHERE answer_status >= 400;

-- Clients (IP, IPv6 by /64) that signed in to an account successfully. Their failed attempts are counted apart
-- from strangers', so strangers' failures cannot lock them out. The cron forgets entries unused for 30 days.
CREATE TABLE login_known_clients (
    -- lower-case username, as the lockout counts it
    username   TEXT NOT NULL,
    client     TEXT NOT NULL,
    last_ok_at INTEGER NOT NULL,  -- unix seconds
    PRIMARY KEY (username, client)
) WITHOUT ROWID;
CREATE INDEX login_known_clients_by_age ON login_known_clients(last_ok_at);

-- Which chat rooms each login opened a socket in, so revoking a login (logout, refresh-token reuse) can ask exactly
-- those rooms to close its sockets. Rows go with the revocation; the cron forgets logins unseen for 30 days.
CREATE TABLE login_chat_rooms (
    login_id   TEXT NOT NULL,
    stream_id  TEXT NOT NULL,
    seen_at    INTEGER NOT NULL,  -- unix seconds of the last socket opened
    PRIMARY KEY (login_id, stream_id)
) WITHOUT ROWID;
CREATE INDEX login_chat_rooms_by_age ON login_chat_rooms(seen_at);
