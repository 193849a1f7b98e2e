//! Routes of the cluster: the report, registering and decommissioning brokers, rebalancing.

use std::sync::Arc;

use actix_web::{web, HttpResponse};

use super::extract::Authenticated;
use crate::broker::{Broker, BrokerError};
use crate::wire::AddBroker;

type State = web::Data<Arc<Broker>>;

pub async fn cluster(broker: State, caller: Authenticated) -> Result<HttpResponse, BrokerError> {
    let view = broker.cluster_report(&caller.0).await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn add_broker(
    broker: State,
    caller: Authenticated,
    body: web::Json<AddBroker>,
) -> Result<HttpResponse, BrokerError> {
    broker.add_broker(&caller.0, body.id, &body.peer).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "id": body.id, "peer": body.peer })))
}

pub async fn decommission(
    broker: State,
    caller: Authenticated,
    path: web::Path<u64>,
) -> Result<HttpResponse, BrokerError> {
    let id = path.into_inner();
    broker.decommission(&caller.0, id).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "id": id, "state": "decommissioning" })))
}

pub async fn rebalance(broker: State, caller: Authenticated) -> Result<HttpResponse, BrokerError> {
    broker.rebalance(&caller.0).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "rebalance": "started" })))
}
