//! Portal events: the subscription and invoice lifecycle. Money is in paise
//! (integers), never floating point; `platform_id` names the platform of
//! the subscription (`"1"` MigoSMTP, `"2"` Telnxo).

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// `trial_activated`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrialActivated {
    /// The client (`cus_…`).
    pub customer_id: String,
    pub platform_id: String,
    pub expires_at: Timestamp,
}

/// `service_activated`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceActivated {
    pub customer_id: String,
    pub platform_id: String,
    pub plan_name: String,
    pub expires_at: Timestamp,
}

/// `service_suspended`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceSuspended {
    pub customer_id: String,
    pub platform_id: String,
    pub suspension_reason: String,
}

/// `service_reactivated`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceReactivated {
    pub customer_id: String,
    pub platform_id: String,
    pub plan_name: String,
}

/// `service_cancelled`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceCancelled {
    pub customer_id: String,
    pub platform_id: String,
    pub cancelled_at: Timestamp,
}

/// `invoice_created`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InvoiceCreated {
    pub invoice_id: String,
    pub invoice_number: String,
    pub customer_id: String,
    /// Total including GST, in paise.
    pub total: i64,
    /// `YYYY-MM-DD`.
    pub due_date: String,
}

/// `invoice_paid`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InvoicePaid {
    pub invoice_id: String,
    pub invoice_number: String,
    pub customer_id: String,
    /// In paise.
    pub amount_paid: i64,
    pub paid_at: Timestamp,
}

/// `invoice_overdue`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InvoiceOverdue {
    pub invoice_id: String,
    pub invoice_number: String,
    pub customer_id: String,
    /// In paise.
    pub total: i64,
    /// `YYYY-MM-DD`: the day after the due date.
    pub overdue_since: String,
}
