-- Simulcast outputs: per stream, up to 5 targets (another platform's RTMP or RTMPS ingest) the origin re-sends the
-- live stream to (core/src/output.rs holds the rules; functions/src/outputs.rs the routes). The target's stream key
-- is stored only encrypted (AES-256-GCM under the Worker secret OUTPUT_KEY_SECRET, bound to the row's id) and shown
-- only as its last four characters. `status` is what the origin's supervisor last reported.

CREATE TABLE stream_outputs (
    id          TEXT PRIMARY KEY,
    stream_id   TEXT NOT NULL REFERENCES streams(id),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 60),
    url         TEXT NOT NULL CHECK (length(url) BETWEEN 8 AND 512),
    -- 'v1.' then base64url of the 12-byte nonce and the ciphertext with its tag.
    key_sealed  TEXT NOT NULL,
    key_hint    TEXT NOT NULL CHECK (length(key_hint) = 4),
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    status      TEXT NOT NULL DEFAULT 'idle' CHECK (status IN ('idle', 'connecting', 'live', 'error')),
    message     TEXT NOT NULL DEFAULT '' CHECK (length(message) <= 200),
    -- RFC 3339: when `status` last changed.
    since       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX stream_outputs_by_stream ON stream_outputs(stream_id, created_at, id);
