//! The chat: the page, its message list, the composer, and the client-side turn state.

mod announcer;
mod attach;
mod attachments;
mod browser;
mod budget_warning;
mod composer;
mod connection;
mod cursor;
mod drawer;
mod empty;
mod files;
mod follow;
mod header;
mod loaded;
mod message;
mod on_demand;
mod page;
mod remembered;
mod reply_text;
mod settings;
mod shortcuts;
mod state;
mod thinking_text;
mod windows;

pub use on_demand::{on_demand, preload_for_page, NotLoaded};
pub use page::{ChatPage, TabTitle};
pub use shortcuts::ShortcutsButton;
pub use state::ChatState;
