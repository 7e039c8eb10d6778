//! Titles from the first exchange: whether one is wanted, and storing it only over first words
//! (see `migrations/…_titles.sql`).

use uuid::Uuid;

use super::batch::Written;
use super::ids::TextUuid;
use super::usage::{settle, Charge};
use super::{Db, DbError, Owner};

/// A conversation's first exchange, whose title is still its first words.
#[derive(Clone, Debug)]
pub struct FirstExchange {
    /// The question's message id: what the title's runs in the ledger are keyed by.
    pub question_id: Uuid,
    pub question: String,
    pub reply: String,
}

/// The first exchange of the owner's conversation if `turn_id` is it, its reply is complete,
/// the title is still the first words, and no title was asked for this question yet.
pub async fn title_wanted(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    turn_id: Uuid,
) -> Result<Option<FirstExchange>, DbError> {
    let row: Option<(TextUuid, String, String)> = on_reader!(db, |pool| sqlx::query_as(
        "SELECT q.id, q.content, a.content
           FROM conversations c
           JOIN messages q ON q.conversation_id = c.id AND q.turn_id = $1 AND q.role = 'user'
           JOIN messages a ON a.turn_id = q.turn_id AND a.role = 'assistant'
          WHERE c.id = $2 AND c.owner = $3 AND c.deleted_at IS NULL
            AND c.title_source = 'words' AND q.parent_turn_id IS NULL
            AND a.status = 'complete'
            AND NOT EXISTS (SELECT 1 FROM spending s WHERE s.message_id = q.id)",
    )
    .bind(TextUuid(turn_id))
    .bind(TextUuid(conversation_id))
    .bind(&owner.0)
    .fetch_optional(pool)
    .await)?;
    Ok(row.map(|(id, question, reply)| FirstExchange {
        question_id: id.0,
        question,
        reply,
    }))
}

/// A title run's end: its title (if it gave one) stored over the first words, unless a rename
/// came first (it wins) or the conversation is gone, and the run settled to `charge`, in one
/// batched write (see `batch`), so a settled run means its title was stored or given up.
/// Whether the title was stored.
pub async fn finish_title(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    title: Option<&str>,
    (question_id, run): (Uuid, u32),
    charge: &Charge,
) -> Result<bool, DbError> {
    let owner = owner.clone();
    let title = title.map(str::to_owned);
    let charge = charge.clone();
    db.batcher()
        .write(move |mut conn| {
            Box::pin(async move {
                let stored = match &title {
                    Some(title) => on_conn!(&mut conn, |c| sqlx::query(
                        "UPDATE conversations SET title = $1, title_source = 'model'
                          WHERE id = $2 AND owner = $3 AND title_source = 'words'
                            AND deleted_at IS NULL",
                    )
                    .bind(title)
                    .bind(TextUuid(conversation_id))
                    .bind(&owner.0)
                    .execute(c)
                    .await
                    .map(|done| done.rows_affected() == 1))?,
                    None => false,
                };
                settle(&mut conn, question_id, run, &charge).await?;
                Ok(Written::Keep(stored))
            })
        })
        .await
}

/// The owner's live conversation's title; `None` if there is no such conversation.
pub async fn conversation_title(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
) -> Result<Option<String>, DbError> {
    let row: Option<(String,)> = on_reader!(db, |pool| sqlx::query_as(
        "SELECT title FROM conversations WHERE id = $1 AND owner = $2 AND deleted_at IS NULL",
    )
    .bind(TextUuid(conversation_id))
    .bind(&owner.0)
    .fetch_optional(pool)
    .await)?;
    Ok(row.map(|(title,)| title))
}
