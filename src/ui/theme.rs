//! The theme switch: the device's colours, light or dark. The server draws each page in the
//! colours its cookie names (`data-theme` on `<html>`, see `app::shell`), so nothing flashes;
//! here a change is shown at once and kept by the server (the cookie, and the account).

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::account::set_theme;
use crate::model::accounts::Theme;

/// The theme the page was drawn with: provided by the shell on the server and by `hydrate()`
/// from `<html data-theme>` in the browser.
fn drawn_with() -> Theme {
    use_context::<Theme>().unwrap_or_default()
}

#[component]
pub fn ThemeSwitch() -> impl IntoView {
    let chosen = RwSignal::new(drawn_with());
    let problem = RwSignal::new(None::<String>);
    let on_change = move |ev: leptos::ev::Event| {
        let theme = Theme::parse(&event_target_value(&ev));
        chosen.set(theme);
        show(theme);
        spawn_local(async move {
            let kept = set_theme(theme).await;
            problem.try_set(
                kept.err()
                    .map(|e| format!("The theme is not remembered: {e}")),
            );
        });
    };
    view! {
        <label class="theme-switch">
            "Theme"
            <select name="theme" on:change=on_change>
                {Theme::ALL.map(|theme| view! {
                    <option value=theme.as_str() selected=move || chosen.get() == theme>{theme.label()}</option>
                }).collect_view()}
            </select>
        </label>
        <Show when=move || problem.with(Option::is_some)>
            <p class="notice" role="alert">{move || problem.get()}</p>
        </Show>
    }
}

/// Draws the page in `theme` now (the stylesheet reads `data-theme`).
fn show(theme: Theme) {
    let Some(root) = document().document_element() else {
        return;
    };
    let _ = match theme.attribute() {
        Some(value) => root.set_attribute("data-theme", value),
        None => root.remove_attribute("data-theme"),
    };
}
