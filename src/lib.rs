//! Rill: a self-hostable streaming LLM chat app. A guided tour, in the order a chat turn meets them:

// The chat page's view is one deeply nested type (Leptos builds views from types); its async
// server rendering passes the default limit of 128.
#![recursion_limit = "256"]

/// Server functions: the browser's whole API, each a few lines calling into `server`.
pub mod api;
/// The HTML shell, the router and the page.
pub mod app;
/// The API's error type and its HTTP status.
pub mod error;
/// How figures (money) read, in the page and in the server's messages.
pub mod format;
/// Markdown to safe HTML, whole or as a reply streams; the same on server and browser.
pub mod markdown;
/// Types both the server and the browser use: conversations, messages, turn events.
pub mod model;
/// Server-only: config, storage, providers, running turns, the HTTP router.
#[cfg(feature = "ssr")]
pub mod server;
/// Components, by feature. They know nothing of HTTP or providers.
pub mod ui;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // The release WASM aborts at a panic without running a hook (`-Cpanic=immediate-abort`,
    // scripts/release-build.sh): the hook and its formatting would be dead weight there.
    #[cfg(not(panic = "immediate-abort"))]
    console_error_panic_hook::set_once();
    // Some routes are lazy (`app.rs`): their WASM is fetched before they hydrate, so hydration
    // is async (what `leptos::mount::hydrate_lazy` does, with the page marked live at its end).
    wasm_bindgen_futures::spawn_local(async {
        let document = leptos::prelude::document();
        let Some(body) = document.body() else {
            return;
        };
        // A conversation's messages are their own WASM file: in place before they hydrate.
        if let Ok(path) = leptos::prelude::window().location().pathname() {
            ui::chat::preload_for_page(&path).await;
        }
        // The theme the server drew the page with, for the theme switch (see `ui::theme`).
        let theme = document
            .document_element()
            .and_then(|root| root.get_attribute("data-theme"))
            .map_or_else(Default::default, |t| model::accounts::Theme::parse(&t));
        leptos::mount::hydrate_from_async(body, move || {
            leptos::prelude::provide_context(theme);
            app::App()
        })
        .await
        .forget();
        // A mark that the page is live (event handlers attached), for browser tests and styling.
        if let Some(root) = document.document_element() {
            let _ = root.set_attribute("data-hydrated", "");
        }
        ui::phone::setup();
    });
}
