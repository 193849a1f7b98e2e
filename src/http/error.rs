//! The one place where broker errors become HTTP statuses, as `application/problem+json`.
//!
//! 4xx bodies say what was wrong and how to fix it; 5xx bodies carry no internals (the broker log has
//! them, under the request id).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::broker::BrokerError;

#[derive(Serialize)]
pub struct Problem<'a> {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'a str,
    pub status: u16,
    pub detail: String,
}

/// Builds a problem response with the given status, slug and detail.
pub fn problem(status: StatusCode, slug: &str, detail: String) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = Problem {
        kind: format!("/problems/{slug}"),
        title,
        status: status.as_u16(),
        detail,
    };
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .body(serde_json::to_string(&body).expect("problem bodies are plain data"))
}

impl BrokerError {
    fn slug(&self) -> &'static str {
        match self {
            BrokerError::BadRequest(_) => "bad-request",
            BrokerError::Unauthenticated(_) => "unauthenticated",
            BrokerError::Forbidden(_) => "forbidden",
            BrokerError::NotFound(_) => "not-found",
            BrokerError::Conflict(_) => "conflict",
            BrokerError::TooLarge(_) => "too-large",
            BrokerError::RateLimited { .. } => "rate-limited",
            BrokerError::OffsetOutOfRange { .. } => "offset-out-of-range",
            BrokerError::Unavailable(_)
            | BrokerError::NotLeader { .. }
            | BrokerError::Retry(_) => "unavailable",
            BrokerError::AuditUnavailable(_) => "audit-unavailable",
            BrokerError::Internal(_) => "internal",
        }
    }
}

impl BrokerError {
    /// The detail a client may see: 4xx say what was wrong; internal errors stay in the log.
    fn public_detail(&self) -> String {
        if !self.status_code().is_server_error() {
            return self.to_string();
        }
        tracing::warn!(error = %self, "request failed");
        match self {
            BrokerError::Internal(_) => {
                "internal error; the broker log has the details".to_string()
            }
            other => other.to_string(),
        }
    }

    /// The problem body of this error as one line of JSON, for errors that end an event stream
    /// after its response headers were sent.
    pub fn problem_json(&self) -> String {
        let status = self.status_code();
        let body = Problem {
            kind: format!("/problems/{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.public_detail(),
        };
        serde_json::to_string(&body).expect("problem bodies are plain data")
    }
}

impl ResponseError for BrokerError {
    fn status_code(&self) -> StatusCode {
        match self {
            BrokerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            BrokerError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            BrokerError::Forbidden(_) => StatusCode::FORBIDDEN,
            BrokerError::NotFound(_) => StatusCode::NOT_FOUND,
            BrokerError::Conflict(_) => StatusCode::CONFLICT,
            BrokerError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BrokerError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            BrokerError::OffsetOutOfRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            BrokerError::Unavailable(_)
            | BrokerError::NotLeader { .. }
            | BrokerError::Retry(_)
            | BrokerError::AuditUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            BrokerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = problem(status, self.slug(), self.public_detail());
        let retry_after = match self {
            BrokerError::RateLimited { retry_after_s } => Some(*retry_after_s),
            BrokerError::Unavailable(_)
            | BrokerError::NotLeader { .. }
            | BrokerError::Retry(_)
            | BrokerError::AuditUnavailable(_) => Some(1),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if matches!(self, BrokerError::Unauthenticated(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
