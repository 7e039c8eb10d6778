//! The list beyond its first page: older conversations a page at a time as the reader scrolls
//! toward the end of the list (or presses "Show older conversations"), and the list read again
//! after a change as long as it was, so the reader keeps their place.

use std::collections::HashSet;

use leptos::prelude::*;
use uuid::Uuid;

use crate::api::conversations::list_conversations;
use crate::model::{
    ConversationCursor, ConversationSummary, CONVERSATIONS_MAX, CONVERSATIONS_PAGE,
    OLDER_CONVERSATIONS_PAGE,
};

/// How close to the end of the list (px) the next page is asked for: about a dozen rows, so it
/// is usually in before the reader gets there.
pub const NEAR_END_PX: i32 = 400;

/// The rows after the first part, and where the list goes on.
#[derive(Clone, Copy)]
pub struct OlderConversations {
    /// Rows listed after the first part, oldest last.
    pub shown: RwSignal<Vec<ConversationSummary>>,
    /// Where the list shown so far ends, while it may go on.
    pub next: RwSignal<Option<ConversationCursor>>,
    pub loading: RwSignal<bool>,
    /// Why the last page could not be had. Scrolling asks for none until "Try again" does.
    pub failed: RwSignal<Option<String>>,
    /// The last row listed, and whether the list went on after it: what a change reads again.
    end: StoredValue<Option<(ConversationCursor, bool)>>,
    /// What the first part was last read with (`read_first`): `through`, and whether the list
    /// went on after it.
    asked: StoredValue<(Option<ConversationCursor>, bool)>,
    /// The first part's rows, so a page that overlaps what is listed (a row changed meanwhile)
    /// adds none twice.
    first: StoredValue<Vec<Uuid>>,
}

impl OlderConversations {
    pub fn new() -> Self {
        Self {
            shown: RwSignal::new(Vec::new()),
            next: RwSignal::new(None),
            loading: RwSignal::new(false),
            failed: RwSignal::new(None),
            end: StoredValue::new(None),
            asked: StoredValue::new((None, false)),
            first: StoredValue::new(Vec::new()),
        }
    }

    /// Reads the first part of the list: the first page, or after a change everything down to
    /// the last row listed (once the list was longer than its first page; a shorter one is read
    /// whole by the first page). The resource's value is the server function's own (one
    /// deserializer in the module for both, see `ui/wire.rs`); what was asked is kept here.
    pub fn read_first(
        self,
    ) -> impl std::future::Future<Output = Result<Vec<ConversationSummary>, crate::error::ApiError>>
    {
        let asked = self
            .end
            .get_value()
            .map_or((None, false), |(cursor, went_on)| (Some(cursor), went_on));
        self.asked.set_value(asked);
        list_conversations(None, asked.0)
    }

    /// The first part came: the older rows go (it holds them now), and the list goes on after
    /// its last row if it may.
    pub fn restart(self, first: &[ConversationSummary]) {
        let more = match self.asked.get_value() {
            (None, _) => first.len() >= CONVERSATIONS_PAGE,
            (Some(_), went_on) => went_on || first.len() >= CONVERSATIONS_MAX,
        };
        let last = first.last().map(cursor_of);
        self.end.set_value(
            last.filter(|_| first.len() >= CONVERSATIONS_PAGE)
                .map(|cursor| (cursor, more)),
        );
        self.first.set_value(first.iter().map(|c| c.id).collect());
        if self.shown.with_untracked(|shown| !shown.is_empty()) {
            self.shown.set(Vec::new());
        }
        self.next.set(last.filter(|_| more));
        self.failed.set(None);
        self.loading.set(false);
    }

    /// Whether a page should be asked for now: the list goes on, none is on its way, and the
    /// last did not fail.
    pub fn wants_more(self) -> bool {
        self.next.with_untracked(Option::is_some)
            && !self.loading.get_untracked()
            && self.failed.with_untracked(Option::is_none)
    }

    /// Asks for the next page and appends it (the on-demand file's part: see `on_demand.rs`).
    pub fn fetch(self) {
        let Some(cursor) = self.next.get_untracked() else {
            return;
        };
        self.loading.set(true);
        self.failed.set(None);
        leptos::task::spawn_local(async move {
            match list_conversations(Some(cursor), None).await {
                Ok(page) => self.append(page),
                Err(e) => {
                    self.failed
                        .try_set(Some(format!("Could not load older conversations: {e}")));
                }
            }
            self.loading.try_set(false);
        });
    }

    /// The older pages' file could not be fetched.
    pub fn not_loaded(self) {
        self.failed.set(Some(
            "Could not load older conversations: this part of the page could not be loaded. Check the connection and try again."
                .into(),
        ));
        self.loading.set(false);
    }

    fn append(self, page: Vec<ConversationSummary>) {
        let more = page.len() >= OLDER_CONVERSATIONS_PAGE;
        let last = page.last().map(cursor_of);
        let mut listed: HashSet<Uuid> = self.first.get_value().into_iter().collect();
        self.shown
            .with_untracked(|shown| listed.extend(shown.iter().map(|c| c.id)));
        let fresh: Vec<ConversationSummary> =
            page.into_iter().filter(|c| listed.insert(c.id)).collect();
        // An empty page ends the list where it was (a change then reads it again without asking
        // for more).
        self.end.try_update_value(|end| {
            *end = last
                .or(end.map(|(cursor, _)| cursor))
                .map(|cursor| (cursor, more));
        });
        self.shown.try_update(|shown| shown.extend(fresh));
        self.next.try_set(last.filter(|_| more));
    }
}

pub fn cursor_of(conversation: &ConversationSummary) -> ConversationCursor {
    ConversationCursor {
        updated_at: conversation.updated_at,
        id: conversation.id,
    }
}

/// Whether the list's scrolled end is within [`NEAR_END_PX`] of what is seen. A list not shown
/// (a phone's closed drawer) is never near its end.
pub fn near_end(list: &web_sys::Element) -> bool {
    let seen = list.client_height();
    seen > 0 && list.scroll_height() - list.scroll_top() - seen < NEAR_END_PX
}
