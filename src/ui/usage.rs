use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::usage::monthly_usage;
use crate::format::{format_cost, thousands};
use crate::model::groups::BudgetUse;
use crate::ui::account::Panel;
use crate::ui::admin::total_words;
use crate::ui::api_keys::ApiKeys;
use crate::ui::shares::SharedLinks;
use crate::ui::wire;

/// `/usage` (one's own) and `/usage?user=ID` (an admin looking at a user).
#[component]
pub fn UsagePage() -> impl IntoView {
    let query = use_query_map();
    let user = Memo::new(move |_| query.read().get("user"));
    let report = wire::resource(move || user.get(), monthly_usage);
    let export = move || match user.get() {
        Some(id) => format!("/usage.csv?user={id}"),
        None => "/usage.csv".to_owned(),
    };
    view! {
        <Panel title="Usage" back=true>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || {
                    let report = report.clone();
                    Suspend::new(async move {
                        match report.await {
                            Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                            Ok(report) => {
                                let limit = report.budget_usd.map_or_else(
                                    || "no monthly limit".to_owned(),
                                    |b| format!("of {} this month", format_cost(b)),
                                );
                                let over = report.budget_usd.is_some_and(|b| report.month_cost_usd >= b);
                                view! {
                                    <p class="usage-total" class:over=over>
                                        <strong>{report.username.clone()}</strong>
                                        {format!(" · {}: {} spent, {limit}", report.month, format_cost(report.month_cost_usd))}
                                    </p>
                                    {report.budgets.iter().filter_map(BudgetUse::warning_words).map(|w| view! {
                                        <p class="budget-warning" role="status">{w}</p>
                                    }).collect_view()}
                                    {(!report.groups.is_empty()).then(|| view! {
                                        <h2>"Your groups this month"</h2>
                                        <ul class="group-totals">
                                            {report.groups.iter().map(|g| view! { <li>{total_words(g)}</li> }).collect_view()}
                                        </ul>
                                    })}
                                    {if report.rows.is_empty() {
                                        view! { <p class="muted">"No replies this month."</p> }.into_any()
                                    } else {
                                        view! {
                                            // It scrolls sideways on a phone: focusable, so a keyboard can scroll it too.
                                            <table class="figures" tabindex="0" aria-label="Spending by day and model">
                                                <thead><tr>
                                                    <th>"Day"</th><th>"Model"</th><th class="num">"Replies"</th>
                                                    <th class="num">"Input"</th><th class="num">"Cached"</th>
                                                    <th class="num">"Output"</th><th class="num">"Cost"</th>
                                                </tr></thead>
                                                <tbody>
                                                    {report.rows.into_iter().map(|row| view! {
                                                        <tr>
                                                            <td>{row.day}</td>
                                                            <td>{row.model}{row.titles.then_some(" (titles)")}{row.api_key.map(|k| format!(" (API key “{k}”)"))}</td>
                                                            <td class="num">{row.replies}</td>
                                                            <td class="num">{thousands(row.input_tokens)}</td>
                                                            <td class="num">{thousands(row.cached_input_tokens)}</td>
                                                            <td class="num">{thousands(row.output_tokens)}</td>
                                                            <td class="num" title=row.estimated.then_some("includes estimates for replies the provider did not count")>
                                                                {format_cost(row.cost_usd)}{row.estimated.then_some(" *")}
                                                            </td>
                                                        </tr>
                                                    }).collect_view()}
                                                </tbody>
                                            </table>
                                        }.into_any()
                                    }}
                                }.into_any()
                            }
                        }
                    })
                }}
            </Transition>
            <p><a href=export download>"Download every reply's figures (CSV)"</a>
                " · " <a href="/usage.csv?groups=1" download>"Group totals (CSV)"</a></p>
            // One's own links only: an admin looking at someone's usage does not see theirs.
            {move || user.get().is_none().then(|| view! { <SharedLinks /> })}
            {move || user.get().is_none().then(|| view! { <ApiKeys /> })}
        </Panel>
    }
}
