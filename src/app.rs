use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{lazy_route, path, Lazy, LazyRoute};

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
