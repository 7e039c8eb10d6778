use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{lazy_route, path, Lazy, LazyRoute};

use crate::model::accounts::Theme;
use crate::ui::account::{PasswordPage, SignInPage};
use crate::ui::admin::AdminPage;
use crate::ui::chat::ChatPage;
use crate::ui::transfer::TransferPage;
use crate::ui::usage::UsagePage;

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The colours the person chose (a cookie, read in `server::http`), drawn from the first paint.
    let theme = use_context::<Theme>().unwrap_or_default();
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=theme.attribute()>
            <head>
                <meta charset="utf-8" />
                // `viewport-fit=cover`: the page reaches under a phone's notch and home bar, and
                // keeps its controls inside the safe area itself (`env(safe-area-inset-*)`).
                <meta
                    name="viewport"
                    content="width=device-width, initial-scale=1, viewport-fit=cover, interactive-widget=resizes-content"
                />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                // Installable (`public/manifest.webmanifest`, `public/sw.js`); the bar's colour
                // follows the scheme, which a manifest cannot say.
                <link rel="manifest" href="/manifest.webmanifest" />
                <link rel="apple-touch-icon" href="/icons/apple-touch-icon.png" />
                <meta name="theme-color" content="#ffffff" media="(prefers-color-scheme: light)" />
                <meta name="theme-color" content="#1e2127" media="(prefers-color-scheme: dark)" />
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
    crate::ui::conversations::provide_recently_deleted();
    view! {
        <Title text="Rill" />
        <Router>
            <Routes fallback=|| view! { <p class="notice">"Page not found."</p> }>
                <Route path=path!("/") view=ChatPage />
                <Route path=path!("/c/:id") view=ChatPage />
                <Route path=path!("/signin") view={Lazy::<SignInRoute>::new()} />
                <Route path=path!("/account") view={Lazy::<PasswordRoute>::new()} />
                <Route path=path!("/usage") view={Lazy::<UsageRoute>::new()} />
                <Route path=path!("/import-export") view={Lazy::<TransferRoute>::new()} />
                <Route path=path!("/admin") view={Lazy::<AdminRoute>::new()} />
            </Routes>
        </Router>
    }
}

// Pages few visits need are split out of the first load: built with `cargo leptos --split`, each
// is its own WASM file fetched when the route is first opened (a fifth of the module). Without
// `--split` they stay in the main module and work the same. Sign-in too: a browser sees it once
// per session, and only in accounts mode.

struct SignInRoute;

#[lazy_route]
impl LazyRoute for SignInRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <SignInPage /> }.into_any()
    }
}

struct PasswordRoute;

#[lazy_route]
impl LazyRoute for PasswordRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <PasswordPage /> }.into_any()
    }
}

struct UsageRoute;

#[lazy_route]
impl LazyRoute for UsageRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <UsagePage /> }.into_any()
    }
}

struct TransferRoute;

#[lazy_route]
impl LazyRoute for TransferRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <TransferPage /> }.into_any()
    }
}

struct AdminRoute;

#[lazy_route]
impl LazyRoute for AdminRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <AdminPage /> }.into_any()
    }
}
