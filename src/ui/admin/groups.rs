//! The admin page's groups: every group's month at a glance (an SVG bar chart drawn with the
//! page, its figures in text beside it), and each group's name, budget, identity provider
//! link, models and members.

use std::collections::HashMap;

use leptos::prelude::*;
use leptos::server::ServerAction;
use uuid::Uuid;

use crate::api::admin::{
    group_overview, AddGroupMember, CreateGroup, DeleteGroup, RemoveGroupMember, RenameGroup,
    SetGroupBudget, SetGroupIdp, SetGroupModels,
};
use crate::format::{budget_text, parse_budget};
use crate::format::{fixed, format_cost, model_name};
use crate::model::groups::{GroupTotal, GroupView};
use crate::ui::account::error_of;
use crate::ui::wire;

/// Every action on groups, shared by each group's section.
#[derive(Clone, Copy)]
struct GroupActions {
    /// What is typed in each group's fields, by group.
    drafts: StoredValue<HashMap<Uuid, Draft>>,
    /// The group a member was last added to (its field is emptied once that succeeds).
    last_add: StoredValue<Option<Uuid>>,
    create: ServerAction<CreateGroup>,
    rename: ServerAction<RenameGroup>,
    delete: ServerAction<DeleteGroup>,
    budget: ServerAction<SetGroupBudget>,
    idp: ServerAction<SetGroupIdp>,
    models: ServerAction<SetGroupModels>,
    add: ServerAction<AddGroupMember>,
    remove: ServerAction<RemoveGroupMember>,
    local_error: RwSignal<Option<String>>,
}

/// What an admin has typed in one group's fields. Every change reloads and redraws all groups,
/// so the text is kept here, outside the sections, and each section starts from it: a field
/// keeps what was typed in it unless the group's stored value has changed since (then it shows
/// the new value).
#[derive(Clone, Default)]
pub struct Draft {
    name: Field<String>,
    budget: Field<String>,
    idp: Field<String>,
    models: Field<Vec<String>>,
    member: String,
}

/// A field's text and the stored value it was last drawn from.
#[derive(Clone, Default)]
struct Field<T> {
    typed: T,
    drawn_from: Option<T>,
}

impl<T: Clone + PartialEq> Field<T> {
    /// What the field shows, drawn from `stored`.
    fn follow(&mut self, stored: T) -> T {
        if self.drawn_from.as_ref() != Some(&stored) {
            self.typed = stored.clone();
            self.drawn_from = Some(stored);
        }
        self.typed.clone()
    }
}

/// A group's name, budget, identity provider group and models, as its fields show them.
fn stored_fields(group: &GroupView) -> (String, String, String, Vec<String>) {
    (
        group.name.clone(),
        budget_text(group.monthly_budget_usd),
        group.idp_group.clone().unwrap_or_default(),
        group.models.clone(),
    )
}

/// A section's field, starting from `text` and writing what is typed back to the drafts.
fn draft_field<T: Clone + Send + Sync + 'static>(
    drafts: StoredValue<HashMap<Uuid, Draft>>,
    id: Uuid,
    text: T,
    keep: fn(&mut Draft, T),
) -> RwSignal<T> {
    let field = RwSignal::new(text);
    // In the browser only (effects do not run on the server).
    Effect::new(move || {
        let typed = field.get();
        drafts.update_value(|all| keep(all.entry(id).or_default(), typed));
    });
    field
}

/// What is typed in the groups' fields, by group: made by the admin page, so that it also
/// outlasts the page's own reloads (a change to a user redraws the groups too).
pub type GroupDrafts = StoredValue<HashMap<Uuid, Draft>>;

pub fn group_drafts() -> GroupDrafts {
    StoredValue::new(HashMap::new())
}

#[component]
pub fn Groups(drafts: GroupDrafts) -> impl IntoView {
    let actions = GroupActions {
        drafts,
        last_add: StoredValue::new(None),
        create: ServerAction::new(),
        rename: ServerAction::new(),
        delete: ServerAction::new(),
        budget: ServerAction::new(),
        idp: ServerAction::new(),
        models: ServerAction::new(),
        add: ServerAction::new(),
        remove: ServerAction::new(),
        local_error: RwSignal::new(None),
    };
    let a = actions;
    // A member added: the next drawing of that group's field is empty.
    Effect::new(move || {
        if matches!(a.add.value().get(), Some(Ok(()))) {
            if let Some(id) = a.last_add.get_value() {
                a.drafts.update_value(|all| {
                    if let Some(draft) = all.get_mut(&id) {
                        draft.member.clear();
                    }
                });
            }
        }
    });
    // Reloaded after every change.
    let groups = wire::resource(
        move || {
            (
                a.create.version().get(),
                a.rename.version().get(),
                a.delete.version().get(),
                a.budget.version().get(),
                a.idp.version().get(),
                a.models.version().get(),
                a.add.version().get(),
                a.remove.version().get(),
            )
        },
        |_| group_overview(),
    );
    let (e1, e2, e3, e4) = (
        error_of(a.create),
        error_of(a.rename),
        error_of(a.delete),
        error_of(a.budget),
    );
    let (e5, e6, e7, e8) = (
        error_of(a.idp),
        error_of(a.models),
        error_of(a.add),
        error_of(a.remove),
    );
    let error = move || {
        a.local_error
            .get()
            .or_else(e1)
            .or_else(e2)
            .or_else(e3)
            .or_else(e4)
            .or_else(e5)
            .or_else(e6)
            .or_else(e7)
            .or_else(e8)
    };
    view! {
        <section class="groups" aria-labelledby="groups-heading">
            <h2 id="groups-heading">"Groups"</h2>
            <p class="note">"A group’s budget is shared by its members, on top of each one’s own. \
                A group that limits models lets its members use only those (a person in several \
                groups may use any of their groups’ models; a person in no group, every model)."</p>
            {move || error().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || {
                    let groups = groups.clone();
                    Suspend::new(async move {
                        match groups.await {
                            Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                            Ok(data) => {
                                let totals: Vec<GroupTotal> = data.groups.iter().map(|g| GroupTotal {
                                    name: g.name.clone(),
                                    month_cost_usd: g.month_cost_usd,
                                    budget_usd: g.monthly_budget_usd,
                                }).collect();
                                let models = StoredValue::new(data.models);
                                view! {
                                    <GroupChart totals month=data.month />
                                    {data.groups.into_iter().map(|group| view! {
                                        <GroupSection group models=models.get_value() actions />
                                    }).collect_view()}
                                }.into_any()
                            }
                        }
                    })
                }}
            </Transition>
            <NewGroupForm actions />
        </section>
    }
}

/// Width of the chart's drawing, in its own units (it scales to the page).
const CHART_WIDTH: f64 = 400.0;
const BAR_HEIGHT: f64 = 18.0;
const ROW_HEIGHT: f64 = 26.0;

/// Each group's spending this month as a bar, its budget as a mark, scaled to the largest of
/// either; drawn with the page, with the same figures as text in a list beside it (what a
/// screen reader reads: the drawing itself is one described image).
#[component]
pub fn GroupChart(totals: Vec<GroupTotal>, month: String) -> impl IntoView {
    if totals.is_empty() {
        return view! { <p class="muted">"No groups yet."</p> }.into_any();
    }
    let most = totals
        .iter()
        .map(|t| t.month_cost_usd.max(t.budget_usd.unwrap_or(0.0)))
        .fold(0.0_f64, f64::max);
    let scale = |usd: f64| {
        if most > 0.0 {
            (usd / most * CHART_WIDTH).clamp(0.0, CHART_WIDTH)
        } else {
            0.0
        }
    };
    let rows = u32::try_from(totals.len()).unwrap_or(u32::MAX);
    let height = f64::from(rows) * ROW_HEIGHT;
    let figures: Vec<String> = totals.iter().map(total_words).collect();
    let desc = figures.join("; ");
    let title = format!("Spending by group, {month}");
    view! {
        <figure class="group-chart">
            <svg role="img" aria-labelledby="group-chart-title group-chart-desc"
                viewBox=format!("0 0 {} {}", fixed(CHART_WIDTH, 0), fixed(height, 0)) width="100%"
                preserveAspectRatio="xMinYMin meet">
                <title id="group-chart-title">{title.clone()}</title>
                <desc id="group-chart-desc">{desc}</desc>
                {totals.iter().enumerate().map(|(i, total)| {
                    let y = f64::from(u32::try_from(i).unwrap_or(u32::MAX)) * ROW_HEIGHT;
                    let over = total.budget_usd.is_some_and(|b| total.month_cost_usd >= b * 0.8);
                    let mark = total.budget_usd.map(|b| {
                        let x = fixed(scale(b), 1);
                        view! {
                            <line class="budget-mark" x1=x.clone() x2=x y1=fixed(y, 1)
                                y2=fixed(y + BAR_HEIGHT, 1) />
                        }
                    });
                    view! {
                        <rect class="bar" class:near-limit=over x="0" y=fixed(y, 1)
                            width=fixed(scale(total.month_cost_usd).max(1.0), 1)
                            height=fixed(BAR_HEIGHT, 1) />
                        {mark}
                    }
                }).collect_view()}
            </svg>
            <figcaption>
                <span>{title}</span>
                <ul class="chart-figures">
                    {figures.into_iter().map(|line| view! { <li>{line}</li> }).collect_view()}
                </ul>
            </figcaption>
        </figure>
    }
    .into_any()
}

/// A group's month in words: `Research: $8.00 of $10.00 (80 %)`.
pub fn total_words(total: &GroupTotal) -> String {
    match total.budget_usd {
        Some(budget) if budget > 0.0 => format!(
            "{}: {} of {} ({} %)",
            total.name,
            format_cost(total.month_cost_usd),
            format_cost(budget),
            fixed(total.month_cost_usd / budget * 100.0, 0)
        ),
        Some(budget) => format!(
            "{}: {} of {}",
            total.name,
            format_cost(total.month_cost_usd),
            format_cost(budget)
        ),
        None => format!(
            "{}: {} (no group budget)",
            total.name,
            format_cost(total.month_cost_usd)
        ),
    }
}

#[component]
fn NewGroupForm(actions: GroupActions) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let budget = RwSignal::new(String::new());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match parse_budget(&budget.get()) {
            Ok(monthly_budget_usd) => {
                actions.local_error.set(None);
                actions.create.dispatch(CreateGroup {
                    name: name.get(),
                    monthly_budget_usd,
                });
            }
            Err(e) => actions.local_error.set(Some(e)),
        }
    };
    Effect::new(move || {
        if matches!(actions.create.value().get(), Some(Ok(_))) {
            name.set(String::new());
            budget.set(String::new());
        }
    });
    view! {
        <h3>"New group"</h3>
        <form class="form wide new-group" method="post" on:submit=submit>
            <label>"Group name" <input name="group-name" autocomplete="off" required bind:value=name /></label>
            <label>"Monthly budget shared by its members ($, empty: no limit)"
                <input name="group-budget" inputmode="decimal" bind:value=budget /></label>
            <button type="submit" class="primary" disabled=move || actions.create.pending().get()>"Create group"</button>
        </form>
    }
}

/// One group: its figures and every change to it.
#[component]
fn GroupSection(group: GroupView, models: Vec<String>, actions: GroupActions) -> impl IntoView {
    let id: Uuid = group.id;
    let name = group.name.clone();
    let (stored_name, stored_budget, stored_idp, stored_models) = stored_fields(&group);
    let drafts = actions.drafts;
    let shown = drafts
        .try_update_value(|all| {
            let draft = all.entry(id).or_default();
            (
                draft.name.follow(stored_name),
                draft.budget.follow(stored_budget),
                draft.idp.follow(stored_idp),
                draft.models.follow(stored_models),
                draft.member.clone(),
            )
        })
        .unwrap_or_default();
    let new_name = draft_field(drafts, id, shown.0, |d, t| d.name.typed = t);
    let budget = draft_field(drafts, id, shown.1, |d, t| d.budget.typed = t);
    let idp = draft_field(drafts, id, shown.2, |d, t| d.idp.typed = t);
    let chosen = draft_field(drafts, id, shown.3, |d, t| d.models.typed = t);
    let member = draft_field(drafts, id, shown.4, |d, t| d.member = t);
    let rename = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        actions.local_error.set(None);
        actions.rename.dispatch(RenameGroup {
            id,
            name: new_name.get(),
        });
    };
    let save_budget = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match parse_budget(&budget.get()) {
            Ok(monthly_budget_usd) => {
                actions.local_error.set(None);
                actions.budget.dispatch(SetGroupBudget {
                    id,
                    monthly_budget_usd,
                });
            }
            Err(e) => actions.local_error.set(Some(e)),
        }
    };
    let link = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        actions.local_error.set(None);
        actions.idp.dispatch(SetGroupIdp {
            id,
            idp_group: idp.get(),
        });
    };
    let save_models = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        actions.local_error.set(None);
        actions.models.dispatch(SetGroupModels {
            id,
            models: chosen.get(),
        });
    };
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        actions.local_error.set(None);
        actions.last_add.set_value(Some(id));
        actions.add.dispatch(AddGroupMember {
            id,
            username: member.get(),
        });
    };
    let delete = move |_| {
        actions.local_error.set(None);
        actions.delete.dispatch(DeleteGroup { id });
    };
    let spent = match group.monthly_budget_usd {
        Some(b) => format!(
            "{} spent this month of {}",
            format_cost(group.month_cost_usd),
            format_cost(b)
        ),
        None => format!(
            "{} spent this month (no group budget)",
            format_cost(group.month_cost_usd)
        ),
    };
    let heading = format!("group-{id}");
    let members = group.members;
    view! {
        <section class="group" data-group=name.clone() aria-labelledby=heading.clone()>
            <h3 id=heading.clone()>{name.clone()}</h3>
            <p>{spent}</p>
            <form class="inline" method="post" on:submit=rename>
                <input name="group-rename" required aria-label=format!("New name for {name}") bind:value=new_name />
                <button type="submit">"Rename"</button>
            </form>
            <form class="inline" method="post" on:submit=save_budget>
                <input class="budget" name="group-budget" inputmode="decimal" placeholder="no limit"
                    aria-label=format!("Monthly budget of the group {name}") bind:value=budget />
                <button type="submit">"Set budget"</button>
            </form>
            <form class="inline" method="post" on:submit=link>
                <input name="group-idp" placeholder="identity provider group"
                    aria-label=format!("Identity provider group whose members join {name} (empty: none)") bind:value=idp />
                <button type="submit">"Link"</button>
            </form>
            <form class="group-models" method="post" on:submit=save_models>
                <fieldset>
                    <legend>{format!("Models {name} may use (none ticked: every model)")}</legend>
                    {models.into_iter().map(|model| {
                        let m = StoredValue::new(model.clone());
                        let toggle = move |ev: leptos::ev::Event| {
                            let on = event_target_checked(&ev);
                            let model = m.get_value();
                            chosen.update(|chosen| {
                                chosen.retain(|c| *c != model);
                                if on {
                                    chosen.push(model);
                                }
                            });
                        };
                        view! {
                            <label class="check">
                                <input type="checkbox" value=model.clone()
                                    prop:checked=move || chosen.with(|c| c.contains(&m.get_value()))
                                    on:change=toggle />
                                {model_name(&model).to_owned()}
                            </label>
                        }
                    }).collect_view()}
                </fieldset>
                <button type="submit">"Save models"</button>
            </form>
            <h4>"Members"</h4>
            {if members.is_empty() {
                view! { <p class="muted">"No members yet."</p> }.into_any()
            } else {
                view! {
                    <ul class="group-members">
                        {members.into_iter().map(|m| {
                            let user_id = StoredValue::new(m.user_id.clone());
                            let username = m.username.clone();
                            let remove = move |_| {
                                actions.local_error.set(None);
                                actions.remove.dispatch(RemoveGroupMember { id, user_id: user_id.get_value() });
                            };
                            view! {
                                <li>
                                    {m.username}
                                    {if m.by_hand {
                                        view! {
                                            " " <button type="button" on:click=remove
                                                aria-label=format!("Remove {username} from the group")>"Remove"</button>
                                        }.into_any()
                                    } else {
                                        view! { <span class="muted">" (through the identity provider)"</span> }.into_any()
                                    }}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
            <form class="inline" method="post" on:submit=add>
                <input name="group-member" autocomplete="off" required placeholder="username"
                    aria-label=format!("Username to add to {name}") bind:value=member />
                <button type="submit">"Add member"</button>
            </form>
            <button type="button" class="danger" on:click=delete>{format!("Delete group {name}")}</button>
        </section>
    }
}
