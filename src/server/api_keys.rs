//! API keys for Rill's OpenAI-compatible API (`/v1`): a person makes one in the page (named,
//! with an optional monthly budget and expiry), sees it once, and revokes it when done.
//!
//! A key is `rill_` and 64 hex digits: two v4 uuids, 244 bits from the system's random source.
//! Only its SHA-256 is stored, and a request's key is looked up by that hash. Not argon2, as
//! passwords are: a slow, salted hash is there to make guessing a *low-entropy* secret from a
//! stolen hash expensive, and no amount of hashing speed lets anyone search 2^244 keys; a salted
//! hash could not be looked up by index either (every request would have to try every key), and
//! argon2's ~50 ms of CPU per request would cap the API at a few dozen requests a second per
//! core. As with share links, comparing hashes in an index leaks nothing about any stored key.
//!
//! A request's key answers, in this order: unknown (or malformed) → 401 `invalid_api_key`,
//! revoked → 401, expired → 401, its owner disabled → 403; the words say which, and no answer
//! says anything of another person's keys. A key is never logged, nor echoed back in an error.

use axum::http::{header, HeaderMap};
use uuid::Uuid;

use super::config::AuthMode;
use super::db::api_keys::{self as store, NewKey, StoredKey};
use super::db::{self, Owner};
use super::sessions::token_digest;
use super::turns::KeyBudget;
use super::AppState;
use crate::error::ApiError;
use crate::model::api_keys::{
    ApiKeyView, CreatedApiKey, NewApiKey, MAX_API_KEYS, MAX_KEY_DAYS, MAX_KEY_NAME_CHARS,
};

/// What every key starts with: tells a reader (and secret scanners) what it is.
pub const KEY_PREFIX: &str = "rill_";
/// Hex digits after the prefix.
const KEY_DIGITS: usize = 64;
/// Characters of a key kept to tell keys apart in the list (the prefix and 8 digits: 32 bits,
/// nothing an attacker can use).
const SHOWN_CHARS: usize = KEY_PREFIX.len() + 8;
/// The last use is noted at most this often per key (the list shows it to a minute).
const MARK_USED_EVERY_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn new_key() -> String {
    format!(
        "{KEY_PREFIX}{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

/// Whether `key` has a key's form (checked before any lookup).
fn is_key(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|digits| {
        digits.len() == KEY_DIGITS
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Makes a key for `owner`; the answer carries the key itself, which is never shown again.
pub async fn create(
    state: &AppState,
    owner: &Owner,
    asked: NewApiKey,
) -> Result<CreatedApiKey, ApiError> {
    let name = asked.name.trim();
    if name.is_empty() {
        return Err(ApiError::BadRequest("give the key a name".into()));
    }
    if name.chars().count() > MAX_KEY_NAME_CHARS {
        return Err(ApiError::BadRequest(format!(
            "a key's name is at most {MAX_KEY_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "a key's name cannot hold control characters".into(),
        ));
    }
    let budget = match asked.monthly_budget_usd {
        Some(b) if !b.is_finite() || b < 0.0 => {
            return Err(ApiError::BadRequest(
                "a key's monthly budget is a number of dollars, zero or more".into(),
            ))
        }
        budget => budget,
    };
    // The server's clock, as budgets' months are (tests move it past an expiry).
    let now = state.clock.now_ms();
    let expires_at = match asked.expires_in_days {
        Some(0) => {
            return Err(ApiError::BadRequest(
                "a key expires at least a day after it is made".into(),
            ))
        }
        Some(days) if days > MAX_KEY_DAYS => {
            return Err(ApiError::BadRequest(format!(
                "a key expires at most {MAX_KEY_DAYS} days after it is made; leave the expiry \
                 empty for a key that does not expire"
            )))
        }
        Some(days) => Some(now.saturating_add(i64::from(days).saturating_mul(DAY_MS))),
        None => None,
    };
    let key = new_key();
    let key_hash = token_digest(&key);
    let prefix: String = key.chars().take(SHOWN_CHARS).collect();
    let new = NewKey {
        id: Uuid::new_v4(),
        key_hash: &key_hash,
        prefix: &prefix,
        name,
        monthly_budget_usd: budget,
        expires_at,
        created_at: now,
    };
    match store::create_key(&state.db, owner, &new).await? {
        Some(view) => {
            tracing::info!(key = %view.id, "API key made");
            Ok(CreatedApiKey { key, view })
        }
        None => Err(ApiError::Conflict(format!(
            "you have {MAX_API_KEYS} API keys, the most this server keeps; revoke some first"
        ))),
    }
}

/// The owner's keys (unrevoked), newest first, with this month's spending.
pub async fn list(state: &AppState, owner: &Owner) -> Result<Vec<ApiKeyView>, ApiError> {
    Ok(store::list_keys(&state.db, owner, &state.month()).await?)
}

/// Revokes one of the owner's keys: it answers 401 from the next request on.
pub async fn revoke(state: &AppState, owner: &Owner, id: Uuid) -> Result<(), ApiError> {
    if store::revoke_key(&state.db, owner, id, state.clock.now_ms()).await? {
        tracing::info!(key = %id, "API key revoked");
        Ok(())
    } else {
        Err(ApiError::NotFound("no such key".into()))
    }
}

/// Why a request's key was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error(
        "no API key was given: send it as `Authorization: Bearer <key>` (make one on Rill's \
         usage page)"
    )]
    Missing,
    #[error("the API key is not valid: check it, or make a new one on Rill's usage page")]
    Unknown,
    #[error("this API key was revoked; make a new one on Rill's usage page")]
    Revoked,
    #[error("this API key has expired; make a new one on Rill's usage page")]
    Expired,
    #[error("the account this API key belongs to is disabled")]
    OwnerDisabled,
    #[error("the server could not check the API key; try again")]
    Unchecked,
}

/// Who a request's bearer key acts for.
#[derive(Clone, Debug)]
pub struct KeyHolder {
    pub owner: Owner,
    pub key: KeyBudget,
}

/// The key a request carries (`Authorization: Bearer …`), checked. Cookies are not read: a
/// browser's session can never reach `/v1`.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<KeyHolder, KeyRefusal> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(KeyRefusal::Missing);
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .ok_or(KeyRefusal::Missing)?;
    if !is_key(presented) {
        return Err(KeyRefusal::Unknown);
    }
    let unchecked = |e: db::DbError| {
        tracing::error!("could not look up an API key: {e}");
        KeyRefusal::Unchecked
    };
    let stored = store::key_by_hash(&state.db, &token_digest(presented))
        .await
        .map_err(unchecked)?
        .ok_or(KeyRefusal::Unknown)?;
    let now = state.clock.now_ms();
    check(&stored, now)?;
    // With accounts, the key acts for a user who must still be allowed in; in single-user mode
    // for the configured owner, who has no row (a key made under another mode acts for nobody).
    let allowed = match state.config.access.mode {
        AuthMode::SingleUser => stored.owner.0 == state.config.owner,
        AuthMode::Accounts => db::accounts::user_by_id(&state.db, &stored.owner.0)
            .await
            .map_err(unchecked)?
            .is_some_and(|u| !u.is_disabled()),
    };
    if !allowed {
        return Err(KeyRefusal::OwnerDisabled);
    }
    if stored
        .last_used_at
        .is_none_or(|at| at < now.saturating_sub(MARK_USED_EVERY_MS))
    {
        if let Err(e) = store::mark_used(&state.db, stored.id, now, MARK_USED_EVERY_MS).await {
            tracing::warn!(key = %stored.id, "could not note an API key's use: {e}");
        }
    }
    Ok(KeyHolder {
        owner: stored.owner,
        key: KeyBudget {
            id: stored.id,
            budget: stored.monthly_budget_usd,
        },
    })
}

/// A stored key's state at `now`: revoked, expired, or good.
fn check(key: &StoredKey, now: i64) -> Result<(), KeyRefusal> {
    if key.revoked_at.is_some() {
        return Err(KeyRefusal::Revoked);
    }
    if key.expires_at.is_some_and(|at| at <= now) {
        return Err(KeyRefusal::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_their_form_and_differ() {
        let a = new_key();
        let b = new_key();
        assert!(is_key(&a) && is_key(&b), "{a}");
        assert_ne!(a, b);
        assert_eq!(a.len(), KEY_PREFIX.len() + KEY_DIGITS);
        for bad in [
            "",
            "rill_",
            &a[..a.len() - 1],
            &a.to_uppercase(),
            &format!("sk-{}", &a[5..]),
            &format!("{a}0"),
        ] {
            assert!(!is_key(bad), "{bad}");
        }
    }

    #[test]
    fn a_revoked_or_expired_key_is_refused_in_that_order() {
        let key = StoredKey {
            id: Uuid::new_v4(),
            owner: Owner("o".into()),
            name: "n".into(),
            monthly_budget_usd: None,
            expires_at: Some(1_000),
            revoked_at: None,
            last_used_at: None,
        };
        assert_eq!(check(&key, 999), Ok(()));
        assert_eq!(check(&key, 1_000), Err(KeyRefusal::Expired));
        let revoked = StoredKey {
            revoked_at: Some(5),
            ..key
        };
        assert_eq!(check(&revoked, 999), Err(KeyRefusal::Revoked));
        assert_eq!(check(&revoked, 2_000), Err(KeyRefusal::Revoked));
    }
}
