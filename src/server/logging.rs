//! The log: text for people, or JSON lines for log shippers (`RILL_LOG_FORMAT=json`). Lines
//! written inside a turn carry its `turn_id` (the turn task runs in a `turn` span).

use tracing_subscriber::EnvFilter;

use super::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        // One object per line; span fields (the turn id) flattened into `span`.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
