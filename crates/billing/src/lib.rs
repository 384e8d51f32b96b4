//! The portal's billing (Layer 1 of the seed): its clients ([`clients`]:
//! sign-up, login, sessions), what they are charged, with GST, and how
//! invoices are numbered.
//!
//! Money is whole paise in `i64`, everywhere: no floating point touches
//! an amount ([`gst`]). Tax follows GST: CGST + SGST within the seller's
//! state, IGST across states, each head rounded to the paisa on its own.
//! A client's GSTIN is checked down to its check character ([`gstin`]).
//! Invoices are numbered per financial year, consecutively and without
//! gaps, by a sequence taken in the transaction that stores the invoice
//! ([`numbering`]). Plans come from `[billing]` ([`BillingConfig`]).

pub mod clients;
mod config;
mod cycle;
mod document;
mod error;
pub mod gst;
pub mod gstin;
mod invoices;
pub mod numbering;
mod payments;
mod service;
pub mod sso;
pub mod subscriptions;

pub use clients::{Clients, LoginRefused, NewClient};
pub use config::{BillingConfig, Plan};
pub use cycle::RunReport;
pub use document::{invoice_html, invoice_pdf};
pub use error::BillingError;
pub use gst::{GstRate, MoneyError, Supply, Tax};
pub use gstin::{state_name, Gstin, GstinError};
pub use invoices::REMINDER_DAYS;
pub use numbering::{next_invoice_number, FinancialYear, NumberingError};
pub use payments::{gateway_signature_valid, Paid, PaymentMethod, CREDIT_NOTE_PREFIX};
pub use service::Billing;
pub use sso::{SignedOn, Sso, SsoConfig, SsoRefusal};
pub use subscriptions::{PlanChange, Started};
