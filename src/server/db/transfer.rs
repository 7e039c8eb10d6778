//! Import and export: a conversation read whole (every branch, in Rill's export format), the
//! owner's conversations a page at a time, and an imported conversation stored in one
//! transaction (all of it or none of it).

use std::collections::HashMap;

use uuid::Uuid;

use super::attachments::{insert_attachment_in, link_in, store_blob_in, NewBlob};
use super::ids::TextUuid;
use super::prompts::insert_revision;
use super::totals;
use super::turns::stored_bytes_in;
use super::{Conn, Db, DbError, Engine, Owner};
use crate::model::attachments::AttachmentKind;
use crate::model::{MessageStatus, Role, Usage};
use crate::server::export_format::{self, Conversation, PromptRevision, Question, Reply, Turn};

/// A `messages` row as an export reads it.
#[derive(sqlx::FromRow)]
struct ExportRow {
    turn_id: TextUuid,
    role: Role,
    content: String,
    thinking: String,
    status: MessageStatus,
    error: Option<String>,
    model: Option<String>,
    input_tokens: Option<i64>,
    cached_input_tokens: Option<i64>,
    cache_write_tokens: Option<i64>,
    output_tokens: Option<i64>,
    reasoning_tokens: Option<i64>,
    usage_estimated: bool,
    cost_usd: Option<f64>,
    run: i64,
    system_prompt_revision: Option<i64>,
    parent_turn_id: Option<TextUuid>,
    cut_at_limit: bool,
    imported: bool,
    created_at: i64,
    updated_at: i64,
}

/// The owner's live conversation `id`, every branch of it; `None` if there is no such
/// conversation for this owner.
pub async fn export_conversation(
    db: &Db,
    owner: &Owner,
    id: Uuid,
) -> Result<Option<Conversation>, DbError> {
    let row: Option<(String, String, i64, i64, Option<TextUuid>, i64)> =
        on_reader!(db, |pool| sqlx::query_as(
            "SELECT title, model, created_at, updated_at, current_turn_id, system_prompt_revision
           FROM conversations WHERE id = $1 AND owner = $2 AND deleted_at IS NULL",
        )
        .bind(TextUuid(id))
        .bind(&owner.0)
        .fetch_optional(pool)
        .await)?;
    let Some((title, model, created_at, updated_at, current, revision)) = row else {
        return Ok(None);
    };
    let prompts: Vec<(i64, String, i64)> = on_reader!(db, |pool| sqlx::query_as(
        "SELECT revision, text, created_at FROM system_prompts
          WHERE conversation_id = $1 ORDER BY revision",
    )
    .bind(TextUuid(id))
    .fetch_all(pool)
    .await)?;
    let rows: Vec<ExportRow> = on_reader!(db, |pool| sqlx::query_as(
        "SELECT turn_id, role, content, thinking, status, error, model, input_tokens,
                cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
                usage_estimated, cost_usd, run, system_prompt_revision, parent_turn_id,
                cut_at_limit, imported, created_at, updated_at
           FROM messages WHERE conversation_id = $1 ORDER BY position",
    )
    .bind(TextUuid(id))
    .fetch_all(pool)
    .await)?;
    // Each question's files, in order (a question's links are looked up by its turn).
    let files: Vec<(TextUuid, String, String, i64, String)> =
        on_reader!(db, |pool| sqlx::query_as(
            "SELECT m.turn_id, a.name, a.sha256, b.size, b.mime
           FROM messages m
           JOIN turn_attachments t ON t.owner = $1 AND t.turn_id = m.turn_id
           JOIN attachments a ON a.id = t.attachment_id AND a.owner = t.owner
           JOIN blobs b ON b.owner = a.owner AND b.sha256 = a.sha256
          WHERE m.conversation_id = $2 AND m.role = 'user'
          ORDER BY m.position, t.position",
        )
        .bind(&owner.0)
        .bind(TextUuid(id))
        .fetch_all(pool)
        .await)?;
    let mut files_of: HashMap<Uuid, Vec<export_format::File>> = HashMap::new();
    for (turn, name, sha256, size, mime) in files {
        files_of
            .entry(turn.0)
            .or_default()
            .push(export_format::File {
                name,
                sha256,
                size: u64::try_from(size).unwrap_or(0),
                mime,
            });
    }
    let mut conversation = Conversation::new(id.to_string(), title, model, created_at, updated_at);
    conversation.current_turn_id = current.map(|t| t.0.to_string());
    conversation.system_prompt_revision = u32::try_from(revision).unwrap_or(0);
    conversation.system_prompts = prompts
        .into_iter()
        .map(|(revision, text, created_at)| PromptRevision {
            revision: u32::try_from(revision).unwrap_or(0),
            text,
            created_at,
        })
        .collect();
    // A turn's question is stored right before its reply.
    let mut question: Option<ExportRow> = None;
    for row in rows {
        match row.role {
            Role::User => question = Some(row),
            Role::Assistant => {
                let Some(asked) = question.take().filter(|q| q.turn_id.0 == row.turn_id.0) else {
                    continue;
                };
                let files = files_of.remove(&asked.turn_id.0).unwrap_or_default();
                conversation.turns.push(exported_turn(asked, row, files));
            }
        }
    }
    Ok(Some(conversation))
}

fn exported_turn(question: ExportRow, reply: ExportRow, files: Vec<export_format::File>) -> Turn {
    let count = |n: Option<i64>| n.map_or(0, |n| u32::try_from(n).unwrap_or(0));
    let usage = reply.input_tokens.map(|input| Usage {
        input_tokens: count(Some(input)),
        cached_input_tokens: count(reply.cached_input_tokens),
        cache_write_tokens: count(reply.cache_write_tokens),
        output_tokens: count(reply.output_tokens),
        reasoning_tokens: count(reply.reasoning_tokens),
    });
    Turn {
        turn_id: question.turn_id.0.to_string(),
        parent_turn_id: question.parent_turn_id.map(|p| p.0.to_string()),
        question: Question {
            text: question.content,
            created_at: question.created_at,
            files,
        },
        reply: Reply {
            text: reply.content,
            thinking: reply.thinking,
            status: reply.status,
            model: reply.model,
            run: u32::try_from(reply.run).unwrap_or(1),
            system_prompt_revision: reply
                .system_prompt_revision
                .and_then(|r| u32::try_from(r).ok()),
            usage,
            usage_estimated: reply.usage_estimated,
            cost_usd: reply.cost_usd,
            error: reply.error,
            cut_at_limit: reply.cut_at_limit,
            imported: reply.imported,
            created_at: reply.created_at,
            updated_at: reply.updated_at,
        },
    }
}

/// The ids of the owner's live conversations after `after` (a row id; 0 from the start), in
/// the order they were stored, at most `limit`: an export's pages, stable while it runs.
pub async fn conversation_ids(
    db: &Db,
    owner: &Owner,
    after: i64,
    limit: u32,
) -> Result<Vec<(i64, Uuid)>, DbError> {
    // The order rows were stored in: SQLite's rowid, Postgres's `seq` (an identity column).
    let seq = match db.engine() {
        Engine::Sqlite => "rowid",
        Engine::Postgres => "seq",
    };
    let sql = format!(
        "SELECT {seq}, id FROM conversations
          WHERE owner = $1 AND deleted_at IS NULL AND {seq} > $2
          ORDER BY {seq} LIMIT $3"
    );
    let rows: Vec<(i64, TextUuid)> = on_reader!(db, |pool| sqlx::query_as(&sql)
        .bind(&owner.0)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await)?;
    Ok(rows.into_iter().map(|(row, id)| (row, id.0)).collect())
}

/// How storing an import went.
#[derive(Debug, PartialEq)]
pub enum Stored {
    /// Stored as this new conversation.
    New(Uuid),
    /// A conversation from the same source is here already (`source` was imported before).
    AlreadyImported,
    /// It would take the owner past their quota; `used` bytes are stored.
    OverQuota { used: u64, quota: u64 },
}

/// A file an imported conversation carries, checked (`attachments::take`) and ready to store.
pub struct ImportedFile<'a> {
    /// The SHA-256 the export names it by (its questions' `files`).
    pub named: &'a str,
    /// As it is stored (an image encoded afresh has a digest of its own).
    pub blob: NewBlob<'a>,
    pub kind: AttachmentKind,
    pub bytes: Box<dyn tokio::io::AsyncRead + Unpin + Send + 'a>,
}

/// Stores `conversation` (checked by the caller: parents before children, revisions known, and
/// every file its questions name among `files`) as a new conversation of `owner`, with new ids,
/// all of it in one transaction: its files' blobs (once per owner and content), an upload of
/// each file each question carries, and the links. `source` names where it came from
/// (`chatgpt:<id>`), so that importing it again is skipped.
pub async fn import_conversation(
    db: &Db,
    owner: &Owner,
    conversation: &Conversation,
    source: &str,
    quota_bytes: Option<u64>,
    files: &mut [ImportedFile<'_>],
) -> Result<Stored, DbError> {
    in_transaction!(db, |tx| {
        let seen = sqlx::query(
            "SELECT 1 FROM conversations
              WHERE owner = $1 AND imported_from = $2 AND deleted_at IS NULL",
        )
        .bind(&owner.0)
        .bind(source)
        .fetch_optional(&mut *tx)
        .await?;
        if seen.is_some() {
            return Ok(Stored::AlreadyImported);
        }
        if let Some(quota) = quota_bytes {
            let used = stored_bytes_in(&mut super::Conn::from(&mut *tx), owner).await?;
            if used.saturating_add(conversation.stored_bytes()) > quota {
                return Ok(Stored::OverQuota { used, quota });
            }
        }
        let id = Uuid::new_v4();
        let turn_ids: HashMap<&str, Uuid> = conversation
            .turns
            .iter()
            .map(|t| (t.turn_id.as_str(), Uuid::new_v4()))
            .collect();
        let current = conversation
            .current_turn_id
            .as_deref()
            .and_then(|t| turn_ids.get(t))
            .or_else(|| {
                conversation
                    .turns
                    .last()
                    .and_then(|t| turn_ids.get(t.turn_id.as_str()))
            })
            .copied();
        let prompt = conversation
            .system_prompts
            .iter()
            .find(|p| p.revision == conversation.system_prompt_revision)
            .map_or("", |p| p.text.as_str());
        sqlx::query(
            "INSERT INTO conversations (id, owner, title, model, system_prompt, system_prompt_revision,
                                        current_turn_id, imported_from, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(TextUuid(id))
        .bind(&owner.0)
        .bind(&conversation.title)
        .bind(&conversation.model)
        .bind(prompt)
        .bind(i64::from(conversation.system_prompt_revision))
        .bind(current.map(TextUuid))
        .bind(source)
        .bind(conversation.created_at)
        .bind(conversation.updated_at)
        .execute(&mut *tx)
        .await?;
        for revision in &conversation.system_prompts {
            insert_revision(
                &mut super::Conn::from(&mut *tx),
                id,
                revision.revision,
                &revision.text,
                revision.created_at,
            )
            .await?;
        }
        let mut position: i64 = 0;
        for turn in &conversation.turns {
            let turn_id = turn_ids[turn.turn_id.as_str()];
            let parent = turn
                .parent_turn_id
                .as_deref()
                .and_then(|p| turn_ids.get(p))
                .copied();
            position += 1;
            sqlx::query(
                "INSERT INTO messages (id, conversation_id, turn_id, role, content, status, position,
                                       parent_turn_id, imported, created_at, updated_at)
                 VALUES ($1, $2, $3, 'user', $4, 'complete', $5, $6, TRUE, $7, $8)",
            )
            .bind(TextUuid(Uuid::new_v4()))
            .bind(TextUuid(id))
            .bind(TextUuid(turn_id))
            .bind(&turn.question.text)
            .bind(position)
            .bind(parent.map(TextUuid))
            .bind(turn.question.created_at)
            .bind(turn.question.created_at)
            .execute(&mut *tx)
            .await?;
            position += 1;
            let reply = &turn.reply;
            // A reply that was being written when it was exported is as one the server lost.
            let status = match reply.status {
                MessageStatus::Streaming => MessageStatus::Interrupted,
                status => status,
            };
            let usage = reply.usage;
            sqlx::query(
                "INSERT INTO messages (id, conversation_id, turn_id, role, content, thinking, status,
                                       error, model, input_tokens, cached_input_tokens,
                                       cache_write_tokens, output_tokens, reasoning_tokens,
                                       usage_estimated, cost_usd, run, position,
                                       system_prompt_revision, cut_at_limit, imported, created_at,
                                       updated_at)
                 VALUES ($1, $2, $3, 'assistant', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, TRUE, $20, $21)",
            )
            .bind(TextUuid(Uuid::new_v4()))
            .bind(TextUuid(id))
            .bind(TextUuid(turn_id))
            .bind(&reply.text)
            .bind(&reply.thinking)
            .bind(status)
            .bind(&reply.error)
            .bind(&reply.model)
            .bind(usage.map(|u| i64::from(u.input_tokens)))
            .bind(usage.map(|u| i64::from(u.cached_input_tokens)))
            .bind(usage.map(|u| i64::from(u.cache_write_tokens)))
            .bind(usage.map(|u| i64::from(u.output_tokens)))
            .bind(usage.map(|u| i64::from(u.reasoning_tokens)))
            .bind(reply.usage_estimated)
            .bind(reply.cost_usd)
            .bind(i64::from(reply.run.max(1)))
            .bind(position)
            .bind(reply.system_prompt_revision.map(i64::from))
            .bind(reply.cut_at_limit)
            .bind(reply.created_at)
            .bind(reply.updated_at)
            .execute(&mut *tx)
            .await?;
            if let Some(parent) = parent {
                totals::record_prior(&mut super::Conn::from(&mut *tx), turn_id, parent).await?;
            }
        }
        let now = super::now_ms();
        let mut conn = Conn::from(&mut *tx);
        for file in files.iter_mut() {
            store_blob_in(&mut conn, owner, &file.blob, &mut file.bytes, now).await?;
        }
        for turn in &conversation.turns {
            let turn_id = turn_ids[turn.turn_id.as_str()];
            for (position, carried) in turn.question.files.iter().enumerate() {
                let Some(file) = files.iter().find(|f| f.named == carried.sha256) else {
                    // The caller checked every name; a file missing here stores nothing at all.
                    return Err(DbError::UnpreparedFile(carried.sha256.clone()));
                };
                let upload = Uuid::new_v4();
                insert_attachment_in(
                    &mut conn,
                    owner,
                    upload,
                    file.blob.sha256,
                    &carried.name,
                    file.kind,
                    now,
                )
                .await?;
                link_in(&mut conn, owner, turn_id, position, upload).await?;
            }
        }
        tx.commit().await?;
        Ok(Stored::New(id))
    })
}
