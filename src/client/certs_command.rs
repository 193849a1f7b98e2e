//! `palisade certs init --dir DIR [--brokers 1,2,3]`: the command-line face of
//! `transport::certs::init`.
//!
//! Owns only argument parsing and the printed summary; generation, file layout and key modes
//! belong to `transport::certs`. It talks to no broker.
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::transport::certs;

#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum CertsCommand {
    /// Create the cluster CA (kept if present), broker and client certificates in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Broker ids to issue certificates for, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        brokers: Vec<u64>,
    },
}

/// Runs a `certs` command and prints where the files are.
pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    let CertsCommand::Init { dir, brokers } = args.command;
    let paths = certs::init(&dir, &brokers)
        .with_context(|| format!("creating certificates in {}", dir.display()))?;
    println!("cluster CA:  {}", paths.ca.cert.display());
    for (id, broker) in &paths.brokers {
        println!(
            "broker {id}:    {} (key {})",
            broker.cert.display(),
            broker.key.display()
        );
    }
    println!(
        "client:      {} (key {})",
        paths.client.cert.display(),
        paths.client.key.display()
    );
    println!(
        "clients trust the CA with: export PALISADE_CA_CERT={}",
        paths.ca.cert.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: CertsCommand,
    }

    #[test]
    fn init_parses_a_comma_separated_broker_list_and_writes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir_arg = dir.path().to_str().expect("UTF-8 temp path");
        let cli =
            TestCli::try_parse_from(["certs", "init", "--dir", dir_arg, "--brokers", "1,2,3"])
                .expect("arguments parse");
        let CertsCommand::Init { brokers, .. } = &cli.command;
        assert_eq!(brokers, &vec![1, 2, 3]);
        run(CertsArgs {
            command: cli.command,
        })
        .expect("init runs");
        for id in 1..=3 {
            assert!(dir.path().join(format!("broker-{id}.pem")).exists());
        }
    }
}
