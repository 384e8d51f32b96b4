//! The pages (HTML, from `rackwave-web`): the portal's under `/portal/`,
//! the platforms' dashboards under `/migosmtp/` and `/telnxo/`, single
//! sign-on between them, and the stylesheet. Each part's session is its
//! own cookie scoped to its own path (`rw_portal` on `/portal`,
//! `rw_migosmtp` on `/migosmtp`, `rw_telnxo` on `/telnxo`), so none is
//! ever sent to another. Every form carries a CSRF token in a hidden
//! field: derived from the session where there is one, else the
//! double-submit cookie `rw_csrf` (the login form).

pub(crate) mod admin;
pub(crate) mod platform;
pub(crate) mod portal;
pub(crate) mod webhooks;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rackwave_web::Page as Markup;
use subtle::ConstantTimeEq;

/// An HTML answer that no cache keeps (pages show private data).
pub(crate) fn page(status: StatusCode, markup: Markup) -> Response {
    let mut resp = (status, markup.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Pages are never framed (clickjacking) and load only our own things.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self' http: https:",
        ),
    );
    resp
}

/// A `303 See Other` to `location`, setting `cookies`.
pub(crate) fn see_other(location: &str, cookies: &[String]) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The value of cookie `name`.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

/// A form that carries its CSRF token in its `_csrf` field (`csrf`), as
/// the form extractors (`platform::SignedForm`, `portal::ClientForm`)
/// check it.
pub(crate) trait CarriesCsrf {
    fn csrf(&self) -> Option<&str>;
}

/// Implements [`CarriesCsrf`] for forms with a `csrf: Option<String>`.
macro_rules! carries_csrf {
    ($($form:ty),+) => {
        $(impl $crate::pages::CarriesCsrf for $form {
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        })+
    };
}
pub(crate) use carries_csrf;

/// Whether a form's CSRF field matches what it must (constant time).
pub(crate) fn csrf_ok(given: Option<&str>, want: &str) -> bool {
    let given = given.unwrap_or_default();
    !want.is_empty() && bool::from(given.as_bytes().ct_eq(want.as_bytes()))
}

/// A cookie of a part of the site: HTTP only, secure, same-site lax,
/// scoped to `path`.
pub(crate) fn scoped_cookie(name: &str, value: &str, path: &str, max_age_secs: i64) -> String {
    format!("{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; Secure; SameSite=Lax")
}

/// The double-submit cookie of a form of someone not signed in (there is
/// no session to derive its CSRF token from).
const ANONYMOUS_CSRF_COOKIE: &str = "rw_csrf";

/// A page with a form of someone not signed in: its CSRF token is a fresh
/// random value, in the form and in a strict same-site cookie on `path`
/// (double submit).
pub(crate) fn anonymous_form(
    status: StatusCode,
    path: &str,
    render: impl FnOnce(&str) -> Markup,
) -> Response {
    let csrf = rackwave_core::random_hex(16);
    let mut resp = page(status, render(&csrf));
    let c =
        format!("{ANONYMOUS_CSRF_COOKIE}={csrf}; Path={path}; HttpOnly; Secure; SameSite=Strict");
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Whether an anonymous form came with its double-submit token.
pub(crate) fn anonymous_csrf_ok(headers: &HeaderMap, given: Option<&str>) -> bool {
    csrf_ok(
        given,
        &cookie(headers, ANONYMOUS_CSRF_COOKIE).unwrap_or_default(),
    )
}

/// `GET /static/site.css`
pub(crate) async fn stylesheet() -> Response {
    asset(rackwave_web::STYLESHEET, "text/css; charset=utf-8")
}

/// `GET /static/site.js`
pub(crate) async fn script() -> Response {
    asset(rackwave_web::SCRIPT, "text/javascript; charset=utf-8")
}

/// A static file of the pages, cached for an hour.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}

/// Says in `Server-Timing` how long the server took to answer a page
/// (reading the store and rendering), so a browser's developer tools and
/// `rackwave bench pages` see the server's share apart from the network's.
pub(crate) async fn server_timing(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let began = std::time::Instant::now();
    let mut resp = next.run(request).await;
    let ms = began.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={ms:.2}")) {
        resp.headers_mut().insert("server-timing", v);
    }
    resp
}
