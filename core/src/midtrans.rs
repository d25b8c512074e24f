//! Midtrans Snap rules, pure: the notification signature, lenient notification and status parsing,
//! `gross_amount` reading, what a (transaction_status, fraud_status) pair means for us, and the Snap create
//! request and response. The worker does the HTTP; everything it has to believe or refuse is decided here.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

use crate::donation::{OrderId, Outcome, Rupiah};
use crate::error::ApiError;
use crate::secret::secrets_equal;

/// How long a Snap checkout stays payable. Past this (plus the sweep's grace) a donation whose payer never picked a
/// method cannot succeed any more, and the sweep marks it failed instead of leaving it pending forever.
pub const SNAP_EXPIRY_MINUTES: i64 = 60;

/// Midtrans caps `item_details[].name` at 50 characters.
const ITEM_NAME_MAX: usize = 50;

/// What the audit log keeps of a notification's body.
///
/// A refused notification (bad JSON, forged signature, unknown order, wrong amount) is whatever anyone chose to post:
/// the log keeps its SHA-256, its size and a short prefix, enough to recognise and group it, never the whole body
/// (a loop of 64 KiB junk posts would otherwise fill D1). A notification we accepted came from Midtrans and is kept
/// whole up to `ACCEPTED_BODY_MAX_BYTES` (Midtrans's are 1-2 KB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditBody {
    /// Hex SHA-256 of the whole body as received.
    pub sha256: String,
    /// Size of the whole body in bytes.
    pub bytes: usize,
    /// The part kept: lossy UTF-8, cut on a character boundary.
    pub kept: String,
}

/// Bytes of a refused notification's body the audit log keeps.
pub const REFUSED_BODY_PREFIX_BYTES: usize = 256;
/// Bytes of an accepted notification's body the audit log keeps.
pub const ACCEPTED_BODY_MAX_BYTES: usize = 8 * 1024;
/// Characters of a claimed order id or transaction status the audit log (and the worker's log) keeps.
pub const AUDIT_FIELD_MAX_CHARS: usize = 64;

impl AuditBody {
    /// The audit record of `body`, keeping at most `keep` bytes of it.
    pub fn of(body: &[u8], keep: usize) -> AuditBody {
        let text = String::from_utf8_lossy(&body[..body.len().min(keep)]);
        AuditBody {
            sha256: hex::encode(sha2::Sha256::digest(body)),
            bytes: body.len(),
            kept: cut_at_boundary(&text, keep).to_string(),
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut_at_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A claimed field (order id, transaction status) as the audit log keeps it: at most `AUDIT_FIELD_MAX_CHARS`.
pub fn audit_field(s: &str) -> &str {
    cut_at_boundary(s, AUDIT_FIELD_MAX_CHARS)
}

/// `Authorization` header value for Snap and the status API: HTTP Basic with the server key as the user name and an
/// empty password.
pub fn basic_auth(server_key: &str) -> String {
    format!("Basic {}", B64.encode(format!("{server_key}:")))
}

/// Hex SHA-512 of `order_id + status_code + gross_amount + server_key`, Midtrans's notification signature.
/// The inputs are the raw strings as they appear in the notification ("10000.00", not 10000).
pub fn signature(order_id: &str, status_code: &str, gross_amount: &str, server_key: &str) -> String {
    let mut h = Sha512::new();
    h.update(order_id.as_bytes());
    h.update(status_code.as_bytes());
    h.update(gross_amount.as_bytes());
    h.update(server_key.as_bytes());
    hex::encode(h.finalize())
}

/// A notification (or a status API answer): every field Midtrans sends is a string; fields we do not read are
/// ignored, because Midtrans adds new ones without notice (and some, like `va_numbers`, are arrays).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub order_id: String,
    pub status_code: String,
    pub gross_amount: String,
    /// Required in notifications; present in status answers too. Missing counts as a wrong signature.
    #[serde(default)]
    pub signature_key: String,
    pub transaction_status: String,
    #[serde(default)]
    pub fraud_status: Option<String>,
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub payment_type: Option<String>,
    #[serde(default)]
    pub transaction_time: Option<String>,
    #[serde(default)]
    pub settlement_time: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub status_message: Option<String>,
}

impl Notification {
    /// Reads a notification body. Anything that is not a JSON object with the five fields the rules need, each a
    /// string, is malformed (400): Midtrans never sends that, so it is not worth a retry.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let n: Notification = serde_json::from_slice(body)
            .map_err(|e| ApiError::Malformed(format!("not a Midtrans notification ({e})")))?;
        if n.order_id.is_empty() || n.status_code.is_empty() || n.transaction_status.is_empty() {
            return Err(ApiError::Malformed(
                "order_id, status_code and transaction_status must not be empty".into(),
            ));
        }
        Ok(n)
    }

    /// True when `signature_key` is the one Midtrans would compute with our server key. Constant-time: the
    /// comparison must not tell a forger how many leading characters of a guess were right.
    pub fn signature_is_valid(&self, server_key: &str) -> bool {
        let expected = signature(&self.order_id, &self.status_code, &self.gross_amount, server_key);
        secrets_equal(expected.as_bytes(), self.signature_key.as_bytes())
    }

    /// 401 unless the signature checks out.
    pub fn verify(&self, server_key: &str) -> Result<(), ApiError> {
        if self.signature_is_valid(server_key) {
            Ok(())
        } else {
            Err(ApiError::Unauthenticated {
                code: "invalid_signature",
                message: "signature_key does not match this notification.".into(),
            })
        }
    }

    /// 422 `amount_mismatch` unless `gross_amount` is exactly what we charged.
    pub fn check_amount(&self, charged: Rupiah) -> Result<(), ApiError> {
        match parse_gross_amount(&self.gross_amount) {
            Ok(amount) if amount == charged.get() => Ok(()),
            _ => Err(ApiError::Unprocessable {
                code: "amount_mismatch",
                message: "gross_amount differs from the amount of this donation.".into(),
            }),
        }
    }

    /// What this notification means for the donation.
    pub fn outcome(&self) -> Outcome {
        outcome(
            &self.status_code,
            &self.transaction_status,
            self.fraud_status.as_deref(),
        )
    }
}

/// Reads Midtrans's `gross_amount` ("10000.00", or "10000") as whole rupiah. Rupiah has no minor unit, so any
/// fraction other than zero, a sign, spaces or anything else is refused.
pub fn parse_gross_amount(s: &str) -> Result<u64, String> {
    let whole = match s.split_once('.') {
        None => s,
        Some((whole, "00" | "0")) => whole,
        Some(_) => return Err(format!("{s:?} is not a whole number of rupiah")),
    };
    if whole.is_empty() || whole.len() > 15 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not an amount"));
    }
    whole.parse::<u64>().map_err(|_| format!("{s:?} is not an amount"))
}

/// Formats whole rupiah the way Midtrans writes `gross_amount` in notifications.
pub fn format_gross_amount(amount: u64) -> String {
    format!("{amount}.00")
}

/// Maps Midtrans's status fields to an outcome. `status_code` matters only for success: the contract counts a
/// payment only when Midtrans itself says "200".
pub fn outcome(status_code: &str, transaction_status: &str, fraud_status: Option<&str>) -> Outcome {
    match (transaction_status, fraud_status) {
        ("settlement", None | Some("accept")) if status_code == "200" => Outcome::Paid,
        ("capture", Some("accept")) if status_code == "200" => Outcome::Paid,
        ("capture", Some("challenge")) => Outcome::Challenge,
        ("capture" | "settlement", Some("deny")) => Outcome::Failed,
        ("pending" | "authorize", _) => Outcome::Pending,
        ("deny" | "cancel" | "expire" | "failure", _) => Outcome::Failed,
        ("refund" | "partial_refund" | "chargeback" | "partial_chargeback", _) => Outcome::Reversed,
        _ => Outcome::Ignored,
    }
}

/// What the status API said about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusAnswer {
    /// Midtrans knows no transaction yet: for a Snap order, the payer has not picked a payment method.
    NotFound,
    Found(Box<Notification>),
}

/// Reads `GET /v2/{order_id}/status`. Midtrans answers 404 (HTTP, and `status_code` "404" in the body) for an
/// order it has no transaction for; any other failure is an error the sweep retries on its next run.
pub fn parse_status_answer(http_status: u16, body: &[u8]) -> Result<StatusAnswer, String> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        status_code: Option<String>,
    }
    let code = serde_json::from_slice::<Envelope>(body)
        .ok()
        .and_then(|e| e.status_code);
    if http_status == 404 || code.as_deref() == Some("404") {
        return Ok(StatusAnswer::NotFound);
    }
    if !(200..300).contains(&http_status) {
        return Err(format!("status API answered HTTP {http_status}"));
    }
    serde_json::from_slice::<Notification>(body)
        .map(|n| StatusAnswer::Found(Box::new(n)))
        .map_err(|e| format!("status API answer is not a transaction ({e})"))
}

/// Everything a Snap checkout needs from us.
#[derive(Debug, Clone)]
pub struct SnapCheckout<'a> {
    pub order_id: &'a OrderId,
    pub amount: Rupiah,
    /// Shown to the payer as the item bought, e.g. the stream's title; cut to Midtrans's 50 characters.
    pub item_name: &'a str,
    /// The donor's display name, as `customer_details.first_name`.
    pub donor_name: &'a str,
    /// Where Midtrans sends the payer afterwards: our donation result page.
    pub finish_url: &'a str,
    pub stream_id: &'a str,
}

/// The JSON body of `POST /snap/v1/transactions`: one item whose price is the whole amount (Midtrans refuses a body
/// whose item sum differs from `gross_amount`).
pub fn snap_create_body(c: &SnapCheckout<'_>) -> Value {
    let amount = c.amount.get();
    json!({
        "transaction_details": { "order_id": c.order_id.as_str(), "gross_amount": amount },
        "item_details": [{
            "id": "donation",
            "price": amount,
            "quantity": 1,
            "name": truncate_chars(&format!("Donation: {}", c.item_name), ITEM_NAME_MAX),
        }],
        "customer_details": { "first_name": c.donor_name },
        "callbacks": { "finish": c.finish_url },
        "expiry": { "unit": "minutes", "duration": SNAP_EXPIRY_MINUTES },
        "custom_field1": c.stream_id,
    })
}

fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A created Snap checkout.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SnapSession {
    pub token: String,
    pub redirect_url: String,
}

/// Why Snap did not give us a checkout. Every case is a 502 to our caller; the variants say what to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapError {
    /// 401: our server key is wrong for this environment (sandbox key on production or the reverse).
    Unauthorized,
    /// 4xx with Midtrans's `error_messages`: Midtrans refused our request.
    Rejected { status: u16, messages: Vec<String> },
    /// 5xx, or no answer at all: Midtrans is down; try again later.
    Unavailable { status: Option<u16> },
    /// 2xx whose body has no token and redirect URL.
    BadAnswer(String),
}

impl std::fmt::Display for SnapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapError::Unauthorized => write!(f, "Snap refused our server key (401)"),
            SnapError::Rejected { status, messages } => {
                write!(f, "Snap refused the request ({status}): {}", messages.join("; "))
            }
            SnapError::Unavailable { status: Some(s) } => write!(f, "Snap is unavailable (HTTP {s})"),
            SnapError::Unavailable { status: None } => write!(f, "Snap could not be reached"),
            SnapError::BadAnswer(why) => write!(f, "Snap answered something unreadable: {why}"),
        }
    }
}

impl SnapError {
    /// What our caller sees: always 502 `payment_gateway_unavailable`, never Midtrans's own words.
    pub fn to_api_error(&self) -> ApiError {
        ApiError::Upstream {
            code: "payment_gateway_unavailable",
            message: "The payment provider could not start this payment. Please try again later.".into(),
        }
    }
}

/// Reads Snap's answer to a create request.
pub fn parse_snap_create_answer(http_status: u16, body: &[u8]) -> Result<SnapSession, SnapError> {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        error_messages: Vec<String>,
    }
    match http_status {
        200..=299 => {
            let s: SnapSession = serde_json::from_slice(body).map_err(|e| SnapError::BadAnswer(e.to_string()))?;
            if s.token.is_empty() || !(s.redirect_url.starts_with("https://") || s.redirect_url.starts_with("http://"))
            {
                return Err(SnapError::BadAnswer("empty token or redirect_url".into()));
            }
            Ok(s)
        }
        401 => Err(SnapError::Unauthorized),
        400..=499 => Err(SnapError::Rejected {
            status: http_status,
            messages: serde_json::from_slice::<Errors>(body)
                .map(|e| e.error_messages)
                .unwrap_or_default(),
        }),
        s => Err(SnapError::Unavailable { status: Some(s) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_body_is_kept_as_hash_size_and_a_short_prefix() {
        let body = format!("{{\"x\":\"{}\"}}", "é".repeat(40_000));
        let a = AuditBody::of(body.as_bytes(), REFUSED_BODY_PREFIX_BYTES);
        assert_eq!(a.bytes, body.len());
        assert_eq!(a.sha256, hex::encode(sha2::Sha256::digest(body.as_bytes())));
        assert!(a.kept.len() <= REFUSED_BODY_PREFIX_BYTES && a.kept.starts_with("{\"x\":\"é"));
        assert!(!a.kept.contains('\u{fffd}'), "cut on a character boundary: {}", a.kept);
        assert_eq!(AuditBody::of(b"short", 256).kept, "short");
        assert_eq!(audit_field(&"o".repeat(9000)).len(), AUDIT_FIELD_MAX_CHARS);
    }

    /// Midtrans's own example ("Receiving notifications": order 1111, status 200, 100000.00, the documented dummy
    /// server key). The page prints only the inputs; this digest was checked with coreutils `sha512sum` and matches
    /// the one in public client libraries' tests (e.g. omnipay-midtrans).
    const DOC_KEY: &str = "askvnoibnosifnboseofinbofinfgbiufglnbfg";
    const DOC_SIGNATURE: &str = "edc076b21793ebe3e17926350f5b8ae67d902fe657b3d0aa31b932d5c127e2375d308a2bc94f3265\
                                 ac2d80a1f181a79b997ac178a236fcff35af263fc4d4c231";

    fn notification(order_id: &str, status_code: &str, gross_amount: &str, key: &str) -> Notification {
        Notification {
            order_id: order_id.into(),
            status_code: status_code.into(),
            gross_amount: gross_amount.into(),
            signature_key: signature(order_id, status_code, gross_amount, key),
            transaction_status: "settlement".into(),
            fraud_status: None,
            transaction_id: None,
            payment_type: None,
            transaction_time: None,
            settlement_time: None,
            currency: None,
            status_message: None,
        }
    }

    #[test]
    fn the_signature_matches_midtrans_documented_example() {
        assert_eq!(signature("1111", "200", "100000.00", DOC_KEY), DOC_SIGNATURE);
    }

    #[test]
    fn the_signature_matches_a_sandbox_style_vector_without_decimals() {
        // Inputs as in public Midtrans sandbox scripts; digest from `printf ... | sha512sum`.
        assert_eq!(
            signature("ORDER-123456", "200", "10000", "SB-Mid-server-xxxxxxxxxxxxxxxxxx"),
            "8d4bc63ef1b714c5aac25b173008b9b594698f1936bb1bc420cf96fbcf9ef74b9ece254c7b8354d1bd55e8c977c25d39995df\
             85787372640db01566898fbc2cb"
        );
    }

    #[test]
    fn a_notification_signed_with_our_key_verifies() {
        let n = notification("sl-abc", "200", "25000.00", "dev-only-midtrans-server-key");
        assert!(n.signature_is_valid("dev-only-midtrans-server-key"));
        assert!(n.verify("dev-only-midtrans-server-key").is_ok());
    }

    #[test]
    fn a_signature_made_with_another_key_is_refused_with_401() {
        let n = notification("sl-abc", "200", "25000.00", "someone-elses-key");
        assert!(!n.signature_is_valid("dev-only-midtrans-server-key"));
        assert_eq!(n.verify("dev-only-midtrans-server-key").unwrap_err().status(), 401);
    }

    #[test]
    fn the_signature_covers_the_raw_amount_string_so_reformatting_it_breaks_the_signature() {
        let mut n = notification("1111", "200", "100000.00", DOC_KEY);
        n.gross_amount = "100000".into();
        assert!(!n.signature_is_valid(DOC_KEY));
    }

    #[test]
    fn changing_the_status_code_or_order_invalidates_the_signature() {
        let mut n = notification("1111", "201", "100000.00", DOC_KEY);
        n.status_code = "200".into();
        assert!(!n.signature_is_valid(DOC_KEY));
        let mut n = notification("1111", "200", "100000.00", DOC_KEY);
        n.order_id = "1112".into();
        assert!(!n.signature_is_valid(DOC_KEY));
    }

    #[test]
    fn uppercase_empty_or_truncated_signatures_are_refused() {
        let mut n = notification("1111", "200", "100000.00", DOC_KEY);
        for bad in [
            DOC_SIGNATURE.to_uppercase(),
            String::new(),
            DOC_SIGNATURE[..127].to_string(),
        ] {
            n.signature_key = bad;
            assert!(!n.signature_is_valid(DOC_KEY));
        }
    }

    #[test]
    fn a_real_shaped_notification_parses_and_ignores_unknown_fields() {
        let body = br#"{
            "va_numbers": [{"va_number": "9888719372310311", "bank": "bca"}],
            "transaction_time": "2026-11-25 22:01:02", "transaction_status": "settlement",
            "transaction_id": "57d5293c-e65f-4a29-95e4-5959c3fa335b", "status_message": "midtrans payment notification",
            "status_code": "200", "signature_key": "abc", "settlement_time": "2026-11-25 22:03:00",
            "payment_type": "bank_transfer", "order_id": "sl-abcdefghijkmnpqr", "merchant_id": "G141532850",
            "gross_amount": "10000.00", "currency": "IDR", "brand_new_field": "whatever", "expiry_time": "x"
        }"#;
        let n = Notification::parse(body).unwrap();
        assert_eq!(n.order_id, "sl-abcdefghijkmnpqr");
        assert_eq!(n.gross_amount, "10000.00");
        assert_eq!(n.fraud_status, None);
        assert_eq!(n.payment_type.as_deref(), Some("bank_transfer"));
        assert_eq!(n.outcome(), Outcome::Paid);
    }

    #[test]
    fn midtrans_php_capture_fixture_parses() {
        // The capture notification used in midtrans-php's own tests.
        let body = br#"{"status_code":"200","status_message":"Midtrans payment notification",
            "transaction_id":"826acc53-14e0-4ae7-95e2-845bf0311579","order_id":"2014040745",
            "payment_type":"credit_card","transaction_time":"2014-04-07 16:22:36",
            "transaction_status":"capture","fraud_status":"accept","masked_card":"411111-1111","gross_amount":"2700"}"#;
        let n = Notification::parse(body).unwrap();
        assert_eq!(n.outcome(), Outcome::Paid);
        assert_eq!(parse_gross_amount(&n.gross_amount), Ok(2700));
        assert_eq!(
            n.signature_key, "",
            "a missing signature reads as empty and never verifies"
        );
        assert!(!n.signature_is_valid("dummy"));
    }

    #[test]
    fn bodies_that_are_not_notifications_are_malformed() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "empty body"),
            (b"not json", "not JSON"),
            (b"[]", "an array"),
            (
                br#"{"order_id":"a","status_code":"200","transaction_status":"settlement"}"#,
                "no gross_amount",
            ),
            (
                br#"{"order_id":"a","status_code":200,"gross_amount":"1.00","transaction_status":"settlement"}"#,
                "a number where Midtrans sends a string",
            ),
            (
                br#"{"order_id":"","status_code":"200","gross_amount":"1.00","transaction_status":"settlement"}"#,
                "an empty order id",
            ),
        ];
        for (body, why) in cases {
            let err = Notification::parse(body).expect_err(why);
            assert_eq!(err.status(), 400, "{why}");
        }
    }

    #[test]
    fn gross_amounts_are_whole_rupiah() {
        assert_eq!(parse_gross_amount("10000.00"), Ok(10000));
        assert_eq!(parse_gross_amount("10000"), Ok(10000));
        assert_eq!(parse_gross_amount("10000.0"), Ok(10000));
        assert_eq!(parse_gross_amount("100000000.00"), Ok(100_000_000));
    }

    #[test]
    fn fractions_signs_and_garbage_are_not_amounts() {
        for bad in [
            "10000.50",
            "10000.01",
            "10000.",
            ".00",
            "",
            "-10000.00",
            "+10000",
            "1e4",
            " 10000",
            "10 000",
            "10,000.00",
            "0x10",
            "10000.000",
            "abc",
            "99999999999999999999",
        ] {
            assert!(parse_gross_amount(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn amounts_format_the_way_midtrans_writes_them() {
        assert_eq!(format_gross_amount(10000), "10000.00");
    }

    #[test]
    fn the_amount_must_equal_the_charge() {
        let charged = Rupiah::parse(25_000).unwrap();
        let n = notification("a", "200", "25000.00", "k");
        assert!(n.check_amount(charged).is_ok());
        for other in ["25001.00", "2500.00", "25000.50", "garbage"] {
            let n = notification("a", "200", other, "k");
            let err = n.check_amount(charged).unwrap_err();
            assert_eq!(err.status(), 422);
            assert!(err.body().contains("amount_mismatch"));
        }
    }

    #[test]
    fn success_needs_settlement_or_an_accepted_capture_with_status_200() {
        assert_eq!(outcome("200", "settlement", None), Outcome::Paid);
        assert_eq!(outcome("200", "settlement", Some("accept")), Outcome::Paid);
        assert_eq!(outcome("200", "capture", Some("accept")), Outcome::Paid);
        assert_eq!(outcome("201", "settlement", None), Outcome::Ignored);
        assert_eq!(outcome("201", "capture", Some("accept")), Outcome::Ignored);
        assert_eq!(outcome("200", "capture", None), Outcome::Ignored);
    }

    #[test]
    fn every_midtrans_status_maps_to_an_outcome() {
        let table = [
            ("201", "capture", Some("challenge"), Outcome::Challenge),
            ("202", "capture", Some("deny"), Outcome::Failed),
            ("201", "pending", None, Outcome::Pending),
            ("201", "authorize", None, Outcome::Pending),
            ("202", "deny", None, Outcome::Failed),
            ("202", "deny", Some("deny"), Outcome::Failed),
            ("202", "cancel", None, Outcome::Failed),
            ("202", "expire", None, Outcome::Failed),
            ("202", "failure", None, Outcome::Failed),
            ("200", "refund", None, Outcome::Reversed),
            ("200", "partial_refund", None, Outcome::Reversed),
            ("200", "chargeback", None, Outcome::Reversed),
            ("200", "partial_chargeback", None, Outcome::Reversed),
            ("200", "something_new", None, Outcome::Ignored),
            ("200", "SETTLEMENT", None, Outcome::Ignored),
        ];
        for (code, status, fraud, expected) in table {
            assert_eq!(outcome(code, status, fraud), expected, "{code} {status} {fraud:?}");
        }
    }

    #[test]
    fn basic_auth_is_the_server_key_with_an_empty_password() {
        // base64("SB-Mid-server-abc:")
        assert_eq!(basic_auth("SB-Mid-server-abc"), "Basic U0ItTWlkLXNlcnZlci1hYmM6");
    }

    #[test]
    fn the_snap_body_charges_one_item_worth_the_whole_amount() {
        let order_id = OrderId::parse("sl-aaaaaaaaaaaaaaaa").unwrap();
        let title = "A very long stream title that goes on and on past fifty characters";
        let body = snap_create_body(&SnapCheckout {
            order_id: &order_id,
            amount: Rupiah::parse(50_000).unwrap(),
            item_name: title,
            donor_name: "Budi",
            finish_url: "http://127.0.0.1:8787/donations/sl-aaaaaaaaaaaaaaaa",
            stream_id: "bbbbbbbbbbbbbbbb",
        });
        assert_eq!(body["transaction_details"]["order_id"], "sl-aaaaaaaaaaaaaaaa");
        assert_eq!(body["transaction_details"]["gross_amount"], 50_000);
        assert_eq!(body["item_details"][0]["price"], 50_000);
        assert_eq!(body["item_details"][0]["quantity"], 1);
        assert_eq!(body["item_details"][0]["name"].as_str().unwrap().chars().count(), 50);
        assert_eq!(
            body["callbacks"]["finish"],
            "http://127.0.0.1:8787/donations/sl-aaaaaaaaaaaaaaaa"
        );
        assert_eq!(body["customer_details"]["first_name"], "Budi");
        assert_eq!(body["expiry"]["duration"], SNAP_EXPIRY_MINUTES);
    }

    #[test]
    fn a_201_with_token_and_url_is_a_session() {
        let s = parse_snap_create_answer(
            201,
            br#"{"token":"66e4fa55-fdac-4ef9-91b5-733b97d1b862","redirect_url":"https://app.sandbox.midtrans.com/snap/v4/redirection/66e4fa55-fdac-4ef9-91b5-733b97d1b862"}"#,
        )
        .unwrap();
        assert_eq!(s.token, "66e4fa55-fdac-4ef9-91b5-733b97d1b862");
    }

    #[test]
    fn snap_refusals_and_outages_are_errors_that_answer_502() {
        let cases = [
            (
                401,
                &br#"{"error_messages":["Access denied due to unauthorized transaction"]}"#[..],
            ),
            (
                400,
                br#"{"error_messages":["transaction_details.order_id has already been taken"]}"#,
            ),
            (503, b"Service Unavailable"),
            (500, b""),
            (201, br#"{"token":""}"#),
            (201, b"<html>"),
        ];
        for (status, body) in cases {
            let err = parse_snap_create_answer(status, body).expect_err("must fail");
            assert_eq!(err.to_api_error().status(), 502, "{status}");
            assert!(err.to_api_error().body().contains("payment_gateway_unavailable"));
        }
        assert_eq!(
            parse_snap_create_answer(400, br#"{"error_messages":["x"]}"#),
            Err(SnapError::Rejected {
                status: 400,
                messages: vec!["x".into()]
            })
        );
    }

    #[test]
    fn the_status_api_404_means_no_payment_method_yet() {
        let body = br#"{"status_code":"404","status_message":"Transaction doesn't exist.","id":"x"}"#;
        assert_eq!(parse_status_answer(404, body), Ok(StatusAnswer::NotFound));
        // Midtrans's core API has been seen answering HTTP 200 with a "404" body.
        assert_eq!(parse_status_answer(200, body), Ok(StatusAnswer::NotFound));
    }

    #[test]
    fn a_status_answer_reads_like_a_notification() {
        let body = br#"{"status_code":"200","status_message":"Success, transaction is found",
            "transaction_id":"t","order_id":"sl-a","gross_amount":"10000.00","currency":"IDR",
            "payment_type":"bank_transfer","transaction_time":"2026-11-25 22:01:02",
            "transaction_status":"settlement","signature_key":"s"}"#;
        let StatusAnswer::Found(n) = parse_status_answer(200, body).unwrap() else {
            panic!("expected a transaction");
        };
        assert_eq!(n.outcome(), Outcome::Paid);
        assert!(parse_status_answer(500, b"oops").is_err());
        assert!(parse_status_answer(401, br#"{"status_code":"401"}"#).is_err());
        assert!(parse_status_answer(200, b"{}").is_err());
    }
}
