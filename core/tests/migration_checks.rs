//! The D1 schema's CHECKs on `donations` hold the same limits as the donation rules in `sunnylive_core::donation`:
//! a change to one without the other fails here. Migrations are append-only, so the table's definition is the last
//! `CREATE TABLE donations` among d1-migrations/*.sql, in file order.

use std::path::Path;

use sunnylive_core::donation::{
    DonationStatus, DONOR_NAME_MAX_CHARS, MAX_RUPIAH, MESSAGE_MAX_CHARS, MIN_RUPIAH, ORDER_ID_MAX_LEN,
};

/// The body of the newest `CREATE TABLE donations (...)`, with runs of white space folded to one space.
fn donations_table() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../d1-migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("d1-migrations/ next to core/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut table = None;
    for file in files {
        let sql = std::fs::read_to_string(&file).unwrap();
        let sql: String = sql
            .lines()
            .map(|l| l.split("--").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = sql.as_str();
        while let Some(start) = rest.find("CREATE TABLE donations (") {
            let body = &rest[start..];
            let end = body.find(");").expect("a CREATE TABLE ends with ');'");
            table = Some(body[..end].split_whitespace().collect::<Vec<_>>().join(" "));
            rest = &body[end..];
        }
    }
    table.expect("some migration creates the donations table")
}

#[test]
fn the_donations_checks_match_the_core_donation_limits() {
    let table = donations_table();
    let statuses: Vec<String> = DonationStatus::ALL
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    for check in [
        format!("CHECK (length(order_id) BETWEEN 1 AND {ORDER_ID_MAX_LEN})"),
        format!("CHECK (length(donor_name) BETWEEN 1 AND {DONOR_NAME_MAX_CHARS})"),
        format!("CHECK (message IS NULL OR length(message) <= {MESSAGE_MAX_CHARS})"),
        format!("CHECK (amount BETWEEN {MIN_RUPIAH} AND {MAX_RUPIAH})"),
        format!("CHECK (status IN ({}))", statuses.join(", ")),
    ] {
        assert!(table.contains(&check), "the donations table lacks `{check}`:\n{table}");
    }
}
