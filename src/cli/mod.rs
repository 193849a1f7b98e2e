//! Client commands of the `palisade` binary (clap derive): login, topic, produce, consume,
//! user, acl, audit, cluster and bench.
//!
//! Owns the dispatch from parsed arguments (`args`) to `Client` calls and what is printed
//! (`output`): JSON, pretty for single answers and one line per record for streams, so scripts
//! can consume it. It must not hold broker logic nor build HTTP requests itself (the `client`
//! library does); `main.rs` only parses arguments and calls `run`.
use anyhow::Context;

use crate::bench;
use crate::client::token_store;
use crate::client::Client;
#[cfg(test)]
use crate::wire::Effect;

mod admin;
mod args;
pub mod cluster;
mod group_consume;
mod output;
mod streams;

pub use args::{
    AclArgs, AclCommand, AuditArgs, AuditCommand, ClientCommand, ConsumeArgs, DecisionArg,
    EffectArg, GlobalArgs, LoginArgs, OperationArg, ProduceArgs, ResourceArg, TopicArgs,
    TopicCommand, UserArgs, UserCommand,
};

/// Runs one client command against the broker named by `global`.
pub async fn run(command: ClientCommand, global: GlobalArgs) -> anyhow::Result<()> {
    match dispatch(command, global).await {
        // The reader of our output went away (`palisade consume ... | head`): not a failure.
        Err(error) if output::is_output_closed(&error) => Ok(()),
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
        ClientCommand::Key(args) => admin::key(args.command, &connect(&global)?).await,
        ClientCommand::Audit(args) => admin::audit(args.command, &connect(&global)?).await,
        ClientCommand::Cluster(args) => cluster::cluster(args.command, &connect(&global)?).await,
        ClientCommand::Bench(args) => {
            let target = bench::Target {
                token: resolve_token(&global)?,
                url: global.url,
                ca_cert: global.ca_cert,
            };
            bench::run(args, target).await
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
        None => output::read_secret_line("password").await?,
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
        use crate::cli::cluster::{ClusterArgs, ClusterCommand};
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
