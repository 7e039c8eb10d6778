//! Turns: recording a question with its reply to come (and re-opening a reply to continue it),
//! reading turns back, and the history a prompt is made from.

use uuid::Uuid;

use super::batch::Written;
use super::branches;
use super::ids::TextUuid;
use super::lookups::{conversation_row, streaming_reply};
use super::messages::{owned_and_live, MessageRow, MESSAGE_COLUMNS, PROMPT_COLUMNS};
use super::prompts::insert_revision;
use super::replicas::{self, Signal};
use super::totals;
use super::{now_ms, Conn, Db, DbError, Owner};
use crate::model::{MessageStatus, MessageView, Outcome, Role};
use crate::server::input::ValidSend;

/// A send to record: the request as checked (`ValidSend`: its text, model and system prompt are
/// fit to store), and what the server adds.
pub struct NewTurn<'a> {
    pub send: &'a ValidSend,
    /// The model of a new conversation that names none.
    pub default_model: &'a str,
    /// Bytes the owner may store in all (`None`: no quota).
    pub quota_bytes: Option<u64>,
}

/// A turn that was just recorded (or re-opened by Continue) and must now be run.
#[derive(Debug, Clone)]
pub struct TurnRecord {
    pub owner: Owner,
    pub conversation_id: Uuid,
    /// The question, as stored.
    pub user: MessageView,
    /// The reply as it stands now: empty for a new turn, the text so far for a continuation.
    pub reply: MessageView,
    pub system_prompt: String,
}

impl TurnRecord {
    pub fn turn_id(&self) -> Uuid {
        self.reply.turn_id
    }

    /// The model this run uses (the conversation's, stored on the reply).
    pub fn model(&self) -> &str {
        self.reply.model.as_deref().unwrap_or_default()
    }
}

pub enum BeginTurn {
    /// Stored the user message and an empty `streaming` reply.
    Started(Box<TurnRecord>),
    /// This turn id was seen before; nothing was written.
    Repeated,
    /// The conversation does not exist for this owner.
    NoSuchConversation,
    /// The conversation already has a reply streaming.
    Busy,
    /// The turn to be an alternative to is not in this conversation.
    NoSuchTurn,
    /// The question would take the owner past their storage quota; `used` bytes are stored.
    OverQuota { used: u64, quota: u64 },
}

/// Stores the user message and a placeholder reply, committed with the other turns beginning
/// now (see `batch`), and answers once that is durable. Idempotent on `turn_id`.
pub async fn begin_turn(db: &Db, owner: &Owner, turn: NewTurn<'_>) -> Result<BeginTurn, DbError> {
    let owner = owner.clone();
    let send = turn.send.clone();
    let default_model = turn.default_model.to_owned();
    let quota_bytes = turn.quota_bytes;
    let replica = db.replica.clone();
    db.batcher()
        .write(move |mut conn| {
            Box::pin(async move {
                let turn = NewTurn {
                    send: &send,
                    default_model: &default_model,
                    quota_bytes,
                };
                Ok(match store_turn(&mut conn, &owner, turn, &replica).await? {
                    begun @ BeginTurn::Started(_) => Written::Keep(begun),
                    // Nothing of a refused turn is kept (a `Busy` found by the index wrote the
                    // question first).
                    refused => Written::Undo(refused),
                })
            })
        })
        .await
}

/// [`begin_turn`]'s statements, on the batch's connection.
async fn store_turn(
    conn: &mut Conn<'_>,
    owner: &Owner,
    turn: NewTurn<'_>,
    replica: &str,
) -> Result<BeginTurn, DbError> {
    on_conn!(conn, |tx| {
        let send = turn.send;
        let now = now_ms();
        let mut found = starting_point(&mut Conn::from(&mut *tx), owner, send).await?;
        // Turn ids are unique across owners (the browser mints random ones); one seen under another
        // owner is answered as unknown by the owner-scoped read that follows.
        if found.seen {
            return Ok(BeginTurn::Repeated);
        }
        if let Some(quota) = turn.quota_bytes {
            let used = found.stored_bytes();
            // The question, and for a new conversation its title and system prompt.
            let adding = send.text().len() + send.text().len().min(64) + send.system_prompt().len();
            if used.saturating_add(u64::try_from(adding).unwrap_or(u64::MAX)) > quota {
                return Ok(BeginTurn::OverQuota { used, quota });
            }
        }
        let (conversation_id, model, system_prompt, revision, parent) = match send.conversation_id()
        {
            Some(id) => {
                let Some(destination) = found.destination() else {
                    return Ok(BeginTurn::NoSuchConversation);
                };
                if found.streaming {
                    return Ok(BeginTurn::Busy);
                }
                let revision = destination.revision;
                let parent = match send.alternative_to() {
                    None => destination.current_turn_id,
                    Some(sibling) => {
                        let sibling_found: Option<(Option<TextUuid>,)> = sqlx::query_as(
                            "SELECT parent_turn_id FROM messages
                             WHERE turn_id = $1 AND role = 'user' AND conversation_id = $2",
                        )
                        .bind(TextUuid(sibling))
                        .bind(TextUuid(id))
                        .fetch_optional(&mut *tx)
                        .await?;
                        let Some((parent,)) = sibling_found else {
                            return Ok(BeginTurn::NoSuchTurn);
                        };
                        parent.map(|p| p.0)
                    }
                };
                let model = send.model().map_or(destination.model, str::to_owned);
                sqlx::query(
                    "UPDATE conversations SET updated_at = $1, model = $2, current_turn_id = $3 WHERE id = $4",
                )
                .bind(now)
                .bind(&model)
                .bind(TextUuid(send.turn_id()))
                .bind(TextUuid(id))
                    .execute(&mut *tx)
                    .await?;
                (id, model, destination.system_prompt, revision, parent)
            }
            None => {
                let id = Uuid::new_v4();
                let model = send.model().unwrap_or(turn.default_model).to_owned();
                let revision = u32::from(!send.system_prompt().is_empty());
                sqlx::query(
                    "INSERT INTO conversations (id, owner, title, model, system_prompt,
                                                system_prompt_revision, current_turn_id, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(TextUuid(id))
                .bind(&owner.0)
                .bind(title_from(send.text()))
                .bind(&model)
                .bind(send.system_prompt())
                .bind(i64::from(revision))
                .bind(TextUuid(send.turn_id()))
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if revision > 0 {
                    insert_revision(
                        &mut Conn::from(&mut *tx),
                        id,
                        revision,
                        send.system_prompt(),
                        now,
                    )
                    .await?;
                }
                (id, model, send.system_prompt().to_owned(), revision, None)
            }
        };
        let last_position = found.last_position;
        let user = MessageView {
            id: Uuid::new_v4(),
            turn_id: send.turn_id(),
            role: Role::User,
            content: send.text().to_owned(),
            thinking: String::new(),
            html: String::new(),
            model: None,
            run: 1,
            system_prompt_revision: None,
            parent_turn_id: parent,
            alternatives: Vec::new(),
            outcome: Outcome::complete(),
            attachments: Vec::new(),
        };
        let reply = MessageView {
            id: Uuid::new_v4(),
            turn_id: send.turn_id(),
            role: Role::Assistant,
            content: String::new(),
            thinking: String::new(),
            html: String::new(),
            model: Some(model),
            run: 1,
            system_prompt_revision: Some(revision),
            parent_turn_id: None,
            alternatives: Vec::new(),
            outcome: Outcome::streaming(),
            attachments: Vec::new(),
        };
        // Both rows in one statement: each statement is a round trip to the database, and the
        // batch writer runs every beginning turn's statements one after another.
        let mut insert = sqlx::query(
            "INSERT INTO messages (id, conversation_id, turn_id, role, content, status, model, position,
                                   system_prompt_revision, parent_turn_id, created_at, updated_at,
                                   replica)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13),
                    ($14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)",
        );
        for (message, position) in [(&user, last_position + 1), (&reply, last_position + 2)] {
            insert = insert
                .bind(TextUuid(message.id))
                .bind(TextUuid(conversation_id))
                .bind(TextUuid(send.turn_id()))
                .bind(message.role)
                .bind(&message.content)
                .bind(message.outcome.status)
                .bind(&message.model)
                .bind(position)
                .bind(message.system_prompt_revision.map(i64::from))
                .bind(message.parent_turn_id.map(TextUuid))
                .bind(now)
                .bind(now)
                .bind((message.role == Role::Assistant).then_some(replica));
        }
        let inserted = insert.execute(&mut *tx).await;
        if is_one_streaming_violation(&inserted) {
            return Ok(BeginTurn::Busy);
        }
        inserted?;
        if let Some(parent) = parent {
            totals::record_prior(&mut Conn::from(&mut *tx), send.turn_id(), parent).await?;
        }
        let mut user = user;
        if send.alternative_to().is_some() {
            user.alternatives =
                branches::alternatives(&mut Conn::from(&mut *tx), conversation_id, &[parent])
                    .await?
                    .into_iter()
                    .find(|(t, _)| *t == send.turn_id())
                    .map(|(_, all)| all)
                    .unwrap_or_default();
        }
        replicas::tell_in(&mut Conn::from(&mut *tx), Signal::Began(conversation_id)).await?;
        Ok(BeginTurn::Started(Box::new(TurnRecord {
            owner: owner.clone(),
            conversation_id,
            user,
            reply,
            system_prompt,
        })))
    })
}

/// What a turn's start checks, read in one statement (each is a round trip, and the batch
/// writer runs every beginning turn's one after another): whether the turn was stored before,
/// the owner's stored bytes, and the conversation it goes into, if any, as its owner may see it.
#[derive(sqlx::FromRow)]
struct StartingPoint {
    seen: bool,
    stored_bytes: Option<i64>,
    /// The conversation's id, if it is there for this owner.
    id: Option<TextUuid>,
    model: Option<String>,
    system_prompt: Option<String>,
    system_prompt_revision: Option<i64>,
    current_turn_id: Option<TextUuid>,
    /// It has a reply streaming now.
    streaming: bool,
    /// Its last message's position (0: none).
    last_position: i64,
}

/// The conversation a turn goes into, from its [`StartingPoint`].
struct Destination {
    model: String,
    system_prompt: String,
    revision: u32,
    current_turn_id: Option<Uuid>,
}

impl StartingPoint {
    fn stored_bytes(&self) -> u64 {
        bytes_of(self.stored_bytes)
    }

    /// The conversation, if it is there for this owner.
    fn destination(&mut self) -> Option<Destination> {
        self.id?;
        Some(Destination {
            model: self.model.take()?,
            system_prompt: self.system_prompt.take().unwrap_or_default(),
            revision: self
                .system_prompt_revision
                .and_then(|r| u32::try_from(r).ok())
                .unwrap_or(0),
            current_turn_id: self.current_turn_id.map(|t| t.0),
        })
    }
}

async fn starting_point(
    conn: &mut Conn<'_>,
    owner: &Owner,
    send: &ValidSend,
) -> Result<StartingPoint, DbError> {
    Ok(on_conn!(conn, |c| sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE turn_id = $1) AS seen,
                (SELECT bytes FROM storage_used WHERE owner = $2) AS stored_bytes,
                c.id, c.model, c.system_prompt, c.system_prompt_revision, c.current_turn_id,
                EXISTS (SELECT 1 FROM messages WHERE conversation_id = $3 AND status = 'streaming')
                    AS streaming,
                (SELECT COALESCE(MAX(position), 0) FROM messages WHERE conversation_id = $3)
                    AS last_position
           FROM (SELECT 1 AS one) o
           LEFT JOIN conversations c ON c.id = $3 AND c.owner = $2 AND c.deleted_at IS NULL",
    )
    .bind(TextUuid(send.turn_id()))
    .bind(&owner.0)
    .bind(send.conversation_id().map(TextUuid))
    .fetch_one(c)
    .await)?)
}

/// Bytes the owner stores now (kept by the `storage_used` triggers).
pub async fn stored_bytes(db: &Db, owner: &Owner) -> Result<u64, DbError> {
    stored_bytes_in(&mut db.read().await?.conn(), owner).await
}

/// [`stored_bytes`], on a connection (inside the transaction that is about to add some).
pub(super) async fn stored_bytes_in(conn: &mut Conn<'_>, owner: &Owner) -> Result<u64, DbError> {
    let bytes: Option<i64> = on_conn!(conn, |c| sqlx::query_scalar(
        "SELECT bytes FROM storage_used WHERE owner = $1"
    )
    .bind(&owner.0)
    .fetch_optional(c)
    .await)?;
    Ok(bytes_of(bytes))
}

/// `storage_used.bytes` as read: no row is nothing stored.
fn bytes_of(column: Option<i64>) -> u64 {
    column.map_or(0, |b| u64::try_from(b).unwrap_or(0))
}

/// The `one_streaming_reply_per_conversation` index refused a second streaming reply (SQLite
/// names the column, Postgres the index).
fn is_one_streaming_violation<T>(result: &Result<T, sqlx::Error>) -> bool {
    matches!(result, Err(sqlx::Error::Database(e))
        if e.message() == "UNIQUE constraint failed: messages.conversation_id"
            || e.constraint() == Some("one_streaming_reply_per_conversation"))
}

/// Why a reply cannot be continued; the words are the person's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CannotContinue {
    #[error("this reply is not the one on the page; reload it")]
    NotOnThePage,
    #[error(
        "only a reply that was stopped, interrupted or cut at its length limit can be continued"
    )]
    NotCut,
    #[error("only the last reply of a conversation can be continued")]
    NotLast,
}

pub enum BeginContinuation {
    /// The reply is `streaming` again; its run number went up by one.
    Started(Box<TurnRecord>),
    /// The reply was already continued past `from_run` (a repeated request): this is its run now.
    AlreadyContinued { run: u32 },
    /// No such turn for this owner.
    NoSuchTurn,
    /// The reply cannot be continued, for this reason.
    Refused(CannotContinue),
    /// The conversation already has a reply streaming.
    Busy { conversation_id: Uuid },
}

/// Re-opens a stopped or interrupted reply, the last of its conversation, so that the model can
/// go on from its text; `from_run` is the run the asker saw, so that asking twice continues once.
/// The conversation's current model writes the continuation.
/// Committed with the other writes of the moment (see `batch`).
pub async fn begin_continuation(
    db: &Db,
    owner: &Owner,
    turn_id: Uuid,
    from_run: u32,
) -> Result<BeginContinuation, DbError> {
    let owner = owner.clone();
    let replica = db.replica.clone();
    db.batcher()
        .write(move |mut conn| {
            Box::pin(async move {
                Ok(
                    match reopen_reply(&mut conn, &owner, turn_id, from_run, &replica).await? {
                        begun @ BeginContinuation::Started(_) => Written::Keep(begun),
                        refused => Written::Undo(refused),
                    },
                )
            })
        })
        .await
}

/// [`begin_continuation`]'s statements, on the batch's connection.
async fn reopen_reply(
    conn: &mut Conn<'_>,
    owner: &Owner,
    turn_id: Uuid,
    from_run: u32,
    replica: &str,
) -> Result<BeginContinuation, DbError> {
    on_conn!(conn, |tx| {
        let Some((user, reply, conversation_id)) =
            turn_in(&mut Conn::from(&mut *tx), owner, turn_id).await?
        else {
            return Ok(BeginContinuation::NoSuchTurn);
        };
        if reply.run > from_run {
            return Ok(BeginContinuation::AlreadyContinued { run: reply.run });
        }
        if reply.run < from_run {
            return Ok(BeginContinuation::Refused(CannotContinue::NotOnThePage));
        }
        let Some(conversation) =
            conversation_row(&mut Conn::from(&mut *tx), owner, conversation_id).await?
        else {
            return Ok(BeginContinuation::NoSuchTurn);
        };
        if reply.outcome.status == MessageStatus::Streaming
            || streaming_reply(&mut Conn::from(&mut *tx), conversation_id).await?
        {
            return Ok(BeginContinuation::Busy { conversation_id });
        }
        if !reply.outcome.can_continue() {
            return Ok(BeginContinuation::Refused(CannotContinue::NotCut));
        }
        if conversation.current_turn_id != Some(TextUuid(turn_id)) {
            return Ok(BeginContinuation::Refused(CannotContinue::NotLast));
        }
        let run = reply.run.saturating_add(1);
        let updated = sqlx::query(
            "UPDATE messages SET status = 'streaming', error = NULL, error_detail = NULL,
                 cut_at_limit = FALSE, run = $1, model = $2,
                 system_prompt_revision = $3, updated_at = $4, replica = $6
             WHERE id = $5",
        )
        .bind(i64::from(run))
        .bind(&conversation.model)
        .bind(i64::from(conversation.revision()))
        .bind(now_ms())
        .bind(TextUuid(reply.id))
        .bind(replica)
        .execute(&mut *tx)
        .await;
        if is_one_streaming_violation(&updated) {
            return Ok(BeginContinuation::Busy { conversation_id });
        }
        updated?;
        replicas::tell_in(&mut Conn::from(&mut *tx), Signal::Began(conversation_id)).await?;
        Ok(BeginContinuation::Started(Box::new(TurnRecord {
            owner: owner.clone(),
            conversation_id,
            user,
            reply: MessageView {
                run,
                system_prompt_revision: Some(conversation.revision()),
                model: Some(conversation.model),
                ..reply
            },
            system_prompt: conversation.system_prompt,
        })))
    })
}

fn title_from(text: &str) -> String {
    let visible: String = text
        .chars()
        .filter(|c| !crate::server::input::is_invisible(*c) || *c == '\n')
        .collect();
    let line = visible
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("New chat");
    let mut title: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        title.push('…');
    }
    title
}

/// Some of a reply's history: the messages of a few turns of its branch, newest first.
#[derive(Debug, Default)]
pub struct HistoryPage {
    /// Newest first; the reply itself is not among them.
    pub messages: Vec<MessageView>,
    /// The turn before the oldest one read (`None`: the branch's first turn was read).
    pub older: Option<Uuid>,
    /// How many messages before the oldest turn read a prompt could send (`prior_sendable`).
    pub sendable_before: u32,
}

/// The messages of the turn `from_turn` and up to `turns - 1` turns before it on its branch,
/// newest first, without the reply `reply_id`: a prompt's candidates, read newest first so that
/// a send reads only as far back as its model's window reaches. Empty if the conversation is
/// not the owner's.
pub async fn history_page(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    reply_id: Uuid,
    from_turn: Uuid,
    turns: u32,
) -> Result<HistoryPage, DbError> {
    let mut held = db.read().await?;
    let conn = &mut held.conn();
    if conversation_row(conn, owner, conversation_id)
        .await?
        .is_none()
    {
        return Ok(HistoryPage::default());
    }
    let rows = branches::newest_turns(
        conn,
        conversation_id,
        from_turn,
        None,
        turns,
        PROMPT_COLUMNS,
    )
    .await?;
    let messages: Vec<MessageView> = rows
        .into_iter()
        .map(MessageView::from)
        .filter(|m| m.id != reply_id)
        .collect();
    let oldest = messages.iter().rev().find(|m| m.role == Role::User);
    let older = oldest.and_then(|q| q.parent_turn_id);
    let sendable_before = match oldest {
        Some(q) if older.is_some() => totals::prior_sendable(conn, q.turn_id).await?,
        _ => 0,
    };
    Ok(HistoryPage {
        messages,
        older,
        sendable_before,
    })
}

/// A turn's question and reply, and its conversation.
async fn turn_in(
    conn: &mut Conn<'_>,
    owner: &Owner,
    turn_id: Uuid,
) -> Result<Option<(MessageView, MessageView, Uuid)>, DbError> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE turn_id = $1
           AND {}
         ORDER BY position",
        owned_and_live(2)
    );
    let rows: Vec<MessageRow> = on_conn!(conn, |c| sqlx::query_as(&sql)
        .bind(TextUuid(turn_id))
        .bind(&owner.0)
        .fetch_all(c)
        .await)?;
    Ok(pair_turns(rows).pop())
}

/// Rows of whole turns, oldest first → (question, reply, conversation) per turn. A question
/// without its reply (which `begin_turn` never writes) is skipped.
fn pair_turns(rows: Vec<MessageRow>) -> Vec<(MessageView, MessageView, Uuid)> {
    let mut turns = Vec::new();
    let mut question: Option<MessageView> = None;
    for row in rows {
        let conversation_id = row.conversation_id.0;
        let message = MessageView::from(row);
        match message.role {
            Role::User => question = Some(message),
            Role::Assistant => {
                if let Some(user) = question.take().filter(|q| q.turn_id == message.turn_id) {
                    turns.push((user, message, conversation_id));
                }
            }
        }
    }
    turns
}

/// A turn's question and reply as stored, with the conversation they belong to.
pub async fn turn(
    db: &Db,
    owner: &Owner,
    turn_id: Uuid,
) -> Result<Option<(MessageView, MessageView, Uuid)>, DbError> {
    turn_in(&mut db.read().await?.conn(), owner, turn_id).await
}

/// Turns a page following a conversation reads back at most: a page further behind loads the
/// branch afresh.
const FOLLOWED_TURNS: u32 = 64;

/// The conversation's turns from `from_turn` on (that turn included), or all of them (at most
/// [`FOLLOWED_TURNS`]; else the last), oldest first: what a page that has seen up to
/// `from_turn` may be missing. `None` if the conversation does not exist for this owner.
pub async fn turns_from(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    from_turn: Option<Uuid>,
) -> Result<Option<Vec<(MessageView, MessageView)>>, DbError> {
    let mut held = db.read().await?;
    let conn = &mut held.conn();
    let Some(conversation) = conversation_row(conn, owner, conversation_id).await? else {
        return Ok(None);
    };
    let Some(TextUuid(last)) = conversation.current_turn_id else {
        return Ok(Some(Vec::new()));
    };
    // The branch on screen only (turns on other branches belong to no page following this
    // one), walked back from its end to `from_turn`, at most `FOLLOWED_TURNS`: a page further
    // behind gets the last turn, whose parent tells it to load the branch afresh.
    let mut rows = branches::newest_turns(
        conn,
        conversation_id,
        last,
        from_turn,
        FOLLOWED_TURNS,
        MESSAGE_COLUMNS,
    )
    .await?;
    rows.reverse();
    let mut turns: Vec<(MessageView, MessageView)> = pair_turns(rows)
        .into_iter()
        .map(|(user, reply, _)| (user, reply))
        .collect();
    let reached_first = turns
        .first()
        .is_some_and(|(user, _)| user.parent_turn_id.is_none());
    let start = match from_turn {
        Some(from) => turns.iter().position(|(user, _)| user.turn_id == from),
        // All of them, when that is few enough.
        None => reached_first.then_some(0),
    };
    turns.drain(..start.unwrap_or(turns.len().saturating_sub(1)));
    Ok(Some(turns))
}
