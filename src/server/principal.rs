//! Who a request acts for, and what a session remembers of its user. Below everything that asks
//! (identity, accounts, the server functions' context, ops), so none of them depends on another
//! for these types.

use serde::{Deserialize, Serialize};

use super::db::accounts::User;
use super::db::Owner;

/// The person a request acts for.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    pub owner: Owner,
    pub username: String,
    pub is_admin: bool,
    /// The user's row; `None` in single-user mode.
    pub user_id: Option<String>,
    /// Signed in by the trusted proxy's header rather than a session.
    pub via_proxy: bool,
    /// The account has a password of its own (not one made by an identity provider).
    pub has_password: bool,
}

impl Principal {
    /// Single-user mode: the configured owner, who is also the admin.
    pub fn single_user(owner: &str) -> Self {
        Self {
            owner: Owner(owner.to_owned()),
            username: owner.to_owned(),
            is_admin: true,
            user_id: None,
            via_proxy: false,
            has_password: false,
        }
    }

    pub fn of_user(user: &User, via_proxy: bool) -> Self {
        Self {
            owner: user.owner(),
            username: user.username.clone(),
            is_admin: user.is_admin,
            user_id: Some(user.id.clone()),
            via_proxy,
            has_password: user.password_hash.is_some(),
        }
    }
}

/// What the session stores about its user: whose it is, the user's session epoch when it
/// signed in (a password change or reset raises the epoch, ending older sessions), and when it
/// signed in (a session ends a fixed time after, however busy).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: String,
    pub epoch: i64,
    /// Unix milliseconds; a session without it is treated as long over.
    #[serde(default)]
    pub signed_in_at: i64,
}

pub const SESSION_USER: &str = "user";
