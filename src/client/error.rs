//! The client's error type and the decoding of `application/problem+json` replies.
//!
//! Owns the mapping from a non-2xx HTTP reply to `ClientError::Api`. It must not retry or
//! interpret statuses beyond reporting them.
use std::path::PathBuf;

use crate::wire::Problem;

/// Longest slice of a non-JSON error body kept in `ClientError::Api::detail`.
const DETAIL_BYTES_MAX: usize = 512;

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-2xx status.
    #[error("{status} {title}: {detail}")]
    Api {
        status: u16,
        title: String,
        detail: String,
    },
    /// Connecting, TLS, sending or reading failed.
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot read CA certificate {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} contains no certificate")]
    CaEmpty { path: PathBuf },
    #[error("CA certificate {path} is not usable: {source}")]
    CaCertificate {
        path: PathBuf,
        source: reqwest::Error,
    },
    #[error("reply body larger than {bytes_max} bytes")]
    ResponseTooLarge { bytes_max: u64 },
    /// A 2xx reply whose body is not the expected JSON shape.
    #[error("unexpected reply body: {source}")]
    Decode { source: serde_json::Error },
}

impl ClientError {
    /// The HTTP status of an `Api` error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Builds the `Api` error for a non-2xx reply with `status` and raw `body`.
///
/// A problem+json body (or any JSON object with `title`/`detail`) supplies title and detail;
/// otherwise the title is the status's reason phrase and the detail a bounded slice of the body.
pub fn api_error(status: u16, body: &[u8]) -> ClientError {
    let reason = reason_phrase(status);
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) => ClientError::Api {
            status,
            title: problem.title.unwrap_or_else(|| reason.to_string()),
            detail: problem.detail.unwrap_or_default(),
        },
        Err(_) => ClientError::Api {
            status,
            title: reason.to_string(),
            detail: body_excerpt(body),
        },
    }
}

fn reason_phrase(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("Error")
}

fn body_excerpt(body: &[u8]) -> String {
    let end = body.len().min(DETAIL_BYTES_MAX);
    String::from_utf8_lossy(&body[..end]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_json_supplies_status_title_and_detail() {
        let body = br#"{"type":"https://palisade.dev/problems/forbidden","title":"Forbidden","status":403,"detail":"no ACL allows write on topic orders"}"#;
        match api_error(403, body) {
            ClientError::Api {
                status,
                title,
                detail,
            } => {
                assert_eq!(status, 403);
                assert_eq!(title, "Forbidden");
                assert_eq!(detail, "no ACL allows write on topic orders");
            }
            other => panic!("expected Api error, got {other:?}"),
        }
    }

    #[test]
    fn problem_without_detail_has_empty_detail() {
        let error = api_error(404, br#"{"title":"Not Found","status":404}"#);
        assert_eq!(error.status(), Some(404));
        assert_eq!(error.to_string(), "404 Not Found: ");
    }

    #[test]
    fn non_json_body_falls_back_to_reason_and_excerpt() {
        let error = api_error(502, b"  upstream broke  ");
        match error {
            ClientError::Api { title, detail, .. } => {
                assert_eq!(title, "Bad Gateway");
                assert_eq!(detail, "upstream broke");
            }
            other => panic!("expected Api error, got {other:?}"),
        }
    }

    #[test]
    fn long_non_json_body_is_bounded() {
        let body = vec![b'x'; DETAIL_BYTES_MAX * 3];
        match api_error(500, &body) {
            ClientError::Api { detail, .. } => assert_eq!(detail.len(), DETAIL_BYTES_MAX),
            other => panic!("expected Api error, got {other:?}"),
        }
    }
}
