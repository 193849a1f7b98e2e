//! Handlers of `palisade cluster ...`: show the cluster as tables, register a joining broker,
//! decommission a broker, start a rebalance.
//!
//! Owns the argument shapes of these commands and the rendering of `GET /v1/cluster` as text.
//! It must not decide anything about placement or membership: the controller does, and its
//! answers (including problem+json errors) are reported as they come.
use std::fmt::Write as _;

use clap::{Args, Subcommand};

use super::output::write_line;
use crate::client::Client;
use crate::wire::{AddBroker, ClusterView};

#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ClusterCommand {
    /// Brokers, controller and partition replicas (GET /v1/cluster).
    Show {
        /// Print the broker's JSON reply instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Register a broker started with `cluster.join = true` (POST /v1/cluster/brokers).
    AddBroker {
        /// Its broker id, as named in its certificate.
        #[arg(long)]
        id: u64,
        /// `host:port` its peer link listens on, as other brokers dial it.
        #[arg(long)]
        peer: String,
    },
    /// Move every replica off a broker so that it can be removed.
    Decommission {
        /// The broker's id.
        id: u64,
    },
    /// Ask the controller to even out replicas and leaders now.
    Rebalance,
}

pub(crate) async fn cluster(command: ClusterCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Show { json: true } => write_line(&serde_json::to_string_pretty(
            &client.cluster_json().await?,
        )?),
        ClusterCommand::Show { json: false } => {
            let view = client.cluster().await?;
            write_line(render(&view).trim_end())
        }
        ClusterCommand::AddBroker { id, peer } => {
            let reply = client
                .add_broker(&AddBroker {
                    id,
                    peer: peer.clone(),
                })
                .await?;
            report(reply, &format!("broker {id} at {peer} registered"))
        }
        ClusterCommand::Decommission { id } => {
            let reply = client.decommission_broker(id).await?;
            report(reply, &format!("broker {id} is being decommissioned"))
        }
        ClusterCommand::Rebalance => {
            let reply = client.rebalance().await?;
            report(reply, "rebalance started")
        }
    }
}

/// Prints a reply body as JSON, or `done` on stderr when the broker sent none.
fn report(reply: Option<serde_json::Value>, done: &str) -> anyhow::Result<()> {
    match reply {
        Some(body) => write_line(&serde_json::to_string_pretty(&body)?),
        None => {
            eprintln!("{done}");
            Ok(())
        }
    }
}

/// The cluster view as text: a controller line, a broker table and a partition table.
pub fn render(view: &ClusterView) -> String {
    let controller = &view.controller;
    let mut text = format!(
        "controller: leader {}, term {}, voters [{}], learners [{}]\n\n",
        optional(controller.leader),
        optional(controller.term),
        ids(&controller.voters),
        ids(&controller.learners),
    );
    let brokers: Vec<Vec<String>> = view
        .brokers
        .iter()
        .map(|broker| {
            vec![
                broker.id.to_string(),
                broker.http.clone(),
                broker.peer.clone(),
                broker.rack.clone().unwrap_or_else(|| "-".into()),
                dash_if_empty(&broker.state),
                dash_if_empty(&broker.controller),
            ]
        })
        .collect();
    let header = ["ID", "HTTP", "PEER", "RACK", "STATE", "CONTROLLER"];
    text.push_str(&table(&header, &brokers));
    text.push('\n');
    let partitions: Vec<Vec<String>> = view
        .partitions
        .iter()
        .map(|partition| {
            let lag: Vec<String> = partition
                .lag
                .iter()
                .map(|(broker, behind)| format!("{broker}:{behind}"))
                .collect();
            vec![
                partition.topic.clone(),
                partition.partition.to_string(),
                ids(&partition.replicas),
                optional(partition.leader),
                optional(partition.commit),
                if lag.is_empty() {
                    "-".into()
                } else {
                    lag.join(" ")
                },
            ]
        })
        .collect();
    let header = ["TOPIC", "PARTITION", "REPLICAS", "LEADER", "COMMIT", "LAG"];
    text.push_str(&table(&header, &partitions));
    text
}

/// Left-aligned columns two spaces apart, padded to the widest cell; "(none)" for no rows.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|name| name.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header: Vec<String> = header.iter().map(|name| name.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    if rows.is_empty() {
        text.push_str("(none)\n");
    }
    text
}

fn optional(value: Option<u64>) -> String {
    value.map_or_else(|| "-".into(), |value| value.to_string())
}

fn ids(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn dash_if_empty(text: &str) -> String {
    if text.is_empty() {
        "-".into()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENTED: &str = r#"{"controller":{"leader":1,"term":3,"voters":[1,2,3],"learners":[4]},
        "brokers":[{"id":1,"http":"https://127.0.0.1:8441","peer":"127.0.0.1:9441","rack":null,
                    "state":"up","controller":"voter"},
                   {"id":4,"http":"https://127.0.0.1:8444","peer":"127.0.0.1:9444","rack":"zone-b",
                    "state":"joining","controller":"learner"}],
        "partitions":[{"topic":"orders","partition":0,"group":5,"replicas":[1,2,3],"leader":1,
                       "commit":120,"lag":{"2":0,"3":4}}]}"#;

    #[test]
    fn renders_controller_brokers_and_partitions() {
        let view: ClusterView = serde_json::from_str(DOCUMENTED).expect("decodes");
        let text = render(&view);
        let expected = "\
controller: leader 1, term 3, voters [1,2,3], learners [4]

ID  HTTP                    PEER            RACK    STATE    CONTROLLER
1   https://127.0.0.1:8441  127.0.0.1:9441  -       up       voter
4   https://127.0.0.1:8444  127.0.0.1:9444  zone-b  joining  learner

TOPIC   PARTITION  REPLICAS  LEADER  COMMIT  LAG
orders  0          1,2,3     1       120     2:0 3:4
";
        assert_eq!(text, expected);
    }

    #[test]
    fn renders_an_empty_view_with_placeholders() {
        let text = render(&ClusterView::default());
        assert!(
            text.starts_with("controller: leader -, term -, voters [], learners []"),
            "{text}"
        );
        assert_eq!(text.matches("(none)").count(), 2, "{text}");
    }
}
