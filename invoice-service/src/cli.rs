//! The operator CLI: one binary for the service and the tools around its keys and tokens.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use l402_core::{
    Credentials, KeyId, Keyring, MasterSecret, NoDenyList, PaymentHash, Request, ServiceEntry,
    ServiceName, Verifier, format_keyring_entry, inspect, mint, parse_capabilities,
};
use serde_json::json;

use crate::config::{Config, LogFormat, ProcessEnv, env};

/// Exit code for a rejected token (`token verify`).
pub const EXIT_REJECTED: u8 = 1;
/// Exit code for a usage error.
pub const EXIT_USAGE: u8 = 2;

/// l402-edge invoice-service: Lightning invoices and L402 tokens for the edges.
#[derive(Debug, Parser)]
#[command(name = "invoice-service", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve {
        /// The TOML config file.
        #[arg(long, env = "L402_CONFIG")]
        config: PathBuf,
        /// Override `server.listen`.
        #[arg(long, env = "L402_LISTEN")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Print a new keyring entry, `<id>:<64 hex>` (keep it secret).
    Keygen {
        /// The key id.
        #[arg(long, default_value_t = 1)]
        id: u32,
    },
    /// Debug tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Health probe for containers without curl (Docker HEALTHCHECK): GET the URL, exit 0 on
    /// 2xx, 1 otherwise.
    Probe {
        /// What to ask.
        #[arg(default_value = "http://127.0.0.1:8402/readyz")]
        url: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Decode a macaroon (no secrets needed): identifier and caveats, as JSON.
    Inspect {
        /// The macaroon, base64 (either alphabet).
        macaroon: String,
    },
    /// Judge an Authorization header value as an edge would; exit 0 authorized, 1 rejected.
    Verify {
        #[command(flatten)]
        keys: Keys,
        /// The route's service.
        #[arg(long)]
        service: String,
        /// A capability the route requires (repeatable).
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        /// Unix seconds to judge at (default: now).
        #[arg(long)]
        now: Option<u64>,
        /// The client address to judge a `<svc>_client_ip` caveat against.
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
        /// The header value, `L402 <macaroon>:<preimage>`.
        #[arg(long)]
        authorization: String,
    },
    /// Mint a token for a payment hash (debugging; the service mints for real).
    Mint {
        #[command(flatten)]
        keys: Keys,
        /// The service.
        #[arg(long)]
        service: String,
        /// The invoice's payment hash, hex.
        #[arg(long)]
        payment_hash: String,
        /// Tier.
        #[arg(long, default_value_t = 0)]
        tier: u32,
        /// A capability (repeatable).
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        /// Lifetime (`1h`, `30m`); none for no expiry caveat.
        #[arg(long, value_parser = humantime::parse_duration)]
        lifetime: Option<std::time::Duration>,
        /// Unix seconds to mint at (default: now).
        #[arg(long)]
        now: Option<u64>,
    },
}

#[derive(Debug, Args)]
struct Keys {
    /// The keyring, `<id>:<64 hex>,...` (prefer the environment variable).
    #[arg(long = "keys", env = env::KEYS, hide_env_values = true)]
    keys: String,
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

fn print(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn now_or(now: Option<u64>) -> u64 {
    now.unwrap_or_else(|| (crate::clock::system())())
}

/// Runs a parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config, listen } => serve(config, listen),
        Command::Keygen { id } => {
            let mut bytes = [0u8; 32];
            if let Err(e) = getrandom::fill(&mut bytes) {
                return usage(format!("no randomness: {e}"));
            }
            println!(
                "{}",
                format_keyring_entry(KeyId(id), &MasterSecret::from_bytes(bytes))
            );
            ExitCode::SUCCESS
        }
        Command::Token(t) => token(t),
        Command::Probe { url } => probe(&url),
    }
}

fn probe(url: &str) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage(format!("no runtime: {e}")),
    };
    let status = rt.block_on(async {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .build()?
            .get(url)
            .send()
            .await
            .map(|r| r.status())
    });
    match status {
        Ok(s) if s.is_success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("{url}: {s}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            ExitCode::from(1)
        }
    }
}

fn token(cmd: TokenCommand) -> ExitCode {
    match cmd {
        TokenCommand::Inspect { macaroon } => match inspect(&macaroon) {
            Ok(i) => {
                print(&json!({
                    "payment_hash": i.identifier.payment_hash.to_hex(),
                    "token_id": i.identifier.token_id.to_hex(),
                    "key_id": i.identifier.token_id.key_id().0,
                    "location": i.location,
                    "caveats": i.caveats,
                    "signature": i.signature_hex,
                }));
                ExitCode::SUCCESS
            }
            Err(r) => usage(format!("not a macaroon: {}", r.detail)),
        },
        TokenCommand::Verify {
            keys,
            service,
            capabilities,
            now,
            client_ip,
            authorization,
        } => {
            let ring: Keyring = match keys.keys.parse() {
                Ok(r) => r,
                Err(e) => return usage(e),
            };
            if let Err(e) = ServiceName::new(&service) {
                return usage(format!("--service: {e}"));
            }
            let caps = capabilities.join(",");
            let creds = Credentials::from_headers([("authorization", authorization.as_str())]);
            let req = Request {
                service: &service,
                capabilities: &caps,
                now: now_or(now),
                client_ip,
            };
            match Verifier::new(ring).verify(&creds, &req, &NoDenyList) {
                Ok(a) => {
                    print(&json!({
                        "decision": "authorized",
                        "token_id": a.token_id().to_hex(),
                        "key_id": a.key_id().0,
                        "payment_hash": a.payment_hash().to_hex(),
                        "service": a.service(),
                        "tier": a.tier(),
                        "capabilities": a.capabilities(),
                        "expires_at": a.expires_at(),
                    }));
                    ExitCode::SUCCESS
                }
                Err(r) => {
                    print(
                        &json!({"decision": "rejected", "reason": r.reason.as_str(), "detail": r.detail}),
                    );
                    ExitCode::from(EXIT_REJECTED)
                }
            }
        }
        TokenCommand::Mint {
            keys,
            service,
            payment_hash,
            tier,
            capabilities,
            lifetime,
            now,
        } => {
            let ring: Keyring = match keys.keys.parse() {
                Ok(r) => r,
                Err(e) => return usage(e),
            };
            let name = match ServiceName::new(&service) {
                Ok(n) => n,
                Err(e) => return usage(format!("--service: {e}")),
            };
            let Some(hash) = PaymentHash::from_hex(&payment_hash) else {
                return usage("--payment-hash: expected 64 hex digits");
            };
            let capabilities = match parse_capabilities(&capabilities.join(",")) {
                Ok(c) => c,
                Err(e) => return usage(format!("--capability: {e}")),
            };
            let mut random = [0u8; 28];
            if let Err(e) = getrandom::fill(&mut random) {
                return usage(format!("no randomness: {e}"));
            }
            let entry = ServiceEntry {
                name,
                tier,
                capabilities,
                lifetime_secs: lifetime.map(|l| l.as_secs()),
                allowance: None,
            };
            match mint(&ring, hash, random, &entry, now_or(now)) {
                Ok(m) => {
                    print(&json!({
                        "macaroon": m.macaroon_b64,
                        "token_id": m.identifier.token_id.to_hex(),
                        "payment_hash": m.identifier.payment_hash.to_hex(),
                        "expires_at": m.expires_at,
                    }));
                    ExitCode::SUCCESS
                }
                Err(e) => usage(e),
            }
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

fn serve(path: PathBuf, listen: Option<std::net::SocketAddr>) -> ExitCode {
    let mut cfg = match Config::load(&path, &ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(l) = listen {
        cfg.listen = l;
    }
    init_logs(cfg.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage(format!("cannot start the runtime: {e}")),
    };
    rt.block_on(async move {
        let running = match crate::app::start(cfg, crate::clock::system()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        crate::app::shutdown_signal().await;
        tracing::info!("shutting down");
        running.shutdown.cancel();
        match tokio::time::timeout(crate::app::SHUTDOWN_GRACE, running.task).await {
            Ok(_) => ExitCode::SUCCESS,
            Err(_) => {
                tracing::warn!("in-flight requests did not finish within the grace period");
                ExitCode::SUCCESS
            }
        }
    })
}
