use leptos::prelude::*;
use leptos::server::ServerAction;
use leptos::server_fn::ServerFn;

use crate::api::account::{
    current_user, sign_in_options, sign_out, ChangePassword, SignIn, SignUp,
};
use crate::error::ApiError;
use crate::model::accounts::OidcRefusal;
use crate::ui::wire;
use leptos_router::hooks::use_query_map;

/// A page of its own (sign-in, password, usage, admin): a title, a way back, and its content.
#[component]
pub fn Panel(
    title: &'static str,
    #[prop(optional)] back: bool,
    children: Children,
) -> impl IntoView {
    view! {
        <main class="panel-page">
            <section class="panel">
                <header class="panel-header">
                    <h1>{title}</h1>
                    {back.then(|| view! { <a class="back" href="/">"Back to chats"</a> })}
                </header>
                {children()}
            </section>
        </main>
    }
}

/// An action's error, in words, where the person looks.
pub fn error_of<S>(action: ServerAction<S>) -> impl Fn() -> Option<String> + Copy
where
    S: ServerFn<Error = ApiError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    move || {
        action
            .value()
            .get()
            .and_then(Result::err)
            .map(|e| e.to_string())
    }
}

// Every form says `method="post"`: submitted before the page is live, it must not put a password
// in a URL.

/// Reloads the app from the server, signed in (or out) as the session now says.
fn go_home() {
    let _ = window().location().set_href("/");
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let options = wire::resource(|| (), |_| sign_in_options());
    // Why a sign-in through the identity provider came back refused: a fixed word, put in words
    // here (nothing the provider sent is shown).
    let query = use_query_map();
    let refusal = move || {
        query
            .read()
            .get("oidc")
            .and_then(|code| OidcRefusal::from_code(&code))
    };
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let creating = RwSignal::new(false);
    let sign_in = ServerAction::<SignIn>::new();
    let sign_up = ServerAction::<SignUp>::new();
    Effect::new(move || {
        if matches!(sign_in.value().get(), Some(Ok(_)))
            || matches!(sign_up.value().get(), Some(Ok(_)))
        {
            go_home();
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (username, password) = (username.get(), password.get());
        if creating.get() {
            sign_up.dispatch(SignUp { username, password });
        } else {
            sign_in.dispatch(SignIn { username, password });
        }
    };
    let pending = move || sign_in.pending().get() || sign_up.pending().get();
    let in_error = error_of(sign_in);
    let up_error = error_of(sign_up);
    let error = move || {
        if creating.get() {
            up_error()
        } else {
            in_error()
        }
    };
    let form = move || {
        view! {
            <form class="form" method="post" on:submit=submit>
                <label>"Username"
                    <input name="username" autocomplete="username" required bind:value=username />
                </label>
                <label>"Password"
                    <input
                        name="password"
                        type="password"
                        required
                        autocomplete=move || if creating.get() { "new-password" } else { "current-password" }
                        bind:value=password
                    />
                </label>
                {move || error().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
                <button type="submit" class="primary" disabled=pending>
                    {move || if creating.get() { "Create account" } else { "Sign in" }}
                </button>
            </form>
        }
    };
    view! {
        <Panel title="Sign in to Rill">
            <Transition fallback=|| ()>
                {move || {
                    let options = options.clone();
                    Suspend::new(async move {
                        let info = options.await.ok();
                        let passwords = info.as_ref().is_none_or(|i| i.passwords);
                        let open = info.as_ref().is_some_and(|i| i.open_signup);
                        let provider = info.and_then(|i| i.single_sign_on);
                        let both = provider.is_some() && passwords;
                        view! {
                            {provider.map(|name| {
                                let refused = refusal().map(|r| r.words(&name));
                                view! {
                                    {refused.map(|words| view! {
                                        <p class="form-error" role="alert">{words}</p>
                                    })}
                                    // A plain link: it works before the page is live, and the
                                    // provider's page is a navigation anyway (`external`: the
                                    // client-side router leaves it to the browser).
                                    <a class="sso-button" href="/auth/oidc/start" rel="external">
                                        {format!("Sign in with {name}")}
                                    </a>
                                }
                            })}
                            {both.then(|| view! { <p class="form-or muted">"or with a password"</p> })}
                            {passwords.then(form)}
                            {open.then(|| view! {
                                <p class="form-switch">
                                    <button type="button" class="link" on:click=move |_| creating.update(|c| *c = !*c)>
                                        {move || if creating.get() { "I have an account" } else { "Create an account" }}
                                    </button>
                                </p>
                            })}
                        }
                    })
                }}
            </Transition>
        </Panel>
    }
}

#[component]
pub fn PasswordPage() -> impl IntoView {
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let change = ServerAction::<ChangePassword>::new();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        change.dispatch(ChangePassword {
            current: current.get(),
            new: new.get(),
        });
    };
    Effect::new(move || {
        if matches!(change.value().get(), Some(Ok(()))) {
            current.set(String::new());
            new.set(String::new());
        }
    });
    let error = error_of(change);
    view! {
        <Panel title="Change password" back=true>
            <form class="form" method="post" on:submit=submit>
                <label>"Current password"
                    <input type="password" autocomplete="current-password" required bind:value=current />
                </label>
                <label>"New password (at least 8 characters)"
                    <input type="password" autocomplete="new-password" minlength="8" required bind:value=new />
                </label>
                {move || error().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
                {move || matches!(change.value().get(), Some(Ok(()))).then(|| view! {
                    <p class="form-done" role="status">"Password changed. Your other sessions are signed out."</p>
                })}
                <button type="submit" class="primary" disabled=move || change.pending().get()>"Change password"</button>
            </form>
        </Panel>
    }
}

/// Under the conversation list: who is signed in, and where they can go.
#[component]
pub fn AccountMenu() -> impl IntoView {
    // `Arc`: a reference-counted resource is never "disposed" under a Suspense that the server
    // checks once more as the page ends (an arena one panics there; see ARCHITECTURE.md).
    let me = wire::resource(|| (), |_| current_user());
    // A plain call, not a `ServerAction`: the action's form-error decoding (base64 and more) would
    // be the first screen's only use of it (docs/decisions.md, "Smaller first load").
    let leave = move || {
        leptos::task::spawn_local(async {
            if sign_out().await.is_ok() {
                go_home();
            }
        });
    };
    view! {
        <Transition fallback=|| ()>
            {move || {
                let me = me.clone();
                Suspend::new(async move {
                me.await.ok().map(|me| {
                    let signs_out = me.accounts && !me.via_proxy;
                    let own_password = me.can_change_password;
                    view! {
                        <div class="account-menu">
                            <span class="who" title="Signed in as">{me.username.clone()}</span>
                            <a href="/usage">"Usage"</a>
                            <a href="/import-export">"Import/export"</a>
                            {(me.is_admin && me.accounts).then(|| view! { <a href="/admin">"Admin"</a> })}
                            {own_password.then(|| view! { <a href="/account">"Password"</a> })}
                            {signs_out.then(|| view! {
                                <button type="button" class="link" on:click=move |_| leave()>
                                    "Sign out"
                                </button>
                            })}
                        </div>
                    }
                })
            })}}
        </Transition>
    }
}
