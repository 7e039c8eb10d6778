//! Long conversations at constant cost: a conversation opens at its newest window whatever its
//! length and pages back to its first message without gap or overlap; the totals of what the
//! page has not loaded come from figures kept per turn (checked against every message, across
//! branches, and against the backfill of conversations stored before they were kept); a page
//! following a conversation reads back only what it missed, or loads afresh when far behind.

use fake_provider::FakeConfig;
use rill::model::{ConversationView, Role, StreamLine};
use rill::server::db;
use serde_json::json;
use uuid::Uuid;

use crate::sql::sql;
use crate::support::*;

async fn open(app: &TestApp, conversation: Uuid, before: Option<u32>) -> ConversationView {
    app.post_json(
        "get_conversation",
        json!({"id": conversation, "before": before}),
    )
    .await
    .json()
    .await
    .expect("a conversation")
}

/// Every window of the branch on screen, newest first, as a page scrolling up loads them.
async fn all_windows(app: &TestApp, conversation: Uuid) -> Vec<ConversationView> {
    let mut windows = vec![open(app, conversation, None).await];
    while let Some(before) = windows.last().and_then(|w| w.older_before) {
        windows.push(open(app, conversation, Some(before)).await);
    }
    windows
}

/// Input and output tokens of a window's messages.
fn sums(view: &ConversationView) -> (u64, u64) {
    view.messages
        .iter()
        .filter_map(|m| m.outcome.usage)
        .fold((0, 0), |(input, output), u| {
            (
                input + u64::from(u.input_tokens),
                output + u64::from(u.output_tokens),
            )
        })
}

fn questions(windows: &[ConversationView]) -> Vec<String> {
    windows
        .iter()
        .rev()
        .flat_map(|w| &w.messages)
        .filter(|m| m.role == Role::User)
        .map(|m| m.content.clone())
        .collect()
}

/// Each window's totals of older messages are the sums of the windows before it, and each
/// window is whole turns within the bound.
fn check_windows(windows: &[ConversationView]) {
    for (i, window) in windows.iter().enumerate() {
        assert!(window.messages.len() as i64 <= db::WINDOW_MESSAGES);
        assert_eq!(window.messages.first().map(|m| m.role), Some(Role::User));
        let older = windows[i + 1..]
            .iter()
            .map(sums)
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        assert_eq!(
            (
                window.older_totals.input_tokens,
                window.older_totals.output_tokens
            ),
            older,
            "the totals before window {i} (newest is 0)"
        );
    }
}

async fn build(app: &TestApp, turns: usize, prefix: &str, mut conversation: Option<Uuid>) -> Uuid {
    for i in 1..=turns {
        let events = app.turn(conversation, &format!("{prefix} {i}")).await;
        conversation.get_or_insert_with(|| conversation_of(&events));
    }
    conversation.expect("a conversation")
}

fn fake() -> FakeConfig {
    FakeConfig {
        tokens: 3,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_long_conversation_pages_back_to_its_first_message_and_its_totals_add_up() {
    let app = TestApp::start(fake()).await;
    let conversation = build(&app, 250, "Question", None).await;
    let windows = all_windows(&app, conversation).await;
    assert_eq!(windows.len(), 13, "250 turns in windows of 20 turns");
    assert_eq!(windows[0].messages.len() as i64, db::WINDOW_MESSAGES);
    let expected: Vec<String> = (1..=250).map(|i| format!("Question {i}")).collect();
    assert_eq!(questions(&windows), expected, "no gap, no overlap");
    check_windows(&windows);
    let newest = &windows[0];
    assert_eq!(
        newest.older_totals.output_tokens + sums(newest).1,
        250 * 3,
        "the whole conversation's output"
    );
    // Prompts grow with the history: the input figures differ turn by turn.
    assert!(newest.older_totals.input_tokens > 249 * 10);
}

#[tokio::test]
async fn totals_follow_the_branch_on_screen_after_an_edit_deep_in_a_long_conversation() {
    let app = TestApp::start(fake()).await;
    let conversation = build(&app, 60, "Question", None).await;
    let before = all_windows(&app, conversation).await;
    let tenth = before
        .iter()
        .flat_map(|w| &w.messages)
        .find(|m| m.content == "Question 10")
        .map(|m| m.turn_id)
        .expect("the tenth question");
    let response = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation,
                   "text": "Question 10, edited", "model": null, "alternative_to": tenth}),
        )
        .await;
    assert_eq!(response.status(), 200);
    EventReader::new(response).read_to_end().await;
    build(&app, 30, "Then", Some(conversation)).await;

    let edited = all_windows(&app, conversation).await;
    let mut expected: Vec<String> = (1..=9).map(|i| format!("Question {i}")).collect();
    expected.push("Question 10, edited".into());
    expected.extend((1..=30).map(|i| format!("Then {i}")));
    assert_eq!(questions(&edited), expected);
    check_windows(&edited);
    let alternatives = edited
        .iter()
        .flat_map(|w| &w.messages)
        .find(|m| m.content == "Question 10, edited")
        .map(|m| m.alternatives.clone())
        .expect("the edited question");
    assert_eq!(alternatives.len(), 2);
    assert_eq!(alternatives[0], tenth, "in the order they were asked");

    // Back to the first branch: its own turns and totals.
    let response = app
        .post_json(
            "switch_branch",
            json!({"conversation_id": conversation, "turn_id": tenth}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let first = all_windows(&app, conversation).await;
    let expected: Vec<String> = (1..=60).map(|i| format!("Question {i}")).collect();
    assert_eq!(questions(&first), expected);
    check_windows(&first);
    assert_eq!(
        first[0].older_totals.output_tokens + sums(&first[0]).1,
        60 * 3
    );
}

#[tokio::test]
async fn the_backfill_of_stored_conversations_computes_the_totals_turns_record() {
    let app = TestApp::start(fake()).await;
    let conversation = build(&app, 30, "Question", None).await;
    let windows = all_windows(&app, conversation).await;
    let fifth = windows
        .iter()
        .flat_map(|w| &w.messages)
        .find(|m| m.content == "Question 5")
        .map(|m| m.turn_id)
        .expect("the fifth question");
    let response = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation,
                   "text": "Question 5, again", "model": null, "alternative_to": fifth}),
        )
        .await;
    EventReader::new(response).read_to_end().await;
    build(&app, 5, "Then", Some(conversation)).await;
    build(&app, 3, "Another", None).await;

    let priors = || async {
        sql(
            "SELECT turn_id, prior_input_tokens, prior_output_tokens, prior_cost_usd,
                    prior_costed, prior_estimated, prior_sendable
               FROM messages WHERE role = 'user' ORDER BY turn_id",
        )
        .fetch_all::<(String, i64, i64, f64, i64, bool, i64)>(&app.state.db)
        .await
    };
    let recorded = priors().await;
    assert!(recorded.iter().any(|p| p.1 > 0), "figures were recorded");
    assert!(
        recorded.iter().any(|p| p.6 > 0),
        "sendable messages were counted"
    );
    // As if stored before the figures were kept: the migration's backfill computes them again.
    // The backfill is SQLite's (databases from before the figures were kept); a Postgres
    // database has had them from its first migration, and its copy from SQLite carries them.
    let Ok(writer) = app.state.db.writer() else {
        return;
    };
    sql(
        "UPDATE messages SET prior_input_tokens = 0, prior_output_tokens = 0, prior_cost_usd = 0,
                             prior_costed = 0, prior_estimated = FALSE, prior_sendable = 0",
    )
    .execute(&app.state.db)
    .await;
    for migration in [
        include_str!("../../migrations/20261206000009_turn_totals.sql"),
        include_str!("../../migrations/20261206000013_prior_sent.sql"),
    ] {
        let backfill = &migration[migration.find("WITH RECURSIVE").expect("the backfill")..];
        sqlx::raw_sql(backfill)
            .execute(writer)
            .await
            .expect("backfilled");
    }
    assert_eq!(priors().await, recorded);
}

/// The questions of the next `n` turns a stream announces.
async fn announced(tab: &mut EventReader, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.len() < n {
        if let StreamLine::Turn { user, .. } = tab.next_line().await.expect("the stream stays open")
        {
            seen.push(user.content);
        }
    }
    seen
}

#[tokio::test]
async fn a_page_following_a_long_conversation_reads_back_only_what_it_missed() {
    let app = TestApp::start(fake()).await;
    let conversation = build(&app, 100, "Question", None).await;
    let turn_of = |windows: &[ConversationView], text: &str| {
        windows
            .iter()
            .flat_map(|w| &w.messages)
            .find(|m| m.content == text)
            .map(|m| m.turn_id)
            .expect("the question")
    };
    let windows = all_windows(&app, conversation).await;
    // A page a few turns behind gets those turns…
    let mut near = app
        .watch(conversation, Some(turn_of(&windows, "Question 95")))
        .await;
    let expected: Vec<String> = (95..=100).map(|i| format!("Question {i}")).collect();
    assert_eq!(announced(&mut near, 6).await, expected);
    // …one far behind gets the last turn, whose parent is not its own last: it loads afresh.
    let mut far = app
        .watch(conversation, Some(turn_of(&windows, "Question 10")))
        .await;
    assert_eq!(
        announced(&mut far, 1).await,
        vec!["Question 100".to_owned()]
    );
    // Nothing more was read back: the next each hears of is the next turn.
    app.turn(Some(conversation), "Question 101").await;
    for tab in [&mut near, &mut far] {
        assert_eq!(announced(tab, 1).await, vec!["Question 101".to_owned()]);
    }
}
