//! The `conclave` command: serve, initialise and administer a Conclave server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use conclave_server::config::Config;
use conclave_server::{admin, serve, setup};
use conclave_types::{DeviceTrust, Role};

/// mimalloc rather than the C library's allocator. glibc keeps an arena per thread that
/// allocates and rarely hands freed memory back: the Argon2 hashes of sign-ins (19 MiB each,
/// on blocking threads) and the SFU task moving between worker threads left the server at
/// 187 MiB resident when idle after the load harness's sign-ins and 277 MiB with a call of 30;
/// with mimalloc, 51 and 148 MiB (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Conclave: self-hosted, always end-to-end encrypted conferencing.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file. Without one, `./conclave.toml` is used if present, else the
    /// built-in defaults (see conclave.example.toml).
    #[arg(long, global = true, env = "CONCLAVE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (initialising the data directory on first start).
    Serve,
    /// Create the data directory: database, organisation key, TLS certificate, first admin.
    Init {
        /// Name of the first admin account.
        #[arg(long, default_value = "admin")]
        admin: String,
    },
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Verify or export the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add an account; prints a generated password unless --password-stdin is given.
    Add {
        /// Account name (a-z, 0-9, '.', '-', '_', '@').
        name: String,
        /// Name shown to other participants.
        #[arg(long)]
        display_name: String,
        /// admin, organiser, member or auditor.
        #[arg(long, default_value = "member")]
        role: Role,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Disable an account and end its sessions.
    Disable {
        /// Account name.
        #[arg(allow_hyphen_values = true)]
        name: String,
    },
    /// Enable a disabled account.
    Enable {
        /// Account name.
        #[arg(allow_hyphen_values = true)]
        name: String,
    },
    /// Change an account's role.
    SetRole {
        /// Account name.
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// admin, organiser, member or auditor.
        role: Role,
    },
    /// Generate a new password and end the account's sessions.
    ResetPassword {
        /// Account name.
        #[arg(allow_hyphen_values = true)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// List devices.
    List {
        /// Only this account's devices.
        #[arg(long)]
        user: Option<String>,
    },
    /// Set a device's trust level.
    SetTrust {
        /// Device id (may start with '-': ids are URL-safe base64).
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// personal or managed.
        trust: DeviceTrust,
    },
    /// Revoke a device: it gets no credential and cannot join.
    Revoke {
        /// Device id (may start with '-': ids are URL-safe base64).
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Issue a one-time token that registers a managed device.
    EnrolToken {
        /// Restrict the token to this account.
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain and signed heads; exits 1 naming the first bad entry.
    Verify,
    /// Write the log as JSON lines.
    Export {
        /// Output file (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    let default_path = PathBuf::from("conclave.toml");
    let mut config = match path {
        Some(p) => Config::load(&p)?,
        None if default_path.exists() => Config::load(&default_path)?,
        None => Config::default(),
    };
    config.apply_env(|k| std::env::var(k).ok())?;
    Ok(config)
}

fn print_first_admin(init: &setup::Initialised) {
    if let Some((name, password)) = &init.admin {
        println!("first admin account created; this password is shown only once:");
        println!("  name:     {name}");
        println!("  password: {password}");
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = load_config(cli.config)?;
    match cli.command {
        Command::Serve => {
            let init = setup::init(&config, "admin").await?;
            print_first_admin(&init);
            serve::serve(config).await?;
        }
        Command::Init { admin } => {
            let init = setup::init(&config, &admin).await?;
            println!(
                "data directory ready: {}",
                config.storage.data_dir.display()
            );
            print_first_admin(&init);
        }
        Command::User(cmd) => match cmd {
            UserCommand::Add {
                name,
                display_name,
                role,
                password_stdin,
            } => {
                let password = if password_stdin {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password")?;
                    Some(line.trim_end_matches(['\r', '\n']).to_string())
                } else {
                    None
                };
                admin::user_add(&config, &name, &display_name, role, password).await?;
            }
            UserCommand::List => admin::user_list(&config).await?,
            UserCommand::Disable { name } => admin::user_set_disabled(&config, &name, true).await?,
            UserCommand::Enable { name } => admin::user_set_disabled(&config, &name, false).await?,
            UserCommand::SetRole { name, role } => {
                admin::user_set_role(&config, &name, role).await?
            }
            UserCommand::ResetPassword { name } => {
                admin::user_reset_password(&config, &name).await?
            }
        },
        Command::Device(cmd) => match cmd {
            DeviceCommand::List { user } => admin::device_list(&config, user.as_deref()).await?,
            DeviceCommand::SetTrust { id, trust } => {
                admin::device_set_trust(&config, &id, trust).await?
            }
            DeviceCommand::Revoke { id } => admin::device_revoke(&config, &id).await?,
            DeviceCommand::EnrolToken { user } => {
                admin::device_enrol_token(&config, user.as_deref()).await?
            }
        },
        Command::Audit(AuditCommand::Verify) => {
            if !admin::audit_verify(&config).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Audit(AuditCommand::Export { output }) => {
            let n = match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    admin::audit_export(&config, &mut std::io::BufWriter::new(file)).await?
                }
                None => admin::audit_export(&config, &mut std::io::stdout().lock()).await?,
            };
            eprintln!("exported {n} entries");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONCLAVE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
