//! The argument shapes of the client commands (clap derive): what `palisade` accepts after its
//! global options. Parsing only; the commands live beside this file.
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::cluster::ClusterArgs;
use crate::bench::BenchArgs;

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
    /// List and rotate the token signing keys.
    Key(KeyArgs),
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
    /// Set a user's password (from `--password` or the first line of stdin). Ends every
    /// token the user holds.
    Passwd {
        username: String,
        #[arg(long, env = "PALISADE_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// End every token the user holds (the user logs in again).
    RevokeTokens {
        username: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum KeyCommand {
    /// Signing key ids, when each was made, and until when a replaced one still verifies.
    List,
    /// Make a new signing key that signs every token from now on; earlier keys verify the
    /// tokens they signed until those expire.
    Rotate,
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
    /// Read the whole audit log and check its hash chain end to end (exit 1 if broken). With
    /// `--anchor`, the chain must also hold that hash: one recorded earlier from `audit head`
    /// or the broker log, so a log whose newest events were removed fails.
    Verify {
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Print the newest event's offset and hash (record it to anchor a later `verify`).
    Head,
}

#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    pub topic: String,
    /// Produce this one value instead of reading stdin.
    #[arg(long)]
    pub value: Option<String>,
    /// Key for every record (records with the same key land on the same partition).
    #[arg(long)]
    pub key: Option<String>,
    /// Explicit partition for every record.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Header `name=value`; repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Records per request when reading stdin.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Send each batch with an `Idempotency-Key` and resend it with the same key after a 503,
    /// a 429 or a lost connection, so a retried batch is written once.
    #[arg(long)]
    pub idempotent: bool,
    /// With `--idempotent`: resends per batch before giving up.
    #[arg(long, default_value_t = 10)]
    pub retries: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Partition to read; all partitions when absent.
    #[arg(long)]
    pub partition: Option<u32>,
    /// First offset to read.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Records per fetch request.
    #[arg(long, default_value_t = 1000)]
    pub max_messages: u32,
    /// Keep reading new records, over a Server-Sent Events stream, instead of stopping at the end.
    #[arg(long)]
    pub follow: bool,
    /// With `--follow`: read with long-poll fetches instead of an event stream.
    #[arg(long)]
    pub poll: bool,
    /// Long-poll wait per request when following with `--poll`, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub wait_ms: u64,
    /// Consume as a member of this consumer group: the group assigns partitions and the
    /// consumer commits after printing each poll (at least once).
    #[arg(long)]
    pub group: Option<String>,
    /// With `--group`: the member's session timeout in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub session_timeout_ms: u64,
    /// With `--group`: where to start in a partition the group never committed
    /// (`earliest` or `latest`).
    #[arg(long, default_value = "earliest")]
    pub offset_reset: String,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected name=value, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_needs_a_name_and_an_equals_sign() {
        assert_eq!(
            parse_header("trace=a=b"),
            Ok(("trace".to_string(), "a=b".to_string()))
        );
        assert!(parse_header("novalue").is_err());
        assert!(parse_header("=v").is_err());
    }
}
