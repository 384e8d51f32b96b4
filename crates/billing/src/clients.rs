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

use rackwave_accounts::{hash_password, token_digest, verify_password, AuthGuard};
use rackwave_core::{random_hex, Clock};
use rackwave_store::{
    Client, ClientSession, Contact, Notice, PasswordReset, Store, StoreError, Txn,
};

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
    pub profile: Profile,
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

/// A client's billing profile: who invoices are made out to.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub company: Option<String>,
    pub address: String,
    /// GST state code of the billing address: the place of supply.
    pub state_code: String,
    /// When registered for GST: checked down to its check character, and
    /// of `state_code`.
    pub gstin: Option<String>,
}

impl Profile {
    /// The profile trimmed and checked, or the field at fault.
    pub fn check(p: Profile) -> Result<Profile, BillingError> {
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
        let name = text("name", &p.name, true)?;
        // An address has lines.
        let address = p.address.trim().to_string();
        if address.is_empty()
            || address.len() > MAX_TEXT
            || address.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(invalid(
                "address",
                format!("1 to {MAX_TEXT} characters, lines allowed"),
            ));
        }
        let company = match p.company.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => Some(text("company", c, true)?),
            _ => None,
        };
        let state_code = p.state_code.trim().to_string();
        if state_name(&state_code).is_none() {
            return Err(invalid("state_code", "not a GST state code (like 27)"));
        }
        let gstin = match p.gstin.as_deref().map(str::trim) {
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
        Ok(Profile {
            name,
            company,
            address,
            state_code,
            gstin,
        })
    }
}

/// A password's length rule.
fn check_password(field: &'static str, password: &str) -> Result<(), BillingError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&chars) {
        return Err(invalid(
            field,
            format!("{MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

/// How long a password reset link works.
pub const RESET_TTL_MS: i64 = 3_600_000;
/// One reset email a client per this long.
const RESET_EVERY_MS: i64 = 60_000;
/// What every reset token starts with.
pub const RESET_PREFIX: &str = "rwr_";

/// The clients service (cheap to clone).
#[derive(Clone)]
pub struct Clients {
    store: Store,
    clock: Clock,
    guard: AuthGuard,
    /// Where a reset link points (`<public URL>/portal/reset`).
    reset_url: String,
}

impl Clients {
    /// `public_url`: the HTTP plane's public URL, for the reset links.
    pub fn new(store: Store, clock: Clock, guard: AuthGuard, public_url: &str) -> Clients {
        Clients {
            store,
            clock,
            guard,
            reset_url: format!("{}/portal/reset", public_url.trim_end_matches('/')),
        }
    }

    /// Replaces a client's billing profile (invoices issued before keep
    /// the one they were made out to).
    pub async fn update_profile(
        &self,
        client_id: &str,
        profile: Profile,
    ) -> Result<Client, BillingError> {
        let p = Profile::check(profile)?;
        let mut tx = self.store.begin().await?;
        let mut client = tx
            .client(client_id)
            .await?
            .ok_or_else(|| BillingError::NotFound(format!("no client {client_id}")))?;
        client.name = p.name;
        client.company = p.company;
        client.address = p.address;
        client.state_code = p.state_code;
        client.gstin = p.gstin;
        tx.put_client(&client).await?;
        tx.commit().await?;
        Ok(client)
    }

    /// Changes a client's password, given the current one (checked like a
    /// login from `ip`): every session ends; a new one's token.
    pub async fn change_password(
        &self,
        client: &Client,
        current: &str,
        new: &str,
        ip: IpAddr,
    ) -> Result<String, LoginRefused> {
        check_password("new_password", new).map_err(LoginRefused::Failed)?;
        self.credentials(&client.email, current, ip).await?;
        let hash = hash_password(new)
            .await
            .map_err(|e| LoginRefused::Failed(e.into()))?;
        self.set_password(&client.id, hash)
            .await
            .map_err(LoginRefused::Failed)
    }

    /// Stores a new password hash and moves the session epoch on (every
    /// session ends); a session of the new epoch's token.
    async fn set_password(&self, client_id: &str, hash: String) -> Result<String, BillingError> {
        let mut tx = self.store.begin().await?;
        let mut client = tx
            .client(client_id)
            .await?
            .ok_or_else(|| BillingError::NotFound(format!("no client {client_id}")))?;
        client.password_hash = hash;
        client.session_epoch += 1;
        tx.put_client(&client).await?;
        let token = self.open_session_in(&mut tx, &client).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Mails a single-use reset link to the account's own address (never
    /// to its contacts), valid [`RESET_TTL_MS`]; at most one a minute. An
    /// unknown email does the same work and sends nothing, so the answer
    /// says nothing about who has an account.
    pub async fn request_reset(&self, email: &str) -> Result<(), BillingError> {
        let email = email.trim().to_ascii_lowercase();
        let token = format!("{RESET_PREFIX}{}", random_hex(32));
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let Some(mut client) = tx.client_by_email(&email).await? else {
            return Ok(());
        };
        if client
            .reset_requested_at_ms
            .is_some_and(|at| now - at < RESET_EVERY_MS)
        {
            return Ok(());
        }
        client.reset_requested_at_ms = Some(now);
        tx.put_client(&client).await?;
        tx.put_password_reset(&PasswordReset {
            digest: token_digest(&token),
            client_id: client.id.clone(),
            expires_at_ms: now + RESET_TTL_MS,
            epoch: client.session_epoch,
        })
        .await?;
        tx.queue_notice(&Notice {
            client_id: client.id.clone(),
            kind: "password_reset".into(),
            data: serde_json::json!({
                "reset_url": format!("{}?token={token}", self.reset_url),
                "expires_at": rackwave_core::rfc3339(now + RESET_TTL_MS),
            }),
            created_at_ms: now,
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets a new password with a reset link's token, once: every session
    /// ends (and every other link); a new one's token. A wrong, used or
    /// expired token is `Invalid` (`token`). The token is looked up before
    /// the password is hashed: a wrong one costs no argon2 run.
    pub async fn reset_password(&self, token: &str, new: &str) -> Result<String, BillingError> {
        check_password("password", new)?;
        let refused = || invalid("token", "this reset link is wrong, used or expired");
        if !token.starts_with(RESET_PREFIX) || token.len() > 128 {
            return Err(refused());
        }
        let digest = token_digest(token);
        let live = |r: &PasswordReset, c: &Client| {
            r.expires_at_ms > self.clock.now_ms() && r.epoch == c.session_epoch
        };
        let Some(reset) = self.store.password_reset(&digest).await? else {
            return Err(refused());
        };
        match self.store.client(&reset.client_id).await? {
            Some(c) if live(&reset, &c) => {}
            _ => return Err(refused()),
        }
        let hash = hash_password(new).await?;
        let mut tx = self.store.begin().await?;
        // Again in the transaction: two uses at once, one wins.
        let Some(reset) = tx.password_reset(&digest).await? else {
            return Err(refused());
        };
        tx.delete_password_reset(&digest).await?;
        let mut client = tx
            .client(&reset.client_id)
            .await?
            .filter(|c| live(&reset, c))
            .ok_or_else(refused)?;
        client.password_hash = hash;
        client.session_epoch += 1;
        tx.put_client(&client).await?;
        let session = self.open_session_in(&mut tx, &client).await?;
        tx.commit().await?;
        Ok(session)
    }

    /// Signs a client up; `Conflict` if the email is taken.
    pub async fn sign_up(&self, new: NewClient) -> Result<Client, BillingError> {
        let email = mailbox(&new.email).ok_or_else(|| invalid("email", "not an email address"))?;
        check_password("password", &new.password)?;
        let profile = Profile::check(new.profile)?;
        let client = Client {
            id: format!("cus_{}", random_hex(8)),
            email,
            password_hash: hash_password(&new.password).await?,
            name: profile.name,
            company: profile.company,
            address: profile.address,
            state_code: profile.state_code,
            gstin: profile.gstin,
            created_at_ms: self.clock.now_ms(),
            credit_paise: 0,
            contacts: Vec::new(),
            session_epoch: 0,
            reset_requested_at_ms: None,
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
        let client = self.credentials(email, password, ip).await?;
        let failed = |e: BillingError| LoginRefused::Failed(e);
        let mut tx = self.store.begin().await.map_err(|e| failed(e.into()))?;
        let token = self
            .open_session_in(&mut tx, &client)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(|e| failed(e.into()))?;
        Ok((client, token))
    }

    /// The client whose email and password these are, checked like a
    /// login from `ip` (its delay and lockout), without opening a session.
    async fn credentials(
        &self,
        email: &str,
        password: &str,
        ip: IpAddr,
    ) -> Result<Client, LoginRefused> {
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
        client
            .filter(|_| ok)
            .ok_or_else(|| LoginRefused::Credentials {
                delay: self.guard.failed(ip),
            })
    }

    /// A new session of `client`'s current epoch, in `tx`; its token.
    async fn open_session_in(&self, tx: &mut Txn, client: &Client) -> Result<String, BillingError> {
        let token = format!("{TOKEN_PREFIX}{}", random_hex(32));
        let now = self.clock.now_ms();
        tx.put_client_session(&ClientSession {
            digest: token_digest(&token),
            client_id: client.id.clone(),
            created_at_ms: now,
            expires_at_ms: now + SESSION_TTL_MS,
            epoch: client.session_epoch,
        })
        .await?;
        Ok(token)
    }

    /// The client a session token belongs to, while it lasts.
    pub async fn session(&self, token: &str) -> Result<Option<Client>, BillingError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Ok(None);
        }
        // Looked up by digest: the compare happens on a hash, so its
        // timing says nothing about the token.
        let Some(session) = self.store.client_session(&token_digest(token)).await? else {
            return Ok(None);
        };
        if session.expires_at_ms <= self.clock.now_ms() {
            return Ok(None);
        }
        Ok(self
            .store
            .client(&session.client_id)
            .await?
            .filter(|c| c.session_epoch == session.epoch))
    }

    /// Deletes the logins and reset links that have expired, a batch per
    /// transaction; how many.
    pub async fn forget_expired(&self) -> Result<u64, BillingError> {
        let mut forgotten = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let (n, more) = tx.prune_client_tokens(self.clock.now_ms(), 1000).await?;
            tx.commit_eventually().await?;
            forgotten += n;
            if !more {
                return Ok(forgotten);
            }
        }
    }

    /// Ends a session; whether it existed.
    pub async fn log_out(&self, token: &str) -> Result<bool, BillingError> {
        let mut tx = self.store.begin().await?;
        let gone = tx.delete_client_session(&token_digest(token)).await?;
        tx.commit().await?;
        Ok(gone)
    }
}

/// The CSRF token of a session: what a request authenticated by the
/// session cookie must also carry in `X-CSRF-Token` (a page of ours has
/// it; a cross-site form cannot read it). Derived from the session's
/// secret token, so nothing more is stored.
pub fn csrf_token(session_token: &str) -> String {
    token_digest(&format!("csrf\0{session_token}"))[..32].to_string()
}
