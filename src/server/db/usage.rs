//! What each owner spent: the ledger of runs budgets are counted from (one row per run, dated
//! when it ran), the usage page and its CSV export.

use uuid::Uuid;

use super::batch::Written;
use super::ids::TextUuid;
use super::{Conn, Db, DbError, Engine, Owner};
use crate::model::accounts::UsageRow;
use crate::model::{MessageStatus, Usage};

/// What a month's spending counts: settled runs at their cost, open ones at their reservation.
/// (Written for both engines: SQLite's `TOTAL` is `COALESCE(SUM(…), 0.0)` elsewhere.)
pub(super) const SPENT: &str =
    "COALESCE(SUM(CASE state WHEN 'reserved' THEN reserved_usd ELSE COALESCE(cost_usd, 0.0) END), 0.0)";

/// The user ids of group `$1`'s members: by hand, and through its identity provider group (a
/// group's budget counts their spending; `groups` manages them).
pub(super) const MEMBERS: &str = "SELECT m.user_id FROM group_members m WHERE m.group_id = $1
     UNION SELECT i.user_id FROM user_idp_groups i JOIN user_groups g ON g.idp_group = i.name
      WHERE g.id = $1";

/// The ids of the groups user `$1` belongs to.
pub(super) const GROUPS_OF_IDS: &str = "SELECT g.id FROM user_groups g
     WHERE EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.id AND m.user_id = $1)
        OR EXISTS (SELECT 1 FROM user_idp_groups i WHERE i.name = g.idp_group AND i.user_id = $1)";

/// What group `$1` spent in month `$2`: the runs counted for it when they were reserved (by its
/// members then; `group_spending`), not what its members of today spent.
pub(super) fn group_spent() -> String {
    format!(
        "SELECT {SPENT} FROM spending s JOIN group_spending g ON g.spending_id = s.id
          WHERE g.group_id = $1 AND g.month = $2"
    )
}

/// The groups user `$1` belongs to: `id, name, monthly_budget_usd`.
pub(super) const GROUPS_OF: &str = "SELECT g.id, g.name, g.monthly_budget_usd FROM user_groups g
     WHERE EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.id AND m.user_id = $1)
        OR EXISTS (SELECT 1 FROM user_idp_groups i WHERE i.name = g.idp_group AND i.user_id = $1)
     ORDER BY g.name";

/// A run about to call its provider, and the most it can cost.
pub struct Reservation<'a> {
    pub owner: &'a Owner,
    pub message_id: Uuid,
    pub run: u32,
    pub model: &'a str,
    /// `2026-12` and the moment, by the server's clock.
    pub month: &'a str,
    pub at_ms: i64,
    pub reserved_usd: f64,
    /// The prompt, generously counted (kept for an estimate should the run never end).
    pub input_tokens: u32,
    /// Characters of the reply's text and thinking before this run.
    pub chars_before: u64,
    pub purpose: Purpose,
    /// The API key the run was asked through (`/v1`), whose own budget it counts against.
    pub api_key: Option<Uuid>,
}

/// What a run is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Reply,
    /// A conversation's title, keyed by its question's message id.
    Title,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Reply => "reply",
            Self::Title => "title",
        }
    }
}

/// The limits a reservation must fit under, in USD for the month. Each is checked in [`hold`]
/// against its own sum of the ledger, in the one write transaction. The owner's groups and
/// their budgets are read there too (`groups` only says whether to), so members reserving at
/// once each see what the others hold.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// The person's own budget.
    pub budget: Option<f64>,
    /// Everyone's spending together (the site's cap).
    pub site_cap: Option<f64>,
    /// The API key's own budget (the reservation's `api_key`).
    pub key_budget: Option<f64>,
    /// Whether the owner is in a group with a budget: then each such group's is checked
    /// (single-user mode has no groups).
    pub groups: bool,
}

impl Limits {
    /// Whether any budget holds the run.
    pub fn any(&self) -> bool {
        self.budget.is_some() || self.site_cap.is_some() || self.key_budget.is_some() || self.groups
    }
}

/// The site setting that caps everyone's spending together (`site_settings`' key).
pub(super) const MONTHLY_CAP: &str = "monthly_cap_usd";

/// What a run is held against, as stored when it is about to start: the limits' amounts (their
/// sums are read again in the reservation's write transaction) and the models the owner's
/// groups allow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunLimits {
    /// The owner's own budget (single-user mode has no user row, and so none).
    pub budget: Option<f64>,
    pub site_cap: Option<f64>,
    /// Whether a group with a budget holds the owner.
    pub groups: bool,
    /// The models the owner's groups allow; `None`: any (no group, or a group that sets none).
    pub allowed_models: Option<Vec<String>>,
}

impl RunLimits {
    /// Whether the owner's groups let them use `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }

    /// The limits a reservation is checked against (an API key's budget is the caller's).
    pub fn limits(&self) -> Limits {
        Limits {
            budget: self.budget,
            site_cap: self.site_cap,
            key_budget: None,
            groups: self.groups,
        }
    }
}

/// [`RunLimits`] of `owner`, in one statement: a turn reads them before every provider call,
/// and under load each statement waits its turn for a connection.
pub async fn run_limits(db: &Db, owner: &Owner) -> Result<RunLimits, DbError> {
    // One row per group and model it allows (a group that sets none: a NULL model), or one
    // row with no group.
    let sql = format!(
        "SELECT (SELECT monthly_budget_usd FROM users WHERE id = $1),
                (SELECT value FROM site_settings WHERE key = $2),
                EXISTS (SELECT 1 FROM ({GROUPS_OF_IDS}) b JOIN user_groups bg ON bg.id = b.id
                         WHERE bg.monthly_budget_usd IS NOT NULL),
                g.id, gm.model
           FROM (SELECT 1 AS one) o
           LEFT JOIN ({GROUPS_OF_IDS}) g ON TRUE
           LEFT JOIN group_models gm ON gm.group_id = g.id"
    );
    type Row = (
        Option<f64>,
        Option<String>,
        bool,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = on_reader!(db, |pool| {
        sqlx::query_as(&sql)
            .bind(&owner.0)
            .bind(MONTHLY_CAP)
            .fetch_all(pool)
            .await
    })?;
    let Some((budget, cap, groups, _, _)) = rows.first().cloned() else {
        return Ok(RunLimits::default());
    };
    let per_group = rows
        .into_iter()
        .filter(|(_, _, _, group, _)| group.is_some())
        .map(|(_, _, _, _, model)| model)
        .collect();
    Ok(RunLimits {
        budget,
        site_cap: cap.and_then(|v| v.parse().ok()),
        groups,
        allowed_models: allowed_of(per_group),
    })
}

/// The models allowed by a person's groups, from one row per group and model it allows (`None`
/// for a group that sets none): any (`None`) when they are in no group, or in one that sets none.
pub(super) fn allowed_of(per_group: Vec<Option<String>>) -> Option<Vec<String>> {
    if per_group.is_empty() || per_group.iter().any(Option::is_none) {
        return None;
    }
    let mut models: Vec<String> = per_group.into_iter().flatten().collect();
    models.sort();
    models.dedup();
    Some(models)
}

/// Whether the run may go ahead.
#[derive(Clone, Debug, PartialEq)]
pub enum Reserved {
    Held,
    /// Spent (settled and reserved) this month, and the budget it would pass.
    OverBudget {
        spent: f64,
        budget: f64,
    },
    OverSiteCap {
        spent: f64,
        cap: f64,
    },
    /// Spent through the API key this month, and its budget.
    OverKeyBudget {
        spent: f64,
        budget: f64,
    },
    /// Spent under the group `group` this month (by its members at the time), and its budget.
    OverGroupBudget {
        group: String,
        spent: f64,
        budget: f64,
    },
}

/// Holds `r.reserved_usd` against the month if it fits under `limits` beside what is spent and
/// held already; checked and written in one write transaction, so runs admitted at once cannot
/// all see the same room.
/// Committed with the other writes of the moment (see `batch`).
pub async fn reserve(db: &Db, r: &Reservation<'_>, limits: Limits) -> Result<Reserved, DbError> {
    let owner = r.owner.clone();
    let model = r.model.to_owned();
    let month = r.month.to_owned();
    let (message_id, run, at_ms, reserved_usd) = (r.message_id, r.run, r.at_ms, r.reserved_usd);
    let (input_tokens, chars_before, purpose) = (r.input_tokens, r.chars_before, r.purpose);
    let api_key = r.api_key;
    // Only a run held against some budget waits for the other replicas' reservations.
    db.batcher()
        .write_reservation(limits.any(), move |mut conn| {
            Box::pin(async move {
                let r = Reservation {
                    owner: &owner,
                    message_id,
                    run,
                    model: &model,
                    month: &month,
                    at_ms,
                    reserved_usd,
                    input_tokens,
                    chars_before,
                    purpose,
                    api_key,
                };
                Ok(match hold(&mut conn, &r, limits).await? {
                    Reserved::Held => Written::Keep(Reserved::Held),
                    refused => Written::Undo(refused),
                })
            })
        })
        .await
}

/// [`reserve`]'s statements, on the batch's connection.
async fn hold(
    conn: &mut Conn<'_>,
    r: &Reservation<'_>,
    limits: Limits,
) -> Result<Reserved, DbError> {
    on_conn!(conn, |tx| {
        // What costs nothing fits any budget, however far past it spending already is.
        let limits = if r.reserved_usd > 0.0 {
            limits
        } else {
            Limits::default()
        };
        if let Some(budget) = limits.budget {
            let (spent,): (f64,) = sqlx::query_as(&format!(
                "SELECT {SPENT} FROM spending WHERE owner = $1 AND month = $2"
            ))
            .bind(&r.owner.0)
            .bind(r.month)
            .fetch_one(&mut *tx)
            .await?;
            if spent + r.reserved_usd > budget {
                return Ok(Reserved::OverBudget { spent, budget });
            }
        }
        if let (Some(budget), Some(key)) = (limits.key_budget, r.api_key) {
            let (spent,): (f64,) = sqlx::query_as(&format!(
                "SELECT {SPENT} FROM spending WHERE api_key_id = $1 AND month = $2"
            ))
            .bind(TextUuid(key))
            .bind(r.month)
            .fetch_one(&mut *tx)
            .await?;
            if spent + r.reserved_usd > budget {
                return Ok(Reserved::OverKeyBudget { spent, budget });
            }
        }
        // Every group the owner is in with a budget (an account's: `Owner` is the user's id).
        // Checked in this write transaction, which the batch writer runs one at a time, so
        // members sending at once see each other's reservations.
        if limits.groups {
            let groups: Vec<(String, String, Option<f64>)> = sqlx::query_as(GROUPS_OF)
                .bind(&r.owner.0)
                .fetch_all(&mut *tx)
                .await?;
            let sum = group_spent();
            for (id, group, budget) in groups {
                let Some(budget) = budget else { continue };
                let (spent,): (f64,) = sqlx::query_as(&sum)
                    .bind(&id)
                    .bind(r.month)
                    .fetch_one(&mut *tx)
                    .await?;
                if spent + r.reserved_usd > budget {
                    return Ok(Reserved::OverGroupBudget {
                        group,
                        spent,
                        budget,
                    });
                }
            }
        }
        if let Some(cap) = limits.site_cap {
            let (spent,): (f64,) =
                sqlx::query_as(&format!("SELECT {SPENT} FROM spending WHERE month = $1"))
                    .bind(r.month)
                    .fetch_one(&mut *tx)
                    .await?;
            if spent + r.reserved_usd > cap {
                return Ok(Reserved::OverSiteCap { spent, cap });
            }
        }
        let (spending_id,): (i64,) = sqlx::query_as(
            "INSERT INTO spending (owner, message_id, run, model, month, at, state, reserved_usd,
                 input_tokens, chars_before, purpose, api_key_id)
             VALUES ($1, $2, $3, $4, $5, $6, 'reserved', $7, $8, $9, $10, $11)
             ON CONFLICT (message_id, run) DO UPDATE SET
                 state = 'reserved', reserved_usd = excluded.reserved_usd, month = excluded.month,
                 at = excluded.at, input_tokens = excluded.input_tokens
             RETURNING id",
        )
        .bind(&r.owner.0)
        .bind(TextUuid(r.message_id))
        .bind(i64::from(r.run))
        .bind(r.model)
        .bind(r.month)
        .bind(r.at_ms)
        .bind(r.reserved_usd.max(0.0))
        .bind(i64::from(r.input_tokens))
        .bind(i64::try_from(r.chars_before).unwrap_or(i64::MAX))
        .bind(r.purpose.as_str())
        .bind(r.api_key.map(TextUuid))
        .fetch_one(&mut *tx)
        .await?;
        // The run counts for the groups its owner is in now, whoever joins or leaves later (a
        // run reserved again, by a retry, counts for the groups of the moment it was).
        sqlx::query("DELETE FROM group_spending WHERE spending_id = $1")
            .bind(spending_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO group_spending (group_id, spending_id, month)
             SELECT g.id, $2, $3 FROM ({GROUPS_OF_IDS}) g"
        ))
        .bind(&r.owner.0)
        .bind(spending_id)
        .bind(r.month)
        .execute(&mut *tx)
        .await?;
        Ok(Reserved::Held)
    })
}

/// What one run used and cost, as it is settled.
#[derive(Clone, Debug, PartialEq)]
pub struct Charge {
    pub status: MessageStatus,
    pub usage: Option<Usage>,
    pub cost_usd: Option<f64>,
    pub estimated: bool,
}

/// Settles a run's reservation to its charge (a run that reserved nothing is left alone).
pub(super) async fn settle(
    conn: &mut Conn<'_>,
    message_id: Uuid,
    run: u32,
    charge: &Charge,
) -> Result<(), DbError> {
    let field = |f: fn(&Usage) -> u32| charge.usage.as_ref().map(|u| i64::from(f(u)));
    on_conn!(conn, |c| sqlx::query(
        "UPDATE spending SET state = 'settled', cost_usd = $1, status = $2, input_tokens = $3,
             cached_input_tokens = $4, cache_write_tokens = $5, output_tokens = $6,
             reasoning_tokens = $7, usage_estimated = $8
         WHERE message_id = $9 AND run = $10 AND state = 'reserved'",
    )
    .bind(charge.cost_usd)
    .bind(charge.status)
    .bind(field(|u| u.input_tokens))
    .bind(field(|u| u.cached_input_tokens))
    .bind(field(|u| u.cache_write_tokens))
    .bind(field(|u| u.output_tokens))
    .bind(field(|u| u.reasoning_tokens))
    .bind(charge.estimated)
    .bind(TextUuid(message_id))
    .bind(i64::from(run))
    .execute(c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Settles a run that stores no reply, an API completion's (`message_id` its own id), in the
/// next batched write (see `batch`).
pub async fn settle_alone(
    db: &Db,
    message_id: Uuid,
    run: u32,
    charge: &Charge,
) -> Result<(), DbError> {
    let charge = charge.clone();
    db.batcher()
        .write(move |mut conn| {
            Box::pin(async move {
                settle(&mut conn, message_id, run, &charge).await?;
                Ok(Written::Keep(()))
            })
        })
        .await
}

/// A run left reserved with no turn to settle it (a crash, a kill, a turn whose end could not
/// be stored): what its estimate needs.
#[derive(Clone, Debug)]
pub struct OpenRun {
    pub id: i64,
    pub message_id: Uuid,
    pub model: String,
    pub input_tokens: u32,
    /// Characters the run wrote: the reply's now, less those it began with.
    pub chars_written: u64,
}

/// Runs still reserved whose reply is not being written (`message_id`: that reply's only).
pub async fn open_runs(db: &Db, message_id: Option<Uuid>) -> Result<Vec<OpenRun>, DbError> {
    type Row = (i64, TextUuid, String, Option<i64>, i64, i64);
    let rows: Vec<Row> = on_reader!(db, |pool| sqlx::query_as(
        "SELECT s.id, s.message_id, s.model, s.input_tokens, s.chars_before,
                CAST(length(m.content) + length(m.thinking) AS BIGINT)
           FROM spending s JOIN messages m ON m.id = s.message_id
          WHERE s.state = 'reserved' AND m.status <> 'streaming'
            AND ($1 IS NULL OR s.message_id = $1)",
    )
    .bind(message_id.map(TextUuid))
    .fetch_all(pool)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|(id, message_id, model, input, before, now)| OpenRun {
            id,
            message_id: message_id.0,
            model,
            input_tokens: input.and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
            chars_written: u64::try_from(now.saturating_sub(before)).unwrap_or(0),
        })
        .collect())
}

/// Settles an open run at an estimate, and adds it to its reply's figures (which had none for
/// this run), both in one transaction.
pub async fn settle_open_run(
    db: &Db,
    run: &OpenRun,
    usage: Usage,
    cost_usd: Option<f64>,
) -> Result<(), DbError> {
    in_transaction!(db, |tx| {
        let settled = sqlx::query(
            "UPDATE spending SET state = 'settled', cost_usd = $1,
                 status = (SELECT m.status FROM messages m WHERE m.id = spending.message_id),
                 input_tokens = $2, output_tokens = $3, cached_input_tokens = 0,
                 cache_write_tokens = 0, reasoning_tokens = 0, usage_estimated = TRUE
             WHERE id = $4 AND state = 'reserved'",
        )
        .bind(cost_usd)
        .bind(i64::from(usage.input_tokens))
        .bind(i64::from(usage.output_tokens))
        .bind(run.id)
        .execute(&mut *tx)
        .await?;
        if settled.rows_affected() == 1 {
            sqlx::query(
                "UPDATE messages SET
                     input_tokens = COALESCE(input_tokens, 0) + $1,
                     output_tokens = COALESCE(output_tokens, 0) + $2,
                     cached_input_tokens = COALESCE(cached_input_tokens, 0),
                     cache_write_tokens = COALESCE(cache_write_tokens, 0),
                     reasoning_tokens = COALESCE(reasoning_tokens, 0),
                     cost_usd = CASE WHEN $3 IS NULL THEN cost_usd ELSE COALESCE(cost_usd, 0) + $3 END,
                     usage_estimated = TRUE
                 WHERE id = $4 AND role = 'assistant'",
            )
            .bind(i64::from(usage.input_tokens))
            .bind(i64::from(usage.output_tokens))
            .bind(cost_usd)
            .bind(TextUuid(run.message_id))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    })
}

/// Settles the API's completions left reserved since before `before_ms` (a crash or kill cut
/// them; no completion runs longer than the server's bound, so none of these is still
/// running on any replica) at what they reserved: their text went to the client, not to
/// storage, so nothing tells what they wrote, and a budget must not count less than was spent.
pub async fn settle_abandoned_completions(db: &Db, before_ms: i64) -> Result<u64, DbError> {
    let done = on_writer!(db, |pool| {
        sqlx::query(
        "UPDATE spending SET state = 'settled', cost_usd = reserved_usd, status = 'interrupted',
             usage_estimated = TRUE
         WHERE state = 'reserved' AND api_key_id IS NOT NULL AND at < $1",
    )
    .bind(before_ms)
    .execute(pool)
    .await
    .map(|done| done.rows_affected())
    })?;
    Ok(done)
}

/// What the owner has spent in `month` (settled runs at their cost, open ones at their
/// reservation), in USD.
pub async fn month_spent(db: &Db, owner: &Owner, month: &str) -> Result<f64, DbError> {
    let sql = format!("SELECT {SPENT} FROM spending WHERE owner = $1 AND month = $2");
    Ok(on_reader!(db, |pool| {
        sqlx::query_scalar(&sql)
            .bind(&owner.0)
            .bind(month)
            .fetch_one(pool)
            .await
    })?)
}

/// Everyone's spending in `month`.
pub async fn site_month_spent(db: &Db, month: &str) -> Result<f64, DbError> {
    let sql = format!("SELECT {SPENT} FROM spending WHERE month = $1");
    Ok(on_reader!(db, |pool| {
        sqlx::query_scalar(&sql).bind(month).fetch_one(pool).await
    })?)
}

/// The month's runs by day (newest first) and model. Runs still open count at their
/// reservation, marked as estimates.
pub async fn month_usage(db: &Db, owner: &Owner, month: &str) -> Result<Vec<UsageRow>, DbError> {
    type Row = (
        String,
        String,
        String,
        Option<String>,
        i64,
        i64,
        i64,
        i64,
        f64,
        bool,
    );
    // (Postgres sums BIGINT as NUMERIC, hence the casts; ordered byte by byte on both.)
    let (day, estimated, order) = match db.engine() {
        Engine::Sqlite => (
            "date(at / 1000, 'unixepoch')",
            "MAX(usage_estimated OR state = 'reserved')",
            "",
        ),
        Engine::Postgres => (
            "to_char(to_timestamp(at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            "bool_or(usage_estimated OR state = 'reserved')",
            " COLLATE \"C\"",
        ),
    };
    let sql = format!(
        "SELECT {day} AS day, model, purpose,
                (SELECT k.name FROM api_keys k WHERE k.id = api_key_id) AS key_name, COUNT(*),
                CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT),
                CAST(COALESCE(SUM(cached_input_tokens), 0) AS BIGINT),
                CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), {SPENT}, {estimated}
           FROM spending
          WHERE owner = $1 AND month = $2
          GROUP BY day, model, purpose, api_key_id
          ORDER BY day DESC, model{order}, purpose, COALESCE(api_key_id, '')"
    );
    let rows: Vec<Row> = on_reader!(db, |pool| {
        sqlx::query_as(&sql)
            .bind(&owner.0)
            .bind(month)
            .fetch_all(pool)
            .await
    })?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(
            |(
                day,
                model,
                purpose,
                api_key,
                replies,
                input,
                cached,
                output,
                cost_usd,
                estimated,
            )| UsageRow {
                day,
                model,
                titles: purpose == "title",
                api_key,
                replies: u32::try_from(replies).unwrap_or(u32::MAX),
                input_tokens: count(input),
                cached_input_tokens: count(cached),
                output_tokens: count(output),
                cost_usd,
                estimated,
            },
        )
        .collect())
}

/// One run's figures, as the CSV export lists them.
#[derive(Debug, PartialEq, sqlx::FromRow)]
pub struct RunFigures {
    /// When the run was admitted (ms) and its row in the ledger: the export reads on after
    /// the last pair it wrote.
    pub at: i64,
    pub id: i64,
    /// `2026-11-27T10:15:02Z`, when the run began.
    pub time: String,
    pub conversation_id: String,
    pub turn_id: String,
    pub run: i64,
    pub model: String,
    /// How the run ended; `running` while it is open.
    pub status: String,
    pub input_tokens: Option<i64>,
    pub cached_input_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub usage_estimated: bool,
    /// The API key's name for a run through `/v1` (which has no conversation: its ids are
    /// empty), else empty.
    pub api_key: String,
}

/// The owner's runs in `month`, oldest first, with their figures: at most `limit`, those after
/// `after` (a run's `(at, id)`).
pub async fn month_runs(
    db: &Db,
    owner: &Owner,
    month: &str,
    after: Option<(i64, i64)>,
    limit: u32,
) -> Result<Vec<RunFigures>, DbError> {
    let (after_at, after_id) = after.unwrap_or((i64::MIN, i64::MIN));
    let time = match db.engine() {
        Engine::Sqlite => "strftime('%Y-%m-%dT%H:%M:%SZ', s.at / 1000, 'unixepoch')",
        Engine::Postgres => {
            "to_char(to_timestamp(s.at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        }
    };
    let sql = format!(
        "SELECT s.at, s.id, {time} AS time,
                COALESCE(m.conversation_id, '') AS conversation_id,
                COALESCE(m.turn_id, '') AS turn_id, s.run, s.model,
                CASE s.state WHEN 'reserved' THEN 'running' ELSE COALESCE(s.status, '') END
                    AS status,
                s.input_tokens, s.cached_input_tokens, s.cache_write_tokens, s.output_tokens,
                s.reasoning_tokens,
                CASE s.state WHEN 'reserved' THEN s.reserved_usd ELSE s.cost_usd END AS cost_usd,
                (s.usage_estimated OR s.state = 'reserved') AS usage_estimated,
                COALESCE(k.name, '') AS api_key
           FROM spending s LEFT JOIN messages m ON m.id = s.message_id
                LEFT JOIN api_keys k ON k.id = s.api_key_id
          WHERE s.owner = $1 AND s.month = $2 AND (s.at, s.id) > ($3, $4)
          ORDER BY s.at, s.id LIMIT $5"
    );
    Ok(on_reader!(db, |pool| {
        sqlx::query_as(&sql)
            .bind(&owner.0)
            .bind(month)
            .bind(after_at)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
    })?)
}
