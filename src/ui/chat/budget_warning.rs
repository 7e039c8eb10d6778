//! Above the composer: a warning once spending reaches 80 % (and 90 %) of a budget the person
//! falls under (their own, a group's), read again after each reply, so it is seen before the
//! next send rather than after a refusal.

use leptos::prelude::*;

use crate::api::usage::budget_status;
use crate::model::groups::BudgetUse;
use crate::ui::wire;

#[component]
pub fn BudgetWarning(streaming: Signal<bool>) -> impl IntoView {
    let status = wire::resource(move || streaming.get(), |_| budget_status());
    view! {
        <Transition fallback=|| ()>
            {move || {
                let status = status.clone();
                Suspend::new(async move {
                    let warnings: Vec<String> = status
                        .await
                        .unwrap_or_default()
                        .iter()
                        .filter_map(BudgetUse::warning_words)
                        .collect();
                    (!warnings.is_empty()).then(|| view! {
                        <div class="budget-warning" role="status">
                            {warnings.into_iter().map(|w| view! { <p>{w}</p> }).collect_view()}
                        </div>
                    })
                })
            }}
        </Transition>
    }
}
