//! `rackwave admin …`: the admin API from the shell. Each subcommand is one
//! HTTP call; the JSON answer is printed as is, and an error answer exits
//! non-zero with its message.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::config::Config;
use crate::server::ADMIN_TOKEN_FILE;

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Config file of the server: gives the HTTP address and the token.
    #[arg(long, default_value = "config.toml")]
    pub config: PathBuf,
    /// Base URL of the HTTP plane (default: from the config's [http] listen).
    #[arg(long)]
    pub url: Option<String>,
    /// Admin token (default: config, then RACKWAVE_ADMIN_TOKEN, then the
    /// token generated in the data directory).
    #[arg(long, env = "RACKWAVE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Workspaces.
    #[command(subcommand)]
    Workspaces(WorkspacesCmd),
    /// SMTP accounts of a workspace.
    #[command(subcommand, name = "smtp-accounts")]
    SmtpAccounts(SmtpAccountsCmd),
    /// API keys of a workspace.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeysCmd),
    /// Messages and their history.
    #[command(subcommand)]
    Messages(MessagesCmd),
    /// Message counts by status, and the destinations being worked.
    Queue,
    /// Destinations of the delivery engine.
    #[command(subcommand)]
    Destinations(DestinationsCmd),
    /// Sending domains of a workspace.
    #[command(subcommand)]
    Domains(DomainsCmd),
    /// The suppression list of a workspace.
    #[command(subcommand)]
    Suppressions(SuppressionsCmd),
    /// The portal's clients.
    #[command(subcommand)]
    Clients(ClientsCmd),
    /// Clients' subscriptions.
    #[command(subcommand)]
    Subscriptions(SubscriptionsCmd),
    /// Invoices, payments received and credit notes.
    #[command(subcommand)]
    Invoices(InvoicesCmd),
    /// The billing cycle.
    #[command(subcommand)]
    Billing(BillingCmd),
    /// Telnxo numbers and sender ids of workspaces.
    #[command(subcommand)]
    Numbers(NumbersCmd),
}

#[derive(Subcommand, Debug)]
pub enum NumbersCmd {
    /// Gives a number (E.164, or an alphanumeric sender id for SMS) to a
    /// workspace; again for the same workspace, changes its channels.
    Provision {
        #[arg(long)]
        workspace: String,
        /// sms, whatsapp, voice (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "sms")]
        channels: Vec<String>,
        number: String,
    },
    /// Takes a number back from a workspace.
    Release {
        #[arg(long)]
        workspace: String,
        number: String,
    },
}

/// Paging of a listing.
#[derive(Args, Debug)]
pub struct Paging {
    /// From the previous page's next_cursor.
    #[arg(long)]
    cursor: Option<String>,
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum ClientsCmd {
    /// One page, by id; --q searches email, name and company.
    List {
        #[arg(long)]
        q: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// One client with their subscriptions.
    Get { id: String },
}

/// What a listing of subscriptions or invoices is narrowed to.
#[derive(Args, Debug)]
pub struct BillingFilter {
    /// Only this client's (all at once).
    #[arg(long)]
    client: Option<String>,
    /// Subscriptions: trial, pending, active, suspended or cancelled;
    /// invoices: open, paid, overdue or void.
    #[arg(long)]
    status: Option<String>,
    #[command(flatten)]
    paging: Paging,
}

impl BillingFilter {
    fn query(&self) -> String {
        query(&[
            ("client", self.client.clone()),
            ("status", self.status.clone()),
            ("cursor", self.paging.cursor.clone()),
            ("limit", self.paging.limit.map(|l| l.to_string())),
        ])
    }
}

#[derive(Subcommand, Debug)]
pub enum SubscriptionsCmd {
    /// One page, by id.
    List(BillingFilter),
    /// Stops the workspace's sending at once.
    Suspend {
        id: String,
        #[arg(long)]
        reason: String,
    },
    Reactivate {
        id: String,
    },
    /// Ends it for good (its records stay).
    Cancel {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum InvoicesCmd {
    /// One page, by id.
    List(BillingFilter),
    /// One invoice with its payments and credit notes.
    Get { id: String },
    /// Records a payment received (more than the balance becomes credit).
    Pay {
        id: String,
        #[arg(long)]
        amount_paise: i64,
        /// Unique: the bank or gateway reference.
        #[arg(long)]
        reference: String,
    },
    /// Issues a credit note (value before tax).
    Credit {
        id: String,
        #[arg(long)]
        amount_paise: i64,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum BillingCmd {
    /// Runs the cycle now: conversions, renewals, dunning.
    Run,
}

#[derive(Subcommand, Debug)]
pub enum SuppressionsCmd {
    /// One page, in address order.
    List {
        #[arg(long)]
        workspace: String,
        /// hard_bounce, complaint, unsubscribe or manual.
        #[arg(long)]
        reason: Option<String>,
        /// From the previous page's next_cursor.
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Adds an address (reason manual unless said).
    Add {
        #[arg(long)]
        workspace: String,
        address: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        detail: Option<String>,
    },
    /// Removes an address: mail to it is accepted again.
    Remove {
        #[arg(long)]
        workspace: String,
        address: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DomainsCmd {
    /// Adds a domain with a new DKIM key; prints the records to publish.
    Create {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        domain: String,
        /// rsa-2048 (default) or ed25519
        #[arg(long)]
        algorithm: Option<String>,
        #[arg(long)]
        selector: Option<String>,
    },
    List {
        #[arg(long)]
        workspace: String,
    },
    /// Looks the domain's records up in DNS and says what was found.
    Verify {
        #[arg(long)]
        workspace: String,
        domain: String,
    },
    Delete {
        #[arg(long)]
        workspace: String,
        domain: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DestinationsCmd {
    /// Lifts a throttling pause now (the domain's mail is tried at once).
    Resume {
        /// Recipient domain, e.g. gmail.com.
        domain: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum WorkspacesCmd {
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        daily_quota: Option<u64>,
    },
    List,
    Get {
        id: String,
    },
    /// Email events counted per day (dates as YYYY-MM-DD).
    Stats {
        id: String,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        tag: Option<String>,
    },
    /// Changes a workspace's settings.
    Update {
        id: String,
        /// The daily cap on accepted recipients.
        #[arg(long, conflicts_with = "no_daily_quota")]
        daily_quota: Option<u64>,
        /// Remove the daily cap.
        #[arg(long)]
        no_daily_quota: bool,
        /// Send from any domain even once the workspace has verified
        /// sending domains (true or false).
        #[arg(long)]
        allow_unverified_senders: Option<bool>,
        /// Add RFC 8058 one-click unsubscribe headers to its messages by
        /// default (true or false).
        #[arg(long)]
        unsubscribe: Option<bool>,
        /// Put an open pixel in the HTML of its messages by default.
        #[arg(long)]
        track_opens: Option<bool>,
        /// Send the links of its HTML through the click endpoint by
        /// default.
        #[arg(long)]
        track_clicks: Option<bool>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SmtpAccountsCmd {
    Create {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        password: String,
        #[arg(long)]
        daily_quota: u64,
    },
    List {
        #[arg(long)]
        workspace: String,
    },
    /// Deletes an account; its open sessions are refused at their next command.
    Delete {
        #[arg(long)]
        workspace: String,
        username: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApiKeysCmd {
    Create {
        #[arg(long)]
        workspace: String,
        /// migosmtp or telnxo
        #[arg(long)]
        platform: String,
    },
    List {
        #[arg(long)]
        workspace: String,
    },
    /// Revokes a key; its next request is refused.
    Revoke {
        #[arg(long)]
        workspace: String,
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum MessagesCmd {
    List(Box<MessageFilters>),
    /// Sends a message as the workspace: the JSON of `POST
    /// /migosmtp/v1/messages` from a file (`-`: standard input).
    Send {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        file: PathBuf,
    },
    Get {
        id: String,
    },
}

/// What `messages list` selects.
#[derive(Args, Debug)]
pub struct MessageFilters {
    #[arg(long)]
    workspace: Option<String>,
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    queue_id: Option<String>,
    /// Envelope sender.
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    tag: Option<String>,
    /// Created at or after (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Created before (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    #[arg(long)]
    cursor: Option<String>,
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminCliError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("no admin token: pass --token, set RACKWAVE_ADMIN_TOKEN, or run the server once to generate {0}")]
    NoToken(PathBuf),
    #[error("request to {url} failed: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{status}: {message}")]
    Api { status: u16, message: String },
    #[error("reading the message from {path}: {reason}")]
    Message { path: PathBuf, reason: String },
}

/// Runs one admin subcommand and returns the JSON answer.
pub async fn run(args: AdminArgs) -> Result<Value, AdminCliError> {
    let config = if args.config.exists() {
        Some(Config::load(&args.config)?)
    } else {
        None
    };
    let base = args.url.clone().unwrap_or_else(|| {
        let addr = config
            .as_ref()
            .map(|c| c.http.listen)
            .unwrap_or_else(|| crate::config::HttpConfig::default().listen);
        format!("http://{addr}")
    });
    let token = match args.token.clone().filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => token_from(config.as_ref())?,
    };
    let (method, path, mut body) = request_for(&args.command);
    if let AdminCommand::Messages(MessagesCmd::Send { file, .. }) = &args.command {
        body = Some(read_message(file)?);
    }
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    let client = reqwest::Client::new();
    let mut req = client.request(method, &url).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.map_err(|source| AdminCliError::Http {
        url: url.clone(),
        source,
    })?;
    let status = resp.status();
    let value: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = value["error"]["message"]
            .as_str()
            .unwrap_or("request failed")
            .to_string();
        return Err(AdminCliError::Api {
            status: status.as_u16(),
            message,
        });
    }
    Ok(value)
}

fn token_from(config: Option<&Config>) -> Result<String, AdminCliError> {
    if let Some(t) = config.and_then(Config::admin_token) {
        return Ok(t);
    }
    let data = config
        .map(|c| c.storage.path.clone())
        .unwrap_or_else(|| PathBuf::from("data"));
    let file = data.join(ADMIN_TOKEN_FILE);
    read_token(&file).ok_or(AdminCliError::NoToken(file))
}

fn read_token(path: &Path) -> Option<String> {
    let t = std::fs::read_to_string(path).ok()?.trim().to_string();
    (!t.is_empty()).then_some(t)
}

/// `?a=1&b=2` of the parameters that are set (empty when none is).
fn query(params: &[(&str, Option<String>)]) -> String {
    let set: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

/// Percent-encodes a path segment or query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The HTTP request of a subcommand: method, path with query, JSON body.
/// The JSON message of `messages send`, from a file or standard input.
fn read_message(path: &std::path::Path) -> Result<Value, AdminCliError> {
    let fail = |reason: String| AdminCliError::Message {
        path: path.to_path_buf(),
        reason,
    };
    let text = if path == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin()).map_err(|e| fail(e.to_string()))?
    } else {
        std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?
    };
    serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))
}

fn request_for(cmd: &AdminCommand) -> (reqwest::Method, String, Option<Value>) {
    use reqwest::Method;
    match cmd {
        AdminCommand::Clients(ClientsCmd::List { q, paging }) => {
            let query = query(&[
                ("q", q.clone()),
                ("cursor", paging.cursor.clone()),
                ("limit", paging.limit.map(|l| l.to_string())),
            ]);
            (Method::GET, format!("/admin/v1/clients{query}"), None)
        }
        AdminCommand::Clients(ClientsCmd::Get { id }) => {
            (Method::GET, format!("/admin/v1/clients/{}", enc(id)), None)
        }
        AdminCommand::Subscriptions(SubscriptionsCmd::List(f)) => (
            Method::GET,
            format!("/admin/v1/subscriptions{}", f.query()),
            None,
        ),
        AdminCommand::Subscriptions(SubscriptionsCmd::Suspend { id, reason }) => (
            Method::POST,
            format!("/admin/v1/subscriptions/{}/suspend", enc(id)),
            Some(json!({"reason": reason})),
        ),
        AdminCommand::Subscriptions(SubscriptionsCmd::Reactivate { id }) => (
            Method::POST,
            format!("/admin/v1/subscriptions/{}/reactivate", enc(id)),
            None,
        ),
        AdminCommand::Subscriptions(SubscriptionsCmd::Cancel { id }) => (
            Method::POST,
            format!("/admin/v1/subscriptions/{}/cancel", enc(id)),
            None,
        ),
        AdminCommand::Invoices(InvoicesCmd::List(f)) => (
            Method::GET,
            format!("/admin/v1/invoices{}", f.query()),
            None,
        ),
        AdminCommand::Invoices(InvoicesCmd::Get { id }) => {
            (Method::GET, format!("/admin/v1/invoices/{}", enc(id)), None)
        }
        AdminCommand::Invoices(InvoicesCmd::Pay {
            id,
            amount_paise,
            reference,
        }) => (
            Method::POST,
            format!("/admin/v1/invoices/{}/payments", enc(id)),
            Some(json!({"amount_paise": amount_paise, "reference": reference})),
        ),
        AdminCommand::Invoices(InvoicesCmd::Credit {
            id,
            amount_paise,
            reason,
        }) => (
            Method::POST,
            format!("/admin/v1/invoices/{}/credit-notes", enc(id)),
            Some(json!({"amount_paise": amount_paise, "reason": reason})),
        ),
        AdminCommand::Billing(BillingCmd::Run) => {
            (Method::POST, "/admin/v1/billing/run".into(), None)
        }
        AdminCommand::Workspaces(WorkspacesCmd::Create { name, daily_quota }) => (
            Method::POST,
            "/admin/v1/workspaces".into(),
            Some(json!({"name": name, "daily_quota": daily_quota})),
        ),
        AdminCommand::Workspaces(WorkspacesCmd::List) => {
            (Method::GET, "/admin/v1/workspaces".into(), None)
        }
        AdminCommand::Workspaces(WorkspacesCmd::Get { id }) => (
            Method::GET,
            format!("/admin/v1/workspaces/{}", enc(id)),
            None,
        ),
        AdminCommand::Workspaces(WorkspacesCmd::Stats {
            id,
            since,
            until,
            tag,
        }) => {
            let query: Vec<String> = [
                ("since", since.as_deref()),
                ("until", until.as_deref()),
                ("tag", tag.as_deref()),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={}", enc(v))))
            .collect();
            (
                Method::GET,
                format!("/admin/v1/workspaces/{}/stats?{}", enc(id), query.join("&")),
                None,
            )
        }
        AdminCommand::Workspaces(WorkspacesCmd::Update {
            id,
            daily_quota,
            no_daily_quota,
            allow_unverified_senders,
            unsubscribe,
            track_opens,
            track_clicks,
        }) => {
            let mut body = serde_json::Map::new();
            if *no_daily_quota {
                body.insert("daily_quota".into(), Value::Null);
            } else if let Some(q) = daily_quota {
                body.insert("daily_quota".into(), json!(q));
            }
            if let Some(allow) = allow_unverified_senders {
                body.insert("allow_unverified_senders".into(), json!(allow));
            }
            let mut tracking = serde_json::Map::new();
            for (name, on) in [
                ("opens", track_opens),
                ("clicks", track_clicks),
                ("unsubscribe", unsubscribe),
            ] {
                if let Some(on) = on {
                    tracking.insert(name.into(), json!(on));
                }
            }
            if !tracking.is_empty() {
                body.insert("tracking".into(), Value::Object(tracking));
            }
            (
                Method::PATCH,
                format!("/admin/v1/workspaces/{}", enc(id)),
                Some(Value::Object(body)),
            )
        }
        AdminCommand::SmtpAccounts(SmtpAccountsCmd::Create {
            workspace,
            username,
            password,
            daily_quota,
        }) => (
            Method::POST,
            format!("/admin/v1/workspaces/{}/smtp-accounts", enc(workspace)),
            Some(json!({"username": username, "password": password, "daily_quota": daily_quota})),
        ),
        AdminCommand::SmtpAccounts(SmtpAccountsCmd::List { workspace }) => (
            Method::GET,
            format!("/admin/v1/workspaces/{}/smtp-accounts", enc(workspace)),
            None,
        ),
        AdminCommand::ApiKeys(ApiKeysCmd::Create {
            workspace,
            platform,
        }) => (
            Method::POST,
            format!("/admin/v1/workspaces/{}/api-keys", enc(workspace)),
            Some(json!({"platform": platform})),
        ),
        AdminCommand::Messages(MessagesCmd::List(f)) => {
            let MessageFilters {
                workspace,
                to,
                status,
                queue_id,
                from,
                tag,
                since,
                until,
                cursor,
                limit,
            } = f.as_ref();
            let query = query(&[
                ("workspace", workspace.clone()),
                ("to", to.clone()),
                ("status", status.clone()),
                ("queue_id", queue_id.clone()),
                ("from", from.clone()),
                ("tag", tag.clone()),
                ("since", since.clone()),
                ("until", until.clone()),
                ("cursor", cursor.clone()),
                ("limit", limit.map(|l| l.to_string())),
            ]);
            (Method::GET, format!("/admin/v1/messages{query}"), None)
        }
        AdminCommand::Messages(MessagesCmd::Send { workspace, .. }) => (
            Method::POST,
            format!("/admin/v1/workspaces/{}/messages", enc(workspace)),
            None,
        ),
        AdminCommand::Messages(MessagesCmd::Get { id }) => {
            (Method::GET, format!("/admin/v1/messages/{}", enc(id)), None)
        }
        AdminCommand::Queue => (Method::GET, "/admin/v1/queue".into(), None),
        AdminCommand::Domains(DomainsCmd::Create {
            workspace,
            domain,
            algorithm,
            selector,
        }) => (
            Method::POST,
            format!("/admin/v1/workspaces/{}/domains", enc(workspace)),
            Some(json!({"domain": domain, "algorithm": algorithm, "selector": selector})),
        ),
        AdminCommand::Suppressions(SuppressionsCmd::List {
            workspace,
            reason,
            cursor,
            limit,
        }) => {
            let query = query(&[
                ("reason", reason.clone()),
                ("cursor", cursor.clone()),
                ("limit", limit.map(|l| l.to_string())),
            ]);
            (
                Method::GET,
                format!(
                    "/admin/v1/workspaces/{}/suppressions{query}",
                    enc(workspace)
                ),
                None,
            )
        }
        AdminCommand::Suppressions(SuppressionsCmd::Add {
            workspace,
            address,
            reason,
            detail,
        }) => (
            Method::POST,
            format!("/admin/v1/workspaces/{}/suppressions", enc(workspace)),
            Some(json!({"address": address, "reason": reason, "detail": detail})),
        ),
        AdminCommand::Suppressions(SuppressionsCmd::Remove { workspace, address }) => (
            Method::DELETE,
            format!(
                "/admin/v1/workspaces/{}/suppressions/{}",
                enc(workspace),
                enc(address)
            ),
            None,
        ),
        AdminCommand::Domains(DomainsCmd::List { workspace }) => (
            Method::GET,
            format!("/admin/v1/workspaces/{}/domains", enc(workspace)),
            None,
        ),
        AdminCommand::Domains(DomainsCmd::Verify { workspace, domain }) => (
            Method::POST,
            format!(
                "/admin/v1/workspaces/{}/domains/{}/verify",
                enc(workspace),
                enc(domain)
            ),
            None,
        ),
        AdminCommand::Domains(DomainsCmd::Delete { workspace, domain }) => (
            Method::DELETE,
            format!(
                "/admin/v1/workspaces/{}/domains/{}",
                enc(workspace),
                enc(domain)
            ),
            None,
        ),
        AdminCommand::SmtpAccounts(SmtpAccountsCmd::Delete {
            workspace,
            username,
        }) => (
            Method::DELETE,
            format!(
                "/admin/v1/workspaces/{}/smtp-accounts/{}",
                enc(workspace),
                enc(username)
            ),
            None,
        ),
        AdminCommand::ApiKeys(ApiKeysCmd::List { workspace }) => (
            Method::GET,
            format!("/admin/v1/workspaces/{}/api-keys", enc(workspace)),
            None,
        ),
        AdminCommand::ApiKeys(ApiKeysCmd::Revoke { workspace, id }) => (
            Method::DELETE,
            format!(
                "/admin/v1/workspaces/{}/api-keys/{}",
                enc(workspace),
                enc(id)
            ),
            None,
        ),
        AdminCommand::Numbers(NumbersCmd::Provision {
            workspace,
            channels,
            number,
        }) => (
            Method::POST,
            "/telnxo/v1/numbers".into(),
            Some(json!({"workspace_id": workspace, "number": number, "channels": channels})),
        ),
        AdminCommand::Numbers(NumbersCmd::Release { workspace, number }) => (
            Method::DELETE,
            format!(
                "/telnxo/v1/numbers/{}{}",
                enc(number),
                query(&[("workspace_id", Some(workspace.clone()))])
            ),
            None,
        ),
        AdminCommand::Destinations(DestinationsCmd::Resume { domain }) => (
            Method::POST,
            format!("/admin/v1/destinations/{}/resume", enc(domain)),
            None,
        ),
    }
}
