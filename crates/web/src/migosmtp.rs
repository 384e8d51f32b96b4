//! The MigoSMTP dashboard.

use maud::{html, Markup};

use crate::{layout, NavLink};

const BRAND: &str = "MigoSMTP";

pub fn nav() -> [NavLink<'static>; 6] {
    [
        NavLink {
            href: "/migosmtp/",
            label: "Overview",
        },
        NavLink {
            href: "/migosmtp/messages",
            label: "Message log",
        },
        NavLink {
            href: "/migosmtp/domains",
            label: "Sending domains",
        },
        NavLink {
            href: "/migosmtp/credentials",
            label: "Credentials",
        },
        NavLink {
            href: "/migosmtp/webhooks",
            label: "Webhooks",
        },
        NavLink {
            href: "/migosmtp/suppressions",
            label: "Suppressions",
        },
    ]
}

/// `value` for a URL's query: everything but unreserved characters and
/// `@` percent-encoded (a `+` would otherwise come back a space).
fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A suppressed address as listed.
pub struct SuppressionRow {
    pub address: String,
    /// `hard_bounce`, `complaint`, `unsubscribe`, `manual`.
    pub reason: String,
    pub created: String,
}

/// The suppression list: look an address up, remove entries, import a
/// CSV (a file, or pasted), and what the last import did.
pub fn suppressions(
    csrf: &str,
    query: &str,
    rows: &[SuppressionRow],
    next: Option<&str>,
    report: Option<&str>,
) -> Markup {
    layout(
        "Suppressions",
        BRAND,
        &nav(),
        html! {
            h1 { "Suppressions" }
            @if let Some(r) = report {
                p.card role="status" { (r) }
            }
            form.stack method="get" action="/migosmtp/suppressions" role="search" {
                label for="address" { "Look up an address" input id="address" name="address" type="email" value=(query); }
                button type="submit" { "Look up" }
            }
            h2 id="list" { @if query.is_empty() { "Suppressed addresses" } @else { "Found" } }
            @if rows.is_empty() {
                p { "None." }
            } @else {
                table aria-labelledby="list" {
                    thead { tr { th { "Address" } th { "Reason" } th { "Since" } th { span.muted { "Remove" } } } }
                    tbody {
                        @for r in rows {
                            tr {
                                td { (r.address) } td { (r.reason) } td { (r.created) }
                                td { (crate::action_button(&format!("/migosmtp/suppressions/remove?address={}", query_value(&r.address)), csrf, "Remove", &format!("Remove {}", r.address))) }
                            }
                        }
                    }
                }
            }
            @if let Some(n) = next {
                p { a href={ "/migosmtp/suppressions?after=" (query_value(n)) } { "Next page" } }
            }
            h2 id="import" { "Import" }
            form.stack method="post" action="/migosmtp/suppressions/import" enctype="multipart/form-data" {
                (crate::csrf_field(csrf))
                p.muted { "CSV: one address a line, optionally a reason after a comma (hard_bounce, complaint, unsubscribe, manual; manual when none)." }
                label for="file" { "A CSV file" input id="file" name="file" type="file" accept=".csv,text/csv,text/plain"; }
                label for="csv" { "or the lines pasted here" textarea id="csv" name="csv" rows="6" {} }
                button type="submit" { "Import" }
            }
        },
    )
}

/// An SMTP account as the credentials page lists it.
pub struct AccountRow {
    pub username: String,
    pub daily_quota: u64,
    pub created: String,
}

/// An API key as listed: never its secret.
pub struct KeyRow {
    pub id: String,
    pub prefix: String,
    pub created: String,
    pub last_used: String,
}

/// SMTP accounts and API keys: create (the secret is shown once, here),
/// delete, revoke.
pub fn credentials(
    csrf: &str,
    accounts: &[AccountRow],
    keys: &[KeyRow],
    shown_once: Option<(&str, &str)>,
) -> Markup {
    layout(
        "Credentials",
        BRAND,
        &nav(),
        html! {
            h1 { "Credentials" }
            @if let Some((what, secret)) = shown_once {
                div.card role="status" {
                    p { (what) ", shown this once: keep it somewhere safe." }
                    p { input readonly value=(secret) aria-label=(what) data-copy; }
                }
            }
            h2 id="smtp" { "SMTP accounts" }
            table aria-labelledby="smtp" {
                thead { tr { th { "Username" } th { "Daily quota" } th { "Created" } th { span.muted { "Delete" } } } }
                tbody {
                    @for a in accounts {
                        tr {
                            td { (a.username) } td { (a.daily_quota) } td { (a.created) }
                            td { (crate::action_button(&format!("/migosmtp/credentials/smtp-accounts/{}/delete", a.username), csrf, "Delete", &format!("Delete {}", a.username))) }
                        }
                    }
                }
            }
            form.stack method="post" action="/migosmtp/credentials/smtp-accounts" {
                (crate::csrf_field(csrf))
                label for="username" { "New SMTP account's username" input id="username" name="username" required; }
                label for="daily_quota" { "Its daily quota (recipients a day)" input id="daily_quota" name="daily_quota" type="number" min="1" value="1000" required; }
                button type="submit" { "Create SMTP account" }
            }
            h2 id="keys" { "API keys" }
            table aria-labelledby="keys" {
                thead { tr { th { "Key" } th { "Created" } th { "Last used" } th { span.muted { "Revoke" } } } }
                tbody {
                    @for k in keys {
                        tr {
                            td { code { (k.prefix) "…" } } td { (k.created) } td { (k.last_used) }
                            td { (crate::action_button(&format!("/migosmtp/credentials/api-keys/{}/revoke", k.id), csrf, "Revoke", &format!("Revoke {}", k.prefix))) }
                        }
                    }
                }
            }
            (crate::action_button("/migosmtp/credentials/api-keys", csrf, "Create API key", "Create API key"))
        },
    )
}

/// A DNS record a sending domain needs, and what the last check found.
pub struct Record {
    /// `dkim`, `spf`, `return_path`, `dmarc`, `tracking`.
    pub purpose: String,
    pub record_type: String,
    pub name: String,
    pub value: String,
    pub verified: bool,
    pub found: String,
}

/// A sending domain with its records.
pub struct Domain {
    pub domain: String,
    /// `verified` or `unverified`.
    pub status: String,
    pub records: Vec<Record>,
}

/// The workspace's sending domains: each record to publish (selectable,
/// to copy), whether it checks out, and a Verify button.
pub fn domains(csrf: &str, domains: &[Domain]) -> Markup {
    layout(
        "Sending domains",
        BRAND,
        &nav(),
        html! {
            h1 { "Sending domains" }
            @if domains.is_empty() {
                p { "No sending domains yet." }
            }
            @for d in domains {
                section aria-labelledby={ "d-" (d.domain) } {
                    h2 id={ "d-" (d.domain) } { (d.domain) " " span class={ "status " (d.status) } { (d.status) } }
                    table {
                        thead { tr { th { "Purpose" } th { "Type" } th { "Name" } th { "Value" } th { "Checked" } } }
                        tbody {
                            @for r in &d.records {
                                tr {
                                    td { (r.purpose) }
                                    td { (r.record_type) }
                                    td { input readonly value=(r.name) aria-label={ (r.purpose) " record name" } data-copy; }
                                    td { input readonly value=(r.value) aria-label={ (r.purpose) " record value" } data-copy; }
                                    td {
                                        @if r.verified { span.status.delivered { "found" } }
                                        @else { span.status.failed { "not found" } " " span.muted { (r.found) } }
                                    }
                                }
                            }
                        }
                    }
                    (crate::action_button(&format!("/migosmtp/domains/{}/verify", d.domain), csrf, &format!("Verify {}", d.domain), &format!("Verify {}", d.domain)))
                }
            }
            h2 id="add" { "Add a sending domain" }
            form.stack method="post" action="/migosmtp/domains" aria-labelledby="add" {
                (crate::csrf_field(csrf))
                label for="domain" { "Domain (mail will come from addresses at it)" input id="domain" name="domain" required placeholder="mail.example.com"; }
                button type="submit" { "Add the domain" }
            }
        },
    )
}

/// The message table of the overview and the log: each id links to its
/// timeline.
fn message_table(id: &str, messages: &[MessageRow]) -> Markup {
    html! {
        @if messages.is_empty() {
            p { "No messages." }
        } @else {
            table aria-labelledby=(id) {
                thead { tr { th { "Message" } th { "From" } th { "To" } th { "Status" } th { "Queued" } } }
                tbody {
                    @for m in messages {
                        tr {
                            td { a href={ "/migosmtp/messages/" (m.id) } { code { (m.id) } } }
                            td { (m.from) }
                            td { (m.to) }
                            td { span class={ "status " (m.status) } { (m.status) } }
                            td { (m.created) }
                        }
                    }
                }
            }
        }
    }
}

/// The message log: a search by recipient and status, what it found, and
/// a link to older messages (`next`, a cursor) when there are more. A
/// rare status is looked for in a bounded stretch of the log at a time,
/// so a page may be short, or empty, and still have older ones.
pub fn log(to: &str, status: &str, messages: &[MessageRow], next: Option<&str>) -> Markup {
    layout(
        "Message log",
        BRAND,
        &nav(),
        html! {
            h1 { "Message log" }
            form.stack method="get" action="/migosmtp/messages" role="search" {
                label for="to" { "Recipient" input id="to" name="to" type="email" value=(to); }
                label for="status" { "Status"
                    select id="status" name="status" {
                        @for s in ["", "queued", "deferred", "delivered", "bounced"] {
                            option value=(s) selected[s == status] { @if s.is_empty() { "any" } @else { (s) } }
                        }
                    }
                }
                button type="submit" { "Search" }
            }
            h2 id="found" { "Messages" }
            @if messages.is_empty() && next.is_some() {
                p { "None among the newest messages looked at." }
            } @else {
                (message_table("found", messages))
            }
            @if let Some(cursor) = next {
                p { a href={ "/migosmtp/messages?to=" (query_value(to)) "&status=" (query_value(status)) "&cursor=" (query_value(cursor)) } { "Older messages" } }
            }
        },
    )
}

/// One step of a message's timeline.
pub struct Step {
    pub at: String,
    /// `email.queued`, `email.deferred`, …
    pub event: String,
    pub status: String,
    /// The remote reply, MX host and TLS of a delivery attempt, when it was
    /// one.
    pub detail: String,
}

/// A message with its timeline.
pub struct Message {
    pub row: MessageRow,
    pub subject: String,
    pub steps: Vec<Step>,
}

/// One message's timeline: every status change and delivery attempt.
pub fn message(m: &Message) -> Markup {
    layout(
        &m.row.id,
        BRAND,
        &nav(),
        html! {
            h1 { "Message " code { (m.row.id) } }
            dl {
                dt { "From" } dd { (m.row.from) }
                dt { "To" } dd { (m.row.to) }
                dt { "Subject" } dd { (m.subject) }
                dt { "Status" } dd { span class={ "status " (m.row.status) } { (m.row.status) } }
            }
            h2 id="timeline" { "Timeline" }
            table aria-labelledby="timeline" {
                thead { tr { th { "When" } th { "Event" } th { "Status" } th { "Detail" } } }
                tbody {
                    @for s in &m.steps {
                        tr { td { (s.at) } td { (s.event) } td { (s.status) } td { (s.detail) } }
                    }
                }
            }
        },
    )
}

/// A message as the log lists it.
pub struct MessageRow {
    pub id: String,
    pub from: String,
    pub to: String,
    pub status: String,
    pub created: String,
}

/// The series of the overview's chart, in its order, with their colours.
pub const SERIES: [(&str, &str); 6] = [
    ("email.sent", "#0b5cad"),
    ("email.delivered", "#116329"),
    ("email.bounced", "#a40e26"),
    ("email.opened", "#8250df"),
    ("email.clicked", "#bf8700"),
    ("email.complained", "#cf222e"),
];

/// One day of the chart: its label (`2026-06-07`) and the count of each
/// of [`SERIES`].
pub struct Day {
    pub label: String,
    pub counts: [u64; 6],
}

const CHART_W: u64 = 720;
const CHART_H: u64 = 180;

/// The last days' events as lines, drawn on the server (SVG), with the
/// totals beside it as text for whoever does not see the chart.
pub fn chart(days: &[Day]) -> Markup {
    let max = days.iter().flat_map(|d| d.counts).max().unwrap_or(0).max(1);
    let step = CHART_W / (days.len().max(2) as u64 - 1);
    let point = |i: usize, n: u64| format!("{},{}", i as u64 * step, CHART_H - n * CHART_H / max);
    let first = days.first().map_or("", |d| d.label.as_str());
    let last = days.last().map_or("", |d| d.label.as_str());
    html! {
        figure {
            svg role="img" aria-labelledby="chart-title" viewBox={ "0 0 " (CHART_W) " " (CHART_H + 20) } width="100%" {
                title id="chart-title" { "Events a day from " (first) " to " (last) }
                line x1="0" y1=(CHART_H) x2=(CHART_W) y2=(CHART_H) stroke="#d0d7de";
                @for (s, (_, colour)) in SERIES.iter().enumerate() {
                    polyline fill="none" stroke=(colour) stroke-width="2"
                        points=(days.iter().enumerate().map(|(i, d)| point(i, d.counts[s])).collect::<Vec<_>>().join(" ")) {}
                }
                text x="0" y=(CHART_H + 16) font-size="12" fill="#57606a" { (first) }
                text x=(CHART_W) y=(CHART_H + 16) font-size="12" fill="#57606a" text-anchor="end" { (last) }
            }
            figcaption {
                ul.legend {
                    @for (s, (name, colour)) in SERIES.iter().enumerate() {
                        li { span style={ "color:" (colour) } { "■ " } (name) ": " (days.iter().map(|d| d.counts[s]).sum::<u64>()) }
                    }
                }
            }
        }
    }
}

pub struct Overview {
    pub who: crate::SignedIn,
    /// The last 30 days, oldest first.
    pub days: Vec<Day>,
    /// The workspace's messages waiting in the queue now.
    pub waiting: u64,
    /// The newest messages.
    pub messages: Vec<MessageRow>,
}

/// The overview: counts and the newest messages of the signed-in
/// workspace.
pub fn overview(o: &Overview) -> Markup {
    layout(
        "Overview",
        BRAND,
        &nav(),
        html! {
            (crate::signed_in(&o.who))
            h2 { "The last 30 days" }
            (chart(&o.days))
            section.cards aria-label="Totals" {
                div.card { strong { (o.waiting) } span.status { "waiting in the queue" } }
                @for (s, (name, _)) in SERIES.iter().take(3).enumerate() {
                    div.card { strong { (o.days.iter().map(|d| d.counts[s]).sum::<u64>()) } span.status { (name.trim_start_matches("email.")) " in 30 days" } }
                }
            }
            h2 id="log" { "Newest messages" }
            (message_table("log", &o.messages))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_scales_to_the_busiest_day_and_totals_each_series() {
        let days = vec![
            Day {
                label: "2026-06-06".into(),
                counts: [4, 2, 0, 0, 0, 0],
            },
            Day {
                label: "2026-06-07".into(),
                counts: [8, 6, 1, 0, 0, 0],
            },
        ];
        let svg = chart(&days).into_string();
        // Sent: 4 is half the busiest day's 8, 8 reaches the top.
        assert!(svg.contains(r#"points="0,90 720,0""#), "{svg}");
        assert!(svg.contains("email.sent: 12") && svg.contains("email.bounced: 1"));
        assert!(svg.contains("Events a day from 2026-06-06 to 2026-06-07"));
        // No events: a flat line, no division by zero.
        let quiet = chart(&[Day {
            label: "2026-06-07".into(),
            counts: [0; 6],
        }])
        .into_string();
        assert!(quiet.contains(r#"points="0,180""#), "{quiet}");
    }
}
