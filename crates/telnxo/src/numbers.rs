//! Phone numbers and sender ids: E.164 validation, and the numbers an
//! operator gives a workspace (the only senders it may use, and where
//! inbound messages are routed).

use rackwave_store::{Channel, TelnxoNumber};

use crate::error::{invalid, TelnxoError};
use crate::Telnxo;

/// `+` and 8 to 15 digits, the first not 0 (ITU-T E.164: at most 15
/// digits with the country code; the shortest national numbers in use
/// make 8). Spaces, dashes and brackets are not accepted: an API takes one
/// canonical form, so what is stored and matched is exactly what was sent.
pub fn e164(field: &'static str, raw: &str) -> Result<String, TelnxoError> {
    let digits = raw.strip_prefix('+').ok_or_else(|| {
        invalid(
            field,
            format!("{raw:?} is not an E.164 number: it must start with + and the country code"),
        )
    })?;
    if !(8..=15).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return Err(invalid(
            field,
            format!("{raw:?} is not an E.164 number: + then 8 to 15 digits, the first not 0"),
        ));
    }
    Ok(raw.to_string())
}

/// An alphanumeric sender id as carriers take it: 1 to 11 letters, digits
/// and spaces, at least one letter.
pub fn sender_id(field: &'static str, raw: &str) -> Result<String, TelnxoError> {
    let ok = (1..=11).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && raw.bytes().any(|b| b.is_ascii_alphabetic())
        && raw.trim() == raw;
    if !ok {
        return Err(invalid(
            field,
            format!(
                "{raw:?} is neither an E.164 number nor a sender id (1 to 11 letters and digits)"
            ),
        ));
    }
    Ok(raw.to_string())
}

/// A number or a sender id.
pub fn number_or_sender_id(field: &'static str, raw: &str) -> Result<String, TelnxoError> {
    if raw.starts_with('+') {
        e164(field, raw)
    } else {
        sender_id(field, raw)
    }
}

impl Telnxo {
    /// Gives `number` to a workspace for `channels` (an operator's act);
    /// giving it again changes its channels. Another workspace's number is
    /// a conflict.
    pub async fn provision(
        &self,
        workspace_id: &str,
        number: &str,
        channels: &[Channel],
    ) -> Result<TelnxoNumber, TelnxoError> {
        let number = number_or_sender_id("number", number)?;
        if channels.is_empty() {
            return Err(invalid("channels", "at least one of sms, whatsapp, voice"));
        }
        let alphanumeric = !number.starts_with('+');
        if alphanumeric && channels.iter().any(|c| *c != Channel::Sms) {
            return Err(invalid(
                "channels",
                "a sender id can only send SMS: WhatsApp and calls need a number",
            ));
        }
        let mut channels = channels.to_vec();
        channels.sort();
        channels.dedup();
        let mut tx = self.inner.store.begin().await?;
        let created_at_ms = match tx.telnxo_number(&number).await? {
            Some(old) if old.workspace_id != workspace_id => {
                return Err(TelnxoError::Conflict(format!(
                    "{number} is provisioned to another workspace"
                )))
            }
            Some(old) => old.created_at_ms,
            None => self.inner.clock.now_ms(),
        };
        let record = TelnxoNumber {
            number,
            workspace_id: workspace_id.to_string(),
            channels,
            created_at_ms,
        };
        tx.put_telnxo_number(&record).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Takes a number back from a workspace.
    pub async fn release(&self, workspace_id: &str, number: &str) -> Result<(), TelnxoError> {
        let mut tx = self.inner.store.begin().await?;
        match tx.telnxo_number(number).await? {
            Some(n) if n.workspace_id == workspace_id => {
                tx.delete_telnxo_number(number).await?;
                tx.commit().await?;
                Ok(())
            }
            _ => Err(TelnxoError::NotFound(format!("number {number}"))),
        }
    }

    pub async fn numbers(&self, workspace_id: &str) -> Result<Vec<TelnxoNumber>, TelnxoError> {
        Ok(self.inner.store.telnxo_numbers_of(workspace_id).await?)
    }

    /// `from` as a sender of the workspace on `channel`, or why not.
    pub(crate) async fn owned_sender(
        &self,
        workspace_id: &str,
        from: &str,
        channel: Channel,
    ) -> Result<String, TelnxoError> {
        let from = number_or_sender_id("from", from)?;
        match self.inner.store.telnxo_number(&from).await? {
            Some(n) if n.workspace_id == workspace_id && n.channels.contains(&channel) => Ok(from),
            _ => Err(invalid(
                "from",
                format!(
                    "{from} is not a {} number of this workspace (see GET /telnxo/v1/numbers)",
                    channel.as_str()
                ),
            )),
        }
    }

    /// The workspace owning `number` on `channel` (where an inbound message
    /// goes).
    pub(crate) async fn owner_of(
        &self,
        number: &str,
        channel: Channel,
    ) -> Result<Option<String>, TelnxoError> {
        Ok(self
            .inner
            .store
            .telnxo_number(number)
            .await?
            .filter(|n| n.channels.contains(&channel))
            .map(|n| n.workspace_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers() {
        for ok in ["+919876543210", "+14155550100", "+4420"] {
            let r = e164("to", ok);
            assert_eq!(r.is_ok(), ok.len() >= 9, "{ok}");
        }
        for bad in [
            "919876543210",
            "+0919876543",
            "+91 98765 43210",
            "+1234567890123456",
            "+91987654321a",
            "",
            "+",
        ] {
            assert!(e164("to", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sender_ids() {
        assert!(sender_id("from", "RACKWAVE").is_ok());
        assert!(sender_id("from", "Bank 24").is_ok());
        assert!(
            sender_id("from", "123456").is_err(),
            "digits only is a number"
        );
        assert!(sender_id("from", "TWELVECHARSX").is_err());
        assert!(sender_id("from", "A\u{0}B").is_err());
        assert!(sender_id("from", " AB").is_err());
        assert!(number_or_sender_id("from", "+919876543210").is_ok());
    }
}
