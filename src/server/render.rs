//! Markdown rendered on the server: off the async workers (a long reply takes tens of
//! milliseconds of CPU), a few at a time (one per core; the rest wait), and once per run of a
//! reply, kept with it (`messages.html`), so opening a conversation reads HTML rather than
//! rendering it again.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

/// Which renderer wrote a stored rendering: a hash of the renderer's source and of the lock file
/// (its crates' versions), so a change to either renders stored replies again, lazily.
pub const RENDERER_VERSION: i64 = renderer_version();

const fn renderer_version() -> i64 {
    const SOURCES: [&str; 3] = [
        include_str!("../markdown.rs"),
        include_str!("../markdown/highlight.rs"),
        include_str!("../../Cargo.lock"),
    ];
    // FNV-1a, 64 bits, kept positive for SQLite's signed integers.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut s = 0;
    while s < SOURCES.len() {
        let bytes = SOURCES[s].as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        s += 1;
    }
    (hash >> 1) as i64
}

fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS
        .get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(1, usize::from)))
}

/// `text` as safe HTML (`crate::markdown::render`), waiting for a turn to render. Empty if
/// rendering failed, in which case the page renders the reply itself.
pub async fn html(text: String) -> String {
    let Ok(permit) = permits().acquire().await else {
        return String::new();
    };
    render_with(permit, text).await
}

/// [`html`] if a renderer is free now; empty otherwise (the page renders the reply itself). For
/// opening a conversation, which anyone may ask for as often as they like: it must never queue
/// ahead of the replies being stored.
pub async fn html_unless_busy(text: String) -> String {
    let Ok(permit) = permits().try_acquire() else {
        return String::new();
    };
    render_with(permit, text).await
}

async fn render_with(permit: tokio::sync::SemaphorePermit<'static>, text: String) -> String {
    let rendered = tokio::task::spawn_blocking(move || crate::markdown::render(&text))
        .await
        .unwrap_or_else(|e| {
            tracing::error!("rendering a reply failed: {e}");
            String::new()
        });
    drop(permit);
    rendered
}
