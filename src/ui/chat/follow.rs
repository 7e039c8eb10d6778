//! Following new text: the message list keeps the newest text in view while the reader is near
//! the bottom, and leaves them be once they scroll up or select text. Near the top, earlier
//! messages are due.

use leptos::html::Div;
use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use web_sys::HtmlElement;

/// How close to the bottom (px) the reader must be for new text to scroll the list.
const FOLLOW_THRESHOLD_PX: i32 = 100;
/// How close to the top (or the bottom) the reader may come before earlier (later) messages
/// load (px): about a screen, so they are usually there before the reader arrives.
const EARLIER_THRESHOLD_PX: i32 = 800;
/// Frames after earlier messages arrive in which the message being read is put back: the
/// browser sizes messages it skipped (`content-visibility`) only once they come near the view.
const KEEP_PLACE_FRAMES: u8 = 4;

/// A message the reader sees, and how far below the top of the list's view it is (px).
pub struct Place {
    message: HtmlElement,
    seen_at: i32,
}

#[derive(Clone, Copy)]
pub struct Follow {
    pub scroller: NodeRef<Div>,
    /// The reader scrolled away from the newest text (shows "Jump to latest").
    pub detached: RwSignal<bool>,
    /// Whether new text scrolls the list: true while the reader is within reach of the bottom.
    /// Updated from scroll events, so a scroll already queued by an earlier token cannot pull a
    /// reader back down after they scrolled up.
    following: StoredValue<bool>,
    /// A mouse button or finger is down on the list (selecting, dragging the scrollbar).
    holding: StoredValue<bool>,
}

impl Follow {
    pub fn new() -> Self {
        Self {
            scroller: NodeRef::new(),
            detached: RwSignal::new(false),
            following: StoredValue::new(true),
            holding: StoredValue::new(false),
        }
    }

    /// Call on every scroll of the message list (the reader's and our own).
    pub fn on_scroll(&self) {
        if let Some(el) = self.scroller.get_untracked() {
            let distance = el.scroll_height() - el.scroll_top() - el.client_height();
            let following = distance <= FOLLOW_THRESHOLD_PX;
            self.following.set_value(following);
            if self.detached.get_untracked() == following {
                self.detached.set(!following);
            }
        }
    }

    /// Whether the reader is near the start of what the list holds (earlier messages are due).
    pub fn near_top(&self) -> bool {
        self.scroller
            .try_get_untracked()
            .flatten()
            .is_some_and(|el| el.scroll_top() < EARLIER_THRESHOLD_PX)
    }

    /// Whether the reader is near the end of what the list holds (later messages are due, if
    /// the page let go of them).
    pub fn near_bottom(&self) -> bool {
        self.scroller
            .try_get_untracked()
            .flatten()
            .is_some_and(|el| {
                el.scroll_height() - el.scroll_top() - el.client_height() < EARLIER_THRESHOLD_PX
            })
    }

    /// The first message the reader sees at the top of the list.
    pub fn reading(&self) -> Option<Place> {
        let list = self.scroller.try_get_untracked().flatten()?;
        let (origin, seen_from) = (list.offset_top(), list.scroll_top());
        let mut item = list.query_selector("li.message").ok().flatten()?;
        loop {
            if let Some(message) = item.dyn_ref::<HtmlElement>() {
                let at = message.offset_top().saturating_sub(origin);
                if at.saturating_add(message.offset_height()) > seen_from {
                    return Some(Place {
                        message: message.clone(),
                        seen_at: at.saturating_sub(seen_from),
                    });
                }
            }
            item = item.next_element_sibling()?;
        }
    }

    /// Keeps `place`'s message where the reader saw it while the list changes above it (earlier
    /// messages arriving, then laid out as they come near the view). What the browser's own
    /// scroll anchoring already did needs no correction.
    pub fn keep(&self, place: Place) {
        self.keep_for(place, KEEP_PLACE_FRAMES);
    }

    fn keep_for(&self, place: Place, frames: u8) {
        let follow = *self;
        request_animation_frame(move || {
            let Some(Some(list)) = follow.scroller.try_get_untracked() else {
                return;
            };
            let at = place.message.offset_top().saturating_sub(list.offset_top());
            let moved = at
                .saturating_sub(list.scroll_top())
                .saturating_sub(place.seen_at);
            if moved != 0 {
                list.set_scroll_top(list.scroll_top().saturating_add(moved));
            }
            if frames > 1 {
                follow.keep_for(place, frames - 1);
            }
        });
    }

    /// "Jump to latest": back to the newest text, following it again.
    pub fn jump_to_latest(&self) {
        self.following.set_value(true);
        self.detached.set(false);
        self.scroll_to_bottom();
    }

    /// Follows the newest text from now on, and goes there (a conversation opened, a message
    /// sent: a request to see the reply).
    pub fn show_latest(&self) {
        self.following.set_value(true);
        self.scroll_to_bottom();
    }

    /// Keeps the newest text in view while the reader is near the bottom: called when text
    /// arrives and again when it has been rendered (the markdown renderer may be a frame later).
    pub fn new_text(&self) {
        // A reader selecting text keeps their place: the list moves again once they let go.
        if self.following.try_get_value() == Some(true) && !self.selecting() {
            self.scroll_to_bottom();
        }
    }

    /// Call when a pointer goes down on the list (`true`) and when it is let go anywhere.
    pub fn set_holding(&self, holding: bool) {
        self.holding.try_set_value(holding);
        if !holding {
            self.new_text();
        }
    }

    /// Whether the reader is selecting, or has selected, text in the message list.
    fn selecting(&self) -> bool {
        if self.holding.try_get_value() == Some(true) {
            return true;
        }
        let Some(Some(list)) = self.scroller.try_get_untracked() else {
            return false;
        };
        let Some(selection) = web_sys::window().and_then(|w| w.get_selection().ok().flatten())
        else {
            return false;
        };
        !selection.is_collapsed()
            && selection
                .anchor_node()
                .is_some_and(|node| list.contains(Some(&node)))
    }

    /// Scrolls after the DOM has taken the new text, unless the reader scrolled away meanwhile.
    fn scroll_to_bottom(&self) {
        let follow = *self;
        // `try_`: the page may have left this conversation before the frame.
        request_animation_frame(move || {
            // Asked again: the reader may have started selecting since the frame was asked for.
            if follow.selecting() {
                return;
            }
            if let (Some(true), Some(Some(el))) = (
                follow.following.try_get_value(),
                follow.scroller.try_get_untracked(),
            ) {
                el.set_scroll_top(el.scroll_height());
            }
        });
    }
}

impl Default for Follow {
    fn default() -> Self {
        Self::new()
    }
}
