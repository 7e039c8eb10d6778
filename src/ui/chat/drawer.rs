//! The conversation list as a drawer on a narrow screen (below 700 px, see `style/main.css`): ☰
//! opens it over the chat; a tap beside it (the backdrop), Esc, a swipe to the left, or a
//! conversation chosen closes it. The focus goes into it when it opens and back to ☰ when it
//! closes, so a keyboard or screen reader follows it. While it is open it is the page's only
//! part: the rest is `inert` (out of reach of the pointer, the keyboard and assistive
//! technology), and Tab goes round the drawer and ☰ (which closes it).

use leptos::ev::{KeyboardEvent, TouchEvent};
use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;

use super::state::ChatState;

/// ☰, in the chat's header.
pub const MENU_BUTTON_ID: &str = "menu-button";

/// A swipe at least this far to the left (px), and more across than down, closes the drawer.
const SWIPE_PX: i32 = 60;

pub fn close(state: ChatState) {
    if state.menu_open.get_untracked() {
        state.menu_open.set(false);
    }
}

/// What stays in reach while the drawer is open: the drawer, ☰ and the backdrop, and what the
/// page says or shows over everything (the live region, a modal dialog such as the shortcuts').
const KEPT: &str = ".sidebar, #menu-button, .drawer-backdrop, [aria-live], dialog";
/// Marks what the drawer made inert, so that closing it frees exactly that.
const MARK: &str = "data-behind-drawer";
/// What Tab stops at in the drawer.
const STOPS: &str = "a[href], button:not([disabled]), input, select, textarea, \
                     [tabindex]:not([tabindex='-1'])";

/// Moves the focus with the drawer, makes the page behind it inert while it is open, and keeps
/// Tab inside it (effects: browser only).
pub fn follow_focus(state: ChatState) {
    Effect::new(move || {
        let tab = window_event_listener(leptos::ev::keydown, move |ev| {
            if state.menu_open.get_untracked() {
                keep_tab_inside(&ev);
            }
        });
        on_cleanup(move || {
            tab.remove();
            // Leaving the page with the drawer open leaves nothing inert behind.
            set_behind_inert(false);
        });
    });
    Effect::new(move |was_open: Option<bool>| {
        let open = state.menu_open.get();
        if was_open.is_some() && was_open != Some(open) {
            set_behind_inert(open);
        }
        match (was_open, open) {
            // After the frame that shows it: a hidden element cannot take the focus.
            (Some(false), true) => request_animation_frame(|| focus(".sidebar .new-chat")),
            (Some(true), false) if focus_was_in_drawer() => {
                focus(&format!("#{MENU_BUTTON_ID}"));
            }
            _ => {}
        }
        open
    });
}

/// Makes everything but [`KEPT`] inert (`true`), or frees what it made inert (`false`).
fn set_behind_inert(inert: bool) {
    if inert {
        if let Some(body) = document().body() {
            mark_behind(&body);
        }
        return;
    }
    let selector = format!("[{MARK}]");
    while let Some(el) = document().query_selector(&selector).ok().flatten() {
        let _ = el.remove_attribute("inert");
        if el.remove_attribute(MARK).is_err() {
            return;
        }
    }
}

/// The elements under `parent` that Tab stops at and that are shown, in order.
fn stops_in(parent: &web_sys::Element, stops: &mut Vec<web_sys::HtmlElement>) {
    let mut child = parent.first_element_child();
    while let Some(el) = child {
        child = el.next_element_sibling();
        if el.matches(STOPS).unwrap_or(false) {
            // Only what is shown (a closed menu's items are not).
            if let Ok(el) = el.clone().dyn_into::<web_sys::HtmlElement>() {
                if el.offset_parent().is_some() {
                    stops.push(el);
                }
            }
        }
        stops_in(&el, stops);
    }
}

/// Marks the children of `parent` inert, except what is kept and, inside what holds something
/// kept, going down to mark around it.
fn mark_behind(parent: &web_sys::Element) {
    let mut child = parent.first_element_child();
    while let Some(el) = child {
        child = el.next_element_sibling();
        let kept = el.matches(KEPT).unwrap_or(true);
        let holds_kept = el.query_selector(KEPT).ok().flatten().is_some();
        if holds_kept && !kept {
            mark_behind(&el);
        } else if !kept && !el.has_attribute("inert") && el.tag_name() != "SCRIPT" {
            let _ = el.set_attribute("inert", "");
            let _ = el.set_attribute(MARK, "");
        }
    }
}

/// Tab from the last stop goes to the first, Shift+Tab from the first to the last; from
/// anywhere else outside them (the focus lost on the body), into the drawer.
fn keep_tab_inside(ev: &KeyboardEvent) {
    if ev.key() != "Tab" || ev.default_prevented() {
        return;
    }
    // The drawer's stops, then ☰.
    let mut stops = Vec::new();
    if let Some(sidebar) = document().query_selector(".sidebar").ok().flatten() {
        stops_in(&sidebar, &mut stops);
    }
    if let Some(menu) = document()
        .get_element_by_id(MENU_BUTTON_ID)
        .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
    {
        stops.push(menu);
    }
    let (Some(first), Some(last)) = (stops.first(), stops.last()) else {
        return;
    };
    let active = document().active_element();
    let at = |el: &web_sys::HtmlElement| active.as_ref() == Some(el.as_ref());
    let inside = stops.iter().any(at);
    // A modal dialog opened from the drawer keeps the focus itself.
    if !inside
        && active
            .as_ref()
            .is_some_and(|el| el.closest("dialog").ok().flatten().is_some())
    {
        return;
    }
    let next = if ev.shift_key() {
        (!inside || at(first)).then_some(last)
    } else {
        (!inside || at(last)).then_some(first)
    };
    if let Some(next) = next {
        ev.prevent_default();
        let _ = next.focus();
    }
}

/// The focus was in the drawer, or was lost with it (on the page's body).
fn focus_was_in_drawer() -> bool {
    document()
        .active_element()
        .is_none_or(|el| el.tag_name() == "BODY" || el.closest(".sidebar").ok().flatten().is_some())
}

fn focus(selector: &str) {
    let element = document()
        .query_selector(selector)
        .ok()
        .flatten()
        .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok());
    if let Some(element) = element {
        let _ = element.focus();
    }
}

/// A finger's horizontal swipe over the drawer or beside it.
#[derive(Clone, Copy)]
pub struct Swipe {
    start: StoredValue<Option<(i32, i32)>>,
}

impl Swipe {
    pub fn new() -> Self {
        Self {
            start: StoredValue::new(None),
        }
    }

    pub fn on_start(&self, ev: &TouchEvent) {
        let first = ev.touches().get(0);
        self.start
            .set_value(first.map(|touch| (touch.client_x(), touch.client_y())));
    }

    /// Closes the drawer when the finger went far enough to the left.
    pub fn on_end(&self, ev: &TouchEvent, state: ChatState) {
        let Some((x, y)) = self.start.get_value() else {
            return;
        };
        self.start.set_value(None);
        let Some(end) = ev.changed_touches().get(0) else {
            return;
        };
        let across = end.client_x().saturating_sub(x);
        let down = end.client_y().saturating_sub(y);
        if is_swipe_left(across, down) {
            close(state);
        }
    }
}

fn is_swipe_left(across: i32, down: i32) -> bool {
    across <= -SWIPE_PX && across.saturating_abs() > down.saturating_abs()
}

#[cfg(test)]
mod tests {
    use super::is_swipe_left;

    #[test]
    fn a_swipe_closes_when_it_goes_far_enough_left_and_more_across_than_down() {
        assert!(is_swipe_left(-120, 10));
        assert!(is_swipe_left(-60, -59));
        assert!(!is_swipe_left(-59, 0), "too short");
        assert!(!is_swipe_left(120, 0), "to the right");
        assert!(!is_swipe_left(-80, 200), "a scroll of the list");
        assert!(!is_swipe_left(i32::MIN, i32::MIN));
    }
}
