-- Self-service accounts (issue 26): a person sees their sign-ins by a coarse place, ends them, and can get back in
-- with a recovery code when the password is lost.

-- What the sign-in list shows of each login: when it was last used (set at sign-in and at every refresh), and a
-- coarse place captured then: the client's network (an IPv4 /24 or IPv6 /48, never a whole address) and its
-- browser family ("Firefox", never the User-Agent itself). NULL on logins started before this migration.
ALTER TABLE login_families ADD COLUMN last_used_at INTEGER;  -- unix seconds
ALTER TABLE login_families ADD COLUMN network TEXT;
ALTER TABLE login_families ADD COLUMN browser TEXT;
-- A person's logins: the list, "end all others", and a password change read through this.
CREATE INDEX login_families_by_user ON login_families(user_id, revoked_at);

-- Recovery codes, stored only as SHA-256 of the code; each works once (used_at). Generating a new set deletes the
-- old one.
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users(id),
    code_hash  TEXT NOT NULL,
    created_at INTEGER NOT NULL,  -- unix seconds
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
) WITHOUT ROWID;
