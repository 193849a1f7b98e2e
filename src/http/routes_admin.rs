//! Routes for users, ACLs, the audit log, the cluster view and probes.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::error::problem;
use super::extract::Authenticated;
use super::metrics::Metrics;
use crate::broker::{AuditQuery, Broker, BrokerError, NewAcl};
use crate::wire::{
    AclList, AuditEntry, AuditFilters, AuditHead, AuditPage, CreateAcl, CreateUser, RotatedKey,
    SetPassword, SigningKeyList, SigningKeyView, User, UserList,
};

type State = web::Data<Arc<Broker>>;

/// Events returned by one audit read at most.
const AUDIT_PAGE_MAX: u64 = 1000;

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

pub async fn create_user(
    broker: State,
    caller: Authenticated,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse, BrokerError> {
    let body = body.into_inner();
    broker
        .create_user(&caller.0, &body.username, &body.password, body.superuser)
        .await?;
    Ok(HttpResponse::Created()
        .json(json!({ "username": body.username, "superuser": body.superuser })))
}

pub async fn delete_user(
    broker: State,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, BrokerError> {
    broker.delete_user(&caller.0, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

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

pub async fn revoke_user_tokens(
    broker: State,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, BrokerError> {
    broker.revoke_user_tokens(&caller.0, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

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

pub async fn rotate_signing_key(
    broker: State,
    caller: Authenticated,
) -> Result<HttpResponse, BrokerError> {
    let kid = broker.rotate_signing_key(&caller.0).await?;
    Ok(HttpResponse::Created().json(RotatedKey { kid }))
}

pub async fn list_acls(broker: State, caller: Authenticated) -> Result<HttpResponse, BrokerError> {
    let acls = broker.list_acls(&caller.0).await?;
    Ok(HttpResponse::Ok().json(AclList { acls }))
}

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

pub async fn delete_acl(
    broker: State,
    caller: Authenticated,
    path: web::Path<u64>,
) -> Result<HttpResponse, BrokerError> {
    broker.delete_acl(&caller.0, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

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

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(broker: State) -> HttpResponse {
    if broker.is_ready() {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "the broker is still starting".into(),
        )
    }
}

pub async fn metrics(metrics: web::Data<Arc<Metrics>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.render())
}
