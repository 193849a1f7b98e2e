//! Routes for users, ACLs, the audit log, the cluster view and probes.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::api_doc::{
    Authenticated as AuthProblems, BadRequest, BodyRefused, Conflict, Forbidden, IdPath,
    InsufficientStorage, NotFound, OffsetOutOfRange, UserPath,
};
use super::error::problem;
use super::extract::Authenticated;
use super::metrics::Metrics;
use crate::broker::{AuditQuery, Broker, BrokerError, NewAcl};
use crate::wire::{
    AclList, AclRule, AuditEntry, AuditFilters, AuditHead, AuditPage, CreateAcl, CreateUser,
    ExplainQuery, Explanation, ProbeStatus, RotatedKey, SetPassword, SigningKeyList,
    SigningKeyView, User, UserCreated, UserList,
};

type State = web::Data<Arc<Broker>>;

/// Events returned by one audit read at most.
const AUDIT_PAGE_MAX: u64 = 1000;

/// The users.
#[utoipa::path(get, path = "/v1/users", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every user.", body = UserList),
        AuthProblems, Forbidden,
    ))]
pub async fn list_users(broker: State, caller: Authenticated) -> Result<HttpResponse, BrokerError> {
    let users = broker.list_users(&caller.0).await?;
    let users: Vec<User> = users
        .into_iter()
        .map(|u| User {
            username: u.name,
            superuser: u.superuser,
            created_ms: u.created_ms,
        })
        .collect();
    // Through a JSON value, whose object keys are sorted: the order this answer has always had.
    Ok(HttpResponse::Ok().json(json!(UserList { users })))
}

/// Creates a user.
#[utoipa::path(post, path = "/v1/users", tag = "users", security(("bearer" = [])), request_body = CreateUser,
    responses(
        (status = 201, description = "The user was created.", body = UserCreated),
        BadRequest, BodyRefused, AuthProblems, Forbidden, Conflict, InsufficientStorage,
    ))]
pub async fn create_user(
    broker: State,
    caller: Authenticated,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse, BrokerError> {
    let body = body.into_inner();
    broker
        .create_user(&caller.0, &body.username, &body.password, body.superuser)
        .await?;
    Ok(HttpResponse::Created().json(UserCreated {
        superuser: body.superuser,
        username: body.username,
    }))
}

/// Deletes a user; its tokens stop authenticating.
#[utoipa::path(delete, path = "/v1/users/{user}", tag = "users", security(("bearer" = [])), params(UserPath),
    responses(
        (status = 204, description = "The user is gone."),
        AuthProblems, Forbidden, NotFound, Conflict, InsufficientStorage,
    ))]
pub async fn delete_user(
    broker: State,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, BrokerError> {
    broker.delete_user(&caller.0, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sets a user's password.
#[utoipa::path(put, path = "/v1/users/{user}/password", tag = "users", security(("bearer" = [])), params(UserPath), request_body = SetPassword,
    responses(
        (status = 204, description = "The password is set."),
        BadRequest, BodyRefused, AuthProblems, Forbidden, NotFound, InsufficientStorage,
    ))]
pub async fn set_password(
    broker: State,
    caller: Authenticated,
    path: web::Path<String>,
    body: web::Json<SetPassword>,
) -> Result<HttpResponse, BrokerError> {
    broker
        .set_password(&caller.0, &path, &body.password)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Revokes every token issued to a user so far.
#[utoipa::path(post, path = "/v1/users/{user}/revoke-tokens", tag = "users", security(("bearer" = [])), params(UserPath),
    responses(
        (status = 204, description = "The tokens no longer authenticate."),
        AuthProblems, Forbidden, NotFound, InsufficientStorage,
    ))]
pub async fn revoke_user_tokens(
    broker: State,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, BrokerError> {
    broker.revoke_user_tokens(&caller.0, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The token signing keys (ids and lifetimes, never secrets).
#[utoipa::path(get, path = "/v1/auth/keys", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The keys.", body = SigningKeyList),
        AuthProblems, Forbidden,
    ))]
pub async fn list_signing_keys(
    broker: State,
    caller: Authenticated,
) -> Result<HttpResponse, BrokerError> {
    let keys = broker
        .list_signing_keys(&caller.0)
        .await?
        .into_iter()
        .map(|key| SigningKeyView {
            kid: key.kid,
            created_ms: key.created_ms,
            verify_until_ms: key.verify_until_ms,
            current: key.current,
        })
        .collect();
    Ok(HttpResponse::Ok().json(SigningKeyList { keys }))
}

/// Generates a new signing key; the old one verifies its tokens until they expire.
#[utoipa::path(post, path = "/v1/auth/keys", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 201, description = "The key that now signs new tokens.", body = RotatedKey),
        AuthProblems, Forbidden, InsufficientStorage,
    ))]
pub async fn rotate_signing_key(
    broker: State,
    caller: Authenticated,
) -> Result<HttpResponse, BrokerError> {
    let kid = broker.rotate_signing_key(&caller.0).await?;
    Ok(HttpResponse::Created().json(RotatedKey { kid }))
}

/// The ACL rules.
#[utoipa::path(get, path = "/v1/acls", tag = "acls", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every rule.", body = AclList),
        AuthProblems, Forbidden,
    ))]
pub async fn list_acls(broker: State, caller: Authenticated) -> Result<HttpResponse, BrokerError> {
    let acls = broker.list_acls(&caller.0).await?;
    Ok(HttpResponse::Ok().json(AclList { acls }))
}

/// Explains an access decision: whether `principal` may do `operation` on the resource now,
/// under which rules (a deny wins over any allow; what no rule allows is denied; superusers pass).
#[utoipa::path(get, path = "/v1/acls/explain", tag = "acls", security(("bearer" = [])), params(ExplainQuery),
    responses(
        (status = 200, description = "The decision and the rules behind it.", body = Explanation),
        BadRequest, AuthProblems, Forbidden, NotFound,
    ))]
pub async fn explain_acl(
    broker: State,
    caller: Authenticated,
    query: web::Query<ExplainQuery>,
) -> Result<HttpResponse, BrokerError> {
    let explanation = broker.explain_access(&caller.0, query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(explanation))
}

/// Adds an ACL rule.
#[utoipa::path(post, path = "/v1/acls", tag = "acls", security(("bearer" = [])), request_body = CreateAcl,
    responses(
        (status = 201, description = "The rule with its id.", body = AclRule),
        BadRequest, BodyRefused, AuthProblems, Forbidden, Conflict, InsufficientStorage,
    ))]
pub async fn create_acl(
    broker: State,
    caller: Authenticated,
    body: web::Json<CreateAcl>,
) -> Result<HttpResponse, BrokerError> {
    let body = body.into_inner();
    let acl = NewAcl {
        principal: body.principal,
        resource: body.resource,
        pattern: body.pattern,
        operation: body.operation,
        effect: body.effect,
    };
    let rule = broker.create_acl(&caller.0, acl).await?;
    Ok(HttpResponse::Created().json(rule))
}

/// Removes an ACL rule.
#[utoipa::path(delete, path = "/v1/acls/{id}", tag = "acls", security(("bearer" = [])), params(IdPath),
    responses(
        (status = 204, description = "The rule is gone."),
        BadRequest, AuthProblems, Forbidden, NotFound, InsufficientStorage,
    ))]
pub async fn delete_acl(
    broker: State,
    caller: Authenticated,
    path: web::Path<u64>,
) -> Result<HttpResponse, BrokerError> {
    broker.delete_acl(&caller.0, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A page of audit events, filtered.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditFilters),
    responses(
        (status = 200, description = "Matching events and where to continue.", body = AuditPage),
        BadRequest, AuthProblems, Forbidden, OffsetOutOfRange,
    ))]
pub async fn audit(
    broker: State,
    caller: Authenticated,
    query: web::Query<AuditFilters>,
) -> Result<HttpResponse, BrokerError> {
    let params = query.into_inner();
    let query = AuditQuery {
        from_offset: params.offset.unwrap_or(0),
        limit: params.limit.unwrap_or(AUDIT_PAGE_MAX).min(AUDIT_PAGE_MAX),
        principal: params.principal,
        action: params.action,
        decision: params.decision,
        since_ms: params.since_ms,
        until_ms: params.until_ms,
    };
    let page = broker.read_audit(&caller.0, query).await?;
    Ok(HttpResponse::Ok().json(AuditPage {
        events: page
            .events
            .into_iter()
            .map(|(offset, event)| AuditEntry {
                offset: Some(offset),
                event,
            })
            .collect(),
        next_offset: page.next_offset,
        high_watermark: page.high_watermark,
        log_start_offset: page.log_start_offset,
    }))
}

/// The newest audit event's offset and hash, an anchor for verifying the chain.
#[utoipa::path(get, path = "/v1/audit/head", tag = "audit", security(("bearer" = [])),
    responses(
        (status = 200, description = "The head of the audit log.", body = AuditHead),
        AuthProblems, Forbidden,
    ))]
pub async fn audit_head(broker: State, caller: Authenticated) -> Result<HttpResponse, BrokerError> {
    let head = broker.audit_head(&caller.0).await?;
    Ok(HttpResponse::Ok().json(AuditHead {
        offset: head.offset,
        hash: head.hash,
        time_ms: head.time_ms,
        high_watermark: head.high_watermark,
        log_start_offset: head.log_start_offset,
    }))
}

pub async fn not_found(request: HttpRequest) -> HttpResponse {
    problem(
        StatusCode::NOT_FOUND,
        "no-route",
        format!("no route for {} {}", request.method(), request.path()),
    )
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "Alive.", body = ProbeStatus)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(ProbeStatus {
        status: "ok".to_string(),
    })
}

/// Readiness: the broker serves requests.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses(
        (status = 200, description = "Ready.", body = ProbeStatus),
        (status = 503, description = "Still starting.", body = crate::wire::Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn readyz(broker: State) -> HttpResponse {
    if broker.is_ready() {
        HttpResponse::Ok().json(ProbeStatus {
            status: "ready".to_string(),
        })
    } else {
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "the broker is still starting".into(),
        )
    }
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, description = "The metrics.", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn metrics(metrics: web::Data<Arc<Metrics>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.render())
}
