-- Streams and their search index. No stream key is stored: keys are derived from a server secret, the stream id
-- and key_generation (see core/src/stream_key.rs); rotating a key is key_generation + 1.

CREATE TABLE streams (
    id                 TEXT PRIMARY KEY,
    owner_id           TEXT NOT NULL REFERENCES users(id),
    title              TEXT NOT NULL,
    description        TEXT NOT NULL DEFAULT '',
    key_generation     INTEGER NOT NULL DEFAULT 0,
    status             TEXT NOT NULL DEFAULT 'offline' CHECK (status IN ('offline', 'live')),
    live_since         TEXT,
    -- unix seconds of the last on_publish/on_update; the cron sweep ends streams whose heartbeats stopped.
    last_heartbeat_at  INTEGER,
    -- Which nginx client holds the publish ("<addr>/<clientid>"): a second publisher is refused, and only the
    -- holder's on_publish_done ends the stream.
    publisher          TEXT,
    viewers            INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,
    -- Soft delete: donations keep pointing at the row, but the stream and its key are gone for everyone.
    deleted_at         TEXT
);
CREATE INDEX streams_by_owner ON streams(owner_id, created_at);
-- The public listing: live first, newest first, keyset-paginated over (is_live, created_at, id).
CREATE INDEX streams_listing ON streams((status = 'live') DESC, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX streams_live_heartbeat ON streams(last_heartbeat_at) WHERE status = 'live';

-- Full-text search over title and owner username (usernames never change, so copying it here is safe).
-- The rowid is the stream's rowid, so a match joins back with one lookup.
CREATE VIRTUAL TABLE streams_search USING fts5(title, username, tokenize = 'unicode61 remove_diacritics 2');

CREATE TRIGGER streams_search_insert AFTER INSERT ON streams BEGIN
    INSERT INTO streams_search(rowid, title, username)
    VALUES (NEW.rowid, NEW.title, (SELECT username FROM users WHERE id = NEW.owner_id));
END;

CREATE TRIGGER streams_search_update AFTER UPDATE OF title ON streams BEGIN
    UPDATE streams_search SET title = NEW.title WHERE rowid = NEW.rowid;
END;

CREATE TRIGGER streams_search_delete AFTER UPDATE OF deleted_at ON streams WHEN NEW.deleted_at IS NOT NULL BEGIN
    DELETE FROM streams_search WHERE rowid = NEW.rowid;
END;
