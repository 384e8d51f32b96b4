//! Money as people read it. Amounts are whole paise (`i64`) everywhere.

/// Paise as rupees with Indian digit grouping: `12,34,567.89`.
pub fn rupees(paise: i64) -> String {
    let sign = if paise < 0 { "-" } else { "" };
    let p = paise.unsigned_abs();
    let (whole, frac) = (p / 100, p % 100);
    let digits = whole.to_string();
    let grouped = if digits.len() <= 3 {
        digits
    } else {
        let (head, last3) = digits.split_at(digits.len() - 3);
        let mut parts: Vec<&str> = Vec::new();
        let mut rest = head;
        while rest.len() > 2 {
            let (a, b) = rest.split_at(rest.len() - 2);
            parts.push(b);
            rest = a;
        }
        parts.push(rest);
        parts.reverse();
        format!("{},{last3}", parts.join(","))
    };
    format!("{sign}{grouped}.{frac:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rupees_group_the_indian_way() {
        assert_eq!(rupees(0), "0.00");
        assert_eq!(rupees(5), "0.05");
        assert_eq!(rupees(99_900), "999.00");
        assert_eq!(rupees(123_456_789), "12,34,567.89");
        assert_eq!(rupees(100_000_000_000), "1,00,00,00,000.00");
        assert_eq!(rupees(-150), "-1.50");
    }
}
