//! `/portal/v1/invoices`: a client's GST invoices, as JSON, as an HTML
//! page (`…/{id}.html`) or as a PDF (`…/{id}.pdf`); another client's
//! invoice is 404.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rackwave_billing::{invoice_html, invoice_pdf, numbering::ist_date};
use rackwave_core::rfc3339;
use rackwave_store::{
    CreditNote, Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, Party, Payment,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::account_v1::refused;
use super::PortalClient;
use crate::error::ErrorBody;
use crate::extract::ApiPath;
use crate::{ApiError, AppState};

#[derive(Serialize, ToSchema)]
pub(crate) struct InvoiceView {
    /// `inv_…`
    pub(crate) id: String,
    /// `RW/26-27/00042`
    pub(crate) number: String,
    pub(crate) customer_id: String,
    pub(crate) subscription_id: Option<String>,
    pub(crate) kind: InvoiceKind,
    pub(crate) status: InvoiceStatus,
    pub(crate) lines: Vec<InvoiceLine>,
    pub(crate) subtotal_paise: i64,
    pub(crate) cgst_paise: i64,
    pub(crate) sgst_paise: i64,
    pub(crate) igst_paise: i64,
    /// The GST rate in basis points (1800 = 18 %).
    pub(crate) gst_rate_bp: u32,
    pub(crate) total_paise: i64,
    pub(crate) credit_applied_paise: i64,
    pub(crate) paid_paise: i64,
    pub(crate) credited_paise: i64,
    /// What is still to be paid.
    pub(crate) balance_paise: i64,
    pub(crate) seller: Party,
    pub(crate) buyer: Party,
    /// State code of the place of supply.
    pub(crate) place_of_supply: String,
    pub(crate) issued_at: String,
    /// `YYYY-MM-DD` (India).
    pub(crate) due_date: String,
    pub(crate) overdue_since: Option<String>,
    pub(crate) paid_at: Option<String>,
    /// Only in the answer about one invoice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) payments: Option<Vec<PaymentView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) credit_notes: Option<Vec<CreditNoteView>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PaymentView {
    pub(crate) id: String,
    pub(crate) amount_paise: i64,
    /// `operator` or `gateway`.
    pub(crate) method: String,
    pub(crate) reference: String,
    pub(crate) received_at: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CreditNoteView {
    pub(crate) id: String,
    /// `CN/26-27/00001`
    pub(crate) number: String,
    pub(crate) invoice_id: String,
    pub(crate) subtotal_paise: i64,
    pub(crate) cgst_paise: i64,
    pub(crate) sgst_paise: i64,
    pub(crate) igst_paise: i64,
    pub(crate) total_paise: i64,
    pub(crate) reason: String,
    pub(crate) issued_at: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct InvoiceList {
    pub(crate) invoices: Vec<InvoiceView>,
}

impl From<Payment> for PaymentView {
    fn from(p: Payment) -> Self {
        PaymentView {
            id: p.id,
            amount_paise: p.amount_paise,
            method: p.method,
            reference: p.reference,
            received_at: rfc3339(p.received_at_ms),
        }
    }
}

impl From<CreditNote> for CreditNoteView {
    fn from(n: CreditNote) -> Self {
        CreditNoteView {
            id: n.id,
            number: n.number,
            invoice_id: n.invoice_id,
            subtotal_paise: n.subtotal_paise,
            cgst_paise: n.cgst_paise,
            sgst_paise: n.sgst_paise,
            igst_paise: n.igst_paise,
            total_paise: n.total_paise,
            reason: n.reason,
            issued_at: rfc3339(n.issued_at_ms),
        }
    }
}

/// The answer about an invoice (the portal's and the operators').
pub(crate) fn view(i: Invoice) -> InvoiceView {
    InvoiceView {
        balance_paise: i.balance_paise(),
        id: i.id,
        number: i.number,
        customer_id: i.client_id,
        subscription_id: i.subscription_id,
        kind: i.kind,
        status: i.status,
        lines: i.lines,
        subtotal_paise: i.subtotal_paise,
        cgst_paise: i.cgst_paise,
        sgst_paise: i.sgst_paise,
        igst_paise: i.igst_paise,
        gst_rate_bp: i.gst_rate_bp,
        total_paise: i.total_paise,
        credit_applied_paise: i.credit_applied_paise,
        paid_paise: i.paid_paise,
        credited_paise: i.credited_paise,
        seller: i.seller,
        buyer: i.buyer,
        place_of_supply: i.place_of_supply,
        issued_at: rfc3339(i.issued_at_ms),
        due_date: ist_date(i.due_at_ms).to_string(),
        overdue_since: i
            .overdue_since_ms
            .map(|ms| ist_date(ms).succ_opt().unwrap_or_default().to_string()),
        paid_at: i.paid_at_ms.map(rfc3339),
        payments: None,
        credit_notes: None,
    }
}

/// One invoice in the form its id asks for: `inv_….pdf`, `inv_….html`,
/// else JSON with its payments and credit notes; `client_id` `None` for
/// an operator.
pub(crate) async fn answer(
    state: &AppState,
    client_id: Option<&str>,
    id: &str,
) -> Result<Response, ApiError> {
    let (bare, form) = match id.rsplit_once('.') {
        Some((bare, ext @ ("pdf" | "html"))) => (bare, ext),
        _ => (id, "json"),
    };
    let invoice = state
        .billing
        .invoice(client_id, bare)
        .await
        .map_err(refused)?
        .ok_or_else(|| ApiError::not_found(format!("no invoice {bare}")))?;
    let (payments, notes) = state.billing.settlements(bare).await.map_err(refused)?;
    let file = invoice.number.replace('/', "-");
    Ok(match form {
        "pdf" => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{file}.pdf\""),
                ),
            ],
            invoice_pdf(&invoice, &payments, &notes),
        )
            .into_response(),
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            invoice_html(&invoice, &payments, &notes),
        )
            .into_response(),
        _ => {
            let mut v = view(invoice);
            v.payments = Some(payments.into_iter().map(Into::into).collect());
            v.credit_notes = Some(notes.into_iter().map(Into::into).collect());
            Json(v).into_response()
        }
    })
}

/// The client's invoices, newest first.
#[utoipa::path(get, operation_id = "portal_invoices_list", path = "/portal/v1/invoices",
    tag = "portal", responses((status = 200, body = InvoiceList), (status = 401, body = ErrorBody)),
    security(("client_session" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    who: PortalClient,
) -> Result<Json<InvoiceList>, ApiError> {
    let invoices = state
        .billing
        .invoices_of(&who.client.id)
        .await
        .map_err(refused)?
        .into_iter()
        .map(view)
        .collect();
    Ok(Json(InvoiceList { invoices }))
}

/// One of the client's invoices: JSON, or `{id}.html`, or `{id}.pdf`.
#[utoipa::path(get, operation_id = "portal_invoices_get", path = "/portal/v1/invoices/{id}",
    tag = "portal",
    params(("id" = String, Path, description = "Invoice id, with `.html` or `.pdf` for the document")),
    responses((status = 200, body = InvoiceView), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("client_session" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    who: PortalClient,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    answer(&state, Some(&who.client.id), &id).await
}
