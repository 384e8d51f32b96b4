//! The pages people use, rendered on the server: the portal (`portal`),
//! the platforms' dashboards (`migosmtp`, `telnxo`) and the pages that
//! refuse (`refused`). Templates are Rust (maud), so a page that does not
//! fit its data does not compile; they take plain views (strings and
//! numbers the HTTP plane fills in), so this crate knows nothing of
//! storage. One stylesheet ([`STYLESHEET`]) and one small script ([`SCRIPT`],
//! Copy buttons) that pages do not need: every page works without
//! JavaScript, every input has a label, keyboard focus is visible.
//!
//! Forms that change something carry a hidden `_csrf` field the HTTP
//! plane checks.

pub mod admin;
pub mod migosmtp;
pub mod portal;
pub mod telnxo;
pub mod webhooks;

use maud::{html, Markup, DOCTYPE};

pub use maud::Markup as Page;

/// The stylesheet every page links (`/static/site.css`).
pub const STYLESHEET: &str = include_str!("../static/site.css");

/// Where the stylesheet is served.
pub const STYLESHEET_PATH: &str = "/static/site.css";

/// The one script, progressive enhancement only (Copy buttons beside
/// values marked `data-copy`): pages work without it.
pub const SCRIPT: &str = include_str!("../static/site.js");

/// Where the script is served.
pub const SCRIPT_PATH: &str = "/static/site.js";

/// The name of the hidden field of CSRF tokens.
pub const CSRF_FIELD: &str = "_csrf";

/// A link of a page's header.
#[derive(Clone, Copy)]
pub struct NavLink<'a> {
    pub href: &'a str,
    pub label: &'a str,
}

/// A whole page: the head, a header with `brand` and its links, the body.
pub fn layout(title: &str, brand: &str, nav: &[NavLink<'_>], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (brand) }
                link rel="stylesheet" href=(STYLESHEET_PATH);
                script src=(SCRIPT_PATH) defer {}
            }
            body {
                header {
                    a.brand href="#main" { (brand) }
                    nav aria-label="Main" {
                        @for link in nav {
                            a href=(link.href) { (link.label) }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// Who is signed in to a platform's dashboard: the heading of its
/// workspace and the portal account it came from.
pub struct SignedIn {
    pub workspace: String,
    pub email: String,
}

/// A platform dashboard's heading.
pub fn signed_in(who: &SignedIn) -> Markup {
    html! {
        h1 { "Overview of " (who.workspace) }
        p.muted { "Signed in from the Rackwave portal as " (who.email) }
    }
}

/// A form of one button that posts to `action` (with the CSRF token): an
/// action on a row (delete, revoke, verify, access). `aria` names it for
/// who cannot see the row it is on.
pub fn action_button(action: &str, csrf: &str, label: &str, aria: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(csrf))
            button type="submit" aria-label=(aria) { (label) }
        }
    }
}

/// The hidden field of a form's CSRF token.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(token); }
}

/// A page that says no, and where to go instead.
pub fn refused(brand: &str, title: &str, message: &str, back: (&str, &str)) -> Markup {
    layout(
        title,
        brand,
        &[],
        html! {
            h1 { (title) }
            p.error role="alert" { (message) }
            p { a href=(back.0) { (back.1) } }
        },
    )
}
