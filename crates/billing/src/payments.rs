//! Payments and credit notes.
//!
//! A payment is recorded by an operator or by the payment gateway's
//! callback, whose signature (HMAC-SHA256 of the raw body with
//! `[billing] gateway_secret`) is checked in constant time before anything
//! is read from it. Every payment has a reference (the gateway's payment
//! id), recorded once: a replayed callback is refused and counts nothing.
//! What an invoice still owes is paid first; anything more is the client's
//! credit, which the next invoice uses (all of it, for an invoice voided
//! meanwhile: money received is never dropped). Settling an invoice emits
//! `invoice_paid`, starts a pending subscription, and ends a suspension
//! that was for that invoice (unless another invoice past its grace keeps
//! it), all in the payment's transaction.
//!
//! A credit note gives value back on an invoice (a refund, a correction):
//! its own number in the `CN` series, the invoice's tax heads at the
//! invoice's rate. Each note's tax is what the credited total's tax adds
//! to the earlier notes', so the notes of a whole invoice give back its
//! tax to the paisa. It settles what is unpaid, and the rest becomes
//! credit; an unpaid invoice credited whole is void, which ends a
//! suspension for it and cancels the pending start it was the first
//! invoice of.

use hmac::{Hmac, Mac};
use rackwave_core::random_hex;
use rackwave_store::{CreditNote, Invoice, InvoiceStatus, Payment, Txn};
use sha2::Sha256;

use crate::error::{check_reason, invalid, BillingError};
use crate::gst::{GstRate, Supply, Tax};
use crate::numbering::next_invoice_number;
use crate::service::Billing;

/// The series of credit notes (`CN/26-27/00001`).
pub const CREDIT_NOTE_PREFIX: &str = "CN";
const MAX_REFERENCE: usize = 128;

/// Who recorded a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMethod {
    Operator,
    Gateway,
}

impl PaymentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Operator => "operator",
            PaymentMethod::Gateway => "gateway",
        }
    }
}

/// A recorded payment and the invoice as it now is.
#[derive(Debug, Clone)]
pub struct Paid {
    pub payment: Payment,
    pub invoice: Invoice,
    /// What went to the client's credit.
    pub credited_paise: i64,
}

/// Whether `signature` (`sha256=<hex>`, or the bare hex) is the HMAC of
/// `body` with `secret`, compared in constant time.
pub fn gateway_signature_valid(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let hex_part = signature.trim();
    let hex_part = hex_part.strip_prefix("sha256=").unwrap_or(hex_part);
    let Ok(given) = hex::decode(hex_part) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// A money input: whole paise, more than 0.
fn positive(field: &'static str, paise: i64) -> Result<i64, BillingError> {
    if paise <= 0 {
        return Err(invalid(field, "whole paise, more than 0"));
    }
    Ok(paise)
}

impl Billing {
    /// Records `amount_paise` against an invoice (see the module docs).
    /// `NotFound` for no such invoice (or another client's, when
    /// `client_id` is given); `Conflict` for a reference seen before.
    pub async fn pay(
        &self,
        client_id: Option<&str>,
        invoice_id: &str,
        amount_paise: i64,
        method: PaymentMethod,
        reference: &str,
    ) -> Result<Paid, BillingError> {
        let amount = positive("amount_paise", amount_paise)?;
        let reference = reference.trim();
        if reference.is_empty()
            || reference.len() > MAX_REFERENCE
            || reference.chars().any(|c| c.is_control())
        {
            return Err(invalid(
                "reference",
                format!("1 to {MAX_REFERENCE} characters"),
            ));
        }
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let mut invoice = tx
            .invoice(invoice_id)
            .await?
            .filter(|i| client_id.is_none_or(|c| c == i.client_id))
            .ok_or_else(|| BillingError::NotFound(format!("no invoice {invoice_id}")))?;
        let payment = Payment {
            id: format!("pay_{}", random_hex(8)),
            invoice_id: invoice.id.clone(),
            client_id: invoice.client_id.clone(),
            amount_paise: amount,
            method: method.as_str().into(),
            reference: reference.to_string(),
            received_at_ms: now,
        };
        // Conflict when the reference was recorded before: a replay.
        tx.insert_payment(&payment).await?;
        let applied = if invoice.status == InvoiceStatus::Void {
            0
        } else {
            amount.min(invoice.balance_paise())
        };
        invoice.paid_paise += applied;
        let rest = amount - applied;
        if rest > 0 {
            self.credit_in(&mut tx, &invoice.client_id, rest).await?;
        }
        let workspace = self.settle_in(&mut tx, &mut invoice, now).await?;
        tx.put_invoice(&invoice).await?;
        self.finish(tx, workspace.as_deref(), true).await?;
        Ok(Paid {
            payment,
            invoice,
            credited_paise: rest,
        })
    }

    /// Adds to a client's credit.
    async fn credit_in(
        &self,
        tx: &mut Txn,
        client_id: &str,
        paise: i64,
    ) -> Result<(), BillingError> {
        let mut client = tx
            .client(client_id)
            .await?
            .ok_or_else(|| BillingError::NotFound(format!("no client {client_id}")))?;
        client.credit_paise = client
            .credit_paise
            .checked_add(paise)
            .ok_or(crate::gst::MoneyError::Overflow)?;
        tx.put_client(&client).await?;
        Ok(())
    }

    /// When nothing is left to pay on an unsettled invoice: it is paid
    /// (`invoice_paid`), the dunning forgets it, and its subscription
    /// starts or resumes ([`Billing::invoice_settled_in`]). The workspace
    /// whose sending that may change. The caller stores the invoice.
    pub(crate) async fn settle_in(
        &self,
        tx: &mut Txn,
        invoice: &mut Invoice,
        now: i64,
    ) -> Result<Option<String>, BillingError> {
        let unsettled = matches!(invoice.status, InvoiceStatus::Open | InvoiceStatus::Overdue);
        if !unsettled || invoice.balance_paise() > 0 {
            return Ok(None);
        }
        invoice.status = InvoiceStatus::Paid;
        invoice.paid_at_ms = Some(now);
        invoice.next_action_ms = None;
        // Stored before its subscription looks at the client's invoices.
        tx.put_invoice(invoice).await?;
        self.announce_paid(tx, invoice).await?;
        self.invoice_settled_in(tx, invoice, now).await
    }

    /// Issues a credit note of `subtotal_paise` (before tax) on an invoice,
    /// at most what the invoice's earlier credit notes left of its
    /// subtotal (see the module docs). A void invoice takes none.
    pub async fn credit_note(
        &self,
        invoice_id: &str,
        subtotal_paise: i64,
        reason: &str,
    ) -> Result<(CreditNote, Invoice), BillingError> {
        let subtotal = positive("amount_paise", subtotal_paise)?;
        let reason = check_reason(reason)?;
        let mut tx = self.store.begin().await?;
        let mut invoice = tx
            .invoice(invoice_id)
            .await?
            .ok_or_else(|| BillingError::NotFound(format!("no invoice {invoice_id}")))?;
        let (note, workspace) = self
            .credit_note_in(&mut tx, &mut invoice, Some(subtotal), reason)
            .await?;
        tx.put_invoice(&invoice).await?;
        self.finish(tx, workspace.as_deref(), true).await?;
        Ok((note, invoice))
    }

    /// [`credit_note`](Self::credit_note) in `tx`, of `subtotal` or all
    /// that is left (`None`); the workspace whose sending it may change.
    /// The caller stores the invoice.
    pub(crate) async fn credit_note_in(
        &self,
        tx: &mut Txn,
        invoice: &mut Invoice,
        subtotal: Option<i64>,
        reason: &str,
    ) -> Result<(CreditNote, Option<String>), BillingError> {
        if invoice.status == InvoiceStatus::Void {
            return Err(BillingError::Conflict(format!(
                "invoice {} is void",
                invoice.number
            )));
        }
        let now = self.clock.now_ms();
        let earlier: i64 = tx
            .credit_notes_of(&invoice.id)
            .await?
            .iter()
            .map(|n| n.subtotal_paise)
            .sum();
        let left = invoice.subtotal_paise - earlier;
        let subtotal = subtotal.unwrap_or(left);
        if subtotal > left || subtotal <= 0 {
            return Err(invalid(
                "amount_paise",
                format!(
                    "at most {left} paise are left to credit on {}",
                    invoice.number
                ),
            ));
        }
        let rate = GstRate {
            basis_points: invoice.gst_rate_bp,
        };
        let supply = Supply::between(&invoice.seller.state_code, &invoice.place_of_supply);
        let (before, after) = (
            Tax::on(earlier, rate, supply)?,
            Tax::on(earlier + subtotal, rate, supply)?,
        );
        let note = CreditNote {
            id: format!("cn_{}", random_hex(8)),
            number: next_invoice_number(tx, CREDIT_NOTE_PREFIX, now).await?,
            invoice_id: invoice.id.clone(),
            client_id: invoice.client_id.clone(),
            subtotal_paise: subtotal,
            cgst_paise: after.cgst_paise - before.cgst_paise,
            sgst_paise: after.sgst_paise - before.sgst_paise,
            igst_paise: after.igst_paise - before.igst_paise,
            total_paise: subtotal + after.total() - before.total(),
            reason: reason.to_string(),
            issued_at_ms: now,
        };
        tx.insert_credit_note(&note).await?;
        let unsettled = matches!(invoice.status, InvoiceStatus::Open | InvoiceStatus::Overdue);
        let onto_balance = if unsettled {
            note.total_paise.min(invoice.balance_paise())
        } else {
            0
        };
        invoice.credited_paise += onto_balance;
        if note.total_paise > onto_balance {
            self.credit_in(tx, &invoice.client_id, note.total_paise - onto_balance)
                .await?;
        }
        let mut workspace = None;
        if unsettled && invoice.balance_paise() == 0 {
            if invoice.paid_paise == 0 && invoice.credit_applied_paise == 0 {
                // Nothing was paid: the invoice is cancelled, not paid.
                invoice.status = InvoiceStatus::Void;
                invoice.next_action_ms = None;
                tx.put_invoice(invoice).await?;
                workspace = self.invoice_settled_in(tx, invoice, now).await?;
            } else {
                workspace = self.settle_in(tx, invoice, now).await?;
            }
        }
        Ok((note, workspace))
    }

    /// An invoice's payments and credit notes.
    pub async fn settlements(
        &self,
        invoice_id: &str,
    ) -> Result<(Vec<Payment>, Vec<CreditNote>), BillingError> {
        Ok((
            self.store.payments_of(invoice_id).await?,
            self.store.credit_notes_of(invoice_id).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_signatures() {
        let body = br#"{"payment_id":"pay_1","invoice_id":"inv_1","amount_paise":100}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(body);
        let good = hex::encode(mac.finalize().into_bytes());
        assert!(gateway_signature_valid(b"s3cret", body, &good));
        assert!(gateway_signature_valid(
            b"s3cret",
            body,
            &format!("sha256={good}")
        ));
        assert!(!gateway_signature_valid(b"other", body, &good));
        let mut altered = body.to_vec();
        altered[60] = b'9';
        assert!(!gateway_signature_valid(b"s3cret", &altered, &good));
        assert!(!gateway_signature_valid(b"s3cret", body, "zz"));
        assert!(!gateway_signature_valid(b"s3cret", body, ""));
    }
}
