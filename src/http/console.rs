//! The web console: three static files built into the binary (`console/` in the repository),
//! served without a token at `/console`. The page signs in and does everything else through
//! the public API, with the token in the page's memory only (docs/console.md).
//!
//! Every file is sent with a Content-Security-Policy that allows scripts, styles and requests
//! from this origin only (no inline script or style, no third-party host), forbids framing, and
//! sends no referrer.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

/// The policy of every console file.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../console/index.html");
const APP_JS: &str = include_str!("../../console/app.js");
const APP_CSS: &str = include_str!("../../console/app.css");

/// Registers the console's routes (their paths are `extract::CONSOLE_PATHS`).
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/console", web::get().to(index))
        .route("/console/", web::get().to(index))
        .route("/console/app.js", web::get().to(script))
        .route("/console/app.css", web::get().to(style));
}

fn file(content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut response = HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body);
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONSOLE_CSP),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        headers.insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

async fn index() -> HttpResponse {
    file("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> HttpResponse {
    file("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> HttpResponse {
    file("text/css; charset=utf-8", APP_CSS)
}
