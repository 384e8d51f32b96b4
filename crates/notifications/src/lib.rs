//! The notification engine: every lifecycle event of a client (and each
//! reminder before an invoice's due date) becomes an email to the client
//! and the contacts it concerns, sent through our own intake as an
//! internal submission of the system workspace, so notifications get the
//! same signing, delivery, retries, bounces and `email.*` log as any
//! client's mail.
//!
//! The billing queues a [`Notice`] in the transaction of the change it
//! tells of; this engine mails queued notices a batch at a time (oldest
//! first, the batch's at once) and forgets them once the intake has queued
//! their messages durably. A crash between the two sends those of the
//! batch again: at least once, never lost.
//!
//! Templates are one file a kind (`invoice_created.txt`): a `Subject:`
//! line, `---`, the text body, `---`, the HTML body, with `{{name}}`
//! placeholders for the event's data fields, `client_name`,
//! `client_email`, `platform_name` and, for each amount in paise,
//! `<field>_inr` in rupees. The defaults are built in; a file of the same
//! name in `[notifications] templates_dir` replaces one. A new invoice's
//! email carries the invoice as a PDF.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rackwave_accounts::Accounts;
use rackwave_billing::invoice_pdf;
use rackwave_core::html::escape_html;
use rackwave_core::money::rupees;
use rackwave_core::{random_hex, Clock};
use rackwave_intake::compose::{Attachment, ComposeLimits, Composition};
use rackwave_intake::{Intake, RefusalKind, Source, Submission, TrackingChoice};
use rackwave_store::{Client, Notice, Store, Workspace};
use serde::Deserialize;
use tokio::sync::watch;

/// The system workspace's id: where notifications are sent from and
/// logged.
pub const SYSTEM_WORKSPACE: &str = "ws_notifications";
/// Notices mailed at once (and per read of the queue).
const BATCH: usize = 64;
/// The largest invoice PDF attached (ours are a few KB).
const MAX_PDF: usize = 1024 * 1024;

/// The built-in templates, by kind.
const DEFAULTS: &[(&str, &str)] = &[
    (
        "trial_activated",
        include_str!("../templates/trial_activated.txt"),
    ),
    (
        "service_activated",
        include_str!("../templates/service_activated.txt"),
    ),
    (
        "service_suspended",
        include_str!("../templates/service_suspended.txt"),
    ),
    (
        "service_reactivated",
        include_str!("../templates/service_reactivated.txt"),
    ),
    (
        "service_cancelled",
        include_str!("../templates/service_cancelled.txt"),
    ),
    (
        "invoice_created",
        include_str!("../templates/invoice_created.txt"),
    ),
    (
        "invoice_paid",
        include_str!("../templates/invoice_paid.txt"),
    ),
    (
        "invoice_overdue",
        include_str!("../templates/invoice_overdue.txt"),
    ),
    (
        "invoice_reminder",
        include_str!("../templates/invoice_reminder.txt"),
    ),
    (
        "password_reset",
        include_str!("../templates/password_reset.txt"),
    ),
];

/// Data fields in paise that templates also get in rupees (`total_inr`).
const MONEY_FIELDS: &[&str] = &["total", "amount_paid", "balance"];

/// `[notifications]` in `config.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// Whether lifecycle emails are sent at all.
    pub enabled: bool,
    /// The From of every notification (`Name <address>`). Unset:
    /// `Rackwave <notifications@<[smtp] hostname>>`.
    pub from: Option<String>,
    /// A directory whose `<kind>.txt` files replace the built-in
    /// templates.
    pub templates_dir: Option<std::path::PathBuf>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            enabled: true,
            from: None,
            templates_dir: None,
        }
    }
}

/// One kind's email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Template {
    /// A template file's three parts (see the crate docs).
    pub fn parse(source: &str) -> Result<Template, String> {
        let source = source.replace("\r\n", "\n");
        let mut parts = source.splitn(3, "\n---\n");
        let head = parts.next().unwrap_or_default();
        let subject = head
            .trim()
            .strip_prefix("Subject:")
            .ok_or("the first line must be `Subject: …`")?
            .trim()
            .to_string();
        if subject.contains('\n') {
            return Err("the subject is one line, followed by a line `---`".into());
        }
        let text = parts.next().ok_or("no `---` line before the text body")?;
        let html = parts.next().ok_or("no `---` line before the HTML body")?;
        Ok(Template {
            subject,
            text: text.trim().to_string() + "\n",
            html: html.trim().to_string() + "\n",
        })
    }

    /// The subject, text and HTML with `vars` in place (escaped in the
    /// HTML; line breaks never reach the subject).
    pub fn render(&self, vars: &BTreeMap<String, String>) -> (String, String, String) {
        let subject = fill(&self.subject, vars, |v| v.replace(['\r', '\n'], " "));
        let text = fill(&self.text, vars, str::to_string);
        let html = fill(&self.html, vars, escape_html);
        (subject, text, html)
    }
}

/// `template` with each `{{name}}` replaced by `vars[name]` through
/// `escape` (an unknown name stays empty).
fn fill(
    template: &str,
    vars: &BTreeMap<String, String>,
    escape: impl Fn(&str) -> String,
) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let name = after[..close].trim();
                if let Some(v) = vars.get(name) {
                    out.push_str(&escape(v));
                }
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every kind's template.
#[derive(Debug, Clone)]
pub struct Templates {
    by_kind: HashMap<String, Template>,
}

impl Templates {
    /// The built-in templates, each replaced by `<kind>.txt` in `dir` when
    /// that file exists. A file that does not parse is an error naming it.
    pub fn load(dir: Option<&Path>) -> Result<Templates, String> {
        let mut by_kind = HashMap::new();
        for (kind, source) in DEFAULTS {
            let mut template =
                Template::parse(source).map_err(|e| format!("built-in template {kind}: {e}"))?;
            if let Some(dir) = dir {
                let path = dir.join(format!("{kind}.txt"));
                match std::fs::read_to_string(&path) {
                    Ok(own) => {
                        template = Template::parse(&own)
                            .map_err(|e| format!("{}: {e}", path.display()))?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("{}: {e}", path.display())),
                }
            }
            by_kind.insert(kind.to_string(), template);
        }
        Ok(Templates { by_kind })
    }

    pub fn get(&self, kind: &str) -> Option<&Template> {
        self.by_kind.get(kind)
    }
}

/// The addresses a notice goes to: the client's own, and each contact of
/// the notice's audience (billing contacts the invoices, technical ones
/// the service changes), once. Account matters (a password reset) go to
/// the account's own address only.
pub fn recipients(client: &Client, kind: &str) -> Vec<String> {
    let mut out = vec![client.email.clone()];
    if kind.starts_with("password_") {
        return out;
    }
    let billing = kind.starts_with("invoice_");
    for c in &client.contacts {
        let concerned = if billing { c.billing } else { c.technical };
        if concerned && !out.contains(&c.email) {
            out.push(c.email.clone());
        }
    }
    out
}

/// The placeholders of a notice.
pub fn variables(client: &Client, notice: &Notice) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    if let Some(data) = notice.data.as_object() {
        for (k, v) in data {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            if MONEY_FIELDS.contains(&k.as_str()) {
                if let Some(paise) = v.as_i64() {
                    vars.insert(format!("{k}_inr"), rupees(paise));
                }
            }
            vars.insert(k.clone(), text);
        }
    }
    let platform = vars
        .get("platform_id")
        .and_then(|id| rackwave_core::Platform::of_id(id))
        .map_or("Rackwave", rackwave_core::Platform::name);
    vars.insert("platform_name".into(), platform.into());
    vars.insert("client_name".into(), client.name.clone());
    vars.insert("client_email".into(), client.email.clone());
    vars
}

/// The engine (cheap to clone).
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    intake: Intake,
    clock: Clock,
    templates: Templates,
    from: String,
    hostname: String,
    /// `[notifications] enabled`: off, notices are forgotten unsent (they
    /// may hold reset links; they must not pile up).
    enabled: bool,
    /// Passes that failed on a notice, by its number.
    failures: std::sync::Mutex<HashMap<u64, u32>>,
}

/// Passes a notice may fail (its client or invoice unreadable) before it
/// is given up, so one bad record does not hold up the others.
const MAX_FAILURES: u32 = 5;

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{0}")]
    Store(#[from] rackwave_store::StoreError),
    #[error("{0}")]
    Accounts(#[from] rackwave_accounts::AccountsError),
    /// The intake cannot take mail now; the notice waits.
    #[error("intake: {0}")]
    Busy(String),
}

impl Notifier {
    /// `hostname`: the server's name, for `Message-ID`s and the default
    /// From.
    pub fn new(
        store: Store,
        intake: Intake,
        clock: Clock,
        templates: Templates,
        config: &NotificationsConfig,
        hostname: &str,
    ) -> Notifier {
        Notifier {
            inner: Arc::new(Inner {
                store,
                intake,
                clock,
                templates,
                from: config
                    .from
                    .clone()
                    .unwrap_or_else(|| format!("Rackwave <notifications@{hostname}>")),
                hostname: hostname.to_string(),
                enabled: config.enabled,
                failures: Default::default(),
            }),
        }
    }

    /// Makes sure the system workspace exists (at start). Operators give
    /// it a sending domain, with its DKIM key, like any workspace.
    pub async fn ensure_workspace(&self, accounts: &Accounts) -> Result<(), NotifyError> {
        if accounts.workspace(SYSTEM_WORKSPACE).await?.is_some() {
            return Ok(());
        }
        let mut tx = self.inner.store.begin().await?;
        if tx.workspace(SYSTEM_WORKSPACE).await?.is_none() {
            tx.insert_workspace(&Workspace {
                id: SYSTEM_WORKSPACE.into(),
                name: "Rackwave notifications".into(),
                daily_quota: None,
                created_at: rackwave_core::rfc3339(self.inner.clock.now_ms()),
                allow_unverified_senders: false,
                tracking: Default::default(),
                suspended: None,
            })
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Mails every queued notice, in order; how many it handled. Stops at
    /// the first the intake cannot take now (it waits for the next pass).
    pub async fn drain(&self) -> Result<usize, NotifyError> {
        let mut handled = 0;
        loop {
            let batch = self.inner.store.notices(BATCH).await?;
            if batch.is_empty() {
                return Ok(handled);
            }
            // The batch's emails in flight at once: the intake's durable
            // commits are shared (one disk flush for many), not one each.
            let mut sending = tokio::task::JoinSet::new();
            for (seq, notice) in batch {
                let me = self.clone();
                sending.spawn(async move {
                    let sent = if me.inner.enabled {
                        me.mail(&notice).await
                    } else {
                        Ok(())
                    };
                    (seq, notice, sent)
                });
            }
            let mut done = Vec::with_capacity(BATCH);
            let mut stopped = None;
            while let Some(joined) = sending.join_next().await {
                let Ok((seq, notice, sent)) = joined else {
                    continue;
                };
                match sent {
                    Err(e) if !self.give_up(seq, &notice, &e) => stopped = Some(e),
                    _ => done.push(seq),
                }
            }
            // The mailed ones are forgotten together (a crash before this
            // sends them again: at least once).
            let mut tx = self.inner.store.begin().await?;
            for seq in &done {
                tx.delete_notice(*seq).await?;
            }
            tx.commit_eventually().await?;
            handled += done.len();
            if let Some(e) = stopped {
                return Err(e);
            }
        }
    }

    /// Counts a failed pass on a notice; whether it is given up (logged).
    /// A busy intake never gives one up.
    fn give_up(&self, seq: u64, notice: &Notice, e: &NotifyError) -> bool {
        if matches!(e, NotifyError::Busy(_)) {
            return false;
        }
        let mut failures = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(seq).or_default();
        *n += 1;
        if *n < MAX_FAILURES {
            return false;
        }
        failures.remove(&seq);
        tracing::error!(seq, kind = %notice.kind, client = %notice.client_id, error = %e,
            "notification given up after {MAX_FAILURES} failed passes");
        true
    }

    /// Sends one notice, or decides it cannot ever be sent (logged).
    async fn mail(&self, notice: &Notice) -> Result<(), NotifyError> {
        let inner = &*self.inner;
        let Some(template) = inner.templates.get(&notice.kind) else {
            tracing::warn!(kind = %notice.kind, "no notification template: not mailed");
            return Ok(());
        };
        let Some(client) = inner.store.client(&notice.client_id).await? else {
            return Ok(());
        };
        let (subject, text, html) = template.render(&variables(&client, notice));
        let now = inner.clock.now_ms();
        let composition = Composition {
            from: inner.from.clone(),
            to: recipients(&client, &notice.kind),
            subject,
            text: Some(text),
            html: Some(html),
            headers: vec![("X-Rackwave-Notification".into(), notice.kind.clone())],
            attachments: self.invoice_attached(notice).await?.into_iter().collect(),
            ..Composition::default()
        };
        let limits = ComposeLimits {
            max_recipients: 1 + rackwave_store::Contact::MAX_PER_CLIENT,
            max_attachment_bytes: MAX_PDF,
        };
        let message_id = format!("{}@{}", random_hex(12), inner.hostname);
        let composed = match composition.compose(limits, now, &message_id) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(kind = %notice.kind, client = %client.id, error = %e, "notification not mailed");
                return Ok(());
            }
        };
        if composed.recipients.is_empty() {
            return Ok(());
        }
        let mut metadata = BTreeMap::new();
        metadata.insert("customer_id".to_string(), client.id.clone());
        let submitted = inner
            .intake
            .submit(Submission {
                source: Source::Notification,
                workspace_id: SYSTEM_WORKSPACE.into(),
                submitter: "notifications".into(),
                mail_from: composed.mail_from,
                recipients: composed.recipients,
                message: composed.message,
                reservation: None,
                tags: vec![notice.kind.clone()],
                metadata,
                tracking: TrackingChoice {
                    opens: Some(false),
                    clicks: Some(false),
                    unsubscribe: Some(false),
                },
                sender_rules: None,
            })
            .await;
        match submitted {
            Ok(_) => Ok(()),
            Err(r) if r.kind == RefusalKind::Temporary => Err(NotifyError::Busy(r.text)),
            Err(r) => {
                tracing::warn!(kind = %notice.kind, client = %client.id, reason = %r.text, "notification refused by the intake");
                Ok(())
            }
        }
    }

    /// A new invoice's email carries the invoice as a PDF, as it stands
    /// when the email is sent.
    async fn invoice_attached(&self, notice: &Notice) -> Result<Option<Attachment>, NotifyError> {
        if notice.kind != "invoice_created" {
            return Ok(None);
        }
        let store = &self.inner.store;
        let Some(id) = notice.data["invoice_id"].as_str() else {
            return Ok(None);
        };
        let Some(invoice) = store.invoice(id).await? else {
            return Ok(None);
        };
        let payments = store.payments_of(id).await?;
        let notes = store.credit_notes_of(id).await?;
        Ok(Some(Attachment {
            filename: format!("{}.pdf", invoice.number.replace('/', "-")),
            content_type: "application/pdf".into(),
            content: invoice_pdf(&invoice, &payments, &notes),
        }))
    }

    /// Drains the queue every `every` until shutdown.
    pub async fn run(self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.drain().await {
                tracing::warn!(error = %e, "notifications wait for the next pass");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_the_portal_queues_has_a_template() {
        use rackwave_core::event::EventType;
        use rackwave_core::Product;
        let t = Templates::load(None).unwrap();
        let lifecycle = EventType::ALL
            .iter()
            .filter(|e| e.product() == Product::Rackwave && **e != EventType::Ping)
            .map(|e| e.as_str());
        for kind in lifecycle.chain(["invoice_reminder", "password_reset"]) {
            assert!(t.get(kind).is_some(), "no template for {kind}");
        }
        assert_eq!(DEFAULTS.len(), 10);
    }

    #[test]
    fn placeholders_are_filled_and_escaped() {
        let t = Template::parse(
            "Subject: Hi {{name}}\n---\nText {{name}} {{missing}}.\n---\n<p>{{name}}</p>\n",
        )
        .unwrap();
        let vars = BTreeMap::from([("name".to_string(), "<A&B>\r\nBcc: x".to_string())]);
        let (subject, text, html) = t.render(&vars);
        assert_eq!(subject, "Hi <A&B>  Bcc: x");
        assert_eq!(text, "Text <A&B>\r\nBcc: x .\n");
        assert_eq!(html, "<p>&lt;A&amp;B&gt;\r\nBcc: x</p>\n");
        assert!(Template::parse("Hello\n---\nx\n---\ny").is_err());
        assert!(Template::parse("Subject: x\n---\nonly text").is_err());
        assert_eq!(fill("{{unclosed", &vars, str::to_string), "{{unclosed");
    }

    #[test]
    fn an_operators_file_replaces_a_built_in_one() {
        let dir = std::env::temp_dir().join(format!("rw-templates-{}", random_hex(4)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("invoice_paid.txt"),
            "Subject: Paid {{invoice_number}}\n---\nok\n---\n<p>ok</p>\n",
        )
        .unwrap();
        let t = Templates::load(Some(&dir)).unwrap();
        assert_eq!(
            t.get("invoice_paid").unwrap().subject,
            "Paid {{invoice_number}}"
        );
        std::fs::write(dir.join("invoice_created.txt"), "no subject").unwrap();
        let err = Templates::load(Some(&dir)).unwrap_err();
        assert!(err.contains("invoice_created.txt"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
