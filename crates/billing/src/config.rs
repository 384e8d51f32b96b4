//! `[billing]` in `config.toml`: the seller, the tax, the payment terms
//! and the plans.

use serde::Deserialize;

use crate::gstin::{state_name, Gstin};
use crate::numbering::valid_prefix;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    /// The seller's legal name, as invoices show it.
    pub seller_name: String,
    /// The seller's address, as invoices show it.
    pub seller_address: String,
    /// The seller's state code (`27` for Maharashtra): supplies within it
    /// are taxed CGST + SGST, others IGST.
    pub seller_state: String,
    /// The seller's GSTIN; its state code must be `seller_state`.
    pub seller_gstin: Option<Gstin>,
    /// GST rate, in whole percent.
    pub gst_rate_percent: u32,
    /// SAC (services accounting code) on every invoice line.
    pub sac_code: String,
    /// Days from an invoice to its due date.
    pub due_days: u32,
    /// Days past the due date before the service is suspended.
    pub grace_days: u32,
    /// The series' prefix (1 to 4 letters or digits): `RW/26-27/00042`.
    pub invoice_prefix: String,
    /// Seconds between billing runs (0: only `POST /admin/v1/billing/run`).
    pub cycle_secs: u64,
    /// The payment gateway's signing secret: its callbacks carry the
    /// HMAC-SHA256 of their body with it (unset: callbacks are refused).
    pub gateway_secret: Option<String>,
    pub plans: Vec<Plan>,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            seller_name: "Rackwave".into(),
            seller_address: String::new(),
            seller_state: "27".into(),
            seller_gstin: None,
            gst_rate_percent: 18,
            sac_code: "998315".into(),
            due_days: 15,
            grace_days: 7,
            invoice_prefix: "RW".into(),
            cycle_secs: 60,
            gateway_secret: None,
            plans: Vec::new(),
        }
    }
}

/// A plan a client can subscribe to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Unique, short (`migosmtp-starter`).
    pub id: String,
    /// `migosmtp` or `telnxo`.
    pub platform: String,
    pub name: String,
    /// Monthly price before tax, in paise.
    pub price_paise: i64,
    /// MigoSMTP: recipients a day.
    #[serde(default)]
    pub daily_quota: Option<u64>,
    /// Telnxo: messages a month per channel.
    #[serde(default)]
    pub sms_allowance: Option<u64>,
    #[serde(default)]
    pub whatsapp_allowance: Option<u64>,
    #[serde(default)]
    pub voice_minutes: Option<u64>,
    /// Days of free trial (0: none).
    #[serde(default)]
    pub trial_days: u32,
}

impl BillingConfig {
    /// The rules that must hold, as a one-line error.
    pub fn check(&self) -> Result<(), String> {
        if state_name(&self.seller_state).is_none() {
            return Err(format!(
                "[billing] seller_state `{}` is not a GST state code",
                self.seller_state
            ));
        }
        if let Some(g) = &self.seller_gstin {
            if g.state_code() != self.seller_state {
                return Err(format!(
                    "[billing] seller_gstin {g} is registered in state {}, not seller_state {}",
                    g.state_code(),
                    self.seller_state
                ));
            }
        }
        if self.gst_rate_percent > 100 {
            return Err("[billing] gst_rate_percent must be 0 to 100".into());
        }
        if self.due_days == 0 {
            return Err("[billing] due_days must be greater than 0".into());
        }
        if !valid_prefix(&self.invoice_prefix) {
            return Err("[billing] invoice_prefix must be 1 to 4 letters or digits".into());
        }
        if self
            .invoice_prefix
            .eq_ignore_ascii_case(crate::payments::CREDIT_NOTE_PREFIX)
        {
            return Err("[billing] invoice_prefix CN is the credit notes' series".into());
        }
        if self.gateway_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err("[billing] gateway_secret must be at least 16 characters".into());
        }
        if self.sac_code.len() != 6 || !self.sac_code.bytes().all(|b| b.is_ascii_digit()) {
            return Err("[billing] sac_code must be 6 digits".into());
        }
        let mut ids = std::collections::HashSet::new();
        for p in &self.plans {
            let at = format!("[[billing.plans]] `{}`", p.id);
            if p.id.is_empty()
                || p.id.len() > 64
                || !p
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!("{at}: id must be letters, digits, '-' or '_'"));
            }
            if !ids.insert(p.id.as_str()) {
                return Err(format!("{at}: id used twice"));
            }
            if !["migosmtp", "telnxo"].contains(&p.platform.as_str()) {
                return Err(format!("{at}: platform must be migosmtp or telnxo"));
            }
            if p.price_paise < 0 {
                return Err(format!("{at}: price_paise must be at least 0"));
            }
            if p.name.trim().is_empty() {
                return Err(format!("{at}: name is empty"));
            }
            if p.platform == "migosmtp" && p.daily_quota.is_none() {
                // A trial must not be a workspace without a limit.
                return Err(format!("{at}: a migosmtp plan needs daily_quota"));
            }
        }
        Ok(())
    }

    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: &str) -> Plan {
        Plan {
            id: id.into(),
            platform: "migosmtp".into(),
            name: "Starter".into(),
            price_paise: 99_900,
            daily_quota: Some(10_000),
            sms_allowance: None,
            whatsapp_allowance: None,
            voice_minutes: None,
            trial_days: 14,
        }
    }

    #[test]
    fn checks() {
        assert!(BillingConfig::default().check().is_ok());
        let with = |f: &dyn Fn(&mut BillingConfig)| {
            let mut c = BillingConfig {
                plans: vec![plan("starter")],
                ..BillingConfig::default()
            };
            f(&mut c);
            c.check()
        };
        assert!(with(&|_| {}).is_ok());
        assert!(with(&|c| c.seller_state = "40".into())
            .unwrap_err()
            .contains("seller_state"));
        assert!(
            with(&|c| c.seller_gstin = Some(Gstin::parse("29AAGCB7383J1Z4").unwrap()))
                .unwrap_err()
                .contains("state 29")
        );
        assert!(with(&|c| c.seller_gstin = Some(Gstin::parse("27AAPFU0939F1ZV").unwrap())).is_ok());
        assert!(with(&|c| c.invoice_prefix = "RWXYZ".into()).is_err());
        assert!(with(&|c| c.plans.push(plan("starter")))
            .unwrap_err()
            .contains("twice"));
        assert!(with(&|c| c.plans[0].price_paise = -1)
            .unwrap_err()
            .contains("price_paise"));
        assert!(with(&|c| c.plans[0].platform = "x".into()).is_err());
        assert!(with(&|c| c.sac_code = "99831".into()).is_err());
        assert!(with(&|c| c.plans[0].daily_quota = None)
            .unwrap_err()
            .contains("daily_quota"));
    }
}
