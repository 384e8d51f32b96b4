//! Telnxo's records on sled (see `keys` for the layout): bodies of the
//! operations `ops` declares, kept here so the platform's storage reads in
//! one place.

use super::keys::{self, cat, component, group, pair};
use super::kv::{encode, prefix_end, Kv};
use super::SledTxn;
use crate::telnxo::{Call, Channel, TelnxoMessage, TelnxoNumber};
use crate::{Result, StoreError};

fn queue_key(channel: Channel, due_ms: i64, id: &str) -> Vec<u8> {
    keys::timed(&group(keys::TELNXO_QUEUE, channel.as_str()), due_ms, id)
}

fn carrier_key(channel: Channel, carrier_id: &str) -> Vec<u8> {
    pair(
        keys::TELNXO_CARRIER_ID,
        channel.as_str(),
        carrier_id.as_bytes(),
    )
}

pub(super) fn number(kv: &impl Kv, number: &str) -> Result<Option<TelnxoNumber>> {
    kv.get_json(&cat(&[keys::TELNXO_NUMBER, number.as_bytes()]))
}

pub(super) fn numbers_of(kv: &impl Kv, workspace_id: &str) -> Result<Vec<TelnxoNumber>> {
    let prefix = group(keys::TELNXO_NUMBERS_OF, workspace_id);
    let mut out = Vec::new();
    for (key, _) in kv.scan_prefix(&prefix)? {
        if let Some(n) = number(kv, &String::from_utf8_lossy(&key[prefix.len()..]))? {
            out.push(n);
        }
    }
    Ok(out)
}

pub(super) fn message(kv: &impl Kv, id: &str) -> Result<Option<TelnxoMessage>> {
    kv.get_json(&cat(&[keys::TELNXO_MESSAGE, id.as_bytes()]))
}

pub(super) fn call(kv: &impl Kv, id: &str) -> Result<Option<Call>> {
    kv.get_json(&cat(&[keys::TELNXO_CALL, id.as_bytes()]))
}

pub(super) fn by_carrier_id(
    kv: &impl Kv,
    channel: Channel,
    carrier_id: &str,
) -> Result<Option<(String, u32)>> {
    kv.get(&carrier_key(channel, carrier_id))?
        .map(|raw| carrier_entry(&raw))
        .transpose()
}

/// A carrier id's entry: `<message id>\0<part u32>`.
fn carrier_entry(raw: &[u8]) -> Result<(String, u32)> {
    let corrupt = || StoreError::Corrupt("carrier id index entry".into());
    let at = raw.len().checked_sub(5).ok_or_else(corrupt)?;
    let part = u32::from_be_bytes(raw[at + 1..].try_into().map_err(|_| corrupt())?);
    Ok((String::from_utf8_lossy(&raw[..at]).into_owned(), part))
}

pub(super) fn carrier_ids(
    kv: &impl Kv,
    after: Option<(Channel, String)>,
    limit: usize,
) -> Result<Vec<(Channel, String, String, u32)>> {
    let start = match &after {
        // The smallest key after the cursor's.
        Some((channel, id)) => cat(&[&carrier_key(*channel, id), b"\0"]),
        None => keys::TELNXO_CARRIER_ID.to_vec(),
    };
    let end = prefix_end(keys::TELNXO_CARRIER_ID);
    kv.scan(&start, &end, false, limit)?
        .into_iter()
        .map(|(key, raw)| {
            // `tc/<channel>\0<carrier id>`
            let rest = &key[keys::TELNXO_CARRIER_ID.len()..];
            let channel = rest.iter().position(|b| *b == 0).and_then(|nul| {
                Some((
                    Channel::parse(std::str::from_utf8(&rest[..nul]).ok()?)?,
                    nul,
                ))
            });
            let Some((channel, nul)) = channel else {
                return Err(StoreError::Corrupt("carrier id index key".into()));
            };
            let carrier_id = String::from_utf8_lossy(&rest[nul + 1..]).into_owned();
            let (id, part) = carrier_entry(&raw)?;
            Ok((channel, carrier_id, id, part))
        })
        .collect()
}

pub(super) fn due(
    kv: &impl Kv,
    channel: Channel,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<String>> {
    let prefix = group(keys::TELNXO_QUEUE, channel.as_str());
    let upper = cat(&[&prefix, &((now_ms.max(0) as u64) + 1).to_be_bytes()]);
    Ok(kv
        .scan(&prefix, &upper, false, limit)?
        .into_iter()
        .map(|(key, _)| String::from_utf8_lossy(&key[prefix.len() + 9..]).into_owned())
        .collect())
}

pub(super) fn window(kv: &impl Kv, workspace_id: &str, customer: &str) -> Result<Option<i64>> {
    Ok(kv
        .get(&pair(
            keys::TELNXO_WINDOW,
            workspace_id,
            customer.as_bytes(),
        ))?
        .and_then(window_at))
}

fn window_at(raw: Vec<u8>) -> Option<i64> {
    raw.try_into().ok().map(i64::from_be_bytes)
}

pub(super) fn windows_of(kv: &impl Kv, workspace_id: &str) -> Result<Vec<(String, i64)>> {
    let prefix = group(keys::TELNXO_WINDOW, workspace_id);
    Ok(kv
        .scan_prefix(&prefix)?
        .into_iter()
        .filter_map(|(key, raw)| {
            let customer = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            Some((customer, window_at(raw)?))
        })
        .collect())
}

fn usage_key(workspace_id: &str, counter: &str) -> Vec<u8> {
    pair(keys::TELNXO_USAGE, workspace_id, counter.as_bytes())
}

pub(super) fn usage(kv: &impl Kv, workspace_id: &str, counter: &str) -> Result<u64> {
    Ok(kv
        .get(&usage_key(workspace_id, counter))?
        .map_or(0, usage_total))
}

fn usage_total(raw: Vec<u8>) -> u64 {
    raw.try_into().ok().map(u64::from_be_bytes).unwrap_or(0)
}

pub(super) fn usage_of(kv: &impl Kv, workspace_id: &str) -> Result<Vec<(String, u64)>> {
    let prefix = group(keys::TELNXO_USAGE, workspace_id);
    Ok(kv
        .scan_prefix(&prefix)?
        .into_iter()
        .map(|(key, raw)| {
            let counter = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            (counter, usage_total(raw))
        })
        .collect())
}

impl SledTxn {
    pub(super) fn telnxo_put_number(&mut self, n: &TelnxoNumber) -> Result<()> {
        component("number", &n.number)?;
        component("workspace id", &n.workspace_id)?;
        let key = cat(&[keys::TELNXO_NUMBER, n.number.as_bytes()]);
        if let Some(old) = number(self, &n.number)? {
            if old.workspace_id != n.workspace_id {
                return Err(StoreError::Conflict(format!(
                    "{} belongs to another workspace",
                    n.number
                )));
            }
        }
        self.put(
            pair(
                keys::TELNXO_NUMBERS_OF,
                &n.workspace_id,
                n.number.as_bytes(),
            ),
            Vec::new(),
        );
        self.put(key, encode(n));
        Ok(())
    }

    pub(super) fn telnxo_delete_number(&mut self, n: &str) -> Result<bool> {
        let Some(old) = number(self, n)? else {
            return Ok(false);
        };
        self.remove(pair(
            keys::TELNXO_NUMBERS_OF,
            &old.workspace_id,
            n.as_bytes(),
        ));
        self.remove(cat(&[keys::TELNXO_NUMBER, n.as_bytes()]));
        Ok(true)
    }

    /// Adds or replaces a message, keeping the listing and queue entries
    /// in step.
    pub(super) fn telnxo_put_message(&mut self, m: &TelnxoMessage) -> Result<()> {
        component("message id", &m.id)?;
        component("workspace id", &m.workspace_id)?;
        let old = message(self, &m.id)?;
        self.requeue(
            old.as_ref().map(|o| (&o.workspace_id, o.due_at_ms)),
            &m.workspace_id,
            m.channel,
            &m.id,
            m.due_at_ms,
        )?;
        if old.is_none() {
            self.put(
                pair(
                    keys::TELNXO_MESSAGES_OF,
                    &m.workspace_id,
                    &super::listing::suffix(m.created_at_ms, &m.id),
                ),
                Vec::new(),
            );
        }
        self.put(cat(&[keys::TELNXO_MESSAGE, m.id.as_bytes()]), encode(m));
        Ok(())
    }

    pub(super) fn telnxo_put_call(&mut self, c: &Call) -> Result<()> {
        component("call id", &c.id)?;
        component("workspace id", &c.workspace_id)?;
        let old = call(self, &c.id)?;
        self.requeue(
            old.as_ref().map(|o| (&o.workspace_id, o.due_at_ms)),
            &c.workspace_id,
            Channel::Voice,
            &c.id,
            c.due_at_ms,
        )?;
        if old.is_none() {
            self.put(
                pair(
                    keys::TELNXO_CALLS_OF,
                    &c.workspace_id,
                    &super::listing::suffix(c.created_at_ms, &c.id),
                ),
                Vec::new(),
            );
        }
        self.put(cat(&[keys::TELNXO_CALL, c.id.as_bytes()]), encode(c));
        Ok(())
    }

    /// Moves a record's queue entry from its old due time to its new one;
    /// refuses a record changing workspace.
    fn requeue(
        &mut self,
        old: Option<(&String, Option<i64>)>,
        workspace_id: &str,
        channel: Channel,
        id: &str,
        due_ms: Option<i64>,
    ) -> Result<()> {
        if let Some((old_ws, old_due)) = old {
            if old_ws != workspace_id {
                return Err(StoreError::Invalid(format!(
                    "{id} does not change workspace"
                )));
            }
            if let Some(due) = old_due {
                self.remove(queue_key(channel, due, id));
            }
        }
        if let Some(due) = due_ms {
            self.put(queue_key(channel, due, id), Vec::new());
        }
        Ok(())
    }

    pub(super) fn telnxo_put_carrier_id(
        &mut self,
        channel: Channel,
        carrier_id: &str,
        id: &str,
        part: u32,
    ) -> Result<()> {
        component("carrier id", carrier_id)?;
        self.put(
            carrier_key(channel, carrier_id),
            cat(&[id.as_bytes(), b"\0", &part.to_be_bytes()]),
        );
        Ok(())
    }

    pub(super) fn telnxo_set_window(
        &mut self,
        workspace_id: &str,
        customer: &str,
        at_ms: i64,
    ) -> Result<()> {
        component("workspace id", workspace_id)?;
        component("number", customer)?;
        self.put(
            pair(keys::TELNXO_WINDOW, workspace_id, customer.as_bytes()),
            at_ms.to_be_bytes().to_vec(),
        );
        Ok(())
    }

    pub(super) fn telnxo_add_usage(
        &mut self,
        workspace_id: &str,
        counter: &str,
        n: u64,
    ) -> Result<u64> {
        component("workspace id", workspace_id)?;
        component("counter", counter)?;
        let total = usage(self, workspace_id, counter)?.saturating_add(n);
        self.put(
            usage_key(workspace_id, counter),
            total.to_be_bytes().to_vec(),
        );
        Ok(total)
    }
}
