//! Groups (see `migrations/…_groups.sql`): made, renamed and deleted by admins, their members
//! (by hand, and through a linked identity provider group), their models and budgets, and what
//! was spent in them this month (the ledger rows counted for each, `group_spending`). The same
//! text serves both engines.

use uuid::Uuid;

use super::ids::TextUuid;
use super::usage::{group_spent, GROUPS_OF, GROUPS_OF_IDS, MEMBERS, SPENT};
use super::{Conn, Db, DbError};
use crate::model::groups::{GroupMember, GroupView, MAX_GROUPS};

/// What a change to a group came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changed {
    Done,
    NoSuchGroup,
    /// Another group has the name.
    NameTaken,
    /// No such user (adding a member).
    NoSuchUser,
    /// [`MAX_GROUPS`] exist already.
    TooMany,
}

/// Stores a new group.
pub async fn create_group(
    db: &Db,
    id: Uuid,
    name: &str,
    budget: Option<f64>,
    now: i64,
) -> Result<Changed, DbError> {
    in_transaction!(db, |tx| {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM user_groups")
            .fetch_one(&mut *tx)
            .await?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_GROUPS {
            return Ok(Changed::TooMany);
        }
        let done = sqlx::query(
            "INSERT INTO user_groups (id, name, monthly_budget_usd, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(TextUuid(id))
        .bind(name)
        .bind(budget)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if done.rows_affected() == 1 {
            Changed::Done
        } else {
            Changed::NameTaken
        })
    })
}

/// Renames a group.
pub async fn rename_group(db: &Db, id: Uuid, name: &str) -> Result<Changed, DbError> {
    in_transaction!(db, |tx| {
        let taken: Option<(String,)> =
            sqlx::query_as("SELECT id FROM user_groups WHERE name = $1 AND id <> $2")
                .bind(name)
                .bind(TextUuid(id))
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Ok(Changed::NameTaken);
        }
        let done = sqlx::query("UPDATE user_groups SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(TextUuid(id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(found(done.rows_affected()))
    })
}

fn found(rows: u64) -> Changed {
    if rows == 1 {
        Changed::Done
    } else {
        Changed::NoSuchGroup
    }
}

/// Deletes a group (its members and models go with it; what they spent stays theirs).
pub async fn delete_group(db: &Db, id: Uuid) -> Result<Changed, DbError> {
    let done = on_writer!(db, |pool| {
        sqlx::query("DELETE FROM user_groups WHERE id = $1")
            .bind(TextUuid(id))
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(found(done))
}

/// Sets a group's monthly budget (`None`: no group limit).
pub async fn set_group_budget(db: &Db, id: Uuid, budget: Option<f64>) -> Result<Changed, DbError> {
    let done = on_writer!(db, |pool| {
        sqlx::query("UPDATE user_groups SET monthly_budget_usd = $1 WHERE id = $2")
            .bind(budget)
            .bind(TextUuid(id))
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(found(done))
}

/// Links a group to the identity provider's group `idp_group` (`None`: unlinks it).
pub async fn set_idp_group(db: &Db, id: Uuid, idp_group: Option<&str>) -> Result<Changed, DbError> {
    let done = on_writer!(db, |pool| {
        sqlx::query("UPDATE user_groups SET idp_group = $1 WHERE id = $2")
            .bind(idp_group)
            .bind(TextUuid(id))
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(found(done))
}

/// Replaces the models a group's members may use (empty: every model).
pub async fn set_group_models(db: &Db, id: Uuid, models: &[String]) -> Result<Changed, DbError> {
    in_transaction!(db, |tx| {
        if !group_exists(&mut Conn::from(&mut *tx), id).await? {
            return Ok(Changed::NoSuchGroup);
        }
        sqlx::query("DELETE FROM group_models WHERE group_id = $1")
            .bind(TextUuid(id))
            .execute(&mut *tx)
            .await?;
        for model in models {
            sqlx::query(
                "INSERT INTO group_models (group_id, model) VALUES ($1, $2)
                 ON CONFLICT (group_id, model) DO NOTHING",
            )
            .bind(TextUuid(id))
            .bind(model)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Changed::Done)
    })
}

/// Whether the group exists, read in the change's transaction. On Postgres its row stays locked
/// until the change commits: a group deleted meanwhile would otherwise fail the change's insert
/// on its foreign key (an error, not "no such group"). SQLite's one writer keeps the delete out.
async fn group_exists(conn: &mut Conn<'_>, id: Uuid) -> Result<bool, DbError> {
    let sql = match conn {
        Conn::Sqlite(_) => "SELECT 1 FROM user_groups WHERE id = $1",
        Conn::Postgres(_) => "SELECT 1 FROM user_groups WHERE id = $1 FOR SHARE",
    };
    Ok(on_conn!(conn, |c| sqlx::query(sql)
        .bind(TextUuid(id))
        .fetch_optional(c)
        .await
        .map(|row| row.is_some()))?)
}

/// Adds `user_id` to a group by hand.
pub async fn add_member(db: &Db, id: Uuid, user_id: &str) -> Result<Changed, DbError> {
    in_transaction!(db, |tx| {
        if !group_exists(&mut Conn::from(&mut *tx), id).await? {
            return Ok(Changed::NoSuchGroup);
        }
        let user: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if user.is_none() {
            return Ok(Changed::NoSuchUser);
        }
        sqlx::query(
            "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)
             ON CONFLICT (group_id, user_id) DO NOTHING",
        )
        .bind(TextUuid(id))
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Changed::Done)
    })
}

/// Removes a member added by hand (one through the identity provider stays while the provider
/// names them).
pub async fn remove_member(db: &Db, id: Uuid, user_id: &str) -> Result<Changed, DbError> {
    in_transaction!(db, |tx| {
        if !group_exists(&mut Conn::from(&mut *tx), id).await? {
            return Ok(Changed::NoSuchGroup);
        }
        sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(TextUuid(id))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Changed::Done)
    })
}

/// A group's name, if it exists.
pub async fn group_name(db: &Db, id: Uuid) -> Result<Option<String>, DbError> {
    Ok(on_reader!(db, |pool| {
        sqlx::query_scalar("SELECT name FROM user_groups WHERE id = $1")
            .bind(TextUuid(id))
            .fetch_optional(pool)
            .await
    })?)
}

/// Every group by name, with members, models and what was spent in it in `month`.
pub async fn list_groups(db: &Db, month: &str) -> Result<Vec<GroupView>, DbError> {
    type Row = (TextUuid, String, Option<f64>, Option<String>);
    let groups: Vec<Row> = on_reader!(db, |pool| {
        sqlx::query_as(
            "SELECT id, name, monthly_budget_usd, idp_group FROM user_groups
              ORDER BY name LIMIT $1",
        )
        .bind(i64::try_from(MAX_GROUPS).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
    })?;
    let members_sql = format!(
        "SELECT u.id, u.username,
                EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = $1 AND m.user_id = u.id)
           FROM users u WHERE u.id IN ({MEMBERS}) ORDER BY u.username"
    );
    let spent_sql = group_spent();
    let mut views = Vec::with_capacity(groups.len());
    for (id, name, monthly_budget_usd, idp_group) in groups {
        let members: Vec<(String, String, bool)> = on_reader!(db, |pool| {
            sqlx::query_as(&members_sql).bind(id).fetch_all(pool).await
        })?;
        let models: Vec<String> = on_reader!(db, |pool| {
            sqlx::query_scalar("SELECT model FROM group_models WHERE group_id = $1 ORDER BY model")
                .bind(id)
                .fetch_all(pool)
                .await
        })?;
        let month_cost_usd: f64 = on_reader!(db, |pool| {
            sqlx::query_scalar(&spent_sql)
                .bind(id)
                .bind(month)
                .fetch_one(pool)
                .await
        })?;
        views.push(GroupView {
            id: id.0,
            name,
            monthly_budget_usd,
            idp_group,
            models,
            members: members
                .into_iter()
                .map(|(user_id, username, by_hand)| GroupMember {
                    user_id,
                    username,
                    by_hand,
                })
                .collect(),
            month_cost_usd,
        });
    }
    Ok(views)
}

/// A group a person belongs to, with its budget and what was spent in it in a month.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberGroup {
    pub id: Uuid,
    pub name: String,
    pub monthly_budget_usd: Option<f64>,
    pub month_spent_usd: f64,
}

/// The groups `user_id` belongs to, by name, with what was spent in each in `month`.
pub async fn groups_of(db: &Db, user_id: &str, month: &str) -> Result<Vec<MemberGroup>, DbError> {
    let groups: Vec<(TextUuid, String, Option<f64>)> = on_reader!(db, |pool| {
        sqlx::query_as(GROUPS_OF)
            .bind(user_id)
            .fetch_all(pool)
            .await
    })?;
    let spent_sql = group_spent();
    let mut out = Vec::with_capacity(groups.len());
    for (id, name, monthly_budget_usd) in groups {
        let month_spent_usd: f64 = on_reader!(db, |pool| {
            sqlx::query_scalar(&spent_sql)
                .bind(id)
                .bind(month)
                .fetch_one(pool)
                .await
        })?;
        out.push(MemberGroup {
            id: id.0,
            name,
            monthly_budget_usd,
            month_spent_usd,
        });
    }
    Ok(out)
}

/// The models `user_id` may use: `None` for every model (in no group, or in a group that sets
/// none), else the union of their groups' models.
pub async fn allowed_models(db: &Db, user_id: &str) -> Result<Option<Vec<String>>, DbError> {
    // Per group: its models, or one NULL row for a group that sets none.
    let sql = format!(
        "SELECT gm.model FROM ({GROUPS_OF_IDS}) g
           LEFT JOIN group_models gm ON gm.group_id = g.id"
    );
    let rows: Vec<(Option<String>,)> = on_reader!(db, |pool| {
        sqlx::query_as(&sql).bind(user_id).fetch_all(pool).await
    })?;
    Ok(super::usage::allowed_of(
        rows.into_iter().map(|(model,)| model).collect(),
    ))
}

/// An API key's name and what was spent through it in `month`.
pub async fn key_month(db: &Db, id: Uuid, month: &str) -> Result<(String, f64), DbError> {
    let sql = format!(
        "SELECT COALESCE((SELECT name FROM api_keys WHERE id = $1), ''),
                (SELECT {SPENT} FROM spending WHERE api_key_id = $1 AND month = $2)"
    );
    Ok(on_reader!(db, |pool| {
        sqlx::query_as(&sql)
            .bind(TextUuid(id))
            .bind(month)
            .fetch_one(pool)
            .await
    })?)
}

/// Claims the warning at `threshold` % of a budget for `month`: `true` for the one claim that
/// stores it (whose caller sends it), `false` if it was claimed before (here or on another
/// replica).
pub async fn claim_alert(
    db: &Db,
    scope: &str,
    scope_id: &str,
    month: &str,
    threshold: u8,
    now: i64,
) -> Result<bool, DbError> {
    let done = on_writer!(db, |pool| {
        sqlx::query(
            "INSERT INTO budget_alerts (scope, scope_id, month, threshold, at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (scope, scope_id, month, threshold) DO NOTHING",
        )
        .bind(scope)
        .bind(scope_id)
        .bind(month)
        .bind(i64::from(threshold))
        .bind(now)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(done == 1)
}

/// Records a try at sending a claimed warning, and when it was taken (`sent`).
pub async fn record_alert_try(
    db: &Db,
    scope: &str,
    scope_id: &str,
    month: &str,
    threshold: u8,
    sent: Option<i64>,
) -> Result<(), DbError> {
    on_writer!(db, |pool| {
        sqlx::query(
            "UPDATE budget_alerts SET attempts = attempts + 1, sent_at = $1
              WHERE scope = $2 AND scope_id = $3 AND month = $4 AND threshold = $5",
        )
        .bind(sent)
        .bind(scope)
        .bind(scope_id)
        .bind(month)
        .bind(i64::from(threshold))
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}
