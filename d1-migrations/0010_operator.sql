-- People and their data, second part (issue 26): an account can be exported and deleted, and an operator can act on
-- abuse (end a stream and block its key, suspend a user, delete broadcasts and chat messages, close reports), every
-- act written to an audit table.

-- Who may use /api/admin/: 'operator', given only by `scripts/admin grant <username>` (a D1 statement), never by
-- an API. A suspended user (suspended_at set) cannot sign in, publish or chat; lifting it clears the column.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'operator'));
ALTER TABLE users ADD COLUMN suspended_at TEXT;

-- What stays of a deleted account where others' records need an author (core/src/account.rs DELETED_USER_ID): the
-- owner of its emptied streams, kept for the donations they received. Its name cannot be registered or signed in
-- with (usernames are [A-Za-z0-9_.-]) and its password hash matches nothing.
INSERT OR IGNORE INTO users (id, username, password_hash, created_at)
VALUES ('aaaaaaaaaaaaaaaa', '[deleted]', '!', '1970-01-01T00:00:00Z');

-- A deleted account's username cannot be registered again until `until` (unix seconds): stored as a keyed hash of
-- the lower-cased name (core/src/account.rs quarantine_key), never the name.
CREATE TABLE username_quarantine (
    name_key TEXT PRIMARY KEY,
    until    INTEGER NOT NULL
) WITHOUT ROWID;

-- The chat rooms a user opened a signed-in socket in (written with login_chat_rooms, but kept past the login):
-- where the export looks for their messages and where a deletion makes them "deleted user". Seeded from the rooms
-- the logins of the last 30 days remember.
CREATE TABLE user_chat_rooms (
    user_id   TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    PRIMARY KEY (user_id, stream_id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO user_chat_rooms (user_id, stream_id)
    SELECT f.user_id, r.stream_id FROM login_chat_rooms r JOIN login_families f ON f.id = r.login_id;

-- An operator ended the stream and blocked its key: the key of this generation is refused until the owner rotates
-- it (key_generation moves past it). NULL: not blocked.
ALTER TABLE streams ADD COLUMN blocked_key_generation INTEGER;

-- Reports by signed-in viewers. target_type: stream | broadcast | chat_message (| clip, once clips exist);
-- target_id is the stream or broadcast id, or "<stream id>/<message id>" for a chat message. An operator closes a
-- report with what they did (`resolution`).
CREATE TABLE reports (
    id           TEXT PRIMARY KEY,
    reporter_id  TEXT,
    target_type  TEXT NOT NULL CHECK (target_type IN ('stream', 'broadcast', 'chat_message', 'clip')),
    target_id    TEXT NOT NULL CHECK (length(target_id) BETWEEN 1 AND 64),
    reason       TEXT NOT NULL CHECK (reason IN ('spam', 'harassment', 'hate', 'violence', 'sexual', 'illegal', 'other')),
    created_at   TEXT NOT NULL,
    closed_at    TEXT,
    closed_by    TEXT,
    resolution   TEXT
);
CREATE INDEX reports_open ON reports(created_at, id) WHERE closed_at IS NULL;

-- Every operator act: who, what, on what, when, why. Append-only.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL,
    operator_id  TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT ''
);
