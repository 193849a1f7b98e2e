//! Client commands of the `palisade` binary (clap derive): login, topic, produce, consume,
//! user, acl, audit, cluster and bench.
//!
//! Owns argument shapes and the dispatch to `Client` calls; output is JSON (pretty for
//! single answers, one line per record for streams) so scripts can consume it. It must not
//! hold broker logic; `main.rs` only parses arguments and calls `run`.
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::client::admin;
use crate::client::bench::{self, BenchArgs};
use crate::client::cluster::{self, ClusterArgs};
#[cfg(test)]
use crate::client::dto::Effect;
use crate::client::streams::{self, ConsumeArgs, ProduceArgs};
use crate::client::token_store;
use crate::client::Client;

/// Options shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Base URL of a broker's HTTPS API.
    #[arg(
        long,
        env = "PALISADE_URL",
        default_value = "https://127.0.0.1:8441",
        global = true
    )]
    pub url: String,
    /// PEM file of the cluster CA to trust (instead of the platform's roots).
    #[arg(long, env = "PALISADE_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Access token; defaults to the one stored by `palisade login`.
    #[arg(long, env = "PALISADE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

/// Client commands.
#[derive(Debug, Clone, Subcommand)]
pub enum ClientCommand {
    /// Log in and store the access token for later commands.
    Login(LoginArgs),
    /// Create, list, describe and delete topics.
    Topic(TopicArgs),
    /// Produce records: one per stdin line, or `--value`.
    Produce(ProduceArgs),
    /// Print records as JSON lines; `--follow` keeps long-polling.
    Consume(ConsumeArgs),
    /// Manage users.
    User(UserArgs),
    /// Manage ACL rules.
    Acl(AclArgs),
    /// Read audit events.
    Audit(AuditArgs),
    /// Show the cluster; add, decommission and rebalance brokers.
    Cluster(ClusterArgs),
    /// Measure produce or consume throughput and latency.
    Bench(BenchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    #[arg(long, short, default_value = "admin")]
    pub username: String,
    /// Password; when absent, the first line of stdin is read.
    #[arg(long, env = "PALISADE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct TopicArgs {
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TopicCommand {
    List,
    Create {
        name: String,
        #[arg(long)]
        partitions: Option<u32>,
        #[arg(long)]
        replication_factor: Option<u16>,
        #[arg(long)]
        retention_ms: Option<u64>,
        #[arg(long)]
        retention_bytes: Option<u64>,
    },
    Describe {
        name: String,
    },
    Delete {
        name: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    List,
    /// Create a user; the password comes from `--password` or the first line of stdin.
    Create {
        username: String,
        #[arg(long, env = "PALISADE_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[arg(long)]
        superuser: bool,
    },
    Delete {
        username: String,
    },
    /// Set a user's password (from `--password` or the first line of stdin).
    Passwd {
        username: String,
        #[arg(long, env = "PALISADE_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AclArgs {
    #[command(subcommand)]
    pub command: AclCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AclCommand {
    List,
    /// Add a rule. Name pattern: `--name N` (literal), `--prefix P`, or neither for any name.
    Create {
        /// User name, or `*` for every principal.
        #[arg(long)]
        principal: String,
        #[arg(long, value_enum)]
        resource: ResourceArg,
        #[arg(long, conflicts_with = "prefix")]
        name: Option<String>,
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long, value_enum)]
        operation: OperationArg,
        #[arg(long, value_enum, default_value = "allow")]
        effect: EffectArg,
    },
    Delete {
        id: u64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ResourceArg {
    Topic,
    Group,
    Cluster,
    User,
    Audit,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OperationArg {
    Read,
    Write,
    Create,
    Delete,
    Describe,
    Alter,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EffectArg {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DecisionArg {
    Allow,
    Deny,
    Success,
    Failure,
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Print audit events as JSON lines, paging through the whole log (or up to --limit).
    List {
        /// Audit log position to start from.
        #[arg(long)]
        offset: Option<u64>,
        #[arg(long)]
        since_ms: Option<u64>,
        #[arg(long)]
        until_ms: Option<u64>,
        #[arg(long)]
        principal: Option<String>,
        #[arg(long)]
        action: Option<String>,
        #[arg(long, value_enum)]
        decision: Option<DecisionArg>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Read the whole audit log and check its hash chain end to end (exit 1 if broken).
    Verify,
}

/// Runs one client command against the broker named by `global`.
pub async fn run(command: ClientCommand, global: GlobalArgs) -> anyhow::Result<()> {
    match dispatch(command, global).await {
        // The reader of our output went away (`palisade consume ... | head`): not a failure.
        Err(error) if streams::is_output_closed(&error) => Ok(()),
        outcome => outcome,
    }
}

async fn dispatch(command: ClientCommand, global: GlobalArgs) -> anyhow::Result<()> {
    match command {
        ClientCommand::Login(args) => login(args, &global).await,
        ClientCommand::Topic(args) => admin::topic(args.command, &connect(&global)?).await,
        ClientCommand::Produce(args) => streams::produce(args, &connect(&global)?).await,
        ClientCommand::Consume(args) => streams::consume(args, &connect(&global)?).await,
        ClientCommand::User(args) => admin::user(args.command, &connect(&global)?).await,
        ClientCommand::Acl(args) => admin::acl(args.command, &connect(&global)?).await,
        ClientCommand::Audit(args) => admin::audit(args.command, &connect(&global)?).await,
        ClientCommand::Cluster(args) => cluster::cluster(args.command, &connect(&global)?).await,
        ClientCommand::Bench(args) => {
            let token = resolve_token(&global)?;
            bench::run(args, &global, token).await
        }
    }
}

/// The token to present: `--token`/`PALISADE_TOKEN`, else the stored one.
pub fn resolve_token(global: &GlobalArgs) -> anyhow::Result<Option<String>> {
    if let Some(token) = &global.token {
        return Ok(Some(token.clone()));
    }
    token_store::load(&token_store::default_token_path()?)
}

/// A client for `global.url`, carrying the resolved token if there is one.
pub fn connect(global: &GlobalArgs) -> anyhow::Result<Client> {
    let client = Client::new(&global.url, global.ca_cert.as_deref())
        .with_context(|| format!("connecting to {}", global.url))?;
    Ok(match resolve_token(global)? {
        Some(token) => client.with_token(token),
        None => client,
    })
}

async fn login(args: LoginArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let client = Client::new(&global.url, global.ca_cert.as_deref())?;
    let password = match args.password {
        Some(password) => password,
        None => streams::read_secret_line("password").await?,
    };
    let reply = client.login(&args.username, &password).await?;
    let path = token_store::default_token_path()?;
    token_store::save(&path, &reply.access_token)?;
    eprintln!(
        "logged in as {}; token stored in {} (expires in {} s)",
        args.username,
        path.display(),
        reply.expires_in
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: ClientCommand,
    }

    fn parse(args: &[&str]) -> TestCli {
        TestCli::try_parse_from(args).expect("arguments parse")
    }

    #[test]
    fn global_options_parse_after_the_subcommand() {
        let cli = parse(&[
            "palisade",
            "topic",
            "list",
            "--url",
            "https://b:1",
            "--token",
            "t",
        ]);
        assert_eq!(cli.global.url, "https://b:1");
        assert_eq!(cli.global.token.as_deref(), Some("t"));
        assert!(matches!(
            cli.command,
            ClientCommand::Topic(TopicArgs {
                command: TopicCommand::List
            })
        ));
    }

    #[test]
    fn acl_create_builds_a_prefix_rule() {
        let cli = parse(&[
            "palisade",
            "acl",
            "create",
            "--principal",
            "alice",
            "--resource",
            "topic",
            "--prefix",
            "orders.",
            "--operation",
            "write",
        ]);
        let ClientCommand::Acl(AclArgs {
            command:
                AclCommand::Create {
                    prefix,
                    name,
                    effect,
                    ..
                },
        }) = cli.command
        else {
            panic!("expected acl create");
        };
        assert_eq!(prefix.as_deref(), Some("orders."));
        assert_eq!(name, None);
        assert_eq!(Effect::from(effect), Effect::Allow);
    }

    #[test]
    fn acl_create_refuses_both_name_and_prefix() {
        let outcome = TestCli::try_parse_from([
            "palisade",
            "acl",
            "create",
            "--principal",
            "a",
            "--resource",
            "topic",
            "--name",
            "x",
            "--prefix",
            "y",
            "--operation",
            "read",
        ]);
        assert!(outcome.is_err());
    }

    #[test]
    fn cluster_commands_parse() {
        use crate::client::cluster::ClusterCommand;
        let command = |args: &[&str]| match parse(args).command {
            ClientCommand::Cluster(ClusterArgs { command }) => command,
            other => panic!("expected a cluster command, got {other:?}"),
        };
        assert!(matches!(
            command(&["palisade", "cluster", "show", "--json"]),
            ClusterCommand::Show { json: true }
        ));
        let ClusterCommand::AddBroker { id, peer } = command(&[
            "palisade",
            "cluster",
            "add-broker",
            "--id",
            "4",
            "--peer",
            "10.0.0.4:9441",
        ]) else {
            panic!("expected add-broker");
        };
        assert_eq!((id, peer.as_str()), (4, "10.0.0.4:9441"));
        assert!(matches!(
            command(&["palisade", "cluster", "decommission", "3"]),
            ClusterCommand::Decommission { id: 3 }
        ));
        assert!(matches!(
            command(&["palisade", "cluster", "rebalance"]),
            ClusterCommand::Rebalance
        ));
    }

    #[test]
    fn produce_and_consume_options_parse() {
        let cli = parse(&[
            "palisade", "produce", "orders", "--key", "k", "--header", "a=b", "--batch", "10",
        ]);
        let ClientCommand::Produce(produce) = cli.command else {
            panic!("expected produce");
        };
        assert_eq!(produce.headers, vec![("a".to_string(), "b".to_string())]);
        assert_eq!(produce.batch, 10);
        let cli = parse(&[
            "palisade",
            "consume",
            "orders",
            "--partition",
            "2",
            "--follow",
        ]);
        let ClientCommand::Consume(consume) = cli.command else {
            panic!("expected consume");
        };
        assert_eq!(consume.partition, Some(2));
        assert!(consume.follow);
    }
}
