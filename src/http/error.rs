//! The one place where broker errors become HTTP responses, as `application/problem+json`, built
//! from the error's classification (`BrokerError::class`: status, problem type, Retry-After).
//!
//! 4xx bodies say what was wrong and how to fix it; 5xx bodies carry no internals (the broker log has
//! them, under the request id).

use crate::broker::BrokerError;
use crate::wire::Problem;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

/// The problem body (`wire::Problem`) for `status`, problem type `slug` and `detail`, as JSON.
fn problem_body(status: StatusCode, slug: &str, detail: String) -> String {
    let body = Problem {
        problem_type: Some(format!("/problems/{slug}")),
        title: Some(status.canonical_reason().unwrap_or("Error").to_string()),
        status: Some(status.as_u16()),
        detail: Some(detail),
    };
    serde_json::to_string(&body).expect("problem bodies are plain data")
}

/// Builds a problem response with the given status, slug and detail.
pub fn problem(status: StatusCode, slug: &str, detail: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .body(problem_body(status, slug, detail))
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
        problem_body(
            self.status_code(),
            self.class().problem_type,
            self.public_detail(),
        )
    }
}

/// Status, problem type and Retry-After all come from `BrokerError::class`, the classification
/// the audit events use too.
impl ResponseError for BrokerError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.class().status)
            .expect("the error classification names valid HTTP statuses")
    }

    fn error_response(&self) -> HttpResponse {
        let class = self.class();
        let mut response = problem(self.status_code(), class.problem_type, self.public_detail());
        if let Some(seconds) = class.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if matches!(self, BrokerError::Unauthenticated(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statuses themselves are pinned in `broker::errors`; here the response must follow them.
    #[test]
    fn responses_follow_the_error_classification() {
        let errors = [
            BrokerError::Unauthenticated("no token".into()),
            BrokerError::RateLimited { retry_after_s: 7 },
            BrokerError::OffsetOutOfRange {
                offset: 1,
                log_start_offset: 2,
                high_watermark: 3,
            },
            BrokerError::NotLeader { leader: None },
            BrokerError::AuditUnavailable("audit log stopped".into()),
            BrokerError::Internal("secret".into()),
        ];
        for error in errors {
            let class = error.class();
            let response = error.error_response();
            assert_eq!(response.status().as_u16(), class.status, "{error:?}");
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|value| value.to_str().expect("ascii").to_string());
            let expected = class.retry_after_s.map(|seconds| seconds.to_string());
            assert_eq!(retry_after, expected, "{error:?}");
            let challenge = response.headers().get(header::WWW_AUTHENTICATE);
            let unauthenticated = matches!(error, BrokerError::Unauthenticated(_));
            assert_eq!(challenge.is_some(), unauthenticated, "{error:?}");
            let body: serde_json::Value =
                serde_json::from_str(&error.problem_json()).expect("problem JSON");
            assert_eq!(body["status"], class.status, "{error:?}");
            assert_eq!(body["type"], format!("/problems/{}", class.problem_type));
            let detail = body["detail"].as_str().expect("detail");
            assert!(!detail.contains("secret"), "{detail}");
        }
    }
}
