//! Financial years and invoice numbers.
//!
//! GST invoices are numbered consecutively within a financial year (1 April
//! to 31 March), in a series of at most 16 characters of letters, digits,
//! `-` and `/`, never reused. Ours: `<prefix>/<yy-yy>/<sequence>`
//! (`RW/26-27/00042`), the sequence at least five digits. Dates are India
//! Standard Time (UTC+05:30): GST is Indian, and an invoice made at 23:00
//! IST on 31 March belongs to the year that ends then.
//!
//! The sequence lives in the store and is taken in the transaction that
//! stores the invoice ([`next_invoice_number`]): the store's write
//! transactions are serializable, so two invoices never get one number,
//! and a transaction that is dropped takes its number back with it, so
//! there are no gaps.

use chrono::{Datelike, NaiveDate, TimeZone};
use rackwave_store::{StoreError, Txn};

/// India Standard Time, east of UTC.
pub const IST_OFFSET_SECS: i32 = 5 * 3600 + 1800;
/// The longest invoice number GST allows.
pub const MAX_INVOICE_NUMBER_LEN: usize = 16;

/// A financial year, named by the calendar year it starts in (2026 is
/// 1 April 2026 to 31 March 2027).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FinancialYear(pub i32);

impl FinancialYear {
    /// The financial year of an instant (ms since the epoch), in IST.
    pub fn of(ms: i64) -> FinancialYear {
        let d = ist_date(ms);
        FinancialYear(if d.month() >= 4 {
            d.year()
        } else {
            d.year() - 1
        })
    }

    /// `26-27`.
    pub fn short(self) -> String {
        format!(
            "{:02}-{:02}",
            self.0.rem_euclid(100),
            (self.0 + 1).rem_euclid(100)
        )
    }

    /// `2026-27`.
    pub fn label(self) -> String {
        format!("{}-{:02}", self.0, (self.0 + 1).rem_euclid(100))
    }
}

/// The calendar date of an instant in IST (the date an invoice shows).
pub fn ist_date(ms: i64) -> NaiveDate {
    let ist = chrono::FixedOffset::east_opt(IST_OFFSET_SECS).expect("a valid offset");
    ist.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// Why no invoice number could be made.
#[derive(Debug, thiserror::Error)]
pub enum NumberingError {
    #[error("invoice prefix must be 1 to 4 letters or digits")]
    Prefix,
    #[error("the invoice series of {0} is exhausted")]
    Exhausted(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Whether `prefix` can start an invoice number.
pub fn valid_prefix(prefix: &str) -> bool {
    (1..=4).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The invoice number of `sequence` (from 1) in a year's series.
pub fn invoice_number(
    prefix: &str,
    year: FinancialYear,
    sequence: u64,
) -> Result<String, NumberingError> {
    if !valid_prefix(prefix) {
        return Err(NumberingError::Prefix);
    }
    let number = format!("{prefix}/{}/{sequence:05}", year.short());
    if number.len() > MAX_INVOICE_NUMBER_LEN {
        return Err(NumberingError::Exhausted(year.label()));
    }
    Ok(number)
}

/// Takes the next number of the series of `now_ms`'s financial year in
/// `tx` (see the module docs); it is the invoice's only if `tx` commits.
pub async fn next_invoice_number(
    tx: &mut Txn,
    prefix: &str,
    now_ms: i64,
) -> Result<String, NumberingError> {
    let year = FinancialYear::of(now_ms);
    let series = format!("invoice-series/{prefix}/{}", year.label());
    let next = tx.cursor(&series).await? + 1;
    let number = invoice_number(prefix, year, next)?;
    tx.set_cursor(&series, next).await?;
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ms of a UTC date and time.
    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        chrono::Utc
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn the_year_turns_at_midnight_ist_on_1_april() {
        // 31 March 18:29 UTC is 23:59 IST: still 2026-27.
        assert_eq!(
            FinancialYear::of(utc(2027, 3, 31, 18, 29)),
            FinancialYear(2026)
        );
        assert_eq!(
            FinancialYear::of(utc(2027, 3, 31, 18, 30)),
            FinancialYear(2027)
        );
        assert_eq!(
            FinancialYear::of(utc(2027, 1, 15, 0, 0)),
            FinancialYear(2026)
        );
        assert_eq!(FinancialYear(2026).label(), "2026-27");
        assert_eq!(FinancialYear(2099).short(), "99-00");
        assert_eq!(ist_date(utc(2027, 3, 31, 18, 30)).to_string(), "2027-04-01");
    }

    #[test]
    fn numbers_fit_sixteen_characters() {
        let y = FinancialYear(2026);
        assert_eq!(invoice_number("RW", y, 42).unwrap(), "RW/26-27/00042");
        assert_eq!(invoice_number("RW", y, 9_999_999).unwrap().len(), 16);
        assert!(matches!(
            invoice_number("RW", y, 10_000_000),
            Err(NumberingError::Exhausted(_))
        ));
        assert!(matches!(invoice_number("RWX", y, 99_999), Ok(n) if n.len() == 15));
        for bad in ["", "RWXYZ", "R/W", "R W", "é"] {
            assert!(
                matches!(invoice_number(bad, y, 1), Err(NumberingError::Prefix)),
                "{bad}"
            );
        }
    }
}
