//! The admin page: users and service accounts (with their keys) and their budgets, groups,
//! settings, lockouts and the audit log.

use std::collections::HashMap;

use leptos::prelude::*;
use leptos::server::ServerAction;

use leptos::task::spawn_local;

use crate::api::admin::{
    admin_overview, audit_log, list_users, ClearLockout, CreateUser, ResetPassword,
    SetSiteSettings, SetUserBudget, SetUserDisabled, AUDIT_PAGE, USERS_PAGE,
};
use crate::error::ApiError;
use crate::format::{budget_text, format_cost, parse_budget};
use crate::model::accounts::{AuditEntry, Lockout, SiteSettings, UserView};
use crate::ui::account::{error_of, Panel};
use crate::ui::api_keys::ApiKeys;
use crate::ui::wire;

/// The page's groups: budgets, models, members, the month's chart.
mod groups;
pub use groups::total_words;

#[component]
pub fn AdminPage() -> impl IntoView {
    let create = ServerAction::<CreateUser>::new();
    let disable = ServerAction::<SetUserDisabled>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let budget = ServerAction::<SetUserBudget>::new();
    let settings = ServerAction::<SetSiteSettings>::new();
    let clear = ServerAction::<ClearLockout>::new();
    // Reloaded after every change.
    let overview = wire::resource(
        move || {
            (
                create.version().get(),
                disable.version().get(),
                reset.version().get(),
                budget.version().get(),
                settings.version().get(),
                clear.version().get(),
            )
        },
        |_| admin_overview(),
    );
    let (e1, e2, e3, e4, e5, e6) = (
        error_of(create),
        error_of(disable),
        error_of(reset),
        error_of(budget),
        error_of(settings),
        error_of(clear),
    );
    let local_error = RwSignal::new(None::<String>);
    let error = move || {
        local_error
            .get()
            .or_else(e1)
            .or_else(e2)
            .or_else(e3)
            .or_else(e4)
            .or_else(e5)
            .or_else(e6)
    };
    let actions = UserActions {
        disable,
        reset,
        budget,
        local_error,
        key_panels: StoredValue::new(HashMap::new()),
    };
    let users = Paged::new(USERS_PAGE, |user: &UserView| user.username.clone());
    let group_drafts = groups::group_drafts();
    let log = Paged::new(AUDIT_PAGE, |entry: &AuditEntry| entry.id);
    view! {
        <Panel title="Admin" back=true>
            {move || error().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || {
                    let overview = overview.clone();
                    Suspend::new(async move {
                        match overview.await {
                            Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                            Ok(view_data) => view! {
                                <Users first=view_data.users users actions />
                                <NewUserForm create local_error />
                                <groups::Groups drafts=group_drafts />
                                <SettingsForm current=view_data.settings spent=view_data.site_month_cost_usd settings local_error />
                                <Lockouts lockouts=view_data.lockouts total=view_data.lockouts_total clear />
                                <AuditLog first=view_data.audit log />
                            }.into_any(),
                        }
                    })
                }}
            </Transition>
        </Panel>
    }
}

/// Accounts that failed to sign in lately; a locked one can be let in again. Browsers that
/// signed in to an account before are never locked out of it.
#[component]
fn Lockouts(
    lockouts: Vec<Lockout>,
    total: u32,
    clear: ServerAction<ClearLockout>,
) -> impl IntoView {
    if lockouts.is_empty() {
        return ().into_any();
    }
    let not_shown = usize::try_from(total)
        .unwrap_or(usize::MAX)
        .saturating_sub(lockouts.len());
    view! {
        <h2>"Failed sign-ins (last hour)"</h2>
        <table class="figures lockouts">
            <thead><tr><th>"Account"</th><th class="num">"Failures"</th><th>"Locked"</th><th></th></tr></thead>
            <tbody>
                {lockouts.into_iter().map(|lockout| {
                    let name = lockout.username.clone();
                    let account = StoredValue::new(lockout.username);
                    let locked = lockout.locked_for_secs.map_or_else(
                        || "no".to_owned(),
                        |secs| format!("for {} more min, to new browsers", secs.div_ceil(60)),
                    );
                    view! {
                        <tr data-account=name.clone()>
                            <td>{name.clone()}</td>
                            <td class="num">{lockout.failures}</td>
                            <td>{locked}</td>
                            <td><button type="button" on:click=move |_| {
                                clear.dispatch(ClearLockout { username: account.get_value() });
                            }>"Clear"</button></td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        {(not_shown > 0).then(|| view! {
            <p class="note">{format!("…and {not_shown} more names, none with more failures than these (the audit log has them all)")}</p>
        })}
    }
    .into_any()
}

/// A list shown a page at a time and searchable: the users and the audit log. It lives as long
/// as the admin page, so that reloading the page's figures after a change keeps the search and
/// the pages shown (they are fetched again, with the change in them).
struct Paged<T: Send + Sync + 'static, K: 'static> {
    entries: RwSignal<Vec<T>>,
    /// What the search box holds.
    filter: RwSignal<String>,
    /// The search the entries are for: what "more" and a refresh ask for.
    applied: RwSignal<String>,
    more: RwSignal<bool>,
    busy: RwSignal<bool>,
    failed: RwSignal<Option<String>>,
    /// Bumped by every request, so that only the newest one's answer is shown.
    generation: RwSignal<u64>,
    page: usize,
    /// Where the page after an entry starts.
    cursor: fn(&T) -> K,
}

impl<T: Send + Sync + 'static, K: 'static> Clone for Paged<T, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send + Sync + 'static, K: 'static> Copy for Paged<T, K> {}

impl<T: Send + Sync + 'static, K: 'static> Paged<T, K> {
    fn new(page: u32, cursor: fn(&T) -> K) -> Self {
        Self {
            entries: RwSignal::new(Vec::new()),
            filter: RwSignal::new(String::new()),
            applied: RwSignal::new(String::new()),
            more: RwSignal::new(false),
            busy: RwSignal::new(false),
            failed: RwSignal::new(None),
            generation: RwSignal::new(0),
            page: usize::try_from(page).unwrap_or(usize::MAX),
            cursor,
        }
    }

    /// Shows `first`, the unfiltered first page that came with the admin page, unless more is
    /// shown (a search, or further pages): then that is fetched again.
    fn show<F, Fut>(self, first: Vec<T>, fetch: F)
    where
        F: Fn(String, Option<K>) -> Fut + Copy + 'static,
        Fut: std::future::Future<Output = Result<Vec<T>, ApiError>> + 'static,
    {
        let searched = !self.applied.with_untracked(String::is_empty);
        let pages = self
            .entries
            .with_untracked(Vec::len)
            .div_ceil(self.page.max(1));
        if searched || pages > 1 {
            self.fetch(false, pages.max(1), fetch);
        } else {
            self.more.set(first.len() >= self.page);
            self.entries.set(first);
        }
    }

    /// The first page of what the search box holds.
    fn search<F, Fut>(self, fetch: F)
    where
        F: Fn(String, Option<K>) -> Fut + Copy + 'static,
        Fut: std::future::Future<Output = Result<Vec<T>, ApiError>> + 'static,
    {
        self.applied.set(self.filter.get_untracked());
        self.fetch(false, 1, fetch);
    }

    /// The next page of the search shown, below the others.
    fn next<F, Fut>(self, fetch: F)
    where
        F: Fn(String, Option<K>) -> Fut + Copy + 'static,
        Fut: std::future::Future<Output = Result<Vec<T>, ApiError>> + 'static,
    {
        self.fetch(true, 1, fetch);
    }

    /// Fetches `pages` pages of the applied search: after the last entry shown when
    /// `below`, otherwise from its start, in place of what is shown.
    fn fetch<F, Fut>(self, below: bool, pages: usize, fetch: F)
    where
        F: Fn(String, Option<K>) -> Fut + Copy + 'static,
        Fut: std::future::Future<Output = Result<Vec<T>, ApiError>> + 'static,
    {
        self.busy.set(true);
        self.generation.update(|n| *n = n.wrapping_add(1));
        let generation = self.generation.get_untracked();
        let query = self.applied.get_untracked();
        let mut after = if below {
            self.entries
                .with_untracked(|shown| shown.last().map(self.cursor))
        } else {
            None
        };
        spawn_local(async move {
            let mut fetched = Vec::new();
            let mut full = false;
            let mut failure = None;
            for _ in 0..pages {
                match fetch(query.clone(), after).await {
                    Ok(page) => {
                        full = page.len() >= self.page;
                        after = page.last().map(self.cursor);
                        fetched.extend(page);
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        failure = Some(e.to_string());
                        break;
                    }
                }
            }
            if self.generation.try_get_untracked() != Some(generation) {
                return;
            }
            if failure.is_none() {
                let _ = self.more.try_set(full);
                let _ = self.entries.try_update(|shown| {
                    if !below {
                        shown.clear();
                    }
                    shown.extend(fetched);
                });
            }
            let _ = self.failed.try_set(failure);
            let _ = self.busy.try_set(false);
        });
    }

    /// The button that shows the next page, while there is one.
    fn more_button<F, Fut>(self, label: &'static str, fetch: F) -> impl IntoView
    where
        F: Fn(String, Option<K>) -> Fut + Copy + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Vec<T>, ApiError>> + 'static,
    {
        view! {
            <Show when=move || self.more.get()>
                <button type="button" class="older" on:click=move |_| self.next(fetch)
                    disabled=move || self.busy.get()>{label}</button>
            </Show>
        }
    }

    /// The search box, and what went wrong with the last page asked for.
    fn search_form(
        self,
        label: &'static str,
        placeholder: &'static str,
        search: impl Fn() + 'static,
    ) -> impl IntoView {
        let submit = move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            search();
        };
        view! {
            <form class="inline list-search" method="post" on:submit=submit role="search">
                <input type="search" placeholder=placeholder aria-label=label bind:value=self.filter />
                <button type="submit" disabled=move || self.busy.get()>"Search"</button>
            </form>
            {move || self.failed.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
        }
    }
}

/// Users by name, a page at a time, searchable by name.
#[component]
fn Users(
    first: Vec<UserView>,
    users: Paged<UserView, String>,
    actions: UserActions,
) -> impl IntoView {
    users.show(first, list_users);
    view! {
        <h2>"Users"</h2>
        {users.search_form("Find users by name", "name…", move || users.search(list_users))}
        <table class="figures users">
            <thead><tr>
                <th>"User"</th><th>"Role"</th><th class="num">"Spent this month"</th>
                <th>"Monthly budget ($)"</th><th>"Password or keys"</th><th>"Access"</th>
            </tr></thead>
            <tbody>
                <For each=move || users.entries.get() key=row_key let:user>
                    <UserRow user actions />
                </For>
            </tbody>
        </table>
        {users.more_button("More users", list_users)}
    }
}

/// A row is drawn again when anything it shows changes.
fn row_key(user: &UserView) -> (String, bool, bool, Option<u64>, u64) {
    (
        user.id.clone(),
        user.is_admin,
        user.disabled,
        user.monthly_budget_usd.map(f64::to_bits),
        user.month_cost_usd.to_bits(),
    )
}

/// The audit log, newest first, a page at a time, searchable.
#[component]
fn AuditLog(first: Vec<AuditEntry>, log: Paged<AuditEntry, i64>) -> impl IntoView {
    log.show(first, audit_log);
    view! {
        <h2>"Audit log"</h2>
        {log.search_form("Search the audit log", "who, what, address…", move || log.search(audit_log))}
        // It scrolls sideways on a phone: focusable, so a keyboard can scroll it too.
        <table class="figures audit" tabindex="0" aria-label="Audit log">
            <thead><tr>
                <th>"Time (UTC)"</th><th>"Who"</th><th>"What"</th><th>"Whom"</th>
                <th>"From"</th><th>"Detail"</th>
            </tr></thead>
            <tbody>
                <For each=move || log.entries.get() key=|entry| (entry.id, entry.count) let:entry>
                    <tr>
                        <td>{entry.at}</td>
                        <td>{entry.actor.unwrap_or_default()}</td>
                        <td>{if entry.count > 1 { format!("{} ×{}", entry.action, entry.count) } else { entry.action }}</td>
                        <td>{entry.target.unwrap_or_default()}</td>
                        <td>{entry.address.unwrap_or_default()}</td>
                        <td>{entry.detail.unwrap_or_default()}</td>
                    </tr>
                </For>
            </tbody>
        </table>
        {log.more_button("Older entries", audit_log)}
    }
}

/// The per-user actions, shared by every row.
#[derive(Clone, Copy)]
struct UserActions {
    disable: ServerAction<SetUserDisabled>,
    reset: ServerAction<ResetPassword>,
    budget: ServerAction<SetUserBudget>,
    local_error: RwSignal<Option<String>>,
    /// By service account id.
    key_panels: StoredValue<HashMap<String, KeyPanel>>,
}

/// A service account's keys under its row: whether they are shown, and the key just made there
/// (shown until the page is left, as on the usage page). Kept by the page, not the row: every
/// change reloads and redraws the users, and a redraw must neither close the panel nor lose a key
/// not yet copied (also one whose request ends after the redraw). Reference-counted signals, so
/// that they outlive the row that made them.
#[derive(Clone, Default)]
struct KeyPanel {
    keys_open: ArcRwSignal<bool>,
    fresh_key: ArcRwSignal<Option<(String, String)>>,
}

#[component]
fn UserRow(user: UserView, actions: UserActions) -> impl IntoView {
    let budget = RwSignal::new(budget_text(user.monthly_budget_usd));
    let password = RwSignal::new(String::new());
    let id = StoredValue::new(user.id.clone());
    let save_budget = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match parse_budget(&budget.get()) {
            Ok(monthly_budget_usd) => {
                actions.local_error.set(None);
                actions.budget.dispatch(SetUserBudget {
                    user_id: id.get_value(),
                    monthly_budget_usd,
                });
            }
            Err(e) => actions.local_error.set(Some(e)),
        }
    };
    let reset = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        actions.local_error.set(None);
        actions.reset.dispatch(ResetPassword {
            user_id: id.get_value(),
            password: password.get(),
        });
        password.set(String::new());
    };
    let disabled = user.disabled;
    let toggle = move |_| {
        actions.local_error.set(None);
        actions.disable.dispatch(SetUserDisabled {
            user_id: id.get_value(),
            disabled: !disabled,
        });
    };
    let name = user.username.clone();
    let service = user.service;
    // A service account's keys, shown under its row on request.
    let panel = if service {
        actions
            .key_panels
            .try_update_value(|all| all.entry(user.id.clone()).or_default().clone())
            .unwrap_or_default()
    } else {
        KeyPanel::default()
    };
    let keys_open = RwSignal::from(panel.keys_open);
    let fresh_key = panel.fresh_key;
    let credentials = if service {
        view! {
            <button type="button" class="keys-toggle" aria-expanded=move || keys_open.get().to_string()
                on:click=move |_| keys_open.update(|open| *open = !*open)>
                {move || if keys_open.get() { "Hide API keys" } else { "API keys" }}
            </button>
        }
        .into_any()
    } else {
        view! {
            <form class="inline" method="post" on:submit=reset>
                <input type="password" autocomplete="new-password" minlength="8" required
                    placeholder="new password" aria-label=format!("New password for {name}") bind:value=password />
                <button type="submit">"Reset"</button>
            </form>
        }
        .into_any()
    };
    let role = if user.is_admin {
        "admin"
    } else if service {
        "service account"
    } else {
        "user"
    };
    view! {
        <tr class:disabled=disabled data-user=name.clone()>
            <td><a href=format!("/usage?user={}", user.id) title="Usage">{name.clone()}</a></td>
            <td>{role}</td>
            <td class="num">{format_cost(user.month_cost_usd)}</td>
            <td>
                <form class="inline" method="post" on:submit=save_budget>
                    <input class="budget" inputmode="decimal" placeholder="no limit"
                        aria-label=format!("Monthly budget of {name}") bind:value=budget />
                    <button type="submit">"Set"</button>
                </form>
            </td>
            <td>{credentials}</td>
            <td>
                <button type="button" on:click=toggle>{if disabled { "Enable" } else { "Disable" }}</button>
            </td>
        </tr>
        <Show when=move || keys_open.get()>
            <tr class="service-keys" data-keys-of=name.clone()>
                <td colspan="6"><ApiKeys account=id.get_value() fresh_key=fresh_key.clone() /></td>
            </tr>
        </Show>
    }
}

#[component]
fn NewUserForm(
    create: ServerAction<CreateUser>,
    local_error: RwSignal<Option<String>>,
) -> impl IntoView {
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let budget = RwSignal::new(String::new());
    let is_admin = RwSignal::new(false);
    let service = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match parse_budget(&budget.get()) {
            Ok(monthly_budget_usd) => {
                local_error.set(None);
                let service = service.get();
                create.dispatch(CreateUser {
                    username: username.get(),
                    password: if service {
                        String::new()
                    } else {
                        password.get()
                    },
                    is_admin: is_admin.get() && !service,
                    monthly_budget_usd,
                    service,
                });
            }
            Err(e) => local_error.set(Some(e)),
        }
    };
    Effect::new(move || {
        if matches!(create.value().get(), Some(Ok(()))) {
            username.set(String::new());
            password.set(String::new());
            budget.set(String::new());
            is_admin.set(false);
            service.set(false);
        }
    });
    view! {
        <h2>"New user"</h2>
        <form class="form wide" method="post" on:submit=submit>
            <label>"Username" <input name="new-username" autocomplete="off" required bind:value=username /></label>
            <label class="check"><input type="checkbox" name="new-service" bind:checked=service />
                "Service account: for scripts and tools, used only through API keys made here; never signs in"</label>
            <Show when=move || !service.get()>
                <label>"Password" <input name="new-password" type="password" autocomplete="new-password" minlength="8" required bind:value=password /></label>
            </Show>
            <label>"Monthly budget ($, empty: no limit)" <input name="new-budget" inputmode="decimal" bind:value=budget /></label>
            <Show when=move || !service.get()>
                <label class="check"><input type="checkbox" bind:checked=is_admin />"Admin"</label>
            </Show>
            <button type="submit" class="primary" disabled=move || create.pending().get()>
                {move || if service.get() { "Create service account" } else { "Create user" }}
            </button>
        </form>
    }
}

/// `spent`: everyone's spending this month, shown beside the site's cap.
#[component]
fn SettingsForm(
    current: SiteSettings,
    spent: f64,
    settings: ServerAction<SetSiteSettings>,
    local_error: RwSignal<Option<String>>,
) -> impl IntoView {
    let open_signup = RwSignal::new(current.open_signup);
    let default_budget = RwSignal::new(budget_text(current.default_budget_usd));
    let monthly_cap = RwSignal::new(budget_text(current.monthly_cap_usd));
    let sharing = RwSignal::new(current.sharing);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let parsed = parse_budget(&default_budget.get())
            .and_then(|budget| Ok((budget, parse_budget(&monthly_cap.get())?)));
        match parsed {
            Ok((default_budget_usd, monthly_cap_usd)) => {
                local_error.set(None);
                settings.dispatch(SetSiteSettings {
                    settings: SiteSettings {
                        open_signup: open_signup.get(),
                        default_budget_usd,
                        monthly_cap_usd,
                        sharing: sharing.get(),
                    },
                });
            }
            Err(e) => local_error.set(Some(e)),
        }
    };
    view! {
        <h2>"Settings"</h2>
        <form class="form wide" method="post" on:submit=submit>
            <label class="check"><input type="checkbox" bind:checked=open_signup />"Anyone who reaches the sign-in page may create an account (needs a budget for new users)"</label>
            <label>"Monthly budget of new users ($, empty: no limit)" <input name="default-budget" inputmode="decimal" bind:value=default_budget /></label>
            <label>{format!("Monthly cap for everyone together ($, empty: no cap; {} spent this month)", format_cost(spent))}
                <input name="monthly-cap" inputmode="decimal" bind:value=monthly_cap /></label>
            <label class="check"><input type="checkbox" name="sharing" bind:checked=sharing />"People may share conversations by link (off: every link answers “not found” until it is on again)"</label>
            <button type="submit" class="primary" disabled=move || settings.pending().get()>"Save settings"</button>
        </form>
    }
}
