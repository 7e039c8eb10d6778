//! Storage. All SQL lives here, and every query is scoped to an [`Owner`], so per-user accounts
//! (and a Postgres backend) change this module and nothing above it.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use crate::model::{
    ConversationSummary, ConversationView, MessageStatus, MessageView, Role, Usage,
};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Whose data a query may touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner(pub String);

/// Opens (creating if needed) the database and applies pending migrations.
pub async fn connect(path: &Path) -> Result<SqlitePool, DbError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| DbError::Directory {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Replies left `streaming` by a crash or kill: keep their text, mark them failed.
pub async fn fail_interrupted(pool: &SqlitePool) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE messages SET status = 'failed', error = 'the server stopped during this reply', updated_at = ?
         WHERE status = 'streaming'",
    )
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub async fn list_conversations(
    pool: &SqlitePool,
    owner: &Owner,
) -> Result<Vec<ConversationSummary>, DbError> {
    let rows = sqlx::query(
        "SELECT id, title, updated_at FROM conversations
         WHERE owner = ? AND deleted_at IS NULL ORDER BY updated_at DESC LIMIT 200",
    )
    .bind(&owner.0)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ConversationSummary {
                id: uuid(r.get("id"))?,
                title: r.get("title"),
                updated_at: r.get("updated_at"),
            })
        })
        .collect()
}

pub async fn get_conversation(
    pool: &SqlitePool,
    owner: &Owner,
    id: Uuid,
) -> Result<Option<ConversationView>, DbError> {
    let Some(row) = sqlx::query(
        "SELECT id, title, model, system_prompt FROM conversations WHERE id = ? AND owner = ? AND deleted_at IS NULL",
    )
    .bind(id.to_string())
    .bind(&owner.0)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let messages = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY created_at, rowid"))
        .bind(id.to_string())
        .fetch_all(pool)
        .await?
        .iter()
        .map(message_from_row)
        .collect::<Result<_, _>>()?;
    Ok(Some(ConversationView {
        id,
        title: row.get("title"),
        model: row.get("model"),
        system_prompt: row.get("system_prompt"),
        messages,
    }))
}

const MESSAGE_COLUMNS: &str = "id, turn_id, role, content, status, error, model, input_tokens,
    cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, usage_estimated, cost_usd";

fn message_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<MessageView, DbError> {
    let role = match r.get::<String, _>("role").as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => return Err(DbError::Corrupt(format!("role {other}"))),
    };
    let status_text: String = r.get("status");
    let status = MessageStatus::parse(&status_text)
        .ok_or_else(|| DbError::Corrupt(format!("status {status_text}")))?;
    let count = |column: &str| {
        r.get::<Option<i64>, _>(column)
            .map(|n| u32::try_from(n).unwrap_or(0))
    };
    let usage = count("input_tokens").map(|input_tokens| Usage {
        input_tokens,
        cached_input_tokens: count("cached_input_tokens").unwrap_or(0),
        cache_write_tokens: count("cache_write_tokens").unwrap_or(0),
        output_tokens: count("output_tokens").unwrap_or(0),
        reasoning_tokens: count("reasoning_tokens").unwrap_or(0),
    });
    Ok(MessageView {
        id: uuid(r.get("id"))?,
        turn_id: uuid(r.get("turn_id"))?,
        role,
        content: r.get("content"),
        status,
        error: r.get("error"),
        model: r.get("model"),
        usage,
        usage_estimated: r.get::<i64, _>("usage_estimated") != 0,
        cost_usd: r.get("cost_usd"),
    })
}

fn uuid(text: String) -> Result<Uuid, DbError> {
    Uuid::parse_str(&text).map_err(|_| DbError::Corrupt(format!("id {text}")))
}

/// What the browser asked for when it sent a message.
pub struct NewTurn<'a> {
    pub turn_id: Uuid,
    /// `None` starts a new conversation.
    pub conversation_id: Option<Uuid>,
    pub text: &'a str,
    /// The model picked for this turn; it becomes the conversation's model. `None` keeps the
    /// conversation's model (or, for a new one, the default).
    pub model: Option<&'a str>,
    pub default_model: &'a str,
}

/// A turn that was just recorded and must now be run.
#[derive(Debug, Clone)]
pub struct TurnRecord {
    pub turn_id: Uuid,
    pub conversation_id: Uuid,
    pub assistant_message_id: Uuid,
    pub model: String,
    pub system_prompt: String,
}

pub enum BeginTurn {
    /// Stored the user message and an empty `streaming` reply.
    Started(TurnRecord),
    /// This turn id was seen before; nothing was written.
    Repeated,
    /// The conversation does not exist for this owner.
    NoSuchConversation,
}

/// Stores the user message and a placeholder reply in one transaction. Idempotent on `turn_id`.
pub async fn begin_turn(
    pool: &SqlitePool,
    owner: &Owner,
    turn: NewTurn<'_>,
) -> Result<BeginTurn, DbError> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let seen = sqlx::query("SELECT 1 FROM messages WHERE turn_id = ?")
        .bind(turn.turn_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    if seen.is_some() {
        return Ok(BeginTurn::Repeated);
    }
    let (conversation_id, model, system_prompt) = match turn.conversation_id {
        Some(id) => {
            let row = sqlx::query("SELECT model, system_prompt FROM conversations WHERE id = ? AND owner = ? AND deleted_at IS NULL")
                .bind(id.to_string())
                .bind(&owner.0)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(BeginTurn::NoSuchConversation);
            };
            let model = turn
                .model
                .map_or_else(|| row.get::<String, _>("model"), str::to_owned);
            sqlx::query("UPDATE conversations SET updated_at = ?, model = ? WHERE id = ?")
                .bind(now)
                .bind(&model)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            (id, model, row.get::<String, _>("system_prompt"))
        }
        None => {
            let id = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO conversations (id, owner, title, model, system_prompt, created_at, updated_at)
                 VALUES (?, ?, ?, ?, '', ?, ?)",
            )
            .bind(id.to_string())
            .bind(&owner.0)
            .bind(title_from(turn.text))
            .bind(turn.model.unwrap_or(turn.default_model))
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            (
                id,
                turn.model.unwrap_or(turn.default_model).to_owned(),
                String::new(),
            )
        }
    };
    let assistant_message_id = Uuid::new_v4();
    // The reply's created_at is one millisecond later so ordering by time keeps the pair in order.
    for (id, role, content, status, created) in [
        (Uuid::new_v4(), "user", turn.text, "complete", now),
        (assistant_message_id, "assistant", "", "streaming", now + 1),
    ] {
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, turn_id, role, content, status, model, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(conversation_id.to_string())
        .bind(turn.turn_id.to_string())
        .bind(role)
        .bind(content)
        .bind(status)
        .bind(&model)
        .bind(created)
        .bind(created)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(BeginTurn::Started(TurnRecord {
        turn_id: turn.turn_id,
        conversation_id,
        assistant_message_id,
        model,
        system_prompt,
    }))
}

fn title_from(text: &str) -> String {
    let line = text
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

/// The conversation as the provider should see it, oldest first: every user message and every
/// reply that has text (stopped and failed replies included: the person saw them).
pub async fn history(
    pool: &SqlitePool,
    conversation_id: Uuid,
) -> Result<Vec<(Role, String)>, DbError> {
    let rows = sqlx::query(
        "SELECT role, content FROM messages
         WHERE conversation_id = ? AND (role = 'user' OR content != '') ORDER BY created_at, rowid",
    )
    .bind(conversation_id.to_string())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let role = if r.get::<String, _>("role") == "user" {
                Role::User
            } else {
                Role::Assistant
            };
            (role, r.get("content"))
        })
        .collect())
}

/// Saves the text streamed so far, so a crash loses at most the last flush interval.
pub async fn save_partial_reply(
    pool: &SqlitePool,
    message_id: Uuid,
    content: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE messages SET content = ?, updated_at = ? WHERE id = ? AND status = 'streaming'",
    )
    .bind(content)
    .bind(now_ms())
    .bind(message_id.to_string())
    .execute(pool)
    .await?;
    Ok(())
}

pub struct FinishedReply<'a> {
    pub content: &'a str,
    pub status: MessageStatus,
    pub error: Option<&'a str>,
    pub usage: Option<Usage>,
    pub usage_estimated: bool,
    pub cost_usd: Option<f64>,
}

pub async fn finish_reply(
    pool: &SqlitePool,
    message_id: Uuid,
    reply: FinishedReply<'_>,
) -> Result<(), DbError> {
    let usage = reply.usage;
    let field = |f: fn(&Usage) -> u32| usage.as_ref().map(|u| i64::from(f(u)));
    sqlx::query(
        "UPDATE messages SET content = ?, status = ?, error = ?, input_tokens = ?, cached_input_tokens = ?,
            cache_write_tokens = ?, output_tokens = ?, reasoning_tokens = ?, usage_estimated = ?, cost_usd = ?,
            updated_at = ?
         WHERE id = ?",
    )
    .bind(reply.content)
    .bind(reply.status.as_str())
    .bind(reply.error)
    .bind(field(|u| u.input_tokens))
    .bind(field(|u| u.cached_input_tokens))
    .bind(field(|u| u.cache_write_tokens))
    .bind(field(|u| u.output_tokens))
    .bind(field(|u| u.reasoning_tokens))
    .bind(reply.usage_estimated)
    .bind(reply.cost_usd)
    .bind(now_ms())
    .bind(message_id.to_string())
    .execute(pool)
    .await?;
    Ok(())
}

/// A finished (or interrupted) turn's reply, for readers that arrive after it left memory.
pub async fn turn_reply(
    pool: &SqlitePool,
    owner: &Owner,
    turn_id: Uuid,
) -> Result<Option<(Uuid, MessageView)>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS}, conversation_id AS conv FROM messages
         WHERE turn_id = ? AND role = 'assistant'
           AND conversation_id IN (SELECT id FROM conversations WHERE owner = ?)"
    ))
    .bind(turn_id.to_string())
    .bind(&owner.0)
    .fetch_optional(pool)
    .await?;
    row.map(|r| Ok((uuid(r.get("conv"))?, message_from_row(&r)?)))
        .transpose()
}

/// Returns false if the conversation does not exist for this owner.
pub async fn set_system_prompt(
    pool: &SqlitePool,
    owner: &Owner,
    id: Uuid,
    system_prompt: &str,
) -> Result<bool, DbError> {
    set_metadata(pool, owner, id, "system_prompt", system_prompt).await
}

/// Returns false if the conversation does not exist for this owner.
pub async fn set_conversation_model(
    pool: &SqlitePool,
    owner: &Owner,
    id: Uuid,
    model: &str,
) -> Result<bool, DbError> {
    set_metadata(pool, owner, id, "model", model).await
}

/// Sets one metadata column of a live conversation; `column` is one of the callers' constants.
async fn set_metadata(
    pool: &SqlitePool,
    owner: &Owner,
    id: Uuid,
    column: &'static str,
    value: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query(&format!(
        "UPDATE conversations SET {column} = ?, updated_at = ? WHERE id = ? AND owner = ? AND deleted_at IS NULL"
    ))
    .bind(value)
    .bind(now_ms())
    .bind(id.to_string())
    .bind(&owner.0)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
