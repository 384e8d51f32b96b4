//! MAIL FROM (RFC 5321 §4.1.1.2) with SIZE, BODY and SMTPUTF8 parameters.
//! On submission only authenticated sessions may start a transaction:
//! never an open relay. On the MX anyone may (its recipients are checked).

use rackwave_smtp_proto::command::{Body, MailParams};
use rackwave_smtp_proto::Reply;

use super::{Flow, Session, Transaction};

impl Session {
    pub(crate) async fn mail(&mut self, from: String, params: MailParams) -> Flow {
        let Some(helo) = &self.helo else {
            return self.refuse(
                "bad_sequence",
                Reply::bad_sequence("Send EHLO or HELO first"),
            );
        };
        let esmtp = helo.esmtp;
        let submission = self.ctx.submission().is_some();
        if submission && self.auth.is_none() {
            return self.refuse("auth_required", Reply::auth_required());
        }
        if self.tx.is_some() {
            return self.refuse("bad_sequence", Reply::bad_sequence("Nested MAIL command"));
        }
        if !esmtp && params != MailParams::default() {
            return self.refuse(
                "syntax",
                Reply::new(555, "5.5.4", "Parameters require EHLO"),
            );
        }
        let max = self.ctx.config.max_message_size;
        if params.size.is_some_and(|s| s > max) {
            return self.refuse("size", Reply::too_large(max));
        }
        if params.body == Body::BinaryMime {
            return self.refuse(
                "syntax",
                Reply::new(555, "5.5.4", "BODY=BINARYMIME is not supported"),
            );
        }
        if !from.is_ascii() && !params.smtputf8 {
            return self.refuse(
                "syntax",
                Reply::new(553, "5.6.7", "Non-ASCII sender address requires SMTPUTF8"),
            );
        }
        let ctx = self.ctx.clone();
        let reservation = match (ctx.submission(), &self.auth) {
            (Some(sub), Some(auth)) => {
                // Once the workspace has verified sending domains, only
                // those (the header From is checked again after DATA).
                if let Some((_, domain)) = from.rsplit_once('@') {
                    let workspace = &auth.workspace.id;
                    if let Err(refusal) = sub.intake.check_sender(workspace, domain).await {
                        let (code, enhanced) = refusal.smtp_codes();
                        return self
                            .refuse(refusal.reason, Reply::new(code, enhanced, &refusal.text));
                    }
                }
                Some(
                    sub.intake
                        .quotas()
                        .begin(&auth.account.username, &auth.workspace.id),
                )
            }
            _ => None,
        };
        self.tx = Some(Transaction {
            from,
            params,
            recipients: Vec::new(),
            reservation,
            mailboxes: Vec::new(),
            chunks: None,
        });
        self.reply(Reply::new(250, "2.1.0", "Sender OK"))
    }
}
