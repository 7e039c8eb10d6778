//! Attachments (see `migrations/…_attachments.sql`): blobs stored a chunk at a time, uploads
//! named by their owner, the links from a turn to the uploads it carries, and their deletion
//! once nothing uses them.

use std::collections::HashMap;

use tokio::io::{AsyncRead, AsyncReadExt};
use uuid::Uuid;

use super::ids::TextUuid;
use super::{now_ms, Conn, Db, DbError, Owner};
use crate::model::attachments::{AttachmentKind, AttachmentView};

/// Bytes in one `blob_chunks` row: what is held in memory while a blob is written or read.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// An upload about to be stored.
pub struct NewAttachment<'a> {
    pub id: Uuid,
    pub sha256: &'a str,
    pub size: u64,
    pub mime: &'a str,
    pub name: &'a str,
    pub kind: AttachmentKind,
    /// A PDF's text (`attachments/pdf.rs`) and whether it was cut; stored with its blob.
    pub pdf_text: Option<(&'a str, bool)>,
}

/// An upload as stored.
#[derive(Clone, Debug)]
pub struct StoredAttachment {
    pub view: AttachmentView,
    pub sha256: String,
}

type AttachmentRow = (
    TextUuid,
    String,
    String,
    i64,
    String,
    String,
    Option<i64>,
    Option<bool>,
);

/// An [`AttachmentRow`] after the turn that carries it.
type TurnAttachmentRow = (
    TextUuid,
    TextUuid,
    String,
    String,
    i64,
    String,
    String,
    Option<i64>,
    Option<bool>,
);

/// Read from `attachments a` joined with `blobs b` and [`PDF_TEXT_JOIN`].
const ATTACHMENT_COLUMNS: &str =
    "a.id, a.name, a.kind, b.size, b.mime, a.sha256, CAST(length(p.text) AS BIGINT), p.cut";
const PDF_TEXT_JOIN: &str = "LEFT JOIN pdf_texts p ON p.owner = b.owner AND p.sha256 = b.sha256";

fn stored(row: AttachmentRow) -> StoredAttachment {
    let (TextUuid(id), name, kind, size, mime, sha256, text_length, cut) = row;
    StoredAttachment {
        view: AttachmentView {
            id,
            name,
            size: u64::try_from(size).unwrap_or(0),
            mime,
            kind: AttachmentKind::parse(&kind).unwrap_or(AttachmentKind::File),
            note: pdf_note(text_length.map(|length| (length, cut == Some(true)))),
        },
        sha256,
    }
}

/// What the person is told of a PDF's text: nothing when it is all there.
fn pdf_note(text: Option<(i64, bool)>) -> Option<String> {
    match text? {
        (0, _) => Some(
            "no text in this PDF (a scan$1): the model is told it could not read the pages".into(),
        ),
        (_, true) => Some(format!(
            "a long PDF: the model reads its first {} of text",
            crate::format::byte_size(crate::model::attachments::MAX_PDF_TEXT_BYTES)
        )),
        (_, false) => None,
    }
}

/// Bytes the owner uploaded since `since_ms` (every upload counts, stored anew or not).
pub async fn uploaded_since(db: &Db, owner: &Owner, since_ms: i64) -> Result<u64, DbError> {
    let (bytes,): (i64,) = on_reader!(db, |pool| sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM attachments a
           JOIN blobs b ON b.owner = a.owner AND b.sha256 = a.sha256
          WHERE a.owner = $1 AND a.created_at >= $2",
    )
    .bind(&owner.0)
    .bind(since_ms)
    .fetch_one(pool)
    .await)?;
    Ok(u64::try_from(bytes).unwrap_or(0))
}

/// Stores an upload whose bytes `file` reads: the blob once per owner and content, a chunk at a
/// time, and the upload's row, in one transaction.
pub async fn store_attachment(
    db: &Db,
    owner: &Owner,
    new: &NewAttachment<'_>,
    file: &mut (impl AsyncRead + Unpin),
) -> Result<StoredAttachment, DbError> {
    let now = now_ms();
    let blob = NewBlob {
        sha256: new.sha256,
        size: new.size,
        mime: new.mime,
        pdf_text: new.pdf_text,
    };
    in_transaction!(db, |tx| {
        let mut conn = Conn::from(&mut *tx);
        store_blob_in(&mut conn, owner, &blob, file, now).await?;
        insert_attachment_in(
            &mut conn, owner, new.id, new.sha256, new.name, new.kind, now,
        )
        .await?;
        tx.commit().await?;
        Ok(StoredAttachment {
            view: AttachmentView {
                id: new.id,
                name: new.name.to_owned(),
                size: new.size,
                mime: new.mime.to_owned(),
                kind: new.kind,
                note: pdf_note(
                    new.pdf_text
                        .map(|(text, cut)| (i64::try_from(text.len()).unwrap_or(i64::MAX), cut)),
                ),
            },
            sha256: new.sha256.to_owned(),
        })
    })
}

/// A blob about to be stored (an upload's, or an imported file's).
pub struct NewBlob<'a> {
    pub sha256: &'a str,
    pub size: u64,
    pub mime: &'a str,
    /// A PDF's text and whether it was cut.
    pub pdf_text: Option<(&'a str, bool)>,
}

/// In a transaction: the owner's blob, its chunks read from `file`, unless the owner holds the
/// same bytes already (then `file` is not read).
pub(super) async fn store_blob_in(
    conn: &mut Conn<'_>,
    owner: &Owner,
    blob: &NewBlob<'_>,
    file: &mut (impl AsyncRead + Unpin + ?Sized),
    now: i64,
) -> Result<(), DbError> {
    let size = i64::try_from(blob.size).unwrap_or(i64::MAX);
    let added = on_conn!(conn, |c| sqlx::query(
        "INSERT INTO blobs (owner, sha256, size, mime, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (owner, sha256) DO NOTHING",
    )
    .bind(&owner.0)
    .bind(blob.sha256)
    .bind(size)
    .bind(blob.mime)
    .bind(now)
    .execute(c)
    .await
    .map(|done| done.rows_affected()))?;
    if added == 1 {
        write_chunks(conn, owner, blob.sha256, file).await?;
    }
    if let Some((text, cut)) = blob.pdf_text {
        on_conn!(conn, |c| sqlx::query(
            "INSERT INTO pdf_texts (owner, sha256, text, cut) VALUES ($1, $2, $3, $4)
             ON CONFLICT (owner, sha256) DO NOTHING",
        )
        .bind(&owner.0)
        .bind(blob.sha256)
        .bind(text)
        .bind(cut)
        .execute(c)
        .await
        .map(|_| ()))?;
    }
    Ok(())
}

/// In a transaction: an upload's row, naming the owner's blob `sha256`.
pub(super) async fn insert_attachment_in(
    conn: &mut Conn<'_>,
    owner: &Owner,
    id: Uuid,
    sha256: &str,
    name: &str,
    kind: AttachmentKind,
    now: i64,
) -> Result<(), DbError> {
    on_conn!(conn, |c| sqlx::query(
        "INSERT INTO attachments (id, owner, sha256, name, kind, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(TextUuid(id))
    .bind(&owner.0)
    .bind(sha256)
    .bind(name)
    .bind(kind.as_str())
    .bind(now)
    .execute(c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// In a transaction: upload `attachment_id` carried by the question of `turn_id` at `position`.
pub(super) async fn link_in(
    conn: &mut Conn<'_>,
    owner: &Owner,
    turn_id: Uuid,
    position: usize,
    attachment_id: Uuid,
) -> Result<(), DbError> {
    on_conn!(conn, |c| sqlx::query(
        "INSERT INTO turn_attachments (owner, turn_id, position, attachment_id)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&owner.0)
    .bind(TextUuid(turn_id))
    .bind(i64::try_from(position).unwrap_or(i64::MAX))
    .bind(TextUuid(attachment_id))
    .execute(c)
    .await
    .map(|_| ()))?;
    Ok(())
}

async fn write_chunks(
    conn: &mut Conn<'_>,
    owner: &Owner,
    sha256: &str,
    file: &mut (impl AsyncRead + Unpin + ?Sized),
) -> Result<(), DbError> {
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut seq: i64 = 0;
    loop {
        // Fill the chunk (a read may return less than asked).
        let mut filled = 0;
        while filled < CHUNK_BYTES {
            let Some(rest) = chunk.get_mut(filled..) else {
                break;
            };
            let n = file.read(rest).await.map_err(DbError::Spool)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(());
        }
        let data = chunk.get(..filled).unwrap_or_default();
        on_conn!(conn, |c| sqlx::query(
            "INSERT INTO blob_chunks (owner, sha256, seq, data) VALUES ($1, $2, $3, $4)"
        )
        .bind(&owner.0)
        .bind(sha256)
        .bind(seq)
        .bind(data)
        .execute(c)
        .await
        .map(|_| ()))?;
        seq += 1;
        if filled < CHUNK_BYTES {
            return Ok(());
        }
    }
}

/// The owner's upload `id`; `None` for anyone else's, as for one that does not exist.
pub async fn find_attachment(
    db: &Db,
    owner: &Owner,
    id: Uuid,
) -> Result<Option<StoredAttachment>, DbError> {
    let row: Option<AttachmentRow> = on_reader!(db, |pool| sqlx::query_as(&format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM attachments a
           JOIN blobs b ON b.owner = a.owner AND b.sha256 = a.sha256 {PDF_TEXT_JOIN}
          WHERE a.id = $1 AND a.owner = $2"
    ))
    .bind(TextUuid(id))
    .bind(&owner.0)
    .fetch_optional(pool)
    .await)?;
    Ok(row.map(stored))
}

/// The owner's upload `id` if one of `turns` carries it (a shared snapshot's questions); `None`
/// otherwise, as for an id that does not exist.
pub async fn carried_by(
    db: &Db,
    owner: &Owner,
    id: Uuid,
    turns: &[Uuid],
) -> Result<Option<StoredAttachment>, DbError> {
    let carriers: Vec<(TextUuid,)> = on_reader!(db, |pool| {
        sqlx::query_as(
            "SELECT turn_id FROM turn_attachments WHERE owner = $1 AND attachment_id = $2",
        )
        .bind(&owner.0)
        .bind(TextUuid(id))
        .fetch_all(pool)
        .await?
    });
    if !carriers.iter().any(|(turn,)| turns.contains(&turn.0)) {
        return Ok(None);
    }
    find_attachment(db, owner, id).await
}

/// Chunk `seq` of the owner's blob (`None` past its end).
pub async fn blob_chunk(
    db: &Db,
    owner: &Owner,
    sha256: &str,
    seq: i64,
) -> Result<Option<Vec<u8>>, DbError> {
    let row: Option<(Vec<u8>,)> = on_reader!(db, |pool| sqlx::query_as(
        "SELECT data FROM blob_chunks WHERE owner = $1 AND sha256 = $2 AND seq = $3"
    )
    .bind(&owner.0)
    .bind(sha256)
    .bind(seq)
    .fetch_optional(pool)
    .await)?;
    Ok(row.map(|(data,)| data))
}

/// The owner's blob whole (for a prompt: text and images the model is sent whole anyway).
pub async fn blob_bytes(db: &Db, owner: &Owner, sha256: &str) -> Result<Vec<u8>, DbError> {
    let chunks: Vec<(Vec<u8>,)> = on_reader!(db, |pool| sqlx::query_as(
        "SELECT data FROM blob_chunks WHERE owner = $1 AND sha256 = $2 ORDER BY seq"
    )
    .bind(&owner.0)
    .bind(sha256)
    .fetch_all(pool)
    .await)?;
    Ok(chunks.into_iter().flat_map(|(data,)| data).collect())
}

/// The text of the owner's PDF blob and whether it was cut (`None`: none was read).
pub async fn pdf_text(
    db: &Db,
    owner: &Owner,
    sha256: &str,
) -> Result<Option<(String, bool)>, DbError> {
    let row: Option<(String, bool)> = on_reader!(db, |pool| sqlx::query_as(
        "SELECT text, cut FROM pdf_texts WHERE owner = $1 AND sha256 = $2"
    )
    .bind(&owner.0)
    .bind(sha256)
    .fetch_optional(pool)
    .await)?;
    Ok(row)
}

/// Why uploads could not go with a turn.
#[derive(Debug, PartialEq)]
pub enum CannotLink {
    /// One of them is not the owner's (or does not exist).
    Unknown,
    /// Together they are `total` bytes, more than the message may carry.
    TooLarge { total: u64 },
}

/// Links the owner's uploads `ids` to the question of `turn_id`, in order, unless that turn was
/// sent before (a repeated send links nothing new).
pub async fn link_to_turn(
    db: &Db,
    owner: &Owner,
    turn_id: Uuid,
    ids: &[Uuid],
    max_total: u64,
) -> Result<Result<(), CannotLink>, DbError> {
    in_transaction!(db, |tx| {
        let sent = sqlx::query(
            "SELECT 1 FROM messages WHERE turn_id = $1
             UNION ALL SELECT 1 FROM turn_attachments WHERE owner = $2 AND turn_id = $1 LIMIT 1",
        )
        .bind(TextUuid(turn_id))
        .bind(&owner.0)
        .fetch_optional(&mut *tx)
        .await?;
        if sent.is_some() {
            return Ok(Ok(()));
        }
        let mut total: u64 = 0;
        for (position, id) in ids.iter().enumerate() {
            let size: Option<(i64,)> = sqlx::query_as(
                "SELECT b.size FROM attachments a
                   JOIN blobs b ON b.owner = a.owner AND b.sha256 = a.sha256
                  WHERE a.id = $1 AND a.owner = $2",
            )
            .bind(TextUuid(*id))
            .bind(&owner.0)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((size,)) = size else {
                return Ok(Err(CannotLink::Unknown));
            };
            total = total.saturating_add(u64::try_from(size).unwrap_or(0));
            link_in(&mut Conn::from(&mut *tx), owner, turn_id, position, *id).await?;
        }
        if total > max_total {
            // Dropping the transaction rolls the links back.
            return Ok(Err(CannotLink::TooLarge { total }));
        }
        tx.commit().await?;
        Ok(Ok(()))
    })
}

/// Turns one read asks about, a parameter each: SQLite's binding costs the square of a
/// statement's parameters (see `replies.rs`), and a page or a prompt's first page has fewer.
const TURNS_PER_READ: usize = 64;

/// The uploads each of `turn_ids` carries (the owner's links only), each turn's in their order;
/// a turn that carries none is not in the map. One read for all of them (a read is a round trip
/// to the database, and a page or a prompt has tens of questions).
pub async fn turns_attachments(
    db: &Db,
    owner: &Owner,
    turn_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<StoredAttachment>>, DbError> {
    let mut carried: HashMap<Uuid, Vec<StoredAttachment>> = HashMap::new();
    for chunk in turn_ids.chunks(TURNS_PER_READ) {
        let listed: Vec<String> = (2..chunk.len() + 2).map(|at| format!("${at}")).collect();
        let sql = format!(
            "SELECT t.turn_id, {ATTACHMENT_COLUMNS} FROM turn_attachments t
               JOIN attachments a ON a.id = t.attachment_id AND a.owner = t.owner
               JOIN blobs b ON b.owner = a.owner AND b.sha256 = a.sha256 {PDF_TEXT_JOIN}
              WHERE t.owner = $1 AND t.turn_id IN ({})
              ORDER BY t.turn_id, t.position",
            listed.join(", ")
        );
        let rows: Vec<TurnAttachmentRow> = on_reader!(db, |pool| {
            // The text changes with the count: only the one-turn read (a new conversation's
            // prompt) is kept among the prepared statements.
            let mut query = sqlx::query_as(&sql)
                .persistent(chunk.len() == 1)
                .bind(&owner.0);
            for turn_id in chunk {
                query = query.bind(TextUuid(*turn_id));
            }
            query.fetch_all(pool).await
        })?;
        for (TextUuid(turn_id), id, name, kind, size, mime, sha256, text_length, cut) in rows {
            let attachment = stored((id, name, kind, size, mime, sha256, text_length, cut));
            carried.entry(turn_id).or_default().push(attachment);
        }
    }
    Ok(carried)
}

/// In a purge's transaction: the links of the doomed conversations' turns, the uploads no
/// other turn links, and the blobs no upload holds. `doomed` selects the conversations' ids
/// with `$1` as its one parameter (`before_ms`).
pub(super) async fn purge_in(
    conn: &mut Conn<'_>,
    doomed: &str,
    before_ms: i64,
) -> Result<(), DbError> {
    // A turn's links are doomed with its conversation (scoped by the conversation's owner).
    let doomed_link = |t: &str| {
        format!(
            "EXISTS (SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id
                      WHERE m.turn_id = {t}.turn_id AND c.owner = {t}.owner
                        AND c.id IN ({doomed}))"
        )
    };
    let remember = format!(
        "INSERT INTO purged_attachments
         SELECT t.attachment_id FROM turn_attachments t WHERE {}
         ON CONFLICT DO NOTHING",
        doomed_link("t")
    );
    let unlink = format!(
        "DELETE FROM turn_attachments WHERE {}",
        doomed_link("turn_attachments")
    );
    on_conn!(conn, |c| {
        // The uploads the doomed turns carried, remembered before their links go.
        sqlx::query("CREATE TEMP TABLE IF NOT EXISTS purged_attachments (id TEXT PRIMARY KEY)")
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM purged_attachments")
            .execute(&mut *c)
            .await?;
        sqlx::query(&remember)
            .bind(before_ms)
            .execute(&mut *c)
            .await?;
        sqlx::query(&unlink)
            .bind(before_ms)
            .execute(&mut *c)
            .await?;
        sqlx::query(
            "DELETE FROM attachments WHERE id IN (SELECT id FROM purged_attachments)
                AND NOT EXISTS (SELECT 1 FROM turn_attachments t
                                 WHERE t.attachment_id = attachments.id)",
        )
        .execute(&mut *c)
        .await?;
        sqlx::query("DELETE FROM purged_attachments")
            .execute(&mut *c)
            .await?;
        sqlx::query(DELETE_UNHELD_BLOBS).execute(&mut *c).await?;
    });
    Ok(())
}

/// Blobs no upload holds (their chunks go with them).
const DELETE_UNHELD_BLOBS: &str = "DELETE FROM blobs WHERE NOT EXISTS (
     SELECT 1 FROM attachments a WHERE a.owner = blobs.owner AND a.sha256 = blobs.sha256)";

/// Uploads never sent, made before `before_ms`, and the blobs nobody holds after them. How
/// many uploads went.
pub async fn delete_unsent(db: &Db, before_ms: i64) -> Result<u64, DbError> {
    in_transaction!(db, |tx| {
        let gone = sqlx::query(
            "DELETE FROM attachments WHERE created_at < $1
                AND NOT EXISTS (SELECT 1 FROM turn_attachments t WHERE t.attachment_id = attachments.id)",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(DELETE_UNHELD_BLOBS).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(gone.rows_affected())
    })
}
