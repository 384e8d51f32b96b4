//! GST identification numbers (GSTIN): 15 characters, the state code of
//! the registration (2 digits), the holder's PAN (5 letters, 4 digits, a
//! letter), the registration's number within that PAN and state (1-9 or a
//! letter), `Z` by default, and a check character computed over the first
//! fourteen (the GSTN's base-36 Luhn variant).

use std::fmt;

use serde::{Deserialize, Serialize};

const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A valid GSTIN, uppercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Gstin(String);

/// What is wrong with a GSTIN, for the `422` that refuses it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GstinError {
    #[error("a GSTIN has 15 characters")]
    Length,
    #[error("a GSTIN is a state code, a PAN, an entity number, a letter and a check character (like 27AAPFU0939F1ZV)")]
    Format,
    #[error("{0} is not a GST state code")]
    State(String),
    #[error("the check character of this GSTIN is wrong (mistyped?)")]
    CheckDigit,
}

impl Gstin {
    /// Parses and validates: format, state code, check character.
    /// Surrounding spaces and lowercase are accepted.
    pub fn parse(s: &str) -> Result<Gstin, GstinError> {
        let g = s.trim().to_ascii_uppercase();
        if g.len() != 15 || !g.is_ascii() {
            return Err(GstinError::Length);
        }
        let b = g.as_bytes();
        let digit = |i: usize| b[i].is_ascii_digit();
        let letter = |i: usize| b[i].is_ascii_uppercase();
        let pan = (2..7).all(letter) && (7..11).all(digit) && letter(11);
        let entity = b[12].is_ascii_alphanumeric() && b[12] != b'0';
        let format = digit(0)
            && digit(1)
            && pan
            && entity
            && b[13].is_ascii_alphanumeric()
            && b[14].is_ascii_alphanumeric();
        if !format {
            return Err(GstinError::Format);
        }
        if state_name(&g[..2]).is_none() {
            return Err(GstinError::State(g[..2].to_string()));
        }
        if check_char(&b[..14]) != b[14] {
            return Err(GstinError::CheckDigit);
        }
        Ok(Gstin(g))
    }

    /// The state code of the registration (`27`).
    pub fn state_code(&self) -> &str {
        &self.0[..2]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The check character of a GSTIN's first fourteen characters: each
/// character's value (0-9, A-Z as 10-35) times 1 or 2 alternately, the
/// quotient and remainder of each product by 36 summed, the complement of
/// the sum modulo 36.
fn check_char(first14: &[u8]) -> u8 {
    let sum: u32 = first14
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let value = ALPHABET.iter().position(|a| a == c).unwrap_or(0) as u32;
            let product = value * if i % 2 == 0 { 1 } else { 2 };
            product / 36 + product % 36
        })
        .sum();
    ALPHABET[((36 - sum % 36) % 36) as usize]
}

impl fmt::Display for Gstin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Gstin {
    type Error = GstinError;
    fn try_from(s: String) -> Result<Gstin, GstinError> {
        Gstin::parse(&s)
    }
}

impl From<Gstin> for String {
    fn from(g: Gstin) -> String {
        g.0
    }
}

/// The states and union territories of GST, by code (the place of supply
/// an invoice shows), as the GSTN numbers them.
const STATES: &[(&str, &str)] = &[
    ("01", "Jammu and Kashmir"),
    ("02", "Himachal Pradesh"),
    ("03", "Punjab"),
    ("04", "Chandigarh"),
    ("05", "Uttarakhand"),
    ("06", "Haryana"),
    ("07", "Delhi"),
    ("08", "Rajasthan"),
    ("09", "Uttar Pradesh"),
    ("10", "Bihar"),
    ("11", "Sikkim"),
    ("12", "Arunachal Pradesh"),
    ("13", "Nagaland"),
    ("14", "Manipur"),
    ("15", "Mizoram"),
    ("16", "Tripura"),
    ("17", "Meghalaya"),
    ("18", "Assam"),
    ("19", "West Bengal"),
    ("20", "Jharkhand"),
    ("21", "Odisha"),
    ("22", "Chhattisgarh"),
    ("23", "Madhya Pradesh"),
    ("24", "Gujarat"),
    ("26", "Dadra and Nagar Haveli and Daman and Diu"),
    ("27", "Maharashtra"),
    ("29", "Karnataka"),
    ("30", "Goa"),
    ("31", "Lakshadweep"),
    ("32", "Kerala"),
    ("33", "Tamil Nadu"),
    ("34", "Puducherry"),
    ("35", "Andaman and Nicobar Islands"),
    ("36", "Telangana"),
    ("37", "Andhra Pradesh"),
    ("38", "Ladakh"),
    ("97", "Other Territory"),
];

/// The name of a state code (`27` → Maharashtra), `None` for a code GST
/// does not use.
pub fn state_name(code: &str) -> Option<&'static str> {
    STATES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_examples_are_valid() {
        for g in [
            "27AAPFU0939F1ZV",
            "29AAGCB7383J1Z4",
            "07AAGFF2194N1Z1",
            "33AAACH7409R1Z8",
        ] {
            let parsed = Gstin::parse(g).unwrap_or_else(|e| panic!("{g}: {e}"));
            assert_eq!(parsed.as_str(), g);
        }
        let g = Gstin::parse(" 27aapfu0939f1zv ").unwrap();
        assert_eq!(g.state_code(), "27");
        assert_eq!(state_name(g.state_code()), Some("Maharashtra"));
    }

    #[test]
    fn every_kind_of_mistake_is_named() {
        assert_eq!(Gstin::parse("27AAPFU0939F1Z"), Err(GstinError::Length));
        assert_eq!(Gstin::parse("27AAPFU0939F1ZVX"), Err(GstinError::Length));
        assert_eq!(Gstin::parse("27AAPFU0939F1Zé"), Err(GstinError::Length));
        assert_eq!(Gstin::parse("2XAAPFU0939F1ZV"), Err(GstinError::Format));
        assert_eq!(Gstin::parse("27AAP1U0939F1ZV"), Err(GstinError::Format));
        assert_eq!(Gstin::parse("27AAPFU0939F0ZV"), Err(GstinError::Format));
        assert_eq!(Gstin::parse("27AAPFU0939F1Z-"), Err(GstinError::Format));
        assert_eq!(
            Gstin::parse("40AAPFU0939F1ZV"),
            Err(GstinError::State("40".into()))
        );
        // One character changed, or two swapped: the check character says so.
        assert_eq!(Gstin::parse("27AAPFU0939F1ZW"), Err(GstinError::CheckDigit));
        assert_eq!(Gstin::parse("27AAPFU9039F1ZV"), Err(GstinError::CheckDigit));
        assert_eq!(Gstin::parse("27APAFU0939F1ZV"), Err(GstinError::CheckDigit));
        assert_eq!(Gstin::parse("29AAPFU0939F1ZV"), Err(GstinError::CheckDigit));
    }

    #[test]
    fn serde_refuses_a_bad_one() {
        let ok: Gstin = serde_json::from_str("\"27AAPFU0939F1ZV\"").unwrap();
        assert_eq!(ok.to_string(), "27AAPFU0939F1ZV");
        assert!(serde_json::from_str::<Gstin>("\"27AAPFU0939F1ZW\"").is_err());
    }
}
