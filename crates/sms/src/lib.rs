//! SMS text as carriers take it (Telnxo, issue 14): the encoding a text
//! needs and the parts it is sent in.
//!
//! GSM 03.38's 7-bit default alphabet when every character is in it or in
//! its extension table (an extension character is an escape and the
//! character: two septets), UCS-2 otherwise (UTF-16 code units; a
//! character outside the Basic Multilingual Plane, an emoji, is a
//! surrogate pair: two units). One part holds 160 septets or 70 units;
//! a longer text goes in concatenated parts of 153 septets or 67 units,
//! each behind a 6-byte user data header `05 00 03 <ref> <total> <seq>`
//! (the 8-bit reference form of 3GPP TS 23.040 §9.2.3.24.1). A part never
//! ends between an escape and its character, nor between the two halves
//! of a surrogate pair: such a part is a unit short.
//!
//! Payloads are what SMPP's `short_message` carries: GSM text unpacked,
//! one septet a byte (`data_coding` 0); UCS-2 big-endian (`data_coding`
//! 8).

/// The escape into GSM 03.38's extension table.
const ESC: u8 = 0x1b;

/// GSM 03.38's default alphabet, by septet.
const DEFAULT: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// GSM 03.38's extension table: the character and the septet after ESC.
const EXTENSION: [(char, u8); 10] = [
    ('\u{c}', 0x0a),
    ('^', 0x14),
    ('{', 0x28),
    ('}', 0x29),
    ('\\', 0x2f),
    ('[', 0x3c),
    ('~', 0x3d),
    (']', 0x3e),
    ('|', 0x40),
    ('€', 0x65),
];

/// How a text is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 default alphabet (and its extension table).
    Gsm7,
    /// UCS-2 (UTF-16 big-endian).
    Ucs2,
}

impl Encoding {
    /// As the API and `sms.sent` say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }

    /// SMPP's `data_coding` for it.
    pub fn data_coding(self) -> u8 {
        match self {
            Encoding::Gsm7 => 0x00,
            Encoding::Ucs2 => 0x08,
        }
    }

    /// Units in one unsplit part, and in each part of a split text.
    fn capacity(self) -> (usize, usize) {
        match self {
            Encoding::Gsm7 => (160, 153),
            Encoding::Ucs2 => (70, 67),
        }
    }
}

/// A text made ready for a carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2) of the whole text.
    pub units: usize,
    /// Each part's `short_message`: the UDH first when there are several.
    pub parts: Vec<Vec<u8>>,
}

/// A character's septets: one in the default alphabet, escape and one
/// in the extension table; `None` outside both.
fn gsm(c: char) -> Option<Vec<u8>> {
    if c == '\u{1b}' {
        // The escape itself is no character of a text.
        return None;
    }
    if let Some(i) = DEFAULT.iter().position(|d| *d == c) {
        return Some(vec![i as u8]);
    }
    EXTENSION
        .iter()
        .find(|(e, _)| *e == c)
        .map(|(_, s)| vec![ESC, *s])
}

/// The encoding `text` needs, its units and its parts; `reference`
/// numbers the parts of one message (the same for all of them).
pub fn encode(text: &str, reference: u8) -> Encoded {
    // Each character as its indivisible group of units, as bytes.
    let gsm_groups: Option<Vec<Vec<u8>>> = text.chars().map(gsm).collect();
    let (encoding, groups, unit_bytes) = match gsm_groups {
        Some(groups) => (Encoding::Gsm7, groups, 1),
        None => {
            let groups = text
                .chars()
                .map(|c| {
                    let mut buf = [0u16; 2];
                    c.encode_utf16(&mut buf)
                        .iter()
                        .flat_map(|u| u.to_be_bytes())
                        .collect()
                })
                .collect();
            (Encoding::Ucs2, groups, 2)
        }
    };
    let units: usize = groups.iter().map(|g| g.len() / unit_bytes).sum();
    let (single, each) = encoding.capacity();
    if units <= single {
        return Encoded {
            encoding,
            units,
            parts: vec![groups.concat()],
        };
    }
    // Fill parts group by group: a group never straddles two parts.
    let mut bodies: Vec<Vec<u8>> = vec![Vec::new()];
    for g in groups {
        let last = bodies.last_mut().expect("one part at least");
        if (last.len() + g.len()) / unit_bytes > each {
            bodies.push(g);
        } else {
            last.extend_from_slice(&g);
        }
    }
    // More than 255 parts cannot be numbered: the text is cut there (the
    // API refuses such texts before this).
    bodies.truncate(255);
    let total = bodies.len() as u8;
    let parts = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let mut p = vec![0x05, 0x00, 0x03, reference, total, i as u8 + 1];
            p.extend_from_slice(&body);
            p
        })
        .collect();
    Encoded {
        encoding,
        units,
        parts,
    }
}

/// The text of a `short_message` (a mobile-originated message, a part),
/// its UDH, if any, left out; `None` when it is not valid in `encoding`.
pub fn decode(payload: &[u8], encoding: Encoding, has_udh: bool) -> Option<String> {
    let body = if has_udh {
        let len = usize::from(*payload.first()?);
        payload.get(len + 1..)?
    } else {
        payload
    };
    match encoding {
        Encoding::Gsm7 => {
            let mut out = String::with_capacity(body.len());
            let mut bytes = body.iter();
            while let Some(&b) = bytes.next() {
                if b == ESC {
                    let next = *bytes.next()?;
                    let (c, _) = EXTENSION.iter().find(|(_, s)| *s == next)?;
                    out.push(*c);
                } else {
                    out.push(*DEFAULT.get(usize::from(b))?);
                }
            }
            Some(out)
        }
        Encoding::Ucs2 => {
            if body.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = body
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (text, encoding, units, parts)
    fn case(text: &str) -> (Encoding, usize, usize) {
        let e = encode(text, 7);
        (e.encoding, e.units, e.parts.len())
    }

    #[test]
    fn the_boundaries() {
        use Encoding::*;
        let a = |n: usize| "a".repeat(n);
        let hindi = |n: usize| "क".repeat(n);
        for (text, want) in [
            (String::new(), (Gsm7, 0, 1)),
            ("Hello @ £5 à Ü".to_string(), (Gsm7, 14, 1)),
            (a(160), (Gsm7, 160, 1)),
            (a(161), (Gsm7, 161, 2)),
            (a(306), (Gsm7, 306, 2)),
            (a(307), (Gsm7, 307, 3)),
            (a(153 * 5), (Gsm7, 765, 5)),
            // Extension characters count two.
            ("€".repeat(80), (Gsm7, 160, 1)),
            ("€".repeat(81), (Gsm7, 162, 2)),
            (format!("{}[", a(159)), (Gsm7, 161, 2)),
            (hindi(70), (Ucs2, 70, 1)),
            (hindi(71), (Ucs2, 71, 2)),
            (hindi(134), (Ucs2, 134, 2)),
            (hindi(135), (Ucs2, 135, 3)),
            // One character outside GSM makes the whole text UCS-2.
            (format!("{}ç", a(69)), (Ucs2, 70, 1)),
            (format!("{}ç", a(70)), (Ucs2, 71, 2)),
            // An emoji is a surrogate pair: two units.
            ("😀".repeat(35), (Ucs2, 70, 1)),
            ("😀".repeat(36), (Ucs2, 72, 2)),
        ] {
            assert_eq!(case(&text), want, "{text:?}");
        }
    }

    #[test]
    fn parts_carry_the_header_and_never_split_a_character() {
        // 152 a then € (escape + e): the escape would be the 153rd septet;
        // it moves to the next part with its character.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let e = encode(&text, 42);
        assert_eq!(e.parts.len(), 2);
        assert_eq!(&e.parts[0][..6], &[0x05, 0x00, 0x03, 42, 2, 1]);
        assert_eq!(&e.parts[1][..6], &[0x05, 0x00, 0x03, 42, 2, 2]);
        assert_eq!(e.parts[0].len() - 6, 152);
        assert_eq!(&e.parts[1][6..8], &[ESC, 0x65]);
        // A surrogate pair stays whole: 66 units then an emoji (73 in
        // all: split, and the emoji starts the second part).
        let text = format!("{}😀xxxxx", "क".repeat(66));
        let e = encode(&text, 1);
        assert_eq!(e.parts.len(), 2);
        assert_eq!((e.parts[0].len() - 6) / 2, 66);
        assert_eq!((e.parts[1].len() - 6) / 2, 7);
        // The parts decode back to the text.
        let joined: String = e
            .parts
            .iter()
            .map(|p| decode(p, e.encoding, true).unwrap())
            .collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn decode_reads_both_encodings_and_refuses_garbage() {
        let e = encode("Price: 5€ {ok}", 0);
        assert_eq!(e.encoding, Encoding::Gsm7);
        assert_eq!(
            decode(&e.parts[0], Encoding::Gsm7, false).unwrap(),
            "Price: 5€ {ok}"
        );
        assert_eq!(decode(&[0x00, 0x41], Encoding::Ucs2, false).unwrap(), "A");
        assert_eq!(decode(&[0x00], Encoding::Ucs2, false), None);
        assert_eq!(decode(&[ESC], Encoding::Gsm7, false), None);
        assert_eq!(decode(&[0x80], Encoding::Gsm7, false), None);
        assert_eq!(decode(&[0x05, 0x00], Encoding::Gsm7, true), None);
        // An unpaired surrogate is not text.
        assert_eq!(decode(&[0xd8, 0x00], Encoding::Ucs2, false), None);
        assert_eq!(Encoding::Ucs2.data_coding(), 8);
        assert_eq!(Encoding::Gsm7.as_str(), "gsm7");
    }

    #[test]
    fn every_default_and_extension_character_round_trips() {
        let all: String = DEFAULT
            .iter()
            .filter(|c| **c != '\u{1b}')
            .chain(EXTENSION.iter().map(|(c, _)| c))
            .collect();
        let e = encode(&all, 0);
        assert_eq!(e.encoding, Encoding::Gsm7);
        assert_eq!(e.units, 127 + 2 * EXTENSION.len());
        let back: String = e
            .parts
            .iter()
            .map(|p| decode(p, e.encoding, e.parts.len() > 1).unwrap())
            .collect();
        assert_eq!(back, all);
    }
}
