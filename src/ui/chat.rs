//! The chat: the page, its message list, the composer, and the client-side turn state.

mod browser;
mod composer;
mod connection;
mod cursor;
mod follow;
mod header;
mod message;
mod on_demand;
mod page;
mod remembered;
mod reply_text;
mod settings;
mod state;
mod thinking_text;

pub use on_demand::preload_for_page;
pub use page::ChatPage;
pub use state::ChatState;
