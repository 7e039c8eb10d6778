//! Storage. All SQL lives here (and in `db/`: accounts, usage), and every query is scoped to an [`Owner`], so per-user accounts
//! (and a Postgres backend) change this module and nothing above it.
//!
//! A message's owner is its conversation's: queries check it with a correlated `EXISTS` on the
//! conversation's primary key (an `IN (SELECT … WHERE owner = ?)` would list every conversation
//! of the owner, per statement).
//!
//! Writes are built for many turns at once: every transaction that writes takes SQLite's write
//! lock up front (`BEGIN IMMEDIATE`, so it waits its turn instead of failing to upgrade a read),
//! transactions are a few statements long, and the text of running replies is written by one
//! task in batches ([`save_checkpoints`]) rather than by each turn.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use self::branches::BRANCH_FROM_TURN;
use crate::error::ApiError;
use crate::model::{
    ConversationCursor, ConversationSummary, ConversationView, MessageStatus, MessageView, Outcome,
    PromptRevision, Role, Totals, Usage, CONVERSATIONS_PAGE,
};

pub mod accounts;
pub mod branches;
pub mod usage;

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
    #[error("{0}")]
    Backup(String),
    #[error("{0}")]
    FileModes(String),
}

/// A storage fault is the server's problem: logged here in full, opaque to the person.
impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        tracing::error!("{error}");
        ApiError::Internal
    }
}

/// Whose data a query may touch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner(pub String);

/// The database: a pool of readers and one writer. SQLite lets one connection write at a time;
/// here writers wait their turn in the pool, in order, instead of racing for the lock and
/// sleeping in SQLite's busy handler, and no write of ours ever sees SQLITE_BUSY from another.
#[derive(Clone, Debug)]
pub struct Db {
    reader: SqlitePool,
    writer: SqlitePool,
}

impl Db {
    /// Connections for reading (WAL: they never wait for the writer).
    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// The one connection that writes.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }
}

/// Opens (creating if needed) the database and applies pending migrations. A directory it
/// creates is its owner's alone (0700), and so are the files SQLite creates in it, whatever the
/// process's umask.
pub async fn connect(path: &Path) -> Result<Db, DbError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(|source| DbError::Directory {
                path: dir.display().to_string(),
                source,
            })?;
        }
    }
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // Writers queue on the lock rather than fail; every write transaction is short.
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        // Deleted and purged text is overwritten with zeros, not left in free pages.
        .pragma("secure_delete", "ON");
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    sqlx::migrate!("./migrations").run(&writer).await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options.read_only(true))
        .await?;
    Ok(Db { reader, writer })
}

impl Db {
    /// Closes every connection; the last one to close checkpoints the WAL into the database
    /// and removes it, so nothing written (purged text included) lingers in `-wal`.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// The database file and what SQLite keeps beside it.
fn database_files(path: &Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(name.into());
    }
    files
}

/// Refuses a database that other accounts on the machine can read or change: its files must be
/// the owner's alone (no group or other permission bits) and so must its directory (unless it
/// lives directly in the working directory). Missing files are fine: they are created private.
pub fn check_file_modes(path: &Path) -> Result<(), DbError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut loose = Vec::new();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let checked = dir
            .map(Path::to_path_buf)
            .into_iter()
            .chain(database_files(path));
        for file in checked {
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                let wanted = if meta.is_dir() { "700" } else { "600" };
                loose.push(format!(
                    "{} is mode {mode:o} (run: chmod {wanted} {})",
                    file.display(),
                    file.display()
                ));
            }
        }
        if !loose.is_empty() {
            return Err(DbError::FileModes(format!(
                "the database can be read by other accounts on this machine: {}. Set \
                 RILL_UNSAFE_FILE_MODES=yes to start anyway.",
                loose.join("; ")
            )));
        }
    }
    Ok(())
}

/// Whether the database answers (the readiness check).
pub async fn ping(db: &Db) -> Result<(), DbError> {
    sqlx::query("SELECT 1").execute(&db.reader).await?;
    Ok(())
}

/// A consistent copy of the database at `source` into the new file `destination`, while a
/// server may be using it: `VACUUM INTO` reads one snapshot (WAL: writers carry on) and writes a
/// compact, self-contained file with no `-wal` beside it.
pub async fn backup(source: &Path, destination: &Path) -> Result<(), DbError> {
    if !source.exists() {
        return Err(DbError::Backup(format!(
            "there is no database at {} (set RILL_DATABASE)",
            source.display()
        )));
    }
    let Some(target) = destination.to_str() else {
        return Err(DbError::Backup(format!(
            "{} is not a UTF-8 path",
            destination.display()
        )));
    };
    // Created here, empty and readable by its owner alone (it holds password hashes and session
    // ids); `create_new` also refuses to overwrite anything. VACUUM INTO fills an empty file.
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    if let Err(e) = file.open(destination) {
        return Err(DbError::Backup(match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!("{} already exists; name a new file", destination.display())
            }
            _ => format!("cannot create {}: {e}", destination.display()),
        }));
    }
    let options = SqliteConnectOptions::new()
        .filename(source)
        .read_only(true)
        .busy_timeout(Duration::from_secs(10));
    let copied = async {
        let mut connection = sqlx::ConnectOptions::connect(&options).await?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&mut connection)
            .await?;
        sqlx::Connection::close(connection).await
    }
    .await;
    if let Err(e) = copied {
        // No half-written copy left behind to be mistaken for a backup.
        let _ = std::fs::remove_file(destination);
        return Err(e.into());
    }
    Ok(())
}

/// A transaction holding the write lock from its first statement.
async fn begin_write(db: &Db) -> Result<Transaction<'static, Sqlite>, DbError> {
    Ok(db.writer.begin_with("BEGIN IMMEDIATE").await?)
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Replies left `streaming` by a crash or kill: keep their text, mark them interrupted.
pub async fn interrupt_streaming(db: &Db) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE messages SET status = 'interrupted', error = ?, updated_at = ?
         WHERE status = 'streaming'",
    )
    .bind(INTERRUPTED_BY_RESTART)
    .bind(now_ms())
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected())
}

/// Said of a reply the server stopped during (a crash, a kill) without storing how it ended.
pub const INTERRUPTED_BY_RESTART: &str = "the server stopped during this reply";

/// A page of the owner's conversations, most recently changed first: the first
/// [`CONVERSATIONS_PAGE`], or those after `after`.
pub async fn list_conversations(
    db: &Db,
    owner: &Owner,
    after: Option<ConversationCursor>,
) -> Result<Vec<ConversationSummary>, DbError> {
    let (updated_at, id) = after.map_or((i64::MAX, String::new()), |c| {
        (c.updated_at, c.id.to_string())
    });
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT id, title, updated_at FROM conversations
         WHERE owner = ?1 AND deleted_at IS NULL
           AND (updated_at < ?2 OR (updated_at = ?2 AND id < ?3) OR ?3 = '')
         ORDER BY updated_at DESC, id DESC LIMIT ?4",
    )
    .bind(&owner.0)
    .bind(updated_at)
    .bind(id)
    .bind(i64::try_from(CONVERSATIONS_PAGE).unwrap_or(i64::MAX))
    .fetch_all(db.reader())
    .await?;
    rows.into_iter()
        .map(|(id, title, updated_at)| {
            Ok(ConversationSummary {
                id: uuid(&id)?,
                title,
                updated_at,
            })
        })
        .collect()
}

#[derive(sqlx::FromRow)]
struct ConversationRow {
    title: String,
    model: String,
    system_prompt: String,
    system_prompt_revision: i64,
    /// The last turn of the branch on screen.
    current_turn_id: Option<String>,
}

impl ConversationRow {
    fn revision(&self) -> u32 {
        u32::try_from(self.system_prompt_revision).unwrap_or(0)
    }
}

async fn conversation_row(
    executor: impl sqlx::SqliteExecutor<'_>,
    owner: &Owner,
    id: Uuid,
) -> Result<Option<ConversationRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT title, model, system_prompt, system_prompt_revision, current_turn_id FROM conversations
         WHERE id = ? AND owner = ? AND deleted_at IS NULL",
    )
    .bind(id.to_string())
    .bind(&owner.0)
    .fetch_optional(executor)
    .await?)
}

/// Whether the conversation exists for this owner.
pub async fn conversation_exists(db: &Db, owner: &Owner, id: Uuid) -> Result<bool, DbError> {
    Ok(conversation_row(db.reader(), owner, id).await?.is_some())
}

/// Messages a conversation is opened with at most (the newest; older ones on request).
pub const WINDOW_MESSAGES: i64 = 40;
/// Bytes of text, thinking and HTML a window holds at most, unless one turn alone is more.
pub const WINDOW_BYTES: usize = 1 << 20;

/// The conversation as the page shows it: its branch on screen, the newest
/// [`WINDOW_MESSAGES`] messages up to [`WINDOW_BYTES`] (at least one turn) before the message at
/// `before` (a position; `None`: from the end), and the system prompt revisions those replies
/// were written with.
pub async fn get_conversation(
    db: &Db,
    owner: &Owner,
    id: Uuid,
    before: Option<u32>,
) -> Result<Option<ConversationView>, DbError> {
    let Some(row) = conversation_row(db.reader(), owner, id).await? else {
        return Ok(None);
    };
    // The branch on screen, newest first: the current turn and its ancestors.
    let mut rows: Vec<MessageRow> = sqlx::query_as(&format!(
        "{BRANCH_FROM_TURN}
         SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE conversation_id = ? AND turn_id IN branch AND position < ?
         ORDER BY position DESC LIMIT ?"
    ))
    .bind(&row.current_turn_id)
    .bind(id.to_string())
    .bind(before.map_or(i64::MAX, i64::from))
    .bind(WINDOW_MESSAGES + 1)
    .fetch_all(db.reader())
    .await?;
    let mut older = rows.len() > usize::try_from(WINDOW_MESSAGES).unwrap_or(usize::MAX);
    let mut bytes = 0usize;
    let mut kept = 0;
    for (i, message) in rows.iter().enumerate() {
        if i >= usize::try_from(WINDOW_MESSAGES).unwrap_or(usize::MAX) {
            break;
        }
        // Whole turns only: the window ends at a question.
        let at_question = message.role == "user";
        bytes = bytes.saturating_add(message.size());
        if at_question {
            kept = i + 1;
            if bytes >= WINDOW_BYTES {
                break;
            }
        }
    }
    if kept < rows.len() {
        older = true;
        rows.truncate(kept);
    }
    rows.reverse();
    let older_before = older
        .then(|| rows.first().map(|m| u32::try_from(m.position).unwrap_or(0)))
        .flatten();
    let older_totals = match older_before {
        Some(position) => branch_totals(db, &row, id, position).await?,
        None => Totals::default(),
    };
    let alternatives = branches::alternatives(db.reader(), id).await?;
    // The revisions the window's replies were written with, and the one in effect.
    let used: std::collections::BTreeSet<i64> = rows
        .iter()
        .filter_map(|m| m.system_prompt_revision)
        .chain([i64::from(row.revision())])
        .collect();
    let query = format!(
        "SELECT revision, text FROM system_prompts
          WHERE conversation_id = ? AND revision IN ({}) ORDER BY revision",
        vec!["?"; used.len()].join(", ")
    );
    let mut revisions = sqlx::query_as::<_, (i64, String)>(&query).bind(id.to_string());
    for revision in &used {
        revisions = revisions.bind(revision);
    }
    let revisions = revisions.fetch_all(db.reader()).await?;
    let messages = rows;
    Ok(Some(ConversationView {
        id,
        older_before,
        older_totals,
        system_prompt_revision: row.revision(),
        system_prompts: revisions
            .into_iter()
            .map(|(revision, text)| PromptRevision {
                revision: u32::try_from(revision).unwrap_or(0),
                text,
            })
            .collect(),
        title: row.title,
        model: row.model,
        system_prompt: row.system_prompt,
        messages: messages
            .into_iter()
            .map(|row| {
                let mut message = MessageView::try_from(row)?;
                if message.role == Role::User {
                    message.alternatives = alternatives
                        .iter()
                        .find(|(turn, _)| *turn == message.turn_id)
                        .map(|(_, all)| all.clone())
                        .unwrap_or_default();
                }
                Ok(message)
            })
            .collect::<Result<_, DbError>>()?,
    }))
}

/// The figures of the branch's messages before `position`.
async fn branch_totals(
    db: &Db,
    conversation: &ConversationRow,
    id: Uuid,
    position: u32,
) -> Result<Totals, DbError> {
    let (input, output, cost, costed, estimated): (i64, i64, f64, i64, i64) =
        sqlx::query_as(&format!(
            "{BRANCH_FROM_TURN}
             SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),
                    TOTAL(cost_usd), COUNT(cost_usd), COALESCE(MAX(usage_estimated), 0)
               FROM messages
              WHERE conversation_id = ? AND turn_id IN branch AND position < ?"
        ))
        .bind(&conversation.current_turn_id)
        .bind(id.to_string())
        .bind(i64::from(position))
        .fetch_one(db.reader())
        .await?;
    Ok(Totals {
        input_tokens: u64::try_from(input).unwrap_or(0),
        output_tokens: u64::try_from(output).unwrap_or(0),
        cost_usd: (costed > 0).then_some(cost),
        estimated: estimated != 0,
    })
}

/// A `messages` row's owner check (see the module note); the owner is bound at its bare `?`, so
/// the query's other parameters must be bare too (sqlx numbers bare ones apart from `?N`).
const OWNED: &str =
    "EXISTS (SELECT 1 FROM conversations c WHERE c.id = messages.conversation_id AND c.owner = ?)";
/// [`OWNED`], and the conversation not deleted: what a person may see.
const OWNED_AND_LIVE: &str = "EXISTS (SELECT 1 FROM conversations c
    WHERE c.id = messages.conversation_id AND c.owner = ? AND c.deleted_at IS NULL)";

/// The columns of a [`MessageRow`], `$thinking` and `$html` standing for the reply's thinking
/// and its stored rendering.
macro_rules! message_columns {
    ($thinking:literal, $html:literal) => {
        concat!(
            "id, turn_id, conversation_id, role, content, ",
            $thinking,
            ", ",
            $html,
            ", status, error, model,
            input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
            usage_estimated, cost_usd, run, left_out, system_prompt_revision, parent_turn_id,
            position, cut_at_limit"
        )
    };
}
const MESSAGE_COLUMNS: &str = message_columns!("thinking", "html, html_version");
/// For a prompt: thinking is never sent back to a model, so it is not even read, nor is HTML.
const PROMPT_COLUMNS: &str =
    message_columns!("'' AS thinking", "NULL AS html, NULL AS html_version");

/// A `messages` row as stored; [`MessageView`] is what it means.
#[derive(sqlx::FromRow)]
struct MessageRow {
    id: String,
    turn_id: String,
    conversation_id: String,
    role: String,
    content: String,
    thinking: String,
    html: Option<String>,
    html_version: Option<i64>,
    status: String,
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
    left_out: i64,
    system_prompt_revision: Option<i64>,
    parent_turn_id: Option<String>,
    position: i64,
    cut_at_limit: bool,
}

impl MessageRow {
    /// Bytes the page receives for this message: its text, thinking and rendering.
    fn size(&self) -> usize {
        self.content
            .len()
            .saturating_add(self.thinking.len())
            .saturating_add(self.html.as_ref().map_or(0, String::len))
    }
}

impl TryFrom<MessageRow> for MessageView {
    type Error = DbError;

    fn try_from(r: MessageRow) -> Result<Self, DbError> {
        let role = match r.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(DbError::Corrupt(format!("role {other}"))),
        };
        let status = MessageStatus::parse(&r.status)
            .ok_or_else(|| DbError::Corrupt(format!("status {}", r.status)))?;
        let count = |n: Option<i64>| n.map(|n| u32::try_from(n).unwrap_or(0));
        let usage = count(r.input_tokens).map(|input_tokens| Usage {
            input_tokens,
            cached_input_tokens: count(r.cached_input_tokens).unwrap_or(0),
            cache_write_tokens: count(r.cache_write_tokens).unwrap_or(0),
            output_tokens: count(r.output_tokens).unwrap_or(0),
            reasoning_tokens: count(r.reasoning_tokens).unwrap_or(0),
        });
        Ok(MessageView {
            id: uuid(&r.id)?,
            turn_id: uuid(&r.turn_id)?,
            role,
            content: r.content,
            thinking: r.thinking,
            // A rendering by another renderer than this one is as good as none.
            html: r
                .html
                .filter(|_| r.html_version == Some(crate::server::render::RENDERER_VERSION))
                .unwrap_or_default(),
            model: r.model,
            run: u32::try_from(r.run).unwrap_or(1),
            system_prompt_revision: r.system_prompt_revision.and_then(|n| u32::try_from(n).ok()),
            parent_turn_id: r.parent_turn_id.as_deref().map(uuid).transpose()?,
            alternatives: Vec::new(),
            outcome: Outcome {
                status,
                error: r.error,
                usage,
                usage_estimated: r.usage_estimated,
                cost_usd: r.cost_usd,
                left_out: u32::try_from(r.left_out).unwrap_or(0),
                error_detail: None,
                cut_at_limit: r.cut_at_limit,
            },
        })
    }
}

fn uuid(text: &str) -> Result<Uuid, DbError> {
    Uuid::parse_str(text).map_err(|_| DbError::Corrupt(format!("id {text}")))
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
    /// For a new conversation: its system prompt (from the page, else the server's default).
    pub system_prompt: &'a str,
    /// An edit or a regeneration: the turn this one is an alternative to (it takes that turn's
    /// place on the branch). `None`: the turn follows the branch on screen.
    pub alternative_to: Option<Uuid>,
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

/// Stores the user message and a placeholder reply in one transaction. Idempotent on `turn_id`.
pub async fn begin_turn(db: &Db, owner: &Owner, turn: NewTurn<'_>) -> Result<BeginTurn, DbError> {
    let now = now_ms();
    let mut tx = begin_write(db).await?;
    // Turn ids are unique across owners (the browser mints random ones); one seen under another
    // owner is answered as unknown by the owner-scoped read that follows.
    let seen = sqlx::query("SELECT 1 FROM messages WHERE turn_id = ?")
        .bind(turn.turn_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    if seen.is_some() {
        return Ok(BeginTurn::Repeated);
    }
    if let Some(quota) = turn.quota_bytes {
        let used = stored_bytes(&mut *tx, owner).await?;
        // The question, and for a new conversation its title and system prompt.
        let adding = turn.text.len() + turn.text.len().min(64) + turn.system_prompt.len();
        if used.saturating_add(u64::try_from(adding).unwrap_or(u64::MAX)) > quota {
            return Ok(BeginTurn::OverQuota { used, quota });
        }
    }
    let (conversation_id, model, system_prompt, revision, parent) = match turn.conversation_id {
        Some(id) => {
            let Some(row) = conversation_row(&mut *tx, owner, id).await? else {
                return Ok(BeginTurn::NoSuchConversation);
            };
            if streaming_reply(&mut tx, id).await? {
                return Ok(BeginTurn::Busy);
            }
            let revision = row.revision();
            let parent = match turn.alternative_to {
                None => row.current_turn_id.as_deref().map(uuid).transpose()?,
                Some(sibling) => {
                    let found: Option<(Option<String>,)> = sqlx::query_as(
                        "SELECT parent_turn_id FROM messages
                         WHERE turn_id = ? AND role = 'user' AND conversation_id = ?",
                    )
                    .bind(sibling.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some((parent,)) = found else {
                        return Ok(BeginTurn::NoSuchTurn);
                    };
                    parent.as_deref().map(uuid).transpose()?
                }
            };
            let model = turn.model.map_or(row.model, str::to_owned);
            sqlx::query(
                "UPDATE conversations SET updated_at = ?, model = ?, current_turn_id = ? WHERE id = ?",
            )
            .bind(now)
            .bind(&model)
            .bind(turn.turn_id.to_string())
            .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            (id, model, row.system_prompt, revision, parent)
        }
        None => {
            let id = Uuid::new_v4();
            let model = turn.model.unwrap_or(turn.default_model).to_owned();
            let revision = u32::from(!turn.system_prompt.is_empty());
            sqlx::query(
                "INSERT INTO conversations (id, owner, title, model, system_prompt,
                                            system_prompt_revision, current_turn_id, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id.to_string())
            .bind(&owner.0)
            .bind(title_from(turn.text))
            .bind(&model)
            .bind(turn.system_prompt)
            .bind(revision)
            .bind(turn.turn_id.to_string())
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if revision > 0 {
                insert_revision(&mut tx, id, revision, turn.system_prompt, now).await?;
            }
            (id, model, turn.system_prompt.to_owned(), revision, None)
        }
    };
    let (last_position,): (i64,) =
        sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM messages WHERE conversation_id = ?")
            .bind(conversation_id.to_string())
            .fetch_one(&mut *tx)
            .await?;
    let user = MessageView {
        id: Uuid::new_v4(),
        turn_id: turn.turn_id,
        role: Role::User,
        content: turn.text.to_owned(),
        thinking: String::new(),
        html: String::new(),
        model: None,
        run: 1,
        system_prompt_revision: None,
        parent_turn_id: parent,
        alternatives: Vec::new(),
        outcome: Outcome::complete(),
    };
    let reply = MessageView {
        id: Uuid::new_v4(),
        turn_id: turn.turn_id,
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
    };
    for (message, position) in [(&user, last_position + 1), (&reply, last_position + 2)] {
        let inserted = sqlx::query(
            "INSERT INTO messages (id, conversation_id, turn_id, role, content, status, model, position,
                                   system_prompt_revision, parent_turn_id, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(message.id.to_string())
        .bind(conversation_id.to_string())
        .bind(turn.turn_id.to_string())
        .bind(match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        })
        .bind(&message.content)
        .bind(message.outcome.status.as_str())
        .bind(&message.model)
        .bind(position)
        .bind(message.system_prompt_revision)
        .bind(message.parent_turn_id.map(|p| p.to_string()))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
        if is_one_streaming_violation(&inserted) {
            return Ok(BeginTurn::Busy);
        }
        inserted?;
    }
    let mut user = user;
    if turn.alternative_to.is_some() {
        user.alternatives = branches::alternatives(&mut *tx, conversation_id)
            .await?
            .into_iter()
            .find(|(t, _)| *t == turn.turn_id)
            .map(|(_, all)| all)
            .unwrap_or_default();
    }
    tx.commit().await?;
    Ok(BeginTurn::Started(Box::new(TurnRecord {
        owner: owner.clone(),
        conversation_id,
        user,
        reply,
        system_prompt,
    })))
}

/// Bytes the owner stores now (kept by the `storage_used` triggers).
pub async fn stored_bytes(
    executor: impl sqlx::SqliteExecutor<'_>,
    owner: &Owner,
) -> Result<u64, DbError> {
    let bytes: Option<i64> = sqlx::query_scalar("SELECT bytes FROM storage_used WHERE owner = ?")
        .bind(&owner.0)
        .fetch_optional(executor)
        .await?;
    Ok(bytes.map_or(0, |b| u64::try_from(b).unwrap_or(0)))
}

/// True if the conversation has a reply streaming now.
async fn streaming_reply(
    tx: &mut Transaction<'static, Sqlite>,
    conversation_id: Uuid,
) -> Result<bool, DbError> {
    Ok(
        sqlx::query("SELECT 1 FROM messages WHERE conversation_id = ? AND status = 'streaming'")
            .bind(conversation_id.to_string())
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

/// The `one_streaming_reply_per_conversation` index refused a second streaming reply.
fn is_one_streaming_violation<T>(result: &Result<T, sqlx::Error>) -> bool {
    matches!(result, Err(sqlx::Error::Database(e))
        if e.message() == "UNIQUE constraint failed: messages.conversation_id")
}

pub enum BeginContinuation {
    /// The reply is `streaming` again; its run number went up by one.
    Started(Box<TurnRecord>),
    /// The reply was already continued past `from_run` (a repeated request): this is its run now.
    AlreadyContinued { run: u32 },
    /// No such turn for this owner.
    NoSuchTurn,
    /// The reply cannot be continued; the reason, in words.
    Refused(String),
    /// The conversation already has a reply streaming.
    Busy { conversation_id: Uuid },
}

/// Re-opens a stopped or interrupted reply, the last of its conversation, so that the model can
/// go on from its text; `from_run` is the run the asker saw, so that asking twice continues once.
/// The conversation's current model writes the continuation.
pub async fn begin_continuation(
    db: &Db,
    owner: &Owner,
    turn_id: Uuid,
    from_run: u32,
) -> Result<BeginContinuation, DbError> {
    let mut tx = begin_write(db).await?;
    let Some((user, reply, conversation_id)) = turn_in(&mut *tx, owner, turn_id).await? else {
        return Ok(BeginContinuation::NoSuchTurn);
    };
    if reply.run > from_run {
        return Ok(BeginContinuation::AlreadyContinued { run: reply.run });
    }
    if reply.run < from_run {
        return Ok(BeginContinuation::Refused(
            "this reply is not the one on the page; reload it".into(),
        ));
    }
    let Some(conversation) = conversation_row(&mut *tx, owner, conversation_id).await? else {
        return Ok(BeginContinuation::NoSuchTurn);
    };
    if reply.outcome.status == MessageStatus::Streaming
        || streaming_reply(&mut tx, conversation_id).await?
    {
        return Ok(BeginContinuation::Busy { conversation_id });
    }
    if !reply.outcome.can_continue() {
        return Ok(BeginContinuation::Refused(
            "only a reply that was stopped, interrupted or cut at its length limit can be \
             continued"
                .into(),
        ));
    }
    if conversation.current_turn_id.as_deref() != Some(turn_id.to_string().as_str()) {
        return Ok(BeginContinuation::Refused(
            "only the last reply of a conversation can be continued".into(),
        ));
    }
    let run = reply.run.saturating_add(1);
    let updated = sqlx::query(
        "UPDATE messages SET status = 'streaming', error = NULL, error_detail = NULL,
             cut_at_limit = 0, run = ?, model = ?,
             system_prompt_revision = ?, updated_at = ?
         WHERE id = ?",
    )
    .bind(run)
    .bind(&conversation.model)
    .bind(conversation.revision())
    .bind(now_ms())
    .bind(reply.id.to_string())
    .execute(&mut *tx)
    .await;
    if is_one_streaming_violation(&updated) {
        return Ok(BeginContinuation::Busy { conversation_id });
    }
    updated?;
    tx.commit().await?;
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

/// The conversation's messages before `reply_id`, oldest first, as candidates for the prompt
/// (the turn engine decides which are sent).
pub async fn history(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    reply_id: Uuid,
) -> Result<Vec<MessageView>, DbError> {
    // The reply's branch: its own question and the turns before it, not their siblings.
    let rows: Vec<MessageRow> = sqlx::query_as(&format!(
        "{BRANCH_FROM_TURN}
         SELECT {PROMPT_COLUMNS} FROM messages
         WHERE conversation_id = ? AND turn_id IN branch
           AND position < (SELECT position FROM messages WHERE id = ?)
           AND {OWNED}
         ORDER BY position"
    ))
    .bind(reply_turn(db, reply_id).await?.map(|t| t.to_string()))
    .bind(conversation_id.to_string())
    .bind(reply_id.to_string())
    .bind(&owner.0)
    .fetch_all(db.reader())
    .await?;
    rows.into_iter().map(MessageView::try_from).collect()
}

async fn reply_turn(db: &Db, reply_id: Uuid) -> Result<Option<Uuid>, DbError> {
    let found: Option<(String,)> = sqlx::query_as("SELECT turn_id FROM messages WHERE id = ?")
        .bind(reply_id.to_string())
        .fetch_optional(db.reader())
        .await?;
    found.map(|(t,)| uuid(&t)).transpose()
}

/// Addresses one run of a reply the turn engine is writing.
#[derive(Clone, Debug)]
pub struct ReplyRef {
    pub owner: Owner,
    pub message_id: Uuid,
    pub run: u32,
}

/// Text of a running reply, saved so that a crash loses only what came after it.
pub struct Checkpoint {
    pub reply: ReplyRef,
    pub text: ReplyText,
}

/// What a reply has written: its answer and, apart, its thinking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyText {
    pub content: String,
    pub thinking: String,
}

/// Saves the text of every running reply in one transaction. A reply that has meanwhile ended
/// (or moved on to a later run) is left alone.
pub async fn save_checkpoints(db: &Db, checkpoints: &[Checkpoint]) -> Result<(), DbError> {
    if checkpoints.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let update = format!(
        "UPDATE messages SET content = ?, thinking = ?, updated_at = ?
         WHERE id = ? AND status = 'streaming' AND run = ? AND {OWNED}"
    );
    let mut tx = begin_write(db).await?;
    for c in checkpoints {
        sqlx::query(&update)
            .bind(&c.text.content)
            .bind(&c.text.thinking)
            .bind(now)
            .bind(c.reply.message_id.to_string())
            .bind(c.reply.run)
            .bind(&c.reply.owner.0)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Stores how a reply ended, with its whole text, and settles this run's reservation to what
/// it cost (`charge`), in one transaction. Without a charge the reservation stays open, for
/// `budget::settle_open_runs` to bill at an estimate.
pub async fn finish_reply(
    db: &Db,
    reply: &ReplyRef,
    text: &ReplyText,
    html: &str,
    outcome: &Outcome,
    charge: Option<&usage::Charge>,
) -> Result<(), DbError> {
    let figures = outcome.usage;
    let field = |f: fn(&Usage) -> u32| figures.as_ref().map(|u| i64::from(f(u)));
    let mut tx = begin_write(db).await?;
    sqlx::query(&format!(
        "UPDATE messages SET content = ?, thinking = ?, html = ?, html_version = ?,
            status = ?, error = ?, error_detail = ?,
            input_tokens = ?, cached_input_tokens = ?, cache_write_tokens = ?, output_tokens = ?,
            reasoning_tokens = ?, usage_estimated = ?, cost_usd = ?, left_out = ?,
            cut_at_limit = ?, updated_at = ?
         WHERE id = ? AND run = ? AND {OWNED}"
    ))
    .bind(&text.content)
    .bind(&text.thinking)
    .bind(Some(html).filter(|h| !h.is_empty()))
    .bind(crate::server::render::RENDERER_VERSION)
    .bind(outcome.status.as_str())
    .bind(&outcome.error)
    .bind(&outcome.error_detail)
    .bind(field(|u| u.input_tokens))
    .bind(field(|u| u.cached_input_tokens))
    .bind(field(|u| u.cache_write_tokens))
    .bind(field(|u| u.output_tokens))
    .bind(field(|u| u.reasoning_tokens))
    .bind(outcome.usage_estimated)
    .bind(outcome.cost_usd)
    .bind(outcome.left_out)
    .bind(outcome.cut_at_limit)
    .bind(now_ms())
    .bind(reply.message_id.to_string())
    .bind(reply.run)
    .bind(&reply.owner.0)
    .execute(&mut *tx)
    .await?;
    if let Some(charge) = charge {
        usage::settle(&mut *tx, reply.message_id, reply.run, charge).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Keeps the rendering of a finished reply's run (made when it was first shown after the
/// renderer changed, or before renderings were kept).
pub async fn store_html(db: &Db, message_id: Uuid, run: u32, html: &str) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE messages SET html = ?, html_version = ?
         WHERE id = ? AND run = ? AND status <> 'streaming'",
    )
    .bind(html)
    .bind(crate::server::render::RENDERER_VERSION)
    .bind(message_id.to_string())
    .bind(run)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Marks a reply interrupted that the database holds as streaming but no turn in this process
/// is writing (its end could not be stored). Returns whether it was such a reply.
pub async fn interrupt_reply(db: &Db, reply: &ReplyRef) -> Result<bool, DbError> {
    let done = sqlx::query(&format!(
        "UPDATE messages SET status = 'interrupted', error = ?, updated_at = ?
         WHERE id = ? AND run = ? AND status = 'streaming'
           AND {OWNED}"
    ))
    .bind(INTERRUPTED_BY_RESTART)
    .bind(now_ms())
    .bind(reply.message_id.to_string())
    .bind(reply.run)
    .bind(&reply.owner.0)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The reply streaming in a conversation, if any.
pub async fn streaming_reply_of(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
) -> Result<Option<MessageView>, DbError> {
    let row: Option<MessageRow> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE conversation_id = ? AND status = 'streaming'
           AND {OWNED_AND_LIVE}"
    ))
    .bind(conversation_id.to_string())
    .bind(&owner.0)
    .fetch_optional(db.reader())
    .await?;
    row.map(MessageView::try_from).transpose()
}

/// A turn's question and reply, and its conversation.
async fn turn_in(
    executor: impl sqlx::SqliteExecutor<'_>,
    owner: &Owner,
    turn_id: Uuid,
) -> Result<Option<(MessageView, MessageView, Uuid)>, DbError> {
    let rows: Vec<MessageRow> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE turn_id = ?
           AND {OWNED_AND_LIVE}
         ORDER BY position"
    ))
    .bind(turn_id.to_string())
    .bind(&owner.0)
    .fetch_all(executor)
    .await?;
    Ok(pair_turns(rows)?.pop())
}

/// Rows of whole turns, oldest first → (question, reply, conversation) per turn. A question
/// without its reply (which `begin_turn` never writes) is skipped.
fn pair_turns(rows: Vec<MessageRow>) -> Result<Vec<(MessageView, MessageView, Uuid)>, DbError> {
    let mut turns = Vec::new();
    let mut question: Option<MessageView> = None;
    for row in rows {
        let conversation_id = uuid(&row.conversation_id)?;
        let message = MessageView::try_from(row)?;
        match message.role {
            Role::User => question = Some(message),
            Role::Assistant => {
                if let Some(user) = question.take().filter(|q| q.turn_id == message.turn_id) {
                    turns.push((user, message, conversation_id));
                }
            }
        }
    }
    Ok(turns)
}

/// A turn's question and reply as stored, with the conversation they belong to.
pub async fn turn(
    db: &Db,
    owner: &Owner,
    turn_id: Uuid,
) -> Result<Option<(MessageView, MessageView, Uuid)>, DbError> {
    turn_in(db.reader(), owner, turn_id).await
}

/// The conversation's turns from `from_turn` on (that turn included), or all of them, oldest
/// first: what a page that has seen up to `from_turn` may be missing. `None` if the conversation
/// does not exist for this owner.
pub async fn turns_from(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    from_turn: Option<Uuid>,
) -> Result<Option<Vec<(MessageView, MessageView)>>, DbError> {
    let Some(conversation) = conversation_row(db.reader(), owner, conversation_id).await? else {
        return Ok(None);
    };
    // The branch on screen only: turns on other branches belong to no page following this one.
    let rows: Vec<MessageRow> = sqlx::query_as(&format!(
        "{BRANCH_FROM_TURN}
         SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE conversation_id = ? AND turn_id IN branch ORDER BY position"
    ))
    .bind(&conversation.current_turn_id)
    .bind(conversation_id.to_string())
    .fetch_all(db.reader())
    .await?;
    let mut turns: Vec<(MessageView, MessageView)> = pair_turns(rows)?
        .into_iter()
        .map(|(user, reply, _)| (user, reply))
        .collect();
    if let Some(from) = from_turn {
        // A page whose last turn is no longer on the branch gets the branch's last turn, whose
        // parent tells it to load the branch afresh.
        let start = turns
            .iter()
            .position(|(user, _)| user.turn_id == from)
            .unwrap_or(turns.len().saturating_sub(1));
        turns.drain(..start);
    }
    Ok(Some(turns))
}

/// The stored detail of each failed reply in a conversation, for an admin's view.
pub async fn error_details(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
) -> Result<Vec<(Uuid, String)>, DbError> {
    let rows: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT id, error_detail FROM messages
         WHERE conversation_id = ? AND error_detail IS NOT NULL
           AND {OWNED_AND_LIVE}"
    ))
    .bind(conversation_id.to_string())
    .bind(&owner.0)
    .fetch_all(db.reader())
    .await?;
    rows.into_iter()
        .map(|(id, detail)| Ok((uuid(&id)?, detail)))
        .collect()
}

/// System prompt revisions kept beside those replies were written with: the newest few.
pub const UNUSED_PROMPT_REVISIONS_KEPT: u32 = 10;

/// Makes `system_prompt` the conversation's prompt from its next reply on, as a new revision
/// (the same text again changes nothing). Revisions no reply used are forgotten once
/// [`UNUSED_PROMPT_REVISIONS_KEPT`] newer ones exist. The revision now in effect; `None` if the
/// conversation does not exist for this owner.
pub async fn set_system_prompt(
    db: &Db,
    owner: &Owner,
    id: Uuid,
    system_prompt: &str,
) -> Result<Option<u32>, DbError> {
    let mut tx = begin_write(db).await?;
    let Some(row) = conversation_row(&mut *tx, owner, id).await? else {
        return Ok(None);
    };
    if row.system_prompt == system_prompt {
        return Ok(Some(row.revision()));
    }
    let revision = row.revision().saturating_add(1);
    let now = now_ms();
    insert_revision(&mut tx, id, revision, system_prompt, now).await?;
    // Revisions no reply was written with are kept only while they are among the latest few.
    sqlx::query(
        "DELETE FROM system_prompts
         WHERE conversation_id = ?1 AND revision <= ?2
           AND revision NOT IN (SELECT system_prompt_revision FROM messages
                                 WHERE conversation_id = ?1
                                   AND system_prompt_revision IS NOT NULL)",
    )
    .bind(id.to_string())
    .bind(i64::from(revision) - i64::from(UNUSED_PROMPT_REVISIONS_KEPT))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE conversations SET system_prompt = ?, system_prompt_revision = ?, updated_at = ?
         WHERE id = ?",
    )
    .bind(system_prompt)
    .bind(revision)
    .bind(now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(revision))
}

async fn insert_revision(
    tx: &mut Transaction<'static, Sqlite>,
    conversation_id: Uuid,
    revision: u32,
    text: &str,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO system_prompts (conversation_id, revision, text, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(conversation_id.to_string())
    .bind(revision)
    .bind(text)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Renames a live conversation; it keeps its place in the list. False if there is no such
/// conversation for this owner.
pub async fn rename_conversation(
    db: &Db,
    owner: &Owner,
    id: Uuid,
    title: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE conversations SET title = ? WHERE id = ? AND owner = ? AND deleted_at IS NULL",
    )
    .bind(title)
    .bind(id.to_string())
    .bind(&owner.0)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a conversation for its owner: from now on it is found nowhere, until
/// [`restore_conversation`] undoes it or [`purge_deleted`] empties it.
pub async fn delete_conversation(db: &Db, owner: &Owner, id: Uuid) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE conversations SET deleted_at = ? WHERE id = ? AND owner = ? AND deleted_at IS NULL",
    )
    .bind(now_ms())
    .bind(id.to_string())
    .bind(&owner.0)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Undoes a delete made at most `within` ago; false once that is too late (or never was).
pub async fn restore_conversation(
    db: &Db,
    owner: &Owner,
    id: Uuid,
    within: Duration,
) -> Result<bool, DbError> {
    let since = now_ms().saturating_sub(i64::try_from(within.as_millis()).unwrap_or(i64::MAX));
    let done = sqlx::query(
        "UPDATE conversations SET deleted_at = NULL
         WHERE id = ? AND owner = ? AND deleted_at >= ? AND purged_at IS NULL",
    )
    .bind(id.to_string())
    .bind(&owner.0)
    .bind(since)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Empties the text of conversations deleted before `before_ms` (every owner's): title, system
/// prompts, messages (thinking and renderings included) and error details. Tokens and costs stay, since
/// spending limits count them. How many conversations were purged.
pub async fn purge_deleted(db: &Db, before_ms: i64) -> Result<u64, DbError> {
    let mut tx = begin_write(db).await?;
    let doomed = "SELECT id FROM conversations
                  WHERE deleted_at IS NOT NULL AND deleted_at < ?1 AND purged_at IS NULL";
    sqlx::query(&format!(
        "UPDATE messages SET content = '', thinking = '', html = NULL, html_version = NULL,
             error = NULL, error_detail = NULL
         WHERE conversation_id IN ({doomed})"
    ))
    .bind(before_ms)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "DELETE FROM system_prompts WHERE conversation_id IN ({doomed})"
    ))
    .bind(before_ms)
    .execute(&mut *tx)
    .await?;
    let purged = sqlx::query(
        "UPDATE conversations SET title = '', system_prompt = '', purged_at = ?2
         WHERE deleted_at IS NOT NULL AND deleted_at < ?1 AND purged_at IS NULL",
    )
    .bind(before_ms)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(purged.rows_affected())
}

/// Returns false if the conversation does not exist for this owner.
pub async fn set_conversation_model(
    db: &Db,
    owner: &Owner,
    id: Uuid,
    model: &str,
) -> Result<bool, DbError> {
    set_metadata(db, owner, id, "model", model).await
}

/// Sets one metadata column of a live conversation; `column` is one of the callers' constants.
async fn set_metadata(
    db: &Db,
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
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}
