-- Renditions (issue 22): the origin makes `source` (the ingest remuxed) plus transcoded H.264/AAC renditions
-- (`480p`, `360p`, ...) of every publish, each uploaded as its own HLS segment sequence; the Worker renders one
-- media playlist per rendition and a master (multivariant) playlist over them. Segment k of every rendition covers
-- the same presentation time (the origin cuts them all at the same keyframes). See core/src/hls.rs.

-- Segments gain their rendition (the primary key with it) and the wall-clock time their first frame reached the
-- origin (unix ms; NULL when the origin did not say), written as #EXT-X-PROGRAM-DATE-TIME. SQLite cannot change a
-- primary key in place: the table is rebuilt, every existing segment being its broadcast's `source`.
CREATE TABLE hls_segments_v2 (
    broadcast_id   TEXT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    -- `source` or a ladder name (core/src/hls.rs `Rendition`); `source` objects keep their old R2 names
    -- (hls/<stream>/<broadcast>/<seq>.ts), the others are under hls/<stream>/<broadcast>/<rendition>/.
    rendition      TEXT NOT NULL DEFAULT 'source' CHECK (length(rendition) BETWEEN 1 AND 16),
    seq            INTEGER NOT NULL CHECK (seq >= 0),
    duration_ms    INTEGER NOT NULL CHECK (duration_ms > 0 AND duration_ms <= 60000),
    bytes          INTEGER NOT NULL CHECK (bytes >= 0),
    discontinuity  INTEGER NOT NULL DEFAULT 0 CHECK (discontinuity IN (0, 1)),
    -- Discontinuities of this rendition up to and including this segment.
    disc_seq       INTEGER NOT NULL DEFAULT 0,
    uploaded_at    INTEGER NOT NULL,
    pdt_ms         INTEGER,
    PRIMARY KEY (broadcast_id, rendition, seq)
) WITHOUT ROWID;
INSERT INTO hls_segments_v2 (broadcast_id, rendition, seq, duration_ms, bytes, discontinuity, disc_seq, uploaded_at)
    SELECT broadcast_id, 'source', seq, duration_ms, bytes, discontinuity, disc_seq, uploaded_at FROM hls_segments;
-- Drops the old table's counting trigger with it; the new one is below.
DROP TABLE hls_segments;
ALTER TABLE hls_segments_v2 RENAME TO hls_segments;

-- One row per rendition of a broadcast: what the master playlist says of it. The media fields come from the origin
-- (ffprobe of the rendition's segments, sent with each upload); the totals are kept by the trigger below, so the
-- master playlist's BANDWIDTH is measured from the segments actually uploaded: the peak segment bitrate
-- (bytes * 8 / duration), and AVERAGE-BANDWIDTH from the totals.
CREATE TABLE hls_renditions (
    broadcast_id     TEXT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 16),
    width            INTEGER CHECK (width IS NULL OR width BETWEEN 1 AND 8192),
    height           INTEGER CHECK (height IS NULL OR height BETWEEN 1 AND 8192),
    frame_rate_milli INTEGER CHECK (frame_rate_milli IS NULL OR frame_rate_milli BETWEEN 1 AND 1000000),
    codecs           TEXT CHECK (codecs IS NULL OR length(codecs) BETWEEN 1 AND 64),
    segment_count    INTEGER NOT NULL DEFAULT 0,
    bytes            INTEGER NOT NULL DEFAULT 0,
    duration_ms      INTEGER NOT NULL DEFAULT 0,
    peak_bps         INTEGER NOT NULL DEFAULT 0,
    max_segment_ms   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (broadcast_id, name)
) WITHOUT ROWID;
INSERT INTO hls_renditions (broadcast_id, name, segment_count, bytes, duration_ms, peak_bps, max_segment_ms)
    SELECT broadcast_id, 'source', COUNT(*), SUM(bytes), SUM(duration_ms), MAX(bytes * 8000 / duration_ms),
           MAX(duration_ms)
    FROM hls_segments GROUP BY broadcast_id;

-- The broadcast's own totals (listings, target duration) count its source; every rendition counts in its row.
CREATE TRIGGER hls_segments_count AFTER INSERT ON hls_segments BEGIN
    UPDATE broadcasts SET segment_count = segment_count + 1,
                          duration_ms = duration_ms + NEW.duration_ms,
                          max_segment_ms = MAX(max_segment_ms, NEW.duration_ms)
    WHERE id = NEW.broadcast_id AND NEW.rendition = 'source';
    INSERT OR IGNORE INTO hls_renditions (broadcast_id, name) VALUES (NEW.broadcast_id, NEW.rendition);
    UPDATE hls_renditions SET segment_count = segment_count + 1,
                              bytes = bytes + NEW.bytes,
                              duration_ms = duration_ms + NEW.duration_ms,
                              peak_bps = MAX(peak_bps, NEW.bytes * 8000 / NEW.duration_ms),
                              max_segment_ms = MAX(max_segment_ms, NEW.duration_ms)
    WHERE broadcast_id = NEW.broadcast_id AND name = NEW.rendition;
END;
