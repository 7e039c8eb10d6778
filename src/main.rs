//! Rill's server. Development: `cargo leptos watch`; see README.md for the one-command set-up.
//! Configuration comes from the environment (see `.env.example`).

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use anyhow::Context;
    use rill::server::{config::Config, db, http, AppState};

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .init();

    let leptos_options = leptos::config::get_configuration(None)
        .context("reading Leptos settings")?
        .leptos_options;
    let config = Config::from_env().context("reading configuration")?;
    let pool = db::connect(&config.database_path)
        .await
        .with_context(|| format!("opening the database {}", config.database_path.display()))?;
    let interrupted = db::fail_interrupted(&pool).await?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "replies cut short by the last shutdown were kept and marked failed"
        );
    }
    let state = AppState::new(pool, config);
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
