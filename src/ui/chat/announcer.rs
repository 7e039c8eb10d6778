//! The page's polite live region: a screen reader hears that a reply started, and how it ended
//! (complete, stopped, failed), never each token; shortcuts say what they did through it too.

use leptos::prelude::*;

use super::state::{ChatEntry, ChatState};
use crate::model::{MessageStatus, Outcome};

/// What the live region says next. Provided by the chat page.
#[derive(Clone, Copy)]
pub struct Announcements(RwSignal<String>);

impl Announcements {
    pub fn provide() -> Self {
        let this = Self(RwSignal::new(String::new()));
        provide_context(this);
        this
    }

    pub fn say(&self, text: impl Into<String>) {
        self.0.try_set(text.into());
    }
}

/// The region itself, present from the first render (a region added with its text is not read).
#[component]
pub fn Announcer(state: ChatState, announcements: Announcements) -> impl IntoView {
    // Browser only (an effect): a reply's start and end, from the page's one "being written".
    let previous = StoredValue::new(None::<ChatEntry>);
    Effect::new(move || {
        let now = state.writing.get().map(|w| w.reply);
        let before = previous.get_value();
        previous.set_value(now);
        match (before, now) {
            (None, Some(_)) => announcements.say("Writing a reply…"),
            (Some(reply), None) => {
                if let Some(ending) = reply.outcome.try_with_untracked(ending).flatten() {
                    announcements.say(ending);
                }
            }
            _ => {}
        }
    });
    view! {
        <div class="sr-only" role="status" aria-live="polite" aria-atomic="true" data-testid="announcer">
            {move || announcements.0.get()}
        </div>
    }
}

/// How a reply ended, in words; `None` when it did not (the page left it, or a send was refused:
/// that refusal is said by the page's notice).
fn ending(outcome: &Outcome) -> Option<String> {
    Some(match outcome.status {
        MessageStatus::Streaming => return None,
        MessageStatus::Complete if outcome.cut_at_limit => {
            "The reply is complete: cut at the length limit.".to_owned()
        }
        MessageStatus::Complete => "The reply is complete.".to_owned(),
        MessageStatus::Stopped => "The reply was stopped.".to_owned(),
        MessageStatus::Failed | MessageStatus::Interrupted => match &outcome.error {
            Some(error) => format!("The reply failed: {error}"),
            None => "The reply failed.".to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_are_said_once_in_words_and_a_running_reply_says_nothing() {
        assert_eq!(ending(&Outcome::streaming()), None);
        assert_eq!(
            ending(&Outcome::complete()).as_deref(),
            Some("The reply is complete.")
        );
        assert_eq!(
            ending(&Outcome::failed("the provider is overloaded")).as_deref(),
            Some("The reply failed: the provider is overloaded")
        );
        let stopped = Outcome {
            status: MessageStatus::Stopped,
            ..Outcome::complete()
        };
        assert_eq!(ending(&stopped).as_deref(), Some("The reply was stopped."));
    }
}
