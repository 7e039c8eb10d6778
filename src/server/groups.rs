//! What a person's groups mean for them: the models they may use (the union of their groups';
//! every model when they are in no group, or in one that sets none) and the budgets they fall
//! under with how much of each is spent, for the warnings at 80 and 90 %.

use super::db::{self, accounts as store, Db, DbError, Owner};
use crate::model::groups::{BudgetScope, BudgetUse};

/// The models `owner` may use: `None` for every model. (Single-user mode's owner is in no
/// group.)
pub async fn allowed_models(db: &Db, owner: &Owner) -> Result<Option<Vec<String>>, DbError> {
    db::groups::allowed_models(db, &owner.0).await
}

/// Whether `owner` may use `model`.
pub async fn may_use(db: &Db, owner: &Owner, model: &str) -> Result<bool, DbError> {
    Ok(allowed_models(db, owner)
        .await?
        .is_none_or(|models| models.iter().any(|m| m == model)))
}

/// Every budget `owner` falls under in `month` that has a limit: their own, then each group's.
pub async fn budgets(db: &Db, owner: &Owner, month: &str) -> Result<Vec<BudgetUse>, DbError> {
    Ok(budgets_by_id(db, owner, month)
        .await?
        .into_iter()
        .map(|(_, budget)| budget)
        .collect())
}

/// [`budgets`], each with its id (the user's or the group's).
pub async fn budgets_by_id(
    db: &Db,
    owner: &Owner,
    month: &str,
) -> Result<Vec<(String, BudgetUse)>, DbError> {
    let mut out = Vec::new();
    if let Some(user) = store::user_by_id(db, &owner.0).await? {
        if let Some(budget) = user.monthly_budget_usd {
            out.push((
                user.id,
                BudgetUse {
                    scope: BudgetScope::Person,
                    name: user.username,
                    budget_usd: budget,
                    spent_usd: db::usage::month_spent(db, owner, month).await?,
                },
            ));
        }
    }
    for group in db::groups::groups_of(db, &owner.0, month).await? {
        if let Some(budget) = group.monthly_budget_usd {
            out.push((
                group.id.to_string(),
                BudgetUse {
                    scope: BudgetScope::Group,
                    name: group.name,
                    budget_usd: budget,
                    spent_usd: group.month_spent_usd,
                },
            ));
        }
    }
    Ok(out)
}
