//! What a `deliver_sm` says: a delivery receipt for a part we sent, or a
//! mobile-originated message to one of our numbers.
//!
//! Receipt texts follow SMPP 3.4's Appendix B, which is informative only:
//! `id:IIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
//! stat:DDDDDDD err:E text:…`. Carriers vary the case, the spacing and
//! which fields they bother with, so the text is read field by field and
//! anything missing is left to the TLVs (`receipted_message_id`,
//! `message_state`, `network_error_code`). Ids are passed on as written:
//! carriers answer `submit_sm` in hex and write receipts in decimal, or
//! not, and the service matches both renderings.

use rackwave_sms::Encoding;
use rusmpp::pdus::DeliverSm;
use rusmpp::tlvs::TlvValue;

use crate::connectors::{Report, Segment, SmsInbound, SmsReceipt};

/// esm_class bits 2-5, the message type; 0x04 is an SMSC delivery receipt.
const MESSAGE_TYPE: u8 = 0x3C;
const DELIVERY_RECEIPT: u8 = 0x04;
/// esm_class: the short message starts with a user data header.
const UDHI: u8 = 0x40;

/// The fields of a receipt text we use; each may be missing.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ReceiptText {
    pub(super) id: Option<String>,
    pub(super) stat: Option<String>,
    pub(super) err: Option<String>,
}

/// Reads `id:`, `stat:` and `err:` out of a receipt text, whatever their
/// case and spacing; `text:` and what follows it is the message's own
/// text and never read for fields.
pub(super) fn parse_receipt_text(text: &str) -> ReceiptText {
    // ASCII lowercasing keeps byte offsets, so positions found in `lower`
    // cut `text` too.
    let lower = text.to_ascii_lowercase();
    let end = field_start(&lower, "text", lower.len()).map_or(lower.len(), |(key, _)| key);
    let value = |key: &str| -> Option<String> {
        let (_, at) = field_start(&lower, key, end)?;
        let rest = text[at..end].trim_start();
        let v: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
        // `id: stat:…` has no id: the next key is no value.
        (!v.is_empty() && !v.ends_with(':')).then_some(v)
    };
    ReceiptText {
        id: value("id"),
        stat: value("stat").map(|s| s.to_ascii_uppercase()),
        err: value("err"),
    }
}

/// Where `key:` starts in `lower` (before `end`), and where its value
/// does: the key at the start or after a space, optional spaces, then the
/// colon.
fn field_start(lower: &str, key: &str, end: usize) -> Option<(usize, usize)> {
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(found) = lower.get(from..end)?.find(key) {
        let at = from + found;
        let after_key = at + key.len();
        let boundary = at == 0 || bytes[at - 1].is_ascii_whitespace();
        let colon = after_key
            + lower[after_key..end]
                .bytes()
                .take_while(|b| *b == b' ')
                .count();
        if boundary && colon < end && bytes[colon] == b':' {
            return Some((at, colon + 1));
        }
        from = at + 1;
    }
    None
}

/// The receipt stat for a `message_state` TLV (SMPP 3.4 §5.2.28).
pub(super) fn state_name(state: u8) -> Option<&'static str> {
    Some(match state {
        1 => "ENROUTE",
        2 => "DELIVRD",
        3 => "EXPIRED",
        4 => "DELETED",
        5 => "UNDELIV",
        6 => "ACCEPTD",
        7 => "UNKNOWN",
        8 => "REJECTD",
        _ => return None,
    })
}

/// An address as the service writes it: E.164 with `+` when numeric.
pub(super) fn e164(address: &str) -> String {
    if !address.is_empty() && address.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{address}")
    } else {
        address.to_string()
    }
}

/// A mobile-originated text by its `data_coding`: GSM 03.38 for the
/// default alphabet (0) and IA5 (1, which carriers send as the default
/// alphabet), UCS-2 for 8, Latin-1 for anything else. Text that is not
/// valid in its coding is read as best we can: an inbound message is
/// never dropped for its bytes.
pub(super) fn decode_text(payload: &[u8], data_coding: u8, udhi: bool) -> String {
    let encoding = match data_coding {
        0 | 1 => Some(Encoding::Gsm7),
        8 => Some(Encoding::Ucs2),
        _ => None,
    };
    if let Some(text) = encoding.and_then(|e| rackwave_sms::decode(payload, e, udhi)) {
        return text;
    }
    let body = match (udhi, payload.first()) {
        (true, Some(&len)) => payload.get(usize::from(len) + 1..).unwrap_or(&[]),
        _ => payload,
    };
    if encoding == Some(Encoding::Ucs2) {
        let units: Vec<u16> = body
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    body.iter().map(|&b| char::from(b)).collect()
}

/// The report a `deliver_sm` makes, or why it makes none.
pub(super) fn interpret(deliver: &DeliverSm) -> Result<Report, String> {
    let esm_class = u8::from(deliver.esm_class);
    let mut receipted_id = None;
    let mut state = None;
    let mut network_error = None;
    let mut payload = None;
    for tlv in deliver.tlvs() {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(id)) => receipted_id = Some(id.as_str().to_string()),
            Some(TlvValue::MessageState(s)) => state = Some(u8::from(*s)),
            Some(TlvValue::NetworkErrorCode(n)) => network_error = Some(n.error_code),
            Some(TlvValue::MessagePayload(p)) => payload = Some(p.value.as_ref().to_vec()),
            _ => {}
        }
    }
    let short_message: &[u8] = deliver.short_message().as_ref();
    let body = match payload {
        Some(p) if short_message.is_empty() => p,
        _ => short_message.to_vec(),
    };
    if esm_class & MESSAGE_TYPE == DELIVERY_RECEIPT {
        let text = parse_receipt_text(&String::from_utf8_lossy(&body));
        let carrier_id = receipted_id
            .filter(|id| !id.is_empty())
            .or(text.id)
            .ok_or("a receipt without a message id")?;
        let stat = text
            .stat
            .or_else(|| state.and_then(state_name).map(str::to_string))
            .ok_or_else(|| format!("a receipt for {carrier_id} without a stat"))?;
        let error = text
            .err
            .or_else(|| network_error.map(|code| format!("{code:03}")));
        return Ok(Report::SmsReceipt(SmsReceipt {
            carrier_id,
            stat,
            error,
        }));
    }
    let data_coding = u8::from(deliver.data_coding);
    let udhi = esm_class & UDHI != 0;
    Ok(Report::SmsInbound(SmsInbound {
        from: e164(deliver.source_addr.as_str()),
        to: e164(deliver.destination_addr.as_str()),
        body: decode_text(&body, data_coding, udhi),
        segment: if udhi { segment(&body) } else { None },
    }))
}

/// The concatenation element of a UDH (3GPP TS 23.040 §9.2.3.24.1 with an
/// 8-bit reference, .8 with a 16-bit one), if it has one and it makes
/// sense (1 ≤ seq ≤ total, more than one part).
pub(super) fn segment(payload: &[u8]) -> Option<Segment> {
    let udh_len = usize::from(*payload.first()?);
    let mut ies = payload.get(1..1 + udh_len)?;
    while let [id, len, rest @ ..] = ies {
        let len = usize::from(*len);
        let data = rest.get(..len)?;
        let found = match (id, data) {
            (0x00, [reference, total, seq]) => Some((u16::from(*reference), *total, *seq)),
            (0x08, [hi, lo, total, seq]) => Some((u16::from_be_bytes([*hi, *lo]), *total, *seq)),
            _ => None,
        };
        if let Some((reference, total, seq)) = found {
            return (total > 1 && (1..=total).contains(&seq)).then_some(Segment {
                reference,
                total,
                seq,
            });
        }
        ies = &rest[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenation_elements() {
        let eight = [5, 0x00, 3, 0x42, 3, 2, b'h', b'i'];
        assert_eq!(
            segment(&eight),
            Some(Segment {
                reference: 0x42,
                total: 3,
                seq: 2
            })
        );
        let sixteen = [6, 0x08, 4, 0x12, 0x34, 2, 1, b'x'];
        assert_eq!(
            segment(&sixteen),
            Some(Segment {
                reference: 0x1234,
                total: 2,
                seq: 1
            })
        );
        // Another element first (a port address), then the concatenation.
        let both = [11, 0x05, 4, 0, 0, 0, 0, 0x00, 3, 7, 2, 2];
        assert_eq!(segment(&both).map(|s| s.seq), Some(2));
        for bad in [
            &[][..],
            &[5, 0x00, 3, 1, 2][..],
            &[5, 0x00, 3, 1, 2, 3][..],
            &[5, 0x00, 3, 1, 1, 1][..],
            &[3, 0x00, 9, 1][..],
        ] {
            assert_eq!(segment(bad), None, "{bad:?}");
        }
    }

    fn fields(id: Option<&str>, stat: Option<&str>, err: Option<&str>) -> ReceiptText {
        ReceiptText {
            id: id.map(str::to_string),
            stat: stat.map(str::to_string),
            err: err.map(str::to_string),
        }
    }

    #[test]
    fn reads_the_appendix_b_format() {
        let t = "id:1715004 sub:001 dlvrd:001 submit date:2606070939 done date:2606070940 stat:DELIVRD err:000 text:Hello there";
        assert_eq!(
            parse_receipt_text(t),
            fields(Some("1715004"), Some("DELIVRD"), Some("000"))
        );
    }

    #[test]
    fn tolerates_case_spacing_and_missing_fields() {
        for (text, want) in [
            (
                "ID:1A2B  SUB:001 Stat:undeliv   Err:001",
                fields(Some("1A2B"), Some("UNDELIV"), Some("001")),
            ),
            (
                "id : 42 stat :DELIVRD",
                fields(Some("42"), Some("DELIVRD"), None),
            ),
            ("stat:EXPIRED", fields(None, Some("EXPIRED"), None)),
            ("  id:77", fields(Some("77"), None, None)),
            // `text:` is the message's, not fields: its `id:` is not ours.
            (
                "stat:DELIVRD text:id:999 err:5",
                fields(None, Some("DELIVRD"), None),
            ),
            // `sid:` is not `id:`; `submit date:` holds no field we read.
            (
                "sid:5 id:6 submit date:2606070939",
                fields(Some("6"), None, None),
            ),
            // Keys with no value, or no colon, are missing.
            ("id: stat:", fields(None, None, None)),
            ("id 12 stat DELIVRD", fields(None, None, None)),
            ("", fields(None, None, None)),
            ("\u{0}\u{ff}garbage:::", fields(None, None, None)),
            (
                "id:é12 stat:délivré",
                fields(Some("é12"), Some("DéLIVRé"), None),
            ),
        ] {
            assert_eq!(parse_receipt_text(text), want, "{text:?}");
        }
    }

    #[test]
    fn message_states_name_receipt_stats() {
        assert_eq!(state_name(2), Some("DELIVRD"));
        assert_eq!(state_name(5), Some("UNDELIV"));
        assert_eq!(state_name(6), Some("ACCEPTD"));
        assert_eq!(state_name(8), Some("REJECTD"));
        assert_eq!(state_name(0), None);
        assert_eq!(state_name(42), None);
    }

    #[test]
    fn numeric_addresses_get_a_plus() {
        assert_eq!(e164("919812345678"), "+919812345678");
        assert_eq!(e164("RACKWV"), "RACKWV");
        assert_eq!(e164(""), "");
    }

    #[test]
    fn inbound_text_by_data_coding() {
        assert_eq!(decode_text(&[0x48, 0x69, 0x00], 0, false), "Hi@");
        assert_eq!(decode_text(&[0x00, 0x41, 0x09, 0x15], 8, false), "Aक");
        // A UDH is skipped.
        assert_eq!(decode_text(&[5, 0, 3, 9, 2, 1, 0x00, 0x41], 8, true), "A");
        // Latin-1 for codings we do not know.
        assert_eq!(decode_text(&[0x63, 0xE9], 3, false), "cé");
        // Invalid in its coding: read anyway.
        assert_eq!(decode_text(&[0x00, 0x41, 0x00], 8, false), "A");
        assert_eq!(decode_text(&[0x80], 0, false), "\u{80}");
        assert_eq!(decode_text(&[9], 0, true), "");
    }
}
