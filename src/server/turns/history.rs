//! What a turn reads of its branch to build its prompt: the newest turns first, a page at a time,
//! until what has been read would overflow the model's window on its own. Older messages could
//! never be sent, so a send in a conversation of thousands of turns reads about what it sends
//! (`prior_sendable` still says how many it left out).

use uuid::Uuid;

use super::prompt::{image_tokens, is_sendable, History, Measure};
use crate::server::db::{self, Db, DbError, TurnRecord};

/// The first page's turns; each next page is twice as many, up to [`MAX_PAGE_TURNS`], so a
/// short conversation is one read and a long one a few.
const FIRST_PAGE_TURNS: u32 = 16;
const MAX_PAGE_TURNS: u32 = 256;

/// Reads `record`'s history back from its reply until the messages a prompt could send
/// measure more than `window` tokens (or the branch's first turn is reached).
pub async fn read(
    db: &Db,
    record: &TurnRecord,
    window: u32,
    measure: &Measure<'_>,
) -> Result<History, DbError> {
    let mut newest_first = Vec::new();
    let mut measured: u32 = 0;
    let mut next: Option<Uuid> = Some(record.reply.turn_id);
    let mut page_turns = FIRST_PAGE_TURNS;
    let mut unread = 0;
    let mut images = std::collections::HashMap::new();
    while let Some(from_turn) = next {
        let mut page = db::history_page(
            db,
            &record.owner,
            record.conversation_id,
            record.reply.id,
            from_turn,
            page_turns,
        )
        .await?;
        // A question's text files are part of its text from here on (measured, sent, billed);
        // its images go beside it.
        let found = super::files::add_files(db, &record.owner, &mut page.messages).await?;
        for message in &page.messages {
            if is_sendable(message) {
                let pictures = found.get(&message.id).map_or(0, Vec::len);
                measured = measured
                    .saturating_add(measure.message(&message.content))
                    .saturating_add(image_tokens(pictures));
            }
        }
        images.extend(found);
        newest_first.extend(page.messages);
        next = page.older;
        if measured > window {
            unread = page.sendable_before;
            break;
        }
        page_turns = page_turns.saturating_mul(2).min(MAX_PAGE_TURNS);
    }
    newest_first.reverse();
    Ok(History {
        messages: newest_first,
        unread,
        images,
    })
}
