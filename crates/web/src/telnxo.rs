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

pub struct Overview {
    pub who: crate::SignedIn,
    pub numbers: Vec<String>,
    pub messages: Vec<Row>,
    pub calls: Vec<Row>,
}

fn rows(caption: &str, id: &str, rows: &[Row]) -> Markup {
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
                            td { code { (r.id) } }
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
            (rows("Newest messages", "messages", &o.messages))
            (rows("Newest calls", "calls", &o.calls))
        },
    )
}
