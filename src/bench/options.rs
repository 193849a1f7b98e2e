//! The arguments of `palisade bench` (clap derive) and the constants every worker shares.
//! Parsing only.
use clap::{Args, Subcommand};

/// Pause after a failed request so a broken broker is not hammered in a tight loop.
pub(crate) const ERROR_BACKOFF_MS: u64 = 20;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: BenchMode,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchMode {
    /// Produce batches for `--duration-s`; creates the topic if it does not exist.
    Produce(BenchOptions),
    /// Read every partition of the topic from offset 0 to its end.
    Consume(BenchOptions),
    /// `--connections` members of a new consumer group read the whole topic, polling and
    /// committing, until the group consumed every record.
    GroupConsume(BenchOptions),
}

#[derive(Debug, Clone, Args)]
pub struct BenchOptions {
    /// Concurrent workers, each with its own HTTP client and TCP connection.
    #[arg(long, default_value_t = 16)]
    pub connections: u32,
    /// Records per produce request.
    #[arg(long, default_value_t = 100)]
    pub batch: u32,
    /// Size of each record value, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: u32,
    /// Produce duration (consume stops early at this bound too), in seconds.
    #[arg(long, default_value_t = 20)]
    pub duration_s: u64,
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Partitions when the topic is created (default: one per connection).
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Replication factor when the topic is created (default: the broker's).
    #[arg(long)]
    pub replication_factor: Option<u16>,
    /// Records per fetch request when consuming.
    #[arg(long, default_value_t = 10_000)]
    pub max_messages: u32,
    /// Group consume: a member commits its positions at most this often, in milliseconds, in
    /// the background while it polls (0: after every poll that returned records). Kafka's
    /// consumers auto-commit every 5,000 ms by default. What is read since the last commit is
    /// committed when the member stops.
    #[arg(long, default_value_t = 0)]
    pub commit_interval_ms: u64,
    /// Group consume: the consumer group's name (default: a new random `bench-` name).
    #[arg(long)]
    pub group: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Send each worker's requests to the broker that leads its partition (as a client that
    /// follows leaders would), instead of to `--url`, which forwards to the leader.
    #[arg(long)]
    pub to_leaders: bool,
    /// Produce: at most this many records in requests that are not answered yet, shared by all
    /// connections (a multiple of `--batch`), so latency is compared at equal load. Default: no
    /// limit beyond one request per connection.
    #[arg(long)]
    pub records_in_flight: Option<u32>,
}

/// The options of `bench MODE ARGS..` as clap parses them, for the bench tests.
#[cfg(test)]
pub(crate) fn parse_options(args: &[&str]) -> BenchOptions {
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(subcommand)]
        mode: BenchMode,
    }

    match TestCli::try_parse_from(args).expect("arguments parse").mode {
        BenchMode::Produce(options)
        | BenchMode::Consume(options)
        | BenchMode::GroupConsume(options) => options,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_options as options;

    #[test]
    fn defaults_match_the_documented_benchmark() {
        let options = options(&["bench", "produce"]);
        assert_eq!(options.connections, 16);
        assert_eq!(options.batch, 100);
        assert_eq!(options.record_bytes, 1024);
        assert_eq!(options.duration_s, 20);
        assert_eq!(options.topic, "bench");
        assert!(!options.json);
    }
}
