//! The conversation list as a drawer on a narrow screen (below 700 px, see `style/main.css`): ☰
//! opens it over the chat; a tap beside it (the backdrop), Esc, a swipe to the left, or a
//! conversation chosen closes it. The focus goes into it when it opens and back to ☰ when it
//! closes, so a keyboard or screen reader follows it.

use leptos::ev::TouchEvent;
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

/// Moves the focus with the drawer (an effect: browser only).
pub fn follow_focus(state: ChatState) {
    Effect::new(move |was_open: Option<bool>| {
        let open = state.menu_open.get();
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
