-- Accounts, logins (refresh-token families) and the counters behind login/registration rate limits.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    -- NOCASE: "Alice" and "alice" are the same account name.
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    email         TEXT,
    -- Self-describing: "pbkdf2-sha256$<iterations>$<salt>$<hash>", so the scheme can be upgraded on login.
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

-- One row per login. Replaying a used refresh token revokes the whole family (every token of that login).
CREATE TABLE login_families (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- Refresh tokens are stored only as SHA-256 hashes; each is single-use (used_at set on rotation).
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL REFERENCES login_families(id),
    expires_at  INTEGER NOT NULL,  -- unix seconds
    used_at     INTEGER
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens(family_id);

-- Fixed-window counters: key is e.g. "login-ip:203.0.113.9", window_start is unix seconds.
CREATE TABLE rate_limits (
    key           TEXT NOT NULL,
    window_start  INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
) WITHOUT ROWID;
