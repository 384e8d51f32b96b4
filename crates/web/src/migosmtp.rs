//! The MigoSMTP dashboard.

use maud::{html, Markup};

use crate::{layout, NavLink};

const BRAND: &str = "MigoSMTP";

fn nav() -> [NavLink<'static>; 2] {
    [
        NavLink {
            href: "/migosmtp/",
            label: "Overview",
        },
        NavLink {
            href: "/migosmtp/messages",
            label: "Message log",
        },
    ]
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

/// The message log: a search by recipient and status, and what it found.
pub fn log(to: &str, status: &str, messages: &[MessageRow]) -> Markup {
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
            (message_table("found", messages))
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

pub struct Overview {
    pub who: crate::SignedIn,
    /// Messages listed, by status.
    pub counts: Vec<(String, u64)>,
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
            section.cards aria-label="Messages by status" {
                @for (status, n) in &o.counts {
                    div.card { strong { (n) } span class={ "status " (status) } { (status) } }
                }
            }
            h2 id="log" { "Newest messages" }
            (message_table("log", &o.messages))
        },
    )
}
