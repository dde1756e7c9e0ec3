//! HTTP answers: the protocol's JSON errors and CORS headers.

use axum::body::Body;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::config::{AllowedOrigins, EngineConfig};

/// Engine.IO's error codes, answered as `{"code":N,"message":"..."}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProtocolError {
    UnknownTransport,
    UnknownSid,
    BadHandshakeMethod,
    BadRequest,
    Forbidden,
    UnsupportedProtocolVersion,
}

impl ProtocolError {
    fn code(self) -> u8 {
        match self {
            Self::UnknownTransport => 0,
            Self::UnknownSid => 1,
            Self::BadHandshakeMethod => 2,
            Self::BadRequest => 3,
            Self::Forbidden => 4,
            Self::UnsupportedProtocolVersion => 5,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::UnknownTransport => "Transport unknown",
            Self::UnknownSid => "Session ID unknown",
            Self::BadHandshakeMethod => "Bad handshake method",
            Self::BadRequest => "Bad request",
            Self::Forbidden => "Forbidden",
            Self::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    pub(crate) fn response(self) -> Response<Body> {
        self.response_with(None)
    }

    /// The error with an extra human-readable `context` field saying what to fix.
    pub(crate) fn response_with(self, context: Option<&str>) -> Response<Body> {
        let status = match self {
            Self::Forbidden => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut body = serde_json::json!({ "code": self.code(), "message": self.message() });
        if let Some(context) = context {
            body["context"] = context.into();
        }
        json_response(status, body.to_string())
    }
}

pub(crate) fn json_response(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

pub(crate) fn text_response(status: StatusCode, body: impl Into<Body>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=UTF-8")
        .body(body.into())
        .unwrap_or_default()
}

/// Adds CORS headers for an allowed `Origin` (nothing for same-origin requests).
pub(crate) fn apply_cors(
    config: &EngineConfig,
    origin: Option<&HeaderValue>,
    response: &mut Response<Body>,
) {
    let Some(origin) = origin else {
        return;
    };
    if !config.allowed_origins.allows(origin) {
        return;
    }
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    // Lets a cross-origin client read the poll answer's sequence number.
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-tidewire-seq"),
    );
    if config.cors_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// Whether a request's origin passes the configured list (requests without `Origin` pass).
pub(crate) fn origin_allowed(config: &EngineConfig, headers: &HeaderMap) -> bool {
    match (&config.allowed_origins, headers.get(header::ORIGIN)) {
        (AllowedOrigins::Any, _) | (_, None) => true,
        (list, Some(origin)) => list.allows(origin),
    }
}

/// The answer to a CORS preflight.
pub(crate) fn preflight(config: &EngineConfig, headers: &HeaderMap) -> Response<Body> {
    let mut response = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .unwrap_or_default();
    if origin_allowed(config, headers) {
        apply_cors(config, headers.get(header::ORIGIN), &mut response);
        let h = response.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        if let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
    }
    response
}
