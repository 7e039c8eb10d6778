//! A person's usage: this month's report for the page, and every turn's figures as CSV.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, Response, StatusCode};
use axum::Extension;
use futures::StreamExt;
use serde::Deserialize;

use super::db::{self, accounts as store, DbError, Owner};
use super::error_response::api_error;
use super::principal::Principal;
use super::AppState;
use crate::error::ApiError;
use crate::model::accounts::UsageReport;
use crate::model::groups::{BudgetScope, BudgetUse, GroupTotal};

/// Whose usage a request may read: one's own, or (for an admin) anyone's.
pub async fn subject(
    state: &AppState,
    principal: &Principal,
    user_id: Option<&str>,
) -> Result<(Owner, String, Option<f64>), ApiError> {
    let own = user_id.is_none() || user_id == principal.user_id.as_deref();
    if own {
        let budget = match principal.user_id.as_deref() {
            Some(id) => store::user_by_id(&state.db, id)
                .await?
                .and_then(|u| u.monthly_budget_usd),
            None => None,
        };
        return Ok((principal.owner.clone(), principal.username.clone(), budget));
    }
    // Someone else's: admins only, and to anyone else it does not exist.
    let user = match user_id {
        Some(id) if principal.is_admin => store::user_by_id(&state.db, id).await?,
        _ => None,
    };
    let user = user.ok_or_else(|| ApiError::NotFound("no such user".into()))?;
    Ok((user.owner(), user.username, user.monthly_budget_usd))
}

pub async fn report(
    state: &AppState,
    owner: &Owner,
    username: String,
    budget_usd: Option<f64>,
) -> Result<UsageReport, DbError> {
    let month = state.month();
    let groups = db::groups::groups_of(&state.db, &owner.0, &month)
        .await?
        .into_iter()
        .map(|g| GroupTotal {
            name: g.name,
            month_cost_usd: g.month_spent_usd,
            budget_usd: g.monthly_budget_usd,
        })
        .collect();
    // The person's own budget, their groups', and each of their API keys' with a budget.
    let mut budgets = super::groups::budgets(&state.db, owner, &month).await?;
    for key in db::api_keys::list_keys(&state.db, owner, &month).await? {
        if let Some(budget) = key.monthly_budget_usd {
            budgets.push(BudgetUse {
                scope: BudgetScope::Key,
                name: key.name,
                budget_usd: budget,
                spent_usd: key.month_spent_usd,
            });
        }
    }
    Ok(UsageReport {
        username,
        month_cost_usd: db::usage::month_spent(&state.db, owner, &month).await?,
        budget_usd,
        rows: db::usage::month_usage(&state.db, owner, &month).await?,
        budgets,
        groups,
        month,
    })
}

#[derive(Deserialize)]
pub struct ExportQuery {
    user: Option<String>,
    /// `groups=1`: the groups' totals instead of the runs (an admin's: every group; anyone
    /// else's: their own groups).
    groups: Option<String>,
    /// `2026-11`; the current month when absent.
    month: Option<String>,
}

/// `2026-11`, checked: four digits, a dash, a month 01–12.
fn parse_month(text: &str) -> Result<String, ApiError> {
    let valid = text.len() == 7
        && text.as_bytes()[4] == b'-'
        && text[..4].bytes().all(|b| b.is_ascii_digit())
        && text[5..].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(ApiError::BadRequest(
            "a month is written 2026-11 (year, dash, month)".into(),
        ))
    }
}

/// Runs read and written at a time by the CSV export: what one download holds in memory.
const CSV_PAGE: u32 = 1_000;

/// `GET /usage.csv[?user=ID][&month=2026-11]`: every run's figures in the month (the current
/// one by default), oldest first: a send, a retry and each Continue are a
/// row each, billed to the month they ran in. The columns reconcile with a provider's bill:
/// input counts every prompt token, cached and cache-write tokens are parts of it; output
/// counts every generated token, reasoning a part of it. Streamed a page of runs at a time, so a
/// month of any length is downloaded in bounded memory.
pub async fn export_csv(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    Query(query): Query<ExportQuery>,
) -> Response<Body> {
    let Some(Extension(principal)) = principal else {
        return api_error(&ApiError::Unauthorized("sign in first".into()));
    };
    let asked = async {
        let (owner, username, _) = subject(&state, &principal, query.user.as_deref()).await?;
        let month = query
            .month
            .as_deref()
            .map_or_else(|| Ok(state.month()), parse_month)?;
        Ok::<_, ApiError>((owner, username, month))
    };
    let (owner, username, month) = match asked.await {
        Ok(asked) => asked,
        Err(error) => return api_error(&error),
    };
    if query.groups.as_deref() == Some("1") {
        return group_totals_csv(&state, &principal, &owner, &month).await;
    }
    let name = file_name(&format!("{username}-{month}"));
    // The first page is read before answering, so that a failure is an error in words rather
    // than an empty file.
    let first = match db::usage::month_runs(&state.db, &owner, &month, None, CSV_PAGE).await {
        Ok(first) => first,
        Err(e) => return api_error(&ApiError::from(e)),
    };
    let head = match csv_rows(true, &first) {
        Ok(head) => head,
        Err(e) => {
            tracing::error!("writing the usage CSV: {e}");
            return api_error(&ApiError::Internal);
        }
    };
    let rest = csv_pages(state.db.clone(), owner, month, read_on(&first));
    let pages = futures::stream::once(async { Ok(head) }).chain(rest);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"rill-usage-{name}.csv\""),
        )
        .body(Body::from_stream(pages))
        .unwrap_or_default()
}

const CSV_COLUMNS: [&str; 14] = [
    "time",
    "conversation_id",
    "turn_id",
    "run",
    "model",
    "status",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "estimated",
    "api_key",
];

/// Where the export has got to: after which run (`(at, id)`) it reads on, or done.
enum Read {
    After((i64, i64)),
    Done,
}

/// After a page: on from its last run if it was full.
fn read_on(page: &[db::usage::RunFigures]) -> Read {
    match page.last() {
        Some(last) if page.len() >= CSV_PAGE as usize => Read::After((last.at, last.id)),
        _ => Read::Done,
    }
}

/// The CSV's pages after the first. A failed read ends the download with an error (the
/// browser shows it as failed), never as a file cut short.
fn csv_pages(
    db: db::Db,
    owner: Owner,
    month: String,
    from: Read,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    futures::stream::unfold(from, move |read| {
        let (db, owner, month) = (db.clone(), owner.clone(), month.clone());
        async move {
            let Read::After(after) = read else {
                return None;
            };
            let page = match db::usage::month_runs(&db, &owner, &month, Some(after), CSV_PAGE).await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!("reading the usage CSV: {e}");
                    return Some((
                        Err(std::io::Error::other("the usage could not be read")),
                        Read::Done,
                    ));
                }
            };
            let next = read_on(&page);
            let written = csv_rows(false, &page).map_err(|e| {
                tracing::error!("writing the usage CSV: {e}");
                std::io::Error::other("the usage could not be written")
            });
            let next = if written.is_ok() { next } else { Read::Done };
            Some((written, next))
        }
    })
}

/// A page of runs as CSV lines, after the header row when `header`.
fn csv_rows(header: bool, runs: &[db::usage::RunFigures]) -> Result<Vec<u8>, csv::Error> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    if header {
        csv.write_record(CSV_COLUMNS)?;
    }
    let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    for t in runs {
        csv.write_record([
            t.time.clone(),
            t.conversation_id.clone(),
            t.turn_id.clone(),
            t.run.to_string(),
            t.model.clone(),
            t.status.clone(),
            number(t.input_tokens),
            number(t.cached_input_tokens),
            number(t.cache_write_tokens),
            number(t.output_tokens),
            number(t.reasoning_tokens),
            t.cost_usd.map(|c| format!("{c:.8}")).unwrap_or_default(),
            t.usage_estimated.to_string(),
            t.api_key.clone(),
        ])?;
    }
    csv.into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

/// `GET /usage.csv?groups=1[&month=…]`: each group's month (what was spent in it, settled
/// and held, and its budget); an admin gets every group, anyone else their own groups.
async fn group_totals_csv(
    state: &AppState,
    principal: &Principal,
    owner: &Owner,
    month: &str,
) -> Response<Body> {
    let totals = if principal.is_admin && principal.owner == *owner {
        db::groups::list_groups(&state.db, month)
            .await
            .map(|groups| {
                groups
                    .into_iter()
                    .map(|g| {
                        (
                            g.name,
                            g.members.len(),
                            g.month_cost_usd,
                            g.monthly_budget_usd,
                        )
                    })
                    .collect::<Vec<_>>()
            })
    } else {
        db::groups::groups_of(&state.db, &owner.0, month)
            .await
            .map(|groups| {
                groups
                    .into_iter()
                    .map(|g| (g.name, 0, g.month_spent_usd, g.monthly_budget_usd))
                    .collect()
            })
    };
    let totals = match totals {
        Ok(totals) => totals,
        Err(e) => return api_error(&ApiError::from(e)),
    };
    let admin = principal.is_admin && principal.owner == *owner;
    let written = group_totals_rows(admin, month, &totals);
    let body = match written {
        Ok(body) => body,
        Err(e) => {
            tracing::error!("writing the group totals CSV: {e}");
            return api_error(&ApiError::Internal);
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
        .header(
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"rill-group-usage-{}.csv\"",
                file_name(month)
            ),
        )
        .body(Body::from(body))
        .unwrap_or_default()
}

/// Group totals as CSV: `(name, members, cost, budget)` each; the member count for an admin.
fn group_totals_rows(
    admin: bool,
    month: &str,
    totals: &[(String, usize, f64, Option<f64>)],
) -> Result<Vec<u8>, csv::Error> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    if admin {
        csv.write_record(["month", "group", "members", "cost_usd", "budget_usd"])?;
    } else {
        csv.write_record(["month", "group", "cost_usd", "budget_usd"])?;
    }
    for (name, members, cost, budget) in totals {
        let cost = format!("{cost:.8}");
        let budget = budget.map(|b| b.to_string()).unwrap_or_default();
        if admin {
            let members = members.to_string();
            csv.write_record([month, name.as_str(), members.as_str(), &cost, &budget])?;
        } else {
            csv.write_record([month, name.as_str(), &cost, &budget])?;
        }
    }
    csv.into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

/// A file name of only characters a username may have that are safe in a header.
fn file_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
