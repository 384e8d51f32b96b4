//! The one error shape of every HTTP answer, `{"error": {"code",
//! "message"}}`, and the one mapping from error kinds to statuses.
//!
//! Handlers return [`ApiError`]; any error of a crate that says its
//! [`ErrorKind`] converts into one. Everything axum answers on its own (an
//! unmatched route, a wrong method, an undecodable path or query, a body
//! over the limit) passes through [`json_errors`], which gives it the same
//! shape and keeps its headers (`Allow` on a 405).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rackwave_core::{Classify, ErrorKind};
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, as a path (`to[2]`,
    /// `messages[3].attachments[0].content`).
    pub field: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_request`.
    pub code: String,
    pub message: String,
    /// The request field at fault, as a path (`to[2]`), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    /// A request that is well-formed JSON but cannot be carried out as it
    /// stands (`422`), naming the field at fault.
    pub fn unprocessable(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
        }
    }
    /// A request body that could not be read (too large: `413`).
    pub(crate) fn body(r: axum::extract::rejection::BytesRejection) -> ApiError {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "invalid_request"
        };
        ApiError::new(status, code, r.body_text())
    }
    /// A passing failure (storage, a lock): `503`, try again.
    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "temporarily unavailable; try again",
        )
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        )
    }
}

impl<E: Classify> From<E> for ApiError {
    fn from(e: E) -> ApiError {
        match e.kind() {
            ErrorKind::Invalid => ApiError::invalid(e.to_string()),
            ErrorKind::NotFound => ApiError::not_found(e.to_string()),
            ErrorKind::Conflict => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            ErrorKind::Unavailable => {
                tracing::warn!(error = %e, "HTTP request failed for now");
                ApiError::unavailable()
            }
            ErrorKind::Internal => {
                tracing::error!(error = %e, "internal error in HTTP handler");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                )
            }
        }
    }
}

impl ApiError {
    /// The body's `error` object (also one item of a batch answer).
    pub fn detail(self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.to_string(),
            message: self.message,
            field: self.field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        (
            status,
            Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response()
    }
}

/// The code of an error status axum produced on its own.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNAUTHORIZED => "unauthorized",
        s if s.is_server_error() => "internal",
        _ => "invalid_request",
    }
}

/// Middleware: an error answer that is not already our JSON shape becomes
/// it, with its status and headers kept. A 405 says which methods the
/// route allows (as its `Allow` header does).
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let response = next.run(req).await;
    let status = response.status();
    // JSON errors are ours already; an HTML page that refuses is a page's
    // answer to a person, and stays one.
    let is_ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_ours {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status {
        // The `Allow` header names the methods; axum may add it after this
        // layer has run, so the message only repeats it when it is here.
        StatusCode::METHOD_NOT_ALLOWED => match parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
        {
            Some(allowed) => format!("method {method} not allowed here; allowed: {allowed}"),
            None => format!("method {method} not allowed here (see the Allow header)"),
        },
        StatusCode::NOT_FOUND if text.is_empty() => "no such route".to_string(),
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_string(),
        _ => text,
    };
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail {
            code: code_of(status).to_string(),
            message,
            field: None,
        },
    })
    .expect("an error body serializes");
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    if method == Method::HEAD {
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(body))
}
