-- Clips (issue 25): a clip is up to 60 s of a broadcast, cut to segment boundaries, played as a VOD playlist over
-- the broadcast's own segments in R2: nothing is copied but a thumbnail. Its playlists are written once, when it is
-- made (a clip never changes), and the R2 objects it plays are listed in clip_objects, which keeps them alive: the
-- broadcast's purge (owner's delete, retention) leaves every object a clip holds, and deleting a clip deletes the
-- objects that no live broadcast and no other clip still holds. See functions/src/clips.rs and core/src/clip.rs.

CREATE TABLE clips (
    id               TEXT PRIMARY KEY,
    stream_id        TEXT NOT NULL REFERENCES streams(id),
    -- No foreign key: the clip outlives its broadcast's row (deleted by the purge).
    broadcast_id     TEXT NOT NULL,
    creator_id       TEXT NOT NULL REFERENCES users(id),
    title            TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 100),
    -- Where in the broadcast it starts (ms from the broadcast's first segment) and how long it plays.
    start_ms         INTEGER NOT NULL CHECK (start_ms >= 0),
    duration_ms      INTEGER NOT NULL CHECK (duration_ms > 0 AND duration_ms <= 120000),
    first_seq        INTEGER NOT NULL CHECK (first_seq >= 0),
    last_seq         INTEGER NOT NULL CHECK (last_seq >= first_seq),
    -- 1 when its thumbnail was copied to hls/<stream>/clips/<clip>/thumb.jpg.
    has_thumbnail    INTEGER NOT NULL DEFAULT 0 CHECK (has_thumbnail IN (0, 1)),
    created_at       TEXT NOT NULL
);
-- A stream's clips, newest first (keyset pagination over created_at, id).
CREATE INDEX clips_by_stream ON clips(stream_id, created_at DESC, id DESC);
CREATE INDEX clips_by_creator ON clips(creator_id);

-- The clip's playlists as served: `master` and one per rendition (`source`, `480p`, ...).
CREATE TABLE clip_playlists (
    clip_id  TEXT NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    name     TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 16),
    body     TEXT NOT NULL,
    PRIMARY KEY (clip_id, name)
) WITHOUT ROWID;

-- Every R2 object a clip plays (its segments in every rendition): kept while any clip lists it.
CREATE TABLE clip_objects (
    clip_id  TEXT NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    PRIMARY KEY (clip_id, key)
) WITHOUT ROWID;
CREATE INDEX clip_objects_by_key ON clip_objects(key);
