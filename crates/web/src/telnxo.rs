//! The Telnxo dashboard.

use maud::{html, Markup};

use crate::{layout, NavLink};

const BRAND: &str = "Telnxo";

pub fn nav() -> [NavLink<'static>; 2] {
    [
        NavLink {
            href: "/telnxo/",
            label: "Overview",
        },
        NavLink {
            href: "/telnxo/webhooks",
            label: "Webhooks",
        },
    ]
}

/// A message or call as the dashboard lists it.
pub struct Row {
    pub id: String,
    /// `sms`, `whatsapp`, `voice`.
    pub channel: String,
    pub direction: String,
    pub from: String,
    pub to: String,
    pub status: String,
    pub created: String,
}

/// A WhatsApp user who wrote to the workspace, and whether free-form
/// messages can go to them now (WhatsApp's 24-hour window).
pub struct Conversation {
    pub number: String,
    pub last_message: String,
    /// `open until …` or `closed`.
    pub window: String,
}

pub struct Overview {
    pub who: crate::SignedIn,
    pub numbers: Vec<String>,
    pub conversations: Vec<Conversation>,
    pub messages: Vec<Row>,
    pub calls: Vec<Row>,
}

/// One step of a message's or call's life.
pub struct Step {
    pub at: String,
    pub status: String,
    pub detail: String,
}

/// One message or call with its steps and the events it caused.
pub struct Detail {
    pub row: Row,
    pub body: String,
    pub steps: Vec<Step>,
    /// Event types, in order.
    pub events: Vec<String>,
}

/// A message's or call's page.
pub fn detail(d: &Detail) -> Markup {
    layout(
        &d.row.id,
        BRAND,
        &nav(),
        html! {
            h1 { code { (d.row.id) } }
            dl {
                dt { "Channel" } dd { (d.row.channel) " (" (d.row.direction) ")" }
                dt { "From" } dd { (d.row.from) }
                dt { "To" } dd { (d.row.to) }
                dt { "Status" } dd { span class={ "status " (d.row.status) } { (d.row.status) } }
                @if !d.body.is_empty() { dt { "Text" } dd { (d.body) } }
            }
            h2 id="steps" { "Timeline" }
            table aria-labelledby="steps" {
                thead { tr { th { "When" } th { "Status" } th { "Detail" } } }
                tbody { @for s in &d.steps { tr { td { (s.at) } td { (s.status) } td { (s.detail) } } } }
            }
            h2 id="events" { "Events" }
            ul aria-labelledby="events" { @for e in &d.events { li { code { (e) } } } }
        },
    )
}

fn rows(caption: &str, id: &str, base: &str, rows: &[Row]) -> Markup {
    html! {
        h2 id=(id) { (caption) }
        @if rows.is_empty() {
            p { "None yet." }
        } @else {
            table aria-labelledby=(id) {
                thead { tr { th { "Id" } th { "Channel" } th { "Direction" } th { "From" } th { "To" } th { "Status" } th { "Created" } } }
                tbody {
                    @for r in rows {
                        tr {
                            td { a href={ (base) (r.id) } { code { (r.id) } } }
                            td { (r.channel) }
                            td { (r.direction) }
                            td { (r.from) }
                            td { (r.to) }
                            td { span class={ "status " (r.status) } { (r.status) } }
                            td { (r.created) }
                        }
                    }
                }
            }
        }
    }
}

/// The overview: the workspace's numbers, newest messages and calls.
pub fn overview(o: &Overview) -> Markup {
    layout(
        "Overview",
        BRAND,
        &nav(),
        html! {
            (crate::signed_in(&o.who))
            h2 id="numbers" { "Numbers" }
            ul aria-labelledby="numbers" {
                @for n in &o.numbers { li { (n) } }
            }
            h2 id="conversations" { "WhatsApp conversations" }
            @if o.conversations.is_empty() {
                p { "No WhatsApp user has written yet." }
            } @else {
                table aria-labelledby="conversations" {
                    thead { tr { th { "User" } th { "Last message" } th { "Free-form messages" } } }
                    tbody { @for c in &o.conversations { tr { td { (c.number) } td { (c.last_message) } td { (c.window) } } } }
                }
            }
            (rows("Newest messages", "messages", "/telnxo/messages/", &o.messages))
            (rows("Newest calls", "calls", "/telnxo/calls/", &o.calls))
        },
    )
}
