//! The MigoSMTP dashboard.

use maud::{html, Markup};

use crate::{layout, NavLink};

const BRAND: &str = "MigoSMTP";

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
        &[NavLink {
            href: "/migosmtp/",
            label: "Overview",
        }],
        html! {
            (crate::signed_in(&o.who))
            section.cards aria-label="Messages by status" {
                @for (status, n) in &o.counts {
                    div.card { strong { (n) } span class={ "status " (status) } { (status) } }
                }
            }
            h2 id="log" { "Newest messages" }
            @if o.messages.is_empty() {
                p { "No messages yet." }
            } @else {
                table aria-labelledby="log" {
                    thead { tr { th { "Message" } th { "From" } th { "To" } th { "Status" } th { "Queued" } } }
                    tbody {
                        @for m in &o.messages {
                            tr {
                                td { code { (m.id) } }
                                td { (m.from) }
                                td { (m.to) }
                                td { span class={ "status " (m.status) } { (m.status) } }
                                td { (m.created) }
                            }
                        }
                    }
                }
            }
        },
    )
}
