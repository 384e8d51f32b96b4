//! GST on what we charge, in paise: integers only, never floating point.
//!
//! A supply within the seller's state is taxed under two heads, CGST and
//! SGST, at half the rate each; a supply to another state under one, IGST,
//! at the whole rate. Each head is computed on the taxable value and
//! rounded to the paisa on its own (half a paisa away from zero), as the
//! invoice shows them: so CGST + SGST may differ from IGST on the same
//! value by a paisa.

use serde::{Deserialize, Serialize};

/// Money in paise that went wrong: a negative charge or a sum too large.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amounts are whole paise, at least 0")]
    Negative,
    #[error("amount too large")]
    Overflow,
}

/// A GST rate, in basis points (1800 = 18 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GstRate {
    pub basis_points: u32,
}

impl GstRate {
    pub fn percent(percent: u32) -> GstRate {
        GstRate {
            basis_points: percent * 100,
        }
    }
}

/// Where a supply goes, seen from the seller's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supply {
    /// The place of supply is the seller's state: CGST + SGST.
    IntraState,
    /// Another state: IGST.
    InterState,
}

impl Supply {
    /// From the seller's state code and the place of supply's.
    pub fn between(seller_state: &str, place_of_supply: &str) -> Supply {
        if seller_state == place_of_supply {
            Supply::IntraState
        } else {
            Supply::InterState
        }
    }
}

/// The tax of one invoice, per head, in paise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tax {
    pub cgst_paise: i64,
    pub sgst_paise: i64,
    pub igst_paise: i64,
}

impl Tax {
    /// On `taxable_paise` (at least 0) at `rate` for `supply`.
    pub fn on(taxable_paise: i64, rate: GstRate, supply: Supply) -> Result<Tax, MoneyError> {
        if taxable_paise < 0 {
            return Err(MoneyError::Negative);
        }
        // A head at `bp / divisor` of the value (divisor 20,000 for half
        // the rate: CGST and SGST are equal halves, even of an odd number
        // of basis points).
        let head = |divisor: i128| -> Result<i64, MoneyError> {
            let exact = i128::from(taxable_paise) * i128::from(rate.basis_points);
            i64::try_from(round_div(exact, divisor)).map_err(|_| MoneyError::Overflow)
        };
        let tax = match supply {
            Supply::IntraState => {
                let half = head(20_000)?;
                Tax {
                    cgst_paise: half,
                    sgst_paise: half,
                    igst_paise: 0,
                }
            }
            Supply::InterState => Tax {
                cgst_paise: 0,
                sgst_paise: 0,
                igst_paise: head(10_000)?,
            },
        };
        // The total must fit too.
        tax.cgst_paise
            .checked_add(tax.sgst_paise)
            .and_then(|t| t.checked_add(tax.igst_paise))
            .ok_or(MoneyError::Overflow)?;
        Ok(tax)
    }

    /// The tax of all heads (checked when the tax was computed).
    pub fn total(&self) -> i64 {
        self.cgst_paise + self.sgst_paise + self.igst_paise
    }
}

/// `n / d` rounded half away from zero (`d` > 0).
fn round_div(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d);
    if 2 * r.abs() >= d {
        q + n.signum()
    } else {
        q
    }
}

/// The sum of amounts in paise, each at least 0.
pub fn sum(amounts: impl IntoIterator<Item = i64>) -> Result<i64, MoneyError> {
    amounts.into_iter().try_fold(0i64, |acc, a| {
        if a < 0 {
            return Err(MoneyError::Negative);
        }
        acc.checked_add(a).ok_or(MoneyError::Overflow)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        let r = GstRate::percent(18);
        // ₹999.00 within the state: 9 % each = 8,991 paise.
        let t = Tax::on(99_900, r, Supply::IntraState).unwrap();
        assert_eq!(
            (t.cgst_paise, t.sgst_paise, t.igst_paise),
            (8_991, 8_991, 0)
        );
        assert_eq!(t.total(), 17_982);
        // To another state: 18 % = 17,982 paise.
        let t = Tax::on(99_900, r, Supply::InterState).unwrap();
        assert_eq!((t.cgst_paise, t.sgst_paise, t.igst_paise), (0, 0, 17_982));
        // ₹0.05: 9 % is 0.45 paise → 0 each; 18 % is 0.9 → 1.
        assert_eq!(Tax::on(5, r, Supply::IntraState).unwrap().total(), 0);
        assert_eq!(Tax::on(5, r, Supply::InterState).unwrap().total(), 1);
        // Half a paisa rounds away from zero: 50 paise at 9 % = 4.5 → 5.
        assert_eq!(Tax::on(50, r, Supply::IntraState).unwrap().cgst_paise, 5);
        // ₹1,234.57 at 18 % inter-state = 22,222.26 → 22,222.
        assert_eq!(
            Tax::on(123_457, r, Supply::InterState).unwrap().igst_paise,
            22_222
        );
        // An odd rate in basis points: 5 % = 2.5 % each.
        let t = Tax::on(10_000, GstRate::percent(5), Supply::IntraState).unwrap();
        assert_eq!((t.cgst_paise, t.sgst_paise), (250, 250));
        // 0.25 %: equal halves of 0.125 % each, 12.5 → 13.
        let t = Tax::on(10_000, GstRate { basis_points: 25 }, Supply::IntraState).unwrap();
        assert_eq!((t.cgst_paise, t.sgst_paise), (13, 13));
    }

    #[test]
    fn bad_amounts() {
        let r = GstRate::percent(18);
        assert_eq!(
            Tax::on(-1, r, Supply::InterState),
            Err(MoneyError::Negative)
        );
        assert!(Tax::on(i64::MAX, r, Supply::InterState).is_ok());
        // Each head fits but not their sum.
        assert_eq!(
            Tax::on(i64::MAX, GstRate::percent(100), Supply::IntraState),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Tax::on(
                i64::MAX,
                GstRate {
                    basis_points: 20_000
                },
                Supply::InterState
            ),
            Err(MoneyError::Overflow)
        );
        assert_eq!(sum([1, 2, 3]), Ok(6));
        assert_eq!(sum([1, -2]), Err(MoneyError::Negative));
        assert_eq!(sum([i64::MAX, 1]), Err(MoneyError::Overflow));
        assert_eq!(round_div(-45, 10), -5);
        assert_eq!(round_div(-44, 10), -4);
        assert_eq!(Supply::between("27", "27"), Supply::IntraState);
        assert_eq!(Supply::between("27", "29"), Supply::InterState);
    }
}
