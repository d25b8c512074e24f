-- Donations through Midtrans Snap: the donations themselves, a raw audit log of every Midtrans notification, and
-- per-stream paid totals that triggers keep in step with the donations' status column. Timestamps are RFC 3339 UTC
-- text in one fixed format ("2026-11-25T15:01:00Z"), so comparing them as strings compares them as times.

CREATE TABLE donations (
    -- Our Midtrans order id ("sl-" + 16 base32 symbols); Midtrans allows [A-Za-z0-9-_~.], at most 50.
    order_id                 TEXT PRIMARY KEY CHECK (length(order_id) BETWEEN 1 AND 50),
    stream_id                TEXT NOT NULL REFERENCES streams(id),
    -- NULL for a guest. Signed-in donors are grouped by this on the leaderboard.
    donor_user_id            TEXT REFERENCES users(id) ON DELETE SET NULL,
    -- What the alert and the leaderboard show: the username at donation time, or the guest's chosen name.
    donor_name               TEXT NOT NULL CHECK (length(donor_name) BETWEEN 1 AND 32),
    message                  TEXT CHECK (message IS NULL OR length(message) <= 200),
    amount                   INTEGER NOT NULL CHECK (amount BETWEEN 1000 AND 100000000),
    currency                 TEXT NOT NULL DEFAULT 'IDR' CHECK (currency = 'IDR'),
    status                   TEXT NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'paid', 'challenge', 'failed', 'refunded')),
    -- Filled from notifications / status answers: Midtrans's own id and the method the payer chose.
    midtrans_transaction_id  TEXT,
    payment_type             TEXT,
    -- Why a donation failed, in our words ("snap_unavailable", "expire", "deny", "not_paid_in_time", ...).
    failure_reason           TEXT,
    snap_token               TEXT,
    redirect_url             TEXT,
    created_at               TEXT NOT NULL,
    updated_at               TEXT NOT NULL,
    paid_at                  TEXT,
    -- The status sweep's last question to the status API, so one stubborn order does not hog every run.
    last_checked_at          TEXT,
    -- The chat alert: 'none' until paid; the move into paid sets 'due' (trigger below, same statement as the
    -- credit); 'sent' once the chat room acknowledged it. The room dedupes by order id, so retrying a 'due' alert
    -- after an unclear failure shows it at most once.
    alert_state              TEXT NOT NULL DEFAULT 'none' CHECK (alert_state IN ('none', 'due', 'sent')),
    alert_attempts           INTEGER NOT NULL DEFAULT 0,
    alert_sent_at            TEXT
);

-- The owner's list: newest first, keyset-paginated over (created_at, order_id).
CREATE INDEX donations_by_stream ON donations(stream_id, created_at DESC, order_id DESC);
-- The status sweep: pending donations older than DONATION_RECONCILE_AFTER_SECONDS.
CREATE INDEX donations_pending_sweep ON donations(created_at) WHERE status = 'pending';
-- Chat alerts still owed, oldest payment first.
CREATE INDEX donations_alerts_due ON donations(paid_at) WHERE alert_state = 'due';
-- The leaderboard: sums paid donations per donor for one stream, reading only this index. A query must say
-- `status = 'paid'` for SQLite to pick it.
CREATE INDEX donations_leaderboard ON donations(stream_id, donor_user_id, donor_name, amount) WHERE status = 'paid';

-- Every notification as received (raw body), and the answer we gave. No foreign key on order_id: forged and
-- unknown orders are exactly what an audit wants to see.
CREATE TABLE midtrans_notifications (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at         TEXT NOT NULL,
    -- 'webhook' for Midtrans's POST, 'status_api' for an answer the status sweep fetched.
    source              TEXT NOT NULL DEFAULT 'webhook' CHECK (source IN ('webhook', 'status_api')),
    -- As claimed by the body (NULL when the body was unreadable).
    order_id            TEXT,
    transaction_status  TEXT,
    body                TEXT NOT NULL,
    -- 1 signature checked out, 0 it did not, NULL not checked (malformed body, status answer).
    signature_ok        INTEGER,
    answer_status       INTEGER NOT NULL,
    -- processed | duplicate | stale | malformed | invalid_signature | not_found | amount_mismatch | ...
    answer_code         TEXT NOT NULL
);
CREATE INDEX midtrans_notifications_by_order ON midtrans_notifications(order_id, id);

-- Paid totals per stream. Written only by the triggers below, inside the statement that changes the status, so
-- a credit can never be lost or doubled relative to the donations.
CREATE TABLE stream_donation_totals (
    stream_id   TEXT PRIMARY KEY REFERENCES streams(id),
    total_paid  INTEGER NOT NULL DEFAULT 0 CHECK (total_paid >= 0),
    paid_count  INTEGER NOT NULL DEFAULT 0 CHECK (paid_count >= 0)
);

-- Donations are born pending (or failed, when Snap refused at checkout): a row inserted as paid would skip the
-- credit trigger.
CREATE TRIGGER donations_born_unpaid BEFORE INSERT ON donations
WHEN NEW.status NOT IN ('pending', 'failed') OR NEW.alert_state <> 'none' BEGIN
    SELECT RAISE(ABORT, 'donations start pending or failed, with no alert');
END;

-- The state machine again, as a last line of defence: paid only ever moves to refunded; failed and refunded are
-- terminal. (core/src/donation.rs decides; this refuses what it would never decide.)
CREATE TRIGGER donations_status_guard BEFORE UPDATE OF status ON donations
WHEN NEW.status <> OLD.status AND (
    OLD.status IN ('failed', 'refunded')
    OR (OLD.status = 'paid' AND NEW.status <> 'refunded')
    OR (OLD.status IN ('pending', 'challenge') AND NEW.status = 'refunded')
) BEGIN
    SELECT RAISE(ABORT, 'illegal donation status change');
END;

-- The one credit: pending/challenge -> paid. Also marks the chat alert as owed, in the same statement.
CREATE TRIGGER donations_credit_on_paid AFTER UPDATE OF status ON donations
WHEN OLD.status IN ('pending', 'challenge') AND NEW.status = 'paid' BEGIN
    INSERT OR IGNORE INTO stream_donation_totals(stream_id) VALUES (NEW.stream_id);
    UPDATE stream_donation_totals
       SET total_paid = total_paid + NEW.amount, paid_count = paid_count + 1
     WHERE stream_id = NEW.stream_id;
    UPDATE donations SET alert_state = 'due' WHERE order_id = NEW.order_id AND alert_state = 'none';
END;

-- The one debit: a refund or chargeback of a paid donation.
CREATE TRIGGER donations_debit_on_refund AFTER UPDATE OF status ON donations
WHEN OLD.status = 'paid' AND NEW.status = 'refunded' BEGIN
    UPDATE stream_donation_totals
       SET total_paid = total_paid - NEW.amount, paid_count = paid_count - 1
     WHERE stream_id = NEW.stream_id;
END;
