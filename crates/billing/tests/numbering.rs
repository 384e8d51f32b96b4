//! Invoice numbering on the real store: 10,000 numbers taken by 20
//! concurrent tasks across the turn of a financial year, some in
//! transactions that are dropped, come out consecutive per year, unique,
//! and never longer than 16 characters.

use std::collections::BTreeMap;

use rackwave_billing::numbering::{next_invoice_number, FinancialYear};
use rackwave_store::Database;

/// 31 March 2027, 18:00 UTC (23:30 IST): the last half hour of 2026-27.
const BEFORE_MS: i64 = 1_806_516_000_000;
/// An hour later: 1 April 2027, 00:30 IST.
const AFTER_MS: i64 = BEFORE_MS + 3_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_numbers_from_twenty_tasks_across_a_year_end() {
    assert_eq!(FinancialYear::of(BEFORE_MS), FinancialYear(2026));
    assert_eq!(FinancialYear::of(AFTER_MS), FinancialYear(2027));
    let dir = tempfile::tempdir().unwrap();
    let store = Database::open(&dir.path().join("db"), 16)
        .unwrap()
        .store()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut taken = Vec::new();
            let mut i = 0;
            while taken.len() < 500 {
                // Each task crosses the year end halfway through.
                let now = if taken.len() < 250 {
                    BEFORE_MS
                } else {
                    AFTER_MS
                };
                let mut tx = store.begin().await.unwrap();
                let number = next_invoice_number(&mut tx, "RW", now).await.unwrap();
                i += 1;
                if (i + t) % 7 == 0 {
                    // Abandoned (the invoice failed to store): its number
                    // goes back.
                    drop(tx);
                    continue;
                }
                tx.commit().await.unwrap();
                taken.push(number);
            }
            taken
        }));
    }
    let mut by_year: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for task in tasks {
        for number in task.await.unwrap() {
            assert!(number.len() <= 16, "{number}");
            assert!(
                number
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'/'),
                "{number}"
            );
            let mut parts = number.split('/');
            assert_eq!(parts.next(), Some("RW"));
            let year = parts.next().unwrap().to_string();
            let seq: u64 = parts.next().unwrap().parse().unwrap();
            by_year.entry(year).or_default().push(seq);
        }
    }
    assert_eq!(
        by_year.keys().collect::<Vec<_>>(),
        ["26-27", "27-28"],
        "both years"
    );
    for (year, mut seqs) in by_year {
        seqs.sort_unstable();
        assert_eq!(seqs.len(), 5_000, "{year}");
        // Consecutive from 1: unique, and no number lost to a dropped
        // transaction.
        assert!(
            seqs.iter().enumerate().all(|(i, s)| *s == i as u64 + 1),
            "{year}: not 1..=5000"
        );
    }
    // The series go on after a reopen.
    drop(store);
    let store = Database::open(&dir.path().join("db"), 16)
        .unwrap()
        .store()
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        next_invoice_number(&mut tx, "RW", AFTER_MS).await.unwrap(),
        "RW/27-28/05001"
    );
}
