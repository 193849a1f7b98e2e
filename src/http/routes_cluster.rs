//! Routes of the cluster: the report, registering and decommissioning brokers, rebalancing.

use std::sync::Arc;

use actix_web::{web, HttpResponse};

use super::api_doc::{
    Authenticated as AuthProblems, BadRequest, BodyRefused, Conflict, Forbidden, IdPath,
    InsufficientStorage, NotFound,
};
use super::extract::Authenticated;
use crate::broker::{Broker, BrokerError};
use crate::wire::{AddBroker, ClusterView, DecommissionStarted, RebalanceStarted};

type State = web::Data<Arc<Broker>>;

/// The cluster: controller, brokers, partitions and replica moves.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster", security(("bearer" = [])),
    responses(
        (status = 200, description = "The cluster as this broker sees it.", body = ClusterView),
        AuthProblems, Forbidden,
    ))]
pub async fn cluster(broker: State, caller: Authenticated) -> Result<HttpResponse, BrokerError> {
    let view = broker.cluster_report(&caller.0).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Registers a joining broker.
#[utoipa::path(post, path = "/v1/cluster/brokers", tag = "cluster", security(("bearer" = [])), request_body = AddBroker,
    responses(
        (status = 201, description = "The broker is registered.", body = AddBroker),
        BadRequest, BodyRefused, AuthProblems, Forbidden, Conflict, InsufficientStorage,
    ))]
pub async fn add_broker(
    broker: State,
    caller: Authenticated,
    body: web::Json<AddBroker>,
) -> Result<HttpResponse, BrokerError> {
    broker.add_broker(&caller.0, body.id, &body.peer).await?;
    Ok(HttpResponse::Created().json(body.into_inner()))
}

/// Moves every replica off a broker, then removes it.
#[utoipa::path(post, path = "/v1/cluster/brokers/{id}/decommission", tag = "cluster", security(("bearer" = [])), params(IdPath),
    responses(
        (status = 202, description = "Decommissioning started.", body = DecommissionStarted),
        BadRequest, AuthProblems, Forbidden, NotFound, Conflict, InsufficientStorage,
    ))]
pub async fn decommission(
    broker: State,
    caller: Authenticated,
    path: web::Path<u64>,
) -> Result<HttpResponse, BrokerError> {
    let id = path.into_inner();
    broker.decommission(&caller.0, id).await?;
    Ok(HttpResponse::Accepted().json(DecommissionStarted {
        id,
        state: "decommissioning".to_string(),
    }))
}

/// Starts a rebalance of replicas and leaders.
#[utoipa::path(post, path = "/v1/cluster/rebalance", tag = "cluster", security(("bearer" = [])),
    responses(
        (status = 202, description = "The rebalance started.", body = RebalanceStarted),
        AuthProblems, Forbidden, Conflict, InsufficientStorage,
    ))]
pub async fn rebalance(broker: State, caller: Authenticated) -> Result<HttpResponse, BrokerError> {
    broker.rebalance(&caller.0).await?;
    Ok(HttpResponse::Accepted().json(RebalanceStarted {
        rebalance: "started".to_string(),
    }))
}
