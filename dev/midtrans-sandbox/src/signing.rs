//! How Midtrans signs a notification and which `status_code` goes with which `transaction_status`. Written
//! separately from `sunnylive_core::midtrans` on purpose: the stand-in plays the other side of the wire, and a
//! shared bug in one function would let both sides agree on a wrong signature.

use sha2::{Digest, Sha512};

/// Hex SHA-512 of `order_id + status_code + gross_amount + server_key`, exactly as Midtrans computes
/// `signature_key` (lowercase hex, no separators, the amount as the same string the body carries).
pub fn signature_key(order_id: &str, status_code: &str, gross_amount: &str, server_key: &str) -> String {
    let input = format!("{order_id}{status_code}{gross_amount}{server_key}");
    hex::encode(Sha512::digest(input.as_bytes()))
}

/// Midtrans writes amounts with two decimals, even for rupiah.
pub fn gross_amount(amount: u64) -> String {
    format!("{amount}.00")
}

/// The `status_code` Midtrans puts in a notification for a transaction status: "200" for money moved
/// (capture, settlement, refund), "201" for waiting (pending, authorize), "202" for refused (deny, cancel, expire).
pub fn status_code_for(transaction_status: &str) -> &'static str {
    match transaction_status {
        "pending" | "authorize" => "201",
        "deny" | "cancel" | "expire" | "failure" => "202",
        _ => "200",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_midtrans_documented_example() {
        // Midtrans's "Receiving notifications" inputs; digest checked with `sha512sum` (and in sunnylive-core).
        assert_eq!(
            signature_key("1111", "200", "100000.00", "askvnoibnosifnboseofinbofinfgbiufglnbfg"),
            "edc076b21793ebe3e17926350f5b8ae67d902fe657b3d0aa31b932d5c127e2375d308a2bc94f3265ac2d80a1f181a79b997ac178a2\
             36fcff35af263fc4d4c231"
        );
    }

    #[test]
    fn signs_a_sandbox_style_vector_without_decimals() {
        assert_eq!(
            signature_key("ORDER-123456", "200", "10000", "SB-Mid-server-xxxxxxxxxxxxxxxxxx"),
            "8d4bc63ef1b714c5aac25b173008b9b594698f1936bb1bc420cf96fbcf9ef74b9ece254c7b8354d1bd55e8c977c25d39995df\
             85787372640db01566898fbc2cb"
        );
    }

    #[test]
    fn amounts_carry_two_decimals() {
        assert_eq!(gross_amount(10_000), "10000.00");
    }

    #[test]
    fn status_codes_follow_midtrans() {
        for (status, code) in [
            ("capture", "200"),
            ("settlement", "200"),
            ("refund", "200"),
            ("pending", "201"),
            ("deny", "202"),
            ("expire", "202"),
            ("cancel", "202"),
        ] {
            assert_eq!(status_code_for(status), code, "{status}");
        }
    }
}
