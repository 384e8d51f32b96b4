//! RCPT TO (RFC 5321 §4.1.1.3): recipient cap, then on submission the
//! workspace's suppression list and the daily quota, which is reserved
//! here, one unit per accepted recipient; on the MX whether the address is
//! one it takes mail for.

use rackwave_intake::{Limits, QuotaError};
use rackwave_smtp_proto::Reply;

use super::{Flow, Session};
use crate::Role;

impl Session {
    pub(crate) async fn rcpt(&mut self, to: String) -> Flow {
        let Some(tx) = &mut self.tx else {
            return self.refuse("bad_sequence", Reply::bad_sequence("Need MAIL before RCPT"));
        };
        if tx.chunks.is_some() {
            return self.refuse(
                "bad_sequence",
                Reply::bad_sequence("RCPT not permitted after BDAT"),
            );
        }
        if !to.is_ascii() && !tx.params.smtputf8 {
            return self.refuse(
                "syntax",
                Reply::new(
                    553,
                    "5.6.7",
                    "Non-ASCII recipient address requires SMTPUTF8",
                ),
            );
        }
        // The same recipient twice gets one message, not two.
        if tx.recipients.iter().any(|r| r.eq_ignore_ascii_case(&to)) {
            return self.reply(Reply::new(250, "2.1.5", "Recipient OK (duplicate ignored)"));
        }
        if tx.recipients.len() >= self.ctx.config.max_recipients {
            return self.refuse("recipients", Reply::too_many_recipients());
        }
        let ctx = self.ctx.clone();
        let (sub, Some(auth)) = (
            match &ctx.role {
                Role::Submission(sub) => sub,
                Role::Mx(inbound) => return self.mx_rcpt(inbound, to),
            },
            &self.auth,
        ) else {
            return self.refuse("auth_required", Reply::auth_required());
        };
        let workspace = auth.workspace.id.clone();
        if let Err(refusal) = sub.intake.check_recipient(&workspace, &to).await {
            let (code, enhanced) = refusal.smtp_codes();
            return self.refuse(refusal.reason, Reply::new(code, enhanced, &refusal.text));
        }
        let (Some(tx), Some(auth)) = (&mut self.tx, &self.auth) else {
            return self.refuse("bad_sequence", Reply::bad_sequence("Need MAIL before RCPT"));
        };
        let Some(reservation) = &mut tx.reservation else {
            return self.refuse("bad_sequence", Reply::bad_sequence("Need MAIL before RCPT"));
        };
        let limits = Limits {
            account: &auth.account.username,
            account_quota: auth.account.daily_quota,
            workspace: &auth.workspace.id,
            workspace_quota: auth.workspace.daily_quota,
        };
        match sub.intake.quotas().reserve_one(reservation, &limits).await {
            Ok(()) => {
                tx.recipients.push(to);
                self.reply(Reply::new(250, "2.1.5", "Recipient OK"))
            }
            Err(QuotaError::Exceeded) => self.refuse("quota", Reply::quota_exceeded()),
            Err(QuotaError::Storage(e)) => {
                tracing::error!(error = %e, "quota check failed");
                self.refuse("tempfail", Reply::temporary_failure())
            }
        }
    }
}

impl Session {
    /// RCPT on the MX: only the addresses `inbound` takes mail for.
    fn mx_rcpt(&mut self, inbound: &rackwave_inbound::Inbound, to: String) -> Flow {
        match inbound.mailbox(&to) {
            Ok(mailbox) => {
                let Some(tx) = &mut self.tx else {
                    return self
                        .refuse("bad_sequence", Reply::bad_sequence("Need MAIL before RCPT"));
                };
                tx.recipients.push(to);
                tx.mailboxes.push(mailbox);
                self.reply(Reply::new(250, "2.1.5", "Recipient OK"))
            }
            Err(r) => self.refuse("unknown_mailbox", Reply::new(r.code, r.enhanced, r.text)),
        }
    }
}
