//! Operators' hand on invoices: every client's invoices (filtered by
//! client or state), one with its payments and credit notes (also as
//! `.html` and `.pdf`), recording a payment received
//! (`POST /admin/v1/invoices/{id}/payments`) and issuing a credit note
//! (`POST /admin/v1/invoices/{id}/credit-notes`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use rackwave_billing::PaymentMethod;
use rackwave_store::{Invoice, InvoiceStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorBody;
use crate::extract::{page_limit, ApiJson, ApiPath, ApiQuery};
use crate::portal::account_v1::refused;
use crate::portal::invoices_v1::{answer, view, CreditNoteView, InvoiceView, PaymentView};
use crate::{ApiError, AppState};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only this client's.
    pub(crate) client: Option<String>,
    /// Only those in this state.
    pub(crate) status: Option<InvoiceStatus>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// 1 to 500 (100).
    pub(crate) limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct InvoicePage {
    pub(crate) invoices: Vec<InvoiceView>,
    pub(crate) next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPayment {
    /// Whole paise, more than 0; more than the balance becomes credit.
    pub(crate) amount_paise: i64,
    /// Unique: the bank or gateway reference.
    pub(crate) reference: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PaymentAnswer {
    pub(crate) payment: PaymentView,
    pub(crate) invoice: InvoiceView,
    /// What went to the client's credit.
    pub(crate) credited_paise: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCreditNote {
    /// The value credited before tax, in whole paise.
    pub(crate) amount_paise: i64,
    pub(crate) reason: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CreditNoteAnswer {
    pub(crate) credit_note: CreditNoteView,
    pub(crate) invoice: InvoiceView,
}

/// Every client's invoices, by id; a page may be short when filtered.
#[utoipa::path(get, operation_id = "admin_invoices_list", path = "/admin/v1/invoices",
    tag = "admin", params(ListQuery),
    responses((status = 200, body = InvoicePage), (status = 422, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<InvoicePage>, ApiError> {
    let limit = page_limit(q.limit)?;
    let keep = |i: &Invoice| q.status.is_none_or(|st| st == i.status);
    let (items, next_cursor) = match &q.client {
        Some(client) => {
            let all = state.billing.invoices_of(client).await.map_err(refused)?;
            (all.into_iter().filter(keep).collect::<Vec<_>>(), None)
        }
        None => {
            let page = state.store.invoices(q.cursor.as_deref(), limit).await?;
            (
                page.items.into_iter().filter(keep).collect(),
                page.next_cursor,
            )
        }
    };
    Ok(Json(InvoicePage {
        invoices: items.into_iter().map(view).collect(),
        next_cursor,
    }))
}

/// One invoice with its payments and credit notes (`.html`, `.pdf`: the
/// document).
#[utoipa::path(get, operation_id = "admin_invoices_get", path = "/admin/v1/invoices/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "Invoice id, with `.html` or `.pdf` for the document")),
    responses((status = 200, body = InvoiceView), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    answer(&state, None, &id).await
}

/// Records a payment received for an invoice.
#[utoipa::path(post, operation_id = "admin_invoices_pay",
    path = "/admin/v1/invoices/{id}/payments", tag = "admin",
    params(("id" = String, Path, description = "Invoice id")), request_body = NewPayment,
    responses((status = 201, body = PaymentAnswer), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn pay(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<NewPayment>,
) -> Result<(StatusCode, Json<PaymentAnswer>), ApiError> {
    let paid = state
        .billing
        .pay(
            None,
            &id,
            req.amount_paise,
            PaymentMethod::Operator,
            &req.reference,
        )
        .await
        .map_err(refused)?;
    Ok((
        StatusCode::CREATED,
        Json(PaymentAnswer {
            payment: paid.payment.into(),
            invoice: view(paid.invoice),
            credited_paise: paid.credited_paise,
        }),
    ))
}

/// Issues a credit note on an invoice (a refund or a correction).
#[utoipa::path(post, operation_id = "admin_invoices_credit",
    path = "/admin/v1/invoices/{id}/credit-notes", tag = "admin",
    params(("id" = String, Path, description = "Invoice id")), request_body = NewCreditNote,
    responses((status = 201, body = CreditNoteAnswer), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn credit(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<NewCreditNote>,
) -> Result<(StatusCode, Json<CreditNoteAnswer>), ApiError> {
    let (note, invoice) = state
        .billing
        .credit_note(&id, req.amount_paise, &req.reason)
        .await
        .map_err(refused)?;
    Ok((
        StatusCode::CREATED,
        Json(CreditNoteAnswer {
            credit_note: note.into(),
            invoice: view(invoice),
        }),
    ))
}
