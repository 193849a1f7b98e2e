//! The `palisade` command: parses arguments and hands over to the broker, the dev cluster or a client
//! command. No logic lives here.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use palisade::cli::{ClientCommand, GlobalArgs};

/// jemalloc instead of the system allocator. With glibc's allocator (or jemalloc's default of
/// four arenas per core) a broker's resident size was two to four times its live heap under
/// load: records are allocated on blocking threads and freed on HTTP workers, in arenas that
/// then keep the pages. Measured in docs/memory.md.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its start-up (`_RJEM_MALLOC_CONF` in the environment still
/// overrides them): one arena, so freed pages are reused by whichever thread allocates next; a
/// background thread that returns pages unused for a second to the kernel.
#[cfg(not(feature = "system-allocator"))]
#[export_name = "_rjem_malloc_conf"]
static JEMALLOC_OPTIONS: JemallocOptions = JemallocOptions(
    c"narenas:1,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr(),
);

/// A C string pointer, as jemalloc reads its `malloc_conf` symbol.
#[cfg(not(feature = "system-allocator"))]
#[repr(transparent)]
struct JemallocOptions(*const std::ffi::c_char);

// SAFETY: the pointer is to a static, immutable, NUL-terminated byte string.
#[cfg(not(feature = "system-allocator"))]
unsafe impl Sync for JemallocOptions {}

#[derive(Parser)]
#[command(
    name = "palisade",
    version,
    about = "A secure, replicated message queue"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one broker.
    Serve {
        /// The broker's TOML config (see config/palisade.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run a local development cluster with generated certificates.
    Dev {
        /// Number of brokers, 1 to 9.
        #[arg(long, default_value_t = palisade::dev::BROKERS_DEFAULT,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(palisade::dev::BROKERS_MAX)))]
        brokers: u32,
        /// Directory for certificates, configs, data, logs and cluster.json.
        #[arg(long, default_value = ".dev")]
        dir: PathBuf,
        /// HTTP port of broker 1 (broker i uses base + i - 1, its peer link base + 1000 + i - 1);
        /// 0 picks free ports.
        #[arg(long, default_value_t = 8441)]
        http_port_base: u16,
        /// Leave a broker that exits stopped instead of starting it again (with backoff).
        #[arg(long)]
        no_restart: bool,
    },
    /// Certificates for a cluster.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a cluster CA plus broker and client certificates (keeps an existing CA).
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Broker ids to issue certificates for, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        brokers: Vec<u64>,
        /// An extra name of one broker's certificates, as <id>=<name>: a DNS name (a DNS SAN) or
        /// an IP address (an IP SAN), for example 1=palisade-0.palisade.messaging.svc.cluster.local.
        /// Repeat it for more names. Peers check the name they dial against the peer certificate.
        /// Only certificates this run writes get the names; an existing one is kept as it is.
        #[arg(long = "name", value_parser = parse_broker_name)]
        names: Vec<(u64, String)>,
    },
}

/// `--name 1=palisade-0.palisade` → `(1, "palisade-0.palisade")`.
fn parse_broker_name(text: &str) -> Result<(u64, String), String> {
    let (id, name) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not <id>=<name>"))?;
    let id = id
        .parse::<u64>()
        .map_err(|_| format!("{id:?} is not a broker id"))?;
    if name.is_empty() {
        return Err(format!("{text:?} names no name"));
    }
    Ok((id, name.to_string()))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            palisade::app::abort_on_panic();
            let config = palisade::config::load(config.as_deref())?;
            let listener = std::net::TcpListener::bind(config.http.listen)
                .with_context(|| format!("cannot listen on http.listen {}", config.http.listen))?;
            actix_web::rt::System::new().block_on(palisade::app::run(
                config,
                listener,
                shutdown_signal(),
            ))
        }
        Command::Dev {
            brokers,
            dir,
            http_port_base,
            no_restart,
        } => {
            let options = palisade::dev::DevOptions {
                brokers,
                dir,
                http_port_base,
                restart: !no_restart,
            };
            actix_web::rt::System::new().block_on(palisade::dev::run(options))
        }
        Command::Certs {
            command:
                CertsCommand::Init {
                    dir,
                    brokers,
                    names,
                },
        } => {
            let brokers: Vec<palisade::transport::certs::BrokerNames> = brokers
                .iter()
                .map(|&id| palisade::transport::certs::BrokerNames {
                    id,
                    names: (names.iter())
                        .filter(|(named, _)| *named == id)
                        .map(|(_, name)| name.clone())
                        .collect(),
                })
                .collect();
            if let Some((id, _)) = names
                .iter()
                .find(|(id, _)| !brokers.iter().any(|b| b.id == *id))
            {
                anyhow::bail!("--name names broker {id}, which is not in --brokers");
            }
            let paths = palisade::transport::certs::init_with_names(&dir, &brokers)?;
            println!(
                "client CA (clients trust it for HTTPS): {}",
                paths.https_ca.cert.display()
            );
            println!("peer CA ([peer] ca_cert): {}", paths.peer_ca.cert.display());
            for (id, certs) in &paths.brokers {
                println!(
                    "broker {id} peer ([peer] cert/key): {} / {}",
                    certs.peer.cert.display(),
                    certs.peer.key.display()
                );
                println!(
                    "broker {id} https ([http] cert/key): {} / {}",
                    certs.https.cert.display(),
                    certs.https.key.display()
                );
            }
            println!(
                "client: {} / {}",
                paths.client.cert.display(),
                paths.client.key.display()
            );
            Ok(())
        }
        Command::Client(command) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(palisade::cli::run(command, cli.global))
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}
