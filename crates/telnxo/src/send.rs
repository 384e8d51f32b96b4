//! Accepting what a workspace asks to send: checked, counted against the
//! workspace's daily quota, stored in its channel's queue and (for SMS)
//! announced with `sms.queued`, all in one transaction.

use rackwave_core::event::SmsQueued;
use rackwave_core::Timestamp;
use rackwave_core::MS_PER_DAY;
use rackwave_store::{
    Call, Channel, CommStatus, CommStep, Direction, Page, TelnxoMessage, Txn, WhatsappPart,
};

use crate::connectors::WhatsappContent;
use crate::error::{invalid, TelnxoError};
use crate::numbers::e164;
use crate::Telnxo;

/// Parts of one SMS at most (the UDH's part count is one byte; carriers
/// rarely take more than ten).
pub const MAX_SMS_PARTS: usize = 10;
/// A WhatsApp text's longest body (the Cloud API's limit).
pub(crate) const MAX_WHATSAPP_TEXT: usize = 4096;
/// Text to speak, at most.
pub(crate) const MAX_TTS: usize = 2000;
/// A template's components or an interactive object, serialized, at most
/// (Meta's own limits are far below: 1,024 characters of body, three
/// buttons of 20): stored with the message and sent again on a retry.
const MAX_WHATSAPP_OBJECT: usize = 16 * 1024;
/// WhatsApp's customer-service window: free-form messages only within 24
/// hours of the user's last message.
pub const WINDOW_MS: i64 = 24 * 3600 * 1000;

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rackwave_core::time_ordered_id())
}

/// A new message: outbound ones queued (due now, expiring `now` until the
/// caller sets the channel's validity), inbound ones received; parts,
/// encoding and WhatsApp's content are the caller's to set.
pub(crate) fn new_message(
    workspace_id: &str,
    channel: Channel,
    direction: Direction,
    from: &str,
    to: &str,
    body: &str,
    now: i64,
) -> TelnxoMessage {
    let (status, due_at_ms) = match direction {
        Direction::Outbound => (CommStatus::Queued, Some(now)),
        Direction::Inbound => (CommStatus::Received, None),
    };
    TelnxoMessage {
        id: new_id("msg"),
        workspace_id: workspace_id.into(),
        channel,
        direction,
        from: from.into(),
        to: to.into(),
        body: body.into(),
        encoding: None,
        parts: 1,
        whatsapp: None,
        status,
        attempts: 0,
        due_at_ms,
        expires_at_ms: now,
        carrier_ids: Vec::new(),
        receipts: Vec::new(),
        error: None,
        history: vec![step(status, now, None)],
        created_at_ms: now,
    }
}

pub(crate) fn step(status: CommStatus, at_ms: i64, detail: Option<String>) -> CommStep {
    CommStep {
        status: status.as_str().into(),
        at_ms,
        detail,
    }
}

/// A call to place.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub from: String,
    pub to: String,
    pub tts: Option<String>,
    pub audio_url: Option<String>,
    pub record: bool,
}

impl Telnxo {
    /// Counts a send against the workspace's daily quota (sends a day)
    /// and, when its subscription's plan has one, the channel's allowance
    /// for the billing period (`units`: SMS parts, messages; calls are
    /// counted in minutes when they end, and refused once the minutes are
    /// used up). In `tx`, so a refused send counts nothing.
    async fn count_send(
        &self,
        tx: &mut Txn,
        workspace_id: &str,
        channel: Channel,
        units: u64,
    ) -> Result<(), TelnxoError> {
        let quota = tx
            .workspace(workspace_id)
            .await?
            .ok_or_else(|| TelnxoError::NotFound(format!("workspace {workspace_id}")))?
            .daily_quota;
        let day = self.inner.clock.now_ms().div_euclid(MS_PER_DAY);
        let total = tx
            .add_telnxo_usage(workspace_id, &format!("day:{day}"), 1)
            .await?;
        if quota.is_some_and(|q| total > q) {
            return Err(TelnxoError::Refused {
                code: "quota_exceeded",
                message: "the workspace's daily sending quota is reached".into(),
            });
        }
        let Some((counter, allowance)) = self.allowance(tx, workspace_id, channel).await? else {
            return Ok(());
        };
        let used = tx.add_telnxo_usage(workspace_id, &counter, units).await?;
        // Minutes are counted when a call ends: a call may start while
        // any are left.
        let over = match channel {
            Channel::Voice => used >= allowance,
            _ => used > allowance,
        };
        if over {
            let what = match channel {
                Channel::Sms => "SMS parts",
                Channel::Whatsapp => "WhatsApp messages",
                Channel::Voice => "voice minutes",
            };
            return Err(TelnxoError::Refused {
                code: "allowance_exhausted",
                message: format!(
                    "the plan's {allowance} {what} of this billing period are used; upgrade the plan or wait for the next period"
                ),
            });
        }
        Ok(())
    }

    /// The usage counter and allowance of a channel in the workspace's
    /// current billing period, when its plan sets one.
    pub(crate) async fn allowance(
        &self,
        tx: &Txn,
        workspace_id: &str,
        channel: Channel,
    ) -> Result<Option<(String, u64)>, TelnxoError> {
        let Some(sub) = tx.subscription_of_workspace(workspace_id).await? else {
            return Ok(None);
        };
        let Some(allowance) = self
            .inner
            .plans
            .get(&sub.plan_id)
            .and_then(|a| a.of(channel))
        else {
            return Ok(None);
        };
        Ok(Some((
            format!("{}:{}", channel.as_str(), sub.period_start_ms),
            allowance,
        )))
    }

    fn expiry(&self, channel: Channel, now: i64) -> i64 {
        let secs = self.inner.config.limits(channel).validity_secs;
        now.saturating_add(secs.saturating_mul(1000) as i64)
    }

    /// Queues an SMS: `sms.queued` once it is durable.
    pub async fn send_sms(
        &self,
        workspace_id: &str,
        from: &str,
        to: &str,
        body: &str,
    ) -> Result<TelnxoMessage, TelnxoError> {
        let to = e164("to", to)?;
        let from = self.owned_sender(workspace_id, from, Channel::Sms).await?;
        if body.is_empty() {
            return Err(invalid("body", "an SMS needs a body"));
        }
        let encoded = rackwave_sms::encode(body, 0);
        if encoded.parts.len() > MAX_SMS_PARTS {
            return Err(invalid(
                "body",
                format!(
                    "{} parts ({} {} units): at most {MAX_SMS_PARTS}",
                    encoded.parts.len(),
                    encoded.units,
                    encoded.encoding.as_str()
                ),
            ));
        }
        let now = self.inner.clock.now_ms();
        let mut message = new_message(
            workspace_id,
            Channel::Sms,
            Direction::Outbound,
            &from,
            &to,
            body,
            now,
        );
        message.encoding = Some(encoded.encoding.as_str().into());
        message.parts = encoded.parts.len() as u32;
        message.expires_at_ms = self.expiry(Channel::Sms, now);
        let mut tx = self.inner.store.begin().await?;
        self.count_send(&mut tx, workspace_id, Channel::Sms, message.parts as u64)
            .await?;
        tx.put_telnxo_message(&message).await?;
        self.inner
            .events
            .emit_in(
                &mut tx,
                workspace_id,
                SmsQueued {
                    message_id: message.id.clone(),
                    to,
                    from,
                    queued_at: Timestamp(now),
                },
            )
            .await?;
        tx.commit().await?;
        self.inner.events.kick();
        self.wake(Channel::Sms);
        Ok(message)
    }

    /// Queues a WhatsApp message from `from` (or the workspace's first
    /// WhatsApp number). Free-form content (text, interactive) only within
    /// 24 hours of the user's last message to the workspace.
    pub async fn send_whatsapp(
        &self,
        workspace_id: &str,
        from: Option<&str>,
        to: &str,
        content: WhatsappContent,
    ) -> Result<TelnxoMessage, TelnxoError> {
        let to = e164("to", to)?;
        let from = match from {
            Some(f) => {
                self.owned_sender(workspace_id, f, Channel::Whatsapp)
                    .await?
            }
            None => self
                .numbers(workspace_id)
                .await?
                .into_iter()
                .find(|n| n.channels.contains(&Channel::Whatsapp))
                .map(|n| n.number)
                .ok_or_else(|| {
                    invalid(
                        "from",
                        "this workspace has no WhatsApp number (an operator provisions one)",
                    )
                })?,
        };
        let (kind, body, template_name, payload) = match &content {
            WhatsappContent::Text { body } => {
                if body.trim().is_empty() || body.chars().count() > MAX_WHATSAPP_TEXT {
                    return Err(invalid(
                        "text.body",
                        format!("1 to {MAX_WHATSAPP_TEXT} characters"),
                    ));
                }
                ("text", body.clone(), None, serde_json::Value::Null)
            }
            WhatsappContent::Template {
                name,
                language,
                components,
            } => {
                let named = |s: &str| {
                    !s.is_empty()
                        && s.len() <= 512
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                };
                if !named(name) {
                    return Err(invalid(
                        "template.name",
                        "a template name: letters, digits and _",
                    ));
                }
                if !named(language) {
                    return Err(invalid("template.language", "a language code, e.g. en_US"));
                }
                if !(components.is_null() || components.is_array()) {
                    return Err(invalid("template.components", "an array"));
                }
                if components.to_string().len() > MAX_WHATSAPP_OBJECT {
                    return Err(invalid(
                        "template.components",
                        format!("at most {MAX_WHATSAPP_OBJECT} bytes"),
                    ));
                }
                (
                    "template",
                    String::new(),
                    Some(name.clone()),
                    serde_json::json!({"name": name, "language": language, "components": components}),
                )
            }
            WhatsappContent::Interactive(value) => {
                if !value.is_object() || value.get("type").is_none() {
                    return Err(invalid(
                        "interactive",
                        "an object with a type (button, list), as the Cloud API takes it",
                    ));
                }
                if value.to_string().len() > MAX_WHATSAPP_OBJECT {
                    return Err(invalid(
                        "interactive",
                        format!("at most {MAX_WHATSAPP_OBJECT} bytes"),
                    ));
                }
                let body = value
                    .pointer("/body/text")
                    .and_then(|t| t.as_str())
                    .unwrap_or_default()
                    .to_string();
                ("interactive", body, None, value.clone())
            }
        };
        let now = self.inner.clock.now_ms();
        if kind != "template" {
            let last = self.inner.store.whatsapp_window(workspace_id, &to).await?;
            if last.is_none_or(|at| now - at >= WINDOW_MS) {
                return Err(TelnxoError::Refused {
                    code: "outside_window",
                    message: format!(
                        "{to} has not written to this workspace in the last 24 hours: WhatsApp allows only template messages outside the customer service window (Meta error 131047, re-engagement message); send a template"
                    ),
                });
            }
        }
        let mut message = new_message(
            workspace_id,
            Channel::Whatsapp,
            Direction::Outbound,
            &from,
            &to,
            &body,
            now,
        );
        message.whatsapp = Some(WhatsappPart {
            kind: kind.into(),
            template_name,
            content: payload,
            button: None,
        });
        message.expires_at_ms = self.expiry(Channel::Whatsapp, now);
        let mut tx = self.inner.store.begin().await?;
        self.count_send(&mut tx, workspace_id, Channel::Whatsapp, 1)
            .await?;
        tx.put_telnxo_message(&message).await?;
        tx.commit().await?;
        self.wake(Channel::Whatsapp);
        Ok(message)
    }

    /// Queues a call: `voice.initiated` once it is dialling.
    pub async fn place_call(&self, workspace_id: &str, new: NewCall) -> Result<Call, TelnxoError> {
        let to = e164("to", &new.to)?;
        let from = self
            .owned_sender(workspace_id, &new.from, Channel::Voice)
            .await?;
        match (&new.tts, &new.audio_url) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(invalid("tts", "give either tts or audio_url"));
            }
            (Some(t), None) if t.trim().is_empty() || t.chars().count() > MAX_TTS => {
                return Err(invalid("tts", format!("1 to {MAX_TTS} characters")));
            }
            (None, Some(url)) => {
                let ok = url.len() <= 2048
                    && (url.starts_with("https://") || url.starts_with("http://"))
                    && !url.contains(|c: char| c.is_whitespace() || c.is_control());
                if !ok {
                    return Err(invalid("audio_url", "an http(s) URL"));
                }
            }
            _ => {}
        }
        let now = self.inner.clock.now_ms();
        let call = Call {
            id: new_id("call"),
            workspace_id: workspace_id.into(),
            from,
            to,
            tts: new.tts,
            audio_url: new.audio_url,
            record: new.record,
            status: CommStatus::Queued,
            attempts: 0,
            due_at_ms: Some(now),
            expires_at_ms: self.expiry(Channel::Voice, now),
            initiated_at_ms: None,
            answered_at_ms: None,
            ended_at_ms: None,
            duration_seconds: None,
            ring_seconds: None,
            recording_url: None,
            error: None,
            history: vec![step(CommStatus::Queued, now, None)],
            created_at_ms: now,
        };
        let mut tx = self.inner.store.begin().await?;
        self.count_send(&mut tx, workspace_id, Channel::Voice, 0)
            .await?;
        tx.put_call(&call).await?;
        tx.commit().await?;
        self.wake(Channel::Voice);
        Ok(call)
    }

    /// One of the workspace's messages; another's is not found.
    pub async fn message(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<TelnxoMessage, TelnxoError> {
        self.inner
            .store
            .telnxo_message(id)
            .await?
            .filter(|m| m.workspace_id == workspace_id)
            .ok_or_else(|| TelnxoError::NotFound(format!("message {id}")))
    }

    pub async fn messages(
        &self,
        workspace_id: &str,
        channel: Option<Channel>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<TelnxoMessage>, TelnxoError> {
        Ok(self
            .inner
            .store
            .telnxo_messages_of(workspace_id, channel, cursor, limit)
            .await?)
    }

    /// One of the workspace's calls; another's is not found.
    pub async fn call(&self, workspace_id: &str, id: &str) -> Result<Call, TelnxoError> {
        self.inner
            .store
            .call(id)
            .await?
            .filter(|c| c.workspace_id == workspace_id)
            .ok_or_else(|| TelnxoError::NotFound(format!("call {id}")))
    }

    pub async fn calls(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Call>, TelnxoError> {
        Ok(self
            .inner
            .store
            .calls_of(workspace_id, cursor, limit)
            .await?)
    }
}
