//! Client commands of the `palisade` binary (clap derive): login, topic, produce, consume,
//! user, acl, audit and bench.
//!
//! Owns argument shapes and the dispatch to `Client` calls; output is JSON (pretty for
//! single answers, one line per record for streams) so scripts can consume it. It must not
//! hold broker logic; `main.rs` only parses arguments and calls `run`.
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::client::bench::{self, BenchArgs};
use crate::client::dto::{
    AuditDecision, AuditFilters, CreateAcl, CreateTopic, CreateUser, Effect, Operation, Pattern,
    ResourceType,
};
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
    /// Print audit events as JSON lines.
    List {
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
}

/// Runs one client command against the broker named by `global`.
pub async fn run(command: ClientCommand, global: GlobalArgs) -> anyhow::Result<()> {
    match command {
        ClientCommand::Login(args) => login(args, &global).await,
        ClientCommand::Topic(args) => topic(args.command, &connect(&global)?).await,
        ClientCommand::Produce(args) => streams::produce(args, &connect(&global)?).await,
        ClientCommand::Consume(args) => streams::consume(args, &connect(&global)?).await,
        ClientCommand::User(args) => user(args.command, &connect(&global)?).await,
        ClientCommand::Acl(args) => acl(args.command, &connect(&global)?).await,
        ClientCommand::Audit(args) => audit(args.command, &connect(&global)?).await,
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

async fn topic(command: TopicCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        TopicCommand::List => print_pretty(&client.list_topics().await?),
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            retention_ms,
            retention_bytes,
        } => {
            let request = CreateTopic {
                name: name.clone(),
                partitions,
                replication_factor,
                retention_ms,
                retention_bytes,
            };
            client.create_topic(&request).await?;
            print_pretty(&client.describe_topic(&name).await?)
        }
        TopicCommand::Describe { name } => print_pretty(&client.describe_topic(&name).await?),
        TopicCommand::Delete { name } => {
            client.delete_topic(&name).await?;
            eprintln!("deleted topic {name}");
            Ok(())
        }
    }
}

async fn user(command: UserCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        UserCommand::List => print_pretty(&client.list_users().await?),
        UserCommand::Create {
            username,
            password,
            superuser,
        } => {
            let password = match password {
                Some(password) => password,
                None => streams::read_secret_line("password").await?,
            };
            let request = CreateUser {
                username: username.clone(),
                password,
                superuser,
            };
            client.create_user(&request).await?;
            eprintln!("created user {username}");
            Ok(())
        }
        UserCommand::Delete { username } => {
            client.delete_user(&username).await?;
            eprintln!("deleted user {username}");
            Ok(())
        }
        UserCommand::Passwd { username, password } => {
            let password = match password {
                Some(password) => password,
                None => streams::read_secret_line("password").await?,
            };
            client.set_password(&username, &password).await?;
            eprintln!("password of {username} changed");
            Ok(())
        }
    }
}

async fn acl(command: AclCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        AclCommand::List => print_pretty(&client.list_acls().await?),
        AclCommand::Create {
            principal,
            resource,
            name,
            prefix,
            operation,
            effect,
        } => {
            let pattern = match (name, prefix) {
                (Some(name), _) => Pattern::Literal(name),
                (None, Some(prefix)) => Pattern::Prefix(prefix),
                (None, None) => Pattern::Any,
            };
            let rule = CreateAcl {
                principal,
                resource: resource.into(),
                pattern,
                operation: operation.into(),
                effect: effect.into(),
            };
            print_pretty(&client.create_acl(&rule).await?)
        }
        AclCommand::Delete { id } => {
            client.delete_acl(id).await?;
            eprintln!("deleted ACL rule {id}");
            Ok(())
        }
    }
}

async fn audit(command: AuditCommand, client: &Client) -> anyhow::Result<()> {
    let AuditCommand::List {
        since_ms,
        until_ms,
        principal,
        action,
        decision,
        limit,
    } = command;
    let filters = AuditFilters {
        since_ms,
        until_ms,
        principal,
        action,
        decision: decision.map(Into::into),
        limit,
    };
    for event in client.audit(&filters).await? {
        println!("{}", serde_json::to_string(&event)?);
    }
    Ok(())
}

fn print_pretty<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

impl From<ResourceArg> for ResourceType {
    fn from(arg: ResourceArg) -> Self {
        match arg {
            ResourceArg::Topic => ResourceType::Topic,
            ResourceArg::Group => ResourceType::Group,
            ResourceArg::Cluster => ResourceType::Cluster,
            ResourceArg::User => ResourceType::User,
            ResourceArg::Audit => ResourceType::Audit,
        }
    }
}

impl From<OperationArg> for Operation {
    fn from(arg: OperationArg) -> Self {
        match arg {
            OperationArg::Read => Operation::Read,
            OperationArg::Write => Operation::Write,
            OperationArg::Create => Operation::Create,
            OperationArg::Delete => Operation::Delete,
            OperationArg::Describe => Operation::Describe,
            OperationArg::Alter => Operation::Alter,
        }
    }
}

impl From<EffectArg> for Effect {
    fn from(arg: EffectArg) -> Self {
        match arg {
            EffectArg::Allow => Effect::Allow,
            EffectArg::Deny => Effect::Deny,
        }
    }
}

impl From<DecisionArg> for AuditDecision {
    fn from(arg: DecisionArg) -> Self {
        match arg {
            DecisionArg::Allow => AuditDecision::Allow,
            DecisionArg::Deny => AuditDecision::Deny,
            DecisionArg::Success => AuditDecision::Success,
            DecisionArg::Failure => AuditDecision::Failure,
        }
    }
}
