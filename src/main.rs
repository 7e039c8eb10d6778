//! Rill's server. Development: `cargo leptos watch`; see README.md for the one-command set-up.
//! Configuration comes from the environment (see `.env.example`).

#[cfg(feature = "ssr")]
fn main() -> anyhow::Result<()> {
    use anyhow::Context;
    use rill::server::config::Config;

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let config = Config::from_env().context("reading configuration")?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(serve(config))
}

#[cfg(feature = "ssr")]
async fn serve(config: rill::server::config::Config) -> anyhow::Result<()> {
    use anyhow::Context;
    use rill::server::models::LocalModelStatus;
    use rill::server::{db, http, AppState};

    let leptos_options = leptos::config::get_configuration(None)
        .context("reading Leptos settings")?
        .leptos_options;
    let db = db::connect(&config.database_path)
        .await
        .with_context(|| format!("opening the database {}", config.database_path.display()))?;
    let interrupted = db::interrupt_streaming(&db).await?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "replies cut short when the server last stopped were kept and marked interrupted"
        );
    }
    let settings = config.local_model.clone();
    let local_model =
        tokio::task::spawn_blocking(move || LocalModelStatus::load(settings.as_ref())).await?;
    let state = AppState::new(db, config, local_model)
        .await
        .context("loading the price table")?;
    for notice in state.models.notices() {
        tracing::warn!("{notice}");
    }
    tracing::info!(models = ?state.models.ids().collect::<Vec<_>>(), default = state.models.default_model(), "models");

    let addr = leptos_options.site_addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!("listening on http://{addr}");
    http::serve(listener, state, leptos_options)
        .await
        .context("serving")?;
    Ok(())
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser build is a library (see lib.rs `hydrate`); this binary needs the `ssr` feature.
}
