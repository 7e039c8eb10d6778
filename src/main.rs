//! Rill's server. Development: `cargo leptos watch`; see README.md for the one-command set-up.
//! Configuration comes from the environment (see `.env.example`). `rill user add --admin NAME`
//! creates an account instead of serving (see `server/cli.rs`).

/// jemalloc returns freed memory to the system after a burst; glibc's allocator kept what a
/// burst of sign-ins or sends took (docs/allocator.md).
#[cfg(feature = "ssr")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(feature = "ssr")]
fn main() -> anyhow::Result<()> {
    use anyhow::Context;
    use rill::server::cli::{self, Command};
    use rill::server::config::Config;

    // Everything Rill creates (the database, its directory, backups) is its owner's alone.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };

    if command == Command::Healthcheck {
        return healthcheck();
    }
    // A child the server runs to read one PDF: nothing else is set up for it.
    if let Command::ReadPdf {
        max_bytes,
        memory_bytes,
        cpu_seconds,
    } = &command
    {
        std::process::exit(i32::from(rill::server::attachments::pdf::worker(
            max_bytes,
            memory_bytes,
            cpu_seconds,
        )));
    }
    let config = Config::from_env().context("reading configuration")?;
    rill::server::logging::init(config.ops.log_format);
    if command == Command::Serve {
        let files = rill::server::connections::raise_open_files_limit();
        tracing::info!(
            soft_before = ?files.soft_before,
            soft = ?files.soft,
            hard = ?files.hard,
            "open-files limit (unlimited where none)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match command {
        Command::Serve => runtime.block_on(serve(config)),
        Command::AddUser { username, admin } => {
            runtime.block_on(add_user(config, &username, admin))
        }
        Command::Backup { destination } => runtime.block_on(async {
            rill::server::db::backup(&config.database, &destination).await?;
            println!(
                "copied {} to {}",
                config.database.describe(),
                destination.display()
            );
            Ok(())
        }),
        Command::Migrate => runtime.block_on(async {
            use anyhow::Context;
            rill::server::db::migrate(&config.database)
                .await
                .with_context(|| format!("migrating {}", config.database.describe()))?;
            println!("{} is up to date", config.database.describe());
            Ok(())
        }),
        Command::MigrateToPostgres { sqlite, url } => runtime.block_on(async {
            let copied = rill::server::db::to_postgres::copy(&sqlite, &url).await?;
            for (table, rows) in &copied.0 {
                println!("{table}: {rows} rows");
            }
            println!(
                "copied {} into {}; every table's rows counted alike. Sessions were not copied: \
                 people sign in again.",
                sqlite.display(),
                rill::server::config::Database::Postgres(url).describe()
            );
            Ok(())
        }),
        Command::Help => {
            println!("{}", cli::USAGE);
            Ok(())
        }
        // Answered above, before any setting is read.
        Command::Healthcheck | Command::ReadPdf { .. } => Ok(()),
    }
}

/// `rill healthcheck`: exit 0 if the server at `LEPTOS_SITE_ADDR` answers `/healthz`. Reads no
/// other setting, so it works wherever the server's environment is.
#[cfg(feature = "ssr")]
fn healthcheck() -> anyhow::Result<()> {
    use anyhow::Context;
    let addr = leptos::config::get_configuration(None)
        .context("reading Leptos settings")?
        .leptos_options
        .site_addr;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match runtime.block_on(rill::server::ops::probe(addr)) {
        Ok(()) => Ok(()),
        Err(e) => {
            eprintln!("unhealthy: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(feature = "ssr")]
async fn add_user(
    config: rill::server::config::Config,
    username: &str,
    admin: bool,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use rill::server::{accounts, db};

    let password = rill::server::cli::new_password(username)
        .context("reading the password from standard input")?;
    let db = db::connect(&config.database)
        .await
        .with_context(|| format!("opening the database {}", config.database.describe()))?;
    let user = accounts::add_user_from_cli(&db, username, &password, admin).await?;
    let role = if admin { "admin" } else { "user" };
    println!("created {role} {}", user.username);
    Ok(())
}

#[cfg(feature = "ssr")]
async fn serve(config: rill::server::config::Config) -> anyhow::Result<()> {
    use anyhow::Context;
    use rill::server::catalog::LocalModelStatus;
    use rill::server::{db, http, AppState};

    let mut leptos_options = leptos::config::get_configuration(None)
        .context("reading Leptos settings")?
        .leptos_options;
    // A release build with hashed file names leaves its hash file beside the binary; the page
    // must then name the hashed files, whoever started the binary.
    if !leptos_options.hash_files {
        leptos_options.hash_files = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join(leptos_options.hash_file.as_ref())))
            .is_some_and(|file| file.exists());
    }
    // Before anything else: an open address without accounts must not start at all.
    config.access.check_listen(leptos_options.site_addr)?;
    match config.database.sqlite_path() {
        Some(_) if config.unsafe_file_modes => {
            tracing::warn!("RILL_UNSAFE_FILE_MODES=yes: the database's file modes are not checked");
        }
        Some(path) => db::check_file_modes(path)?,
        // A Postgres server guards its own data.
        None => {}
    }
    let db = db::connect(&config.database)
        .await
        .with_context(|| format!("opening the database {}", config.database.describe()))?;
    let settings = config.local_model.clone();
    let local_model =
        tokio::task::spawn_blocking(move || LocalModelStatus::load(settings.as_ref())).await?;
    warn_if_nobody_can_sign_in(&db, &config).await?;
    let database = db.clone();
    let state = AppState::new(db, config, local_model)
        .await
        .context("starting the server's state")?;
    for notice in state.catalog.notices() {
        tracing::warn!("{notice}");
    }
    // Before serving: a lease, and the replies no living replica writes marked interrupted.
    let interrupted = rill::server::turns::join(&state.db, &state.prices).await?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "replies cut short when their server stopped were kept and marked interrupted"
        );
    }
    // Replies a crash cut short are billed at an estimate of what they wrote.
    let settled = rill::server::turns::settle_open_runs(&state.db, &state.prices, None).await?;
    if settled > 0 {
        tracing::warn!(
            runs = settled,
            "runs a crash interrupted were billed at an estimate"
        );
    }
    let bound = i64::try_from(state.config.turns.max_duration.as_millis()).unwrap_or(i64::MAX);
    let before = rill::server::db::now_ms().saturating_sub(bound);
    let abandoned =
        rill::server::db::usage::settle_abandoned_completions(&state.db, before).await?;
    if abandoned > 0 {
        tracing::warn!(
            runs = abandoned,
            "API completions a crash interrupted were billed at what they reserved"
        );
    }
    let unpriced: Vec<&str> = state
        .catalog
        .ids()
        .filter(|id| state.prices.price(id).is_none())
        .collect();
    if !unpriced.is_empty() {
        let counted = if state.config.limits.allow_unpriced_models {
            "counted as free for people with a budget (RILL_ALLOW_UNPRICED_MODELS=yes)"
        } else {
            "refused to people with a budget; give them a [prices] entry, or set \
             RILL_ALLOW_UNPRICED_MODELS=yes to count them as free"
        };
        tracing::warn!(models = ?unpriced, "models with no price: {counted}");
    }
    tracing::info!(models = ?state.catalog.ids().collect::<Vec<_>>(), default = state.catalog.default_model(), "models");

    let addr = leptos_options.site_addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!("listening on http://{addr}");
    http::serve(listener, state, leptos_options)
        .await
        .context("serving")?;
    // Checkpoints the WAL into the database and removes it.
    database.close().await;
    Ok(())
}

/// Accounts mode with no account yet: say how to create the first admin.
#[cfg(feature = "ssr")]
async fn warn_if_nobody_can_sign_in(
    db: &rill::server::db::Db,
    config: &rill::server::config::Config,
) -> anyhow::Result<()> {
    use rill::server::config::AuthMode;
    if config.access.mode == AuthMode::Accounts
        && rill::server::db::accounts::count_users(db).await? == 0
    {
        tracing::warn!(
            "accounts mode and no account yet: create the first admin with `rill user add --admin NAME`"
        );
    }
    Ok(())
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser build is a library (see lib.rs `hydrate`); this binary needs the `ssr` feature.
}
