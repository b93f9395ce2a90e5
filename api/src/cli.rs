//! The `chatdesk` command line: serve (the default), migrate, admin accounts, schema.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::Settings;
use crate::service::admins;

#[derive(Parser)]
#[command(name = "chatdesk", version, about = "A self-hosted support chat")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage admin accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Run retention and the orphan sweep once, and report what was removed.
    Purge,
    /// Add a handful of demo chats (both sides talking, several statuses, weeks apart, one expired file).
    SeedDemo,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin.
    Create {
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change an admin's password; their open sessions end.
    Passwd {
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List admins.
    List,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", crate::graphql::sdl());
        return ExitCode::SUCCESS;
    }
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(format!("cannot start the async runtime: {error}")),
    };
    // `{:#}`: the whole chain of causes, on one line.
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(format!("{error:#}")),
    }
}

/// One clear line, no backtrace.
fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("chatdesk: {message}");
    ExitCode::FAILURE
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    // A panic is caught (it costs one request or one socket, not the process); the default
    // hook would print a whole backtrace to stderr when RUST_BACKTRACE is set. One log line,
    // with where it happened, is what an operator needs.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info
            .location()
            .map(|at| format!("{}:{}", at.file(), at.line()))
            .unwrap_or_default();
        tracing::error!(%location, message = message.replace('\n', " "), "panic");
    }));
}

async fn run(command: Command) -> anyhow::Result<()> {
    let settings = Settings::from_env().map_err(anyhow::Error::msg)?;
    match command {
        Command::Serve => {
            let app = crate::Application::build(settings).await?;
            Ok(app.run_until_stopped().await?)
        }
        Command::Migrate => {
            connect(&settings).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin { command } => {
            let db = connect(&settings).await?;
            match command {
                AdminCommand::Create {
                    email,
                    name,
                    password_stdin,
                } => {
                    let password = read_password(password_stdin)?;
                    let admin = admins::create(&db, &email, name.as_deref(), &password).await?;
                    println!("created admin {}", admin.email);
                }
                AdminCommand::Passwd {
                    email,
                    password_stdin,
                } => {
                    let password = read_password(password_stdin)?;
                    let admin = admins::set_password(&db, &email, &password).await?;
                    println!(
                        "changed the password of {}; their open sessions have ended",
                        admin.email
                    );
                }
                AdminCommand::List => {
                    for admin in admins::list(&db).await? {
                        let last_login = admin
                            .last_login_at
                            .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
                        println!(
                            "{}\t{}\tcreated {}\tlast sign-in {last_login}",
                            admin.email,
                            admin.name.unwrap_or_default(),
                            admin.created_at.to_rfc3339()
                        );
                    }
                }
            }
            Ok(())
        }
        Command::SeedDemo => {
            let db = connect(&settings).await?;
            admins::ensure_first_admin(
                &db,
                settings.admin_email.as_deref(),
                settings
                    .admin_password
                    .as_ref()
                    .map(crate::config::Secret::expose),
            )
            .await
            .map_err(anyhow::Error::from)
            .context("cannot create the first admin")?;
            let admin = admins::list(&db).await?.into_iter().next();
            let Some(admin) = admin else {
                bail!("no admin to answer the demo chats");
            };
            let viewer = crate::auth::viewer::AdminViewer {
                id: admin.id,
                email: admin.email,
                name: admin.name,
                session: None,
            };
            let storage = open_storage(&settings)?;
            let policy = crate::files::policy::FilePolicy::from_settings(&settings);
            let count = crate::service::demo::seed(&db, storage.as_ref(), &policy, viewer)
                .await
                .map_err(anyhow::Error::from)
                .context("cannot seed the demo chats")?;
            println!("created {count} demo chats");
            Ok(())
        }
        Command::Purge => {
            let db = connect(&settings).await?;
            let storage = open_storage(&settings)?;
            // Erased chats are announced to webhook endpoints (the servers' workers deliver);
            // no server hears of them otherwise, so their remembered tokens expire by restart.
            let hooks = crate::webhooks::Hooks::off();
            hooks
                .refresh(&db)
                .await
                .context("cannot read the webhook endpoints")?;
            let report = crate::service::retention::run_jobs(
                &db,
                storage.as_ref(),
                &crate::realtime::EventBus::in_process(),
                &hooks,
                settings.retention_days,
                settings.chat_retention_days,
            )
            .await
            .map_err(anyhow::Error::from)
            .context("retention and orphan sweep failed")?;
            if report.erased_chats > 0 {
                println!(
                    "erased {} chat(s) inactive for over {} days",
                    report.erased_chats, settings.chat_retention_days
                );
            }
            if report.skipped {
                println!("another instance is running the jobs right now; nothing done");
            } else if settings.retention_days == 0 {
                println!(
                    "retention is off (CHATDESK_RETENTION_DAYS=0); removed {} orphaned file(s)",
                    report.removed_orphans
                );
            } else {
                println!(
                    "purged {} attachment(s) older than {} days; removed {} orphaned file(s)",
                    report.purged_attachments, settings.retention_days, report.removed_orphans
                );
            }
            Ok(())
        }
        Command::Schema => Ok(()),
    }
}

/// The database, migrated: every command but `serve` (which migrates itself) starts here.
async fn connect(settings: &Settings) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let db = crate::database::connect(settings).await?;
    crate::database::migrate(&db).await?;
    Ok(db)
}

fn open_storage(
    settings: &Settings,
) -> anyhow::Result<std::sync::Arc<dyn crate::storage::Storage>> {
    crate::storage::from_settings(&settings.storage)
        .map_err(anyhow::Error::from)
        .context("CHATDESK_STORAGE")
}

/// The new password: one line from standard input, or typed twice at a prompt.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let prompt = |label: &str| -> anyhow::Result<String> {
        eprint!("{label}: ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let first = prompt("New password")?;
    let second = prompt("Repeat it")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(first)
}
