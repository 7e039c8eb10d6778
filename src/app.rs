use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use crate::ui::account::{PasswordPage, SignInPage};
use crate::ui::admin::AdminPage;
use crate::ui::chat::ChatPage;
use crate::ui::usage::UsagePage;

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                // Named with the build's content hash when built with hashed files, so browsers
                // may keep it for good (see `server/assets.rs`).
                <HashedStylesheet options=options.clone() id="leptos" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="Rill" />
        <Router>
            <Routes fallback=|| view! { <p class="notice">"Page not found."</p> }>
                <Route path=path!("/") view=ChatPage />
                <Route path=path!("/c/:id") view=ChatPage />
                <Route path=path!("/signin") view=SignInPage />
                <Route path=path!("/account") view=PasswordPage />
                <Route path=path!("/usage") view=UsagePage />
                <Route path=path!("/admin") view=AdminPage />
            </Routes>
        </Router>
    }
}
