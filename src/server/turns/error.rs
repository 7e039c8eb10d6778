//! What can go wrong in the turn engine, and how each is told to the person: asking for a turn
//! ([`TurnError`], answered to the request) and a run refused before any provider request
//! ([`RunError`], stored as the reply's failure).

use super::live::Refusal;
use crate::error::ApiError;
use crate::format::format_cost;
use crate::server::db::{CannotContinue, DbError};
use crate::server::input::InputError;
use crate::server::limits::LimitError;

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("no such conversation")]
    NoSuchConversation,
    #[error("no such turn")]
    NoSuchTurn,
    #[error("a reply is already being written in this conversation; wait for it, or stop it")]
    Busy,
    #[error(transparent)]
    CannotContinue(#[from] CannotContinue),
    #[error("the server is restarting; try again in a moment")]
    Draining,
    #[error(transparent)]
    Limited(#[from] LimitError),
    #[error("the reply did not confirm that it stopped")]
    StopUnconfirmed,
    #[error("the turn could not be started")]
    StartFailed,
    #[error("{0}")]
    OverQuota(String),
    /// The turn's batch could not be committed: nothing of it was stored.
    #[error("the server could not store this message; send it again")]
    NotStored,
    #[error(transparent)]
    Db(DbError),
}

impl From<DbError> for TurnError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::NotWritten(_) => {
                tracing::warn!("a turn was not stored: {error}");
                TurnError::NotStored
            }
            error => TurnError::Db(error),
        }
    }
}

impl From<Refusal> for TurnError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NoSuchConversation => TurnError::NoSuchConversation,
            Refusal::NoSuchTurn => TurnError::NoSuchTurn,
            Refusal::Busy => TurnError::Busy,
            Refusal::Limited(limit) => TurnError::Limited(limit),
            Refusal::OverQuota(words) => TurnError::OverQuota(words),
            Refusal::AlreadyContinued(_) | Refusal::NotStored => TurnError::StartFailed,
        }
    }
}

impl From<TurnError> for ApiError {
    fn from(error: TurnError) -> Self {
        let message = error.to_string();
        match error {
            TurnError::Input(e) => e.into(),
            TurnError::NoSuchConversation | TurnError::NoSuchTurn => ApiError::NotFound(message),
            TurnError::Busy | TurnError::CannotContinue(_) => ApiError::Conflict(message),
            TurnError::Draining | TurnError::NotStored => ApiError::Unavailable(message),
            TurnError::Limited(_) => ApiError::TooManyRequests(message),
            TurnError::OverQuota(_) => ApiError::InsufficientStorage(message),
            TurnError::StopUnconfirmed | TurnError::StartFailed => {
                tracing::error!("{message}");
                ApiError::Internal
            }
            TurnError::Db(e) => e.into(),
        }
    }
}

/// Why a run ended before any provider request. The words are the failed reply's, shown to
/// the person; the question is kept, and nothing was spent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("the model {0} is not configured on this server; pick another")]
    ModelGone(String),
    #[error("the server could not read this conversation")]
    HistoryUnreadable,
    #[error(
        "{model} cannot see images; pick a model that can (the picker marks those that cannot), or \
         send the message without its images"
    )]
    CannotSee { model: String },
    #[error(
        "This message is too long for {model}: it is about {tokens} tokens, and the model reads \
         at most {fits} (its context window of {window} tokens, less the system prompt and room \
         for the reply). Shorten it, or pick a model with a larger window."
    )]
    TooLong {
        model: String,
        tokens: u32,
        fits: u32,
        window: u32,
    },
    #[error(
        "{model} has no price on this server, so its cost cannot be counted against your \
         budget; pick another model, or ask an admin to give it a price"
    )]
    Unpriced { model: String },
    #[error("the server could not check your monthly budget; try again")]
    BudgetUnchecked,
    #[error(
        "this message could take your spending this month past your budget of {} ({} spent or \
         held by replies being written; this one may cost up to {}); ask an admin to raise it, \
         or pick a model that costs less",
        format_cost(*budget),
        format_cost(*spent),
        format_cost(*reserved)
    )]
    OverBudget {
        budget: f64,
        spent: f64,
        reserved: f64,
    },
    #[error(
        "this server has reached the spending limit its admins set for this month ({} of {}); \
         ask an admin, or pick a model that costs nothing",
        format_cost(*spent),
        format_cost(*cap)
    )]
    OverSiteCap { spent: f64, cap: f64 },
    #[error(
        "this request could take this API key's spending this month past its budget of {} ({} \
         spent or held by requests running; this one may cost up to {}); raise the key's budget, \
         ask for fewer tokens (max_tokens), or pick a model that costs less",
        format_cost(*budget),
        format_cost(*spent),
        format_cost(*reserved)
    )]
    OverKeyBudget {
        budget: f64,
        spent: f64,
        reserved: f64,
    },
    #[error(
        "this message could take the group {group}'s spending this month past its budget of {} \
         ({} left of it, counting replies being written; this one may cost up to {}); ask an \
         admin to raise it, or pick a model that costs less",
        format_cost(*budget),
        format_cost((*budget - *spent).max(0.0)),
        format_cost(*reserved)
    )]
    OverGroupBudget {
        group: String,
        budget: f64,
        spent: f64,
        reserved: f64,
    },
    #[error("your groups do not allow the model {model}; pick another (the picker shows those you may use)")]
    ModelNotAllowed { model: String },
}
