//! Invoices: issued in the transaction of what they charge for (a paid
//! start, a trial's end, a renewal, an upgrade), numbered in that same
//! transaction, so an invoice, its number and its `invoice_created` exist
//! together or not at all.
//!
//! Tax: CGST + SGST when the client's state (the place of supply) is the
//! seller's, IGST otherwise, each head rounded to the paisa ([`Tax::on`]).
//! The client's credit (over-payments, credit notes) pays what it can at
//! once. The parties are copied into the invoice as they are on the day
//! it is issued.

use rackwave_core::event::{InvoiceCreated, InvoicePaid};
use rackwave_core::{random_hex, Timestamp, MS_PER_DAY};
use rackwave_store::{Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, Party, Txn};

use crate::error::BillingError;
use crate::gst::{sum, GstRate, MoneyError, Supply, Tax};
use crate::numbering::{ist_date, next_invoice_number};
use crate::service::Billing;

/// Days before the due date that the reminder goes out.
pub const REMINDER_DAYS: i64 = 3;

impl Billing {
    /// Issues an invoice of `lines` to `client_id` in `tx` (see the module
    /// docs): `invoice_created`, and `invoice_paid` too when the client's
    /// credit covers it.
    pub(crate) async fn issue_in(
        &self,
        tx: &mut Txn,
        client_id: &str,
        subscription_id: Option<&str>,
        kind: InvoiceKind,
        lines: Vec<InvoiceLine>,
    ) -> Result<Invoice, BillingError> {
        let now = self.clock.now_ms();
        let mut client = tx
            .client(client_id)
            .await?
            .ok_or_else(|| BillingError::NotFound(format!("no client {client_id}")))?;
        let subtotal = sum(lines.iter().map(|l| l.amount_paise))?;
        let rate = GstRate::percent(self.config.gst_rate_percent);
        let tax = Tax::on(
            subtotal,
            rate,
            Supply::between(&self.config.seller_state, &client.state_code),
        )?;
        let total = subtotal
            .checked_add(tax.total())
            .ok_or(MoneyError::Overflow)?;
        let credit = client.credit_paise.clamp(0, total);
        if credit > 0 {
            client.credit_paise -= credit;
            tx.put_client(&client).await?;
        }
        let due = now + i64::from(self.config.due_days) * MS_PER_DAY;
        let mut invoice = Invoice {
            id: format!("inv_{}", random_hex(8)),
            number: next_invoice_number(tx, &self.config.invoice_prefix, now).await?,
            client_id: client.id.clone(),
            subscription_id: subscription_id.map(str::to_string),
            kind,
            status: InvoiceStatus::Open,
            lines,
            subtotal_paise: subtotal,
            cgst_paise: tax.cgst_paise,
            sgst_paise: tax.sgst_paise,
            igst_paise: tax.igst_paise,
            gst_rate_bp: rate.basis_points,
            total_paise: total,
            credit_applied_paise: credit,
            paid_paise: 0,
            credited_paise: 0,
            seller: Party {
                name: self.config.seller_name.clone(),
                address: self.config.seller_address.clone(),
                state_code: self.config.seller_state.clone(),
                gstin: self.config.seller_gstin.as_ref().map(|g| g.to_string()),
            },
            buyer: Party {
                name: client
                    .company
                    .clone()
                    .unwrap_or_else(|| client.name.clone()),
                address: client.address.clone(),
                state_code: client.state_code.clone(),
                gstin: client.gstin.clone(),
            },
            place_of_supply: client.state_code.clone(),
            issued_at_ms: now,
            due_at_ms: due,
            overdue_since_ms: None,
            paid_at_ms: None,
            reminded: false,
            next_action_ms: None,
        };
        let settled = invoice.balance_paise() == 0;
        if settled {
            invoice.status = InvoiceStatus::Paid;
            invoice.paid_at_ms = Some(now);
        } else {
            invoice.next_action_ms = Some((due - REMINDER_DAYS * MS_PER_DAY).max(now));
        }
        tx.insert_invoice(&invoice).await?;
        self.announce(
            tx,
            client_id,
            InvoiceCreated {
                invoice_id: invoice.id.clone(),
                invoice_number: invoice.number.clone(),
                customer_id: client_id.to_string(),
                total: invoice.total_paise,
                due_date: ist_date(due).to_string(),
            },
        )
        .await?;
        if settled {
            self.announce_paid(tx, &invoice).await?;
        }
        Ok(invoice)
    }

    /// `invoice_paid` of a settled invoice.
    pub(crate) async fn announce_paid(
        &self,
        tx: &mut Txn,
        invoice: &Invoice,
    ) -> Result<(), BillingError> {
        self.announce(
            tx,
            &invoice.client_id,
            InvoicePaid {
                invoice_id: invoice.id.clone(),
                invoice_number: invoice.number.clone(),
                customer_id: invoice.client_id.clone(),
                amount_paid: invoice.paid_paise + invoice.credit_applied_paise,
                paid_at: Timestamp(invoice.paid_at_ms.unwrap_or(invoice.issued_at_ms)),
            },
        )
        .await
    }

    /// A client's invoices, newest first.
    pub async fn invoices_of(&self, client_id: &str) -> Result<Vec<Invoice>, BillingError> {
        Ok(self.store.invoices_of(client_id).await?)
    }

    /// One of a client's invoices (any client's for `None`, an operator);
    /// another client's is `None`.
    pub async fn invoice(
        &self,
        client_id: Option<&str>,
        id: &str,
    ) -> Result<Option<Invoice>, BillingError> {
        Ok(self
            .store
            .invoice(id)
            .await?
            .filter(|i| client_id.is_none_or(|c| c == i.client_id)))
    }
}
