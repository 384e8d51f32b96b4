//! The portal's clients: sign-up with a billing profile, login with email
//! and password, and the sessions a login opens.
//!
//! Passwords are argon2 (`rackwave_accounts::hash_password`); a failed
//! login waits longer each time and locks the address out, exactly as SMTP
//! AUTH does (`rackwave_accounts::AuthGuard`, the `[smtp] auth_*`
//! settings); an unknown email costs the same as a wrong password. A login
//! gives a random token (shown once: the session cookie's value, or a
//! bearer token for API use), stored as its SHA-256 only, valid for
//! [`SESSION_TTL_MS`] on the injectable clock; logging out deletes it.

use std::net::IpAddr;
use std::time::Duration;

use rackwave_accounts::{hash_password, verify_password, AuthGuard};
use rackwave_core::{random_hex, Clock};
use rackwave_store::{Client, ClientSession, Contact, Store, StoreError};
use sha2::{Digest, Sha256};

use crate::error::{invalid, BillingError};
use crate::gstin::{state_name, Gstin};

/// How long a login lasts.
pub const SESSION_TTL_MS: i64 = 14 * 86_400_000;
/// What every session token starts with.
pub const TOKEN_PREFIX: &str = "rwc_";
const MIN_PASSWORD: usize = 10;
const MAX_PASSWORD: usize = 1024;
const MAX_TEXT: usize = 512;

/// An email address as stored (lowercase), if it is one.
fn mailbox(email: &str) -> Option<String> {
    let email = email.trim().to_ascii_lowercase();
    (email.len() <= 254 && email.contains('@') && rackwave_smtp_proto::address::is_mailbox(&email))
        .then_some(email)
}

/// What a sign-up gives.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub email: String,
    pub password: String,
    pub name: String,
    pub company: Option<String>,
    pub address: String,
    pub state_code: String,
    pub gstin: Option<String>,
}

/// Why a login was refused.
#[derive(Debug)]
pub enum LoginRefused {
    /// Wrong email or password (which, it does not say); answered after
    /// `delay`.
    Credentials {
        delay: Duration,
    },
    /// Too many failures from this address: locked out for a while.
    LockedOut,
    Failed(BillingError),
}

/// The clients service (cheap to clone).
#[derive(Clone)]
pub struct Clients {
    store: Store,
    clock: Clock,
    guard: AuthGuard,
}

impl Clients {
    pub fn new(store: Store, clock: Clock, guard: AuthGuard) -> Clients {
        Clients {
            store,
            clock,
            guard,
        }
    }

    /// Signs a client up; `Conflict` if the email is taken.
    pub async fn sign_up(&self, new: NewClient) -> Result<Client, BillingError> {
        let email = mailbox(&new.email).ok_or_else(|| invalid("email", "not an email address"))?;
        let chars = new.password.chars().count();
        if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&chars) {
            return Err(invalid(
                "password",
                format!("{MIN_PASSWORD} to {MAX_PASSWORD} characters"),
            ));
        }
        let text = |field: &'static str, v: &str, required: bool| {
            let v = v.trim();
            if (required && v.is_empty()) || v.len() > MAX_TEXT || v.contains(char::is_control) {
                return Err(invalid(
                    field,
                    format!("1 to {MAX_TEXT} characters without control characters"),
                ));
            }
            Ok(v.to_string())
        };
        let name = text("name", &new.name, true)?;
        let address = text("address", &new.address, true)?;
        let company = match new.company.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => Some(text("company", c, true)?),
            _ => None,
        };
        let state_code = new.state_code.trim().to_string();
        if state_name(&state_code).is_none() {
            return Err(invalid("state_code", "not a GST state code (like 27)"));
        }
        let gstin = match new.gstin.as_deref().map(str::trim) {
            Some(g) if !g.is_empty() => {
                let g = Gstin::parse(g).map_err(|e| invalid("gstin", e.to_string()))?;
                if g.state_code() != state_code {
                    return Err(invalid(
                        "gstin",
                        format!(
                            "registered in state {}, not the billing address's {state_code}",
                            g.state_code()
                        ),
                    ));
                }
                Some(g.to_string())
            }
            _ => None,
        };
        let client = Client {
            id: format!("cus_{}", random_hex(8)),
            email,
            password_hash: hash_password(&new.password).await?,
            name,
            company,
            address,
            state_code,
            gstin,
            created_at_ms: self.clock.now_ms(),
            credit_paise: 0,
            contacts: Vec::new(),
        };
        let mut tx = self.store.begin().await?;
        match tx.insert_client(&client).await {
            Err(StoreError::Conflict(_)) => {
                return Err(BillingError::Conflict(
                    "an account with this email exists".into(),
                ))
            }
            other => other?,
        }
        tx.commit().await?;
        Ok(client)
    }

    /// Replaces a client's contacts (each address once, at most
    /// [`Contact::MAX_PER_CLIENT`]); the client as it now is.
    pub async fn set_contacts(
        &self,
        client_id: &str,
        contacts: Vec<Contact>,
    ) -> Result<Client, BillingError> {
        if contacts.len() > Contact::MAX_PER_CLIENT {
            return Err(invalid(
                "contacts",
                format!("at most {} contacts", Contact::MAX_PER_CLIENT),
            ));
        }
        let mut clean: Vec<Contact> = Vec::with_capacity(contacts.len());
        for c in contacts {
            let email = mailbox(&c.email).ok_or_else(|| {
                invalid("contacts", format!("{} is not an email address", c.email))
            })?;
            let name = c.name.trim().to_string();
            if name.len() > MAX_TEXT || name.contains(char::is_control) {
                return Err(invalid(
                    "contacts",
                    format!("the name of {email} is too long"),
                ));
            }
            if clean.iter().any(|d| d.email == email) {
                return Err(invalid("contacts", format!("{email} is listed twice")));
            }
            clean.push(Contact {
                email,
                name,
                billing: c.billing,
                technical: c.technical,
            });
        }
        let mut tx = self.store.begin().await?;
        let mut client = tx
            .client(client_id)
            .await?
            .ok_or_else(|| BillingError::NotFound(format!("no client {client_id}")))?;
        client.contacts = clean;
        tx.put_client(&client).await?;
        tx.commit().await?;
        Ok(client)
    }

    /// Logs a client in from `ip`: the client and a new session token.
    pub async fn log_in(
        &self,
        email: &str,
        password: &str,
        ip: IpAddr,
    ) -> Result<(Client, String), LoginRefused> {
        // One attempt at a time per client address, so each sees the
        // failures before it (a parallel burst is no more guesses).
        let _turn = self.guard.turn(ip).await;
        if self.guard.is_locked(ip) {
            return Err(LoginRefused::LockedOut);
        }
        let failed = |e: BillingError| LoginRefused::Failed(e);
        let email = email.trim().to_ascii_lowercase();
        let client = self
            .store
            .client_by_email(&email)
            .await
            .map_err(|e| failed(e.into()))?;
        let hash = client.as_ref().map(|c| c.password_hash.clone());
        let ok = verify_password(hash, password)
            .await
            .map_err(|e| failed(e.into()))?;
        let Some(client) = client.filter(|_| ok) else {
            return Err(LoginRefused::Credentials {
                delay: self.guard.failed(ip),
            });
        };
        let token = format!("{TOKEN_PREFIX}{}", random_hex(32));
        let now = self.clock.now_ms();
        let session = ClientSession {
            digest: digest(&token),
            client_id: client.id.clone(),
            created_at_ms: now,
            expires_at_ms: now + SESSION_TTL_MS,
        };
        let mut tx = self.store.begin().await.map_err(|e| failed(e.into()))?;
        tx.put_client_session(&session)
            .await
            .map_err(|e| failed(e.into()))?;
        tx.commit().await.map_err(|e| failed(e.into()))?;
        Ok((client, token))
    }

    /// The client a session token belongs to, while it lasts.
    pub async fn session(&self, token: &str) -> Result<Option<Client>, BillingError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Ok(None);
        }
        // Looked up by digest: the compare happens on a hash, so its
        // timing says nothing about the token.
        let Some(session) = self.store.client_session(&digest(token)).await? else {
            return Ok(None);
        };
        if session.expires_at_ms <= self.clock.now_ms() {
            return Ok(None);
        }
        Ok(self.store.client(&session.client_id).await?)
    }

    /// Ends a session; whether it existed.
    pub async fn log_out(&self, token: &str) -> Result<bool, BillingError> {
        let mut tx = self.store.begin().await?;
        let gone = tx.delete_client_session(&digest(token)).await?;
        tx.commit().await?;
        Ok(gone)
    }
}

fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
