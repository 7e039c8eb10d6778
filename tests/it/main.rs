//! HTTP-level tests: the real Axum router on 127.0.0.1, a real temporary SQLite file (with
//! `RILL_TEST_ENGINE=postgres`, a database of a throwaway Postgres cluster), and a fake
//! provider on 127.0.0.1 speaking the OpenAI, Anthropic and Gemini wire formats
//! (crates/fake-provider). One test binary, modules by area.

mod accounts;
mod api_keys;
mod attachments;
mod attachments_out;
mod batches;
mod branches;
mod budgets;
mod checkpoints;
mod concurrency;
mod connections;
mod context;
mod continuation;
mod conversations;
mod engines;
mod faults;
mod groups;
mod lifecycle;
mod local_model;
mod long_conversations;
mod nginx;
mod oidc;
mod ops;
mod postgres;
mod postgres_turns;
mod providers;
mod quotas;
mod replicas;
mod search;
mod security;
mod service_accounts;
mod shares;
mod sql;
mod support;
mod tabs;
mod thinking;
mod titles;
mod transfer;
mod turns;
