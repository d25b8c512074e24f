-- Broadcasts: one row per accepted publish (each on_publish starts one), holding the HLS that the origin uploaded to
-- R2 under hls/<stream id>/<broadcast id>/. A broadcast is live until on_publish_done or the stale sweep ends it,
-- then it is a past broadcast, watchable as video on demand until the owner deletes it or the retention (cron)
-- removes it. See core/src/hls.rs for the file rules and playlists.

CREATE TABLE broadcasts (
    id              TEXT PRIMARY KEY,
    stream_id       TEXT NOT NULL REFERENCES streams(id),
    started_at      TEXT NOT NULL,
    -- RFC 3339 for the API, and unix seconds for the upload grace window and the retention sweep.
    ended_at        TEXT,
    ended_unix      INTEGER,
    -- Kept by the trigger below from hls_segments, so listings never count segments.
    segment_count   INTEGER NOT NULL DEFAULT 0,
    duration_ms     INTEGER NOT NULL DEFAULT 0,
    -- The longest segment so far: the playlists' target duration must never shrink between reloads.
    max_segment_ms  INTEGER NOT NULL DEFAULT 0,
    -- Unix seconds of the newest thumbnail (NULL: none yet); also the thumbnail URL's cache buster.
    thumbnail_at    INTEGER,
    -- Set by the owner's delete or the retention sweep: the broadcast is gone for everyone at once; the cron then
    -- deletes its R2 objects and finally the row (and, by cascade, its segment rows).
    deleted_at      TEXT
);
-- Past broadcasts of a stream, newest first (keyset pagination over started_at, id).
CREATE INDEX broadcasts_by_stream ON broadcasts(stream_id, started_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX broadcasts_by_end ON broadcasts(ended_unix) WHERE deleted_at IS NULL AND ended_unix IS NOT NULL;
CREATE INDEX broadcasts_deleted ON broadcasts(deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE hls_segments (
    broadcast_id   TEXT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    -- The HLS media sequence number the origin gave the segment; also its object name (<seq>.ts).
    seq            INTEGER NOT NULL CHECK (seq >= 0),
    duration_ms    INTEGER NOT NULL CHECK (duration_ms > 0 AND duration_ms <= 60000),
    bytes          INTEGER NOT NULL CHECK (bytes >= 0),
    -- 1: the playlist marks #EXT-X-DISCONTINUITY before this segment (the origin said so, or the segment before it
    -- never arrived). disc_seq counts discontinuities up to and including this segment.
    discontinuity  INTEGER NOT NULL DEFAULT 0 CHECK (discontinuity IN (0, 1)),
    disc_seq       INTEGER NOT NULL DEFAULT 0,
    uploaded_at    INTEGER NOT NULL,
    PRIMARY KEY (broadcast_id, seq)
) WITHOUT ROWID;

CREATE TRIGGER hls_segments_count AFTER INSERT ON hls_segments BEGIN
    UPDATE broadcasts SET segment_count = segment_count + 1,
                          duration_ms = duration_ms + NEW.duration_ms,
                          max_segment_ms = MAX(max_segment_ms, NEW.duration_ms)
    WHERE id = NEW.broadcast_id;
END;

-- The stream's current (while live) or most recent broadcast: where `live.m3u8` points and whose thumbnail the
-- stream's cards show.
ALTER TABLE streams ADD COLUMN broadcast_id TEXT;
-- The broadcast whose thumbnail the stream shows (the newest one that has one) and when it was taken.
ALTER TABLE streams ADD COLUMN thumbnail_broadcast_id TEXT;
ALTER TABLE streams ADD COLUMN thumbnail_at INTEGER;
